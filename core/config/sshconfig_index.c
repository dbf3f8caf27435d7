/* The literal Host block index (see sshconfig_internal.h): built once per file at load, so
 * that resolving a host visits only the blocks that can apply to it. */
#include "sshconfig_internal.h"

#include <stdlib.h>
#include <string.h>

/* A pattern that matches exactly one name, compared byte for byte (smx_pattern_match_cs
 * without '*' or '?' is equality); negations make a line's result depend on other names. */
static int literal_pattern(const char *p)
{
    return p[0] != '!' && !strpbrk(p, "*?");
}

static int is_block_start(const smx_directive *d)
{
    return d->kw && (d->kw->type == SMX_KW_HOST || d->kw->type == SMX_KW_MATCH);
}

/* The end of the block whose Host/Match line is at i, and whether it is a literal block. */
static size_t block_end(const smx_cfgfile *f, size_t i, int *literal)
{
    const smx_directive *h = &f->d[i];
    size_t j;

    *literal = h->kw->type == SMX_KW_HOST && h->nargs > 0;
    for (size_t k = 0; k < h->nargs && *literal; k++)
        *literal = literal_pattern(h->args[k]);
    for (j = i + 1; j < f->n && !is_block_start(&f->d[j]); j++)
        if (!f->d[j].kw || f->d[j].kw->type == SMX_KW_INCLUDE)
            *literal = 0;
    return j;
}

static int by_name_then_start(const void *a, const void *b)
{
    const smx__litblock *x = a, *y = b;
    int c = strcmp(x->name, y->name);

    if (c)
        return c;
    return (x->start > y->start) - (x->start < y->start);
}

void smx__cfgfile_unindex(smx_cfgfile *f)
{
    if (!f || !f->index)
        return;
    free(f->index->run_end);
    free(f->index->v);
    free(f->index);
    f->index = NULL;
}

int smx__cfgfile_index(smx_cfgfile *f)
{
    smx__cfgindex *ix;
    size_t names = 0, run = 0, n = 0;
    int in_run;

    smx__cfgfile_unindex(f);
    for (size_t i = 0; i < f->n; i++) {
        int literal;
        size_t e;

        if (!is_block_start(&f->d[i]))
            continue;
        e = block_end(f, i, &literal);
        if (literal)
            names += f->d[i].nargs;
        i = e - 1;
    }
    if (names == 0)
        return 0;
    if (!(ix = calloc(1, sizeof *ix)) || !(ix->run_end = calloc(f->n, sizeof *ix->run_end)) ||
        !(ix->v = malloc(names * sizeof *ix->v))) {
        if (ix)
            free(ix->run_end);
        free(ix);
        return SMX_ENOMEM;
    }
    in_run = 0;
    for (size_t i = 0; i < f->n;) {
        int literal = 0;
        size_t e = i + 1;

        if (is_block_start(&f->d[i]))
            e = block_end(f, i, &literal);
        if (literal) {
            if (!in_run)
                run = i;
            in_run = 1;
            ix->run_end[run] = e;
            for (size_t k = 0; k < f->d[i].nargs; k++)
                ix->v[n++] = (smx__litblock){f->d[i].args[k], i, e};
        } else {
            in_run = 0;
        }
        i = e;
    }
    qsort(ix->v, n, sizeof *ix->v, by_name_then_start);
    ix->n = 0;
    for (size_t k = 0; k < n; k++)      /* "Host a a": one block, applied once */
        if (ix->n == 0 || by_name_then_start(&ix->v[ix->n - 1], &ix->v[k]) != 0)
            ix->v[ix->n++] = ix->v[k];
    f->index = ix;
    return 0;
}

size_t smx__cfgindex_find(const smx__cfgindex *ix, const char *name, size_t from, size_t to,
                          const smx__litblock **first)
{
    const smx__litblock key = {name, from, 0};
    size_t lo = 0, hi = ix->n, end;

    while (lo < hi) {                   /* the first entry not below (name, from) */
        size_t mid = lo + (hi - lo) / 2;

        if (by_name_then_start(&ix->v[mid], &key) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (end = lo; end < ix->n && ix->v[end].start < to && strcmp(ix->v[end].name, name) == 0;
         end++)
        ;
    *first = &ix->v[lo];
    return end - lo;
}
