/* Command (stdio) transport: the session's byte stream is a child process's stdin and stdout, as
 * for ssh_config's ProxyCommand (`ssh -W %h:%p bastion`, `nc %h %p`) and other stdio bridges
 * (`docker system dial-stdio`). The child gets one end of a socketpair as fds 0 and 1, the
 * session the other; stderr goes to a pipe of ours, whose tail explains a failed bridge.
 *
 * Lifetime: the child runs in its own session (UV_PROCESS_DETACHED), so close can signal its whole
 * process group (/bin/sh and whatever it started). It is always reaped through libuv's exit_cb
 * before the transport is freed, so no zombie outlives a session. */
#include "transports.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "container.h"
#include "error.h"
#include "stage.h"

#define CMD_LABEL "ProxyCommand"     /* how messages name the command */
#define CMD_SHOWN 64                 /* command characters quoted in messages */
#define CMD_STDERR_TAIL 2048         /* stderr bytes kept: the end says why it failed */
#define CMD_KILL_GRACE_MS 1000       /* SIGTERM to SIGKILL */

typedef struct cmd_transport {
    smx_transport base;
    char *command;
    smx_transport_cb cb;
    smx_transport_close_cb close_cb;
    uv_process_t proc;
    uv_pipe_t errpipe;             /* the child's stderr */
    uv_timer_t kill_timer;
    int child_fd;                  /* our copy of the child's end; see cmd_on_exit */
    int handles;                   /* uv handles initialised and not yet closed */
    unsigned started : 1;          /* connect made the uv handles */
    unsigned running : 1;          /* spawned and not yet reaped */
    unsigned closing : 1;
    size_t tail_len;
    char tail[CMD_STDERR_TAIL];
    char readbuf[512];
} cmd_transport;

/* ---- environment ---------------------------------------------------------------------- */

/* What the dynamic loader and non-interactive shells act on: variables set for (or leaked into)
 * sshmux itself, e.g. a sanitizer's LD_PRELOAD, must not change how the bridge runs. */
static int cmd_env_dropped(const char *kv)
{
    static const char *const names[] = {
        "LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT", "LD_DEBUG", "LD_DEBUG_OUTPUT",
        "LD_PROFILE", "LD_PROFILE_OUTPUT", "BASH_ENV", "ENV", NULL,
    };
    size_t len = strcspn(kv, "=");
    if (strncmp(kv, "DYLD_", 5) == 0)
        return 1;
    for (const char *const *n = names; *n; n++)
        if (strlen(*n) == len && memcmp(kv, *n, len) == 0)
            return 1;
    return 0;
}

/* A NULL-terminated array of pointers into environ (not copies: uv_spawn uses it before it
 * returns). Free the array only. */
static char **cmd_sanitized_env(void)
{
    size_t n = 0;
    while (environ[n])
        n++;
    char **env = malloc((n + 1) * sizeof *env);
    if (!env)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (!cmd_env_dropped(environ[i]))
            env[k++] = environ[i];
    env[k] = NULL;
    return env;
}

/* ---- stderr tail and the exit message ------------------------------------------------- */

static void cmd_keep_tail(cmd_transport *ct, const char *buf, size_t n)
{
    if (n >= sizeof ct->tail) {
        memcpy(ct->tail, buf + n - sizeof ct->tail, sizeof ct->tail);
        ct->tail_len = sizeof ct->tail;
        return;
    }
    if (ct->tail_len + n > sizeof ct->tail) {
        size_t drop = ct->tail_len + n - sizeof ct->tail;
        memmove(ct->tail, ct->tail + drop, ct->tail_len - drop);
        ct->tail_len -= drop;
    }
    memcpy(ct->tail + ct->tail_len, buf, n);
    ct->tail_len += n;
}

static int cmd_is_eol(char c)
{
    return c == '\n' || c == '\r';
}

/* Where the last whole lines of tail[0, len) that fit in `avail` bytes (joined by "; ") begin;
 * a single last line longer than that is cut at its front. */
