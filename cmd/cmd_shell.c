/* sshmux shell: `ssh TARGET` for one host: the login shell (or a command) on a PTY sized and typed
 * as the local terminal, the terminal in raw mode while it runs (restored on every way out),
 * SIGWINCH passed on as window-change, OpenSSH's escapes after a newline, and the remote exit
 * status as ours (255 when the connection failed or ~. closed it).
 *
 * --broadcast: every host of -w at once (clusterssh's idea on a plain terminal). The local
 * terminal stays line-edited; each line typed goes to every host's shell, and their output comes
 * back line by line prefixed with the host, as exec prints it. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "cli.h"
#include "output.h"

#define SHELL_READ_SIZE 4096
#define SHELL_INPUT_HIGH (1u << 20)   /* input queued towards the hosts before we stop reading */
#define SHELL_OUTPUT_HIGH (1u << 20)  /* output queued for stdout/stderr before the hosts pause */
#define SHELL_OUTPUT_LOW (256u << 10)
#define SHELL_NO_ESCAPE (-1)

typedef struct shell_ui shell_ui;

typedef struct shell_host {
    shell_ui *ui;
    smx_shell *s;                 /* NULL once done */
    smx_shell_callbacks cb;
} shell_host;

/* Writes to stdout/stderr without blocking the loop: a terminal or pipe through libuv (copies
 * queued while the other side is slow), a file with write(2). */
typedef struct shell_out {
    shell_ui *ui;
    int fd;
    uv_stream_t *stream;          /* NULL: a file */
    union {
        uv_tty_t tty;
        uv_pipe_t pipe;
    } h;
} shell_out;

struct shell_ui {
    cli *c;
    uv_loop_t *loop;
    smx_engine *e;
    shell_host *hosts;
    size_t nhosts, running;
    output *bcast;                /* --broadcast: exec's line output */
    /* stdin */
    union {
        uv_tty_t tty;
        uv_pipe_t pipe;
    } in;
    uv_stream_t *in_stream;       /* NULL: a file, read with uv_fs_read */
    uv_fs_t in_req;
    char in_buf[SHELL_READ_SIZE];
    int in_reading, in_eof, in_fs_busy, in_closed;
    int want_raw, raw;            /* the terminal goes raw once the shell started (restore it) */
    uv_timer_t resume_timer;      /* re-checks the input queue while reading is paused */
    uv_signal_t sigwinch, sigterm, sighup;
    shell_out out, err;
    int output_paused;            /* the hosts' output waits (a slow reader of our stdout) */
    /* escapes */
    int escape_char;              /* SHELL_NO_ESCAPE: none */
    int at_line_start, saw_escape;
    int closed_by_escape;
    smx_result *result;           /* single host: kept for the exit status */
};

/* ---- the terminal ------------------------------------------------------------------------ */

/* Raw mode must never outlive us: every exit path runs this (also registered with atexit). */
static void shell_restore_terminal(void)
{
    uv_tty_reset_mode();
}

static void shell_out_init(shell_out *o, shell_ui *ui, int fd)
{
    uv_loop_t *loop = ui->loop;
    o->ui = ui;
    o->fd = fd;
    o->stream = NULL;
    switch (uv_guess_handle(fd)) {
    case UV_TTY:
        if (uv_tty_init(loop, &o->h.tty, fd, 0) == 0)
            o->stream = (uv_stream_t *)&o->h.tty;
        break;
    case UV_NAMED_PIPE:
    case UV_TCP:
        if (uv_pipe_init(loop, &o->h.pipe, 0) == 0) {
            if (uv_pipe_open(&o->h.pipe, fd) == 0)
                o->stream = (uv_stream_t *)&o->h.pipe;
            else
                uv_close((uv_handle_t *)&o->h.pipe, NULL);
        }
        break;
    default:
        break;
    }
}

/* What the hosts send is held at them (their SSH windows fill, they stop) while more than
 * SHELL_OUTPUT_HIGH waits for our stdout or stderr, so a slow reader keeps memory bounded. */
static void shell_pause_output(shell_ui *ui, int paused)
{
    if (ui->output_paused == paused)
        return;
    ui->output_paused = paused;
    for (size_t i = 0; i < ui->nhosts; i++)
        if (ui->hosts[i].s)
            smx_shell_pause_output(ui->hosts[i].s, paused);
}

static size_t shell_out_queued(const shell_out *o)
{
    return o->stream ? o->stream->write_queue_size : 0;
}

