/* Unit tests for core/config/hostlist.c: expansion, folding, exclusion. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "hostlist.h"

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

/* ---- helpers ---- */

static void check_expand(const char *list, const char *const *want, size_t nwant)
{
    smx_strvec out = { 0 };
    smx_err err = { "" };
    int rc = smx_hostlist_expand(list, &out, &err);
    if (rc < 0)
        fail_msg("expand(\"%s\") failed: %d %s", list, rc, err.msg);
    assert_int_equal(rc, (int)nwant);
    assert_int_equal(out.n, nwant);
    for (size_t i = 0; i < nwant; i++) {
        if (strcmp(out.v[i], want[i]) != 0)
            fail_msg("expand(\"%s\")[%zu] = \"%s\", want \"%s\"", list, i, out.v[i], want[i]);
    }
    smx_strvec_free(&out);
}

#define EXPAND(list, ...)                                                                   \
    do {                                                                                    \
        static const char *const want_[] = { __VA_ARGS__ };                                 \
        check_expand(list, want_, N_OF(want_));                                             \
    } while (0)

/* Checks the code, that the message contains `needle`, and that `out` is left untouched. */
static void check_expand_fails(const char *list, int code, const char *needle)
{
    smx_strvec out = { 0 };
    smx_err err = { "" };
    assert_int_equal(smx_strvec_push(&out, "keep"), 0);
    int rc = smx_hostlist_expand(list, &out, &err);
    if (rc != code)
        fail_msg("expand(\"%s\") = %d (%s), want %d", list, rc, err.msg, code);
    if (!strstr(err.msg, needle))
        fail_msg("expand(\"%s\") message \"%s\" lacks \"%s\"", list, err.msg, needle);
    assert_int_equal(out.n, 1);
    assert_string_equal(out.v[0], "keep");
    smx_strvec_free(&out);
}

static void check_fold(const char *const *names, size_t n, const char *want)
{
    char *got = NULL;
    smx_err err = { "" };
    int rc = smx_hostlist_fold((char *const *)names, n, &got, &err);
    if (rc != 0)
        fail_msg("fold failed: %d %s", rc, err.msg);
    assert_non_null(got);
    if (strcmp(got, want) != 0)
        fail_msg("fold = \"%s\", want \"%s\"", got, want);
    free(got);
}

#define FOLD(want, ...)                                                                     \
    do {                                                                                    \
        static const char *const names_[] = { __VA_ARGS__ };                                \
        check_fold(names_, N_OF(names_), want);                                             \
    } while (0)

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorts both vectors and asserts they hold the same strings. */
static void assert_same_set(smx_strvec *a, smx_strvec *b, const char *what)
{
    if (a->n != b->n)
        fail_msg("%s: %zu names vs %zu", what, a->n, b->n);
    if (a->n == 0)
        return;
    qsort(a->v, a->n, sizeof *a->v, cmp_str);
    qsort(b->v, b->n, sizeof *b->v, cmp_str);
    for (size_t i = 0; i < a->n; i++) {
        if (strcmp(a->v[i], b->v[i]) != 0)
            fail_msg("%s: \"%s\" vs \"%s\"", what, a->v[i], b->v[i]);
    }
}

/* expand(fold(names)) must give back the same set, and folding is idempotent. */
static void check_roundtrip_vec(smx_strvec *names)
{
    char *folded = NULL, *refolded = NULL;
    smx_strvec back = { 0 };
    smx_err err = { "" };
    assert_int_equal(smx_hostlist_fold(names->v, names->n, &folded, &err), 0);
    int rc = smx_hostlist_expand(folded, &back, &err);
    if (rc < 0)
        fail_msg("expand(fold) of \"%s\" failed: %s", folded, err.msg);
    assert_int_equal(smx_hostlist_fold(back.v, back.n, &refolded, &err), 0);
    assert_string_equal(refolded, folded);
    assert_same_set(names, &back, folded);
    free(folded);
    free(refolded);
    smx_strvec_free(&back);
}

static void check_roundtrip(const char *list)
{
    smx_strvec names = { 0 };
    smx_err err = { "" };
    if (smx_hostlist_expand(list, &names, &err) < 0)
        fail_msg("expand(\"%s\"): %s", list, err.msg);
    check_roundtrip_vec(&names);
    smx_strvec_free(&names);
}

/* ---- expand ---- */

