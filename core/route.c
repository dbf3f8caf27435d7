/* How a session reaches its server: through a ProxyJump chain, a ProxyCommand, or directly. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine_internal.h"
#include "jumphost.h"
#include "transport.h"

void smx_engine_set_config(smx_engine *e, const smx_config *cfg)
{
    e->config = cfg;
}

int smx_engine_set_jump_overrides(smx_engine *e, const smx_jump_overrides *jo)
{
    e->jump_ov.user = jo->user;
    e->jump_ov.password = jo->password;
    for (size_t i = 0; i < jo->identityfiles.n; i++)
        if (smx_strvec_push(&e->jump_ov.identityfiles, jo->identityfiles.v[i]) < 0)
            return SMX_ENOMEM;
    return 0;
}

static int route_default_config(smx_engine *e, smx_err *err)
{
    if (e->config)
        return 0;
    /* A library user who set no config: hops resolve with defaults only. */
    smx_config *cfg = NULL;
    int rc = smx_config_load(&cfg, "none", err);
    e->owned_config = cfg;
    e->config = cfg;
    return rc;
}

/* hops[0..n) back in ProxyJump syntax ("user@host:port,..."), sized to fit: a long chain must
 * not be cut short (its last hop would silently become another host). NULL when out of memory. */
static char *route_chain_text(const smx_jumphop *hops, size_t n)
{
    size_t size = 1;
    for (size_t k = 0; k < n; k++)
        size += (hops[k].user ? strlen(hops[k].user) + 1 : 0) + strlen(hops[k].host) + 2 +
                sizeof ":65535";
    char *chain = malloc(size);
    size_t off = 0;
    for (size_t k = 0; chain && k < n; k++) {
        const smx_jumphop *h = &hops[k];
        int v6 = strchr(h->host, ':') != NULL;
        off += (size_t)snprintf(chain + off, size - off, "%s%s%s%s%s%s", k ? "," : "",
                                h->user ? h->user : "", h->user ? "@" : "", v6 ? "[" : "",
                                h->host, v6 ? "]" : "");
        if (h->port)
            off += (size_t)snprintf(chain + off, size - off, ":%d", h->port);
    }
    if (chain && n == 0)
        chain[0] = '\0';
    return chain;
}

/* Resolves hop i of the parsed chain; its ProxyJump becomes the hops before it. */
static int route_resolve_hop(smx_engine *e, const smx_jumphop *hops, size_t i, smx_hostcfg *out,
                             smx_err *err)
{
    smx_overrides ov = {0};
    ov.user = hops[i].user ? hops[i].user : (i == 0 ? e->jump_ov.user : NULL);
    ov.port = hops[i].port;
    if (i == 0)
        ov.identityfiles = e->jump_ov.identityfiles;
    int rc = smx_config_resolve(e->config, hops[i].host, &ov, out, err);
    if (rc < 0 || i == 0)
        return rc;   /* the first hop keeps its own ProxyJump/ProxyCommand, as ssh does */
    free(out->proxyjump);
    free(out->proxycommand);
    out->proxycommand = NULL;
    out->proxyjump = route_chain_text(hops, i);
    return out->proxyjump ? 0 : SMX_ENOMEM;
}

int smx_engine_resolve_hops(smx_engine *e, const char *chain, smx_hostcfg **out, size_t *nout,
                            smx_err *err)
{
    if (route_default_config(e, err) < 0)
        return SMX_EINVAL;
    smx_jumphop *hops = NULL;
    size_t n = 0;
    int rc = smx_proxyjump_parse(chain, &hops, &n, err);
    if (rc < 0)
        return rc;
    smx_hostcfg *hcs = calloc(n ? n : 1, sizeof *hcs);
    for (size_t i = 0; hcs && i < n && rc == 0; i++) {
        rc = route_resolve_hop(e, hops, i, &hcs[i], err);
        if (rc < 0) {
            char msg[sizeof err->msg];
            snprintf(msg, sizeof msg, "%s", err->msg);
            smx_seterr(err, rc, "jump host %s (hop %zu): %s", hops[i].host, i + 1, msg);
            for (size_t k = 0; k <= i; k++)
                smx_hostcfg_free(&hcs[k]);
            free(hcs);
            hcs = NULL;
        }
    }
    smx_jumphops_free(hops, n);
    if (!hcs)
        return rc < 0 ? rc : SMX_ENOMEM;
    *out = hcs;
    *nout = n;
    return 0;
}

smx_transport *smx_engine_make_transport(smx_engine *e, const smx_hostcfg *hc, smx_err *err)
{
    if (hc->proxyjump && strcmp(hc->proxyjump, "none") != 0)
        return smx_jump_transport_new(e, hc->proxyjump, hc->hostname, hc->port, err);
    if (hc->proxycommand && strcmp(hc->proxycommand, "none") != 0) {
        char *cmd = NULL;
        if (smx_hostcfg_expand_proxy(hc, hc->proxycommand, &cmd, err) < 0)
            return NULL;
        smx_transport *t = smx_command_transport_new(e->loop, cmd);
        free(cmd);
        if (!t)
            smx_seterr(err, SMX_ENOMEM, "out of memory");
        return t;
    }
    smx_transport *t = smx_tcp_transport_new(e->loop, e->resolver, hc->hostname, hc->port);
    if (!t)
        smx_seterr(err, SMX_ENOMEM, "out of memory");
    return t;
}
