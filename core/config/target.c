#ifndef _DEFAULT_SOURCE
#define _DEFAULT_SOURCE /* explicit_bzero, strndup and strncasecmp even under -std=c11 */
#endif
#include "target.h"
#include "numparse.h"
#include "strvec.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Error messages quote at most this much of the input, so the reason after it always fits in
 * smx_err's 256 bytes. */
#define TARGET_SHOWN_MAX 96
#define TARGET_PORT_MAX 65535

/* Where host and port sit inside the input; nothing is copied until the whole target is valid. */
struct target_hostport {
    const char *host;
    size_t host_len;
    int port;
};

/* A bounded writer for smx_target_display(). */
struct target_disp {
    char *buf;
    size_t size, len;
    int truncated;
};

static int target_is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int target_is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int target_is_control(char c)
{
    unsigned char u = (unsigned char)c;
    return u < 0x20 || u == 0x7f;
}

/* ---- display: quoting input in messages without leaking passwords or terminal escapes ---- */

static void target_disp_put(struct target_disp *d, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (d->len + 1 >= d->size) {
            d->truncated = 1;
            return;
        }
        d->buf[d->len++] = target_is_control(s[i]) ? '?' : s[i];
    }
}

static void target_disp_finish(struct target_disp *d)
{
    if (d->truncated && d->size >= 4)
        memcpy(d->buf + d->size - 4, "...", 3);
    d->buf[d->len] = '\0';
}

/* Length of the scheme when s starts with "scheme://" (RFC 3986 scheme syntax), else 0. */
static size_t target_scheme_len(const char *s)
{
    size_t i = 0;
    if (!target_is_alpha(s[0]))
        return 0;
    while (target_is_alpha(s[i]) || target_is_digit(s[i]) || s[i] == '+' || s[i] == '-' ||
           s[i] == '.')
        i++;
    return strncmp(s + i, "://", 3) == 0 ? i : 0;
}

/* Last occurrence of c in s[0..len), or NULL (memrchr is a GNU extension). */
static const char *target_last_char(const char *s, size_t len, char c)
{
    while (len > 0) {
        if (s[--len] == c)
            return s + len;
    }
    return NULL;
}

/* Finds the password of "scheme://user:password@host..." in s[0..len) (the user ends at the first
 * ':', the host starts after the last '@' before any '/', '?' or '#'). */
static int target_find_password(const char *s, size_t len, const char **pw, size_t *pwlen)
{
    size_t scheme = target_scheme_len(s);
    if (scheme == 0 || scheme + 3 > len)
        return 0;
    const char *auth = s + scheme + 3;
    size_t auth_len = 0, rest = len - scheme - 3;
    while (auth_len < rest && !strchr("/?#", auth[auth_len]))
        auth_len++;
    const char *at = target_last_char(auth, auth_len, '@');
    if (!at)
        return 0;
    const char *colon = memchr(auth, ':', (size_t)(at - auth));
    if (!colon)
        return 0;
    *pw = colon + 1;
    *pwlen = (size_t)(at - *pw);
    return 1;
}

/* One comma-separated element of the text being displayed. */
static void target_display_element(struct target_disp *d, const char *s, size_t len)
{
    const char *pw;
    size_t pwlen;
    if (target_find_password(s, len, &pw, &pwlen) && pwlen > 0) {
        target_disp_put(d, s, (size_t)(pw - s));
        target_disp_put(d, "***", 3);
        target_disp_put(d, pw + pwlen, len - (size_t)(pw - s) - pwlen);
    } else {
        target_disp_put(d, s, len);
    }
}

void smx_target_display(const char *s, char *buf, size_t size)
{
    if (!buf || size == 0)
        return;
    if (!s) {
        snprintf(buf, size, "(null)");
        return;
    }
    struct target_disp d = { buf, size, 0, 0 };
    /* Element by element: a ProxyJump list may hold several URLs. */
    for (;;) {
        size_t len = strcspn(s, ",");
        target_display_element(&d, s, len);
        if (!s[len])
            break;
        target_disp_put(&d, ",", 1);
        s += len + 1;
    }
    target_disp_finish(&d);
}

