/* exec as a channel application: session channel -> the shared request sequence (ssh/sessreq.c)
 * -> stream stdout/stderr until the server closes the channel; exit-status / exit-signal
 * recorded; -u and cancel send TERM, then KILL. */
#include "exec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sessreq.h"
#include "sudo.h"

#define EXEC_MAX_PARTIAL_LINE (64 * 1024)   /* a line longer than this is passed on in pieces */

enum exec_state {
    EXEC_OPENING,    /* session channel open pending */
    EXEC_REQUESTS,   /* pty-req / env / exec pending */
    EXEC_RUNNING,
    EXEC_KILLING,    /* timed out or canceled: TERM sent, KILL after the grace period */
    EXEC_DONE
};

struct smx_exec {
    smx_chan chan;
    const smx_exec_opts *spec;
    smx_sessreq_spec req_spec;
    smx_sessreq req;
    smx_result *result;
    const smx_exec_events *ev;
    enum exec_state st;
    uv_timer_t timer;               /* -u, the kill grace */
    smx_buf partial[2];             /* incomplete last line per stream (streaming mode) */
    int remote_closed;
    int canceled;                   /* smx_exec_cancel calls so far */
    int released;                   /* the channel is released: done may run */
    uint64_t t_start;
    /* --sudo: our prompt is found and removed from both streams, and answered once. */
    char *wrapped;                  /* the sudo command line sent */
    smx_sudo_filter sudo_out[2];
    int sudo_prompts, sudo_answered, sudo_wants_tty;
    int cur_stderr;                 /* the stream being filtered (for the emit callback) */
    /* Without a PTY, stderr's first line is held: sudo says there when sudoers wants a tty, and
     * that message is no output of the command (the step runs again on a PTY). */
    smx_buf err_hold;
    int err_holding;
    /* Input (smx_exec_write): in.data[in_off..in.len) is still to go. */
    smx_buf in;
    size_t in_off;
    int eof_wanted, eof_sent;
    int win_cols, win_rows, win_due;
    int started_told;
    int out_paused, out_held;       /* smx_exec_pause_output; data left in libssh meanwhile */
};

#define EXEC_INPUT_MAX ((size_t)64 << 20)   /* queued input past this is refused (ENOMEM) */

static void exec_finish(smx_exec *x);

static void exec_emit_lines(smx_exec *x, int is_stderr, const char *p, size_t n)
{
    smx_buf *part = &x->partial[is_stderr];
    while (n > 0) {
        const char *nl = memchr(p, '\n', n);
        size_t take = nl ? (size_t)(nl - p) : n;
        if (!nl && part->len + take < EXEC_MAX_PARTIAL_LINE) {
            smx_buf_append(part, p, take, EXEC_MAX_PARTIAL_LINE);
            return;
        }
        if (part->len) {
            smx_buf_append(part, p, take, SIZE_MAX);
            x->ev->line(x->ev->ud, is_stderr, part->data, part->len);
            part->len = 0;
        } else {
            x->ev->line(x->ev->ud, is_stderr, p, take);
        }
        size_t used = nl ? take + 1 : take;
        p += used;
        n -= used;
    }
}

static void exec_flush_partial(smx_exec *x)
{
    for (int i = 0; i < 2; i++) {
        smx_buf *part = &x->partial[i];
        if (part->len && x->ev->line)
            x->ev->line(x->ev->ud, i, part->data, part->len);
        part->len = 0;
    }
}

/* ---- the channel's data path (inside libssh) -------------------------------------------- */

static void exec_deliver(smx_exec *x, int is_stderr, const char *data, size_t len)
{
    smx_result *r = x->result;
    if (x->spec->capture) {
        smx_buf *b = is_stderr ? &r->err : &r->out;
        if (smx_buf_append(b, data, len, x->spec->max_output))
            r->truncated = 1;
    }
    if (x->ev->data)
        x->ev->data(x->ev->ud, is_stderr, data, len);
    else if (x->ev->line)
        exec_emit_lines(x, is_stderr, data, len);
}

