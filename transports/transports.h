/* The transports a session can connect through, one file each, chosen per host by
 * smx_transport_make from the table in transports/transports.c:
 *   jump.c     ProxyJump: a direct-tcpip channel through the chain's last hop
 *   command.c  ProxyCommand: a child process's stdin/stdout
 *   tcp.c      direct TCP (the default)
 * Adding one: write transports/NAME.c defining an smx_transport_kind, declare it below and add it
 * to the table (the first kind whose `applies` says yes is used). */
#ifndef SSHMUX_TRANSPORTS_H
#define SSHMUX_TRANSPORTS_H

#include "ctx.h"
#include "resolver.h"
#include "transport.h"

typedef struct smx_jumps smx_jumps;

/* What transports may need from the run that makes them. */
typedef struct smx_transport_env {
    uv_loop_t *loop;
    smx_resolver *resolver;
    smx_jumps *jumps;
} smx_transport_env;

typedef struct smx_transport_kind {
    const char *name;
    int (*applies)(const smx_hostcfg *hc);
    smx_transport *(*make)(const smx_transport_env *env, const smx_hostcfg *hc, smx_err *err);
} smx_transport_kind;

extern const smx_transport_kind smx_jump_transport_kind;
extern const smx_transport_kind smx_command_transport_kind;
extern const smx_transport_kind smx_tcp_transport_kind;

/* The transport for hc, or NULL with err set. */
smx_transport *smx_transport_make(const smx_transport_env *env, const smx_hostcfg *hc,
                                  smx_err *err);

/* transports/tcp.c */
smx_transport *smx_tcp_transport_new(uv_loop_t *loop, smx_resolver *resolver, const char *host,
                                     int port);

/* transports/command.c: runs `command` (copied) with /bin/sh -c in its own process group, stdin
 * and stdout one end of a socketpair, the session's fd the other. gate_key is "cmd:" + the
 * command. When the child exits, errmsg says how, with the end of its stderr; the session sees
 * EOF only after that. close signals the group (TERM, KILL after 1 s) and calls back once it is
 * reaped. */
smx_transport *smx_command_transport_new(uv_loop_t *loop, const char *command);

/* transports/jump.c: jump hosts (ProxyJump / -J). One connection per jump chain carries every
 * target behind it as direct-tcpip channels, each bridged to a socketpair whose other end is the
 * target session's fd. No threads (libssh's own ProxyJump starts one per hop), and 200 targets
 * through one bastion are one TCP connection to it.
 *
 * A chain "a,b,c" is the jump host c reached through "a,b": hop c's settings come from the
 * resolver for c, with its ProxyJump set to "a,b", so every hop is built by the same code,
 * recursively (its session asks ctx's transport factory, which comes back here). */
typedef int (*smx_hop_resolver)(void *ud, const char *chain, smx_hostcfg **hops, size_t *n,
                                smx_err *err);
typedef struct smx_jumps_opts {
    smx_ctx *ctx;
    smx_hop_resolver resolve;   /* ProxyJump chain -> the settings of each hop */
    int (*busy)(void *ud);      /* does the run still have work (keep idle jump hosts)? */
    void *ud;
} smx_jumps_opts;
smx_jumps *smx_jumps_new(const smx_jumps_opts *o);
/* --proxy-password-env & co.: the first hop's password (the caller's; outlives the registry). */
void smx_jumps_set_first_hop_password(smx_jumps *j, const char *pw);
/* Closes jump connections nobody uses any more (called when the run has no work left). */
void smx_jumps_close_idle(smx_jumps *j);
/* Frees the registry; its jump hosts free themselves once their connections have closed. */
void smx_jumps_free(smx_jumps *j);
smx_transport *smx_jump_transport_new(smx_jumps *j, const char *chain, const char *host,
                                      int port, smx_err *err);

#endif
