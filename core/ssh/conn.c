#include "conn.h"

#include <libssh/server.h>   /* ssh_set_message_callback: for clients too */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CONN_MAX_OPENING 32   /* channel opens in flight: a burst of connections waits its turn */

typedef struct smx_inbound_kind {
    struct smx_inbound_kind *next;
    char *kind;
    smx_inbound_fn fn;
    void *ud;
} smx_inbound_kind;

#define CHAN_OF(node, member) smx_list_entry(node, smx_chan, member)

/* ---- libssh's channel callbacks, dispatched to the application ------------------------------ */

static int chan_on_data(ssh_session ss, ssh_channel sch, void *data, uint32_t len, int is_stderr,
                        void *ud)
{
    smx_chan *ch = ud;
    return ch->ops->data ? ch->ops->data(ch, data, len, is_stderr) : (int)len;
}

static void chan_on_eof(ssh_session ss, ssh_channel sch, void *ud)
{
    smx_chan *ch = ud;
    if (ch->ops->eof)
        ch->ops->eof(ch);
}

static void chan_on_close(ssh_session ss, ssh_channel sch, void *ud)
{
    smx_chan *ch = ud;
    if (ch->ops->closed)
        ch->ops->closed(ch);
}

static int chan_on_writable(ssh_session ss, ssh_channel sch, uint32_t bytes, void *ud)
{
    smx_chan *ch = ud;
    if (ch->ops->writable)
        ch->ops->writable(ch, bytes);
    return 0;
}

static void chan_on_exit_status(ssh_session ss, ssh_channel sch, int status, void *ud)
{
    smx_chan *ch = ud;
    if (ch->ops->exit_status)
        ch->ops->exit_status(ch, status);
}

static void chan_on_exit_signal(ssh_session ss, ssh_channel sch, const char *sig, int core,
                                const char *errmsg, const char *lang, void *ud)
{
    smx_chan *ch = ud;
    if (ch->ops->exit_signal)
        ch->ops->exit_signal(ch, sig, core, errmsg);
}

/* Before the open: data that arrives earlier is not replayed (libssh-notes). */
static void chan_set_callbacks(smx_chan *ch)
{
    ssh_callbacks_init(&ch->cb);
    ch->cb.userdata = ch;
    ch->cb.channel_data_function = chan_on_data;
    ch->cb.channel_eof_function = chan_on_eof;
    ch->cb.channel_close_function = chan_on_close;
    ch->cb.channel_exit_status_function = chan_on_exit_status;
    ch->cb.channel_exit_signal_function = chan_on_exit_signal;
    if (ch->ops->writable)
        ch->cb.channel_write_wontblock_function = chan_on_writable;
    ssh_set_channel_callbacks(ch->ch, &ch->cb);
}

static void chan_free_ssh(smx_chan *ch, int send_close)
{
    if (!ch->ch)
        return;
    ssh_remove_channel_callbacks(ch->ch, &ch->cb);
    if (send_close && ssh_channel_is_open(ch->ch))
        ssh_channel_close(ch->ch);
    ssh_channel_free(ch->ch);
    ch->ch = NULL;
}

static void chan_forget(smx_chan *ch)
{
    smx_list_remove(&ch->node);
    smx_list_remove(&ch->marked);
    smx_list_remove(&ch->driving);
}

static void conn_fail_channel(smx_chan *ch, int code, const char *why)
{
    if (ch->state == SMX_CHAN_OPENING)
        ch->conn->opening--;
    chan_forget(ch);
    chan_free_ssh(ch, 0);
    ch->state = SMX_CHAN_CLOSED;
    ch->ops->failed(ch, code, why);
}

/* ---- the rounds of a step ------------------------------------------------------------------ */

static void conn_channel_opened(smx_conn *c, smx_chan *ch)
{
    ch->state = SMX_CHAN_OPEN;
    smx_list_remove(&ch->node);
    smx_list_append(&c->open, &ch->node);
    if (ch->ops->opened)
        ch->ops->opened(ch);
}

