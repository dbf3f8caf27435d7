#ifndef _DEFAULT_SOURCE
#define _DEFAULT_SOURCE /* strndup even under -std=c11 */
#endif
#include "hostlist.h"
#include "groups.h"
#include "hostset.h"
#include "sshconfig_internal.h"
#include "target.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* 18 digits keep every bound, and every hi - lo + step, inside unsigned long long. */
#define HOSTLIST_MAX_DIGITS 18
/* An expanded number never needs more characters than this (widths are at most 18 too). */
#define HOSTLIST_NUM_CHARS 20
/* Error messages quote at most this much of the item, so the reason always fits in smx_err. */
#define HOSTLIST_SHOWN_MAX 96
/* ...and at most this much of the range inside it. */
#define HOSTLIST_RANGE_SHOWN 32

/* One "lo-hi/step" element of a bracket group; width > 0 means zero-padded to that width. */
struct hl_range {
    unsigned long long lo, hi, step;
    int width;
};

/* An expandable bracket group with the literal text that precedes it, and its odometer state. */
struct hl_group {
    const char *lit;
    size_t lit_len;
    struct hl_range *ranges;
    size_t nranges;
    unsigned long long count; /* names this group yields */
    size_t cur_range;
    unsigned long long cur;
};

/* A parsed item: groups alternate with literal text; `tail` is the text after the last group. */
struct hl_pattern {
    const char *item;
    struct hl_group *groups;
    size_t ngroups;
    const char *tail;
    size_t tail_len;
    size_t max_len; /* bound on one expanded name, NUL included */
};

struct smx_hostlist {
    smx_strvec names;
    size_t *tags;    /* parallel to names.v */
    size_t tags_cap;
    smx_hostset seen; /* borrows names.v[i] */
    size_t budget;   /* names the list may still generate */
    size_t max;
    const smx_config *cfg; /* its groups expand `@group` items; NULL: '@' is a plain name */
};

/* One smx_hostlist_add() call: everything after n0 is undone on error. */
struct expand_ctx {
    smx_hostlist *hl;
    size_t n0;
    size_t tag;
    smx_err *err;
};

/* A growable output string; after one failed allocation every append is a no-op. */
struct hl_buf {
    char *p;
    size_t len, cap;
    int failed;
};

/* One name prepared for folding: name = prefix, digits, suffix. dlen == 0: kept verbatim. */
struct fold_name {
    const char *name;
    size_t plen;
    const char *suffix;
    size_t slen;
    size_t dlen;
    int width; /* 0: natural width; else zero-padded to this width */
    unsigned long long num;
};

static int hl_is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int hl_is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

__attribute__((format(printf, 4, 5)))
static int hostlist_error(smx_err *err, int code, const char *item, const char *fmt, ...)
{
    char shown[HOSTLIST_SHOWN_MAX];
    char reason[SMX_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    smx_target_display(item, shown, sizeof shown);
    return smx_seterr(err, code, "hostlist \"%s\": %s", shown, reason);
}

static int hostlist_shown_len(size_t len)
{
    return (int)(len < HOSTLIST_RANGE_SHOWN ? len : HOSTLIST_RANGE_SHOWN);
}

/* ---- expand: parsing ---- */

/* An unclosed '[' swallows the rest of the list, which the bracket check then reports. */
const char *smx_hostlist_item_end(const char *s)
{
    int depth = 0;
    for (; *s; s++) {
        if (*s == '[')
            depth++;
        else if (*s == ']' && depth > 0)
            depth--;
        else if (*s == ',' && depth == 0)
            break;
    }
    return s;
}

static int hostlist_check_brackets(const char *item, smx_err *err)
{
    int open = 0;
    for (const char *p = item; *p; p++) {
        if (*p == '[') {
            if (open)
                return hostlist_error(err, SMX_EINVAL, item, "nested brackets are not supported");
            open = 1;
        } else if (*p == ']') {
            if (!open)
                return hostlist_error(err, SMX_EINVAL, item, "']' without matching '['");
            open = 0;
        }
    }
    if (open)
        return hostlist_error(err, SMX_EINVAL, item, "'[' without matching ']'");
    return 0;
}

/* Only groups of digits and , - / are ranges; anything else ("::1", "10.0.0.1") is an address. */
static int hostlist_is_range_group(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (!hl_is_digit(s[i]) && s[i] != ',' && s[i] != '-' && s[i] != '/')
            return 0;
    }
    return 1;
}

