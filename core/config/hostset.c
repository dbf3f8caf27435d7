#include "hostset.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

static size_t hostset_hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return (size_t)h;
}

/* The slot holding s, or the empty slot where it belongs. */
static size_t hostset_slot(const smx_hostset *hs, const char *s)
{
    size_t mask = hs->cap - 1;
    size_t i = hostset_hash(s) & mask;
    while (hs->slot[i] && strcmp(hs->slot[i], s) != 0)
        i = (i + 1) & mask;
    return i;
}

int smx_hostset_init(smx_hostset *hs, size_t expected)
{
    size_t cap = 16;
    while (cap < expected * 2)
        cap *= 2;
    hs->slot = calloc(cap, sizeof *hs->slot);
    hs->cap = hs->slot ? cap : 0;
    hs->n = 0;
    return hs->slot ? 0 : SMX_ENOMEM;
}

void smx_hostset_free(smx_hostset *hs)
{
    free(hs->slot);
    hs->slot = NULL;
    hs->cap = hs->n = 0;
}

int smx_hostset_contains(const smx_hostset *hs, const char *s)
{
    return hs->slot[hostset_slot(hs, s)] != NULL;
}

static int hostset_grow(smx_hostset *hs)
{
    smx_hostset bigger;
    if (smx_hostset_init(&bigger, hs->cap) < 0)
        return SMX_ENOMEM;
    for (size_t i = 0; i < hs->cap; i++) {
        if (hs->slot[i])
            bigger.slot[hostset_slot(&bigger, hs->slot[i])] = hs->slot[i];
    }
    bigger.n = hs->n;
    free(hs->slot);
    *hs = bigger;
    return 0;
}

int smx_hostset_add(smx_hostset *hs, const char *s)
{
    if ((hs->n + 1) * 2 > hs->cap && hostset_grow(hs) < 0)
        return SMX_ENOMEM;
    size_t i = hostset_slot(hs, s);
    if (hs->slot[i])
        return 0;
    hs->slot[i] = s;
    hs->n++;
    return 1;
}

int smx_hostset_init_from(smx_hostset *hs, char *const *v, size_t n)
{
    if (smx_hostset_init(hs, n) < 0)
        return SMX_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        if (smx_hostset_add(hs, v[i]) < 0) {
            smx_hostset_free(hs);
            return SMX_ENOMEM;
        }
    }
    return 0;
}

/* Linear probing without tombstones: after emptying a slot, later entries of the same probe run
 * move back into it when their home slot does not lie between the hole and them. */
void smx_hostset_remove(smx_hostset *hs, const char *s)
{
    size_t mask = hs->cap - 1;
    size_t hole = hostset_slot(hs, s);
    if (!hs->slot[hole])
        return;
    hs->slot[hole] = NULL;
    hs->n--;
    for (size_t j = (hole + 1) & mask; hs->slot[j]; j = (j + 1) & mask) {
        size_t home = hostset_hash(hs->slot[j]) & mask;
        int stays = hole <= j ? (hole < home && home <= j) : (hole < home || home <= j);
        if (stays)
            continue;
        hs->slot[hole] = hs->slot[j];
        hs->slot[j] = NULL;
        hole = j;
    }
}
