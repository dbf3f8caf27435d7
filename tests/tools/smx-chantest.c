/* smx-chantest: one connection (core/ssh/conn.c) to a test sshd, driven directly, below any job
 * or CLI, to exercise the channel layer's inbound side and the per-session global request queue:
 *
 *   smx-chantest [--refuse KIND] [--libssh-refuses] SSH_CONFIG HOST SOCKET_PATH
 *
 * Once authenticated it waits until a keepalive (ServerAliveInterval in SSH_CONFIG) is in flight,
 * then queues behind it two `tcpip-forward` requests for 127.0.0.1 port 0 and one
 * `streamlocal-forward@openssh.com` for SOCKET_PATH on the server: each must get its own answer,
 * the forwards the port the server bound (from the answer's payload). Channels the server then
 * opens for them (forwarded-tcpip, forwarded-streamlocal@openssh.com) are piped to a TCP echo
 * server of its own, so a client of the bound port or socket gets its bytes back.
 *   --refuse KIND      does not accept that kind: the connection layer must refuse it.
 *   --libssh-refuses   takes the connection's streamlocal and catch-all callbacks off the libssh
 *                      session: libssh itself must refuse a kind no callback takes (patch 0006).
 * stdout, one line per event:
 *   ready | keepalive-in-flight 0|1 | answer NAME ok [port N] | answer NAME failed STATUS |
 *   listening PORT1 PORT2 | accepted KIND ADDRESS PORT | pipe-done KIND ok|ERROR |
 *   ended MESSAGE | closed
 * It runs until stdin (a pipe) reaches EOF, then closes the connection, or until the connection
 * ends.
 * Exit status: 0 closed on request, 1 the connection failed or an answer was wrong, 2 usage or
 * setup error. */
#include <arpa/inet.h>
#include <libssh/server.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conn.h"
#include "pipe.h"
#include "transports.h"

#define KEEPALIVE_WAIT_MS 5000   /* for a keepalive to be in flight before queueing anyway */

typedef struct request {
    const char *name;
    int port;                 /* bound port from the answer; -1 failed, 0 unanswered/none */
    int answered;
} request;

static struct {
    uv_loop_t *loop;
    smx_ctx ctx;
    smx_resolver *resolver;
    smx_transport_env tenv;
    smx_hostcfg hc;
    smx_result result;
    smx_conn *conn;           /* NULL once closed */
    uv_tcp_t echo;
    int echo_port;
    uv_pipe_t in;
    int in_open;
    uv_prepare_t wait_keepalive;
    uint64_t wait_since;
    const char *socket_path;
    const char *refuse;
    int libssh_refuses;
    request req[3];
    int closing;              /* we asked for the close: the end is no failure */
    int failed;
} T;

static void say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
}

static void close_conn(int failed)
{
    T.failed |= failed;
    T.closing |= !failed;
    if (T.conn)
        smx_conn_close(T.conn);
}

/* ---- the echo server the forwarded channels are piped to -------------------------------- */

static void echo_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    buf->base = malloc(65536);
    buf->len = buf->base ? 65536 : 0;
}

static void echo_free_handle(uv_handle_t *h)
{
    free(h);
}

static void echo_on_written(uv_write_t *w, int status)
{
    free(w->data);
    free(w);
}

static void echo_on_shutdown(uv_shutdown_t *req, int status)
{
    uv_close((uv_handle_t *)req->handle, echo_free_handle);
    free(req);
}

static void echo_on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    uv_write_t *w = n > 0 ? malloc(sizeof *w) : NULL;
    if (w) {
        w->data = buf->base;   /* the write owns the buffer now */
        uv_buf_t out = uv_buf_init(buf->base, (unsigned)n);
        if (uv_write(w, s, &out, 1, echo_on_written) == 0)
            return;
        free(w);
    }
    free(buf->base);
    if (n == UV_EOF) {   /* half-close in turn, after what is queued */
        uv_shutdown_t *req = malloc(sizeof *req);
        if (req && uv_shutdown(req, s, echo_on_shutdown) == 0)
            return;
        free(req);
    }
    if (n < 0 && !uv_is_closing((uv_handle_t *)s))
        uv_close((uv_handle_t *)s, echo_free_handle);
}

static void echo_on_connection(uv_stream_t *server, int status)
{
    uv_tcp_t *c = malloc(sizeof *c);
    if (status < 0 || !c)
        goto fail;
    uv_tcp_init(T.loop, c);
    if (uv_accept(server, (uv_stream_t *)c) == 0 &&
        uv_read_start((uv_stream_t *)c, echo_alloc, echo_on_read) == 0)
        return;
    uv_close((uv_handle_t *)c, echo_free_handle);
    return;
fail:
    free(c);
}

