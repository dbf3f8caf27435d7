/* The fleet: a queue of jobs started as fanout allows, sharing one resolver cache, one set of
 * handshake gates, the loaded keys and the known_hosts caches. */
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "engine_internal.h"
#include "job.h"
#include "knownhosts.h"
#include "ttyprompt.h"
#include "jumphost.h"

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

int smx_engine_new(smx_engine **out, uv_loop_t *loop, const smx_engine_opts *o)
{
    smx_engine *e = calloc(1, sizeof *e);
    if (!e)
        return SMX_ENOMEM;
    e->loop = loop;
    e->opts = *o;
    if (e->opts.fanout < 1)
        e->opts.fanout = 1;
    e->resolver = smx_resolver_new(loop);
    e->gates = smx_gates_new(o->handshake_initial, e->opts.fanout);
    e->keyring = smx_keyring_new();
    if (!e->resolver || !e->gates || !e->keyring) {
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
    smx_job *job = e->queue_head;
    while (job) {   /* never started: nothing on the loop refers to them */
        smx_job *next = job->next;
        smx_job_free_unstarted(job);
        job = next;
    }
    smx_agents_close_all(e);
    smx_resolver_free(e->resolver);
    smx_gates_free(e->gates);
    smx_keyring_free(e->keyring);
    smx_secret_wipe(&e->password);
    smx_kbd_free_all(e);
    smx_prompter_free(e->prompter);
    smx_strvec_free(&e->jump_ov.identityfiles);
    smx_config_free(e->owned_config);
    smx_engine_knownhosts_free(e);
    free(e);
}

smx_keyring *smx_engine_keyring(smx_engine *e)
{
    return e->keyring;
}

int smx_engine_set_password(smx_engine *e, const char *pw, size_t len)
{
    return smx_secret_set(&e->password, pw, len);
}

void smx_engine_use_agent(smx_engine *e, int on)
{
    e->use_agent = on;
}

unsigned smx_engine_hostkeys_unverified(const smx_engine *e)
{
    return e->hostkey_unverified;
}

unsigned smx_engine_hostkeys_added(const smx_engine *e)
{
    return e->hostkey_added;
}

int smx_engine_add_exec(smx_engine *e, const char *target, smx_hostcfg *hc, const char *password,
                        const smx_exec_opts *x, const smx_exec_callbacks *cb)
{
    smx_job *job = smx_exec_job_new(e, target, hc, password, x, cb);
    if (!job)
        return SMX_ENOMEM;
    if (e->queue_tail)
        e->queue_tail->next = job;
    else
        e->queue_head = job;
    e->queue_tail = job;
    e->total++;
    return 0;
}

static void engine_pump(smx_engine *e)
{
    while (e->running < e->opts.fanout && e->queue_head) {
        smx_job *job = e->queue_head;
        e->queue_head = job->next;
        if (!e->queue_head)
            e->queue_tail = NULL;
        job->next = e->running_head;
        job->prev = NULL;
        if (e->running_head)
            e->running_head->prev = job;
        e->running_head = job;
        e->running++;
        smx_job_start(job);
    }
}

void smx_engine_job_done(smx_engine *e, smx_job *job)
{
    if (job->prev)
        job->prev->next = job->next;
    else
        e->running_head = job->next;
    if (job->next)
        job->next->prev = job->prev;
    e->running--;
    e->finished++;
    engine_pump(e);
    if (!e->queue_head && e->running == 0) {
        smx_jumphosts_close_idle(e);   /* nothing left to carry: let the loop end */
        smx_agents_close_all(e);       /* an unanswered agent request would keep it alive */
    }
}

static enum smx_stage engine_stage_of(const smx_session *s)
{
    switch (s->state) {
    case SMX_SESSION_NEW:
    case SMX_SESSION_PREPARE: return SMX_STAGE_RESOLVE;
    case SMX_SESSION_AUTH: return SMX_STAGE_AUTH;
    case SMX_SESSION_READY: return SMX_STAGE_EXEC;
    default: return SMX_STAGE_CONNECT;
    }
}

void smx_engine_cancel(smx_engine *e, const char *why)
{
    while (e->queue_head) {
        smx_job *job = e->queue_head;
        e->queue_head = job->next;
        e->finished++;
        smx_job_discard(job, why);
    }
    e->queue_tail = NULL;
    /* Jobs are freed from a later loop turn (uv_close), so the list holds while we walk it. */
    for (smx_job *job = e->running_head; job; job = job->next)
        smx_job_cancel(job, engine_stage_of(&job->session), why);
    smx_jumphosts_close_idle(e);
}

int smx_engine_run(smx_engine *e)
{
    engine_pump(e);
    return uv_run(e->loop, UV_RUN_DEFAULT);
}

void smx_result_destroy(smx_result *r)
{
    if (!r)
        return;
    smx_result_free(r);
    free(r);
}
