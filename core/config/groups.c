/* Group sources and `@group` expansion: lookups, ClusterShell's set operators, nesting with
 * memoisation and cycle detection (see groups.h). */
#ifndef _DEFAULT_SOURCE
#define _DEFAULT_SOURCE
#endif
#include "groups_internal.h"
#include "hostlist.h"
#include "hostset.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- small helpers ------------------------------------------------------------------- */

static size_t grp_hash(const char *s)
{
    size_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static int grp_index_grow(grp_index *ix)
{
    size_t cap = ix->cap ? ix->cap * 2 : 16;
    const char **keys = calloc(cap, sizeof *keys);
    size_t *vals = calloc(cap, sizeof *vals);
    if (!keys || !vals) {
        free(keys);
        free(vals);
        return SMX_ENOMEM;
    }
    for (size_t i = 0; i < ix->cap; i++) {
        if (!ix->keys[i])
            continue;
        size_t j = grp_hash(ix->keys[i]) & (cap - 1);
        while (keys[j])
            j = (j + 1) & (cap - 1);
        keys[j] = ix->keys[i];
        vals[j] = ix->vals[i];
    }
    free(ix->keys);
    free(ix->vals);
    ix->keys = keys;
    ix->vals = vals;
    ix->cap = cap;
    return 0;
}

int grp_index_put(grp_index *ix, const char *key, size_t val)
{
    if ((ix->n + 1) * 2 > ix->cap && grp_index_grow(ix) < 0)
        return SMX_ENOMEM;
    size_t j = grp_hash(key) & (ix->cap - 1);
    while (ix->keys[j] && strcmp(ix->keys[j], key) != 0)
        j = (j + 1) & (ix->cap - 1);
    if (!ix->keys[j])
        ix->n++;
    ix->keys[j] = key;
    ix->vals[j] = val;
    return 0;
}

int grp_index_get(const grp_index *ix, const char *key, size_t *val)
{
    if (!ix->cap)
        return 0;
    for (size_t j = grp_hash(key) & (ix->cap - 1); ix->keys[j]; j = (j + 1) & (ix->cap - 1)) {
        if (strcmp(ix->keys[j], key) == 0) {
            *val = ix->vals[j];
            return 1;
        }
    }
    return 0;
}

void grp_index_free(grp_index *ix)
{
    free(ix->keys);
    free(ix->vals);
    memset(ix, 0, sizeof *ix);
}

int grp_push_index(size_t **v, size_t *n, size_t *cap, size_t value)
{
    for (size_t i = 0; i < *n; i++)
        if ((*v)[i] == value)
            return 0;
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 4;
        size_t *p = realloc(*v, c * sizeof *p);
        if (!p)
            return SMX_ENOMEM;
        *v = p;
        *cap = c;
    }
    (*v)[(*n)++] = value;
    return 0;
}

char *grp_where(const char *file, unsigned long line)
{
    size_t size = strlen(file) + 24;
    char *s = malloc(size);
    if (s)
        snprintf(s, size, "%s:%lu", file, line);
    return s;
}

const char *grp_display_path(const char *path)
{
    return path;
}

static const char *const grp_invvar_names[SMX_IV_COUNT] = {
    "ansible_ssh_host", "ansible_host", "ansible_ssh_port", "ansible_port", "ansible_ssh_user",
    "ansible_user",
};

int grp_invvar(const char *key)
{
    for (int i = 0; i < SMX_IV_COUNT; i++)
        if (strcmp(key, grp_invvar_names[i]) == 0)
            return i;
    return -1;
}

int grp_set_var(grp_vars *vars, int which, const char *value, const char *where)
{
    char *v = strdup(value), *w = strdup(where ? where : "");
    if (!v || !w) {
        free(v);
        free(w);
        return SMX_ENOMEM;
    }
    free(vars->v[which]);
    free(vars->where[which]);
    vars->v[which] = v;
    vars->where[which] = w;
    return 0;
}

void grp_vars_free(grp_vars *vars)
{
    for (int i = 0; i < SMX_IV_COUNT; i++) {
        free(vars->v[i]);
        free(vars->where[i]);
    }
    memset(vars, 0, sizeof *vars);
}

