/* Unit tests for core/config/target.c: one target string -> user, password, host, port. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "target.h"

/* ---- helpers ---- */

static void assert_str_or_null(const char *got, const char *want, const char *input,
                               const char *field)
{
    if (!want && !got)
        return;
    if (!want || !got || strcmp(got, want) != 0)
        fail_msg("target \"%s\": %s = %s%s%s, want %s%s%s", input, field, got ? "\"" : "",
                 got ? got : "NULL", got ? "\"" : "", want ? "\"" : "", want ? want : "NULL",
                 want ? "\"" : "");
}

static void check_target(const char *s, const char *user, const char *password,
                         const char *host, int port, int from_url)
{
    smx_target_spec t;
    smx_err err = { "" };
    int rc = smx_target_parse(s, &t, &err);
    if (rc != 0)
        fail_msg("target \"%s\" failed: %d %s", s, rc, err.msg);
    assert_str_or_null(t.user, user, s, "user");
    assert_str_or_null(t.password, password, s, "password");
    assert_str_or_null(t.host, host, s, "host");
    if (t.port != port)
        fail_msg("target \"%s\": port = %d, want %d", s, t.port, port);
    assert_int_equal(t.from_url, from_url);
    smx_target_spec_free(&t);
    assert_null(t.host);
}

/* Checks the code, that the message contains `needle`, and that the spec owns nothing. */
static void check_target_fails(const char *s, int code, const char *needle)
{
    smx_target_spec t;
    smx_err err = { "" };
    memset(&t, 0x5a, sizeof t); /* garbage in: parse must not rely on it */
    int rc = smx_target_parse(s, &t, &err);
    if (rc != code)
        fail_msg("target \"%s\" = %d (%s), want %d", s, rc, err.msg, code);
    if (!strstr(err.msg, needle))
        fail_msg("target \"%s\": message \"%s\" lacks \"%s\"", s, err.msg, needle);
    assert_null(t.user);
    assert_null(t.password);
    assert_null(t.host);
    assert_int_equal(t.port, 0);
    assert_int_equal(t.from_url, 0);
}

/* ---- accepted forms ---- */

static void test_plain_forms(void **state)
{
    (void)state;
    check_target("web1", NULL, NULL, "web1", 0, 0);
    check_target("root@web1", "root", NULL, "web1", 0, 0);
    check_target("web1:2222", NULL, NULL, "web1", 2222, 0);
    check_target("root@web1:22", "root", NULL, "web1", 22, 0);
    check_target("db-1.example.com:1", NULL, NULL, "db-1.example.com", 1, 0);
    check_target("10.0.0.1:65535", NULL, NULL, "10.0.0.1", 65535, 0);
    check_target("web1:022", NULL, NULL, "web1", 22, 0);
}

static void test_user_split_at_last_at(void **state)
{
    (void)state;
    check_target("a@b@web1:22", "a@b", NULL, "web1", 22, 0);
    check_target("john@example.com@host", "john@example.com", NULL, "host", 0, 0);
    /* No passwords outside URLs: this is a user name, as for OpenSSH. */
    check_target("u:pw@host", "u:pw", NULL, "host", 0, 0);
}

static void test_bracketed_ipv6(void **state)
{
    (void)state;
    check_target("[::1]", NULL, NULL, "::1", 0, 0);
    check_target("[::1]:22", NULL, NULL, "::1", 22, 0);
    check_target("user@[fe80::1]:2200", "user", NULL, "fe80::1", 2200, 0);
    check_target("user@[fe80::1]", "user", NULL, "fe80::1", 0, 0);
    check_target("[fe80::1%eth0]:22", NULL, NULL, "fe80::1%eth0", 22, 0);
    check_target("[10.0.0.1]:22", NULL, NULL, "10.0.0.1", 22, 0);
}

