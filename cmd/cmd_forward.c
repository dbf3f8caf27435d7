/* sshmux forward: local (-L), remote (-R) and dynamic (-D) forwarding over one connection per
 * target until SIGINT/SIGTERM, or while a command given after the target runs over the same
 * connection (ssh -L ... host cmd). */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

typedef struct fwd_run {
    cli *c;
    uv_loop_t *loop;
    smx_engine *e;
    smx_fwd_spec *specs;          /* as parsed; per host copies get their --base-port */
    size_t nspecs;
    smx_fwd_spec *host_specs;     /* nhosts x nspecs */
    char *command;                /* `-- CMD`, or NULL */
    uv_signal_t sigs[2];
    int caught, failures, worst;
} fwd_run;

static int fwd_is_remote(const smx_forward *f, size_t i)
{
    return strncmp(smx_forward_kind(f, i), "remote", 6) == 0;
}

/* One line per listener: HOST LISTEN TO (a remote listener's address prefixed "remote:"). */
static void fwd_print(const fwd_run *r, smx_forward *f, size_t i)
{
    if (r->c->json) {
        char *s = smx_forward_json(f, i);
        printf("%s\n", s ? s : "{}");
        free(s);
    } else {
        printf("%-24s %s%-28s %s\n", smx_forward_host(f), fwd_is_remote(f, i) ? "remote:" : "",
               smx_forward_local(f, i), smx_forward_remote(f, i));
    }
    fflush(stdout);
}

static void fwd_on_ready(void *ud, smx_forward *f)
{
    const fwd_run *r = ud;
    for (size_t i = 0; i < smx_forward_listeners(f); i++)
        if (!fwd_is_remote(f, i))
            fwd_print(r, f, i);
}

/* The refusal itself is reported with the host's end (fwd_on_done). */
static void fwd_on_remote_bound(void *ud, smx_forward *f, size_t i, const char *err)
{
    if (!err)
        fwd_print(ud, f, i);
}

static void fwd_on_link_ended(void *ud, smx_forward *f, const char *listener, const char *err)
{
    fwd_run *r = ud;
    if (err && !r->c->quiet)
        fprintf(stderr, "sshmux: %s: forwarded connection failed: %s\n", listener, err);
}

/* The command's output as ssh prints it: unprefixed, each stream to its own. */
static void fwd_on_line(void *ud, const smx_result *res, int is_stderr, const char *line,
                        size_t len)
{
    FILE *f = is_stderr ? stderr : stdout;
    fwrite(line, 1, len, f);
    fputc('\n', f);
}

static void fwd_on_done(void *ud, smx_result *res)
{
    fwd_run *r = ud;
    enum smx_stage st = res->err_stage;
    if (st != SMX_STAGE_NONE && !(st == SMX_STAGE_EXEC && res->err_code == SMX_ECANCELED)) {
        /* Before it was ready the stage says where setup failed; after, the connection carried
         * forwards and it is the forward that was lost (the library files such late failures
         * under "exec", the stage after auth). */
        int lost = st == SMX_STAGE_EXEC && !r->command;
        fprintf(stderr, "%s: sshmux: %s: %s\n", res->host, lost ? "forward" : smx_stage_name(st),
                smx_result_error(res)[0] ? smx_result_error(res) : "connection closed");
        r->failures++;
    }
    int status = smx_result_exit_status(res);
    if (status > r->worst)
        r->worst = status;
    smx_result_destroy(res);
}

static const smx_forward_callbacks fwd_callbacks_template = {
    .ready = fwd_on_ready,
    .remote_bound = fwd_on_remote_bound,
    .link_ended = fwd_on_link_ended,
    .on_line = fwd_on_line,
    .on_done = fwd_on_done,
};

static void fwd_on_signal(uv_signal_t *s, int signum)
{
    fwd_run *r = s->data;
    r->caught++;
    smx_engine_cancel(r->e, signum == SIGINT ? "canceled (SIGINT)" : "canceled (SIGTERM)");
}

/* Listeners for host index i; the port of TCP listeners is --base-port + index when given. */
static int fwd_add_host(fwd_run *r, size_t index, const smx_forward_callbacks *cb,
                        const smx_forward_opts *tmpl)
{
    cli_host *ch = &r->c->hosts[index];
    smx_fwd_spec *specs = &r->host_specs[index * r->nspecs];
    size_t nlocal = 0;
    for (size_t j = 0; j < r->nspecs; j++)
        nlocal += r->specs[j].kind != SMX_FWD_REMOTE;
    for (size_t j = 0, k = 0; j < r->nspecs; j++) {
        specs[j] = r->specs[j];
        if (r->c->base_port && specs[j].kind != SMX_FWD_REMOTE)
            specs[j].bind_port = r->c->base_port + (int)(index * nlocal + k++);
        if (specs[j].bind_port > 65535) {
            cli_error(r->c, "--base-port %d + %zu hosts runs past port 65535", r->c->base_port,
                      r->c->nhosts);
            return EXIT_USAGE;
        }
    }
    smx_forward_opts o = *tmpl;
    o.specs = specs;
    smx_err err = {{0}};
    int rc = smx_engine_add_forward(r->e, ch->target, ch->hc, ch->password, &o, cb, NULL, &err);
    if (rc < 0) {
        cli_error(r->c, "%s: %s", smx_hostcfg_host(ch->hc), err.msg);
        return rc == SMX_EINVAL ? EXIT_USAGE : EXIT_UNREACHABLE;   /* bad -L input */
    }
    ch->hc = NULL;   /* the engine owns it */
    return 0;
}