static void test_expand_plain(void **state)
{
    (void)state;
    EXPAND("web1", "web1");
    EXPAND("a,b,c", "a", "b", "c");
    EXPAND("db-1.example.com", "db-1.example.com");
}

static void test_expand_empty_items_and_spaces(void **state)
{
    (void)state;
    EXPAND("a,,b,", "a", "b");
    EXPAND(",a", "a");
    EXPAND(" a ,\tb\n, c", "a", "b", "c");
    EXPAND(" web[1-2] ", "web1", "web2");

    smx_strvec out = { 0 };
    smx_err err = { "" };
    assert_int_equal(smx_hostlist_expand("", &out, &err), 0);
    assert_int_equal(smx_hostlist_expand(" , ,, ", &out, &err), 0);
    assert_int_equal(out.n, 0);
    smx_strvec_free(&out);
}

static void test_expand_padding(void **state)
{
    (void)state;
    EXPAND("web[01-03]", "web01", "web02", "web03");
    EXPAND("n[1-10]", "n1", "n2", "n3", "n4", "n5", "n6", "n7", "n8", "n9", "n10");
    EXPAND("x[08-11]", "x08", "x09", "x10", "x11");
    EXPAND("y[001-002]", "y001", "y002");
    EXPAND("z[0-2]", "z0", "z1", "z2");
    EXPAND("w[9-11]", "w9", "w10", "w11");
    EXPAND("p[098-101]", "p098", "p099", "p100", "p101");
    /* Padding is per element. */
    EXPAND("q[01,3,005]", "q01", "q3", "q005");
    EXPAND("web[01-20]", "web01", "web02", "web03", "web04", "web05", "web06", "web07", "web08",
           "web09", "web10", "web11", "web12", "web13", "web14", "web15", "web16", "web17",
           "web18", "web19", "web20");
}

static void test_expand_step(void **state)
{
    (void)state;
    EXPAND("n[1-10/2]", "n1", "n3", "n5", "n7", "n9");
    EXPAND("n[0-10/5]", "n0", "n5", "n10");
    EXPAND("n[01-10/3]", "n01", "n04", "n07", "n10");
    EXPAND("n[1-3/10]", "n1");
    EXPAND("n[1-2/1]", "n1", "n2");
}

static void test_expand_element_list(void **state)
{
    (void)state;
    EXPAND("a[1,3,5-7]b", "a1b", "a3b", "a5b", "a6b", "a7b");
    EXPAND("[1-3]", "1", "2", "3");
    EXPAND("a[5]", "a5");
    /* Order is as written, not sorted. */
    EXPAND("a[3,1-2]", "a3", "a1", "a2");
}

static void test_expand_cartesian(void **state)
{
    (void)state;
    EXPAND("r[1-2]n[1-3]", "r1n1", "r1n2", "r1n3", "r2n1", "r2n2", "r2n3");
    EXPAND("x[1-2]y[1,3]z[0-1]", "x1y1z0", "x1y1z1", "x1y3z0", "x1y3z1", "x2y1z0", "x2y1z1",
           "x2y3z0", "x2y3z1");
    EXPAND("r[1,3]n[01-02],solo", "r1n01", "r1n02", "r3n01", "r3n02", "solo");
    EXPAND("[1-2][1-2]", "11", "12", "21", "22");
}

static void test_expand_dedupe(void **state)
{
    (void)state;
    EXPAND("a,b,a,c[1-2],c1", "a", "b", "c1", "c2");
    EXPAND("n[1-3],n[2-4]", "n1", "n2", "n3", "n4");
    EXPAND("n[1,1,1]", "n1");
    /* Equal numbers, different text: distinct names. */
    EXPAND("web[1-2],web[01-02]", "web1", "web2", "web01", "web02");

    /* Names already in `out` count as seen; the return value counts only new names. */
    smx_strvec out = { 0 };
    smx_err err = { "" };
    assert_int_equal(smx_strvec_push(&out, "b"), 0);
    assert_int_equal(smx_hostlist_expand("a,b,c", &out, &err), 2);
    assert_int_equal(out.n, 3);
    assert_string_equal(out.v[0], "b");
    assert_string_equal(out.v[1], "a");
    assert_string_equal(out.v[2], "c");
    smx_strvec_free(&out);
}

