/* Hostlist syntax in the style of ClusterShell and pdsh: "web[01-20],db[1-3/2],root@[::1]:22".
 *
 * Items are separated by commas outside brackets and may be whole SSH targets (user@, :port,
 * ssh:// URLs); range expansion applies to the whole item text. A bracket group is a range only
 * when it is made of digits, ',', '-' and '/'; any other group (e.g. "[::1]", "[10.0.0.1]") is
 * an address literal and is copied verbatim, brackets included. */
#ifndef SSHMUX_HOSTLIST_H
#define SSHMUX_HOSTLIST_H

#include <stddef.h>

#include "error.h"
#include "sshmux.h"

/* smx_hostlist, SMX_HOSTLIST_MAX and the list functions are in the public header; these are
 * for the library's own use. */

/* One-shot form: expands `list` and appends the names to `out` in order, skipping names already
 * in `out` or produced earlier (first occurrence wins), at most SMX_HOSTLIST_MAX names per call.
 * Costs O(out->n) per call on top of the expansion: to collect many lists, use smx_hostlist.
 * Returns the number of names appended (>= 0), or the codes of smx_hostlist_add(); on error
 * `out` is left exactly as it was. */
int smx_hostlist_expand(const char *list, smx_strvec *out, smx_err *err);

/* Removes (and frees) every entry of `hosts` equal to an entry of `excluded`; order is kept. */
void smx_hostlist_exclude(smx_strvec *hosts, const smx_strvec *excluded);

#endif
