#include "error.h"

#include <stdarg.h>
#include <stdio.h>

const char *smx_strerror(int code)
{
    switch (code) {
    case SMX_OK: return "success";
    case SMX_EINVAL: return "invalid argument";
    case SMX_ENOMEM: return "out of memory";
    case SMX_EIO: return "input/output error";
    case SMX_ENOENT: return "not found";
    case SMX_ERANGE: return "out of range";
    case SMX_ERESOLVE: return "name resolution failed";
    case SMX_ECONNECT: return "connection failed";
    case SMX_ETIMEDOUT: return "timed out";
    case SMX_EHOSTKEY: return "host key verification failed";
    case SMX_EAUTH: return "authentication failed";
    case SMX_ESSH: return "ssh protocol error";
    case SMX_ECHANNEL: return "channel request refused";
    case SMX_EMFILE: return "out of file descriptors";
    case SMX_ECLOSED: return "connection closed by peer";
    case SMX_ECANCELED: return "canceled";
    case SMX_EPASSPHRASE: return "wrong passphrase";
    case SMX_EBUSY: return "jump connection full";
    }
    return "unknown error";
}

int smx_seterr(smx_err *e, int code, const char *fmt, ...)
{
    if (e) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->msg, sizeof e->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}
