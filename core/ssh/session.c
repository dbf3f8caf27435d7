#include "session.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "container.h"
#include "ctx.h"
#include "globalreq.h"
#include "hostkey.h"

#define SESSION_DRAIN_BUDGET 32   /* packet reads per wakeup before yielding to other sessions */
#define KEEPALIVE_SLACK_MS 10     /* a timer due after the interval may see it 1 ms short */

static void session_step(smx_session *s);
static void session_begin_attempt(smx_session *s);
static void session_do_close(smx_session *s);

const char *smx_session_state_name(enum smx_session_state st)
{
    switch (st) {
    case SMX_SESSION_NEW: return "new";
    case SMX_SESSION_PREPARE: return "resolve";
    case SMX_SESSION_WAIT_SLOT: return "wait-slot";
    case SMX_SESSION_CONNECT: return "connect";
    case SMX_SESSION_HANDSHAKE: return "handshake";
    case SMX_SESSION_AUTH: return "auth";
    case SMX_SESSION_READY: return "ready";
    case SMX_SESSION_BACKOFF: return "backoff";
    case SMX_SESSION_CLOSING: return "closing";
    case SMX_SESSION_CLOSED: return "closed";
    }
    return "?";
}

void smx_session_trace(const smx_session *s, const char *fmt, ...)
{
    if (s->ctx->opts.verbose < 2)
        return;
    char msg[SMX_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s: [%s] %s\n", s->result->host ? s->result->host : "?",
            smx_session_state_name(s->state), msg);
}

double smx_ms_since(uint64_t hr_start)
{
    return (double)(uv_hrtime() - hr_start) / 1e6;
}

/* One uv handle or transport fewer. Only a closing session finishes here: a retry also closes
 * its dropped attempt's transport, and the session lives on after that. */
static void session_release_handle(smx_session *s)
{
    if (--s->handles_open == 0 && s->state == SMX_SESSION_CLOSING) {
        s->state = SMX_SESSION_CLOSED;
        s->result->t.total = smx_ms_since(s->t_start);
        s->handler->closed(s);
    }
}

static void session_on_handle_closed(uv_handle_t *h)
{
    session_release_handle(h->data);
}

static void session_on_transport_closed(void *data)
{
    session_release_handle(data);
}

int smx_session_init(smx_session *s, smx_ctx *ctx, const smx_hostcfg *hc,
                     const smx_session_handler *handler, void *data, smx_result *result)
{
    memset(s, 0, sizeof *s);
    s->ctx = ctx;
    s->hc = hc;
    s->handler = handler;
    s->data = data;
    s->result = result;
    smx_list_init(&s->globalreqs);
    return 0;
}

/* ---- failure and close ---------------------------------------------------------------- */

static void session_release_slot(smx_session *s, enum smx_gate_outcome outcome)
{
    smx_gate_cancel(&s->gate_waiter);
    if (s->holds_slot) {
        s->holds_slot = 0;
        smx_gate_release(s->gate, outcome);
    }
}

/* Frees libssh's session. It was handed the transport's own fd, which libssh leaves open
 * (SSH_OPTIONS_FD; libssh patch 0032): the transport closes it in its one close path. */
static void session_free_ssh(smx_session *s)
{
    ssh_free(s->ssh);
    s->ssh = NULL;
}

/* Frees this attempt's libssh session and transport; the session itself stays. */
static void session_drop_attempt(smx_session *s)
{
    smx_auth_cancel(s);
    if (s->event) {
        if (s->ssh)
            ssh_event_remove_session(s->event, s->ssh);
        ssh_event_free(s->event);
        s->event = NULL;
    }
    if (s->ssh)
        session_free_ssh(s);
    if (s->transport) {
        smx_transport *t = s->transport;
        s->transport = NULL;
        s->handles_open++;
        smx_transport_close(t, session_on_transport_closed);
    }
}

void smx_session_fail(smx_session *s, enum smx_stage stage, int code, const char *fmt, ...)
{
    if (s->state == SMX_SESSION_CLOSING || s->state == SMX_SESSION_CLOSED)
        return;
    if (s->result->err_stage == SMX_STAGE_NONE) {
        char msg[SMX_MSG_MAX];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        smx_result_set_error(s->result, stage, code, msg);
    }
    smx_session_close(s);
}

