/* An SFTP v3 client as a channel application, driven by the loop: libssh's own SFTP code cannot
 * run on a non-blocking session (../shared/libssh-notes.md), so the protocol is spoken here on a
 * `subsystem sftp` channel.
 *
 * Requests are queued and written only as far as the server's window takes them (the rest waits
 * for `writable`); any number may be in flight, each answered through its own callback. A WRITE's
 * data is not copied: it is borrowed from the caller until it has been handed to libssh, and its
 * release function says so. Replies are parsed after each round of packets (outside libssh's
 * callbacks), so a reply callback may send new requests or close the client.
 *
 * One close path: smx_sftp_close fails every pending request (its callback gets NULL), releases
 * the channel and tells `closed` once nothing points at the client any more. */
#ifndef SSHMUX_SFTP_H
#define SSHMUX_SFTP_H

#include "conn.h"
#include "sftp_wire.h"

typedef struct smx_sftp smx_sftp;

typedef struct smx_sftp_events {
    /* Version exchanged (and limits@ asked, if offered): requests may be sent. */
    void (*ready)(void *ud);
    /* The channel failed or the server closed it (or the protocol broke): `why` names it. Pending
     * requests were failed first. Call smx_sftp_close. */
    void (*ended)(void *ud, int code, const char *why);
    /* The output queue drained below the low-water mark: more requests may go. May be NULL. */
    void (*writable)(void *ud);
    /* Closed and freed: the pointer is gone. */
    void (*closed)(void *ud);
    void *ud;
} smx_sftp_events;

/* A reply, or NULL when the client ended before one came. The reply's pointers are valid during
 * the call only. */
typedef void (*smx_sftp_cb)(void *ud, smx_sftp_reply *r);

/* Data a WRITE borrows: release(arg) is called once its bytes are handed to libssh (or dropped
 * when the client closes). */
typedef struct smx_sftp_data {
    const uint8_t *p[2];
    size_t len[2];
    void (*release)(void *arg);
    void *arg;
} smx_sftp_data;

/* Opens the channel on c (queued until c is ready). ev must outlive the client. */
smx_sftp *smx_sftp_start(smx_conn *c, const smx_sftp_events *ev);
void smx_sftp_close(smx_sftp *s);

/* Extension `name` offered by the server ("posix-rename@openssh.com", ...). */
int smx_sftp_has_ext(const smx_sftp *s, const char *name);
/* Largest READ and WRITE lengths: limits@openssh.com's when offered, else 32768. */
size_t smx_sftp_max_read(const smx_sftp *s);
size_t smx_sftp_max_write(const smx_sftp *s);
/* Bytes queued and not yet taken by libssh; requests awaiting a reply. */
size_t smx_sftp_queued(const smx_sftp *s);
/* Drops the requests not yet handed to libssh (a canceled transfer's WRITEs): each is answered
 * at once with a STATUS failure carrying `why`, as if the server had refused it. */
void smx_sftp_discard_unsent(smx_sftp *s, const char *why);
/* The error that ended the client, or "". */
const char *smx_sftp_error(const smx_sftp *s);

/* Builds a request: smx_sftp_begin returns the packet under construction (type and a fresh id
 * written), the caller appends its fields with smx_sftp_out_*, then smx_sftp_send queues it.
 * 0, or SMX_ENOMEM / SMX_ECLOSED (cb is not called then; data is released). */
smx_sftp_out *smx_sftp_begin(smx_sftp *s, uint8_t type);
int smx_sftp_send(smx_sftp *s, const smx_sftp_data *data, smx_sftp_cb cb, void *ud);
/* An SSH_FXP_EXTENDED request: begins the packet with the extension's name. */
smx_sftp_out *smx_sftp_begin_ext(smx_sftp *s, const char *name);

/* A request on one path (MKDIR: with empty attrs) or one handle, begun: the caller appends the
 * rest of its fields, then smx_sftp_send. */
smx_sftp_out *smx_sftp_begin_path(smx_sftp *s, uint8_t type, const char *path);
smx_sftp_out *smx_sftp_begin_handle(smx_sftp *s, uint8_t type, const uint8_t *h, size_t hlen);

/* Common requests on one path (OPEN's pflags and attrs; STAT/LSTAT/REMOVE/MKDIR/...). */
int smx_sftp_open(smx_sftp *s, const char *path, uint32_t pflags, const smx_sftp_attrs *a,
                  smx_sftp_cb cb, void *ud);
int smx_sftp_path_op(smx_sftp *s, uint8_t type, const char *path, smx_sftp_cb cb, void *ud);
int smx_sftp_handle_op(smx_sftp *s, uint8_t type, const uint8_t *h, size_t hlen, smx_sftp_cb cb,
                       void *ud);
int smx_sftp_read(smx_sftp *s, const uint8_t *h, size_t hlen, uint64_t off, uint32_t len,
                  smx_sftp_cb cb, void *ud);
int smx_sftp_write(smx_sftp *s, const uint8_t *h, size_t hlen, uint64_t off,
                   const smx_sftp_data *data, smx_sftp_cb cb, void *ud);

/* A STATUS reply's text: "PATH: permission denied" from the code, with the server's own
 * message where the code says only "failure". */
void smx_sftp_status_message(const smx_sftp_reply *r, const char *path, char *out, size_t len);

#endif
