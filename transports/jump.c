#include "transports.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conn.h"
#include "container.h"
#include "pipe.h"

#define JUMP_MAX_DEPTH 8
/* Connections to one jump chain at most. One carries every target until the bastion refuses a
 * channel while carrying others (a per-connection limit: sshd out of descriptors, a channel cap
 * in another server); then targets spill onto a second connection, and so on. */
#define JUMP_MAX_CONNS 8

typedef struct jump_tp jump_tp;
static void jump_copy_failure(jump_tp *tp);

enum jumphost_state { JH_CONNECTING, JH_READY, JH_FAILED };

typedef struct smx_jumphost smx_jumphost;

struct smx_jumps {
    smx_jumps_opts o;
    const char *first_hop_password;
    smx_jumphost *head;       /* open jump connections, by chain */
};

struct smx_jumphost {
    smx_jumphost *next;
    smx_jumps *j;              /* NULL once the registry is gone */
    smx_hostcfg hc;            /* the last hop's settings: its connection's */
    smx_result result;         /* its connection's */
    char *chain;               /* "a,b": this is b, reached through a */
    char *name;                /* b's Host name, for messages (outlives conn) */
    int hop;                   /* 1-based position of this host in its chain */
    smx_conn *conn;            /* NULL once closed; jh itself lives on while refs > 0 */
    enum jumphost_state state;
    int refs;                  /* transports pointing at jh: it outlives them (and so their
                                  pipes), freed at 0 once its connection has closed */
    int open_chans;            /* ... whose channel the bastion has confirmed */
    int capacity;              /* channels it held when it refused one; 0 = no limit seen */
    smx_list waiters;          /* transports waiting for the connection */
    char errmsg[SMX_MSG_MAX];
    int err_stage, err_hop;
};

struct jump_tp {
    smx_transport base;
    smx_jumphost *jh;
    smx_list waiting;          /* on its jump host's waiters */
    char *host;
    int port;
    smx_transport_cb cb;
    smx_pipe *pipe;
    int opened;
    int closing, watch_closing;
    smx_transport_close_cb close_cb;
};

/* ---- the jump connection ------------------------------------------------------------------ */

static void jumphost_notify(smx_jumphost *jh)
{
    /* Detached first: a callback may close other waiters (they leave this batch) */
    smx_list batch;
    smx_list_init(&batch);
    smx_list_splice(&batch, &jh->waiters);
    while (!smx_list_empty(&batch)) {
        jump_tp *w = smx_list_entry(batch.next, jump_tp, waiting);
        smx_list_remove(&w->waiting);
        if (jh->state == JH_READY) {
            w->cb(&w->base, 0);
        } else {
            jump_copy_failure(w);
            w->cb(&w->base, SMX_ECONNECT);
        }
    }
}

static void jumphost_on_ready(smx_conn *c, void *ud)
{
    smx_jumphost *jh = ud;
    jh->state = JH_READY;
    jumphost_notify(jh);
}

/* An earlier hop's failure, if that is why this jump connection is lost: from the connection's
 * own transport (a jump through that hop), else from its result. Returns that hop (0: this hop
 * is the cause). */
static int jumphost_earlier_cause(const smx_jumphost *jh, const smx_result *r,
                                  const char **msg)
{
    const smx_transport *t = jh->conn ? jh->conn->session.transport : NULL;
    /* its own words, not wrapped by ours */
    if (t && t->error_hop > 0 && smx_transport_error(t)[0]) {
        *msg = smx_transport_error(t);
        return t->error_hop;
    }
    if (r && r->err_hop > 0) {
        *msg = smx_result_error(r);
        return r->err_hop;
    }
    return 0;
}

/* Why the jump connection is lost, naming the hop that went; returns that hop. */
static int jumphost_loss_text(const smx_jumphost *jh, const smx_result *r, const char *why,
                              char *out, size_t len)
{
    const char *earlier;
    int hop = jumphost_earlier_cause(jh, r, &earlier);
    if (hop > 0) {
        snprintf(out, len, "%s", earlier);
        return hop;
    }
    snprintf(out, len, "jump host %s (hop %d): %s", jh->name, jh->hop,
             why && *why ? why : "connection closed");
    return jh->hop;
}

static void jumphost_on_ended(smx_conn *c, void *ud)
{
    smx_jumphost *jh = ud;
    const smx_result *r = &jh->result;
    jh->state = JH_FAILED;
    jh->err_stage = r->err_stage != SMX_STAGE_NONE ? r->err_stage : SMX_STAGE_CONNECT;
    jh->err_hop = jumphost_loss_text(jh, r, smx_result_error(r), jh->errmsg, sizeof jh->errmsg);
    jumphost_notify(jh);
}

