#include "rforward.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipe.h"
#include "socks.h"

enum rfwd_state { RL_NEW, RL_REQUESTED, RL_BOUND, RL_FAILED };

typedef struct rfwd_listener {
    smx_rforwarder *rf;
    size_t index;
    smx_fwd_spec spec;
    enum rfwd_state st;
    int bound_port;               /* TCP: the port the server bound */
    smx_global_req *req;          /* the request in flight */
    char listen[160], to[160];
    char given[340];              /* the spec as ssh writes it, for messages */
} rfwd_listener;

/* One forwarded connection: its channel is piped at once; the local stream is attached once
 * connected. It outlives the pipe and its own lookup and connect attempt. */
typedef struct rfwd_link {
    smx_list node;
    rfwd_listener *l;
    smx_pipe *pipe;               /* NULL once done */
    smx_resolve_req rreq;
    int resolving;
    union {
        uv_tcp_t tcp;
        uv_pipe_t unix_sock;
        uv_handle_t handle;
        uv_stream_t stream;
    } *attempt;                   /* a connect in flight or failed, not yet closed */
    uv_connect_t creq;
    const struct addrinfo *next_ai;
    int last_err;
    int retry;                    /* the next address is tried once the attempt is closed */
    int connect_started;
    char host[256];
    int port;
    smx_socks *socks;             /* reverse SOCKS: the request read off the channel */
    uint8_t buf[SMX_SOCKS_MAX_MESSAGE];
    size_t len;
} rfwd_link;

struct smx_rforwarder {
    uv_loop_t *loop;
    smx_resolver *resolver;
    smx_conn *conn;
    smx_rforward_events ev;
    rfwd_listener **ls;
    size_t nls;
    smx_list links;
    int started, closing, conn_gone, cancels;
    void (*closed_cb)(void *ud);
    void *closed_ud;
};

static void rfwd_maybe_closed(smx_rforwarder *rf);

/* ---- wire helpers ---------------------------------------------------------------------------- */

static size_t put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
    return 4;
}

static size_t put_string(uint8_t *p, const char *s)
{
    size_t n = strlen(s);
    put_u32(p, (uint32_t)n);
    memcpy(p + 4, s, n);
    return 4 + n;
}

/* ssh's choice of address for a remote listener: none means the server's loopback, "" or "*"
 * every address (where GatewayPorts allows). */
static const char *rfwd_bind_host(const smx_fwd_spec *f)
{
    if (!f->bind_addr)
        return "localhost";
    if (!*f->bind_addr || strcmp(f->bind_addr, "*") == 0)
        return "";
    return f->bind_addr;
}

/* ---- forwarded connections ------------------------------------------------------------------- */

static void link_try_next(rfwd_link *k);

static void link_maybe_free(rfwd_link *k)
{
    if (k->pipe || k->resolving || k->attempt)
        return;
    smx_rforwarder *rf = k->l->rf;
    smx_list_remove(&k->node);
    free(k->socks);
    free(k);
    rfwd_maybe_closed(rf);
}

static void link_on_attempt_closed(uv_handle_t *h)
{
    rfwd_link *k = h->data;
    free(h);
    k->attempt = NULL;
    if (k->retry && k->pipe) {
        k->retry = 0;
        link_try_next(k);
        return;
    }
    link_maybe_free(k);
}

static void link_drop_attempt(rfwd_link *k)
{
    if (k->attempt && !uv_is_closing(&k->attempt->handle)) {
        k->attempt->handle.data = k;
        uv_close(&k->attempt->handle, link_on_attempt_closed);
    }
}

static void link_on_pipe_done(smx_pipe *p, const char *err, void *ud)
{
    rfwd_link *k = ud;
    smx_rforwarder *rf = k->l->rf;
    k->pipe = NULL;
    k->retry = 0;
    if (k->resolving) {
        smx_resolve_cancel(&k->rreq);
        k->resolving = 0;
    }
    link_drop_attempt(k);
    if (rf->ev.conn_ended && !rf->closing)
        rf->ev.conn_ended(rf->ev.ud, k->l->listen, err);
    link_maybe_free(k);
}

