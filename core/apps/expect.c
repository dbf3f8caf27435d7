/* send/expect's matcher (expect.h) and scripts of steps (the public smx_expect_script_*). */
#include "expect.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

/* ---- the cleaner: ANSI escape sequences, \r, NUL and BEL out ------------------------------ */

enum {
    ESC_NONE,
    ESC_START,     /* ESC seen */
    ESC_CSI,       /* ESC [ params... final */
    ESC_STRING,    /* OSC (ESC ]) and DCS/SOS/PM/APC: up to BEL or ST (ESC \) */
    ESC_STRING_ESC,
    ESC_INTER      /* ESC, intermediates 0x20-0x2f, then one final byte (charset selection) */
};

#define ESC_STRING_MAX 512   /* an unterminated string stops hiding the output after this */

static int expect_keep(smx_expect_matcher *m, char c)
{
    if (m->text.len >= m->max) {
        m->truncated = 1;
        return 0;
    }
    return smx_buf_append(&m->text, &c, 1, m->max) ? -1 : 0;
}

/* One byte through the cleaner's state machine. */
static void expect_clean_byte(smx_expect_matcher *m, unsigned char c)
{
    switch (m->esc) {
    case ESC_START:
        m->esc_len = 0;
        if (c == '[')
            m->esc = ESC_CSI;
        else if (c == ']' || c == 'P' || c == 'X' || c == '^' || c == '_')
            m->esc = ESC_STRING;
        else if (c >= 0x20 && c <= 0x2f)
            m->esc = ESC_INTER;
        else
            m->esc = ESC_NONE;   /* a two-byte sequence (ESC =, ESC 7, ...) */
        return;
    case ESC_CSI:
        if (c >= 0x20 && c <= 0x3f)
            return;
        m->esc = ESC_NONE;
        if (c >= 0x40 && c <= 0x7e)
            return;
        break;   /* not a CSI byte: the sequence is over and the byte is text */
    case ESC_INTER:
        if (c < 0x20 || c > 0x2f)
            m->esc = ESC_NONE;
        return;
    case ESC_STRING_ESC:
        if (c == '\\') {
            m->esc = ESC_NONE;
            return;
        }
        m->esc = ESC_START;
        expect_clean_byte(m, c);
        return;
    case ESC_STRING:
        if (c == 0x07)
            m->esc = ESC_NONE;
        else if (c == 0x1b)
            m->esc = ESC_STRING_ESC;
        else if (++m->esc_len > ESC_STRING_MAX)
            m->esc = ESC_NONE;
        return;
    default:
        break;
    }
    if (c == 0x1b)
        m->esc = ESC_START;
    else if (c != '\r' && c != '\0' && c != 0x07)
        expect_keep(m, (char)c);
}

/* ---- the matcher --------------------------------------------------------------------------- */

void smx_expect_init(smx_expect_matcher *m, size_t max)
{
    memset(m, 0, sizeof *m);
    m->max = max ? max : (size_t)8 << 20;
}

static void expect_end_step(smx_expect_matcher *m)
{
    if (m->have_re)
        regfree(&m->re);
    m->have_re = 0;
    free(m->echo);
    free(m->prompt);
    m->echo = m->prompt = NULL;
}

void smx_expect_free(smx_expect_matcher *m)
{
    expect_end_step(m);
    smx_buf_free(&m->text);
    smx_buf_free(&m->out);
}

/* What the terminal echoes of `sent`, as the cleaner leaves it: \r and NULs gone, the last
 * newline (the Enter) not part of it. */
static char *expect_echo_of(const char *sent, size_t *len)
{
    size_t n = strlen(sent), o = 0;
    char *e = malloc(n + 1);
    if (!e)
        return NULL;
    for (size_t i = 0; i < n; i++)
        if (sent[i] != '\r')
            e[o++] = sent[i];
    if (o && e[o - 1] == '\n')
        o--;
    e[o] = '\0';
    *len = o;
    return e;
}