static void shell_on_out_written(uv_write_t *req, int status)
{
    shell_out *o = req->data;
    free(req);
    shell_ui *ui = o->ui;
    if (ui->output_paused && shell_out_queued(&ui->out) < SHELL_OUTPUT_LOW &&
        shell_out_queued(&ui->err) < SHELL_OUTPUT_LOW)
        shell_pause_output(ui, 0);
}

static void shell_out_write(shell_out *o, const char *p, size_t n)
{
    if (!o->stream) {
        while (n > 0) {
            ssize_t w = write(o->fd, p, n);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0)
                return;
            p += w;
            n -= (size_t)w;
        }
        return;
    }
    if (o->stream->write_queue_size == 0) {
        uv_buf_t b = uv_buf_init((char *)p, (unsigned)n);
        int w = uv_try_write(o->stream, &b, 1);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
        }
        if (n == 0)
            return;
    }
    uv_write_t *req = malloc(sizeof *req + n);
    if (!req)
        return;
    char *copy = (char *)(req + 1);
    memcpy(copy, p, n);
    uv_buf_t b = uv_buf_init(copy, (unsigned)n);
    req->data = o;
    if (uv_write(req, o->stream, &b, 1, shell_on_out_written) < 0)
        free(req);
    else if (shell_out_queued(o) > SHELL_OUTPUT_HIGH)
        shell_pause_output(o->ui, 1);
}

static void shell_out_close(shell_out *o)
{
    if (o->stream && !uv_is_closing((uv_handle_t *)o->stream))
        uv_close((uv_handle_t *)o->stream, NULL);
}

static void shell_say(shell_ui *ui, const char *msg)
{
    shell_out_write(&ui->err, msg, strlen(msg));
}

static void shell_send_size(shell_ui *ui)
{
    int cols = 0, rows = 0;
    if (!ui->raw || uv_tty_get_winsize(&ui->in.tty, &cols, &rows) != 0)
        return;
    for (size_t i = 0; i < ui->nhosts; i++)
        if (ui->hosts[i].s)
            smx_shell_resize(ui->hosts[i].s, cols, rows);
}

/* ---- input --------------------------------------------------------------------------------- */

static void shell_read_more(shell_ui *ui);
static void shell_pause_input(shell_ui *ui);

static void shell_write_all(shell_ui *ui, const char *p, size_t n)
{
    for (size_t i = 0; i < ui->nhosts; i++)
        if (ui->hosts[i].s && n)
            smx_shell_write(ui->hosts[i].s, p, n);
}

static size_t shell_most_pending(const shell_ui *ui)
{
    size_t most = 0;
    for (size_t i = 0; i < ui->nhosts; i++)
        if (ui->hosts[i].s && smx_shell_pending(ui->hosts[i].s) > most)
            most = smx_shell_pending(ui->hosts[i].s);
    return most;
}

static void shell_escape_help(shell_ui *ui)
{
    char e = (char)ui->escape_char;
    char msg[1024];
    snprintf(msg, sizeof msg,
             "%c?\r\nSupported escape sequences:\r\n"
             " %c.   - terminate connection\r\n"
             " %c^Z  - suspend sshmux\r\n"
             " %c#   - list forwarded connections\r\n"
             " %c?   - this message\r\n"
             " %c%c   - send the escape character by typing it twice\r\n"
             "(Note that escapes are only recognized immediately after newline.)\r\n",
             e, e, e, e, e, e, e);
    shell_say(ui, msg);
}

/* libuv's raw mode keeps output processing (ONLCR); the remote terminal already ends lines with
 * \r\n, so output goes through untouched, as ssh leaves it. libuv saved the settings it found:
 * uv_tty_reset_mode restores them. */
static int shell_raw_mode(shell_ui *ui)
{
    if (uv_tty_set_mode(&ui->in.tty, UV_TTY_MODE_RAW) != 0)
        return -1;
    struct termios t;
    if (tcgetattr(0, &t) == 0) {
        t.c_oflag &= ~(tcflag_t)OPOST;
        tcsetattr(0, TCSADRAIN, &t);
    }
    return 0;
}

static void shell_suspend(shell_ui *ui)
{
    char msg[64];
    snprintf(msg, sizeof msg, "%c^Z [suspend sshmux]\r\n", (char)ui->escape_char);
    shell_say(ui, msg);
    uv_tty_reset_mode();
    kill(getpid(), SIGTSTP);   /* stops here; continues after fg */
    if (ui->raw)
        shell_raw_mode(ui);
    shell_send_size(ui);       /* the terminal may have changed meanwhile */
}