/* The destination could not be reached: a SOCKS client is told, then the channel closes. */
static void link_fail(rfwd_link *k, int socks_code, const char *fmt_err)
{
    char why[400];
    snprintf(why, sizeof why, "connect to %s:%d: %s", k->host, k->port, fmt_err);
    if (k->socks && k->pipe) {
        uint8_t reply[10];
        smx_pipe_send(k->pipe, reply, smx_socks_reply(k->socks, socks_code, reply));
    }
    if (k->pipe)
        smx_pipe_abort(k->pipe, why);
}

static int link_socks_code(int uv_err)
{
    switch (uv_err) {
    case UV_ECONNREFUSED:
        return SMX_SOCKS_CONN_REFUSED;
    case UV_ENETUNREACH:
        return SMX_SOCKS_NET_UNREACHABLE;
    case UV_EHOSTUNREACH:
    case UV_ETIMEDOUT:
        return SMX_SOCKS_HOST_UNREACHABLE;
    default:
        return SMX_SOCKS_GENERAL_FAILURE;
    }
}

static void link_connected(rfwd_link *k)
{
    uv_stream_t *s = &k->attempt->stream;
    k->attempt = NULL;   /* the pipe's now */
    if (k->l->spec.bind_path == NULL && !k->l->spec.dest_path)
        uv_tcp_nodelay((uv_tcp_t *)s, 1);
    if (k->socks) {
        uint8_t reply[10];
        if (smx_pipe_send(k->pipe, reply, smx_socks_reply(k->socks, SMX_SOCKS_OK, reply)) < 0) {
            uv_close((uv_handle_t *)s, (uv_close_cb)free);
            smx_pipe_abort(k->pipe, "cannot send the SOCKS reply");
            return;
        }
        if (k->len) {   /* bytes the client sent after its request go first */
            uv_buf_t b = uv_buf_init((char *)k->buf, (unsigned)k->len);
            if (uv_try_write(s, &b, 1) != (int)k->len) {
                uv_close((uv_handle_t *)s, (uv_close_cb)free);
                smx_pipe_abort(k->pipe, "cannot pass on the SOCKS client's data");
                return;
            }
            k->len = 0;
        }
    }
    smx_pipe_attach(k->pipe, s);
}

static void link_on_connect(uv_connect_t *req, int status)
{
    rfwd_link *k = req->data;
    if (!k->pipe || status == UV_ECANCELED)
        return;   /* ended meanwhile: the attempt is being closed */
    if (status == 0) {
        link_connected(k);
        return;
    }
    k->last_err = status;
    k->retry = 1;
    link_drop_attempt(k);   /* then the next address */
}

static void link_try_next(rfwd_link *k)
{
    smx_rforwarder *rf = k->l->rf;
    while (k->next_ai && k->pipe) {
        const struct addrinfo *ai = k->next_ai;
        k->next_ai = ai->ai_next;
        if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)
            continue;
        struct sockaddr_storage ss;
        memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
        if (ai->ai_family == AF_INET)
            ((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)k->port);
        else
            ((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)k->port);
        k->attempt = malloc(sizeof *k->attempt);
        if (!k->attempt)
            break;
        uv_tcp_init(rf->loop, &k->attempt->tcp);
        k->attempt->handle.data = k;
        k->creq.data = k;
        int rc = uv_tcp_connect(&k->creq, &k->attempt->tcp, (struct sockaddr *)&ss,
                                link_on_connect);
        if (rc == 0)
            return;
        k->last_err = rc;
        k->retry = 1;
        link_drop_attempt(k);
        return;
    }
    if (k->pipe && !k->attempt)
        link_fail(k, link_socks_code(k->last_err),
                  k->last_err ? uv_strerror(k->last_err) : "no usable address");
}

static void link_on_resolved(smx_resolve_req *req, int status, const struct addrinfo *ai)
{
    rfwd_link *k = req->data;
    k->resolving = 0;
    if (status < 0) {
        link_fail(k, SMX_SOCKS_HOST_UNREACHABLE, uv_strerror(status));
        return;
    }
    k->next_ai = ai;
    link_try_next(k);
}

