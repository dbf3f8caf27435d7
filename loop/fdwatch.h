/* Watching one file descriptor on the loop: readable always, writable only on request. libssh
 * reports "I have bytes queued" through ssh_get_status(SSH_WRITE_PENDING); watching writable all
 * the time would spin, so the owner asks for it exactly while bytes are queued. */
#ifndef SSHMUX_FDWATCH_H
#define SSHMUX_FDWATCH_H

#include <uv.h>

typedef struct smx_fdwatch smx_fdwatch;
typedef void (*smx_fdwatch_cb)(smx_fdwatch *w, int status, int events);

struct smx_fdwatch {
    uv_poll_t poll;
    int fd;
    int events;          /* UV_READABLE | UV_WRITABLE currently asked for */
    int active;
    smx_fdwatch_cb cb;
    void *data;
};

int smx_fdwatch_init(uv_loop_t *loop, smx_fdwatch *w, int fd, smx_fdwatch_cb cb, void *data);
/* Changes the interest set only when it differs (epoll_ctl is a syscall). */
int smx_fdwatch_set(smx_fdwatch *w, int events);
/* Stops watching and closes the uv handle; close_cb runs on a later loop iteration. */
void smx_fdwatch_close(smx_fdwatch *w, uv_close_cb close_cb);

#endif