int smx__groups_read_file(const char *path, char **text, size_t *len, smx_err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0)
        return smx_seterr(err, errno == ENOENT ? SMX_ENOENT : SMX_EIO, "%s: %s", path,
                          strerror(errno));
    if (fstat(fd, &st) < 0 || S_ISDIR(st.st_mode)) {
        int e = S_ISDIR(st.st_mode) ? EISDIR : errno;
        close(fd);
        return smx_seterr(err, SMX_EIO, "%s: %s", path, strerror(e));
    }
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (!buf) {
            close(fd);
            return smx_seterr(err, SMX_ENOMEM, "out of memory");
        }
        if (n + 1 >= cap) {
            if (cap > SMX_GROUPS_MAX_FILE) {
                free(buf);
                close(fd);
                return smx_seterr(err, SMX_EIO, "%s: larger than %u MiB", path,
                                  SMX_GROUPS_MAX_FILE >> 20);
            }
            char *p = realloc(buf, cap * 2);
            if (!p)
                free(buf);
            buf = p;
            cap *= 2;
            continue;
        }
        ssize_t r = read(fd, buf + n, cap - n - 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            free(buf);
            close(fd);
            return smx_seterr(err, SMX_EIO, "%s: %s", path, strerror(e));
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    if (n > SMX_GROUPS_MAX_FILE) {
        free(buf);
        return smx_seterr(err, SMX_EIO, "%s: larger than %u MiB", path,
                          SMX_GROUPS_MAX_FILE >> 20);
    }
    buf[n] = '\0';
    *text = buf;
    *len = n;
    return 0;
}

int grp_expand_pattern(const char *item, smx_strvec *out, size_t max, smx_err *err)
{
    smx_hostlist *hl = smx_hostlist_new(max);
    if (!hl)
        return smx_seterr(err, SMX_ENOMEM, "out of memory");
    int rc = smx_hostlist_add(hl, item, 0, err);
    for (size_t i = 0; rc >= 0 && i < smx_hostlist_count(hl); i++)
        if (smx_strvec_push(out, smx_hostlist_name(hl, i)) < 0)
            rc = smx_seterr(err, SMX_ENOMEM, "out of memory");
    smx_hostlist_free(hl);
    return rc < 0 ? rc : 0;
}

/* ---- sources ------------------------------------------------------------------------- */

grp_source *grp_source_new(const char *name, enum grp_kind kind, const char *origin)
{
    grp_source *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->kind = kind;
    s->name = strdup(name);
    s->origin = strdup(origin ? origin : "");
    if (!s->name || !s->origin) {
        grp_source_free(s);
        return NULL;
    }
    return s;
}

void grp_source_free(grp_source *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->ngroups; i++) {
        grp_group *gr = &s->groups[i];
        free(gr->name);
        free(gr->where);
        free(gr->def);
        smx_strvec_free(&gr->hosts);
        grp_index_free(&gr->hostix);
        free(gr->children);
        free(gr->parents);
        grp_vars_free(&gr->vars);
    }
    for (size_t i = 0; i < s->nhosts; i++) {
        grp_host *h = &s->hosts[i];
        free(h->name);
        grp_vars_free(&h->vars);
        free(h->groups);
        smx_strvec_free(&h->attrs);
    }
    free(s->groups);
    free(s->hosts);
    grp_index_free(&s->gix);
    grp_index_free(&s->hix);
    free(s->name);
    free(s->origin);
    free(s);
}

/* The index maps point into the elements' names, which do not move when the arrays grow. */
int grp_source_group(grp_source *s, const char *name, const char *where, size_t *idx)
{
    if (grp_index_get(&s->gix, name, idx))
        return 0;
    if (s->ngroups == s->capgroups) {
        size_t cap = s->capgroups ? s->capgroups * 2 : 8;
        grp_group *p = realloc(s->groups, cap * sizeof *p);
        if (!p)
            return SMX_ENOMEM;
        s->groups = p;
        s->capgroups = cap;
    }
    grp_group *gr = &s->groups[s->ngroups];
    memset(gr, 0, sizeof *gr);
    gr->priority = 1;
    gr->name = strdup(name);
    gr->where = where ? strdup(where) : NULL;
    if (!gr->name || (where && !gr->where) || grp_index_put(&s->gix, gr->name, s->ngroups) < 0) {
        free(gr->name);
        free(gr->where);
        return SMX_ENOMEM;
    }
    *idx = s->ngroups++;
    return 0;
}