/* Starts queued opens while under the cap; re-calls pending ones. */
static void conn_drive_opens(smx_conn *c)
{
    smx_list *n = c->pending.next;
    while (n != &c->pending) {
        smx_chan *ch = CHAN_OF(n, node);
        n = n->next;
        if (ch->state == SMX_CHAN_QUEUED && c->opening >= c->max_opening)
            break;   /* queued ones stay in order behind the opening ones */
        if (ch->state == SMX_CHAN_QUEUED) {
            ch->ch = ssh_channel_new(c->session.ssh);
            if (!ch->ch) {
                conn_fail_channel(ch, SMX_ENOMEM, "cannot allocate a channel");
                continue;
            }
            chan_set_callbacks(ch);
            ch->state = SMX_CHAN_OPENING;
            c->opening++;
        }
        int rc = ch->ops->open(ch);
        if (rc == SSH_OK) {
            c->opening--;
            conn_channel_opened(c, ch);
        } else if (rc != SSH_AGAIN) {
            char why[SMX_MSG_MAX];
            smx_chan_refusal_text(ssh_get_error(c->session.ssh), why, sizeof why);
            conn_fail_channel(ch, SMX_ECHANNEL, why);
        }
    }
}

/* Re-calls the pending requests of open channels. The list is moved aside first: a channel that
 * asks again is served in the next step. */
static void conn_drive_requests(smx_conn *c)
{
    smx_list batch;
    smx_list_init(&batch);
    smx_list_splice(&batch, &c->driving);
    while (!smx_list_empty(&batch)) {
        smx_chan *ch = CHAN_OF(batch.next, driving);
        smx_list_remove(&ch->driving);
        if (ch->state == SMX_CHAN_OPEN && ch->ops->drive && ch->ops->drive(ch) == 0 &&
            !smx_list_linked(&ch->driving))
            smx_list_append(&c->driving, &ch->driving);   /* still pending */
    }
}

/* Runs after_poll for the channels marked so far (a channel that marks itself again is served
 * in the next round, not in a loop here). */
static void conn_run_marked(smx_conn *c)
{
    if (smx_list_empty(&c->marked) || c->running_marked)
        return;
    c->running_marked = 1;
    smx_list batch;
    smx_list_init(&batch);
    smx_list_splice(&batch, &c->marked);
    while (!smx_list_empty(&batch)) {
        smx_chan *ch = CHAN_OF(batch.next, marked);
        smx_list_remove(&ch->marked);
        if (ch->state == SMX_CHAN_OPEN && ch->ops->after_poll)
            ch->ops->after_poll(ch);
    }
    c->running_marked = 0;
}

/* ---- channels the server opens --------------------------------------------------------------- */

static int conn_dispatch_inbound(smx_conn *c, const smx_inbound_open *o, ssh_channel sch)
{
    for (smx_inbound_kind *k = c->inbound; k; k = k->next)
        if (strcmp(k->kind, o->kind) == 0)
            return k->fn(c, o, sch, k->ud);
    return -1;   /* nobody asked for this kind: refused */
}

/* The channel libssh confirms to the server, or NULL: it refuses the open. */
static ssh_channel conn_inbound(smx_conn *c, ssh_session ss, const smx_inbound_open *o)
{
    ssh_channel sch = c->ended ? NULL : ssh_channel_new(ss);
    if (!sch)
        return NULL;
    if (conn_dispatch_inbound(c, o, sch) != 0) {
        ssh_channel_free(sch);
        return NULL;
    }
    return sch;
}

static ssh_channel conn_on_forwarded_tcpip(ssh_session ss, const char *addr, int port,
                                           const char *orig, int orig_port, void *ud)
{
    smx_inbound_open o = {SMX_INBOUND_TCPIP, addr, port, orig, orig_port};
    return conn_inbound(ud, ss, &o);
}

/* libssh patch 0006: it used to queue this kind as an unknown one that nobody answered. */
static ssh_channel conn_on_forwarded_streamlocal(ssh_session ss, const char *path, void *ud)
{
    smx_inbound_open o = {SMX_INBOUND_STREAMLOCAL, path, 0, NULL, 0};
    return conn_inbound(ud, ss, &o);
}

/* What reaches libssh's message callback is what no callback above took: a channel kind without
 * one (x11, auth-agent@openssh.com, session, ...), a channel request libssh does not know (such
 * as OpenSSH's eow@openssh.com). Returning 1 has libssh refuse it (a reply only where one is
 * wanted) and free it. Without this libssh queues them for ssh_message_get, which nobody calls:
 * the server waits for an answer that never comes, and the queue grows for as long as the
 * connection lives. */
static int conn_on_message(ssh_session ss, ssh_message msg, void *ud)
{
    return 1;
}

int smx_conn_accept(smx_conn *c, const char *kind, smx_inbound_fn fn, void *ud)
{
    smx_inbound_kind **pp = &c->inbound;
    while (*pp && strcmp((*pp)->kind, kind) != 0)
        pp = &(*pp)->next;
    if (*pp && !fn) {
        smx_inbound_kind *k = *pp;
        *pp = k->next;
        free(k->kind);
        free(k);
        return 0;
    }
    if (!*pp && fn) {
        smx_inbound_kind *k = calloc(1, sizeof *k);
        if (!k || !(k->kind = strdup(kind))) {
            free(k);
            return SMX_ENOMEM;
        }
        *pp = k;
    }
    if (*pp) {
        (*pp)->fn = fn;
        (*pp)->ud = ud;
    }
    return 0;
}

