#include "forward.h"

#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "pipe.h"

/* A burst of connections (a scraper hitting every host's forward at once) must not overflow the
 * accept queue: a dropped SYN costs the client a 1 s retransmit. The kernel caps this at
 * net.core.somaxconn. */
#define FWD_BACKLOG 4096

/* A listener outlives its links (they point at it): it is freed once its handle's close has
 * completed and its last link is done, whichever comes last. */
typedef struct fwd_listener {
    struct fwd_listener *next;
    smx_forwarder *fw;
    unsigned long links;       /* forwarded connections accepted here and not yet done */
    int handle_closed;
    smx_fwd_spec spec;
    union {
        uv_tcp_t tcp;
        uv_pipe_t unix_sock;
        uv_handle_t handle;
    } h;
    int is_unix;
    int created_path;          /* we made the socket file: remove it on close */
    char local[160], remote[160];
} fwd_listener;

typedef struct fwd_link {      /* one forwarded connection */
    smx_list node;             /* on the forwarder's links */
    fwd_listener *l;
    smx_pipe *pipe;
} fwd_link;

struct smx_forwarder {
    uv_loop_t *loop;
    smx_conn *conn;
    smx_forward_events ev;
    fwd_listener *listeners;
    smx_list links;
    unsigned long active;
    int closing, handles;
    void (*closed_cb)(void *ud);
    void *closed_ud;
};

smx_forwarder *smx_forwarder_new(uv_loop_t *loop, smx_conn *conn, const smx_forward_events *ev)
{
    smx_forwarder *fw = calloc(1, sizeof *fw);
    if (!fw)
        return NULL;
    fw->loop = loop;
    fw->conn = conn;
    if (ev)
        fw->ev = *ev;
    smx_list_init(&fw->links);
    return fw;
}

unsigned long smx_forwarder_active(const smx_forwarder *fw)
{
    return fw->active;
}

/* ---- forwarded connections ---------------------------------------------------------------- */

static int fwd_open_channel(ssh_channel ch, void *arg)
{
    fwd_listener *l = arg;
    if (l->spec.remote_path)
        return ssh_channel_open_forward_unix(ch, l->spec.remote_path, "127.0.0.1", 0);
    return ssh_channel_open_forward(ch, l->spec.host, l->spec.port, "127.0.0.1", 0);
}

static void fwd_maybe_closed(smx_forwarder *fw);
static void fwd_listener_maybe_free(fwd_listener *l);

static void fwd_on_pipe_done(smx_pipe *p, const char *err, void *ud)
{
    fwd_link *k = ud;
    fwd_listener *l = k->l;
    smx_forwarder *fw = l->fw;
    smx_list_remove(&k->node);
    fw->active--;
    l->links--;
    if (fw->ev.conn_ended && !fw->closing)
        fw->ev.conn_ended(fw->ev.ud, l->local, err);
    free(k);
    fwd_listener_maybe_free(l);   /* may free the forwarder too */
}

static void fwd_on_connection(uv_stream_t *server, int status)
{
    fwd_listener *l = server->data;
    smx_forwarder *fw = l->fw;
    if (status < 0 || fw->closing)
        return;
    uv_stream_t *client = malloc(l->is_unix ? sizeof(uv_pipe_t) : sizeof(uv_tcp_t));
    fwd_link *k = calloc(1, sizeof *k);
    if (!client || !k) {
        free(client);
        free(k);
        return;
    }
    if (l->is_unix)
        uv_pipe_init(fw->loop, (uv_pipe_t *)client, 0);
    else
        uv_tcp_init(fw->loop, (uv_tcp_t *)client);
    if (uv_accept(server, client) < 0) {
        uv_close((uv_handle_t *)client, (uv_close_cb)free);
        free(k);
        return;
    }
    if (!l->is_unix)
        uv_tcp_nodelay((uv_tcp_t *)client, 1);
    k->l = l;
    k->pipe = smx_pipe_new(client, fwd_on_pipe_done, k);
    if (!k->pipe) {
        uv_close((uv_handle_t *)client, (uv_close_cb)free);
        free(k);
        return;
    }
    smx_list_append(&fw->links, &k->node);
    fw->active++;
    l->links++;
    smx_pipe_open(k->pipe, fw->conn, fwd_open_channel, l);
}

/* ---- listeners ---------------------------------------------------------------------------- */

static int fwd_bind_tcp(smx_forwarder *fw, fwd_listener *l, smx_err *err)
{
    const char *addr = l->spec.bind_addr ? l->spec.bind_addr : "127.0.0.1";
    if (strcmp(addr, "*") == 0 || *addr == '\0')
        addr = "0.0.0.0";
    struct addrinfo hints = {0}, *ai = NULL;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    char port[16];
    snprintf(port, sizeof port, "%d", l->spec.bind_port);
    /* Before the loop runs (forwards are set up at start), so a lookup may block here. */
    int gai = getaddrinfo(addr, port, &hints, &ai);
    if (gai != 0)
        return smx_seterr(err, SMX_ERESOLVE, "bind address \"%s\": %s", addr, gai_strerror(gai));
    int rc = uv_tcp_bind(&l->h.tcp, ai->ai_addr, 0);
    freeaddrinfo(ai);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&l->h.tcp, FWD_BACKLOG, fwd_on_connection);
    if (rc < 0)
        return smx_seterr(err, SMX_EIO, "cannot listen on %s:%d: %s", addr, l->spec.bind_port,
                          uv_strerror(rc));
    struct sockaddr_storage ss;
    int len = sizeof ss;
    char ip[64] = "?";
    uv_tcp_getsockname(&l->h.tcp, (struct sockaddr *)&ss, &len);
    if (ss.ss_family == AF_INET6) {
        uv_ip6_name((struct sockaddr_in6 *)&ss, ip, sizeof ip);
        snprintf(l->local, sizeof l->local, "[%s]:%d", ip,
                 ntohs(((struct sockaddr_in6 *)&ss)->sin6_port));
    } else {
        uv_ip4_name((struct sockaddr_in *)&ss, ip, sizeof ip);
        snprintf(l->local, sizeof l->local, "%s:%d", ip,
                 ntohs(((struct sockaddr_in *)&ss)->sin_port));
    }
    return 0;
}