/* Delivers what was held (or drops it when it was sudo asking for a tty). */
static void exec_release_err(smx_exec *x)
{
    if (!x->err_holding)
        return;
    x->err_holding = 0;
    if (smx_sudo_wants_tty(x->err_hold.data, x->err_hold.len) && !x->sudo_prompts)
        x->sudo_wants_tty = 1;
    else if (x->err_hold.len)
        exec_deliver(x, 1, x->err_hold.data, x->err_hold.len);
    smx_buf_free(&x->err_hold);
}

static void exec_deliver_filtered(void *ud, const char *p, size_t n)
{
    smx_exec *x = ud;
    if (!x->cur_stderr || !x->err_holding) {
        exec_deliver(x, x->cur_stderr, p, n);
        return;
    }
    smx_buf_append(&x->err_hold, p, n, SIZE_MAX);
    if (memchr(p, '\n', n) || x->err_hold.len > 4096)
        exec_release_err(x);
}

static void exec_take(smx_exec *x, const char *data, size_t len, int is_stderr)
{
    if (!x->wrapped) {
        exec_deliver(x, is_stderr, data, len);
        return;
    }
    /* sudo's prompt: on stderr, or on the PTY (stdout) when there is one. */
    x->cur_stderr = is_stderr;
    int prompts = smx_sudo_filter_feed(&x->sudo_out[is_stderr], data, len,
                                       exec_deliver_filtered, x);
    if (prompts)
        exec_release_err(x);   /* asked for a password: it has no tty problem */
    if (prompts) {
        x->sudo_prompts += prompts;
        smx_chan_mark(&x->chan);   /* answered from after_poll: no writes inside libssh */
    }
}

/* Output is taken as it comes (unread data would keep the window shut), unless the owner paused
 * it: then it stays in libssh, our window to the server closes behind it, and the server stops
 * sending: memory stays bounded by the window. */
static int exec_on_data(smx_chan *c, void *data, uint32_t len, int is_stderr)
{
    smx_exec *x = c->data;
    if (x->out_paused || x->out_held) {
        x->out_held = 1;   /* also while draining: read in order by exec_drain_held */
        return 0;
    }
    exec_take(x, data, len, is_stderr);
    return (int)len;
}

/* Delivers what was held, until it is all read or the owner pauses again (force: at the end,
 * whatever the owner said: output is never lost). out_held is cleared only by a round that read
 * nothing: a read may pull new packets into libssh, which the data callback leaves there. */
static void exec_drain_held(smx_exec *x, int force)
{
    if (!x->out_held || !x->chan.ch || x->chan.state != SMX_CHAN_OPEN)
        return;
    enum { CHUNK = 64 * 1024 };
    char *buf = malloc(CHUNK);
    while (buf && (force || !x->out_paused)) {
        int got = 0;
        for (int is_stderr = 0; is_stderr < 2; is_stderr++) {
            int n = ssh_channel_read_nonblocking(x->chan.ch, buf, CHUNK, is_stderr);
            if (n > 0) {
                exec_take(x, buf, (size_t)n, is_stderr);
                got = 1;
            }
        }
        if (!got) {
            x->out_held = 0;
            break;
        }
    }
    free(buf);
}

void smx_exec_pause_output(smx_exec *x, int paused)
{
    x->out_paused = paused;
    if (!paused && x->out_held)
        smx_chan_mark(&x->chan);   /* drained from after_poll */
}

/* The first prompt gets the password; another one means it was wrong (sudo says "Sorry, try
 * again"), and no password means we cannot answer: either way stdin is closed, sudo gives up
 * at once, and the host fails with stage sudo instead of waiting. */
static void exec_answer_sudo(smx_exec *x)
{
    if (x->sudo_answered >= x->sudo_prompts || x->st != EXEC_RUNNING)
        return;
    const char *pw = x->spec->sudo_password;
    if (x->sudo_prompts == 1 && pw) {
        x->sudo_answered = 1;
        size_t n = strlen(pw);
        char *line = malloc(n + 1);
        if (line) {
            memcpy(line, pw, n);
            line[n] = '\n';
            ssh_channel_write(x->chan.ch, line, (uint32_t)(n + 1));
            smx_wipe_free(line, n + 1);
        }
        smx_conn_flush(x->chan.conn);
        return;
    }
    x->sudo_answered = x->sudo_prompts;
    smx_result_set_error(x->result, SMX_STAGE_SUDO, SMX_EAUTH,
                         pw ? "incorrect password (sudo asked again)"
                            : "a password was asked for and none was given "
                              "(--sudo-password-env VAR or --sudo-ask-pass)");
    /* On a PTY an EOF is not the end of the terminal's input: the channel goes instead (sshd
     * hangs the terminal up). */
    if (x->spec->pty) {
        exec_finish(x);
        return;
    }
    ssh_channel_send_eof(x->chan.ch);
    smx_conn_flush(x->chan.conn);
}

