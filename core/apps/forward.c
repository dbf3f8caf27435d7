#include "forward.h"

#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "pipe.h"
#include "sessreq.h"
#include "socks.h"

/* A burst of connections (a scraper hitting every host's forward at once) must not overflow the
 * accept queue: a dropped SYN costs the client a 1 s retransmit. The kernel caps this at
 * net.core.somaxconn. */
#define FWD_BACKLOG 4096
/* A SOCKS client has this long to send its request (every wait has a bound: a client that
 * connects and says nothing must not hold a descriptor for ever). */
#define SOCKS_REQUEST_TIMEOUT_MS 30000
#define SOCKS_SWEEP_MS 5000

/* A listener outlives its links (they point at it): it is freed once its handle's close has
 * completed and its last link is done, whichever comes last. */
/* Connections that carry the links: the first is the owner's; more are asked for (ev.more_conn)
 * when the server refuses a channel as "administratively prohibited" or "resource shortage"
 * while the connection carries others (sshd's MaxSessions counts session channels). */
#define FWD_MAX_CONNS 8

typedef struct fwd_slot {
    smx_conn *conn;            /* NULL once gone */
    unsigned long open;        /* links whose channel is open on it */
    unsigned long opening;     /* links whose channel is being opened on it */
    unsigned long capacity;    /* open links when it refused one; 0: no limit seen */
} fwd_slot;

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
    int is_socks;              /* -D: each connection names its destination */
    int created_path;          /* we made the socket file: remove it on close */
    smx_sessreq_spec exec;     /* spec.command's session, when set */
    char local[160], remote[160];
} fwd_listener;

/* A -D connection until its request is read (then its pipe has the stream). */
typedef struct fwd_socks {
    uint64_t since;            /* accepted at (uv_now) */
    smx_socks req;
    uint8_t buf[SMX_SOCKS_MAX_MESSAGE];
    size_t len;
} fwd_socks;

typedef struct fwd_link {      /* one forwarded connection */
    smx_list node;             /* on the forwarder's links */
    fwd_listener *l;
    smx_pipe *pipe;            /* NULL while a SOCKS request is read */
    uv_stream_t *client;
    fwd_socks *socks;
    int slot;                  /* the connection it is on */
    int opened;
    int opening;               /* counted in its slot's opening */
    int moved;                 /* its first connection ended before its channel opened */
} fwd_link;

struct smx_forwarder {
    uv_loop_t *loop;
    fwd_slot slots[FWD_MAX_CONNS];
    int nslots;
    smx_forward_events ev;
    fwd_listener *listeners;
    smx_list links;
    unsigned long active;
    uv_timer_t socks_timer;    /* sweeps SOCKS clients slow to send their request */
    int socks_timer_on;
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
    fw->slots[0].conn = conn;
    fw->nslots = 1;
    if (ev)
        fw->ev = *ev;
    smx_list_init(&fw->links);
    uv_timer_init(loop, &fw->socks_timer);
    fw->socks_timer.data = fw;
    fw->handles++;   /* the timer's, until its close completes */
    return fw;
}

unsigned long smx_forwarder_active(const smx_forwarder *fw)
{
    return fw->active;
}

/* ---- forwarded connections ---------------------------------------------------------------- */

void smx_forwarder_conn_gone(smx_forwarder *fw, smx_conn *conn)
{
    for (int i = 0; i < fw->nslots; i++)
        if (fw->slots[i].conn == conn)
            fw->slots[i].conn = NULL;
}

/* A slot for one more connection (ev.more_conn): a lost one's whose links are all done, so a
 * long run replaces lost connections however many it loses, else a new one. -1: none. */
static int fwd_add_conn(smx_forwarder *fw)
{
    if (fw->closing || !fw->ev.more_conn)
        return -1;
    int i = 0;
    while (i < fw->nslots && (fw->slots[i].conn || fw->slots[i].open || fw->slots[i].opening))
        i++;
    if (i == FWD_MAX_CONNS)
        return -1;
    smx_conn *c = fw->ev.more_conn(fw->ev.ud);
    if (!c)
        return -1;
    fw->slots[i] = (fwd_slot){.conn = c};
    if (i == fw->nslots)
        fw->nslots++;
    return i;
}

static int fwd_slot_live(const fwd_slot *s)
{
    return s->conn && !s->conn->ended;
}

/* The live connection with the fewest links, opening none; ready: only among those past
 * authentication. -1: none. */
static int fwd_pick_live(smx_forwarder *fw, int ready)
{
    int best = -1;
    for (int i = 0; i < fw->nslots; i++) {
        fwd_slot *s = &fw->slots[i];
        if (fwd_slot_live(s) && (!ready || s->conn->ready) &&
            (best < 0 || s->open + s->opening < fw->slots[best].open + fw->slots[best].opening))
            best = i;
    }
    return best;
}