static void link_on_unix_connect(uv_connect_t *req, int status)
{
    rfwd_link *k = req->data;
    if (!k->pipe || status == UV_ECANCELED)
        return;
    if (status == 0) {
        link_connected(k);
        return;
    }
    char why[300];
    snprintf(why, sizeof why, "connect to %s: %s", k->host, uv_strerror(status));
    link_drop_attempt(k);
    smx_pipe_abort(k->pipe, why);
}

static void link_connect(rfwd_link *k)
{
    smx_rforwarder *rf = k->l->rf;
    const smx_fwd_spec *f = &k->l->spec;
    if (f->dest_path) {
        snprintf(k->host, sizeof k->host, "%s", f->dest_path);
        k->attempt = malloc(sizeof *k->attempt);
        if (!k->attempt) {
            smx_pipe_abort(k->pipe, "out of memory");
            return;
        }
        uv_pipe_init(rf->loop, &k->attempt->unix_sock, 0);
        k->attempt->handle.data = k;
        k->creq.data = k;
        uv_pipe_connect(&k->creq, &k->attempt->unix_sock, f->dest_path, link_on_unix_connect);
        return;
    }
    k->resolving = 1;
    k->rreq.data = k;
    int rc = smx_resolve(rf->resolver, &k->rreq, k->host, link_on_resolved);
    if (rc < 0) {
        k->resolving = 0;
        link_fail(k, SMX_SOCKS_HOST_UNREACHABLE, uv_strerror(rc));
    }
}

static int link_socks_send(void *ud, const uint8_t *p, size_t n)
{
    return smx_pipe_send(ud, p, n);
}

/* Reverse SOCKS: the request comes over the channel; read it, answer the method choice. */
static void link_on_early_data(smx_pipe *p, void *ud)
{
    rfwd_link *k = ud;
    smx_socks *s = k->socks;
    if (!s) {   /* a fixed destination: connect, outside libssh's callbacks */
        if (!k->connect_started) {
            k->connect_started = 1;
            link_connect(k);
        }
        return;
    }
    while (s->state != SMX_SOCKS_REQUEST && k->pipe) {
        int n = smx_pipe_read_early(p, k->buf + k->len, sizeof k->buf - k->len);
        if (n <= 0)
            return;
        k->len += (size_t)n;
        int rc = smx_socks_take(s, k->buf, &k->len, sizeof k->buf, link_socks_send, p);
        if (rc < 0) {
            smx_pipe_abort(p, s->error);
            return;
        }
        if (rc > 0) {
            snprintf(k->host, sizeof k->host, "%s", s->host);
            k->port = s->port;
            k->connect_started = 1;
            link_connect(k);
            return;
        }
    }
}

static rfwd_listener *rfwd_match(smx_rforwarder *rf, const smx_inbound_open *o)
{
    int unix_kind = strcmp(o->kind, SMX_INBOUND_STREAMLOCAL) == 0;
    rfwd_listener *by_port = NULL;
    for (size_t i = 0; i < rf->nls; i++) {
        rfwd_listener *l = rf->ls[i];
        if (l->st != RL_BOUND)
            continue;
        if (unix_kind && l->spec.bind_path && o->address &&
            strcmp(l->spec.bind_path, o->address) == 0)
            return l;
        if (!unix_kind && !l->spec.bind_path && l->bound_port == o->port) {
            if (o->address && strcmp(rfwd_bind_host(&l->spec), o->address) == 0)
                return l;
            if (!by_port)
                by_port = l;
        }
    }
    return by_port;
}