static void test_bare_ipv6(void **state)
{
    (void)state;
    check_target("::1", NULL, NULL, "::1", 0, 0);
    check_target("fe80::1", NULL, NULL, "fe80::1", 0, 0);
    check_target("root@2001:db8::1", "root", NULL, "2001:db8::1", 0, 0);
    /* Two or more colons: an address, never address:port. */
    check_target("fe80::1:22", NULL, NULL, "fe80::1:22", 0, 0);
}

static void test_url_forms(void **state)
{
    (void)state;
    check_target("ssh://host", NULL, NULL, "host", 0, 1);
    check_target("ssh://host/", NULL, NULL, "host", 0, 1);
    check_target("ssh://user@host:2222", "user", NULL, "host", 2222, 1);
    check_target("ssh://user:secret@host:22/", "user", "secret", "host", 22, 1);
    check_target("ssh://u:@host", "u", "", "host", 0, 1);
    check_target("ssh://u:a:b@host", "u", "a:b", "host", 0, 1);
    check_target("ssh://[::1]:22", NULL, NULL, "::1", 22, 1);
    check_target("ssh://root@[2001:db8::1]", "root", NULL, "2001:db8::1", 0, 1);
    check_target("SSH://Host", NULL, NULL, "Host", 0, 1);
}

static void test_url_percent_decoding(void **state)
{
    (void)state;
    check_target("ssh://us%40er:p%3Aw%25%2f@host", "us@er", "p:w%/", "host", 0, 1);
    check_target("ssh://a%20b:%E2%82%AC@h", "a b", "\xe2\x82\xac", "h", 0, 1);
    /* RFC 6874 zone identifier. */
    check_target("ssh://u@[fe80::1%25eth0]:22", "u", NULL, "fe80::1%eth0", 22, 1);
    /* The last '@' ends the user info, so an unencoded one before it stays in the password. */
    check_target("ssh://u:p@ss@host", "u", "p@ss", "host", 0, 1);
}

/* ---- errors ---- */

static void test_error_port_range(void **state)
{
    (void)state;
    smx_target_spec t;
    smx_err err = { "" };
    assert_int_equal(smx_target_parse("web1:70000", &t, &err), SMX_ERANGE);
    assert_string_equal(err.msg, "target \"web1:70000\": port 70000 out of range (1-65535)");
    check_target_fails("web1:0", SMX_ERANGE, "\"web1:0\": port 0 out of range (1-65535)");
    check_target_fails("web1:65536", SMX_ERANGE, "port 65536 out of range");
    check_target_fails("web1:99999999999999999999", SMX_ERANGE,
                       "port 99999999999999999999 out of range");
    check_target_fails("[::1]:70000", SMX_ERANGE, "\"[::1]:70000\": port 70000 out of range");
    check_target_fails("ssh://h:70000", SMX_ERANGE, "\"ssh://h:70000\": port 70000 out of range");
}

static void test_error_port_syntax(void **state)
{
    (void)state;
    check_target_fails("web1:abc", SMX_EINVAL, "\"web1:abc\": port \"abc\" is not a number");
    check_target_fails("web1:-1", SMX_EINVAL, "\"web1:-1\": port \"-1\" is not a number");
    check_target_fails("web1:+22", SMX_EINVAL, "port \"+22\" is not a number");
    check_target_fails("web1:2 2", SMX_EINVAL, "port \"2 2\" is not a number");
    check_target_fails("web1:", SMX_EINVAL, "\"web1:\": missing port number after ':'");
    check_target_fails("[::1]:", SMX_EINVAL, "\"[::1]:\": missing port number");
    check_target_fails("ssh://h:x/", SMX_EINVAL, "\"ssh://h:x/\": port \"x\" is not a number");
}

