#include "pipe.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sessreq.h"

/* One read from the stream per wakeup, written at once as one SSH packet (sshd's max packet is
 * 32 KiB). 64 KiB reads made ~170 KiB sends that carried the loopback delivery into sshd's socket
 * in our context: uploading, 1.1-1.25 s/GiB of system time against 0.68-0.92 with 32 KiB
 * (bench/results/fwd14-read32k.md). */
#define PIPE_READ_SIZE (32 * 1024)
#define PIPE_HIGH_WATER (1024 * 1024)   /* queued towards the stream before we stop taking more */
#define PIPE_LOW_WATER (256 * 1024)

struct smx_pipe {
    smx_chan chan;               /* our channel on the connection */
    uv_stream_t *stream;
    smx_pipe_open_fn open;
    void *open_arg;
    smx_pipe_done_cb done;
    void (*opened_cb)(smx_pipe *p, void *ud);
    smx_pipe_refused_fn refused_cb;
    smx_pipe_early_fn early_cb;
    void *ud;
    smx_sessreq req;             /* a session channel's requests (smx_pipe_open_session) */
    int is_session;
    int opened;                  /* the channel is open (and a session's command started) */
    smx_pipe_stats stats;

    char rbuf[PIPE_READ_SIZE];   /* stream -> channel: one read, possibly partly written */
    size_t roff, rlen;
    int reading;
    int stream_eof;              /* the stream side sent EOF */
    int eof_sent;                /* ... and we passed it on to the channel */

    size_t queued;               /* channel -> stream bytes in uv_write requests */
    int held;                    /* the data callback left data in libssh (back-pressure) */
    int chan_eof, peer_closed;   /* from the peer */
    int shut;                    /* shutdown(SHUT_WR) requested on the stream */
    int in_libssh;               /* inside a libssh callback: never free the channel there */
    int in_write;                /* inside ssh_channel_write (it may process packets itself) */
    int ending;                  /* teardown started */
    char *error;
};

typedef struct pipe_write {
    uv_write_t req;
    smx_pipe *p;
    size_t len;
    char data[];
} pipe_write;

static void pipe_try_end(smx_pipe *p);
static void pipe_drain_held(smx_pipe *p);
static void pipe_start_reading(smx_pipe *p);

static void pipe_on_shutdown(uv_shutdown_t *req, int status)
{
    free(req);
}

static void pipe_set_error(smx_pipe *p, const char *why)
{
    if (!p->error)
        p->error = strdup(why);
}

/* ---- teardown ---------------------------------------------------------------------------- */

/* No stream yet (smx_pipe_attach not called): its channel's data waits in libssh. */
#define PIPE_STREAM_HELD(p) ((p)->stream == NULL)

static void pipe_finish(smx_pipe *p)
{
    p->done(p, p->error, p->ud);
    if (p->is_session)
        smx_sessreq_free(&p->req);
    free(p->error);
    free(p);
}

static void pipe_on_stream_closed(uv_handle_t *h)
{
    smx_pipe *p = h->data;
    free(h);
    pipe_finish(p);
}

/* The channel goes first (the connection may be freed once its last channel is released), then
 * the stream; the pipe is freed when the stream's close completes. */
static void pipe_end_now(smx_pipe *p)
{
    p->ending = 1;
    smx_chan_release(&p->chan);
    if (p->stream) {
        uv_close((uv_handle_t *)p->stream, pipe_on_stream_closed);
        return;
    }
    pipe_finish(p);   /* never attached: nothing to wait for */
}

/* Ends when the peer closed (or both EOFs passed) and everything read has been delivered, or at
 * once on an error. Deferred while libssh is on the stack. */