void smx_session_close(smx_session *s)
{
    if (s->state == SMX_SESSION_CLOSING || s->state == SMX_SESSION_CLOSED)
        return;
    if (s->in_step) {
        s->close_requested = 1;   /* libssh is on the stack: tear down after it returns */
        return;
    }
    session_do_close(s);
}

/* A session that ends mid-phase still reports the time that phase took (a host that fails at
 * auth after 8 s shows auth: 8000, not 0). */
static void session_account_phase(smx_session *s)
{
    double *phase = NULL;
    switch (s->state) {
    case SMX_SESSION_PREPARE: phase = &s->result->t.resolve; break;
    case SMX_SESSION_CONNECT: phase = &s->result->t.connect; break;
    case SMX_SESSION_HANDSHAKE: phase = &s->result->t.handshake; break;
    case SMX_SESSION_AUTH: phase = &s->result->t.auth; break;
    default: return;
    }
    if (s->t_phase)
        *phase += smx_ms_since(s->t_phase);
}

static void session_do_close(smx_session *s)
{
    s->close_requested = 0;
    session_account_phase(s);
    enum smx_session_state was = s->state;
    s->state = SMX_SESSION_CLOSING;
    smx_kbdint_cancel_wait(s);
    if (s->ssh && was == SMX_SESSION_READY)
        smx_globalreqs_send_unanswered(s);
    smx_globalreqs_fail_all(s);
    if (s->handler->ended)
        s->handler->ended(s);
    if (s->ssh && was == SMX_SESSION_READY)
        ssh_disconnect(s->ssh);   /* best effort DISCONNECT; the fd: session_free_ssh */
    session_release_slot(s, SMX_GATE_NEUTRAL);
    s->handles_open++;            /* guard: transport close may complete synchronously */
    session_drop_attempt(s);
    uv_timer_stop(&s->timer);
    uv_timer_stop(&s->keepalive);
    s->handles_open += 3;
    uv_close((uv_handle_t *)&s->timer, session_on_handle_closed);
    uv_close((uv_handle_t *)&s->keepalive, session_on_handle_closed);
    uv_close((uv_handle_t *)&s->deferred, session_on_handle_closed);
    session_on_transport_closed(s);   /* drops the guard */
}

/* ---- timers --------------------------------------------------------------------------- */

static int session_connect_timeout_ms(const smx_session *s)
{
    if (s->hc->connecttimeout > 0)
        return s->hc->connecttimeout * 1000;
    return s->ctx->opts.connect_timeout_ms;
}

static void session_on_timeout(uv_timer_t *t)
{
    smx_session *s = t->data;
    int secs = session_connect_timeout_ms(s) / 1000;
    switch (s->state) {
    case SMX_SESSION_PREPARE:
        smx_session_fail(s, SMX_STAGE_RESOLVE, SMX_ETIMEDOUT, "resolving \"%s\" timed out",
                         s->hc->hostname);
        break;
    case SMX_SESSION_CONNECT:
        smx_session_fail(s, SMX_STAGE_CONNECT, SMX_ETIMEDOUT,
                         "connect to %s timed out after %d s", s->transport->peer, secs);
        break;
    case SMX_SESSION_HANDSHAKE:
        smx_session_fail(s, SMX_STAGE_CONNECT, SMX_ETIMEDOUT,
                         "no SSH banner and key exchange from %s within %d s (ConnectTimeout)",
                         s->transport->peer, secs);
        break;
    case SMX_SESSION_AUTH:
        if (s->auth.state == SMX_AUTH_KBDINT_WAIT)
            break;   /* the operator is typing; the auth clock is stopped meanwhile */
        smx_session_fail(s, SMX_STAGE_AUTH, SMX_ETIMEDOUT, "authentication timed out after %d s",
                         s->ctx->opts.auth_timeout_ms / 1000);
        break;
    case SMX_SESSION_BACKOFF:
        session_begin_attempt(s);
        break;
    default:
        break;
    }
}

static void session_arm(smx_session *s, uint64_t ms)
{
    uv_timer_start(&s->timer, session_on_timeout, ms, 0);
}

