#include "socks.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#define SOCKS_CMD_CONNECT 1
#define SOCKS5_ATYP_IPV4 1
#define SOCKS5_ATYP_DOMAIN 3
#define SOCKS5_ATYP_IPV6 4
#define SOCKS5_NO_AUTH 0x00
#define SOCKS5_NO_METHOD 0xff
#define SOCKS4_GRANTED 0x5a
#define SOCKS4_REJECTED 0x5b

void smx_socks_init(smx_socks *s)
{
    memset(s, 0, sizeof *s);
    s->state = SMX_SOCKS_GREETING;
}

static int socks_fail(smx_socks *s, const char *why, int code)
{
    s->state = SMX_SOCKS_FAILED;
    s->error = why;
    s->out_len = code < 0 ? 0 : smx_socks_reply(s, code, s->out);
    return -1;
}

/* A NUL-terminated field of at most 255 bytes starting at *off; advances past the NUL. 0 when
 * incomplete, -1 when too long. */
static int socks4_field(const uint8_t *buf, size_t len, size_t *off, char *out, size_t outlen)
{
    const uint8_t *nul = memchr(buf + *off, 0, len - *off);
    if (!nul)
        return len - *off > 255 ? -1 : 0;
    size_t n = (size_t)(nul - (buf + *off));
    if (n > 255 || n >= outlen)
        return -1;
    if (out) {
        memcpy(out, buf + *off, n);
        out[n] = '\0';
    }
    *off += n + 1;
    return 1;
}

/* VN=4 CD DSTPORT(2) DSTIP(4) USERID NUL [HOST NUL when DSTIP is 0.0.0.x, x != 0: SOCKS4a] */
static int socks4_parse(smx_socks *s, const uint8_t *buf, size_t len)
{
    s->version = 4;
    if (len < 9)
        return 0;
    size_t off = 8;
    int rc = socks4_field(buf, len, &off, NULL, 256);
    if (rc <= 0)
        return rc < 0 ? socks_fail(s, "SOCKS4 user id too long", SMX_SOCKS_GENERAL_FAILURE) : 0;
    s->port = buf[2] << 8 | buf[3];
    int is_4a = buf[4] == 0 && buf[5] == 0 && buf[6] == 0 && buf[7] != 0;
    if (is_4a) {
        rc = socks4_field(buf, len, &off, s->host, sizeof s->host);
        if (rc <= 0)
            return rc < 0 ? socks_fail(s, "SOCKS4a host name too long",
                                       SMX_SOCKS_GENERAL_FAILURE) : 0;
        if (!s->host[0])
            return socks_fail(s, "SOCKS4a empty host name", SMX_SOCKS_GENERAL_FAILURE);
    } else {
        inet_ntop(AF_INET, buf + 4, s->host, sizeof s->host);
    }
    if (buf[1] != SOCKS_CMD_CONNECT)
        return socks_fail(s, "SOCKS4 command other than CONNECT", SMX_SOCKS_CMD_UNSUPPORTED);
    s->state = SMX_SOCKS_REQUEST;
    return (int)off;
}

/* VER=5 NMETHODS METHODS...: only "no authentication" is offered back. */
static int socks5_greeting(smx_socks *s, const uint8_t *buf, size_t len)
{
    s->version = 5;
    if (len < 2 || len < 2u + buf[1])
        return 0;
    int consumed = 2 + buf[1];
    if (!memchr(buf + 2, SOCKS5_NO_AUTH, buf[1])) {
        s->state = SMX_SOCKS_FAILED;
        s->error = "SOCKS5 client offers no method without authentication";
        s->out[0] = 5;
        s->out[1] = SOCKS5_NO_METHOD;
        s->out_len = 2;
        return -1;
    }
    s->out[0] = 5;
    s->out[1] = SOCKS5_NO_AUTH;
    s->out_len = 2;
    s->state = SMX_SOCKS5_REQUEST;
    return consumed;
}

/* VER=5 CMD RSV ATYP DST.ADDR DST.PORT(2) */
static int socks5_request(smx_socks *s, const uint8_t *buf, size_t len)
{
    s->out_len = 0;
    if (len < 5)
        return 0;
    if (buf[0] != 5)
        return socks_fail(s, "SOCKS5 request with another version", SMX_SOCKS_GENERAL_FAILURE);
    size_t addr_len;
    switch (buf[3]) {
    case SOCKS5_ATYP_IPV4:
        addr_len = 4;
        break;
    case SOCKS5_ATYP_IPV6:
        addr_len = 16;
        break;
    case SOCKS5_ATYP_DOMAIN:
        addr_len = 1u + buf[4];
        break;
    default:
        return socks_fail(s, "SOCKS5 address type unknown", SMX_SOCKS_ATYP_UNSUPPORTED);
    }
    size_t total = 4 + addr_len + 2;
    if (len < total)
        return 0;
    const uint8_t *a = buf + 4;
    if (buf[3] == SOCKS5_ATYP_IPV4) {
        inet_ntop(AF_INET, a, s->host, sizeof s->host);
    } else if (buf[3] == SOCKS5_ATYP_IPV6) {
        inet_ntop(AF_INET6, a, s->host, sizeof s->host);
    } else {
        if (a[0] == 0 || memchr(a + 1, 0, a[0]))
            return socks_fail(s, "SOCKS5 host name empty or with a NUL",
                              SMX_SOCKS_GENERAL_FAILURE);
        memcpy(s->host, a + 1, a[0]);
        s->host[a[0]] = '\0';
    }
    s->port = buf[4 + addr_len] << 8 | buf[4 + addr_len + 1];
    if (buf[1] != SOCKS_CMD_CONNECT)
        return socks_fail(s, "SOCKS5 command other than CONNECT", SMX_SOCKS_CMD_UNSUPPORTED);
    s->state = SMX_SOCKS_REQUEST;
    return (int)total;
}

