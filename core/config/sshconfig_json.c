/* smx_hostcfg -> JSON with ssh -G's key names (see sshconfig.h for the value conventions). */
#include "sshconfig_internal.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

enum jtype {
    J_STR,          /* string, null if unset */
    J_INT,
    J_BOOL,
    J_TIMEOUT,      /* number, or "none" for 0 as ssh -G prints it */
    J_LIST,         /* array of strings */
    J_FILES         /* array of strings, ["none"] when empty */
};

static const struct {
    const char *key;
    enum jtype type;
    size_t offset;
} jfields[] = {
#define J(name, type) {#name, type, offsetof(smx_hostcfg, name)}
    J(host, J_STR), J(hostname, J_STR), J(user, J_STR), J(port, J_INT),
    {"identityfile", J_LIST, offsetof(smx_hostcfg, identityfile_raw)},
    J(identitiesonly, J_BOOL), J(identityagent, J_STR),
    J(userknownhostsfile, J_FILES), J(globalknownhostsfile, J_FILES),
    J(stricthostkeychecking, J_STR), J(connecttimeout, J_TIMEOUT),
    J(serveraliveinterval, J_INT), J(serveralivecountmax, J_INT), J(compression, J_BOOL),
    J(ciphers, J_STR), J(kexalgorithms, J_STR), J(hostkeyalgorithms, J_STR), J(macs, J_STR),
    J(pubkeyacceptedalgorithms, J_STR), J(preferredauthentications, J_STR),
    J(pubkeyauthentication, J_BOOL), J(passwordauthentication, J_BOOL),
    J(kbdinteractiveauthentication, J_BOOL), J(batchmode, J_BOOL),
    J(proxyjump, J_STR), J(proxycommand, J_STR), J(hostkeyalias, J_STR),
    J(loglevel, J_STR), J(hashknownhosts, J_BOOL), J(connectionattempts, J_INT),
    J(tcpkeepalive, J_BOOL), J(addressfamily, J_STR),
#undef J
};

/* Config files are bytes, JSON is UTF-8: a value that is not valid UTF-8 is printed with '?'
 * for every non-ASCII byte rather than failing the whole object. */
static json_t *jstr(const char *s)
{
    json_t *j = json_string(s);
    char *copy;

    if (j || !(copy = strdup(s)))
        return j;
    for (char *p = copy; *p; p++)
        if ((unsigned char)*p >= 0x80)
            *p = '?';
    j = json_string(copy);
    free(copy);
    return j;
}

static json_t *list_json(const smx_strvec *v, int none_if_empty)
{
    json_t *a = json_array();

    if (!a)
        return NULL;
    if (v->n == 0 && none_if_empty && json_array_append_new(a, jstr("none")) < 0)
        goto fail;
    for (size_t i = 0; i < v->n; i++)
        if (json_array_append_new(a, jstr(v->v[i])) < 0)
            goto fail;
    return a;
fail:
    json_decref(a);
    return NULL;
}

static json_t *field_json(const smx_hostcfg *hc, size_t i)
{
    const char *p = (const char *)hc + jfields[i].offset;
    const char *s;
    int n;

    switch (jfields[i].type) {
    case J_STR:
        s = *(char *const *)(const void *)p;
        return s ? jstr(s) : json_null();
    case J_INT:
        return json_integer(*(const int *)(const void *)p);
    case J_BOOL:
        return json_boolean(*(const int *)(const void *)p > 0);
    case J_TIMEOUT:
        n = *(const int *)(const void *)p;
        return n > 0 ? json_integer(n) : json_string("none");
    case J_LIST:
    case J_FILES:
        return list_json((const smx_strvec *)(const void *)p, jfields[i].type == J_FILES);
    }
    return NULL;
}

json_t *smx_hostcfg_to_json(const smx_hostcfg *hc)
{
    json_t *o = json_object();

    if (!o)
        return NULL;
    for (size_t i = 0; i < sizeof jfields / sizeof jfields[0]; i++) {
        /* json_object_set_new() takes the reference even when it fails; NULL here only
         * means out of memory. */
        json_t *v = field_json(hc, i);

        if (!v || json_object_set_new(o, jfields[i].key, v) < 0) {
            json_decref(o);
            return NULL;
        }
    }
    return o;
}
