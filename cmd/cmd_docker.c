/* sshmux docker TARGET [-- CMD...]: one SSH connection serving a local Unix socket for
 * DOCKER_HOST. Every connection made to the socket is a channel on that connection: a session
 * running `docker system dial-stdio` on the host (which finds the daemon as the remote docker
 * CLI does: DOCKER_HOST, contexts, rootless sockets), or with --streamlocal a
 * direct-streamlocal@openssh.com channel to the daemon's socket. The docker CLI's own ssh://
 * helper starts one ssh process and one handshake per API connection instead. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "cli.h"

#define DOCKER_DEFAULT_SOCKET "/var/run/docker.sock"

typedef struct docker_run {
    cli *c;
    uv_loop_t *loop;
    smx_engine *e;
    char *dir;                 /* the fresh private directory we made, or NULL */
    char *sock;                /* the local socket's path */
    char *rsock;               /* the daemon's socket on the host (URL path, --remote), or NULL */
    char *dial;                /* the remote command, unless --streamlocal */
    char **argv;               /* the local command (after --), or NULL */
    uv_process_t child;
    int child_running, child_status, child_started;
    uv_signal_t sigs[2];
    int caught, failed;
} docker_run;

/* ssh://[user[:password]@]host[:port][/path]: the path names the daemon's socket on the host
 * ("ssh://host///var/run/docker.sock" as the seeds write it, runs of '/' counted as one). The
 * URL without it is the target. */
static int docker_split_url(docker_run *r, char *target)
{
    if (strncasecmp(target, "ssh://", 6) != 0)
        return 0;
    char *slash = strchr(target + 6, '/');
    if (!slash)
        return 0;
    char *path = slash;
    while (path[1] == '/')
        path++;
    if (path[1] != '\0' && !(r->rsock = strdup(path)))
        return -1;
    *slash = '\0';
    return 0;
}

static int docker_make_socket_path(docker_run *r)
{
    if (r->c->socket_path)
        return (r->sock = strdup(r->c->socket_path)) ? 0 : -1;
    const char *base = getenv("XDG_RUNTIME_DIR");
    if (!base || access(base, W_OK) != 0)
        base = "/tmp";
    if (asprintf(&r->dir, "%s/sshmux-docker-XXXXXX", base) < 0) {
        r->dir = NULL;
        return -1;
    }
    if (!mkdtemp(r->dir)) {   /* mode 0700 */
        cli_error(r->c, "cannot create a directory for the socket in %s: %s", base,
                  strerror(errno));
        free(r->dir);
        r->dir = NULL;
        return -1;
    }
    if (asprintf(&r->sock, "%s/docker.sock", r->dir) < 0) {
        r->sock = NULL;
        return -1;
    }
    return 0;
}

static void docker_on_child_exit(uv_process_t *p, int64_t status, int signo)
{
    docker_run *r = p->data;
    r->child_running = 0;
    r->child_status = signo ? 128 + signo : (int)status;
    uv_close((uv_handle_t *)p, NULL);
    smx_engine_cancel(r->e, "the command finished");
}

/* CMD with DOCKER_HOST pointing at our socket; its stdio is ours. */
static void docker_start_child(docker_run *r)
{
    extern char **environ;
    size_t n = 0;
    while (environ[n])
        n++;
    char **env = calloc(n + 2, sizeof *env);
    char *dh = NULL;
    if (!env || asprintf(&dh, "DOCKER_HOST=unix://%s", r->sock) < 0) {
        free(env);
        cli_error(r->c, "out of memory");
        smx_engine_cancel(r->e, "out of memory");
        r->child_status = EXIT_UNREACHABLE;
        return;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "DOCKER_HOST=", 12) != 0 &&
            strncmp(environ[i], "DOCKER_CONTEXT=", 15) != 0)
            env[k++] = environ[i];
    env[k++] = dh;
    uv_stdio_container_t stdio[3];
    for (int i = 0; i < 3; i++) {
        stdio[i].flags = UV_INHERIT_FD;
        stdio[i].data.fd = i;
    }
    uv_process_options_t o = {0};
    o.file = r->argv[0];
    o.args = r->argv;
    o.env = env;
    o.exit_cb = docker_on_child_exit;
    o.stdio = stdio;
    o.stdio_count = 3;
    r->child.data = r;
    int rc = uv_spawn(r->loop, &r->child, &o);
    free(env);
    free(dh);
    r->child_started = 1;
    if (rc < 0) {
        cli_error(r->c, "cannot run %s: %s", r->argv[0], uv_strerror(rc));
        uv_close((uv_handle_t *)&r->child, NULL);
        r->child_status = rc == UV_ENOENT ? 127 : 126;   /* as a shell says it */
        smx_engine_cancel(r->e, "the command could not start");
        return;
    }
    r->child_running = 1;
}

static void docker_on_ready(void *ud, smx_forward *f)
{
    docker_run *r = ud;
    if (r->argv) {
        docker_start_child(r);
        return;
    }
    if (r->c->json)
        printf("{\"host\": \"%s\", \"socket\": \"%s\", \"docker_host\": \"unix://%s\"}\n",
               smx_forward_host(f), r->sock, r->sock);
    else
        printf("export DOCKER_HOST=unix://%s\n", r->sock);
    fflush(stdout);
}

static void docker_on_link_ended(void *ud, smx_forward *f, const char *listener,
                                 const char *err)
{
    docker_run *r = ud;
    if (err && r->c->verbose)
        fprintf(stderr, "sshmux: docker: an API connection failed: %s\n", err);
}

