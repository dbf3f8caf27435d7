/* Value expansion for resolved options: "~" paths, %-tokens and ${ENV} (ssh_config(5) TOKENS
 * and ENVIRONMENT VARIABLES), plus the ProxyJump hop syntax. */
#include "sshconfig_internal.h"
#include "numparse.h"

#include <ctype.h>
#include <pwd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* ---- a tiny growable string ------------------------------------------------------------ */

typedef struct sbuf {
    char *p;
    size_t n, cap;
    int oom;
} sbuf;

static void sb_add(sbuf *b, const char *s, size_t len)
{
    if (b->oom)
        return;
    if (b->n + len + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        char *p;

        while (cap < b->n + len + 1)
            cap *= 2;
        if (!(p = realloc(b->p, cap))) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, len);
    b->n += len;
    b->p[b->n] = '\0';
}

static void sb_str(sbuf *b, const char *s)
{
    sb_add(b, s, strlen(s));
}

/* Hand the buffer over as a C string (never NULL on success, even when empty). */
static int sb_finish(sbuf *b, char **out)
{
    sb_add(b, "", 0);
    if (b->oom) {
        free(b->p);
        return SMX_ENOMEM;
    }
    *out = b->p;
    return 0;
}

/* ---- SHA-1, only for %C (hash of %l%h%p%r, as ssh computes it) -------------------------- */

#define ROL(x, n) (((x) << (n)) | ((x) >> (32 - (n))))

static void sha1_block(uint32_t h[5], const unsigned char *blk)
{
    uint32_t w[80], a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];

    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)blk[4 * i] << 24 | (uint32_t)blk[4 * i + 1] << 16 |
               (uint32_t)blk[4 * i + 2] << 8 | blk[4 * i + 3];
    for (int i = 16; i < 80; i++)
        w[i] = ROL(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    for (int i = 0; i < 80; i++) {
        uint32_t f, k, t;

        if (i < 20)      { f = (b & c) | (~b & d);           k = 0x5A827999; }
        else if (i < 40) { f = b ^ c ^ d;                    k = 0x6ED9EBA1; }
        else if (i < 60) { f = (b & c) | (b & d) | (c & d);  k = 0x8F1BBCDC; }
        else             { f = b ^ c ^ d;                    k = 0xCA62C1D6; }
        t = ROL(a, 5) + f + e + k + w[i];
        e = d; d = c; c = ROL(b, 30); b = a; a = t;
    }
    h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e;
}

static void sha1_hex(const unsigned char *msg, size_t len, char hex[41])
{
    uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
    unsigned char tail[128] = {0};
    size_t full = len / 64 * 64, rest = len - full;
    size_t tlen = rest < 56 ? 64 : 128;
    uint64_t bits = (uint64_t)len * 8;

    for (size_t off = 0; off < full; off += 64)
        sha1_block(h, msg + off);
    memcpy(tail, msg + full, rest);
    tail[rest] = 0x80;
    for (int i = 0; i < 8; i++)
        tail[tlen - 1 - i] = (unsigned char)(bits >> (8 * i));
    for (size_t off = 0; off < tlen; off += 64)
        sha1_block(h, tail + off);
    for (int i = 0; i < 5; i++)
        snprintf(hex + 8 * i, 9, "%08x", (unsigned)h[i]);
}

/* ---- tokens ---------------------------------------------------------------------------- */

static void add_token(sbuf *b, char c, const smx__tokens *t)
{
    char num[24];

    switch (c) {
    case 'd': sb_str(b, t->home); break;
    case 'h': sb_str(b, t->hostname); break;
    case 'k': sb_str(b, t->alias); break;
    case 'L': sb_str(b, t->lhost_short); break;
    case 'l': sb_str(b, t->lhost_full); break;
    case 'n': sb_str(b, t->orig); break;
    case 'r': sb_str(b, t->user); break;
    case 'u': sb_str(b, t->localuser); break;
    case 'i': snprintf(num, sizeof num, "%lu", t->uid); sb_str(b, num); break;
    case 'p': snprintf(num, sizeof num, "%d", t->port); sb_str(b, num); break;
    case 'C': {
        sbuf in = {0};
        char hex[41];

        snprintf(num, sizeof num, "%d", t->port);
        sb_str(&in, t->lhost_full);
        sb_str(&in, t->hostname);
        sb_str(&in, num);
        sb_str(&in, t->user);
        if (in.oom) {
            b->oom = 1;
        } else {
            sha1_hex((const unsigned char *)in.p, in.n, hex);
            sb_str(b, hex);
        }
        free(in.p);
        break;
    }
    }
}