static int fwd_bind_unix(smx_forwarder *fw, fwd_listener *l, unsigned mode, smx_err *err)
{
    size_t len = strlen(l->spec.bind_path);
    if (len >= sizeof(((struct sockaddr_un *)0)->sun_path))
        /* The limit before the path: a very long path is cut at the end of the message, not
         * what is wrong with it. */
        return smx_seterr(err, SMX_EINVAL, "socket path is %zu bytes long, a Unix socket path "
                          "has at most %zu (sun_path): %s", len,
                          sizeof(((struct sockaddr_un *)0)->sun_path) - 1, l->spec.bind_path);
    /* Nobody else may connect between bind and chmod: create it private, then open it up. */
    mode_t old = umask(0177);
    int rc = uv_pipe_bind(&l->h.unix_sock, l->spec.bind_path);
    umask(old);
    if (rc == 0) {
        l->created_path = 1;
        if (chmod(l->spec.bind_path, mode) < 0)
            rc = UV_EPERM;
    }
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&l->h.unix_sock, FWD_BACKLOG, fwd_on_connection);
    if (rc < 0)
        return smx_seterr(err, SMX_EIO, "cannot listen on %s: %s", l->spec.bind_path,
                          rc == UV_EADDRINUSE ? "address already in use (remove the old socket)"
                                              : uv_strerror(rc));
    snprintf(l->local, sizeof l->local, "%s", l->spec.bind_path);
    return 0;
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

static void fwd_listener_maybe_free(fwd_listener *l)
{
    if (!l->handle_closed || l->links > 0)
        return;
    smx_forwarder *fw = l->fw;
    smx_fwd_spec_free(&l->spec);
    free(l);
    fw->handles--;
    fwd_maybe_closed(fw);
}

static void fwd_on_listener_closed(uv_handle_t *h)
{
    fwd_listener *l = h->data;
    if (l->created_path)
        unlink(l->spec.bind_path);   /* nobody can connect any more: the file goes now */
    l->handle_closed = 1;
    fwd_listener_maybe_free(l);
}

int smx_forward_add(smx_forwarder *fw, const smx_fwd_spec *spec, unsigned mode, char *local,
                    size_t llen, smx_err *err)
{
    fwd_listener *l = calloc(1, sizeof *l);
    if (!l)
        return SMX_ENOMEM;
    l->fw = fw;
    l->spec.bind_addr = dup_or_null(spec->bind_addr);
    l->spec.bind_port = spec->bind_port;
    l->spec.bind_path = dup_or_null(spec->bind_path);
    l->spec.host = dup_or_null(spec->host);
    l->spec.port = spec->port;
    l->spec.remote_path = dup_or_null(spec->remote_path);
    l->is_unix = spec->bind_path != NULL;
    /* Initialised before anything can fail: a listed listener is always closed with uv_close. */
    if (l->is_unix)
        uv_pipe_init(fw->loop, &l->h.unix_sock, 0);
    else
        uv_tcp_init(fw->loop, &l->h.tcp);
    l->h.handle.data = l;
    l->next = fw->listeners;
    fw->listeners = l;
    fw->handles++;
    int rc = l->is_unix ? fwd_bind_unix(fw, l, mode, err) : fwd_bind_tcp(fw, l, err);
    if (rc < 0)
        return rc;   /* the listener is closed (and its socket file removed) with the forwarder */
    char dummy[160];
    smx_fwd_spec_describe(&l->spec, dummy, sizeof dummy, l->remote, sizeof l->remote);
    if (local)
        snprintf(local, llen, "%s", l->local);
    return 0;
}

static void fwd_maybe_closed(smx_forwarder *fw)
{
    if (!fw->closing || fw->handles > 0 || fw->active > 0)
        return;
    void (*cb)(void *) = fw->closed_cb;
    void *ud = fw->closed_ud;
    free(fw);
    if (cb)
        cb(ud);
}

void smx_forwarder_close(smx_forwarder *fw, void (*cb)(void *ud), void *ud)
{
    fw->closing = 1;
    fw->closed_cb = cb;
    fw->closed_ud = ud;
    fw->handles++;   /* guard while we walk */
    for (fwd_listener *l = fw->listeners; l; l = l->next)
        uv_close(&l->h.handle, fwd_on_listener_closed);
    fw->listeners = NULL;
    /* Each abort completes later (its stream closes first), so walk a snapshot of next links. */
    for (smx_list *n = fw->links.next, *next; n != &fw->links; n = next) {
        next = n->next;
        fwd_link *k = smx_list_entry(n, fwd_link, node);
        smx_pipe_abort(k->pipe, "shutting down");
    }
    fw->handles--;
    fwd_maybe_closed(fw);
}