/* Parses one bound ("start bound", "end bound" or "step") of the range text rs[0..rlen). */
static int hostlist_parse_bound(const char *item, const char *what, const char *s, size_t len,
                                const char *rs, size_t rlen, unsigned long long *value,
                                smx_err *err)
{
    int rl = hostlist_shown_len(rlen);
    if (len == 0)
        return hostlist_error(err, SMX_EINVAL, item, "missing %s in range \"%.*s\"", what, rl, rs);
    for (size_t i = 0; i < len; i++) {
        if (!hl_is_digit(s[i]))
            return hostlist_error(err, SMX_EINVAL, item, "%s \"%.*s\" in range \"%.*s\" is not a number",
                                  what, hostlist_shown_len(len), s, rl, rs);
    }
    if (len > HOSTLIST_MAX_DIGITS)
        return hostlist_error(err, SMX_ERANGE, item, "%s %.*s in range \"%.*s\" is too large",
                              what, hostlist_shown_len(len), s, rl, rs);
    *value = 0;
    for (size_t i = 0; i < len; i++)
        *value = *value * 10 + (unsigned long long)(s[i] - '0');
    return 0;
}

/* Parses "n", "lo-hi" or "lo-hi/step" in s[0..len). */
static int hostlist_parse_range(const char *item, const char *s, size_t len, struct hl_range *r,
                                smx_err *err)
{
    if (len == 0)
        return hostlist_error(err, SMX_EINVAL, item, "empty range");
    const char *slash = memchr(s, '/', len);
    size_t body_len = slash ? (size_t)(slash - s) : len;
    const char *dash = memchr(s, '-', body_len);
    size_t lo_len = dash ? (size_t)(dash - s) : body_len;
    int rc = hostlist_parse_bound(item, "start bound", s, lo_len, s, len, &r->lo, err);
    if (rc < 0)
        return rc;
    r->hi = r->lo;
    r->step = 1;
    if (dash) {
        rc = hostlist_parse_bound(item, "end bound", dash + 1, body_len - lo_len - 1, s, len,
                                  &r->hi, err);
        if (rc < 0)
            return rc;
    }
    if (slash) {
        if (!dash)
            return hostlist_error(err, SMX_EINVAL, item, "range \"%.*s\" has a step but no end",
                                  hostlist_shown_len(len), s);
        rc = hostlist_parse_bound(item, "step", slash + 1, len - body_len - 1, s, len, &r->step,
                                  err);
        if (rc < 0)
            return rc;
        if (r->step == 0)
            return hostlist_error(err, SMX_EINVAL, item, "step 0 in range \"%.*s\" is not allowed",
                                  hostlist_shown_len(len), s);
    }
    if (r->lo > r->hi)
        return hostlist_error(err, SMX_EINVAL, item, "range start %.*s is greater than end %.*s",
                              (int)lo_len, s, hostlist_shown_len(body_len - lo_len - 1), dash + 1);
    /* "01-20" pads to the start's width; "1-10" does not pad. */
    r->width = (lo_len > 1 && s[0] == '0') ? (int)lo_len : 0;
    return 0;
}

static int hostlist_too_many(const char *item, size_t max, smx_err *err)
{
    return hostlist_error(err, SMX_ERANGE, item, "expands to more than %zu hosts (the limit for "
                          "all host lists together)", max);
}

