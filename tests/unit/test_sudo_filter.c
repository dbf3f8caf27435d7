/* sudo's prompt found and removed from command output (core/apps/sudo.c), whatever the split of
 * the stream into chunks: prompts at the start, in the middle and at the end, a prompt split
 * byte by byte, look-alikes that are not the marker, the line end after the answer dropped; and
 * the wrapper command quoted for sh. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "sudo.h"

#define MARK "[sshmux-sudo-0123456789abcdef]:"

typedef struct sink {
    char buf[4096];
    size_t len;
} sink;

static void collect(void *ud, const char *p, size_t n)
{
    sink *s = ud;
    assert_true(s->len + n < sizeof s->buf);
    memcpy(s->buf + s->len, p, n);
    s->len += n;
    s->buf[s->len] = '\0';
}

/* Feeds text in chunks of `step` bytes; returns the prompts seen. */
static int run(const char *text, size_t step, sink *out)
{
    smx_sudo_filter f;
    smx_sudo_filter_init(&f, MARK);
    memset(out, 0, sizeof *out);
    int prompts = 0;
    size_t n = strlen(text);
    for (size_t off = 0; off < n; off += step)
        prompts += smx_sudo_filter_feed(&f, text + off, off + step <= n ? step : n - off,
                                        collect, out);
    smx_sudo_filter_flush(&f, collect, out);
    return prompts;
}

static void expect_all_splits(const char *in, const char *want, int want_prompts)
{
    for (size_t step = 1; step <= strlen(in) + 1; step++) {
        sink out;
        assert_int_equal(run(in, step, &out), want_prompts);
        assert_string_equal(out.buf, want);
    }
}

static void test_prompt_removed(void **state)
{
    (void)state;
    expect_all_splits(MARK, "", 1);
    expect_all_splits(MARK "\nroot\n", "root\n", 1);
    expect_all_splits(MARK "\r\nroot\r\n", "root\r\n", 1);
    expect_all_splits("before " MARK "after\n", "before after\n", 1);
    expect_all_splits(MARK "Sorry, try again.\n" MARK, "Sorry, try again.\n", 2);
}

static void test_look_alikes_pass(void **state)
{
    (void)state;
    expect_all_splits("[sshmux-sudo-0123]: not ours\n", "[sshmux-sudo-0123]: not ours\n", 0);
    expect_all_splits("[[[sshmux-sudo-0123456789abcdef]", "[[[sshmux-sudo-0123456789abcdef]", 0);
    expect_all_splits("[" MARK "x", "[x", 1);
    expect_all_splits("ends with a prefix [sshmux-su", "ends with a prefix [sshmux-su", 0);
    expect_all_splits("plain output\nno prompt\n", "plain output\nno prompt\n", 0);
}

static void test_only_one_line_end_dropped(void **state)
{
    (void)state;
    expect_all_splits(MARK "\n\nsecond\n", "\nsecond\n", 1);
}

static void test_command_quoted(void **state)
{
    (void)state;
    char *c = smx_sudo_command("echo 'hi'; id", "www data", MARK);
    assert_string_equal(c, "sudo -S -p '" MARK "' -u 'www data' -- sh -c 'echo '\\''hi'\\''; id'");
    free(c);
    c = smx_sudo_command("true", NULL, MARK);
    assert_string_equal(c, "sudo -S -p '" MARK "' -- sh -c 'true'");
    free(c);
    char m1[SMX_SUDO_MARKER_MAX], m2[SMX_SUDO_MARKER_MAX];
    smx_sudo_marker(m1);
    smx_sudo_marker(m2);
    assert_string_not_equal(m1, m2);
    assert_null(strchr(m1, '%'));   /* sudo expands % escapes in -p */
    assert_null(strchr(m1, '\''));
}

static void test_requiretty_message(void **state)
{
    (void)state;
    const char *m = "sudo: sorry, you must have a tty to run sudo\n";
    assert_true(smx_sudo_wants_tty(m, strlen(m)));
    assert_false(smx_sudo_wants_tty("sudo: a password is required\n", 29));
    assert_false(smx_sudo_wants_tty("", 0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prompt_removed),
        cmocka_unit_test(test_look_alikes_pass),
        cmocka_unit_test(test_only_one_line_end_dropped),
        cmocka_unit_test(test_command_quoted),
        cmocka_unit_test(test_requiretty_message),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
