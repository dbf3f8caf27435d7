/* Remote paths of a copy (core/engine/api_copy.c): %h, %n and %% in a template, and joining a
 * directory and a name with one '/'. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "copy_internal.h"

/* got: a malloc'd result, checked and freed */
static void check(char *got, const char *want)
{
    assert_non_null(got);
    assert_string_equal(got, want);
    free(got);
}

static void expand(const char *tmpl, const char *host, unsigned index, const char *want)
{
    check(smx_copy_expand(tmpl, host, index), want);
}

static void test_expand(void **state)
{
    (void)state;
    expand("", "web1", 0, "");
    expand("/srv/app.conf", "web1", 0, "/srv/app.conf");
    expand("/tmp/%h", "web1", 3, "/tmp/web1");
    expand("/tmp/%n", "web1", 3, "/tmp/3");
    expand("%h-%n/%h.%n", "db", 12, "db-12/db.12");
    expand("%n", "h", 0, "0");
    expand("%n", "h", 4294967295u, "4294967295");
    expand("%h", "", 1, "");
    /* %% is one '%', and what follows it is literal */
    expand("100%%", "h", 1, "100%");
    expand("%%h %%n %%%h", "web1", 7, "%h %n %web1");
    expand("%%%%", "h", 1, "%%");
    /* anything else after '%' stays as written, a trailing '%' too */
    expand("%x%", "h", 1, "%x%");
    expand("%", "h", 1, "%");
    expand("a%Hb", "h", 1, "a%Hb");
}

/* Many substitutions of a long host name: the length computed first must hold them all (an
 * ASan build checks the writes). */
static void test_expand_long(void **state)
{
    (void)state;
    char host[256], tmpl[601], want[64 * 255 + 64 * 10 + 1];
    memset(host, 'h', 255);
    host[255] = '\0';
    size_t t = 0, w = 0;
    for (int i = 0; i < 100; i++) {
        static const char *const pieces[] = {"%h", "%n", "%%", "/"};
        static const char *const outs[] = {NULL, "4000000000", "%", "/"};
        const char *p = pieces[i % 4], *o = outs[i % 4] ? outs[i % 4] : host;
        if (w + strlen(o) >= sizeof want)
            break;
        memcpy(tmpl + t, p, strlen(p));
        t += strlen(p);
        memcpy(want + w, o, strlen(o));
        w += strlen(o);
    }
    tmpl[t] = '\0';
    want[w] = '\0';
    expand(tmpl, host, 4000000000u, want);
}

static void join(const char *a, const char *b, const char *want)
{
    check(smx_copy_join(a, b), want);
}

static void test_join(void **state)
{
    (void)state;
    join("dir", "f", "dir/f");
    join("dir/", "f", "dir/f");
    join("/", "etc", "/etc");
    join("", "f", "f");
    join("a/b", "c/d", "a/b/c/d");
    join("dir", "", "dir/");
    join("dir//", "f", "dir//f");   /* only the missing '/' is added; nothing is collapsed */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_expand),
        cmocka_unit_test(test_expand_long),
        cmocka_unit_test(test_join),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