/* ${NAME} at s (s points at '$'). Returns the length consumed, or an error. */
static int add_env(sbuf *b, const char *s, const char *what, const char *in, smx_err *err)
{
    const char *end = strchr(s + 2, '}');
    char name[256];
    const char *val;
    size_t len;

    if (!end)
        return smx_seterr(err, SMX_EINVAL, "%s \"%s\": unterminated ${", what, in);
    len = (size_t)(end - (s + 2));
    if (len == 0 || len >= sizeof name)
        return smx_seterr(err, SMX_EINVAL, "%s \"%s\": bad environment variable name", what, in);
    memcpy(name, s + 2, len);
    name[len] = '\0';
    if (!(val = getenv(name)))
        return smx_seterr(err, SMX_EINVAL, "%s \"%s\": environment variable \"%s\" is not set",
                          what, in, name);
    sb_str(b, val);
    return (int)(len + 3);
}

int smx__expand(const char *in, const smx__tokens *t, const char *allowed, int dollar,
                const char *what, char **out, smx_err *err)
{
    sbuf b = {0};

    for (const char *s = in; *s;) {
        if (*s == '%') {
            if (s[1] == '%') {
                sb_add(&b, "%", 1);
            } else if (s[1] && strchr(allowed, s[1])) {
                add_token(&b, s[1], t);
            } else {
                free(b.p);
                if (!s[1])
                    return smx_seterr(err, SMX_EINVAL, "%s \"%s\": '%%' at end of value",
                                      what, in);
                return smx_seterr(err, SMX_EINVAL, "%s \"%s\": unknown token %%%c", what, in,
                                  s[1]);
            }
            s += 2;
        } else if (dollar && s[0] == '$' && s[1] == '{') {
            int used = add_env(&b, s, what, in, err);

            if (used < 0) {
                free(b.p);
                return used;
            }
            s += used;
        } else {
            sb_add(&b, s++, 1);
        }
    }
    return sb_finish(&b, out);
}

/* ---- ~ --------------------------------------------------------------------------------- */

/* The home directory of a named user, via the reentrant passwd API. */
static int user_home(const char *name, sbuf *b)
{
    struct passwd pw, *res = NULL;
    size_t size = 16384;
    char *buf = malloc(size);
    int rc;

    if (!buf)
        return SMX_ENOMEM;
    rc = getpwnam_r(name, &pw, buf, size, &res);
    if (rc == 0 && res)
        sb_str(b, res->pw_dir);
    free(buf);
    return (rc == 0 && res) ? 0 : SMX_ENOENT;
}

int smx__tilde(const char *in, const char *home, char **out, smx_err *err)
{
    const char *slash;
    size_t ulen;
    sbuf b = {0};

    if (in[0] != '~')
        return (*out = strdup(in)) ? 0 : SMX_ENOMEM;
    slash = strchr(in, '/');
    ulen = slash ? (size_t)(slash - in - 1) : strlen(in) - 1;
    if (ulen == 0) {
        sb_str(&b, home);
    } else {
        char *name = strndup(in + 1, ulen);
        int rc = name ? user_home(name, &b) : SMX_ENOMEM;

        free(name);
        if (rc < 0) {
            free(b.p);
            if (rc == SMX_ENOENT)
                return smx_seterr(err, SMX_EINVAL, "\"%s\": no such user \"%.*s\"", in,
                                  (int)ulen, in + 1);
            return rc;
        }
    }
    /* ssh's form: "<home>/<rest>" with the rest's leading slashes collapsed, so "~" alone
     * gives "<home>/". */
    if (b.n == 0 || b.p[b.n - 1] != '/')
        sb_add(&b, "/", 1);
    if (slash)
        sb_str(&b, slash + strspn(slash, "/"));
    return sb_finish(&b, out);
}

/* ---- ProxyJump ------------------------------------------------------------------------- */

static const char *last_at(const char *s, const char *end)
{
    for (const char *p = end; p > s; p--)
        if (p[-1] == '@')
            return p - 1;
    return NULL;
}

static int parse_port(const char *s, size_t len)
{
    unsigned long long v;

    return smx_num_parse(s, len, 1, 65535, &v) == 0 ? (int)v : -1;
}