/* --connections N: the live connection with the fewest open links; a new one while fewer than
 * N live and every one carries some (parallel streams each get an sshd of their own, as far
 * as N goes). -1: none left. */
static int fwd_pick_spread(smx_forwarder *fw)
{
    int best = fwd_pick_live(fw, 0), live = 0;
    for (int i = 0; i < fw->nslots; i++)
        live += fwd_slot_live(&fw->slots[i]);
    int busy = best < 0 || fw->slots[best].open + fw->slots[best].opening > 0;
    if (busy && live < fw->ev.spread) {
        int added = fwd_add_conn(fw);
        if (added >= 0)
            best = added;
    }
    return best;
}

/* The first live connection with room; another one when all are full and the cap allows; else
 * the least loaded (whose refusals are then the answer). -1: none left. */
static int fwd_pick_slot(smx_forwarder *fw)
{
    int best = -1;
    if (fw->ev.spread > 1)
        return fwd_pick_spread(fw);
    for (int i = 0; i < fw->nslots; i++) {
        fwd_slot *s = &fw->slots[i];
        if (!fwd_slot_live(s))
            continue;
        if (s->capacity == 0 || s->open < s->capacity)
            return i;
        if (best < 0 || s->open < fw->slots[best].open)
            best = i;
    }
    int added = fwd_add_conn(fw);
    return added >= 0 ? added : best;
}

static int fwd_open_channel(ssh_channel ch, void *arg)
{
    fwd_link *k = arg;
    if (k->socks)
        return ssh_channel_open_forward(ch, k->socks->req.host, k->socks->req.port,
                                        "127.0.0.1", 0);
    fwd_listener *l = k->l;
    if (l->spec.dest_path)
        return ssh_channel_open_forward_unix(ch, l->spec.dest_path, "127.0.0.1", 0);
    return ssh_channel_open_forward(ch, l->spec.host, l->spec.port, "127.0.0.1", 0);
}

static void fwd_maybe_closed(smx_forwarder *fw);
static void fwd_listener_maybe_free(fwd_listener *l);

static void fwd_link_not_opening(fwd_link *k)
{
    if (k->opening) {
        k->opening = 0;
        k->l->fw->slots[k->slot].opening--;
    }
}

/* Opens the link's channel on the connection in `slot` (-1: none left). */
static void fwd_link_open_on(fwd_link *k, int slot)
{
    smx_forwarder *fw = k->l->fw;
    k->slot = slot;
    if (slot < 0) {
        smx_pipe_abort(k->pipe, "the connection is gone");
        return;
    }
    k->opening = 1;
    fw->slots[slot].opening++;
    smx_conn *c = fw->slots[slot].conn;
    if (k->l->spec.command) {
        if (smx_pipe_open_session(k->pipe, c, &k->l->exec) < 0)
            smx_pipe_abort(k->pipe, "out of memory");
    } else {
        smx_pipe_open(k->pipe, c, fwd_open_channel, k);
    }
}

static void fwd_link_opened(smx_pipe *p, void *ud)
{
    fwd_link *k = ud;
    fwd_link_not_opening(k);
    k->opened = 1;
    k->l->fw->slots[k->slot].open++;
    if (k->socks) {
        uint8_t reply[10];
        uv_buf_t b = uv_buf_init((char *)reply,
                                 (unsigned)smx_socks_reply(&k->socks->req, SMX_SOCKS_OK, reply));
        /* The first bytes on a fresh socket: the kernel takes them whole. */
        if (uv_try_write(k->client, &b, 1) != (int)b.len)
            smx_pipe_abort(p, "cannot send the SOCKS reply");
    }
}

/* A refusal on a connection that carries other links and words it as a limit ("resource
 * shortage"; any refusal of a session channel: sshd's MaxSessions) says "full": the link is
 * tried on another connection. A SOCKS client is told why its request failed. */