static size_t cmd_tail_start(const char *tail, size_t len, size_t avail)
{
    size_t start = len, need = 0;
    while (start > 0) {
        size_t end = start;
        while (end > 0 && cmd_is_eol(tail[end - 1]))
            end--;
        if (end == 0)
            break;
        size_t begin = end;
        while (begin > 0 && !cmd_is_eol(tail[begin - 1]))
            begin--;
        size_t add = (end - begin) + (need ? 2 : 0);
        if (need + add > avail) {
            if (need == 0) {
                start = end - avail;
                while (start < end && ((unsigned char)tail[start] & 0xC0) == 0x80)
                    start++;   /* not in the middle of a UTF-8 character */
            }
            break;
        }
        need += add;
        start = begin;
    }
    return start;
}

/* Appends ": " and the end of the child's stderr to out (room bytes, NUL included). Line breaks
 * become "; " and control characters '?': the message goes to a terminal, one line per host. */
static void cmd_append_tail(const cmd_transport *ct, char *out, size_t room)
{
    size_t len = ct->tail_len;
    while (len > 0 && (cmd_is_eol(ct->tail[len - 1]) || ct->tail[len - 1] == ' ' ||
                       ct->tail[len - 1] == '\t'))
        len--;
    if (len == 0 || room < 8)
        return;
    size_t i = cmd_tail_start(ct->tail, len, room - 3);
    size_t o = 0;
    out[o++] = ':';
    out[o++] = ' ';
    while (i < len && o + 1 < room) {
        if (cmd_is_eol(ct->tail[i])) {
            while (i < len && cmd_is_eol(ct->tail[i]))
                i++;
            if (o + 3 > room)
                break;
            out[o++] = ';';
            out[o++] = ' ';
            continue;
        }
        unsigned char c = (unsigned char)ct->tail[i++];
        out[o++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
    }
    out[o] = '\0';
}

static void cmd_describe_exit(cmd_transport *ct, int64_t status, int signo)
{
    char *msg = smx_transport_errbuf(&ct->base);
    size_t cap = SMX_MSG_MAX;
    if (!msg)
        return;
    const char *more = strlen(ct->command) > CMD_SHOWN ? "..." : "";
    int n;
    if (signo)
        n = snprintf(msg, cap, "%s \"%.*s%s\" killed by signal %d", CMD_LABEL, CMD_SHOWN,
                     ct->command, more, signo);
    else
        n = snprintf(msg, cap, "%s \"%.*s%s\" exited with status %lld", CMD_LABEL, CMD_SHOWN,
                     ct->command, more, (long long)status);
    for (char *p = msg; *p; p++)   /* a command line with control characters */
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    if (n > 0 && (size_t)n < cap)
        cmd_append_tail(ct, msg + n, cap - (size_t)n);
}

/* ---- handles -------------------------------------------------------------------------- */

static void cmd_close_fd(int *fd)
{
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}

static void cmd_free(cmd_transport *ct)
{
    cmd_close_fd(&ct->base.fd);
    cmd_close_fd(&ct->child_fd);
    smx_transport_close_cb cb = ct->close_cb;
    void *data = ct->base.data;
    smx_transport_free_error(&ct->base);
    free(ct->command);
    free(ct);
    if (cb)
        cb(data);
}

static void cmd_release(cmd_transport *ct)
{
    if (--ct->handles == 0 && ct->closing)
        cmd_free(ct);
}

static void cmd_on_closed(uv_handle_t *h)
{
    cmd_release(h->data);
}

/* The owner re-points watch.data at itself, so walk back from the handle. */
static void cmd_on_watch_closed(uv_handle_t *h)
{
    smx_fdwatch *w = SMX_CONTAINER_OF(h, smx_fdwatch, poll);
    cmd_release((cmd_transport *)SMX_CONTAINER_OF(w, smx_transport, watch));
}

static void cmd_close_handle(uv_handle_t *h)
{
    if (!uv_is_closing(h))
        uv_close(h, cmd_on_closed);
}

/* ---- the child ------------------------------------------------------------------------ */

static void cmd_on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    cmd_transport *ct = h->data;
    *buf = uv_buf_init(ct->readbuf, sizeof ct->readbuf);
}

static void cmd_on_stderr(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    cmd_transport *ct = s->data;
    if (nread > 0)
        cmd_keep_tail(ct, buf->base, (size_t)nread);
    else if (nread < 0)
        uv_read_stop(s);   /* EOF or error; the handle is closed with the process */
}

/* What the child wrote just before it exited may still be in the pipe: libuv reports the exit
 * and the pipe's readability in no particular order. Bounded: a grandchild may keep writing. */
