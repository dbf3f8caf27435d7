/* SOCKS 4/4a/5 requests as the -D listener and -R's reverse proxy read them (core/apps/socks.c).
 * The input arrives in pieces (the first byte sets the piece size), as reads off a socket do:
 * the parser must give the same outcome whatever the split. Besides memory errors, checks that
 * it never consumes more than it was given, that a parsed request has a NUL-terminated host and
 * a port in range, that a refusal is final, and that replies fit their buffer. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "socks.h"

static int check_reply(void *ud, const uint8_t *p, size_t n)
{
    if (n == 0 || n > sizeof ((smx_socks *)0)->out)
        fz_fail("reply of %zu bytes", n);
    return 0;
}

/* Feeds buf as a stream in pieces of `step` bytes, as the listeners do (smx_socks_take); returns
 * the final state. */
static enum smx_socks_state feed(smx_socks *s, const uint8_t *data, size_t size, size_t step,
                                 char *host, int *port)
{
    uint8_t buf[SMX_SOCKS_MAX_MESSAGE];
    size_t have = 0, off = 0;
    smx_socks_init(s);
    while (s->state != SMX_SOCKS_REQUEST && s->state != SMX_SOCKS_FAILED) {
        if (off == size && have == 0)
            break;
        size_t n = size - off < step ? size - off : step;
        if (n > sizeof buf - have)
            n = sizeof buf - have;
        memcpy(buf + have, data + off, n);
        have += n;
        off += n;
        size_t before = have;
        int rc = smx_socks_take(s, buf, &have, sizeof buf, check_reply, NULL);
        if (have > before)
            fz_fail("take grew the buffer from %zu to %zu bytes", before, have);
        if (rc < 0 && s->state != SMX_SOCKS_FAILED)
            fz_fail("error without the failed state");
        if (rc > 0 && s->state != SMX_SOCKS_REQUEST)
            fz_fail("a request without the request state");
        if (rc == 0 && n == 0)
            break;   /* incomplete, nothing more to give */
    }
    if (s->state == SMX_SOCKS_REQUEST) {
        if (strnlen(s->host, sizeof s->host) == sizeof s->host || !s->host[0])
            fz_fail("host not terminated or empty");
        if (s->port < 0 || s->port > 65535)
            fz_fail("port %d", s->port);
        strcpy(host, s->host);
        *port = s->port;
    }
    return s->state;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t step = data[0] % 32 + 1;
    data++;
    size--;
    smx_socks a, b;
    char ha[256] = "", hb[256] = "";
    int pa = -1, pb = -1;
    enum smx_socks_state sa = feed(&a, data, size, step, ha, &pa);
    enum smx_socks_state sb = feed(&b, data, size, SMX_SOCKS_MAX_MESSAGE, hb, &pb);
    if (sa != sb && !(sa != SMX_SOCKS_FAILED && sb != SMX_SOCKS_FAILED &&
                      sa != SMX_SOCKS_REQUEST && sb != SMX_SOCKS_REQUEST))
        fz_fail("split reads end in state %d, one read in %d", sa, sb);
    if (sa == SMX_SOCKS_REQUEST && (strcmp(ha, hb) != 0 || pa != pb))
        fz_fail("split reads parse %s:%d, one read %s:%d", ha, pa, hb, pb);
    uint8_t reply[10];
    for (int code = 0; code <= SMX_SOCKS_ATYP_UNSUPPORTED; code++) {
        size_t n = smx_socks_reply(&a, code, reply);
        if (n != 8 && n != 10)
            fz_fail("reply of %zu bytes", n);
        if (!smx_socks_code_text(code))
            fz_fail("no text for code %d", code);
    }
    return 0;
}
