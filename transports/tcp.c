/* Direct TCP transport: resolve (cached, loop/resolver), then a non-blocking connect to each
 * address in turn until one answers. */
#include "transports.h"

#include <errno.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "container.h"
#include "error.h"
#include "resolver.h"
#include "stage.h"

#define TCP_UNSENT_MAX (32 * 1024)   /* TCP_NOTSENT_LOWAT: see tcp_start_attempt */

typedef struct tcp_transport {
    smx_transport base;
    smx_resolver *resolver;
    smx_resolve_req req;
    char *host;
    int port;
    const struct addrinfo *addrs;   /* owned by the resolver */
    const struct addrinfo *next_addr;
    int last_errno;
    smx_transport_cb cb;
    smx_transport_close_cb close_cb;
    int attempt_closing;   /* a failed attempt's uv_poll is closing */
    int closed;            /* tcp_close was called while it was */
} tcp_transport;

/* Close callbacks get the uv handle; the owner may have re-pointed watch.data, so walk back. */
static tcp_transport *tcp_from_handle(uv_handle_t *h)
{
    smx_fdwatch *w = SMX_CONTAINER_OF(h, smx_fdwatch, poll);
    return (tcp_transport *)SMX_CONTAINER_OF(w, smx_transport, watch);
}

static void tcp_fail(tcp_transport *tt, int code, enum smx_stage stage)
{
    tt->base.error_stage = stage;
    tt->cb(&tt->base, code);
}

static void tcp_on_resolved(smx_resolve_req *req, int status, const struct addrinfo *ai)
{
    tcp_transport *tt = req->data;
    if (status < 0 || !ai) {
        smx_transport_set_error(&tt->base, "could not resolve \"%s\": %s",
                 tt->host, status < 0 ? uv_strerror(status) : "no address");
        tcp_fail(tt, SMX_ERESOLVE, SMX_STAGE_RESOLVE);
        return;
    }
    tt->addrs = tt->next_addr = ai;
    /* The gate key is the first address: what MaxStartups counts against. */
    char ip[INET6_ADDRSTRLEN] = "?";
    if (ai->ai_family == AF_INET)
        inet_ntop(AF_INET, &((struct sockaddr_in *)ai->ai_addr)->sin_addr, ip, sizeof ip);
    else if (ai->ai_family == AF_INET6)
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr, ip, sizeof ip);
    snprintf(tt->base.gate_key, sizeof tt->base.gate_key, "tcp:[%s]:%d", ip, tt->port);
    tt->cb(&tt->base, 0);
}

static int tcp_prepare(smx_transport *t, smx_transport_cb cb)
{
    tcp_transport *tt = (tcp_transport *)t;
    tt->cb = cb;
    tt->req.data = tt;
    int rc = smx_resolve(tt->resolver, &tt->req, tt->host, tcp_on_resolved);
    if (rc < 0) {
        smx_transport_set_error(t, "could not resolve \"%s\": %s", tt->host,
                 uv_strerror(rc));
        t->error_stage = SMX_STAGE_RESOLVE;
        return SMX_ERESOLVE;
    }
    return 0;
}

static void tcp_try_next(tcp_transport *tt);

static void tcp_free(tcp_transport *tt)
{
    if (tt->base.fd >= 0)
        close(tt->base.fd);
    smx_transport_close_cb cb = tt->close_cb;
    void *data = tt->base.data;
    smx_transport_free_error(&tt->base);
    free(tt->host);
    free(tt);
    if (cb)
        cb(data);
}

static void tcp_on_writable(smx_fdwatch *w, int status, int events)
{
    tcp_transport *tt = (tcp_transport *)SMX_CONTAINER_OF(w, smx_transport, watch);
    int err = 0;
    socklen_t len = sizeof err;
    /* SO_ERROR first: libuv turns POLLERR into UV_EBADF, which would hide ECONNREFUSED. */
    if (getsockopt(tt->base.fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err == 0 && status < 0)
        err = -status;
    if (err == 0) {
        smx_fdwatch_set(w, 0);
        tt->cb(&tt->base, 0);
        return;
    }
    tt->last_errno = err;
    /* A failed attempt: drop this socket and its watch, then try the next address. */
    smx_fdwatch_set(w, 0);
    tcp_try_next(tt);
}

static void tcp_format_peer(tcp_transport *tt, const struct addrinfo *ai)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    if (ai->ai_family == AF_INET) {
        inet_ntop(AF_INET, &((struct sockaddr_in *)ai->ai_addr)->sin_addr, ip, sizeof ip);
        snprintf(tt->base.peer, sizeof tt->base.peer, "%s:%d", ip, tt->port);
    } else {
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr, ip, sizeof ip);
        snprintf(tt->base.peer, sizeof tt->base.peer, "[%s]:%d", ip, tt->port);
    }
}

