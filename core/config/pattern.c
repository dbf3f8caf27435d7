#include "pattern.h"

#include <stddef.h>
#include <string.h>

static int fold(int c, int icase)
{
    return (icase && c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c;
}

/* Glob match of s[0..slen) against p[0..plen). Iterative with a single backtrack point (the
 * most recent '*'), so the cost is O(slen * plen) in the worst case and never recursive: a
 * hostile pattern like "*a*a*a*a*b" cannot blow the stack or take exponential time. */
static int glob_match(const char *s, size_t slen, const char *p, size_t plen, int icase)
{
    size_t si = 0, pi = 0;
    size_t star_p = (size_t)-1, star_s = 0;

    while (si < slen) {
        if (pi < plen && p[pi] == '*') {
            star_p = pi++;          /* remember where '*' was; first try matching nothing */
            star_s = si;
        } else if (pi < plen && (p[pi] == '?' ||
                                 fold((unsigned char)p[pi], icase) ==
                                 fold((unsigned char)s[si], icase))) {
            pi++;
            si++;
        } else if (star_p != (size_t)-1) {
            pi = star_p + 1;        /* let the last '*' swallow one more character */
            si = ++star_s;
        } else {
            return 0;
        }
    }
    while (pi < plen && p[pi] == '*')
        pi++;
    return pi == plen;
}

int smx_pattern_match(const char *s, const char *pattern)
{
    return glob_match(s, strlen(s), pattern, strlen(pattern), 1);
}

int smx_pattern_match_cs(const char *s, const char *pattern)
{
    return glob_match(s, strlen(s), pattern, strlen(pattern), 0);
}

static int list_match(const char *s, const char *list, int icase)
{
    size_t slen = strlen(s);
    int got_positive = 0;
    const char *p = list;

    for (;;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        int negated = len > 0 && p[0] == '!';
        const char *pat = negated ? p + 1 : p;
        size_t patlen = negated ? len - 1 : len;

        if (glob_match(s, slen, pat, patlen, icase)) {
            if (negated)
                return -1;          /* a matching negation vetoes the whole list */
            got_positive = 1;
        }
        if (!end)
            break;
        p = end + 1;
    }
    return got_positive;
}

int smx_pattern_list_match(const char *s, const char *list)
{
    return list_match(s, list, 1);
}

int smx_pattern_list_match_cs(const char *s, const char *list)
{
    return list_match(s, list, 0);
}
