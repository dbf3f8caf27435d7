/* Unit tests for the literal Host block index (core/config/sshconfig_index.c).
 *
 * The index may only make resolving faster: every test resolves hosts twice, once with the
 * index that smx_config_load built and once after removing it from every file (the plain walk
 * of every block), and requires the same result, the same error and the same message. Fixed
 * cases cover what must not be skipped (wildcards, negations, Match, Include and unknown
 * keywords inside blocks, the final pass, duplicates); a seeded generator mixes them at
 * random. Each test runs in its own mkdtemp() directory with HOME pointing into it. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sshconfig_internal.h"

typedef struct fx {
    char dir[64];
    char home[PATH_MAX];
    char cfgpath[PATH_MAX];
    smx_config *cfg;
    char *saved_home;
} fx;

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb; (void)flag; (void)ftw;
    return remove(path);
}

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    const char *old = getenv("HOME");
    char ssh[PATH_MAX + 8];

    if (!f)
        return -1;
    strcpy(f->dir, "/tmp/smx-cfgindex-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->home, sizeof f->home, "%s/home", f->dir);
    snprintf(f->cfgpath, sizeof f->cfgpath, "%s/config", f->dir);
    snprintf(ssh, sizeof ssh, "%s/.ssh", f->home);
    if (mkdir(f->home, 0700) < 0 || mkdir(ssh, 0700) < 0)
        return -1;
    f->saved_home = old ? strdup(old) : NULL;
    setenv("HOME", f->home, 1);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;

    smx_config_free(f->cfg);
    nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    if (f->saved_home)
        setenv("HOME", f->saved_home, 1);
    else
        unsetenv("HOME");
    free(f->saved_home);
    free(f);
    return 0;
}

static void put(const fx *f, const char *rel, const char *text)
{
    char path[PATH_MAX * 2];
    FILE *fp;

    snprintf(path, sizeof path, "%s/%s", f->dir, rel);
    fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

/* Writes the -F file and loads it; returns smx_config_load's result. */
static int load(fx *f, const char *text)
{
    smx_err err = {0};

    put(f, "config", text);
    smx_config_free(f->cfg);
    f->cfg = NULL;
    return smx_config_load(&f->cfg, f->cfgpath, &err);
}

static size_t unindex_file(smx_cfgfile *file)
{
    size_t had = file->index != NULL;

    smx__cfgfile_unindex(file);
    for (size_t i = 0; i < file->n; i++)
        for (size_t k = 0; k < file->d[i].ninc; k++)
            had += unindex_file(file->d[i].inc[k]);
    return had;
}

/* Removes every file's index; returns how many files had one. */
static size_t unindex(smx_config *cfg)
{
    size_t had = 0;

    for (size_t i = 0; i < cfg->nfiles; i++)
        had += unindex_file(cfg->files[i]);
    return had;
}

/* What resolving host gives, as one string: the return code, the error message or the
 * hostcfg as JSON (every field ssh -G would print). */
static char *outcome(const smx_config *cfg, const char *host)
{
    smx_hostcfg hc;
    smx_err err = {0};
    int rc = smx_config_resolve(cfg, host, NULL, &hc, &err);
    char *s = NULL;

    if (rc == 0) {
        json_t *j = smx_hostcfg_to_json(&hc);
        char *dump = json_dumps(j, JSON_SORT_KEYS);

        assert_true(asprintf(&s, "ok %s", dump) > 0);
        free(dump);
        json_decref(j);
        smx_hostcfg_free(&hc);
    } else {
        assert_true(asprintf(&s, "rc %d %s", rc, err.msg) > 0);
    }
    return s;
}

/* Resolves every host with the index, then without it; they must agree. Returns how many
 * files were indexed. */
static size_t same_with_and_without(fx *f, const char *const *hosts, size_t nhosts)
{
    char **with = calloc(nhosts, sizeof *with);
    size_t had;

    assert_non_null(with);
    for (size_t i = 0; i < nhosts; i++)
        with[i] = outcome(f->cfg, hosts[i]);
    had = unindex(f->cfg);
    for (size_t i = 0; i < nhosts; i++) {
        char *without = outcome(f->cfg, hosts[i]);

        if (strcmp(with[i], without) != 0)
            fail_msg("host %s: indexed \"%s\" but walked \"%s\"", hosts[i], with[i], without);
        free(without);
        free(with[i]);
    }
    free(with);
    return had;
}

/* A field of host's resolution, through the index. */
static char *user_of(const fx *f, const char *host)
{
    smx_hostcfg hc;
    smx_err err = {0};
    char *user;

    assert_int_equal(smx_config_resolve(f->cfg, host, NULL, &hc, &err), 0);
    user = strdup(hc.user);
    smx_hostcfg_free(&hc);
    return user;
}

static void assert_user(const fx *f, const char *host, const char *want)
{
    char *got = user_of(f, host);

    assert_string_equal(got, want);
    free(got);
}

/* ---- fixed cases ---------------------------------------------------------------------- */

