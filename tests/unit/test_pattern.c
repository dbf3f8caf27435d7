/* Unit tests for core/config/pattern.c: OpenSSH-style globs and pattern lists. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>
#include <time.h>

#include "pattern.h"

static void test_literal(void **state)
{
    (void)state;
    assert_int_equal(smx_pattern_match("web1", "web1"), 1);
    assert_int_equal(smx_pattern_match("web1", "web2"), 0);
    assert_int_equal(smx_pattern_match("web1", "web"), 0);     /* whole string, no prefix */
    assert_int_equal(smx_pattern_match("web", "web1"), 0);
    assert_int_equal(smx_pattern_match("", ""), 1);
    assert_int_equal(smx_pattern_match("a", ""), 0);
    assert_int_equal(smx_pattern_match("", "a"), 0);
}

static void test_star(void **state)
{
    (void)state;
    assert_int_equal(smx_pattern_match("", "*"), 1);
    assert_int_equal(smx_pattern_match("anything.at.all", "*"), 1);
    assert_int_equal(smx_pattern_match("web1.example.com", "*.example.com"), 1);
    assert_int_equal(smx_pattern_match("example.com", "*.example.com"), 0);
    assert_int_equal(smx_pattern_match("web-01", "web-*"), 1);
    assert_int_equal(smx_pattern_match("web-", "web-*"), 1);
    assert_int_equal(smx_pattern_match("xaxb", "*a*b"), 1);     /* needs backtracking */
    assert_int_equal(smx_pattern_match("xaxbx", "*a*b"), 0);
    assert_int_equal(smx_pattern_match("abcabd", "*abd"), 1);
    assert_int_equal(smx_pattern_match("ab", "a**b"), 1);
    assert_int_equal(smx_pattern_match("a", "a***"), 1);
}

static void test_question(void **state)
{
    (void)state;
    assert_int_equal(smx_pattern_match("db1", "db?"), 1);
    assert_int_equal(smx_pattern_match("db", "db?"), 0);
    assert_int_equal(smx_pattern_match("db12", "db?"), 0);
    assert_int_equal(smx_pattern_match("192.168.0.7", "192.168.0.?"), 1);
    assert_int_equal(smx_pattern_match("abc", "?*?"), 1);
    assert_int_equal(smx_pattern_match("a", "?*?"), 0);
}

static void test_case(void **state)
{
    (void)state;
    assert_int_equal(smx_pattern_match("WEB1.Example.COM", "web?.example.*"), 1);
    assert_int_equal(smx_pattern_match("web1", "WEB*"), 1);
    assert_int_equal(smx_pattern_match_cs("web1", "WEB*"), 0);
    assert_int_equal(smx_pattern_match_cs("WEB1", "WEB*"), 1);
    assert_int_equal(smx_pattern_match_cs("web1", "web?"), 1);
    /* Only ASCII is folded: bytes >= 0x80 compare exactly. */
    assert_int_equal(smx_pattern_match("\xc3\x84", "\xc3\xa4"), 0);
    assert_int_equal(smx_pattern_match("\xc3\x84x", "\xc3\x84X"), 1);
}

/* A pattern that makes naive recursive matchers exponential must stay fast. */
static void test_pathological(void **state)
{
    char s[4096], p[64] = "";
    clock_t start = clock();

    (void)state;
    memset(s, 'a', sizeof s - 1);
    s[sizeof s - 1] = '\0';
    for (int i = 0; i < 12; i++)
        strcat(p, "*a");
    strcat(p, "*b");
    assert_int_equal(smx_pattern_match(s, p), 0);
    assert_true((double)(clock() - start) / CLOCKS_PER_SEC < 2.0);
}

static void test_list(void **state)
{
    (void)state;
    assert_int_equal(smx_pattern_list_match("web1", "db*,web*"), 1);
    assert_int_equal(smx_pattern_list_match("mail", "db*,web*"), 0);
    assert_int_equal(smx_pattern_list_match("web1", "web1"), 1);
    assert_int_equal(smx_pattern_list_match("WEB1", "web1"), 1);
    assert_int_equal(smx_pattern_list_match_cs("WEB1", "web1"), 0);
    assert_int_equal(smx_pattern_list_match_cs("web1", "web1"), 1);
}

static void test_list_negation(void **state)
{
    (void)state;
    /* A matching negation vetoes, whatever its position. */
    assert_int_equal(smx_pattern_list_match("web-bad", "web-*,!web-bad"), -1);
    assert_int_equal(smx_pattern_list_match("web-bad", "!web-bad,web-*"), -1);
    assert_int_equal(smx_pattern_list_match("web-ok", "web-*,!web-bad"), 1);
    /* Negations alone never give a positive result (man ssh_config, PATTERNS). */
    assert_int_equal(smx_pattern_list_match("host3", "!host1,!host2"), 0);
    assert_int_equal(smx_pattern_list_match("host3", "!host1,!host2,*"), 1);
    assert_int_equal(smx_pattern_list_match("host1", "!host1,!host2,*"), -1);
    assert_int_equal(smx_pattern_list_match("HOST1", "!host1,*"), -1);
    assert_int_equal(smx_pattern_list_match_cs("HOST1", "!host1,*"), 1);
    assert_int_equal(smx_pattern_list_match("x", "!*"), -1);
}

static void test_list_empty_entries(void **state)
{
    (void)state;
    /* An empty entry is an empty pattern: it matches only the empty string. */
    assert_int_equal(smx_pattern_list_match("a", "b,,c"), 0);
    assert_int_equal(smx_pattern_list_match("", "b,,c"), 1);
    assert_int_equal(smx_pattern_list_match("a", ""), 0);
    assert_int_equal(smx_pattern_list_match("a", ",a"), 1);
    assert_int_equal(smx_pattern_list_match("a", "a,"), 1);
    assert_int_equal(smx_pattern_list_match("a", "!"), 0);   /* "!" negates the empty pattern */
    assert_int_equal(smx_pattern_list_match("", "!"), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_literal),
        cmocka_unit_test(test_star),
        cmocka_unit_test(test_question),
        cmocka_unit_test(test_case),
        cmocka_unit_test(test_pathological),
        cmocka_unit_test(test_list),
        cmocka_unit_test(test_list_negation),
        cmocka_unit_test(test_list_empty_entries),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
