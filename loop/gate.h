/* Concurrency gates: a limit on how many operations run at once per key (one key per server
 * address), adapted AIMD-style. OpenSSH's MaxStartups drops connections once too many are
 * unauthenticated; a fleet client that keeps the handshakes it has in flight per server a little
 * under that threshold gets every host through, where a fixed fanout loses a share of them. */
#ifndef SSHMUX_GATE_H
#define SSHMUX_GATE_H

#include <stddef.h>

#include "list.h"

typedef struct smx_gate smx_gate;
typedef struct smx_gate_waiter smx_gate_waiter;
typedef void (*smx_gate_cb)(smx_gate_waiter *w);

/* Embedded in the caller's struct; queued FIFO until the gate has room. */
struct smx_gate_waiter {
    smx_list node;          /* on its gate's FIFO while queued */
    smx_gate *gate;
    smx_gate_cb cb;
    int queued;
};

enum smx_gate_outcome {
    SMX_GATE_SUCCESS,   /* the operation got through: widen the gate */
    SMX_GATE_DROPPED,   /* the server dropped us early: narrow the gate */
    SMX_GATE_NEUTRAL    /* failed for a reason that says nothing about server load */
};

typedef struct smx_gates smx_gates;

/* initial: starting limit per key; max: upper bound (e.g. the fanout). */
smx_gates *smx_gates_new(int initial, int max);
void smx_gates_free(smx_gates *g);
smx_gate *smx_gates_get(smx_gates *g, const char *key);   /* NULL on ENOMEM */

/* Calls w->cb at once (returns 1) if there is room, else queues w (returns 0). */
int smx_gate_acquire(smx_gate *gate, smx_gate_waiter *w, smx_gate_cb cb);
/* Removes a queued waiter (no-op if not queued). */
void smx_gate_cancel(smx_gate_waiter *w);
/* Gives back a slot taken by acquire and lets queued waiters in. */
void smx_gate_release(smx_gate *gate, enum smx_gate_outcome outcome);

int smx_gate_limit(const smx_gate *gate);
int smx_gate_inflight(const smx_gate *gate);

#endif
