/* The forward job: one host's connection carrying local forwards (apps/forward.c) and, when a
 * command is given, an exec channel beside them (as `ssh -L ... host cmd`): the command's end
 * ends the forwards and its status is the job's. Without a command the forwards last until the
 * connection ends or the run is canceled. The job ends when the listeners, the command and the
 * connection are all gone. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine_internal.h"
#include "exec.h"
#include "forward.h"

struct smx_forward {
    smx_job base;
    smx_hostcfg *hc;
    char *password;
    const smx_forward_callbacks *cb;
    smx_result *result;
    smx_conn *conn;               /* NULL once closed */
    smx_forwarder *fw;            /* NULL once closed */
    smx_forward_events fev;
    smx_strvec locals, remotes;   /* per listener: bound address, remote end */
    const smx_exec_opts *x;       /* the command, or NULL */
    smx_exec_events xev;
    smx_exec *exec;
    int stopping;                 /* the end was asked for: the connection's end is no failure */
    int conn_closed, fw_closed, exec_done;
};

static void forward_release(smx_forward *f)
{
    smx_strvec_free(&f->locals);
    smx_strvec_free(&f->remotes);
    smx_str_wipe_free(f->password);
    smx_hostcfg_free(f->hc);
    free(f->hc);
    free(f);
}

static void forward_maybe_done(smx_forward *f)
{
    if (!f->conn_closed || !f->fw_closed || !f->exec_done)
        return;
    smx_result *r = f->result;
    r->ok = r->err_stage == SMX_STAGE_NONE && (!f->x || r->exit_code == 0);
    const smx_forward_callbacks *cb = f->cb;
    smx_engine_job_done(f->base.engine, &f->base);
    forward_release(f);
    cb->on_done(cb->ud, r);
}

static void forward_on_fw_closed(void *ud)
{
    smx_forward *f = ud;
    f->fw = NULL;
    f->fw_closed = 1;
    forward_maybe_done(f);
}

/* Listeners first (no new links), then the connection (its channels are failed). */
static void forward_stop(smx_forward *f)
{
    f->stopping = 1;
    if (f->fw)
        smx_forwarder_close(f->fw, forward_on_fw_closed, f);
    if (f->conn)
        smx_conn_close(f->conn);
}

static void forward_on_link_ended(void *ud, const char *listener, const char *err)
{
    smx_forward *f = ud;
    if (f->cb->link_ended)
        f->cb->link_ended(f->cb->ud, f, listener, err);
}

static void forward_on_line(void *ud, int is_stderr, const char *line, size_t len)
{
    smx_forward *f = ud;
    f->cb->on_line(f->cb->ud, f->result, is_stderr, line, len);
}

static void forward_on_exec_done(void *ud)
{
    smx_forward *f = ud;
    f->exec = NULL;
    f->exec_done = 1;
    forward_stop(f);
    forward_maybe_done(f);
}

static void forward_on_ready(smx_conn *c, void *ud)
{
    smx_forward *f = ud;
    if (f->cb->ready)
        f->cb->ready(f->cb->ud, f);
    if (f->x && !f->exec_done) {
        c->loss_context = " while running";
        f->exec = smx_exec_start(c, f->x, f->result, &f->xev);
        if (!f->exec) {
            f->exec_done = 1;
            smx_session_fail(&c->session, SMX_STAGE_EXEC, SMX_ENOMEM, "out of memory");
        }
    }
}

static void forward_on_ended(smx_conn *c, void *ud)
{
    smx_forward *f = ud;
    if (!f->exec)
        f->exec_done = 1;   /* none, or it never started */
    if (f->fw)
        smx_forwarder_close(f->fw, forward_on_fw_closed, f);
}

static void forward_on_closed(smx_conn *c, void *ud)
{
    smx_forward *f = ud;
    f->conn = NULL;
    f->conn_closed = 1;
    forward_maybe_done(f);
}

static const smx_conn_events forward_conn_events = {
    .ready = forward_on_ready,
    .ended = forward_on_ended,
    .closed = forward_on_closed,
};

static void forward_start(smx_job *base)
{
    smx_conn_start(((smx_forward *)base)->conn);
}

