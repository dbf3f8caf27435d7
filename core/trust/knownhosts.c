/* known_hosts parsed once into memory; see knownhosts.h for the contract.
 *
 * Entries live in three arrays by how their host field is matched:
 *   exact      - plain comma lists without wildcards; every name goes into a hash index,
 *   patterned  - lists with '*', '?' or '!', matched with smx_pattern_list_match on every lookup,
 *   hashed     - "|1|salt|hmac" names, matched by computing HMAC-SHA1(salt, name) on every lookup.
 * A lookup gathers the verdicts of all matching entries, then ranks them (revoked > ok > changed >
 * other > unknown), so the order of lines in the files never matters. */
#include "knownhosts.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "hmac_sha1.h"
#include "pattern.h"

#define KH_NONE SIZE_MAX
#define KH_NAME_MAX 1040 /* "[" + 1024-byte host + "]:65535" + NUL, rounded up */
#define KH_HOST_MAX 1024
#define KH_TYPE_NAME_MAX 64

/* Results of parsing one line, besides negative SMX_* codes. */
enum { KH_LINE_ADDED = 0, KH_LINE_IGNORED = 1, KH_LINE_SKIPPED = 2 };

struct kh_entry {
    ssh_key key;
    enum ssh_keytypes_e type;
    int revoked;                       /* from a @revoked line */
    char *hosts;                       /* patterned: the host field as written; exact: the
                                        * lowercased names, NUL-separated, that kh_name points to */
    unsigned char salt[SMX_SHA1_LEN];  /* hashed entries */
    unsigned char hash[SMX_SHA1_LEN];
};

struct kh_vec {
    struct kh_entry *v;
    size_t n, cap;
};

/* One name of an exact entry. Names with the same text are chained through `next`, and the index
 * slot holds the head of the chain. */
struct kh_name {
    const char *name; /* inside its entry's `hosts` */
    size_t entry;
    size_t next;
};

struct smx_knownhosts {
    struct kh_vec exact, patterned, hashed;
    struct kh_name *names;
    size_t nnames, names_cap;
    size_t *slots;   /* open addressing with linear probing; KH_NONE = empty */
    size_t nslots;   /* power of two, 0 before the first insert */
    size_t nchains;  /* occupied slots */
    smx_hmac_sha1_ctx *hmac; /* made with the first hashed entry */
    char *append_path;
    size_t skipped;
};

/* ---- small helpers ---- */

static void ascii_lower(char *s)
{
    for (; *s; s++)
        if (*s >= 'A' && *s <= 'Z')
            *s = (char)(*s - 'A' + 'a');
}

/* Splits off the next whitespace-separated field, NUL-terminating it in place. */
static char *next_field(char **p)
{
    char *s = *p + strspn(*p, " \t\r\n");
    char *end;

    if (*s == '\0')
        return NULL;
    end = s + strcspn(s, " \t\r\n");
    if (*end != '\0')
        *end++ = '\0';
    *p = end;
    return s;
}

static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

/* Strict RFC 4648 base64: padded to a multiple of 4, no whitespace, padding only at the end and
 * zero pad bits, so each encoded string has exactly one accepted spelling (as OpenSSH's b64_pton).
 * Returns the decoded length, or -1 if the input is invalid or out is too small. */
static long b64_decode(const char *in, size_t len, unsigned char *out, size_t cap)
{
    size_t pad = 0, i, o = 0;

    if (len == 0 || len % 4 != 0)
        return -1;
    while (pad < 2 && in[len - 1 - pad] == '=')
        pad++;
    if ((len / 4) * 3 - pad > cap)
        return -1;
    for (i = 0; i < len; i += 4) {
        int last = i + 4 == len;
        int v[4] = {0, 0, 0, 0};
        uint32_t bits;
        size_t k;

        for (k = 0; k < 4; k++) {
            v[k] = (last && k + pad >= 4) ? 0 : b64_value((unsigned char)in[i + k]);
            if (v[k] < 0)
                return -1;
        }
        bits = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
        if (last && pad > 0 && (bits & (pad == 1 ? 0xffu : 0xffffu)) != 0)
            return -1;
        out[o++] = (unsigned char)(bits >> 16);
        if (!(last && pad == 2))
            out[o++] = (unsigned char)(bits >> 8);
        if (!(last && pad >= 1))
            out[o++] = (unsigned char)bits;
    }
    return (long)o;
}

