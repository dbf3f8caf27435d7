#include "transports.h"

/* In order: the first that applies to a host is its transport (ssh: ProxyJump wins over
 * ProxyCommand; TCP applies to every host). */
static const smx_transport_kind *const transport_kinds[] = {
    &smx_jump_transport_kind,
    &smx_command_transport_kind,
    &smx_tcp_transport_kind,
};

smx_transport *smx_transport_make(const smx_transport_env *env, const smx_hostcfg *hc,
                                  smx_err *err)
{
    for (size_t i = 0; i < sizeof transport_kinds / sizeof *transport_kinds; i++) {
        const smx_transport_kind *k = transport_kinds[i];
        if (k->applies(hc))
            return k->make(env, hc, err);
    }
    smx_seterr(err, SMX_EINVAL, "no transport for %s", hc->host ? hc->host : "?");
    return NULL;
}
