/* sshmux request: one JSON line in NetPulse's paramiko request shape, checked and turned into
 * plain fields. Kept apart from the run (cmd_request.c) so that a fuzzer drives it alone
 * (tests/fuzz/fuzz_request.c). Error messages name the line and the field, never a value: a
 * request carries passwords and keys. */
#ifndef SSHMUX_REQUEST_PARSE_H
#define SSHMUX_REQUEST_PARSE_H

#include <stddef.h>

#include "sshmux.h"

enum req_hostkey { REQ_HK_AUTO_ADD, REQ_HK_REJECT, REQ_HK_WARNING };
enum req_op { REQ_OP_COMMAND, REQ_OP_CONFIG, REQ_OP_UPLOAD, REQ_OP_DOWNLOAD };

/* One request. Strings are malloc'd (NULL when absent); the secrets among them (password,
 * pkey, passphrase, proxy_password, proxy_pkey, proxy_passphrase, sudo_password, and the keys
 * below, which hold them) are wiped by req_spec_free. Times in milliseconds, 0 when not given. */
typedef struct req_spec {
    size_t line;
    char *id;                  /* the request's own "id" as compact JSON, or NULL */
    char *host;
    int port;                  /* 0: ssh_config's, else 22 */
    char *username;
    char *password, *key_filename, *pkey, *passphrase;
    int timeout_ms, banner_timeout_ms, auth_timeout_ms;
    enum req_hostkey host_key_policy;
    int look_for_keys;         /* default 1, as paramiko */
    int allow_agent;           /* default 0, as NetPulse documents */
    int compress;
    char *proxy_host;
    int proxy_port;
    char *proxy_username, *proxy_password, *proxy_key_filename, *proxy_pkey, *proxy_passphrase;
    enum req_op op;
    smx_strvec commands;       /* command / config, in order */
    int sudo;                  /* config only (ignored with command, as NetPulse) */
    char *sudo_password;
    int cmd_timeout_ms;
    smx_strvec env;            /* "K=V" */
    int get_pty;
    char *local_path, *remote_path;
    int resume;
    size_t chunk_size;
    int transfer_timeout_ms;
    /* Requests with equal conn_key may share one connection (everything in connection_args);
     * equal engine_key, one engine (the jump host's credentials and the auth timeout). */
    char *conn_key, *engine_key;
} req_spec;

/* Parses the line text[0..len) (line number lineno, from 1). 0 and *out filled (the caller's:
 * req_spec_free), or -1 with msg "line N: FIELD: why" (and *out freed). */
int req_parse(const char *text, size_t len, size_t lineno, req_spec *out, char *msg,
              size_t msgsize);
void req_spec_free(req_spec *r);

#endif
