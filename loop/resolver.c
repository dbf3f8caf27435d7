#include "resolver.h"

#include <stdlib.h>
#include <string.h>

#define RESOLVER_BUCKETS 4096

typedef struct smx_resolve_entry {
    struct smx_resolve_entry *next;   /* bucket chain */
    smx_resolver *owner;              /* NULL once the resolver is freed while we are in flight */
    char *host;
    uv_getaddrinfo_t gai;
    int pending;
    int status;
    struct addrinfo *ai;
    smx_resolve_req *waiters;
} smx_resolve_entry;

struct smx_resolver {
    uv_loop_t *loop;
    smx_resolve_entry *buckets[RESOLVER_BUCKETS];
};

static unsigned resolver_hash(const char *s)
{
    unsigned h = 2166136261u;   /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h % RESOLVER_BUCKETS;
}

smx_resolver *smx_resolver_new(uv_loop_t *loop)
{
    smx_resolver *r = calloc(1, sizeof *r);
    if (r)
        r->loop = loop;
    return r;
}

static void resolve_entry_free(smx_resolve_entry *e)
{
    if (e->ai)
        uv_freeaddrinfo(e->ai);
    free(e->host);
    free(e);
}

void smx_resolver_free(smx_resolver *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < RESOLVER_BUCKETS; i++) {
        smx_resolve_entry *e = r->buckets[i];
        while (e) {
            smx_resolve_entry *next = e->next;
            if (e->pending) {
                e->owner = NULL;     /* freed by its completion callback */
                e->waiters = NULL;
            } else {
                resolve_entry_free(e);
            }
            e = next;
        }
    }
    free(r);
}

static void resolve_notify(smx_resolve_entry *e)
{
    smx_resolve_req *req = e->waiters;
    e->waiters = NULL;
    while (req) {
        smx_resolve_req *next = req->next;
        req->entry = NULL;
        req->next = NULL;
        req->cb(req, e->status, e->ai);
        req = next;
    }
}

static void resolve_on_done(uv_getaddrinfo_t *gai, int status, struct addrinfo *ai)
{
    smx_resolve_entry *e = gai->data;
    e->pending = 0;
    if (!e->owner) {
        if (ai)
            uv_freeaddrinfo(ai);
        free(e->host);
        free(e);
        return;
    }
    e->status = status;
    e->ai = ai;
    resolve_notify(e);
}

static smx_resolve_entry *resolve_entry_get(smx_resolver *r, const char *host, int *created)
{
    unsigned b = resolver_hash(host);
    for (smx_resolve_entry *e = r->buckets[b]; e; e = e->next)
        if (strcmp(e->host, host) == 0)
            return e;
    smx_resolve_entry *e = calloc(1, sizeof *e);
    if (!e || !(e->host = strdup(host))) {
        free(e);
        return NULL;
    }
    e->owner = r;
    e->gai.data = e;
    e->next = r->buckets[b];
    r->buckets[b] = e;
    *created = 1;
    return e;
}

static int resolve_start(smx_resolver *r, smx_resolve_entry *e)
{
    struct addrinfo hints = {0};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST;
    /* Numeric addresses: getaddrinfo answers without I/O, so do it here and skip the pool. */
    struct addrinfo *ai = NULL;
    if (getaddrinfo(e->host, NULL, &hints, &ai) == 0) {
        /* uv_freeaddrinfo is freeaddrinfo; the entry can own either. */
        e->ai = ai;
        e->status = 0;
        return 0;
    }
    hints.ai_flags = 0;
    e->pending = 1;
    int rc = uv_getaddrinfo(r->loop, &e->gai, resolve_on_done, e->host, NULL, &hints);
    if (rc < 0)
        e->pending = 0;
    return rc;
}

int smx_resolve(smx_resolver *r, smx_resolve_req *req, const char *host, smx_resolve_cb cb)
{
    int created = 0;
    smx_resolve_entry *e = resolve_entry_get(r, host, &created);
    if (!e)
        return UV_ENOMEM;
    if (created) {
        int rc = resolve_start(r, e);
        if (rc < 0) {
            e->status = rc;   /* cached failure: every host with this name fails the same way */
        }
    }
    req->cb = cb;
    req->next = NULL;
    if (e->pending) {
        req->entry = e;
        req->next = e->waiters;
        e->waiters = req;
        return 0;
    }
    req->entry = NULL;
    cb(req, e->status, e->ai);
    return 0;
}

void smx_resolve_cancel(smx_resolve_req *req)
{
    smx_resolve_entry *e = req->entry;
    if (!e)
        return;
    for (smx_resolve_req **pp = &e->waiters; *pp; pp = &(*pp)->next) {
        if (*pp == req) {
            *pp = req->next;
            break;
        }
    }
    req->entry = NULL;
    req->next = NULL;
}