int smx_socks_parse(smx_socks *s, const uint8_t *buf, size_t len)
{
    s->out_len = 0;
    switch (s->state) {
    case SMX_SOCKS_GREETING:
        if (len == 0)
            return 0;
        if (buf[0] == 4)
            return socks4_parse(s, buf, len);
        if (buf[0] == 5)
            return socks5_greeting(s, buf, len);
        return socks_fail(s, "not a SOCKS request", -1);
    case SMX_SOCKS5_REQUEST:
        return socks5_request(s, buf, len);
    case SMX_SOCKS_REQUEST:
        return 0;
    case SMX_SOCKS_FAILED:
        return -1;
    }
    return -1;
}

int smx_socks_take(smx_socks *s, uint8_t *buf, size_t *len, size_t cap, smx_socks_send_fn send,
                   void *ud)
{
    for (;;) {
        int used = smx_socks_parse(s, buf, *len);
        if (used < 0) {
            if (s->out_len)
                send(ud, s->out, s->out_len);
            return -1;
        }
        if (used == 0) {
            if (*len < cap)
                return 0;
            s->state = SMX_SOCKS_FAILED;
            s->error = "SOCKS request too long";
            return -1;
        }
        memmove(buf, buf + used, *len - (size_t)used);
        *len -= (size_t)used;
        if (s->out_len && send(ud, s->out, s->out_len) < 0) {
            s->state = SMX_SOCKS_FAILED;
            s->error = "cannot answer the SOCKS client";
            return -1;
        }
        if (s->state == SMX_SOCKS_REQUEST)
            return 1;
    }
}

size_t smx_socks_reply(const smx_socks *s, int code, uint8_t out[10])
{
    if (s->version == 4) {
        /* VN=0 CD DSTPORT DSTIP: the bound address is not meaningful here, zeros as OpenSSH. */
        memset(out, 0, 8);
        out[1] = code == SMX_SOCKS_OK ? SOCKS4_GRANTED : SOCKS4_REJECTED;
        return 8;
    }
    /* VER REP RSV ATYP=IPv4 BND.ADDR=0.0.0.0 BND.PORT=0 */
    memset(out, 0, 10);
    out[0] = 5;
    out[1] = (uint8_t)code;
    out[3] = SOCKS5_ATYP_IPV4;
    return 10;
}

int smx_socks_code_for_refusal(const char *why)
{
    static const struct {
        const char *text;
        int code;
    } map[] = {
        {"administratively prohibited", SMX_SOCKS_NOT_ALLOWED},
        {"Connection refused", SMX_SOCKS_CONN_REFUSED},
        {"Network is unreachable", SMX_SOCKS_NET_UNREACHABLE},
        {"No route to host", SMX_SOCKS_HOST_UNREACHABLE},
        {"Host is unreachable", SMX_SOCKS_HOST_UNREACHABLE},
        /* The server's resolver (gai_strerror) on a name it cannot resolve. */
        {"Name or service not known", SMX_SOCKS_HOST_UNREACHABLE},
        {"No address associated with hostname", SMX_SOCKS_HOST_UNREACHABLE},
        {"Temporary failure in name resolution", SMX_SOCKS_HOST_UNREACHABLE},
        {"nodename nor servname", SMX_SOCKS_HOST_UNREACHABLE},
        {"name resolution", SMX_SOCKS_HOST_UNREACHABLE},
        {"unknown host", SMX_SOCKS_HOST_UNREACHABLE},
        {"timed out", SMX_SOCKS_HOST_UNREACHABLE},
    };
    for (size_t i = 0; why && i < sizeof map / sizeof *map; i++)
        if (strstr(why, map[i].text))
            return map[i].code;
    return SMX_SOCKS_GENERAL_FAILURE;
}

const char *smx_socks_code_text(int code)
{
    static const char *const text[] = {
        "succeeded", "general failure", "not allowed", "network unreachable",
        "host unreachable", "connection refused", "TTL expired", "command not supported",
        "address type not supported",
    };
    return code >= 0 && code < (int)(sizeof text / sizeof *text) ? text[code] : "unknown";
}