int grp_source_host(grp_source *s, const char *name, size_t *idx)
{
    if (grp_index_get(&s->hix, name, idx))
        return 0;
    if (s->nhosts == s->caphosts) {
        size_t cap = s->caphosts ? s->caphosts * 2 : 16;
        grp_host *p = realloc(s->hosts, cap * sizeof *p);
        if (!p)
            return SMX_ENOMEM;
        s->hosts = p;
        s->caphosts = cap;
    }
    grp_host *h = &s->hosts[s->nhosts];
    memset(h, 0, sizeof *h);
    h->name = strdup(name);
    if (!h->name || grp_index_put(&s->hix, h->name, s->nhosts) < 0) {
        free(h->name);
        return SMX_ENOMEM;
    }
    *idx = s->nhosts++;
    return 0;
}

grp_source *grp_find_source(const smx_groups *g, const char *name, enum grp_kind kind)
{
    for (size_t i = 0; g && i < g->nsrc; i++)
        if (g->src[i]->kind == kind && strcmp(g->src[i]->name, name) == 0)
            return g->src[i];
    return NULL;
}

int grp_add_source(smx_groups *g, grp_source *s)
{
    if (g->nsrc == g->capsrc) {
        size_t cap = g->capsrc ? g->capsrc * 2 : 4;
        grp_source **p = realloc(g->src, cap * sizeof *p);
        if (!p) {
            grp_source_free(s);
            return SMX_ENOMEM;
        }
        g->src = p;
        g->capsrc = cap;
    }
    g->src[g->nsrc++] = s;
    return 0;
}

smx_groups *smx_groups_new(void)
{
    return calloc(1, sizeof(smx_groups));
}

void smx_groups_free(smx_groups *g)
{
    if (!g)
        return;
    for (size_t i = 0; i < g->nsrc; i++)
        grp_source_free(g->src[i]);
    free(g->src);
    free(g->default_src);
    free(g);
}

size_t smx_groups_count(const smx_groups *g)
{
    return g ? g->nsrc : 0;
}

void smx_groups_defer_error(smx_groups *g, const smx_err *err)
{
    if (!g->deferred) {
        g->deferred = 1;
        g->deferred_err = *err;
    }
}

/* ---- node sets: ordered, without duplicates -------------------------------------------- */

typedef struct nset {
    smx_strvec v;
    smx_hostset hs;     /* borrows v's strings */
} nset;

static int nset_init(nset *ns)
{
    memset(ns, 0, sizeof *ns);
    return smx_hostset_init(&ns->hs, 0) < 0 ? SMX_ENOMEM : 0;
}

static void nset_free(nset *ns)
{
    smx_hostset_free(&ns->hs);
    smx_strvec_free(&ns->v);
}

static int nset_add(nset *ns, const char *name)
{
    if (smx_hostset_contains(&ns->hs, name))
        return 0;
    char *copy = strdup(name);
    if (smx_strvec_push_owned(&ns->v, copy) < 0)
        return SMX_ENOMEM;
    return smx_hostset_add(&ns->hs, copy) < 0 ? SMX_ENOMEM : 0;
}

/* Keeps the names whose membership in `other` equals keep_members. */
static void nset_filter(nset *ns, const smx_hostset *other, int keep_members)
{
    size_t kept = 0;
    for (size_t i = 0; i < ns->v.n; i++) {
        char *h = ns->v.v[i];
        if (smx_hostset_contains(other, h) == keep_members) {
            ns->v.v[kept++] = h;
        } else {
            smx_hostset_remove(&ns->hs, h);
            free(h);
        }
    }
    ns->v.n = kept;
}

