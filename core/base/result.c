#include "result.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

const char *smx_stage_name(enum smx_stage stage)
{
    switch (stage) {
    case SMX_STAGE_NONE: return "none";
    case SMX_STAGE_RESOLVE: return "resolve";
    case SMX_STAGE_CONNECT: return "connect";
    case SMX_STAGE_HOSTKEY: return "hostkey";
    case SMX_STAGE_AUTH: return "auth";
    case SMX_STAGE_EXEC: return "exec";
    case SMX_STAGE_TIMEOUT: return "timeout";
    case SMX_STAGE_SFTP: return "sftp";
    case SMX_STAGE_SUDO: return "sudo";
    case SMX_STAGE_EXPECT: return "expect";
    }
    return "?";
}

int smx_buf_append(smx_buf *b, const void *p, size_t n, size_t limit)
{
    int dropped = 0;
    if (b->len + n > limit) {
        n = limit > b->len ? limit - b->len : 0;
        dropped = 1;
    }
    if (n == 0)
        return dropped;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *d = realloc(b->data, cap);
        if (!d)
            return 1;
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return dropped;
}

void smx_buf_free(smx_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

void smx_result_init(smx_result *r)
{
    memset(r, 0, sizeof *r);
    r->exit_code = -1;
    r->err_hop = -1;
}

void smx_result_free(smx_result *r)
{
    free(r->host);
    free(r->target);
    free(r->user);
    free(r->hostname);
    free(r->exit_signal);
    smx_buf_free(&r->out);
    smx_buf_free(&r->err);
    free(r->server_banner);
    free(r->kex);
    free(r->cipher);
    free(r->hostkey);
    free(r->auth_method);
    free(r->err_msg);
    for (size_t i = 0; i < r->nfiles; i++) {
        free(r->files[i].local);
        free(r->files[i].remote);
        free(r->files[i].error);
    }
    free(r->files);
    for (size_t i = 0; i < r->nsteps; i++) {
        free(r->steps[i].command);
        free(r->steps[i].exit_signal);
        smx_buf_free(&r->steps[i].out);
        smx_buf_free(&r->steps[i].err);
    }
    free(r->steps);
}

void smx_result_set_error(smx_result *r, enum smx_stage stage, int code, const char *msg)
{
    if (r->err_stage != SMX_STAGE_NONE)
        return;   /* the first failure is the cause; later ones are consequences */
    r->err_stage = stage;
    r->err_code = code;
    /* Allocated only on failure: a buffer in every result was half a KiB per open session. */
    free(r->err_msg);
    r->err_msg = strdup(msg ? msg : "");
}

const char *smx_result_error(const smx_result *r)
{
    return r->err_msg ? r->err_msg : "";
}

void smx_result_clear_error(smx_result *r)
{
    r->err_stage = SMX_STAGE_NONE;
    r->err_code = 0;
    free(r->err_msg);
    r->err_msg = NULL;
}

static json_t *json_str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

/* Output may not be valid UTF-8; jansson insists on it, so fall back to a lossy copy. */
static json_t *json_bytes(const smx_buf *b)
{
    if (!b->data)
        return json_string("");
    json_t *j = json_stringn(b->data, b->len);
    if (j)
        return j;
    char *copy = malloc(b->len + 1);
    if (!copy)
        return json_string("");
    for (size_t i = 0; i < b->len; i++) {
        unsigned char c = (unsigned char)b->data[i];
        copy[i] = c < 0x80 ? (char)c : '?';
    }
    j = json_stringn(copy, b->len);
    free(copy);
    return j ? j : json_string("");
}

static json_t *result_timing_json(const smx_timing *t)
{
    json_t *o = json_object();
    json_object_set_new(o, "resolve", json_real(t->resolve));
    json_object_set_new(o, "connect", json_real(t->connect));
    json_object_set_new(o, "handshake", json_real(t->handshake));
    json_object_set_new(o, "auth", json_real(t->auth));
    json_object_set_new(o, "exec", json_real(t->exec));
    json_object_set_new(o, "total", json_real(t->total));
    return o;
}

static void result_files_json(json_t *o, const smx_result *r)
{
    json_t *files = json_array();
    for (size_t i = 0; i < r->nfiles; i++) {
        const smx_file_result *f = &r->files[i];
        json_t *j = json_object();
        json_object_set_new(j, "local", json_str_or_null(f->local));
        json_object_set_new(j, "remote", json_str_or_null(f->remote));
        json_object_set_new(j, "size", json_integer((json_int_t)f->size));
        json_object_set_new(j, "bytes", json_integer((json_int_t)f->bytes));
        json_object_set_new(j, "resumed_from", json_integer((json_int_t)f->resumed_from));
        json_object_set_new(j, "seconds", json_real(f->seconds));
        json_object_set_new(j, "mbps", json_real(f->seconds > 0 ? f->bytes / f->seconds / 1e6 : 0));
        json_object_set_new(j, "error", json_str_or_null(f->error));
        json_array_append_new(files, j);
    }
    json_object_set_new(o, "bytes", json_integer((json_int_t)r->bytes));
    json_object_set_new(o, "files", files);
}

static void result_steps_json(json_t *o, const smx_result *r)
{
    json_t *a = json_array();
    for (size_t i = 0; i < r->nsteps; i++) {
        const smx_step_result *st = &r->steps[i];
        json_t *e = json_object();
        json_object_set_new(e, "command", json_str_or_null(st->command));
        json_object_set_new(e, "exit_code",
                            st->exit_code >= 0 ? json_integer(st->exit_code) : json_null());
        json_object_set_new(e, "exit_signal", json_str_or_null(st->exit_signal));
        json_object_set_new(e, "stdout", json_bytes(&st->out));
        json_object_set_new(e, "stderr", json_bytes(&st->err));
        json_object_set_new(e, "truncated", json_boolean(st->truncated));
        json_object_set_new(e, "timed_out", json_boolean(st->timed_out));
        json_object_set_new(e, "time_ms", json_real(st->ms));
        json_array_append_new(a, e);
    }
    json_object_set_new(o, "steps", a);
}

json_t *smx_result_to_json(const smx_result *r)
{
    json_t *o = json_object();
    json_object_set_new(o, "host", json_str_or_null(r->host));
    json_object_set_new(o, "target", json_str_or_null(r->target));
    json_object_set_new(o, "hostname", json_str_or_null(r->hostname));
    json_object_set_new(o, "user", json_str_or_null(r->user));
    json_object_set_new(o, "port", json_integer(r->port));
    json_object_set_new(o, "ok", json_boolean(r->ok));
    json_object_set_new(o, "exit_code", r->exit_code >= 0 ? json_integer(r->exit_code) : json_null());
    json_object_set_new(o, "exit_signal", json_str_or_null(r->exit_signal));
    json_object_set_new(o, "stdout", json_bytes(&r->out));
    json_object_set_new(o, "stderr", json_bytes(&r->err));
    json_object_set_new(o, "truncated", json_boolean(r->truncated));
    if (r->err_stage != SMX_STAGE_NONE) {
        json_t *e = json_object();
        json_object_set_new(e, "stage", json_string(smx_stage_name(r->err_stage)));
        json_object_set_new(e, "message", json_string(smx_result_error(r)));
        if (r->err_hop >= 0)
            json_object_set_new(e, "hop", json_integer(r->err_hop));
        json_object_set_new(o, "error", e);
    } else {
        json_object_set_new(o, "error", json_null());
    }
    json_object_set_new(o, "attempts", json_integer(r->attempts));
    json_object_set_new(o, "timing_ms", result_timing_json(&r->t));
    json_object_set_new(o, "server_banner", json_str_or_null(r->server_banner));
    json_object_set_new(o, "kex", json_str_or_null(r->kex));
    json_object_set_new(o, "cipher", json_str_or_null(r->cipher));
    json_object_set_new(o, "hostkey", json_str_or_null(r->hostkey));
    json_object_set_new(o, "auth_method", json_str_or_null(r->auth_method));
    if (r->is_copy)
        result_files_json(o, r);
    if (r->nsteps)
        result_steps_json(o, r);
    return o;
}

/* Signal names as SSH sends them (RFC 4254 6.10), numbered as on Linux. */
static int result_signal_number(const char *name)
{
    static const struct { const char *name; int num; } table[] = {
        {"HUP", 1}, {"INT", 2}, {"QUIT", 3}, {"ILL", 4}, {"ABRT", 6}, {"FPE", 8}, {"KILL", 9},
        {"USR1", 10}, {"SEGV", 11}, {"USR2", 12}, {"PIPE", 13}, {"ALRM", 14}, {"TERM", 15},
    };
    for (size_t i = 0; i < sizeof table / sizeof *table; i++)
        if (strcmp(name, table[i].name) == 0)
            return table[i].num;
    return 15;
}

int smx_result_exit_status(const smx_result *r)
{
    if (r->timed_out)
        return 124;   /* as timeout(1) */
    if (r->exit_code >= 0)
        return r->exit_code;
    if (r->exit_signal)
        return 128 + result_signal_number(r->exit_signal);   /* as a shell reports it */
    if (r->is_copy && r->err_stage == SMX_STAGE_NONE)
        return 0;
    if (r->err_stage == SMX_STAGE_SFTP || r->err_stage == SMX_STAGE_SUDO ||
        r->err_stage == SMX_STAGE_EXPECT)
        return 1;         /* reached, and refused there: as scp for a file, as sudo itself;
                           * a send/expect step that did not match, as expect(1)'s scripts */
    return 255;       /* never ran: unreachable, unverified, unauthenticated, refused */
}
