/* genders files (LLNL's genders(5), what pdsh -g and nodeattr read):
 *     nodes   attr[=value],attr[=value],...      # comment
 * nodes being a comma-separated host list with ranges (slc[0-15]), the attributes one word
 * without blanks; "%n" in a value is the node's name. A node may appear on several lines; an
 * attribute twice for one node is an error, as libgenders makes it.
 *
 * Queries are nodeattr's: "attr" (any value), "attr=value", combined with || (union),
 * && (intersection), -- (difference), ~ (complement, prefix) and parentheses; the binary
 * operators have equal precedence and apply left to right (checked against nodeattr 1.22:
 * "a||b&&c" is (a||b)&&c). pdsh's -g ATTR[,ATTR...] is the union of its comma-separated parts.
 *
 * Hand-written: the format is a few lines of grammar, and libgenders would add a run-time
 * dependency for it. */
#ifndef _DEFAULT_SOURCE
#define _DEFAULT_SOURCE
#endif
#include "groups_internal.h"
#include "hostset.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "value" with %n replaced by the node name (and %% by %). */
static char *gd_subst(const char *attr, const char *node)
{
    size_t size = strlen(attr) + 1, nl = strlen(node);
    for (const char *p = attr; *p; p++)
        if (p[0] == '%' && p[1] == 'n')
            size += nl;
    char *out = malloc(size), *o = out;
    if (!out)
        return NULL;
    for (const char *p = attr; *p; p++) {
        if (p[0] == '%' && p[1] == 'n') {
            memcpy(o, node, nl);
            o += nl;
            p++;
        } else if (p[0] == '%' && p[1] == '%') {
            *o++ = '%';
            p++;
        } else {
            *o++ = *p;
        }
    }
    *o = '\0';
    return out;
}

static size_t gd_name_len(const char *a)
{
    return strcspn(a, "=");
}

/* Adds attribute a ("attr" or "attr=value") to host h; SMX_EINVAL if it has it already. */
static int gd_add_attr(grp_host *h, const char *a, const char *where, smx_err *err)
{
    size_t n = gd_name_len(a);
    for (size_t i = 0; i < h->attrs.n; i++)
        if (gd_name_len(h->attrs.v[i]) == n && strncmp(h->attrs.v[i], a, n) == 0)
            return smx_seterr(err, SMX_EINVAL, "%s: node \"%s\": attribute \"%.*s\" given twice",
                              where, h->name, (int)n, a);
    char *v = gd_subst(a, h->name);
    if (smx_strvec_push_owned(&h->attrs, v) < 0)
        return smx_seterr(err, SMX_ENOMEM, "out of memory");
    return 0;
}

static int gd_line(grp_source *t, char *line, const char *where, smx_err *err)
{
    line[strcspn(line, "#\r")] = '\0';
    char *p = line;
    while (isspace((unsigned char)*p))
        p++;
    if (!*p)
        return 0;
    char *nodes = p;
    while (*p && !isspace((unsigned char)*p))
        p++;
    if (*p)
        *p++ = '\0';
    while (isspace((unsigned char)*p))
        p++;
    char *attrs = p;
    while (*p && !isspace((unsigned char)*p))
        p++;
    char *rest = p;
    while (isspace((unsigned char)*rest))
        rest++;
    if (*rest)
        return smx_seterr(err, SMX_EINVAL, "%s: white space inside the attribute list", where);
    *p = '\0';
    smx_strvec names = {0}, list = {0};
    smx_err e = {{0}};
    int rc = grp_expand_pattern(nodes, &names, SMX_HOSTLIST_MAX, &e);
    if (rc < 0)
        rc = smx_seterr(err, rc, "%s: %s", where, e.msg);
    for (char *a = attrs; rc == 0 && *attrs;) {
        size_t n = strcspn(a, ",");
        if (n == 0 || a[0] == '=') {
            rc = smx_seterr(err, SMX_EINVAL, "%s: empty attribute name in \"%s\"", where, attrs);
            break;
        }
        char *item = strndup(a, n);
        if (!item || smx_strvec_push_owned(&list, item) < 0)
            rc = smx_seterr(err, SMX_ENOMEM, "out of memory");
        if (!a[n])
            break;
        a += n + 1;
    }
    for (size_t i = 0; rc == 0 && i < names.n; i++) {
        size_t hi;
        if (grp_source_host(t, names.v[i], &hi) < 0) {
            rc = smx_seterr(err, SMX_ENOMEM, "out of memory");
            break;
        }
        for (size_t k = 0; rc == 0 && k < list.n; k++)
            rc = gd_add_attr(&t->hosts[hi], list.v[k], where, err);
    }
    smx_strvec_free(&names);
    smx_strvec_free(&list);
    return rc;
}

