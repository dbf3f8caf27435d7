/* The expect job: one host's connection carrying one session channel with a PTY running the
 * login shell (apps/exec.c with command NULL), and a script of send/expect steps run on it in
 * order (apps/expect.c finds each step's end). Before the first send the shell's login output
 * is let pass until it is quiet for a moment. Without a regex a step ends at the shell's
 * prompt, found first as netmiko's find_prompt does: a newline is sent, and the last non-empty
 * line that comes back (once quiet again) is the prompt. After a regex matched, the rest of
 * that output (up to a quiet moment, half a second at most) is no step's: the next step would
 * otherwise take the previous one's prompt for its own. Each step has a timer; one that fires
 * fails the host at that step and closes the connection. After the last step "exit" is sent and
 * the connection closed when the shell ends (or a moment later). The job ends when the exec
 * told `done`, the connection `closed` and the timers are closed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine_internal.h"
#include "exec.h"
#include "expect.h"

#define EXPECT_QUIET_MS 300        /* the shell has said all it had to say (its login output) */
#define EXPECT_DRAIN_MS 100        /* after a regex matched: the rest of that output */
#define EXPECT_DRAIN_MAX_MS 500    /* ... however long it goes on */
#define EXPECT_STEP_DEFAULT_MS 10000
#define EXPECT_EXIT_GRACE_MS 2000  /* after "exit": the shell's moment to end by itself */

enum expect_phase {
    EXPECT_CONNECTING,   /* until the shell runs */
    EXPECT_QUIET,        /* before the first send: waiting for the shell to be quiet */
    EXPECT_PROMPT,       /* prompt detection: a newline sent, waiting for the prompt line */
    EXPECT_STEP,         /* job->step runs */
    EXPECT_DRAIN,        /* a regex matched: what follows it (the rest of the line, a prompt)
                          * is no step's; the next step starts once it is over */
    EXPECT_EXITING,      /* every step matched; "exit" sent */
    EXPECT_OVER          /* failed or canceled: the connection is closing */
};

typedef struct expect_job {
    smx_job base;
    smx_hostcfg *hc;
    char *password;                 /* from an ssh:// URL; wiped on free */
    const smx_expect_opts *o;
    const smx_exec_callbacks *cb;
    smx_exec_opts xo;               /* the shell */
    smx_exec_events xev;
    smx_result *result;
    smx_conn *conn;                 /* NULL once closed */
    smx_exec *exec;                 /* NULL before it starts and once done */
    int conn_closed, exec_done;
    enum expect_phase phase;
    int all_matched;                /* the last step matched */
    size_t step;
    uint64_t step_start;
    uint64_t drain_start;
    smx_expect_matcher m;
    char *prompt;
    uv_timer_t timer;               /* the step's timeout (prompt detection: step 1's) */
    uv_timer_t quiet;               /* a quiet moment: before the first send, for the prompt,
                                     * after a regex matched */
    int timers, timers_open;        /* initialised; not closed yet */
} expect_job;

static void expect_job_release(expect_job *job)
{
    smx_expect_free(&job->m);
    free(job->prompt);
    smx_str_wipe_free(job->password);
    smx_hostcfg_free(job->hc);
    free(job->hc);
    free(job);
}

static void expect_job_report(expect_job *job)
{
    smx_result *r = job->result;
    const smx_exec_callbacks *cb = job->cb;
    smx_engine_job_done(job->base.engine, &job->base);
    expect_job_release(job);
    cb->on_done(cb->ud, r);
}

static void expect_job_on_timer_closed(uv_handle_t *h)
{
    expect_job *job = h->data;
    if (--job->timers_open == 0)
        expect_job_report(job);
}

/* The host's status: every step matched (the shell's own exit status does not count: the last
 * command typed sets it), else the failure recorded (a step, or the connection). */
static void expect_job_maybe_done(expect_job *job)
{
    if (!job->conn_closed || !job->exec_done)
        return;
    smx_result *r = job->result;
    r->ok = job->all_matched;
    if (r->ok)
        smx_result_clear_error(r);   /* a shell that did not end by itself was closed */
    else if (r->err_stage == SMX_STAGE_NONE)
        smx_result_set_error(r, SMX_STAGE_EXPECT, SMX_ECLOSED, "the shell ended before the "
                             "last step");
    r->exit_code = r->ok ? 0 : -1;
    free(r->exit_signal);
    r->exit_signal = NULL;
    if (!job->timers) {
        expect_job_report(job);
        return;
    }
    job->timers_open = 2;
    uv_close((uv_handle_t *)&job->timer, expect_job_on_timer_closed);
    uv_close((uv_handle_t *)&job->quiet, expect_job_on_timer_closed);
}