/* acc OP other, ClusterShell's operators. */
static int nset_apply(nset *acc, char op, const smx_strvec *other)
{
    smx_hostset os;
    int rc = 0;
    if (op == ',') {
        for (size_t i = 0; rc == 0 && i < other->n; i++)
            rc = nset_add(acc, other->v[i]);
        return rc;
    }
    if (smx_hostset_init_from(&os, other->v, other->n) < 0)
        return SMX_ENOMEM;
    if (op == '!') {
        nset_filter(acc, &os, 0);
    } else if (op == '&') {
        nset_filter(acc, &os, 1);
    } else {   /* '^': what is in exactly one of them */
        smx_strvec only_other = {0};
        for (size_t i = 0; rc == 0 && i < other->n; i++)
            if (!smx_hostset_contains(&acc->hs, other->v[i]))
                rc = smx_strvec_push(&only_other, other->v[i]);
        if (rc == 0) {
            nset_filter(acc, &os, 0);
            for (size_t i = 0; rc == 0 && i < only_other.n; i++)
                rc = nset_add(acc, only_other.v[i]);
        }
        smx_strvec_free(&only_other);
        rc = rc < 0 ? SMX_ENOMEM : 0;
    }
    smx_hostset_free(&os);
    return rc;
}

/* ---- expansion ------------------------------------------------------------------------ */

enum { MEMO_NONE, MEMO_BUSY, MEMO_DONE };

typedef struct memo {
    int state;
    smx_strvec names;
} memo;

typedef struct xframe {
    const grp_source *s;
    const char *group;
} xframe;

typedef struct xctx {
    const smx_groups *g;
    memo **memo;              /* per source, per group; allocated on first use */
    xframe stack[SMX_GROUPS_MAX_DEPTH];
    int depth;
    size_t max;
    smx_err *err;
} xctx;

static int x_ref(xctx *x, const grp_source *ctx, const char *ref, nset *out);

static int x_too_many(xctx *x, const grp_source *s, const char *group)
{
    return smx_seterr(x->err, SMX_ERANGE, "group @%s:%s expands to more than %zu hosts",
                      s->name, group, x->max);
}

/* "@a -> @b -> @a" for a cycle that closes at frame `from`. */
static int x_cycle(xctx *x, int from, const grp_source *s, const char *group)
{
    char chain[SMX_MSG_MAX - 64];
    size_t len = 0;
    chain[0] = '\0';
    for (int i = from; i < x->depth && len < sizeof chain; i++)
        len += (size_t)snprintf(chain + len, sizeof chain - len, "@%s -> ", x->stack[i].group);
    if (len < sizeof chain)
        snprintf(chain + len, sizeof chain - len, "@%s", group);
    return smx_seterr(x->err, SMX_EINVAL, "group cycle in source \"%s\": %s", s->name, chain);
}

static size_t x_source_index(const xctx *x, const grp_source *s)
{
    for (size_t i = 0; i < x->g->nsrc; i++)
        if (x->g->src[i] == s)
            return i;
    return 0;
}

/* A ClusterShell definition: items between the operators , ! & ^ (outside brackets), applied
 * left to right; `@...` items are groups of this source unless qualified. */
