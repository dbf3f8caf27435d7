/* The exec job: one host's connection carrying one exec channel (apps/exec.c), or for a command
 * list (and under sudo) one channel per step in turn, each step's outcome kept in the result's
 * steps. The job ends when both are gone: the last exec told `done` and the connection told
 * `closed`. What runs on the connection (a "run": the command or its steps) does not own it, so
 * a link (job_link.c) runs many of them, one after another, on one connection.
 *
 * A shell (the public smx_shell) is an exec job whose input the caller writes and whose output
 * goes to the caller as it arrives: the same channel, one more pair of hands on it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine_internal.h"
#include "exec.h"

/* ---- a run: one smx_exec_opts on a connection it does not own (engine_internal.h) ---------- */

static void exec_run_on_line(void *ud, int is_stderr, const char *line, size_t len)
{
    smx_exec_run *run = ud;
    run->cb->on_line(run->cb->ud, run->result, is_stderr, line, len);
}

static void exec_run_on_exec_done(void *ud)
{
    smx_exec_run *run = ud;
    run->exec = NULL;
    run->finished(run);
}

void smx_exec_run_init(smx_exec_run *run, const smx_exec_opts *x, const smx_exec_callbacks *cb,
                       smx_result *r, void (*finished)(smx_exec_run *run), void *ud)
{
    *run = (smx_exec_run){
        .x = x,
        .cb = cb,
        .result = r,
        .finished = finished,
        .ud = ud,
        .xev = {.line = cb->on_line ? exec_run_on_line : NULL, .done = exec_run_on_exec_done,
                .ud = run},
        .stepping = x->ncommands > 0 || x->sudo,
    };
}

void smx_exec_run_free(smx_exec_run *run)
{
    if (run->scratch) {
        smx_result_free(run->scratch);
        free(run->scratch);
        run->scratch = NULL;
    }
}

static size_t exec_run_nsteps(const smx_exec_run *run)
{
    return run->x->ncommands ? run->x->ncommands : 1;
}

static const char *exec_run_step_command(const smx_exec_run *run, size_t i)
{
    return run->x->ncommands ? run->x->commands[i] : run->x->command;
}

static void exec_run_on_step_done(void *ud);
static void exec_run_on_step_wants_tty(void *ud)
{
    ((smx_exec_run *)ud)->step_wants_tty = 1;
}

static int exec_run_start_step(smx_exec_run *run, int pty)
{
    smx_result *sc = calloc(1, sizeof *sc);
    if (!sc)
        return SMX_ENOMEM;
    smx_result_init(sc);
    run->scratch = sc;
    run->step_opts = *run->x;
    run->step_opts.command = exec_run_step_command(run, run->step);
    run->step_opts.pty = run->x->pty || pty;
    run->step_wants_tty = 0;
    run->xev.done = exec_run_on_step_done;
    run->xev.sudo_wants_tty = exec_run_on_step_wants_tty;
    run->step_start = uv_hrtime();
    run->exec = smx_exec_start(run->conn, &run->step_opts, sc, &run->xev);
    return run->exec ? 0 : SMX_ENOMEM;
}

/* The step's outcome moves into the result: its own record, and the host's fields (the last
 * step's status; everyone's output, in order). */
static int exec_run_keep_step(smx_exec_run *run)
{
    smx_result *r = run->result, *sc = run->scratch;
    smx_step_result *steps = realloc(r->steps, (r->nsteps + 1) * sizeof *steps);
    if (!steps)
        return SMX_ENOMEM;
    r->steps = steps;
    smx_step_result *st = &steps[r->nsteps++];
    memset(st, 0, sizeof *st);
    st->command = strdup(exec_run_step_command(run, run->step));
    st->exit_code = sc->exit_code;
    st->exit_signal = sc->exit_signal ? strdup(sc->exit_signal) : NULL;
    st->out = sc->out;
    st->err = sc->err;
    memset(&sc->out, 0, sizeof sc->out);
    memset(&sc->err, 0, sizeof sc->err);
    st->truncated = sc->truncated;
    st->timed_out = sc->timed_out;
    st->ms = (double)(uv_hrtime() - run->step_start) / 1e6;
    /* The host's status: the first step that failed (--keep-going went on past it), else the
     * last one's. */
    if (r->nsteps == 1 || (r->exit_code == 0 && !r->exit_signal)) {
        r->exit_code = sc->exit_code;
        free(r->exit_signal);
        r->exit_signal = sc->exit_signal ? strdup(sc->exit_signal) : NULL;
    }
    r->timed_out |= sc->timed_out;
    r->t.exec += sc->t.exec;
    size_t max = run->x->max_output;
    if (smx_buf_append(&r->out, st->out.data, st->out.len, max) |
        smx_buf_append(&r->err, st->err.data, st->err.len, max) | st->truncated)
        r->truncated = 1;
    if (sc->err_stage != SMX_STAGE_NONE)
        smx_result_set_error(r, sc->err_stage, sc->err_code, sc->err_msg);
    return 0;
}