static void test_runs_and_lookup(void **state)
{
    fx *f = *state;
    const smx__litblock *b;
    const smx__cfgindex *ix;

    assert_int_equal(load(f, "User g\n"                 /* 0: global section, not a block */
                             "Host a b\n  Port 1\n"      /* 1-2: run 1 */
                             "Host c a\n  Port 2\n"      /* 3-4 */
                             "Host c*\n  Port 3\n"       /* 5-6: wildcard, ends the run */
                             "Host a\n  Port 4\n"        /* 7-8: run 2 */
                             "Host a a\n  Port 5\n"), 0); /* 9-10: one entry for "a" */
    ix = f->cfg->files[0]->index;
    assert_non_null(ix);
    assert_int_equal(ix->run_end[0], 0);
    assert_int_equal(ix->run_end[1], 5);
    assert_int_equal(ix->run_end[3], 0);        /* inside run 1, not its start */
    assert_int_equal(ix->run_end[5], 0);
    assert_int_equal(ix->run_end[7], 11);
    assert_int_equal(smx__cfgindex_find(ix, "a", 1, 5, &b), 2);
    assert_int_equal(b[0].start, 1);
    assert_int_equal(b[0].end, 3);
    assert_int_equal(b[1].start, 3);
    assert_int_equal(b[1].end, 5);
    assert_int_equal(smx__cfgindex_find(ix, "a", 7, 11, &b), 2);
    assert_int_equal(b[0].start, 7);
    assert_int_equal(b[1].start, 9);
    assert_int_equal(smx__cfgindex_find(ix, "b", 7, 11, &b), 0);
    assert_int_equal(smx__cfgindex_find(ix, "zz", 1, 11, &b), 0);
    assert_int_equal(smx__cfgindex_find(ix, "A", 1, 11, &b), 0);  /* Host is case-sensitive */
    same_with_and_without(f, (const char *const[]){"a", "b", "c", "cx", "A", "d"}, 6);
}

/* A file without literal blocks has no index; one with only such blocks is all one run. */
static void test_when_indexed(void **state)
{
    fx *f = *state;

    assert_int_equal(load(f, "Host *\n  User x\nMatch all\n  Port 2\n"), 0);
    assert_null(f->cfg->files[0]->index);
    assert_int_equal(load(f, "Host !a\n  User x\nHost a?\n  Port 2\n"), 0);
    assert_null(f->cfg->files[0]->index);
    assert_int_equal(load(f, "Host a\n  User x\nHost b\n  User y\n"), 0);
    assert_non_null(f->cfg->files[0]->index);
    assert_int_equal(f->cfg->files[0]->index->run_end[0], 4);
}

/* The block state after a run decides whether the lines that follow it apply. */
static void test_state_after_run(void **state)
{
    fx *f = *state;

    assert_int_equal(load(f, "Host a\n  User ua\nHost b\n  User ub\n"
                             "Include /nonexistent/none-*.conf\n  User after\n"
                             "Host *\n  User star\n"), 0);
    assert_user(f, "a", "ua");
    assert_user(f, "b", "ub");
    assert_user(f, "c", "star");
    same_with_and_without(f, (const char *const[]){"a", "b", "c"}, 3);
}

/* Blocks that act even when they do not match are walked: an unknown keyword fails the
 * resolution of every host (unless IgnoreUnknown set earlier covers it), and an Include's
 * files are read for their own errors. */
static void test_unknown_and_include_not_skipped(void **state)
{
    fx *f = *state;
    smx_hostcfg hc;
    smx_err err = {0};

    assert_int_equal(load(f, "Host a\n  User ua\nHost b\n  Frobnicate yes\nHost c\n  User uc\n"), 0);
    assert_int_equal(smx_config_resolve(f->cfg, "a", NULL, &hc, &err), SMX_EINVAL);
    assert_non_null(strstr(err.msg, "Frobnicate"));
    same_with_and_without(f, (const char *const[]){"a", "b", "c"}, 3);

    assert_int_equal(load(f, "Host a\n  IgnoreUnknown Frob*\nHost b\n  Frobnicate yes\n"
                             "Host c\n  User uc\n"), 0);
    same_with_and_without(f, (const char *const[]){"a", "b", "c"}, 3);

    put(f, "inc.conf", "Host *\n  Bogus 1\n");
    char text[PATH_MAX + 128];
    snprintf(text, sizeof text, "Host a\n  User ua\nHost b\n  Include %s/inc.conf\n"
                                "Host c\n  User uc\n", f->dir);
    assert_int_equal(load(f, text), 0);
    same_with_and_without(f, (const char *const[]){"a", "b", "c"}, 3);
}

