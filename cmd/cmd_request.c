/* sshmux request: NetPulse-shaped JSON requests (one per line, request_parse.c), run concurrently
 * with one result line each, in completion order. Lines are taken as they arrive (a pipe or a
 * terminal is read on the loop), so a caller may keep the input open and feed requests while
 * reading results; a regular file is read whole.
 *
 * Each request becomes what ssh would be told: connection_args as command-line options (-l, -p,
 * -i, -o ...) over ssh_config, the proxy as a ProxyJump hop. Requests run on links (smx_link):
 * requests whose connection_args are equal share one connection, their commands and file
 * transfers (an SFTP channel each) run in turn on it. A link with nothing to do is kept for
 * RQ_LINGER_MS while the input is open (a request arriving meanwhile reuses it), then released;
 * at the input's end at once. The jump host's credentials are engine-wide in the
 * library, so requests with different proxy credentials (or auth_timeout, or with a proxy a
 * different host_key_policy) run on separate engines on the same loop. */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <malloc.h>
#include <signal.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "request_parse.h"

#define RQ_INPUT_MAX (256u << 20)
#define RQ_LINE_MAX (64u << 20)
#define RQ_LINGER_MS 2000

typedef struct rq_run rq_run;

typedef struct rq_engine {
    struct rq_engine *next;
    char *key;                    /* request_parse's engine_key (holds secrets: wiped) */
    smx_engine *e;
    char *proxy_password;         /* borrowed by the engine: wiped after it is freed */
} rq_engine;

/* The requests of one connection_args on one smx_link. */
typedef struct rq_link {
    struct rq_link *next;         /* the run's links */
    rq_run *run;
    char *conn_key;               /* request_parse's conn_key (holds secrets: wiped) */
    smx_link *link;               /* NULL once released */
    uv_timer_t linger;            /* idle: released when it fires */
    int id;                       /* "connection": numbered from 1 in the run */
    int seq;                      /* results reported on it so far */
    int pending;                  /* requests queued on it and not reported yet */
    int retired;                  /* takes no more requests (its connection is gone, or going) */
} rq_link;

typedef struct rq {
    req_spec spec;
    rq_run *run;
    smx_exec_opts x;
    smx_exec_callbacks cb;
    smx_copy *copy;
    smx_strvec sources;
    rq_link *link;                /* NULL until queued on one */
    int conn_id;
} rq;

struct rq_run {
    rq_engine *engines;
    rq_link *links;
    int next_conn_id;
    int failed;
    int verbose;
    int parallel;                 /* --parallel: requests at once per connection */
    smx_config *cfg;
    smx_engine_opts eo;
    uv_loop_t *loop;
    uv_signal_t sig[2];
    int caught;
    /* The input: a stream read on the loop, or a file read whole. */
    union {
        uv_pipe_t pipe;
        uv_tty_t tty;
    } in;
    int reading;                  /* in is open */
    int eof;                      /* no more requests will come */
    char *buf;                    /* bytes of lines not complete yet (wiped as they go) */
    size_t len, cap;
    size_t lineno;
};

/* jansson's strings (a parsed request's passwords and keys) are zeroed before they are freed. */
static void rq_wiping_free(void *p)
{
    if (p)
        smx_wipe_free(p, malloc_usable_size(p));
}

static const char *rq_op_name(enum req_op op)
{
    static const char *const names[] = {"command", "config", "upload", "download"};
    return names[op];
}

/* NetPulse's per-command view, taken from the sshmux record rec (the library's one rendering of
 * the output, non-UTF-8 bytes included): command, output, error (its stderr) and exit_status of
 * each command run; for a transfer, what moved. */