/* One byte after the escape character. Returns 1 when the session was closed. */
static int shell_escape_command(shell_ui *ui, unsigned char ch, char *send, size_t *ns)
{
    ui->at_line_start = 1;
    switch (ch) {
    case '.': {
        char msg[256];
        snprintf(msg, sizeof msg, "%c.\r\n", (char)ui->escape_char);
        shell_say(ui, msg);
        ui->closed_by_escape = 1;
        smx_shell_close(ui->hosts[0].s, "closed by the escape sequence ~.");
        return 1;
    }
    case 0x1a:   /* ^Z */
        shell_suspend(ui);
        return 0;
    case '#': {
        char msg[512];
        snprintf(msg, sizeof msg, "%c#\r\nThe following connections are open:\r\n"
                 "  #0 client-session (%s, a session channel)\r\n", (char)ui->escape_char,
                 smx_shell_host(ui->hosts[0].s));
        shell_say(ui, msg);
        return 0;
    }
    case '?':
        shell_escape_help(ui);
        return 0;
    default:
        /* The escape character twice sends one; anything else goes on with the escape
         * character before it, as ssh does. */
        if ((int)ch != ui->escape_char)
            send[(*ns)++] = (char)ui->escape_char;
        send[(*ns)++] = (char)ch;
        ui->at_line_start = ch == '\r' || ch == '\n';
        return 0;
    }
}

/* Typed bytes through the escape state machine; what is left goes to the host. */
static void shell_take_input(shell_ui *ui, const char *p, size_t n)
{
    if (ui->escape_char == SHELL_NO_ESCAPE) {
        shell_write_all(ui, p, n);
        return;
    }
    char send[2 * SHELL_READ_SIZE];
    size_t ns = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)p[i];
        if (ui->saw_escape) {
            ui->saw_escape = 0;
            if (shell_escape_command(ui, ch, send, &ns))
                return;   /* closed: nothing more goes out */
            continue;
        }
        if (ui->at_line_start && (int)ch == ui->escape_char) {
            ui->saw_escape = 1;
            continue;
        }
        send[ns++] = (char)ch;
        ui->at_line_start = ch == '\r' || ch == '\n';
    }
    shell_write_all(ui, send, ns);
}

static void shell_input_ended(shell_ui *ui)
{
    ui->in_eof = 1;
    shell_pause_input(ui);
    for (size_t i = 0; i < ui->nhosts; i++)
        if (ui->hosts[i].s)
            smx_shell_send_eof(ui->hosts[i].s);
}

static void shell_on_resume_timer(uv_timer_t *t);

/* Back-pressure: a host that takes input slower than it comes (a paste into a slow link) stops
 * our reading until it caught up, so queued input stays bounded. */
static void shell_after_input(shell_ui *ui)
{
    if (shell_most_pending(ui) > SHELL_INPUT_HIGH) {
        shell_pause_input(ui);
        uv_timer_start(&ui->resume_timer, shell_on_resume_timer, 20, 0);
    }
}

static void shell_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    shell_ui *ui = h->data;
    *b = uv_buf_init(ui->in_buf, sizeof ui->in_buf);
}

static void shell_on_stream_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
    shell_ui *ui = st->data;
    if (n > 0) {
        shell_take_input(ui, b->base, (size_t)n);
        shell_after_input(ui);
    } else if (n < 0) {
        shell_input_ended(ui);
    }
}

static void shell_on_fs_read(uv_fs_t *req)
{
    shell_ui *ui = req->data;
    ssize_t n = req->result;
    uv_fs_req_cleanup(req);
    ui->in_fs_busy = 0;
    if (n <= 0) {
        shell_input_ended(ui);
        return;
    }
    shell_take_input(ui, ui->in_buf, (size_t)n);
    shell_after_input(ui);
    if (ui->in_reading)
        shell_read_more(ui);
}

static void shell_read_more(shell_ui *ui)
{
    if (ui->in_eof || ui->in_closed)
        return;
    ui->in_reading = 1;
    if (ui->in_stream) {
        uv_read_start(ui->in_stream, shell_alloc, shell_on_stream_read);
        return;
    }
    if (ui->in_fs_busy)
        return;
    ui->in_fs_busy = 1;
    ui->in_req.data = ui;
    uv_buf_t b = uv_buf_init(ui->in_buf, sizeof ui->in_buf);
    if (uv_fs_read(ui->loop, &ui->in_req, 0, &b, 1, -1, shell_on_fs_read) < 0) {
        ui->in_fs_busy = 0;
        shell_input_ended(ui);
    }
}

