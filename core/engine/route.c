/* How a session reaches its server: the transport factory the engine gives its smx_ctx
 * (transports/transports.c picks the kind), and the resolution of ProxyJump hops against the
 * run's ssh_config and first-hop credentials. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine_internal.h"

void smx_engine_set_config(smx_engine *e, const smx_config *cfg)
{
    e->config = cfg;
}

int smx_engine_set_jump_overrides(smx_engine *e, const smx_jump_overrides *jo)
{
    e->jump_ov.user = jo->user;
    e->jump_ov.password = jo->password;
    smx_jumps_set_first_hop_password(e->jumps, jo->password);
    for (size_t i = 0; i < jo->identityfiles.n; i++)
        if (smx_strvec_push(&e->jump_ov.identityfiles, jo->identityfiles.v[i]) < 0)
            return SMX_ENOMEM;
    for (size_t i = 0; i < jo->options.n; i++)
        if (smx_strvec_push(&e->jump_ov.options, jo->options.v[i]) < 0)
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
    if (i == 0) {
        ov.identityfiles = e->jump_ov.identityfiles;
        ov.options = e->jump_ov.options;
    }
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

int smx_engine_resolve_hops_cb(void *engine, const char *chain, smx_hostcfg **hops, size_t *n,
                               smx_err *err)
{
    return smx_engine_resolve_hops(engine, chain, hops, n, err);
}

smx_transport *smx_engine_make_transport(void *engine, const smx_hostcfg *hc, smx_err *err)
{
    smx_engine *e = engine;
    return smx_transport_make(&e->tenv, hc, err);
}