static int echo_start(void)
{
    struct sockaddr_in sa;
    int len = sizeof sa;
    uv_ip4_addr("127.0.0.1", 0, &sa);
    if (uv_tcp_init(T.loop, &T.echo) < 0 || uv_tcp_bind(&T.echo, (struct sockaddr *)&sa, 0) < 0 ||
        uv_listen((uv_stream_t *)&T.echo, 128, echo_on_connection) < 0 ||
        uv_tcp_getsockname(&T.echo, (struct sockaddr *)&sa, &len) < 0)
        return -1;
    T.echo_port = ntohs(sa.sin_port);
    return 0;
}

/* ---- channels the server opens ---------------------------------------------------------- */

static void on_pipe_done(smx_pipe *p, const char *err, void *ud)
{
    say("pipe-done %s %s", (const char *)ud, err ? err : "ok");
}

/* A connected stream to the echo server. The connect blocks, but only as long as the kernel
 * takes to queue it on our own loopback listener's backlog: the pipe needs a connected stream
 * when it adopts the channel, which must happen before this callback returns. */
static uv_stream_t *echo_connect(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)T.echo_port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    uv_tcp_t *t = malloc(sizeof *t);
    if (fd >= 0 && t && connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
        uv_tcp_init(T.loop, t) == 0) {
        if (uv_tcp_open(t, fd) == 0)
            return (uv_stream_t *)t;
        uv_close((uv_handle_t *)t, echo_free_handle);
        close(fd);
        return NULL;
    }
    if (fd >= 0)
        close(fd);
    free(t);
    return NULL;
}

static int on_inbound(smx_conn *c, const smx_inbound_open *o, ssh_channel ch, void *ud)
{
    uv_stream_t *s = echo_connect();
    smx_pipe *p = s ? smx_pipe_new(s, on_pipe_done, ud) : NULL;
    if (!p) {
        if (s)
            uv_close((uv_handle_t *)s, echo_free_handle);
        return -1;
    }
    say("accepted %s %s %d", o->kind, o->address ? o->address : "-", o->port);
    smx_pipe_adopt(p, c, ch);
    return 0;
}

/* ---- global requests -------------------------------------------------------------------- */

static void on_answer(void *ud, int status, const void *data, size_t len)
{
    request *r = ud;
    r->answered = 1;
    if (status < 0) {
        r->port = -1;
        say("answer %s failed %s", r->name, smx_strerror(status));
        close_conn(1);
    } else if (len >= 4) {
        const unsigned char *b = data;
        r->port = (int)((uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3]);
        say("answer %s ok port %d", r->name, r->port);
    } else {
        say("answer %s ok", r->name);
    }
    if (T.req[0].answered && T.req[1].answered && T.req[2].answered && !T.failed)
        say("listening %d %d", T.req[0].port, T.req[1].port);
}

/* RFC 4254 string: uint32 length, bytes. */
static size_t put_string(unsigned char *out, const char *s)
{
    uint32_t n = (uint32_t)strlen(s), be = htonl(n);
    memcpy(out, &be, 4);
    memcpy(out + 4, s, n);
    return 4 + n;
}

static void send_requests(void)
{
    unsigned char fwd[64], sl[4 + 4096];
    size_t n = put_string(fwd, "127.0.0.1");
    uint32_t port0 = htonl(0);
    memcpy(fwd + n, &port0, 4);
    n += 4;
    size_t sn = put_string(sl, T.socket_path);
    T.req[0].name = "tcpip-forward#1";
    T.req[1].name = "tcpip-forward#2";
    T.req[2].name = "streamlocal-forward@openssh.com";
    if (!smx_conn_global_request(T.conn, "tcpip-forward", fwd, n, 1, on_answer, &T.req[0]) ||
        !smx_conn_global_request(T.conn, "tcpip-forward", fwd, n, 1, on_answer, &T.req[1]) ||
        !smx_conn_global_request(T.conn, T.req[2].name, sl, sn, 1, on_answer, &T.req[2])) {
        say("answer - failed out of memory");
        close_conn(1);
    }
}

/* Before each poll of the loop: a keepalive sent in this turn's timers has not had its answer
 * read yet, so requests queued now wait behind it. */
static void on_prepare(uv_prepare_t *h)
{
    int inflight = T.conn && T.conn->session.keepalive_pending;
    if (!inflight && uv_now(T.loop) - T.wait_since < KEEPALIVE_WAIT_MS)
        return;
    uv_prepare_stop(h);
    say("keepalive-in-flight %d", inflight);
    if (T.conn)
        send_requests();
}

/* ---- the connection --------------------------------------------------------------------- */

static void on_ready(smx_conn *c, void *ud)
{
    say("ready");
    if (T.libssh_refuses) {
        c->sesscb.channel_open_request_forwarded_streamlocal_function = NULL;
        ssh_set_message_callback(c->session.ssh, NULL, NULL);
    }
    T.wait_since = uv_now(T.loop);
    uv_prepare_start(&T.wait_keepalive, on_prepare);
}