static int fwd_link_refused(smx_pipe *p, int code, const char *why, void *ud)
{
    fwd_link *k = ud;
    smx_forwarder *fw = k->l->fw;
    fwd_slot *s = &fw->slots[k->slot];
    fwd_link_not_opening(k);
    /* Its connection ended before the channel opened (a spare one that failed its handshake or
     * was lost): a live one takes the link, once, so a spare's failure costs no stream while an
     * authenticated connection to the host is up. */
    if (code == SMX_ECLOSED && !k->moved && !fw->closing) {
        int next = fwd_pick_live(fw, 1);   /* not another spare still in its handshake */
        if (next < 0)
            next = fwd_pick_live(fw, 0);
        if (next >= 0 && next != k->slot) {
            k->moved = 1;
            fwd_link_open_on(k, next);
            return 1;
        }
    }
    /* sshd at MaxSessions refuses a session as "connect failed (open failed)": for a session
     * channel, a refusal while others are open is a limit whatever its words. For the others
     * only "resource shortage" is (OpenSSH's "administratively prohibited" is PermitOpen's
     * answer, the same on any connection). */
    int limit = k->l->spec.command || (why && strstr(why, "resource shortage"));
    if (code == SMX_ECHANNEL && limit && s->open > 0 && !fw->closing) {
        if (s->capacity == 0 || s->open < s->capacity)
            s->capacity = s->open;
        int next = fwd_pick_slot(fw);
        if (next >= 0 && next != k->slot) {
            fwd_link_open_on(k, next);   /* the pipe released its channel first */
            return 1;
        }
    }
    if (k->socks) {
        int sc = code == SMX_ECHANNEL ? smx_socks_code_for_refusal(why)
                                      : SMX_SOCKS_GENERAL_FAILURE;
        uint8_t reply[10];
        uv_buf_t b = uv_buf_init((char *)reply,
                                 (unsigned)smx_socks_reply(&k->socks->req, sc, reply));
        uv_try_write(k->client, &b, 1);
    }
    return 0;
}

static void fwd_link_free(fwd_link *k)
{
    fwd_listener *l = k->l;
    smx_forwarder *fw = l->fw;
    smx_list_remove(&k->node);
    fw->active--;
    l->links--;
    free(k->socks);
    free(k);
    fwd_listener_maybe_free(l);   /* may free the forwarder too */
}

static void fwd_on_pipe_done(smx_pipe *p, const char *err, void *ud)
{
    fwd_link *k = ud;
    fwd_listener *l = k->l;
    smx_forwarder *fw = l->fw;
    if (k->opened && k->slot >= 0)
        fw->slots[k->slot].open--;
    fwd_link_not_opening(k);
    char what[160 + 300];
    const char *name = l->local;
    if (k->socks) {
        snprintf(what, sizeof what, "%s (SOCKS to %s:%d)", l->local, k->socks->req.host,
                 k->socks->req.port);
        name = what;
    }
    if (fw->ev.conn_ended && !fw->closing)
        fw->ev.conn_ended(fw->ev.ud, name, err);
    fwd_link_free(k);
}

/* The stream goes to a pipe: bytes move once its channel is open. */
static void fwd_link_start_pipe(fwd_link *k)
{
    k->pipe = smx_pipe_new(k->client, fwd_on_pipe_done, k);
    if (!k->pipe) {
        uv_close((uv_handle_t *)k->client, (uv_close_cb)free);
        fwd_link_free(k);
        return;
    }
    smx_pipe_on_opened(k->pipe, fwd_link_opened);
    smx_pipe_on_refused(k->pipe, fwd_link_refused);
    if (k->socks) {
        /* Bytes the client sent after its request (optimistic data) go first. */
        size_t used = k->socks->len;
        if (used && smx_pipe_preload(k->pipe, k->socks->buf, used) < 0) {
            smx_pipe_abort(k->pipe, "out of memory");
            return;
        }
    }
    fwd_link_open_on(k, fwd_pick_slot(k->l->fw));
}

/* ---- SOCKS (-D) requests ---------------------------------------------------------------- */

static void socks_on_closed(uv_handle_t *h)
{
    fwd_link *k = h->data;
    free(h);
    fwd_link_free(k);
}

/* Closes a client whose request went nowhere (its refusal, if the protocol has one, was sent). */
static void socks_refuse(fwd_link *k, const char *why)
{
    smx_forwarder *fw = k->l->fw;
    if (fw->ev.conn_ended && !fw->closing && why)
        fw->ev.conn_ended(fw->ev.ud, k->l->local, why);
    uv_read_stop(k->client);
    uv_close((uv_handle_t *)k->client, socks_on_closed);
}

/* A few bytes on a fresh socket: the kernel takes them whole, or the client is gone. */
static int socks_send(void *ud, const uint8_t *p, size_t n)
{
    fwd_link *k = ud;
    uv_buf_t b = uv_buf_init((char *)p, (unsigned)n);
    return uv_try_write(k->client, &b, 1) == (int)n ? 0 : -1;
}

static void socks_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    fwd_link *k = h->data;
    fwd_socks *s = k->socks;
    *buf = uv_buf_init((char *)s->buf + s->len, (unsigned)(sizeof s->buf - s->len));
}