static int x_eval_clush(xctx *x, const grp_source *s, const grp_group *gr, nset *acc)
{
    const char *p = gr->def ? gr->def : "";
    char op = ',';
    int rc = 0;
    for (;;) {
        const char *q = p;
        int depth = 0;
        for (; *q; q++) {
            if (*q == '[')
                depth++;
            else if (*q == ']' && depth > 0)
                depth--;
            else if (depth == 0 && strchr(",!&^", *q))
                break;
        }
        const char *a = p, *b = q;
        while (a < b && (*a == ' ' || *a == '\t'))
            a++;
        while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
            b--;
        if (a == b) {
            if (op != ',' || (*q && *q != ','))
                return smx_seterr(x->err, SMX_EINVAL, "%s: group \"%s\": missing operand %s "
                                  "\"%c\" in \"%s\"", gr->where ? gr->where : s->origin,
                                  gr->name, op == ',' ? "before" : "after",
                                  op == ',' ? *q : op, gr->def);
        } else {
            char *item = strndup(a, (size_t)(b - a));
            smx_strvec names = {0};
            if (!item)
                return smx_seterr(x->err, SMX_ENOMEM, "out of memory");
            if (item[0] == '@') {
                nset sub;
                smx_strvec refs = {0};
                rc = nset_init(&sub);
                if (rc == 0)
                    rc = grp_expand_pattern(item, &refs, x->max, x->err);
                for (size_t i = 0; rc == 0 && i < refs.n; i++)
                    rc = x_ref(x, s, refs.v[i] + 1, &sub);
                if (rc == 0)
                    rc = nset_apply(acc, op, &sub.v);
                smx_strvec_free(&refs);
                nset_free(&sub);
            } else if (strpbrk(item, "*?")) {
                rc = smx_seterr(x->err, SMX_EINVAL, "%s: group \"%s\": \"%s\": node wildcards "
                                "are not supported", gr->where ? gr->where : s->origin,
                                gr->name, item);
            } else {
                rc = grp_expand_pattern(item, &names, x->max, x->err);
                if (rc == 0)
                    rc = nset_apply(acc, op, &names);
            }
            free(item);
            smx_strvec_free(&names);
            if (rc == SMX_ENOMEM)
                return smx_seterr(x->err, rc, "out of memory");
            if (rc < 0)
                return rc;
            if (acc->v.n > x->max)
                return x_too_many(x, s, gr->name);
        }
        if (!*q)
            return 0;
        op = *q;
        p = q + 1;
    }
}

/* Ansible's `ungrouped`: the hosts in no group but all and ungrouped. */
static int x_ungrouped(const grp_source *s, nset *acc)
{
    size_t all = (size_t)-1, ung = (size_t)-1;
    grp_index_get(&s->gix, "all", &all);
    grp_index_get(&s->gix, "ungrouped", &ung);
    for (size_t i = 0; i < s->nhosts; i++) {
        const grp_host *h = &s->hosts[i];
        int other = 0;
        for (size_t k = 0; k < h->ngroups && !other; k++)
            other = h->groups[k] != all && h->groups[k] != ung;
        if (!other && nset_add(acc, h->name) < 0)
            return SMX_ENOMEM;
    }
    return 0;
}

static int x_group(xctx *x, const grp_source *s, size_t gi, const smx_strvec **res);

/* An Ansible group: its own hosts, then its children's. */
static int x_eval_ansible(xctx *x, const grp_source *s, const grp_group *gr, nset *acc)
{
    if (strcmp(gr->name, "all") == 0) {
        for (size_t i = 0; i < s->nhosts; i++)
            if (nset_add(acc, s->hosts[i].name) < 0)
                return SMX_ENOMEM;
        return 0;
    }
    if (strcmp(gr->name, "ungrouped") == 0)
        return x_ungrouped(s, acc);
    for (size_t i = 0; i < gr->hosts.n; i++)
        if (nset_add(acc, gr->hosts.v[i]) < 0)
            return SMX_ENOMEM;
    for (size_t c = 0; c < gr->nchildren; c++) {
        const smx_strvec *sub;
        int rc = x_group(x, s, gr->children[c], &sub);
        if (rc < 0)
            return rc;
        rc = nset_apply(acc, ',', sub);
        if (rc < 0)
            return rc;
        if (acc->v.n > x->max)
            return x_too_many(x, s, gr->name);
    }
    return 0;
}

/* Group gi of s, expanded once per call (memoised); *res is borrowed from the memo. */
static int x_group(xctx *x, const grp_source *s, size_t gi, const smx_strvec **res)
{
    size_t si = x_source_index(x, s);
    const grp_group *gr = &s->groups[gi];
    if (!x->memo[si] && !(x->memo[si] = calloc(s->ngroups ? s->ngroups : 1, sizeof(memo))))
        return smx_seterr(x->err, SMX_ENOMEM, "out of memory");
    memo *m = &x->memo[si][gi];
    if (m->state == MEMO_DONE) {
        *res = &m->names;
        return 0;
    }
    if (m->state == MEMO_BUSY) {
        for (int i = 0; i < x->depth; i++)
            if (x->stack[i].s == s && strcmp(x->stack[i].group, gr->name) == 0)
                return x_cycle(x, i, s, gr->name);
    }
    if (x->depth >= SMX_GROUPS_MAX_DEPTH)
        return smx_seterr(x->err, SMX_ERANGE, "group @%s:%s: groups nested more than %d deep",
                          s->name, gr->name, SMX_GROUPS_MAX_DEPTH);
    x->stack[x->depth++] = (xframe){ s, gr->name };
    m->state = MEMO_BUSY;
    nset acc;
    int rc = nset_init(&acc);
    if (rc == 0)
        rc = s->kind == GRP_CLUSH ? x_eval_clush(x, s, gr, &acc) : x_eval_ansible(x, s, gr, &acc);
    x->depth--;
    if (rc == SMX_ENOMEM)
        smx_seterr(x->err, rc, "out of memory");
    if (rc < 0) {
        nset_free(&acc);
        m->state = MEMO_NONE;
        return rc;
    }
    smx_hostset_free(&acc.hs);
    m->names = acc.v;
    m->state = MEMO_DONE;
    *res = &m->names;
    return 0;
}

