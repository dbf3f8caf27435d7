/* send/expect's matcher (core/apps/expect.c) on PTY output, whatever its split into chunks:
 * ANSI escape sequences (CSI, OSC, charset selection), carriage returns, NULs and BELs removed;
 * the echo of what was sent recognised and left out (and never searched); a step ending at its
 * regex (output up to the match) or at the prompt at the start of the last line (output without
 * it); prompt detection as netmiko does (the last non-empty line); the last bytes for messages,
 * escaped, newest kept; and scripts of JSON lines, good and malformed (each error says what). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "expect.h"

/* Feeds `in` in chunks of `step` bytes; returns whether the step matched, output in out. */
static int feed(smx_expect_matcher *m, const char *in, size_t step)
{
    size_t n = strlen(in);
    int matched = 0;
    for (size_t off = 0; off < n && !matched; off += step)
        matched = smx_expect_feed(m, in + off, off + step <= n ? step : n - off);
    return matched;
}

/* One step over every split of `in`: matched or not as want_match, and the output wanted. */
static void step_all_splits(const char *sent, const char *regex, const char *prompt,
                            const char *in, int want_match, const char *want_out)
{
    for (size_t step = 1; step <= strlen(in) + 1; step++) {
        smx_expect_matcher m;
        smx_expect_init(&m, 0);
        assert_int_equal(smx_expect_begin(&m, sent, regex, prompt, NULL), 0);
        assert_int_equal(feed(&m, in, step), want_match);
        size_t len;
        const char *out = smx_expect_output(&m, &len);
        assert_int_equal(len, strlen(want_out));
        assert_memory_equal(out, want_out, len);
        smx_expect_free(&m);
    }
}

static void test_prompt_step_strips_echo_and_prompt(void **state)
{
    step_all_splits("echo hi\n", NULL, "sm>", "echo hi\r\nhi\r\nsm> ", 1, "hi\n");
    /* No output at all: only the echo and the prompt. */
    step_all_splits("true\n", NULL, "sm>", "true\r\nsm> ", 1, "");
    /* The prompt must start a line: "xsm> " is output, not the prompt. */
    step_all_splits("echo xsm\\>\n", NULL, "sm>", "echo xsm\\>\r\nxsm> ", 0, "xsm> ");
}

static void test_ansi_removed(void **state)
{
    /* bash's bracketed paste, colours, a window title (OSC to BEL and to ST), a charset. */
    step_all_splits("ls\n", NULL, "$",
                    "ls\r\n\x1b[?2004l\r\x1b[01;34mdir\x1b[0m  \x1b(Bfile\r\n"
                    "\x1b]0;title\x07\x1b]2;t2\x1b\\\x1b[?2004h$ ",
                    1, "dir  file\n");
    /* BELs go too, and NULs. */
    step_all_splits(NULL, "end", NULL, "a\x07" "bc end", 1, "abc end");
    smx_expect_matcher m;
    smx_expect_init(&m, 0);
    smx_expect_begin(&m, NULL, "b", NULL, NULL);
    assert_int_equal(smx_expect_feed(&m, "a\0\0b", 4), 1);
    size_t len;
    const char *out = smx_expect_output(&m, &len);
    assert_int_equal(len, 2);
    assert_memory_equal(out, "ab", 2);
    smx_expect_free(&m);
}

static void test_regex_after_the_echo_only(void **state)
{
    /* "hello" is in the echo: the match is the output's. */
    step_all_splits("echo hello\n", "hel+o", NULL, "echo hello\r\nhello\r\n$ ", 1, "hello");
    /* Not there yet: no match, the output is what came after the echo. */
    step_all_splits("echo hi\n", "never", NULL, "echo hi\r\nhi\r\n$ ", 0, "hi\n$ ");
    /* REG_NEWLINE: $ matches at a line's end. */
    step_all_splits(NULL, "^b$", NULL, "a\r\nb\r\nc", 1, "a\nb");
    /* Lines already searched are not searched again, unless the regex spans lines. */
    step_all_splits(NULL, "^c+d", NULL, "ab\r\ncc\r\nccd\r\n", 1, "ab\ncc\nccd");
    step_all_splits(NULL, "a\nb", NULL, "xa\r\nb", 1, "xa\nb");
}

