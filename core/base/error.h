/* sshmux error codes: every fallible function returns 0 (or a count) on success and one of these
 * negative codes on failure; smx_strerror() names them. Details for humans go into a caller-supplied
 * message buffer (smx_err), never into global state. */
#ifndef SSHMUX_ERROR_H
#define SSHMUX_ERROR_H

#include <stddef.h>

enum smx_errcode {
    SMX_OK = 0,
    SMX_EINVAL = -1,      /* malformed input (hostlist, option, config line) */
    SMX_ENOMEM = -2,
    SMX_EIO = -3,         /* file could not be read or written */
    SMX_ENOENT = -4,      /* file or host not found */
    SMX_ERANGE = -5,      /* number out of range (port, range too large) */
    SMX_ERESOLVE = -6,    /* name resolution failed */
    SMX_ECONNECT = -7,    /* TCP connect failed / refused */
    SMX_ETIMEDOUT = -8,
    SMX_EHOSTKEY = -9,    /* host key unknown, changed or revoked */
    SMX_EAUTH = -10,      /* no authentication method succeeded */
    SMX_ESSH = -11,       /* protocol error reported by libssh */
    SMX_ECHANNEL = -12,   /* channel open/request refused */
    SMX_EMFILE = -13,     /* out of file descriptors */
    SMX_ECLOSED = -14,    /* peer closed the connection */
    SMX_ECANCELED = -15,
    SMX_EPASSPHRASE = -16, /* wrong passphrase for an encrypted key */
    SMX_EBUSY = -17        /* a jump host refused a channel while full: try another connection */
};

const char *smx_strerror(int code);

/* The one size of every buffer that holds an error message (smx_err, results, transports): a
 * message copied from one to another is never cut shorter on the way. */
#define SMX_MSG_MAX 512

/* A message buffer for human-readable detail that travels with an error code. */
typedef struct smx_err {
    char msg[SMX_MSG_MAX];
} smx_err;

/* printf into e->msg (if e is not NULL) and return code, so callers can `return smx_seterr(...)`. */
int smx_seterr(smx_err *e, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