/* ---- the session handler ----------------------------------------------------------------------- */

static void conn_ready(smx_session *s)
{
    smx_conn *c = s->data;
    c->ready = 1;
    ssh_callbacks_init(&c->sesscb);
    c->sesscb.userdata = c;
    c->sesscb.channel_open_request_forwarded_tcpip_function = conn_on_forwarded_tcpip;
    c->sesscb.channel_open_request_forwarded_streamlocal_function = conn_on_forwarded_streamlocal;
    ssh_set_callbacks(s->ssh, &c->sesscb);
    ssh_set_message_callback(s->ssh, conn_on_message, c);
    if (c->ev->ready)
        c->ev->ready(c, c->ud);
    s->handler->step(s);
}

static void conn_step(smx_session *s)
{
    smx_conn *c = s->data;
    conn_drive_opens(c);
    conn_drive_requests(c);
    if (smx_session_poll(s) < 0) {
        /* Channels that completed in the last packets (an exit status and close) finish first:
         * their results stand; an owner that closes the connection there is not "lost". */
        conn_run_marked(c);
        if (!s->close_requested)
            smx_session_fail_lost(s, c->loss_context ? c->loss_context : "");
        return;
    }
    conn_drive_opens(c);   /* answers to opens and requests arrive in the poll */
    conn_drive_requests(c);
    conn_run_marked(c);
}

static void conn_ended(smx_session *s)
{
    smx_conn *c = s->data;
    c->ended = 1;
    char why[SMX_MSG_MAX];
    const char *msg = smx_result_error(c->result);
    snprintf(why, sizeof why, "%s", msg[0] ? msg : "connection closed");
    while (!smx_list_empty(&c->pending))
        conn_fail_channel(CHAN_OF(c->pending.next, node), SMX_ECLOSED, why);
    while (!smx_list_empty(&c->open))
        conn_fail_channel(CHAN_OF(c->open.next, node), SMX_ECLOSED, why);
    c->ready = 0;
    if (c->ev->ended)
        c->ev->ended(c, c->ud);
}

static void conn_free(smx_conn *c)
{
    while (c->inbound)
        smx_conn_accept(c, c->inbound->kind, NULL, NULL);
    smx_str_wipe_free(c->password);
    free(c);
}

/* The last thing pointing at c is gone: the session's handles and every channel. */
static void conn_finish(smx_conn *c)
{
    const smx_conn_events *ev = c->ev;
    void *ud = c->ud;
    conn_free(c);
    if (ev->closed)
        ev->closed(NULL, ud);
}

static void conn_closed(smx_session *s)
{
    smx_conn *c = s->data;
    c->session_closed = 1;
    if (c->chans == 0)
        conn_finish(c);   /* else the last smx_chan_release does */
}

static const smx_session_handler conn_handler = {
    .ready = conn_ready,
    .step = conn_step,
    .ended = conn_ended,
    .closed = conn_closed,
};

smx_conn *smx_conn_new(smx_ctx *ctx, const smx_hostcfg *hc, const char *password,
                       smx_result *result, const smx_conn_events *ev, void *ud)
{
    smx_conn *c = calloc(1, sizeof *c);
    if (!c || (password && !(c->password = strdup(password)))) {
        free(c);
        return NULL;
    }
    c->ctx = ctx;
    c->hc = hc;
    c->result = result;
    c->ev = ev;
    c->ud = ud;
    smx_list_init(&c->pending);
    smx_list_init(&c->open);
    smx_list_init(&c->marked);
    smx_list_init(&c->driving);
    c->max_opening = CONN_MAX_OPENING;
    smx_session_init(&c->session, ctx, hc, &conn_handler, c, result);
    c->session.password = c->password;
    return c;
}

void smx_conn_start(smx_conn *c)
{
    smx_session_start(&c->session);
}

void smx_conn_free_unstarted(smx_conn *c)
{
    conn_free(c);
}

void smx_conn_close(smx_conn *c)
{
    smx_session_close(&c->session);
}

smx_global_req *smx_conn_global_request(smx_conn *c, const char *name, const void *data,
                                        size_t len, int want_reply, smx_global_cb cb, void *ud)
{
    if (c->ended)
        return NULL;
    return smx_session_global_request(&c->session, name, data, len, want_reply, cb, ud);
}

