/* -L, -R and -D forwarding specifications (core/config/fwdspec.c); the first byte picks the kind.
 * Besides memory errors, checks that a parsed spec names exactly one listener (TCP port or Unix
 * path) and at most one destination (host:port or Unix path; none only for -D and -R's SOCKS
 * form, and always none for -D) with ports in range, and that smx_fwd_spec_describe() fits any
 * buffer. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "fwdspec.h"

static void check_spec(const char *s, const smx_fwd_spec *f)
{
    if (f->bind_path && f->bind_addr)
        fz_fail("\"%s\": both a bind path and a bind address", s);
    if (!f->bind_path && (f->bind_port < 0 || f->bind_port > 65535))
        fz_fail("\"%s\": bind port %d", s, f->bind_port);
    if (f->dest_path && f->host)
        fz_fail("\"%s\": destination is both host and path", s);
    if (!f->dest_path && !f->host && f->kind == SMX_FWD_LOCAL)
        fz_fail("\"%s\": -L without a destination", s);
    if ((f->dest_path || f->host || f->bind_path) && f->kind == SMX_FWD_DYNAMIC)
        fz_fail("\"%s\": -D with a destination or a socket path", s);
    if (f->host && (!f->host[0] || f->port < 0 || f->port > 65535))
        fz_fail("\"%s\": remote \"%s\" port %d", s, f->host, f->port);
}

static void check_describe(const smx_fwd_spec *f, size_t size)
{
    char local[300], remote[300];

    memset(local, 'X', sizeof local);
    memset(remote, 'X', sizeof remote);
    smx_fwd_spec_describe(f, local, size, remote, size);
    if (strnlen(local, size) == size || strnlen(remote, size) == size)
        fz_fail("describe into %zu bytes is not terminated", size);
    if (local[size] != 'X' || remote[size] != 'X')
        fz_fail("describe wrote past its %zu bytes", size);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const enum smx_fwd_kind kinds[] = {SMX_FWD_LOCAL, SMX_FWD_REMOTE, SMX_FWD_DYNAMIC};
    enum smx_fwd_kind kind = size ? kinds[data[0] % 3] : SMX_FWD_LOCAL;
    if (size) {
        data++;
        size--;
    }
    char *s = fz_cstring(data, size);
    smx_fwd_spec f;
    smx_err err = { "" };
    int rc = smx_fwd_spec_parse_kind(s, kind, &f, &err);

    if (rc == 0) {
        check_spec(s, &f);
        check_describe(&f, 299);
        check_describe(&f, 1);
        check_describe(&f, 8);
    } else {
        static const smx_fwd_spec zero;
        if (memcmp(&f, &zero, sizeof f) != 0)
            fz_fail("failed parse (%d) of \"%s\" left the spec set", rc, s);
        if (!err.msg[0])
            fz_fail("failed parse (%d) of \"%s\" without a message", rc, s);
    }
    smx_fwd_spec_free(&f);
    free(s);
    return 0;
}
