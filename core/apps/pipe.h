/* A byte pipe between an SSH channel and a libuv stream (TCP or Unix socket, or one end of a
 * socketpair), with back-pressure both ways and half-close:
 *   stream -> channel: at most what the peer's window takes is written; the rest waits and the
 *     stream is not read until the channel says it can take more (write_wontblock).
 *   channel -> stream: data the stream cannot take yet is queued up to a high-water mark; past
 *     it the data callback leaves data in libssh, so our window to the peer stays shut, and we
 *     drain it ourselves once the stream catches up.
 *   EOF either way is passed on (channel EOF / shutdown(SHUT_WR)); the pipe ends when the channel
 *   is closed and everything read was delivered, or on an error either side.
 * Memory per pipe is bounded by one read buffer plus the high-water mark. */
#ifndef SSHMUX_PIPE_H
#define SSHMUX_PIPE_H

#include <uv.h>

#include "conn.h"

typedef struct smx_pipe smx_pipe;
/* The pipe is finished (err NULL on a clean end); it frees itself after this returns. */
typedef void (*smx_pipe_done_cb)(smx_pipe *p, const char *err, void *ud);
/* Issues the channel open on ch (re-called while it returns SSH_AGAIN). */
typedef int (*smx_pipe_open_fn)(ssh_channel ch, void *arg);

typedef struct smx_pipe_stats {
    uint64_t to_channel, to_stream;
} smx_pipe_stats;

/* Takes over `stream` (a connected uv_tcp_t/uv_pipe_t allocated with malloc; closed and freed by
 * the pipe). Nothing is read from it until the channel is open. */
smx_pipe *smx_pipe_new(uv_stream_t *stream, smx_pipe_done_cb done, void *ud);
/* Opens the channel on c with open(ch, arg) and starts moving bytes once it is open. On refusal
 * done() gets the reason. */
void smx_pipe_open(smx_pipe *p, smx_conn *c, smx_pipe_open_fn open, void *arg);
/* Carries a channel the server opened (an smx_inbound_fn's): bytes move at once. */
void smx_pipe_adopt(smx_pipe *p, smx_conn *c, ssh_channel ch);
/* Optional: told once when the channel is open (before any byte moves). */
void smx_pipe_on_opened(smx_pipe *p, void (*cb)(smx_pipe *p, void *ud));
/* Ends the pipe at once (both sides closed); done is called. */
void smx_pipe_abort(smx_pipe *p, const char *why);
const smx_pipe_stats *smx_pipe_get_stats(const smx_pipe *p);

#endif
