/* exec job: session channel -> [pty-req] -> [env...] -> exec -> stream stdout/stderr until the
 * server closes the channel; exit-status / exit-signal recorded; -u timeout sends TERM then KILL. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine_internal.h"
#include "job.h"

#define EXEC_MAX_PARTIAL_LINE (64 * 1024)   /* a line longer than this is passed on in pieces */

static void exec_finish(smx_job *job);

static void exec_emit_lines(smx_job *job, int is_stderr, const char *p, size_t n)
{
    smx_buf *part = &job->partial[is_stderr];
    while (n > 0) {
        const char *nl = memchr(p, '\n', n);
        size_t take = nl ? (size_t)(nl - p) : n;
        if (!nl && part->len + take < EXEC_MAX_PARTIAL_LINE) {
            smx_buf_append(part, p, take, EXEC_MAX_PARTIAL_LINE);
            return;
        }
        if (part->len) {
            smx_buf_append(part, p, take, SIZE_MAX);
            job->cb->on_line(job->cb->ud, job->result, is_stderr, part->data, part->len);
            part->len = 0;
        } else {
            job->cb->on_line(job->cb->ud, job->result, is_stderr, p, take);
        }
        size_t used = nl ? take + 1 : take;
        p += used;
        n -= used;
    }
}

static int exec_on_data(ssh_session ss, ssh_channel ch, void *data, uint32_t len, int is_stderr,
                        void *ud)
{
    smx_job *job = ud;
    smx_result *r = job->result;
    if (job->x->capture) {
        smx_buf *b = is_stderr ? &r->err : &r->out;
        if (smx_buf_append(b, data, len, job->x->max_output))
            r->truncated = 1;
    }
    if (job->cb->on_line)
        exec_emit_lines(job, is_stderr, data, len);
    return (int)len;   /* always consume: unread data would keep the window shut */
}

static void exec_on_eof(ssh_session ss, ssh_channel ch, void *ud)
{
    ((smx_job *)ud)->remote_eof = 1;
}

static void exec_on_close(ssh_session ss, ssh_channel ch, void *ud)
{
    ((smx_job *)ud)->remote_closed = 1;
}

static void exec_on_exit_status(ssh_session ss, ssh_channel ch, int status, void *ud)
{
    ((smx_job *)ud)->result->exit_code = status;
}

static void exec_on_exit_signal(ssh_session ss, ssh_channel ch, const char *sig, int core,
                                const char *errmsg, const char *lang, void *ud)
{
    smx_result *r = ((smx_job *)ud)->result;
    free(r->exit_signal);
    r->exit_signal = strdup(sig ? sig : "?");
}

/* `K='v'; export K; ` for each variable, then the command: POSIX shells (sh, bash, dash, ksh,
 * zsh) all read it, so variables apply even where AcceptEnv refuses them. */
static char *exec_command_with_env(const char *cmd, const smx_strvec *env)
{
    size_t len = strlen(cmd) + 1;
    for (size_t i = 0; i < env->n; i++)
        len += strlen(env->v[i]) * 4 + 32;
    char *out = malloc(len);
    if (!out)
        return NULL;
    char *p = out;
    for (size_t i = 0; i < env->n; i++) {
        const char *kv = env->v[i];
        const char *eq = strchr(kv, '=');
        size_t klen = (size_t)(eq - kv);
        memcpy(p, kv, klen);
        p += klen;
        *p++ = '=';
        *p++ = '\'';
        for (const char *v = eq + 1; *v; v++) {
            if (*v == '\'') {
                memcpy(p, "'\\''", 4);
                p += 4;
            } else {
                *p++ = *v;
            }
        }
        p += sprintf(p, "'; export %.*s; ", (int)klen, kv);
    }
    strcpy(p, cmd);
    return out;
}

static void exec_on_timer(uv_timer_t *t);

/* TERM now (OpenSSH delivers it to non-root sessions); KILL and the channel closed after the
 * grace unless the command ends first. The caller gets the TERM written (a step or a kick). */
static void exec_begin_kill(smx_job *job)
{
    ssh_channel_request_send_signal(job->ch, "TERM");
    job->st = SMX_EXEC_KILLING;
    uv_timer_start(&job->timer, exec_on_timer, (uint64_t)job->x->kill_grace_ms, 0);
}

/* KILL, and close the channel: where signals are not delivered (root sessions) sshd ends the
 * session on the close (with a PTY it hangs it up, which signals the command). */
static void exec_kill_now(smx_job *job)
{
    if (job->st == SMX_EXEC_RUNNING || job->st == SMX_EXEC_KILLING)
        ssh_channel_request_send_signal(job->ch, "KILL");
    if (job->ch && ssh_channel_is_open(job->ch))
        ssh_channel_close(job->ch);
    exec_finish(job);
}