/* Returns 0 if a connect is in flight, else a negative SMX code (errno in tt->last_errno). */
static int tcp_start_attempt(tcp_transport *tt, const struct addrinfo *ai)
{
    struct sockaddr_storage ss;
    memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
    if (ai->ai_family == AF_INET)
        ((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)tt->port);
    else if (ai->ai_family == AF_INET6)
        ((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)tt->port);
    else
        return SMX_ECONNECT;
    tcp_format_peer(tt, ai);

    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        tt->last_errno = errno;
        return (errno == EMFILE || errno == ENFILE) ? SMX_EMFILE : SMX_ECONNECT;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    /* At most this much unsent data queued in the kernel; the rest waits in libssh's buffer
     * until the socket drains. A burst queued whole leaves as the peer's ACKs come, transmitted
     * by whoever processes them: on loopback the sshd, which then paid for our sends (perf: 17%
     * of its samples in irq-off delivery, against 3.5% with ssh as the client). Measured with 8
     * uploading streams: sshd 0.60 -> 0.51 s CPU per GiB, 0.96x -> 1.05x ssh's throughput
     * (bench/results/fwd14-lowat-ab.md). */
    int unsent = TCP_UNSENT_MAX;
    setsockopt(fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &unsent, sizeof unsent);
    if (connect(fd, (struct sockaddr *)&ss, ai->ai_addrlen) < 0 && errno != EINPROGRESS) {
        tt->last_errno = errno;
        close(fd);
        return SMX_ECONNECT;
    }
    tt->base.fd = fd;
    int rc = smx_fdwatch_init(tt->base.loop, &tt->base.watch, fd, tcp_on_writable, tt);
    if (rc == 0)
        rc = smx_fdwatch_set(&tt->base.watch, UV_WRITABLE);
    if (rc < 0) {
        tt->last_errno = -rc;
        return SMX_ECONNECT;
    }
    return 0;
}

static void tcp_on_attempt_closed(uv_handle_t *h);

static void tcp_try_next(tcp_transport *tt)
{
    if (tt->base.watch.active) {
        /* Close the failed attempt's handle first; the close callback continues here. */
        tt->attempt_closing = 1;
        smx_fdwatch_close(&tt->base.watch, tcp_on_attempt_closed);
        return;
    }
    while (tt->next_addr) {
        const struct addrinfo *ai = tt->next_addr;
        tt->next_addr = ai->ai_next;
        int rc = tcp_start_attempt(tt, ai);
        if (rc == 0)
            return;
        if (rc == SMX_EMFILE) {
            smx_transport_set_error(&tt->base, "out of file descriptors connecting to %s "
                                    "(raise ulimit -n or lower -f)", tt->base.peer);
            tcp_fail(tt, SMX_EMFILE, SMX_STAGE_CONNECT);
            return;
        }
    }
    smx_transport_set_error(&tt->base, "connect to %s: %s", tt->base.peer,
                            strerror(tt->last_errno ? tt->last_errno : ECONNREFUSED));
    tcp_fail(tt, SMX_ECONNECT, SMX_STAGE_CONNECT);
}

static void tcp_on_attempt_closed(uv_handle_t *h)
{
    tcp_transport *tt = tcp_from_handle(h);
    tt->attempt_closing = 0;
    if (tt->closed) {
        tcp_free(tt);
        return;
    }
    close(tt->base.fd);
    tt->base.fd = -1;
    tcp_try_next(tt);
}

static int tcp_connect(smx_transport *t, smx_transport_cb cb)
{
    tcp_transport *tt = (tcp_transport *)t;
    tt->cb = cb;
    tt->next_addr = tt->addrs;
    tcp_try_next(tt);
    return 0;
}

static void tcp_on_closed(uv_handle_t *h)
{
    tcp_free(tcp_from_handle(h));
}

static void tcp_close(smx_transport *t, smx_transport_close_cb cb)
{
    tcp_transport *tt = (tcp_transport *)t;
    smx_resolve_cancel(&tt->req);
    tt->close_cb = cb;
    tt->closed = 1;
    if (tt->attempt_closing)
        return;   /* tcp_on_attempt_closed frees us */
    if (t->watch.active) {
        smx_fdwatch_close(&t->watch, tcp_on_closed);
        return;
    }
    tcp_free(tt);
}

/* sshd leaves Nagle on for sessions without a pty, so a small packet it sends while an earlier
 * one is unacknowledged waits for our ACK, and Linux delays ACKs up to 40 ms. With many channels
 * on one connection (forwarded connections, exec fan-out through one jump host) that is 40 ms
 * on most round trips. Quick-ack mode is not sticky (the kernel drops back to delayed ACKs on
 * its own), so it is asked for again before every read. Measured: short connections through
 * one forward, p90 latency 47 ms -> 5 ms, 3.6x the connection rate. */
static void tcp_before_read(smx_transport *t)
{
#ifdef TCP_QUICKACK
    int one = 1;
    if (t->fd >= 0)
        setsockopt(t->fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one);
#else
    (void)t;
#endif
}

static const smx_transport_vtbl tcp_vtbl = {
    .name = "tcp",
    .prepare = tcp_prepare,
    .connect = tcp_connect,
    .close = tcp_close,
    .before_read = tcp_before_read,
};

smx_transport *smx_tcp_transport_new(uv_loop_t *loop, smx_resolver *resolver, const char *host,
                                     int port)
{
    tcp_transport *tt = calloc(1, sizeof *tt);
    if (!tt)
        return NULL;
    tt->host = strdup(host);
    if (!tt->host) {
        free(tt);
        return NULL;
    }
    tt->base.vt = &tcp_vtbl;
    tt->base.loop = loop;
    tt->base.fd = -1;
    tt->resolver = resolver;
    tt->port = port;
    return &tt->base;
}

static int tcp_applies(const smx_hostcfg *hc)
{
    return 1;
}

static smx_transport *tcp_make(const smx_transport_env *env, const smx_hostcfg *hc, smx_err *err)
{
    smx_transport *t = smx_tcp_transport_new(env->loop, env->resolver, hc->hostname, hc->port);
    if (!t)
        smx_seterr(err, SMX_ENOMEM, "out of memory");
    return t;
}

const smx_transport_kind smx_tcp_transport_kind = {"tcp", tcp_applies, tcp_make};