/* One target (not a list): commas are not separators here, so a password holding one is masked
 * whole. */
static void target_display_one(const char *s, char *buf, size_t size)
{
    struct target_disp d = { buf, size, 0, 0 };
    target_display_element(&d, s, strlen(s));
    target_disp_finish(&d);
}

/* A displayable copy of a slice of the input (port text, scheme name) for messages. */
static const char *target_show_slice(const char *s, size_t len, char *buf, size_t size)
{
    struct target_disp d = { buf, size, 0, 0 };
    target_disp_put(&d, s, len);
    target_disp_finish(&d);
    return buf;
}

__attribute__((format(printf, 4, 5)))
static int target_error(smx_err *err, int code, const char *shown, const char *fmt, ...)
{
    char reason[SMX_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    return smx_seterr(err, code, "target \"%s\": %s", shown, reason);
}

/* ---- pieces ---- */

static int target_parse_port(const char *shown, const char *p, size_t len, int *port,
                             smx_err *err)
{
    char text[24];
    unsigned long long value;
    if (len == 0)
        return target_error(err, SMX_EINVAL, shown, "missing port number after ':'");
    int rc = smx_num_parse(p, len, 1, TARGET_PORT_MAX, &value);
    if (rc == SMX_EINVAL)
        return target_error(err, SMX_EINVAL, shown, "port \"%s\" is not a number",
                            target_show_slice(p, len, text, sizeof text));
    if (rc < 0)
        return target_error(err, SMX_ERANGE, shown, "port %s out of range (1-%d)",
                            target_show_slice(p, len, text, sizeof text), TARGET_PORT_MAX);
    *port = (int)value;
    return 0;
}

static int target_check_host(const char *shown, const char *host, size_t len, smx_err *err)
{
    if (len == 0)
        return target_error(err, SMX_EINVAL, shown, "empty host");
    for (size_t i = 0; i < len; i++) {
        if (target_is_control(host[i]) || host[i] == ' ')
            return target_error(err, SMX_EINVAL, shown,
                                "host contains a space or control character");
        if (host[i] == '[' || host[i] == ']')
            return target_error(err, SMX_EINVAL, shown,
                                "unexpected '%c' in host (unexpanded hostlist range?)", host[i]);
    }
    return 0;
}

static int target_check_user(const char *shown, const char *user, size_t len, smx_err *err)
{
    if (len == 0)
        return target_error(err, SMX_EINVAL, shown, "empty user before '@'");
    for (size_t i = 0; i < len; i++) {
        if (target_is_control(user[i]))
            return target_error(err, SMX_EINVAL, shown, "user contains a control character");
    }
    return 0;
}

/* "[addr]" or "[addr]:port"; p[0] is '['. */
static int target_split_bracketed(const char *shown, const char *p, size_t len,
                                  struct target_hostport *hp, smx_err *err)
{
    const char *close = memchr(p, ']', len);
    if (!close)
        return target_error(err, SMX_EINVAL, shown, "'[' without matching ']'");
    hp->host = p + 1;
    hp->host_len = (size_t)(close - hp->host);
    const char *rest = close + 1;
    size_t rest_len = len - (size_t)(rest - p);
    int rc = target_check_host(shown, hp->host, hp->host_len, err);
    if (rc < 0 || rest_len == 0)
        return rc;
    if (rest[0] != ':')
        return target_error(err, SMX_EINVAL, shown, "unexpected text after ']'");
    return target_parse_port(shown, rest + 1, rest_len - 1, &hp->port, err);
}

/* host, host:port, [addr], [addr]:port and (plain form only) a bare IPv6 address. */
static int target_split_hostport(const char *shown, const char *p, size_t len, int allow_bare_v6,
                                 struct target_hostport *hp, smx_err *err)
{
    memset(hp, 0, sizeof *hp);
    const char *open = memchr(p, '[', len);
    if (open && !memchr(open, ']', len - (size_t)(open - p)))
        return target_error(err, SMX_EINVAL, shown, "'[' without matching ']'");
    if (len > 0 && p[0] == '[')
        return target_split_bracketed(shown, p, len, hp, err);

    size_t colons = 0;
    const char *colon = NULL;
    for (size_t i = 0; i < len; i++) {
        if (p[i] == ':') {
            colons++;
            colon = p + i;
        }
    }
    hp->host = p;
    hp->host_len = len;
    if (colons > 1 && !allow_bare_v6)
        return target_error(err, SMX_EINVAL, shown, "IPv6 address must be enclosed in '[...]'");
    if (colons != 1) /* none, or a bare IPv6 address: no port possible */
        return target_check_host(shown, p, len, err);
    hp->host_len = (size_t)(colon - p);
    int rc = target_check_host(shown, hp->host, hp->host_len, err);
    if (rc < 0)
        return rc;
    return target_parse_port(shown, colon + 1, len - hp->host_len - 1, &hp->port, err);
}

static int target_hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes %XX escapes of s[0..len) into a new string in *out. %00 is refused because the result
 * is a C string: a NUL would silently cut the user name or password short. */
static int target_pct_decode(const char *shown, const char *what, const char *s, size_t len,
                             char **out, smx_err *err)
{
    char *d = malloc(len + 1);
    size_t n = 0;
    if (!d)
        return smx_seterr(err, SMX_ENOMEM, "out of memory");
    for (size_t i = 0; i < len; i++) {
        if (s[i] != '%') {
            d[n++] = s[i];
            continue;
        }
        int hi = i + 2 < len ? target_hex_value(s[i + 1]) : -1;
        int lo = i + 2 < len ? target_hex_value(s[i + 2]) : -1;
        if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
            smx_wipe_free(d, len + 1); /* may hold part of a password */
            if (hi == 0 && lo == 0)
                return target_error(err, SMX_EINVAL, shown, "%%00 is not allowed in %s", what);
            return target_error(err, SMX_EINVAL, shown, "invalid percent-encoding in %s", what);
        }
        d[n++] = (char)(hi * 16 + lo);
        i += 2;
    }
    d[n] = '\0';
    *out = d;
    return 0;
}