static json_t *rq_netpulse_results(const rq *q, json_t *rec)
{
    json_t *a = json_array();
    if (q->spec.op == REQ_OP_UPLOAD || q->spec.op == REQ_OP_DOWNLOAD) {
        json_t *t = json_pack("{s:s, s:s, s:s, s:O}", "operation", rq_op_name(q->spec.op),
                              "local_path", q->spec.local_path, "remote_path",
                              q->spec.remote_path, "ok", json_object_get(rec, "ok"));
        json_t *file = json_array_get(json_object_get(rec, "files"), 0);
        if (t && file) {
            json_object_set(t, "bytes", json_object_get(file, "bytes"));
            json_object_set(t, "resumed_from", json_object_get(file, "resumed_from"));
        }
        json_array_append_new(a, t);
        return a;
    }
    size_t i;
    json_t *st;
    json_array_foreach(json_object_get(rec, "steps"), i, st) {
        json_array_append_new(a, json_pack("{s:O, s:O, s:O, s:O}", "command",
                                           json_object_get(st, "command"), "output",
                                           json_object_get(st, "stdout"), "error",
                                           json_object_get(st, "stderr"), "exit_status",
                                           json_object_get(st, "exit_code")));
    }
    return a;
}

/* One result line: the request's line and id, NetPulse's fields, and the sshmux record (what
 * `exec --json` prints for a host: host, ok, error {stage, message}, attempts, timing_ms, ...).
 * malformed: the line's own error (it was not run). */
static void rq_print(rq_run *run, const rq *q, size_t line, const smx_result *r,
                     const char *malformed)
{
    json_t *out = json_object();
    json_object_set_new(out, "line", json_integer((json_int_t)line));
    json_t *id = q && q->spec.id ? json_loads(q->spec.id, JSON_DECODE_ANY, NULL) : NULL;
    json_object_set_new(out, "id", id ? id : json_integer((json_int_t)line));
    json_object_set_new(out, "driver", json_string("paramiko"));
    if (q)
        json_object_set_new(out, "operation", json_string(rq_op_name(q->spec.op)));
    char *s = smx_result_json(r);
    json_t *rec = s ? json_loads(s, 0, NULL) : NULL;
    free(s);
    if (!rec)
        rec = json_pack("{s:b}", "ok", 0);   /* out of memory: still one line */
    json_object_update(out, rec);
    if (malformed)   /* the line itself: stage "request" */
        json_object_set_new(out, "error", json_pack("{s:s, s:s}", "stage", "request",
                                                    "message", malformed));
    if (q) {
        json_object_set_new(out, "results", rq_netpulse_results(q, rec));
        json_object_set_new(out, "connection", json_pack("{s:i, s:b}", "id", q->conn_id,
                                                         "reused", q->link && q->link->seq > 1));
    }
    json_decref(rec);
    char *text = json_dumps(out, JSON_COMPACT | JSON_REAL_PRECISION(6));
    json_decref(out);
    if (text) {
        fputs(text, stdout);
        fputc('\n', stdout);
        fflush(stdout);
    }
    free(text);
    if (!r->ok)
        run->failed = 1;
}

/* A request that failed before it was queued: a record of its own, through the one printer. */
static void rq_fail(rq_run *run, const rq *q, size_t line, enum smx_stage stage, int code,
                    const char *msg)
{
    smx_result r;
    memset(&r, 0, sizeof r);
    r.exit_code = -1;
    r.err_hop = -1;
    r.err_stage = stage;
    r.err_code = code;
    r.err_msg = (char *)msg;   /* borrowed: r is printed, never freed */
    if (q) {
        r.host = q->spec.host;
        r.target = q->spec.host;
        r.user = q->spec.username;
        r.port = q->spec.port ? q->spec.port : 22;
    }
    rq_print(run, q, line, &r, stage == SMX_STAGE_NONE ? msg : NULL);
}

static void rq_free(rq *q)
{
    smx_copy_free(q->copy);
    smx_strvec_free(&q->sources);
    req_spec_free(&q->spec);
    free(q);
}

/* ---- links ---------------------------------------------------------------------------------- */

static void rq_link_closed(uv_handle_t *h)
{
    rq_link *l = h->data;
    rq_link **pp = &l->run->links;
    while (*pp != l)
        pp = &(*pp)->next;
    *pp = l->next;
    smx_str_wipe_free(l->conn_key);
    free(l);
}

/* No more requests on it: the connection closes once its last one is done. Only when nothing is
 * pending on it (requests point at it until they are reported). */
static void rq_link_retire(rq_link *l)
{
    l->retired = 1;
    if (!l->link)
        return;
    smx_link_release(l->link);
    l->link = NULL;
    uv_timer_stop(&l->linger);
    uv_close((uv_handle_t *)&l->linger, rq_link_closed);
}

