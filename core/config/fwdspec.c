#include "fwdspec.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FWD_MAX_FIELDS 4

/* Splits at ':' outside brackets; brackets around a field are removed. Returns the field count,
 * or -1 on malformed brackets or too many fields. */
static int fwd_split(const char *s, char *fields[FWD_MAX_FIELDS], char *buf, size_t buflen)
{
    snprintf(buf, buflen, "%s", s);
    int n = 0;
    char *p = buf;
    for (;;) {
        if (n == FWD_MAX_FIELDS)
            return -1;
        if (*p == '[') {
            char *close = strchr(p, ']');
            if (!close || (close[1] != ':' && close[1] != '\0'))
                return -1;
            *close = '\0';
            fields[n++] = p + 1;
            if (close[1] == '\0')
                return n;
            p = close + 2;
            continue;
        }
        fields[n++] = p;
        char *colon = strchr(p, ':');
        if (!colon)
            return n;
        *colon = '\0';
        p = colon + 1;
    }
}

static int fwd_port(const char *s, int allow_zero, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!*s || *end || errno || v < (allow_zero ? 0 : 1) || v > 65535)
        return -1;
    *out = (int)v;
    return 0;
}

static int fwd_is_path(const char *s)
{
    return strchr(s, '/') != NULL;
}

static int fwd_local(smx_fwd_spec *f, const char *addr, const char *port_or_path)
{
    if (addr == NULL && fwd_is_path(port_or_path)) {
        f->bind_path = strdup(port_or_path);
        return 0;
    }
    if (fwd_port(port_or_path, 1, &f->bind_port) < 0)
        return -1;
    if (addr && *addr && strcmp(addr, "localhost") != 0)
        f->bind_addr = strdup(addr);
    else if (addr && strcmp(addr, "localhost") == 0)
        f->bind_addr = NULL;
    return 0;
}

static int fwd_remote(smx_fwd_spec *f, const char *host, const char *port)
{
    if (!port) {
        if (!fwd_is_path(host))
            return -1;
        f->remote_path = strdup(host);
        return 0;
    }
    if (!*host || fwd_port(port, 0, &f->port) < 0)
        return -1;
    f->host = strdup(host);
    return 0;
}

int smx_fwd_spec_parse(const char *s, smx_fwd_spec *out, smx_err *err)
{
    memset(out, 0, sizeof *out);
    char buf[1024], *fl[FWD_MAX_FIELDS];
    if (strlen(s) >= sizeof buf)
        return smx_seterr(err, SMX_EINVAL, "-L \"%.40s...\": too long", s);
    int n = fwd_split(s, fl, buf, sizeof buf);
    int rc = -1;
    if (n == 2)
        rc = (fwd_local(out, NULL, fl[0]) < 0 || fwd_remote(out, fl[1], NULL) < 0) ? -1 : 0;
    else if (n == 3 && fwd_is_path(fl[0]))
        rc = (fwd_local(out, NULL, fl[0]) < 0 || fwd_remote(out, fl[1], fl[2]) < 0) ? -1 : 0;
    else if (n == 3 && fwd_is_path(fl[2]))
        rc = (fwd_local(out, fl[0], fl[1]) < 0 || fwd_remote(out, fl[2], NULL) < 0) ? -1 : 0;
    else if (n == 3)
        rc = (fwd_local(out, NULL, fl[0]) < 0 || fwd_remote(out, fl[1], fl[2]) < 0) ? -1 : 0;
    else if (n == 4)
        rc = (fwd_local(out, fl[0], fl[1]) < 0 || fwd_remote(out, fl[2], fl[3]) < 0) ? -1 : 0;
    if (rc < 0 || (!out->bind_path && !out->bind_addr && out->bind_port < 0)) {
        smx_fwd_spec_free(out);
        return smx_seterr(err, SMX_EINVAL,
                          "-L \"%s\": expected [bind_address:]port:host:hostport, "
                          "[bind_address:]port:remote_socket, local_socket:host:hostport or "
                          "local_socket:remote_socket (ports 1-65535)", s);
    }
    return 0;
}

void smx_fwd_spec_free(smx_fwd_spec *f)
{
    free(f->bind_addr);
    free(f->bind_path);
    free(f->host);
    free(f->remote_path);
    memset(f, 0, sizeof *f);
}

void smx_fwd_spec_describe(const smx_fwd_spec *f, char *local, size_t llen, char *remote,
                           size_t rlen)
{
    const char *addr = f->bind_addr ? f->bind_addr : "127.0.0.1";
    if (f->bind_path)
        snprintf(local, llen, "%s", f->bind_path);
    else if (strchr(addr, ':'))
        snprintf(local, llen, "[%s]:%d", addr, f->bind_port);
    else
        snprintf(local, llen, "%s:%d", addr, f->bind_port);
    if (f->remote_path)
        snprintf(remote, rlen, "%s", f->remote_path);
    else if (strchr(f->host, ':'))
        snprintf(remote, rlen, "[%s]:%d", f->host, f->port);
    else
        snprintf(remote, rlen, "%s:%d", f->host, f->port);
}