/* ---- the two syntaxes ---- */

static int target_parse_plain(const char *s, const char *shown, smx_target_spec *out,
                              smx_err *err)
{
    const char *hostport = s;
    const char *at = strrchr(s, '@');
    struct target_hostport hp;
    int rc;
    if (at) {
        rc = target_check_user(shown, s, (size_t)(at - s), err);
        if (rc < 0)
            return rc;
        hostport = at + 1;
    }
    rc = target_split_hostport(shown, hostport, strlen(hostport), 1, &hp, err);
    if (rc < 0)
        return rc;
    if (at && !(out->user = strndup(s, (size_t)(at - s))))
        return smx_seterr(err, SMX_ENOMEM, "out of memory");
    if (!(out->host = strndup(hp.host, hp.host_len)))
        return smx_seterr(err, SMX_ENOMEM, "out of memory");
    out->port = hp.port;
    return 0;
}

/* "user" or "user:password" of a URL, percent-decoded. */
static int target_parse_userinfo(const char *shown, const char *ui, size_t len,
                                 smx_target_spec *out, smx_err *err)
{
    const char *colon = memchr(ui, ':', len);
    size_t user_len = colon ? (size_t)(colon - ui) : len;
    if (user_len == 0)
        return target_error(err, SMX_EINVAL, shown, "empty user before '@'");
    int rc = target_pct_decode(shown, "user", ui, user_len, &out->user, err);
    if (rc < 0)
        return rc;
    rc = target_check_user(shown, out->user, strlen(out->user), err);
    if (rc < 0 || !colon)
        return rc;
    return target_pct_decode(shown, "password", colon + 1, len - user_len - 1, &out->password,
                             err);
}