static void rq_link_linger_over(uv_timer_t *t)
{
    rq_link *l = t->data;
    if (l->pending == 0)
        rq_link_retire(l);
}

/* Its last request was reported: kept a while for more, unless no more can come. */
static void rq_link_idle(rq_link *l)
{
    if (l->run->eof || l->retired || smx_link_closed(l->link))
        rq_link_retire(l);
    else
        uv_timer_start(&l->linger, rq_link_linger_over, RQ_LINGER_MS, 0);
}

/* The input ended (or the run was interrupted): idle links go now, busy ones when idle. */
static void rq_links_input_over(rq_run *run)
{
    run->eof = 1;
    for (rq_link *l = run->links, *next; l; l = next) {
        next = l->next;
        if (l->pending == 0)
            rq_link_retire(l);
    }
}

static void rq_on_done(void *ud, smx_result *r)
{
    rq *q = ud;
    rq_link *l = q->link;
    if (l)
        l->seq++;
    rq_print(q->run, q, q->spec.line, r, NULL);
    smx_result_destroy(r);
    rq_free(q);
    if (l && --l->pending == 0)
        rq_link_idle(l);
}

/* ---- input -------------------------------------------------------------------------------- */

/* All of fd in one buffer that is wiped when it grows (no realloc leaves a copy behind). */
static char *rq_read_fd(int fd, size_t *len)
{
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        ssize_t got = read(fd, buf + n, cap - n);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            smx_wipe_free(buf, cap + 1);
            return NULL;
        }
        if (got == 0)
            break;
        n += (size_t)got;
        if (n == cap) {
            if (cap >= RQ_INPUT_MAX) {
                smx_wipe_free(buf, cap + 1);
                errno = EFBIG;
                return NULL;
            }
            char *bigger = malloc(cap * 2 + 1);
            if (bigger)
                memcpy(bigger, buf, n);
            smx_wipe_free(buf, cap + 1);
            buf = bigger;
            cap *= 2;
        }
    }
    if (buf)
        buf[n] = '\0';
    *len = n;
    return buf;
}

/* ---- requests -> ssh settings ---------------------------------------------------------------- */

static int rq_push_opt(smx_strvec *v, const char *key, const char *value)
{
    char line[1200];
    snprintf(line, sizeof line, "%s=%s", key, value);
    return smx_strvec_push(v, line);
}

/* StrictHostKeyChecking for each host_key_policy. */
static const char *const rq_hostkey_policy[] = {"accept-new", "yes", "no"};

/* "[user@]host[:port]" for ProxyJump (IPv6 in brackets). */
static void rq_proxy_jump(const req_spec *s, char *out, size_t size)
{
    const char *user = s->proxy_username ? s->proxy_username : s->username;
    int v6 = strchr(s->proxy_host, ':') != NULL;
    int n = snprintf(out, size, "%s%s%s%s%s", user ? user : "", user ? "@" : "", v6 ? "[" : "",
                     s->proxy_host, v6 ? "]" : "");
    if (s->proxy_port && n > 0 && (size_t)n < size)
        snprintf(out + n, size - (size_t)n, ":%d", s->proxy_port);
}

/* connection_args as ssh's command line would give them (README: "JSON requests"). */
static int rq_overrides(const req_spec *s, const char *pkey_label, smx_overrides *ov)
{
    static const char *const defaults[] = {"~/.ssh/id_rsa", "~/.ssh/id_ecdsa",
                                           "~/.ssh/id_ed25519", NULL};
    char num[32];
    memset(ov, 0, sizeof *ov);
    ov->user = s->username;
    ov->port = s->port;
    int rc = rq_push_opt(&ov->options, "StrictHostKeyChecking",
                         rq_hostkey_policy[s->host_key_policy]);
    int ms = s->timeout_ms > s->banner_timeout_ms ? s->timeout_ms : s->banner_timeout_ms;
    snprintf(num, sizeof num, "%d", ms ? (ms + 999) / 1000 : 30);
    rc |= rq_push_opt(&ov->options, "ConnectTimeout", num);
    rc |= rq_push_opt(&ov->options, "Compression", s->compress ? "yes" : "no");
    if (!s->allow_agent)
        rc |= rq_push_opt(&ov->options, "IdentityAgent", "none");
    if (!s->look_for_keys)   /* no default keys; the agent is allow_agent's to say */
        rc |= rq_push_opt(&ov->options, "IdentityFile", "none");
    if (s->proxy_host) {
        char jump[600];
        rq_proxy_jump(s, jump, sizeof jump);
        rc |= rq_push_opt(&ov->options, "ProxyJump", jump);
    }
    if (s->key_filename)
        rc |= smx_strvec_push(&ov->identityfiles, s->key_filename);
    if (pkey_label)
        rc |= smx_strvec_push(&ov->identityfiles, pkey_label);
    /* Given keys replace ssh's defaults; paramiko's look_for_keys adds them back after. */
    for (size_t i = 0; s->look_for_keys && ov->identityfiles.n && defaults[i]; i++)
        rc |= smx_strvec_push(&ov->identityfiles, defaults[i]);
    return rc ? SMX_ENOMEM : 0;
}