static void pipe_try_end(smx_pipe *p)
{
    if (p->ending || p->in_libssh)
        return;
    if (p->error) {
        pipe_end_now(p);
        return;
    }
    int delivered = !p->held && p->queued == 0;
    if (PIPE_STREAM_HELD(p)) {
        if (p->peer_closed)
            pipe_end_now(p);   /* nothing was ever connected to deliver to */
        return;
    }
    if (p->chan_eof && delivered && !p->shut && !p->peer_closed) {
        p->shut = 1;   /* half-close: the peer is done sending, the stream may still talk */
        uv_shutdown_t *req = malloc(sizeof *req);
        if (req && uv_shutdown(req, p->stream, pipe_on_shutdown) < 0)
            free(req);
    }
    if (delivered && (p->peer_closed || (p->chan_eof && p->eof_sent))) {
        pipe_end_now(p);
        return;
    }
    if (p->peer_closed && !p->reading) {
        /* Nothing more can go to the peer, but what it sent still goes to the stream. Its
         * other end may be blocked writing to us (an echo server) and only then read the rest:
         * read and drop what it says, or both sides would wait for each other for ever. */
        p->roff = p->rlen = 0;
        pipe_start_reading(p);
    }
}

static void pipe_fail(smx_pipe *p, const char *why)
{
    pipe_set_error(p, why);
    pipe_try_end(p);
}

void smx_pipe_abort(smx_pipe *p, const char *why)
{
    if (p->ending)
        return;
    if (p->in_libssh) {   /* from our own callback: ended when it returns */
        pipe_set_error(p, why ? why : "aborted");
        smx_chan_mark(&p->chan);
        return;
    }
    pipe_set_error(p, why ? why : "aborted");
    pipe_end_now(p);
}

const smx_pipe_stats *smx_pipe_get_stats(const smx_pipe *p)
{
    return &p->stats;
}

/* ---- stream -> channel ------------------------------------------------------------------ */

static void pipe_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    smx_pipe *p = h->data;
    *buf = uv_buf_init(p->rbuf, PIPE_READ_SIZE);
}

static void pipe_send_eof_if_due(smx_pipe *p)
{
    if (p->stream_eof && !p->eof_sent && p->roff == p->rlen && !p->peer_closed) {
        p->eof_sent = 1;
        ssh_channel_send_eof(p->chan.ch);
    }
}

/* Writes what is pending to the channel; returns 1 when it all went. ssh_channel_write may
 * process incoming packets while the peer's window is shut, and a WINDOW_ADJUST among them calls
 * write_wontblock: that re-entry must not write the same bytes again (in_write). */
static int pipe_flush_to_channel(smx_pipe *p)
{
    while (p->roff < p->rlen) {
        p->in_write++;
        int n = ssh_channel_write(p->chan.ch, p->rbuf + p->roff, (uint32_t)(p->rlen - p->roff));
        p->in_write--;
        if (n < 0) {
            pipe_set_error(p, "channel write failed");
            return 0;
        }
        if (n == 0)
            return 0;   /* the peer's window is shut: write_wontblock calls us again */
        p->roff += (size_t)n;
        p->stats.to_channel += (uint64_t)n;
    }
    p->roff = p->rlen = 0;
    return 1;
}

static void pipe_on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    smx_pipe *p = s->data;
    if (n == 0 || p->ending)
        return;
    if (n < 0) {
        uv_read_stop(s);
        p->reading = 0;
        if (n != UV_EOF) {
            pipe_fail(p, uv_strerror((int)n));
            return;
        }
        p->stream_eof = 1;
        pipe_send_eof_if_due(p);
    } else if (!p->peer_closed) {   /* else dropped: nobody to send it to */
        p->roff = 0;
        p->rlen = (size_t)n;
        if (!pipe_flush_to_channel(p)) {
            uv_read_stop(s);   /* back-pressure: resumed from write_wontblock */
            p->reading = 0;
        }
    }
    smx_conn_flush(p->chan.conn);
    pipe_try_end(p);
}

