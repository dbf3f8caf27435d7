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
#include "strvec.h"

/* Most names one smx_hostlist_expand() call may generate (duplicates included): beyond this the
 * list is almost certainly a typo, and honouring it would exhaust memory. */
#define SMX_HOSTLIST_MAX 1000000

/* Expands `list` and appends the names to `out` in order, skipping names already in `out` or
 * produced earlier (first occurrence wins). Empty items and whitespace around items are ignored.
 * Returns the number of names appended (>= 0), or SMX_EINVAL (bad syntax), SMX_ERANGE (number or
 * expansion too large), SMX_ENOMEM, with a message naming the item in `err`. On error `out` is
 * left exactly as it was. */
int smx_hostlist_expand(const char *list, smx_strvec *out, smx_err *err);

/* Folds names into one compact, deterministic hostlist: {web01,web02,web03,web05,db1} ->
 * "db1,web[01-03,05]". Each name is split at its last run of digits; names sharing prefix, suffix
 * and zero-padding width become one group, groups are sorted by prefix then suffix, duplicates
 * and empty names are dropped. smx_hostlist_expand() of the result gives back the same set for
 * any names that smx_hostlist_expand() can produce. Stores a malloc'd string (possibly "") in
 * *out; returns 0, SMX_EINVAL (NULL arguments) or SMX_ENOMEM. */
int smx_hostlist_fold(char *const *hosts, size_t n, char **out, smx_err *err);

/* Removes (and frees) every entry of `hosts` equal to an entry of `excluded`; order is kept. */
void smx_hostlist_exclude(smx_strvec *hosts, const smx_strvec *excluded);

#endif
