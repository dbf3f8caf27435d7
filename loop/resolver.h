/* Name resolution on libuv's thread pool, cached per run: a fleet often names the same address
 * many times (aliases, shared bastions), and one lookup per distinct name is enough. Lookups of
 * the same name in flight are coalesced. Numeric addresses never leave the loop thread. */
#ifndef SSHMUX_RESOLVER_H
#define SSHMUX_RESOLVER_H

#include <netdb.h>
#include <uv.h>

typedef struct smx_resolver smx_resolver;
typedef struct smx_resolve_req smx_resolve_req;
/* status: 0, or a negative UV_EAI_* / UV_* code. ai is owned by the resolver (valid for the
 * resolver's lifetime). */
typedef void (*smx_resolve_cb)(smx_resolve_req *req, int status, const struct addrinfo *ai);

struct smx_resolve_req {
    smx_resolve_req *next;   /* waiters on the same entry */
    struct smx_resolve_entry *entry;
    smx_resolve_cb cb;
    void *data;
};

smx_resolver *smx_resolver_new(uv_loop_t *loop);
/* Frees cached results; lookups still in flight are detached and freed when they finish. */
void smx_resolver_free(smx_resolver *r);
/* Starts or joins a lookup. cb may run before this returns (cached or numeric names).
 * Returns 0 or a negative libuv error (then cb is never called). */
int smx_resolve(smx_resolver *r, smx_resolve_req *req, const char *host, smx_resolve_cb cb);
/* The request's cb will not be called (used when its session timed out or was closed). */
void smx_resolve_cancel(smx_resolve_req *req);

#endif