/* ---- input ---------------------------------------------------------------------------------- */

/* Sends queued input as far as the peer's window allows (from after_poll, outside libssh's
 * callbacks); the rest waits for `writable`. Then the EOF and a pending window-change. */
static void exec_send_input(smx_exec *x)
{
    if (x->st != EXEC_RUNNING)
        return;
    while (x->in_off < x->in.len) {
        int n = ssh_channel_write(x->chan.ch, x->in.data + x->in_off,
                                  (uint32_t)(x->in.len - x->in_off));
        if (n <= 0)
            break;   /* window shut (writable marks us again) or the channel is going */
        x->in_off += (size_t)n;
    }
    if (x->in_off == x->in.len) {
        x->in.len = x->in_off = 0;
        if (x->eof_wanted && !x->eof_sent) {
            x->eof_sent = 1;
            ssh_channel_send_eof(x->chan.ch);
        }
    }
    if (x->win_due) {
        x->win_due = 0;
        ssh_channel_change_pty_size(x->chan.ch, x->win_cols, x->win_rows);
    }
    smx_conn_flush(x->chan.conn);
}

int smx_exec_write(smx_exec *x, const void *p, size_t n)
{
    if (x->st == EXEC_DONE || x->remote_closed || x->eof_wanted)
        return SMX_ECLOSED;
    if (x->in.len + n > EXEC_INPUT_MAX || smx_buf_append(&x->in, p, n, SIZE_MAX))
        return SMX_ENOMEM;
    smx_chan_mark(&x->chan);
    return 0;
}

size_t smx_exec_pending(const smx_exec *x)
{
    return x->in.len - x->in_off;
}

void smx_exec_send_eof(smx_exec *x)
{
    x->eof_wanted = 1;
    smx_chan_mark(&x->chan);
}

void smx_exec_window_change(smx_exec *x, int cols, int rows)
{
    x->win_cols = cols;
    x->win_rows = rows;
    x->win_due = 1;
    smx_chan_mark(&x->chan);
}

static void exec_on_writable(smx_chan *c, uint32_t bytes)
{
    smx_exec *x = c->data;
    if (x->in_off < x->in.len)
        smx_chan_mark(c);
}

static void exec_on_close(smx_chan *c)
{
    smx_exec *x = c->data;
    x->remote_closed = 1;
    smx_chan_mark(c);
}

static void exec_on_exit_status(smx_chan *c, int status)
{
    ((smx_exec *)c->data)->result->exit_code = status;
}

static void exec_on_exit_signal(smx_chan *c, const char *sig, int core, const char *errmsg)
{
    smx_result *r = ((smx_exec *)c->data)->result;
    free(r->exit_signal);
    r->exit_signal = strdup(sig ? sig : "?");
}

/* ---- -u and cancel ------------------------------------------------------------------------ */

static void exec_on_timer(uv_timer_t *t);

/* TERM now (OpenSSH delivers it to non-root sessions); KILL and the channel closed after the
 * grace unless the command ends first. */
static void exec_begin_kill(smx_exec *x)
{
    ssh_channel_request_send_signal(x->chan.ch, "TERM");
    x->st = EXEC_KILLING;
    uv_timer_start(&x->timer, exec_on_timer, (uint64_t)x->spec->kill_grace_ms, 0);
    smx_conn_flush(x->chan.conn);
}

/* KILL, and close the channel: where signals are not delivered (root sessions) sshd ends the
 * session on the close (with a PTY it hangs it up, which signals the command). */
