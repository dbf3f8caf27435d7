/* send/expect (core/apps/expect.c) over what a remote shell prints, which anyone on the host
 * can shape, and over script lines, which come from files. The input's first byte sets the size
 * of the chunks the output is fed in (as reads off a channel split it); the rest is both the
 * output and a script line. Properties:
 * - fed in chunks or all at once, a step waiting for a fixed string ends at the same place with
 *   the same output (the first occurrence after the echo), and one that never matches collects
 *   the same text: the cleaner and the echo do not depend on the split;
 * - no output holds what the cleaner removes (ESC, CR, NUL, BEL);
 * - the tail fits the buffer it is given; the prompt line is trimmed and one line;
 * - a script line is accepted as one step (or none, for blank and comment lines) or refused with
 *   a message, never half-added. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "expect.h"
#include "fuzz_common.h"

#define SENT "ls -l\n"

typedef struct run {
    int matched;
    char *out;
    size_t len;
} run;

static run feed(const char *regex, const char *in, size_t n, size_t step)
{
    smx_expect_matcher m;
    smx_expect_init(&m, 0);
    if (smx_expect_begin(&m, SENT, regex, NULL, NULL) < 0)
        fz_fail("the regex \"%s\" does not compile", regex);
    run r = {0};
    for (size_t off = 0; off < n && !r.matched; off += step)
        r.matched = smx_expect_feed(&m, in + off, off + step <= n ? step : n - off);
    const char *out = smx_expect_output(&m, &r.len);
    r.out = malloc(r.len + 1);
    memcpy(r.out, out, r.len);
    for (size_t i = 0; i < r.len; i++)
        if (out[i] == 0x1b || out[i] == '\r' || out[i] == '\0' || out[i] == 0x07)
            fz_fail("output byte %zu is 0x%02x, which the cleaner removes", i,
                    (unsigned char)out[i]);
    char tail[64];
    memset(tail, 'X', sizeof tail);
    smx_expect_tail(&m, tail, 17);
    if (memchr(tail, '\0', 17) == NULL || tail[17] != 'X')
        fz_fail("the tail does not fit its 17 bytes");
    char *line = smx_expect_last_line(&m);
    if (line) {
        size_t ll = strlen(line);
        if (ll == 0 || strchr(line, '\n') || line[0] == ' ' || line[ll - 1] == ' ')
            fz_fail("prompt line \"%s\" is not one trimmed line", line);
        free(line);
    }
    smx_expect_free(&m);
    return r;
}

static void same(const char *regex, const char *in, size_t n, size_t step)
{
    run a = feed(regex, in, n, step), b = feed(regex, in, n, n ? n : 1);
    if (a.matched != b.matched || a.len != b.len || memcmp(a.out, b.out, a.len) != 0)
        fz_fail("/%s/ in chunks of %zu: matched %d, %zu bytes; at once: matched %d, %zu bytes",
                regex, step, a.matched, a.len, b.matched, b.len);
    free(a.out);
    free(b.out);
}

static void script_line(const char *in, size_t n)
{
    smx_expect_script s = {0};
    smx_err err = {{0}};
    int rc = smx_expect_script_add_json(&s, in, n, &err);
    if (rc < 0 && (s.nsteps != 0 || err.msg[0] == '\0'))
        fz_fail("a refused line added %zu steps or said nothing (\"%s\")", s.nsteps, err.msg);
    if (rc == 0 && s.nsteps > 1)
        fz_fail("one line added %zu steps", s.nsteps);
    if (rc == 0 && s.nsteps == 1) {
        const smx_expect_step *st = &s.steps[0];
        if (!st->send && !st->expect)
            fz_fail("a step with nothing to send or expect");
        if (st->timeout_ms < 0)
            fz_fail("timeout %d ms", st->timeout_ms);
        smx_expect_opts o = {.steps = s.steps, .nsteps = 1};
        if (smx_expect_opts_check(&o, &err) < 0)
            fz_fail("an accepted step's regex does not compile: %s", err.msg);
    }
    smx_expect_script_free(&s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Byte 0: the chunk size (1 to 40); the rest: the output, and a script line. */
    size_t step = size ? data[0] % 40 + 1 : 1, n = size ? size - 1 : 0;
    const char *in = size ? (const char *)data + 1 : "";
    same("QZQ", in, n, step);      /* the first occurrence after the echo */
    same("\x1b", in, n, step);     /* never found: the cleaner removes ESC */
    script_line(in, n);
    return 0;
}