static void rq_overrides_free(smx_overrides *ov)
{
    smx_strvec_free(&ov->options);
    smx_strvec_free(&ov->identityfiles);
}

static void rq_warn(void *ud, const char *host, const char *msg)
{
    rq_run *run = ud;
    if (run->verbose || strstr(msg, "WARNING"))
        fprintf(stderr, "sshmux: %s: %s\n", host ? host : "?", msg);
}

/* The engine for requests with this jump host's credentials (made on first use). */
static rq_engine *rq_engine_for(rq_run *run, const rq *q, char *msg, size_t msgsize)
{
    for (rq_engine *re = run->engines; re; re = re->next)
        if (strcmp(re->key, q->spec.engine_key) == 0)
            return re;
    rq_engine *re = calloc(1, sizeof *re);
    smx_engine_opts o = run->eo;
    if (q->spec.auth_timeout_ms)
        o.auth_timeout_ms = q->spec.auth_timeout_ms;
    if (!re || smx_engine_new(&re->e, run->loop, &o) < 0 ||
        !(re->key = strdup(q->spec.engine_key))) {
        if (re)
            smx_engine_free(re->e);
        free(re);
        snprintf(msg, msgsize, "out of memory");
        return NULL;
    }
    re->next = run->engines;
    run->engines = re;
    smx_engine_start(re->e);   /* what is queued on it from now on starts at once */
    smx_engine_set_config(re->e, run->cfg);
    smx_engine_use_agent(re->e, getenv("SSH_AUTH_SOCK") != NULL);
    const req_spec *s = &q->spec;
    smx_jump_overrides jo = {0};
    smx_err err = {{0}};
    int rc = 0;
    if (s->proxy_passphrase)
        smx_engine_add_passphrase(re->e, s->proxy_passphrase);
    if (s->proxy_key_filename && (rc = smx_engine_load_key(re->e, s->proxy_key_filename, &err)) == 0)
        rc = smx_strvec_push(&jo.identityfiles, s->proxy_key_filename);
    if (rc == 0 && s->proxy_pkey) {
        char label[64];
        snprintf(label, sizeof label, "proxy_pkey:line%zu", s->line);
        if ((rc = smx_engine_add_key_content(re->e, label, s->proxy_pkey, &err)) == 0)
            rc = smx_strvec_push(&jo.identityfiles, label);
    }
    smx_engine_forget_passphrases(re->e);
    if (rc == 0 && s->proxy_password && !(re->proxy_password = strdup(s->proxy_password)))
        rc = SMX_ENOMEM;
    jo.password = re->proxy_password;
    if (rc == 0 && s->proxy_host)   /* the jump host is checked as the request says */
        rc = rq_push_opt(&jo.options, "StrictHostKeyChecking",
                         rq_hostkey_policy[s->host_key_policy]);
    if (rc == 0)
        rc = smx_engine_set_jump_overrides(re->e, &jo);
    smx_strvec_free(&jo.identityfiles);
    smx_strvec_free(&jo.options);
    if (rc < 0) {
        snprintf(msg, msgsize, "proxy key: %.480s", rc == SMX_ENOMEM ? "out of memory" : err.msg);
        return NULL;
    }
    return re;
}

