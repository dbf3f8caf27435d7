/* One SSH connection as an explicit state machine on the loop:
 *
 *   PREPARE (resolve) -> WAIT_SLOT (handshake gate per server) -> CONNECT (TCP or other
 *   transport) -> HANDSHAKE (banner + kex; the host key is checked when it ends) -> AUTH ->
 *   READY -> CLOSING -> CLOSED
 *
 * plus BACKOFF, entered when the server dropped us before/during the banner (MaxStartups): the
 * attempt is torn down and retried from PREPARE after a jittered delay. Nothing here blocks: every
 * libssh call is non-blocking and re-called from the fd watcher until it stops returning AGAIN.
 * Jobs (exec, forwarding, ...) sit on top through smx_session_handler. */
#ifndef SSHMUX_SESSION_H
#define SSHMUX_SESSION_H

#include <libssh/libssh.h>
#include <stdint.h>
#include <uv.h>

#include "auth.h"
#include "ctx.h"
#include "gate.h"
#include "list.h"
#include "result.h"
#include "sshconfig.h"
#include "transport.h"

typedef struct smx_session smx_session;

enum smx_session_state {
    SMX_SESSION_NEW,
    SMX_SESSION_PREPARE,
    SMX_SESSION_WAIT_SLOT,
    SMX_SESSION_CONNECT,
    SMX_SESSION_HANDSHAKE,
    SMX_SESSION_AUTH,
    SMX_SESSION_READY,
    SMX_SESSION_BACKOFF,
    SMX_SESSION_CLOSING,
    SMX_SESSION_CLOSED
};

typedef struct smx_session_handler {
    /* Authenticated: open channels now. */
    void (*ready)(smx_session *s);
    /* Called on every wakeup in READY: drive pending channel calls, then smx_session_poll. */
    void (*step)(smx_session *s);
    /* The session failed (s->result has stage and message) or was closed; it is about to be
     * torn down: release channels. Called once. */
    void (*ended)(smx_session *s);
    /* Memory may be freed now. */
    void (*closed)(smx_session *s);
} smx_session_handler;

struct smx_session {
    smx_ctx *ctx;
    const smx_session_handler *handler;
    void *data;                       /* the job's */
    const smx_hostcfg *hc;            /* owned by the caller, outlives the session */
    const char *password;             /* per-target password (ssh:// URL) or NULL */

    enum smx_session_state state;
    ssh_session ssh;
    ssh_event event;
    smx_transport *transport;
    smx_gate *gate;
    smx_gate_waiter gate_waiter;
    int holds_slot;
    smx_auth auth;

    uv_timer_t timer;                 /* the current phase's timeout, or the backoff delay */
    uv_timer_t keepalive;             /* ServerAliveInterval: due at last_rx + k x interval */
    uv_idle_t deferred;               /* a step due on the next loop turn (smx_session_defer_step) */
    int handles_open;                 /* uv handles still to close before `closed` */
    /* Liveness: libssh counts every byte it reads from the socket, wherever it reads it (in a
     * step, in a channel call, while sending a keepalive); a change of that count since the last
     * look means the server spoke. uv readable wakeups miss what libssh read on its own. */
    struct ssh_counter_struct rx;     /* socket counter handed to libssh (ssh_set_counters) */
    uint64_t rx_seen;                 /* rx.in_bytes when last looked at */
    uint64_t last_rx;                 /* uv_now when rx.in_bytes was last seen to grow */
    int keepalive_pending;            /* a keepalive queued or unanswered */
    smx_list globalreqs;              /* global requests, the head one in flight (globalreq.c) */
    int keepalive_rounds;             /* intervals that ended in silence since last_rx */
    int hostkey_changed;              /* key accepted despite a change: no secrets for it */
    int in_step;                      /* re-entrancy guard for smx_session_close */
    int close_requested;

    uint64_t t_start, t_phase;        /* uv_hrtime() marks */
    smx_result *result;               /* owned by the job; the session fills connection fields */
};

int smx_session_init(smx_session *s, smx_ctx *ctx, const smx_hostcfg *hc,
                     const smx_session_handler *handler, void *data, smx_result *result);
void smx_session_start(smx_session *s);
/* Processes incoming packets without a pending call (channel callbacks fire from here). Drains up
 * to a budget of reads so one busy session cannot starve the loop. Returns <0 if the connection
 * died. */
int smx_session_poll(smx_session *s);
/* Records the failure (first one wins) and closes. */
void smx_session_fail(smx_session *s, enum smx_stage stage, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* The connection died after setup (stage exec): says why from the transport when it knows
 * (jump hop, ProxyCommand), else from libssh. `during` is appended to "connection lost". */
void smx_session_fail_lost(smx_session *s, const char *during);
/* Polite close: disconnect, release everything, then handler->closed. Safe to call from inside
 * handler callbacks (deferred until the current step returns). */
void smx_session_close(smx_session *s);

const char *smx_session_state_name(enum smx_session_state st);
/* A trace line on stderr at -vv: "host: [state] message". */
void smx_session_trace(const smx_session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
const char *smx_hostcfg_agent_socket(const smx_hostcfg *hc);
double smx_ms_since(uint64_t hr_start);



/* Watches for writability if libssh has bytes queued (after writes made outside a step). */
void smx_session_sync_watch(smx_session *s);
/* Restarts the auth timeout (after waiting for the operator, which does not count). */
void smx_session_restart_auth_clock(smx_session *s);
/* Stops it while the operator is being asked. */
void smx_session_pause_auth_clock(smx_session *s);

/* Runs one step as if the fd had woken us (after a job changed state on its own, e.g. a timer). */
void smx_session_kick(smx_session *s);
/* Runs one step on the next loop turn. For news that libssh took off the socket outside a step
 * (any channel call may process incoming packets): the fd will not wake us for it again. */
void smx_session_defer_step(smx_session *s);
#endif
