/* Client authentication as a sub-state machine of a session. Order, as ssh unless
 * PreferredAuthentications says otherwise: publickey (configured key files, --key-env content,
 * ssh-agent, then the default ~/.ssh/id_* keys), keyboard-interactive, password. Private keys are
 * loaded once per run before the loop starts (core/trust/keyring.c), so no disk or passphrase prompt is
 * on the loop's path. */
#ifndef SSHMUX_AUTH_H
#define SSHMUX_AUTH_H

#include <stddef.h>

#include <uv.h>

#include "agent.h"
#include "list.h"

enum smx_auth_state {
    SMX_AUTH_START,
    SMX_AUTH_NONE,          /* "none" pending: learns the server's methods (and may succeed) */
    SMX_AUTH_NEXT,          /* pick the next method / key */
    SMX_AUTH_PUBKEY,        /* ssh_userauth_publickey pending */
    SMX_AUTH_AGENT_LIST,    /* waiting for the agent's identity list */
    SMX_AUTH_AGENT_TRY,     /* ssh_userauth_try_publickey pending for agent identity agent_idx */
    SMX_AUTH_AGENT_TOSIGN,  /* ssh_userauth_publickey_tosign pending (service request) */
    SMX_AUTH_AGENT_SIGNING, /* waiting for the agent's signature */
    SMX_AUTH_AGENT_SEND,    /* ssh_userauth_publickey_signed pending */
    SMX_AUTH_PASSWORD,      /* ssh_userauth_password pending */
    SMX_AUTH_KBDINT,        /* ssh_userauth_kbdint pending */
    SMX_AUTH_KBDINT_WAIT,   /* waiting for the operator to answer prompts */
    SMX_AUTH_OK,
    SMX_AUTH_FAILED
};

enum smx_auth_method {
    SMX_AM_PUBKEY = 1,
    SMX_AM_KBDINT,
    SMX_AM_PASSWORD
};

typedef struct smx_auth {
    enum smx_auth_state state;
    int methods[4];
    int nmethods;
    int method_pos;         /* index of the method being tried */
    int key_pos;            /* next public key candidate within SMX_AM_PUBKEY */
    struct smx_agent *agent;           /* the ssh-agent in use (engine-owned) */
    int agent_idx;                     /* its identity being tried */
    smx_agent_waiter agent_w;
    unsigned char *agent_sig;          /* the agent's signature, until sent */
    size_t agent_siglen;
    int allowed;            /* SSH_AUTH_METHOD_* bitmask the server offers */
    int kbd_rounds;
    int password_tried;
    void *pending_key;      /* ssh_key of the pending publickey attempt (owned by the keyring) */
    struct smx_kbd_wait *kbd_wait;     /* the operator question this session waits on */
    smx_list kbd_node;                 /* on that question's waiters */
    int withheld;           /* 1: password and keyboard-interactive dropped (smx_auth_withhold) */
    char used[32];          /* method that succeeded */
    char tried[96];         /* what we tried, for the error message */
} smx_auth;

struct smx_session;
/* Returns 1 when authenticated, 0 while pending (call again on the next wakeup), or a negative
 * SMX_* code after recording the failure in the session's result. */
int smx_auth_step(struct smx_session *s);
void smx_auth_init(smx_auth *a, const char *preferred, int pubkey, int kbdint, int password);
/* After smx_auth_init, for a server whose changed host key was accepted (StrictHostKeyChecking
 * no): as ssh, no password and no keyboard-interactive answers for a possible man in the middle;
 * public keys may still be tried (they prove nothing a MITM could replay elsewhere). The failure
 * message says why. */
void smx_auth_withhold_secrets(smx_auth *a);
/* The keyboard-interactive answers and operator questions shared by a run's sessions. */
typedef struct smx_kbd smx_kbd;
smx_kbd *smx_kbd_new(uv_loop_t *loop, int interactive, int prompt_timeout_ms);
void smx_kbd_free(smx_kbd *k);

/* ssh/kbdint.c: handles an answer of ssh_userauth_kbdint (fleet-shared answers, password reuse,
 * operator prompts). Same return convention as smx_auth_step. */
int smx_kbdint_step(struct smx_session *s, int rc);
/* Session teardown or a new attempt: drop a pending agent request. */
void smx_auth_cancel(struct smx_session *s);
/* Session teardown while waiting for the operator: leave the queue of waiters. */
void smx_kbdint_cancel_wait(struct smx_session *s);
/* For kbdint.c: treat rc as the answer of the pending `method` call (success/denied/partial). */
int smx_auth_method_done(struct smx_session *s, int rc, const char *method);

#endif