static void exec_kill_now(smx_exec *x)
{
    if (x->st == EXEC_RUNNING || x->st == EXEC_KILLING)
        ssh_channel_request_send_signal(x->chan.ch, "KILL");
    exec_finish(x);
}

static void exec_on_timer(uv_timer_t *t)
{
    smx_exec *x = t->data;
    switch (x->st) {
    case EXEC_RUNNING: {   /* -u */
        x->result->timed_out = 1;
        char msg[128];
        snprintf(msg, sizeof msg, "command timed out after %d s", x->spec->timeout_ms / 1000);
        smx_result_set_error(x->result, SMX_STAGE_TIMEOUT, SMX_ETIMEDOUT, msg);
        exec_begin_kill(x);
        break;
    }
    case EXEC_REQUESTS:   /* canceled, and the exec request is still unanswered */
    case EXEC_KILLING:    /* the grace is over */
        exec_kill_now(x);
        break;
    default:
        break;
    }
}

void smx_exec_cancel(smx_exec *x, const char *why)
{
    if (x->st == EXEC_DONE)
        return;   /* finished before the signal: its result stands */
    smx_result_set_error(x->result, SMX_STAGE_EXEC, SMX_ECANCELED, why);
    int asked_before = x->canceled++;
    if (x->st == EXEC_OPENING || (x->st == EXEC_REQUESTS && x->req.state < SMX_SESSREQ_START)) {
        exec_finish(x);   /* nothing runs remotely yet */
        return;
    }
    if (asked_before) {
        exec_kill_now(x);   /* asked twice: no more grace */
        return;
    }
    switch (x->st) {
    case EXEC_REQUESTS:   /* the command may be starting: signal it once the server says so */
        uv_timer_start(&x->timer, exec_on_timer, (uint64_t)x->spec->kill_grace_ms, 0);
        break;
    case EXEC_RUNNING:
        exec_begin_kill(x);
        break;
    default:              /* already being killed (-u) */
        break;
    }
}

/* ---- lifecycle ------------------------------------------------------------------------------ */

static void exec_on_timer_closed(uv_handle_t *h)
{
    smx_exec *x = h->data;
    const smx_exec_events *ev = x->ev;
    int wants_tty = x->sudo_wants_tty;
    smx_buf_free(&x->partial[0]);
    smx_buf_free(&x->partial[1]);
    smx_sessreq_free(&x->req);
    free(x->wrapped);
    smx_wipe_free(x->in.data, x->in.cap);   /* typed input may have held a password */
    free(x);
    if (wants_tty && ev->sudo_wants_tty)
        ev->sudo_wants_tty(ev->ud);
    ev->done(ev->ud);
}

static void exec_finish(smx_exec *x)
{
    if (x->st == EXEC_DONE)
        return;
    x->result->t.exec = smx_ms_since(x->t_start);
    x->st = EXEC_DONE;
    uv_timer_stop(&x->timer);
    exec_drain_held(x, 1);
    for (int i = 0; x->wrapped && i < 2; i++) {
        x->cur_stderr = i;
        smx_sudo_filter_flush(&x->sudo_out[i], exec_deliver_filtered, x);
    }
    exec_release_err(x);
    exec_flush_partial(x);
    smx_chan_release(&x->chan);   /* sends CLOSE if it is open */
    uv_close((uv_handle_t *)&x->timer, exec_on_timer_closed);
}

static int exec_chan_open(smx_chan *c)
{
    return ssh_channel_open_session(c->ch);
}

static void exec_chan_opened(smx_chan *c)
{
    smx_exec *x = c->data;
    x->st = EXEC_REQUESTS;
    smx_chan_drive(c);
}

static int exec_chan_drive(smx_chan *c)
{
    smx_exec *x = c->data;
    if (x->st != EXEC_REQUESTS)
        return 1;
    int rc = smx_sessreq_step(&x->req, c->ch);
    if (rc == 0)
        return 0;
    if (rc < 0) {
        char msg[SMX_MSG_MAX];
        smx_sessreq_refusal(&x->req, c->ch, msg, sizeof msg);
        smx_result_set_error(x->result, SMX_STAGE_EXEC, rc == SMX_ECLOSED ? SMX_ECLOSED
                                                                           : SMX_ECHANNEL, msg);
        smx_chan_mark(c);   /* finished from after_poll, outside the request round */
        return 1;
    }
    x->st = EXEC_RUNNING;
    if (x->in.len || x->eof_wanted || x->win_due || x->ev->started)
        smx_chan_mark(c);   /* input queued before the start goes out from after_poll */
    if (x->canceled)
        exec_begin_kill(x);   /* canceled while the request was on its way */
    else if (x->spec->timeout_ms > 0)
        uv_timer_start(&x->timer, exec_on_timer, (uint64_t)x->spec->timeout_ms, 0);
    return 1;
}