/* Builds OpenSSH's lookup name: "host" for port 22 (or 0), else "[host]:port", lowercased because
 * ssh(1) lowercases host names before it consults known_hosts. Returns its length. */
static int make_lookup_name(char *buf, size_t cap, const char *host, int port)
{
    int n;

    if (host == NULL || host[0] == '\0' || strlen(host) > KH_HOST_MAX)
        return SMX_EINVAL;
    if (port < 0 || port > 65535)
        return SMX_ERANGE;
    if (port == 0 || port == 22)
        n = snprintf(buf, cap, "%s", host);
    else
        n = snprintf(buf, cap, "[%s]:%d", host, port);
    if (n < 0 || (size_t)n >= cap)
        return SMX_EINVAL;
    ascii_lower(buf);
    return n;
}

/* ---- entry arrays ---- */

static int vec_reserve(struct kh_vec *vec, size_t extra)
{
    struct kh_entry *v;
    size_t cap;

    if (vec->n + extra <= vec->cap)
        return 0;
    cap = vec->cap ? vec->cap * 2 : 16;
    while (cap < vec->n + extra)
        cap *= 2;
    v = realloc(vec->v, cap * sizeof *v);
    if (v == NULL)
        return SMX_ENOMEM;
    vec->v = v;
    vec->cap = cap;
    return 0;
}

static void entry_free(struct kh_entry *e)
{
    ssh_key_free(e->key);
    free(e->hosts);
}

static void vec_free(struct kh_vec *vec)
{
    size_t i;

    for (i = 0; i < vec->n; i++)
        entry_free(&vec->v[i]);
    free(vec->v);
}

/* ---- hash index of exact names ---- */

static size_t name_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */

    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return (size_t)h;
}

/* Slot holding the chain for name, or the empty slot where it would go. */
static size_t index_slot(const smx_knownhosts *kh, const char *name)
{
    size_t mask = kh->nslots - 1;
    size_t i = name_hash(name) & mask;

    while (kh->slots[i] != KH_NONE && strcmp(kh->names[kh->slots[i]].name, name) != 0)
        i = (i + 1) & mask;
    return i;
}

static int index_grow(smx_knownhosts *kh, size_t nslots)
{
    size_t *old = kh->slots, oldn = kh->nslots, i;

    kh->slots = malloc(nslots * sizeof *kh->slots);
    if (kh->slots == NULL) {
        kh->slots = old;
        return SMX_ENOMEM;
    }
    for (i = 0; i < nslots; i++)
        kh->slots[i] = KH_NONE;
    kh->nslots = nslots;
    for (i = 0; i < oldn; i++)
        if (old[i] != KH_NONE)
            kh->slots[index_slot(kh, kh->names[old[i]].name)] = old[i];
    free(old);
    return 0;
}

/* Makes room for `extra` more names so that index_insert cannot fail: add() reserves before it
 * writes to disk, and the cache must not lag behind the file. */
static int index_reserve(smx_knownhosts *kh, size_t extra)
{
    if (kh->nnames + extra > kh->names_cap) {
        size_t cap = kh->names_cap ? kh->names_cap * 2 : 16;
        struct kh_name *names;

        while (cap < kh->nnames + extra)
            cap *= 2;
        names = realloc(kh->names, cap * sizeof *names);
        if (names == NULL)
            return SMX_ENOMEM;
        kh->names = names;
        kh->names_cap = cap;
    }
    /* Keep the table at most half full, counting every new name as a possible new chain. */
    if ((kh->nchains + extra) * 2 > kh->nslots) {
        size_t nslots = kh->nslots ? kh->nslots : 64;

        while ((kh->nchains + extra) * 2 > nslots)
            nslots *= 2;
        return index_grow(kh, nslots);
    }
    return 0;
}