/* The request's own keys into its engine's keyring (its passphrase used for them only), then
 * its settings resolved. 0, or -1 with msg (the key path or the setting; never a secret). */
static int rq_prepare(rq_run *run, rq *q, rq_engine *re, smx_hostcfg **hc, char *msg,
                      size_t msgsize)
{
    const req_spec *s = &q->spec;
    smx_err err = {{0}};
    char label[64] = "";
    int rc = 0;
    if (s->passphrase)
        smx_engine_add_passphrase(re->e, s->passphrase);
    if (s->key_filename)
        rc = smx_engine_load_key(re->e, s->key_filename, &err);
    if (rc == 0 && s->pkey) {
        snprintf(label, sizeof label, "pkey:line%zu", s->line);
        rc = smx_engine_add_key_content(re->e, label, s->pkey, &err);
    }
    smx_engine_forget_passphrases(re->e);
    if (rc < 0) {
        snprintf(msg, msgsize, "%.490s", err.msg);
        return -1;
    }
    smx_overrides ov;
    if (rq_overrides(s, label[0] ? label : NULL, &ov) < 0 ||
        smx_hostcfg_resolve(run->cfg, &ov, s->host, hc, &err) < 0) {
        snprintf(msg, msgsize, "%s", err.msg[0] ? err.msg : "out of memory");
        rq_overrides_free(&ov);
        return -1;
    }
    rq_overrides_free(&ov);
    smx_engine_load_host_keys(re->e, *hc, NULL, NULL);   /* ssh_config's and the defaults */
    const char *chain = smx_hostcfg_proxyjump(*hc);
    if (chain && strcmp(chain, "none") != 0)
        smx_engine_load_jump_keys(re->e, chain, &err);     /* a failure shows when it connects */
    return 0;
}

/* The request (its copy, or else its commands) on the link of requests with the same
 * connection_args, made on first use (hc taken over). */
static int rq_queue_on_link(rq_run *run, rq *q, rq_engine *re, smx_hostcfg *hc, char *msg,
                            size_t msgsize)
{
    const req_spec *s = &q->spec;
    rq_link *l = run->links;
    while (l && (l->retired || strcmp(l->conn_key, s->conn_key) != 0))
        l = l->next;
    if (l && smx_link_closed(l->link)) {   /* its connection is gone: a new one for this */
        if (l->pending == 0)
            rq_link_retire(l);
        l->retired = 1;
        l = NULL;
    }
    if (l) {
        smx_hostcfg_destroy(hc);   /* the link has the same settings */
        uv_timer_stop(&l->linger);
    } else {
        l = calloc(1, sizeof *l);
        if (!l || !(l->conn_key = strdup(s->conn_key)) ||
            smx_engine_add_link(re->e, s->host, hc, s->password, &l->link) < 0) {
            snprintf(msg, msgsize, "out of memory");
            smx_hostcfg_destroy(hc);
            if (l)
                smx_str_wipe_free(l->conn_key);
            free(l);
            return -1;
        }
        l->run = run;
        l->id = ++run->next_conn_id;
        smx_link_set_parallel(l->link, run->parallel);
        uv_timer_init(run->loop, &l->linger);
        l->linger.data = l;
        l->next = run->links;
        run->links = l;
    }
    q->link = l;
    q->conn_id = l->id;
    l->pending++;
    /* on_done may run before this returns (the connection is gone): it frees q */
    if ((q->copy ? smx_link_copy(l->link, q->copy, &q->cb)
                 : smx_link_exec(l->link, &q->x, &q->cb)) < 0) {
        q->link = NULL;
        if (--l->pending == 0)
            rq_link_idle(l);
        snprintf(msg, msgsize, "out of memory");
        return -1;
    }
    return 0;
}

/* A file transfer: an SFTP copy of that one file, on the link as a command would be (hc taken
 * over). */