/* Parses the content s[0..len) of a bracket group: comma-separated ranges. */
static int hostlist_parse_group(const char *item, const char *s, size_t len, struct hl_group *g,
                                smx_err *err)
{
    size_t n = 1;
    for (size_t i = 0; i < len; i++)
        n += s[i] == ',';
    g->ranges = calloc(n, sizeof *g->ranges);
    if (!g->ranges)
        return smx_seterr(err, SMX_ENOMEM, "out of memory");
    const char *end = s + len;
    for (const char *p = s; g->nranges < n; g->nranges++) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        size_t elen = comma ? (size_t)(comma - p) : (size_t)(end - p);
        struct hl_range *r = &g->ranges[g->nranges];
        int rc = hostlist_parse_range(item, p, elen, r, err);
        if (rc < 0)
            return rc;
        /* Each term is at most 10^18 and the sum is checked every step, so nothing overflows. */
        g->count += (r->hi - r->lo) / r->step + 1;
        if (g->count > SMX_HOSTLIST_MAX)
            return hostlist_too_many(item, SMX_HOSTLIST_MAX, err);
        p += elen + 1;
    }
    return 0;
}

static void hostlist_pattern_free(struct hl_pattern *pat)
{
    for (size_t i = 0; i < pat->ngroups; i++)
        free(pat->groups[i].ranges);
    free(pat->groups);
    memset(pat, 0, sizeof *pat);
}

/* Splits a bracket-checked item into literal text and expandable groups. */
static int hostlist_parse_pattern(const char *item, struct hl_pattern *pat, smx_err *err)
{
    size_t maxgroups = 0;
    memset(pat, 0, sizeof *pat);
    pat->item = item;
    for (const char *p = item; *p; p++)
        maxgroups += *p == '[';
    if (maxgroups && !(pat->groups = calloc(maxgroups, sizeof *pat->groups)))
        return smx_seterr(err, SMX_ENOMEM, "out of memory");

    const char *lit = item;
    size_t max_len = 1;
    for (const char *open = strchr(item, '['); open; open = strchr(open + 1, '[')) {
        const char *close = strchr(open, ']'); /* present: brackets were checked */
        size_t clen = (size_t)(close - open - 1);
        if (!hostlist_is_range_group(open + 1, clen))
            continue;
        struct hl_group *g = &pat->groups[pat->ngroups++];
        g->lit = lit;
        g->lit_len = (size_t)(open - lit);
        int rc = hostlist_parse_group(item, open + 1, clen, g, err);
        if (rc < 0) {
            hostlist_pattern_free(pat);
            return rc;
        }
        max_len += g->lit_len + HOSTLIST_NUM_CHARS;
        lit = close + 1;
    }
    pat->tail = lit;
    pat->tail_len = strlen(lit);
    pat->max_len = max_len + pat->tail_len;
    return 0;
}

/* ---- expand: generating ---- */

/* Moves one group to its next value: 1 if it advanced, 0 if it wrapped back to its first. */
static int hostlist_group_step(struct hl_group *g)
{
    const struct hl_range *r = &g->ranges[g->cur_range];
    if (r->hi - g->cur >= r->step) {
        g->cur += r->step;
        return 1;
    }
    if (g->cur_range + 1 < g->nranges) {
        g->cur = g->ranges[++g->cur_range].lo;
        return 1;
    }
    g->cur_range = 0;
    g->cur = g->ranges[0].lo;
    return 0;
}

/* Advances the odometer, rightmost group fastest: 0 once every combination has been seen. */
static int hostlist_pattern_step(struct hl_pattern *pat)
{
    for (size_t i = pat->ngroups; i > 0; i--) {
        if (hostlist_group_step(&pat->groups[i - 1]))
            return 1;
    }
    return 0;
}

static void hostlist_pattern_format(const struct hl_pattern *pat, char *buf)
{
    size_t len = 0;
    for (size_t i = 0; i < pat->ngroups; i++) {
        const struct hl_group *g = &pat->groups[i];
        memcpy(buf + len, g->lit, g->lit_len);
        len += g->lit_len;
        len += (size_t)sprintf(buf + len, "%0*llu", g->ranges[g->cur_range].width, g->cur);
    }
    memcpy(buf + len, pat->tail, pat->tail_len);
    buf[len + pat->tail_len] = '\0';
}

