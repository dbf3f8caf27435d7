/* sshmux upload / download / run-script: file copies over SFTP to and from every target. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "output.h"
#include "progress.h"

/* The target (cli_take_target), then at least `need` arguments. Returns the index of the first
 * argument after the target, or -1 (message printed). */
static int copy_take_target(cli *c, size_t need, const char *usage)
{
    int taken = cli_take_target(c, usage);
    if (taken < 0)
        return -1;
    size_t first = (size_t)taken;
    if (c->args.n < first + need) {
        cli_error(c, "missing arguments (usage: %s)", usage);
        return -1;
    }
    return (int)first;
}

/* mkdir -p for the download directory, before the run. 0 or -1 (message printed). */
static int copy_make_local_dir(cli *c, const char *dir)
{
    char *p = strdup(dir);
    int rc = p ? 0 : -1;
    for (char *s = p ? p + 1 : NULL; s && rc == 0; s = strchr(s + 1, '/')) {
        char saved = *s;
        if (saved != '/' && saved != '\0')
            continue;
        *s = '\0';
        if (mkdir(p, 0755) != 0 && errno != EEXIST)
            rc = -1;
        *s = saved;
        if (!saved)
            break;
    }
    struct stat st;
    if (rc == 0 && (mkdir(p, 0755) == 0 || errno == EEXIST) && stat(p, &st) == 0 &&
        S_ISDIR(st.st_mode)) {
        free(p);
        return 0;
    }
    cli_error(c, "%s: cannot make the local directory: %s", dir,
              errno == EEXIST ? "not a directory" : strerror(errno));
    free(p);
    return -1;
}

/* The ARGS of run-script as one string for the remote shell: each in single quotes. */
static char *copy_quote_args(const smx_strvec *args, size_t from)
{
    size_t len = 1;
    for (size_t i = from; i < args->n; i++)
        len += 4 * strlen(args->v[i]) + 3;
    char *out = malloc(len), *q = out;
    for (size_t i = from; out && i < args->n; i++) {
        if (i > from)
            *q++ = ' ';
        *q++ = '\'';
        for (const char *s = args->v[i]; *s; s++) {
            if (*s == '\'')
                q = stpcpy(q, "'\\''");
            else
                *q++ = *s;
        }
        *q++ = '\'';
    }
    if (out)
        *q = '\0';
    return out;
}

/* Fills o from the command line; the copy's strings point into c. 0 or an exit status. */
static int copy_opts_from_cli(cli *c, enum smx_copy_kind kind, smx_copy_opts *o,
                              smx_strvec *sources, char **script_args)
{
    static const char *usage[] = {
        "sshmux upload [-w HOSTS | TARGET] [options] LOCAL... REMOTE",
        "sshmux download [-w HOSTS | TARGET] [options] REMOTE... LOCALDIR",
        "sshmux run-script [-w HOSTS | TARGET] [options] SCRIPT [ARGS...]",
    };
    int single = c->wlists.n == 0 && c->hostfiles.n == 0;
    int first = copy_take_target(c, kind == SMX_COPY_SCRIPT ? 1 : 2, usage[kind]);
    if (first < 0)
        return EXIT_USAGE;
    memset(o, 0, sizeof *o);
    o->kind = kind;
    size_t last = kind == SMX_COPY_SCRIPT ? (size_t)first + 1 : c->args.n - 1;
    for (size_t i = (size_t)first; i < last; i++)
        if (smx_strvec_push(sources, c->args.v[i]) < 0)
            return EXIT_USAGE;
    o->sources = sources;
    o->dest = kind == SMX_COPY_SCRIPT ? NULL : c->args.v[c->args.n - 1];
    o->layout = c->suffix ? SMX_LAYOUT_SUFFIX : single ? SMX_LAYOUT_FLAT : SMX_LAYOUT_HOSTDIR;
    o->recursive = c->recursive;
    o->preserve = c->preserve;
    o->resume = c->resume;
    o->fsync = c->fsync;
    o->in_place = c->no_atomic;
    o->mode = c->mode_given ? (int)c->sock_mode : -1;
    o->block_size = c->block_size;
    o->requests = c->requests;
    o->transfer_timeout_ms = c->transfer_timeout_ms;
    if (kind == SMX_COPY_SCRIPT) {
        if (!(*script_args = copy_quote_args(&c->args, (size_t)first + 1)))
            return EXIT_USAGE;
        c->x.command = *script_args;
        c->x.env = c->env.n ? &c->env : NULL;
        c->x.capture = c->gather || c->json;
        o->script = &c->x;
    }
    return 0;
}