static void exec_run_drop_scratch(smx_exec_run *run)
{
    smx_result_free(run->scratch);
    free(run->scratch);
    run->scratch = NULL;
}

/* Next: the same step again on a PTY when sudoers wants a tty (a PTY not tried yet), the next
 * one, or the end (the last step, a failure without --keep-going, or an error). */
static void exec_run_on_step_done(void *ud)
{
    smx_exec_run *run = ud;
    run->exec = NULL;
    smx_result *sc = run->scratch;
    if (run->step_wants_tty && !run->step_opts.pty && sc->err_stage == SMX_STAGE_NONE &&
        !run->conn->ended) {
        exec_run_drop_scratch(run);
        if (exec_run_start_step(run, 1) == 0)
            return;
    }
    int kept = run->scratch ? exec_run_keep_step(run) : SMX_ENOMEM;
    int failed = kept < 0 || !run->scratch || run->scratch->err_stage != SMX_STAGE_NONE ||
                 run->scratch->exit_code != 0;
    if (run->scratch)
        exec_run_drop_scratch(run);
    run->step++;
    int more = run->step < exec_run_nsteps(run) && (!failed || run->x->keep_going) &&
               run->result->err_stage == SMX_STAGE_NONE && !run->conn->ended;
    if (more && exec_run_start_step(run, 0) == 0)
        return;
    if (run->scratch)
        exec_run_drop_scratch(run);
    run->finished(run);
}

int smx_exec_run_start(smx_exec_run *run, smx_conn *c)
{
    run->conn = c;
    if (run->stepping)
        exec_run_start_step(run, 0);
    else
        run->exec = smx_exec_start(c, run->x, run->result, &run->xev);
    return run->exec ? 0 : SMX_ENOMEM;
}

void smx_exec_run_cancel(smx_exec_run *run, const char *why)
{
    if (run->exec)
        smx_exec_cancel(run->exec, why);
}

/* ---- the exec job: its own connection for one run ---------------------------------------- */

typedef struct smx_shell exec_job;

struct smx_shell {
    smx_job base;
    smx_hostcfg *hc;
    char *password;                 /* from an ssh:// URL; wiped on free */
    smx_exec_run run;
    smx_conn *conn;                 /* NULL once closed */
    int conn_closed, exec_done;
    /* A shell's: its callbacks, and input written before the exec existed. */
    const smx_shell_callbacks *scb;
    smx_buf early;
    int early_eof, early_cols, early_rows;
    int out_paused;                 /* smx_shell_pause_output, kept for an exec not started yet */
};

static void exec_job_release(exec_job *job)
{
    smx_exec_run_free(&job->run);
    smx_wipe_free(job->early.data, job->early.cap);
    smx_str_wipe_free(job->password);
    smx_hostcfg_free(job->hc);
    free(job->hc);
    free(job);
}

/* The job is over: its result goes to whichever callbacks it was given, after it is freed. */
static void exec_job_report(exec_job *job, smx_result *r)
{
    void (*on_done)(void *, smx_result *) = job->scb ? job->scb->on_done : job->run.cb->on_done;
    void *ud = job->scb ? job->scb->ud : job->run.cb->ud;
    smx_engine_job_done(job->base.engine, &job->base);
    exec_job_release(job);
    on_done(ud, r);
}

static void exec_job_maybe_done(exec_job *job)
{
    if (!job->conn_closed || !job->exec_done)
        return;
    smx_result *r = job->run.result;
    r->ok = r->err_stage == SMX_STAGE_NONE && r->exit_code == 0;
    exec_job_report(job, r);
}