int smx_expect_begin(smx_expect_matcher *m, const char *sent, const char *regex,
                     const char *prompt, smx_err *err)
{
    expect_end_step(m);
    m->esc = ESC_NONE;
    m->text.len = 0;
    m->truncated = m->matched = 0;
    m->tail_n = m->tail_at = 0;
    m->body = m->match_end = m->scan_from = 0;
    m->echo_state = sent ? SMX_ECHO_PENDING : SMX_ECHO_ABSENT;
    if (sent && !(m->echo = expect_echo_of(sent, &m->echo_len)))
        return smx_seterr(err, SMX_ENOMEM, "out of memory");
    if (regex) {
        int rc = regcomp(&m->re, regex, REG_EXTENDED | REG_NEWLINE);
        if (rc != 0) {
            char why[128];
            regerror(rc, &m->re, why, sizeof why);
            return smx_seterr(err, SMX_EINVAL, "regex \"%s\": %s", regex, why);
        }
        m->have_re = 1;
        m->re_lines = strchr(regex, '\n') == NULL;   /* REG_NEWLINE: only a literal one could */
    } else if (prompt && !(m->prompt = strdup(prompt))) {
        return smx_seterr(err, SMX_ENOMEM, "out of memory");
    }
    return 0;
}

/* Where the echo of the sent text ends: known once the text holds the echo and its line end,
 * or once it differs from them (no echo: the terminal's echo is off, or other output came
 * first). */
static void expect_find_echo(smx_expect_matcher *m)
{
    if (m->echo_state != SMX_ECHO_PENDING || m->text.len == 0)
        return;
    size_t want = m->echo_len + 1, have = m->text.len < want ? m->text.len : want;
    int same = memcmp(m->text.data, m->echo, have < m->echo_len ? have : m->echo_len) == 0 &&
               (have < want || m->text.data[m->echo_len] == '\n');
    if (!same) {
        m->echo_state = SMX_ECHO_ABSENT;
        m->body = 0;
    } else if (have == want) {
        m->echo_state = SMX_ECHO_FOUND;
        m->body = want;
    }
}

/* Without a regex: the text after the echo ends with the prompt (spaces after it allowed), at
 * the start of a line. Returns where the prompt starts, or (size_t)-1. */
static size_t expect_prompt_at(const smx_expect_matcher *m)
{
    const char *t = m->text.data + m->body;
    size_t n = m->text.len - m->body, pl = strlen(m->prompt);
    while (n && (t[n - 1] == ' ' || t[n - 1] == '\t'))
        n--;
    if (pl == 0 || n < pl || memcmp(t + n - pl, m->prompt, pl) != 0)
        return (size_t)-1;
    if (n > pl && t[n - pl - 1] != '\n')
        return (size_t)-1;
    return m->body + n - pl;
}

static int expect_check(smx_expect_matcher *m)
{
    expect_find_echo(m);
    if (m->echo_state == SMX_ECHO_PENDING || m->text.len == 0)
        return 0;
    if (m->have_re) {
        /* Complete lines searched before need no second look: a long output is not searched
         * again from its start for every chunk. */
        size_t from = m->scan_from > m->body ? m->scan_from : m->body;
        regmatch_t rm;
        if (regexec(&m->re, m->text.data + from, 1, &rm, 0) == 0) {
            m->match_end = from + (size_t)rm.rm_eo;
            return 1;
        }
        if (m->re_lines) {
            const char *nl = memrchr(m->text.data + from, '\n', m->text.len - from);
            if (nl)
                m->scan_from = (size_t)(nl - m->text.data) + 1;
        }
        return 0;
    }
    if (!m->prompt)
        return 0;
    size_t at = expect_prompt_at(m);
    if (at == (size_t)-1)
        return 0;
    m->match_end = at;
    return 1;
}

int smx_expect_feed(smx_expect_matcher *m, const char *p, size_t n)
{
    if (m->matched)
        return 1;
    for (size_t i = 0; i < n; i++) {
        m->tail[m->tail_at] = p[i];
        m->tail_at = (m->tail_at + 1) % SMX_EXPECT_TAIL;
        if (m->tail_n < SMX_EXPECT_TAIL)
            m->tail_n++;
        expect_clean_byte(m, (unsigned char)p[i]);
    }
    if (m->text.data)
        m->text.data[m->text.len] = '\0';   /* regexec reads a C string */
    m->matched = expect_check(m);
    return m->matched;
}

