#include "gate.h"

#include <stdlib.h>
#include <string.h>

struct smx_gate {
    smx_gate *next;         /* in smx_gates' list */
    smx_gates *owner;
    char *key;
    int inflight;
    double limit;           /* fractional so additive increase can be gentle */
    int backing_off;        /* narrowed and no success since: a burst of drops counts once */
    smx_list waiters;       /* FIFO */
};

struct smx_gates {
    smx_gate *list;
    int initial, max;
};

smx_gates *smx_gates_new(int initial, int max)
{
    smx_gates *g = calloc(1, sizeof *g);
    if (!g)
        return NULL;
    g->max = max > 0 ? max : 1;
    g->initial = initial > 0 ? initial : 1;
    if (g->initial > g->max)
        g->initial = g->max;
    return g;
}

void smx_gates_free(smx_gates *g)
{
    if (!g)
        return;
    smx_gate *gate = g->list;
    while (gate) {
        smx_gate *next = gate->next;
        free(gate->key);
        free(gate);
        gate = next;
    }
    free(g);
}

/* Linear lookup: a run talks to few distinct server addresses (often one per host, but then each
 * gate is looked up once per connection attempt, and the list is short-lived). */
smx_gate *smx_gates_get(smx_gates *g, const char *key)
{
    for (smx_gate *gate = g->list; gate; gate = gate->next)
        if (strcmp(gate->key, key) == 0)
            return gate;
    smx_gate *gate = calloc(1, sizeof *gate);
    if (!gate)
        return NULL;
    gate->key = strdup(key);
    if (!gate->key) {
        free(gate);
        return NULL;
    }
    gate->owner = g;
    gate->limit = g->initial;
    smx_list_init(&gate->waiters);
    gate->next = g->list;
    g->list = gate;
    return gate;
}

static int gate_has_room(const smx_gate *gate)
{
    return gate->inflight < (int)gate->limit;
}

int smx_gate_acquire(smx_gate *gate, smx_gate_waiter *w, smx_gate_cb cb)
{
    w->gate = gate;
    w->cb = cb;
    if (gate_has_room(gate) && smx_list_empty(&gate->waiters)) {
        gate->inflight++;
        cb(w);
        return 1;
    }
    smx_list_append(&gate->waiters, &w->node);
    w->queued = 1;
    return 0;
}

void smx_gate_cancel(smx_gate_waiter *w)
{
    if (!w->queued)
        return;
    smx_list_remove(&w->node);
    w->queued = 0;
}

static void gate_admit_waiters(smx_gate *gate)
{
    while (gate_has_room(gate) && !smx_list_empty(&gate->waiters)) {
        smx_gate_waiter *w = smx_list_entry(gate->waiters.next, smx_gate_waiter, node);
        smx_gate_cancel(w);
        gate->inflight++;
        w->cb(w);
    }
}

void smx_gate_release(smx_gate *gate, enum smx_gate_outcome outcome)
{
    if (gate->inflight > 0)
        gate->inflight--;
    switch (outcome) {
    case SMX_GATE_SUCCESS:
        gate->backing_off = 0;
        /* Slow start below 64, then additive: grows fast against a tuned sshd and creeps up to
         * the drop threshold of a stock one. */
        gate->limit += gate->limit < 64 ? 1.0 : 4.0 / gate->limit;
        if (gate->limit > gate->owner->max)
            gate->limit = gate->owner->max;
        break;
    case SMX_GATE_DROPPED:
        /* Below what was in flight when the server started dropping: that count is what it
         * would not take. The connections dropped in the same burst say nothing new. */
        if (gate->backing_off)
            break;
        gate->backing_off = 1;
        if (gate->limit > gate->inflight + 1)
            gate->limit = gate->inflight + 1;
        gate->limit *= 0.7;
        if (gate->limit < 2)
            gate->limit = 2;
        break;
    case SMX_GATE_NEUTRAL:
        break;
    }
    gate_admit_waiters(gate);
}

int smx_gate_limit(const smx_gate *gate)
{
    return (int)gate->limit;
}

int smx_gate_inflight(const smx_gate *gate)
{
    return gate->inflight;
}