static int copy_add_host(smx_engine *e, cli_host *h, const smx_exec_callbacks *cb, void *ud)
{
    return smx_engine_add_copy(e, h->target, h->hc, h->password, ud, cb);
}

static int copy_run(cli *c, smx_copy *copy, smx_engine *e, output *o)
{
    int rc = cli_queue_and_run(c, e, o, copy, copy_add_host, copy);
    if (c->verbose) {
        smx_copy_progress p;
        smx_copy_get_progress(copy, &p);
        fprintf(stderr, "sshmux: shared read cache peak: %zu bytes\n", p.peak_cache_bytes);
    }
    return rc;
}

static int copy_command(int argc, char **argv, enum smx_copy_kind kind, const char *prog)
{
    cli c;
    smx_strvec sources = {0};
    char *script_args = NULL;
    int rc = cli_parse_mode(&c, argc, argv, prog,
                            kind == SMX_COPY_SCRIPT ? CLI_PARSE_SCRIPT : CLI_PARSE_COPY);
    c.copy = kind != SMX_COPY_SCRIPT;
    smx_copy_opts opts;
    if (!rc)
        rc = copy_opts_from_cli(&c, kind, &opts, &sources, &script_args);
    if (!rc)
        rc = cli_resolve_hosts(&c, 1);
    /* scp's layout only for one host: a target that names several (a range) gets a directory
     * per host, or they would write over each other */
    if (!rc && opts.layout == SMX_LAYOUT_FLAT && c.nhosts > 1)
        opts.layout = SMX_LAYOUT_HOSTDIR;
    if (!rc && kind == SMX_COPY_DOWNLOAD && copy_make_local_dir(&c, opts.dest) < 0)
        rc = EXIT_USAGE;
    if (rc)
        goto out_free;
    cli_fit_fanout(&c);
    uv_loop_t *loop = uv_default_loop();
    output *o = output_new(&c, loop);
    c.eng.warn = output_warn;
    c.eng.ud = o;
    smx_engine *e = NULL;
    smx_copy *copy = NULL;
    smx_err err = {{0}};
    if (!o || smx_engine_new(&e, loop, &c.eng) < 0) {
        cli_error(&c, "out of memory");
        rc = EXIT_UNREACHABLE;
        goto out_engine;
    }
    if (smx_copy_new(e, &opts, &copy, &err) < 0) {
        cli_error(&c, "%s", err.msg);
        rc = EXIT_USAGE;
        goto out_engine;
    }
    rc = cli_load_credentials(&c, e);
    if (!rc)
        rc = copy_run(&c, copy, e, o);
out_engine:
    smx_engine_free(e);
    smx_copy_free(copy);
    output_free(o);
    uv_run(loop, UV_RUN_NOWAIT);   /* let closed handles finish */
    uv_loop_close(loop);
out_free:
    free(script_args);
    smx_strvec_free(&sources);
    cli_free(&c);
    return rc;
}

int cmd_upload(int argc, char **argv)
{
    return copy_command(argc, argv, SMX_COPY_UPLOAD, "sshmux upload");
}

int cmd_download(int argc, char **argv)
{
    return copy_command(argc, argv, SMX_COPY_DOWNLOAD, "sshmux download");
}

int cmd_run_script(int argc, char **argv)
{
    return copy_command(argc, argv, SMX_COPY_SCRIPT, "sshmux run-script");
}