static void expect_job_end(expect_job *job)
{
    job->phase = EXPECT_OVER;
    if (job->timers) {
        uv_timer_stop(&job->timer);
        uv_timer_stop(&job->quiet);
    }
    if (job->conn)
        smx_conn_close(job->conn);
}

static int expect_job_needs_prompt(const expect_job *job)
{
    for (size_t i = 0; i < job->o->nsteps; i++)
        if (!job->o->steps[i].expect)
            return 1;
    return 0;
}

static int expect_job_timeout(const expect_job *job, size_t i)
{
    int ms = i < job->o->nsteps ? job->o->steps[i].timeout_ms : 0;
    return ms > 0 ? ms : EXPECT_STEP_DEFAULT_MS;
}

/* ---- steps ----------------------------------------------------------------------------------- */

static char *expect_job_command(const char *send)
{
    if (!send)
        return NULL;
    size_t n = strlen(send);
    return strndup(send, n && send[n - 1] == '\n' ? n - 1 : n);
}

/* The step's record (what it printed so far, matched or not) goes into the result, its output
 * also into the host's. */
static void expect_job_keep_step(expect_job *job, int matched, int timed_out)
{
    smx_result *r = job->result;
    smx_step_result *steps = realloc(r->steps, (r->nsteps + 1) * sizeof *steps);
    if (!steps)
        return;
    r->steps = steps;
    smx_step_result *st = &steps[r->nsteps++];
    memset(st, 0, sizeof *st);
    st->command = expect_job_command(job->o->steps[job->step].send);
    st->exit_code = matched ? 0 : -1;
    size_t len;
    const char *out = smx_expect_output(&job->m, &len);
    st->truncated = smx_buf_append(&st->out, out, len, SIZE_MAX) | job->m.truncated;
    if (smx_buf_append(&r->out, out, len, job->m.max))
        r->truncated = 1;
    r->truncated |= st->truncated;
    st->timed_out = timed_out;
    st->ms = (double)(uv_hrtime() - job->step_start) / 1e6;
}

/* The host fails at the current step: why, with the last bytes the step saw. */
static void expect_job_fail_step(expect_job *job, const char *why)
{
    char msg[SMX_MSG_MAX];
    int n = snprintf(msg, sizeof msg, "step %zu: %s; last bytes: \"", job->step + 1, why);
    if (n < 0 || (size_t)n + 2 >= sizeof msg)
        n = 0;
    smx_expect_tail(&job->m, msg + n, sizeof msg - (size_t)n - 1);
    strcat(msg, "\"");
    smx_result_set_error(job->result, SMX_STAGE_EXPECT, SMX_ETIMEDOUT, msg);
}

static void expect_job_on_timer(uv_timer_t *t);
static void expect_job_on_quiet(uv_timer_t *t);

static void expect_job_start_step(expect_job *job)
{
    const smx_expect_step *st = &job->o->steps[job->step];
    smx_err err = {{0}};
    job->phase = EXPECT_STEP;
    job->step_start = uv_hrtime();
    uv_timer_start(&job->timer, expect_job_on_timer, (uint64_t)expect_job_timeout(job, job->step),
                   0);
    int rc = smx_expect_begin(&job->m, st->send, st->expect, job->prompt, &err);
    if (rc == 0 && st->send && *st->send)
        rc = smx_exec_write(job->exec, st->send, strlen(st->send));
    if (rc < 0) {
        smx_result_set_error(job->result, SMX_STAGE_EXPECT, rc,
                             rc == SMX_EINVAL ? err.msg : "cannot send the step");
        uv_timer_start(&job->timer, expect_job_on_timer, 0, 0);   /* ends it outside libssh */
    }
}

/* Every step matched: "exit", and the connection closed when the shell ended (or after the
 * grace). */
static void expect_job_exit(expect_job *job)
{
    job->phase = EXPECT_EXITING;
    job->all_matched = 1;
    smx_exec_write(job->exec, "exit\n", 5);
    smx_exec_send_eof(job->exec);
    uv_timer_start(&job->timer, expect_job_on_timer, EXPECT_EXIT_GRACE_MS, 0);
}

/* A step matched: the next one, or "exit" after the last. */
static void expect_job_step_matched(expect_job *job)
{
    expect_job_keep_step(job, 1, 0);
    int had_regex = job->o->steps[job->step].expect != NULL;
    if (++job->step < job->o->nsteps) {
        if (!had_regex) {
            expect_job_start_step(job);   /* at a prompt: nothing more comes */
            return;
        }
        job->phase = EXPECT_DRAIN;
        job->drain_start = uv_hrtime();
        uv_timer_stop(&job->timer);
        uv_timer_start(&job->quiet, expect_job_on_quiet, EXPECT_DRAIN_MS, 0);
        return;
    }
    expect_job_exit(job);
}

