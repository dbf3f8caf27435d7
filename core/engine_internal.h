/* What sessions, auth and jobs share within one run: the loop, the resolver cache, the handshake
 * gates, loaded keys, secrets, known_hosts caches and options. One per smx_engine; no globals. */
#ifndef SSHMUX_ENGINE_INTERNAL_H
#define SSHMUX_ENGINE_INTERNAL_H

#include <uv.h>

#include "sshmux.h"
#include "gate.h"
#include "keyring.h"
#include "resolver.h"

typedef struct smx_kbd_answer {
    struct smx_kbd_answer *next;
    char *key;               /* name \n instruction \n prompts... */
    smx_strvec answers;      /* secrets: wiped on free */
} smx_kbd_answer;

/* A question set put to the operator; every session asking the same waits on it. */
typedef struct smx_kbd_wait {
    struct smx_kbd_wait *next;
    struct smx_engine *engine;
    char *key;
    struct smx_session *waiters;
} smx_kbd_wait;

typedef struct smx_kh_entry {
    struct smx_kh_entry *next;
    char *files_key;         /* the UserKnownHostsFile list joined with \n */
    struct smx_knownhosts *kh;
} smx_kh_entry;

typedef struct smx_job smx_job;

struct smx_engine {
    uv_loop_t *loop;
    smx_engine_opts opts;
    smx_resolver *resolver;
    smx_gates *gates;
    smx_keyring *keyring;
    smx_secret password;
    int use_agent;
    smx_kbd_answer *kbd_answers;
    smx_kh_entry *knownhosts;
    unsigned hostkey_unverified;   /* StrictHostKeyChecking=no acceptances, for the summary */
    unsigned hostkey_added;

    smx_job *queue_head, *queue_tail;   /* not yet started */
    smx_job *running_head;              /* started, not yet done */
    int running;
    int total, finished;
    struct smx_prompter *prompter;
    int prompter_tried;
    const smx_config *config;           /* for resolving jump hops (set by the client) */
    smx_config *owned_config;           /* the empty one made when the client set none */
    struct smx_jumphost *jumphosts;     /* open jump connections, by chain */
    struct smx_agent *agents;           /* ssh-agent connections, by socket path */
    smx_jump_overrides jump_ov;         /* credentials for the first hop (--proxy-*) */
    smx_kbd_wait *kbd_waits;
};

/* core/hostkey.c: verifies the server key of an established session against known_hosts per the
 * host's StrictHostKeyChecking; 0 or a negative code with the message in the session's result. */
struct smx_session;
int smx_hostkey_verify(smx_engine *e, struct smx_session *s);
void smx_engine_knownhosts_free(smx_engine *e);

/* The transport a session with these settings connects through: ProxyJump, ProxyCommand or
 * direct TCP. NULL with err set on failure. */
struct smx_transport *smx_engine_make_transport(smx_engine *e, const smx_hostcfg *hc,
                                                smx_err *err);

/* core/engine.c: a job slot became free / a job finished. */
void smx_engine_job_done(smx_engine *e, smx_job *job);

/* kbd-interactive answers shared across the fleet (core/kbdint.c). */
const smx_strvec *smx_kbd_lookup(smx_engine *e, const char *key);
int smx_kbd_store(smx_engine *e, const char *key, const smx_strvec *answers);
void smx_kbd_free_all(smx_engine *e);

#endif
