#include "ttyprompt.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "list.h"

#define PROMPT_MAX_ANSWER 1024

typedef struct prompt_req {
    smx_list node;               /* on the prompter's queue */
    char *header;
    smx_strvec prompts;
    char *echo;
    int n;
    smx_prompt_cb cb;
    void *ud;
} prompt_req;

struct smx_prompter {
    uv_loop_t *loop;
    int fd;
    uv_poll_t poll;
    uv_timer_t timer;
    int timeout_ms;
    int closing;
    int open_handles;
    struct termios saved;
    int have_saved;
    smx_list queue;              /* its first request is the one being asked */
    int current;                 /* index of the prompt being read */
    smx_strvec answers;
    char buf[PROMPT_MAX_ANSWER];
    size_t len;
};

static void prompter_set_echo(smx_prompter *p, int echo)
{
    if (!p->have_saved)
        return;
    struct termios t = p->saved;
    if (!echo) {
        t.c_lflag &= ~(tcflag_t)ECHO;
        t.c_lflag |= ECHONL;
    }
    tcsetattr(p->fd, TCSANOW, &t);   /* never wait for output to drain */
}

static void prompter_write(smx_prompter *p, const char *s)
{
    size_t len = strlen(s);
    while (len > 0) {
        ssize_t n = write(p->fd, s, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;   /* a terminal that cannot take the prompt: the read will time out */
        s += n;
        len -= (size_t)n;
    }
}

static void prompter_start_next(smx_prompter *p);

static prompt_req *prompter_head(const smx_prompter *p)
{
    return smx_list_empty(&p->queue) ? NULL : smx_list_entry(p->queue.next, prompt_req, node);
}

static void prompter_finish(smx_prompter *p, int ok)
{
    prompt_req *r = prompter_head(p);
    uv_poll_stop(&p->poll);
    uv_timer_stop(&p->timer);
    if (p->have_saved)
        tcsetattr(p->fd, TCSANOW, &p->saved);
    explicit_bzero(p->buf, sizeof p->buf);
    p->len = 0;
    smx_list_remove(&r->node);
    r->cb(r->ud, ok ? &p->answers : NULL);
    smx_strvec_free_wipe(&p->answers);
    smx_strvec_free(&r->prompts);
    free(r->header);
    free(r->echo);
    free(r);
    if (!smx_list_empty(&p->queue) && !p->closing)
        prompter_start_next(p);
}

static void prompter_show_current(smx_prompter *p)
{
    prompt_req *r = prompter_head(p);
    prompter_set_echo(p, r->echo[p->current]);
    prompter_write(p, r->prompts.v[p->current]);
}

static void prompter_on_readable(uv_poll_t *h, int status, int events)
{
    smx_prompter *p = h->data;
    char c;
    for (;;) {
        ssize_t n = read(p->fd, &c, 1);
        if (n < 0 && errno == EAGAIN)
            return;
        if (n <= 0 || status < 0) {
            prompter_finish(p, 0);
            return;
        }
        if (c == '\r' || c == '\n') {
            p->buf[p->len] = '\0';
            smx_strvec_push(&p->answers, p->buf);
            explicit_bzero(p->buf, p->len);
            p->len = 0;
            if (++p->current == prompter_head(p)->n) {
                prompter_finish(p, 1);
                return;
            }
            prompter_show_current(p);
        } else if (p->len < sizeof p->buf - 1) {
            p->buf[p->len++] = c;
        }
    }
}

static void prompter_on_timeout(uv_timer_t *t)
{
    smx_prompter *p = t->data;
    prompter_write(p, "\n(no answer in time)\n");
    prompter_finish(p, 0);
}

static void prompter_start_next(smx_prompter *p)
{
    prompt_req *r = prompter_head(p);
    p->current = 0;
    p->len = 0;
    if (r->header && *r->header) {
        prompter_write(p, r->header);
        prompter_write(p, "\n");
    }
    if (r->n == 0) {
        prompter_finish(p, 1);
        return;
    }
    prompter_show_current(p);
    uv_poll_start(&p->poll, UV_READABLE, prompter_on_readable);
    uv_timer_start(&p->timer, prompter_on_timeout, (uint64_t)p->timeout_ms, 0);
}

smx_prompter *smx_prompter_new(uv_loop_t *loop, int timeout_ms)
{
    int fd = open("/dev/tty", O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return NULL;
    smx_prompter *p = calloc(1, sizeof *p);
    if (!p || uv_poll_init(loop, &p->poll, fd) < 0) {
        free(p);
        close(fd);
        return NULL;
    }
    p->loop = loop;
    smx_list_init(&p->queue);
    p->fd = fd;
    p->timeout_ms = timeout_ms;
    p->have_saved = tcgetattr(fd, &p->saved) == 0;
    uv_timer_init(loop, &p->timer);
    p->poll.data = p;
    p->timer.data = p;
    return p;
}

int smx_prompter_ask(smx_prompter *p, const char *header, const char *const *prompts,
                     const char *echo, int n, smx_prompt_cb cb, void *ud)
{
    prompt_req *r = calloc(1, sizeof *r);
    if (!r)
        return -1;
    r->header = strdup(header ? header : "");
    r->echo = malloc((size_t)n + 1);
    for (int i = 0; i < n; i++)
        smx_strvec_push(&r->prompts, prompts[i]);
    if (!r->header || !r->echo || r->prompts.n != (size_t)n) {
        smx_strvec_free(&r->prompts);
        free(r->header);
        free(r->echo);
        free(r);
        return -1;
    }
    memcpy(r->echo, echo, (size_t)n);
    r->n = n;
    r->cb = cb;
    r->ud = ud;
    smx_list_append(&p->queue, &r->node);
    if (prompter_head(p) == r)
        prompter_start_next(p);
    return 0;
}

static void prompter_on_closed(uv_handle_t *h)
{
    smx_prompter *p = h->data;
    if (--p->open_handles == 0) {
        close(p->fd);
        free(p);
    }
}

void smx_prompter_free(smx_prompter *p)
{
    if (!p)
        return;
    p->closing = 1;
    while (!smx_list_empty(&p->queue))
        prompter_finish(p, 0);
    p->open_handles = 2;
    uv_close((uv_handle_t *)&p->poll, prompter_on_closed);
    uv_close((uv_handle_t *)&p->timer, prompter_on_closed);
}