static void test_error_empty_parts(void **state)
{
    (void)state;
    check_target_fails("", SMX_EINVAL, "target \"\": empty host");
    check_target_fails("root@", SMX_EINVAL, "\"root@\": empty host");
    check_target_fails("root@:22", SMX_EINVAL, "\"root@:22\": empty host");
    check_target_fails(":22", SMX_EINVAL, "\":22\": empty host");
    check_target_fails("[]", SMX_EINVAL, "\"[]\": empty host");
    check_target_fails("u@[]:22", SMX_EINVAL, "\"u@[]:22\": empty host");
    check_target_fails("@host", SMX_EINVAL, "\"@host\": empty user before '@'");
    check_target_fails("@[::1]:22", SMX_EINVAL, "\"@[::1]:22\": empty user");
    check_target_fails("ssh://", SMX_EINVAL, "\"ssh://\": empty host");
    check_target_fails("ssh://user@", SMX_EINVAL, "\"ssh://user@\": empty host");
    check_target_fails("ssh://@host", SMX_EINVAL, "\"ssh://@host\": empty user before '@'");
    check_target_fails("ssh://:pw@host", SMX_EINVAL, "empty user before '@'");
}

static void test_error_brackets(void **state)
{
    (void)state;
    check_target_fails("[::1", SMX_EINVAL, "\"[::1\": '[' without matching ']'");
    check_target_fails("user@[fe80::1:22", SMX_EINVAL, "\"user@[fe80::1:22\": '[' without");
    check_target_fails("web[1", SMX_EINVAL, "\"web[1\": '[' without matching ']'");
    check_target_fails("[::1]x", SMX_EINVAL, "\"[::1]x\": unexpected text after ']'");
    check_target_fails("[::1]22", SMX_EINVAL, "\"[::1]22\": unexpected text after ']'");
    check_target_fails("[::1]:22]", SMX_EINVAL, "port \"22]\" is not a number");
    check_target_fails("web[1-2]", SMX_EINVAL, "\"web[1-2]\": unexpected '[' in host");
    check_target_fails("web1]", SMX_EINVAL, "\"web1]\": unexpected ']' in host");
    check_target_fails("[[::1]]", SMX_EINVAL, "unexpected '[' in host");
    check_target_fails("ssh://[::1", SMX_EINVAL, "'[' without matching ']'");
}

static void test_error_bad_characters(void **state)
{
    (void)state;
    check_target_fails("we b1", SMX_EINVAL, "\"we b1\": host contains a space or control");
    check_target_fails(" web1", SMX_EINVAL, "host contains a space");
    check_target_fails("web1\n", SMX_EINVAL, "\"web1?\": host contains");
    check_target_fails("ro\tot@web1", SMX_EINVAL, "\"ro?ot@web1\": user contains a control");
}

static void test_error_url(void **state)
{
    (void)state;
    check_target_fails("http://host", SMX_EINVAL,
                       "\"http://host\": unsupported URL scheme \"http\" (only ssh:// is supported)");
    check_target_fails("sftp://u@h:22", SMX_EINVAL, "unsupported URL scheme \"sftp\"");
    check_target_fails("ssh://host/path", SMX_EINVAL,
                       "\"ssh://host/path\": only a trailing '/' may follow the host");
    check_target_fails("ssh://host?x=1", SMX_EINVAL, "only a trailing '/'");
    check_target_fails("ssh://host//", SMX_EINVAL, "only a trailing '/'");
    check_target_fails("ssh://::1", SMX_EINVAL, "\"ssh://::1\": IPv6 address must be enclosed");
    check_target_fails("ssh://u%2@h", SMX_EINVAL, "\"ssh://u%2@h\": invalid percent-encoding in user");
    check_target_fails("ssh://u%zz@h", SMX_EINVAL, "invalid percent-encoding in user");
    check_target_fails("ssh://u%00x@h", SMX_EINVAL, "%00 is not allowed in user");
    check_target_fails("ssh://h%4", SMX_EINVAL, "invalid percent-encoding in host");
    check_target_fails("ssh://h%20x", SMX_EINVAL, "host contains a space");
    check_target_fails("ssh://u%0A@h", SMX_EINVAL, "user contains a control character");
}

