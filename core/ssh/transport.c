/* A transport's failure message, allocated when it fails: most transports never do, and a
 * message buffer in each was half a KiB per open session (issue 14: 16 KiB per session). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "transport.h"

char *smx_transport_errbuf(smx_transport *t)
{
    if (!t->errmsg)
        t->errmsg = calloc(1, SMX_MSG_MAX);
    return t->errmsg;
}

void smx_transport_set_error(smx_transport *t, const char *fmt, ...)
{
    char *buf = smx_transport_errbuf(t);
    if (!buf)
        return;   /* out of memory: the status code still says what kind of failure */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, SMX_MSG_MAX, fmt, ap);
    va_end(ap);
}

const char *smx_transport_error(const smx_transport *t)
{
    return t->errmsg ? t->errmsg : "";
}

void smx_transport_free_error(smx_transport *t)
{
    free(t->errmsg);
    t->errmsg = NULL;
}