static int rfwd_inbound(smx_conn *c, const smx_inbound_open *o, ssh_channel ch, void *ud)
{
    smx_rforwarder *rf = ud;
    rfwd_listener *l = rf->closing ? NULL : rfwd_match(rf, o);
    if (!l)
        return -1;   /* not ours (or no longer): refused */
    rfwd_link *k = calloc(1, sizeof *k);
    int socks = smx_fwd_spec_is_socks(&l->spec);
    if (!k || (socks && !(k->socks = calloc(1, sizeof *k->socks)))) {
        free(k);
        return -1;
    }
    k->l = l;
    k->pipe = smx_pipe_new(NULL, link_on_pipe_done, k);
    if (!k->pipe) {
        free(k->socks);
        free(k);
        return -1;
    }
    smx_list_append(&rf->links, &k->node);
    if (socks) {
        smx_socks_init(k->socks);
    } else {
        if (l->spec.host)
            snprintf(k->host, sizeof k->host, "%s", l->spec.host);
        k->port = l->spec.port;
    }
    smx_pipe_on_early_data(k->pipe, link_on_early_data);   /* connects from there */
    smx_pipe_adopt(k->pipe, c, ch);
    return 0;
}

/* ---- listeners ------------------------------------------------------------------------------- */

static void rfwd_on_reply(void *ud, int status, const void *data, size_t len)
{
    rfwd_listener *l = ud;
    smx_rforwarder *rf = l->rf;
    l->req = NULL;
    char err[600];
    if (status == 0 && !l->spec.bind_path && l->spec.bind_port == 0) {
        /* RFC 4254 7.1: a request for port 0 is answered with the port bound. */
        const uint8_t *p = data;
        if (len >= 4)
            l->bound_port = (int)((uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
                                  (uint32_t)p[2] << 8 | p[3]);
        if (l->bound_port <= 0 || l->bound_port > 65535) {
            snprintf(err, sizeof err, "-R %s: the server bound a port but did not say which",
                     l->given);
            l->st = RL_FAILED;
            rf->ev.bound(rf->ev.ud, l->index, l->listen, 0, err);
            return;
        }
    } else if (status == 0) {
        l->bound_port = l->spec.bind_path ? 0 : l->spec.bind_port;
    }
    if (status != 0) {
        l->st = RL_FAILED;
        if (status != SMX_ECHANNEL)
            return;   /* the connection ended first: its own end says why */
        snprintf(err, sizeof err, "-R %s: remote listener refused by the server (in use, or not "
                 "allowed: AllowTcpForwarding/AllowStreamLocalForwarding, PermitListen)",
                 l->given);
        rf->ev.bound(rf->ev.ud, l->index, l->listen, 0, err);
        return;
    }
    l->st = RL_BOUND;
    smx_fwd_spec tmp = l->spec;
    tmp.bind_port = l->bound_port;
    char unused[160];
    smx_fwd_spec_describe(&tmp, l->listen, sizeof l->listen, unused, sizeof unused);
    rf->ev.bound(rf->ev.ud, l->index, l->listen, l->bound_port, NULL);
}

static int rfwd_request(rfwd_listener *l, int cancel)
{
    smx_rforwarder *rf = l->rf;
    uint8_t buf[600];
    size_t n;
    const char *name;
    if (l->spec.bind_path) {
        if (strlen(l->spec.bind_path) > 500)
            return SMX_EINVAL;
        name = cancel ? "cancel-streamlocal-forward@openssh.com"
                      : "streamlocal-forward@openssh.com";
        n = put_string(buf, l->spec.bind_path);
    } else {
        const char *host = rfwd_bind_host(&l->spec);
        if (strlen(host) > 500)
            return SMX_EINVAL;
        name = cancel ? "cancel-tcpip-forward" : "tcpip-forward";
        n = put_string(buf, host);
        n += put_u32(buf + n, (uint32_t)(cancel ? l->bound_port : l->spec.bind_port));
    }
    if (cancel) {
        /* No reply awaited: the connection goes next, and with it the listener anyway. */
        return smx_conn_global_request(rf->conn, name, buf, n, 0, NULL, NULL) ? 0 : SMX_ENOMEM;
    }
    l->req = smx_conn_global_request(rf->conn, name, buf, n, 1, rfwd_on_reply, l);
    return l->req ? 0 : SMX_ENOMEM;
}

smx_rforwarder *smx_rforwarder_new(uv_loop_t *loop, smx_resolver *resolver, smx_conn *conn,
                                   const smx_rforward_events *ev)
{
    smx_rforwarder *rf = calloc(1, sizeof *rf);
    if (!rf)
        return NULL;
    rf->loop = loop;
    rf->resolver = resolver;
    rf->conn = conn;
    rf->ev = *ev;
    smx_list_init(&rf->links);
    return rf;
}

int smx_rforward_add(smx_rforwarder *rf, const smx_fwd_spec *spec)
{
    rfwd_listener **ls = realloc(rf->ls, (rf->nls + 1) * sizeof *ls);
    if (!ls)
        return SMX_ENOMEM;
    rf->ls = ls;
    rfwd_listener *l = calloc(1, sizeof *l);
    if (!l || smx_fwd_spec_copy(&l->spec, spec) < 0) {
        free(l);
        return SMX_ENOMEM;
    }
    l->rf = rf;
    l->index = rf->nls;
    smx_fwd_spec_describe(&l->spec, l->listen, sizeof l->listen, l->to, sizeof l->to);
    if (smx_fwd_spec_is_socks(&l->spec))
        snprintf(l->given, sizeof l->given, "%s", l->listen);
    else
        snprintf(l->given, sizeof l->given, "%s:%s", l->listen, l->to);
    rf->ls[rf->nls++] = l;
    return 0;
}

void smx_rforwarder_start(smx_rforwarder *rf)
{
    if (rf->started || rf->closing)
        return;
    rf->started = 1;
    smx_conn_accept(rf->conn, SMX_INBOUND_TCPIP, rfwd_inbound, rf);
    smx_conn_accept(rf->conn, SMX_INBOUND_STREAMLOCAL, rfwd_inbound, rf);
    for (size_t i = 0; i < rf->nls; i++) {
        rfwd_listener *l = rf->ls[i];
        l->st = RL_REQUESTED;
        if (rfwd_request(l, 0) < 0) {
            l->st = RL_FAILED;
            rf->ev.bound(rf->ev.ud, l->index, l->listen, 0, "out of memory");
        }
    }
}

void smx_rforwarder_conn_ended(smx_rforwarder *rf)
{
    rf->conn_gone = 1;
}

static void rfwd_maybe_closed(smx_rforwarder *rf)
{
    if (!rf->closing || !smx_list_empty(&rf->links))
        return;
    for (size_t i = 0; i < rf->nls; i++) {
        smx_fwd_spec_free(&rf->ls[i]->spec);
        free(rf->ls[i]);
    }
    free(rf->ls);
    void (*cb)(void *) = rf->closed_cb;
    void *ud = rf->closed_ud;
    free(rf);
    if (cb)
        cb(ud);
}

void smx_rforwarder_close(smx_rforwarder *rf, void (*cb)(void *ud), void *ud)
{
    if (rf->closing)
        return;
    rf->closing = 1;
    rf->closed_cb = cb;
    rf->closed_ud = ud;
    int live = rf->started && !rf->conn_gone && !rf->conn->ended;
    if (rf->started) {
        smx_conn_accept(rf->conn, SMX_INBOUND_TCPIP, NULL, NULL);
        smx_conn_accept(rf->conn, SMX_INBOUND_STREAMLOCAL, NULL, NULL);
    }
    for (size_t i = 0; i < rf->nls; i++) {
        rfwd_listener *l = rf->ls[i];
        if (l->req) {
            smx_global_req_cancel(l->req);
            l->req = NULL;
        }
        if (l->st == RL_BOUND && live)
            rfwd_request(l, 1);
    }
    if (live)
        smx_conn_flush(rf->conn);
    /* Each abort may complete at once (a pipe never attached): walk a snapshot. */
    smx_list pending;
    smx_list_init(&pending);
    smx_list_splice(&pending, &rf->links);
    while (!smx_list_empty(&pending)) {
        rfwd_link *k = smx_list_entry(pending.next, rfwd_link, node);
        smx_list_remove(&k->node);
        smx_list_append(&rf->links, &k->node);
        if (k->pipe)
            smx_pipe_abort(k->pipe, "shutting down");
    }
    rfwd_maybe_closed(rf);
}