const char *smx_expect_output(smx_expect_matcher *m, size_t *len)
{
    size_t from = m->echo_state == SMX_ECHO_FOUND ? m->body : 0, to = m->text.len;
    if (m->echo_state == SMX_ECHO_PENDING)
        from = to;   /* only (part of) the echo came */
    if (m->matched)
        to = m->match_end;
    m->out.len = 0;
    if (to > from)
        smx_buf_append(&m->out, m->text.data + from, to - from, SIZE_MAX);
    *len = m->out.len;
    return m->out.data ? m->out.data : "";
}

/* One byte as the message shows it: printable ASCII as it is, the rest in C escapes. */
static size_t expect_escape(unsigned char c, char e[5])
{
    if (c == '\n')
        return (size_t)snprintf(e, 5, "\\n");
    if (c == '\r')
        return (size_t)snprintf(e, 5, "\\r");
    if (c == '\t')
        return (size_t)snprintf(e, 5, "\\t");
    if (c == '\\' || c == '"')
        return (size_t)snprintf(e, 5, "\\%c", c);
    if (c < 0x20 || c >= 0x7f)
        return (size_t)snprintf(e, 5, "\\x%02x", c);
    return (size_t)snprintf(e, 5, "%c", c);
}

void smx_expect_tail(const smx_expect_matcher *m, char *out, size_t cap)
{
    if (cap == 0)
        return;
    /* Newest first, from the end of out: what does not fit is the oldest. */
    size_t o = cap - 1;
    out[o] = '\0';
    for (size_t i = 0; i < m->tail_n; i++) {
        unsigned char c = (unsigned char)m->tail[(m->tail_at + SMX_EXPECT_TAIL - 1 - i) %
                                                 SMX_EXPECT_TAIL];
        char e[5];
        size_t el = expect_escape(c, e);
        if (el > o)
            break;
        o -= el;
        memcpy(out + o, e, el);
    }
    memmove(out, out + o, cap - o);
}

char *smx_expect_last_line(const smx_expect_matcher *m)
{
    const char *t = m->text.data;
    size_t end = m->text.len;
    for (;;) {
        while (end && (t[end - 1] == ' ' || t[end - 1] == '\t' || t[end - 1] == '\n'))
            end--;
        if (end == 0)
            return NULL;
        size_t start = end;
        while (start && t[start - 1] != '\n')
            start--;
        while (start < end && (t[start] == ' ' || t[start] == '\t'))
            start++;
        if (start < end)
            return strndup(t + start, end - start);
        end = start;
    }
}

/* ---- scripts --------------------------------------------------------------------------------- */

/* 0 when rx compiles, else regcomp's code with its reason in why. */
static int expect_regex_check(const char *rx, char *why, size_t cap)
{
    regex_t re;
    int rc = regcomp(&re, rx, REG_EXTENDED | REG_NEWLINE | REG_NOSUB);
    if (rc != 0)
        regerror(rc, &re, why, cap);
    else
        regfree(&re);
    return rc;
}

int smx_expect_opts_check(const smx_expect_opts *o, smx_err *err)
{
    char why[128];
    for (size_t i = 0; i < o->nsteps; i++) {
        const char *rx = o->steps[i].expect;
        if (rx && expect_regex_check(rx, why, sizeof why) != 0)
            return smx_seterr(err, SMX_EINVAL, "step %zu: regex \"%s\": %s", i + 1, rx, why);
    }
    return 0;
}

int smx_expect_script_add(smx_expect_script *s, const char *send, const char *expect,
                          int timeout_ms)
{
    if (s->nsteps == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 8;
        smx_expect_step *v = realloc(s->steps, cap * sizeof *v);
        if (!v)
            return SMX_ENOMEM;
        s->steps = v;
        s->cap = cap;
    }
    smx_expect_step *st = &s->steps[s->nsteps];
    st->send = send ? strdup(send) : NULL;
    st->expect = expect ? strdup(expect) : NULL;
    st->timeout_ms = timeout_ms;
    if ((send && !st->send) || (expect && !st->expect)) {
        free((char *)st->send);
        free((char *)st->expect);
        return SMX_ENOMEM;
    }
    s->nsteps++;
    return 0;
}

void smx_expect_script_free(smx_expect_script *s)
{
    for (size_t i = 0; i < s->nsteps; i++) {
        smx_str_wipe_free((char *)s->steps[i].send);   /* a step may type a password */
        free((char *)s->steps[i].expect);
    }
    free(s->steps);
    memset(s, 0, sizeof *s);
}

