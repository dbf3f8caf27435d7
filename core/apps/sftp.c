/* The SFTP client channel: session channel -> `subsystem sftp` (ssh/sessreq.c) -> INIT/VERSION
 * -> limits@openssh.com when offered -> requests. */
#include "sftp.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sessreq.h"

#define SFTP_DEFAULT_BLOCK 32768u
#define SFTP_LOW_WATER (512u * 1024u)
#define SFTP_IN_KEEP (512u * 1024u)     /* input buffer kept between rounds */   /* below this much queued, tell the user `writable` */

enum sftp_state {
    SFTP_OPENING,     /* session channel open pending */
    SFTP_REQUESTS,    /* subsystem request pending */
    SFTP_VERSION,     /* INIT sent */
    SFTP_LIMITS,      /* limits@openssh.com asked */
    SFTP_READY,
    SFTP_ENDED,       /* failed: waiting for the owner's close */
    SFTP_CLOSED
};

/* Bytes queued for the channel: a packet's own bytes (inline) or borrowed WRITE data. */
typedef struct sftp_seg {
    smx_list node;
    uint32_t id;                  /* the request's, on its first segment (head) */
    int head;
    const uint8_t *p;
    size_t len, off;
    void (*release)(void *arg);
    void *arg;
    uint8_t own[];
} sftp_seg;

typedef struct sftp_pending {
    smx_list node;
    uint32_t id;
    smx_sftp_cb cb;
    void *ud;
} sftp_pending;

struct smx_sftp {
    smx_chan chan;
    const smx_sftp_events *ev;
    enum sftp_state st;
    smx_sessreq_spec req_spec;
    smx_sessreq req;
    uv_timer_t defer;             /* runs `ended` outside libssh's callbacks */
    smx_sftp_out out;             /* the request being built */
    uint32_t next_id;
    smx_list queue;               /* sftp_seg */
    size_t queued;
    smx_list pending;             /* sftp_pending, in id order */
    uint8_t *in;                  /* bytes from the server not yet parsed */
    size_t in_len, in_cap;
    int in_write, remote_closed, want_writable, end_code;
    char **exts;
    size_t nexts;
    size_t max_read, max_write;
    char err[SMX_MSG_MAX];
};

