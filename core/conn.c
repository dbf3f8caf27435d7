#include "conn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine_internal.h"

#define CONN_MAX_OPENING 32   /* channel opens in flight: a burst of connections waits its turn */

static void conn_list_init(smx_chan *head)
{
    head->next = head->prev = head;
    head->mnext = head->mprev = head;
}

static void conn_list_remove(smx_chan *ch)
{
    if (ch->next) {
        ch->prev->next = ch->next;
        ch->next->prev = ch->prev;
    }
    ch->next = ch->prev = NULL;
}

static void conn_list_append(smx_chan *head, smx_chan *ch)
{
    ch->prev = head->prev;
    ch->next = head;
    head->prev->next = ch;
    head->prev = ch;
}

static void conn_unmark(smx_chan *ch)
{
    if (ch->mnext) {
        ch->mprev->mnext = ch->mnext;
        ch->mnext->mprev = ch->mprev;
    }
    ch->mnext = ch->mprev = NULL;
}

static void conn_forget(smx_chan *ch)
{
    conn_list_remove(ch);
    conn_unmark(ch);
}

static void conn_fail_channel(smx_chan *ch, int code, const char *why)
{
    if (ch->state == SMX_CHAN_OPENING)
        ch->conn->opening--;
    conn_forget(ch);
    if (ch->ch) {
        ssh_channel_free(ch->ch);
        ch->ch = NULL;
    }
    ch->state = SMX_CHAN_CLOSED;
    ch->ops->failed(ch, code, why);
}

/* Starts queued opens while under the cap; re-calls pending ones. */
static void conn_drive_opens(smx_conn *c)
{
    smx_chan *ch = c->pending.next;
    while (ch != &c->pending) {
        smx_chan *next = ch->next;
        if (ch->state == SMX_CHAN_QUEUED && c->opening >= c->max_opening)
            break;   /* queued ones stay in order behind the opening ones */
        if (ch->state == SMX_CHAN_QUEUED) {
            ch->ch = ssh_channel_new(c->session.ssh);
            if (!ch->ch) {
                conn_fail_channel(ch, SMX_ENOMEM, "cannot allocate a channel");
                ch = next;
                continue;
            }
            ch->state = SMX_CHAN_OPENING;
            c->opening++;
        }
        int rc = ch->ops->open(ch);
        if (rc == SSH_OK) {
            ch->state = SMX_CHAN_OPEN;
            c->opening--;
            conn_list_remove(ch);
            conn_list_append(&c->open, ch);
            ch->ops->opened(ch);
        } else if (rc != SSH_AGAIN) {
            char why[320];
            smx_chan_refusal_text(ssh_get_error(c->session.ssh), why, sizeof why);
            conn_fail_channel(ch, SMX_ECHANNEL, why);
        }
        ch = next;
    }
}

/* Runs after_poll for the channels marked so far. The list is moved aside first: a channel
 * that marks itself again is served in the next round, not in a loop here. */
static void conn_run_marked(smx_conn *c)
{
    if (c->marked.mnext == &c->marked || c->running_marked)
        return;
    c->running_marked = 1;
    smx_chan batch;
    batch.mnext = c->marked.mnext;
    batch.mprev = c->marked.mprev;
    batch.mnext->mprev = &batch;
    batch.mprev->mnext = &batch;
    c->marked.mnext = c->marked.mprev = &c->marked;
    while (batch.mnext != &batch) {
        smx_chan *ch = batch.mnext;
        conn_unmark(ch);
        if (ch->state == SMX_CHAN_OPEN && ch->ops->after_poll)
            ch->ops->after_poll(ch);
    }
    c->running_marked = 0;
}

static void conn_ready(smx_session *s)
{
    smx_conn *c = s->data;
    c->ready = 1;
    if (c->ev->ready)
        c->ev->ready(c, c->ud);
    s->handler->step(s);
}

