/* Credentials through the engine: the run's keyring (trust/keyring.c) stays private, and keys are
 * loaded the way ssh loads them: what the command line names must load, what ssh_config names is
 * tried and skipped when missing or unusable. */
#include <stdlib.h>

#include "engine_internal.h"

void smx_engine_set_passphrase(smx_engine *e, const char *pass)
{
    smx_keyring_set_passphrase(e->ctx.keyring, pass);
}

void smx_engine_add_passphrase(smx_engine *e, const char *pass)
{
    smx_keyring_add_passphrase(e->ctx.keyring, pass);
}

void smx_engine_set_ask(smx_engine *e, char *(*ask)(const char *prompt, void *ud), void *ud)
{
    smx_keyring_set_ask(e->ctx.keyring, ask, ud);
}

void smx_engine_forget_passphrases(smx_engine *e)
{
    smx_keyring_forget_passphrases(e->ctx.keyring);
}

int smx_engine_load_key(smx_engine *e, const char *path, smx_err *err)
{
    return smx_keyring_load_file(e->ctx.keyring, path, err);
}

int smx_engine_load_key_content(smx_engine *e, const char *label, const char *content,
                                smx_err *err)
{
    return smx_keyring_load_content(e->ctx.keyring, label, content, err);
}

int smx_engine_add_key_content(smx_engine *e, const char *label, const char *content,
                               smx_err *err)
{
    return smx_keyring_add_content(e->ctx.keyring, label, content, err);
}

void smx_engine_load_host_keys(smx_engine *e, const smx_hostcfg *hc,
                               void (*skipped)(void *ud, const char *msg), void *ud)
{
    const smx_strvec *ids = &hc->identityfile;
    for (size_t i = 0; i < ids->n; i++) {
        smx_err err = {{0}};
        int rc = smx_keyring_load_file(e->ctx.keyring, ids->v[i], &err);
        if (rc < 0 && rc != SMX_ENOENT && skipped)
            skipped(ud, err.msg);
    }
}

int smx_engine_load_jump_keys(smx_engine *e, const char *chain, smx_err *err)
{
    smx_hostcfg *hops = NULL;
    size_t n = 0;
    int rc = smx_engine_resolve_hops(e, chain, &hops, &n, err);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < n; i++) {
        smx_engine_load_host_keys(e, &hops[i], NULL, NULL);
        smx_hostcfg_free(&hops[i]);
    }
    free(hops);
    return 0;
}
