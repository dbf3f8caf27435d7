/* Global requests (RFC 4254 section 4) of one session, one at a time: libssh keeps a single
 * pending global request per session, and a second one sent while the first is unanswered gets
 * the first one's answer and is never sent. Every sender (keepalives, tcpip-forward,
 * streamlocal-forward@openssh.com, ...) queues here instead, and each gets its own answer. */
#ifndef SSHMUX_GLOBALREQ_H
#define SSHMUX_GLOBALREQ_H

#include <stddef.h>

#include "list.h"

struct smx_session;
typedef struct smx_global_req smx_global_req;

/* status: 0 accepted, SMX_ECHANNEL refused by the server, SMX_ECLOSED the session ended first.
 * data/len: the request-specific data of the server's SUCCESS (RFC 4254 4: tcpip-forward to port
 * 0 answers with the port it bound), valid during the call only; NULL/0 when there is none. */
typedef void (*smx_global_cb)(void *ud, int status, const void *data, size_t len);

/* Queues `name` with `len` bytes of request-specific data (already in SSH wire format). With
 * want_reply 0 the callback runs once it is sent. Returns the request (for smx_global_req_cancel)
 * or NULL on ENOMEM. */
smx_global_req *smx_session_global_request(struct smx_session *s, const char *name,
                                           const void *data, size_t len, int want_reply,
                                           smx_global_cb cb, void *ud);
/* The owner of ud is going away: its callback will not run (the request itself, once sent, still
 * takes its turn: its answer must be collected before the next one goes). */
void smx_global_req_cancel(smx_global_req *r);

/* For the session: sends the head of the queue and collects answers; on every READY step. */
void smx_globalreqs_drive(struct smx_session *s);
/* For the session, closing while still connected: requests that want no answer (the
 * cancel-tcpip-forward of a -R listener) go out before its DISCONNECT, when nothing is
 * outstanding. */
void smx_globalreqs_send_unanswered(struct smx_session *s);
/* For the session: it ended; every queued callback gets SMX_ECLOSED. */
void smx_globalreqs_fail_all(struct smx_session *s);
int smx_globalreqs_pending(const struct smx_session *s);

#endif
