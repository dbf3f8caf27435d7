#include "fdwatch.h"

static void fdwatch_on_poll(uv_poll_t *p, int status, int events)
{
    smx_fdwatch *w = p->data;
    if (status < 0)
        w->events = 0;   /* libuv stops the handle when it reports an error */
    w->cb(w, status, events);
}

int smx_fdwatch_init(uv_loop_t *loop, smx_fdwatch *w, int fd, smx_fdwatch_cb cb, void *data)
{
    int rc = uv_poll_init(loop, &w->poll, fd);
    if (rc < 0)
        return rc;
    w->poll.data = w;
    w->fd = fd;
    w->events = 0;
    w->active = 1;
    w->cb = cb;
    w->data = data;
    return 0;
}

int smx_fdwatch_set(smx_fdwatch *w, int events)
{
    if (!w->active || events == w->events)
        return 0;
    w->events = events;
    if (events == 0)
        return uv_poll_stop(&w->poll);
    return uv_poll_start(&w->poll, events, fdwatch_on_poll);
}

void smx_fdwatch_close(smx_fdwatch *w, uv_close_cb close_cb)
{
    if (!w->active)
        return;
    w->active = 0;
    uv_poll_stop(&w->poll);
    uv_close((uv_handle_t *)&w->poll, close_cb);
}
