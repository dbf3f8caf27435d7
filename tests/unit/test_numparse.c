/* Unit tests for core/base/numparse.c: the one number parser behind every numeric option, ssh_config
 * number and port (no overflow, no silent wrap: -u 4294968 once became 0.7 s). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "error.h"
#include "numparse.h"

static int parse(const char *s, unsigned long long min, unsigned long long max,
                 unsigned long long *v)
{
    *v = 12345;
    return smx_num_parse_str(s, min, max, v);
}

static void test_num_range(void **state)
{
    (void)state;
    unsigned long long v;
    assert_int_equal(parse("0", 0, 10, &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(parse("10", 0, 10, &v), 0);
    assert_int_equal(v, 10);
    assert_int_equal(parse("007", 0, 10, &v), 0);
    assert_int_equal(v, 7);
    assert_int_equal(parse("11", 0, 10, &v), SMX_ERANGE);
    assert_int_equal(v, 12345); /* untouched on error */
    assert_int_equal(parse("0", 1, 65535, &v), SMX_ERANGE);
    assert_int_equal(parse("65536", 1, 65535, &v), SMX_ERANGE);
    assert_int_equal(parse("7", 0, 5, &v), SMX_ERANGE); /* one digit above a one-digit max */
    assert_int_equal(parse("3000000", 0, SMX_SECONDS_MAX, &v), SMX_ERANGE);
    assert_int_equal(parse("4294968", 0, SMX_SECONDS_MAX, &v), SMX_ERANGE);
    assert_int_equal(parse("2147483", 0, SMX_SECONDS_MAX, &v), 0);
    assert_int_equal(v, 2147483);
    /* far more digits than any integer holds: out of range, not wrapped */
    assert_int_equal(parse("99999999999999999999999999999999", 0, 100, &v), SMX_ERANGE);
    assert_int_equal(parse("18446744073709551615", 0, UINT64_MAX, &v), 0);
    assert_int_equal(v, UINT64_MAX);
    assert_int_equal(parse("18446744073709551616", 0, UINT64_MAX, &v), SMX_ERANGE);
    assert_int_equal(parse("4294967296", 0, UINT32_MAX, &v), SMX_ERANGE);
}

static void test_num_syntax(void **state)
{
    (void)state;
    unsigned long long v;
    const char *bad[] = { "", " 5", "5 ", "+5", "-5", "5s", "0x10", "1e3", "1.5", "١" };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        if (parse(bad[i], 0, 1000, &v) != SMX_EINVAL)
            fail_msg("\"%s\" should be rejected as not a number", bad[i]);
    }
    /* the length-bounded form reads only what it is given */
    assert_int_equal(smx_num_parse("22abc", 2, 1, 65535, &v), 0);
    assert_int_equal(v, 22);
    assert_int_equal(smx_num_parse("22", 0, 0, 10, &v), SMX_EINVAL);
}

static void test_time(void **state)
{
    (void)state;
    unsigned long long v;
    assert_int_equal(smx_time_parse("90", SMX_SECONDS_MAX, &v), 0);
    assert_int_equal(v, 90);
    assert_int_equal(smx_time_parse("1h30m", SMX_SECONDS_MAX, &v), 0);
    assert_int_equal(v, 5400);
    assert_int_equal(smx_time_parse("1W1d1H1M1S", SMX_SECONDS_MAX, &v), 0);
    assert_int_equal(v, 604800 + 86400 + 3600 + 60 + 1);
    assert_int_equal(smx_time_parse("1h30", SMX_SECONDS_MAX, &v), 0); /* trailing bare seconds */
    assert_int_equal(v, 3630);
    assert_int_equal(smx_time_parse("2147483", SMX_SECONDS_MAX, &v), 0);
    assert_int_equal(smx_time_parse("2147484", SMX_SECONDS_MAX, &v), SMX_ERANGE);
    assert_int_equal(smx_time_parse("24856d", SMX_SECONDS_MAX, &v), SMX_ERANGE);
    assert_int_equal(smx_time_parse("2147483s1s", SMX_SECONDS_MAX, &v), SMX_ERANGE);
    assert_int_equal(smx_time_parse("99999999999999999999999w", SMX_SECONDS_MAX, &v), SMX_ERANGE);
    const char *bad[] = { "", "s", "1x", "1hh", "-1", "+1", "1 h", "1h-1" };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        if (smx_time_parse(bad[i], SMX_SECONDS_MAX, &v) != SMX_EINVAL)
            fail_msg("time \"%s\" should be rejected", bad[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_num_range),
        cmocka_unit_test(test_num_syntax),
        cmocka_unit_test(test_time),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