static void shell_pause_input(shell_ui *ui)
{
    ui->in_reading = 0;
    if (ui->in_stream && !ui->in_closed)
        uv_read_stop(ui->in_stream);
}

/* While paused: reading goes on once the hosts took most of what was queued. */
static void shell_on_resume_timer(uv_timer_t *t)
{
    shell_ui *ui = t->data;
    if (ui->running == 0 || ui->in_eof)
        return;
    if (shell_most_pending(ui) < SHELL_INPUT_HIGH / 4) {
        shell_read_more(ui);
        return;
    }
    uv_timer_start(t, shell_on_resume_timer, 20, 0);
}

static void shell_open_input(shell_ui *ui)
{
    ui->in_stream = NULL;
    switch (uv_guess_handle(0)) {
    case UV_TTY:
        if (uv_tty_init(ui->loop, &ui->in.tty, 0, 1) == 0)
            ui->in_stream = (uv_stream_t *)&ui->in.tty;
        break;
    case UV_NAMED_PIPE:
    case UV_TCP:
        if (uv_pipe_init(ui->loop, &ui->in.pipe, 0) == 0) {
            if (uv_pipe_open(&ui->in.pipe, 0) == 0)
                ui->in_stream = (uv_stream_t *)&ui->in.pipe;
            else
                uv_close((uv_handle_t *)&ui->in.pipe, NULL);
        }
        break;
    default:
        break;
    }
    if (ui->in_stream)
        ui->in_stream->data = ui;
}

static void shell_close_input(shell_ui *ui)
{
    if (ui->in_closed)
        return;
    ui->in_closed = 1;
    ui->in_reading = 0;
    if (ui->raw)
        shell_restore_terminal();
    if (ui->in_stream)
        uv_close((uv_handle_t *)ui->in_stream, NULL);
    else if (ui->in_fs_busy)
        uv_cancel((uv_req_t *)&ui->in_req);
}

/* ---- the hosts ----------------------------------------------------------------------------- */

static void shell_on_started(void *ud, smx_shell *s)
{
    shell_host *h = ud;
    shell_ui *ui = h->ui;
    if (ui->want_raw && !ui->raw && !ui->in_closed) {
        atexit(shell_restore_terminal);
        ui->raw = shell_raw_mode(ui) == 0;
    }
    if (ui->raw)
        shell_send_size(ui);   /* the size may have changed while connecting */
    if (!ui->in_reading && !ui->in_eof)
        shell_read_more(ui);   /* typed-ahead input waited in the terminal until now */
}

static void shell_on_data(void *ud, smx_shell *s, int is_stderr, const char *p, size_t n)
{
    shell_host *h = ud;
    shell_out_write(is_stderr ? &h->ui->err : &h->ui->out, p, n);
}

static void shell_on_line(void *ud, const smx_result *r, int is_stderr, const char *line,
                          size_t len)
{
    shell_host *h = ud;
    const smx_exec_callbacks *ocb = output_callbacks(h->ui->bcast);
    if (len && line[len - 1] == '\r')
        len--;   /* a PTY's line ends */
    ocb->on_line(ocb->ud, r, is_stderr, line, len);
}

static void shell_all_done(shell_ui *ui)
{
    shell_close_input(ui);
    uv_close((uv_handle_t *)&ui->resume_timer, NULL);
    uv_close((uv_handle_t *)&ui->sigwinch, NULL);
    uv_close((uv_handle_t *)&ui->sigterm, NULL);
    uv_close((uv_handle_t *)&ui->sighup, NULL);
}

static void shell_on_done(void *ud, smx_result *r)
{
    shell_host *h = ud;
    shell_ui *ui = h->ui;
    h->s = NULL;
    if (ui->bcast) {
        const smx_exec_callbacks *ocb = output_callbacks(ui->bcast);
        ocb->on_done(ocb->ud, r);
    } else {
        ui->result = r;
    }
    if (--ui->running == 0)
        shell_all_done(ui);
}

