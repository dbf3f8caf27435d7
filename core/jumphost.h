/* Jump hosts (ProxyJump / -J): one connection per jump chain carries every target behind it as
 * direct-tcpip channels, each bridged to a socketpair whose other end is the target session's
 * fd. No threads (libssh's own ProxyJump starts one per hop), and 200 targets through one bastion
 * are one TCP connection to it.
 *
 * A chain "a,b,c" is the jump host c reached through "a,b": hop c's settings come from ssh_config
 * for c, with its ProxyJump set to "a,b", so every hop is built by the same code, recursively. */
#ifndef SSHMUX_JUMPHOST_H
#define SSHMUX_JUMPHOST_H

#include "sshmux.h"
#include "transport.h"

typedef struct smx_jumphost smx_jumphost;

/* The transport for a session whose settings say ProxyJump `chain`: a direct-tcpip channel to
 * host:port through the chain's last hop. NULL on ENOMEM or a malformed chain (err says why). */
smx_transport *smx_jump_transport_new(smx_engine *e, const char *chain, const char *host,
                                      int port, smx_err *err);
/* Closes jump connections nobody uses any more (called when the run has no work left). */
void smx_jumphosts_close_idle(smx_engine *e);

#endif