static void exec_on_timer(uv_timer_t *t)
{
    smx_job *job = t->data;
    switch (job->st) {
    case SMX_EXEC_RUNNING: {   /* -u */
        job->result->timed_out = 1;
        char msg[128];
        snprintf(msg, sizeof msg, "command timed out after %d s", job->x->timeout_ms / 1000);
        smx_result_set_error(job->result, SMX_STAGE_TIMEOUT, SMX_ETIMEDOUT, msg);
        exec_begin_kill(job);
        smx_session_kick(&job->session);
        break;
    }
    case SMX_EXEC_START:     /* canceled, and the exec request is still unanswered */
    case SMX_EXEC_KILLING:   /* the grace is over */
        exec_kill_now(job);
        break;
    default:
        break;
    }
}

static int exec_env_step(smx_job *job)
{
    const smx_strvec *env = job->x->env;
    while (env && job->env_pos < env->n && !job->env_refused) {
        const char *kv = env->v[job->env_pos];
        const char *eq = strchr(kv, '=');
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)(eq - kv), kv);
        int rc = ssh_channel_request_env(job->ch, name, eq + 1);
        if (rc == SSH_AGAIN)
            return 0;
        if (rc == SSH_ERROR) {
            if (!ssh_is_connected(job->session.ssh))
                return -1;
            job->env_refused = 1;   /* the rest go through the command line too */
            break;
        }
        job->env_pos++;
    }
    if (job->env_refused) {
        char *cmd = exec_command_with_env(job->x->command, env);
        if (!cmd)
            return -1;
        free(job->command);
        job->command = cmd;
    }
    return 1;
}

/* Advances the pending channel calls; returns -1 on failure (already recorded). */
static int exec_advance(smx_job *job)
{
    smx_session *s = &job->session;
    int rc;
    for (;;) {
        switch (job->st) {
        case SMX_EXEC_OPEN:
            rc = ssh_channel_open_session(job->ch);
            if (rc == SSH_AGAIN)
                return 0;
            if (rc != SSH_OK)
                goto refused;
            job->st = job->x->pty ? SMX_EXEC_PTY : SMX_EXEC_ENV;
            break;
        case SMX_EXEC_PTY:
            rc = ssh_channel_request_pty_size(job->ch, "xterm", 80, 24);
            if (rc == SSH_AGAIN)
                return 0;
            if (rc != SSH_OK)
                goto refused;
            job->st = SMX_EXEC_ENV;
            break;
        case SMX_EXEC_ENV:
            rc = exec_env_step(job);
            if (rc <= 0)
                return rc;
            job->st = SMX_EXEC_START;
            break;
        case SMX_EXEC_START:
            rc = ssh_channel_request_exec(job->ch, job->command);
            if (rc == SSH_AGAIN)
                return 0;
            if (rc != SSH_OK)
                goto refused;
            job->st = SMX_EXEC_RUNNING;
            if (job->canceled)
                exec_begin_kill(job);   /* canceled while the request was on its way */
            else if (job->x->timeout_ms > 0)
                uv_timer_start(&job->timer, exec_on_timer, (uint64_t)job->x->timeout_ms, 0);
            return 0;
        default:
            return 0;
        }
    }
refused:
    smx_session_fail(s, SMX_STAGE_EXEC, SMX_ECHANNEL, "%s: %s",
                     job->st == SMX_EXEC_OPEN ? "cannot open a session channel" :
                     job->st == SMX_EXEC_PTY ? "pty request refused" : "exec request refused",
                     ssh_get_error(s->ssh));
    return -1;
}

static void exec_ready(smx_session *s)
{
    smx_job *job = s->data;
    job->ch = ssh_channel_new(s->ssh);
    if (!job->ch) {
        smx_session_fail(s, SMX_STAGE_EXEC, SMX_ENOMEM, "cannot allocate a channel");
        return;
    }
    /* Callbacks before the open: data that arrives earlier is not replayed (libssh-notes). */
    ssh_callbacks_init(&job->chcb);
    job->chcb.userdata = job;
    job->chcb.channel_data_function = exec_on_data;
    job->chcb.channel_eof_function = exec_on_eof;
    job->chcb.channel_close_function = exec_on_close;
    job->chcb.channel_exit_status_function = exec_on_exit_status;
    job->chcb.channel_exit_signal_function = exec_on_exit_signal;
    ssh_set_channel_callbacks(job->ch, &job->chcb);
    job->st = SMX_EXEC_OPEN;
    /* The exec phase runs from the channel open to the channel close: under load the server's
     * answers to the open and the exec request are a real part of what a command costs. */
    job->t_exec = uv_hrtime();
    s->handler->step(s);
}

static void exec_step(smx_session *s)
{
    smx_job *job = s->data;
    if (job->st != SMX_EXEC_RUNNING && job->st != SMX_EXEC_KILLING) {
        if (exec_advance(job) < 0 || job->st != SMX_EXEC_RUNNING)
            return;
    }
    if (smx_session_poll(s) < 0 && !job->remote_closed) {
        if (job->result->exit_code >= 0 || job->result->exit_signal) {
            exec_finish(job);   /* the command's result arrived before the connection went */
            return;
        }
        smx_session_fail_lost(s, " while running");
        return;
    }
    if (job->remote_closed)
        exec_finish(job);
}

