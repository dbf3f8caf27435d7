/* keyboard-interactive: answers are shared across the fleet. The first host that asks a set of
 * prompts (same name, instruction and prompt texts) gets them answered (from the password for a
 * lone "Password:" prompt, else by the operator); every later host asking the same is answered
 * from memory, so a 2FA code is typed once for the whole run. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth.h"
#include "ctx.h"
#include "session.h"
#include "ttyprompt.h"

#define KBDINT_MAX_ROUNDS 8

typedef struct kbd_answer {
    struct kbd_answer *next;
    char *key;               /* name \n instruction \n prompts... */
    smx_strvec answers;      /* secrets: wiped on free */
} kbd_answer;

/* A question set put to the operator; every session asking the same waits on it. */
typedef struct smx_kbd_wait {
    struct smx_kbd_wait *next;
    smx_kbd *kbd;
    char *key;
    smx_list waiters;        /* sessions (auth.kbd_node) */
} smx_kbd_wait;

struct smx_kbd {
    uv_loop_t *loop;
    int interactive, prompt_timeout_ms;
    kbd_answer *answers;
    smx_kbd_wait *waits;
    smx_prompter *prompter;  /* made when first needed */
    int prompter_tried;
};

smx_kbd *smx_kbd_new(uv_loop_t *loop, int interactive, int prompt_timeout_ms)
{
    smx_kbd *k = calloc(1, sizeof *k);
    if (k) {
        k->loop = loop;
        k->interactive = interactive;
        k->prompt_timeout_ms = prompt_timeout_ms;
    }
    return k;
}

void smx_kbd_free(smx_kbd *k)
{
    if (!k)
        return;
    kbd_answer *a = k->answers;
    while (a) {
        kbd_answer *next = a->next;
        smx_strvec_free_wipe(&a->answers);
        free(a->key);
        free(a);
        a = next;
    }
    smx_prompter_free(k->prompter);
    free(k);
}

static const smx_strvec *kbd_lookup(smx_kbd *k, const char *key)
{
    for (kbd_answer *a = k->answers; a; a = a->next)
        if (strcmp(a->key, key) == 0)
            return &a->answers;
    return NULL;
}

static int kbd_store(smx_kbd *k, const char *key, const smx_strvec *answers)
{
    kbd_answer *a = calloc(1, sizeof *a);
    if (!a || !(a->key = strdup(key))) {
        free(a);
        return SMX_ENOMEM;
    }
    for (size_t i = 0; i < answers->n; i++)
        smx_strvec_push(&a->answers, answers->v[i]);
    a->next = k->answers;
    k->answers = a;
    return 0;
}

/* name \n instruction \n prompt... : what makes two hosts' questions "the same". */
static char *kbdint_key(ssh_session ssh, int n)
{
    const char *name = ssh_userauth_kbdint_getname(ssh);
    const char *instr = ssh_userauth_kbdint_getinstruction(ssh);
    size_t len = strlen(name ? name : "") + strlen(instr ? instr : "") + 3;
    for (int i = 0; i < n; i++)
        len += strlen(ssh_userauth_kbdint_getprompt(ssh, (unsigned)i, NULL)) + 1;
    char *key = malloc(len);
    if (!key)
        return NULL;
    int off = snprintf(key, len, "%s\n%s", name ? name : "", instr ? instr : "");
    for (int i = 0; i < n; i++)
        off += snprintf(key + off, len - (size_t)off, "\n%s",
                        ssh_userauth_kbdint_getprompt(ssh, (unsigned)i, NULL));
    return key;
}

/* A lone hidden prompt that asks for a password is answered with the password we were given
 * (PAM's "Password: " is how most sshd configs do keyboard-interactive). */
static int kbdint_is_password_prompt(ssh_session ssh, int n)
{
    if (n != 1)
        return 0;
    char echo = 0;
    const char *p = ssh_userauth_kbdint_getprompt(ssh, 0, &echo);
    return p && !echo && strcasestr(p, "password");
}

static int kbdint_set_answers(smx_session *s, const smx_strvec *answers)
{
    for (size_t i = 0; i < answers->n; i++)
        if (ssh_userauth_kbdint_setanswer(s->ssh, (unsigned)i, answers->v[i]) < 0)
            return -1;
    return 0;
}

static int kbdint_wait_for_operator(smx_session *s, const char *key, int n);

/* Returns 1 when answers were set, 0 when nobody can answer, 2 when the operator is asked. */
static int kbdint_answer(smx_session *s, int n)
{
    if (n == 0)
        return 1;
    char *key = kbdint_key(s->ssh, n);
    if (!key)
        return 0;
    const smx_strvec *known = kbd_lookup(s->ctx->kbd, key);
    int answered = 0;
    if (known && (int)known->n == n) {
        answered = kbdint_set_answers(s, known) == 0;
    } else if (kbdint_is_password_prompt(s->ssh, n)) {
        const char *pw = s->password ? s->password : s->ctx->password.s;
        if (pw && !s->auth.password_tried) {
            /* One password try per host, across password and kbd-interactive: a wrong password
             * must not be replayed into a lockout. */
            s->auth.password_tried = 1;
            answered = ssh_userauth_kbdint_setanswer(s->ssh, 0, pw) == 0;
        }
    }
    if (!answered)
        answered = kbdint_wait_for_operator(s, key, n);
    free(key);
    return answered;
}