static void on_ended(smx_conn *c, void *ud)
{
    const char *why = smx_result_error(&T.result);
    say("ended %s", why[0] ? why : "-");
    if (!T.closing || why[0])
        T.failed = 1;
}

static void on_closed(smx_conn *c, void *ud)
{
    T.conn = NULL;
    say("closed");
    uv_close((uv_handle_t *)&T.echo, NULL);
    uv_close((uv_handle_t *)&T.wait_keepalive, NULL);
    if (T.in_open)
        uv_close((uv_handle_t *)&T.in, NULL);
    smx_ctx_quiesce(&T.ctx);
}

static const smx_conn_events conn_events = {
    .ready = on_ready,
    .ended = on_ended,
    .closed = on_closed,
};

static void in_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    static char sink[256];
    *buf = uv_buf_init(sink, sizeof sink);
}

static void in_on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    if (n < 0) {
        uv_read_stop(s);
        close_conn(0);
    }
}

static smx_transport *make_transport(void *ud, const smx_hostcfg *hc, smx_err *err)
{
    return smx_transport_make(ud, hc, err);
}

/* ---- setup ------------------------------------------------------------------------------ */

static int setup(const char *cfg_path, const char *host)
{
    smx_err err = {{0}};
    smx_config *cfg = NULL;
    int rc = smx_config_load(&cfg, cfg_path, &err);
    if (rc == 0)
        rc = smx_config_resolve(cfg, host, NULL, &T.hc, &err);
    smx_config_free(cfg);
    smx_ctx_opts o = {.connect_timeout_ms = 10000, .auth_timeout_ms = 10000, .retries = 2};
    if (rc < 0 || (rc = smx_ctx_init(&T.ctx, T.loop, &o, 4, 4)) < 0 ||
        !(T.resolver = smx_resolver_new(T.loop))) {
        fprintf(stderr, "smx-chantest: %s\n", err.msg[0] ? err.msg : smx_strerror(rc));
        return -1;
    }
    for (size_t i = 0; i < T.hc.identityfile.n; i++)
        smx_keyring_load_file(T.ctx.keyring, T.hc.identityfile.v[i], &err);
    T.tenv = (smx_transport_env){.loop = T.loop, .resolver = T.resolver};
    T.ctx.transport_factory = make_transport;
    T.ctx.factory_ud = &T.tenv;
    smx_result_init(&T.result);
    T.conn = smx_conn_new(&T.ctx, &T.hc, NULL, &T.result, &conn_events, NULL);
    if (!T.conn || echo_start() < 0 || uv_prepare_init(T.loop, &T.wait_keepalive) < 0) {
        fprintf(stderr, "smx-chantest: setup failed\n");
        return -1;
    }
    static const char *const kinds[] = {SMX_INBOUND_TCPIP, SMX_INBOUND_STREAMLOCAL};
    for (size_t i = 0; i < 2; i++)
        if (!T.refuse || strcmp(T.refuse, kinds[i]) != 0)
            smx_conn_accept(T.conn, kinds[i], on_inbound, (void *)kinds[i]);
    /* Only a pipe: epoll refuses files and /dev/null, which libuv does not survive. */
    T.in_open = uv_guess_handle(0) == UV_NAMED_PIPE && uv_pipe_init(T.loop, &T.in, 0) == 0;
    if (T.in_open && uv_pipe_open(&T.in, 0) == 0)
        uv_read_start((uv_stream_t *)&T.in, in_alloc, in_on_read);
    return 0;
}

int main(int argc, char **argv)
{
    int i = 1;
    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
        if (strcmp(argv[i], "--refuse") == 0 && i + 1 < argc)
            T.refuse = argv[++i];
        else if (strcmp(argv[i], "--libssh-refuses") == 0)
            T.libssh_refuses = 1;
        else
            break;
    }
    if (argc - i != 3) {
        fprintf(stderr, "usage: smx-chantest [--refuse KIND] [--libssh-refuses] SSH_CONFIG "
                        "HOST SOCKET_PATH\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    ssh_init();
    T.loop = uv_default_loop();
    T.socket_path = argv[i + 2];
    int rc = setup(argv[i], argv[i + 1]);
    if (rc == 0) {
        smx_conn_start(T.conn);
        uv_run(T.loop, UV_RUN_DEFAULT);
    } else if (T.conn) {
        smx_conn_free_unstarted(T.conn);
    }
    smx_resolver_free(T.resolver);
    smx_ctx_close(&T.ctx);
    smx_hostcfg_free(&T.hc);
    smx_result_free(&T.result);
    uv_loop_close(T.loop);
    ssh_finalize();
    return rc < 0 ? 2 : T.failed ? 1 : 0;
}