static void cmd_drain_stderr(cmd_transport *ct)
{
    uv_os_fd_t fd;
    if (uv_is_closing((uv_handle_t *)&ct->errpipe) ||
        uv_fileno((uv_handle_t *)&ct->errpipe, &fd) < 0)
        return;
    for (int i = 0; i < 16; i++) {   /* the parent end is non-blocking (libuv sets it) */
        ssize_t n = read(fd, ct->readbuf, sizeof ct->readbuf);
        if (n <= 0)
            break;
        cmd_keep_tail(ct, ct->readbuf, (size_t)n);
    }
}

static void cmd_on_exit(uv_process_t *p, int64_t status, int signo)
{
    cmd_transport *ct = p->data;
    ct->running = 0;
    cmd_drain_stderr(ct);
    cmd_describe_exit(ct, status, signo);
    /* We held the child's end open until now, so the session sees EOF only after errmsg says
     * why: a SIGCHLD handled after the EOF would otherwise leave it a bare "connection closed". */
    cmd_close_fd(&ct->child_fd);
    uv_close((uv_handle_t *)p, cmd_on_closed);
    cmd_close_handle((uv_handle_t *)&ct->errpipe);
    if (ct->closing) {
        uv_timer_stop(&ct->kill_timer);
        cmd_close_handle((uv_handle_t *)&ct->kill_timer);
    }
}

/* Only while the child is unreaped: once reaped, its pid (= its group id) may be reused, even by
 * another transport's child. */
static void cmd_signal_group(cmd_transport *ct, int signo)
{
    if (ct->running)
        kill(-ct->proc.pid, signo);
}

static void cmd_on_kill_timer(uv_timer_t *t)
{
    cmd_signal_group(t->data, SIGKILL);
}

static int cmd_spawn(cmd_transport *ct)
{
    char **env = cmd_sanitized_env();
    if (!env)
        return UV_ENOMEM;
    char *args[] = {"sh", "-c", ct->command, NULL};
    uv_stdio_container_t stdio[3];
    stdio[0].flags = UV_INHERIT_FD;
    stdio[0].data.fd = ct->child_fd;
    stdio[1] = stdio[0];
    stdio[2].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;   /* writable from the child's side */
    stdio[2].data.stream = (uv_stream_t *)&ct->errpipe;
    uv_process_options_t opts;
    memset(&opts, 0, sizeof opts);
    opts.exit_cb = cmd_on_exit;
    opts.file = "/bin/sh";
    opts.args = args;
    opts.env = env;
    opts.flags = UV_PROCESS_DETACHED;   /* setsid(): its own process group, for close */
    opts.stdio_count = 3;
    opts.stdio = stdio;
    int rc = uv_spawn(ct->base.loop, &ct->proc, &opts);
    free(env);
    ct->proc.data = ct;
    ct->handles++;   /* uv_spawn initialises the handle even when it fails */
    if (rc < 0) {
        uv_close((uv_handle_t *)&ct->proc, cmd_on_closed);
        return rc;
    }
    ct->running = 1;
    return 0;
}

/* ---- the vtbl ------------------------------------------------------------------------- */

static int cmd_prepare(smx_transport *t, smx_transport_cb cb)
{
    cmd_transport *ct = (cmd_transport *)t;
    /* Nothing to resolve. Hosts reached through the same command line share a handshake gate:
     * we cannot see past it to the server. */
    snprintf(t->gate_key, sizeof t->gate_key, "cmd:%s", ct->command);
    snprintf(t->peer, sizeof t->peer, "proxycommand");
    cb(t, 0);
    return 0;
}

static void cmd_on_io(smx_fdwatch *w, int status, int events)
{
    /* Not watched before the session takes the watch over (interest is empty until then). */
}

static void cmd_fail(cmd_transport *ct, int code, const char *what, int err)
{
    smx_transport_set_error(&ct->base, "%s \"%.*s%s\": %s: %s", CMD_LABEL,
             CMD_SHOWN, ct->command, strlen(ct->command) > CMD_SHOWN ? "..." : "", what,
             uv_strerror(err));
    ct->base.error_stage = SMX_STAGE_CONNECT;
    ct->cb(&ct->base, code);
}