/* name (lowercased) must live as long as the entry. Needs a prior index_reserve(kh, 1). */
static void index_insert(smx_knownhosts *kh, const char *name, size_t entry)
{
    size_t id = kh->nnames++;
    size_t slot = index_slot(kh, name);

    kh->names[id].name = name;
    kh->names[id].entry = entry;
    kh->names[id].next = kh->slots[slot];
    if (kh->slots[slot] == KH_NONE)
        kh->nchains++;
    kh->slots[slot] = id;
}

static size_t index_find(const smx_knownhosts *kh, const char *name)
{
    return kh->nslots ? kh->slots[index_slot(kh, name)] : KH_NONE;
}

/* ---- parsing ---- */

static int supported_type(enum ssh_keytypes_e t)
{
    return t == SSH_KEYTYPE_RSA || t == SSH_KEYTYPE_ED25519 || t == SSH_KEYTYPE_ECDSA_P256 ||
           t == SSH_KEYTYPE_ECDSA_P384 || t == SSH_KEYTYPE_ECDSA_P521;
}

/* Type named inside a decoded public key blob (uint32 length + name, RFC 4253 6.6). */
static enum ssh_keytypes_e blob_type(const unsigned char *blob, size_t len)
{
    char name[KH_TYPE_NAME_MAX];
    uint32_t n;

    if (len < 4)
        return SSH_KEYTYPE_UNKNOWN;
    n = (uint32_t)blob[0] << 24 | (uint32_t)blob[1] << 16 | (uint32_t)blob[2] << 8 | blob[3];
    if (n == 0 || n >= sizeof name || n > len - 4)
        return SSH_KEYTYPE_UNKNOWN;
    memcpy(name, blob + 4, n);
    name[n] = '\0';
    return ssh_key_type_from_name(name);
}

/* Parses "keytype base64". libssh's importer trusts the type we pass and ignores the one in the
 * blob, so the blob is decoded here first and both must agree (rsa-sha2-* are names of ssh-rsa
 * signatures, which some tools write as the key type). */
static int parse_key(const char *type_name, const char *b64, struct kh_entry *e)
{
    size_t len = strlen(b64);
    unsigned char *blob;
    enum ssh_keytypes_e type;
    long n;

    if (strcmp(type_name, "rsa-sha2-256") == 0 || strcmp(type_name, "rsa-sha2-512") == 0)
        type_name = "ssh-rsa";
    type = ssh_key_type_from_name(type_name);
    if (!supported_type(type))
        return KH_LINE_SKIPPED;
    blob = malloc(len / 4 * 3 + 1);
    if (blob == NULL)
        return SMX_ENOMEM;
    n = b64_decode(b64, len, blob, len / 4 * 3 + 1);
    if (n < 0 || blob_type(blob, (size_t)n) != type) {
        free(blob);
        return KH_LINE_SKIPPED;
    }
    free(blob);
    if (ssh_pki_import_pubkey_base64(b64, type, &e->key) != SSH_OK)
        return KH_LINE_SKIPPED;
    if (ssh_key_type(e->key) != type) {
        ssh_key_free(e->key);
        e->key = NULL;
        return KH_LINE_SKIPPED;
    }
    e->type = type;
    return KH_LINE_ADDED;
}

/* "|1|base64(salt)|base64(hmac)" without the "|1|" prefix; OpenSSH uses 20-byte salts. */
static int parse_hashed(char *s, struct kh_entry *e)
{
    char *bar = strchr(s, '|');
    size_t hlen;

    if (bar == NULL)
        return KH_LINE_SKIPPED;
    *bar = '\0';
    hlen = strlen(bar + 1);
    if (b64_decode(s, strlen(s), e->salt, sizeof e->salt) != SMX_SHA1_LEN ||
        b64_decode(bar + 1, hlen, e->hash, sizeof e->hash) != SMX_SHA1_LEN)
        return KH_LINE_SKIPPED;
    return KH_LINE_ADDED;
}

/* Adds an exact entry under each of its comma-separated names. Everything that can fail happens
 * before the entry is stored, so a failure leaves kh as it was. */