/* A string member of a script line, or NULL when absent. -1 when it is not a string. */
static int expect_json_string(json_t *o, const char *key, const char **out, smx_err *err)
{
    json_t *v = json_object_get(o, key);
    *out = NULL;
    if (!v)
        return 0;
    if (!json_is_string(v))
        return smx_seterr(err, SMX_EINVAL, "\"%s\" must be a string", key);
    if (strlen(json_string_value(v)) != json_string_length(v))
        return smx_seterr(err, SMX_EINVAL, "\"%s\" holds a NUL byte", key);
    *out = json_string_value(v);
    return 0;
}

static int expect_json_step(smx_expect_script *s, json_t *o, smx_err *err)
{
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v) {
        if (strcmp(key, "send") && strcmp(key, "send_raw") && strcmp(key, "expect") &&
            strcmp(key, "timeout"))
            return smx_seterr(err, SMX_EINVAL, "unknown key \"%s\" (send, send_raw, expect, "
                              "timeout)", key);
    }
    const char *send, *raw, *expect;
    if (expect_json_string(o, "send", &send, err) < 0 ||
        expect_json_string(o, "send_raw", &raw, err) < 0 ||
        expect_json_string(o, "expect", &expect, err) < 0)
        return SMX_EINVAL;
    if (send && raw)
        return smx_seterr(err, SMX_EINVAL, "give \"send\" or \"send_raw\", not both");
    int timeout_ms = 0;
    json_t *t = json_object_get(o, "timeout");
    if (t) {
        double sec = json_is_number(t) ? json_number_value(t) : -1;
        if (!(sec > 0 && sec <= 86400))
            return smx_seterr(err, SMX_EINVAL, "\"timeout\" must be a number of seconds "
                              "(0 < timeout <= 86400)");
        timeout_ms = (int)ceil(sec * 1000);
    }
    if (!send && !raw && !expect)
        return smx_seterr(err, SMX_EINVAL, "a step needs \"send\", \"send_raw\" or \"expect\"");
    char why[128];
    if (expect && expect_regex_check(expect, why, sizeof why) != 0)
        return smx_seterr(err, SMX_EINVAL, "\"expect\": %s", why);
    char *line = NULL;
    if (send && asprintf(&line, "%s\n", send) < 0)
        return smx_seterr(err, SMX_ENOMEM, "out of memory");
    int rc = smx_expect_script_add(s, send ? line : raw, expect, timeout_ms);
    smx_str_wipe_free(line);
    return rc < 0 ? smx_seterr(err, rc, "out of memory") : 0;
}

int smx_expect_script_add_json(smx_expect_script *s, const char *line, size_t len, smx_err *err)
{
    size_t i = 0;
    while (i < len && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r' || line[i] == '\n'))
        i++;
    if (i == len || line[i] == '#')
        return 0;
    json_error_t je;
    json_t *o = json_loadb(line, len, JSON_REJECT_DUPLICATES, &je);
    if (!o)
        return smx_seterr(err, SMX_EINVAL, "not JSON: %s", je.text);
    int rc = json_is_object(o) ? expect_json_step(s, o, err)
                               : smx_seterr(err, SMX_EINVAL, "a step is a JSON object");
    json_decref(o);
    return rc;
}

int smx_expect_script_load(smx_expect_script *s, const char *path, smx_err *err)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return smx_seterr(err, errno == ENOENT ? SMX_ENOENT : SMX_EIO, "%s: %s", path,
                          strerror(errno));
    char *line = NULL;
    size_t cap = 0, lineno = 0;
    ssize_t n;
    int rc = 0;
    while (rc == 0 && (n = getline(&line, &cap, f)) >= 0) {
        smx_err why = {{0}};
        lineno++;
        rc = smx_expect_script_add_json(s, line, (size_t)n, &why);
        if (rc < 0)
            smx_seterr(err, rc, "%s:%zu: %s", path, lineno, why.msg);
    }
    if (rc == 0 && ferror(f))
        rc = smx_seterr(err, SMX_EIO, "%s: %s", path, strerror(errno));
    if (line)
        smx_wipe_free(line, cap);
    fclose(f);
    return rc;
}
