/* smx-lateadd -F ssh_config FIRST LATER COMMAND: runs COMMAND on FIRST, and once it is done adds
 * LATER to the running engine (from the result callback), which must start at once: printed
 * "host: exit_code" lines come in that order and the run ends only when LATER is done. Exits 0
 * when both hosts exited 0. Built by tests/integration/test_examples.py against the installed
 * header only, like any embedder. */
#include <sshmux.h>
#include <stdio.h>
#include <string.h>

typedef struct lateadd {
    smx_engine *e;
    const char *later;
    smx_target_job job;
    int done, failed;
} lateadd;

static void on_done(void *ud, smx_result *r)
{
    lateadd *l = ud;
    printf("%s: %d\n", r->host, r->exit_code);
    fflush(stdout);
    l->failed |= !r->ok;
    smx_result_destroy(r);
    if (l->done++ == 0) {   /* the first host: the run is on, its queue empty */
        smx_err err = {{0}};
        if (smx_engine_add_target(l->e, l->later, &l->job, &err) < 0) {
            fprintf(stderr, "smx-lateadd: %s\n", err.msg);
            l->failed = 1;
        }
    }
}

int main(int argc, char **argv)
{
    if (argc != 6 || strcmp(argv[1], "-F") != 0) {
        fprintf(stderr, "usage: smx-lateadd -F ssh_config FIRST LATER COMMAND\n");
        return 2;
    }
    smx_engine_opts o;
    smx_engine_opts_default(&o);
    smx_exec_opts x = {.command = argv[5]};
    lateadd l = {.later = argv[4]};
    smx_exec_callbacks cb = {.on_done = on_done, .ud = &l};
    l.job = (smx_target_job){.exec = &x, .exec_cb = &cb};
    smx_err err = {{0}};
    int rc = smx_library_init();
    if (rc == 0 && (rc = smx_engine_new(&l.e, uv_default_loop(), &o)) == 0)
        rc = smx_engine_load_config(l.e, argv[2], &err);
    if (rc == 0 && (rc = smx_engine_add_target(l.e, argv[3], &l.job, &err)) >= 0)
        smx_engine_run(l.e);
    else
        fprintf(stderr, "smx-lateadd: %s\n", err.msg[0] ? err.msg : smx_strerror(rc));
    smx_engine_free(l.e);
    uv_run(uv_default_loop(), UV_RUN_NOWAIT);
    uv_loop_close(uv_default_loop());
    smx_library_shutdown();
    return rc < 0 ? 2 : l.done == 2 && !l.failed ? 0 : 1;
}