int smx_groups_load_genders(smx_groups *g, const char *path, smx_err *err)
{
    char *text;
    size_t len;
    int rc = smx__groups_read_file(path, &text, &len, err);
    if (rc < 0)
        return rc;
    grp_source *t = grp_source_new("genders", GRP_GENDERS, path);
    if (!t) {
        free(text);
        return smx_seterr(err, SMX_ENOMEM, "out of memory");
    }
    unsigned long lineno = 0;
    for (char *line = text, *next; rc == 0 && line; line = next) {
        lineno++;
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        char *where = grp_where(path, lineno);
        rc = where ? gd_line(t, line, where, err) : smx_seterr(err, SMX_ENOMEM, "out of memory");
        free(where);
    }
    free(text);
    grp_source *dst = grp_find_source(g, "genders", GRP_GENDERS);
    if (rc == 0 && !dst)
        return grp_add_source(g, t) < 0 ? smx_seterr(err, SMX_ENOMEM, "out of memory") : 0;
    for (size_t i = 0; rc == 0 && i < t->nhosts; i++) {   /* a second file: its attributes too */
        size_t hi;
        if (grp_source_host(dst, t->hosts[i].name, &hi) < 0) {
            rc = smx_seterr(err, SMX_ENOMEM, "out of memory");
            break;
        }
        for (size_t k = 0; rc == 0 && k < t->hosts[i].attrs.n; k++)
            rc = gd_add_attr(&dst->hosts[hi], t->hosts[i].attrs.v[k], path, err);
    }
    grp_source_free(t);
    return rc;
}

/* ---- queries ------------------------------------------------------------------------------ */

typedef struct gd_q {
    const grp_source *s;
    const char *query, *p;
    int depth;
    smx_err *err;
} gd_q;

/* A set of node indexes as flags, one per node of the source. */
typedef unsigned char *gd_set;

static int gd_fail(gd_q *q, const char *why)
{
    return smx_seterr(q->err, SMX_EINVAL, "genders query \"%s\": %s at \"%.20s\"", q->query,
                      why, q->p);
}

static void gd_skip(gd_q *q)
{
    while (*q->p == ' ' || *q->p == '\t')
        q->p++;
}

static int gd_is_op(const char *p)
{
    return (p[0] == '|' && p[1] == '|') || (p[0] == '&' && p[1] == '&') ||
           (p[0] == '-' && p[1] == '-') || *p == '~' || *p == '(' || *p == ')' || *p == ' ' ||
           *p == '\t';
}

/* Nodes having attr (any value) or attr=value exactly. */
static void gd_match(const grp_source *s, const char *term, size_t len, gd_set out)
{
    const char *eq = memchr(term, '=', len);
    size_t nl = eq ? (size_t)(eq - term) : len;
    for (size_t i = 0; i < s->nhosts; i++) {
        const smx_strvec *a = &s->hosts[i].attrs;
        for (size_t k = 0; k < a->n && !out[i]; k++) {
            const char *v = a->v[k];
            if (eq)
                out[i] = strlen(v) == len && strncmp(v, term, len) == 0;
            else
                out[i] = gd_name_len(v) == nl && strncmp(v, term, nl) == 0;
        }
    }
}

static int gd_expr(gd_q *q, gd_set out);

static int gd_primary(gd_q *q, gd_set out)
{
    size_t n = q->s->nhosts;
    gd_skip(q);
    if (*q->p == '~') {
        q->p++;
        int rc = gd_primary(q, out);
        for (size_t i = 0; rc == 0 && i < n; i++)
            out[i] = !out[i];
        return rc;
    }
    if (*q->p == '(') {
        if (++q->depth > 64)
            return gd_fail(q, "nested too deep");
        q->p++;
        int rc = gd_expr(q, out);
        gd_skip(q);
        if (rc == 0 && *q->p != ')')
            return gd_fail(q, "missing ')'");
        q->p++;
        q->depth--;
        return rc;
    }
    const char *start = q->p;
    while (*q->p && !gd_is_op(q->p))
        q->p++;
    if (q->p == start)
        return gd_fail(q, "expected an attribute");
    memset(out, 0, n ? n : 1);
    gd_match(q->s, start, (size_t)(q->p - start), out);
    return 0;
}

static int gd_expr(gd_q *q, gd_set out)
{
    size_t n = q->s->nhosts;
    int rc = gd_primary(q, out);
    gd_set rhs = rc == 0 ? malloc(n ? n : 1) : NULL;
    if (rc == 0 && !rhs)
        return smx_seterr(q->err, SMX_ENOMEM, "out of memory");
    while (rc == 0) {
        gd_skip(q);
        char op = q->p[0];
        if (!((op == '|' || op == '&' || op == '-') && q->p[1] == op))
            break;
        q->p += 2;
        if ((rc = gd_primary(q, rhs)) < 0)
            break;
        for (size_t i = 0; i < n; i++)
            out[i] = op == '|' ? (out[i] || rhs[i]) : op == '&' ? (out[i] && rhs[i])
                                                                : (out[i] && !rhs[i]);
    }
    free(rhs);
    return rc;
}

int grp_genders_query(const grp_source *s, const char *query, smx_strvec *out, smx_err *err)
{
    gd_q q = { s, query, query, 0, err };
    gd_set set = malloc(s->nhosts ? s->nhosts : 1);
    if (!set)
        return smx_seterr(err, SMX_ENOMEM, "out of memory");
    int rc = gd_expr(&q, set);
    gd_skip(&q);
    if (rc == 0 && *q.p)
        rc = gd_fail(&q, "unexpected text");
    for (size_t i = 0; rc == 0 && i < s->nhosts; i++)
        if (set[i] && smx_strvec_push(out, s->hosts[i].name) < 0)
            rc = smx_seterr(err, SMX_ENOMEM, "out of memory");
    free(set);
    return rc;
}