static int fwd_parse_list(fwd_run *r, const smx_strvec *v, enum smx_fwd_kind kind)
{
    cli *c = r->c;
    for (size_t i = 0; i < v->n; i++) {
        smx_err err = {{0}};
        smx_fwd_spec *f = &r->specs[r->nspecs];
        if (smx_fwd_spec_parse_kind(v->v[i], kind, f, &err) < 0) {
            cli_error(c, "%s", err.msg);
            return EXIT_USAGE;
        }
        r->nspecs++;
        if (c->base_port && f->bind_path && kind != SMX_FWD_REMOTE) {
            cli_error(c, "-L %s: --base-port applies to TCP listeners only", v->v[i]);
            return EXIT_USAGE;
        }
    }
    return 0;
}

static int fwd_parse_specs(fwd_run *r)
{
    cli *c = r->c;
    size_t n = c->lspecs.n + c->rspecs.n + c->dspecs.n;
    if (n == 0) {
        cli_error(c, "no forwarding given (-L SPEC, -R SPEC or -D [bind:]port)");
        return EXIT_USAGE;
    }
    r->specs = calloc(n, sizeof *r->specs);
    if (!r->specs)
        return EXIT_UNREACHABLE;
    int rc = fwd_parse_list(r, &c->lspecs, SMX_FWD_LOCAL);
    if (!rc)
        rc = fwd_parse_list(r, &c->dspecs, SMX_FWD_DYNAMIC);
    if (!rc)
        rc = fwd_parse_list(r, &c->rspecs, SMX_FWD_REMOTE);
    return rc;
}

/* Over several hosts, local listeners need one port each (--base-port) unless the system picks
 * (port 0); remote ones are on each host and may share a port. */
static int fwd_need_base_port(const fwd_run *r)
{
    for (size_t i = 0; i < r->nspecs; i++)
        if (r->specs[i].kind != SMX_FWD_REMOTE &&
            (r->specs[i].bind_path || r->specs[i].bind_port != 0))
            return 1;
    return 0;
}

/* TARGET [--] [CMD...] without -w; [CMD...] with it (getopt took the "--"). */
static int fwd_take_target_and_command(fwd_run *r)
{
    cli *c = r->c;
    int taken = cli_take_target(c, NULL);
    if (taken < 0)
        return EXIT_USAGE;
    size_t cmd_from = (size_t)taken;
    if (taken && c->args.n > 1 && strcmp(c->args.v[1], "--") == 0)
        cmd_from = 2;
    if (cmd_from < c->args.n && !(r->command = cli_join_args(&c->args, cmd_from))) {
        cli_error(c, "out of memory");
        return EXIT_USAGE;
    }
    return 0;
}

static int fwd_add_all(fwd_run *r, const smx_forward_callbacks *cb)
{
    cli *c = r->c;
    static smx_exec_opts x;
    x = c->x;
    x.command = r->command;
    x.env = c->env.n ? &c->env : NULL;
    smx_forward_opts tmpl = {.nspecs = r->nspecs, .sock_mode = c->sock_mode,
                             .command = r->command ? &x : NULL, .connections = c->connections};
    r->host_specs = calloc(c->nhosts * r->nspecs, sizeof *r->host_specs);
    if (!r->host_specs)
        return EXIT_UNREACHABLE;
    for (size_t i = 0; i < c->nhosts; i++) {
        int rc = fwd_add_host(r, i, cb, &tmpl);
        if (rc)
            return rc;
    }
    return 0;
}