static void jumphost_free(smx_jumphost *jh)
{
    smx_hostcfg_free(&jh->hc);
    smx_result_free(&jh->result);
    free(jh->chain);
    free(jh->name);
    free(jh);
}

/* The connection is gone (every channel on it released first); transports that still point at
 * jh keep it until they are closed (jumphost_release). */
static void jumphost_on_closed(smx_conn *c, void *ud)
{
    smx_jumphost *jh = ud;
    for (smx_jumphost **pp = jh->j ? &jh->j->head : NULL; pp && *pp; pp = &(*pp)->next) {
        if (*pp == jh) {
            *pp = jh->next;
            break;
        }
    }
    jh->next = NULL;
    jh->conn = NULL;   /* jumphost_on_ended ran first: state is JH_FAILED, errmsg says why */
    if (jh->refs == 0)
        jumphost_free(jh);
}

static const smx_conn_events jumphost_events = {
    .ready = jumphost_on_ready,
    .ended = jumphost_on_ended,
    .closed = jumphost_on_closed,
};

static int chain_depth(const char *chain)
{
    int n = 1;
    for (const char *p = chain; *p; p++)
        n += *p == ',';
    return n;
}

static int jumphost_has_room(const smx_jumphost *jh)
{
    return jh->capacity == 0 || jh->refs < jh->capacity;
}

/* The jump connection for `chain`, shared: the first one with room, else a new one (up to
 * JUMP_MAX_CONNS; past that, the least loaded, whose refusals then fail their hosts). */
static smx_jumphost *jumphost_get(smx_jumps *j, const char *chain, smx_err *err)
{
    smx_jumphost *least = NULL;
    int count = 0;
    for (smx_jumphost *jh = j->head; jh; jh = jh->next) {
        if (strcmp(jh->chain, chain) != 0 || jh->state == JH_FAILED || !jh->conn)
            continue;
        if (jumphost_has_room(jh))
            return jh;
        count++;
        if (!least || jh->refs - jh->capacity < least->refs - least->capacity)
            least = jh;
    }
    if (count >= JUMP_MAX_CONNS)
        return least;
    if (chain_depth(chain) > JUMP_MAX_DEPTH) {
        smx_seterr(err, SMX_EINVAL, "ProxyJump chain \"%s\" is deeper than %d hops (a loop in "
                   "ssh_config?)", chain, JUMP_MAX_DEPTH);
        return NULL;
    }
    smx_hostcfg *hops = NULL;
    size_t n = 0;
    if (j->o.resolve(j->o.ud, chain, &hops, &n, err) < 0)
        return NULL;
    smx_jumphost *jh = calloc(1, sizeof *jh);
    if (!jh || !(jh->chain = strdup(chain))) {
        free(jh);
        for (size_t i = 0; i < n; i++)
            smx_hostcfg_free(&hops[i]);
        free(hops);
        smx_seterr(err, SMX_ENOMEM, "out of memory");
        return NULL;
    }
    jh->hc = hops[n - 1];   /* the connection's settings; the earlier hops are not needed */
    for (size_t i = 0; i + 1 < n; i++)
        smx_hostcfg_free(&hops[i]);
    free(hops);
    smx_result_init(&jh->result);
    jh->result.host = strdup(jh->hc.host ? jh->hc.host : "?");
    jh->j = j;
    smx_list_init(&jh->waiters);
    jh->hop = (int)n;
    const char *pw = n == 1 ? j->first_hop_password : NULL;
    jh->name = strdup(jh->hc.host ? jh->hc.host : "?");
    jh->conn = jh->name && jh->result.host
                   ? smx_conn_new(j->o.ctx, &jh->hc, pw, &jh->result, &jumphost_events, jh)
                   : NULL;
    if (!jh->conn) {
        jumphost_free(jh);
        smx_seterr(err, SMX_ENOMEM, "out of memory");
        return NULL;
    }
    jh->next = j->head;
    j->head = jh;
    smx_conn_start(jh->conn);
    return jh;
}

static void jumphost_release(smx_jumphost *jh)
{
    if (--jh->refs > 0)
        return;
    if (!jh->conn) {
        jumphost_free(jh);   /* its connection closed while we pointed at it */
        return;
    }
    /* Idle: keep it while the run still has hosts to start (they will want it), else close. */
    if ((!jh->j || !jh->j->o.busy(jh->j->o.ud)) && jh->state != JH_FAILED)
        smx_conn_close(jh->conn);
}

