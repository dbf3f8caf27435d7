/* -L specification parsing, as OpenSSH's. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include "fwdspec.h"

static void parse_ok(const char *s, const char *baddr, int bport, const char *bpath,
                     const char *host, int port, const char *rpath)
{
    smx_fwd_spec f;
    smx_err err = {{0}};
    assert_int_equal(smx_fwd_spec_parse(s, &f, &err), 0);
    if (baddr) assert_string_equal(f.bind_addr, baddr); else assert_null(f.bind_addr);
    assert_int_equal(f.bind_port, bport);
    if (bpath) assert_string_equal(f.bind_path, bpath); else assert_null(f.bind_path);
    if (host) assert_string_equal(f.host, host); else assert_null(f.host);
    assert_int_equal(f.port, port);
    if (rpath) assert_string_equal(f.dest_path, rpath); else assert_null(f.dest_path);
    smx_fwd_spec_free(&f);
}

static void parse_bad(const char *s)
{
    smx_fwd_spec f;
    smx_err err = {{0}};
    assert_int_equal(smx_fwd_spec_parse(s, &f, &err), SMX_EINVAL);
    assert_non_null(strstr(err.msg, s));
}

static void test_tcp_forms(void **state)
{
    parse_ok("8080:localhost:80", NULL, 8080, NULL, "localhost", 80, NULL);
    parse_ok("0.0.0.0:8080:db:5432", "0.0.0.0", 8080, NULL, "db", 5432, NULL);
    parse_ok("localhost:8080:db:5432", NULL, 8080, NULL, "db", 5432, NULL);
    parse_ok("[::1]:8080:[fe80::1]:22", "::1", 8080, NULL, "fe80::1", 22, NULL);
    parse_ok("8080:[::1]:80", NULL, 8080, NULL, "::1", 80, NULL);
    parse_ok("0:localhost:80", NULL, 0, NULL, "localhost", 80, NULL);
}

static void test_unix_forms(void **state)
{
    parse_ok("/tmp/l.sock:/var/run/docker.sock", NULL, 0, "/tmp/l.sock", NULL, 0,
             "/var/run/docker.sock");
    parse_ok("2375:/var/run/docker.sock", NULL, 2375, NULL, NULL, 0, "/var/run/docker.sock");
    parse_ok("127.0.0.2:2375:/var/run/docker.sock", "127.0.0.2", 2375, NULL, NULL, 0,
             "/var/run/docker.sock");
    parse_ok("/tmp/l.sock:localhost:80", NULL, 0, "/tmp/l.sock", "localhost", 80, NULL);
}

static void test_bad(void **state)
{
    parse_bad("8080");
    parse_bad("8080:localhost");
    parse_bad("70000:localhost:80");
    parse_bad("8080:localhost:0");
    parse_bad("8080:localhost:http");
    parse_bad("a:b:c:d:e");
    parse_bad("[::1:8080:h:1");
    parse_bad("x:8080:h:99999");
    parse_bad("8080::80");
}

static void test_describe(void **state)
{
    smx_fwd_spec f;
    smx_err err = {{0}};
    char l[128], r[128];
    assert_int_equal(smx_fwd_spec_parse("[::1]:8080:[fe80::1]:22", &f, &err), 0);
    smx_fwd_spec_describe(&f, l, sizeof l, r, sizeof r);
    assert_string_equal(l, "[::1]:8080");
    assert_string_equal(r, "[fe80::1]:22");
    smx_fwd_spec_free(&f);
    assert_int_equal(smx_fwd_spec_parse("9000:/run/x.sock", &f, &err), 0);
    smx_fwd_spec_describe(&f, l, sizeof l, r, sizeof r);
    assert_string_equal(l, "127.0.0.1:9000");
    assert_string_equal(r, "/run/x.sock");
    smx_fwd_spec_free(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tcp_forms),
        cmocka_unit_test(test_unix_forms),
        cmocka_unit_test(test_bad),
        cmocka_unit_test(test_describe),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
