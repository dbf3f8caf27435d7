/* A connection: an authenticated session that carries any number of channels of any kind at once
 * (an exec, forwarded connections, direct-tcpip channels for targets behind a jump host, channels
 * the server opens towards us) and the session's global requests.
 *
 * A channel application implements smx_chan_ops: the connection opens its channel (or adopts one
 * the server opened), installs one set of libssh callbacks per channel and dispatches them to the
 * ops. Channel callbacks run inside libssh: work that must not (freeing, writing to the peer)
 * is done from after_poll, asked for with smx_chan_mark. A wakeup costs in proportion to the
 * channels with something to do (pending opens and requests, marked channels), not to all of
 * them: one connection may carry thousands.
 *
 * Teardown: an object outlives everything that points at it. smx_chan_release is the one close
 * path of a channel, in any state; the connection is freed (and `closed` told) only once its
 * session is closed and its last channel released. */
#ifndef SSHMUX_CONN_H
#define SSHMUX_CONN_H

#include <libssh/callbacks.h>
#include <libssh/libssh.h>

#include "globalreq.h"
#include "list.h"
#include "session.h"

typedef struct smx_conn smx_conn;
typedef struct smx_chan smx_chan;

enum smx_chan_state { SMX_CHAN_QUEUED, SMX_CHAN_OPENING, SMX_CHAN_OPEN, SMX_CHAN_CLOSED };

/* What a channel application implements. Only `failed` is required; the rest as the kind needs.
 * The data-path callbacks (data .. exit_signal) run inside libssh. */
typedef struct smx_chan_ops {
    const char *kind;            /* for traces: "exec", "direct-tcpip", ... */
    /* Outbound channels: issues (and re-issues while SSH_AGAIN) the open call on c->ch. */
    int (*open)(smx_chan *c);
    /* The channel is open (or was adopted). */
    void (*opened)(smx_chan *c);
    /* Open refused, or the connection ended before/while it was open. c->ch is already freed;
     * the owner still calls smx_chan_release (it may do so from here). */
    void (*failed)(smx_chan *c, int code, const char *why);
    /* Bytes from the peer. Returns how many were taken; the rest stays in libssh and keeps our
     * window shut (read it later with ssh_channel_read_nonblocking). NULL: all taken. */
    int (*data)(smx_chan *c, void *data, uint32_t len, int is_stderr);
    void (*eof)(smx_chan *c);
    /* The peer closed the channel. */
    void (*closed)(smx_chan *c);
    /* The peer's window has room again (ssh_channel_write would take `bytes`). */
    void (*writable)(smx_chan *c, uint32_t bytes);
    void (*exit_status)(smx_chan *c, int status);
    void (*exit_signal)(smx_chan *c, const char *signal, int core, const char *errmsg);
    /* While smx_chan_drive is on: re-called on every step until it returns non-zero, for
     * channel requests that are answered later (pty-req, env, exec, ...: ssh/sessreq.h). It
     * must not release the channel (mark it and release from after_poll). */
    int (*drive)(smx_chan *c);
    /* After the round of incoming packets in which smx_chan_mark(c) was called. */
    void (*after_poll)(smx_chan *c);
} smx_chan_ops;

struct smx_chan {
    smx_list node;               /* on the connection's pending or open list */
    smx_list marked;             /* on its marked list, when marked */
    smx_list driving;            /* on its driving list, while drive is due */
    smx_conn *conn;              /* NULL once released */
    ssh_channel ch;
    const smx_chan_ops *ops;
    enum smx_chan_state state;
    struct ssh_channel_callbacks_struct cb;
    void *data;
};

typedef struct smx_conn_events {
    void (*ready)(smx_conn *c, void *ud);
    /* The connection failed or closed (the result says why); channels were failed first.
     * Channels started after this fail at once. */
    void (*ended)(smx_conn *c, void *ud);
    /* The session is closed and every channel released: the conn pointer is gone (c is NULL). */
    void (*closed)(smx_conn *c, void *ud);
} smx_conn_events;

/* A channel the server opens: "forwarded-tcpip" (a -R listener's connection) has the address and
 * port that were connected to and the originator's; "forwarded-streamlocal@openssh.com" (a
 * remote Unix socket listener's) has the socket path in `address`, no port and no originator.
 * A kind nobody accepts, and any other kind the server opens, is refused. */
