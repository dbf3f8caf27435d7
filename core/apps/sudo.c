#include "sudo.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

void smx_sudo_marker(char out[SMX_SUDO_MARKER_MAX])
{
    /* Random so that no command's output (or a hostile one's) can fake our prompt. */
    unsigned char rnd[8];
    if (uv_random(NULL, NULL, rnd, sizeof rnd, 0, NULL) != 0)
        for (size_t i = 0; i < sizeof rnd; i++)
            rnd[i] = (unsigned char)(rand() ^ getpid());
    char hex[2 * sizeof rnd + 1];
    for (size_t i = 0; i < sizeof rnd; i++)
        snprintf(hex + 2 * i, 3, "%02x", rnd[i]);
    snprintf(out, SMX_SUDO_MARKER_MAX, "[sshmux-sudo-%s]:", hex);
}

void smx_sudo_filter_init(smx_sudo_filter *f, const char *marker)
{
    memset(f, 0, sizeof *f);
    snprintf(f->marker, sizeof f->marker, "%s", marker);
    f->mlen = strlen(f->marker);
}

/* The bytes held are always a prefix of the marker, so a failed match gives back exactly
 * marker[0..matched); the marker's first byte, '[', occurs nowhere else in it, so a real prompt
 * can only start at the byte that broke a match or later. */
int smx_sudo_filter_feed(smx_sudo_filter *f, const char *p, size_t n, smx_sudo_emit_fn emit,
                         void *ud)
{
    int prompts = 0;
    size_t run = 0;   /* start of the bytes passed on as they are */
    for (size_t i = 0; i < n; i++) {
        char ch = p[i];
        if (f->after_prompt && f->matched == 0 && (ch == '\r' || ch == '\n')) {
            if (i > run)
                emit(ud, p + run, i - run);
            run = i + 1;   /* the line end after our answer is not output */
            if (ch == '\n')
                f->after_prompt = 0;
            continue;
        }
        f->after_prompt = 0;
        if (f->matched && ch != f->marker[f->matched]) {
            emit(ud, f->marker, f->matched);   /* not a prompt after all */
            f->matched = 0;
            run = i;
        }
        if (ch != f->marker[f->matched])
            continue;   /* an ordinary byte of the run */
        if (f->matched == 0 && i > run)
            emit(ud, p + run, i - run);
        run = i + 1;
        if (++f->matched == f->mlen) {
            prompts++;
            f->matched = 0;
            f->after_prompt = 1;
        }
    }
    if (n > run)
        emit(ud, p + run, n - run);
    return prompts;
}

void smx_sudo_filter_flush(smx_sudo_filter *f, smx_sudo_emit_fn emit, void *ud)
{
    if (f->matched)
        emit(ud, f->marker, f->matched);
    f->matched = 0;
}

/* 'text' with each ' written as '\'' : one word for any POSIX shell. */
static size_t sudo_quote(char *out, const char *s)
{
    size_t n = 0;
    out[n++] = '\'';
    for (; *s; s++) {
        if (*s == '\'') {
            memcpy(out + n, "'\\''", 4);
            n += 4;
        } else {
            out[n++] = *s;
        }
    }
    out[n++] = '\'';
    return n;
}

char *smx_sudo_command(const char *cmd, const char *user, const char *marker)
{
    size_t need = 64 + 4 * (strlen(cmd) + strlen(marker) + (user ? strlen(user) : 0));
    char *out = malloc(need);
    if (!out)
        return NULL;
    size_t n = 0;
    n += (size_t)sprintf(out + n, "sudo -S -p ");
    n += sudo_quote(out + n, marker);
    if (user) {
        n += (size_t)sprintf(out + n, " -u ");
        n += sudo_quote(out + n, user);
    }
    n += (size_t)sprintf(out + n, " -- sh -c ");
    n += sudo_quote(out + n, cmd);
    out[n] = '\0';
    return out;
}

int smx_sudo_wants_tty(const char *p, size_t n)
{
    static const char msg[] = "must have a tty";
    const char *end = p + n;
    for (const char *q = p; q && end - q >= (long)sizeof msg - 1;
         q = memchr(q + 1, 'm', (size_t)(end - q - 1)))
        if (memcmp(q, msg, sizeof msg - 1) == 0)
            return 1;
    return 0;
}