/* ---- channels ------------------------------------------------------------------------------ */

static void chan_init(smx_chan *ch, smx_conn *c, const smx_chan_ops *ops, void *data)
{
    memset(ch, 0, sizeof *ch);
    smx_list_init(&ch->node);
    smx_list_init(&ch->marked);
    smx_list_init(&ch->driving);
    ch->conn = c;
    ch->ops = ops;
    ch->data = data;
    ch->state = SMX_CHAN_QUEUED;
    c->chans++;
}

void smx_chan_start(smx_chan *ch, smx_conn *c, const smx_chan_ops *ops, void *data)
{
    chan_init(ch, c, ops, data);
    if (c->ended) {
        /* Nothing would ever open or fail it: the connection has failed its channels already. */
        ch->state = SMX_CHAN_CLOSED;
        const char *msg = smx_result_error(c->result);
        ops->failed(ch, SMX_ECLOSED, msg[0] ? msg : "connection closed");
        return;
    }
    smx_list_append(&c->pending, &ch->node);
    /* Opened from a step of its own, never from this call: a step here could run the channel's
     * callbacks (its open answered, its first data read) before the caller has even stored
     * the pointer this returns into (an SFTP client ready inside smx_sftp_start). */
    if (c->ready)
        smx_session_defer_step(&c->session);
}

void smx_chan_adopt(smx_chan *ch, smx_conn *c, ssh_channel sch, const smx_chan_ops *ops,
                    void *data)
{
    chan_init(ch, c, ops, data);
    ch->ch = sch;
    chan_set_callbacks(ch);
    smx_list_append(&c->pending, &ch->node);
    conn_channel_opened(c, ch);
}

void smx_chan_release(smx_chan *ch)
{
    smx_conn *c = ch->conn;
    if (!c)
        return;
    enum smx_chan_state was = ch->state;
    if (was == SMX_CHAN_OPENING)
        c->opening--;
    chan_forget(ch);
    chan_free_ssh(ch, was == SMX_CHAN_OPEN);
    ch->state = SMX_CHAN_CLOSED;
    ch->conn = NULL;
    if (c->ready && was != SMX_CHAN_CLOSED)
        smx_conn_flush(c);
    if (--c->chans == 0 && c->session_closed)
        conn_finish(c);
}

void smx_chan_refusal_text(const char *msg, char *out, size_t len)
{
    static const char *const reasons[] = {
        NULL, "administratively prohibited", "connect failed", "unknown channel type",
        "resource shortage",
    };
    unsigned chan, code;
    int desc = 0;
    if (!msg || sscanf(msg, "Channel opening failure: channel %u error (%u) %n", &chan, &code,
                       &desc) < 2 || desc == 0) {
        snprintf(out, len, "%s", msg && *msg ? msg : "channel open failed");
        return;
    }
    const char *text = msg + desc;
    char other[32];
    const char *reason = code < sizeof reasons / sizeof *reasons ? reasons[code] : NULL;
    if (!reason) {
        snprintf(other, sizeof other, "reason %u", code);
        reason = other;
    }
    if (*text)
        snprintf(out, len, "channel refused: %s (%s)", reason, text);
    else
        snprintf(out, len, "channel refused: %s", reason);
}

void smx_chan_mark(smx_chan *ch)
{
    smx_conn *c = ch->conn;
    if (!c || smx_list_linked(&ch->marked) || ch->state == SMX_CHAN_CLOSED)
        return;
    smx_list_append(&c->marked, &ch->marked);
    /* A step's poll runs its marks before it returns; a mark made anywhere else (outside a
     * step, or by a libssh call inside the round of marks) needs a round of its own. */
    if (!c->session.in_step || c->running_marked)
        smx_session_defer_step(&c->session);
}

void smx_chan_drive(smx_chan *ch)
{
    smx_conn *c = ch->conn;
    if (!c || smx_list_linked(&ch->driving) || ch->state != SMX_CHAN_OPEN)
        return;
    smx_list_append(&c->driving, &ch->driving);
    if (!c->session.in_step)
        smx_session_defer_step(&c->session);
}

void smx_conn_flush(smx_conn *c)
{
    /* The libssh call before this may have processed packets for any channel: marks made there
     * have asked for a step already; answers to channel opens and requests leave no trace but
     * the pending call's result, so a step re-asks while any are pending. */
    if (!smx_list_empty(&c->pending) || !smx_list_empty(&c->driving))
        smx_session_defer_step(&c->session);
    smx_session_sync_watch(&c->session);
}
