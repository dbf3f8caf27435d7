/* JSON for the public header: records as text, so that no jansson type crosses it. Compact, one
 * line each, reals with six significant digits: what the CLI prints for --json. */
#include <jansson.h>
#include <stdlib.h>

#include "engine_internal.h"
#include "result.h"

static char *api_dump(json_t *j)
{
    char *s = j ? json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(6)) : NULL;
    json_decref(j);
    return s;
}

char *smx_result_json(const smx_result *r)
{
    return api_dump(smx_result_to_json(r));
}

char *smx_hostcfg_json(const smx_hostcfg *hc, const char *target)
{
    json_t *settings = smx_hostcfg_to_json(hc);
    json_t *top = json_object();
    if (!settings || !top) {
        json_decref(settings);
        json_decref(top);
        return NULL;
    }
    /* "target" and "host" first; the settings repeat "host", which keeps its place. */
    json_object_set_new(top, "target", json_string(target));
    json_object_set_new(top, "host", json_string(hc->host));
    json_object_update(top, settings);
    json_decref(settings);
    return api_dump(top);
}

char *smx_forward_json(const smx_forward *f, size_t i)
{
    json_t *o = json_pack("{s:s, s:s, s:s, s:s}", "host", smx_forward_host(f), "kind",
                          smx_forward_kind(f, i), "listen", smx_forward_local(f, i), "to",
                          smx_forward_remote(f, i));
    if (o && smx_forward_port(f, i) > 0)
        json_object_set_new(o, "port", json_integer(smx_forward_port(f, i)));
    return api_dump(o);
}
