/* OpenSSH -L specifications:
 *   [bind_address:]port:host:hostport      TCP listener -> direct-tcpip
 *   [bind_address:]port:remote_socket      TCP listener -> direct-streamlocal@openssh.com
 *   local_socket:host:hostport             Unix listener -> direct-tcpip
 *   local_socket:remote_socket             Unix listener -> direct-streamlocal
 * IPv6 addresses in brackets; a field with a '/' is a socket path. */
#ifndef SSHMUX_FWDSPEC_H
#define SSHMUX_FWDSPEC_H

#include "error.h"

typedef struct smx_fwd_spec {
    char *bind_addr;      /* NULL: loopback (OpenSSH's default, GatewayPorts no) */
    int bind_port;        /* TCP listener port (0: pick one), unless bind_path */
    char *bind_path;      /* Unix listener path, or NULL */
    char *host;           /* remote TCP destination, unless remote_path */
    int port;
    char *remote_path;    /* remote Unix socket, or NULL */
} smx_fwd_spec;

int smx_fwd_spec_parse(const char *s, smx_fwd_spec *out, smx_err *err);
void smx_fwd_spec_free(smx_fwd_spec *f);
/* "127.0.0.1:8080" / "/tmp/x.sock" and "host:80" / "/remote.sock", for messages. */
void smx_fwd_spec_describe(const smx_fwd_spec *f, char *local, size_t llen, char *remote,
                           size_t rlen);

#endif