/* Messages quote the input but must never reveal the password. */
static void test_error_redacts_password(void **state)
{
    (void)state;
    check_target_fails("ssh://u:hunter2@h:99999", SMX_ERANGE,
                       "target \"ssh://u:***@h:99999\": port 99999 out of range");
    check_target_fails("ssh://u:p%zzhunter2@h", SMX_EINVAL,
                       "\"ssh://u:***@h\": invalid percent-encoding in password");

    smx_target_spec t;
    smx_err err = { "" };
    assert_int_equal(smx_target_parse("ssh://u:hunter2@[::1", &t, &err), SMX_EINVAL);
    assert_null(strstr(err.msg, "hunter2"));

    /* A raw comma: refused as in a list (where it would split the URL), and the whole password
     * masked, not just the part before the comma (found by fuzz_target). */
    check_target_fails("ssh://al%40ice:p%3Ass,ops@22/", SMX_EINVAL,
                       "target \"ssh://al%40ice:***@22/\": a ',' separates targets; inside a URL "
                       "write it as %2C");
    check_target_fails("ssh://u:p@h,x", SMX_EINVAL, "a ',' separates targets");
}

static void test_null_arguments(void **state)
{
    (void)state;
    smx_target_spec t;
    smx_err err = { "" };
    assert_int_equal(smx_target_parse(NULL, &t, &err), SMX_EINVAL);
    assert_null(t.host);
    assert_int_equal(smx_target_parse("web1", NULL, &err), SMX_EINVAL);
    assert_int_equal(smx_target_parse("web1:0", &t, NULL), SMX_ERANGE);
}

/* ---- display and free ---- */

static void test_display(void **state)
{
    (void)state;
    char buf[16];
    smx_target_display("web1", buf, sizeof buf);
    assert_string_equal(buf, "web1");
    smx_target_display("a\x1b[31mb", buf, sizeof buf);
    assert_string_equal(buf, "a?[31mb");
    smx_target_display("ssh://u:pw@h", buf, sizeof buf);
    assert_string_equal(buf, "ssh://u:***@h");
    smx_target_display("ssh://u:@h", buf, sizeof buf);
    assert_string_equal(buf, "ssh://u:@h");
    smx_target_display("0123456789abcdefghij", buf, sizeof buf);
    assert_string_equal(buf, "0123456789ab...");
    smx_target_display(NULL, buf, sizeof buf);
    assert_string_equal(buf, "(null)");
    smx_target_display("abc", buf, 1);
    assert_string_equal(buf, "");
    smx_target_display("abc", NULL, 0);
}

static void test_long_input_keeps_reason(void **state)
{
    (void)state;
    char s[400];
    memset(s, 'h', 300);
    strcpy(s + 300, ":70000");
    smx_target_spec t;
    smx_err err = { "" };
    assert_int_equal(smx_target_parse(s, &t, &err), SMX_ERANGE);
    assert_non_null(strstr(err.msg, "...\": port 70000 out of range (1-65535)"));
    assert_true(strlen(err.msg) < sizeof err.msg - 1);
}

static void test_spec_free(void **state)
{
    (void)state;
    smx_target_spec t;
    smx_err err = { "" };
    assert_int_equal(smx_target_parse("ssh://u:pw@h:22", &t, &err), 0);
    smx_target_spec_free(&t);
    assert_null(t.user);
    assert_null(t.password);
    assert_null(t.host);
    assert_int_equal(t.port, 0);
    assert_int_equal(t.from_url, 0);
    smx_target_spec_free(&t); /* zeroed spec: no-op */
    smx_target_spec_free(NULL);
}

/* ---- taking the password out (issue 9: it leaked into resolution and -J errors) ---- */

static void check_take(const char *s, const char *want_plain, const char *want_pw)
{
    char *plain = NULL, *pw = NULL;
    smx_err err = { "" };
    if (smx_target_take_password(s, &plain, &pw, &err) != 0)
        fail_msg("take_password(\"%s\"): %s", s, err.msg);
    assert_string_equal(plain, want_plain);
    if (want_pw)
        assert_string_equal(pw, want_pw);
    else
        assert_null(pw);
    free(plain);
    free(pw);
}

