/* OpenSSH-style patterns: '*' matches any run of characters (including none), '?' exactly one.
 * There are no character classes or escapes, exactly as in ssh_config(5) PATTERNS.
 *
 * Host names are case-insensitive, so the plain functions fold ASCII case. ssh itself is
 * case-sensitive in a few places (Host lines, Match user/localuser), hence the _cs variants. */
#ifndef SSHMUX_PATTERN_H
#define SSHMUX_PATTERN_H

/* 1 if s matches pattern, else 0. Case-insensitive (ASCII). */
int smx_pattern_match(const char *s, const char *pattern);
/* Same, but case-sensitive. */
int smx_pattern_match_cs(const char *s, const char *pattern);

/* Match s against a comma-separated pattern list where entries may be negated with '!'.
 * Returns -1 if a negated entry matches (this wins over everything), 1 if some positive entry
 * matches, 0 otherwise: a list made only of negations never yields 1 (OpenSSH semantics).
 * Case-insensitive (ASCII). */
int smx_pattern_list_match(const char *s, const char *list);
/* Same, but case-sensitive. */
int smx_pattern_list_match_cs(const char *s, const char *list);

#endif
