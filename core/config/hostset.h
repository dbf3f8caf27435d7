/* A set of borrowed C strings (open addressing, FNV-1a), so that dedupe and exclusion over a
 * run's hosts stay linear at SMX_HOSTLIST_MAX names. Private to the hostlist code. */
#ifndef SSHMUX_HOSTSET_H
#define SSHMUX_HOSTSET_H

#include <stddef.h>

#include "strvec.h"

typedef struct smx_hostset {
    const char **slot;
    size_t cap; /* a power of two, kept at least twice the number of entries */
    size_t n;
} smx_hostset;

/* Room for `expected` entries without growing. 0 or SMX_ENOMEM. */
int smx_hostset_init(smx_hostset *hs, size_t expected);
/* A set of v[0..n). 0 or SMX_ENOMEM (then hs owns nothing). */
int smx_hostset_init_from(smx_hostset *hs, char *const *v, size_t n);
void smx_hostset_free(smx_hostset *hs);
int smx_hostset_contains(const smx_hostset *hs, const char *s);
/* Adds s (not copied; it must outlive the set): 1 if added, 0 if already present, SMX_ENOMEM. */
int smx_hostset_add(smx_hostset *hs, const char *s);

/* Removes s if present (the set never points at freed strings). */
void smx_hostset_remove(smx_hostset *hs, const char *s);

#endif