smx_jumps *smx_jumps_new(const smx_jumps_opts *o)
{
    smx_jumps *j = calloc(1, sizeof *j);
    if (j)
        j->o = *o;
    return j;
}

void smx_jumps_set_first_hop_password(smx_jumps *j, const char *pw)
{
    j->first_hop_password = pw;
}

void smx_jumps_close_idle(smx_jumps *j)
{
    for (smx_jumphost *jh = j->head; jh; jh = jh->next)
        if (jh->refs == 0 && jh->conn)
            smx_conn_close(jh->conn);
}

void smx_jumps_free(smx_jumps *j)
{
    if (!j)
        return;
    for (smx_jumphost *jh = j->head; jh; jh = jh->next)
        jh->j = NULL;   /* they free themselves when their connections close */
    free(j);
}

/* ---- the transport ------------------------------------------------------------------------ */

/* The jump connection failed: the transport's error is the jump host's. */
static void jump_copy_failure(jump_tp *tp)
{
    smx_jumphost *jh = tp->jh;
    smx_transport_set_error(&tp->base, "%s", jh->errmsg);
    tp->base.error_stage = jh->err_stage;
    tp->base.error_hop = jh->err_hop;
}

static int jump_prepare(smx_transport *t, smx_transport_cb cb)
{
    jump_tp *tp = (jump_tp *)t;
    smx_jumphost *jh = tp->jh;
    tp->cb = cb;
    snprintf(t->gate_key, sizeof t->gate_key, "jump:%s>%s:%d", jh->chain, tp->host, tp->port);
    snprintf(t->peer, sizeof t->peer, "%s:%d via %s", tp->host, tp->port, jh->name);
    switch (jh->state) {
    case JH_READY:
        cb(t, 0);
        break;
    case JH_CONNECTING:
        smx_list_append(&jh->waiters, &tp->waiting);
        break;
    case JH_FAILED:
        jump_copy_failure(tp);
        return SMX_ECONNECT;
    }
    return 0;
}

static int jump_open_channel(ssh_channel ch, void *arg)
{
    jump_tp *tp = arg;
    return ssh_channel_open_forward(ch, tp->host, tp->port, "127.0.0.1", 0);
}

static void jump_on_opened(smx_pipe *p, void *ud)
{
    jump_tp *tp = ud;
    tp->opened = 1;
    tp->jh->open_chans++;
    tp->cb(&tp->base, 0);
}

static void jump_finish_close(jump_tp *tp);

/* A refusal while the connection carries other channels says "full", not "no": remember how
 * many it held, so new targets go to another connection, and have this one retried there. A
 * refusal on an empty connection (AllowTcpForwarding no, target unreachable) is the answer. */
static void jump_report_refusal(jump_tp *tp, const char *err)
{
    smx_jumphost *jh = tp->jh;
    const char *name = jh->name;
    int busy = jh->open_chans > 0;
    if (busy && (jh->capacity == 0 || jh->open_chans < jh->capacity))
        jh->capacity = jh->open_chans;
    if (busy)
        smx_transport_set_error(&tp->base, "jump host %s (hop %d) refused a channel to %s:%d "
                                "while carrying %d (%s)",
                 name, jh->hop, tp->host, tp->port, jh->open_chans, err ? err : "refused");
    else
        smx_transport_set_error(&tp->base, "jump host %s (hop %d) could not open a channel to "
                                "%s:%d: %s", name, jh->hop,
                 tp->host, tp->port, err ? err : "refused");
    tp->base.error_stage = SMX_STAGE_CONNECT;
    tp->base.error_hop = jh->hop;
    tp->cb(&tp->base, busy ? SMX_EBUSY : SMX_ECHANNEL);
}

static void jump_on_pipe_done(smx_pipe *p, const char *err, void *ud)
{
    jump_tp *tp = ud;
    tp->pipe = NULL;
    if (tp->opened)
        tp->jh->open_chans--;
    if (tp->closing) {
        jump_finish_close(tp);
        return;
    }
    if (!tp->opened) {
        jump_report_refusal(tp, err);
        return;
    }
    /* The target session sees EOF on its socket and reports it itself; a session still in its
     * handshake takes the transport's word for why. */
    if (err && !smx_transport_error(&tp->base)[0]) {
        if (tp->jh->state == JH_FAILED)   /* the jump host has said why (and which hop) */
            jump_copy_failure(tp);
        else if (smx_transport_errbuf(&tp->base))
            tp->base.error_hop = jumphost_loss_text(tp->jh, NULL, err, tp->base.errmsg,
                                                    SMX_MSG_MAX);
    }
}

