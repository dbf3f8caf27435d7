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
 * the pipe), or NULL (see smx_pipe_attach). Nothing is read from it until the channel is open. */
smx_pipe *smx_pipe_new(uv_stream_t *stream, smx_pipe_done_cb done, void *ud);
/* Opens the channel on c with open(ch, arg) and starts moving bytes once it is open. On refusal
 * done() gets the reason. */
void smx_pipe_open(smx_pipe *p, smx_conn *c, smx_pipe_open_fn open, void *arg);
/* Carries a channel the server opened (an smx_inbound_fn's): bytes move at once. */
void smx_pipe_adopt(smx_pipe *p, smx_conn *c, ssh_channel ch);
/* Optional: told once when the channel is open (before any byte moves). */
void smx_pipe_on_opened(smx_pipe *p, void (*cb)(smx_pipe *p, void *ud));
/* Opens a session channel on c and runs spec's command (exec) or subsystem on it; bytes move
 * once the command is started. Its stderr is dropped and its exit status ignored: the stream
 * carries its stdin/stdout only (docker system dial-stdio, netcat-style relays). spec is the
 * caller's and must outlive the pipe. 0 or SMX_ENOMEM. */
struct smx_sessreq_spec;
int smx_pipe_open_session(smx_pipe *p, smx_conn *c, const struct smx_sessreq_spec *spec);
/* Optional: the channel could not be opened (code SMX_ECHANNEL: the server refused it, why is the
 * connection layer's text; SMX_ECLOSED: the connection ended first). Return 1 to keep the pipe
 * (the stream stays open; the owner calls smx_pipe_open* again, e.g. on another connection), 0
 * to end it with that error. */
typedef int (*smx_pipe_refused_fn)(smx_pipe *p, int code, const char *why, void *ud);
void smx_pipe_on_refused(smx_pipe *p, smx_pipe_refused_fn cb);
/* A pipe made with a NULL stream carries its channel before the stream exists (an outbound
 * connect in progress): channel data waits in libssh meanwhile (our window closes behind it)
 * until smx_pipe_attach gives it the connected stream. Ending such a pipe calls done at once. */
void smx_pipe_attach(smx_pipe *p, uv_stream_t *stream);
/* Before the attach: called (outside libssh's callbacks) once the channel is open and again
 * whenever channel data is waiting; it reads what it wants with smx_pipe_read_early (a SOCKS
 * request arriving over the channel), the rest goes to the stream. smx_pipe_abort from here
 * ends the pipe when the callback has returned. */
typedef void (*smx_pipe_early_fn)(smx_pipe *p, void *ud);
void smx_pipe_on_early_data(smx_pipe *p, smx_pipe_early_fn cb);
/* Up to len bytes of the channel's data; 0 when none is waiting, -1 after the attach or once the
 * channel is gone. */
int smx_pipe_read_early(smx_pipe *p, void *buf, size_t len);
/* Bytes already read from the stream (before the pipe took it over), sent to the channel first
 * once it is open. Before the open only; at most 64 KiB. 0 or -1. */
int smx_pipe_preload(smx_pipe *p, const void *data, size_t len);
/* Writes a few bytes to the open channel outside the stream's flow (a SOCKS reply to a client at
 * the far end). 0, or -1 when the channel is not open or did not take them all. */
int smx_pipe_send(smx_pipe *p, const void *data, size_t len);
/* Ends the pipe at once (both sides closed); done is called. */
void smx_pipe_abort(smx_pipe *p, const char *why);
const smx_pipe_stats *smx_pipe_get_stats(const smx_pipe *p);

#endif