static void pipe_start_reading(smx_pipe *p)
{
    if (!p->reading && !p->stream_eof && !p->ending && !PIPE_STREAM_HELD(p) && p->opened) {
        p->reading = 1;
        uv_read_start(p->stream, pipe_alloc, pipe_on_read);
    }
}

static void pipe_on_writable(smx_chan *c, uint32_t bytes)
{
    smx_pipe *p = c->data;
    if (p->in_write || !p->opened)
        return;   /* the write on the stack goes on by itself; or nothing may move yet */
    /* libssh calls this for every channel of the connection each time its socket turns
     * writable: only a pipe that was waiting has anything to do. */
    if (!p->rlen && !(p->stream_eof && !p->eof_sent))
        return;
    if (p->rlen && pipe_flush_to_channel(p))
        pipe_start_reading(p);
    pipe_send_eof_if_due(p);
    smx_chan_mark(&p->chan);   /* a write error or the EOF just sent may end the pipe */
}

/* ---- channel -> stream ------------------------------------------------------------------ */

static void pipe_on_written(uv_write_t *req, int status)
{
    pipe_write *w = (pipe_write *)req;
    smx_pipe *p = w->p;
    p->queued -= w->len;
    free(w);
    if (p->ending)
        return;
    if (status < 0) {
        pipe_fail(p, uv_strerror(status));
        return;
    }
    if (p->held && p->queued < PIPE_LOW_WATER)
        pipe_drain_held(p);
    pipe_try_end(p);
}

/* Sends len bytes to the stream: what it takes now is written at once, the rest queued. */
static int pipe_write_stream(smx_pipe *p, const char *data, size_t len)
{
    p->stats.to_stream += len;
    if (p->queued == 0) {
        uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
        int n = uv_try_write(p->stream, &b, 1);
        if (n < 0 && n != UV_EAGAIN)
            return n;
        if (n > 0) {
            data += n;
            len -= (size_t)n;
        }
    }
    if (len == 0)
        return 0;
    pipe_write *w = malloc(sizeof *w + len);
    if (!w)
        return UV_ENOMEM;
    w->p = p;
    w->len = len;
    memcpy(w->data, data, len);
    uv_buf_t b = uv_buf_init(w->data, (unsigned)len);
    int rc = uv_write(&w->req, p->stream, &b, 1, pipe_on_written);
    if (rc < 0) {
        free(w);
        return rc;
    }
    p->queued += len;
    return 0;
}

static int pipe_on_data(smx_chan *c, void *data, uint32_t len, int is_stderr)
{
    smx_pipe *p = c->data;
    if (p->ending || p->error || (is_stderr && p->is_session))
        return (int)len;   /* nobody to deliver to (or a remote command's messages): drop */
    /* Data may come in the same round as the open's confirmation, before `opened`: the owner
     * speaks first (a SOCKS reply), so it waits. */
    if (p->held || p->queued >= PIPE_HIGH_WATER || PIPE_STREAM_HELD(p) || !p->opened) {
        p->held = 1;       /* stays in libssh; our window to the peer closes behind it */
        smx_chan_mark(&p->chan);
        return 0;
    }
    int rc = pipe_write_stream(p, data, len);
    if (rc < 0) {
        pipe_set_error(p, uv_strerror(rc));
        smx_chan_mark(&p->chan);
    }
    return (int)len;
}

/* Moves what the data callback left in libssh to the stream, up to the high-water mark. Reading
 * it lets libssh grow our window again. `held` is cleared only by a read that found nothing:
 * reading can pull new packets into libssh's buffer (the callback holds them while `held`), so
 * checking afterwards could leave data held with no write pending to come back for it. */
