/* ssh_config files (core/sshconfig_*.c): load, Include, resolve per host, JSON.
 *
 * The input is up to five parts separated by lines "--": the -F file (~/.ssh/config), then
 * ~/.ssh/a, ~/.ssh/b and ~/.ssh/conf.d/c for Include to find, then -o lines (one per line).
 * Parts not given are removed, so every run sees exactly the files its input describes. Include
 * reaches nothing outside the scratch directory (fuzz_common.c confines glob), and HOME is that
 * directory, so "~" and relative Includes stay in it.
 *
 * Besides memory errors, checks sshconfig.h's promises for each resolved host: host, hostname
 * and user are set, the port is in 1..65535, a ProxyJump value parses as hops, and the result
 * converts to JSON. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "fuzz_common.h"
#include "sshconfig.h"

enum { PART_CONFIG, PART_A, PART_B, PART_C, PART_OPTIONS, NPARTS };

static const char *const part_file[] = {
    "home/.ssh/config", "home/.ssh/a", "home/.ssh/b", "home/.ssh/conf.d/c",
};
static char part_path[PART_OPTIONS][4096];

/* Names a config is likely to mention; the fuzzer learns to match them from the comparisons. */
static const char *const hosts[] = { "web01", "Bastion.Example", "::1" };

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char dir[4096];

    (void)argc;
    (void)argv;
    fz_path(dir, sizeof dir, "home/.ssh/conf.d");
    if (mkdir(dir, 0700) != 0)
        fz_fail("mkdir %s failed", dir);
    for (size_t i = 0; i < PART_OPTIONS; i++)
        fz_path(part_path[i], sizeof part_path[i], part_file[i]);
    return 0;
}

static void add_options(smx_overrides *ov, const struct fz_part *p)
{
    char *text = fz_cstring(p->data, p->size), *save = NULL;
    smx_err err;

    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        smx_config_validate_option(line, &err);
        if (smx_strvec_push(&ov->options, line) != 0)
            abort();
    }
    free(text);
}

static void check_host(const smx_config *cfg, const char *host, const smx_overrides *ov)
{
    smx_hostcfg hc;
    smx_err err = { "" };
    int rc = smx_config_resolve(cfg, host, ov, &hc, &err);

    if (rc < 0) {
        if (!err.msg[0])
            fz_fail("resolve(%s) failed (%d) without a message", host, rc);
        return;
    }
    if (!hc.host || !hc.hostname || !hc.user)
        fz_fail("resolve(%s): host, hostname or user missing", host);
    if (hc.port < 1 || hc.port > 65535)
        fz_fail("resolve(%s): port %d", host, hc.port);
    if (hc.proxyjump) {
        smx_jumphop *hops;
        size_t n;

        if (smx_proxyjump_parse(hc.proxyjump, &hops, &n, &err) != 0)
            fz_fail("resolve(%s): ProxyJump \"%s\" does not parse: %s", host, hc.proxyjump,
                    err.msg);
        smx_jumphops_free(hops, n);
    }
    if (hc.proxycommand) {
        char *cmd = NULL;

        if (smx_hostcfg_expand_proxy(&hc, hc.proxycommand, &cmd, &err) == 0)
            free(cmd);
    }
    json_t *j = smx_hostcfg_to_json(&hc);
    char *s = j ? json_dumps(j, 0) : NULL;
    if (!s)
        fz_fail("resolve(%s): no JSON", host);
    free(s);
    json_decref(j);
    smx_hostcfg_free(&hc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fz_part parts[NPARTS];
    size_t nparts = fz_split(data, size, "--", parts, NPARTS);
    smx_overrides ov = { 0 };
    smx_config *cfg = NULL;
    smx_err err = { "" };

    for (size_t i = 0; i < PART_OPTIONS; i++) {
        if (i < nparts)
            fz_write_file(part_path[i], parts[i].data, parts[i].size);
        else
            unlink(part_path[i]);
    }
    if (nparts > PART_OPTIONS)
        add_options(&ov, &parts[PART_OPTIONS]);
    if (smx_config_load(&cfg, part_path[PART_CONFIG], &err) == 0) {
        if (!smx_config_warnings(cfg))
            fz_fail("no warnings vector");
        for (size_t i = 0; i < sizeof hosts / sizeof *hosts; i++)
            check_host(cfg, hosts[i], nparts > PART_OPTIONS ? &ov : NULL);
        smx_config_free(cfg);
    } else if (!err.msg[0]) {
        fz_fail("load failed without a message");
    }
    smx_strvec_free(&ov.options);
    return 0;
}
