/* Ansible inventories, INI and YAML, as ansible-core 2.14's ini and yaml inventory plugins read
 * them (what they accept, what they refuse), for what sshmux needs of them: groups, their
 * children, hosts (ranges such as web[01:03] and db-[a:c] expanded as Ansible does, a :port
 * suffix), and the connection variables ansible_host, ansible_port, ansible_user (and their old
 * ansible_ssh_* names) of hosts and groups. Other variables are read and ignored; Jinja
 * templates are not evaluated (a templated connection variable fails the host that uses it).
 *
 * Each file is read into a fresh source and merged into the source "ansible" only once it has
 * loaded whole, so a file that fails leaves nothing behind. As in Ansible, every group is a
 * child of `all`, and `ungrouped` holds the hosts of no other group.
 *
 * INI is read by hand: no library parses Ansible's dialect (shell-like quoting on host lines,
 * Python literals as values, [group:children] / [group:vars] sections, ranges in host names). */
#ifndef _DEFAULT_SOURCE
#define _DEFAULT_SOURCE
#endif
#include "groups_internal.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Host names one range pattern may give. */
#define INV_MAX_RANGE SMX_HOSTLIST_MAX

typedef struct inv_ctx {
    grp_source *t;            /* this file's inventory */
    const grp_source *before; /* what earlier files gave (may be NULL) */
    const char *path;
    unsigned long line;
    smx_err *err;
} inv_ctx;