/* SIGTERM/SIGHUP: the terminal is given back and every session closed (ssh ends the same). */
static void shell_on_signal(uv_signal_t *sig, int signum)
{
    shell_ui *ui = sig->data;
    shell_close_input(ui);
    for (size_t i = 0; i < ui->nhosts; i++)
        if (ui->hosts[i].s)
            smx_shell_close(ui->hosts[i].s, signum == SIGHUP ? "hung up (SIGHUP)"
                                                             : "terminated (SIGTERM)");
    smx_engine_cancel(ui->e, signum == SIGHUP ? "hung up (SIGHUP)" : "terminated (SIGTERM)");
}

static void shell_on_winch(uv_signal_t *sig, int signum)
{
    shell_send_size(sig->data);
}

/* ---- options ------------------------------------------------------------------------------- */

/* -e: a character, "^X" for a control character, or "none". */
static int shell_parse_escape(cli *c, const char *s, int *out)
{
    if (!s) {
        *out = '~';
        return 0;
    }
    if (strcmp(s, "none") == 0) {
        *out = SHELL_NO_ESCAPE;
        return 0;
    }
    if (s[0] == '^' && s[1] && !s[2]) {
        *out = s[1] & 31;
        return 0;
    }
    if (s[0] && !s[1]) {
        *out = (unsigned char)s[0];
        return 0;
    }
    cli_error(c, "-e \"%s\": bad escape character (a single character, ^X, or none)", s);
    return -1;
}

/* As ssh decides: a PTY for an interactive login when stdin is a terminal; for a command only
 * with -t; -tt forces one; -T never. */
static int shell_wants_pty(cli *c, int has_command, int stdin_tty)
{
    if (c->no_pty)
        return 0;
    int want = c->broadcast ? c->tty_flags > 0 : has_command ? c->tty_flags > 0 : 1;
    if (want && !stdin_tty && c->tty_flags < 2) {
        if (c->tty_flags > 0 || !has_command)
            cli_warn(c, "Pseudo-terminal will not be allocated because stdin is not a terminal.");
        return 0;
    }
    return want;
}

static int shell_prepare(cli *c, char **command)
{
    if (c->x.sudo || c->cmds.n) {
        cli_error(c, "--sudo and --cmd are for sshmux exec (a shell is typed into)");
        return EXIT_USAGE;
    }
    int taken = cli_take_target(c, "sshmux shell [options] TARGET [COMMAND...]");
    if (taken < 0)
        return EXIT_USAGE;
    if ((size_t)taken < c->args.n && !(*command = cli_join_args(&c->args, (size_t)taken))) {
        cli_error(c, "out of memory");
        return EXIT_UNREACHABLE;
    }
    int rc = cli_resolve_hosts(c, 1);
    if (rc)
        return rc;
    if (c->nhosts > 1 && !c->broadcast) {
        cli_error(c, "%zu hosts given: a shell is one terminal on one host (--broadcast types "
                  "into all of them; sshmux exec runs a command on all)", c->nhosts);
        return EXIT_USAGE;
    }
    return 0;
}

/* ---- the run ------------------------------------------------------------------------------- */

static int shell_add_hosts(shell_ui *ui)
{
    cli *c = ui->c;
    ui->hosts = calloc(c->nhosts, sizeof *ui->hosts);
    if (!ui->hosts)
        return EXIT_UNREACHABLE;
    for (size_t i = 0; i < c->nhosts; i++) {
        shell_host *h = &ui->hosts[i];
        cli_host *ch = &c->hosts[i];
        h->ui = ui;
        h->cb.started = shell_on_started;
        h->cb.on_data = ui->bcast ? NULL : shell_on_data;
        h->cb.on_line = ui->bcast ? shell_on_line : NULL;
        h->cb.on_done = shell_on_done;
        h->cb.ud = h;
        if (smx_engine_add_shell(ui->e, ch->target, ch->hc, ch->password, &c->x, &h->cb,
                                 &h->s) < 0) {
            cli_error(c, "out of memory");
            return EXIT_UNREACHABLE;
        }
        ch->hc = NULL;   /* the engine's */
        ui->nhosts++;
        ui->running++;
    }
    return 0;
}

static void shell_watch_signals(shell_ui *ui)
{
    uv_signal_t *sigs[3] = {&ui->sigwinch, &ui->sigterm, &ui->sighup};
    int nums[3] = {SIGWINCH, SIGTERM, SIGHUP};
    uv_signal_cb fns[3] = {shell_on_winch, shell_on_signal, shell_on_signal};
    for (int i = 0; i < 3; i++) {
        uv_signal_init(ui->loop, sigs[i]);
        sigs[i]->data = ui;
        uv_signal_start(sigs[i], fns[i], nums[i]);
        uv_unref((uv_handle_t *)sigs[i]);
    }
    uv_timer_init(ui->loop, &ui->resume_timer);
    ui->resume_timer.data = ui;
    uv_unref((uv_handle_t *)&ui->resume_timer);
}

