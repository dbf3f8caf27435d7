/* -L forwarding specifications (core/config/fwdspec.c). Besides memory errors, checks that a parsed spec
 * names exactly one local side (TCP port or Unix path) and one remote side (host:port or Unix
 * path) with ports in range, and that smx_fwd_spec_describe() fits any buffer. */
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
    if (!f->dest_path == !f->host)
        fz_fail("\"%s\": remote side is %s", s, f->host ? "both host and path" : "missing");
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
    char *s = fz_cstring(data, size);
    smx_fwd_spec f;
    smx_err err = { "" };
    int rc = smx_fwd_spec_parse(s, &f, &err);

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
