/* fleet_expect [-F ssh_config] HOSTLIST SCRIPT: types the steps of SCRIPT (JSON lines,
 * {"send": TEXT, "expect": REGEX, "timeout": SECONDS}) into a login shell on a PTY of every host
 * of HOSTLIST, printing "host: step N: output" for each line a step printed and "host: ok" or
 * "host: failed: reason" as each host finishes. Without "expect", a step ends at the shell's
 * prompt. Exits 0 only if every step matched on every host; 2 for a bad script or host list.
 *   cc fleet_expect.c $(pkg-config --cflags --libs sshmux) -o fleet_expect */
#include <sshmux.h>
#include <stdio.h>
#include <string.h>

static void on_done(void *ud, smx_result *r)
{
    for (size_t i = 0; i < r->nsteps; i++) {
        const char *p = r->steps[i].out.data, *end = p + r->steps[i].out.len;
        while (p && p < end) {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            int n = (int)((nl ? nl : end) - p);
            printf("%s: step %zu: %.*s\n", r->host, i + 1, n, p);
            p += n + 1;
        }
    }
    if (r->ok)
        printf("%s: ok\n", r->host);
    else
        printf("%s: failed: %s: %s\n", r->host, smx_stage_name(r->err_stage), smx_result_error(r));
    fflush(stdout);
    *(int *)ud |= !r->ok;
    smx_result_destroy(r);   /* each result is ours */
}

int main(int argc, char **argv)
{
    int a = argc > 2 && strcmp(argv[1], "-F") == 0 ? 3 : 1, failed = 0;
    if (argc - a != 2) {
        fprintf(stderr, "usage: fleet_expect [-F ssh_config] HOSTLIST SCRIPT\n");
        return 2;
    }
    smx_expect_script script = {0};
    smx_err err = {{0}};
    smx_engine *e = NULL;
    smx_engine_opts o;
    smx_engine_opts_default(&o);
    int rc = smx_library_init();
    if (rc == 0)
        rc = smx_expect_script_load(&script, argv[a + 1], &err);
    smx_expect_opts x = {.steps = script.steps, .nsteps = script.nsteps};
    smx_exec_callbacks cb = {.on_done = on_done, .ud = &failed};
    smx_target_job job = {.expect = &x, .exec_cb = &cb};
    if (rc == 0 && (rc = smx_engine_new(&e, uv_default_loop(), &o)) == 0 && a == 3)
        rc = smx_engine_load_config(e, argv[2], &err);
    if (rc == 0 && (rc = smx_engine_add_target(e, argv[a], &job, &err)) >= 0)
        smx_engine_run(e);
    else
        fprintf(stderr, "fleet_expect: %s\n", err.msg[0] ? err.msg : smx_strerror(rc));
    smx_engine_free(e);
    uv_run(uv_default_loop(), UV_RUN_NOWAIT);   /* closed handles finish */
    uv_loop_close(uv_default_loop());
    smx_expect_script_free(&script);
    smx_library_shutdown();
    return rc < 0 ? 2 : failed;
}