static int rq_queue_copy(rq_run *run, rq *q, rq_engine *re, smx_hostcfg *hc, char *msg,
                         size_t msgsize)
{
    const req_spec *s = &q->spec;
    int up = s->op == REQ_OP_UPLOAD;
    smx_copy_opts o;
    memset(&o, 0, sizeof o);
    o.kind = up ? SMX_COPY_UPLOAD : SMX_COPY_DOWNLOAD;
    if (smx_strvec_push(&q->sources, up ? s->local_path : s->remote_path) < 0) {
        snprintf(msg, msgsize, "out of memory");
        smx_hostcfg_destroy(hc);
        return -1;
    }
    o.sources = &q->sources;
    o.dest = up ? s->remote_path : s->local_path;
    o.layout = up ? SMX_LAYOUT_FLAT : SMX_LAYOUT_PATH;
    o.resume = s->resume;
    o.in_place = s->resume;   /* the destination itself is the partial file to go on with */
    o.mode = -1;
    o.block_size = s->chunk_size;
    o.transfer_timeout_ms = s->transfer_timeout_ms ? s->transfer_timeout_ms : 60000;
    smx_err err = {{0}};
    if (smx_copy_new(re->e, &o, &q->copy, &err) < 0) {
        snprintf(msg, msgsize, "%s", err.msg);
        smx_hostcfg_destroy(hc);
        return -1;
    }
    return rq_queue_on_link(run, q, re, hc, msg, msgsize);
}

/* Commands: on the link of requests with the same connection_args (hc taken over). */
static int rq_queue_exec(rq_run *run, rq *q, rq_engine *re, smx_hostcfg *hc, char *msg,
                         size_t msgsize)
{
    const req_spec *s = &q->spec;
    q->x.commands = (const char *const *)s->commands.v;
    q->x.ncommands = s->commands.n;
    q->x.sudo = s->op == REQ_OP_CONFIG && s->sudo;
    q->x.sudo_password = q->x.sudo ? s->sudo_password : NULL;
    q->x.pty = s->get_pty;
    q->x.env = s->env.n ? &s->env : NULL;
    q->x.timeout_ms = s->cmd_timeout_ms;
    q->x.kill_grace_ms = 2000;
    q->x.capture = 1;
    q->x.max_output = 8u << 20;
    return rq_queue_on_link(run, q, re, hc, msg, msgsize);
}

/* Queues the request (q is the engine's callbacks' from then on), or reports why not and frees
 * it. */
static void rq_queue(rq_run *run, rq *q)
{
    char msg[SMX_MSG_MAX] = "";
    q->run = run;
    q->cb.on_done = rq_on_done;
    q->cb.ud = q;
    rq_engine *re = rq_engine_for(run, q, msg, sizeof msg);
    smx_hostcfg *hc = NULL;
    if (!re || rq_prepare(run, q, re, &hc, msg, sizeof msg) < 0) {
        rq_fail(run, q, q->spec.line, SMX_STAGE_AUTH, SMX_EAUTH, msg);
        rq_free(q);
        return;
    }
    int transfer = q->spec.op == REQ_OP_UPLOAD || q->spec.op == REQ_OP_DOWNLOAD;
    int rc = transfer ? rq_queue_copy(run, q, re, hc, msg, sizeof msg)
                      : rq_queue_exec(run, q, re, hc, msg, sizeof msg);
    if (rc < 0) {
        rq_fail(run, q, q->spec.line, transfer ? SMX_STAGE_SFTP : SMX_STAGE_EXEC, SMX_EINVAL,
                msg);
        rq_free(q);
    }
}

/* ---- input ------------------------------------------------------------------------------------ */

/* One line (the buffer it is in is wiped by the caller): a malformed one is reported at once. */
static void rq_line(rq_run *run, const char *text, size_t len)
{
    run->lineno++;
    size_t k = 0;
    while (k < len && (text[k] == ' ' || text[k] == '\t' || text[k] == '\r'))
        k++;
    if (k == len)
        return;
    char msg[SMX_MSG_MAX];
    rq *q = calloc(1, sizeof *q);
    if (!q) {
        rq_fail(run, NULL, run->lineno, SMX_STAGE_NONE, SMX_ENOMEM, "out of memory");
        return;
    }
    if (req_parse(text, len, run->lineno, &q->spec, msg, sizeof msg) < 0) {
        rq_fail(run, NULL, run->lineno, SMX_STAGE_NONE, SMX_EINVAL, msg);
        free(q);
        return;
    }
    rq_queue(run, q);
}

