/* A job is the work for one host: a session plus what runs on it. Exec is the first kind. */
#ifndef SSHMUX_JOB_H
#define SSHMUX_JOB_H

#include <libssh/callbacks.h>
#include <libssh/libssh.h>

#include "session.h"
#include "sshmux.h"

enum smx_exec_state {
    SMX_EXEC_IDLE,
    SMX_EXEC_OPEN,       /* session channel open pending */
    SMX_EXEC_PTY,        /* pty-req pending */
    SMX_EXEC_ENV,        /* env requests, one at a time (one pending request per channel) */
    SMX_EXEC_START,      /* exec request pending */
    SMX_EXEC_RUNNING,
    SMX_EXEC_KILLING,    /* timed out or canceled: TERM sent, KILL after the grace period */
    SMX_EXEC_DONE
};

struct smx_job {
    smx_job *next, *prev;           /* queue (next only), then the running list */
    smx_engine *engine;
    smx_session session;
    smx_hostcfg *hc;
    char *password;                 /* from an ssh:// URL; wiped on free */
    const smx_exec_opts *x;
    const smx_exec_callbacks *cb;
    smx_result *result;

    enum smx_exec_state st;
    ssh_channel ch;
    struct ssh_channel_callbacks_struct chcb;
    size_t env_pos;
    int env_refused;                /* server refused an env request: fall back to the command */
    char *command;                  /* what is sent in the exec request */
    uv_timer_t timer;               /* -u */
    smx_buf partial[2];             /* incomplete last line per stream (streaming mode) */
    int remote_closed, remote_eof;
    int canceled;                   /* smx_job_cancel calls so far */
    uint64_t t_exec;
};

smx_job *smx_exec_job_new(smx_engine *e, const char *target, smx_hostcfg *hc,
                          const char *password, const smx_exec_opts *x,
                          const smx_exec_callbacks *cb);
void smx_job_start(smx_job *job);
/* A job that never started: its result reports `why`, then it is freed. */
void smx_job_discard(smx_job *job, const char *why);
/* Stops a started job (SIGINT/SIGTERM): a command that may be running is ended as -u ends it
 * (TERM, then KILL and the channel closed after the grace; a second cancel skips the grace),
 * anything earlier fails at once at `stage`. The result says `why`. */
void smx_job_cancel(smx_job *job, enum smx_stage stage, const char *why);
/* A job that never started, freed with its result (engine teardown). */
void smx_job_free_unstarted(smx_job *job);

#endif