static void pipe_drain_held(smx_pipe *p)
{
    static const size_t chunk = PIPE_READ_SIZE;
    if (PIPE_STREAM_HELD(p) || !p->opened)
        return;
    char *buf = malloc(chunk);
    p->in_libssh++;
    while (buf && !p->error) {
        if (p->queued >= PIPE_HIGH_WATER)
            break;   /* still held; the write completions call us again */
        int n = ssh_channel_read_nonblocking(p->chan.ch, buf, (uint32_t)chunk, 0);
        if (n <= 0) {
            p->held = 0;   /* nothing buffered (or EOF/error): new data may flow again */
            break;
        }
        if (pipe_write_stream(p, buf, (size_t)n) < 0)
            pipe_set_error(p, "stream write failed");
    }
    p->in_libssh--;
    free(buf);
    smx_conn_flush(p->chan.conn);   /* a WINDOW_ADJUST may be queued */
}

static void pipe_on_eof(smx_chan *c)
{
    smx_pipe *p = c->data;
    p->chan_eof = 1;
    smx_chan_mark(&p->chan);   /* half-close or end: decided after the poll, outside libssh */
}

static void pipe_on_close(smx_chan *c)
{
    smx_pipe *p = c->data;
    p->chan_eof = 1;
    p->peer_closed = 1;
    smx_chan_mark(&p->chan);
}

/* ---- channel lifecycle (smx_chan ops) --------------------------------------------------- */

static int pipe_chan_open(smx_chan *c)
{
    smx_pipe *p = c->data;
    return p->open(c->ch, p->open_arg);
}

/* The channel carries bytes now: the owner is told first (a SOCKS reply goes out before any
 * byte of the destination's), then what was read ahead goes to the channel. */
static void pipe_begin(smx_pipe *p)
{
    p->opened = 1;
    if (PIPE_STREAM_HELD(p) && p->early_cb)
        smx_chan_mark(&p->chan);   /* the owner's first call, outside libssh */
    if (p->opened_cb)
        p->opened_cb(p, p->ud);
    if (p->ending)
        return;
    if (p->held)
        smx_chan_mark(&p->chan);   /* data that came with the confirmation */
    if (p->rlen && !pipe_flush_to_channel(p))
        return;   /* write_wontblock goes on */
    pipe_send_eof_if_due(p);
    pipe_start_reading(p);
}

static void pipe_chan_opened(smx_chan *c)
{
    smx_pipe *p = c->data;
    if (p->is_session) {
        smx_chan_drive(c);   /* the command's request first */
        return;
    }
    pipe_begin(p);
}

static int pipe_chan_drive(smx_chan *c)
{
    smx_pipe *p = c->data;
    if (!p->is_session || p->opened)
        return 1;
    int rc = smx_sessreq_step(&p->req, c->ch);
    if (rc == 0)
        return 0;
    if (rc < 0) {
        char msg[SMX_MSG_MAX];
        smx_sessreq_refusal(&p->req, c->ch, msg, sizeof msg);
        pipe_set_error(p, msg);
        smx_chan_mark(c);   /* ended from after_poll, outside the request round */
        return 1;
    }
    pipe_begin(p);
    smx_conn_flush(c->conn);
    return 1;
}

void smx_pipe_on_opened(smx_pipe *p, void (*cb)(smx_pipe *p, void *ud))
{
    p->opened_cb = cb;
}

static void pipe_chan_failed(smx_chan *c, int code, const char *why)
{
    smx_pipe *p = c->data;
    if (!p->opened && !p->ending && p->refused_cb) {
        smx_chan_release(&p->chan);   /* the owner may open it again (smx_pipe_open*) */
        if (p->refused_cb(p, code, why, p->ud))
            return;
    }
    pipe_set_error(p, why);
    if (!p->ending)
        pipe_end_now(p);
    else
        smx_chan_release(&p->chan);
}

/* After a round of packets in which a callback marked us: deliver what was held, then see
 * whether we are done. */
static void pipe_chan_after_poll(smx_chan *c)
{
    smx_pipe *p = c->data;
    if (PIPE_STREAM_HELD(p) && p->early_cb && !p->ending && !p->error) {
        p->in_libssh++;
        p->early_cb(p, p->ud);   /* it reads what it wants (smx_pipe_read_early) */
        p->in_libssh--;
    }
    if (p->held && p->queued < PIPE_LOW_WATER)
        pipe_drain_held(p);
    pipe_try_end(p);
}

