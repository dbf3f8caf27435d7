/* sudo under exec: the command line that runs a command under `sudo -S` with a prompt of our own
 * (a marker no command prints), and a filter that finds that prompt in a stream of output and
 * removes it, across any split of the stream into chunks. Pure logic: no I/O. */
#ifndef SSHMUX_SUDO_H
#define SSHMUX_SUDO_H

#include <stddef.h>

#define SMX_SUDO_MARKER_MAX 48

typedef void (*smx_sudo_emit_fn)(void *ud, const char *p, size_t n);

typedef struct smx_sudo_filter {
    char marker[SMX_SUDO_MARKER_MAX];
    size_t mlen;
    size_t matched;        /* bytes of the marker matched at the end of what came so far */
    int after_prompt;      /* drop a line end that follows the prompt (the echo of our Enter) */
} smx_sudo_filter;

/* A marker unique to this process ("[sshmux-sudo-<hex>]:"), for -p. */
void smx_sudo_marker(char out[SMX_SUDO_MARKER_MAX]);
void smx_sudo_filter_init(smx_sudo_filter *f, const char *marker);
/* Passes on everything but the prompts (emit may run several times); returns how many prompts
 * ended in this chunk. Bytes that may begin a prompt are held until the next chunk shows
 * whether they do. */
int smx_sudo_filter_feed(smx_sudo_filter *f, const char *p, size_t n, smx_sudo_emit_fn emit,
                         void *ud);
/* The stream ended: held bytes were not a prompt after all. */
void smx_sudo_filter_flush(smx_sudo_filter *f, smx_sudo_emit_fn emit, void *ud);
/* "sudo -S -p 'MARKER' [-u 'USER'] -- sh -c 'CMD'", single-quoted for a POSIX shell: malloc'd,
 * NULL on ENOMEM. */
char *smx_sudo_command(const char *cmd, const char *user, const char *marker);
/* Whether sudo's message for sudoers' requiretty is in this output. */
int smx_sudo_wants_tty(const char *p, size_t n);

#endif
