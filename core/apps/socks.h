/* SOCKS 4, 4a and 5 (RFC 1928; no authentication, CONNECT only) as a server reads them: pure
 * parsing and reply building, no I/O, so the -D listener (requests from a local socket) and the
 * reverse proxy of `-R [bind:]port` (requests arriving over a channel) share it, and a fuzzer can
 * drive it.
 *
 * The caller keeps the bytes received so far and calls smx_socks_parse on all of them after each
 * read. A SOCKS5 client speaks twice (method selection, then its request): each complete message
 * is consumed and answered in turn. Once the request is parsed (SMX_SOCKS_REQUEST), the caller
 * connects and answers with smx_socks_reply. */
#ifndef SSHMUX_SOCKS_H
#define SSHMUX_SOCKS_H

#include <stddef.h>
#include <stdint.h>

enum smx_socks_state {
    SMX_SOCKS_GREETING,   /* waiting for a SOCKS4 request or a SOCKS5 method selection */
    SMX_SOCKS5_REQUEST,   /* SOCKS5: method chosen, waiting for the request */
    SMX_SOCKS_REQUEST,    /* a CONNECT request is parsed: host and port are set */
    SMX_SOCKS_FAILED      /* refused: send `out`, then close */
};

/* SOCKS5 reply codes (RFC 1928 section 6). SOCKS4 has one failure code for all of them. */
enum smx_socks_code {
    SMX_SOCKS_OK = 0,
    SMX_SOCKS_GENERAL_FAILURE = 1,
    SMX_SOCKS_NOT_ALLOWED = 2,
    SMX_SOCKS_NET_UNREACHABLE = 3,
    SMX_SOCKS_HOST_UNREACHABLE = 4,
    SMX_SOCKS_CONN_REFUSED = 5,
    SMX_SOCKS_TTL_EXPIRED = 6,
    SMX_SOCKS_CMD_UNSUPPORTED = 7,
    SMX_SOCKS_ATYP_UNSUPPORTED = 8
};

#define SMX_SOCKS_MAX_MESSAGE 600   /* the longest request a client may send (SOCKS4a) */

typedef struct smx_socks {
    enum smx_socks_state state;
    int version;                    /* 4 or 5, once known */
    char host[256];                 /* IPv4/IPv6 text or a domain name (resolved remotely) */
    int port;
    uint8_t out[16];                /* what to send now: a method choice or a refusal */
    size_t out_len;
    const char *error;              /* why it failed, for logs (static text) */
} smx_socks;

void smx_socks_init(smx_socks *s);
/* Parses the next message in buf[0..len). Returns the bytes it consumed (> 0: act on s->state and
 * send s->out_len bytes of s->out), 0 when the message is incomplete (read more), or -1 when the
 * request is malformed or refused (s->state SMX_SOCKS_FAILED; send s->out if any, then close). */
int smx_socks_parse(smx_socks *s, const uint8_t *buf, size_t len);
/* What a server does with the bytes a client sent so far, buf[0..*len) of `cap`: parses each
 * complete message, sends its answer with send(ud, bytes, n) (0, or < 0 when it could not go),
 * and drops it from buf. Returns 1 once the request is parsed (buf then holds what the client
 * sent after it), 0 to read more, -1 to close the client (s->error says why; a refusal the
 * protocol has was sent first; a request longer than cap gets none). Both listeners (-D, and
 * -R's reverse proxy) take their requests through it. */
typedef int (*smx_socks_send_fn)(void *ud, const uint8_t *p, size_t n);
int smx_socks_take(smx_socks *s, uint8_t *buf, size_t *len, size_t cap, smx_socks_send_fn send,
                   void *ud);
/* The answer to a parsed request: code is an enum smx_socks_code (SMX_SOCKS_OK: connected).
 * Writes at most 10 bytes to out; returns how many. */
size_t smx_socks_reply(const smx_socks *s, int code, uint8_t out[10]);
/* The SOCKS5 code for a channel-open refusal as the connection layer words it ("channel refused:
 * connect failed (Connection refused)"): the server's open-failure reason and text mapped to
 * what the client can act on; unknown ones are a general failure. */
int smx_socks_code_for_refusal(const char *why);
/* "connection refused" etc., for messages. */
const char *smx_socks_code_text(int code);

#endif
