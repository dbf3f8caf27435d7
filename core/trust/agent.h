/* A non-blocking ssh-agent client. libssh's own agent client writes to and reads from the agent
 * socket synchronously, which would stall the loop (every session) behind one slow or hung agent
 * (a key that wants confirmation, a hardware token waiting for a touch, a wedged forwarded
 * agent). This one talks the agent protocol (draft-miller-ssh-agent: length-prefixed messages,
 * answered in order) over a libuv pipe; sessions wait for its callbacks instead.
 *
 * One smx_agent per socket path and engine, shared by every session that uses it: the identity
 * list is asked for once, sign requests are pipelined on the one connection. */
#ifndef SSHMUX_AGENT_H
#define SSHMUX_AGENT_H

#include <stddef.h>

#include <libssh/libssh.h>
#include <uv.h>

typedef struct smx_agent smx_agent;
typedef struct smx_agent_waiter smx_agent_waiter;

/* status: 0 or a negative SMX_* code. For a sign request, data/len is the signature blob (valid
 * during the call); for the identity list, nothing (read it with smx_agent_key). */
typedef void (*smx_agent_cb)(smx_agent_waiter *w, int status, const unsigned char *data,
                             size_t len);

/* Embedded in its owner; zeroed or left from an earlier completed request. */
struct smx_agent_waiter {
    struct agent_req *req;     /* in flight, or NULL */
};

/* The agent connections of one run, one per socket path. */
typedef struct smx_agents smx_agents;
smx_agents *smx_agents_new(uv_loop_t *loop);
/* Closes every connection (pending requests fail) and frees the registry; each connection's
 * memory goes when the loop runs its handles' closes. */
void smx_agents_free(smx_agents *as);
/* The agent at `path`, connected on first use. NULL only when out of memory. */
smx_agent *smx_agent_get(smx_agents *as, const char *path);

/* How many identities the agent holds: the count (>= 0) when known, a negative SMX_* code if the
 * agent failed, or SMX_AGENT_PENDING after arranging for w->cb once the list is in. */
#define SMX_AGENT_PENDING (-1000)
int smx_agent_identities(smx_agent *a, smx_agent_waiter *w, smx_agent_cb cb);
/* Identity i (0-based) as a public key owned by the agent object. */
ssh_key smx_agent_key(const smx_agent *a, int i);
/* Asks the agent to sign data with key (one of its identities); flags per the protocol
 * (SSH_AGENT_RSA_SHA2_256/512 for RSA). The answer comes to w->cb. 0 or a negative code. */
int smx_agent_sign(smx_agent *a, smx_agent_waiter *w, smx_agent_cb cb, ssh_key key,
                   const void *data, size_t len, unsigned flags);
/* The owner goes away: no callback for its request (the answer is read and dropped). */
void smx_agent_cancel(smx_agent_waiter *w);

/* What went wrong with the agent, for messages ("" if nothing). */
const char *smx_agent_error(const smx_agent *a);

/* Closes every connection (memory goes when the loop runs the closes); later smx_agent_get
 * calls open new ones. */
void smx_agents_close_all(smx_agents *as);

#endif
