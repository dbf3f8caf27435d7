#include "agent.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "error.h"
#include "list.h"

#define AGENTC_REQUEST_IDENTITIES 11
#define AGENT_IDENTITIES_ANSWER 12
#define AGENTC_SIGN_REQUEST 13
#define AGENT_SIGN_RESPONSE 14

#define AGENT_MAX_MSG (256 * 1024)   /* OpenSSH's own limit on an agent message */
#define AGENT_MAX_KEYS 1024
/* Listing identities never needs a human: an agent that has not answered by then is wedged.
 * Sign requests get no clock here (a confirmation prompt or a token touch may take a while):
 * the waiting session's auth timeout bounds them. */
#define AGENT_LIST_TIMEOUT_MS 5000

enum agent_state { AGENT_IDLE, AGENT_CONNECTING, AGENT_LISTING, AGENT_READY, AGENT_FAILED };

typedef struct agent_req {
    smx_list node;             /* on the agent's in-flight queue or its list waiters */
    smx_agent_waiter *w;       /* NULL once canceled: the answer is dropped */
    smx_agent_cb cb;
    int type;                  /* the request's message type */
} agent_req;

struct smx_agent {
    smx_agent *next;
    char *path;
    enum agent_state state;
    uv_pipe_t pipe;
    uv_connect_t connect_req;
    uv_timer_t timer;
    int handles;               /* open uv handles (pipe, timer): freed when both closed */
    int closing, reading;
    smx_list inflight;         /* requests on the wire, in the agent's answering order */
    smx_list list_waiters;     /* waiting for the identity list (not yet on the wire) */
    unsigned char *in;         /* partial message being read */
    size_t in_len, in_cap;
    ssh_key *keys;
    int nkeys;
    char error[SMX_MSG_MAX];
};

/* ---- teardown ---------------------------------------------------------------------------- */

static void agent_on_handle_closed(uv_handle_t *h)
{
    smx_agent *a = h->data;
    if (--a->handles > 0)
        return;
    for (int i = 0; i < a->nkeys; i++)
        ssh_key_free(a->keys[i]);
    free(a->keys);
    free(a->in);
    free(a->path);
    free(a);
}

/* Answers and frees a detached list of requests (status 0: the identity list is in). */
static void agent_finish_reqs(smx_list *reqs, int status)
{
    while (!smx_list_empty(reqs)) {
        agent_req *r = smx_list_entry(reqs->next, agent_req, node);
        smx_list_remove(&r->node);
        smx_agent_waiter *w = r->w;
        if (w) {
            w->req = NULL;
            r->cb(w, status, NULL, 0);
        }
        free(r);
    }
}

/* Fails everything waiting and stops using this agent for the rest of the run. */
static void agent_fail(smx_agent *a, const char *why)
{
    if (a->state == AGENT_FAILED)
        return;
    a->state = AGENT_FAILED;
    snprintf(a->error, sizeof a->error, "ssh-agent at %s: %s", a->path, why);
    uv_timer_stop(&a->timer);
    if (a->reading) {
        uv_read_stop((uv_stream_t *)&a->pipe);
        a->reading = 0;
    }
    /* detach the lists first: a callback may ask again (and fails at once) */
    smx_list inflight, lists;
    smx_list_init(&inflight);
    smx_list_init(&lists);
    smx_list_splice(&inflight, &a->inflight);
    smx_list_splice(&lists, &a->list_waiters);
    agent_finish_reqs(&inflight, SMX_EIO);
    agent_finish_reqs(&lists, SMX_EIO);
}

struct smx_agents {
    uv_loop_t *loop;
    smx_agent *head;
};

smx_agents *smx_agents_new(uv_loop_t *loop)
{
    smx_agents *as = calloc(1, sizeof *as);
    if (as)
        as->loop = loop;
    return as;
}

void smx_agents_free(smx_agents *as)
{
    if (!as)
        return;
    smx_agents_close_all(as);
    free(as);
}

void smx_agents_close_all(smx_agents *as)
{
    smx_agent *a = as->head;
    as->head = NULL;
    while (a) {
        smx_agent *next = a->next;
        agent_fail(a, "closed");
        a->closing = 1;
        uv_close((uv_handle_t *)&a->pipe, agent_on_handle_closed);
        uv_close((uv_handle_t *)&a->timer, agent_on_handle_closed);
        a = next;
    }
}

/* ---- wire ------------------------------------------------------------------------------- */

static uint32_t get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put_u32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* Reads an SSH string at *p (bounded by end); NULL if it does not fit. */
static const unsigned char *get_string(const unsigned char **p, const unsigned char *end,
                                       uint32_t *len)
{
    if (end - *p < 4)
        return NULL;
    uint32_t n = get_u32(*p);
    if ((size_t)(end - *p - 4) < n)
        return NULL;
    const unsigned char *s = *p + 4;
    *p += 4 + n;
    *len = n;
    return s;
}

typedef struct agent_write {
    uv_write_t req;
    smx_agent *agent;
    unsigned char data[];
} agent_write;

