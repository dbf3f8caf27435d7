/* ssh_config line syntax: splitting a line into keyword and arguments, and validating the
 * arguments of each keyword type into an smx_directive. Nothing here touches the filesystem. */
#include "sshconfig_internal.h"
#include "numparse.h"
#include "target.h"

#include <ctype.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int smx__cfgerr(smx_err *e, int code, const smx__loc *loc, const char *fmt, ...)
{
    char msg[SMX_MSG_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (loc->line > 0)
        return smx_seterr(e, code, "%s:%d: %s", loc->file, loc->line, msg);
    return smx_seterr(e, code, "%s: %s", loc->file, msg);
}

static int is_ws(int c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* ---- tokenizer ------------------------------------------------------------------------- */

/* Split "Keyword value", "Keyword=value" or "Keyword = value" in place. Returns the keyword,
 * or NULL for a blank or comment line; *rest gets the argument text with surrounding
 * whitespace removed. Only one '=' is eaten, so "Port==22" leaves "=22" (as ssh does). */
static char *split_keyword(char *line, char **rest)
{
    char *kw, *end;

    while (is_ws(*line))
        line++;
    if (*line == '\0' || *line == '#')
        return NULL;
    kw = line;
    while (*line && !is_ws(*line) && *line != '=')
        line++;
    end = line;
    while (is_ws(*line))
        line++;
    if (*line == '=')
        line++;
    while (is_ws(*line))
        line++;
    *end = '\0';                /* after the scan: end may have been the '=' */
    *rest = line;
    end = line + strlen(line);
    while (end > line && is_ws(end[-1]))
        *--end = '\0';
    return kw;
}

static int push_arg(smx_directive *d, char *s)
{
    char **v = realloc(d->args, (d->nargs + 1) * sizeof *v);

    if (!v) {
        free(s);
        return SMX_ENOMEM;
    }
    d->args = v;
    d->args[d->nargs++] = s;
    return 0;
}

/* Read one argument starting at *sp into a new string. Double and single quotes group (and are
 * removed), a backslash escapes a quote, backslash or blank; any other backslash is literal. */
static int next_token(const char **sp, char **out, const smx__loc *loc, smx_err *err)
{
    const char *s = *sp;
    size_t n = 0;
    char quote = 0;
    char *tok = malloc(strlen(s) + 1);

    if (!tok)
        return SMX_ENOMEM;
    for (; *s && (quote || !is_ws(*s)); s++) {
        if (*s == '\\' && s[1] && strchr("\\\"' \t", s[1]))
            tok[n++] = *++s;
        else if ((*s == '"' || *s == '\'') && (!quote || quote == *s))
            quote = quote ? 0 : *s;
        else
            tok[n++] = *s;
    }
    tok[n] = '\0';
    if (quote) {
        free(tok);
        return smx__cfgerr(err, SMX_EINVAL, loc, "unbalanced quotes");
    }
    *sp = s;
    *out = tok;
    return 0;
}

/* Split the argument text into d->args. An unquoted '#' starting a word begins a comment. */
static int tokenize(const char *s, smx_directive *d, const smx__loc *loc, smx_err *err)
{
    for (;;) {
        char *tok = NULL;
        int rc;

        while (is_ws(*s))
            s++;
        if (*s == '\0' || *s == '#')
            return 0;
        if ((rc = next_token(&s, &tok, loc, err)) < 0)
            return rc;
        if ((rc = push_arg(d, tok)) < 0)
            return rc;
    }
}

/* ---- value parsers --------------------------------------------------------------------- */

/* ssh reads numbers with strtol-like functions, which accept a leading '+'. */
static const char *skip_plus(const char *s)
{
    return *s == '+' ? s + 1 : s;
}

static const smx_kwenum *find_word(const smx_kwenum *words, const char *w)
{
    for (; words->word; words++)
        if (strcasecmp(words->word, w) == 0)
            return words;
    return NULL;
}

/* ---- per-type argument checks ---------------------------------------------------------- */

/* Types that take exactly one non-empty argument. */
static int want_one_arg(const smx_directive *d, const smx__loc *loc, smx_err *err)
{
    if (d->nargs == 0 || d->args[0][0] == '\0')
        return smx__cfgerr(err, SMX_EINVAL, loc, "missing argument for %s", d->kw->name);
    if (d->nargs > 1)
        return smx__cfgerr(err, SMX_EINVAL, loc, "%s takes one argument, extra \"%s\"",
                           d->kw->name, d->args[1]);
    return 0;
}

static int parse_number_arg(smx_directive *d, const smx__loc *loc, smx_err *err)
{
    const char *a = d->args[0];
    unsigned long long v;
    int rc;

    switch (d->kw->type) {
    case SMX_KW_PORT:
        rc = smx_num_parse_str(skip_plus(a), 1, 65535, &v);
        if (rc == SMX_EINVAL)
            return smx__cfgerr(err, SMX_EINVAL, loc, "bad port \"%s\"", a);
        if (rc < 0)
            return smx__cfgerr(err, SMX_ERANGE, loc, "bad port \"%s\" (must be 1..65535)", a);
        break;
    case SMX_KW_TIME:
        if (strcasecmp(a, "none") == 0) {
            d->ival = -1;           /* ssh treats "none" as "not set": a later value still wins */
            return 0;
        }
        /* Timeouts become int milliseconds: beyond SMX_SECONDS_MAX they would overflow. */
        rc = smx_time_parse(skip_plus(a), SMX_SECONDS_MAX, &v);
        if (rc == SMX_EINVAL)
            return smx__cfgerr(err, SMX_EINVAL, loc, "bad time value \"%s\" for %s", a,
                               d->kw->name);
        if (rc < 0)
            return smx__cfgerr(err, SMX_ERANGE, loc, "time value \"%s\" for %s is out of range "
                               "(at most %d seconds)", a, d->kw->name, SMX_SECONDS_MAX);
        break;
    default:                        /* SMX_KW_INT */
        if (a[0] == '-' && smx_num_parse_str(a + 1, 0, ~0ULL, &v) != SMX_EINVAL)
            return smx__cfgerr(err, SMX_ERANGE, loc, "%s must not be negative: \"%s\"",
                               d->kw->name, a);
        rc = smx_num_parse_str(skip_plus(a), 0, INT_MAX, &v);
        if (rc == SMX_ERANGE)
            return smx__cfgerr(err, SMX_ERANGE, loc, "number too large \"%s\" for %s", a,
                               d->kw->name);
        if (rc < 0)
            return smx__cfgerr(err, SMX_EINVAL, loc, "bad number \"%s\" for %s", a,
                               d->kw->name);
        break;
    }
    d->ival = (int)v;
    return 0;
}

static int parse_word_arg(smx_directive *d, const smx__loc *loc, smx_err *err)
{
    const smx_kwenum *w = find_word(d->kw->words, d->args[0]);
    char *canon;

    if (!w) {
        if (d->kw->type == SMX_KW_BOOL)
            return smx__cfgerr(err, SMX_EINVAL, loc, "bad value \"%s\" for %s (expected yes or no)",
                               d->args[0], d->kw->name);
        return smx__cfgerr(err, SMX_EINVAL, loc, "bad value \"%s\" for %s", d->args[0],
                           d->kw->name);
    }
    if (d->kw->type == SMX_KW_BOOL) {
        d->ival = w->ival;
        return 0;
    }
    if (!(canon = strdup(w->value)))
        return SMX_ENOMEM;
    free(d->args[0]);               /* store the canonical spelling, e.g. "true" -> "yes" */
    d->args[0] = canon;
    return 0;
}

/* "$NAME" in IdentityAgent names an environment variable; ssh rejects anything else. */
static int check_agent(const smx_directive *d, const smx__loc *loc, smx_err *err)
{
    const char *a = d->args[0];

    if (a[0] != '$' || a[1] == '{')
        return 0;
    for (const char *p = a + 1; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '_')
            return smx__cfgerr(err, SMX_EINVAL, loc, "bad environment variable name \"%s\" "
                               "for IdentityAgent", a);
    return a[1] ? 0 : smx__cfgerr(err, SMX_EINVAL, loc, "bad IdentityAgent \"$\"");
}

static int check_algos(const smx_directive *d, const smx__loc *loc, smx_err *err)
{
    const char *a = d->args[0];
    const char *list = (a[0] == '+' || a[0] == '-' || a[0] == '^') ? a + 1 : a;

    /* Names are checked by libssh at connect time; catch only the structural mistakes. */
    if (*list == '\0' || *list == ',' || list[strlen(list) - 1] == ',' || strstr(list, ",,"))
        return smx__cfgerr(err, SMX_EINVAL, loc, "bad %s list \"%s\"", d->kw->name, a);
    return 0;
}

static int check_jump(smx_directive *d, const smx__loc *loc, smx_err *err)
{
    smx_jumphop *hops;
    size_t n;
    smx_err why;
    int rc;

    /* ssh ignores anything after the first argument here; so do we. */
    if (d->nargs == 0 || d->args[0][0] == '\0')
        return smx__cfgerr(err, SMX_EINVAL, loc, "missing argument for ProxyJump");
    rc = smx_proxyjump_parse(d->args[0], &hops, &n, &why);
    if (rc == SMX_ENOMEM)
        return rc;
    if (rc < 0) {
        char shown[128];

        smx_target_display(d->args[0], shown, sizeof shown);   /* no URL password */
        return smx__cfgerr(err, rc, loc, "bad ProxyJump \"%s\": %s", shown, why.msg);
    }
    smx_jumphops_free(hops, n);
    return 0;
}

static int check_nonempty_args(const smx_directive *d, const smx__loc *loc, smx_err *err)
{
    if (d->nargs == 0)
        return smx__cfgerr(err, SMX_EINVAL, loc, "missing argument for %s", d->kw->name);
    for (size_t i = 0; i < d->nargs; i++)
        if (d->args[i][0] == '\0')
            return smx__cfgerr(err, SMX_EINVAL, loc, "empty argument for %s", d->kw->name);
    return 0;
}

/* ---- Match ----------------------------------------------------------------------------- */

static const struct {
    const char *name;
    enum smx_crit type;
    int needs_arg;
} criteria[] = {
    {"all", SMX_CRIT_ALL, 0}, {"canonical", SMX_CRIT_CANONICAL, 0},
    {"final", SMX_CRIT_FINAL, 0}, {"exec", SMX_CRIT_EXEC, 1}, {"host", SMX_CRIT_HOST, 1},
    {"originalhost", SMX_CRIT_ORIGINALHOST, 1}, {"user", SMX_CRIT_USER, 1},
    {"localuser", SMX_CRIT_LOCALUSER, 1},
};

static int find_criterion(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof criteria / sizeof criteria[0]; i++)
        if (strlen(criteria[i].name) == len && strncasecmp(criteria[i].name, name, len) == 0)
            return (int)i;
    return -1;
}

/* Parse one criterion starting at args[*i] ("host x", "!user=bob", "all"...) into c. */
static int parse_criterion(smx_directive *d, size_t *i, smx_criterion *c, const smx__loc *loc,
                           smx_err *err)
{
    const char *tok = d->args[*i];
    const char *name = tok + (tok[0] == '!');
    const char *eq = strchr(name, '=');       /* ssh also accepts "host=x" */
    int k = find_criterion(name, eq ? (size_t)(eq - name) : strlen(name));
    const char *arg = NULL;

    if (k < 0)
        return smx__cfgerr(err, SMX_EINVAL, loc, "unknown Match criterion \"%s\"", tok);
    c->type = criteria[k].type;
    c->negated = tok[0] == '!';
    if (!criteria[k].needs_arg) {
        if (eq)
            return smx__cfgerr(err, SMX_EINVAL, loc, "Match %s takes no argument",
                               criteria[k].name);
        return 0;
    }
    if (eq)
        arg = eq + 1;
    else if (*i + 1 < d->nargs)
        arg = d->args[++*i];
    if (!arg || !*arg)
        return smx__cfgerr(err, SMX_EINVAL, loc, "Match %s needs an argument", criteria[k].name);
    return (c->arg = strdup(arg)) ? 0 : SMX_ENOMEM;
}

static int parse_match(smx_directive *d, const smx__loc *loc, smx_err *err)
{
    if (d->nargs == 0)
        return smx__cfgerr(err, SMX_EINVAL, loc, "missing argument for Match");
    if (!(d->crit = calloc(d->nargs, sizeof *d->crit)))
        return SMX_ENOMEM;
    for (size_t i = 0; i < d->nargs; i++) {
        int rc;

        /* "all" may follow other criteria (ssh accepts "canonical all") but nothing may
         * follow it. */
        if (d->ncrit > 0 && d->crit[d->ncrit - 1].type == SMX_CRIT_ALL)
            return smx__cfgerr(err, SMX_EINVAL, loc,
                               "'all' cannot be combined with other Match criteria");
        rc = parse_criterion(d, &i, &d->crit[d->ncrit], loc, err);
        d->ncrit++;                 /* counted even on error so the arg gets freed */
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* ---- directive ------------------------------------------------------------------------- */

static int check_args(smx_directive *d, const smx__loc *loc, smx_err *err)
{
    int rc;

    switch (d->kw->type) {
    case SMX_KW_HOST:
    case SMX_KW_INCLUDE:
    case SMX_KW_FILES:
        return check_nonempty_args(d, loc, err);
    case SMX_KW_MATCH:
        return parse_match(d, loc, err);
    case SMX_KW_JUMP:
        return check_jump(d, loc, err);
    case SMX_KW_PORT:
    case SMX_KW_TIME:
    case SMX_KW_INT:
        return (rc = want_one_arg(d, loc, err)) < 0 ? rc : parse_number_arg(d, loc, err);
    case SMX_KW_BOOL:
    case SMX_KW_ENUM:
        return (rc = want_one_arg(d, loc, err)) < 0 ? rc : parse_word_arg(d, loc, err);
    case SMX_KW_AGENT:
        return (rc = want_one_arg(d, loc, err)) < 0 ? rc : check_agent(d, loc, err);
    case SMX_KW_ALGOS:
        return (rc = want_one_arg(d, loc, err)) < 0 ? rc : check_algos(d, loc, err);
    default:                        /* STR, HOSTNAME, IDFILE, IGNUNKNOWN */
        return want_one_arg(d, loc, err);
    }
}

static int parse_known(smx_directive *d, const char *rest, const smx__loc *loc, smx_err *err)
{
    char *copy;
    int rc;

    switch (d->kw->type) {
    case SMX_KW_IGNORED:
        return 0;                   /* any arguments: we do not model it */
    case SMX_KW_PROXYCMD:
        /* The command is the rest of the line, quotes and '#' included, as ssh keeps it. */
        if (*rest == '\0')
            return smx__cfgerr(err, SMX_EINVAL, loc, "missing argument for %s", d->kw->name);
        if (!(copy = strdup(rest)))
            return SMX_ENOMEM;
        return push_arg(d, copy);
    default:
        if ((rc = tokenize(rest, d, loc, err)) < 0)
            return rc;
        return check_args(d, loc, err);
    }
}

int smx__parse_line(char *line, const smx__loc *loc, smx_directive *d, int *blank, smx_err *err)
{
    char *rest = NULL;
    char *kw = split_keyword(line, &rest);
    char *name;
    int rc;

    memset(d, 0, sizeof *d);
    d->line = loc->line;
    *blank = kw == NULL;
    if (!kw)
        return 0;
    if (*kw == '\0')
        return smx__cfgerr(err, SMX_EINVAL, loc, "missing keyword before \"=\"");
    d->kw = smx__keyword_find(kw);
    if (!d->kw) {
        /* Whether this is an error depends on the host's IgnoreUnknown: decided at resolve. */
        if (!(name = strdup(kw)))
            return SMX_ENOMEM;
        return push_arg(d, name);
    }
    rc = parse_known(d, rest, loc, err);
    if (rc < 0)
        smx__directive_free(d);
    return rc;
}

void smx__directive_free(smx_directive *d)
{
    for (size_t i = 0; i < d->nargs; i++)
        free(d->args[i]);
    free(d->args);
    for (size_t i = 0; i < d->ncrit; i++)
        free(d->crit[i].arg);
    free(d->crit);
    for (size_t i = 0; i < d->ninc; i++)
        smx__cfgfile_free(d->inc[i]);
    free(d->inc);
    memset(d, 0, sizeof *d);
}
