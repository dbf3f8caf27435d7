/* One SSH target string -> user, password, host, port.
 *
 * Accepted: host, user@host, host:port, user@host:port, [addr], [addr]:port, user@[addr]:port,
 * a bare IPv6 address (two or more ':', never a port: "fe80::1:22" is an address), and
 * ssh://[user[:password]@]host[:port][/] with user, password and host percent-decoded. */
#ifndef SSHMUX_TARGET_H
#define SSHMUX_TARGET_H

#include <stddef.h>

#include "error.h"
#include "sshmux.h"

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

/* smx_target_display, smx_target_take_password and smx_target_strip_in_place (for keeping
 * URL passwords out of messages and argv) are in the public header. */

#endif