static void forward_cancel(smx_job *base, const char *why)
{
    smx_forward *f = (smx_forward *)base;
    if (f->exec) {
        smx_exec_cancel(f->exec, why);   /* its end stops the rest */
        return;
    }
    if (f->x && f->conn && !f->conn->ended)
        smx_result_set_error(f->result, smx_engine_stage_of(f->conn), SMX_ECANCELED, why);
    forward_stop(f);
}

/* Not started: its listeners are bound, and go now. */
static void forward_discard(smx_job *base, const char *why)
{
    smx_forward *f = (smx_forward *)base;
    smx_result_set_error(f->result, SMX_STAGE_CONNECT, SMX_ECANCELED, why);
    f->conn_closed = f->exec_done = 1;
    smx_conn_free_unstarted(f->conn);
    f->conn = NULL;
    smx_forwarder_close(f->fw, forward_on_fw_closed, f);   /* then forward_maybe_done */
}

static void forward_free_unstarted(smx_job *base)
{
    smx_forward *f = (smx_forward *)base;
    if (f->fw)
        smx_forwarder_close(f->fw, NULL, NULL);
    if (f->conn)
        smx_conn_free_unstarted(f->conn);
    smx_result_destroy(f->result);
    forward_release(f);
}

static const smx_job_ops forward_job_ops = {
    .kind = "forward",
    .start = forward_start,
    .cancel = forward_cancel,
    .discard = forward_discard,
    .free_unstarted = forward_free_unstarted,
};

/* Binds every listener now: a port in use is an error before anything connects
 * (ExitOnForwardFailure). */
static int forward_bind(smx_forward *f, const smx_forward_opts *o, smx_err *err)
{
    for (size_t i = 0; i < o->nspecs; i++) {
        char local[160], remote[160], unused[160];
        int rc = smx_forward_add(f->fw, &o->specs[i], o->sock_mode, local, sizeof local, err);
        if (rc < 0)
            return rc;
        smx_fwd_spec_describe(&o->specs[i], unused, sizeof unused, remote, sizeof remote);
        if (smx_strvec_push(&f->locals, local) < 0 || smx_strvec_push(&f->remotes, remote) < 0)
            return smx_seterr(err, SMX_ENOMEM, "out of memory");
    }
    return 0;
}

int smx_engine_add_forward(smx_engine *e, const char *target, smx_hostcfg *hc,
                           const char *password, const smx_forward_opts *o,
                           const smx_forward_callbacks *cb, smx_forward **out, smx_err *err)
{
    smx_forward *f = calloc(1, sizeof *f);
    smx_result *r = f ? smx_engine_new_result(target, hc) : NULL;
    if (!r || (password && !(f->password = strdup(password)))) {
        free(f);
        smx_result_destroy(r);
        return smx_seterr(err, SMX_ENOMEM, "out of memory");
    }
    f->base.ops = &forward_job_ops;
    f->base.host = hc->host;
    f->base.engine = e;
    f->hc = hc;
    f->cb = cb;
    f->result = r;
    f->x = o->command;
    if (f->x) {
        f->xev.line = cb->on_line ? forward_on_line : NULL;
        f->xev.done = forward_on_exec_done;
        f->xev.ud = f;
    }
    f->fev.conn_ended = forward_on_link_ended;
    f->fev.ud = f;
    f->conn = smx_conn_new(&e->ctx, hc, f->password, r, &forward_conn_events, f);
    f->fw = f->conn ? smx_forwarder_new(e->ctx.loop, f->conn, &f->fev) : NULL;
    int rc = f->fw ? forward_bind(f, o, err) : smx_seterr(err, SMX_ENOMEM, "out of memory");
    if (rc < 0) {
        f->hc = NULL;   /* the caller keeps it on failure */
        forward_free_unstarted(&f->base);
        return rc;
    }
    smx_engine_queue_job(e, &f->base);
    if (out)
        *out = f;
    return 0;
}

size_t smx_forward_listeners(const smx_forward *f)
{
    return f->locals.n;
}

const char *smx_forward_local(const smx_forward *f, size_t i)
{
    return i < f->locals.n ? f->locals.v[i] : NULL;
}

const char *smx_forward_remote(const smx_forward *f, size_t i)
{
    return i < f->remotes.n ? f->remotes.v[i] : NULL;
}

const char *smx_forward_host(const smx_forward *f)
{
    return f->hc->host;
}

