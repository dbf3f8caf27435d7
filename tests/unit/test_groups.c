/* Node groups (core/config/groups*.c): ClusterShell YAML files, Ansible INI and YAML
 * inventories, genders files and queries, `@group` in host lists, inventory variables applied
 * when a host is resolved, and smx_engine_add_target on `@group`. The expected expansions were
 * checked with nodeset, ansible-inventory and nodeattr (tests/integration/test_groups.py runs
 * them as oracles). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "groups.h"
#include "hostlist.h"
#include "sshmux.h"

static char dir[] = "/tmp/sshmux-groups-XXXXXX";

static const char *write_file(const char *name, const char *text)
{
    static char path[8][512];
    static int next;
    char *p = path[next++ % 8];
    snprintf(p, 512, "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return p;
}

static smx_config *config(void)
{
    smx_config *cfg = NULL;
    smx_err err = {{0}};
    assert_int_equal(smx_config_load(&cfg, "none", &err), 0);
    return cfg;
}

/* The names of list expanded against cfg, comma-joined; NULL on error (message in err). */
static char *expand(const smx_config *cfg, const char *list, smx_err *err)
{
    smx_hostlist *hl = smx_hostlist_new(SMX_HOSTLIST_MAX);
    smx_hostlist_set_config(hl, cfg);
    char *out = NULL;
    if (smx_hostlist_add(hl, list, 0, err) >= 0) {
        size_t len = 1;
        for (size_t i = 0; i < smx_hostlist_count(hl); i++)
            len += strlen(smx_hostlist_name(hl, i)) + 1;
        out = calloc(1, len);
        for (size_t i = 0; i < smx_hostlist_count(hl); i++) {
            if (i)
                strcat(out, ",");
            strcat(out, smx_hostlist_name(hl, i));
        }
    }
    smx_hostlist_free(hl);
    return out;
}

static void expect(const smx_config *cfg, const char *list, const char *want)
{
    smx_err err = {{0}};
    char *got = expand(cfg, list, &err);
    if (!got)
        fail_msg("%s: %s", list, err.msg);
    assert_string_equal(got, want);
    free(got);
}

static void expect_error(const smx_config *cfg, const char *list, const char *needle)
{
    smx_err err = {{0}};
    char *got = expand(cfg, list, &err);
    if (got)
        fail_msg("%s expanded to %s", list, got);
    if (!strstr(err.msg, needle))
        fail_msg("%s: \"%s\" not in \"%s\"", list, needle, err.msg);
}

static void test_clustershell(void **state)
{
    smx_config *cfg = config();
    smx_err err = {{0}};
    const char *path = write_file("g.yaml",
        "site:\n"
        "  web: 'web[01-04]'\n"
        "  db: \"db[1-2]  db9\"\n"
        "  front: '@web!web02,@db&db1'\n"
        "  sym: '@web^web[04-05]'\n"
        "  list: ['a[1-2]', 'b']\n"
        "  empty:\n"
        "  a: '@b,x'\n  b: '@c'\n  c: '@a'\n"
        "  twice: '@web,@web,@db'\n"
        "lab:\n  x: 'x[1-2]'\n  ref: '@x,@site:db'\n  all: '@x,z'\n");
    assert_int_equal(smx_config_add_groups_file(cfg, path, &err), 0);
    expect(cfg, "@web", "web01,web02,web03,web04");
    expect(cfg, "@db", "db1,db2,db9");
    expect(cfg, "@front", "db1");
    expect(cfg, "@sym", "web01,web02,web03,web05");
    expect(cfg, "@list,n1", "a1,a2,b,n1");
    expect(cfg, "@twice", "web01,web02,web03,web04,db1,db2,db9");
    expect(cfg, "@lab:ref", "x1,x2,db1,db2,db9");
    expect(cfg, "@lab:*", "x1,x2,z");
    expect(cfg, "web01,@web", "web01,web02,web03,web04");
    expect(cfg, "@empty,h", "h");
    expect_error(cfg, "@a", "@a -> @b -> @c -> @a");
    expect_error(cfg, "@nope", "unknown group @nope");
    expect_error(cfg, "@x", "source \"lab\" has it");
    expect_error(cfg, "@zz:x", "unknown group source");
    /* Without a config attached, '@' is a plain name as before. */
    smx_strvec v = {0};
    assert_int_equal(smx_hostlist_expand("@web", &v, &err), 1);
    assert_string_equal(v.v[0], "@web");
    smx_strvec_free(&v);
    smx_config_free(cfg);
}

