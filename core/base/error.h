/* sshmux error codes (enum smx_errcode, smx_strerror, smx_err: in the public header): every
 * fallible function returns 0 (or a count) on success and one of the negative codes on failure.
 * Details for humans go into a caller-supplied message buffer (smx_err), never into global
 * state. */
#ifndef SSHMUX_ERROR_H
#define SSHMUX_ERROR_H

#include <stddef.h>

#include "sshmux.h"

/* printf into e->msg (if e is not NULL) and return code, so callers can `return smx_seterr(...)`. */
int smx_seterr(smx_err *e, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