/* Every node of a source: ClusterShell's `@*` is its group "all" if it has one, else every
 * group together; the inventory's is `all`; genders' every node. */
static int x_all(xctx *x, const grp_source *s, nset *out)
{
    size_t gi;
    const smx_strvec *sub;
    int rc = 0;
    if (s->kind == GRP_GENDERS) {
        for (size_t i = 0; rc == 0 && i < s->nhosts; i++)
            rc = nset_add(out, s->hosts[i].name);
        return rc;
    }
    if (grp_index_get(&s->gix, "all", &gi) || s->kind == GRP_ANSIBLE) {
        if (s->kind == GRP_ANSIBLE) {
            for (size_t i = 0; rc == 0 && i < s->nhosts; i++)
                rc = nset_add(out, s->hosts[i].name);
            return rc;
        }
        rc = x_group(x, s, gi, &sub);
        return rc < 0 ? rc : nset_apply(out, ',', sub);
    }
    for (size_t i = 0; rc == 0 && i < s->ngroups; i++) {
        rc = x_group(x, s, i, &sub);
        if (rc == 0)
            rc = nset_apply(out, ',', sub);
    }
    return rc;
}

/* Looks `name` up in s: 1 found (names added to out), 0 not there, or an error. */
static int x_lookup(xctx *x, const grp_source *s, const char *name, nset *out)
{
    size_t gi;
    const smx_strvec *sub;
    if (strcmp(name, "*") == 0) {
        int rc = x_all(x, s, out);
        return rc < 0 ? rc : 1;
    }
    if (s->kind == GRP_GENDERS) {
        smx_strvec names = {0};
        int rc = grp_genders_query(s, name, &names, x->err);
        /* An attribute no node has is most likely a typo; a query may well be empty. */
        int query = strstr(name, "||") || strstr(name, "&&") || strstr(name, "--") ||
                    strpbrk(name, "~(");
        if (rc == 0 && names.n == 0)
            rc = query;
        else if (rc == 0)
            rc = nset_apply(out, ',', &names) < 0 ? SMX_ENOMEM : 1;
        smx_strvec_free(&names);
        return rc;
    }
    if (!grp_index_get(&s->gix, name, &gi))
        return 0;
    int rc = x_group(x, s, gi, &sub);
    if (rc < 0)
        return rc;
    rc = nset_apply(out, ',', sub);
    return rc < 0 ? rc : 1;
}

static const grp_source *x_source_named(const smx_groups *g, const char *name)
{
    const grp_source *s = grp_find_source(g, name, GRP_CLUSH);
    if (!s && strcmp(name, "ansible") == 0)
        s = grp_find_source(g, name, GRP_ANSIBLE);
    if (!s && strcmp(name, "genders") == 0)
        s = grp_find_source(g, name, GRP_GENDERS);
    return s;
}

/* The sources an unqualified top-level `@name` is looked up in, in order. */
static size_t x_default_sources(const smx_groups *g, const grp_source **out)
{
    size_t n = 0;
    const grp_source *d = g->default_src ? grp_find_source(g, g->default_src, GRP_CLUSH) : NULL;
    for (size_t i = 0; !d && i < g->nsrc; i++)
        if (g->src[i]->kind == GRP_CLUSH)
            d = g->src[i];
    if (d)
        out[n++] = d;
    if ((out[n] = grp_find_source(g, "ansible", GRP_ANSIBLE)))
        n++;
    if ((out[n] = grp_find_source(g, "genders", GRP_GENDERS)))
        n++;
    return n;
}

