/* The forward job: one host's connection carrying local and dynamic forwards (apps/forward.c),
 * remote ones (apps/rforward.c) and, when a command is given, an exec channel beside them (as
 * `ssh -L ... -R ... host cmd`): the command's end ends the forwards and its status is the job's.
 * Without a command the forwards last until the connection ends, a remote listener is refused
 * (ExitOnForwardFailure) or the run is canceled. When the server refuses a channel as a limit
 * (MaxSessions) while the connection carries others, local links spill onto more connections to
 * the same host (at most FWD_MAX_CONNS in all). The job ends when the listeners, the command and
 * every connection are gone. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine_internal.h"
#include "exec.h"
#include "forward.h"
#include "rforward.h"

#define FWD_EXTRA_CONNS 7

/* A spill connection; its conn events' ud (the closed event no longer has the conn). */
typedef struct fwd_extra {
    smx_forward *f;
    smx_conn *conn;               /* NULL once closed */
    smx_result *result;           /* its own: the job's result is the first connection's */
} fwd_extra;

typedef struct fwd_entry {
    enum smx_fwd_kind kind;
    int socks;
    int port;                     /* bound TCP port, 0 for sockets (and -R before it is bound) */
    char *listen, *to;
} fwd_entry;

struct smx_forward {
    smx_job base;
    smx_hostcfg *hc;
    char *password;
    const smx_forward_callbacks *cb;
    smx_result *result;
    smx_conn *conn;               /* NULL once closed */
    smx_forwarder *fw;            /* NULL once closed */
    smx_forward_events fev;
    smx_rforwarder *rfw;          /* NULL once closed */
    smx_rforward_events rev;
    fwd_entry *entries;           /* per listener, in the order given */
    size_t nentries;
    size_t *remote_index;         /* rforwarder index -> entry */
    fwd_extra extra[FWD_EXTRA_CONNS];
    int nextra, extra_open;
    const smx_exec_opts *x;       /* the command, or NULL */
    smx_exec_events xev;
    smx_exec *exec;
    int stopping;                 /* the end was asked for: the connection's end is no failure */
    int conn_closed, fw_closed, rfw_closed, exec_done;
};

static void forward_release(smx_forward *f)
{
    for (size_t i = 0; i < f->nentries; i++) {
        free(f->entries[i].listen);
        free(f->entries[i].to);
    }
    free(f->entries);
    free(f->remote_index);
    for (int i = 0; i < f->nextra; i++)
        smx_result_destroy(f->extra[i].result);
    smx_str_wipe_free(f->password);
    smx_hostcfg_free(f->hc);
    free(f->hc);
    free(f);
}