/* ---- asking the operator once for the whole fleet --------------------------------------- */

static void kbdint_on_answers(void *ud, smx_strvec *answers)
{
    smx_kbd_wait *w = ud;
    smx_kbd *k = w->kbd;
    if (answers)
        kbd_store(k, w->key, answers);
    for (smx_kbd_wait **pp = &k->waits; *pp; pp = &(*pp)->next) {
        if (*pp == w) {
            *pp = w->next;
            break;
        }
    }
    /* Detached first: a kick may end another waiting session (it leaves this batch). */
    smx_list batch;
    smx_list_init(&batch);
    smx_list_splice(&batch, &w->waiters);
    while (!smx_list_empty(&batch)) {
        smx_session *s = smx_list_entry(batch.next, smx_session, auth.kbd_node);
        smx_list_remove(&s->auth.kbd_node);
        s->auth.kbd_wait = NULL;
        smx_session_trace(s, "operator %s", answers ? "answered" : "gave no answer");
        const smx_strvec *known = answers ? kbd_lookup(k, w->key) : NULL;
        if (known && kbdint_set_answers(s, known) == 0) {
            s->auth.state = SMX_AUTH_KBDINT;   /* the next step sends them */
        } else {
            s->auth.state = SMX_AUTH_NEXT;     /* no answer: on to the next method */
        }
        smx_session_restart_auth_clock(s);
        smx_session_kick(s);
    }
    free(w->key);
    free(w);
}

static int kbdint_ask(smx_session *s, smx_kbd_wait *w, int n)
{
    smx_kbd *k = s->ctx->kbd;
    const char *name = ssh_userauth_kbdint_getname(s->ssh);
    const char *instr = ssh_userauth_kbdint_getinstruction(s->ssh);
    char header[1024];
    snprintf(header, sizeof header, "%s%s%s%s(keyboard-interactive for %s; the answers will be "
             "reused for every host that asks the same)", name && *name ? name : "",
             name && *name ? "\n" : "", instr && *instr ? instr : "",
             instr && *instr ? "\n" : "", s->result->host);
    const char *prompts[16];
    char echo[16];
    for (int i = 0; i < n; i++)
        prompts[i] = ssh_userauth_kbdint_getprompt(s->ssh, (unsigned)i, &echo[i]);
    return smx_prompter_ask(k->prompter, header, prompts, echo, n, kbdint_on_answers, w);
}

static int kbdint_wait_for_operator(smx_session *s, const char *key, int n)
{
    smx_kbd *k = s->ctx->kbd;
    if (!k->interactive || s->hc->batchmode || n > 16)
        return 0;
    if (!k->prompter && !k->prompter_tried) {
        k->prompter_tried = 1;
        k->prompter = smx_prompter_new(k->loop, k->prompt_timeout_ms);
    }
    if (!k->prompter)
        return 0;
    smx_kbd_wait *w = k->waits;
    while (w && strcmp(w->key, key) != 0)
        w = w->next;
    if (!w) {
        w = calloc(1, sizeof *w);
        if (!w || !(w->key = strdup(key))) {
            free(w);
            return 0;
        }
        w->kbd = k;
        smx_list_init(&w->waiters);
        if (kbdint_ask(s, w, n) < 0) {
            free(w->key);
            free(w);
            return 0;
        }
        w->next = k->waits;
        k->waits = w;
    }
    s->auth.kbd_wait = w;
    smx_list_append(&w->waiters, &s->auth.kbd_node);
    s->auth.state = SMX_AUTH_KBDINT_WAIT;
    smx_session_pause_auth_clock(s);
    smx_session_trace(s, "waiting for the operator");
    return 2;
}

void smx_kbdint_cancel_wait(smx_session *s)
{
    smx_kbd_wait *w = s->auth.kbd_wait;
    if (!w)
        return;
    smx_list_remove(&s->auth.kbd_node);
    s->auth.kbd_wait = NULL;
}

int smx_kbdint_step(smx_session *s, int rc)
{
    smx_auth *a = &s->auth;
    smx_session_trace(s, "keyboard-interactive: libssh says %d (round %d)", rc, a->kbd_rounds);
    if (rc != SSH_AUTH_INFO)
        return smx_auth_method_done(s, rc, "keyboard-interactive");
    if (++a->kbd_rounds > KBDINT_MAX_ROUNDS)
        return smx_auth_method_done(s, SSH_AUTH_DENIED, "keyboard-interactive");
    int n = ssh_userauth_kbdint_getnprompts(s->ssh);
    int answered = n < 0 ? 0 : kbdint_answer(s, n);
    if (!answered)
        return smx_auth_method_done(s, SSH_AUTH_DENIED, "keyboard-interactive");
    if (answered == 2)
        return 0;   /* waiting for the operator; kbdint_on_answers resumes us */
    a->state = SMX_AUTH_KBDINT;
    return smx_kbdint_step(s, ssh_userauth_kbdint(s->ssh, NULL, NULL));
}