/* The liveness clock moves when libssh's byte count moved since the last look. */
static void session_note_rx(smx_session *s)
{
    if (s->rx.in_bytes != s->rx_seen) {
        s->rx_seen = s->rx.in_bytes;
        s->last_rx = uv_now(s->ctx->loop);
        s->keepalive_rounds = 0;
    }
}

static void session_on_keepalive_answer(void *ud, int status, const void *data, size_t len)
{
    ((smx_session *)ud)->keepalive_pending = 0;
}

/* keepalive@openssh.com with want-reply, as ssh sends it; OpenSSH answers with a refusal, which
 * moves the liveness clock like any other packet. One at a time, through the session's queue of
 * global requests (it must not take the answer of someone else's). */
static void session_send_keepalive(smx_session *s)
{
    if (s->keepalive_pending)
        return;
    s->keepalive_pending = smx_session_global_request(s, "keepalive@openssh.com", NULL, 0, 1,
                                                      session_on_keepalive_answer, s) != NULL;
    smx_globalreqs_drive(s);
}

static void session_on_keepalive(uv_timer_t *t);

static void session_arm_keepalive(smx_session *s, uint64_t ms)
{
    uv_timer_start(&s->keepalive, session_on_keepalive, ms, 0);
}

/* As ssh: an interval without a byte from the server sends a keepalive, and the end of interval
 * ServerAliveCountMax + 1 in silence ends the session. Any byte counts, wherever libssh read it
 * (session_note_rx); each keepalive gets a whole interval to be answered. */
static void session_on_keepalive(uv_timer_t *t)
{
    smx_session *s = t->data;
    if (s->state != SMX_SESSION_READY || s->close_requested)
        return;
    /* A busy loop runs timers before it reads sockets: take in what already arrived first. */
    session_step(s);
    if (s->state != SMX_SESSION_READY || s->close_requested)
        return;
    uint64_t interval = (uint64_t)s->hc->serveraliveinterval * 1000;
    int countmax = s->hc->serveralivecountmax > 0 ? s->hc->serveralivecountmax : 1;
    uint64_t idle = uv_now(s->ctx->loop) - s->last_rx;
    if (idle + KEEPALIVE_SLACK_MS < interval) {   /* heard from it lately */
        session_arm_keepalive(s, interval - idle);
        return;
    }
    if (++s->keepalive_rounds > countmax) {
        smx_session_fail(s, SMX_STAGE_TIMEOUT, SMX_ETIMEDOUT,
                         "server not responding: nothing received for %.1f s, %d keepalives "
                         "unanswered (ServerAliveInterval %d, ServerAliveCountMax %d)",
                         (double)idle / 1000.0, countmax, s->hc->serveraliveinterval, countmax);
        return;
    }
    smx_session_trace(s, "keepalive after %llu ms without a byte", (unsigned long long)idle);
    s->in_step++;   /* libssh may run channel callbacks while it sends */
    session_send_keepalive(s);
    s->in_step--;
    session_step(s);
    if (s->state == SMX_SESSION_READY)
        session_arm_keepalive(s, interval);
}

/* ---- connection setup ----------------------------------------------------------------- */

static int session_set_opt(smx_session *s, enum ssh_options_e opt, const void *val)
{
    return val ? ssh_options_set(s->ssh, opt, val) : 0;
}

/* The agent socket IdentityAgent names: NULL for none or "use $SSH_AUTH_SOCK" (libssh's default),
 * "$VAR" read from the environment, else the (expanded) path. */
const char *smx_hostcfg_agent_socket(const smx_hostcfg *hc)
{
    const char *a = hc->identityagent;
    if (!a || strcmp(a, "none") == 0 || strcmp(a, "SSH_AUTH_SOCK") == 0)
        return NULL;
    if (a[0] == '$') {
        const char *v = getenv(a + 1);
        return v && *v ? v : NULL;
    }
    return a;
}

/* libssh session on the transport's fd. libssh polls and reads it but never closes it (patch
 * 0032): one descriptor per session, closed by the transport. */