static void test_expand_targets(void **state)
{
    (void)state;
    EXPAND("root@web[01-03]:2222", "root@web01:2222", "root@web02:2222", "root@web03:2222");
    EXPAND("root@web[1-2]:22", "root@web1:22", "root@web2:22");
    EXPAND("ssh://user:pw@host[1-2]:22", "ssh://user:pw@host1:22", "ssh://user:pw@host2:22");
    EXPAND("host:[2201-2203]", "host:2201", "host:2202", "host:2203");
}

static void test_expand_ipv6_passthrough(void **state)
{
    (void)state;
    EXPAND("[::1]:22", "[::1]:22");
    EXPAND("[::1]", "[::1]");
    EXPAND("user@[fe80::1]:2200", "user@[fe80::1]:2200");
    EXPAND("[::1]:22,[::2]:2[0-1]", "[::1]:22", "[::2]:20", "[::2]:21");
    EXPAND("ssh://u@[2001:db8::1]:[22-23]", "ssh://u@[2001:db8::1]:22", "ssh://u@[2001:db8::1]:23");
    EXPAND("[10.0.0.1]:22,[fe80::1%eth0]", "[10.0.0.1]:22", "[fe80::1%eth0]");
    EXPAND("h[1-2],[::1]", "h1", "h2", "[::1]");
    /* Not range syntax, so verbatim (target parsing rejects it later). */
    EXPAND("web[a-c]", "web[a-c]");
}

static void test_expand_error_messages(void **state)
{
    (void)state;
    smx_strvec out = { 0 };
    smx_err err = { "" };
    assert_int_equal(smx_hostlist_expand("a,web[3-1]", &out, &err), SMX_EINVAL);
    assert_string_equal(err.msg, "hostlist \"web[3-1]\": range start 3 is greater than end 1");
    assert_int_equal(smx_hostlist_expand("x[1-1000001]", &out, &err), SMX_ERANGE);
    assert_string_equal(err.msg, "hostlist \"x[1-1000001]\": expands to more than 1000000 hosts "
                        "(the limit for all host lists together)");
    assert_int_equal(out.n, 0);
    smx_strvec_free(&out);
}

static void test_expand_bracket_errors(void **state)
{
    (void)state;
    check_expand_fails("web[1-3", SMX_EINVAL, "\"web[1-3\": '[' without matching ']'");
    check_expand_fails("a,web[1-3,db1", SMX_EINVAL, "\"web[1-3,db1\": '[' without");
    check_expand_fails("[::1", SMX_EINVAL, "\"[::1\": '[' without matching ']'");
    check_expand_fails("web1]", SMX_EINVAL, "\"web1]\": ']' without matching '['");
    check_expand_fails("a,b],c", SMX_EINVAL, "\"b]\": ']' without");
    check_expand_fails("a[1[2]]", SMX_EINVAL, "\"a[1[2]]\": nested brackets are not supported");
}

static void test_expand_range_errors(void **state)
{
    (void)state;
    check_expand_fails("a,b,web[3-1]", SMX_EINVAL, "\"web[3-1]\": range start 3 is greater than end 1");
    check_expand_fails("web[]", SMX_EINVAL, "\"web[]\": empty range");
    check_expand_fails("web[1,,2]", SMX_EINVAL, "\"web[1,,2]\": empty range");
    check_expand_fails("web[1,]", SMX_EINVAL, "\"web[1,]\": empty range");
    check_expand_fails("web[-3]", SMX_EINVAL, "\"web[-3]\": missing start bound in range \"-3\"");
    check_expand_fails("web[1-]", SMX_EINVAL, "\"web[1-]\": missing end bound in range \"1-\"");
    check_expand_fails("web[1-2-3]", SMX_EINVAL,
                       "\"web[1-2-3]\": end bound \"2-3\" in range \"1-2-3\" is not a number");
    check_expand_fails("web[1/2-3]", SMX_EINVAL, "\"web[1/2-3]\": range \"1/2-3\" has a step but no end");
    check_expand_fails("web[1-10/0]", SMX_EINVAL, "\"web[1-10/0]\": step 0 in range \"1-10/0\"");
    check_expand_fails("web[1-10/]", SMX_EINVAL, "\"web[1-10/]\": missing step in range");
    check_expand_fails("web[1-10/2/3]", SMX_EINVAL, "step \"2/3\" in range \"1-10/2/3\" is not a number");
    check_expand_fails("web[5/2]", SMX_EINVAL, "\"web[5/2]\": range \"5/2\" has a step but no end");
    check_expand_fails("ok,web[02-1]", SMX_EINVAL, "\"web[02-1]\": range start 02 is greater than end 1");
}