static void conn_step(smx_session *s)
{
    smx_conn *c = s->data;
    conn_drive_opens(c);
    if (smx_session_poll(s) < 0) {
        smx_session_fail_lost(s, "");
        return;
    }
    conn_drive_opens(c);   /* answers to opens arrive in the poll */
    conn_run_marked(c);
}

static void conn_ended(smx_session *s)
{
    smx_conn *c = s->data;
    c->ended = 1;
    char why[600];
    snprintf(why, sizeof why, "%s", c->result.err_msg[0] ? c->result.err_msg : "connection closed");
    while (c->pending.next != &c->pending)
        conn_fail_channel(c->pending.next, SMX_ECLOSED, why);
    while (c->open.next != &c->open)
        conn_fail_channel(c->open.next, SMX_ECLOSED, why);
    c->ready = 0;
    if (c->ev->ended)
        c->ev->ended(c, c->ud);
}

static void conn_free(smx_conn *c)
{
    smx_result_free(&c->result);
    smx_hostcfg_free(c->hc);
    free(c->hc);
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

smx_conn *smx_conn_new(smx_engine *e, const char *target, smx_hostcfg *hc, const char *password,
                       const smx_conn_events *ev, void *ud)
{
    smx_conn *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    smx_result_init(&c->result);
    c->result.host = strdup(hc->host ? hc->host : "");
    c->result.target = strdup(target ? target : "");
    c->result.user = hc->user ? strdup(hc->user) : NULL;
    c->result.hostname = hc->hostname ? strdup(hc->hostname) : NULL;
    c->result.port = hc->port;
    c->engine = e;
    c->hc = hc;
    c->password = password ? strdup(password) : NULL;
    c->ev = ev;
    c->ud = ud;
    conn_list_init(&c->pending);
    conn_list_init(&c->open);
    conn_list_init(&c->marked);
    c->max_opening = CONN_MAX_OPENING;
    smx_session_init(&c->session, e, hc, &conn_handler, c, &c->result);
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

void smx_chan_start(smx_chan *ch, smx_conn *c, const smx_chan_ops *ops, void *data)
{
    memset(ch, 0, sizeof *ch);
    ch->conn = c;
    ch->ops = ops;
    ch->data = data;
    ch->state = SMX_CHAN_QUEUED;
    c->chans++;
    if (c->ended) {
        /* Nothing would ever open or fail it: the connection has failed its channels already. */
        ch->state = SMX_CHAN_CLOSED;
        ops->failed(ch, SMX_ECLOSED, c->result.err_msg[0] ? c->result.err_msg
                                                          : "connection closed");
        return;
    }
    conn_list_append(&c->pending, ch);
    if (c->ready)
        smx_session_kick(&c->session);
}

void smx_chan_release(smx_chan *ch)
{
    smx_conn *c = ch->conn;
    if (!c)
        return;
    enum smx_chan_state was = ch->state;
    if (was == SMX_CHAN_OPENING)
        c->opening--;
    conn_forget(ch);
    if (ch->ch) {
        if (was == SMX_CHAN_OPEN && ssh_channel_is_open(ch->ch))
            ssh_channel_close(ch->ch);
        ssh_channel_free(ch->ch);
        ch->ch = NULL;
    }
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
    smx_chan *head = &c->marked;
    if (ch->mnext || ch->state == SMX_CHAN_CLOSED)
        return;
    ch->mprev = head->mprev;
    ch->mnext = head;
    head->mprev->mnext = ch;
    head->mprev = ch;
    /* A step's poll runs its marks before it returns; a mark made anywhere else (outside a
     * step, or by a libssh call inside the round of marks) needs a round of its own. */
    if (!c->session.in_step || c->running_marked)
        smx_session_defer_step(&c->session);
}

void smx_conn_flush(smx_conn *c)
{
    /* The libssh call before this may have processed packets for any channel: marks made there
     * have asked for a step already; answers to channel opens leave no trace but the open
     * call's result, so a step re-asks while any are pending. */
    if (c->pending.next != &c->pending)
        smx_session_defer_step(&c->session);
    smx_session_sync_watch(&c->session);
}