static int session_create_ssh(smx_session *s)
{
    const smx_hostcfg *hc = s->hc;
    int fd = s->transport->fd;
    s->ssh = ssh_new();
    if (!s->ssh)
        return SMX_ENOMEM;
    s->rx = (struct ssh_counter_struct){0};
    s->rx_seen = 0;
    s->keepalive_pending = 0;
    ssh_set_counters(s->ssh, &s->rx, NULL);
    int no = 0;
    unsigned port = (unsigned)hc->port;
    ssh_options_set(s->ssh, SSH_OPTIONS_PROCESS_CONFIG, &no);
    ssh_options_set(s->ssh, SSH_OPTIONS_FD, &fd);
    int rc = 0;
    if (s->ctx->ssh_dir)
        rc |= ssh_options_set(s->ssh, SSH_OPTIONS_SSH_DIR, s->ctx->ssh_dir);
    rc |= session_set_opt(s, SSH_OPTIONS_HOST, hc->hostname);
    rc |= ssh_options_set(s->ssh, SSH_OPTIONS_PORT, &port);
    rc |= session_set_opt(s, SSH_OPTIONS_USER, hc->user);
    rc |= session_set_opt(s, SSH_OPTIONS_CIPHERS_C_S, hc->ciphers);
    rc |= session_set_opt(s, SSH_OPTIONS_CIPHERS_S_C, hc->ciphers);
    rc |= session_set_opt(s, SSH_OPTIONS_KEY_EXCHANGE, hc->kexalgorithms);
    rc |= session_set_opt(s, SSH_OPTIONS_HOSTKEYS, hc->hostkeyalgorithms);
    rc |= session_set_opt(s, SSH_OPTIONS_HMAC_C_S, hc->macs);
    rc |= session_set_opt(s, SSH_OPTIONS_HMAC_S_C, hc->macs);
    rc |= ssh_options_set(s->ssh, SSH_OPTIONS_COMPRESSION, hc->compression ? "yes" : "no");
    const char *agent = smx_hostcfg_agent_socket(hc);
    if (agent)
        rc |= ssh_options_set(s->ssh, SSH_OPTIONS_IDENTITY_AGENT, agent);
    if (rc != 0) {
        /* The message names the algorithm lists: that is what libssh rejects here. */
        smx_transport_set_error(s->transport, "bad option: %s",
                 ssh_get_error(s->ssh));
        return SMX_EINVAL;
    }
    ssh_set_blocking(s->ssh, 0);
    return 0;
}

static void session_backoff(smx_session *s, enum smx_gate_outcome outcome);

/* The socket reported an error or hang-up (libuv has stopped watching it). libssh may not have
 * noticed yet (it can stop after a pre-banner line such as sshd's "Exceeded MaxStartups"), so
 * decide here instead of waiting for a wakeup that will not come. */
static void session_on_socket_error(smx_session *s, int status)
{
    switch (s->state) {
    case SMX_SESSION_HANDSHAKE:
        if (smx_transport_error(s->transport)[0]) {   /* the transport knows why (ProxyCommand) */
            smx_session_fail(s, SMX_STAGE_CONNECT, SMX_ECONNECT, "%s",
                             smx_transport_error(s->transport));
            return;
        }
        if (s->result->attempts <= s->ctx->opts.retries) {
            session_backoff(s, SMX_GATE_DROPPED);
            return;
        }
        smx_session_fail(s, SMX_STAGE_CONNECT, SMX_ECLOSED,
                         "%s closed the connection before the SSH handshake completed "
                         "(server busy: MaxStartups?) after %d attempts", s->transport->peer,
                         s->result->attempts);
        return;
    case SMX_SESSION_AUTH:
        smx_session_fail(s, SMX_STAGE_AUTH, SMX_ECLOSED,
                         "%s closed the connection during authentication", s->transport->peer);
        return;
    case SMX_SESSION_READY:
        session_step(s);   /* let the job read what arrived before the close */
        smx_session_fail(s, SMX_STAGE_EXEC, SMX_ECLOSED, "connection to %s lost: %s",
                         s->transport ? s->transport->peer : "?", uv_strerror(status));
        return;
    default:
        return;
    }
}

static void session_on_io(smx_fdwatch *w, int status, int events)
{
    smx_session *s = w->data;
    session_step(s);
    if (status < 0)
        session_on_socket_error(s, status);
}

/* A jump transport's failure names the hop that went (error.hop), unless an error is recorded
 * already (the first one wins). */