static void test_expand_range_limits(void **state)
{
    (void)state;
    check_expand_fails("web[1-9999999999999999999]", SMX_ERANGE,
                       "\"web[1-9999999999999999999]\": end bound 9999999999999999999");
    check_expand_fails("x[1-1000001]", SMX_ERANGE, "\"x[1-1000001]\": expands to more than 1000000");
    check_expand_fails("x[0-999999999999999999]", SMX_ERANGE, "expands to more than 1000000 hosts");
    check_expand_fails("x[1-999999999999999999,1-999999999999999999]", SMX_ERANGE,
                       "expands to more than");
    check_expand_fails("x[1-1000]y[1-1001]", SMX_ERANGE, "\"x[1-1000]y[1-1001]\": expands to more");
    check_expand_fails("x[1-100]y[1-100]z[1-100]w[1-100]", SMX_ERANGE, "expands to more");
    /* The cap is per call: the item that crosses it is named. */
    check_expand_fails("x[1-600000],y[1-600000]", SMX_ERANGE, "\"y[1-600000]\": expands to more");
}

static void test_expand_at_limit(void **state)
{
    (void)state;
    smx_strvec out = { 0 };
    smx_err err = { "" };
    /* Without the '-', x1+11 and x11+1 would collide and be deduplicated. */
    assert_int_equal(smx_hostlist_expand("x[1-1000]-[1-1000]", &out, &err), 1000000);
    assert_string_equal(out.v[0], "x1-1");
    assert_string_equal(out.v[1], "x1-2");
    assert_string_equal(out.v[999999], "x1000-1000");
    /* The cap counts names generated, duplicates included. */
    smx_strvec_free(&out);
    assert_int_equal(smx_hostlist_expand("x[1-1000][1-1000]", &out, &err), 911062);
    smx_strvec_free(&out);
}

static void test_expand_rollback_and_null(void **state)
{
    (void)state;
    /* Names from the good items before the bad one must not stay behind. */
    check_expand_fails("a,b[1-5],c[3-1]", SMX_EINVAL, "\"c[3-1]\"");

    smx_strvec out = { 0 };
    smx_err err = { "" };
    assert_int_equal(smx_hostlist_expand(NULL, &out, &err), SMX_EINVAL);
    assert_int_equal(smx_hostlist_expand("a", NULL, &err), SMX_EINVAL);
    assert_int_equal(smx_hostlist_expand("a[", &out, NULL), SMX_EINVAL);
    assert_int_equal(out.n, 0);
}

static void test_expand_password_redacted(void **state)
{
    (void)state;
    smx_strvec out = { 0 };
    smx_err err = { "" };
    assert_int_equal(smx_hostlist_expand("ssh://u:hunter2@h[2-1]", &out, &err), SMX_EINVAL);
    assert_null(strstr(err.msg, "hunter2"));
    assert_non_null(strstr(err.msg, "\"ssh://u:***@h[2-1]\""));
}

/* ---- fold ---- */

static void test_fold_basic(void **state)
{
    (void)state;
    FOLD("db1,web[01-03,05]", "web01", "web02", "web03", "web05", "db1");
    FOLD("web[1-3]", "web3", "web1", "web2");
    FOLD("n[1-3,7,9-10]", "n1", "n2", "n3", "n7", "n9", "n10");
    FOLD("a[1-2],b1", "b1", "a2", "a1");
    /* Duplicates collapse, also inside a range. */
    FOLD("web[1-3]", "web2", "web1", "web3", "web1", "web2");
    FOLD("db1", "db1", "db1");
}

static void test_fold_single_and_verbatim(void **state)
{
    (void)state;
    FOLD("db1", "db1");
    FOLD("alpha,beta", "beta", "alpha", "alpha");
    FOLD("web,web[1-2]", "web2", "web", "web1");
    FOLD("a", "", "a", "");
    check_fold(NULL, 0, "");
}

static void test_fold_padding_classes(void **state)
{
    (void)state;
    /* web01 and web1 differ as text, so they must never share a range. */
    FOLD("web[1-2],web[01-02]", "web01", "web1", "web2", "web02");
    /* 10 and 11 print the same at width 2, so they join the padded group. */
    FOLD("web[09-11]", "web09", "web10", "web11");
    FOLD("n[1-2,10]", "n1", "n10", "n2");
    FOLD("n5,n[001,010,100]", "n100", "n001", "n5", "n010");
    FOLD("n[0-1]", "n0", "n1");
    FOLD("n[00-01]", "n00", "n01");
}

