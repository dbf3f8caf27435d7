/* The outcome of one host's run: what the CLI prints and what --json serialises. */
#ifndef SSHMUX_RESULT_H
#define SSHMUX_RESULT_H

#include <jansson.h>
#include <stddef.h>

#include "error.h"
#include "stage.h"

typedef struct smx_buf {
    char *data;
    size_t len, cap;
} smx_buf;

/* Appends up to `limit` total bytes; returns 1 if something had to be dropped. */
int smx_buf_append(smx_buf *b, const void *p, size_t n, size_t limit);
void smx_buf_free(smx_buf *b);

typedef struct smx_timing {
    double resolve, connect, handshake, auth, exec, total;   /* milliseconds */
} smx_timing;

typedef struct smx_result {
    char *host;            /* alias as given */
    char *target;          /* the target token it came from */
    char *user, *hostname;
    int port;
    int ok;                /* connected, authenticated and the command exited 0 */
    int exit_code;         /* -1 if none */
    char *exit_signal;     /* "TERM", ... or NULL */
    smx_buf out, err;
    int truncated;
    enum smx_stage err_stage;  /* SMX_STAGE_NONE if no error */
    int err_code;              /* SMX_* */
    char err_msg[SMX_MSG_MAX];
    int err_hop;               /* jump hop index that failed, -1 for the target itself */
    int attempts;
    int timed_out;             /* command timeout (-u) */
    smx_timing t;
    char *server_banner, *kex, *cipher, *hostkey, *auth_method;
} smx_result;

void smx_result_init(smx_result *r);
void smx_result_free(smx_result *r);
void smx_result_set_error(smx_result *r, enum smx_stage stage, int code, const char *msg);
/* The recorded failure turned out not to be one (a command's status arrived before its
 * connection went). */
void smx_result_clear_error(smx_result *r);
json_t *smx_result_to_json(const smx_result *r);
/* 0 ok; 255 connection/hostkey/auth failure; 124 command timeout; else remote status
 * (128+signal for a signal). */
int smx_result_exit_status(const smx_result *r);

#endif