static void exec_job_finished(smx_exec_run *run)
{
    exec_job *job = run->ud;
    job->exec_done = 1;
    if (job->conn)
        smx_conn_close(job->conn);
    exec_job_maybe_done(job);
}

/* ---- shells ------------------------------------------------------------------------------- */

/* What the caller wrote (and asked for) before the channel existed goes to it now. */
static void exec_job_hand_early_input(exec_job *job)
{
    smx_exec *x = job->run.exec;
    if (job->early.len && smx_exec_write(x, job->early.data, job->early.len) < 0)
        smx_exec_send_eof(x);   /* out of memory: input cannot be whole, end it */
    smx_wipe_free(job->early.data, job->early.cap);
    memset(&job->early, 0, sizeof job->early);
    if (job->early_cols > 0)
        smx_exec_window_change(x, job->early_cols, job->early_rows);
    if (job->out_paused)
        smx_exec_pause_output(x, 1);
    if (job->early_eof)
        smx_exec_send_eof(x);
}

/* The exec's events come with the run as ud; a shell's callbacks want the shell. */
static void exec_job_on_data(void *ud, int is_stderr, const char *p, size_t n)
{
    exec_job *job = ((smx_exec_run *)ud)->ud;
    job->scb->on_data(job->scb->ud, job, is_stderr, p, n);
}

static void exec_job_on_shell_line(void *ud, int is_stderr, const char *line, size_t len)
{
    exec_job *job = ((smx_exec_run *)ud)->ud;
    job->scb->on_line(job->scb->ud, job->run.result, is_stderr, line, len);
}

static void exec_job_on_started(void *ud)
{
    exec_job *job = ((smx_exec_run *)ud)->ud;
    job->scb->started(job->scb->ud, job);
}

static int exec_job_input_closed(const exec_job *job)
{
    return job->exec_done || job->early_eof || (job->conn && job->conn->ended);
}

int smx_shell_write(smx_shell *s, const void *p, size_t n)
{
    if (s->run.exec)
        return smx_exec_write(s->run.exec, p, n);
    if (exec_job_input_closed(s))
        return SMX_ECLOSED;
    return smx_buf_append(&s->early, p, n, SIZE_MAX) ? SMX_ENOMEM : 0;
}

size_t smx_shell_pending(const smx_shell *s)
{
    return s->run.exec ? smx_exec_pending(s->run.exec) : s->early.len;
}

void smx_shell_send_eof(smx_shell *s)
{
    if (s->run.exec)
        smx_exec_send_eof(s->run.exec);
    else
        s->early_eof = 1;
}

void smx_shell_pause_output(smx_shell *s, int paused)
{
    s->out_paused = paused;
    if (s->run.exec)
        smx_exec_pause_output(s->run.exec, paused);
}

void smx_shell_resize(smx_shell *s, int cols, int rows)
{
    if (cols <= 0 || rows <= 0)
        return;
    if (s->run.exec) {
        smx_exec_window_change(s->run.exec, cols, rows);
    } else {
        s->early_cols = cols;
        s->early_rows = rows;
    }
}

void smx_shell_close(smx_shell *s, const char *why)
{
    if (!s->conn || s->conn->ended)
        return;
    smx_result_set_error(s->run.result, SMX_STAGE_EXEC, SMX_ECANCELED, why);
    smx_conn_close(s->conn);
}

const char *smx_shell_host(const smx_shell *s)
{
    return s->base.host;
}

/* ---- the connection ----------------------------------------------------------------------- */

static void exec_job_on_ready(smx_conn *c, void *ud)
{
    exec_job *job = ud;
    job->conn->loss_context = " while running";
    if (smx_exec_run_start(&job->run, c) < 0) {
        smx_session_fail(&c->session, SMX_STAGE_EXEC, SMX_ENOMEM, "out of memory");
        job->exec_done = 1;
    } else if (job->scb) {
        exec_job_hand_early_input(job);
    }
}

static void exec_job_on_ended(smx_conn *c, void *ud)
{
    exec_job *job = ud;
    if (!job->run.exec)
        job->exec_done = 1;   /* it never started */
}

static void exec_job_on_closed(smx_conn *c, void *ud)
{
    exec_job *job = ud;
    job->conn = NULL;
    job->conn_closed = 1;
    exec_job_maybe_done(job);
}