static void session_take_hop(smx_session *s, const smx_transport *t)
{
    if (t->error_hop > 0 && s->result->err_stage == SMX_STAGE_NONE)
        s->result->err_hop = t->error_hop;
}

/* A transport failed: the stage it names, and which jump hop if it was one. */
static void session_transport_failed(smx_session *s, smx_transport *t, int status)
{
    if (status == SMX_EBUSY && s->result->attempts <= s->ctx->opts.retries) {
        /* The jump connection is full; the next attempt gets another one (transports/jump.c). */
        smx_session_trace(s, "%s; retrying", smx_transport_error(t));
        session_backoff(s, SMX_GATE_NEUTRAL);
        return;
    }
    session_take_hop(s, t);
    smx_session_fail(s, t->error_stage ? t->error_stage : SMX_STAGE_CONNECT, status, "%s",
                     smx_transport_error(t));
}

void smx_session_fail_lost(smx_session *s, const char *during)
{
    smx_transport *t = s->transport;
    if (t && smx_transport_error(t)[0]) {
        /* The transport knows more than libssh's "Socket error": a jump hop that went away, a
         * ProxyCommand that exited. */
        session_take_hop(s, t);
        smx_session_fail(s, SMX_STAGE_EXEC, SMX_ECLOSED, "connection lost%s: %s", during,
                         smx_transport_error(t));
        return;
    }
    smx_session_fail(s, SMX_STAGE_EXEC, SMX_ECLOSED, "connection lost%s: %s", during,
                     ssh_get_error(s->ssh));
}

static void session_on_connected(smx_transport *t, int status)
{
    smx_session *s = t->data;
    if (status < 0) {
        session_transport_failed(s, t, status);
        return;
    }
    s->result->t.connect += smx_ms_since(s->t_phase);
    int rc = session_create_ssh(s);
    if (rc < 0) {
        smx_session_fail(s, SMX_STAGE_CONNECT, rc, "%s",
                         rc == SMX_EINVAL ? smx_transport_error(t) : smx_strerror(rc));
        return;
    }
    t->watch.cb = session_on_io;
    t->watch.data = s;
    s->state = SMX_SESSION_HANDSHAKE;
    s->t_phase = uv_hrtime();
    session_step(s);
}

static void session_on_slot(smx_gate_waiter *w)
{
    smx_session *s = SMX_CONTAINER_OF(w, smx_session, gate_waiter);
    s->holds_slot = 1;
    s->state = SMX_SESSION_CONNECT;
    s->t_phase = uv_hrtime();
    session_arm(s, (uint64_t)session_connect_timeout_ms(s));
    int rc = smx_transport_connect(s->transport, session_on_connected);
    if (rc < 0)
        session_transport_failed(s, s->transport, rc);
}

static void session_on_prepared(smx_transport *t, int status)
{
    smx_session *s = t->data;
    if (status < 0) {
        session_transport_failed(s, t, status);
        return;
    }
    s->result->t.resolve += smx_ms_since(s->t_phase);
    s->gate = smx_gates_get(s->ctx->gates, t->gate_key);
    if (!s->gate) {
        smx_session_fail(s, SMX_STAGE_CONNECT, SMX_ENOMEM, "out of memory");
        return;
    }
    /* Waiting for a slot has no clock of its own: every handshake ahead holds its slot for at
     * most ConnectTimeout + the auth timeout. */
    uv_timer_stop(&s->timer);
    s->state = SMX_SESSION_WAIT_SLOT;
    smx_gate_acquire(s->gate, &s->gate_waiter, session_on_slot);
}

static void session_begin_attempt(smx_session *s)
{
    s->result->attempts++;
    smx_err err = {{0}};
    s->transport = s->ctx->transport_factory(s->ctx->factory_ud, s->hc, &err);
    if (!s->transport) {
        smx_session_fail(s, SMX_STAGE_CONNECT, SMX_EINVAL, "%s", err.msg);
        return;
    }
    s->transport->data = s;
    s->state = SMX_SESSION_PREPARE;
    s->t_phase = uv_hrtime();
    session_arm(s, (uint64_t)session_connect_timeout_ms(s));
    int rc = smx_transport_prepare(s->transport, session_on_prepared);
    if (rc < 0)
        smx_session_fail(s, s->transport->error_stage, rc, "%s", smx_transport_error(s->transport));
}

