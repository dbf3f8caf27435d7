/* Group sources as part of an smx_config (the public smx_config_add_* calls), and what a host
 * list needs of them. */
#ifndef _DEFAULT_SOURCE
#define _DEFAULT_SOURCE
#endif
#include "groups_internal.h"
#include "sshconfig_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static smx_groups *cfg_groups(smx_config *cfg, smx_err *err)
{
    if (!cfg) {
        smx_seterr(err, SMX_EINVAL, "no configuration");
        return NULL;
    }
    if (!cfg->groups && !(cfg->groups = smx_groups_new()))
        smx_seterr(err, SMX_ENOMEM, "out of memory");
    return cfg->groups;
}

int smx_config_add_groups_file(smx_config *cfg, const char *path, smx_err *err)
{
    smx_groups *g = cfg_groups(cfg, err);
    return g ? smx_groups_load_clush_yaml(g, path, err) : SMX_ENOMEM;
}

int smx_config_add_inventory(smx_config *cfg, const char *path, smx_err *err)
{
    smx_groups *g = cfg_groups(cfg, err);
    return g ? smx_groups_load_inventory(g, path, err) : SMX_ENOMEM;
}

int smx_config_add_genders(smx_config *cfg, const char *path, smx_err *err)
{
    smx_groups *g = cfg_groups(cfg, err);
    return g ? smx_groups_load_genders(g, path, err) : SMX_ENOMEM;
}

/* A default file that does not load is not fatal to a run that names no group (sshmux should
 * not stop working because /etc/genders has a typo): it is kept for lookups to report. */
static int cfg_default(smx_groups *g, int rc, const smx_err *e, smx_err *err)
{
    if (rc == SMX_ENOMEM)
        return smx_seterr(err, rc, "out of memory");
    if (rc < 0 && rc != SMX_ENOENT)
        smx_groups_defer_error(g, e);
    return 0;
}

int smx_config_add_default_groups(smx_config *cfg, unsigned which, smx_strvec *notes,
                                  smx_err *err)
{
    smx_groups *g = cfg_groups(cfg, err);
    int rc = 0;
    if (!g)
        return SMX_ENOMEM;
    if (which & SMX_GROUPS_CLUSTERSHELL)
        rc = smx_groups_load_clush_defaults(g, notes, err);
    const char *inv = getenv("ANSIBLE_INVENTORY");
    if (rc == 0 && (which & SMX_GROUPS_ANSIBLE) && inv && *inv) {
        char *list = strdup(inv), *save = NULL;
        if (!list)
            return smx_seterr(err, SMX_ENOMEM, "out of memory");
        for (char *p = strtok_r(list, ",", &save); rc == 0 && p; p = strtok_r(NULL, ",", &save)) {
            smx_err e = {{0}};
            while (*p == ' ')
                p++;
            if (!*p)
                continue;
            int r = smx_groups_load_inventory(g, p, &e);
            if (r < 0 && r != SMX_ENOMEM && notes) {
                char msg[SMX_MSG_MAX + 32];
                snprintf(msg, sizeof msg, "ANSIBLE_INVENTORY: %s", e.msg);
                smx_strvec_push(notes, msg);
            }
            if (r == SMX_ENOENT)   /* named explicitly: a missing file is worth a lookup error */
                smx_groups_defer_error(g, &e);
            rc = cfg_default(g, r, &e, err);
        }
        free(list);
    }
    if (rc == 0 && (which & SMX_GROUPS_GENDERS) && access("/etc/genders", F_OK) == 0) {
        smx_err e = {{0}};
        rc = cfg_default(g, smx_groups_load_genders(g, "/etc/genders", &e), &e, err);
    }
    return rc;
}
