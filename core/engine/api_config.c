/* The public face of ssh_config: one target string resolved to one host's settings (with a
 * message that names the target), and the config and overrides an engine resolves its
 * smx_engine_add_target hosts against. */
#include <stdlib.h>
#include <string.h>

#include "engine_internal.h"
#include "target.h"

/* The resolver's message, prefixed with the target as it may be shown (no password). */
static int api_resolve_failed(const char *target, int rc, smx_err *err)
{
    size_t size = strlen(target) + 4;
    char *shown = malloc(size);
    if (!shown)
        return smx_seterr(err, SMX_ENOMEM, "out of memory");
    smx_target_display(target, shown, size);
    char msg[sizeof err->msg];
    memcpy(msg, err->msg, sizeof msg);
    smx_seterr(err, rc, "%s: %s", shown, msg);
    free(shown);
    return rc;
}

int smx_hostcfg_resolve(const smx_config *cfg, const smx_overrides *ov, const char *target,
                        smx_hostcfg **out, smx_err *err)
{
    smx_target_spec spec;
    int rc = smx_target_parse(target, &spec, err);
    if (rc < 0)
        return rc;
    smx_overrides o = {0};
    if (ov)
        o = *ov;
    o.user = spec.user ? spec.user : o.user;   /* user@ and :port beat -l and -p, as in ssh */
    o.port = spec.port ? spec.port : o.port;
    smx_hostcfg *hc = calloc(1, sizeof *hc);
    if (!hc)
        rc = smx_seterr(err, SMX_ENOMEM, "out of memory");
    else if ((rc = smx_config_resolve(cfg, spec.host, &o, hc, err)) < 0)
        rc = api_resolve_failed(target, rc, err);
    smx_target_spec_free(&spec);
    if (rc < 0) {
        free(hc);
        return rc;
    }
    *out = hc;
    return 0;
}

void smx_hostcfg_destroy(smx_hostcfg *hc)
{
    if (!hc)
        return;
    smx_hostcfg_free(hc);
    free(hc);
}

const char *smx_hostcfg_host(const smx_hostcfg *hc)
{
    return hc->host;
}

const char *smx_hostcfg_proxyjump(const smx_hostcfg *hc)
{
    return hc->proxyjump;
}

int smx_engine_load_config(smx_engine *e, const char *path, smx_err *err)
{
    smx_config *cfg = NULL;
    int rc = smx_config_load(&cfg, path, err);
    if (rc < 0)
        return rc;
    const smx_strvec *warnings = smx_config_warnings(cfg);
    for (size_t i = 0; e->opts.warn && i < warnings->n; i++)
        e->opts.warn(e->opts.ud, path ? path : "ssh_config", warnings->v[i]);
    /* Hosts and hops resolved so far hold copies of what they need: the old config can go. */
    smx_config_free(e->owned_config);
    e->owned_config = cfg;
    e->config = cfg;
    return 0;
}

/* A deep copy: the engine's own, freed with it. */
static int engine_copy_overrides(smx_engine *e, const smx_overrides *ov)
{
    smx_engine_free_overrides(e);
    if (!ov)
        return 0;
    e->ov.port = ov->port;
    if (ov->user && !(e->ov.user = e->ov_user = strdup(ov->user)))
        return SMX_ENOMEM;
    for (size_t i = 0; i < ov->options.n; i++)
        if (smx_strvec_push(&e->ov.options, ov->options.v[i]) < 0)
            return SMX_ENOMEM;
    for (size_t i = 0; i < ov->identityfiles.n; i++)
        if (smx_strvec_push(&e->ov.identityfiles, ov->identityfiles.v[i]) < 0)
            return SMX_ENOMEM;
    e->overrides = &e->ov;
    return 0;
}

void smx_engine_free_overrides(smx_engine *e)
{
    smx_strvec_free(&e->ov.options);
    smx_strvec_free(&e->ov.identityfiles);
    free(e->ov_user);
    memset(&e->ov, 0, sizeof e->ov);
    e->ov_user = NULL;
    e->overrides = NULL;
}

int smx_engine_set_overrides(smx_engine *e, const smx_overrides *ov, smx_err *err)
{
    if (engine_copy_overrides(e, ov) < 0)
        return smx_seterr(err, SMX_ENOMEM, "out of memory");
    /* Keys named on the command line must load (ssh_config's are skipped when missing). */
    for (size_t i = 0; ov && i < ov->identityfiles.n; i++) {
        int rc = smx_engine_load_key(e, ov->identityfiles.v[i], err);
        if (rc < 0)
            return rc;
    }
    return 0;
}
