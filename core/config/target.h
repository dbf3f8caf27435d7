/* One SSH target string -> user, password, host, port.
 *
 * Accepted: host, user@host, host:port, user@host:port, [addr], [addr]:port, user@[addr]:port,
 * a bare IPv6 address (two or more ':', never a port: "fe80::1:22" is an address), and
 * ssh://[user[:password]@]host[:port][/] with user, password and host percent-decoded. */
#ifndef SSHMUX_TARGET_H
#define SSHMUX_TARGET_H

#include <stddef.h>

#include "error.h"

typedef struct smx_target_spec {
    char *user;       /* NULL if not given */
    char *password;   /* only from ssh:// URLs; NULL otherwise. Sensitive: wiped on free */
    char *host;       /* host alias or address; IPv6 without brackets */
    int port;         /* 0 if not given, else 1..65535 */
    int from_url;     /* 1 if given as ssh://... */
} smx_target_spec;

/* Parses `s` into `out` (which needs no initialisation). Returns 0, or SMX_EINVAL / SMX_ERANGE
 * (port out of range) / SMX_ENOMEM with a message quoting the input in `err`; on error `out` is
 * zeroed and owns nothing. The user is split at the LAST '@' of a plain target, like OpenSSH. */
int smx_target_parse(const char *s, smx_target_spec *out, smx_err *err);

/* Frees the strings (wiping the password first) and zeroes *t. Safe on a zeroed spec. */
void smx_target_spec_free(smx_target_spec *t);

/* Copies `s` into buf for quoting in messages and logs: the password of a scheme://user:pw@...
 * URL (of each one in a comma-separated list) becomes "***", control characters become '?', and
 * text that does not fit ends in "...". */
void smx_target_display(const char *s, char *buf, size_t size);

/* Separates the password of a scheme://user:password@host URL from the rest, so that the target
 * text handled (and quoted in messages) from then on has none: *stripped gets a malloc'd copy of
 * s without ":password" ("ssh://user@host"), *password the malloc'd percent-decoded password, or
 * NULL when s has none (then *stripped is a plain copy). Returns 0, SMX_EINVAL (bad
 * percent-encoding or %00 in the password, quoted masked) or SMX_ENOMEM (nothing allocated). */
int smx_target_take_password(const char *s, char **stripped, char **password, smx_err *err);

/* Removes ":password" from every scheme://user:password@ URL among the comma-separated elements
 * of s, in place, and zeroes the bytes the string no longer uses. For wiping passwords out of
 * argv (what ps shows) once the arguments have been copied. */
void smx_target_strip_in_place(char *s);

#endif