#define SMX_INBOUND_TCPIP "forwarded-tcpip"
#define SMX_INBOUND_STREAMLOCAL "forwarded-streamlocal@openssh.com"
typedef struct smx_inbound_open {
    const char *kind;
    const char *address;
    int port;
    const char *originator;
    int originator_port;
} smx_inbound_open;

/* Accepts (smx_chan_adopt on `ch`, returning 0) or refuses (non-zero: the server is told the
 * open failed). Runs inside libssh. */
typedef int (*smx_inbound_fn)(smx_conn *c, const smx_inbound_open *o, ssh_channel ch, void *ud);

struct smx_conn {
    smx_session session;
    smx_ctx *ctx;
    const smx_hostcfg *hc;      /* the owner's; outlives the connection */
    char *password;
    smx_result *result;         /* the owner's; outlives the connection */
    const smx_conn_events *ev;
    void *ud;
    smx_list pending;           /* channels queued or opening */
    smx_list open;              /* open channels */
    smx_list marked;            /* after_poll due */
    smx_list driving;           /* drive due */
    int opening, max_opening;   /* opens in flight, and their cap */
    int running_marked;         /* inside the after_poll round (no nesting) */
    int ready;
    int ended;                  /* the session failed or is closing: no new channels */
    int session_closed;         /* ... and its handles are closed */
    int chans;                  /* channels started and not yet released: they point at us */
    const char *loss_context;   /* appended to "connection lost" (" while running") */
    struct smx_inbound_kind *inbound;   /* kinds accepted from the server */
    struct ssh_callbacks_struct sesscb;
};

/* password (ssh:// URL) is copied; hc and result must outlive the connection (until `closed`). */
smx_conn *smx_conn_new(smx_ctx *ctx, const smx_hostcfg *hc, const char *password,
                       smx_result *result, const smx_conn_events *ev, void *ud);
void smx_conn_start(smx_conn *c);
/* Frees a connection that was never started (no callbacks). */
void smx_conn_free_unstarted(smx_conn *c);
/* Fails every channel and closes the session; `closed` follows. */
void smx_conn_close(smx_conn *c);
/* Accepts channels of `kind` from the server with fn (one handler per kind; NULL removes it). */
int smx_conn_accept(smx_conn *c, const char *kind, smx_inbound_fn fn, void *ud);
/* A global request through the session's queue (ssh/globalreq.h). */
smx_global_req *smx_conn_global_request(smx_conn *c, const char *name, const void *data,
                                        size_t len, int want_reply, smx_global_cb cb, void *ud);

/* Queues an outbound channel: opened as soon as the connection is ready and the cap allows. On a
 * connection that has ended, ops->failed runs before this returns. */
void smx_chan_start(smx_chan *ch, smx_conn *c, const smx_chan_ops *ops, void *data);
/* Takes a channel the server opened (from an smx_inbound_fn): it is open at once. */
void smx_chan_adopt(smx_chan *ch, smx_conn *c, ssh_channel sch, const smx_chan_ops *ops,
                    void *data);
/* The one close path of a started channel, in any state (also after ops->failed): sends CLOSE
 * (if open), frees the libssh channel and detaches ch (no callbacks after this; ch->conn is
 * NULL). Idempotent. */
void smx_chan_release(smx_chan *ch);
/* Why a channel open was refused, from libssh's "Channel opening failure: channel N error (C)
 * DESC": the RFC 4254 reason named ("connect failed: Connection refused"). Other messages are
 * copied as they are. */
void smx_chan_refusal_text(const char *libssh_msg, char *out, size_t len);
/* Asks for one ops->after_poll call after the current (or next) round of packets. */
void smx_chan_mark(smx_chan *ch);
/* Turns ops->drive calls on (until it returns non-zero). */
void smx_chan_drive(smx_chan *ch);
/* After channel calls made outside a step: the fd may have bytes to flush, and packets libssh
 * processed there may have answered pending opens (a step is deferred to pick them up). */
void smx_conn_flush(smx_conn *c);

#endif
