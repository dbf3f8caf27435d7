/* sshmux forward: local forwarding (-L) over one connection per target until SIGINT/SIGTERM. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "conn.h"
#include "forward.h"

typedef struct fwd_run fwd_run;

typedef struct fwd_host {
    fwd_run *run;
    smx_conn *conn;
    smx_forwarder *fw;
    const char *name;
    smx_strvec locals, remotes;
    int ended, conn_closed, fw_closed;
} fwd_host;

struct fwd_run {
    cli *c;
    uv_loop_t *loop;
    smx_engine *e;
    smx_fwd_spec *specs;
    size_t nspecs;
    fwd_host *hosts;
    size_t n;
    uv_signal_t sigs[2];
    int stopping, failures;
};

static void fwd_stop(fwd_run *r);

static void fwd_print_ready(fwd_host *h)
{
    const cli *c = h->run->c;
    for (size_t i = 0; i < h->locals.n; i++) {
        if (c->json) {
            json_t *o = json_pack("{s:s, s:s, s:s}", "host", h->name, "listen", h->locals.v[i],
                                  "remote", h->remotes.v[i]);
            char *s = json_dumps(o, JSON_COMPACT);
            printf("%s\n", s ? s : "{}");
            free(s);
            json_decref(o);
        } else {
            printf("%-24s %-28s %s\n", h->name, h->locals.v[i], h->remotes.v[i]);
        }
    }
    fflush(stdout);
}

static void fwd_on_ready(smx_conn *conn, void *ud)
{
    fwd_print_ready(ud);
}

static void fwd_maybe_done(fwd_run *r)
{
    for (size_t i = 0; i < r->n; i++)
        if (!r->hosts[i].conn_closed || !r->hosts[i].fw_closed)
            return;
    uv_close((uv_handle_t *)&r->sigs[0], NULL);
    uv_close((uv_handle_t *)&r->sigs[1], NULL);
}

static void fwd_on_fw_closed(void *ud)
{
    fwd_host *h = ud;
    h->fw_closed = 1;
    h->fw = NULL;
    fwd_maybe_done(h->run);
}

static void fwd_on_ended(smx_conn *conn, void *ud)
{
    fwd_host *h = ud;
    fwd_run *r = h->run;
    h->ended = 1;
    if (!r->stopping) {
        /* Before it was ready the stage says where setup failed; after, the connection carried
         * forwards and it is the forward that was lost (the library files such late failures
         * under "exec", the stage after auth). */
        const smx_result *res = &conn->result;
        enum smx_stage st = res->err_stage;
        fprintf(stderr, "%s: sshmux: %s: %s\n", h->name,
                st == SMX_STAGE_NONE || st == SMX_STAGE_EXEC ? "forward" : smx_stage_name(st),
                res->err_msg[0] ? res->err_msg : "connection closed");
        r->failures++;
    }
    if (h->fw)
        smx_forwarder_close(h->fw, fwd_on_fw_closed, h);
    size_t alive = 0;
    for (size_t i = 0; i < r->n; i++)
        alive += !r->hosts[i].ended;
    if (alive == 0)
        fwd_stop(r);
}

static void fwd_on_conn_closed(smx_conn *conn, void *ud)
{
    fwd_host *h = ud;
    h->conn_closed = 1;
    h->conn = NULL;
    fwd_maybe_done(h->run);
}

static const smx_conn_events fwd_conn_events = {
    .ready = fwd_on_ready,
    .ended = fwd_on_ended,
    .closed = fwd_on_conn_closed,
};

static void fwd_on_link_ended(void *ud, const char *listener, const char *err)
{
    fwd_run *r = ud;
    if (err && !r->c->quiet)
        fprintf(stderr, "sshmux: %s: forwarded connection failed: %s\n", listener, err);
}

static void fwd_stop(fwd_run *r)
{
    if (r->stopping)
        return;
    r->stopping = 1;
    for (size_t i = 0; i < r->n; i++) {
        fwd_host *h = &r->hosts[i];
        if (h->fw)
            smx_forwarder_close(h->fw, fwd_on_fw_closed, h);
        if (h->conn)
            smx_conn_close(h->conn);
    }
}

static void fwd_on_signal(uv_signal_t *s, int signum)
{
    fwd_stop(s->data);
}

/* Listeners for host index i; the port of TCP listeners is --base-port + index when given. */
static int fwd_bind_host(fwd_run *r, fwd_host *h, size_t index, const smx_forward_events *ev)
{
    for (size_t j = 0; j < r->nspecs; j++) {
        smx_fwd_spec spec = r->specs[j];
        if (r->c->base_port)
            spec.bind_port = r->c->base_port + (int)(index * r->nspecs + j);
        if (spec.bind_port > 65535) {
            cli_error(r->c, "--base-port %d + %zu hosts runs past port 65535", r->c->base_port,
                      r->n);
            return EXIT_USAGE;
        }
        char local[160], remote[160], unused[160];
        smx_err err = {{0}};
        int rc = smx_forward_add(h->fw, &spec, r->c->sock_mode, local, sizeof local, &err);
        if (rc < 0) {
            cli_error(r->c, "%s: %s", h->name, err.msg);
            return rc == SMX_EINVAL ? EXIT_USAGE : EXIT_UNREACHABLE;   /* bad -L input */
        }
        smx_fwd_spec_describe(&spec, unused, sizeof unused, remote, sizeof remote);
        smx_strvec_push(&h->locals, local);
        smx_strvec_push(&h->remotes, remote);
    }
    return 0;
}