/* A group that is not where it was looked for: say where it is, if anywhere. */
static int x_missing(xctx *x, const grp_source *ctx, const char *ref, const char *name,
                     const grp_source *const *looked, size_t nlooked)
{
    const smx_groups *g = x->g;
    char hint[SMX_MSG_MAX - 64] = "";
    size_t gi;
    if (g->deferred)   /* the group may be in the file that did not load */
        snprintf(hint, sizeof hint, " (a group file read by default did not load: %.300s)",
                 g->deferred_err.msg);
    for (size_t i = 0; i < g->nsrc && !hint[0]; i++) {
        const grp_source *s = g->src[i];
        int skip = 0;
        for (size_t k = 0; k < nlooked; k++)
            skip |= looked[k] == s;
        if (!skip && s->kind != GRP_GENDERS && grp_index_get(&s->gix, name, &gi))
            snprintf(hint, sizeof hint, " (source \"%.64s\" has it: @%.64s:%.64s)", s->name,
                     s->name, name);
    }
    for (size_t k = 0; k < nlooked && !hint[0]; k++)
        if (looked[k]->upcalls)
            snprintf(hint, sizeof hint, " (source \"%.64s\" is defined by upcalls in %.200s, "
                     "which sshmux does not run)", looked[k]->name, looked[k]->origin);
    if (!g->nsrc && !g->deferred)
        snprintf(hint, sizeof hint, " (no group sources: see --groups, --inventory, --genders)");
    if (ctx)
        return smx_seterr(x->err, SMX_ENOENT, "unknown group @%s in source \"%s\" (%s)%s", ref,
                          ctx->name, ctx->origin, hint);
    return smx_seterr(x->err, SMX_ENOENT, "unknown group @%s%s", ref, hint);
}

/* `ref` (without '@'), seen inside source ctx (NULL: on a command line). */
static int x_ref(xctx *x, const grp_source *ctx, const char *ref, nset *out)
{
    const char *colon = strchr(ref, ':');
    const char *name = colon ? colon + 1 : ref;
    const grp_source *looked[3];
    size_t nlooked = 0;
    if (!*name || (colon && colon == ref))
        return smx_seterr(x->err, SMX_EINVAL, "\"@%s\": empty group or source name", ref);
    if (colon) {
        char *src = strndup(ref, (size_t)(colon - ref));
        if (!src)
            return smx_seterr(x->err, SMX_ENOMEM, "out of memory");
        looked[0] = x_source_named(x->g, src);
        free(src);
        if (!looked[0])
            return smx_seterr(x->err, SMX_ENOENT, "unknown group source in @%s%s%.300s%s", ref,
                              x->g->deferred ? " (a group file read by default did not load: "
                                             : "",
                              x->g->deferred ? x->g->deferred_err.msg : "",
                              x->g->deferred ? ")" : "");
        nlooked = 1;
    } else if (ctx) {
        looked[nlooked++] = ctx;
    } else {
        nlooked = x_default_sources(x->g, looked);
    }
    for (size_t i = 0; i < nlooked; i++) {
        int rc = x_lookup(x, looked[i], name, out);
        if (rc != 0)
            return rc < 0 ? rc : 0;
    }
    return x_missing(x, ctx, ref, name, looked, nlooked);
}