static void agent_on_written(uv_write_t *req, int status)
{
    agent_write *w = (agent_write *)req;
    smx_agent *a = w->agent;
    free(w);
    if (status < 0 && status != UV_ECANCELED)
        agent_fail(a, uv_strerror(status));
}

static void agent_on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);

static void agent_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    smx_agent *a = h->data;
    if (a->in_cap - a->in_len < 4096) {
        size_t cap = a->in_cap ? a->in_cap * 2 : 8192;
        unsigned char *in = realloc(a->in, cap);
        if (!in) {
            *buf = uv_buf_init(NULL, 0);   /* libuv reports UV_ENOBUFS to agent_on_read */
            return;
        }
        a->in = in;
        a->in_cap = cap;
    }
    *buf = uv_buf_init((char *)a->in + a->in_len, (unsigned)(a->in_cap - a->in_len));
}

/* Sends one message (type + body) and queues r for its answer. */
static int agent_send(smx_agent *a, agent_req *r, const unsigned char *body, size_t len)
{
    agent_write *w = malloc(sizeof *w + 5 + len);
    if (!w)
        return SMX_ENOMEM;
    w->agent = a;
    put_u32(w->data, (uint32_t)(len + 1));
    w->data[4] = (unsigned char)r->type;
    if (len)
        memcpy(w->data + 5, body, len);
    uv_buf_t b = uv_buf_init((char *)w->data, (unsigned)(5 + len));
    int rc = uv_write(&w->req, (uv_stream_t *)&a->pipe, &b, 1, agent_on_written);
    if (rc < 0) {
        free(w);
        return SMX_EIO;
    }
    smx_list_append(&a->inflight, &r->node);
    if (!a->reading) {
        a->reading = 1;
        uv_read_start((uv_stream_t *)&a->pipe, agent_alloc, agent_on_read);
    }
    return 0;
}

static agent_req *agent_req_new(smx_agent_waiter *w, smx_agent_cb cb, int type)
{
    agent_req *r = calloc(1, sizeof *r);
    if (r) {
        r->w = w;
        r->cb = cb;
        r->type = type;
    }
    return r;
}

/* ---- answers ---------------------------------------------------------------------------- */

static int agent_parse_identities(smx_agent *a, const unsigned char *p, const unsigned char *end)
{
    if (end - p < 4)
        return -1;
    uint32_t n = get_u32(p);
    p += 4;
    if (n > AGENT_MAX_KEYS)
        return -1;
    a->keys = calloc(n ? n : 1, sizeof *a->keys);
    if (!a->keys)
        return -1;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t blen, clen;
        const unsigned char *blob = get_string(&p, end, &blen);
        if (!blob || !get_string(&p, end, &clen))
            return -1;
        ssh_string s = ssh_string_new(blen);
        ssh_key key = NULL;
        if (s && ssh_string_fill(s, blob, blen) == 0 && ssh_pki_import_pubkey_blob(s, &key) == 0)
            a->keys[a->nkeys++] = key;   /* key types libssh does not know are skipped */
        ssh_string_free(s);
    }
    return 0;
}

/* One complete answer for the request at the head of the queue. */
static void agent_dispatch(smx_agent *a, const unsigned char *msg, size_t len)
{
    if (smx_list_empty(&a->inflight)) {
        agent_fail(a, "answered a question nobody asked");
        return;
    }
    agent_req *r = smx_list_entry(a->inflight.next, agent_req, node);
    smx_list_remove(&r->node);
    int type = len ? msg[0] : -1;
    const unsigned char *p = msg + 1, *end = msg + len;
    if (r->type == AGENTC_REQUEST_IDENTITIES) {
        uv_timer_stop(&a->timer);
        free(r);
        if (type != AGENT_IDENTITIES_ANSWER || agent_parse_identities(a, p, end) < 0) {
            agent_fail(a, "malformed identity list");
            return;
        }
        a->state = AGENT_READY;
        smx_list waiters;
        smx_list_init(&waiters);
        smx_list_splice(&waiters, &a->list_waiters);
        agent_finish_reqs(&waiters, 0);
        return;
    }
    smx_agent_waiter *wt = r->w;
    smx_agent_cb cb = r->cb;
    free(r);
    if (!wt)
        return;   /* canceled */
    wt->req = NULL;
    uint32_t slen;
    const unsigned char *sig = type == AGENT_SIGN_RESPONSE ? get_string(&p, end, &slen) : NULL;
    if (sig)
        cb(wt, 0, sig, slen);
    else
        cb(wt, SMX_EAUTH, NULL, 0);   /* AGENT_FAILURE: refused (or a confirmation said no) */
}

