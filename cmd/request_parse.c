/* sshmux request: one JSON line -> req_spec (request_parse.h). Unknown fields are ignored (NetPulse
 * has more, e.g. bufsize, options); a field of the wrong type, an unknown value of a closed set or
 * a missing host is an error naming the field. No message quotes a value. */
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "request_parse.h"

#define FILE_TRANSFER "__FILE_TRANSFER__"

typedef struct rp {
    req_spec *r;
    char *msg;
    size_t msgsize;
    const char *section;     /* the object being read ("connection_args"), NULL at the top */
} rp;

/* "line N: SECTION.FIELD: why". */
__attribute__((format(printf, 3, 4)))
static int rp_fail(rp *p, const char *field, const char *fmt, ...)
{
    int n = snprintf(p->msg, p->msgsize, "line %zu: %s%s%s: ", p->r->line,
                     p->section ? p->section : "", p->section ? "." : "", field);
    if (n >= 0 && (size_t)n < p->msgsize) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(p->msg + n, p->msgsize - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static const char *rp_type(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    default: return "null";
    }
}

/* obj's member key; NULL when absent or null (obj may be NULL). */
static json_t *rp_get(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return v && !json_is_null(v) ? v : NULL;
}

/* A JSON string with a NUL inside: no C string can carry it whole. */
static int rp_has_nul(const json_t *v)
{
    return strlen(json_string_value(v)) != json_string_length(v);
}

/* A string field (absent or null: left NULL). */
static int rp_string(rp *p, json_t *obj, const char *key, char **out)
{
    json_t *v = rp_get(obj, key);
    if (!v)
        return 0;
    if (!json_is_string(v))
        return rp_fail(p, key, "must be a string, not %s", rp_type(v));
    if (rp_has_nul(v))
        return rp_fail(p, key, "must not contain a NUL character");
    if (!(*out = strdup(json_string_value(v))))
        return rp_fail(p, key, "out of memory");
    return 0;
}

static int rp_bool(rp *p, json_t *obj, const char *key, int *out)
{
    json_t *v = rp_get(obj, key);
    if (!v)
        return 0;
    if (!json_is_boolean(v))
        return rp_fail(p, key, "must be true or false, not %s", rp_type(v));
    *out = json_is_true(v);
    return 0;
}

static int rp_int(rp *p, json_t *obj, const char *key, long min, long max, long *out)
{
    json_t *v = rp_get(obj, key);
    if (!v)
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
        return rp_fail(p, key, "must be an integer from %ld to %ld", min, max);
    *out = (long)json_integer_value(v);
    return 0;
}

/* Seconds (integer or real, up to a day) -> milliseconds; 0 stays "not given". */
static int rp_seconds(rp *p, json_t *obj, const char *key, int *ms)
{
    json_t *v = rp_get(obj, key);
    if (!v)
        return 0;
    double s = json_is_number(v) ? json_number_value(v) : -1;
    if (!json_is_number(v) || !(s >= 0 && s <= 86400))
        return rp_fail(p, key, "must be a number of seconds from 0 to 86400");
    *ms = (int)(s * 1000 + 0.5);
    if (s > 0 && *ms == 0)
        *ms = 1;
    return 0;
}

static int rp_object(rp *p, json_t *obj, const char *key, json_t **out)
{
    json_t *v = rp_get(obj, key);
    *out = NULL;
    if (!v)
        return 0;
    if (!json_is_object(v))
        return rp_fail(p, key, "must be an object, not %s", rp_type(v));
    *out = v;
    return 0;
}

/* "command"/"config": a string or a non-empty array of strings. */
static int rp_commands(rp *p, json_t *v, const char *field)
{
    if (json_is_string(v)) {
        if (rp_has_nul(v))
            return rp_fail(p, field, "must not contain a NUL character");
        return smx_strvec_push(&p->r->commands, json_string_value(v)) < 0
                   ? rp_fail(p, field, "out of memory") : 0;
    }
    if (!json_is_array(v) || json_array_size(v) == 0)
        return rp_fail(p, field, "must be a string or a non-empty array of strings");
    size_t i;
    json_t *c;
    json_array_foreach(v, i, c) {
        if (!json_is_string(c))
            return rp_fail(p, field, "item %zu must be a string, not %s", i, rp_type(c));
        if (rp_has_nul(c))
            return rp_fail(p, field, "item %zu must not contain a NUL character", i);
        if (smx_strvec_push(&p->r->commands, json_string_value(c)) < 0)
            return rp_fail(p, field, "out of memory");
    }
    return 0;
}

static int rp_connection(rp *p, json_t *ca)
{
    req_spec *r = p->r;
    p->section = "connection_args";
    if (json_object_get(ca, "credential_ref"))
        return rp_fail(p, "credential_ref", "Vault credentials are not "
                       "supported: give username with password, key_filename or pkey");
    long port = 0, pport = 0;
    char *policy = NULL;
    int rc = 0;
    if (rp_string(p, ca, "host", &r->host) < 0 ||
        rp_int(p, ca, "port", 1, 65535, &port) < 0 ||
        rp_string(p, ca, "username", &r->username) < 0 ||
        rp_string(p, ca, "password", &r->password) < 0 ||
        rp_string(p, ca, "key_filename", &r->key_filename) < 0 ||
        rp_string(p, ca, "pkey", &r->pkey) < 0 ||
        rp_string(p, ca, "passphrase", &r->passphrase) < 0 ||
        rp_seconds(p, ca, "timeout", &r->timeout_ms) < 0 ||
        rp_seconds(p, ca, "banner_timeout", &r->banner_timeout_ms) < 0 ||
        rp_seconds(p, ca, "auth_timeout", &r->auth_timeout_ms) < 0 ||
        rp_string(p, ca, "host_key_policy", &policy) < 0 ||
        rp_bool(p, ca, "look_for_keys", &r->look_for_keys) < 0 ||
        rp_bool(p, ca, "allow_agent", &r->allow_agent) < 0 ||
        rp_bool(p, ca, "compress", &r->compress) < 0 ||
        rp_string(p, ca, "proxy_host", &r->proxy_host) < 0 ||
        rp_int(p, ca, "proxy_port", 1, 65535, &pport) < 0 ||
        rp_string(p, ca, "proxy_username", &r->proxy_username) < 0 ||
        rp_string(p, ca, "proxy_password", &r->proxy_password) < 0 ||
        rp_string(p, ca, "proxy_key_filename", &r->proxy_key_filename) < 0 ||
        rp_string(p, ca, "proxy_pkey", &r->proxy_pkey) < 0 ||
        rp_string(p, ca, "proxy_passphrase", &r->proxy_passphrase) < 0)
        rc = -1;
    r->port = (int)port;
    r->proxy_port = (int)pport;
    if (rc == 0 && policy) {
        if (strcmp(policy, "auto_add") == 0)
            r->host_key_policy = REQ_HK_AUTO_ADD;
        else if (strcmp(policy, "reject") == 0)
            r->host_key_policy = REQ_HK_REJECT;
        else if (strcmp(policy, "warning") == 0)
            r->host_key_policy = REQ_HK_WARNING;
        else
            rc = rp_fail(p, "host_key_policy",
                         "must be \"auto_add\", \"reject\" or \"warning\"");
    }
    free(policy);
    if (rc == 0 && (!r->host || !r->host[0]))
        rc = rp_fail(p, "host", "missing (the server to connect to)");
    /* A host that would read as an ssh option, a target list or a URL is not a host name. */
    if (rc == 0 && (r->host[0] == '-' || strpbrk(r->host, ",@ \t\r\n/[]")))
        rc = rp_fail(p, "host", "is not a host name or address");
    if (rc == 0 && r->username && (!r->username[0] || strpbrk(r->username, "@:, \t\r\n")))
        rc = rp_fail(p, "username", "is not a user name");
    if (rc == 0 && r->proxy_host && (!r->proxy_host[0] || r->proxy_host[0] == '-' ||
                                     strpbrk(r->proxy_host, ",@ \t\r\n/[]")))
        rc = rp_fail(p, "proxy_host", "is not a host name or address");
    if (rc == 0 && r->proxy_username &&
        (!r->proxy_username[0] || strpbrk(r->proxy_username, "@:, \t\r\n")))
        rc = rp_fail(p, "proxy_username", "is not a user name");
    return rc;
}

static int rp_environment(rp *p, json_t *envobj)
{
    const char *k;
    json_t *v;
    json_object_foreach(envobj, k, v) {
        if (!k[0] || strchr(k, '=') || strpbrk(k, " \t\r\n"))
            return rp_fail(p, "environment", "a name is not a variable name");
        if (!json_is_string(v) || rp_has_nul(v))
            return rp_fail(p, "environment", "values must be strings");
        size_t n = strlen(k) + json_string_length(v) + 2;
        char *kv = malloc(n);
        if (!kv)
            return rp_fail(p, "environment", "out of memory");
        snprintf(kv, n, "%s=%s", k, json_string_value(v));
        if (smx_strvec_push_owned(&p->r->env, kv) < 0)
            return rp_fail(p, "environment", "out of memory");
    }
    return 0;
}

static int rp_transfer(rp *p, json_t *ft)
{
    req_spec *r = p->r;
    char *op = NULL;
    long chunk = 0;
    int rc = 0;
    if (rp_string(p, ft, "operation", &op) < 0 ||
        rp_string(p, ft, "local_path", &r->local_path) < 0 ||
        rp_string(p, ft, "remote_path", &r->remote_path) < 0 ||
        rp_bool(p, ft, "resume", &r->resume) < 0 ||
        rp_int(p, ft, "chunk_size", 1, 1 << 20,
               &chunk) < 0 ||
        rp_seconds(p, ft, "timeout", &r->transfer_timeout_ms) < 0)
        rc = -1;
    r->chunk_size = (size_t)chunk;
    if (rc == 0 && !op)
        rc = rp_fail(p, "operation", "missing (upload or download)");
    else if (rc == 0 && strcmp(op, "upload") == 0)
        r->op = REQ_OP_UPLOAD;
    else if (rc == 0 && strcmp(op, "download") == 0)
        r->op = REQ_OP_DOWNLOAD;
    else if (rc == 0)
        rc = rp_fail(p, "operation",
                     "unknown operation (upload or download)");
    free(op);
    if (rc == 0 && (!r->local_path || !r->local_path[0]))
        rc = rp_fail(p, "local_path", "missing");
    if (rc == 0 && (!r->remote_path || !r->remote_path[0]))
        rc = rp_fail(p, "remote_path", "missing");
    return rc;
}

static int rp_driver_args(rp *p, json_t *da)
{
    req_spec *r = p->r;
    json_t *envobj = NULL, *ft = NULL;
    p->section = "driver_args";
    if (rp_bool(p, da, "sudo", &r->sudo) < 0 ||
        rp_string(p, da, "sudo_password", &r->sudo_password) < 0 ||
        rp_seconds(p, da, "timeout", &r->cmd_timeout_ms) < 0 ||
        rp_object(p, da, "environment", &envobj) < 0 ||
        rp_bool(p, da, "get_pty", &r->get_pty) < 0 ||
        rp_object(p, da, "file_transfer", &ft) < 0)
        return -1;
    if (envobj && rp_environment(p, envobj) < 0)
        return -1;
    int marker = r->commands.n == 1 && strcmp(r->commands.v[0], FILE_TRANSFER) == 0;
    if (ft && r->op == REQ_OP_CONFIG)
        return rp_fail(p, "file_transfer", "only with command, not config");
    if (ft && !marker)
        return rp_fail(p, "file_transfer", "needs command [\"" FILE_TRANSFER "\"]");
    if (ft) {
        p->section = "driver_args.file_transfer";
        return rp_transfer(p, ft);
    }
    if (smx_strvec_contains(&r->commands, FILE_TRANSFER))
        return rp_fail(p, "file_transfer", "missing (command is "
                       "[\"" FILE_TRANSFER "\"])");
    if (r->op == REQ_OP_COMMAND)
        r->sudo = 0;   /* NetPulse: sudo applies to config only */
    return 0;
}

/* The keys that group requests: one connection per distinct connection_args; one engine per
 * distinct jump host credentials, auth timeout and host key policy (engine-wide settings in the
 * library: the policy is the jump host's too). */
static int rp_keys(rp *p, json_t *ca)
{
    req_spec *r = p->r;
    r->conn_key = json_dumps(ca, JSON_COMPACT | JSON_SORT_KEYS);
    json_t *ek = json_object();
    static const char *const proxy[] = {"proxy_username", "proxy_password", "proxy_key_filename",
                                        "proxy_pkey", "proxy_passphrase", "auth_timeout",
                                        "host_key_policy"};
    for (size_t i = 0; ek && i < sizeof proxy / sizeof *proxy; i++) {
        json_t *v = json_object_get(ca, proxy[i]);
        if (strcmp(proxy[i], "host_key_policy") == 0 && !r->proxy_host)
            continue;   /* without a jump host it is the target's alone */
        if (v)
            json_object_set(ek, proxy[i], v);
    }
    r->engine_key = ek ? json_dumps(ek, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(ek);
    if (!r->conn_key || !r->engine_key)
        return rp_fail(p, "connection_args", "out of memory");
    return 0;
}

static int rp_request(rp *p, json_t *top)
{
    req_spec *r = p->r;
    if (!json_is_object(top))
        return rp_fail(p, "request", "must be a JSON object, not %s", rp_type(top));
    json_t *id = rp_get(top, "id");
    if (id) {
        if (!json_is_string(id) && !json_is_integer(id))
            return rp_fail(p, "id", "must be a string or an integer");
        if (!(r->id = json_dumps(id, JSON_COMPACT | JSON_ENCODE_ANY)))
            return rp_fail(p, "id", "out of memory");
    }
    json_t *driver = rp_get(top, "driver");
    if (driver && (!json_is_string(driver) || strcmp(json_string_value(driver), "paramiko") != 0))
        return rp_fail(p, "driver", "only \"paramiko\" requests are taken");
    json_t *ca = NULL, *da = NULL;
    if (rp_object(p, top, "connection_args", &ca) < 0)
        return -1;
    if (!ca)
        return rp_fail(p, "connection_args", "missing");
    if (rp_connection(p, ca) < 0)
        return -1;
    p->section = NULL;
    json_t *cmd = rp_get(top, "command"), *cfg = rp_get(top, "config");
    if (cmd && cfg)
        return rp_fail(p, "command", "give command or config, not both");
    if (!cmd && !cfg)
        return rp_fail(p, "command", "missing (command or config)");
    r->op = cfg ? REQ_OP_CONFIG : REQ_OP_COMMAND;
    if (rp_commands(p, cfg ? cfg : cmd, cfg ? "config" : "command") < 0)
        return -1;
    if (rp_object(p, top, "driver_args", &da) < 0)
        return -1;
    if (rp_driver_args(p, da) < 0)
        return -1;
    p->section = NULL;
    return rp_keys(p, ca);
}

int req_parse(const char *text, size_t len, size_t lineno, req_spec *out, char *msg,
              size_t msgsize)
{
    memset(out, 0, sizeof *out);
    out->line = lineno;
    out->look_for_keys = 1;
    rp p = {out, msg, msgsize, NULL};
    json_error_t jerr;
    json_t *top = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    int rc;
    if (!top) {
        /* jansson's text ends "near '<input>'": that part may quote a password. */
        char *near = strstr(jerr.text, " near ");
        if (near)
            *near = '\0';
        rc = rp_fail(&p, "request", "not valid JSON (column %d: %s)", jerr.column, jerr.text);
    } else {
        rc = rp_request(&p, top);
    }
    json_decref(top);
    if (rc < 0)
        req_spec_free(out);
    out->line = lineno;
    return rc;
}

void req_spec_free(req_spec *r)
{
    free(r->id);
    free(r->host);
    free(r->username);
    smx_str_wipe_free(r->password);
    free(r->key_filename);
    smx_str_wipe_free(r->pkey);
    smx_str_wipe_free(r->passphrase);
    free(r->proxy_host);
    free(r->proxy_username);
    smx_str_wipe_free(r->proxy_password);
    free(r->proxy_key_filename);
    smx_str_wipe_free(r->proxy_pkey);
    smx_str_wipe_free(r->proxy_passphrase);
    smx_strvec_free(&r->commands);
    smx_str_wipe_free(r->sudo_password);
    smx_strvec_free(&r->env);
    free(r->local_path);
    free(r->remote_path);
    smx_str_wipe_free(r->conn_key);
    smx_str_wipe_free(r->engine_key);
    memset(r, 0, sizeof *r);
}