static void socks_on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
    fwd_link *k = st->data;
    fwd_socks *s = k->socks;
    if (n == 0)
        return;
    if (n < 0 || k->l->fw->closing) {
        socks_refuse(k, NULL);   /* the client left before its request was complete */
        return;
    }
    s->len += (size_t)n;
    int rc = smx_socks_take(&s->req, s->buf, &s->len, sizeof s->buf, socks_send, k);
    if (rc < 0) {
        socks_refuse(k, s->req.error);
    } else if (rc > 0) {
        uv_read_stop(st);
        fwd_link_start_pipe(k);
    }
}

static void socks_on_sweep(uv_timer_t *t)
{
    smx_forwarder *fw = t->data;
    uint64_t now = uv_now(fw->loop);
    int waiting = 0;
    for (smx_list *n = fw->links.next, *next; n != &fw->links; n = next) {
        next = n->next;
        fwd_link *k = smx_list_entry(n, fwd_link, node);
        if (!k->socks || k->pipe || uv_is_closing((uv_handle_t *)k->client))
            continue;
        if (now - k->socks->since < SOCKS_REQUEST_TIMEOUT_MS) {
            waiting = 1;
            continue;
        }
        socks_refuse(k, "no SOCKS request within 30 s");
    }
    if (!waiting) {
        uv_timer_stop(t);
        fw->socks_timer_on = 0;
    }
}

static void fwd_on_connection(uv_stream_t *server, int status)
{
    fwd_listener *l = server->data;
    smx_forwarder *fw = l->fw;
    if (status < 0 || fw->closing)
        return;
    uv_stream_t *client = malloc(l->is_unix ? sizeof(uv_pipe_t) : sizeof(uv_tcp_t));
    fwd_link *k = calloc(1, sizeof *k);
    fwd_socks *socks = l->is_socks ? calloc(1, sizeof *socks) : NULL;
    if (!client || !k || (l->is_socks && !socks)) {
        free(client);
        free(k);
        free(socks);
        return;
    }
    if (l->is_unix)
        uv_pipe_init(fw->loop, (uv_pipe_t *)client, 0);
    else
        uv_tcp_init(fw->loop, (uv_tcp_t *)client);
    if (uv_accept(server, client) < 0) {
        uv_close((uv_handle_t *)client, (uv_close_cb)free);
        free(k);
        free(socks);
        return;
    }
    if (!l->is_unix)
        uv_tcp_nodelay((uv_tcp_t *)client, 1);
    k->l = l;
    k->client = client;
    k->socks = socks;
    k->slot = -1;
    smx_list_append(&fw->links, &k->node);
    fw->active++;
    l->links++;
    if (!socks) {
        fwd_link_start_pipe(k);
        return;
    }
    smx_socks_init(&socks->req);
    socks->since = uv_now(fw->loop);
    if (!fw->socks_timer_on) {
        fw->socks_timer_on = 1;
        uv_timer_start(&fw->socks_timer, socks_on_sweep, SOCKS_SWEEP_MS, SOCKS_SWEEP_MS);
    }
    client->data = k;
    uv_read_start(client, socks_alloc, socks_on_read);
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
    if (!l || smx_fwd_spec_copy(&l->spec, spec) < 0) {
        free(l);
        return smx_seterr(err, SMX_ENOMEM, "out of memory");
    }
    l->fw = fw;
    l->is_unix = spec->bind_path != NULL;
    l->is_socks = smx_fwd_spec_is_socks(spec);
    l->exec.kind = SMX_SESSREQ_EXEC;
    l->exec.command = l->spec.command;
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

static void fwd_on_timer_closed(uv_handle_t *h)
{
    smx_forwarder *fw = h->data;
    fw->handles--;
    fwd_maybe_closed(fw);
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
    if (!uv_is_closing((uv_handle_t *)&fw->socks_timer))   /* closing may be asked twice */
        uv_close((uv_handle_t *)&fw->socks_timer, fwd_on_timer_closed);
    for (fwd_listener *l = fw->listeners; l; l = l->next)
        uv_close(&l->h.handle, fwd_on_listener_closed);
    fw->listeners = NULL;
    /* Each abort completes later (its stream closes first), so walk a snapshot of next links. */
    for (smx_list *n = fw->links.next, *next; n != &fw->links; n = next) {
        next = n->next;
        fwd_link *k = smx_list_entry(n, fwd_link, node);
        if (k->pipe) {
            smx_pipe_abort(k->pipe, "shutting down");
        } else if (!uv_is_closing((uv_handle_t *)k->client)) {
            uv_read_stop(k->client);
            uv_close((uv_handle_t *)k->client, socks_on_closed);
        }
    }
    fw->handles--;
    fwd_maybe_closed(fw);
}