static int expand_add(struct expand_ctx *ctx, const char *name)
{
    smx_hostlist *hl = ctx->hl;
    if (smx_hostset_contains(&hl->seen, name))
        return 0;
    if (hl->names.n == hl->tags_cap) {
        size_t cap = hl->tags_cap ? hl->tags_cap * 2 : 64;
        size_t *tags = realloc(hl->tags, cap * sizeof *tags);
        if (!tags)
            return smx_seterr(ctx->err, SMX_ENOMEM, "out of memory");
        hl->tags = tags;
        hl->tags_cap = cap;
    }
    char *copy = strdup(name);
    if (smx_strvec_push_owned(&hl->names, copy) < 0)
        return smx_seterr(ctx->err, SMX_ENOMEM, "out of memory");
    hl->tags[hl->names.n - 1] = ctx->tag;
    if (smx_hostset_add(&hl->seen, copy) < 0)
        return smx_seterr(ctx->err, SMX_ENOMEM, "out of memory");
    return 0;
}

static int hostlist_emit_all(struct hl_pattern *pat, struct expand_ctx *ctx)
{
    char *buf = malloc(pat->max_len);
    int rc = 0;
    if (!buf)
        return smx_seterr(ctx->err, SMX_ENOMEM, "out of memory");
    for (size_t i = 0; i < pat->ngroups; i++) {
        pat->groups[i].cur_range = 0;
        pat->groups[i].cur = pat->groups[i].ranges[0].lo;
    }
    do {
        hostlist_pattern_format(pat, buf);
        rc = expand_add(ctx, buf);
    } while (rc == 0 && hostlist_pattern_step(pat));
    free(buf);
    return rc;
}

/* Checks the size of the cartesian product against what is left of the list's budget, before
 * generating anything: a run's lists together never produce more than its max. */
static int hostlist_charge(struct expand_ctx *ctx, const struct hl_pattern *pat)
{
    smx_hostlist *hl = ctx->hl;
    unsigned long long total = 1;
    for (size_t i = 0; i < pat->ngroups; i++) {
        /* total <= budget and count >= 1, so the product is only formed when it fits. */
        if (pat->groups[i].count > hl->budget / total)
            return hostlist_too_many(pat->item, hl->max, ctx->err);
        total *= pat->groups[i].count;
    }
    if (total > hl->budget)
        return hostlist_too_many(pat->item, hl->max, ctx->err);
    hl->budget -= total;
    return 0;
}

static int hostlist_expand_item(struct expand_ctx *ctx, const char *item)
{
    struct hl_pattern pat;
    int rc = hostlist_check_brackets(item, ctx->err);
    if (rc < 0)
        return rc;
    rc = hostlist_parse_pattern(item, &pat, ctx->err);
    if (rc < 0)
        return rc;
    rc = hostlist_charge(ctx, &pat);
    if (rc == 0)
        rc = hostlist_emit_all(&pat, ctx);
    hostlist_pattern_free(&pat);
    return rc;
}

/* `@group` (ranges allowed in the name, as ClusterShell's @rack[1-3]): each group's names,
 * charged to the list's budget like any other names. */
static int hostlist_expand_group(struct expand_ctx *ctx, const char *item)
{
    smx_hostlist *hl = ctx->hl;
    smx_strvec refs = {0}, names = {0};
    int rc = smx_hostlist_expand(item, &refs, ctx->err);
    for (size_t i = 0; rc >= 0 && i < refs.n; i++) {
        smx_err e = {{0}};
        rc = smx_groups_expand(hl->cfg->groups, refs.v[i] + 1, hl->budget, &names, &e);
        if (rc == SMX_ENOMEM)
            rc = smx_seterr(ctx->err, rc, "out of memory");
        else if (rc < 0)
            rc = hostlist_error(ctx->err, rc, item, "%s", e.msg);
    }
    if (rc >= 0 && names.n > hl->budget)
        rc = hostlist_too_many(item, hl->max, ctx->err);
    if (rc >= 0)
        hl->budget -= names.n;
    for (size_t i = 0; rc >= 0 && i < names.n; i++)
        rc = expand_add(ctx, names.v[i]);
    smx_strvec_free(&refs);
    smx_strvec_free(&names);
    return rc < 0 ? rc : 0;
}