static int target_parse_url(const char *s, size_t scheme_len, const char *shown,
                            smx_target_spec *out, smx_err *err)
{
    char scheme[24];
    if (scheme_len != 3 || strncasecmp(s, "ssh", 3) != 0)
        return target_error(err, SMX_EINVAL, shown,
                            "unsupported URL scheme \"%s\" (only ssh:// is supported)",
                            target_show_slice(s, scheme_len, scheme, sizeof scheme));
    out->from_url = 1;
    const char *auth = s + scheme_len + 3;
    size_t auth_len = strcspn(auth, "/?#");
    if (auth[auth_len] != '\0' && strcmp(auth + auth_len, "/") != 0)
        return target_error(err, SMX_EINVAL, shown,
                            "only a trailing '/' may follow the host in an ssh:// URL");
    /* Lists split at commas before anything else (-w, ProxyJump), so a raw comma here could
     * never have come through one: it would cut the password in two there. */
    if (memchr(auth, ',', auth_len))
        return target_error(err, SMX_EINVAL, shown,
                            "a ',' separates targets; inside a URL write it as %%2C");
    const char *hostport = auth;
    const char *at = target_last_char(auth, auth_len, '@');
    int rc;
    if (at) {
        rc = target_parse_userinfo(shown, auth, (size_t)(at - auth), out, err);
        if (rc < 0)
            return rc;
        hostport = at + 1;
    }
    struct target_hostport hp;
    rc = target_split_hostport(shown, hostport, auth_len - (size_t)(hostport - auth), 0, &hp, err);
    if (rc < 0)
        return rc;
    /* Decoded so that RFC 6874 zone identifiers ("[fe80::1%25eth0]") work. */
    rc = target_pct_decode(shown, "host", hp.host, hp.host_len, &out->host, err);
    if (rc < 0)
        return rc;
    out->port = hp.port;
    return target_check_host(shown, out->host, strlen(out->host), err);
}

int smx_target_parse(const char *s, smx_target_spec *out, smx_err *err)
{
    char shown[TARGET_SHOWN_MAX];
    if (!out)
        return smx_seterr(err, SMX_EINVAL, "target: no output spec given");
    memset(out, 0, sizeof *out);
    if (!s)
        return smx_seterr(err, SMX_EINVAL, "target: NULL string");
    target_display_one(s, shown, sizeof shown);
    size_t scheme_len = target_scheme_len(s);
    int rc = scheme_len ? target_parse_url(s, scheme_len, shown, out, err)
                        : target_parse_plain(s, shown, out, err);
    if (rc < 0)
        smx_target_spec_free(out);
    return rc;
}

void smx_target_strip_in_place(char *s)
{
    size_t total = strlen(s), w = 0, r = 0;
    for (;;) {
        size_t len = strcspn(s + r, ",");
        const char *pw;
        size_t pwlen;
        if (target_find_password(s + r, len, &pw, &pwlen)) {
            size_t head = (size_t)(pw - (s + r)) - 1; /* up to the ':' */
            memmove(s + w, s + r, head);
            memmove(s + w + head, pw + pwlen, len - head - 1 - pwlen);
            w += len - 1 - pwlen;
        } else {
            memmove(s + w, s + r, len);
            w += len;
        }
        r += len;
        if (!s[r])
            break;
        s[w++] = ',';
        r++;
    }
    explicit_bzero(s + w, total - w);
}

int smx_target_take_password(const char *s, char **stripped, char **password, smx_err *err)
{
    char shown[TARGET_SHOWN_MAX];
    const char *pw;
    size_t pwlen, len = strlen(s);
    *stripped = *password = NULL;
    if (!target_find_password(s, len, &pw, &pwlen))
        return (*stripped = strdup(s)) ? 0 : smx_seterr(err, SMX_ENOMEM, "out of memory");
    smx_target_display(s, shown, sizeof shown);
    int rc = target_pct_decode(shown, "password", pw, pwlen, password, err);
    if (rc < 0)
        return rc;
    /* Drop ":password": the ':' before it goes too. */
    size_t head = (size_t)(pw - s) - 1;
    if (!(*stripped = malloc(len - pwlen))) {
        smx_str_wipe_free(*password);
        *password = NULL;
        return smx_seterr(err, SMX_ENOMEM, "out of memory");
    }
    memcpy(*stripped, s, head);
    memcpy(*stripped + head, pw + pwlen, len - head - 1 - pwlen + 1);
    return 0;
}

void smx_target_spec_free(smx_target_spec *t)
{
    if (!t)
        return;
    smx_str_wipe_free(t->password);
    free(t->user);
    free(t->host);
    memset(t, 0, sizeof *t);
}