static int store_exact(smx_knownhosts *kh, const char *hosts, struct kh_entry *e)
{
    size_t id = kh->exact.n, count = 0, i, len = strlen(hosts);
    int rc;

    for (i = 0; i < len; i++)
        if (hosts[i] != ',' && (i == 0 || hosts[i - 1] == ','))
            count++;
    if (count == 0)
        return KH_LINE_SKIPPED;
    if ((rc = vec_reserve(&kh->exact, 1)) < 0 || (rc = index_reserve(kh, count)) < 0)
        return rc;
    if ((e->hosts = strdup(hosts)) == NULL)
        return SMX_ENOMEM;
    ascii_lower(e->hosts);
    for (i = 0; i < len; i++)
        if (e->hosts[i] == ',')
            e->hosts[i] = '\0';
    for (i = 0; i < len; i++)
        if (e->hosts[i] != '\0' && (i == 0 || e->hosts[i - 1] == '\0'))
            index_insert(kh, e->hosts + i, id);
    kh->exact.v[kh->exact.n++] = *e;
    return KH_LINE_ADDED;
}

/* Files e under the right array, which then owns it; otherwise the caller frees e. */
static int store_entry(smx_knownhosts *kh, char *hosts, struct kh_entry *e)
{
    struct kh_vec *vec;
    int rc;

    if (strncmp(hosts, "|1|", 3) == 0) {
        if ((rc = parse_hashed(hosts + 3, e)) != KH_LINE_ADDED)
            return rc;
        if (kh->hmac == NULL && (kh->hmac = smx_hmac_sha1_new()) == NULL)
            return SMX_ENOMEM;
        vec = &kh->hashed;
    } else if (hosts[0] == '|') {
        return KH_LINE_SKIPPED; /* unknown hash scheme */
    } else if (strpbrk(hosts, "*?!") != NULL) {
        if ((e->hosts = strdup(hosts)) == NULL)
            return SMX_ENOMEM;
        vec = &kh->patterned;
    } else {
        return store_exact(kh, hosts, e);
    }
    if ((rc = vec_reserve(vec, 1)) < 0)
        return rc;
    vec->v[vec->n++] = *e;
    return KH_LINE_ADDED;
}

/* One line: [@marker] hosts keytype base64 [comment]. */
static int parse_line(smx_knownhosts *kh, char *line)
{
    struct kh_entry e;
    char *p = line, *hosts, *type, *b64;
    int rc;

    memset(&e, 0, sizeof e);
    hosts = next_field(&p);
    if (hosts == NULL || hosts[0] == '#')
        return KH_LINE_IGNORED;
    if (hosts[0] == '@') {
        if (strcmp(hosts, "@cert-authority") == 0)
            return KH_LINE_IGNORED; /* host certificates: not supported yet */
        if (strcmp(hosts, "@revoked") != 0)
            return KH_LINE_SKIPPED;
        e.revoked = 1;
        hosts = next_field(&p);
    }
    if (hosts == NULL || (type = next_field(&p)) == NULL || (b64 = next_field(&p)) == NULL)
        return KH_LINE_SKIPPED;
    if ((rc = parse_key(type, b64, &e)) != KH_LINE_ADDED)
        return rc;
    if ((rc = store_entry(kh, hosts, &e)) != KH_LINE_ADDED)
        entry_free(&e);
    return rc;
}

/* ---- load / free ---- */

static int load_file(smx_knownhosts *kh, const char *path, smx_err *err)
{
    FILE *f = fopen(path, "re");
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int rc = 0;

    if (f == NULL) {
        if (errno == ENOENT || errno == ENOTDIR)
            return 0; /* a missing file knows no hosts */
        return smx_seterr(err, SMX_EIO, "known_hosts %s: %s", path, strerror(errno));
    }
    while ((len = getline(&line, &cap, f)) >= 0) {
        /* An embedded NUL would hide the rest of the line from the parser: reject the line. */
        rc = (strlen(line) == (size_t)len) ? parse_line(kh, line) : KH_LINE_SKIPPED;
        if (rc < 0)
            break;
        if (rc == KH_LINE_SKIPPED)
            kh->skipped++;
        rc = 0;
    }
    if (rc < 0)
        smx_seterr(err, rc, "known_hosts %s: out of memory", path);
    else if (ferror(f))
        rc = smx_seterr(err, SMX_EIO, "known_hosts %s: %s", path, strerror(errno));
    free(line);
    fclose(f);
    return rc;
}

