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

/* Most names a hostlist may generate (duplicates included): beyond this the list is almost
 * certainly a typo, and honouring it would exhaust memory. The CLI applies it once per run, to
 * all -w and --hostfile lists together (smx_hostlist_new). */
#define SMX_HOSTLIST_MAX 1000000

/* A run's targets, built from any number of lists: names in order of first appearance, each
 * with the caller's tag (e.g. which credentials go with it). One hash set serves every call, so
 * adding N names costs O(N) whatever the number of lists (a hostfile is one list per line). */
typedef struct smx_hostlist smx_hostlist;

/* An empty list that may generate at most `max` names over all smx_hostlist_add() calls
 * (duplicates included). NULL when out of memory. */
smx_hostlist *smx_hostlist_new(size_t max);
void smx_hostlist_free(smx_hostlist *hl);

/* Expands `list` and appends the names not already present, each tagged `tag`. Returns the
 * number of names appended, or SMX_EINVAL (bad syntax), SMX_ERANGE (a number too large, or the
 * names generated so far would pass the list's max: the message names the item and the
 * limit), SMX_ENOMEM; on error the list is exactly as it was. */
int smx_hostlist_add(smx_hostlist *hl, const char *list, size_t tag, smx_err *err);

/* Removes every name of `excluded` (order kept). */
void smx_hostlist_remove(smx_hostlist *hl, const smx_hostlist *excluded);

size_t smx_hostlist_count(const smx_hostlist *hl);
const char *smx_hostlist_name(const smx_hostlist *hl, size_t i);
size_t smx_hostlist_tag(const smx_hostlist *hl, size_t i);

/* One-shot form: expands `list` and appends the names to `out` in order, skipping names already
 * in `out` or produced earlier (first occurrence wins), at most SMX_HOSTLIST_MAX names per call.
 * Costs O(out->n) per call on top of the expansion: to collect many lists, use smx_hostlist.
 * Returns the number of names appended (>= 0), or the codes of smx_hostlist_add(); on error
 * `out` is left exactly as it was. */
int smx_hostlist_expand(const char *list, smx_strvec *out, smx_err *err);

/* The end of the item starting at s: the first ',' outside brackets, or the terminating NUL.
 * Lets a caller treat the items of a list one by one (e.g. to take URL passwords out). */
const char *smx_hostlist_item_end(const char *s);

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