/* Trims the item s[0..len), skips it if empty, and expands a NUL-terminated copy of it. */
static int hostlist_expand_slice(struct expand_ctx *ctx, const char *s, size_t len)
{
    while (len > 0 && hl_is_space(s[0])) {
        s++;
        len--;
    }
    while (len > 0 && hl_is_space(s[len - 1]))
        len--;
    if (len == 0)
        return 0;
    char *item = strndup(s, len);
    if (!item)
        return smx_seterr(ctx->err, SMX_ENOMEM, "out of memory");
    int rc = ctx->hl->cfg && item[0] == '@' ? hostlist_expand_group(ctx, item)
                                             : hostlist_expand_item(ctx, item);
    free(item);
    return rc;
}

void smx_hostlist_set_config(smx_hostlist *hl, const smx_config *cfg)
{
    if (hl)
        hl->cfg = cfg;
}

smx_hostlist *smx_hostlist_new(size_t max)
{
    smx_hostlist *hl = calloc(1, sizeof *hl);
    if (!hl || smx_hostset_init(&hl->seen, 0) < 0) {
        free(hl);
        return NULL;
    }
    hl->budget = hl->max = max;
    return hl;
}

void smx_hostlist_free(smx_hostlist *hl)
{
    if (!hl)
        return;
    smx_strvec_free(&hl->names);
    free(hl->tags);
    smx_hostset_free(&hl->seen);
    free(hl);
}

/* Back to the first n names, as before a failed add. */
static void hostlist_truncate(smx_hostlist *hl, size_t n)
{
    while (hl->names.n > n) {
        char *name = hl->names.v[--hl->names.n];
        smx_hostset_remove(&hl->seen, name);
        free(name);
    }
}

int smx_hostlist_add(smx_hostlist *hl, const char *list, size_t tag, smx_err *err)
{
    if (!hl || !list)
        return smx_seterr(err, SMX_EINVAL, "hostlist: NULL argument");
    struct expand_ctx ctx = { hl, hl->names.n, tag, err };
    size_t budget0 = hl->budget;
    int rc = 0;
    for (const char *p = list; rc == 0 && *p;) {
        const char *end = smx_hostlist_item_end(p);
        rc = hostlist_expand_slice(&ctx, p, (size_t)(end - p));
        p = *end ? end + 1 : end;
    }
    if (rc < 0) {
        hostlist_truncate(hl, ctx.n0);
        hl->budget = budget0;
        return rc;
    }
    return (int)(hl->names.n - ctx.n0);
}

size_t smx_hostlist_count(const smx_hostlist *hl)
{
    return hl->names.n;
}

const char *smx_hostlist_name(const smx_hostlist *hl, size_t i)
{
    return i < hl->names.n ? hl->names.v[i] : NULL;
}

size_t smx_hostlist_tag(const smx_hostlist *hl, size_t i)
{
    return i < hl->names.n ? hl->tags[i] : 0;
}

/* Takes over the names of `names` (tag 0) so that adding skips them. 0 or SMX_ENOMEM (then
 * nothing was taken). */
static int hostlist_adopt(smx_hostlist *hl, smx_strvec *names)
{
    size_t cap = names->n ? names->n : 1;
    size_t *tags = calloc(cap, sizeof *tags);
    smx_hostset seen;
    if (!tags || smx_hostset_init_from(&seen, names->v, names->n) < 0) {
        free(tags);
        return SMX_ENOMEM;
    }
    smx_hostset_free(&hl->seen);
    hl->seen = seen;
    hl->tags = tags;
    hl->tags_cap = cap;
    hl->names = *names;
    return 0;
}

int smx_hostlist_expand(const char *list, smx_strvec *out, smx_err *err)
{
    if (!list || !out)
        return smx_seterr(err, SMX_EINVAL, "hostlist: NULL argument");
    smx_hostlist *hl = smx_hostlist_new(SMX_HOSTLIST_MAX);
    if (!hl || hostlist_adopt(hl, out) < 0) {
        smx_hostlist_free(hl);
        return smx_seterr(err, SMX_ENOMEM, "out of memory");
    }
    int rc = smx_hostlist_add(hl, list, 0, err);
    *out = hl->names; /* the vector may have moved while growing */
    hl->names = (smx_strvec){ 0 };
    smx_hostlist_free(hl);
    return rc;
}