static void expect_job_on_timer(uv_timer_t *t)
{
    expect_job *job = t->data;
    char why[160];
    const smx_expect_step *st = job->step < job->o->nsteps ? &job->o->steps[job->step] : NULL;
    switch (job->phase) {
    case EXPECT_QUIET:
        snprintf(why, sizeof why, "the shell's first output did not end within %d ms",
                 expect_job_timeout(job, 0));
        expect_job_fail_step(job, why);
        break;
    case EXPECT_PROMPT:
        snprintf(why, sizeof why, "no prompt found within %d ms (the shell's last non-empty "
                 "line after a newline)", expect_job_timeout(job, 0));
        expect_job_fail_step(job, why);
        break;
    case EXPECT_STEP:
        if (job->result->err_stage == SMX_STAGE_NONE) {
            if (st->expect)
                snprintf(why, sizeof why, "no match for /%.60s/ within %d ms", st->expect,
                         expect_job_timeout(job, job->step));
            else
                snprintf(why, sizeof why, "the prompt \"%.60s\" did not come back within %d ms",
                         job->prompt ? job->prompt : "", expect_job_timeout(job, job->step));
            expect_job_fail_step(job, why);
            expect_job_keep_step(job, 0, 1);
        }
        break;
    default:
        break;   /* EXITING: the shell did not end by itself */
    }
    expect_job_end(job);
}

/* ---- prompt detection ------------------------------------------------------------------------ */

/* The shell was quiet for a moment: before the first send, the prompt detection's newline
 * goes out (or the first step starts); then the last line is the prompt; after a drain, the
 * next step starts. */
static void expect_job_on_quiet(uv_timer_t *t)
{
    expect_job *job = t->data;
    if (job->phase == EXPECT_DRAIN) {
        expect_job_start_step(job);
        return;
    }
    if (job->phase == EXPECT_QUIET && !expect_job_needs_prompt(job)) {
        expect_job_start_step(job);
        return;
    }
    if (job->phase == EXPECT_QUIET) {
        smx_expect_begin(&job->m, NULL, NULL, NULL, NULL);
        job->phase = EXPECT_PROMPT;
        smx_exec_write(job->exec, "\n", 1);
        uv_timer_start(&job->quiet, expect_job_on_quiet, EXPECT_QUIET_MS, 0);
        return;
    }
    if (job->phase != EXPECT_PROMPT)
        return;
    char *prompt = smx_expect_last_line(&job->m);
    if (!prompt)
        return;   /* nothing yet: the next output restarts the wait (step 1's timer bounds it) */
    job->prompt = prompt;
    expect_job_start_step(job);
}

/* ---- the shell ------------------------------------------------------------------------------- */

static void expect_job_on_started(void *ud)
{
    expect_job *job = ud;
    if (job->o->nsteps == 0) {
        expect_job_exit(job);   /* nothing to do */
        return;
    }
    if (!expect_job_needs_prompt(job) && !job->o->steps[0].send) {
        expect_job_start_step(job);   /* it waits for what the shell says first */
        return;
    }
    job->phase = EXPECT_QUIET;
    smx_expect_begin(&job->m, NULL, NULL, NULL, NULL);
    uv_timer_start(&job->timer, expect_job_on_timer, (uint64_t)expect_job_timeout(job, 0), 0);
    uv_timer_start(&job->quiet, expect_job_on_quiet, EXPECT_QUIET_MS, 0);
}

static void expect_job_on_data(void *ud, int is_stderr, const char *p, size_t n)
{
    expect_job *job = ud;
    switch (job->phase) {
    case EXPECT_QUIET:
    case EXPECT_PROMPT:
        smx_expect_feed(&job->m, p, n);
        uv_timer_start(&job->quiet, expect_job_on_quiet, EXPECT_QUIET_MS, 0);
        break;
    case EXPECT_STEP:
        if (job->result->err_stage == SMX_STAGE_NONE && smx_expect_feed(&job->m, p, n))
            expect_job_step_matched(job);
        break;
    case EXPECT_DRAIN:
        if (uv_hrtime() - job->drain_start < (uint64_t)EXPECT_DRAIN_MAX_MS * 1000000)
            uv_timer_start(&job->quiet, expect_job_on_quiet, EXPECT_DRAIN_MS, 0);
        break;
    default:
        break;
    }
}