__attribute__((format(printf, 3, 4)))
static int inv_error(inv_ctx *c, int code, const char *fmt, ...)
{
    char why[SMX_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    if (c->line)
        return smx_seterr(c->err, code, "%s:%lu: %s", c->path, c->line, why);
    return smx_seterr(c->err, code, "%s: %s", c->path, why);
}

static int inv_nomem(inv_ctx *c)
{
    return smx_seterr(c->err, SMX_ENOMEM, "out of memory");
}

/* ---- host patterns ----------------------------------------------------------------------- */

static const char inv_letters[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

static int inv_digits(const char *s)
{
    if (*s == '+' || *s == '-')
        s++;
    if (!*s)
        return 0;
    for (; *s; s++)
        if (!isdigit((unsigned char)*s))
            return 0;
    return 1;
}

/* Ansible's expand_hostname_range: the first [beg:end(:step)] is expanded (numbers, padded
 * like beg when it starts with 0, or letters), then the rest of each name, recursively. */
static int inv_expand(inv_ctx *c, const char *pat, smx_strvec *out)
{
    const char *open = strchr(pat, '['), *close = strchr(pat, ']');
    if (!open)
        return smx_strvec_push(out, pat) < 0 ? inv_nomem(c) : 0;
    if (!close || close < open || strchr(close + 1, '|') || strchr(pat, '|'))
        return inv_error(c, SMX_EINVAL, "host pattern \"%s\": unbalanced brackets%s", pat, "");
    char body[128];
    size_t blen = (size_t)(close - open - 1);
    if (blen >= sizeof body)
        return inv_error(c, SMX_EINVAL, "host pattern \"%s\": range too long%s", pat, "");
    memcpy(body, open + 1, blen);
    body[blen] = '\0';
    char *b[3] = { body, NULL, NULL };
    int nb = 1;
    for (char *p = body; *p; p++)
        if (*p == ':') {
            *p = '\0';
            if (nb < 3)
                b[nb] = p + 1;
            nb++;
        }
    if (nb != 2 && nb != 3)
        return inv_error(c, SMX_EINVAL, "host pattern \"%s\": host range must be begin:end or "
                         "begin:end:step%s", pat, "");
    const char *beg = *b[0] ? b[0] : "0", *end = b[1], *step_s = nb == 3 ? b[2] : "1";
    if (!*end)
        return inv_error(c, SMX_EINVAL, "host pattern \"%s\": host range must specify end "
                         "value%s", pat, "");
    if (!inv_digits(step_s) || atol(step_s) <= 0)
        return inv_error(c, SMX_EINVAL, "host pattern \"%s\": bad step \"%s\"", pat, step_s);
    long step = atol(step_s);
    int width = 0;
    if (beg[0] == '0' && strlen(beg) > 1) {
        width = (int)strlen(beg);
        if (strlen(end) != strlen(beg))
            return inv_error(c, SMX_EINVAL, "host pattern \"%s\": host range must specify "
                             "equal-length begin and end formats%s", pat, "");
    }
    size_t headlen = (size_t)(open - pat);
    const char *tail = close + 1;
    char *name = malloc(headlen + strlen(tail) + 32);
    if (!name)
        return inv_nomem(c);
    memcpy(name, pat, headlen);
    const char *lb = strstr(inv_letters, beg), *le = strstr(inv_letters, end);
    int rc = 0;
    if (lb && le) {   /* letters ("ab" is a substring too, as in Python's str.index) */
        long ib = lb - inv_letters, ie = le - inv_letters;
        if (ib > ie)
            rc = inv_error(c, SMX_EINVAL, "host pattern \"%s\": host range must have begin <= "
                           "end%s", pat, "");
        for (long i = ib; rc == 0 && i <= ie; i += step) {
            sprintf(name + headlen, "%c%s", inv_letters[i], tail);
            rc = inv_expand(c, name, out);
        }
    } else if (inv_digits(beg) && inv_digits(end) && strlen(beg) < 18 && strlen(end) < 18) {
        long long ib = atoll(beg), ie = atoll(end);
        if (ie >= ib && (unsigned long long)((ie - ib) / step) + out->n >= INV_MAX_RANGE)
            rc = inv_error(c, SMX_ERANGE, "host pattern \"%s\": more than %s hosts", pat,
                           "1000000");
        for (long long i = ib; rc == 0 && i <= ie; i += step) {
            sprintf(name + headlen, "%0*lld%s", width, i, tail);
            rc = inv_expand(c, name, out);
        }
    } else {
        rc = inv_error(c, SMX_EINVAL, "host pattern \"%s\": range bounds must be numbers or "
                       "letters%s", pat, "");
    }
    free(name);
    if (rc == 0 && out->n > INV_MAX_RANGE)
        rc = inv_error(c, SMX_ERANGE, "host pattern \"%s\": more than %s hosts", pat, "1000000");
    return rc;
}

/* parse_address(): "[host]:port" or "host:port" (ranges allowed in host), else no port. */
static int inv_hostpattern(inv_ctx *c, const char *pattern, smx_strvec *hosts, long *port)
{
    size_t len = strlen(pattern);
    char *host = strdup(pattern);
    if (!host)
        return inv_nomem(c);
    *port = 0;
    const char *colon = strrchr(pattern, ':');
    if (colon && colon[1] && inv_digits(colon + 1) && colon[1] != '+' && colon[1] != '-') {
        size_t hl = (size_t)(colon - pattern);
        int ok = 0;
        if (pattern[0] == '[' && hl >= 2 && pattern[hl - 1] == ']') {   /* [host]:port */
            memmove(host, pattern + 1, hl - 2);
            host[hl - 2] = '\0';
            ok = 1;
        } else {   /* host:port, where ':' may appear only inside brackets */
            int depth = 0;
            ok = hl > 0;
            for (size_t i = 0; i < hl && ok; i++) {
                if (pattern[i] == '[')
                    ok = depth++ == 0;
                else if (pattern[i] == ']')
                    ok = depth-- == 1;
                else if (pattern[i] == ':' && depth == 0)
                    ok = 0;
            }
            ok = ok && depth == 0;
            if (ok) {
                memcpy(host, pattern, hl);
                host[hl] = '\0';
            }
        }
        if (ok) {
            *port = atol(colon + 1);
            if (strlen(colon + 1) > 6 || *port > 65535 || *port < 1) {
                free(host);
                return inv_error(c, SMX_EINVAL, "host \"%s\": port %s is not 1..65535",
                                 pattern, colon + 1);
            }
        }
    } else if (len && pattern[len - 1] == ':') {
        free(host);
        return inv_error(c, SMX_EINVAL, "invalid host pattern \"%s\": ending in ':' is not "
                         "allowed (':' gives a port)%s", pattern, "");
    }
    int rc = inv_expand(c, host, hosts);
    free(host);
    for (size_t i = 0; rc == 0 && i < hosts->n; i++)
        if (strcmp(hosts->v[i], "---") == 0)
            rc = inv_error(c, SMX_EINVAL, "invalid host pattern \"%s\": '---' is normally a "
                           "sign this is a YAML file%s", pattern, "");
    return rc;
}

/* ---- building the inventory ---------------------------------------------------------- */

static int inv_group(inv_ctx *c, const char *name, size_t *gi)
{
    char *where = grp_where(c->path, c->line);
    int rc = where ? grp_source_group(c->t, name, where, gi) : SMX_ENOMEM;
    free(where);
    return rc < 0 ? inv_nomem(c) : 0;
}

/* Ansible's Group.set_variable / Host.set_variable for the variables sshmux uses. NULL value:
 * Python's None (nothing to set). */
static int inv_var(inv_ctx *c, grp_vars *vars, int *priority, const char *key, const char *value)
{
    if (!value)
        return 0;
    if (priority && strcmp(key, "ansible_group_priority") == 0) {
        if (!inv_digits(value))
            return inv_error(c, SMX_EINVAL, "ansible_group_priority \"%s\" is not a number%s",
                             value, "");
        *priority = atoi(value);
        return 0;
    }
    int which = grp_invvar(key);
    if (which < 0)
        return 0;
    char *where = grp_where(c->path, c->line);
    int rc = where ? grp_set_var(vars, which, value, where) : SMX_ENOMEM;
    free(where);
    return rc < 0 ? inv_nomem(c) : 0;
}

/* Adds hosts to group gi (port: their ansible_port when new, as Host(name, port) does). */
static int inv_add_hosts(inv_ctx *c, size_t gi, const smx_strvec *hosts, long port)
{
    for (size_t i = 0; i < hosts->n; i++) {
        size_t hi, old = c->t->nhosts, pos;
        const char *name = hosts->v[i];
        if (grp_source_host(c->t, name, &hi) < 0)
            return inv_nomem(c);
        if (port && hi == old && !(c->before && grp_index_get(&c->before->hix, name, &pos))) {
            char num[16];
            snprintf(num, sizeof num, "%ld", port);
            int rc = inv_var(c, &c->t->hosts[hi].vars, NULL, "ansible_port", num);
            if (rc < 0)
                return rc;
        }
        grp_group *gr = &c->t->groups[gi];
        grp_host *h = &c->t->hosts[hi];
        if (!grp_index_get(&gr->hostix, h->name, &pos)) {
            if (smx_strvec_push(&gr->hosts, name) < 0 ||
                grp_index_put(&gr->hostix, gr->hosts.v[gr->hosts.n - 1], gr->hosts.n - 1) < 0)
                return inv_nomem(c);
        }
        if (grp_push_index(&h->groups, &h->ngroups, &h->capgroups, gi) < 0)
            return inv_nomem(c);
    }
    return 0;
}

static int inv_add_child(inv_ctx *c, size_t parent, size_t child)
{
    if (parent == child)
        return inv_error(c, SMX_EINVAL, "group \"%s\" cannot be a child of itself%s",
                         c->t->groups[parent].name, "");
    grp_group *p = &c->t->groups[parent];
    return grp_push_index(&p->children, &p->nchildren, &p->capchildren, child) < 0
        ? inv_nomem(c) : 0;
}

/* ---- INI ------------------------------------------------------------------------------- */

/* Python's ast.literal_eval for the values that matter here: a quoted string (escapes \\ \'
 * \" \n \t), an integer, True/False, None; a comment after the literal is ignored, as Python's
 * tokenizer ignores it. Anything else is the text itself. *out NULL means None. */
static int inv_literal(const char *v, char **out)
{
    const char *p = v;
    while (isspace((unsigned char)*p))
        p++;
    char *lit = malloc(strlen(p) + 1);
    if (!lit)
        return SMX_ENOMEM;
    size_t n = 0;
    const char *end = NULL;
    if (*p == '\'' || *p == '"') {
        char q = *p++;
        for (; *p && *p != q; p++) {
            if (*p == '\\' && p[1]) {
                p++;
                lit[n++] = *p == 'n' ? '\n' : *p == 't' ? '\t' : *p;
            } else {
                lit[n++] = *p;
            }
        }
        if (*p == q)
            end = p + 1;
    } else {
        const char *s = p;
        if (*s == '+' || *s == '-')
            s++;
        const char *d = s;
        while (isdigit((unsigned char)*d))
            d++;
        if (d > s && (d - s == 1 || *s != '0')) {
            if (*p == '-')
                lit[n++] = '-';
            memcpy(lit + n, s, (size_t)(d - s));
            n += (size_t)(d - s);
            end = d;
        } else if (strncmp(p, "None", 4) == 0 && !isalnum((unsigned char)p[4])) {
            end = p + 4;
            free(lit);
            lit = NULL;
        } else if ((strncmp(p, "True", 4) == 0 && !isalnum((unsigned char)p[4])) ||
                   (strncmp(p, "False", 5) == 0 && !isalnum((unsigned char)p[5]))) {
            size_t w = p[0] == 'T' ? 4 : 5;
            memcpy(lit, p, w);
            n = w;
            end = p + w;
        }
    }
    if (end) {
        while (isspace((unsigned char)*end))
            end++;
        if (!*end || *end == '#') {
            if (lit)
                lit[n] = '\0';
            *out = lit;
            return 0;
        }
    }
    free(lit);
    return (*out = strdup(v)) ? 0 : SMX_ENOMEM;
}

/* shlex.split(line, comments=True) in POSIX mode: words split at blanks, '...' and "..." quote,
 * backslash escapes outside single quotes, '#' outside quotes ends the line. */
static int inv_shlex(inv_ctx *c, const char *line, smx_strvec *out)
{
    char *w = malloc(strlen(line) + 1);
    if (!w)
        return inv_nomem(c);
    int rc = 0;
    const char *p = line;
    for (;;) {
        while (*p && isspace((unsigned char)*p))
            p++;
        if (!*p || *p == '#')
            break;
        size_t n = 0;
        char q = 0;
        for (; *p && (q || (!isspace((unsigned char)*p) && *p != '#')); p++) {
            if (q == '\'') {
                if (*p == q)
                    q = 0;
                else
                    w[n++] = *p;
            } else if (q == '"') {
                if (*p == q)
                    q = 0;
                else if (*p == '\\' && p[1] && strchr("\\\"", p[1]))   /* as shlex: only these */
                    w[n++] = *++p;
                else
                    w[n++] = *p;
            } else if (*p == '\'' || *p == '"') {
                q = *p;
            } else if (*p == '\\' && p[1]) {
                w[n++] = *++p;
            } else {
                w[n++] = *p;
            }
        }
        if (q) {
            rc = inv_error(c, SMX_EINVAL, "error parsing host definition \"%s\": no closing "
                           "quotation%s", line, "");
            break;
        }
        w[n] = '\0';
        if (smx_strvec_push(out, w) < 0) {
            rc = inv_nomem(c);
            break;
        }
    }
    free(w);
    return rc;
}

static int inv_ini_host_line(inv_ctx *c, const char *line, size_t gi)
{
    smx_strvec tok = {0}, hosts = {0};
    long port = 0;
    int rc = inv_shlex(c, line, &tok);
    if (rc == 0 && tok.n == 0) {
        smx_strvec_free(&tok);
        return 0;
    }
    if (rc == 0)
        rc = inv_hostpattern(c, tok.v[0], &hosts, &port);
    if (rc == 0)
        rc = inv_add_hosts(c, gi, &hosts, port);
    for (size_t i = 1; rc == 0 && i < tok.n; i++) {
        char *eq = strchr(tok.v[i], '=');
        char *value = NULL;
        if (!eq) {
            rc = inv_error(c, SMX_EINVAL, "expected key=value host variable assignment, got: "
                           "%s%s", tok.v[i], "");
            break;
        }
        *eq = '\0';
        if (inv_literal(eq + 1, &value) < 0) {
            rc = inv_nomem(c);
            break;
        }
        for (size_t k = 0; rc == 0 && k < hosts.n; k++) {
            size_t hi;
            grp_index_get(&c->t->hix, hosts.v[k], &hi);
            rc = inv_var(c, &c->t->hosts[hi].vars, NULL, tok.v[i], value);
        }
        free(value);
    }
    smx_strvec_free(&tok);
    smx_strvec_free(&hosts);
    return rc;
}

/* A group name: non-empty, no blanks, ':' or ']' (Ansible's pattern), then maybe a comment. */
static int inv_ini_name(const char *s, size_t *len)
{
    size_t n = strcspn(s, ": \t]");
    const char *rest = s + n;
    if (n == 0)
        return 0;
    while (*rest == ' ' || *rest == '\t')
        rest++;
    *len = n;
    return !*rest || *rest == '#';
}

typedef struct inv_edge {
    size_t parent;
    char *child;
    unsigned long line;
} inv_edge;

static int inv_known(inv_ctx *c, const char *name, const int *declared)
{
    size_t gi;
    if (grp_index_get(&c->t->gix, name, &gi) && declared[gi])
        return 1;
    return c->before && grp_index_get(&c->before->gix, name, &gi);
}

static int inv_parse_ini(inv_ctx *c, char *text)
{
    size_t gi;
    int rc = inv_group(c, "ungrouped", &gi);
    enum { ST_HOSTS, ST_CHILDREN, ST_VARS } state = ST_HOSTS;
    inv_edge *edges = NULL;
    size_t nedges = 0, capedges = 0;
    struct { size_t gi; unsigned long line; } *varsecs = NULL;
    size_t nvars = 0, capvars = 0;
    c->line = 0;
    for (char *line = text, *next; rc == 0 && line; line = next) {
        c->line++;
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        char *t = line;
        while (isspace((unsigned char)*t))
            t++;
        size_t n = strlen(t);
        while (n && isspace((unsigned char)t[n - 1]))
            t[--n] = '\0';
        if (!*t || *t == '#' || *t == ';')
            continue;
        if (*t == '[') {
            size_t nl = strcspn(t + 1, ": \t]");
            char *after = t + 1 + nl, *tag = NULL;
            size_t taglen = 0;
            if (*after == ':') {
                tag = after + 1;
                while (isalnum((unsigned char)tag[taglen]) || tag[taglen] == '_')
                    taglen++;
                after = tag + taglen;
            }
            const char *rest = after + (*after == ']');
            while (*rest == ' ' || *rest == '\t')
                rest++;
            if (nl == 0 || *after != ']' || (tag && taglen == 0) || (*rest && *rest != '#')) {
                if (t[n - 1] == ']') {
                    rc = inv_error(c, SMX_EINVAL, "invalid section entry: \"%s\" (no spaces "
                                   "or other invalid characters in a section entry)%s", t, "");
                    break;
                }
                goto host_line;   /* e.g. "[::1]:22": a host, as Ansible reads it */
            }
            t[1 + nl] = '\0';
            if (tag)
                tag[taglen] = '\0';
            const char *name = t + 1;
            if (!tag || strcmp(tag, "hosts") == 0)
                state = ST_HOSTS;
            else if (strcmp(tag, "children") == 0)
                state = ST_CHILDREN;
            else if (strcmp(tag, "vars") == 0)
                state = ST_VARS;
            else {
                rc = inv_error(c, SMX_EINVAL, "section [%s:%s] has an unknown type", name, tag);
                break;
            }
            if ((rc = inv_group(c, name, &gi)) < 0)
                break;
            if (state != ST_VARS)
                c->t->groups[gi].declared = 1;
            else {
                if (nvars == capvars) {
                    size_t cap = capvars ? capvars * 2 : 8;
                    void *p = realloc(varsecs, cap * sizeof *varsecs);
                    if (!p) {
                        rc = inv_nomem(c);
                        break;
                    }
                    varsecs = p;
                    capvars = cap;
                }
                varsecs[nvars].gi = gi;
                varsecs[nvars++].line = c->line;
            }
            continue;
        }
host_line:
        if (state == ST_HOSTS) {
            rc = inv_ini_host_line(c, t, gi);
        } else if (state == ST_VARS) {
            char *eq = strchr(t, '='), *value = NULL;
            if (!eq) {
                rc = inv_error(c, SMX_EINVAL, "expected key=value, got: %s%s", t, "");
                break;
            }
            *eq = '\0';
            char *k = t;
            size_t kl = strlen(k);
            while (kl && isspace((unsigned char)k[kl - 1]))
                k[--kl] = '\0';
            char *v = eq + 1;
            while (isspace((unsigned char)*v))
                v++;
            if (inv_literal(v, &value) < 0)
                rc = inv_nomem(c);
            else
                rc = inv_var(c, &c->t->groups[gi].vars, &c->t->groups[gi].priority, k, value);
            free(value);
        } else {
            size_t len;
            if (!inv_ini_name(t, &len)) {
                rc = inv_error(c, SMX_EINVAL, "expected group name, got: %s%s", t, "");
                break;
            }
            if (nedges == capedges) {
                size_t cap = capedges ? capedges * 2 : 8;
                inv_edge *p = realloc(edges, cap * sizeof *p);
                if (!p) {
                    rc = inv_nomem(c);
                    break;
                }
                edges = p;
                capedges = cap;
            }
            edges[nedges].parent = gi;
            edges[nedges].line = c->line;
            if (!(edges[nedges].child = strndup(t, len))) {
                rc = inv_nomem(c);
                break;
            }
            nedges++;
        }
    }
    /* Children and vars sections may name groups declared further down, but not never. */
    int *declared = calloc(c->t->ngroups + 1, sizeof *declared);
    if (rc == 0 && !declared)
        rc = inv_nomem(c);
    for (size_t i = 0; rc == 0 && i < c->t->ngroups; i++)
        declared[i] = c->t->groups[i].declared;
    for (size_t i = 0; rc == 0 && i < nedges; i++) {
        size_t ci;
        c->line = edges[i].line;
        if (!inv_known(c, edges[i].child, declared))
            rc = inv_error(c, SMX_EINVAL, "section [%s:children] includes undefined group: %s",
                           c->t->groups[edges[i].parent].name, edges[i].child);
        else if ((rc = inv_group(c, edges[i].child, &ci)) == 0)
            rc = inv_add_child(c, edges[i].parent, ci);
    }
    for (size_t i = 0; rc == 0 && i < nvars; i++) {
        const char *name = c->t->groups[varsecs[i].gi].name;
        size_t ci;
        int child = 0;
        for (size_t k = 0; k < nedges && !child; k++)
            child = strcmp(edges[k].child, name) == 0;
        c->line = varsecs[i].line;
        if (!inv_known(c, name, declared) && !(child && grp_index_get(&c->t->gix, name, &ci)))
            rc = inv_error(c, SMX_EINVAL, "section [%s:vars] not valid for undefined group: %s",
                           name, name);
    }
    for (size_t i = 0; i < nedges; i++)
        free(edges[i].child);
    free(edges);
    free(varsecs);
    free(declared);
    return rc;
}

/* ---- YAML ------------------------------------------------------------------------------ */

static int inv_yaml_group(inv_ctx *c, grp_yaml *y, const char *name, yaml_node_t *data,
                          size_t *out);

static const char *inv_yaml_key(inv_ctx *c, yaml_node_t *k)
{
    c->line = grp_yaml_line(k);
    return grp_yaml_scalar(k);
}

/* A section's entries: a mapping, or a single string (Ansible turns "x" into {x: None}). */
typedef struct inv_entries {
    yaml_node_pair_t *start, *top;
    yaml_node_t *single;
} inv_entries;

static int inv_yaml_entries(inv_ctx *c, const char *group, const char *section, yaml_node_t *v,
                            inv_entries *e)
{
    memset(e, 0, sizeof *e);
    if (grp_yaml_is_null(v))
        return 0;
    if (v->type == YAML_SCALAR_NODE) {
        e->single = v;
        return 0;
    }
    if (v->type != YAML_MAPPING_NODE)
        return inv_error(c, SMX_EINVAL, "invalid \"%s\" entry for \"%s\" group, requires a "
                         "dictionary, found a list instead", section, group);
    e->start = v->data.mapping.pairs.start;
    e->top = v->data.mapping.pairs.top;
    return 0;
}

static int inv_yaml_vars(inv_ctx *c, grp_yaml *y, grp_vars *vars, int *priority,
                         yaml_node_t *map)
{
    if (grp_yaml_is_null(map) || map->type != YAML_MAPPING_NODE)
        return 0;
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = grp_yaml_node(y, p->key), *v = grp_yaml_node(y, p->value);
        const char *key = inv_yaml_key(c, k);
        if (!key || (grp_invvar(key) < 0 && strcmp(key, "ansible_group_priority") != 0))
            continue;
        if (v && v->type != YAML_SCALAR_NODE)
            return inv_error(c, SMX_EINVAL, "%s must be a string or a number%s", key, "");
        int rc = inv_var(c, vars, priority, key, grp_yaml_is_null(v) ? NULL : grp_yaml_scalar(v));
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int inv_yaml_hosts(inv_ctx *c, grp_yaml *y, size_t gi, const inv_entries *e)
{
    yaml_node_pair_t single = {0, 0};
    yaml_node_pair_t *start = e->start, *top = e->top;
    if (e->single) {
        start = &single;
        top = start + 1;
    }
    for (yaml_node_pair_t *p = start; p < top; p++) {
        yaml_node_t *k = e->single ? e->single : grp_yaml_node(y, p->key);
        yaml_node_t *v = e->single ? NULL : grp_yaml_node(y, p->value);
        const char *pattern = inv_yaml_key(c, k);
        smx_strvec hosts = {0};
        long port = 0;
        int rc = grp_yaml_visit(y, k, c->err);
        if (rc == 0 && !pattern)
            rc = inv_error(c, SMX_EINVAL, "group \"%s\": host names must be strings%s",
                           c->t->groups[gi].name, "");
        if (rc == 0)
            rc = inv_hostpattern(c, pattern, &hosts, &port);
        if (rc == 0)
            rc = inv_add_hosts(c, gi, &hosts, port);
        if (rc == 0 && v && !grp_yaml_is_null(v) && v->type != YAML_MAPPING_NODE)
            rc = inv_error(c, SMX_EINVAL, "host \"%s\": its variables must be a mapping%s",
                           pattern, "");
        for (size_t i = 0; rc == 0 && v && i < hosts.n; i++) {
            size_t hi;
            grp_index_get(&c->t->hix, hosts.v[i], &hi);
            rc = inv_yaml_vars(c, y, &c->t->hosts[hi].vars, NULL, v);
        }
        smx_strvec_free(&hosts);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* Ansible's yaml plugin _parse_group: data is a mapping (or null) of vars, children, hosts. */
static int inv_yaml_group(inv_ctx *c, grp_yaml *y, const char *name, yaml_node_t *data,
                          size_t *out)
{
    size_t gi;
    int rc = grp_yaml_visit(y, data, c->err);
    if (rc < 0)
        return rc;
    if (data && !grp_yaml_is_null(data) && data->type != YAML_MAPPING_NODE) {
        *out = (size_t)-1;   /* Ansible skips it with a warning */
        return 0;
    }
    if ((rc = inv_group(c, name, &gi)) < 0)
        return rc;
    *out = gi;
    c->t->groups[gi].declared = 1;
    if (!data || data->type != YAML_MAPPING_NODE)
        return 0;
    for (yaml_node_pair_t *p = data->data.mapping.pairs.start;
         rc == 0 && p < data->data.mapping.pairs.top; p++) {
        yaml_node_t *k = grp_yaml_node(y, p->key), *v = grp_yaml_node(y, p->value);
        const char *key = inv_yaml_key(c, k);
        inv_entries e;
        if (!key || (strcmp(key, "vars") && strcmp(key, "children") && strcmp(key, "hosts")))
            continue;   /* Ansible: "Skipping unexpected key" */
        if ((rc = inv_yaml_entries(c, name, key, v, &e)) < 0)
            break;
        if (strcmp(key, "vars") == 0) {
            if (!e.single)
                rc = inv_yaml_vars(c, y, &c->t->groups[gi].vars, &c->t->groups[gi].priority, v);
        } else if (strcmp(key, "hosts") == 0) {
            rc = inv_yaml_hosts(c, y, gi, &e);
        } else {
            yaml_node_pair_t *start = e.start, *top = e.top;
            yaml_node_pair_t single = {0, 0};
            if (e.single) {
                start = &single;
                top = start + 1;
            }
            for (yaml_node_pair_t *q = start; rc == 0 && q < top; q++) {
                yaml_node_t *ck = e.single ? e.single : grp_yaml_node(y, q->key);
                yaml_node_t *cv = e.single ? NULL : grp_yaml_node(y, q->value);
                const char *child = inv_yaml_key(c, ck);
                size_t ci;
                if (!child || !*child) {
                    rc = inv_error(c, SMX_EINVAL, "group \"%s\": child group names must be "
                                   "strings%s", name, "");
                    break;
                }
                char *copy = strdup(child);
                if (!copy)
                    return inv_nomem(c);
                rc = inv_yaml_group(c, y, copy, cv, &ci);
                c->line = grp_yaml_line(ck);
                if (rc == 0 && ci == (size_t)-1)   /* skipped: Ansible then fails add_child */
                    rc = inv_error(c, SMX_EINVAL, "group \"%s\": child \"%s\" is not a valid "
                                   "group definition", name, copy);
                if (rc == 0)
                    rc = inv_add_child(c, gi, ci);
                free(copy);
            }
        }
    }
    return rc;
}

static int inv_parse_yaml(inv_ctx *c, grp_yaml *y)
{
    yaml_node_t *root = grp_yaml_root(y);
    size_t gi;
    c->line = 0;
    if (!root || grp_yaml_is_null(root))
        return inv_error(c, SMX_EINVAL, "parsed empty YAML file%s%s", "", "");
    if (root->type != YAML_MAPPING_NODE)
        return inv_error(c, SMX_EINVAL, "YAML inventory has invalid structure, it should be a "
                         "dictionary%s%s", "", "");
    int rc = inv_group(c, "ungrouped", &gi);
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start;
         rc == 0 && p < root->data.mapping.pairs.top; p++) {
        const char *key = grp_yaml_scalar(grp_yaml_node(y, p->key));
        if (key && strcmp(key, "plugin") == 0)
            return inv_error(c, SMX_EINVAL, "plugin configuration YAML file, not YAML "
                             "inventory (inventory plugins are not run)%s%s", "", "");
    }
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start;
         rc == 0 && p < root->data.mapping.pairs.top; p++) {
        yaml_node_t *k = grp_yaml_node(y, p->key);
        const char *name = inv_yaml_key(c, k);
        if (!name || !*name) {
            rc = inv_error(c, SMX_EINVAL, "group names must be strings%s%s", "", "");
            break;
        }
        rc = inv_yaml_group(c, y, name, grp_yaml_node(y, p->value), &gi);
    }
    return rc;
}

/* ---- merging and finishing --------------------------------------------------------------- */

static int inv_merge(grp_source *dst, const grp_source *t)
{
    size_t *map = calloc(t->ngroups ? t->ngroups : 1, sizeof *map);
    if (!map)
        return SMX_ENOMEM;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < t->ngroups; i++)
        rc = grp_source_group(dst, t->groups[i].name, t->groups[i].where, &map[i]);
    for (size_t i = 0; rc == 0 && i < t->ngroups; i++) {
        const grp_group *sg = &t->groups[i];
        grp_group *dg = &dst->groups[map[i]];
        size_t pos;
        for (size_t k = 0; rc == 0 && k < sg->hosts.n; k++) {
            if (grp_index_get(&dg->hostix, sg->hosts.v[k], &pos))
                continue;
            if (smx_strvec_push(&dg->hosts, sg->hosts.v[k]) < 0 ||
                grp_index_put(&dg->hostix, dg->hosts.v[dg->hosts.n - 1], dg->hosts.n - 1) < 0)
                rc = SMX_ENOMEM;
        }
        for (size_t k = 0; rc == 0 && k < sg->nchildren; k++)
            rc = grp_push_index(&dg->children, &dg->nchildren, &dg->capchildren,
                                map[sg->children[k]]);
        for (int v = 0; rc == 0 && v < SMX_IV_COUNT; v++)
            if (sg->vars.v[v])
                rc = grp_set_var(&dg->vars, v, sg->vars.v[v], sg->vars.where[v]);
        if (sg->priority != 1)
            dg->priority = sg->priority;
    }
    for (size_t i = 0; rc == 0 && i < t->nhosts; i++) {
        const grp_host *sh = &t->hosts[i];
        size_t hi;
        if ((rc = grp_source_host(dst, sh->name, &hi)) < 0)
            break;
        grp_host *dh = &dst->hosts[hi];
        for (int v = 0; rc == 0 && v < SMX_IV_COUNT; v++)
            if (sh->vars.v[v])
                rc = grp_set_var(&dh->vars, v, sh->vars.v[v], sh->vars.where[v]);
        for (size_t k = 0; rc == 0 && k < sh->ngroups; k++)
            rc = grp_push_index(&dh->groups, &dh->ngroups, &dh->capgroups, map[sh->groups[k]]);
    }
    free(map);
    return rc;
}

/* Depth: 0 for all, else one more than the deepest parent (every group is a child of all). */
static int inv_depth(grp_source *s, size_t gi, int *state, smx_err *err)
{
    grp_group *gr = &s->groups[gi];
    if (state[gi] == 2)
        return 0;
    if (state[gi] == 1)
        return smx_seterr(err, SMX_EINVAL, "inventory group \"%s\" is its own ancestor (a "
                          "recursive dependency loop)", gr->name);
    state[gi] = 1;
    int depth = strcmp(gr->name, "all") == 0 ? 0 : 1;
    for (size_t i = 0; i < gr->nparents; i++) {
        int rc = inv_depth(s, gr->parents[i], state, err);
        if (rc < 0)
            return rc;
        if (s->groups[gr->parents[i]].depth + 1 > depth)
            depth = s->groups[gr->parents[i]].depth + 1;
    }
    gr->depth = depth;
    state[gi] = 2;
    return 0;
}

int grp_ansible_finalize(grp_source *s, smx_err *err)
{
    for (size_t i = 0; i < s->ngroups; i++)
        s->groups[i].nparents = 0;
    for (size_t i = 0; i < s->ngroups; i++)
        for (size_t k = 0; k < s->groups[i].nchildren; k++) {
            grp_group *child = &s->groups[s->groups[i].children[k]];
            if (grp_push_index(&child->parents, &child->nparents, &child->capparents, i) < 0)
                return smx_seterr(err, SMX_ENOMEM, "out of memory");
        }
    int *state = calloc(s->ngroups ? s->ngroups : 1, sizeof *state);
    if (!state)
        return smx_seterr(err, SMX_ENOMEM, "out of memory");
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < s->ngroups; i++)
        rc = inv_depth(s, i, state, err);
    free(state);
    return rc;
}

static int inv_is_yaml_name(const char *path)
{
    const char *dot = strrchr(path, '.'), *slash = strrchr(path, '/');
    if (!dot || (slash && dot < slash))
        return 0;
    return strcmp(dot, ".yml") == 0 || strcmp(dot, ".yaml") == 0 || strcmp(dot, ".json") == 0;
}

int smx_groups_load_inventory(smx_groups *g, const char *path, smx_err *err)
{
    char *text;
    size_t len;
    int rc = smx__groups_read_file(path, &text, &len, err);
    if (rc < 0)
        return rc;
    grp_source *dst = grp_find_source(g, "ansible", GRP_ANSIBLE);
    inv_ctx c = { grp_source_new("ansible", GRP_ANSIBLE, path), dst, path, 0, err };
    if (!c.t) {
        free(text);
        return smx_seterr(err, SMX_ENOMEM, "out of memory");
    }
    size_t gi;
    rc = inv_group(&c, "all", &gi);
    if (rc == 0)
        c.t->groups[gi].declared = 1;   /* all and ungrouped always exist */
    if (rc == 0 && (rc = inv_group(&c, "ungrouped", &gi)) == 0)
        c.t->groups[gi].declared = 1;
    if (rc == 0 && strncmp(text, "#!", 2) == 0) {
        rc = smx_seterr(err, SMX_EINVAL, "%s: an inventory script: sshmux does not run "
                        "inventory scripts (give it their output as a YAML file)", path);
    } else if (rc == 0) {
        /* As Ansible tries its yaml plugin before ini: .yml/.yaml/.json are YAML; any other
         * file is YAML when it reads as a YAML mapping, else INI. */
        grp_yaml y;
        smx_err yerr = {{0}};
        int yrc = grp_yaml_load(&y, path, text, len, &yerr);
        yaml_node_t *root = yrc == 0 ? grp_yaml_root(&y) : NULL;
        if (inv_is_yaml_name(path) || (root && root->type == YAML_MAPPING_NODE)) {
            if (yrc < 0) {
                *err = yerr;
                rc = yrc;
            } else {
                rc = inv_parse_yaml(&c, &y);
            }
        } else if (yrc == SMX_ENOMEM) {
            rc = smx_seterr(err, yrc, "out of memory");
        } else {
            rc = inv_parse_ini(&c, text);
        }
        if (yrc == 0)
            grp_yaml_free(&y);
    }
    free(text);
    smx_err ferr = {{0}};
    if (rc == 0 && (rc = grp_ansible_finalize(c.t, &ferr)) < 0)
        smx_seterr(err, rc, "%s: %s", path, ferr.msg);
    if (rc == 0 && !dst) {
        rc = grp_add_source(g, c.t);
        c.t = NULL;
        dst = rc == 0 ? grp_find_source(g, "ansible", GRP_ANSIBLE) : NULL;
    } else if (rc == 0) {
        rc = inv_merge(dst, c.t) < 0 ? smx_seterr(err, SMX_ENOMEM, "out of memory") : 0;
        if (rc == 0 && (rc = grp_ansible_finalize(dst, &ferr)) < 0)
            smx_seterr(err, rc, "%s: %s", path, ferr.msg);
    }
    grp_source_free(c.t);
    return rc;
}
