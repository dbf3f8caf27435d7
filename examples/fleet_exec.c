/* fleet_exec [-F ssh_config] HOSTLIST COMMAND: runs COMMAND on every host of HOSTLIST (ranges
 * like web[01-20]), printing "host: exit_code" as each finishes (-1: it never ran; the reason
 * goes to stderr). Exits 0 only if every host exited 0. Keys, users, ports and jump hosts come
 * from ssh_config and ssh-agent, as ssh would take them.
 *   cc fleet_exec.c $(pkg-config --cflags --libs sshmux) -o fleet_exec */
#include <sshmux.h>
#include <stdio.h>
#include <string.h>

static void on_done(void *ud, smx_result *r)
{
    printf("%s: %d\n", r->host, r->exit_code);
    fflush(stdout);
    if (r->err_stage != SMX_STAGE_NONE)
        fprintf(stderr, "%s: %s: %s\n", r->host, smx_stage_name(r->err_stage), smx_result_error(r));
    *(int *)ud |= !r->ok;
    smx_result_destroy(r);   /* each result is ours */
}

int main(int argc, char **argv)
{
    int a = argc > 2 && strcmp(argv[1], "-F") == 0 ? 3 : 1, failed = 0;
    if (argc - a != 2) {
        fprintf(stderr, "usage: fleet_exec [-F ssh_config] HOSTLIST COMMAND\n");
        return 2;
    }
    smx_engine_opts o;
    smx_engine_opts_default(&o);
    smx_exec_opts x = {.command = argv[a + 1]};
    smx_exec_callbacks cb = {.on_done = on_done, .ud = &failed};
    smx_target_job job = {.exec = &x, .exec_cb = &cb};
    smx_engine *e = NULL;
    smx_err err = {{0}};
    int rc = smx_library_init();
    if (rc == 0 && (rc = smx_engine_new(&e, uv_default_loop(), &o)) == 0 && a == 3)
        rc = smx_engine_load_config(e, argv[2], &err);
    if (rc == 0 && (rc = smx_engine_add_target(e, argv[a], &job, &err)) >= 0)
        smx_engine_run(e);
    else
        fprintf(stderr, "fleet_exec: %s\n", err.msg[0] ? err.msg : smx_strerror(rc));
    smx_engine_free(e);
    uv_run(uv_default_loop(), UV_RUN_NOWAIT);   /* closed handles finish */
    uv_loop_close(uv_default_loop());
    smx_library_shutdown();
    return rc < 0 ? 2 : failed;
}
