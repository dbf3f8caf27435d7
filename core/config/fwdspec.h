/* OpenSSH -L specifications:
 *   [bind_address:]port:host:hostport      TCP listener -> direct-tcpip
 *   [bind_address:]port:remote_socket      TCP listener -> direct-streamlocal@openssh.com
 *   local_socket:host:hostport             Unix listener -> direct-tcpip
 *   local_socket:remote_socket             Unix listener -> direct-streamlocal
 * IPv6 addresses in brackets; a field with a '/' is a socket path. smx_fwd_spec, its parser and
 * smx_fwd_spec_free are in the public header. */
#ifndef SSHMUX_FWDSPEC_H
#define SSHMUX_FWDSPEC_H

#include "error.h"
#include "sshmux.h"

/* dst becomes a copy of src (strings duplicated; free with smx_fwd_spec_free). 0, or SMX_ENOMEM
 * with dst empty. */
int smx_fwd_spec_copy(smx_fwd_spec *dst, const smx_fwd_spec *src);
/* "127.0.0.1:8080" / "/tmp/x.sock" and "host:80" / "/remote.sock", for messages. */
void smx_fwd_spec_describe(const smx_fwd_spec *f, char *local, size_t llen, char *remote,
                           size_t rlen);

#endif