/* ---- exclude ---- */

void smx_hostlist_remove(smx_hostlist *hl, const smx_hostlist *excluded)
{
    if (!hl || !excluded || excluded->names.n == 0)
        return;
    size_t kept = 0;
    for (size_t i = 0; i < hl->names.n; i++) {
        char *h = hl->names.v[i];
        if (smx_hostset_contains(&excluded->seen, h)) {
            smx_hostset_remove(&hl->seen, h);
            free(h);
            continue;
        }
        hl->tags[kept] = hl->tags[i];
        hl->names.v[kept++] = h;
    }
    hl->names.n = kept;
}

void smx_hostlist_exclude(smx_strvec *hosts, const smx_strvec *excluded)
{
    smx_hostset set;
    if (!hosts || !excluded || excluded->n == 0)
        return;
    /* Without memory for the set, a quadratic scan still gives the right answer. */
    int have_set = smx_hostset_init_from(&set, excluded->v, excluded->n) == 0;
    size_t kept = 0;
    for (size_t i = 0; i < hosts->n; i++) {
        char *h = hosts->v[i];
        int drop = have_set ? smx_hostset_contains(&set, h) : smx_strvec_contains(excluded, h);
        if (drop)
            free(h);
        else
            hosts->v[kept++] = h;
    }
    hosts->n = kept;
    if (have_set)
        smx_hostset_free(&set);
}

/* ---- fold ---- */

