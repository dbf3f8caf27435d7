/* sudo's prompt filter (core/apps/sudo.c) over remote command output, which anyone on the host
 * can shape. The input is split into chunks (the first byte sets their size, as reads off a
 * channel do) and the result must equal a plain reference: every marker removed (leftmost
 * first), with the carriage returns and the one newline right after it; prompts counted. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "sudo.h"

#define MARK "[sshmux-sudo-00ff00ff00ff00ff]:"

typedef struct sink {
    char *buf;
    size_t len;
} sink;

static void collect(void *ud, const char *p, size_t n)
{
    sink *s = ud;
    memcpy(s->buf + s->len, p, n);
    s->len += n;
}

static size_t reference(const char *in, size_t n, char *out, int *prompts)
{
    size_t mlen = strlen(MARK), o = 0, i = 0;
    *prompts = 0;
    while (i < n) {
        if (n - i >= mlen && memcmp(in + i, MARK, mlen) == 0) {
            (*prompts)++;
            i += mlen;
            while (i < n && in[i] == '\r')
                i++;
            if (i < n && in[i] == '\n')
                i++;
            continue;
        }
        out[o++] = in[i++];
    }
    return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t step = data[0] % 40 + 1;
    const char *in = (const char *)data + 1;
    size_t n = size - 1;
    char *got = malloc(n + 1), *want = malloc(n + 1);
    sink s = {got, 0};
    smx_sudo_filter f;
    smx_sudo_filter_init(&f, MARK);
    int prompts = 0;
    for (size_t off = 0; off < n; off += step)
        prompts += smx_sudo_filter_feed(&f, in + off, off + step <= n ? step : n - off, collect,
                                        &s);
    smx_sudo_filter_flush(&f, collect, &s);
    int want_prompts;
    size_t wlen = reference(in, n, want, &want_prompts);
    if (prompts != want_prompts)
        fz_fail("%d prompts seen, %d in the input", prompts, want_prompts);
    if (s.len != wlen || memcmp(got, want, wlen) != 0)
        fz_fail("filtered output differs from the reference (%zu vs %zu bytes)", s.len, wlen);
    free(got);
    free(want);
    return 0;
}
