/* Private to the groups*.c files, which split the work as follows:
 *   groups.c          the sources, lookups, expansion (set operations, nesting, cycles)
 *   groups_clush.c    ClusterShell: YAML group files, groups.conf and where it is looked for
 *   groups_ansible.c  Ansible inventories, INI and YAML
 *   groups_genders.c  genders files and their queries
 *   groups_yaml.c     libyaml documents for the two YAML formats */
#ifndef SSHMUX_GROUPS_INTERNAL_H
#define SSHMUX_GROUPS_INTERNAL_H

#include "groups.h"

#include <yaml.h>

/* A string -> index map (open addressing; keys are borrowed and must outlive it). */
typedef struct grp_index {
    const char **keys;
    size_t *vals;
    size_t cap, n;
} grp_index;

int grp_index_put(grp_index *ix, const char *key, size_t val);   /* 0 or SMX_ENOMEM */
int grp_index_get(const grp_index *ix, const char *key, size_t *val);  /* 1 if found */
void grp_index_free(grp_index *ix);

enum grp_kind { GRP_CLUSH, GRP_ANSIBLE, GRP_GENDERS };

/* Ansible connection variables of a host or group: values and "file:line" they came from. */
typedef struct grp_vars {
    char *v[SMX_IV_COUNT];
    char *where[SMX_IV_COUNT];
} grp_vars;

typedef struct grp_group {
    char *name;
    char *where;              /* "file:line" of its first definition */
    char *def;                /* ClusterShell: the nodeset text, parts joined with ',' */
    smx_strvec hosts;         /* Ansible: the hosts listed in it, in order */
    grp_index hostix;         /* ... and their positions (no duplicates) */
    size_t *children;         /* Ansible: child groups (indexes into the source's groups) */
    size_t nchildren, capchildren;
    size_t *parents;          /* Ansible: the reverse, rebuilt after every file */
    size_t nparents, capparents;
    grp_vars vars;
    int priority;             /* ansible_group_priority (default 1) */
    int depth;                /* Ansible's: 0 for all, one more than its deepest parent */
    int declared;             /* INI: seen as [g] or [g:children] */
} grp_group;

typedef struct grp_host {
    char *name;
    grp_vars vars;            /* Ansible */
    size_t *groups;           /* Ansible: groups listing it directly (indexes) */
    size_t ngroups, capgroups;
    smx_strvec attrs;         /* genders: "attr" or "attr=value" (%n substituted) */
} grp_host;

typedef struct grp_source {
    char *name;
    enum grp_kind kind;
    char *origin;             /* the file that defined it, for messages */
    int upcalls;              /* a groups.conf section: upcalls, never run, so no groups */
    grp_group *groups;
    size_t ngroups, capgroups;
    grp_index gix;
    grp_host *hosts;
    size_t nhosts, caphosts;
    grp_index hix;
} grp_source;

struct smx_groups {
    grp_source **src;
    size_t nsrc, capsrc;
    char *default_src;        /* ClusterShell's default source (groups.conf [Main] default) */
    int deferred;             /* a default file failed to load: lookups fail with this */
    smx_err deferred_err;
};

/* groups.c */
grp_source *grp_source_new(const char *name, enum grp_kind kind, const char *origin);
void grp_source_free(grp_source *s);
/* Finds or adds a group / host by name; *idx its index. 0 or SMX_ENOMEM. */
int grp_source_group(grp_source *s, const char *name, const char *where, size_t *idx);
int grp_source_host(grp_source *s, const char *name, size_t *idx);
grp_source *grp_find_source(const smx_groups *g, const char *name, enum grp_kind kind);
/* Takes s over (freed on failure). 0 or SMX_ENOMEM. */
int grp_add_source(smx_groups *g, grp_source *s);
/* Appends v to a size_t array unless present. 0 or SMX_ENOMEM. */
int grp_push_index(size_t **v, size_t *n, size_t *cap, size_t value);
int grp_set_var(grp_vars *vars, int which, const char *value, const char *where);
void grp_vars_free(grp_vars *vars);
/* "file:line" (malloc'd) or NULL. */
char *grp_where(const char *file, unsigned long line);
/* Which Ansible connection variable a key is, or -1. */
int grp_invvar(const char *key);
/* The file's name as messages show it. */
const char *grp_display_path(const char *path);
/* Expands one hostlist pattern (a node item of a group definition) into out. */
int grp_expand_pattern(const char *item, smx_strvec *out, size_t max, smx_err *err);

/* groups_yaml.c: one document of a file; node lookups over libyaml's document API. */
typedef struct grp_yaml {
    yaml_document_t doc;
    int loaded;
    const char *path;         /* for messages */
    size_t visits;            /* nodes walked: bounded, as aliases can make a small file a
                               * large tree */
} grp_yaml;
/* 0, or SMX_EINVAL with "path:line: why" (an empty file is a document with no root). */
int grp_yaml_load(grp_yaml *y, const char *path, const char *text, size_t len, smx_err *err);
void grp_yaml_free(grp_yaml *y);
yaml_node_t *grp_yaml_root(grp_yaml *y);
yaml_node_t *grp_yaml_node(grp_yaml *y, int id);
/* A scalar's text (NULL for other kinds); 1-based line of a node. */
const char *grp_yaml_scalar(const yaml_node_t *n);
unsigned long grp_yaml_line(const yaml_node_t *n);
/* A plain scalar YAML reads as null ("", "~", "null"). */
int grp_yaml_is_null(const yaml_node_t *n);
/* Counts one more node visited: SMX_ERANGE once past the bound. */
int grp_yaml_visit(grp_yaml *y, const yaml_node_t *n, smx_err *err);

/* groups_genders.c: a genders query's nodes (for the source "genders"). */
int grp_genders_query(const grp_source *s, const char *query, smx_strvec *out, smx_err *err);
/* groups_ansible.c: parents and depths after a file was merged. */
int grp_ansible_finalize(grp_source *s, smx_err *err);

#endif