int smx_knownhosts_load(smx_knownhosts **out, const char *const *files, size_t n, smx_err *err)
{
    smx_knownhosts *kh;
    size_t i;
    int rc;

    if (out == NULL || (n > 0 && files == NULL))
        return smx_seterr(err, SMX_EINVAL, "known_hosts: no output or file list");
    *out = NULL;
    for (i = 0; i < n; i++)
        if (files[i] == NULL || files[i][0] == '\0')
            return smx_seterr(err, SMX_EINVAL, "known_hosts: file %zu has no name", i);
    if ((kh = calloc(1, sizeof *kh)) == NULL)
        return smx_seterr(err, SMX_ENOMEM, "known_hosts: out of memory");
    if (n > 0 && (kh->append_path = strdup(files[0])) == NULL) {
        free(kh);
        return smx_seterr(err, SMX_ENOMEM, "known_hosts: out of memory");
    }
    for (i = 0; i < n; i++) {
        if ((rc = load_file(kh, files[i], err)) < 0) {
            smx_knownhosts_free(kh);
            return rc;
        }
    }
    *out = kh;
    return 0;
}

void smx_knownhosts_free(smx_knownhosts *kh)
{
    if (kh == NULL)
        return;
    vec_free(&kh->exact);
    vec_free(&kh->patterned);
    vec_free(&kh->hashed);
    free(kh->names);
    free(kh->slots);
    smx_hmac_sha1_free(kh->hmac);
    free(kh->append_path);
    free(kh);
}

size_t smx_knownhosts_count(const smx_knownhosts *kh)
{
    return kh ? kh->exact.n + kh->patterned.n + kh->hashed.n : 0;
}

size_t smx_knownhosts_skipped(const smx_knownhosts *kh)
{
    return kh ? kh->skipped : 0;
}

/* ---- lookup ---- */

/* What the entries matching a host say about a key. */
struct kh_verdict {
    int revoked, match, same_type, other_type;
};

static void judge(const struct kh_entry *e, const ssh_key key, enum ssh_keytypes_e type,
                  struct kh_verdict *v)
{
    int same = e->type == type;
    int equal = same && ssh_key_cmp(e->key, key, SSH_KEY_CMP_PUBLIC) == 0;

    if (e->revoked) {
        v->revoked |= equal; /* a revoked line only revokes; it does not make a host known */
        return;
    }
    if (equal)
        v->match = 1;
    else if (same)
        v->same_type = 1;
    else
        v->other_type = 1;
}

static int hashed_matches(const smx_knownhosts *kh, const struct kh_entry *e, const char *name,
                          size_t len)
{
    unsigned char mac[SMX_SHA1_LEN];

    return smx_hmac_sha1_compute(kh->hmac, e->salt, sizeof e->salt, name, len, mac) == 0 &&
           memcmp(mac, e->hash, sizeof mac) == 0;
}

/* name: an already built, lowercased lookup name. */
static int check_name(const smx_knownhosts *kh, const char *name, size_t len, const ssh_key key)
{
    enum ssh_keytypes_e type = ssh_key_type(key);
    struct kh_verdict v = {0, 0, 0, 0};
    size_t i;

    for (i = index_find(kh, name); i != KH_NONE; i = kh->names[i].next)
        judge(&kh->exact.v[kh->names[i].entry], key, type, &v);
    for (i = 0; i < kh->patterned.n; i++)
        if (smx_pattern_list_match(name, kh->patterned.v[i].hosts) == 1)
            judge(&kh->patterned.v[i], key, type, &v);
    for (i = 0; i < kh->hashed.n; i++)
        if (hashed_matches(kh, &kh->hashed.v[i], name, len))
            judge(&kh->hashed.v[i], key, type, &v);

    if (v.revoked)
        return SMX_HOSTKEY_REVOKED;
    if (v.match)
        return SMX_HOSTKEY_OK;
    if (v.same_type)
        return SMX_HOSTKEY_CHANGED;
    if (v.other_type)
        return SMX_HOSTKEY_OTHER;
    return SMX_HOSTKEY_UNKNOWN;
}

