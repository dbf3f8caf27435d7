/* Numbers from untrusted text (options, ssh_config values, target ports), in one place so that
 * every caller gets the same overflow-free parsing and the same range rules. */
#ifndef SSHMUX_NUMPARSE_H
#define SSHMUX_NUMPARSE_H

#include <limits.h>
#include <stddef.h>

/* The most seconds a timeout may be: sshmux keeps timeouts as int milliseconds (libuv timers,
 * smx_engine_opts, smx_exec_opts), so 2147483 s (24.8 days) is where they would overflow. */
#define SMX_SECONDS_MAX (INT_MAX / 1000)

/* Parses the decimal digits s[0..len) (no sign, no spaces) into *out if min <= value <= max.
 * Returns 0; SMX_EINVAL when the text is empty or not all digits; SMX_ERANGE when it is a
 * number outside [min, max] (however many digits: nothing overflows). */
int smx_num_parse(const char *s, size_t len, unsigned long long min, unsigned long long max,
                  unsigned long long *out);

/* The same for a NUL-terminated string. */
int smx_num_parse_str(const char *s, unsigned long long min, unsigned long long max,
                      unsigned long long *out);

/* sshd_config(5) TIME FORMAT: one or more number[smhdwSMHDW] summed ("1h30m"; a bare number is
 * seconds), into seconds. Returns 0, SMX_EINVAL (syntax) or SMX_ERANGE (total above max). */
int smx_time_parse(const char *s, unsigned long long max, unsigned long long *out);

#endif
