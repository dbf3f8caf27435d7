/* sshmux: the library's public interface. One libuv loop drives many non-blocking libssh
 * sessions; on it, jobs (exec today) run across a fleet. cmd/ is a client of exactly this. */
#ifndef SSHMUX_H
#define SSHMUX_H

#include <stddef.h>
#include <uv.h>

#include "error.h"
#include "fwdspec.h"
#include "hostlist.h"
#include "keyring.h"
#include "result.h"
#include "sshconfig.h"
#include "stage.h"
#include "strvec.h"
#include "target.h"

#define SSHMUX_VERSION "0.1.0"

typedef struct smx_engine smx_engine;

typedef struct smx_engine_opts {
    int fanout;                /* sessions at once (-f), default 256 */
    int connect_timeout_ms;    /* when the host has no ConnectTimeout; covers TCP+banner+kex */
    int auth_timeout_ms;
    int retries;               /* extra attempts after an early drop (MaxStartups) */
    int handshake_initial;     /* starting handshakes in flight per server address */
    int interactive;           /* may ask the operator (keyboard-interactive) on /dev/tty */
    int prompt_timeout_ms;     /* how long an operator question may stay unanswered */
    int verbose;               /* 2+: trace session and auth steps on stderr (-vv) */
    /* Non-fatal notices about a host (e.g. host key accepted under StrictHostKeyChecking=no). */
    void (*warn)(void *ud, const char *host, const char *msg);
    void *ud;
} smx_engine_opts;

void smx_engine_opts_default(smx_engine_opts *o);

typedef struct smx_exec_opts {
    const char *command;
    int pty;
    const smx_strvec *env;     /* "K=V" strings, or NULL */
    int timeout_ms;            /* -u: 0 = none */
    int kill_grace_ms;         /* between TERM and KILL on timeout */
    int capture;               /* keep stdout/stderr in the result (gather, --json) */
    size_t max_output;         /* per stream, when capturing */
} smx_exec_opts;

typedef struct smx_exec_callbacks {
    /* A complete line of output (without its newline), as it arrives. NULL: no streaming. */
    void (*on_line)(void *ud, const smx_result *r, int is_stderr, const char *line, size_t len);
    /* The host is done. The result is the callee's: free it with smx_result_destroy(). */
    void (*on_done)(void *ud, smx_result *r);
    void *ud;
} smx_exec_callbacks;

/* Credentials for the first jump hop, as paramiko-jump / the seeds' proxy_* options: a user,
 * key files or key content label (loaded into the keyring), and a password. */
typedef struct smx_jump_overrides {
    const char *user;
    smx_strvec identityfiles;
    const char *password;
} smx_jump_overrides;

int smx_engine_new(smx_engine **out, uv_loop_t *loop, const smx_engine_opts *o);
/* The ssh_config that jump hops are resolved against (must outlive the engine's run). */
void smx_engine_set_config(smx_engine *e, const smx_config *cfg);
/* Takes a copy of the first-hop credentials. */
int smx_engine_set_jump_overrides(smx_engine *e, const smx_jump_overrides *jo);
int smx_engine_resolve_hops(smx_engine *e, const char *chain, smx_hostcfg **hops, size_t *n,
                            smx_err *err);
void smx_engine_free(smx_engine *e);
smx_keyring *smx_engine_keyring(smx_engine *e);
int smx_engine_set_password(smx_engine *e, const char *pw, size_t len);
void smx_engine_use_agent(smx_engine *e, int on);

/* Queues one host. hc is taken over (freed by the engine); password (from an ssh:// URL) is
 * copied. The exec options and callbacks must outlive the run. */
int smx_engine_add_exec(smx_engine *e, const char *target, smx_hostcfg *hc, const char *password,
                        const smx_exec_opts *x, const smx_exec_callbacks *cb);
/* Stops the run: hosts not started yet finish as canceled (`why`), running ones are closed
 * (their results say `why`). Safe from a signal watcher on the loop. */
void smx_engine_cancel(smx_engine *e, const char *why);
/* Runs until every queued host is done. Hosts added while it runs start at once (fanout
 * allowing). */
int smx_engine_run(smx_engine *e);
unsigned smx_engine_hostkeys_unverified(const smx_engine *e);
unsigned smx_engine_hostkeys_added(const smx_engine *e);

/* ---- forwarding ------------------------------------------------------------------------ */

/* One host's local forwards (-L): listeners bound when added, served over one connection. */
typedef struct smx_forward smx_forward;

typedef struct smx_forward_opts {
    const smx_fwd_spec *specs;      /* as parsed from -L; bound in order */
    size_t nspecs;
    unsigned sock_mode;             /* permissions of Unix listener sockets (0600) */
    const smx_exec_opts *command;   /* run this over the same connection while forwarding (as
                                     * `ssh -L ... host cmd`); its end ends the forwards. NULL:
                                     * forward until the connection ends or the run is canceled */
} smx_forward_opts;

typedef struct smx_forward_callbacks {
    /* Connected: the listeners serve. */
    void (*ready)(void *ud, smx_forward *f);
    /* A forwarded connection ended; err NULL on a clean end, else why. */
    void (*link_ended)(void *ud, smx_forward *f, const char *listener, const char *err);
    /* The command's output, line by line (when a command is given). */
    void (*on_line)(void *ud, const smx_result *r, int is_stderr, const char *line, size_t len);
    /* Everything is closed: the result (the connection's error, the command's status) is the
     * callee's (smx_result_destroy). The smx_forward is gone after this. */
    void (*on_done)(void *ud, smx_result *r);
    void *ud;
} smx_forward_callbacks;

/* Binds the listeners now (a port in use fails here, before anything connects) and queues the
 * host. hc is taken over on success; opts and cb must outlive the run. Returns 0, or a negative
 * code with err (SMX_EINVAL: a spec the listener cannot use). */
int smx_engine_add_forward(smx_engine *e, const char *target, smx_hostcfg *hc,
                           const char *password, const smx_forward_opts *opts,
                           const smx_forward_callbacks *cb, smx_forward **out, smx_err *err);
size_t smx_forward_listeners(const smx_forward *f);
/* The bound address of listener i ("127.0.0.1:43817" or the socket path), and what it reaches. */
const char *smx_forward_local(const smx_forward *f, size_t i);
const char *smx_forward_remote(const smx_forward *f, size_t i);
const char *smx_forward_host(const smx_forward *f);

void smx_result_destroy(smx_result *r);

#endif
