/* Hostlist expansion (core/config/hostlist.c). Besides memory errors, checks what hostlist.h promises:
 * the return value counts the names appended, a failed expansion leaves the vector as it was,
 * names are unique (also against names already in the vector), and smx_hostlist_fold() of the
 * names expands back to the same set. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "hostlist.h"

/* The extra checks (fold, re-expand, exclude) run up to this many names, so that a list of a
 * million names is timed on its expansion alone. */
#define ROUNDTRIP_MAX 20000

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void check_unique_sorted(char **v, size_t n, const char *what)
{
    for (size_t i = 1; i < n; i++)
        if (strcmp(v[i - 1], v[i]) == 0)
            fz_fail("%s: \"%s\" appears twice", what, v[i]);
}

static void check_roundtrip(const smx_strvec *names)
{
    smx_strvec back = { 0 };
    smx_err err = { "" };
    char *folded = NULL;
    int rc;

    if (smx_hostlist_fold(names->v, names->n, &folded, &err) != 0)
        fz_fail("fold of %zu names failed: %s", names->n, err.msg);
    rc = smx_hostlist_expand(folded, &back, &err);
    if (rc < 0)
        fz_fail("expand(fold) of \"%.200s\" failed: %s", folded, err.msg);
    if (back.n != names->n)
        fz_fail("expand(fold) of \"%.200s\" gave %zu names, want %zu", folded, back.n, names->n);
    char **a = malloc(names->n * sizeof *a);
    if (!a)
        abort();
    memcpy(a, names->v, names->n * sizeof *a);
    qsort(a, names->n, sizeof *a, cmp_str);
    qsort(back.v, back.n, sizeof *back.v, cmp_str);
    for (size_t i = 0; i < back.n; i++)
        if (strcmp(a[i], back.v[i]) != 0)
            fz_fail("expand(fold) of \"%.200s\": \"%s\" instead of \"%s\"", folded, back.v[i],
                    a[i]);
    free(a);
    free(folded);
    smx_strvec_free(&back);
}

/* Excluding every other name leaves the rest, in order. */
static void check_exclude(const smx_strvec *names)
{
    smx_strvec copy = { 0 }, odd = { 0 };

    for (size_t i = 0; i < names->n; i++)
        if (smx_strvec_push(&copy, names->v[i]) != 0 ||
            (i % 2 && smx_strvec_push(&odd, names->v[i]) != 0))
            abort();
    smx_hostlist_exclude(&copy, &odd);
    if (copy.n != names->n - odd.n)
        fz_fail("exclude kept %zu of %zu names, want %zu", copy.n, names->n, names->n - odd.n);
    for (size_t i = 0; i < copy.n; i++)
        if (strcmp(copy.v[i], names->v[2 * i]) != 0)
            fz_fail("exclude kept \"%s\" at %zu, want \"%s\"", copy.v[i], i, names->v[2 * i]);
    smx_strvec_free(&copy);
    smx_strvec_free(&odd);
}

/* Expands list into out, which already holds names (as with several -H options), and checks
 * the count, the bound, and that a failure leaves out as it was. Returns expand's result. */
static int expand_into(smx_strvec *out, const char *list)
{
    size_t before = out->n;
    char *first = out->v[0], *last = out->v[before - 1];
    smx_err err = { "" };
    int rc = smx_hostlist_expand(list, out, &err);

    if (rc < 0) {
        if (out->n != before || out->v[0] != first || out->v[before - 1] != last)
            fz_fail("failed expansion (%d) of \"%.200s\" changed the output vector", rc, list);
        if (err.msg[0] == '\0')
            fz_fail("failed expansion (%d) of \"%.200s\" without a message", rc, list);
    } else {
        if ((size_t)rc != out->n - before)
            fz_fail("expansion returned %d but appended %zu names", rc, out->n - before);
        if (rc > SMX_HOSTLIST_MAX)
            fz_fail("expansion returned %d names, over SMX_HOSTLIST_MAX", rc);
    }
    return rc;
}

/* The input is one hostlist, or two separated by a line "--" that are expanded into the same
 * vector one after the other: the second skips names the first produced. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fz_part parts[2];
    size_t nparts = fz_split(data, size, "--", parts, 2);
    smx_strvec out = { 0 };

    if (smx_strvec_push(&out, "\x01keep") != 0)
        abort();
    for (size_t i = 0; i < nparts; i++) {
        char *list = fz_cstring(parts[i].data, parts[i].size);

        expand_into(&out, list);
        free(list);
    }
    /* The sentinel goes: it is not a name the lists produced. */
    free(out.v[0]);
    memmove(out.v, out.v + 1, (out.n - 1) * sizeof *out.v);
    out.n--;
    if (out.n > 0 && out.n <= ROUNDTRIP_MAX) {
        smx_strvec sorted = { 0 };
        for (size_t i = 0; i < out.n; i++)
            if (smx_strvec_push(&sorted, out.v[i]) != 0)
                abort();
        qsort(sorted.v, sorted.n, sizeof *sorted.v, cmp_str);
        check_unique_sorted(sorted.v, sorted.n, "expanded names");
        smx_strvec_free(&sorted);
        check_roundtrip(&out);
        check_exclude(&out);
    }
    smx_strvec_free(&out);
    return 0;
}
