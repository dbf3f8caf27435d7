/* known_hosts files (core/trust/knownhosts.c). The input is one or two files, separated by a line
 * "--": the first is files[0] (where adds go), the second a further file. After loading, every
 * host name the input mentions (first fields of its first lines) is checked against two fixed
 * keys; then a key is added for one of them and must check OK both in the cache and after the
 * file is loaded again, unless a @revoked line refused it. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libssh/libssh.h>

#include "fuzz_common.h"
#include "knownhosts.h"

#define MAX_NAMES 16

/* Public halves of throwaway keys; the seed corpus uses the same ones so lines can match. */
static const char *const key_b64[] = {
    "AAAAC3NzaC1lZDI1NTE5AAAAIPyKm0mxjn+grpVxlQnUaaxpSU4r9haY6yeC29xXZkt4",
    "AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBJowtjVaD09zXQInxgdGsMUm/4OAGHkbftyEts9G"
    "P4wBQ7kT4JxJUjim4xzgciYyu3HLXuvQDl+0iqp3S1k/bQE=",
};
static const enum ssh_keytypes_e key_type[] = { SSH_KEYTYPE_ED25519, SSH_KEYTYPE_ECDSA_P256 };
static ssh_key keys[2];
static char file0[4096], file1[4096];

struct name {
    char host[256];
    int port;
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    ssh_init();
    for (size_t i = 0; i < 2; i++)
        if (ssh_pki_import_pubkey_base64(key_b64[i], key_type[i], &keys[i]) != SSH_OK)
            fz_fail("cannot import fixed key %zu", i);
    fz_path(file0, sizeof file0, "home/.ssh/known_hosts");
    fz_path(file1, sizeof file1, "home/.ssh/known_hosts2");
    return 0;
}

/* One comma-separated pattern -> host and port as a caller would look them up. */
static int add_name(struct name *v, size_t n, const char *s, size_t len)
{
    const char *close;

    if (n == MAX_NAMES || len == 0 || len >= sizeof v->host)
        return 0;
    if (s[0] == '!')
        s++, len--;
    v[n].port = 22;
    if (len > 3 && s[0] == '[' && (close = memchr(s, ']', len)) && close[1] == ':') {
        v[n].port = atoi(close + 2) % 65536;
        len = (size_t)(close - s - 1);
        s++;
    }
    memcpy(v[n].host, s, len);
    v[n].host[len] = '\0';
    return 1;
}

static size_t collect_names(const char *text, struct name *v)
{
    size_t n = 0;

    for (const char *line = text; line && *line && n < MAX_NAMES;) {
        const char *p = line + strspn(line, " \t");
        const char *eol = strchr(p, '\n');

        if (*p == '@')
            p += strcspn(p, " \t\n"), p += strspn(p, " \t");
        size_t field = strcspn(p, " \t\n");
        for (size_t i = 0; i < field;) {
            size_t len = strcspn(p + i, ",");
            if (len > field - i)
                len = field - i;
            n += add_name(v, n, p + i, len);
            i += len + 1;
        }
        line = eol ? eol + 1 : NULL;
    }
    return n;
}

static void check_status(int st, const char *host, int port)
{
    if (st != SMX_EINVAL && st != SMX_ERANGE && (st < SMX_HOSTKEY_OK || st > SMX_HOSTKEY_REVOKED))
        fz_fail("check(%s, %d) returned %d", host, port, st);
}

static smx_knownhosts *load(size_t nfiles)
{
    const char *files[2] = { file0, file1 };
    smx_knownhosts *kh = NULL;
    smx_err err = { "" };
    int rc = smx_knownhosts_load(&kh, files, nfiles, &err);

    if (rc < 0)
        fz_fail("load failed (%d): %s", rc, err.msg);
    return kh;
}

/* Adding a key makes it check OK, in the cache and in the file. */
static void check_add(smx_knownhosts *kh, const struct name *nm, size_t nfiles)
{
    smx_err err = { "" };
    int rc = smx_knownhosts_add(kh, nm->host, nm->port, keys[0], &err);
    int st = smx_knownhosts_check(kh, nm->host, nm->port, keys[0]);

    if (rc == SMX_EHOSTKEY && st != SMX_HOSTKEY_REVOKED)
        fz_fail("add(%s, %d) refused as revoked, but check says %d", nm->host, nm->port, st);
    if (rc < 0)
        return;
    if (st != SMX_HOSTKEY_OK)
        fz_fail("add(%s, %d) = %d, then check says %d", nm->host, nm->port, rc, st);
    smx_knownhosts *again = load(nfiles);
    st = smx_knownhosts_check(again, nm->host, nm->port, keys[0]);
    if (st != SMX_HOSTKEY_OK)
        fz_fail("add(%s, %d) = %d, after reload check says %d", nm->host, nm->port, rc, st);
    smx_knownhosts_free(again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fz_part parts[2];
    size_t nparts = fz_split(data, size, "--", parts, 2);
    struct name names[MAX_NAMES];
    char *text = fz_cstring(data, size);
    size_t nnames = collect_names(text, names);

    fz_write_file(file0, parts[0].data, parts[0].size);
    if (nparts > 1)
        fz_write_file(file1, parts[1].data, parts[1].size);
    else
        unlink(file1);
    /* Hashed lines name no host in clear: the seeds hash these. */
    for (size_t i = 0; i < 2 && nnames < MAX_NAMES; i++)
        names[nnames++] = (struct name){ "web01", i ? 2222 : 22 };
    smx_knownhosts *kh = load(2);
    for (size_t i = 0; i < nnames; i++)
        for (size_t k = 0; k < 2; k++)
            check_status(smx_knownhosts_check(kh, names[i].host, names[i].port, keys[k]),
                         names[i].host, names[i].port);
    check_add(kh, &names[0], 2);
    smx_knownhosts_free(kh);
    free(text);
    return 0;
}