static void test_clustershell_bad_files(void **state)
{
    static const char *const bad[][2] = {
        { "- a\n- b\n", "not a ClusterShell group file" },
        { "s: [a]\n", "not a mapping" },
        { "s:\n  g: {a: b}\n", "expected a node set" },
        { "s:\n  g: [ [a] ]\n", "must be strings" },
        { "s:\n  'a b': x\n", "group names" },
        { "s:\n  g: x\n  g: y\n", "defined twice" },
        { "s: {g: 'a[1'}\n", "" },   /* loads; expanding it fails */
        { "s: [\n", "YAML" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        smx_config *cfg = config();
        smx_err err = {{0}};
        const char *path = write_file("bad.yaml", bad[i][0]);
        int rc = smx_config_add_groups_file(cfg, path, &err);
        if (!*bad[i][1]) {
            assert_int_equal(rc, 0);
            expect_error(cfg, "@g", "'[' without matching ']'");
        } else {
            assert_true(rc < 0);
            if (!strstr(err.msg, bad[i][1]) || !strstr(err.msg, path))
                fail_msg("%s: %s", bad[i][0], err.msg);
        }
        smx_config_free(cfg);
    }
    smx_config *cfg = config();
    smx_err err = {{0}};
    assert_int_equal(smx_config_add_groups_file(cfg, "/nonexistent/g.yaml", &err), SMX_ENOENT);
    smx_config_free(cfg);
}

static void test_inventory_ini(void **state)
{
    smx_config *cfg = config();
    smx_err err = {{0}};
    const char *path = write_file("inv",
        "loose ansible_host=10.0.0.9\n"
        "[web]\n"
        "web[01:03] ansible_user=deploy\n"
        "w-[a:c]:2222   # a comment\n"
        "s[0:10:5]\n"
        "[db]\n"
        "db1 ansible_port=2201 ansible_host='127.0.0.2'\n"
        "[prod:children]\nweb\ndb\n"
        "[prod:vars]\nansible_user = produser\nansible_port=22 # comment\n"
        "[all:vars]\nansible_ssh_user=everyone\n"
        "[q]\nq1 ansible_ssh_user=\"u\\$x\"\n");
    assert_int_equal(smx_config_add_inventory(cfg, path, &err), 0);
    expect(cfg, "@web", "web01,web02,web03,w-a,w-b,w-c,s0,s5,s10");
    expect(cfg, "@prod", "web01,web02,web03,w-a,w-b,w-c,s0,s5,s10,db1");
    expect(cfg, "@ungrouped", "loose");
    expect(cfg, "@ansible:db", "db1");
    smx_invhost h;
    assert_int_equal(smx_groups_inventory_host(NULL, "db1", &h), 0);
    smx_hostcfg *hc = NULL;
    assert_int_equal(smx_hostcfg_resolve(cfg, NULL, "db1", &hc, &err), 0);
    char *json = smx_hostcfg_json(hc, "db1");
    assert_non_null(strstr(json, "\"hostname\":\"127.0.0.2\""));
    assert_non_null(strstr(json, "\"port\":2201"));
    assert_non_null(strstr(json, "\"user\":\"everyone\""));   /* ansible_ssh_user wins */
    free(json);
    smx_hostcfg_destroy(hc);
    /* Inside double quotes a backslash escapes only '\\' and '"', as Python's shlex (and so
     * ansible-inventory) reads it: "u\$x" is u\$x (which is then no user name). */
    assert_int_not_equal(smx_hostcfg_resolve(cfg, NULL, "q1", &hc, &err), 0);
    if (!strstr(err.msg, "\"u\\$x\""))
        fail_msg("q1: %s", err.msg);
    /* The command line beats the inventory: -l, -p, and the target's own user@ and :port. */
    smx_overrides ov = { .user = "cli", .port = 2000 };
    assert_int_equal(smx_hostcfg_resolve(cfg, &ov, "w-b", &hc, &err), 0);
    json = smx_hostcfg_json(hc, "w-b");
    assert_non_null(strstr(json, "\"port\":2000"));
    assert_non_null(strstr(json, "\"user\":\"cli\""));
    free(json);
    smx_hostcfg_destroy(hc);
    assert_int_equal(smx_hostcfg_resolve(cfg, NULL, "w-b", &hc, &err), 0);
    json = smx_hostcfg_json(hc, "w-b");
    assert_non_null(strstr(json, "\"port\":2222"));
    free(json);
    smx_hostcfg_destroy(hc);
    smx_config_free(cfg);
}

static void test_inventory_ini_errors(void **state)
{
    static const char *const bad[][2] = {
        { "[p:children]\nnope\n", "undefined group: nope" },
        { "[v:vars]\nx=1\n", "not valid for undefined group" },
        { "[g]\nh[01:3]\n", "equal-length" },
        { "[g]\nh[1:]\n", "end value" },
        { "[g]\nh[1]\n", "begin:end" },
        { "[a:children]\nb\n[b:children]\na\n", "loop" },
        { "[g:weird]\n", "unknown type" },
        { "[g]\nh x\n", "key=value" },
        { "[g]\nh x='unclosed\n", "closing quotation" },
        { "[g]\nhost:\n", "ending in ':'" },
        { "#!/usr/bin/env python3\n", "inventory script" },
        { "[bad section]\n", "invalid section" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        smx_config *cfg = config();
        smx_err err = {{0}};
        const char *path = write_file("bad.ini", bad[i][0]);
        assert_true(smx_config_add_inventory(cfg, path, &err) < 0);
        if (!strstr(err.msg, bad[i][1]) || !strstr(err.msg, path))
            fail_msg("%s: %s", bad[i][0], err.msg);
        smx_config_free(cfg);
    }
}

static void test_inventory_yaml_and_merge(void **state)
{
    smx_config *cfg = config();
    smx_err err = {{0}};
    const char *y = write_file("inv.yml",
        "all:\n"
        "  vars: {ansible_user: alluser}\n"
        "  hosts:\n    solo: {ansible_port: 2022}\n"
        "  children:\n"
        "    app:\n"
        "      hosts:\n        app[1:2]:\n        app9: {ansible_host: 127.0.0.9}\n"
        "      children:\n        appdb:\n          hosts: adb\n"
        "          vars: {ansible_user: dbuser}\n"
        "    other:\n      hosts: lone\n");
    assert_int_equal(smx_config_add_inventory(cfg, y, &err), 0);
    expect(cfg, "@app", "app1,app2,app9,adb");
    expect(cfg, "@ungrouped", "solo");
    const char *ini = write_file("more.ini", "[app]\nlate\n[newg]\nsolo\n");
    assert_int_equal(smx_config_add_inventory(cfg, ini, &err), 0);
    expect(cfg, "@app", "app1,app2,app9,late,adb");
    expect(cfg, "@ungrouped", "");
    expect(cfg, "@all", "solo,app1,app2,app9,adb,lone,late");
    smx_hostcfg *hc = NULL;
    assert_int_equal(smx_hostcfg_resolve(cfg, NULL, "adb", &hc, &err), 0);
    char *json = smx_hostcfg_json(hc, "adb");
    assert_non_null(strstr(json, "\"user\":\"dbuser\""));
    free(json);
    smx_hostcfg_destroy(hc);
    /* A file that fails leaves nothing behind. */
    const char *bad = write_file("bad.yml", "all:\n  children:\n    x:\n      hosts:\n"
                                            "        h[1:]:\n");
    assert_true(smx_config_add_inventory(cfg, bad, &err) < 0);
    expect_error(cfg, "@x", "unknown group @x");
    const char *tmpl = write_file("tmpl.yml", "t:\n  hosts:\n    th: {ansible_host: '{{ x }}'}\n");
    assert_int_equal(smx_config_add_inventory(cfg, tmpl, &err), 0);
    assert_int_equal(smx_hostcfg_resolve(cfg, NULL, "th", &hc, &err), SMX_EINVAL);
    assert_non_null(strstr(err.msg, "templates are not evaluated"));
    smx_config_free(cfg);
}

static void test_genders(void **state)
{
    smx_config *cfg = config();
    smx_err err = {{0}};
    const char *path = write_file("genders",
        "# comment\n"
        "n[1-2],n5 compute,rack=r1\n"
        "n[3-4]    compute,rack=r2   # trailing\n"
        "n5        login,ipmi=%n-ipmi\n"
        "n6        login\n");
    assert_int_equal(smx_config_add_genders(cfg, path, &err), 0);
    expect(cfg, "@genders:compute", "n1,n2,n5,n3,n4");
    expect(cfg, "@genders:rack=r2", "n3,n4");
    expect(cfg, "@genders:ipmi=n5-ipmi", "n5");
    expect(cfg, "@genders:compute||login&&rack=r1", "n1,n2,n5");
    expect(cfg, "@genders:~compute", "n6");
    expect(cfg, "@genders:compute--(rack=r1||rack=r2)", "");
    expect(cfg, "@login", "n5,n6");   /* unqualified: genders is the last source looked in */
    expect_error(cfg, "@genders:a||(b", "missing ')'");
    expect_error(cfg, "@genders:nosuch", "unknown group");
    const char *dup = write_file("dup", "n1 a\nn1 a=2\n");
    smx_config *c2 = config();
    assert_int_equal(smx_config_add_genders(c2, dup, &err), SMX_EINVAL);
    assert_non_null(strstr(err.msg, "given twice"));
    smx_config_free(c2);
    smx_config_free(cfg);
}

static void test_budget(void **state)
{
    smx_config *cfg = config();
    smx_err err = {{0}};
    const char *path = write_file("big.yaml", "s:\n  big: 'n[1-600]'\n  b2: '@big,@big,m[1-600]'\n");
    assert_int_equal(smx_config_add_groups_file(cfg, path, &err), 0);
    smx_hostlist *hl = smx_hostlist_new(1000);
    smx_hostlist_set_config(hl, cfg);
    assert_int_equal(smx_hostlist_add(hl, "@big", 0, &err), 600);
    assert_true(smx_hostlist_add(hl, "@b2", 0, &err) < 0);
    assert_non_null(strstr(err.msg, "more than"));
    assert_int_equal(smx_hostlist_count(hl), 600);
    smx_hostlist_free(hl);
    smx_config_free(cfg);
}

static void on_done(void *ud, smx_result *r)
{
    smx_result_destroy(r);
}

/* The library's path: groups loaded into a config, the engine resolving "@db" itself. */
static void test_engine_add_target(void **state)
{
    smx_config *cfg = config();
    smx_err err = {{0}};
    const char *path = write_file("e.yaml", "s:\n  db: 'db[1-3]'\n");
    assert_int_equal(smx_config_add_groups_file(cfg, path, &err), 0);
    uv_loop_t loop;
    uv_loop_init(&loop);
    smx_engine_opts o;
    smx_engine_opts_default(&o);
    smx_engine *e = NULL;
    assert_int_equal(smx_engine_new(&e, &loop, &o), 0);
    smx_engine_set_config(e, cfg);
    smx_exec_opts x = { .command = "true" };
    smx_exec_callbacks cb = { .on_done = on_done };
    smx_target_job job = { .exec = &x, .exec_cb = &cb };
    assert_int_equal(smx_engine_add_target(e, "@db,other", &job, &err), 4);
    assert_int_equal(smx_engine_add_target(e, "@nope", &job, &err), SMX_ENOENT);
    assert_non_null(strstr(err.msg, "@nope"));
    smx_engine_free(e);
    uv_run(&loop, UV_RUN_NOWAIT);
    uv_loop_close(&loop);
    smx_config_free(cfg);
}

static int setup(void **state)
{
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clustershell),
        cmocka_unit_test(test_clustershell_bad_files),
        cmocka_unit_test(test_inventory_ini),
        cmocka_unit_test(test_inventory_ini_errors),
        cmocka_unit_test(test_inventory_yaml_and_merge),
        cmocka_unit_test(test_genders),
        cmocka_unit_test(test_budget),
        cmocka_unit_test(test_engine_add_target),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