static const smx_conn_events exec_job_conn_events = {
    .ready = exec_job_on_ready,
    .ended = exec_job_on_ended,
    .closed = exec_job_on_closed,
};

static void exec_job_start(smx_job *base)
{
    exec_job *job = (exec_job *)base;
    job->conn = smx_conn_new(&base->engine->ctx, job->hc, job->password, job->run.result,
                             &exec_job_conn_events, job);
    if (!job->conn) {
        smx_result_set_error(job->run.result, SMX_STAGE_CONNECT, SMX_ENOMEM, "out of memory");
        job->conn_closed = job->exec_done = 1;
        exec_job_maybe_done(job);
        return;
    }
    smx_conn_start(job->conn);
}

static void exec_job_cancel(smx_job *base, const char *why)
{
    exec_job *job = (exec_job *)base;
    if (job->run.exec) {
        smx_exec_run_cancel(&job->run, why);
    } else if (job->conn && !job->conn->ended) {
        smx_session_fail(&job->conn->session, smx_engine_stage_of(job->conn), SMX_ECANCELED,
                         "%s", why);   /* nothing runs remotely yet */
    }
}

static void exec_job_discard(smx_job *base, const char *why)
{
    exec_job *job = (exec_job *)base;
    smx_result *r = job->run.result;
    smx_result_set_error(r, SMX_STAGE_CONNECT, SMX_ECANCELED, why);
    exec_job_report(job, r);
}

static void exec_job_free_unstarted(smx_job *base)
{
    exec_job *job = (exec_job *)base;
    smx_result_destroy(job->run.result);
    exec_job_release(job);
}

static const smx_job_ops exec_job_ops = {
    .kind = "exec",
    .start = exec_job_start,
    .cancel = exec_job_cancel,
    .discard = exec_job_discard,
    .free_unstarted = exec_job_free_unstarted,
};

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

/* A result with the host's identity filled in, as every kind of job reports it. */
smx_result *smx_engine_new_result(const char *target, const smx_hostcfg *hc)
{
    smx_result *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    smx_result_init(r);
    r->host = dup_or_null(hc->host);
    r->target = dup_or_null(target);
    r->user = dup_or_null(hc->user);
    r->hostname = dup_or_null(hc->hostname);
    r->port = hc->port;
    return r;
}

static exec_job *exec_job_new(const char *target, smx_hostcfg *hc, const char *password)
{
    exec_job *job = calloc(1, sizeof *job);
    smx_result *r = smx_engine_new_result(target, hc);
    if (!job || !r || (password && !(job->password = strdup(password)))) {
        free(job);
        smx_result_destroy(r);
        return NULL;
    }
    job->base.ops = &exec_job_ops;
    job->base.host = hc->host;
    job->hc = hc;
    job->run.result = r;
    return job;
}

int smx_engine_add_exec(smx_engine *e, const char *target, smx_hostcfg *hc, const char *password,
                        const smx_exec_opts *x, const smx_exec_callbacks *cb)
{
    exec_job *job = exec_job_new(target, hc, password);
    if (!job)
        return SMX_ENOMEM;
    smx_exec_run_init(&job->run, x, cb, job->run.result, exec_job_finished, job);
    smx_engine_queue_job(e, &job->base);
    return 0;
}

int smx_engine_add_shell(smx_engine *e, const char *target, smx_hostcfg *hc, const char *password,
                         const smx_exec_opts *x, const smx_shell_callbacks *cb, smx_shell **out)
{
    static const smx_exec_callbacks none = {0};
    exec_job *job = exec_job_new(target, hc, password);
    if (!job)
        return SMX_ENOMEM;
    smx_exec_run_init(&job->run, x, &none, job->run.result, exec_job_finished, job);
    job->scb = cb;
    job->run.stepping = 0;   /* x->command alone: lists and sudo are exec's */
    job->run.xev.data = cb->on_data ? exec_job_on_data : NULL;
    job->run.xev.line = !cb->on_data && cb->on_line ? exec_job_on_shell_line : NULL;
    job->run.xev.started = cb->started ? exec_job_on_started : NULL;
    if (out)
        *out = job;
    smx_engine_queue_job(e, &job->base);
    return 0;
}