static void agent_on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    smx_agent *a = s->data;
    if (n == 0)
        return;
    if (n < 0) {
        agent_fail(a, n == UV_EOF ? "closed the connection" : uv_strerror((int)n));
        return;
    }
    a->in_len += (size_t)n;
    size_t off = 0;
    while (a->state != AGENT_FAILED && a->in_len - off >= 4) {
        uint32_t mlen = get_u32(a->in + off);
        if (mlen > AGENT_MAX_MSG) {
            agent_fail(a, "message too long");
            return;
        }
        if (a->in_len - off - 4 < mlen)
            break;
        agent_dispatch(a, a->in + off + 4, mlen);
        off += 4 + mlen;
    }
    if (a->state == AGENT_FAILED)
        return;
    memmove(a->in, a->in + off, a->in_len - off);
    a->in_len -= off;
    if (smx_list_empty(&a->inflight) && a->reading) {
        a->reading = 0;   /* nothing asked: an idle agent must not keep the loop alive */
        uv_read_stop(s);
    }
}

/* ---- connection --------------------------------------------------------------------------- */

static void agent_on_list_timeout(uv_timer_t *t)
{
    smx_agent *a = t->data;
    agent_fail(a, "did not answer in 5 s");
}

static void agent_on_connected(uv_connect_t *req, int status)
{
    smx_agent *a = req->data;
    if (a->closing || a->state == AGENT_FAILED)
        return;
    if (status < 0) {
        agent_fail(a, uv_strerror(status));
        return;
    }
    agent_req *r = agent_req_new(NULL, NULL, AGENTC_REQUEST_IDENTITIES);
    if (!r) {
        agent_fail(a, "out of memory");
        return;
    }
    a->state = AGENT_LISTING;
    if (agent_send(a, r, NULL, 0) < 0) {
        free(r);
        agent_fail(a, "cannot send to it");
    }
}

static void agent_connect(smx_agent *a)
{
    a->state = AGENT_CONNECTING;
    a->connect_req.data = a;
    uv_timer_start(&a->timer, agent_on_list_timeout, AGENT_LIST_TIMEOUT_MS, 0);
    uv_pipe_connect(&a->connect_req, &a->pipe, a->path, agent_on_connected);
}

smx_agent *smx_agent_get(smx_agents *as, const char *path)
{
    for (smx_agent *a = as->head; a; a = a->next)
        if (strcmp(a->path, path) == 0)
            return a;
    smx_agent *a = calloc(1, sizeof *a);
    if (!a || !(a->path = strdup(path))) {
        free(a);
        return NULL;
    }
    smx_list_init(&a->inflight);
    smx_list_init(&a->list_waiters);
    uv_pipe_init(as->loop, &a->pipe, 0);
    uv_timer_init(as->loop, &a->timer);
    a->pipe.data = a->timer.data = a;
    a->handles = 2;
    a->next = as->head;
    as->head = a;
    return a;
}

int smx_agent_identities(smx_agent *a, smx_agent_waiter *w, smx_agent_cb cb)
{
    if (a->state == AGENT_READY)
        return a->nkeys;
    if (a->state == AGENT_FAILED)
        return SMX_EIO;
    agent_req *r = agent_req_new(w, cb, AGENTC_REQUEST_IDENTITIES);
    if (!r)
        return SMX_ENOMEM;
    smx_list_append(&a->list_waiters, &r->node);
    w->req = r;
    if (a->state == AGENT_IDLE)
        agent_connect(a);
    return SMX_AGENT_PENDING;
}

ssh_key smx_agent_key(const smx_agent *a, int i)
{
    return i >= 0 && i < a->nkeys ? a->keys[i] : NULL;
}

int smx_agent_sign(smx_agent *a, smx_agent_waiter *w, smx_agent_cb cb, ssh_key key,
                   const void *data, size_t len, unsigned flags)
{
    if (a->state != AGENT_READY)
        return SMX_EIO;
    ssh_string blob = NULL;
    if (ssh_pki_export_pubkey_blob(key, &blob) < 0)
        return SMX_ENOMEM;
    size_t blen = ssh_string_len(blob);
    size_t body_len = 4 + blen + 4 + len + 4;
    unsigned char *body = malloc(body_len);
    agent_req *r = agent_req_new(w, cb, AGENTC_SIGN_REQUEST);
    if (!body || !r || body_len > AGENT_MAX_MSG) {
        free(body);
        free(r);
        ssh_string_free(blob);
        return body_len > AGENT_MAX_MSG ? SMX_EINVAL : SMX_ENOMEM;
    }
    put_u32(body, (uint32_t)blen);
    memcpy(body + 4, ssh_string_data(blob), blen);
    put_u32(body + 4 + blen, (uint32_t)len);
    memcpy(body + 8 + blen, data, len);
    put_u32(body + 8 + blen + len, flags);
    ssh_string_free(blob);
    int rc = agent_send(a, r, body, body_len);
    free(body);
    if (rc < 0) {
        free(r);
        return rc;
    }
    w->req = r;
    return 0;
}

void smx_agent_cancel(smx_agent_waiter *w)
{
    if (w->req) {
        w->req->w = NULL;
        w->req = NULL;
    }
}

const char *smx_agent_error(const smx_agent *a)
{
    return a->error;
}