static void exec_flush_partial(smx_job *job)
{
    for (int i = 0; i < 2; i++) {
        smx_buf *part = &job->partial[i];
        if (part->len && job->cb->on_line)
            job->cb->on_line(job->cb->ud, job->result, i, part->data, part->len);
        part->len = 0;
    }
}

static void exec_finish(smx_job *job)
{
    if (job->st == SMX_EXEC_DONE)
        return;
    if (job->t_exec)
        job->result->t.exec = smx_ms_since(job->t_exec);
    job->st = SMX_EXEC_DONE;
    uv_timer_stop(&job->timer);
    exec_flush_partial(job);
    smx_session_close(&job->session);
}

static void exec_ended(smx_session *s)
{
    smx_job *job = s->data;
    exec_flush_partial(job);
    uv_timer_stop(&job->timer);
    if (job->ch) {
        ssh_remove_channel_callbacks(job->ch, &job->chcb);
        ssh_channel_free(job->ch);
        job->ch = NULL;
    }
    smx_result *r = job->result;
    r->ok = r->err_stage == SMX_STAGE_NONE && r->exit_code == 0;
}

/* Frees what the job owns (not its result, which goes to the caller). */
static void exec_job_release(smx_job *job)
{
    smx_buf_free(&job->partial[0]);
    smx_buf_free(&job->partial[1]);
    free(job->command);
    smx_str_wipe_free(job->password);
    smx_hostcfg_free(job->hc);
    free(job->hc);
    free(job);
}

static void exec_on_timer_closed(uv_handle_t *h)
{
    smx_job *job = h->data;
    smx_result *r = job->result;
    const smx_exec_callbacks *cb = job->cb;
    smx_engine_job_done(job->engine, job);
    exec_job_release(job);
    cb->on_done(cb->ud, r);
}

static void exec_closed(smx_session *s)
{
    smx_job *job = s->data;
    uv_close((uv_handle_t *)&job->timer, exec_on_timer_closed);
}

static const smx_session_handler exec_handler = {
    .ready = exec_ready,
    .step = exec_step,
    .ended = exec_ended,
    .closed = exec_closed,
};

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

smx_job *smx_exec_job_new(smx_engine *e, const char *target, smx_hostcfg *hc,
                          const char *password, const smx_exec_opts *x,
                          const smx_exec_callbacks *cb)
{
    smx_job *job = calloc(1, sizeof *job);
    smx_result *r = calloc(1, sizeof *r);
    char *cmd = strdup(x->command ? x->command : "");
    if (!job || !r || !cmd) {
        free(job);
        free(r);
        free(cmd);
        return NULL;
    }
    smx_result_init(r);
    r->host = dup_or_null(hc->host);
    r->target = dup_or_null(target);
    r->user = dup_or_null(hc->user);
    r->hostname = dup_or_null(hc->hostname);
    r->port = hc->port;
    job->engine = e;
    job->hc = hc;
    job->password = dup_or_null(password);
    job->x = x;
    job->cb = cb;
    job->result = r;
    job->command = cmd;
    smx_session_init(&job->session, e, hc, &exec_handler, job, r);
    job->session.password = job->password;
    return job;
}

void smx_job_discard(smx_job *job, const char *why)
{
    smx_result *r = job->result;
    const smx_exec_callbacks *cb = job->cb;
    smx_result_set_error(r, SMX_STAGE_CONNECT, SMX_ECANCELED, why);
    exec_job_release(job);
    cb->on_done(cb->ud, r);
}

void smx_job_cancel(smx_job *job, enum smx_stage stage, const char *why)
{
    smx_session *s = &job->session;
    if (job->st == SMX_EXEC_DONE)
        return;   /* finished before the signal: its result stands */
    if (s->state != SMX_SESSION_READY || job->st < SMX_EXEC_START) {
        smx_session_fail(s, stage, SMX_ECANCELED, "%s", why);   /* nothing runs remotely yet */
        return;
    }
    smx_result_set_error(job->result, SMX_STAGE_EXEC, SMX_ECANCELED, why);
    if (job->canceled++) {
        exec_kill_now(job);   /* asked twice: no more grace */
        return;
    }
    switch (job->st) {
    case SMX_EXEC_START:     /* the command may be starting: signal it once the server says so */
        uv_timer_start(&job->timer, exec_on_timer, (uint64_t)job->x->kill_grace_ms, 0);
        break;
    case SMX_EXEC_RUNNING:
        exec_begin_kill(job);
        smx_session_kick(s);
        break;
    default:                 /* already being killed (-u) */
        break;
    }
}

void smx_job_free_unstarted(smx_job *job)
{
    smx_result_destroy(job->result);
    exec_job_release(job);
}

void smx_job_start(smx_job *job)
{
    uv_timer_init(job->engine->loop, &job->timer);
    job->timer.data = job;
    smx_session_start(&job->session);
}
