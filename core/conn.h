/* A connection: an authenticated session that hosts many channels over its lifetime (forwarded
 * connections, direct-tcpip channels for targets behind a jump host). Each channel is an
 * smx_chan with its own small state machine; the connection re-calls pending channel opens on
 * every wakeup and dispatches incoming packets to channel callbacks. A wakeup costs in proportion
 * to the channels with something to do (pending opens, marked channels), not to all of them:
 * one connection may carry thousands. */
#ifndef SSHMUX_CONN_H
#define SSHMUX_CONN_H

#include <libssh/callbacks.h>
#include <libssh/libssh.h>

#include "session.h"
#include "sshmux.h"

typedef struct smx_conn smx_conn;
typedef struct smx_chan smx_chan;

enum smx_chan_state { SMX_CHAN_QUEUED, SMX_CHAN_OPENING, SMX_CHAN_OPEN, SMX_CHAN_CLOSED };

typedef struct smx_chan_ops {
    /* Issues (and re-issues while SSH_AGAIN) the open call on c->ch. */
    int (*open)(smx_chan *c);
    /* The channel is open. */
    void (*opened)(smx_chan *c);
    /* Open refused, or the connection ended before/while it was open. c->ch is already freed;
     * the owner still calls smx_chan_release (it may do so from here). */
    void (*failed)(smx_chan *c, int code, const char *why);
    /* After the round of incoming packets in which smx_chan_mark(c) was called (optional). */
    void (*after_poll)(smx_chan *c);
} smx_chan_ops;

struct smx_chan {
    smx_chan *next, *prev;      /* on the connection's pending or open list */
    smx_chan *mnext, *mprev;    /* on its marked list, when marked */
    smx_conn *conn;             /* NULL once released */
    ssh_channel ch;
    const smx_chan_ops *ops;
    enum smx_chan_state state;
    void *data;
};

typedef struct smx_conn_events {
    void (*ready)(smx_conn *c, void *ud);
    /* The connection failed or closed (smx_conn_result says why); channels were failed first.
     * Channels started after this fail at once. */
    void (*ended)(smx_conn *c, void *ud);
    /* The session is closed and every channel released: after this the conn pointer is gone
     * (c is passed as NULL). */
    void (*closed)(smx_conn *c, void *ud);
} smx_conn_events;

struct smx_conn {
    smx_session session;
    smx_engine *engine;
    smx_hostcfg *hc;
    char *password;
    smx_result result;
    const smx_conn_events *ev;
    void *ud;
    smx_chan pending;           /* sentinel: channels queued or opening */
    smx_chan open;              /* sentinel: open channels */
    smx_chan marked;            /* sentinel (mnext/mprev): after_poll due */
    int opening, max_opening;   /* opens in flight, and their cap */
    int running_marked;         /* inside the after_poll round (no nesting) */
    int ready;
    int ended;                  /* the session failed or is closing: no new channels */
    int session_closed;         /* ... and its handles are closed */
    int chans;                  /* channels started and not yet released: they point at us */
};

/* hc is taken over; password (ssh:// URL) copied. */
smx_conn *smx_conn_new(smx_engine *e, const char *target, smx_hostcfg *hc, const char *password,
                       const smx_conn_events *ev, void *ud);
void smx_conn_start(smx_conn *c);
/* Frees a connection that was never started (no callbacks). */
void smx_conn_free_unstarted(smx_conn *c);
/* Fails every channel and closes the session; `closed` follows. */
void smx_conn_close(smx_conn *c);

/* Queues a channel: it is opened as soon as the connection is ready and the cap allows. On a
 * connection that has ended, ops->failed runs before this returns. */
void smx_chan_start(smx_chan *ch, smx_conn *c, const smx_chan_ops *ops, void *data);
/* The one close path of a started channel, in any state (also after ops->failed): sends CLOSE
 * (if open), frees the libssh channel and detaches ch (no callbacks after this; ch->conn is
 * NULL). The connection outlives its channels: it is freed (and `closed` told) only once the
 * last one is released. Idempotent. */
void smx_chan_release(smx_chan *ch);
/* Why a channel open was refused, from libssh's "Channel opening failure: channel N error (C)
 * DESC": the RFC 4254 reason named ("connect failed: Connection refused"). Other messages are
 * copied as they are. */
void smx_chan_refusal_text(const char *libssh_msg, char *out, size_t len);
/* Asks for one ops->after_poll call after the current (or next) round of packets; from a
 * channel callback, this is how work that must not run inside libssh gets done. */
void smx_chan_mark(smx_chan *ch);
/* After channel calls made outside a step: the fd may have bytes to flush, and packets libssh
 * processed there may have answered pending opens (a step is deferred to pick them up). */
void smx_conn_flush(smx_conn *c);

#endif
