/* The public face of ssh_config: one target string resolved to one host's settings (with a
 * message that names the target), and the config and overrides an engine resolves its
 * smx_engine_add_target hosts against. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine_internal.h"
#include "groups.h"
#include "sshconfig_internal.h"
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

/* An inventory value that cannot be a HostName, Port or User: the host, where it came from. */
static int api_inventory_bad(const char *host, const char *key, const char *value,
                             const char *where, const char *why, smx_err *err)
{
    return smx_seterr(err, SMX_EINVAL, "%s: inventory %s \"%.64s\" (%s) %s", host, key, value,
                      where, why);
}

/* A value usable as one ssh_config word: no blanks, quotes, backslashes, control characters or
 * any of `bad` (a Jinja template's braces, ssh_config's %-tokens). */
static int api_inventory_word(const char *s, const char *bad)
{
    if (!*s || strlen(s) > 255)
        return 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p <= ' ' || *p == 0x7f || *p == '"' || *p == '\'' || *p == '\\' || strchr(bad, *p))
            return 0;
    return 1;
}

/* The inventory's ansible_host / ansible_port / ansible_user for `host`, as ssh_config lines
 * after the -o ones (so -o, -l, -p and the target's own user@ and :port still beat them, and
 * they beat the ssh_config files). */
static int api_inventory_lines(const smx_config *cfg, const char *host, smx_strvec *lines,
                               smx_err *err)
{
    smx_invhost inv;
    char line[600];
    if (!cfg->groups || !smx_groups_inventory_host(cfg->groups, host, &inv))
        return 0;
    if (inv.host) {
        if (!api_inventory_word(inv.host, "{}%"))
            return api_inventory_bad(host, "ansible_host", inv.host, inv.host_where,
                                     "is not a host name or address (templates are not "
                                     "evaluated)", err);
        snprintf(line, sizeof line, "HostName %s", inv.host);
        if (smx_strvec_push(lines, line) < 0)
            return SMX_ENOMEM;
    }
    if (inv.port) {
        char *end;
        long port = strtol(inv.port, &end, 10);
        if (*end || port < 1 || port > 65535 || !*inv.port)
            return api_inventory_bad(host, "ansible_port", inv.port, inv.port_where,
                                     "is not a port (1..65535)", err);
        snprintf(line, sizeof line, "Port %ld", port);
        if (smx_strvec_push(lines, line) < 0)
            return SMX_ENOMEM;
    }
    if (inv.user) {
        if (!api_inventory_word(inv.user, "{}%@"))
            return api_inventory_bad(host, "ansible_user", inv.user, inv.user_where,
                                     "is not a user name (templates are not evaluated)", err);
        snprintf(line, sizeof line, "User %s", inv.user);
        if (smx_strvec_push(lines, line) < 0)
            return SMX_ENOMEM;
    }
    return 0;
}

int smx_hostcfg_resolve(const smx_config *cfg, const smx_overrides *ov, const char *target,
                        smx_hostcfg **out, smx_err *err)
{
    smx_target_spec spec;
    int rc = smx_target_parse(target, &spec, err);
    if (rc < 0)
        return rc;
    smx_overrides o = {0};
    smx_strvec options = {0};
    if (ov)
        o = *ov;
    o.user = spec.user ? spec.user : o.user;   /* user@ and :port beat -l and -p, as in ssh */
    o.port = spec.port ? spec.port : o.port;
    if (cfg && cfg->groups) {
        for (size_t i = 0; rc == 0 && ov && i < ov->options.n; i++)
            rc = smx_strvec_push(&options, ov->options.v[i]);
        if (rc == 0)
            rc = api_inventory_lines(cfg, spec.host, &options, err);
        if (rc == SMX_ENOMEM)
            rc = smx_seterr(err, rc, "out of memory");
        o.options = options;
    }
    smx_hostcfg *hc = rc == 0 ? calloc(1, sizeof *hc) : NULL;
    if (rc < 0)
        ;
    else if (!hc)
        rc = smx_seterr(err, SMX_ENOMEM, "out of memory");
    else if ((rc = smx_config_resolve(cfg, spec.host, &o, hc, err)) < 0)
        rc = api_resolve_failed(target, rc, err);
    smx_strvec_free(&options);
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

int smx_hostcfg_fds(const smx_hostcfg *hc)
{
    int proxied = (hc->proxyjump && strcmp(hc->proxyjump, "none") != 0) ||
                  (hc->proxycommand && strcmp(hc->proxycommand, "none") != 0);
    return proxied ? 2 : 1;
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
