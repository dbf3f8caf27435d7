/* Shared by the group-file harnesses (fuzz_clushgroups, fuzz_inventory, fuzz_genders): the input
 * is written to a scratch file and loaded with `load`; then host lists naming groups are
 * expanded against it and every host resolved (the inventory's connection variables applied).
 *
 * Properties: a failed load or lookup has a message; an expansion has no duplicate names and
 * stays within the list's budget; a resolved host has a hostname, a user and a port in
 * 1..65535. */
#ifndef SSHMUX_FUZZ_GROUPS_CHECK_H
#define SSHMUX_FUZZ_GROUPS_CHECK_H

#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "sshmux.h"

/* Names a fuzzed file is likely to define; the fuzzer learns them from the comparisons. */
static const char *const fzg_lists[] = {
    "@web", "@db,@all", "@ansible:all", "@ungrouped", "@*", "@s:*", "@s:g", "@g[1-3]",
    "@genders:a", "@genders:a||b&&~c", "@genders:x=1--(y)", "@a,h1", "@local:web",
};

#define FZG_MAX 5000

static void fzg_check_list(const smx_config *cfg, const char *list)
{
    smx_hostlist *hl = smx_hostlist_new(FZG_MAX);
    smx_err err = {{0}};
    if (!hl)
        abort();
    smx_hostlist_set_config(hl, cfg);
    int rc = smx_hostlist_add(hl, list, 0, &err);
    if (rc < 0 && !err.msg[0])
        fz_fail("%s failed (%d) without a message", list, rc);
    size_t n = smx_hostlist_count(hl);
    if (n > FZG_MAX)
        fz_fail("%s: %zu names, past the budget", list, n);
    for (size_t i = 0; i < n && i < 50; i++) {
        const char *name = smx_hostlist_name(hl, i);
        for (size_t k = 0; k < i; k++)
            if (strcmp(name, smx_hostlist_name(hl, k)) == 0)
                fz_fail("%s: \"%s\" twice", list, name);
        smx_hostcfg *hc = NULL;
        if (smx_hostcfg_resolve(cfg, NULL, name, &hc, &err) == 0) {
            char *json = smx_hostcfg_json(hc, name);
            if (!json)
                fz_fail("%s: no JSON", name);
            free(json);
            smx_hostcfg_destroy(hc);
        } else if (!err.msg[0]) {
            fz_fail("resolve(%s) failed without a message", name);
        }
    }
    smx_hostlist_free(hl);
}

static void fzg_run(const uint8_t *data, size_t size, const char *file,
                    int (*load)(smx_config *, const char *, smx_err *))
{
    /* Numbers of 6 digits and more make ranges of up to a million hosts per line: they test
     * malloc, not the parsers (fuzz_hostlist covers ranges), and let RSS drift towards
     * libFuzzer's limit. Such inputs are skipped. */
    for (size_t i = 0, run = 0; i < size; i++) {
        run = data[i] >= '0' && data[i] <= '9' ? run + 1 : 0;
        if (run >= 6)
            return;
    }
    char path[4096];
    smx_config *cfg = NULL;
    smx_err err = {{0}};
    fz_path(path, sizeof path, file);
    fz_write_file(path, data, size);
    if (smx_config_load(&cfg, "none", &err) != 0)
        abort();
    int rc = load(cfg, path, &err);
    if (rc < 0 && !err.msg[0])
        fz_fail("load failed (%d) without a message", rc);
    for (size_t i = 0; i < sizeof fzg_lists / sizeof *fzg_lists; i++)
        fzg_check_list(cfg, fzg_lists[i]);
    smx_config_free(cfg);
}

#endif