static int fwd_setup(fwd_run *r, const smx_forward_events *ev)
{
    r->hosts = calloc(r->n, sizeof *r->hosts);
    if (!r->hosts)
        return EXIT_UNREACHABLE;
    for (size_t i = 0; i < r->n; i++) {
        fwd_host *h = &r->hosts[i];
        cli_host *ch = &r->c->hosts[i];
        h->run = r;
        h->name = ch->hc->host;
        h->conn = smx_conn_new(r->e, ch->target, ch->hc, ch->password, &fwd_conn_events, h);
        if (!h->conn)
            return EXIT_UNREACHABLE;
        ch->hc = NULL;   /* the connection owns it */
        h->name = h->conn->hc->host;
        h->fw = smx_forwarder_new(r->loop, h->conn, ev);
        int rc = h->fw ? fwd_bind_host(r, h, i, ev) : EXIT_UNREACHABLE;
        if (rc)
            return rc;
    }
    return 0;
}

/* Closes whatever fwd_setup made when it failed: listeners (and their socket files) go. */
static void fwd_teardown_unstarted(fwd_run *r)
{
    for (size_t i = 0; r->hosts && i < r->n; i++) {
        fwd_host *h = &r->hosts[i];
        if (h->fw)
            smx_forwarder_close(h->fw, NULL, NULL);
        if (h->conn)
            smx_conn_free_unstarted(h->conn);
    }
    uv_run(r->loop, UV_RUN_NOWAIT);
}

static int fwd_parse_specs(fwd_run *r)
{
    cli *c = r->c;
    if (c->lspecs.n == 0) {
        cli_error(c, "no forwarding given (-L SPEC)");
        return EXIT_USAGE;
    }
    r->specs = calloc(c->lspecs.n, sizeof *r->specs);
    for (size_t i = 0; r->specs && i < c->lspecs.n; i++) {
        smx_err err = {{0}};
        if (smx_fwd_spec_parse(c->lspecs.v[i], &r->specs[i], &err) < 0) {
            cli_error(c, "%s", err.msg);
            return EXIT_USAGE;
        }
        r->nspecs = i + 1;
        if (c->base_port && r->specs[i].bind_path) {
            cli_error(c, "-L %s: --base-port applies to TCP listeners only", c->lspecs.v[i]);
            return EXIT_USAGE;
        }
    }
    return r->specs ? 0 : EXIT_UNREACHABLE;
}

static int fwd_run_all(cli *c)
{
    fwd_run r = {0};
    r.c = c;
    r.loop = uv_default_loop();
    int rc = fwd_parse_specs(&r);
    if (!rc && c->args.n == 1 && c->wlists.n == 0)
        smx_strvec_push(&c->wlists, c->args.v[0]);
    else if (!rc && (c->args.n > 1 || (c->args.n == 1 && c->wlists.n))) {
        cli_error(c, "unexpected argument \"%s\"", c->args.v[c->args.n - 1]);
        rc = EXIT_USAGE;
    }
    if (!rc)
        rc = cli_resolve_hosts(c, 1);
    if (!rc && c->nhosts > 1 && !c->base_port) {
        cli_error(c, "%zu targets: give --base-port N for one local port per host", c->nhosts);
        rc = EXIT_USAGE;
    }
    r.n = c->nhosts;
    if (!rc && smx_engine_new(&r.e, r.loop, &c->eng) < 0)
        rc = EXIT_UNREACHABLE;
    if (!rc)
        rc = cli_load_credentials(c, r.e);
    smx_forward_events ev = {.conn_ended = fwd_on_link_ended, .ud = &r};
    if (!rc && (rc = fwd_setup(&r, &ev)) != 0)
        fwd_teardown_unstarted(&r);
    if (!rc) {
        if (!c->json && c->nhosts > 1)
            printf("%-24s %-28s %s\n", "HOST", "LISTEN", "REMOTE");
        for (int i = 0; i < 2; i++) {
            uv_signal_init(r.loop, &r.sigs[i]);
            r.sigs[i].data = &r;
            uv_signal_start(&r.sigs[i], fwd_on_signal, i == 0 ? SIGINT : SIGTERM);
        }
        for (size_t i = 0; i < r.n; i++)
            smx_conn_start(r.hosts[i].conn);
        uv_run(r.loop, UV_RUN_DEFAULT);
        rc = r.failures ? EXIT_UNREACHABLE : 0;
    }
    for (size_t i = 0; r.hosts && i < r.n; i++) {
        smx_strvec_free(&r.hosts[i].locals);
        smx_strvec_free(&r.hosts[i].remotes);
    }
    free(r.hosts);
    for (size_t i = 0; i < r.nspecs; i++)
        smx_fwd_spec_free(&r.specs[i]);
    free(r.specs);
    smx_engine_free(r.e);
    uv_run(r.loop, UV_RUN_NOWAIT);
    uv_loop_close(r.loop);
    return rc;
}

int cmd_forward(int argc, char **argv)
{
    cli c;
    int rc = cli_parse(&c, argc, argv, "sshmux forward");
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
