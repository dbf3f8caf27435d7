/* What every session of one run shares: the loop, handshake gates, loaded keys and secrets, and
 * the registries of the modules that keep state across sessions (ssh-agent connections, known_hosts
 * caches, keyboard-interactive answers). Each registry is an opaque pointer owned by its module;
 * nothing here knows about jobs or the engine above.
 *
 * Sessions get their transport from `transport_factory`: the layer that knows about jump hosts
 * and ProxyCommand (the engine) sets it, so this layer depends on no transport. */
#ifndef SSHMUX_CTX_H
#define SSHMUX_CTX_H

#include <uv.h>

#include "error.h"
#include "keyring.h"
#include "sshconfig.h"

struct smx_transport;
struct smx_gates;
struct smx_agents;
struct smx_hostkeys;
struct smx_kbd;

typedef struct smx_ctx_opts {
    int connect_timeout_ms;    /* when the host has no ConnectTimeout; covers TCP+banner+kex */
    int auth_timeout_ms;
    int retries;               /* extra attempts after an early drop (MaxStartups) */
    int interactive;           /* may ask the operator (keyboard-interactive) on /dev/tty */
    int prompt_timeout_ms;
    int verbose;               /* 2+: trace session and auth steps on stderr */
    void (*warn)(void *ud, const char *host, const char *msg);
    void *ud;
} smx_ctx_opts;

/* Makes the transport a session with these settings connects through. NULL with err set. */
typedef struct smx_transport *(*smx_transport_factory)(void *ud, const smx_hostcfg *hc,
                                                        smx_err *err);

typedef struct smx_ctx {
    uv_loop_t *loop;
    smx_ctx_opts opts;
    struct smx_gates *gates;
    smx_keyring *keyring;
    smx_secret password;           /* --password-env & co., for every host */
    int use_agent;
    struct smx_agents *agents;     /* trust/agent.c */
    struct smx_hostkeys *hostkeys; /* ssh/hostkey.c: known_hosts caches and counters */
    struct smx_kbd *kbd;           /* ssh/kbdint.c: shared answers and open questions */
    smx_transport_factory transport_factory;
    void *factory_ud;
    char *ssh_dir;                 /* "$HOME/.ssh" for libssh's SSH_OPTIONS_SSH_DIR, or NULL */
} smx_ctx;

/* 0 or SMX_ENOMEM (then smx_ctx_close frees what was made). */
int smx_ctx_init(smx_ctx *ctx, uv_loop_t *loop, const smx_ctx_opts *o, int handshake_initial,
                 int handshake_max);
/* Closes what may hold the loop open (agent connections); sessions may still be closing. */
void smx_ctx_quiesce(smx_ctx *ctx);
/* Frees everything; no session may be left. */
void smx_ctx_close(smx_ctx *ctx);

#endif
