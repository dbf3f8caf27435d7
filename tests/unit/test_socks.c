/* SOCKS 4/4a/5 request parsing and replies (core/apps/socks.c): each version's CONNECT, requests
 * split across reads, the refusals a client must get (BIND, UDP ASSOCIATE, no acceptable method,
 * unknown address type, garbage), and the SOCKS5 code chosen for each way a server words an
 * open failure. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "socks.h"

#define MSG(s) (const uint8_t *)(s), sizeof(s) - 1

static void test_socks5_domain_connect(void **state)
{
    (void)state;
    smx_socks s;
    smx_socks_init(&s);
    assert_int_equal(smx_socks_parse(&s, MSG("\x05\x02\x02\x00")), 4);
    assert_int_equal(s.state, SMX_SOCKS5_REQUEST);
    assert_int_equal(s.out_len, 2);
    assert_memory_equal(s.out, "\x05\x00", 2);
    /* The request, one byte short: nothing yet. */
    assert_int_equal(smx_socks_parse(&s, MSG("\x05\x01\x00\x03\x09localhost\x00")), 0);
    assert_int_equal(smx_socks_parse(&s, MSG("\x05\x01\x00\x03\x09localhost\x00\x50")), 16);
    assert_int_equal(s.state, SMX_SOCKS_REQUEST);
    assert_string_equal(s.host, "localhost");
    assert_int_equal(s.port, 80);
    uint8_t r[10];
    assert_int_equal(smx_socks_reply(&s, SMX_SOCKS_OK, r), 10);
    assert_memory_equal(r, "\x05\x00\x00\x01\0\0\0\0\0\0", 10);
    assert_int_equal(smx_socks_reply(&s, SMX_SOCKS_CONN_REFUSED, r), 10);
    assert_int_equal(r[1], 5);
}

static void test_socks5_ipv4_and_ipv6(void **state)
{
    (void)state;
    smx_socks s;
    smx_socks_init(&s);
    assert_int_equal(smx_socks_parse(&s, MSG("\x05\x01\x00")), 3);
    assert_int_equal(smx_socks_parse(&s, MSG("\x05\x01\x00\x01\x7f\x00\x00\x01\x1f\x90")), 10);
    assert_string_equal(s.host, "127.0.0.1");
    assert_int_equal(s.port, 8080);
    smx_socks_init(&s);
    assert_int_equal(smx_socks_parse(&s, MSG("\x05\x01\x00")), 3);
    assert_int_equal(smx_socks_parse(&s, MSG("\x05\x01\x00\x04\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\x01"
                                             "\x01\xbb")), 22);
    assert_string_equal(s.host, "::1");
    assert_int_equal(s.port, 443);
}

static void test_socks4_and_4a(void **state)
{
    (void)state;
    smx_socks s;
    smx_socks_init(&s);
    assert_int_equal(smx_socks_parse(&s, MSG("\x04\x01\x00\x50\x0a\x00\x00\x02user")), 0);
    assert_int_equal(smx_socks_parse(&s, MSG("\x04\x01\x00\x50\x0a\x00\x00\x02user\x00")), 13);
    assert_int_equal(s.state, SMX_SOCKS_REQUEST);
    assert_string_equal(s.host, "10.0.0.2");
    uint8_t r[10];
    assert_int_equal(smx_socks_reply(&s, SMX_SOCKS_OK, r), 8);
    assert_int_equal(r[1], 0x5a);
    assert_int_equal(smx_socks_reply(&s, SMX_SOCKS_HOST_UNREACHABLE, r), 8);
    assert_int_equal(r[1], 0x5b);
    smx_socks_init(&s);
    assert_int_equal(smx_socks_parse(&s, MSG("\x04\x01\x00\x50\x00\x00\x00\x01\x00" "db.example\x00")),
                     20);
    assert_string_equal(s.host, "db.example");
}

static void test_refusals(void **state)
{
    (void)state;
    smx_socks s;
    smx_socks_init(&s);
    /* Only username/password offered: "no acceptable methods". */
    assert_int_equal(smx_socks_parse(&s, MSG("\x05\x01\x02")), -1);
    assert_int_equal(s.state, SMX_SOCKS_FAILED);
    assert_memory_equal(s.out, "\x05\xff", 2);
    /* BIND and UDP ASSOCIATE: command not supported. */
    for (int cmd = 2; cmd <= 3; cmd++) {
        smx_socks_init(&s);
        assert_int_equal(smx_socks_parse(&s, MSG("\x05\x01\x00")), 3);
        uint8_t req[] = {5, (uint8_t)cmd, 0, 1, 127, 0, 0, 1, 0, 80};
        assert_int_equal(smx_socks_parse(&s, req, sizeof req), -1);
        assert_int_equal(s.out_len, 10);
        assert_int_equal(s.out[1], SMX_SOCKS_CMD_UNSUPPORTED);
    }
    smx_socks_init(&s);
    assert_int_equal(smx_socks_parse(&s, MSG("\x04\x02\x00\x50\x7f\x00\x00\x01\x00")), -1);
    assert_int_equal(s.out[1], 0x5b);
    /* Unknown address type. */
    smx_socks_init(&s);
    assert_int_equal(smx_socks_parse(&s, MSG("\x05\x01\x00")), 3);
    assert_int_equal(smx_socks_parse(&s, MSG("\x05\x01\x00\x07\x00")), -1);
    assert_int_equal(s.out[1], SMX_SOCKS_ATYP_UNSUPPORTED);
    /* Not SOCKS at all (an HTTP request): closed without a reply. */
    smx_socks_init(&s);
    assert_int_equal(smx_socks_parse(&s, MSG("GET / HTTP/1.1\r\n")), -1);
    assert_int_equal(s.out_len, 0);
    /* A SOCKS4 user id that never ends. */
    uint8_t longid[8 + 300];
    memcpy(longid, "\x04\x01\x00\x50\x7f\x00\x00\x01", 8);
    memset(longid + 8, 'a', 300);
    smx_socks_init(&s);
    assert_int_equal(smx_socks_parse(&s, longid, sizeof longid), -1);
}

static void test_refusal_codes(void **state)
{
    (void)state;
    assert_int_equal(smx_socks_code_for_refusal("channel refused: connect failed (Connection "
                                                "refused)"), SMX_SOCKS_CONN_REFUSED);
    assert_int_equal(smx_socks_code_for_refusal("channel refused: connect failed (Name or "
                                                "service not known)"),
                     SMX_SOCKS_HOST_UNREACHABLE);
    assert_int_equal(smx_socks_code_for_refusal("channel refused: connect failed (Network is "
                                                "unreachable)"), SMX_SOCKS_NET_UNREACHABLE);
    assert_int_equal(smx_socks_code_for_refusal("channel refused: administratively prohibited "
                                                "(open failed)"), SMX_SOCKS_NOT_ALLOWED);
    assert_int_equal(smx_socks_code_for_refusal("something else"), SMX_SOCKS_GENERAL_FAILURE);
    assert_int_equal(smx_socks_code_for_refusal(NULL), SMX_SOCKS_GENERAL_FAILURE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_socks5_domain_connect),
        cmocka_unit_test(test_socks5_ipv4_and_ipv6),
        cmocka_unit_test(test_socks4_and_4a),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_refusal_codes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