/* The complete lines of run->buf; with `last`, the rest too. What was taken is wiped. */
static void rq_take_lines(rq_run *run, int last)
{
    size_t start = 0;
    if (!run->buf)
        return;
    for (char *nl; (nl = memchr(run->buf + start, '\n', run->len - start));) {
        rq_line(run, run->buf + start, (size_t)(nl - (run->buf + start)));
        start = (size_t)(nl - run->buf) + 1;
    }
    if (last && start < run->len) {
        rq_line(run, run->buf + start, run->len - start);
        start = run->len;
    }
    memmove(run->buf, run->buf + start, run->len - start);
    memset(run->buf + (run->len - start), 0, start);
    run->len -= start;
}

static void rq_input_closed(uv_handle_t *h)
{
}

/* No more input: the rest is the last line; idle links go. */
static void rq_input_end(rq_run *run)
{
    if (run->reading) {
        run->reading = 0;
        uv_read_stop((uv_stream_t *)&run->in);
        uv_close((uv_handle_t *)&run->in, rq_input_closed);
        rq_take_lines(run, 1);
    }
    rq_links_input_over(run);
}

/* Room for the next read at the end of the line buffer, which grows by copying (the old one
 * wiped: no realloc leaves a copy of a request behind). */
static void rq_alloc(uv_handle_t *h, size_t want, uv_buf_t *out)
{
    rq_run *run = h->data;
    *out = uv_buf_init(NULL, 0);
    if (run->cap - run->len < 65536) {
        size_t cap = run->cap ? run->cap * 2 : 1 << 17;
        char *bigger = cap <= RQ_LINE_MAX ? calloc(1, cap) : NULL;
        if (!bigger)
            return;   /* UV_ENOBUFS: a line longer than RQ_LINE_MAX ends the input */
        if (run->buf)
            memcpy(bigger, run->buf, run->len);
        smx_wipe_free(run->buf, run->cap);
        run->buf = bigger;
        run->cap = cap;
    }
    *out = uv_buf_init(run->buf + run->len, (unsigned)(run->cap - run->len));
}

static void rq_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    rq_run *run = s->data;
    if (nread > 0) {
        run->len += (size_t)nread;
        rq_take_lines(run, 0);
    } else if (nread < 0) {
        if (nread != UV_EOF)
            fprintf(stderr, "sshmux request: reading the requests: %s\n",
                    uv_strerror((int)nread));
        rq_input_end(run);
    }
}

/* A pipe, socket or terminal is read on the loop, as lines come; anything else (a regular file,
 * /dev/null: nothing the loop can poll) whole, now. 0, or -1 (message printed). */
static int rq_open_input(rq_run *run, const char *path)
{
    int fd = strcmp(path, "-") == 0 ? 0 : -1;
    uv_handle_type kind = fd == 0 ? uv_guess_handle(0) : UV_FILE;
    if (kind == UV_TTY || kind == UV_NAMED_PIPE || kind == UV_TCP) {
        int rc = kind == UV_TTY ? uv_tty_init(run->loop, &run->in.tty, 0, 1)
                                : uv_pipe_init(run->loop, &run->in.pipe, 0);
        if (rc == 0 && kind != UV_TTY && (rc = uv_pipe_open(&run->in.pipe, 0)) < 0)
            uv_close((uv_handle_t *)&run->in, NULL);
        if (rc == 0) {
            run->in.pipe.data = run;
            run->reading = 1;
            uv_read_start((uv_stream_t *)&run->in, rq_alloc, rq_read);
            return 0;
        }
    }
    size_t len = 0;
    char *buf = fd == 0 ? rq_read_fd(0, &len) : smx_secret_read_file(path, RQ_INPUT_MAX, &len);
    if (!buf) {
        fprintf(stderr, "sshmux request: %s: %s\n", path, strerror(errno));
        return -1;
    }
    run->buf = buf;
    run->len = len;
    run->cap = len + 1;
    rq_take_lines(run, 1);
    rq_links_input_over(run);
    return 0;
}

/* ---- the command ------------------------------------------------------------------------------ */