static int cmd_connect(smx_transport *t, smx_transport_cb cb)
{
    cmd_transport *ct = (cmd_transport *)t;
    ct->cb = cb;
    uv_pipe_init(t->loop, &ct->errpipe, 0);
    uv_timer_init(t->loop, &ct->kill_timer);
    ct->errpipe.data = ct;
    ct->kill_timer.data = ct;
    ct->handles = 2;
    ct->started = 1;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        int err = errno;
        cmd_fail(ct, (err == EMFILE || err == ENFILE) ? SMX_EMFILE : SMX_ECONNECT, "socketpair",
                 -err);
        return 0;
    }
    t->fd = sv[0];
    ct->child_fd = sv[1];
    int rc = cmd_spawn(ct);
    if (rc < 0) {
        cmd_fail(ct, rc == UV_EMFILE || rc == UV_ENFILE ? SMX_EMFILE : SMX_ECONNECT,
                 "cannot start /bin/sh", rc);
        return 0;
    }
    /* Ours only: the child's end stays blocking, as programs expect of their stdio. */
    int fl = fcntl(t->fd, F_GETFL);
    if (fl < 0 || fcntl(t->fd, F_SETFL, fl | O_NONBLOCK) < 0) {
        cmd_fail(ct, SMX_ECONNECT, "fcntl", -errno);
        return 0;
    }
    rc = smx_fdwatch_init(t->loop, &t->watch, t->fd, cmd_on_io, ct);
    if (rc < 0) {
        cmd_fail(ct, SMX_ECONNECT, "uv_poll_init", rc);
        return 0;
    }
    ct->handles++;
    uv_read_start((uv_stream_t *)&ct->errpipe, cmd_on_alloc, cmd_on_stderr);
    cb(t, 0);
    return 0;
}

/* The child may outlive the session by up to CMD_KILL_GRACE_MS (SIGTERM ignored); cb runs only
 * once it is reaped and every handle is closed. */
static void cmd_close(smx_transport *t, smx_transport_close_cb cb)
{
    cmd_transport *ct = (cmd_transport *)t;
    ct->close_cb = cb;
    ct->closing = 1;
    if (!ct->started) {
        cmd_free(ct);
        return;
    }
    /* The poll is stopped (and out of epoll) at once, so the fd can go now: the child then sees
     * EOF on its stdin as soon as possible. */
    if (t->watch.active)
        smx_fdwatch_close(&t->watch, cmd_on_watch_closed);
    cmd_close_fd(&t->fd);
    cmd_close_fd(&ct->child_fd);
    cmd_close_handle((uv_handle_t *)&ct->errpipe);
    if (ct->running) {
        cmd_signal_group(ct, SIGTERM);
        uv_timer_start(&ct->kill_timer, cmd_on_kill_timer, CMD_KILL_GRACE_MS, 0);
        return;   /* cmd_on_exit closes the process and the timer */
    }
    cmd_close_handle((uv_handle_t *)&ct->kill_timer);
}

static const smx_transport_vtbl cmd_vtbl = {
    .name = "command",
    .prepare = cmd_prepare,
    .connect = cmd_connect,
    .close = cmd_close,
};

smx_transport *smx_command_transport_new(uv_loop_t *loop, const char *command)
{
    cmd_transport *ct = calloc(1, sizeof *ct);
    if (!ct)
        return NULL;
    ct->command = strdup(command);
    if (!ct->command) {
        free(ct);
        return NULL;
    }
    ct->base.vt = &cmd_vtbl;
    ct->base.loop = loop;
    ct->base.fd = -1;
    ct->child_fd = -1;
    return &ct->base;
}

static int command_applies(const smx_hostcfg *hc)
{
    return hc->proxycommand && strcmp(hc->proxycommand, "none") != 0;
}

static smx_transport *command_make(const smx_transport_env *env, const smx_hostcfg *hc,
                                   smx_err *err)
{
    char *cmd = NULL;
    if (smx_hostcfg_expand_proxy(hc, hc->proxycommand, &cmd, err) < 0)
        return NULL;
    smx_transport *t = smx_command_transport_new(env->loop, cmd);
    free(cmd);
    if (!t)
        smx_seterr(err, SMX_ENOMEM, "out of memory");
    return t;
}

const smx_transport_kind smx_command_transport_kind = {"command", command_applies, command_make};