/* The single host's end as ssh reports it. */
static int shell_single_status(shell_ui *ui)
{
    smx_result *r = ui->result;
    if (!r)
        return EXIT_UNREACHABLE;
    int rc = smx_result_exit_status(r);
    char msg[SMX_MSG_MAX + 128];
    if (ui->closed_by_escape) {
        snprintf(msg, sizeof msg, "Connection to %s closed.\r\n", r->host);
        shell_say(ui, msg);
        return EXIT_UNREACHABLE;
    }
    if (r->err_stage != SMX_STAGE_NONE) {
        snprintf(msg, sizeof msg, "sshmux shell: %s: %s\n", r->host, smx_result_error(r));
        shell_say(ui, msg);
    } else if (ui->c->x.pty && isatty(2)) {
        snprintf(msg, sizeof msg, "Connection to %s closed.\r\n", r->host);
        shell_say(ui, msg);
    }
    return rc;
}

static int shell_run(shell_ui *ui, const char *command)
{
    cli *c = ui->c;
    int stdin_tty = isatty(0);
    c->x.command = command;
    c->x.env = c->env.n ? &c->env : NULL;
    c->x.pty = shell_wants_pty(c, command != NULL, stdin_tty);
    c->x.capture = c->broadcast && (c->gather || c->json);
    const char *term = getenv("TERM");
    c->x.term = term && *term ? term : "dumb";
    if (shell_parse_escape(c, c->escape, &ui->escape_char) < 0)
        return EXIT_USAGE;
    if (!c->escape && !c->x.pty)
        ui->escape_char = SHELL_NO_ESCAPE;   /* as ssh: escapes need a PTY unless -e asks */
    if (c->broadcast)
        ui->escape_char = SHELL_NO_ESCAPE;
    ui->at_line_start = 1;

    if (smx_engine_new(&ui->e, ui->loop, &c->eng) < 0)
        return EXIT_UNREACHABLE;
    int rc = cli_load_credentials(c, ui->e);
    if (rc)
        return rc;
    if (c->broadcast) {
        ui->bcast = output_new(c, ui->loop);
        if (!ui->bcast)
            return EXIT_UNREACHABLE;
    }
    shell_out_init(&ui->out, ui, 1);
    shell_out_init(&ui->err, ui, 2);
    shell_open_input(ui);
    if (c->x.pty && stdin_tty && ui->in_stream && !c->broadcast) {
        int cols = 0, rows = 0;
        if (uv_tty_get_winsize(&ui->in.tty, &cols, &rows) == 0) {
            c->x.cols = cols;
            c->x.rows = rows;
        }
        ui->want_raw = 1;   /* once the PTY is granted: its modes are the terminal's now */
    }
    rc = shell_add_hosts(ui);
    if (rc)
        return rc;
    shell_watch_signals(ui);
    uint64_t t0 = uv_hrtime();
    smx_engine_run(ui->e);
    shell_close_input(ui);
    if (ui->bcast)
        return output_finish(ui->bcast, (double)(uv_hrtime() - t0) / 1e6, ui->e);
    return shell_single_status(ui);
}

int cmd_shell(int argc, char **argv)
{
    cli c;
    shell_ui ui = {0};
    ui.c = &c;
    ui.loop = uv_default_loop();
    char *command = NULL;
    int rc = cli_parse_mode(&c, argc, argv, "sshmux shell", CLI_PARSE_SHELL);
    if (!rc)
        rc = shell_prepare(&c, &command);
    if (!rc)
        rc = shell_run(&ui, command);
    shell_close_input(&ui);   /* the terminal is ours no more, whatever happened */
    smx_engine_free(ui.e);
    shell_out_close(&ui.out);
    shell_out_close(&ui.err);
    uv_run(ui.loop, UV_RUN_DEFAULT);   /* queued output drains; closed handles finish */
    uv_loop_close(ui.loop);
    smx_result_destroy(ui.result);
    output_free(ui.bcast);
    free(ui.hosts);
    free(command);
    cli_free(&c);
    return rc;
}