/* A long output that never matches is searched once per line, not once per chunk from its
 * start: 8 MB in 4 KiB chunks takes a fraction of a second (searched from the start each time,
 * some seconds). */
static void test_long_output_searched_once(void **state)
{
    smx_expect_matcher m;
    smx_expect_init(&m, 0);
    smx_expect_begin(&m, NULL, "never", NULL, NULL);
    char chunk[4096];
    memset(chunk, 'y', sizeof chunk);
    for (size_t i = 63; i < sizeof chunk; i += 64)
        chunk[i] = '\n';
    clock_t t0 = clock();
    for (int i = 0; i < 2000; i++)
        assert_int_equal(smx_expect_feed(&m, chunk, sizeof chunk), 0);
    double s = (double)(clock() - t0) / CLOCKS_PER_SEC;
    if (s > 1.5)
        fail_msg("8 MB searched in %.2f s of CPU", s);
    assert_false(m.truncated);
    smx_expect_free(&m);
}

static void test_echo_absent(void **state)
{
    /* Other output first (or echo off): everything is the step's, searched from the start. */
    step_all_splits("secret\n", "ok", NULL, "Password ok", 1, "Password ok");
}

static void test_last_line_is_the_prompt(void **state)
{
    smx_expect_matcher m;
    smx_expect_init(&m, 0);
    smx_expect_begin(&m, NULL, NULL, NULL, NULL);
    assert_null(smx_expect_last_line(&m));
    const char *in = "Welcome\r\nmotd line\r\n\r\n  user@host:~$  \r\n\r\n";
    assert_int_equal(smx_expect_feed(&m, in, strlen(in)), 0);   /* no prompt: never matches */
    char *p = smx_expect_last_line(&m);
    assert_string_equal(p, "user@host:~$");
    free(p);
    smx_expect_free(&m);
}

static void test_tail_escaped_newest_kept(void **state)
{
    smx_expect_matcher m;
    smx_expect_init(&m, 0);
    smx_expect_begin(&m, NULL, "x", NULL, NULL);
    const char *in = "ab\"\\\r\n\x1b[0m\xc3\xa9";
    smx_expect_feed(&m, in, strlen(in));
    char out[64];
    smx_expect_tail(&m, out, sizeof out);
    assert_string_equal(out, "ab\\\"\\\\\\r\\n\\x1b[0m\\xc3\\xa9");
    smx_expect_tail(&m, out, 9);   /* 8 characters: the newest escapes that fit whole */
    assert_string_equal(out, "\\xc3\\xa9");
    /* Only the last SMX_EXPECT_TAIL bytes are kept. */
    char big[SMX_EXPECT_TAIL + 11];
    memset(big, 'a', 10);
    memset(big + 10, 'b', SMX_EXPECT_TAIL);
    big[sizeof big - 1] = '\0';
    smx_expect_begin(&m, NULL, "x", NULL, NULL);
    smx_expect_feed(&m, big, strlen(big));
    char all[4 * SMX_EXPECT_TAIL + 1];
    smx_expect_tail(&m, all, sizeof all);
    assert_int_equal(strlen(all), SMX_EXPECT_TAIL);
    assert_null(strchr(all, 'a'));
    smx_expect_free(&m);
}

static void test_bad_regex(void **state)
{
    smx_expect_matcher m;
    smx_expect_init(&m, 0);
    smx_err err = {{0}};
    assert_int_equal(smx_expect_begin(&m, NULL, "a(", NULL, &err), SMX_EINVAL);
    assert_non_null(strstr(err.msg, "a("));
    smx_expect_free(&m);
    smx_expect_step steps[] = {{"x\n", "ok", 0}, {NULL, "[z", 0}};
    smx_expect_opts o = {.steps = steps, .nsteps = 2};
    assert_int_equal(smx_expect_opts_check(&o, &err), SMX_EINVAL);
    assert_non_null(strstr(err.msg, "step 2"));
}

static void test_output_capped(void **state)
{
    smx_expect_matcher m;
    smx_expect_init(&m, 8);
    smx_expect_begin(&m, NULL, "never", NULL, NULL);
    smx_expect_feed(&m, "0123456789abc", 13);
    size_t len;
    const char *out = smx_expect_output(&m, &len);
    assert_int_equal(len, 8);
    assert_memory_equal(out, "01234567", 8);
    assert_true(m.truncated);
    smx_expect_free(&m);
}