static void test_fold_prefix_suffix(void **state)
{
    (void)state;
    FOLD("r1n[1-2],r2n[1-2]", "r1n1", "r1n2", "r2n1", "r2n2");
    FOLD("node[1-2].example.com", "node2.example.com", "node1.example.com");
    FOLD("root@h1:22,root@h2:22", "root@h1:22", "root@h2:22");
    FOLD("h1:[2201-2202]", "h1:2202", "h1:2201");
    FOLD("a[1-2]x,a[1-2]y", "a1y", "a1x", "a2x", "a2y");
}

static void test_fold_ipv6(void **state)
{
    (void)state;
    FOLD("[::1]:[22-23]", "[::1]:23", "[::1]:22");
    /* Digits inside brackets stay put: "[::[1-2]]" would be nested brackets. */
    FOLD("[::1],[::2]", "[::2]", "[::1]");
    FOLD("user@[fe80::1]:2200", "user@[fe80::1]:2200");
}

static void test_fold_long_numbers(void **state)
{
    (void)state;
    /* More digits than fit in a range bound: kept verbatim. */
    FOLD("a1234567890123456789012345,a1234567890123456789012346", "a1234567890123456789012346",
         "a1234567890123456789012345");
    FOLD("a[999999999999999998-999999999999999999]", "a999999999999999999", "a999999999999999998");
}

static void test_fold_errors(void **state)
{
    (void)state;
    char *out = NULL;
    smx_err err = { "" };
    const char *with_null[] = { "a", NULL };
    assert_int_equal(smx_hostlist_fold(NULL, 1, &out, &err), SMX_EINVAL);
    assert_int_equal(smx_hostlist_fold((char *const *)with_null, 2, &out, &err), SMX_EINVAL);
    assert_non_null(strstr(err.msg, "name 1 is NULL"));
    assert_null(out);
    assert_int_equal(smx_hostlist_fold((char *const *)with_null, 1, NULL, &err), SMX_EINVAL);
}

static void test_fold_roundtrip(void **state)
{
    (void)state;
    check_roundtrip("web[01-03,05],db1");
    check_roundtrip("web[01-12],web[1-12],db,db[1-3],n[08-11],n[0-5],big[999-1001]");
    check_roundtrip("x[1-3]y[1-2],z[001-003,010,100],z[5-7],z[0010-0012]");
    check_roundtrip("[::1]:22,[::1]:2[3-4],[::2],root@h[1-3]:22,ssh://u:p@h[1-2]:22");
    check_roundtrip("n[1-100/7],n[0-9],m[00-99/3],host-[1-5]-x,a.b[1-2].c");
    check_roundtrip("web[a-c],q[1,a],x y[1-2]");
}

/* Random names over an alphabet rich in digits, to hit padding and adjacency corner cases. */
static void test_fold_roundtrip_random(void **state)
{
    (void)state;
    static const char alphabet[] = "0000111223456789ab-.:@";
    uint32_t seed = 12345;
    for (int round = 0; round < 300; round++) {
        smx_strvec names = { 0 };
        size_t count = 1 + round % 40;
        for (size_t i = 0; i < count; i++) {
            char name[12];
            seed = seed * 1103515245u + 12345u;
            size_t len = 1 + (seed >> 16) % 6;
            for (size_t k = 0; k < len; k++) {
                seed = seed * 1103515245u + 12345u;
                name[k] = alphabet[(seed >> 16) % (sizeof alphabet - 1)];
            }
            name[len] = '\0';
            if (!smx_strvec_contains(&names, name))
                assert_int_equal(smx_strvec_push(&names, name), 0);
        }
        check_roundtrip_vec(&names);
        smx_strvec_free(&names);
    }
}

/* ---- exclude ---- */

