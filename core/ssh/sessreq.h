/* The requests that start a session channel (RFC 4254 section 6), one shared sequence for every
 * application that runs something remotely (exec, shells, subsystems such as sftp):
 *
 *   [pty-req with terminal type, size and modes] -> [env, one at a time] -> exec | shell | subsystem
 *
 * A channel has one pending request at a time (libssh answers a second with the first's result),
 * so each is re-issued until it is answered: smx_sessreq_step from the channel's ops->drive. An
 * env request the server refuses (AcceptEnv) is not an error: for exec the variables then go on
 * the command line (`K='v'; export K; cmd`), which every POSIX shell reads. Requests made while
 * the command runs (window-change, signal) need no answer. */
#ifndef SSHMUX_SESSREQ_H
#define SSHMUX_SESSREQ_H

#include <libssh/libssh.h>
#include <stddef.h>

#include "error.h"
#include "strvec.h"

enum smx_sessreq_kind { SMX_SESSREQ_EXEC, SMX_SESSREQ_SHELL, SMX_SESSREQ_SUBSYSTEM };

typedef struct smx_sessreq_spec {
    enum smx_sessreq_kind kind;
    const char *command;            /* exec: the command; subsystem: its name */
    int pty;
    const char *term;               /* NULL: "xterm" */
    int cols, rows;                 /* 0: 80 x 24 */
    const unsigned char *modes;     /* encoded terminal modes, or NULL */
    size_t modes_len;
    const smx_strvec *env;          /* "K=V" strings, or NULL */
} smx_sessreq_spec;

enum smx_sessreq_state {
    SMX_SESSREQ_PTY,
    SMX_SESSREQ_ENV,
    SMX_SESSREQ_START,
    SMX_SESSREQ_STARTED,
    SMX_SESSREQ_REFUSED
};

typedef struct smx_sessreq {
    const smx_sessreq_spec *spec;   /* the caller's; outlives the sequence */
    enum smx_sessreq_state state;
    size_t env_pos;
    int env_refused;                /* ... so the variables went on the command line */
    char *command;                  /* what the exec request sends */
    const char *refused;            /* the request refused ("exec request", ...), or NULL */
} smx_sessreq;

/* 0 or SMX_ENOMEM. */
int smx_sessreq_init(smx_sessreq *r, const smx_sessreq_spec *spec);
void smx_sessreq_free(smx_sessreq *r);
/* Advances on an open session channel: 0 while a request is pending, 1 once the exec/shell/
 * subsystem request is accepted, SMX_ECHANNEL when one was refused (r->refused says which;
 * libssh's error says why), SMX_ECLOSED when the connection went. */
int smx_sessreq_step(smx_sessreq *r, ssh_channel ch);
/* After SMX_ECHANNEL/SMX_ECLOSED: "exec request refused: <libssh's reason>". */
void smx_sessreq_refusal(const smx_sessreq *r, ssh_channel ch, char *out, size_t len);

#endif