int smx_groups_expand(const smx_groups *g, const char *ref, size_t max, smx_strvec *out,
                      smx_err *err)
{
    static const smx_groups none;
    xctx x = { .g = g ? g : &none, .max = max, .err = err };
    nset acc;
    if (nset_init(&acc) < 0)
        return smx_seterr(err, SMX_ENOMEM, "out of memory");
    int rc = 0;
    if (x.g->nsrc && !(x.memo = calloc(x.g->nsrc, sizeof *x.memo)))
        rc = smx_seterr(err, SMX_ENOMEM, "out of memory");
    if (rc == 0)
        rc = x_ref(&x, NULL, ref, &acc);
    if (rc == SMX_ENOMEM)
        smx_seterr(err, rc, "out of memory");
    size_t added = 0;
    for (size_t i = 0; rc == 0 && i < acc.v.n; i++, added++)
        if (smx_strvec_push(out, acc.v.v[i]) < 0)
            rc = smx_seterr(err, SMX_ENOMEM, "out of memory");
    for (size_t i = 0; x.memo && i < x.g->nsrc; i++) {
        for (size_t k = 0; x.memo[i] && k < x.g->src[i]->ngroups; k++)
            smx_strvec_free(&x.memo[i][k].names);
        free(x.memo[i]);
    }
    free(x.memo);
    nset_free(&acc);
    return rc < 0 ? rc : (int)added;
}

/* ---- inventory variables --------------------------------------------------------------- */

static int grp_cmp_groups(const grp_source *s, size_t a, size_t b)
{
    const grp_group *x = &s->groups[a], *y = &s->groups[b];
    if (x->depth != y->depth)
        return x->depth < y->depth ? -1 : 1;
    if (x->priority != y->priority)
        return x->priority < y->priority ? -1 : 1;
    return strcmp(x->name, y->name);
}

int smx_groups_inventory_host(const smx_groups *g, const char *host, smx_invhost *out)
{
    const grp_source *s = g ? grp_find_source(g, "ansible", GRP_ANSIBLE) : NULL;
    size_t hi;
    memset(out, 0, sizeof *out);
    if (!s || !grp_index_get(&s->hix, host, &hi))
        return 0;
    const grp_host *h = &s->hosts[hi];
    /* The host's groups and all their ancestors, applied in Ansible's order (depth, priority,
     * name), then the host's own variables. */
    size_t *gs = NULL, n = 0, cap = 0;
    size_t all;
    if (grp_index_get(&s->gix, "all", &all) && grp_push_index(&gs, &n, &cap, all) < 0)
        return 0;
    for (size_t i = 0; i < h->ngroups; i++)
        if (grp_push_index(&gs, &n, &cap, h->groups[i]) < 0)
            break;
    for (size_t i = 0; i < n; i++) {
        const grp_group *gr = &s->groups[gs[i]];
        for (size_t k = 0; k < gr->nparents; k++)
            if (grp_push_index(&gs, &n, &cap, gr->parents[k]) < 0)
                break;
    }
    for (size_t i = 1; i < n; i++)   /* insertion sort: a host is in few groups */
        for (size_t k = i; k > 0 && grp_cmp_groups(s, gs[k - 1], gs[k]) > 0; k--) {
            size_t t = gs[k];
            gs[k] = gs[k - 1];
            gs[k - 1] = t;
        }
    const char *v[SMX_IV_COUNT] = {0}, *w[SMX_IV_COUNT] = {0};
    for (size_t i = 0; i < n; i++) {
        const grp_vars *gv = &s->groups[gs[i]].vars;
        for (int k = 0; k < SMX_IV_COUNT; k++)
            if (gv->v[k]) {
                v[k] = gv->v[k];
                w[k] = gv->where[k];
            }
    }
    free(gs);
    for (int k = 0; k < SMX_IV_COUNT; k++)
        if (h->vars.v[k]) {
            v[k] = h->vars.v[k];
            w[k] = h->vars.where[k];
        }
    out->host = v[SMX_IV_SSH_HOST] ? v[SMX_IV_SSH_HOST] : v[SMX_IV_HOST];
    out->host_where = v[SMX_IV_SSH_HOST] ? w[SMX_IV_SSH_HOST] : w[SMX_IV_HOST];
    out->port = v[SMX_IV_SSH_PORT] ? v[SMX_IV_SSH_PORT] : v[SMX_IV_PORT];
    out->port_where = v[SMX_IV_SSH_PORT] ? w[SMX_IV_SSH_PORT] : w[SMX_IV_PORT];
    out->user = v[SMX_IV_SSH_USER] ? v[SMX_IV_SSH_USER] : v[SMX_IV_USER];
    out->user_where = v[SMX_IV_SSH_USER] ? w[SMX_IV_SSH_USER] : w[SMX_IV_USER];
    return 1;
}