static void test_exclude(void **state)
{
    (void)state;
    smx_strvec hosts = { 0 }, ex = { 0 };
    smx_err err = { "" };
    assert_int_equal(smx_hostlist_expand("a,b,c,d,e", &hosts, &err), 5);
    assert_int_equal(smx_hostlist_expand("b,d,zzz", &ex, &err), 3);
    smx_hostlist_exclude(&hosts, &ex);
    assert_int_equal(hosts.n, 3);
    assert_string_equal(hosts.v[0], "a");
    assert_string_equal(hosts.v[1], "c");
    assert_string_equal(hosts.v[2], "e");

    smx_strvec none = { 0 };
    smx_hostlist_exclude(&hosts, &none);
    assert_int_equal(hosts.n, 3);
    smx_hostlist_exclude(&hosts, NULL);
    smx_hostlist_exclude(NULL, &ex);

    assert_int_equal(smx_hostlist_expand("a,c,e", &ex, &err), 3);
    smx_hostlist_exclude(&hosts, &ex);
    assert_int_equal(hosts.n, 0);
    smx_strvec_free(&hosts);
    smx_strvec_free(&ex);
}

static void test_exclude_large(void **state)
{
    (void)state;
    smx_strvec hosts = { 0 }, ex = { 0 };
    smx_err err = { "" };
    assert_int_equal(smx_hostlist_expand("n[1-200000]", &hosts, &err), 200000);
    assert_int_equal(smx_hostlist_expand("n[2-200000/2]", &ex, &err), 100000);
    smx_hostlist_exclude(&hosts, &ex);
    assert_int_equal(hosts.n, 100000);
    assert_string_equal(hosts.v[0], "n1");
    assert_string_equal(hosts.v[1], "n3");
    assert_string_equal(hosts.v[99999], "n199999");
    smx_strvec_free(&hosts);
    smx_strvec_free(&ex);
}

/* ---- smx_hostlist: a run's targets ---- */

static void test_list_tags_and_dedupe(void **state)
{
    (void)state;
    smx_err err = { "" };
    smx_hostlist *hl = smx_hostlist_new(SMX_HOSTLIST_MAX);
    assert_non_null(hl);
    assert_int_equal(smx_hostlist_add(hl, "a[1-3]", 7, &err), 3);
    assert_int_equal(smx_hostlist_add(hl, "a2,b, a3 ,c", 9, &err), 2);
    assert_int_equal(smx_hostlist_count(hl), 5);
    const char *names[] = { "a1", "a2", "a3", "b", "c" };
    size_t tags[] = { 7, 7, 7, 9, 9 };
    for (size_t i = 0; i < 5; i++) {
        assert_string_equal(smx_hostlist_name(hl, i), names[i]);
        assert_int_equal(smx_hostlist_tag(hl, i), tags[i]);
    }
    assert_null(smx_hostlist_name(hl, 5));
    /* a failed add leaves the list exactly as it was, and the set forgets its names */
    assert_int_equal(smx_hostlist_add(hl, "d,e,f[", 1, &err), SMX_EINVAL);
    assert_int_equal(smx_hostlist_count(hl), 5);
    assert_int_equal(smx_hostlist_add(hl, "d,e", 3, &err), 2);
    assert_string_equal(smx_hostlist_name(hl, 6), "e");
    smx_hostlist_free(hl);
}

static void test_list_remove(void **state)
{
    (void)state;
    smx_err err = { "" };
    smx_hostlist *hl = smx_hostlist_new(SMX_HOSTLIST_MAX);
    smx_hostlist *ex = smx_hostlist_new(SMX_HOSTLIST_MAX);
    assert_int_equal(smx_hostlist_add(hl, "n[1-50000]", 1, &err), 50000);
    assert_int_equal(smx_hostlist_add(hl, "m[1-10]", 2, &err), 10);
    assert_int_equal(smx_hostlist_add(ex, "n[2-50000/2],m[1-9],zz", 0, &err), 25010);
    smx_hostlist_remove(hl, ex);
    assert_int_equal(smx_hostlist_count(hl), 25001);
    assert_string_equal(smx_hostlist_name(hl, 1), "n3");
    assert_string_equal(smx_hostlist_name(hl, 25000), "m10");
    assert_int_equal(smx_hostlist_tag(hl, 25000), 2);
    /* removed names are really gone from the set (removal keeps the probe runs intact) */
    assert_int_equal(smx_hostlist_add(hl, "n[1-50000]", 3, &err), 25000);
    assert_int_equal(smx_hostlist_add(hl, "n[1-50000],m[1-10]", 4, &err), 9); /* m1-m9 */
    assert_int_equal(smx_hostlist_tag(hl, 25001), 3);
    smx_hostlist_free(hl);
    smx_hostlist_free(ex);
}