static void forward_maybe_done(smx_forward *f)
{
    if (!f->conn_closed || !f->fw_closed || !f->rfw_closed || !f->exec_done || f->extra_open)
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

static void forward_on_rfw_closed(void *ud)
{
    smx_forward *f = ud;
    f->rfw = NULL;
    f->rfw_closed = 1;
    forward_maybe_done(f);
}

/* Listeners first (no new links; remote ones canceled), then the connections (their channels
 * are failed). */
static void forward_stop(smx_forward *f)
{
    f->stopping = 1;
    if (f->fw)
        smx_forwarder_close(f->fw, forward_on_fw_closed, f);
    if (f->rfw)
        smx_rforwarder_close(f->rfw, forward_on_rfw_closed, f);
    for (int i = 0; i < f->nextra; i++)
        if (f->extra[i].conn)
            smx_conn_close(f->extra[i].conn);
    if (f->conn)
        smx_conn_close(f->conn);
}

/* ---- spill connections ---------------------------------------------------------------------- */

static void forward_on_extra_ended(smx_conn *c, void *ud)
{
    smx_forward *f = ((fwd_extra *)ud)->f;
    if (f->fw)
        smx_forwarder_conn_gone(f->fw, c);
}

static void forward_on_extra_closed(smx_conn *c, void *ud)
{
    fwd_extra *x = ud;
    smx_forward *f = x->f;
    x->conn = NULL;
    f->extra_open--;
    forward_maybe_done(f);
}

static const smx_conn_events forward_extra_events = {
    .ended = forward_on_extra_ended,
    .closed = forward_on_extra_closed,
};

/* Another connection to the host for links the first one has no room for, in a lost one's
 * place when there is one. Its failures are its own: the links on it say why; the job's result
 * is the first connection's. */
static smx_conn *forward_more_conn(void *ud)
{
    smx_forward *f = ud;
    if (f->stopping || !f->conn || f->conn->ended)
        return NULL;
    int i = 0;
    while (i < f->nextra && f->extra[i].conn)
        i++;
    if (i == FWD_EXTRA_CONNS)
        return NULL;
    fwd_extra *x = &f->extra[i];
    smx_result *r = smx_engine_new_result(f->result->host, f->hc);
    smx_conn *c = r ? smx_conn_new(f->conn->ctx, f->hc, f->password, r, &forward_extra_events, x)
                    : NULL;
    if (!c) {
        smx_result_destroy(r);
        return NULL;
    }
    if (i == f->nextra)
        f->nextra++;
    smx_result_destroy(x->result);   /* the lost one's, if any */
    *x = (fwd_extra){.f = f, .conn = c, .result = r};
    f->extra_open++;
    smx_conn_start(c);
    return c;
}

/* ---- remote listeners -------------------------------------------------------------------- */

static void forward_on_remote_bound(void *ud, size_t i, const char *listen, int port,
                                    const char *err)
{
    smx_forward *f = ud;
    fwd_entry *e = &f->entries[f->remote_index[i]];
    if (err) {
        /* ExitOnForwardFailure: a listener the user asked for and cannot have ends the host. */
        if (!f->stopping) {
            smx_result_set_error(f->result, SMX_STAGE_EXEC, SMX_ECHANNEL, err);
            if (f->exec)
                smx_exec_cancel(f->exec, err);
            else
                forward_stop(f);
        }
        if (f->cb->remote_bound)
            f->cb->remote_bound(f->cb->ud, f, f->remote_index[i], err);
        return;
    }
    char *dup = strdup(listen);
    if (dup) {
        free(e->listen);
        e->listen = dup;
    }
    e->port = port;
    if (f->cb->remote_bound)
        f->cb->remote_bound(f->cb->ud, f, f->remote_index[i], NULL);
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
    if (f->rfw)
        smx_rforwarder_start(f->rfw);
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
    if (f->rfw) {
        smx_rforwarder_conn_ended(f->rfw);
        smx_rforwarder_close(f->rfw, forward_on_rfw_closed, f);
    }
    for (int i = 0; i < f->nextra; i++)
        if (f->extra[i].conn)
            smx_conn_close(f->extra[i].conn);   /* they served this one's listeners */
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
    if (f->rfw)
        smx_rforwarder_close(f->rfw, forward_on_rfw_closed, f);
    smx_conn_free_unstarted(f->conn);
    f->conn = NULL;
    smx_forwarder_close(f->fw, forward_on_fw_closed, f);   /* then forward_maybe_done */
}

static void forward_free_unstarted(smx_job *base)
{
    smx_forward *f = (smx_forward *)base;
    if (f->fw)
        smx_forwarder_close(f->fw, NULL, NULL);
    if (f->rfw)
        smx_rforwarder_close(f->rfw, NULL, NULL);
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

static int forward_entry(smx_forward *f, const smx_fwd_spec *spec, const char *listen)
{
    char l[160], to[160];
    smx_fwd_spec_describe(spec, l, sizeof l, to, sizeof to);
    fwd_entry *e = &f->entries[f->nentries];
    e->kind = spec->kind;
    e->socks = smx_fwd_spec_is_socks(spec);
    e->listen = strdup(listen ? listen : l);
    e->to = strdup(to);
    if (!e->listen || !e->to)
        return SMX_ENOMEM;
    if (spec->kind != SMX_FWD_REMOTE && !spec->bind_path)
        e->port = atoi(strrchr(e->listen, ':') + 1);
    f->nentries++;
    return 0;
}

/* Binds every local listener now: a port in use is an error before anything connects
 * (ExitOnForwardFailure). Remote ones are asked for once connected. */
static int forward_bind(smx_forward *f, const smx_forward_opts *o, smx_engine *e, smx_err *err)
{
    f->entries = calloc(o->nspecs ? o->nspecs : 1, sizeof *f->entries);
    f->remote_index = calloc(o->nspecs ? o->nspecs : 1, sizeof *f->remote_index);
    if (!f->entries || !f->remote_index)
        return smx_seterr(err, SMX_ENOMEM, "out of memory");
    size_t nremote = 0;
    for (size_t i = 0; i < o->nspecs; i++) {
        const smx_fwd_spec *spec = &o->specs[i];
        int rc;
        if (spec->kind == SMX_FWD_REMOTE) {
            if (!f->rfw) {
                f->rev.bound = forward_on_remote_bound;
                f->rev.conn_ended = forward_on_link_ended;
                f->rev.ud = f;
                f->rfw = smx_rforwarder_new(e->ctx.loop, e->resolver, f->conn, &f->rev);
                if (!f->rfw)
                    return smx_seterr(err, SMX_ENOMEM, "out of memory");
            }
            f->remote_index[nremote++] = f->nentries;
            rc = smx_rforward_add(f->rfw, spec);
            if (rc == 0)
                rc = forward_entry(f, spec, NULL);
        } else {
            char local[160];
            rc = smx_forward_add(f->fw, spec, o->sock_mode, local, sizeof local, err);
            if (rc < 0)
                return rc;
            rc = forward_entry(f, spec, local);
        }
        if (rc < 0)
            return smx_seterr(err, SMX_ENOMEM, "out of memory");
    }
    if (!f->rfw)
        f->rfw_closed = 1;
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
    f->fev.more_conn = forward_more_conn;
    f->fev.spread = o->connections;
    f->fev.ud = f;
    f->conn = smx_conn_new(&e->ctx, hc, f->password, r, &forward_conn_events, f);
    f->fw = f->conn ? smx_forwarder_new(e->ctx.loop, f->conn, &f->fev) : NULL;
    int rc = f->fw ? forward_bind(f, o, e, err) : smx_seterr(err, SMX_ENOMEM, "out of memory");
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
    return f->nentries;
}

const char *smx_forward_local(const smx_forward *f, size_t i)
{
    return i < f->nentries ? f->entries[i].listen : NULL;
}

const char *smx_forward_remote(const smx_forward *f, size_t i)
{
    return i < f->nentries ? f->entries[i].to : NULL;
}

const char *smx_forward_kind(const smx_forward *f, size_t i)
{
    if (i >= f->nentries)
        return NULL;
    switch (f->entries[i].kind) {
    case SMX_FWD_REMOTE:
        return f->entries[i].socks ? "remote-socks" : "remote";
    case SMX_FWD_DYNAMIC:
        return "dynamic";
    case SMX_FWD_LOCAL:
        break;
    }
    return "local";
}

int smx_forward_port(const smx_forward *f, size_t i)
{
    return i < f->nentries ? f->entries[i].port : 0;
}

const char *smx_forward_host(const smx_forward *f)
{
    return f->hc->host;
}

