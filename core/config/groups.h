/* Node groups: `@group` in host lists, from ClusterShell group files, Ansible inventories and
 * genders files. Private to the config layer; the public face is smx_config_add_groups_file,
 * smx_config_add_default_groups, smx_config_add_inventory, smx_config_add_genders and
 * smx_hostlist_set_config (core/include/sshmux.h).
 *
 * Every loaded file becomes one or more named sources held by the smx_config:
 *  - a ClusterShell YAML file gives one source per top-level key (`local: {group: "nodeset"}`);
 *    groups.conf sections with upcalls give sources without groups (upcalls are never run);
 *  - all Ansible inventories together are the source "ansible" (Ansible merges its -i files
 *    into one inventory too), with the connection variables of each host;
 *  - all genders files together are the source "genders", whose groups are queries
 *    ("attr", "attr=value", and nodeattr's || && -- ~ ( )).
 *
 * `@name` looks in ClusterShell's default source, then the inventory, then genders; `@src:name`
 * in that source only. Inside a ClusterShell group, `@other` means the same source's group, as
 * in ClusterShell, and ClusterShell's set operators apply (`,` union, `!` difference, `&`
 * intersection, `^` symmetric difference, left to right). Expansion is memoised per call
 * (each group is expanded once however often it is referenced), nesting is bounded and cycles
 * are errors that show the cycle. Names come out in the order they are first written. */
#ifndef SSHMUX_GROUPS_H
#define SSHMUX_GROUPS_H

#include <stddef.h>

#include "error.h"
#include "sshmux.h"

/* One group file is read whole, at most this large. */
#define SMX_GROUPS_MAX_FILE (64u << 20)
/* Group references nested deeper than this are refused (a cycle is reported as one first). */
#define SMX_GROUPS_MAX_DEPTH 64

typedef struct smx_groups smx_groups;

/* The connection variables of an Ansible host, in Ansible's order of preference within each
 * pair (ansible_ssh_host beats ansible_host: the first of MAGIC_VARIABLE_MAPPING found). */
enum smx_invvar {
    SMX_IV_SSH_HOST, SMX_IV_HOST, SMX_IV_SSH_PORT, SMX_IV_PORT, SMX_IV_SSH_USER, SMX_IV_USER,
    SMX_IV_COUNT
};

/* What the inventory says about how to reach one host: NULL where nothing is set. The strings
 * are borrowed from the groups (valid while they are); `where` says which file and line set
 * each value, for messages. */
typedef struct smx_invhost {
    const char *host, *port, *user;
    const char *host_where, *port_where, *user_where;
} smx_invhost;

smx_groups *smx_groups_new(void);
void smx_groups_free(smx_groups *g);

/* Loaders: each reads one file and adds what it defines. On error nothing of that file stays
 * and err says "file:line: why". SMX_ENOENT (missing file), SMX_EIO, SMX_EINVAL, SMX_ENOMEM. */
int smx_groups_load_clush_yaml(smx_groups *g, const char *path, smx_err *err);
int smx_groups_load_inventory(smx_groups *g, const char *path, smx_err *err);
int smx_groups_load_genders(smx_groups *g, const char *path, smx_err *err);
/* ClusterShell's own configuration (groups.conf in the places ClusterShell reads it, its
 * confdir/groupsdir and autodir); what cannot be used is described in notes (may be NULL).
 * A file that fails to load is remembered, not returned: it fails only a lookup. 0 or
 * SMX_ENOMEM. */
int smx_groups_load_clush_defaults(smx_groups *g, smx_strvec *notes, smx_err *err);
/* Marks the error of a default source that did not load: lookups fail with it from now on.
 * The first one is kept. */
void smx_groups_defer_error(smx_groups *g, const smx_err *err);

/* Appends the names of group `ref` ("name", "src:name", "*" or "src:*": without the '@') to
 * out, skipping names already there. At most `max` names in all. Returns how many were added,
 * or SMX_ENOENT (no such group or source, message naming it), SMX_EINVAL (a malformed
 * definition, a cycle), SMX_ERANGE (past max or nested too deep), SMX_ENOMEM. */
int smx_groups_expand(const smx_groups *g, const char *ref, size_t max, smx_strvec *out,
                      smx_err *err);

/* The inventory's connection variables for host (by inventory name), merged as Ansible merges
 * them (host over child group over parent group over all). 1 if the inventory knows the host,
 * else 0 (*out zeroed). */
int smx_groups_inventory_host(const smx_groups *g, const char *host, smx_invhost *out);

/* How many sources are loaded (0: no group files at all). */
size_t smx_groups_count(const smx_groups *g);

/* ---- for the loaders (groups*.c) --------------------------------------------------------- */

/* Reads a whole file (at most SMX_GROUPS_MAX_FILE bytes) into a NUL-terminated buffer. */
int smx__groups_read_file(const char *path, char **text, size_t *len, smx_err *err);

#endif