static int jump_connect(smx_transport *t, smx_transport_cb cb)
{
    jump_tp *tp = (jump_tp *)t;
    tp->cb = cb;
    if (tp->jh->state != JH_READY) {   /* it failed while this session waited for a slot */
        jump_copy_failure(tp);
        return SMX_ECONNECT;
    }
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) < 0) {
        smx_transport_set_error(t, "socketpair: %s", strerror(errno));
        t->error_stage = SMX_STAGE_CONNECT;
        return errno == EMFILE || errno == ENFILE ? SMX_EMFILE : SMX_ECONNECT;
    }
    uv_pipe_t *stream = malloc(sizeof *stream);
    if (!stream || uv_pipe_init(t->loop, stream, 0) < 0 || uv_pipe_open(stream, sv[1]) < 0) {
        free(stream);
        close(sv[0]);
        close(sv[1]);
        smx_transport_set_error(t, "cannot set up the jump channel's socket");
        t->error_stage = SMX_STAGE_CONNECT;
        return SMX_ECONNECT;
    }
    t->fd = sv[0];
    smx_fdwatch_init(t->loop, &t->watch, sv[0], NULL, tp);
    tp->pipe = smx_pipe_new((uv_stream_t *)stream, jump_on_pipe_done, tp);
    if (!tp->pipe) {
        uv_close((uv_handle_t *)stream, (uv_close_cb)free);
        return SMX_ENOMEM;
    }
    smx_pipe_on_opened(tp->pipe, jump_on_opened);
    smx_pipe_open(tp->pipe, tp->jh->conn, jump_open_channel, tp);
    return 0;
}

static void jump_finish_close(jump_tp *tp)
{
    if (tp->pipe || tp->watch_closing)
        return;   /* still waiting for one of them */
    smx_jumphost *jh = tp->jh;
    smx_transport_close_cb cb = tp->close_cb;
    void *data = tp->base.data;
    if (tp->base.fd >= 0 && !tp->base.watch.active)
        close(tp->base.fd);
    smx_transport_free_error(&tp->base);
    free(tp->host);
    free(tp);
    jumphost_release(jh);
    if (cb)
        cb(data);
}

static void jump_on_watch_closed(uv_handle_t *h)
{
    smx_fdwatch *w = SMX_CONTAINER_OF(h, smx_fdwatch, poll);
    jump_tp *tp = (jump_tp *)SMX_CONTAINER_OF(w, smx_transport, watch);
    close(tp->base.fd);
    tp->base.fd = -1;
    tp->watch_closing = 0;
    jump_finish_close(tp);
}

static void jump_close(smx_transport *t, smx_transport_close_cb cb)
{
    jump_tp *tp = (jump_tp *)t;
    tp->closing = 1;
    tp->close_cb = cb;
    smx_list_remove(&tp->waiting);
    if (t->watch.active) {
        tp->watch_closing = 1;
        smx_fdwatch_close(&t->watch, jump_on_watch_closed);
    }
    if (tp->pipe)
        smx_pipe_abort(tp->pipe, "target session closed");   /* done -> jump_finish_close */
    else
        jump_finish_close(tp);
}

static const smx_transport_vtbl jump_vtbl = {
    .name = "jump",
    .prepare = jump_prepare,
    .connect = jump_connect,
    .close = jump_close,
};

smx_transport *smx_jump_transport_new(smx_jumps *j, const char *chain, const char *host,
                                      int port, smx_err *err)
{
    smx_jumphost *jh = jumphost_get(j, chain, err);
    if (!jh)
        return NULL;
    jump_tp *tp = calloc(1, sizeof *tp);
    if (!tp || !(tp->host = strdup(host))) {
        free(tp);
        smx_seterr(err, SMX_ENOMEM, "out of memory");
        return NULL;
    }
    tp->base.vt = &jump_vtbl;
    tp->base.loop = j->o.ctx->loop;
    tp->base.fd = -1;
    tp->jh = jh;
    smx_list_init(&tp->waiting);
    tp->port = port;
    jh->refs++;
    return &tp->base;
}

static int jump_applies(const smx_hostcfg *hc)
{
    return hc->proxyjump && strcmp(hc->proxyjump, "none") != 0;
}

static smx_transport *jump_make(const smx_transport_env *env, const smx_hostcfg *hc,
                                smx_err *err)
{
    return smx_jump_transport_new(env->jumps, hc->proxyjump, hc->hostname, hc->port, err);
}

const smx_transport_kind smx_jump_transport_kind = {"jump", jump_applies, jump_make};