static void sftp_fail(smx_sftp *s, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- output queue ----------------------------------------------------------------------------- */

static void sftp_seg_free(sftp_seg *g)
{
    smx_list_remove(&g->node);
    if (g->release)
        g->release(g->arg);
    free(g);
}

/* Hands queued bytes to libssh as far as the window takes them; 0, or -1 on a write error. */
static int sftp_flush(smx_sftp *s)
{
    while (!smx_list_empty(&s->queue) && s->chan.ch) {
        sftp_seg *g = smx_list_entry(s->queue.next, sftp_seg, node);
        if (g->off == g->len) {   /* an empty last part that only carries a release */
            sftp_seg_free(g);
            continue;
        }
        s->in_write++;
        int n = ssh_channel_write(s->chan.ch, g->p + g->off, (uint32_t)(g->len - g->off));
        s->in_write--;
        if (n < 0)
            return -1;
        if (n == 0)
            break;   /* window shut: `writable` brings us back */
        g->off += (size_t)n;
        s->queued -= (size_t)n;
        if (g->off == g->len)
            sftp_seg_free(g);
    }
    if (s->queued < SFTP_LOW_WATER && s->want_writable) {
        s->want_writable = 0;
        smx_chan_mark(&s->chan);   /* the owner's `writable` runs from after_poll */
    }
    return 0;
}

static void sftp_flush_or_fail(smx_sftp *s)
{
    if (sftp_flush(s) < 0)
        sftp_fail(s, SMX_ESSH, "sftp: channel write failed: %s",
                  ssh_get_error(ssh_channel_get_session(s->chan.ch)));
    else if (s->chan.conn)
        smx_conn_flush(s->chan.conn);
}

static int sftp_queue(smx_sftp *s, const uint8_t *p, size_t len, int copy,
                      void (*release)(void *), void *arg)
{
    sftp_seg *g = malloc(sizeof *g + (copy ? len : 0));
    if (!g)
        return SMX_ENOMEM;
    if (copy) {
        memcpy(g->own, p, len);
        p = g->own;
    }
    g->p = p;
    g->len = len;
    g->off = 0;
    g->release = release;
    g->arg = arg;
    g->head = 0;
    smx_list_append(&s->queue, &g->node);
    s->queued += len;
    return 0;
}

smx_sftp_out *smx_sftp_begin(smx_sftp *s, uint8_t type)
{
    smx_sftp_out_begin(&s->out, type, s->next_id++);
    return &s->out;
}

smx_sftp_out *smx_sftp_begin_ext(smx_sftp *s, const char *name)
{
    smx_sftp_out *o = smx_sftp_begin(s, SMX_FXP_EXTENDED);
    smx_sftp_out_cstr(o, name);
    return o;
}

static uint32_t sftp_out_id(const smx_sftp_out *o)
{
    const uint8_t *p = o->p + 5;
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

int smx_sftp_send(smx_sftp *s, const smx_sftp_data *data, smx_sftp_cb cb, void *ud)
{
    size_t extra = data ? data->len[0] + data->len[1] : 0;
    sftp_pending *pd = NULL;
    int release_queued = 0;
    int rc = s->st == SFTP_READY || s->st == SFTP_LIMITS ? 0 : SMX_ECLOSED;
    if (rc == 0)
        rc = smx_sftp_out_end(&s->out, extra);
    if (rc == 0 && !(pd = malloc(sizeof *pd)))
        rc = SMX_ENOMEM;
    if (rc == 0 && (rc = sftp_queue(s, s->out.p, s->out.len, 1, NULL, NULL)) == 0) {
        sftp_seg *g = smx_list_entry(s->queue.prev, sftp_seg, node);
        g->head = 1;
        g->id = sftp_out_id(&s->out);
    }
    for (int i = 0; rc == 0 && data && i < 2; i++) {
        if (data->len[i] || (i == 1 && data->release))
            rc = sftp_queue(s, data->p[i], data->len[i], 0,
                            i == 1 ? data->release : NULL, data->arg);
        release_queued = rc == 0 && i == 1 && data->release;
    }
    if (rc < 0) {
        /* a failure after the header was queued would corrupt the stream: nothing more goes */
        free(pd);
        if (data && data->release && !release_queued)
            data->release(data->arg);
        if (rc == SMX_ENOMEM && s->st != SFTP_ENDED)
            sftp_fail(s, SMX_ENOMEM, "sftp: out of memory");
        return rc;
    }
    pd->id = sftp_out_id(&s->out);
    pd->cb = cb;
    pd->ud = ud;
    smx_list_append(&s->pending, &pd->node);
    if (!s->in_write)
        sftp_flush_or_fail(s);
    if (s->queued >= SFTP_LOW_WATER)
        s->want_writable = 1;
    return 0;
}

/* Hands r to the request it answers (which is then forgotten): 0, or -1 when no request of
 * that id is pending. Replies come in request order from every server seen; any is accepted. */
static int sftp_deliver(smx_sftp *s, smx_sftp_reply *r)
{
    for (smx_list *n = s->pending.next; n != &s->pending; n = n->next) {
        sftp_pending *pd = smx_list_entry(n, sftp_pending, node);
        if (pd->id != r->id)
            continue;
        smx_list_remove(&pd->node);
        smx_sftp_cb cb = pd->cb;
        void *ud = pd->ud;
        free(pd);
        cb(ud, r);
        return 0;
    }
    return -1;
}

/* Answers request `id` with a STATUS the server never sent. */
static void sftp_answer_locally(smx_sftp *s, uint32_t id, uint32_t status, const char *msg)
{
    smx_sftp_reply r = {.type = SMX_FXP_STATUS, .id = id, .status = status,
                        .msg = (const uint8_t *)msg, .msg_len = strlen(msg)};
    sftp_deliver(s, &r);
}

void smx_sftp_discard_unsent(smx_sftp *s, const char *why)
{
    /* a request libssh has begun to take must go whole, or the stream breaks: the first whole
     * request not yet begun is where dropping starts */
    smx_list *n = s->queue.next;
    while (n != &s->queue) {
        sftp_seg *g = smx_list_entry(n, sftp_seg, node);
        if (g->head && g->off == 0)
            break;
        n = n->next;
    }
    size_t cap = 0, nids = 0;
    uint32_t *ids = NULL;
    while (n != &s->queue) {
        sftp_seg *g = smx_list_entry(n, sftp_seg, node);
        n = n->next;
        if (g->head) {
            if (nids == cap) {
                uint32_t *v = realloc(ids, (cap = cap ? cap * 2 : 16) * sizeof *v);
                if (!v)
                    break;   /* the rest is sent: the owner copes with their failed replies */
                ids = v;
            }
            ids[nids++] = g->id;
        }
        s->queued -= g->len;
        sftp_seg_free(g);   /* releases borrowed data */
    }
    for (size_t i = 0; i < nids; i++)
        sftp_answer_locally(s, ids[i], SMX_FX_FAILURE, why);
    free(ids);
}

size_t smx_sftp_queued(const smx_sftp *s)
{
    return s->queued;
}

/* ---- the end ---------------------------------------------------------------------------------- */

static void sftp_fail_pending(smx_sftp *s)
{
    smx_list all;
    smx_list_init(&all);
    smx_list_splice(&all, &s->pending);
    while (!smx_list_empty(&all)) {
        sftp_pending *pd = smx_list_entry(all.next, sftp_pending, node);
        smx_list_remove(&pd->node);
        smx_sftp_cb cb = pd->cb;
        void *ud = pd->ud;
        free(pd);
        if (cb)
            cb(ud, NULL);
    }
}

static void sftp_drop_queue(smx_sftp *s)
{
    while (!smx_list_empty(&s->queue))
        sftp_seg_free(smx_list_entry(s->queue.next, sftp_seg, node));
    s->queued = 0;
}

static void sftp_on_defer(uv_timer_t *t)
{
    smx_sftp *s = t->data;
    if (s->st != SFTP_ENDED)
        return;
    sftp_drop_queue(s);
    sftp_fail_pending(s);
    if (s->st == SFTP_ENDED)   /* not closed by a callback meanwhile */
        s->ev->ended(s->ev->ud, s->end_code, s->err);
}

static void sftp_fail(smx_sftp *s, int code, const char *fmt, ...)
{
    if (s->st == SFTP_ENDED || s->st == SFTP_CLOSED)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->err, sizeof s->err, fmt, ap);
    va_end(ap);
    s->st = SFTP_ENDED;
    s->end_code = code;
    uv_timer_start(&s->defer, sftp_on_defer, 0, 0);
}

const char *smx_sftp_error(const smx_sftp *s)
{
    return s->err;
}

static void sftp_on_closed(uv_handle_t *h)
{
    smx_sftp *s = h->data;
    const smx_sftp_events *ev = s->ev;
    for (size_t i = 0; i < s->nexts; i++)
        free(s->exts[i]);
    free(s->exts);
    free(s->in);
    smx_sftp_out_free(&s->out);
    smx_sessreq_free(&s->req);
    free(s);
    ev->closed(ev->ud);
}

void smx_sftp_close(smx_sftp *s)
{
    if (s->st == SFTP_CLOSED)
        return;
    s->st = SFTP_CLOSED;
    smx_chan_release(&s->chan);
    sftp_drop_queue(s);
    sftp_fail_pending(s);
    uv_close((uv_handle_t *)&s->defer, sftp_on_closed);
}

/* ---- replies ---------------------------------------------------------------------------------- */

static void sftp_on_ext(void *ud, const char *name, size_t nlen, const uint8_t *data, size_t dlen)
{
    smx_sftp *s = ud;
    char **v = realloc(s->exts, (s->nexts + 1) * sizeof *v);
    if (!v)
        return;
    s->exts = v;
    if ((v[s->nexts] = strndup(name, nlen)))
        s->nexts++;
}

int smx_sftp_has_ext(const smx_sftp *s, const char *name)
{
    for (size_t i = 0; i < s->nexts; i++)
        if (strcmp(s->exts[i], name) == 0)
            return 1;
    return 0;
}

size_t smx_sftp_max_read(const smx_sftp *s)
{
    return s->max_read;
}

size_t smx_sftp_max_write(const smx_sftp *s)
{
    return s->max_write;
}

static void sftp_ready(smx_sftp *s)
{
    s->st = SFTP_READY;
    s->ev->ready(s->ev->ud);
}

static void sftp_on_limits(void *ud, smx_sftp_reply *r)
{
    smx_sftp *s = ud;
    smx_sftp_limits lim;
    if (!r)
        return;
    if (r->type == SMX_FXP_EXTENDED_REPLY && smx_sftp_parse_limits(r->data, r->data_len, &lim) == 0) {
        /* 0 means "no stated limit": keep the default, as OpenSSH's client does */
        if (lim.read)
            s->max_read = lim.read < SMX_SFTP_MAX_PACKET - 1024 ? lim.read : SMX_SFTP_MAX_PACKET - 1024;
        if (lim.write)
            s->max_write = lim.write < SMX_SFTP_MAX_PACKET - 1024 ? lim.write
                                                                  : SMX_SFTP_MAX_PACKET - 1024;
    }
    sftp_ready(s);
}

static void sftp_on_version(smx_sftp *s, const uint8_t *body, size_t len)
{
    uint32_t version = 0;
    if (smx_sftp_parse_version(body, len, &version, sftp_on_ext, s) < 0 || version < 3) {
        sftp_fail(s, SMX_ESSH, "sftp: the server's VERSION packet is malformed (version %u)",
                  version);
        return;
    }
    if (!smx_sftp_has_ext(s, "limits@openssh.com")) {
        sftp_ready(s);
        return;
    }
    s->st = SFTP_LIMITS;
    smx_sftp_begin_ext(s, "limits@openssh.com");
    smx_sftp_send(s, NULL, sftp_on_limits, s);
}

static void sftp_dispatch(smx_sftp *s, const uint8_t *body, size_t len)
{
    if (s->st == SFTP_VERSION) {
        sftp_on_version(s, body, len);
        return;
    }
    smx_sftp_reply r;
    if (smx_sftp_parse_reply(body, len, &r) < 0) {
        sftp_fail(s, SMX_ESSH, "sftp: malformed reply from the server (type %u, %zu bytes)",
                  len ? body[0] : 0, len);
        return;
    }
    if (sftp_deliver(s, &r) < 0)
        sftp_fail(s, SMX_ESSH, "sftp: reply to an unknown request id %u", r.id);
}

/* Parses every complete packet received; the owner's callbacks run from here. */
static void sftp_parse_input(smx_sftp *s)
{
    size_t off = 0;
    while (s->in_len - off >= 4 && (s->st == SFTP_VERSION || s->st == SFTP_LIMITS ||
                                    s->st == SFTP_READY)) {
        const uint8_t *p = s->in + off;
        uint32_t n = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
        if (n == 0 || n > SMX_SFTP_MAX_PACKET) {
            sftp_fail(s, SMX_ESSH, "sftp: the server sent a packet of %u bytes", n);
            break;
        }
        if (s->in_len - off - 4 < n)
            break;
        off += 4 + n;
        sftp_dispatch(s, p + 4, n);
        if (s->st == SFTP_CLOSED)
            return;   /* closed from a callback: s is about to go */
    }
    memmove(s->in, s->in + off, s->in_len - off);
    s->in_len -= off;
    /* a round of packets can be megabytes (a download's window): do not keep that much per
     * host once it is parsed */
    if (s->in_cap > SFTP_IN_KEEP && s->in_len <= SFTP_IN_KEEP / 2) {
        uint8_t *p = realloc(s->in, SFTP_IN_KEEP);
        if (p) {
            s->in = p;
            s->in_cap = SFTP_IN_KEEP;
        }
    }
}

/* ---- the channel ------------------------------------------------------------------------------ */

static int sftp_on_data(smx_chan *c, void *data, uint32_t len, int is_stderr)
{
    smx_sftp *s = c->data;
    if (is_stderr || s->st >= SFTP_ENDED)
        return (int)len;
    if (s->in_len + len > s->in_cap) {
        size_t cap = s->in_cap ? s->in_cap : 65536;
        while (cap < s->in_len + len)
            cap *= 2;
        uint8_t *p = realloc(s->in, cap);
        if (!p) {
            sftp_fail(s, SMX_ENOMEM, "sftp: out of memory");
            return (int)len;
        }
        s->in = p;
        s->in_cap = cap;
    }
    memcpy(s->in + s->in_len, data, len);
    s->in_len += len;
    smx_chan_mark(c);
    return (int)len;
}

static void sftp_on_remote_close(smx_chan *c)
{
    smx_sftp *s = c->data;
    s->remote_closed = 1;
    smx_chan_mark(c);
}

static void sftp_on_writable(smx_chan *c, uint32_t bytes)
{
    smx_sftp *s = c->data;
    if (s->in_write || smx_list_empty(&s->queue))
        return;
    if (sftp_flush(s) < 0)
        sftp_fail(s, SMX_ESSH, "sftp: channel write failed");
}

static void sftp_after_poll(smx_chan *c)
{
    smx_sftp *s = c->data;
    if (s->in_len)
        sftp_parse_input(s);
    if (s->st == SFTP_CLOSED)
        return;
    if (s->st == SFTP_REQUESTS && s->req.state == SMX_SESSREQ_REFUSED)
        sftp_fail(s, SMX_ECHANNEL, "sftp: the server refused the sftp subsystem");
    else if (s->remote_closed)
        sftp_fail(s, SMX_ECLOSED, "sftp: the server closed the sftp channel");
    else if (s->st == SFTP_READY && s->ev->writable && s->queued < SFTP_LOW_WATER)
        s->ev->writable(s->ev->ud);
}

static int sftp_chan_open(smx_chan *c)
{
    return ssh_channel_open_session(c->ch);
}

static void sftp_chan_opened(smx_chan *c)
{
    smx_sftp *s = c->data;
    s->st = SFTP_REQUESTS;
    smx_chan_drive(c);
}

static int sftp_chan_drive(smx_chan *c)
{
    smx_sftp *s = c->data;
    if (s->st != SFTP_REQUESTS)
        return 1;
    int rc = smx_sessreq_step(&s->req, c->ch);
    if (rc == 0)
        return 0;
    if (rc < 0) {
        smx_chan_mark(c);   /* failed from after_poll */
        return 1;
    }
    s->st = SFTP_VERSION;
    smx_sftp_out_begin_init(&s->out);
    if (smx_sftp_out_end(&s->out, 0) < 0 || sftp_queue(s, s->out.p, s->out.len, 1, NULL, NULL) < 0)
        sftp_fail(s, SMX_ENOMEM, "sftp: out of memory");
    else if (sftp_flush(s) < 0)
        sftp_fail(s, SMX_ESSH, "sftp: channel write failed");
    return 1;
}

static void sftp_chan_failed(smx_chan *c, int code, const char *why)
{
    smx_sftp *s = c->data;
    if (s->st == SFTP_OPENING)
        sftp_fail(s, code, "sftp: cannot open a session channel: %s", why);
    else
        sftp_fail(s, code, "sftp: %s", why);
}

static const smx_chan_ops sftp_chan_ops = {
    .kind = "sftp",
    .open = sftp_chan_open,
    .opened = sftp_chan_opened,
    .failed = sftp_chan_failed,
    .data = sftp_on_data,
    .closed = sftp_on_remote_close,
    .writable = sftp_on_writable,
    .drive = sftp_chan_drive,
    .after_poll = sftp_after_poll,
};

smx_sftp *smx_sftp_start(smx_conn *c, const smx_sftp_events *ev)
{
    smx_sftp *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->ev = ev;
    s->req_spec.kind = SMX_SESSREQ_SUBSYSTEM;
    s->req_spec.command = "sftp";
    if (smx_sessreq_init(&s->req, &s->req_spec) < 0) {
        free(s);
        return NULL;
    }
    s->max_read = s->max_write = SFTP_DEFAULT_BLOCK;
    smx_list_init(&s->queue);
    smx_list_init(&s->pending);
    uv_timer_init(c->ctx->loop, &s->defer);
    s->defer.data = s;
    s->st = SFTP_OPENING;
    smx_chan_start(&s->chan, c, &sftp_chan_ops, s);
    return s;
}

/* ---- common requests -------------------------------------------------------------------------- */

int smx_sftp_open(smx_sftp *s, const char *path, uint32_t pflags, const smx_sftp_attrs *a,
                  smx_sftp_cb cb, void *ud)
{
    smx_sftp_out *o = smx_sftp_begin(s, SMX_FXP_OPEN);
    smx_sftp_out_cstr(o, path);
    smx_sftp_out_u32(o, pflags);
    smx_sftp_out_attrs(o, a);
    return smx_sftp_send(s, NULL, cb, ud);
}

smx_sftp_out *smx_sftp_begin_path(smx_sftp *s, uint8_t type, const char *path)
{
    smx_sftp_out *o = smx_sftp_begin(s, type);
    smx_sftp_out_cstr(o, path);
    if (type == SMX_FXP_MKDIR)
        smx_sftp_out_attrs(o, NULL);
    return o;
}

smx_sftp_out *smx_sftp_begin_handle(smx_sftp *s, uint8_t type, const uint8_t *h, size_t hlen)
{
    smx_sftp_out *o = smx_sftp_begin(s, type);
    smx_sftp_out_str(o, h, hlen);
    return o;
}

int smx_sftp_path_op(smx_sftp *s, uint8_t type, const char *path, smx_sftp_cb cb, void *ud)
{
    smx_sftp_begin_path(s, type, path);
    return smx_sftp_send(s, NULL, cb, ud);
}

int smx_sftp_handle_op(smx_sftp *s, uint8_t type, const uint8_t *h, size_t hlen, smx_sftp_cb cb,
                       void *ud)
{
    smx_sftp_begin_handle(s, type, h, hlen);
    return smx_sftp_send(s, NULL, cb, ud);
}

int smx_sftp_read(smx_sftp *s, const uint8_t *h, size_t hlen, uint64_t off, uint32_t len,
                  smx_sftp_cb cb, void *ud)
{
    smx_sftp_out *o = smx_sftp_begin_handle(s, SMX_FXP_READ, h, hlen);
    smx_sftp_out_u64(o, off);
    smx_sftp_out_u32(o, len);
    return smx_sftp_send(s, NULL, cb, ud);
}

int smx_sftp_write(smx_sftp *s, const uint8_t *h, size_t hlen, uint64_t off,
                   const smx_sftp_data *data, smx_sftp_cb cb, void *ud)
{
    smx_sftp_out *o = smx_sftp_begin_handle(s, SMX_FXP_WRITE, h, hlen);
    smx_sftp_out_u64(o, off);
    smx_sftp_out_u32(o, (uint32_t)(data->len[0] + data->len[1]));
    return smx_sftp_send(s, data, cb, ud);
}

void smx_sftp_status_message(const smx_sftp_reply *r, const char *path, char *out, size_t len)
{
    const char *text = smx_sftp_status_text(r->status);
    if (r->type != SMX_FXP_STATUS) {
        snprintf(out, len, "%s: unexpected reply type %u", path, r->type);
    } else if ((r->status == SMX_FX_FAILURE || r->status > SMX_FX_QUOTA_EXCEEDED) && r->msg_len &&
             !(r->msg_len == 7 && memcmp(r->msg, "Failure", 7) == 0)) {
        /* the server's words reach a terminal: no control characters (escape sequences) */
        char clean[201];
        size_t n = r->msg_len < sizeof clean - 1 ? r->msg_len : sizeof clean - 1;
        for (size_t i = 0; i < n; i++)
            clean[i] = r->msg[i] < 0x20 || r->msg[i] == 0x7f ? '?' : (char)r->msg[i];
        clean[n] = 0;
        snprintf(out, len, "%s: %s", path, clean);
    } else {
        snprintf(out, len, "%s: %s", path, text);
    }
}
