/* Remote forwarding (-R): listeners the server opens for us (tcpip-forward, and
 * streamlocal-forward@openssh.com for Unix sockets, through the session's global-request queue),
 * whose connections arrive as channels the server opens (forwarded-tcpip,
 * forwarded-streamlocal@openssh.com). Each is accepted at once and piped to its local
 * destination, connected without blocking the loop (names through the run's resolver; every
 * address tried in turn); a destination that refuses closes that channel only. A listener
 * without a destination is a SOCKS 4/4a/5 proxy: the request arrives over the channel and is
 * connected from here.
 *
 * The port a listener got (port 0: the server picks) comes from the server's answer to that
 * request, never from "the last packet". Closing cancels every bound listener before the
 * connection goes, so the remote port is free again once sshmux exits. */
#ifndef SSHMUX_RFORWARD_H
#define SSHMUX_RFORWARD_H

#include <uv.h>

#include "conn.h"
#include "fwdspec.h"
#include "resolver.h"

typedef struct smx_rforwarder smx_rforwarder;

typedef struct smx_rforward_events {
    /* Listener i is bound on the server (err NULL; listen: "localhost:43567" or the socket path,
     * port: the bound TCP port, 0 for a socket) or was refused (err says why). */
    void (*bound)(void *ud, size_t i, const char *listen, int port, const char *err);
    /* A forwarded connection ended; err NULL on a clean end. */
    void (*conn_ended)(void *ud, const char *listener, const char *err);
    void *ud;
} smx_rforward_events;

smx_rforwarder *smx_rforwarder_new(uv_loop_t *loop, smx_resolver *resolver, smx_conn *conn,
                                   const smx_rforward_events *ev);
/* Adds listener (spec copied) to be requested by smx_rforwarder_start. Its index is the number
 * added before it. 0 or SMX_ENOMEM. */
int smx_rforward_add(smx_rforwarder *rf, const smx_fwd_spec *spec);
/* The connection is ready: asks the server for every listener. */
void smx_rforwarder_start(smx_rforwarder *rf);
/* Asks the server to cancel bound listeners (when the connection still serves), ends every
 * forwarded connection; cb(ud) once all is gone. */
void smx_rforwarder_close(smx_rforwarder *rf, void (*cb)(void *ud), void *ud);
/* The connection ended: nothing more can be asked of the server. */
void smx_rforwarder_conn_ended(smx_rforwarder *rf);

#endif
