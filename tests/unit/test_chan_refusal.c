/* Channel open refusals: libssh's "Channel opening failure" text decoded to the RFC 4254
 * reason (section 5.1) the server gave. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include "conn.h"

static void expect(const char *libssh_msg, const char *want)
{
    char out[320];
    smx_chan_refusal_text(libssh_msg, out, sizeof out);
    assert_string_equal(out, want);
}

static void test_reason_codes(void **state)
{
    (void)state;
    expect("Channel opening failure: channel 43 error (1) open failed",
           "channel refused: administratively prohibited (open failed)");
    expect("Channel opening failure: channel 7 error (2) Connection refused",
           "channel refused: connect failed (Connection refused)");
    expect("Channel opening failure: channel 0 error (3) unknown channel type",
           "channel refused: unknown channel type (unknown channel type)");
    expect("Channel opening failure: channel 12 error (4) too many channels",
           "channel refused: resource shortage (too many channels)");
}

static void test_unknown_code_and_empty_description(void **state)
{
    (void)state;
    expect("Channel opening failure: channel 1 error (9) weird",
           "channel refused: reason 9 (weird)");
    expect("Channel opening failure: channel 1 error (0) ", "channel refused: reason 0");
    expect("Channel opening failure: channel 1 error (2) ", "channel refused: connect failed");
}

static void test_other_messages_copied(void **state)
{
    (void)state;
    expect("Socket error: disconnected", "Socket error: disconnected");
    expect("Channel opening failure: garbage", "Channel opening failure: garbage");
    expect("", "channel open failed");
    expect(NULL, "channel open failed");
}

static void test_truncates_safely(void **state)
{
    (void)state;
    char out[16];
    smx_chan_refusal_text("Channel opening failure: channel 43 error (1) open failed", out,
                          sizeof out);
    assert_string_equal(out, "channel refused");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reason_codes),
        cmocka_unit_test(test_unknown_code_and_empty_description),
        cmocka_unit_test(test_other_messages_copied),
        cmocka_unit_test(test_truncates_safely),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
