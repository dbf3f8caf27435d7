/* Target strings (core/config/target.c) and ProxyJump hop lists (smx_proxyjump_parse), which accept the
 * same [user@]host[:port] and ssh:// forms. Besides memory errors, checks target.h's promises:
 * a parsed target has a host and a port in 0..65535, a failed parse leaves the spec zeroed with a
 * message, and smx_target_display() ends within its buffer, shows no control characters and
 * hides a URL's password. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "sshconfig.h"
#include "target.h"

static void check_display(const char *s, size_t size, const smx_target_spec *t)
{
    char buf[512];

    memset(buf, 'X', sizeof buf);
    smx_target_display(s, buf, size);
    size_t len = strnlen(buf, size);
    if (len == size)
        fz_fail("display into %zu bytes is not terminated", size);
    if (buf[size] != 'X')
        fz_fail("display wrote past its %zu bytes", size);
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)buf[i] < 0x20 || buf[i] == 0x7f)
            fz_fail("display shows control character 0x%02x", (unsigned char)buf[i]);
    /* A URL password never shows: the display has "***" where it was (when it fits). */
    if (t && t->password && t->password[0] && strlen(s) + 3 < size && !strstr(buf, "***"))
        fz_fail("display \"%s\" does not mask the password", buf);
}

static void check_target(const char *s)
{
    smx_target_spec t;
    smx_err err = { "" };
    int rc = smx_target_parse(s, &t, &err);

    if (rc == 0) {
        if (!t.host || !t.host[0])
            fz_fail("target \"%s\" parsed without a host", s);
        if (t.port < 0 || t.port > 65535)
            fz_fail("target \"%s\" parsed with port %d", s, t.port);
        if (t.password && !t.from_url)
            fz_fail("target \"%s\": a password outside ssh://", s);
    } else {
        static const smx_target_spec zero;
        if (memcmp(&t, &zero, sizeof t) != 0)
            fz_fail("failed parse (%d) of \"%s\" left the spec set", rc, s);
        if (!err.msg[0])
            fz_fail("failed parse (%d) of \"%s\" without a message", rc, s);
    }
    check_display(s, 511, rc == 0 ? &t : NULL);
    check_display(s, 1, NULL);
    check_display(s, 4, NULL);
    check_display(s, 24, NULL);
    smx_target_spec_free(&t);
}

static void check_jump(const char *s)
{
    smx_jumphop *hops = NULL;
    size_t n = 0;
    smx_err err = { "" };

    if (smx_proxyjump_parse(s, &hops, &n, &err) == 0) {
        for (size_t i = 0; i < n; i++) {
            if (!hops[i].host || !hops[i].host[0])
                fz_fail("ProxyJump \"%s\": hop %zu has no host", s, i);
            if (hops[i].port < 0 || hops[i].port > 65535)
                fz_fail("ProxyJump \"%s\": hop %zu has port %d", s, i, hops[i].port);
        }
        smx_jumphops_free(hops, n);
    } else if (hops || n) {
        fz_fail("failed ProxyJump parse of \"%s\" returned hops", s);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fz_cstring(data, size);

    check_target(s);
    check_jump(s);
    free(s);
    return 0;
}