static int fwd_run_all(cli *c)
{
    fwd_run r = {0};
    r.c = c;
    r.loop = uv_default_loop();
    int rc = fwd_parse_specs(&r);
    if (!rc)
        rc = fwd_take_target_and_command(&r);
    if (!rc)
        rc = cli_resolve_hosts(c, 1);
    if (!rc && c->nhosts > 1 && !c->base_port && fwd_need_base_port(&r)) {
        cli_error(c, "%zu targets: give --base-port N for one local port per host", c->nhosts);
        rc = EXIT_USAGE;
    }
    if (!rc && (size_t)c->eng.fanout < c->nhosts)
        c->eng.fanout = (int)c->nhosts;   /* every host forwards at once */
    if (!rc && smx_engine_new(&r.e, r.loop, &c->eng) < 0)
        rc = EXIT_UNREACHABLE;
    if (!rc)
        rc = cli_load_credentials(c, r.e);
    smx_forward_callbacks cb = fwd_callbacks_template;
    cb.ud = &r;
    if (!rc)
        rc = fwd_add_all(&r, &cb);
    if (!rc) {
        if (!c->json && c->nhosts > 1)
            printf("%-24s %-28s %s\n", "HOST", "LISTEN", "TO");
        for (int i = 0; i < 2; i++) {
            uv_signal_init(r.loop, &r.sigs[i]);
            r.sigs[i].data = &r;
            uv_signal_start(&r.sigs[i], fwd_on_signal, i == 0 ? SIGINT : SIGTERM);
            uv_unref((uv_handle_t *)&r.sigs[i]);   /* the forwards keep the loop alive */
        }
        smx_engine_run(r.e);
        uv_close((uv_handle_t *)&r.sigs[0], NULL);
        uv_close((uv_handle_t *)&r.sigs[1], NULL);
        if (r.command)
            rc = r.caught ? 130 : r.worst;   /* CMD's status, as ssh exits with it */
        else
            rc = r.failures ? EXIT_UNREACHABLE : 0;
    }
    smx_engine_free(r.e);   /* hosts never started close their listeners here */
    uv_run(r.loop, UV_RUN_NOWAIT);
    uv_loop_close(r.loop);
    free(r.host_specs);
    for (size_t i = 0; i < r.nspecs; i++)
        smx_fwd_spec_free(&r.specs[i]);
    free(r.specs);
    free(r.command);
    return rc;
}

int cmd_forward(int argc, char **argv)
{
    cli c;
    int rc = cli_parse_mode(&c, argc, argv, "sshmux forward", CLI_PARSE_FORWARD);
    if (!rc) {
        setvbuf(stdout, NULL, _IOLBF, 0);
        rc = fwd_run_all(&c);
    }
    cli_free(&c);
    return rc;
}

/* The aliases end here: one -L spec, the last argument as the target. */
static int fwd_run_alias(cli *c, const char *spec)
{
    smx_strvec_push(&c->lspecs, spec);
    char *target = strdup(c->args.v[c->args.n - 1]);
    smx_strvec_free(&c->args);
    smx_strvec_push_owned(&c->args, target);
    setvbuf(stdout, NULL, _IOLBF, 0);
    return fwd_run_all(c);
}

/* Jumpstarter's `ssh forward-tcp [--address ADDR] PORT`: local PORT -> the target's PORT. */
int cmd_forward_tcp(int argc, char **argv)
{
    cli c;
    int rc = cli_parse(&c, argc, argv, "sshmux forward-tcp");
    if (!rc && c.args.n != 2) {
        cli_error(&c, "usage: sshmux forward-tcp [--address ADDR] PORT TARGET");
        rc = EXIT_USAGE;
    }
    if (!rc) {
        char *spec = NULL;
        const char *addr = c.address ? c.address : "127.0.0.1";
        const char *v6 = strchr(addr, ':') ? "[" : "", *v6end = *v6 ? "]" : "";
        if (asprintf(&spec, "%s%s%s:%s:localhost:%s", v6, addr, v6end, c.args.v[0],
                     c.args.v[0]) < 0) {
            cli_error(&c, "out of memory");
            rc = EXIT_USAGE;
        } else {
            rc = fwd_run_alias(&c, spec);
            free(spec);
        }
    }
    cli_free(&c);
    return rc;
}

/* Jumpstarter's `ssh forward-unix [PATH]`: a local Unix socket -> a remote one (--remote, by
 * default the same path). */
int cmd_forward_unix(int argc, char **argv)
{
    cli c;
    int rc = cli_parse(&c, argc, argv, "sshmux forward-unix");
    if (!rc && (c.args.n < 1 || c.args.n > 2 || (c.args.n == 1 && !c.remote))) {
        cli_error(&c, "usage: sshmux forward-unix [--remote RPATH] [PATH] TARGET "
                  "(PATH or --remote is needed)");
        rc = EXIT_USAGE;
    }
    if (!rc) {
        /* Sized to the paths: a cut path would name another socket (a too-long one is refused
         * with its limit by the spec parser and the listener). */
        char *local = NULL, *spec = NULL;
        const char *run = getenv("XDG_RUNTIME_DIR") ? getenv("XDG_RUNTIME_DIR") : "/tmp";
        int ok = c.args.n == 2 ? (local = strdup(c.args.v[0])) != NULL
                               : asprintf(&local, "%s/sshmux-%ld.sock", run, (long)getpid()) >= 0;
        if (!ok)
            local = NULL;   /* asprintf leaves it undefined on failure */
        const char *remote = c.remote ? c.remote : local;
        if (!ok || asprintf(&spec, "%s:%s", local, remote) < 0) {
            cli_error(&c, "out of memory");
            rc = EXIT_USAGE;
        } else if (!strchr(local, '/') || !strchr(remote, '/')) {
            cli_error(&c, "forward-unix: socket paths must contain a '/' (e.g. ./x.sock)");
            rc = EXIT_USAGE;
        } else {
            rc = fwd_run_alias(&c, spec);
        }
        free(spec);
        free(local);
    }
    cli_free(&c);
    return rc;
}