static void rq_on_signal(uv_signal_t *h, int signum)
{
    rq_run *run = h->data;
    if (run->caught++ == 0)
        fprintf(stderr, "sshmux: %s: canceling the requests\n",
                signum == SIGINT ? "interrupted" : "terminated");
    rq_input_end(run);   /* lines not read yet are not taken */
    for (rq_engine *re = run->engines; re; re = re->next)
        smx_engine_cancel(re->e, signum == SIGINT ? "canceled (SIGINT)" : "canceled (SIGTERM)");
}

/* Each connection holds a socket (and libssh's dup of it): the soft descriptor limit goes as far
 * as the hard one allows, as for exec. */
static void rq_raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static void rq_usage(FILE *f)
{
    fputs("usage: sshmux request [-F SSH_CONFIG] [-f FANOUT] [--parallel N] [-v] [FILE|-]\n"
          "  one NetPulse request (JSON) per line, from FILE or stdin; one result line each\n"
          "  --parallel N   requests at once on one shared connection (default 1: in order)\n",
          f);
}

int cmd_request(int argc, char **argv)
{
    rq_run run;
    memset(&run, 0, sizeof run);
    run.parallel = 1;
    const char *config = NULL;
    smx_engine_opts_default(&run.eo);
    int opt;
    static const struct option longopts[] = {{"help", no_argument, NULL, 'h'},
                                             {"parallel", required_argument, NULL, 'P'},
                                             {0, 0, 0, 0}};
    optind = 1;
    while ((opt = getopt_long(argc, argv, "+F:f:vh", longopts, NULL)) != -1) {
        switch (opt) {
        case 'F': config = optarg; break;
        case 'f':
            run.eo.fanout = atoi(optarg);
            if (run.eo.fanout < 1) {
                fprintf(stderr, "sshmux request: -f: a fanout of at least 1\n");
                return EXIT_USAGE;
            }
            break;
        case 'P':
            run.parallel = atoi(optarg);
            if (run.parallel < 1 || run.parallel > SMX_LINK_PARALLEL_MAX) {
                fprintf(stderr, "sshmux request: --parallel: from 1 to %d\n",
                        SMX_LINK_PARALLEL_MAX);
                return EXIT_USAGE;
            }
            break;
        case 'v': run.verbose++; break;
        case 'h': rq_usage(stdout); return 0;
        default: rq_usage(stderr); return EXIT_USAGE;
        }
    }
    if (argc - optind > 1) {
        rq_usage(stderr);
        return EXIT_USAGE;
    }
    const char *path = optind < argc ? argv[optind] : "-";
    json_set_alloc_funcs(malloc, rq_wiping_free);
    rq_raise_fd_limit();
    smx_err err = {{0}};
    if (smx_config_load(&run.cfg, config, &err) < 0) {
        fprintf(stderr, "sshmux request: %s\n", err.msg);
        return EXIT_USAGE;
    }
    const smx_strvec *warnings = smx_config_warnings(run.cfg);
    for (size_t i = 0; run.verbose && i < warnings->n; i++)
        fprintf(stderr, "sshmux: %s: %s\n", config ? config : "ssh_config", warnings->v[i]);
    run.eo.warn = rq_warn;
    run.eo.ud = &run;
    run.eo.verbose = run.verbose;
    run.loop = uv_default_loop();
    for (int i = 0; i < 2; i++) {
        uv_signal_init(run.loop, &run.sig[i]);
        run.sig[i].data = &run;
        uv_signal_start(&run.sig[i], rq_on_signal, i == 0 ? SIGINT : SIGTERM);
        uv_unref((uv_handle_t *)&run.sig[i]);
    }
    int rc = rq_open_input(&run, path);
    if (rc == 0)
        uv_run(run.loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&run.sig[0], NULL);
    uv_close((uv_handle_t *)&run.sig[1], NULL);
    while (run.engines) {
        rq_engine *re = run.engines;
        run.engines = re->next;
        smx_engine_free(re->e);
        smx_str_wipe_free(re->proxy_password);
        smx_str_wipe_free(re->key);
        free(re);
    }
    uv_run(run.loop, UV_RUN_NOWAIT);   /* let closed handles finish */
    uv_loop_close(run.loop);
    smx_wipe_free(run.buf, run.cap);
    smx_config_free(run.cfg);
    if (rc < 0)
        return EXIT_USAGE;
    if (run.caught)
        return 130;
    return run.failed ? 1 : 0;
}