int smx_knownhosts_check(smx_knownhosts *kh, const char *host, int port, const ssh_key key)
{
    char name[KH_NAME_MAX];
    int len;

    if (kh == NULL || key == NULL)
        return SMX_EINVAL;
    if ((len = make_lookup_name(name, sizeof name, host, port)) < 0)
        return len;
    return check_name(kh, name, (size_t)len, key);
}

/* ---- append ---- */

/* Refuses names that would change what the appended line means: a field separator, a pattern, a
 * comment, a marker or a hashed-name prefix. */
static int host_is_writable(const char *host)
{
    const unsigned char *p;

    if (host[0] == '#' || host[0] == '@' || host[0] == '|')
        return 0;
    for (p = (const unsigned char *)host; *p; p++)
        if (*p <= ' ' || *p == 0x7f || *p == ',' || *p == '*' || *p == '?' || *p == '!')
            return 0;
    return 1;
}

/* mkdir -p of path's directory, 0700 like ~/.ssh. */
static int make_parent_dirs(const char *path)
{
    char *dir = strdup(path), *p;
    int rc = 0;

    if (dir == NULL)
        return SMX_ENOMEM;
    p = strrchr(dir, '/');
    if (p != NULL && p != dir) {
        *p = '\0';
        for (p = dir + 1; rc == 0; p++) {
            char c = *p;

            if (c != '/' && c != '\0')
                continue;
            *p = '\0';
            if (mkdir(dir, 0700) < 0 && errno != EEXIST)
                rc = SMX_EIO;
            *p = c;
            if (c == '\0')
                break;
        }
    }
    free(dir);
    return rc;
}

static int open_for_append(const char *path)
{
    const int flags = O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY;
    int fd = open(path, flags, 0600);

    if (fd < 0 && errno == ENOENT && make_parent_dirs(path) == 0)
        fd = open(path, flags, 0600);
    return fd;
}

/* buf holds a spare byte, then the line of len bytes ending in '\n'. The line goes out in ONE
 * write() on an O_APPEND descriptor: the kernel then appends it whole, even with other sshmux
 * processes appending to the same file at the same time. */
static int append_line(const char *path, char *buf, size_t len, smx_err *err)
{
    int fd = open_for_append(path), saved;
    const char *p = buf + 1;
    struct stat st;
    char last = '\n';
    ssize_t w;

    if (fd < 0)
        return smx_seterr(err, SMX_EIO, "known_hosts %s: %s", path, strerror(errno));
    /* A file not ending in a newline (hand-edited, or a write cut short) would otherwise have our
     * line glued to its last one, losing both. Another process's append can be seen half done
     * (the size grows page by page), so the look at the last byte and our write go under an
     * advisory lock that other sshmux processes take too; without one (ENOLCK) the worst case is
     * an extra blank line. The lock goes with close(). */
    (void)flock(fd, LOCK_EX);
    if (fstat(fd, &st) == 0 && st.st_size > 0 && pread(fd, &last, 1, st.st_size - 1) == 1 &&
        last != '\n') {
        buf[0] = '\n';
        p = buf;
        len++;
    }
    do
        w = write(fd, p, len);
    while (w < 0 && errno == EINTR);
    saved = w < 0 ? errno : ENOSPC;
    if (close(fd) < 0 && w == (ssize_t)len) {
        saved = errno;
        w = -1;
    }
    if (w != (ssize_t)len)
        return smx_seterr(err, SMX_EIO, "known_hosts %s: %s", path, strerror(saved));
    return 0;
}

