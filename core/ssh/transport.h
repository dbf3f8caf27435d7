/* A transport gives a session a connected byte stream as a file descriptor that libssh can drive
 * (SSH_OPTIONS_FD). The session knows only this interface; the implementations live in
 * transports/, one file each, and sessions get theirs from the factory in smx_ctx. Direct TCP is
 * one; a direct-tcpip channel through a jump session and a stdio bridge to a child process
 * (ProxyCommand) are others: each hands libssh one end of a socketpair.
 *
 * Two steps, so the session can queue for a handshake slot in between:
 *   prepare: find where we are going (DNS for TCP); yields gate_key, the server identity that
 *            MaxStartups-style limits apply to.
 *   connect: produce the connected fd, watched by `watch` (one uv_poll per fd, owned here; the
 *            session re-points watch.cb at itself once connected). */
#ifndef SSHMUX_TRANSPORT_H
#define SSHMUX_TRANSPORT_H

#include <uv.h>

#include "error.h"
#include "fdwatch.h"

typedef struct smx_transport smx_transport;
/* status: 0 or a negative SMX_* code; on failure smx_transport_error(t) says why. */
typedef void (*smx_transport_cb)(smx_transport *t, int status);
typedef void (*smx_transport_close_cb)(void *data);   /* gets t->data; t is gone */

typedef struct smx_transport_vtbl {
    const char *name;
    int (*prepare)(smx_transport *t, smx_transport_cb cb);
    int (*connect)(smx_transport *t, smx_transport_cb cb);
    /* Abandons in-flight work, closes the fd and watch, frees t, then calls cb(t->data) (cb may be
     * NULL; it may run before close returns). */
    void (*close)(smx_transport *t, smx_transport_close_cb cb);
    /* Optional: called each time the session is about to let libssh read the fd. */
    void (*before_read)(smx_transport *t);
} smx_transport_vtbl;

struct smx_transport {
    const smx_transport_vtbl *vt;
    uv_loop_t *loop;
    void *data;                /* the owner's */
    int fd;                    /* -1 until connected */
    smx_fdwatch watch;         /* valid once connected (watch.active) */
    char gate_key[128];        /* set by prepare */
    char peer[128];            /* "addr:port" we connected to, for messages */
    char *errmsg;              /* NULL until it fails: see smx_transport_set_error */
    int error_stage;           /* enum smx_stage value of where it failed (core/base/result.h) */
    int error_hop;             /* 1-based jump hop that failed, 0 for none (set by jump transports) */
};

/* Why it failed, in SMX_MSG_MAX bytes allocated on first use (NULL only when out of memory).
 * Each implementation frees it with smx_transport_free_error when it frees itself. */
char *smx_transport_errbuf(smx_transport *t);
void smx_transport_set_error(smx_transport *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
const char *smx_transport_error(const smx_transport *t);   /* "" when none */
void smx_transport_free_error(smx_transport *t);

static inline int smx_transport_prepare(smx_transport *t, smx_transport_cb cb)
{
    return t->vt->prepare(t, cb);
}
static inline int smx_transport_connect(smx_transport *t, smx_transport_cb cb)
{
    return t->vt->connect(t, cb);
}
static inline void smx_transport_before_read(smx_transport *t)
{
    if (t->vt->before_read)
        t->vt->before_read(t);
}
static inline void smx_transport_close(smx_transport *t, smx_transport_close_cb cb)
{
    t->vt->close(t, cb);
}

#endif