/* ---- scripts ---------------------------------------------------------------------------------- */

static int add(smx_expect_script *s, const char *line, smx_err *err)
{
    return smx_expect_script_add_json(s, line, strlen(line), err);
}

static void test_script_lines(void **state)
{
    smx_expect_script s = {0};
    smx_err err = {{0}};
    assert_int_equal(add(&s, "{\"send\": \"ls\", \"expect\": \"\\\\$ $\", \"timeout\": 2.5}\n",
                         &err), 0);
    assert_int_equal(add(&s, "   \n", &err), 0);
    assert_int_equal(add(&s, "# a comment", &err), 0);
    assert_int_equal(add(&s, "{\"send_raw\": \"\\u0003\"}", &err), 0);
    assert_int_equal(add(&s, "{\"expect\": \"login:\"}", &err), 0);
    assert_int_equal(s.nsteps, 3);
    assert_string_equal(s.steps[0].send, "ls\n");
    assert_string_equal(s.steps[0].expect, "\\$ $");
    assert_int_equal(s.steps[0].timeout_ms, 2500);
    assert_string_equal(s.steps[1].send, "\x03");
    assert_null(s.steps[1].expect);
    assert_int_equal(s.steps[1].timeout_ms, 0);
    assert_null(s.steps[2].send);
    assert_string_equal(s.steps[2].expect, "login:");
    smx_expect_script_free(&s);
}

static void bad(const char *line, const char *why)
{
    smx_expect_script s = {0};
    smx_err err = {{0}};
    assert_int_equal(add(&s, line, &err), SMX_EINVAL);
    if (!strstr(err.msg, why))
        fail_msg("\"%s\": message \"%s\" lacks \"%s\"", line, err.msg, why);
    assert_int_equal(s.nsteps, 0);
    smx_expect_script_free(&s);
}

static void test_script_errors(void **state)
{
    bad("{\"send\": \"ls\"", "not JSON");
    bad("[\"ls\"]", "JSON object");
    bad("{\"sned\": \"ls\"}", "unknown key \"sned\"");
    bad("{\"send\": 3}", "\"send\" must be a string");
    bad("{\"send\": \"a\", \"send_raw\": \"b\"}", "not both");
    bad("{\"send\": \"a\", \"timeout\": 0}", "\"timeout\"");
    bad("{\"send\": \"a\", \"timeout\": \"5\"}", "\"timeout\"");
    bad("{\"expect\": \"(\"}", "\"expect\"");
    bad("{}", "needs");
    bad("{\"send\": \"a\\u0000b\"}", "NUL");
    bad("{\"send\": \"a\", \"send\": \"b\"}", "not JSON");
}

static void test_script_file_names_the_line(void **state)
{
    char path[] = "/tmp/test_expect_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *text = "{\"send\": \"one\"}\n\n{\"send\": \"two\", \"expect\": \"x\"}\n{bad\n";
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    smx_expect_script s = {0};
    smx_err err = {{0}};
    assert_int_equal(smx_expect_script_load(&s, path, &err), SMX_EINVAL);
    char want[64];
    snprintf(want, sizeof want, "%s:4: not JSON", path);
    assert_non_null(strstr(err.msg, want));
    assert_int_equal(s.nsteps, 2);
    smx_expect_script_free(&s);
    unlink(path);
    assert_int_equal(smx_expect_script_load(&s, path, &err), SMX_ENOENT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prompt_step_strips_echo_and_prompt),
        cmocka_unit_test(test_ansi_removed),
        cmocka_unit_test(test_regex_after_the_echo_only),
        cmocka_unit_test(test_echo_absent),
        cmocka_unit_test(test_long_output_searched_once),
        cmocka_unit_test(test_last_line_is_the_prompt),
        cmocka_unit_test(test_tail_escaped_newest_kept),
        cmocka_unit_test(test_bad_regex),
        cmocka_unit_test(test_output_capped),
        cmocka_unit_test(test_script_lines),
        cmocka_unit_test(test_script_errors),
        cmocka_unit_test(test_script_file_names_the_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
