/* Asking the operator on the controlling terminal without stopping the loop: keyboard-interactive
 * questions (2FA codes) arrive while thousands of sessions are in flight, and those must go on
 * while a person types. One question set at a time; answers are read from /dev/tty through a
 * uv_poll, with echo off for hidden prompts. */
#ifndef SSHMUX_TTYPROMPT_H
#define SSHMUX_TTYPROMPT_H

#include <uv.h>

#include "strvec.h"

typedef struct smx_prompter smx_prompter;
/* answers: one per prompt, or NULL when there is no terminal, the read failed or timed out.
 * The callee may keep the strings (steal them from the vector) and must wipe what it frees. */
typedef void (*smx_prompt_cb)(void *ud, smx_strvec *answers);

/* NULL if the process has no controlling terminal. */
smx_prompter *smx_prompter_new(uv_loop_t *loop, int timeout_ms);
/* Queues a question set: header (name/instruction lines, may be empty), prompts[n] with echo[n]. */
int smx_prompter_ask(smx_prompter *p, const char *header, const char *const *prompts,
                     const char *echo, int n, smx_prompt_cb cb, void *ud);
/* Cancels what is queued (callbacks get NULL), restores the terminal, frees p once handles close. */
void smx_prompter_free(smx_prompter *p);

#endif
