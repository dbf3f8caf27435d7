/* The engine: a queue of jobs of any kind started as fanout allows, on one smx_ctx (loop,
 * handshake gates, keys, caches), with the transports the run's hosts need. */
#ifndef SSHMUX_ENGINE_INTERNAL_H
#define SSHMUX_ENGINE_INTERNAL_H

#include <uv.h>

#include "conn.h"
#include "ctx.h"
#include "exec.h"
#include "list.h"
#include "sshmux.h"
#include "transports.h"

typedef struct smx_job smx_job;

/* What each kind of job implements (engine/job_exec.c, engine/job_forward.c, ...). */
typedef struct smx_job_ops {
    const char *kind;
    /* Takes a fanout slot: connect and run. Ends with smx_engine_job_done. */
    void (*start)(smx_job *j);
    /* SIGINT/SIGTERM on a started job: end what runs, as gracefully as the kind allows. */
    void (*cancel)(smx_job *j, const char *why);
    /* Never started: report `why` as its result, then free it (through smx_engine_job_done,
     * at once or once what it holds is closed). */
    void (*discard)(smx_job *j, const char *why);
    /* Never started, engine teardown: free it silently. */
    void (*free_unstarted)(smx_job *j);
} smx_job_ops;

struct smx_job {
    smx_list node;                  /* the engine's queue, then its running list */
    smx_engine *engine;
    const smx_job_ops *ops;
    int started;                    /* took a fanout slot */
    const char *host;               /* the job's host, for progress (the job's own string) */
    uint64_t started_at;            /* uv_hrtime() when it took the slot */
};

struct smx_engine {
    size_t queued, done;                /* jobs waiting, jobs finished (progress) */
    smx_ctx ctx;
    smx_engine_opts opts;
    smx_resolver *resolver;
    smx_jumps *jumps;
    smx_transport_env tenv;
    const smx_config *config;           /* for resolving jump hops (set by the client) */
    smx_config *owned_config;           /* the empty one made when the client set none */
    smx_jump_overrides jump_ov;         /* credentials for the first hop (--proxy-*) */
    const smx_overrides *overrides;     /* -o/-l/-p/-i for smx_engine_add_target: &ov or NULL */
    smx_overrides ov;                   /* the engine's copy */
    char *ov_user;
    smx_list queue;                     /* jobs not yet started */
    smx_list running_jobs;              /* started, not yet done */
    int running;
    int started;                        /* smx_engine_run was called: new jobs start at once */
    int canceled;                       /* smx_engine_cancel: nothing starts any more */
    char cancel_why[128];
};

/* Queues a job (started at once when the run is on and fanout allows). */
void smx_engine_queue_job(smx_engine *e, smx_job *job);
/* A job is over (started or discarded): a slot it held goes to the next one. */
void smx_engine_job_done(smx_engine *e, smx_job *job);
/* Where a connection in this state failed, for a cancel's result. */
enum smx_stage smx_engine_stage_of(const smx_conn *c);

/* engine/api_config.c: frees the engine's copy of the overrides. */
void smx_engine_free_overrides(smx_engine *e);

/* A result with the host's identity filled in, as every kind of job reports it. */
smx_result *smx_engine_new_result(const char *target, const smx_hostcfg *hc);

/* Resolves the hops of a ProxyJump chain against the run's config and first-hop credentials:
 * *hops (n of them, each freed with smx_hostcfg_free, then the array) in connection order. */
int smx_engine_resolve_hops(smx_engine *e, const char *chain, smx_hostcfg **hops, size_t *n,
                            smx_err *err);
smx_keyring *smx_engine_keyring(smx_engine *e);

/* engine/route.c: the transport factory the engine hands to ctx, and the jump hop resolver. */
smx_transport *smx_engine_make_transport(void *engine, const smx_hostcfg *hc, smx_err *err);
int smx_engine_resolve_hops_cb(void *engine, const char *chain, smx_hostcfg **hops, size_t *n,
                               smx_err *err);

/* engine/job_exec.c: one smx_exec_opts run on a connection the run does not own: the command, or
 * a command list (and sudo) step by step, each step's outcome in the result's steps. Used by the
 * exec job (its own connection) and by links (engine/job_link.c: many runs in turn on one). */
typedef struct smx_exec_run {
    const smx_exec_opts *x;
    const smx_exec_callbacks *cb;
    smx_exec_events xev;
    smx_result *result;
    smx_conn *conn;                 /* the owner's: valid while the run is */
    smx_exec *exec;                 /* NULL before it starts and once done */
    int stepping;                   /* a command list, or sudo: one exec per step */
    size_t step;                    /* the step running */
    smx_exec_opts step_opts;
    smx_result *scratch;
    uint64_t step_start;
    int step_wants_tty;
    void (*finished)(struct smx_exec_run *run);   /* over: the status is in result */
    void *ud;                       /* the owner's */
} smx_exec_run;

void smx_exec_run_init(smx_exec_run *run, const smx_exec_opts *x, const smx_exec_callbacks *cb,
                       smx_result *r, void (*finished)(smx_exec_run *run), void *ud);
/* Starts it on c (ready). 0, or SMX_ENOMEM (nothing started; finished is not called). */
int smx_exec_run_start(smx_exec_run *run, smx_conn *c);
/* As smx_exec_cancel for what runs now. */
void smx_exec_run_cancel(smx_exec_run *run, const char *why);
/* Frees what the run holds (not the result). */
void smx_exec_run_free(smx_exec_run *run);

/* engine/job_copy.c: an smx_copy's transfer to one host (the SFTP channel, its items, the transfer
 * timer, run-script's exec) on a connection the run does not own. Used by the copy job (its own
 * connection) and by links (smx_link_copy: copy items in turn with exec items on one). */
typedef struct smx_copy_run smx_copy_run;

/* copy and cb borrowed, r the owner's (marked as a copy's). finished: the run is over (all its
 * channels and handles closed), the owner frees it then; never called from inside
 * smx_copy_run_start. NULL when out of memory. */
smx_copy_run *smx_copy_run_new(smx_copy *copy, const smx_exec_callbacks *cb, smx_result *r,
                               void (*finished)(void *ud), void *ud);
/* Starts it on c (ready, not ended). 0, or SMX_ENOMEM (nothing started; finished is not
 * called). */
int smx_copy_run_start(smx_copy_run *run, smx_conn *c);
/* The owner's connection ended (its `ended` event), or is closed and gone (`closed`): the run
 * ends what is left of it, and never touches the connection after the latter. */
void smx_copy_run_conn_ended(smx_copy_run *run);
void smx_copy_run_conn_closed(smx_copy_run *run);
/* SIGINT/SIGTERM: the file in flight cleans up within the grace; again: the connection is
 * failed. */
void smx_copy_run_cancel(smx_copy_run *run, const char *why);
/* The result's last touches once the run is over: a connection lost while moving files is a
 * transfer's failure (stage sftp), the copy's own time, ok. */
void smx_copy_run_settle(smx_copy_run *run);
/* Frees a run that is over or never started (not its result). NULL is fine. */
void smx_copy_run_free(smx_copy_run *run);

#endif
