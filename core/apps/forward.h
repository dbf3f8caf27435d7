/* Local listeners (TCP or Unix) whose every accepted connection becomes a pipe over a channel:
 * direct-tcpip or direct-streamlocal@openssh.com (-L), a session running a command (spec.command:
 * docker system dial-stdio), or direct-tcpip to what a SOCKS request names (-D). Listeners are
 * bound when added, so a port in use is an error before anything connects
 * (ExitOnForwardFailure). Links go to the owner's connection; when the server refuses a channel
 * there as a limit while it carries others, to more connections the owner opens (more_conn). */
#ifndef SSHMUX_FORWARD_H
#define SSHMUX_FORWARD_H

#include <uv.h>

#include "conn.h"
#include "fwdspec.h"

typedef struct smx_forwarder smx_forwarder;

typedef struct smx_forward_events {
    /* A forwarded connection ended; err is NULL on a clean end, else why (e.g. the remote side
     * refused the channel). */
    void (*conn_ended)(void *ud, const char *listener, const char *err);
    /* Optional: another connection to the same host, started (its channels queue until it is
     * ready); NULL when none can be had. The owner closes it (and calls
     * smx_forwarder_conn_gone once it ended). */
    smx_conn *(*more_conn)(void *ud);
    /* > 1: spread links over up to this many connections (more_conn opens them), each new
     * link on the one with the fewest open */
    int spread;
    void *ud;
} smx_forward_events;

smx_forwarder *smx_forwarder_new(uv_loop_t *loop, smx_conn *conn, const smx_forward_events *ev);
/* Binds and listens now. mode: permissions of a Unix listener socket (e.g. 0600). On success,
 * `local` (if not NULL) receives the bound address ("127.0.0.1:43817" or the path). */
int smx_forward_add(smx_forwarder *fw, const smx_fwd_spec *spec, unsigned mode, char *local,
                    size_t llen, smx_err *err);
/* Closes listeners and every forwarded connection, removes Unix sockets it created. cb(ud) runs
 * when all handles are closed. */
void smx_forwarder_close(smx_forwarder *fw, void (*cb)(void *ud), void *ud);
unsigned long smx_forwarder_active(const smx_forwarder *fw);
/* conn has ended: no new links go to it. */
void smx_forwarder_conn_gone(smx_forwarder *fw, smx_conn *conn);

#endif