/* The shell ended (or its channel did): a step still running fails there, with what it saw. */
static void expect_job_on_exec_done(void *ud)
{
    expect_job *job = ud;
    job->exec = NULL;
    job->exec_done = 1;
    if (job->phase != EXPECT_EXITING && job->phase != EXPECT_OVER) {
        int code = job->result->exit_code;
        char why[96];
        if (code >= 0)
            snprintf(why, sizeof why, "the shell ended (exit status %d) before a match", code);
        else
            snprintf(why, sizeof why, "the session ended before a match");
        int running = job->phase == EXPECT_STEP && job->result->nsteps == job->step;
        expect_job_fail_step(job, why);   /* a lost connection's error stays the first */
        if (running)
            expect_job_keep_step(job, 0, 0);
    }
    expect_job_end(job);
    expect_job_maybe_done(job);
}

static void expect_job_on_ready(smx_conn *c, void *ud)
{
    expect_job *job = ud;
    job->conn->loss_context = " while running the script";
    job->exec = smx_exec_start(c, &job->xo, job->result, &job->xev);
    if (!job->exec) {
        smx_session_fail(&c->session, SMX_STAGE_EXEC, SMX_ENOMEM, "out of memory");
        job->exec_done = 1;
    }
}

static void expect_job_on_ended(smx_conn *c, void *ud)
{
    expect_job *job = ud;
    if (!job->exec)
        job->exec_done = 1;   /* it never started */
}

static void expect_job_on_closed(smx_conn *c, void *ud)
{
    expect_job *job = ud;
    job->conn = NULL;
    job->conn_closed = 1;
    expect_job_end(job);
    expect_job_maybe_done(job);
}

static const smx_conn_events expect_job_conn_events = {
    .ready = expect_job_on_ready,
    .ended = expect_job_on_ended,
    .closed = expect_job_on_closed,
};

/* ---- the job --------------------------------------------------------------------------------- */

static void expect_job_start(smx_job *base)
{
    expect_job *job = (expect_job *)base;
    uv_loop_t *loop = base->engine->ctx.loop;
    uv_timer_init(loop, &job->timer);
    uv_timer_init(loop, &job->quiet);
    job->timer.data = job->quiet.data = job;
    job->timers = 1;
    job->conn = smx_conn_new(&base->engine->ctx, job->hc, job->password, job->result,
                             &expect_job_conn_events, job);
    if (!job->conn) {
        smx_result_set_error(job->result, SMX_STAGE_CONNECT, SMX_ENOMEM, "out of memory");
        job->conn_closed = job->exec_done = 1;
        expect_job_maybe_done(job);
        return;
    }
    smx_conn_start(job->conn);
}

static void expect_job_cancel(smx_job *base, const char *why)
{
    expect_job *job = (expect_job *)base;
    smx_result_set_error(job->result, SMX_STAGE_EXEC, SMX_ECANCELED, why);
    if (job->conn && !job->conn->ended)
        smx_session_fail(&job->conn->session, smx_engine_stage_of(job->conn), SMX_ECANCELED,
                         "%s", why);
    expect_job_end(job);
}

static void expect_job_discard(smx_job *base, const char *why)
{
    expect_job *job = (expect_job *)base;
    smx_result_set_error(job->result, SMX_STAGE_CONNECT, SMX_ECANCELED, why);
    expect_job_report(job);
}

static void expect_job_free_unstarted(smx_job *base)
{
    expect_job *job = (expect_job *)base;
    smx_result_destroy(job->result);
    expect_job_release(job);
}

static const smx_job_ops expect_job_ops = {
    .kind = "expect",
    .start = expect_job_start,
    .cancel = expect_job_cancel,
    .discard = expect_job_discard,
    .free_unstarted = expect_job_free_unstarted,
};

int smx_engine_add_expect(smx_engine *e, const char *target, smx_hostcfg *hc,
                          const char *password, const smx_expect_opts *opts,
                          const smx_exec_callbacks *cb)
{
    expect_job *job = calloc(1, sizeof *job);
    smx_result *r = smx_engine_new_result(target, hc);
    if (!job || !r || (password && !(job->password = strdup(password)))) {
        free(job);
        smx_result_destroy(r);
        return SMX_ENOMEM;
    }
    job->base.ops = &expect_job_ops;
    job->base.host = hc->host;
    job->hc = hc;
    job->o = opts;
    job->cb = cb;
    job->result = r;
    job->xo.command = NULL;   /* the login shell */
    job->xo.pty = 1;
    job->xo.term = opts->term;
    job->xo.cols = opts->cols > 0 ? opts->cols : 512;
    job->xo.rows = opts->rows > 0 ? opts->rows : 24;
    job->xo.env = opts->env;
    job->xo.kill_grace_ms = 1000;
    job->xev.data = expect_job_on_data;
    job->xev.started = expect_job_on_started;
    job->xev.done = expect_job_on_exec_done;
    job->xev.ud = job;
    smx_expect_init(&job->m, opts->max_output);
    smx_engine_queue_job(e, &job->base);
    return 0;
}