void smx_session_start(smx_session *s)
{
    /* Handles are made here, not at init: a queued session that never starts owns none. */
    uv_timer_init(s->ctx->loop, &s->timer);
    uv_timer_init(s->ctx->loop, &s->keepalive);
    uv_idle_init(s->ctx->loop, &s->deferred);
    s->timer.data = s;
    s->keepalive.data = s;
    s->deferred.data = s;
    s->t_start = uv_hrtime();
    session_begin_attempt(s);
}

/* ---- handshake ------------------------------------------------------------------------ */

/* sshd under MaxStartups load accepts and then closes before (or while) sending its banner. Those
 * closes, and only those, are worth retrying: the same attempt a moment later usually gets in.
 * Whether the server closed the connection (rather than failing the protocol) is asked of the
 * socket itself, not read from libssh's message: a closed or reset peer reads as EOF or an
 * error, a live one as "nothing yet". */
static int session_is_early_drop(const smx_session *s)
{
    if (s->state != SMX_SESSION_HANDSHAKE || !s->transport || s->transport->fd < 0)
        return 0;
    char byte;
    ssize_t n = recv(s->transport->fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

static void session_backoff(smx_session *s, enum smx_gate_outcome outcome)
{
    int attempt = s->result->attempts;
    uint64_t base = 50u << (attempt < 6 ? attempt : 6);       /* 100 ms .. 3.2 s */
    uint64_t delay = base / 2 + (uint64_t)(rand() % (int)(base + 1));  /* jitter: 0.5x .. 1.5x */
    session_release_slot(s, outcome);
    session_drop_attempt(s);
    s->state = SMX_SESSION_BACKOFF;
    session_arm(s, delay);
}

static void session_collect_info(smx_session *s)
{
    smx_result *r = s->result;
    const char *banner = ssh_get_serverbanner(s->ssh);
    const char *kex = ssh_get_kex_algo(s->ssh);
    const char *cipher = ssh_get_cipher_out(s->ssh);
    free(r->server_banner);
    free(r->kex);
    free(r->cipher);
    r->server_banner = banner ? strdup(banner) : NULL;
    r->kex = kex ? strdup(kex) : NULL;
    r->cipher = cipher ? strdup(cipher) : NULL;
}

static void session_step_auth(smx_session *s);

static void session_step_handshake(smx_session *s)
{
    int rc = ssh_connect(s->ssh);
    /* libssh makes the socket blocking on its first POLLOUT (socket.c); put it back at once so
     * no later write can stall the loop. */
    int fl = fcntl(s->transport->fd, F_GETFL);
    if (fl >= 0 && !(fl & O_NONBLOCK))
        fcntl(s->transport->fd, F_SETFL, fl | O_NONBLOCK);
    if (rc == SSH_AGAIN)
        return;
    if (rc != SSH_OK) {
        const char *why = smx_transport_error(s->transport);
        if (why[0]) {   /* the transport knows why (a ProxyCommand exited) */
            smx_session_fail(s, SMX_STAGE_CONNECT, SMX_ECONNECT, "%s", why);
            return;
        }
        if (session_is_early_drop(s) && s->result->attempts <= s->ctx->opts.retries) {
            session_backoff(s, SMX_GATE_DROPPED);
            return;
        }
        if (s->result->attempts > 1)
            smx_session_fail(s, SMX_STAGE_CONNECT, SMX_ESSH, "%s: %s (after %d attempts)",
                             s->transport->peer, ssh_get_error(s->ssh), s->result->attempts);
        else
            smx_session_fail(s, SMX_STAGE_CONNECT, SMX_ESSH, "%s: %s", s->transport->peer,
                             ssh_get_error(s->ssh));
        return;
    }
    s->result->t.handshake += smx_ms_since(s->t_phase);
    session_collect_info(s);
    if (smx_hostkey_verify(s) < 0) {
        smx_session_close(s);
        return;
    }
    s->state = SMX_SESSION_AUTH;
    s->t_phase = uv_hrtime();
    session_arm(s, (uint64_t)s->ctx->opts.auth_timeout_ms);
    const smx_hostcfg *hc = s->hc;
    smx_auth_init(&s->auth, hc->preferredauthentications, hc->pubkeyauthentication,
                  hc->kbdinteractiveauthentication, hc->passwordauthentication);
    if (s->hostkey_changed)
        smx_auth_withhold_secrets(&s->auth);
    session_step_auth(s);
}

static void session_step_auth(smx_session *s)
{
    int rc = smx_auth_step(s);
    if (rc == 0)
        return;
    if (rc < 0) {
        session_release_slot(s, SMX_GATE_NEUTRAL);
        smx_session_close(s);
        return;
    }
    s->result->t.auth += smx_ms_since(s->t_phase);
    free(s->result->auth_method);
    s->result->auth_method = strdup(s->auth.used);
    session_release_slot(s, SMX_GATE_SUCCESS);
    uv_timer_stop(&s->timer);
    s->event = ssh_event_new();
    if (!s->event || ssh_event_add_session(s->event, s->ssh) != SSH_OK) {
        smx_session_fail(s, SMX_STAGE_EXEC, SMX_ENOMEM, "could not set up the session's poller");
        return;
    }
    s->state = SMX_SESSION_READY;
    s->rx_seen = s->rx.in_bytes;
    s->last_rx = uv_now(s->ctx->loop);
    s->keepalive_rounds = 0;
    if (s->hc->serveraliveinterval > 0)
        session_arm_keepalive(s, (uint64_t)s->hc->serveraliveinterval * 1000);
    s->handler->ready(s);
}

/* ---- driving -------------------------------------------------------------------------- */

int smx_session_poll(smx_session *s)
{
    smx_transport_before_read(s->transport);
    for (int i = 0; i < SESSION_DRAIN_BUDGET; i++) {
        int rc = ssh_event_dopoll(s->event, 0);
        if (rc == SSH_ERROR || !ssh_is_connected(s->ssh))
            return SMX_ECLOSED;
        if (rc != SSH_OK)
            break;   /* SSH_AGAIN: nothing more to read right now */
        if (s->state != SMX_SESSION_READY || s->close_requested)
            break;
    }
    return 0;
}

static void session_update_watch(smx_session *s)
{
    if (!s->transport || !s->transport->watch.active || !s->ssh)
        return;
    int events = UV_READABLE;
    if (ssh_get_status(s->ssh) & SSH_WRITE_PENDING)
        events |= UV_WRITABLE;
    smx_fdwatch_set(&s->transport->watch, events);
}

static void session_step(smx_session *s)
{
    if (s->state == SMX_SESSION_AUTH)
        smx_session_trace(s, "step (auth state %d)", s->auth.state);
    s->in_step++;
    switch (s->state) {
    case SMX_SESSION_HANDSHAKE:
        session_step_handshake(s);
        break;
    case SMX_SESSION_AUTH:
        session_step_auth(s);
        break;
    case SMX_SESSION_READY:
        smx_globalreqs_drive(s);
        s->handler->step(s);
        smx_globalreqs_drive(s);   /* answers arrive in the handler's poll */
        break;
    default:
        break;
    }
    s->in_step--;
    session_note_rx(s);
    if (s->close_requested && s->in_step == 0)
        session_do_close(s);
    else
        session_update_watch(s);
}

void smx_session_sync_watch(smx_session *s)
{
    if (!s->in_step)
        session_update_watch(s);
}

void smx_session_restart_auth_clock(smx_session *s)
{
    if (s->state == SMX_SESSION_AUTH)
        session_arm(s, (uint64_t)s->ctx->opts.auth_timeout_ms);
}

void smx_session_pause_auth_clock(smx_session *s)
{
    uv_timer_stop(&s->timer);
}

void smx_session_kick(smx_session *s)
{
    session_step(s);
}

static void session_on_deferred(uv_idle_t *h)
{
    smx_session *s = h->data;
    uv_idle_stop(h);
    if (s->state == SMX_SESSION_READY && !s->close_requested && !s->in_step)
        session_step(s);
}

void smx_session_defer_step(smx_session *s)
{
    if (s->state == SMX_SESSION_READY && !uv_is_active((uv_handle_t *)&s->deferred))
        uv_idle_start(&s->deferred, session_on_deferred);
}