/* Builds " name keytype base64\n" (leading spare byte for append_line) into *out. */
static int format_line(const char *name, const ssh_key key, char **out, size_t *outlen)
{
    const char *type = ssh_key_type_to_char(ssh_key_type(key));
    char *b64 = NULL, *buf;
    size_t cap;
    int n;

    if (type == NULL || ssh_pki_export_pubkey_base64(key, &b64) != SSH_OK)
        return SMX_EINVAL;
    cap = 1 + strlen(name) + 1 + strlen(type) + 1 + strlen(b64) + 2;
    if ((buf = malloc(cap)) == NULL) {
        ssh_string_free_char(b64);
        return SMX_ENOMEM;
    }
    n = snprintf(buf, cap, " %s %s %s\n", name, type, b64);
    ssh_string_free_char(b64);
    if (n < 0 || (size_t)n >= cap) {
        free(buf);
        return SMX_EINVAL;
    }
    *out = buf;
    *outlen = (size_t)n - 1;
    return 0;
}

/* Allocates everything the cache needs for a new exact entry, so that committing it after the
 * file write cannot fail. */
static int prepare_entry(smx_knownhosts *kh, const char *name, const ssh_key key,
                         struct kh_entry *e)
{
    int rc;

    memset(e, 0, sizeof *e);
    if ((rc = vec_reserve(&kh->exact, 1)) < 0 || (rc = index_reserve(kh, 1)) < 0)
        return rc;
    e->type = ssh_key_type(key);
    e->key = ssh_key_dup(key);
    e->hosts = strdup(name);
    if (e->key == NULL || e->hosts == NULL) {
        entry_free(e);
        return SMX_ENOMEM;
    }
    return 0;
}

int smx_knownhosts_add(smx_knownhosts *kh, const char *host, int port, const ssh_key key,
                       smx_err *err)
{
    char name[KH_NAME_MAX], *line = NULL;
    struct kh_entry e;
    size_t linelen;
    int len, rc;

    if (kh == NULL || key == NULL || host == NULL || !host_is_writable(host))
        return smx_seterr(err, SMX_EINVAL, "known_hosts: cannot add host '%s'",
                          host ? host : "(null)");
    if ((len = make_lookup_name(name, sizeof name, host, port)) < 0)
        return smx_seterr(err, len, "known_hosts: bad host '%s' or port %d", host, port);
    if (!supported_type(ssh_key_type(key)))
        return smx_seterr(err, SMX_EINVAL, "known_hosts: unsupported key type for %s", name);
    rc = check_name(kh, name, (size_t)len, key);
    if (rc == SMX_HOSTKEY_OK)
        return 0; /* already known: written once, however many sessions race here */
    if (rc == SMX_HOSTKEY_REVOKED)
        return smx_seterr(err, SMX_EHOSTKEY, "known_hosts: host key for %s is revoked", name);
    if (kh->append_path == NULL)
        return smx_seterr(err, SMX_EINVAL, "known_hosts: no file to add %s to", name);

    if ((rc = prepare_entry(kh, name, key, &e)) < 0)
        return smx_seterr(err, rc, "known_hosts: out of memory");
    if ((rc = format_line(name, key, &line, &linelen)) < 0) {
        entry_free(&e);
        return smx_seterr(err, rc, "known_hosts: cannot encode the key for %s", name);
    }
    rc = append_line(kh->append_path, line, linelen, err);
    free(line);
    if (rc < 0) {
        entry_free(&e);
        return rc;
    }
    index_insert(kh, e.hosts, kh->exact.n);
    kh->exact.v[kh->exact.n++] = e;
    return 1;
}

char *smx_key_fingerprint(const ssh_key key)
{
    unsigned char *hash = NULL;
    size_t hlen = 0;
    char *fp;

    if (key == NULL || ssh_get_publickey_hash(key, SSH_PUBLICKEY_HASH_SHA256, &hash, &hlen) != 0)
        return NULL;
    fp = ssh_get_fingerprint_hash(SSH_PUBLICKEY_HASH_SHA256, hash, hlen);
    ssh_clean_pubkey_hash(&hash);
    return fp;
}