/* The cap is for the whole list (a run), not for each call: two lists of 600000 once took
 * 3.8 GB. Duplicates count, so repeating a list cannot get around it either. */
static void test_list_cap_per_run(void **state)
{
    (void)state;
    smx_err err = { "" };
    smx_hostlist *hl = smx_hostlist_new(10);
    assert_int_equal(smx_hostlist_add(hl, "a[1-6]", 0, &err), 6);
    assert_int_equal(smx_hostlist_add(hl, "b[1-6]", 0, &err), SMX_ERANGE);
    assert_string_equal(err.msg, "hostlist \"b[1-6]\": expands to more than 10 hosts (the limit "
                        "for all host lists together)");
    assert_int_equal(smx_hostlist_count(hl), 6);
    assert_int_equal(smx_hostlist_add(hl, "a[1-4]", 0, &err), 0);
    assert_int_equal(smx_hostlist_add(hl, "x", 0, &err), SMX_ERANGE);
    smx_hostlist_free(hl);

    hl = smx_hostlist_new(SMX_HOSTLIST_MAX);
    assert_int_equal(smx_hostlist_add(hl, "a[1-600000]", 0, &err), 600000);
    assert_int_equal(smx_hostlist_add(hl, "b[1-600000]", 0, &err), SMX_ERANGE);
    assert_non_null(strstr(err.msg, "more than 1000000 hosts"));
    assert_int_equal(smx_hostlist_add(hl, "c[1-400000]", 0, &err), 400000);
    assert_int_equal(smx_hostlist_add(hl, "d", 0, &err), SMX_ERANGE);
    assert_int_equal(smx_hostlist_count(hl), 1000000);
    smx_hostlist_free(hl);
}

/* A hostfile is one add per line: 200000 single-name adds must cost O(n) in all, not O(n^2)
 * (each add rebuilt a set of everything so far: 95000 lines took 74 s). */
static void test_list_many_adds_linear(void **state)
{
    (void)state;
    smx_err err = { "" };
    smx_hostlist *hl = smx_hostlist_new(SMX_HOSTLIST_MAX);
    char name[32];
    clock_t t0 = clock();
    for (int i = 0; i < 200000; i++) {
        snprintf(name, sizeof name, "host%06d.example", i);
        assert_int_equal(smx_hostlist_add(hl, name, (size_t)i, &err), 1);
    }
    double secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
    assert_int_equal(smx_hostlist_count(hl), 200000);
    assert_int_equal(smx_hostlist_tag(hl, 199999), 199999);
    /* linear: well under a second even under ASan; quadratic: minutes */
    if (secs > 10)
        fail_msg("200000 adds took %.1f s of CPU", secs);
    smx_hostlist_free(hl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_expand_plain),
        cmocka_unit_test(test_expand_empty_items_and_spaces),
        cmocka_unit_test(test_expand_padding),
        cmocka_unit_test(test_expand_step),
        cmocka_unit_test(test_expand_element_list),
        cmocka_unit_test(test_expand_cartesian),
        cmocka_unit_test(test_expand_dedupe),
        cmocka_unit_test(test_expand_targets),
        cmocka_unit_test(test_expand_ipv6_passthrough),
        cmocka_unit_test(test_expand_error_messages),
        cmocka_unit_test(test_expand_bracket_errors),
        cmocka_unit_test(test_expand_range_errors),
        cmocka_unit_test(test_expand_range_limits),
        cmocka_unit_test(test_expand_at_limit),
        cmocka_unit_test(test_expand_rollback_and_null),
        cmocka_unit_test(test_expand_password_redacted),
        cmocka_unit_test(test_fold_basic),
        cmocka_unit_test(test_fold_single_and_verbatim),
        cmocka_unit_test(test_fold_padding_classes),
        cmocka_unit_test(test_fold_prefix_suffix),
        cmocka_unit_test(test_fold_ipv6),
        cmocka_unit_test(test_fold_long_numbers),
        cmocka_unit_test(test_fold_errors),
        cmocka_unit_test(test_fold_roundtrip),
        cmocka_unit_test(test_fold_roundtrip_random),
        cmocka_unit_test(test_exclude),
        cmocka_unit_test(test_exclude_large),
        cmocka_unit_test(test_list_tags_and_dedupe),
        cmocka_unit_test(test_list_remove),
        cmocka_unit_test(test_list_cap_per_run),
        cmocka_unit_test(test_list_many_adds_linear),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