static void docker_on_done(void *ud, smx_result *res)
{
    docker_run *r = ud;
    enum smx_stage st = res->err_stage;
    if (st != SMX_STAGE_NONE && res->err_code != SMX_ECANCELED) {
        fprintf(stderr, "%s: sshmux: %s: %s\n", res->host,
                st == SMX_STAGE_EXEC ? "docker" : smx_stage_name(st),
                smx_result_error(res)[0] ? smx_result_error(res) : "connection closed");
        r->failed = 1;
    }
    smx_result_destroy(res);
}

static void docker_on_signal(uv_signal_t *s, int signum)
{
    docker_run *r = s->data;
    r->caught++;
    if (r->child_running)
        uv_process_kill(&r->child, signum);   /* it ends, and the run with it */
    else
        smx_engine_cancel(r->e, signum == SIGINT ? "canceled (SIGINT)" : "canceled (SIGTERM)");
}

static int docker_prepare(docker_run *r)
{
    cli *c = r->c;
    if (c->args.n > 0 && docker_split_url(r, c->args.v[0]) < 0)
        return EXIT_UNREACHABLE;
    int taken = cli_take_target(c, "usage: sshmux docker [options] TARGET [-- CMD...]");
    if (taken < 0)
        return EXIT_USAGE;
    size_t from = (size_t)taken;
    if (from < c->args.n && strcmp(c->args.v[from], "--") == 0)
        from++;
    if (from < c->args.n) {
        r->argv = calloc(c->args.n - from + 1, sizeof *r->argv);
        if (!r->argv)
            return EXIT_UNREACHABLE;
        for (size_t i = from; i < c->args.n; i++)
            r->argv[i - from] = c->args.v[i];
    }
    if (c->remote) {
        free(r->rsock);
        if (!(r->rsock = strdup(c->remote)))
            return EXIT_UNREACHABLE;
    }
    if (r->rsock && r->rsock[0] != '/') {
        cli_error(c, "the daemon's socket must be an absolute path: %s", r->rsock);
        return EXIT_USAGE;
    }
    if (!c->streamlocal) {
        int rc = r->rsock ? asprintf(&r->dial, "docker --host=unix://%s system dial-stdio",
                                     r->rsock)
                          : asprintf(&r->dial, "docker system dial-stdio");
        if (rc < 0) {
            r->dial = NULL;
            return EXIT_UNREACHABLE;
        }
    }
    int rc = cli_resolve_hosts(c, 1);
    if (rc)
        return rc;
    if (c->nhosts != 1) {
        cli_error(c, "%zu targets: sshmux docker serves one host", c->nhosts);
        return EXIT_USAGE;
    }
    return docker_make_socket_path(r) < 0 ? EXIT_UNREACHABLE : 0;
}

static int docker_serve(docker_run *r)
{
    cli *c = r->c;
    if (smx_engine_new(&r->e, r->loop, &c->eng) < 0)
        return EXIT_UNREACHABLE;
    int rc = cli_load_credentials(c, r->e);
    if (rc)
        return rc;
    smx_fwd_spec spec = {0};
    spec.kind = SMX_FWD_LOCAL;
    spec.bind_path = r->sock;
    if (c->streamlocal)
        spec.dest_path = r->rsock ? r->rsock : DOCKER_DEFAULT_SOCKET;
    else
        spec.command = r->dial;
    smx_forward_opts o = {.specs = &spec, .nspecs = 1, .sock_mode = 0600};
    smx_forward_callbacks cb = {.ready = docker_on_ready, .link_ended = docker_on_link_ended,
                                .on_done = docker_on_done, .ud = r};
    smx_err err = {{0}};
    cli_host *h = &c->hosts[0];
    if (smx_engine_add_forward(r->e, h->target, h->hc, h->password, &o, &cb, NULL, &err) < 0) {
        cli_error(c, "%s", err.msg);
        return EXIT_UNREACHABLE;
    }
    h->hc = NULL;   /* the engine's */
    for (int i = 0; i < 2; i++) {
        uv_signal_init(r->loop, &r->sigs[i]);
        r->sigs[i].data = r;
        uv_signal_start(&r->sigs[i], docker_on_signal, i == 0 ? SIGINT : SIGTERM);
        uv_unref((uv_handle_t *)&r->sigs[i]);
    }
    smx_engine_run(r->e);
    if (r->child_running)   /* the connection went first: the command decides when we end */
        uv_run(r->loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&r->sigs[0], NULL);
    uv_close((uv_handle_t *)&r->sigs[1], NULL);
    if (r->argv)
        return r->child_started ? r->child_status : EXIT_UNREACHABLE;
    return r->failed ? EXIT_UNREACHABLE : 0;
}

int cmd_docker(int argc, char **argv)
{
    cli c;
    docker_run r = {0};
    r.c = &c;
    r.loop = uv_default_loop();
    int rc = cli_parse_mode(&c, argc, argv, "sshmux docker", CLI_PARSE_FORWARD);
    if (!rc) {
        setvbuf(stdout, NULL, _IOLBF, 0);
        rc = docker_prepare(&r);
    }
    if (!rc)
        rc = docker_serve(&r);
    smx_engine_free(r.e);
    uv_run(r.loop, UV_RUN_NOWAIT);
    uv_loop_close(r.loop);
    if (r.dir && rmdir(r.dir) < 0 && errno != ENOENT)
        cli_warn(&c, "could not remove %s: %s", r.dir, strerror(errno));
    free(r.dir);
    free(r.sock);
    free(r.rsock);
    free(r.dial);
    free(r.argv);
    cli_free(&c);
    return rc;
}