static void test_take_password(void **state)
{
    (void)state;
    check_take("ssh://u:hunter2@h:22", "ssh://u@h:22", "hunter2");
    check_take("ssh://u:p%40ss%3Aw@[::1]:22/", "ssh://u@[::1]:22/", "p@ss:w");
    check_take("ssh://u:a@b@h", "ssh://u@h", "a@b"); /* the host starts after the last '@' */
    check_take("ssh://u:@h", "ssh://u@h", "");
    check_take("ssh://u:p[1-3]@web[1-3]", "ssh://u@web[1-3]", "p[1-3]"); /* not a range */
    check_take("ssh://u@h:22", "ssh://u@h:22", NULL);
    check_take("user:x@host", "user:x@host", NULL); /* not a URL: no password syntax */
    check_take("web[01-20]", "web[01-20]", NULL);
    check_take("", "", NULL);

    char *plain = (char *)1, *pw = (char *)1;
    smx_err err = { "" };
    assert_int_equal(smx_target_take_password("ssh://u:hun%zzter2@h", &plain, &pw, &err),
                     SMX_EINVAL);
    assert_null(plain);
    assert_null(pw);
    assert_string_equal(err.msg, "target \"ssh://u:***@h\": invalid percent-encoding in password");
    assert_int_equal(smx_target_take_password("ssh://u:a%00b@h", &plain, &pw, &err), SMX_EINVAL);
    assert_null(strstr(err.msg, "a%00b"));
}

static void check_strip(const char *in, const char *want)
{
    char buf[128];
    size_t len = strlen(in);
    memset(buf, 'X', sizeof buf);
    memcpy(buf, in, len + 1);
    smx_target_strip_in_place(buf);
    assert_string_equal(buf, want);
    /* everything the string no longer uses is zeroed, up to its old end */
    for (size_t i = strlen(want); i <= len; i++) {
        if (buf[i] != '\0')
            fail_msg("strip(\"%s\"): byte %zu not wiped", in, i);
    }
    assert_int_equal(buf[len + 1], 'X');
}

static void test_strip_in_place(void **state)
{
    (void)state;
    check_strip("ssh://u:pw@h", "ssh://u@h");
    check_strip("a,ssh://u:pw@h:22,ssh://v:secret@[::1]:2222/,b", "a,ssh://u@h:22,ssh://v@[::1]:2222/,b");
    check_strip("web[1-3],db1", "web[1-3],db1");
    check_strip("ssh://u:@h", "ssh://u@h");
    check_strip("", "");
    check_strip(",,", ",,");
}

static void test_display_list(void **state)
{
    (void)state;
    char buf[96];
    smx_target_display("ssh://a:pw1@j1:22,b@j2,ssh://c:pw2@j3", buf, sizeof buf);
    assert_string_equal(buf, "ssh://a:***@j1:22,b@j2,ssh://c:***@j3");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_forms),
        cmocka_unit_test(test_user_split_at_last_at),
        cmocka_unit_test(test_bracketed_ipv6),
        cmocka_unit_test(test_bare_ipv6),
        cmocka_unit_test(test_url_forms),
        cmocka_unit_test(test_url_percent_decoding),
        cmocka_unit_test(test_error_port_range),
        cmocka_unit_test(test_error_port_syntax),
        cmocka_unit_test(test_error_empty_parts),
        cmocka_unit_test(test_error_brackets),
        cmocka_unit_test(test_error_bad_characters),
        cmocka_unit_test(test_error_url),
        cmocka_unit_test(test_error_redacts_password),
        cmocka_unit_test(test_null_arguments),
        cmocka_unit_test(test_display),
        cmocka_unit_test(test_long_input_keeps_reason),
        cmocka_unit_test(test_spec_free),
        cmocka_unit_test(test_take_password),
        cmocka_unit_test(test_strip_in_place),
        cmocka_unit_test(test_display_list),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