static const smx_chan_ops pipe_chan_ops = {
    .kind = "pipe",
    .open = pipe_chan_open,
    .opened = pipe_chan_opened,
    .failed = pipe_chan_failed,
    .data = pipe_on_data,
    .eof = pipe_on_eof,
    .closed = pipe_on_close,
    .writable = pipe_on_writable,
    .drive = pipe_chan_drive,
    .after_poll = pipe_chan_after_poll,
};

smx_pipe *smx_pipe_new(uv_stream_t *stream, smx_pipe_done_cb done, void *ud)
{
    smx_pipe *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->stream = stream;
    if (stream)
        stream->data = p;
    p->done = done;
    p->ud = ud;
    return p;
}

void smx_pipe_open(smx_pipe *p, smx_conn *c, smx_pipe_open_fn open, void *arg)
{
    p->open = open;
    p->open_arg = arg;
    smx_chan_start(&p->chan, c, &pipe_chan_ops, p);
}

static int pipe_open_session(ssh_channel ch, void *arg)
{
    return ssh_channel_open_session(ch);
}

int smx_pipe_open_session(smx_pipe *p, smx_conn *c, const smx_sessreq_spec *spec)
{
    if (p->is_session)
        smx_sessreq_free(&p->req);   /* a reopen starts the sequence again */
    p->is_session = 1;
    if (smx_sessreq_init(&p->req, spec) < 0) {
        p->is_session = 0;
        return SMX_ENOMEM;
    }
    smx_pipe_open(p, c, pipe_open_session, NULL);
    return 0;
}

void smx_pipe_adopt(smx_pipe *p, smx_conn *c, ssh_channel ch)
{
    smx_chan_adopt(&p->chan, c, ch, &pipe_chan_ops, p);
}

void smx_pipe_on_refused(smx_pipe *p, smx_pipe_refused_fn cb)
{
    p->refused_cb = cb;
}

void smx_pipe_on_early_data(smx_pipe *p, smx_pipe_early_fn cb)
{
    p->early_cb = cb;
}

void smx_pipe_attach(smx_pipe *p, uv_stream_t *stream)
{
    p->stream = stream;
    stream->data = p;
    if (p->ending)
        return;
    pipe_start_reading(p);
    if (p->held || p->chan_eof)
        smx_chan_mark(&p->chan);   /* what waited in libssh goes to the stream now */
}

int smx_pipe_read_early(smx_pipe *p, void *buf, size_t len)
{
    if (!PIPE_STREAM_HELD(p) || p->ending || p->error || !p->chan.conn ||
        p->chan.state != SMX_CHAN_OPEN)
        return -1;
    int n = ssh_channel_read_nonblocking(p->chan.ch, buf, (uint32_t)len, 0);
    if (n <= 0)
        p->held = 0;   /* nothing buffered: the data callback marks us when more comes */
    smx_conn_flush(p->chan.conn);   /* our window may have grown */
    return n < 0 ? -1 : n;
}

int smx_pipe_preload(smx_pipe *p, const void *data, size_t len)
{
    if (p->opened || len > PIPE_READ_SIZE - p->rlen)
        return -1;
    memcpy(p->rbuf + p->rlen, data, len);
    p->rlen += len;
    return 0;
}

int smx_pipe_send(smx_pipe *p, const void *data, size_t len)
{
    if (p->ending || !p->chan.conn || p->chan.state != SMX_CHAN_OPEN)
        return -1;
    int n = ssh_channel_write(p->chan.ch, data, (uint32_t)len);
    if (n < 0 || (size_t)n != len)
        return -1;   /* a few bytes the peer's first window always takes */
    p->stats.to_channel += len;
    smx_conn_flush(p->chan.conn);
    return 0;
}