/* "[user@]host[:port]" or "ssh://[user@]host[:port]" in s[0..len). */
static int parse_hop(const char *s, size_t len, smx_jumphop *hop, smx_err *err)
{
    const char *end = s + len, *at, *host, *hend, *colon;

    if (len >= 6 && strncasecmp(s, "ssh://", 6) == 0) {
        s += 6;
        if (end > s && end[-1] == '/')
            end--;                  /* "ssh://host/" */
    }
    if (s == end)
        return smx_seterr(err, SMX_EINVAL, "empty hop");
    at = last_at(s, end);
    host = at ? at + 1 : s;
    if (at == s)
        return smx_seterr(err, SMX_EINVAL, "empty user name");
    if (*host == '[') {             /* [v6addr]:port */
        if (!(hend = memchr(host, ']', (size_t)(end - host))))
            return smx_seterr(err, SMX_EINVAL, "missing ']'");
        host++;
        colon = hend + 1 < end ? hend + 1 : NULL;
        if (colon && *colon != ':')
            return smx_seterr(err, SMX_EINVAL, "junk after ']'");
    } else {
        colon = memchr(host, ':', (size_t)(end - host));
        hend = colon ? colon : end;
    }
    if (hend == host)
        return smx_seterr(err, SMX_EINVAL, "empty host name");
    if (colon && colon + 1 < end && (hop->port = parse_port(colon + 1, (size_t)(end - colon - 1))) < 0)
        return smx_seterr(err, SMX_ERANGE, "bad port \"%.*s\"", (int)(end - colon - 1), colon + 1);
    if (at && !(hop->user = strndup(s, (size_t)(at - s))))
        return SMX_ENOMEM;
    return (hop->host = strndup(host, (size_t)(hend - host))) ? 0 : SMX_ENOMEM;
}

int smx_proxyjump_parse(const char *spec, smx_jumphop **hops, size_t *nhops, smx_err *err)
{
    size_t n = 1, i = 0;
    smx_jumphop *v;

    *hops = NULL;
    *nhops = 0;
    if (strcasecmp(spec, "none") == 0)
        return 0;
    for (const char *p = spec; *p; p++)
        n += *p == ',';
    if (!(v = calloc(n, sizeof *v)))
        return SMX_ENOMEM;
    for (const char *p = spec;; i++) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        int rc = parse_hop(p, len, &v[i], err);

        if (rc < 0) {
            smx_jumphops_free(v, n);
            return rc;
        }
        if (!comma)
            break;
        p = comma + 1;
    }
    *hops = v;
    *nhops = n;
    return 0;
}

/* ssh -G prints ProxyJump with its last hop rebuilt from the parsed parts ("b:" -> "b",
 * "ssh://u@h:0022/" -> "u@h:22", brackets only around names containing ':'); earlier hops
 * stay verbatim. Mirror that so `sshmux hosts` and `ssh -G` agree. */
int smx__jump_normalize(const char *spec, char **out)
{
    const char *comma = strrchr(spec, ',');
    const char *last = comma ? comma + 1 : spec;
    smx_jumphop hop = {0};
    smx_err ignored;
    sbuf b = {0};
    char num[16];

    if (parse_hop(last, strlen(last), &hop, &ignored) < 0) {
        free(hop.user);
        return (*out = strdup(spec)) ? 0 : SMX_ENOMEM;  /* validated at load: cannot happen */
    }
    sb_add(&b, spec, (size_t)(last - spec));
    if (hop.user) {
        sb_str(&b, hop.user);
        sb_add(&b, "@", 1);
    }
    sb_str(&b, strchr(hop.host, ':') ? "[" : "");
    sb_str(&b, hop.host);
    sb_str(&b, strchr(hop.host, ':') ? "]" : "");
    if (hop.port > 0) {
        snprintf(num, sizeof num, ":%d", hop.port);
        sb_str(&b, num);
    }
    free(hop.user);
    free(hop.host);
    return sb_finish(&b, out);
}

void smx_jumphops_free(smx_jumphop *hops, size_t nhops)
{
    for (size_t i = 0; i < nhops; i++) {
        free(hops[i].user);
        free(hops[i].host);
    }
    free(hops);
}

int smx_hostcfg_expand_proxy(const smx_hostcfg *hc, const char *tmpl, char **out, smx_err *err)
{
    smx__tokens t = {0};

    t.hostname = hc->hostname ? hc->hostname : "";
    t.orig = hc->host ? hc->host : "";
    t.user = hc->user ? hc->user : "";
    t.port = hc->port;
    return smx__expand(tmpl, &t, "hnpr", 0, "ProxyCommand", out, err);
}
