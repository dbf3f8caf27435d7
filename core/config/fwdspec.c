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
    /* "" and "*" stay: every address, where GatewayPorts allows it. */
    if (addr && strcmp(addr, "localhost") != 0)
        f->bind_addr = strdup(addr);
    return 0;
}

static int fwd_remote(smx_fwd_spec *f, const char *host, const char *port)
{
    if (!port) {
        if (!fwd_is_path(host))
            return -1;
        f->dest_path = strdup(host);
        return 0;
    }
    if (!*host || fwd_port(port, 0, &f->port) < 0)
        return -1;
    f->host = strdup(host);
    return 0;
}

/* The listener's [bind_address:]port (or socket path) and the destination: the four forms
 * -L and -R share. Returns 0 or -1. */
static int fwd_parse_listener_dest(smx_fwd_spec *out, char **fl, int n)
{
    if (n == 2)
        return (fwd_local(out, NULL, fl[0]) < 0 || fwd_remote(out, fl[1], NULL) < 0) ? -1 : 0;
    if (n == 3 && fwd_is_path(fl[0]))
        return (fwd_local(out, NULL, fl[0]) < 0 || fwd_remote(out, fl[1], fl[2]) < 0) ? -1 : 0;
    if (n == 3 && fwd_is_path(fl[2]))
        return (fwd_local(out, fl[0], fl[1]) < 0 || fwd_remote(out, fl[2], NULL) < 0) ? -1 : 0;
    if (n == 3)
        return (fwd_local(out, NULL, fl[0]) < 0 || fwd_remote(out, fl[1], fl[2]) < 0) ? -1 : 0;
    if (n == 4)
        return (fwd_local(out, fl[0], fl[1]) < 0 || fwd_remote(out, fl[2], fl[3]) < 0) ? -1 : 0;
    return -1;
}

/* [bind_address:]port with no destination: -D, and -R's reverse SOCKS proxy. */
static int fwd_parse_socks(smx_fwd_spec *out, char **fl, int n)
{
    if (n == 1 && !fwd_is_path(fl[0]))
        return fwd_local(out, NULL, fl[0]);
    if (n == 2 && !fwd_is_path(fl[0]) && !fwd_is_path(fl[1]))
        return fwd_local(out, fl[0], fl[1]);
    return -1;
}

static const char *const fwd_usage[] = {
    [SMX_FWD_LOCAL] = "[bind_address:]port:host:hostport, "
                      "[bind_address:]port:remote_socket, local_socket:host:hostport or "
                      "local_socket:remote_socket (ports 1-65535)",
    [SMX_FWD_REMOTE] = "[bind_address:]port:host:hostport, "
                       "[bind_address:]port:local_socket, remote_socket:host:hostport, "
                       "remote_socket:local_socket or [bind_address:]port (a SOCKS proxy; "
                       "ports 0-65535)",
    [SMX_FWD_DYNAMIC] = "[bind_address:]port (0-65535)",
};

int smx_fwd_spec_parse_kind(const char *s, enum smx_fwd_kind kind, smx_fwd_spec *out,
                            smx_err *err)
{
    memset(out, 0, sizeof *out);
    if (kind != SMX_FWD_LOCAL && kind != SMX_FWD_REMOTE && kind != SMX_FWD_DYNAMIC)
        return smx_seterr(err, SMX_EINVAL, "unknown kind of forward");
    out->kind = kind;
    static const char opt[] = {[SMX_FWD_LOCAL] = 'L', [SMX_FWD_REMOTE] = 'R',
                               [SMX_FWD_DYNAMIC] = 'D'};
    char buf[1024], *fl[FWD_MAX_FIELDS];
    if (strlen(s) >= sizeof buf)
        return smx_seterr(err, SMX_EINVAL, "-%c \"%.40s...\": too long", opt[kind], s);
    int n = fwd_split(s, fl, buf, sizeof buf);
    int rc = -1;
    if (kind == SMX_FWD_DYNAMIC)
        rc = fwd_parse_socks(out, fl, n);
    else if (kind == SMX_FWD_REMOTE && (n == 1 || (n == 2 && !fwd_is_path(fl[1]))))
        rc = fwd_parse_socks(out, fl, n);
    else if (n >= 2)
        rc = fwd_parse_listener_dest(out, fl, n);
    if (rc < 0 || (!out->bind_path && !out->bind_addr && out->bind_port < 0)) {
        smx_fwd_spec_free(out);
        return smx_seterr(err, SMX_EINVAL, "-%c \"%s\": expected %s", opt[kind], s,
                          fwd_usage[kind]);
    }
    out->kind = kind;
    return 0;
}

int smx_fwd_spec_parse(const char *s, smx_fwd_spec *out, smx_err *err)
{
    return smx_fwd_spec_parse_kind(s, SMX_FWD_LOCAL, out, err);
}

int smx_fwd_spec_is_socks(const smx_fwd_spec *f)
{
    return !f->host && !f->dest_path && !f->command;
}

static int fwd_dup(char **dst, const char *src)
{
    *dst = src ? strdup(src) : NULL;
    return src && !*dst ? -1 : 0;
}

int smx_fwd_spec_copy(smx_fwd_spec *dst, const smx_fwd_spec *src)
{
    *dst = *src;
    dst->bind_addr = dst->bind_path = dst->host = dst->dest_path = dst->command = NULL;
    if (fwd_dup(&dst->bind_addr, src->bind_addr) < 0 ||
        fwd_dup(&dst->bind_path, src->bind_path) < 0 || fwd_dup(&dst->host, src->host) < 0 ||
        fwd_dup(&dst->dest_path, src->dest_path) < 0 ||
        fwd_dup(&dst->command, src->command) < 0) {
        smx_fwd_spec_free(dst);
        return SMX_ENOMEM;
    }
    return 0;
}

void smx_fwd_spec_free(smx_fwd_spec *f)
{
    free(f->bind_addr);
    free(f->bind_path);
    free(f->host);
    free(f->dest_path);
    free(f->command);
    memset(f, 0, sizeof *f);
}

static void fwd_describe_tcp(char *out, size_t len, const char *addr, int port)
{
    if (strchr(addr, ':'))
        snprintf(out, len, "[%s]:%d", addr, port);
    else
        snprintf(out, len, "%s:%d", addr, port);
}

void smx_fwd_spec_describe(const smx_fwd_spec *f, char *listen, size_t llen, char *to,
                           size_t tlen)
{
    /* A remote listener without an address binds the server's "localhost" (ssh's default). */
    const char *addr = f->bind_addr ? f->bind_addr
                                    : f->kind == SMX_FWD_REMOTE ? "localhost" : "127.0.0.1";
    if (f->bind_path)
        snprintf(listen, llen, "%s", f->bind_path);
    else
        fwd_describe_tcp(listen, llen, *addr ? addr : "*", f->bind_port);
    if (f->dest_path)
        snprintf(to, tlen, "%s", f->dest_path);
    else if (f->command)
        snprintf(to, tlen, "exec:%s", f->command);
    else if (f->host)
        fwd_describe_tcp(to, tlen, f->host, f->port);
    else
        snprintf(to, tlen, "socks");
}
