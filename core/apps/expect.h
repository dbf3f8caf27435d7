/* send/expect: what one step of a script saw, and whether it is over. Output bytes from a PTY go
 * in as they arrive (any split); they come out as text without ANSI escape sequences, carriage
 * returns, NULs and BELs; the echo of what the step sent is recognised at the start, and the
 * step ends when its regex is found in what follows the echo, or (no regex) when that ends with
 * the shell's prompt. Pure logic: no I/O (core/engine/job_expect.c drives it). */
#ifndef SSHMUX_EXPECT_H
#define SSHMUX_EXPECT_H

#include <regex.h>
#include <stddef.h>

#include "result.h"

#define SMX_EXPECT_TAIL 200   /* raw bytes kept for a failed step's message */

enum smx_expect_echo { SMX_ECHO_PENDING, SMX_ECHO_FOUND, SMX_ECHO_ABSENT };

typedef struct smx_expect_matcher {
    /* The cleaner: where an escape sequence being skipped is. */
    int esc;
    size_t esc_len;
    smx_buf text;                  /* the step's cleaned output so far */
    size_t max;                    /* text kept at most (the first max bytes) */
    int truncated;
    char tail[SMX_EXPECT_TAIL];    /* the last raw bytes seen in this step (a ring) */
    size_t tail_n, tail_at;
    /* The step. */
    char *echo;                    /* what was sent, cleaned, without its last newline */
    size_t echo_len;
    enum smx_expect_echo echo_state;
    size_t body;                   /* text[body..] follows the echo */
    regex_t re;
    int have_re;
    int re_lines;                  /* the regex cannot match across a line end */
    size_t scan_from;              /* a line start: no match begins before it */
    char *prompt;                  /* without a regex: the prompt (trimmed), else NULL */
    int matched;
    size_t match_end;              /* regex: text[body..match_end) is the output */
    smx_buf out;                   /* the output, made by smx_expect_output */
} smx_expect_matcher;

void smx_expect_init(smx_expect_matcher *m, size_t max);
void smx_expect_free(smx_expect_matcher *m);
/* A new step: sent (may be NULL) is what was written, regex (POSIX ERE, REG_NEWLINE) or NULL,
 * prompt used without a regex (NULL: the step never matches: it only collects). 0, SMX_EINVAL
 * (the regex does not compile: regcomp's reason) or SMX_ENOMEM. */
int smx_expect_begin(smx_expect_matcher *m, const char *sent, const char *regex,
                     const char *prompt, smx_err *err);
/* Bytes as they arrived. 1 once the step matched (bytes after the match are ignored), else 0. */
int smx_expect_feed(smx_expect_matcher *m, const char *p, size_t n);
/* The step's output: after the echo; with a regex up to the end of the match; without one,
 * up to the trailing prompt; a step that did not match, everything after the echo. Borrowed
 * from m until the next call. */
const char *smx_expect_output(smx_expect_matcher *m, size_t *len);
/* The last raw bytes seen (at most SMX_EXPECT_TAIL) in C escapes (\r, \n, \x1b, \\, \", bytes
 * past ASCII as \xNN): for messages. A NUL-terminated string of at most cap bytes: when they
 * do not all fit, the newest. */
void smx_expect_tail(const smx_expect_matcher *m, char *out, size_t cap);
/* The prompt as netmiko's find_prompt takes it: the last non-empty line of the text, without
 * the spaces around it. malloc'd; NULL when there is none (or on ENOMEM). */
char *smx_expect_last_line(const smx_expect_matcher *m);

#endif
