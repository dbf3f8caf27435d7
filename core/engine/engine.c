/* The fleet: a queue of jobs of any kind started as fanout allows, sharing one smx_ctx (handshake
 * gates, loaded keys, known_hosts caches), one resolver cache and the jump connections. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine_internal.h"
#include "hostkey.h"

void smx_engine_opts_default(smx_engine_opts *o)
{
    memset(o, 0, sizeof *o);
    o->fanout = 256;
    o->connect_timeout_ms = 10000;
    o->auth_timeout_ms = 30000;
    o->retries = 8;
    o->handshake_initial = 8;
    o->prompt_timeout_ms = 90000;   /* under sshd's LoginGraceTime (120 s) */
}

static int engine_busy(void *ud)
{
    smx_engine *e = ud;
    return !smx_list_empty(&e->queue) || e->running > 0;
}

int smx_engine_new(smx_engine **out, uv_loop_t *loop, const smx_engine_opts *o)
{
    smx_engine *e = calloc(1, sizeof *e);
    if (!e)
        return SMX_ENOMEM;
    e->opts = *o;
    if (e->opts.fanout < 1)
        e->opts.fanout = 1;
    smx_list_init(&e->queue);
    smx_list_init(&e->running_jobs);
    smx_ctx_opts co = {
        .connect_timeout_ms = o->connect_timeout_ms,
        .auth_timeout_ms = o->auth_timeout_ms,
        .retries = o->retries,
        .interactive = o->interactive,
        .prompt_timeout_ms = o->prompt_timeout_ms,
        .verbose = o->verbose,
        .warn = o->warn,
        .ud = o->ud,
    };
    int rc = smx_ctx_init(&e->ctx, loop, &co, o->handshake_initial, e->opts.fanout);
    e->ctx.transport_factory = smx_engine_make_transport;
    e->ctx.factory_ud = e;
    e->resolver = smx_resolver_new(loop);
    smx_jumps_opts jo = {
        .ctx = &e->ctx,
        .resolve = smx_engine_resolve_hops_cb,
        .busy = engine_busy,
        .ud = e,
    };
    e->jumps = smx_jumps_new(&jo);
    e->tenv.loop = loop;
    e->tenv.resolver = e->resolver;
    e->tenv.jumps = e->jumps;
    if (rc < 0 || !e->resolver || !e->jumps) {
        smx_engine_free(e);
        return SMX_ENOMEM;
    }
    *out = e;
    return 0;
}

void smx_engine_free(smx_engine *e)
{
    if (!e)
        return;
    while (!smx_list_empty(&e->queue)) {   /* never started: nothing on the loop refers to them */
        smx_job *job = smx_list_entry(e->queue.next, smx_job, node);
        smx_list_remove(&job->node);
        job->ops->free_unstarted(job);
    }
    smx_jumps_free(e->jumps);
    smx_resolver_free(e->resolver);
    smx_ctx_close(&e->ctx);
    smx_strvec_free(&e->jump_ov.identityfiles);
    smx_strvec_free(&e->jump_ov.options);
    smx_engine_free_overrides(e);
    smx_config_free(e->owned_config);
    free(e);
}

smx_keyring *smx_engine_keyring(smx_engine *e)
{
    return e->ctx.keyring;
}

int smx_engine_set_password(smx_engine *e, const char *pw, size_t len)
{
    return smx_secret_set(&e->ctx.password, pw, len);
}

void smx_engine_use_agent(smx_engine *e, int on)
{
    e->ctx.use_agent = on;
}

unsigned smx_engine_hostkeys_unverified(const smx_engine *e)
{
    return smx_hostkeys_unverified(e->ctx.hostkeys);
}

unsigned smx_engine_hostkeys_added(const smx_engine *e)
{
    return smx_hostkeys_added(e->ctx.hostkeys);
}

static void engine_pump(smx_engine *e)
{
    while (e->running < e->opts.fanout && !smx_list_empty(&e->queue) && !e->canceled) {
        smx_job *job = smx_list_entry(e->queue.next, smx_job, node);
        smx_list_remove(&job->node);
        smx_list_append(&e->running_jobs, &job->node);
        e->running++;
        e->queued--;
        job->started = 1;
        job->started_at = uv_hrtime();
        job->ops->start(job);
    }
}

void smx_engine_queue_job(smx_engine *e, smx_job *job)
{
    job->engine = e;
    smx_list_init(&job->node);
    e->queued++;
    if (e->canceled) {
        job->ops->discard(job, e->cancel_why);   /* the run is over: it says so at once */
        return;
    }
    smx_list_append(&e->queue, &job->node);
    if (e->started)
        engine_pump(e);
}

void smx_engine_job_done(smx_engine *e, smx_job *job)
{
    smx_list_remove(&job->node);
    if (job->started)
        e->running--;
    else
        e->queued--;
    e->done++;
    engine_pump(e);
    if (!engine_busy(e)) {
        smx_jumps_close_idle(e->jumps);   /* nothing left to carry: let the loop end */
        smx_ctx_quiesce(&e->ctx);         /* an unanswered agent request would keep it alive */
    }
}

enum smx_stage smx_engine_stage_of(const smx_conn *c)
{
    switch (c->session.state) {
    case SMX_SESSION_NEW:
    case SMX_SESSION_PREPARE: return SMX_STAGE_RESOLVE;
    case SMX_SESSION_AUTH: return SMX_STAGE_AUTH;
    case SMX_SESSION_READY: return SMX_STAGE_EXEC;
    default: return SMX_STAGE_CONNECT;
    }
}

void smx_engine_cancel(smx_engine *e, const char *why)
{
    if (!e->canceled)
        snprintf(e->cancel_why, sizeof e->cancel_why, "%s", why);
    e->canceled = 1;   /* nothing starts from now on */
    while (!smx_list_empty(&e->queue)) {
        smx_job *job = smx_list_entry(e->queue.next, smx_job, node);
        smx_list_remove(&job->node);
        job->ops->discard(job, why);
    }
    /* Jobs leave the running list from later loop turns (their handles close first). */
    for (smx_list *n = e->running_jobs.next, *next; n != &e->running_jobs; n = next) {
        next = n->next;
        smx_job *job = smx_list_entry(n, smx_job, node);
        job->ops->cancel(job, why);
    }
    smx_jumps_close_idle(e->jumps);
}

void smx_engine_get_progress(const smx_engine *e, smx_engine_progress *p)
{
    memset(p, 0, sizeof *p);
    p->queued = e->queued;
    p->running = (size_t)e->running;
    p->done = e->done;
    /* started in order: the first still running is the one running longest */
    if (!smx_list_empty(&e->running_jobs)) {
        const smx_job *job = smx_list_entry(e->running_jobs.next, smx_job, node);
        p->oldest_host = job->host;
        p->oldest_ms = (double)(uv_hrtime() - job->started_at) / 1e6;
    }
}

void smx_engine_start(smx_engine *e)
{
    e->started = 1;
    engine_pump(e);
}

int smx_engine_run(smx_engine *e)
{
    smx_engine_start(e);
    return uv_run(e->ctx.loop, UV_RUN_DEFAULT);
}

void smx_result_destroy(smx_result *r)
{
    if (!r)
        return;
    smx_result_free(r);
    free(r);
}