static void exec_chan_after_poll(smx_chan *c)
{
    smx_exec *x = c->data;
    if (x->st == EXEC_RUNNING && x->ev->started && !x->started_told) {
        x->started_told = 1;
        x->ev->started(x->ev->ud);
    }
    if (x->out_held && !x->out_paused)
        exec_drain_held(x, 0);
    if (x->wrapped)
        exec_answer_sudo(x);
    exec_send_input(x);
    if (x->remote_closed || (x->st == EXEC_REQUESTS && x->req.state == SMX_SESSREQ_REFUSED))
        exec_finish(x);
}

/* Refused, or the connection ended under it. A command whose status arrived before the
 * connection went has a result that stands. */
static void exec_chan_failed(smx_chan *c, int code, const char *why)
{
    smx_exec *x = c->data;
    smx_result *r = x->result;
    if (code == SMX_ECLOSED && (r->exit_code >= 0 || r->exit_signal) &&
        r->err_stage == SMX_STAGE_EXEC && r->err_code == SMX_ECLOSED)
        smx_result_clear_error(r);
    else if (x->st == EXEC_OPENING) {
        char msg[SMX_MSG_MAX];
        snprintf(msg, sizeof msg, "cannot open a session channel: %s", why);
        smx_result_set_error(r, SMX_STAGE_EXEC, code, msg);   /* first one wins */
    }
    exec_finish(x);
}

static const smx_chan_ops exec_chan_ops = {
    .kind = "exec",
    .open = exec_chan_open,
    .opened = exec_chan_opened,
    .failed = exec_chan_failed,
    .data = exec_on_data,
    .closed = exec_on_close,
    .writable = exec_on_writable,
    .exit_status = exec_on_exit_status,
    .exit_signal = exec_on_exit_signal,
    .drive = exec_chan_drive,
    .after_poll = exec_chan_after_poll,
};

smx_exec *smx_exec_start(smx_conn *c, const smx_exec_opts *spec, smx_result *result,
                         const smx_exec_events *ev)
{
    smx_exec *x = calloc(1, sizeof *x);
    if (!x)
        return NULL;
    x->spec = spec;
    x->result = result;
    x->ev = ev;
    x->req_spec.kind = spec->command ? SMX_SESSREQ_EXEC : SMX_SESSREQ_SHELL;
    x->req_spec.command = spec->command;
    if (spec->sudo) {
        char marker[SMX_SUDO_MARKER_MAX];
        smx_sudo_marker(marker);
        x->wrapped = smx_sudo_command(spec->command, spec->sudo_user, marker);
        if (!x->wrapped) {
            free(x);
            return NULL;
        }
        smx_sudo_filter_init(&x->sudo_out[0], marker);
        smx_sudo_filter_init(&x->sudo_out[1], marker);
        x->err_holding = !spec->pty;
        x->req_spec.command = x->wrapped;
    }
    x->req_spec.pty = spec->pty;
    x->req_spec.term = spec->term;
    x->req_spec.cols = spec->cols;
    x->req_spec.rows = spec->rows;
    x->req_spec.env = spec->env;
    if (smx_sessreq_init(&x->req, &x->req_spec) < 0) {
        free(x->wrapped);
        free(x);
        return NULL;
    }
    uv_timer_init(c->ctx->loop, &x->timer);
    x->timer.data = x;
    /* The exec phase runs from the channel open to the channel close: under load the server's
     * answers to the open and the exec request are a real part of what a command costs. */
    x->t_start = uv_hrtime();
    x->st = EXEC_OPENING;
    smx_chan_start(&x->chan, c, &exec_chan_ops, x);
    return x;
}