static void hl_buf_append(struct hl_buf *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->failed = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void hl_buf_append_num(struct hl_buf *b, unsigned long long v, int width)
{
    char tmp[HOSTLIST_NUM_CHARS + 4];
    int n = snprintf(tmp, sizeof tmp, "%0*llu", width, v);
    hl_buf_append(b, tmp, (size_t)n);
}

/* Folding a number is safe only where expand would read the brackets back the same way: no
 * commas, balanced unnested brackets, and the digits outside any bracket group. */
static int fold_is_foldable(const char *name, size_t digits_at)
{
    int open = 0;
    for (size_t i = 0; name[i]; i++) {
        if (i == digits_at && open)
            return 0;
        if (name[i] == ',')
            return 0;
        if (name[i] == '[') {
            if (open)
                return 0;
            open = 1;
        } else if (name[i] == ']') {
            if (!open)
                return 0;
            open = 0;
        }
    }
    return !open;
}

/* Splits name at its last run of digits; names that cannot be folded are kept verbatim. */
static void fold_split(const char *name, struct fold_name *f)
{
    size_t len = strlen(name);
    size_t end = len, start;
    *f = (struct fold_name){ name, len, name + len, 0, 0, 0, 0 };
    while (end > 0 && !hl_is_digit(name[end - 1]))
        end--;
    for (start = end; start > 0 && hl_is_digit(name[start - 1]); start--)
        ;
    if (end == 0 || end - start > HOSTLIST_MAX_DIGITS || !fold_is_foldable(name, start))
        return;
    f->plen = start;
    f->suffix = name + end;
    f->slen = len - end;
    f->dlen = end - start;
    /* A leading zero fixes the width: "01" must not merge with "1". */
    f->width = (f->dlen > 1 && name[start] == '0') ? (int)f->dlen : 0;
    for (size_t i = start; i < end; i++)
        f->num = f->num * 10 + (unsigned long long)(name[i] - '0');
}

static int fold_cmp_bytes(const char *a, size_t alen, const char *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    if (c)
        return c;
    return (alen > blen) - (alen < blen);
}

static int fold_cmp_stem(const struct fold_name *a, const struct fold_name *b)
{
    int c = fold_cmp_bytes(a->name, a->plen, b->name, b->plen);
    return c ? c : fold_cmp_bytes(a->suffix, a->slen, b->suffix, b->slen);
}

/* Order: prefix, suffix, verbatim before numbered, width class, number. */
static int fold_cmp_group(const struct fold_name *a, const struct fold_name *b)
{
    int c = fold_cmp_stem(a, b);
    if (c)
        return c;
    if ((a->dlen != 0) != (b->dlen != 0))
        return a->dlen != 0 ? 1 : -1;
    return (a->width > b->width) - (a->width < b->width);
}

static int fold_cmp(const void *pa, const void *pb)
{
    const struct fold_name *a = pa, *b = pb;
    int c = fold_cmp_group(a, b);
    if (c)
        return c;
    return (a->num > b->num) - (a->num < b->num);
}

/* An unpadded number whose natural width equals a padded group's width ("10" next to "01")
 * prints the same either way, so it joins that group instead of forming its own. */
static void fold_adopt_unpadded(struct fold_name *v, size_t n)
{
    for (size_t i = 0, j; i < n; i = j) {
        uint32_t widths = 0; /* bit w: a group padded to width w exists (w <= 18) */
        for (j = i; j < n && fold_cmp_stem(&v[i], &v[j]) == 0; j++) {
            if (v[j].dlen && v[j].width)
                widths |= 1u << v[j].width;
        }
        for (size_t k = i; k < j; k++) {
            if (v[k].dlen && !v[k].width && (widths >> v[k].dlen) & 1u)
                v[k].width = (int)v[k].dlen;
        }
    }
}

/* Prints "lo-hi,n,..." for the sorted numbers of one group (duplicates allowed). */
static void fold_emit_ranges(struct hl_buf *b, const struct fold_name *v, size_t n)
{
    for (size_t i = 0, j; i < n; i = j + 1) {
        for (j = i; j + 1 < n && v[j + 1].num - v[j].num <= 1; j++)
            ;
        if (i > 0)
            hl_buf_append(b, ",", 1);
        hl_buf_append_num(b, v[i].num, v[i].width);
        if (v[j].num != v[i].num) {
            hl_buf_append(b, "-", 1);
            hl_buf_append_num(b, v[j].num, v[i].width);
        }
    }
}

/* Prints one group v[0..n): same prefix, suffix and width, sorted by number. */
static void fold_emit_group(struct hl_buf *b, const struct fold_name *v, size_t n)
{
    if (v[0].dlen == 0) { /* identical verbatim names */
        hl_buf_append(b, v[0].name, v[0].plen);
        return;
    }
    hl_buf_append(b, v[0].name, v[0].plen);
    if (v[0].num == v[n - 1].num) {
        hl_buf_append_num(b, v[0].num, v[0].width);
    } else {
        hl_buf_append(b, "[", 1);
        fold_emit_ranges(b, v, n);
        hl_buf_append(b, "]", 1);
    }
    hl_buf_append(b, v[0].suffix, v[0].slen);
}

int smx_hostlist_fold(char *const *hosts, size_t n, char **out, smx_err *err)
{
    struct hl_buf b = { NULL, 0, 0, 0 };
    struct fold_name *v;
    size_t m = 0;
    if (!out || (!hosts && n > 0))
        return smx_seterr(err, SMX_EINVAL, "hostlist fold: NULL argument");
    *out = NULL;
    if (!(v = calloc(n ? n : 1, sizeof *v)))
        return smx_seterr(err, SMX_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        if (!hosts[i]) {
            free(v);
            return smx_seterr(err, SMX_EINVAL, "hostlist fold: name %zu is NULL", i);
        }
        if (hosts[i][0])
            fold_split(hosts[i], &v[m++]);
    }
    /* Sort once to find each stem's padded widths, again after numbers changed group. */
    qsort(v, m, sizeof *v, fold_cmp);
    fold_adopt_unpadded(v, m);
    qsort(v, m, sizeof *v, fold_cmp);
    hl_buf_append(&b, "", 0);
    for (size_t i = 0, j; i < m; i = j) {
        for (j = i + 1; j < m && fold_cmp_group(&v[i], &v[j]) == 0; j++)
            ;
        if (i > 0)
            hl_buf_append(&b, ",", 1);
        fold_emit_group(&b, v + i, j - i);
    }
    free(v);
    if (b.failed) {
        free(b.p);
        return smx_seterr(err, SMX_ENOMEM, "out of memory");
    }
    *out = b.p;
    return 0;
}