/* The final pass matches Host lines against the resolved, lowercased hostname. */
static void test_final_pass_and_canonical(void **state)
{
    fx *f = *state;

    assert_int_equal(load(f, "Host short\n  HostName Long.Example\n"
                             "Host long.example\n  User by-final\n"
                             "Host other\n  User o\n"
                             "Match final\n  Port 7\n"), 0);
    assert_user(f, "short", "by-final");
    same_with_and_without(f, (const char *const[]){"short", "long.example", "other", "x"}, 4);

    assert_int_equal(load(f, "CanonicalizeHostname yes\nHost n1\n  HostName real1\n"
                             "Host real1\n  User r1\nHost n2\n  User n2\n"), 0);
    assert_user(f, "n1", "r1");
    same_with_and_without(f, (const char *const[]){"n1", "n2", "real1", "x"}, 4);
}

/* Included files get their own index; a non-matching includer makes their blocks inert. */
static void test_included_file_indexed(void **state)
{
    fx *f = *state;
    char text[PATH_MAX + 128];

    put(f, "hosts.conf", "Host h1\n  User u1\nHost h2\n  User u2\nHost *\n  Port 9\n");
    snprintf(text, sizeof text, "Include %s/hosts.conf\nHost gate\n  Include %s/hosts.conf\n",
             f->dir, f->dir);
    assert_int_equal(load(f, text), 0);
    assert_user(f, "h1", "u1");
    assert_int_equal(same_with_and_without(
                         f, (const char *const[]){"h1", "h2", "gate", "h3"}, 4), 2);
}

/* ---- generated configurations ---------------------------------------------------------- */

static uint32_t rnd(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

static const char *const names[] = {"h0", "h1", "h2", "h3", "H1", "h1.x", "gw"};
#define NNAMES (sizeof names / sizeof names[0])

static const char *pick(uint32_t *s, const char *const *v, size_t n)
{
    return v[rnd(s) % n];
}

/* A template with '#' replaced by a digit and '@' by the temp dir. */
static void fill(char *buf, size_t len, const char *tmpl, unsigned a, const char *dir)
{
    size_t o = 0;

    for (const char *p = tmpl; *p && o + 1 < len; p++) {
        if (*p == '#')
            buf[o++] = (char)('0' + (a++ % 4));
        else if (*p == '@')
            o += (size_t)snprintf(buf + o, len - o, "%s", dir);
        else
            buf[o++] = *p;
    }
    buf[o < len ? o : len - 1] = '\0';
}

/* One random line: mostly literal Host blocks and options, some of everything else. */
static void random_line(uint32_t *s, const fx *f, char *buf, size_t len)
{
    static const char *const opts[] = {
        "User u#", "Port 1#", "HostName h#", "HostName H#.x", "IdentityFile ~/k#",
        "ProxyJump gw#", "HostKeyAlias a#", "ConnectTimeout #", "Hostname %h.x",
    };
    static const char *const rare[] = {
        "Host *", "Host h*", "Host !h1 h?", "Host h1 !h2", "Match host h1", "Match final",
        "Match originalhost h2", "Match all", "Frobnicate #", "IgnoreUnknown Frob*",
        "CanonicalizeHostname yes", "Include @/inc0.conf", "Include @/inc1.conf", "Host h# h#",
        "Host h1 !h1", "Host h1 h2 !h#",
    };
    unsigned r = rnd(s) % 100, a = rnd(s) % 4;

    if (r < 35)
        fill(buf, len, "Host ", 0, f->dir), strcat(buf, pick(s, names, NNAMES));
    else if (r < 85)
        fill(buf, len, pick(s, opts, sizeof opts / sizeof opts[0]), a, f->dir);
    else
        fill(buf, len, pick(s, rare, sizeof rare / sizeof rare[0]), a, f->dir);
}

static void random_file(uint32_t *s, const fx *f, const char *rel, int lines)
{
    char *text = calloc(1, (size_t)lines * (PATH_MAX + 64));
    char line[PATH_MAX + 48];

    assert_non_null(text);
    for (int i = 0; i < lines; i++) {
        random_line(s, f, line, sizeof line);
        strcat(text, line);
        strcat(text, "\n");
    }
    put(f, rel, text);
    free(text);
}

static void test_random_configs(void **state)
{
    fx *f = *state;
    uint32_t seed = 0x5eed1417;
    int indexed = 0;

    for (int round = 0; round < 400; round++) {
        smx_err err = {0};

        random_file(&seed, f, "inc0.conf", 6);
        random_file(&seed, f, "inc1.conf", 6);
        random_file(&seed, f, "config", 4 + (int)(rnd(&seed) % 30));
        smx_config_free(f->cfg);
        f->cfg = NULL;
        if (smx_config_load(&f->cfg, f->cfgpath, &err) != 0)
            continue;   /* e.g. an Include loop of inc0/inc1 over the depth limit */
        indexed += f->cfg->files[0]->index != NULL;
        same_with_and_without(f, names, NNAMES);
    }
    /* The generator must exercise the index, or this test proves nothing. */
    assert_true(indexed > 200);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_runs_and_lookup), T(test_when_indexed), T(test_state_after_run),
        T(test_unknown_and_include_not_skipped), T(test_final_pass_and_canonical),
        T(test_included_file_indexed), T(test_random_configs),
    };
#undef T

    return cmocka_run_group_tests(tests, NULL, NULL);
}
