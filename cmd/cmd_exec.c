/* sshmux exec: run one command on every target. */
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <stdio.h>
#include <sys/resource.h>

#include "cli.h"
#include "output.h"
#include "progress.h"

/* Each running host holds one descriptor over TCP, two through a jump host or ProxyCommand
 * (smx_hostcfg_fds); raise the soft limit as far as the hard one allows and keep the fanout under
 * what fits, with a clear note instead of EMFILE. */
void cli_fit_fanout(cli *c)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    int per_host = 1;
    for (size_t i = 0; i < c->nhosts; i++) {
        int fds = c->hosts[i].hc ? smx_hostcfg_fds(c->hosts[i].hc) : 1;
        if (fds > per_host)
            per_host = fds;
    }
    long usable = ((long)rl.rlim_cur - 64) / per_host;
    if (usable < 1)
        usable = 1;
    if (c->eng.fanout > usable) {
        cli_warn(c, "fanout %d lowered to %ld: only %ld file descriptors available (ulimit -n)",
                 c->eng.fanout, usable, (long)rl.rlim_cur);
        c->eng.fanout = (int)usable;
    }
}

/* The first signal ends the remote commands as -u does (TERM, KILL after --kill-grace); a second
 * one closes what is left at once. */
static void exec_on_signal(uv_signal_t *h, int signum)
{
    cli_signals *es = h->data;
    if (es->caught++ == 0)
        fprintf(stderr, "sshmux: %s: canceling (running commands get TERM, then KILL after the "
                "grace; hosts not started are reported as canceled)\n",
                signum == SIGINT ? "interrupted" : "terminated");
    smx_engine_cancel(es->e, signum == SIGINT ? "canceled (SIGINT)" : "canceled (SIGTERM)");
}

/* Watched but unref'd: they must not keep the loop alive once the hosts are done. */
void cli_watch_signals(cli_signals *es, uv_loop_t *loop, smx_engine *e)
{
    es->e = e;
    for (int i = 0; i < 2; i++) {
        uv_signal_init(loop, &es->sig[i]);
        es->sig[i].data = es;
        uv_signal_start(&es->sig[i], exec_on_signal, i == 0 ? SIGINT : SIGTERM);
        uv_unref((uv_handle_t *)&es->sig[i]);
    }
}

static int exec_add_host(smx_engine *e, cli_host *h, const smx_exec_callbacks *cb, void *ud)
{
    return smx_engine_add_exec(e, h->target, h->hc, h->password, ud, cb);
}

int cli_queue_and_run(cli *c, smx_engine *e, output *o, smx_copy *copy, cli_add_host_fn add,
                      void *ud)
{
    for (size_t i = 0; i < c->nhosts; i++) {
        cli_host *h = &c->hosts[i];
        if (add(e, h, output_callbacks(o), ud) < 0) {
            cli_error(c, "out of memory");
            return EXIT_UNREACHABLE;
        }
        h->hc = NULL;   /* the engine owns it now */
    }
    cli_signals es = {0};
    cli_watch_signals(&es, uv_default_loop(), e);
    progress *pr = progress_wanted(c) && !c->json
                       ? progress_start(uv_default_loop(), e, copy, o, c->nhosts) : NULL;
    uint64_t t0 = uv_hrtime();
    smx_engine_run(e);
    progress_stop(pr);
    int rc = output_finish(o, (double)(uv_hrtime() - t0) / 1e6, e);
    cli_unwatch_signals(&es);
    uv_run(uv_default_loop(), UV_RUN_NOWAIT);   /* the watchers are this frame's: closed here */
    return es.caught ? 130 : rc;   /* 130: as a shell reports an interrupted command */
}

int cli_run_hosts(cli *c, cli_add_host_fn add, void *ud)
{
    int rc = 0;
    uv_loop_t *loop = uv_default_loop();
    output *o = output_new(c, loop);
    c->eng.warn = output_warn;
    c->eng.ud = o;
    smx_engine *e = NULL;
    if (!o || smx_engine_new(&e, loop, &c->eng) < 0) {
        cli_error(c, "out of memory");
        rc = EXIT_UNREACHABLE;
    }
    if (rc == 0)
        rc = cli_load_credentials(c, e);
    if (rc == 0)
        rc = cli_queue_and_run(c, e, o, NULL, add, ud);
    smx_engine_free(e);
    output_free(o);
    uv_run(loop, UV_RUN_NOWAIT);   /* let closed handles finish */
    uv_loop_close(loop);
    return rc;
}

int cmd_exec(int argc, char **argv)
{
    cli c;
    int rc = cli_parse(&c, argc, argv, "sshmux exec");
    if (rc)
        goto out_free;
    if (c.args.n == 0 && c.cmds.n == 0) {
        cli_error(&c, "no command given (usage: sshmux exec -w HOSTS [options] COMMAND... or "
                  "--cmd CMD [--cmd CMD...])");
        rc = EXIT_USAGE;
        goto out_free;
    }
    if (c.args.n && c.cmds.n) {
        cli_error(&c, "give the command either as arguments or as --cmd, not both");
        rc = EXIT_USAGE;
        goto out_free;
    }
    rc = cli_resolve_hosts(&c, 1);
    if (rc)
        goto out_free;
    cli_fit_fanout(&c);

    char *command = c.args.n ? cli_join_args(&c.args, 0) : NULL;
    c.x.command = command;
    if (c.cmds.n) {
        c.x.commands = (const char *const *)c.cmds.v;
        c.x.ncommands = c.cmds.n;
    }
    c.x.env = c.env.n ? &c.env : NULL;
    c.x.capture = c.gather || c.json;

    rc = cli_run_hosts(&c, exec_add_host, &c.x);
    free(command);
out_free:
    cli_free(&c);
    return rc;
}

void cli_unwatch_signals(cli_signals *es)
{
    uv_close((uv_handle_t *)&es->sig[0], NULL);
    uv_close((uv_handle_t *)&es->sig[1], NULL);
}
