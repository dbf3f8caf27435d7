#include "numparse.h"

#include <ctype.h>

#include "error.h"

static int num_is_digit(char c)
{
    return c >= '0' && c <= '9';
}

int smx_num_parse(const char *s, size_t len, unsigned long long min, unsigned long long max,
                  unsigned long long *out)
{
    unsigned long long v = 0;
    int too_large = 0;
    if (len == 0)
        return SMX_EINVAL;
    for (size_t i = 0; i < len; i++) {
        if (!num_is_digit(s[i]))
            return SMX_EINVAL;
        unsigned d = (unsigned)(s[i] - '0');
        /* Stop accumulating past max but keep checking that the rest are digits. */
        if (too_large || d > max || v > (max - d) / 10)
            too_large = 1;
        else
            v = v * 10 + d;
    }
    if (too_large || v < min || v > max)
        return SMX_ERANGE;
    *out = v;
    return 0;
}

int smx_num_parse_str(const char *s, unsigned long long min, unsigned long long max,
                      unsigned long long *out)
{
    size_t len = 0;
    while (s[len])
        len++;
    return smx_num_parse(s, len, min, max, out);
}

static unsigned long long time_unit(char c)
{
    switch (tolower((unsigned char)c)) {
    case 's': return 1;
    case 'm': return 60;
    case 'h': return 3600;
    case 'd': return 86400;
    case 'w': return 604800;
    default: return 0;
    }
}

int smx_time_parse(const char *s, unsigned long long max, unsigned long long *out)
{
    unsigned long long total = 0;
    if (*s == '\0')
        return SMX_EINVAL;
    while (*s) {
        size_t n = 0;
        while (num_is_digit(s[n]))
            n++;
        unsigned long long mult = s[n] ? time_unit(s[n]) : 1, v;
        if (n == 0 || mult == 0)
            return SMX_EINVAL;
        int rc = smx_num_parse(s, n, 0, max, &v);
        if (rc < 0)
            return rc;
        if (v > (max - total) / mult)
            return SMX_ERANGE;
        total += v * mult;
        s += n + (s[n] != '\0');
    }
    *out = total;
    return 0;
}
