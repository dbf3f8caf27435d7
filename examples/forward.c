/* forward [-F ssh_config] [bind:]PORT:HOST:HOSTPORT TARGET [COMMAND]: as ssh -L, forwards a local
 * port (0: any free one) through TARGET to HOST:HOSTPORT, until SIGINT or, with COMMAND, while
 * COMMAND runs on TARGET. Prints "LOCAL -> REMOTE" once the listener serves; exits with the
 * command's status, else 0, or 255 when the connection failed.
 *   cc forward.c $(pkg-config --cflags --libs sshmux) -o forward */
#include <signal.h>
#include <sshmux.h>
#include <stdio.h>
#include <string.h>

static void on_ready(void *ud, smx_forward *f)
{
    printf("%s -> %s\n", smx_forward_local(f, 0), smx_forward_remote(f, 0));
    fflush(stdout);
}

static void on_line(void *ud, const smx_result *r, int is_stderr, const char *line, size_t len)
{
    fprintf(is_stderr ? stderr : stdout, "%.*s\n", (int)len, line);
}

static void on_done(void *ud, smx_result *r)
{
    int failed = r->err_stage != SMX_STAGE_NONE && r->err_code != SMX_ECANCELED;
    if (failed)
        fprintf(stderr, "%s: %s: %s\n", r->host, smx_stage_name(r->err_stage), smx_result_error(r));
    *(int *)ud = failed || r->exit_code >= 0 || r->exit_signal ? smx_result_exit_status(r) : 0;
    smx_result_destroy(r);
}

static void on_signal(uv_signal_t *s, int signum)
{
    smx_engine_cancel(s->data, "interrupted");   /* closes the listener and the connection */
}

int main(int argc, char **argv)
{
    int a = argc > 2 && strcmp(argv[1], "-F") == 0 ? 3 : 1, status = 255;
    if (argc - a < 2 || argc - a > 3) {
        fprintf(stderr, "usage: forward [-F ssh_config] [bind:]PORT:HOST:HOSTPORT TARGET [COMMAND]\n");
        return 2;
    }
    smx_err err = {{0}};
    smx_fwd_spec spec;
    if (smx_fwd_spec_parse(argv[a], &spec, &err) < 0) {
        fprintf(stderr, "forward: %s\n", err.msg);
        return 2;
    }
    smx_engine_opts o;
    smx_engine_opts_default(&o);
    smx_exec_opts x = {.command = argv[a + 2]};
    smx_forward_opts fo = {.specs = &spec, .nspecs = 1, .sock_mode = 0600,
                           .command = argc - a == 3 ? &x : NULL};
    smx_forward_callbacks cb = {.ready = on_ready, .on_line = on_line, .on_done = on_done,
                                .ud = &status};
    smx_target_job job = {.forward = &fo, .forward_cb = &cb};
    uv_loop_t *loop = uv_default_loop();
    uv_signal_t sig;
    smx_engine *e = NULL;
    int rc = smx_library_init();
    if (rc == 0 && (rc = smx_engine_new(&e, loop, &o)) == 0 && a == 3)
        rc = smx_engine_load_config(e, argv[2], &err);
    if (rc == 0 && (rc = smx_engine_add_target(e, argv[a + 1], &job, &err)) >= 0) {
        uv_signal_init(loop, &sig);
        sig.data = e;
        uv_signal_start(&sig, on_signal, SIGINT);
        uv_unref((uv_handle_t *)&sig);   /* the forward, not the watcher, keeps the loop alive */
        smx_engine_run(e);
        uv_close((uv_handle_t *)&sig, NULL);
    } else {
        fprintf(stderr, "forward: %s\n", err.msg[0] ? err.msg : smx_strerror(rc));
    }
    smx_engine_free(e);
    uv_run(loop, UV_RUN_NOWAIT);
    uv_loop_close(loop);
    smx_fwd_spec_free(&spec);
    smx_library_shutdown();
    return rc < 0 ? 2 : status;
}
