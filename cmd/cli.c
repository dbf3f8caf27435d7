#include "cli.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum {
    OPT_HOSTFILE = 1000, OPT_JSON, OPT_ENV, OPT_MAX_OUTPUT, OPT_CONNECT_TIMEOUT, OPT_AUTH_TIMEOUT,
    OPT_RETRIES, OPT_PASSWORD_ENV, OPT_PASSWORD_FILE, OPT_ASK_PASS, OPT_PASSPHRASE_ENV,
    OPT_KEY_ENV, OPT_NO_AGENT, OPT_KILL_GRACE, OPT_HANDSHAKES, OPT_BASE_PORT, OPT_CONNECTIONS, OPT_MODE,
    OPT_ADDRESS, OPT_REMOTE, OPT_SOCKET, OPT_STREAMLOCAL, OPT_CMD, OPT_KEEP_GOING, OPT_SUDO,
    OPT_SUDO_USER, OPT_SUDO_PASSWORD_ENV, OPT_SUDO_ASK_PASS, OPT_PROXY_USER, OPT_PROXY_KEY,
    OPT_PROXY_KEY_ENV,
    OPT_PROXY_PASSWORD_ENV, OPT_PROXY_PASSPHRASE_ENV, OPT_RESUME, OPT_FSYNC, OPT_NO_ATOMIC,
    OPT_BLOCK_SIZE, OPT_REQUESTS, OPT_TRANSFER_TIMEOUT, OPT_SUFFIX, OPT_PROGRESS, OPT_GROUPS,
    OPT_INVENTORY, OPT_GENDERS,
    OPT_BROADCAST
};

static const struct option cli_long_options[] = {
    {"hostfile", required_argument, NULL, OPT_HOSTFILE},
    {"groups", required_argument, NULL, OPT_GROUPS},
    {"inventory", required_argument, NULL, OPT_INVENTORY},
    {"genders", required_argument, NULL, OPT_GENDERS},
    {"json", no_argument, NULL, OPT_JSON},
    {"gather", no_argument, NULL, 'b'},
    {"quiet", no_argument, NULL, 'q'},
    {"verbose", no_argument, NULL, 'v'},
    {"fanout", required_argument, NULL, 'f'},
    {"timeout", required_argument, NULL, 'u'},
    {"env", required_argument, NULL, OPT_ENV},
    {"max-output", required_argument, NULL, OPT_MAX_OUTPUT},
    {"connect-timeout", required_argument, NULL, OPT_CONNECT_TIMEOUT},
    {"auth-timeout", required_argument, NULL, OPT_AUTH_TIMEOUT},
    {"kill-grace", required_argument, NULL, OPT_KILL_GRACE},
    {"retries", required_argument, NULL, OPT_RETRIES},
    {"handshakes", required_argument, NULL, OPT_HANDSHAKES},
    {"password-env", required_argument, NULL, OPT_PASSWORD_ENV},
    {"password-file", required_argument, NULL, OPT_PASSWORD_FILE},
    {"ask-pass", no_argument, NULL, OPT_ASK_PASS},
    {"passphrase-env", required_argument, NULL, OPT_PASSPHRASE_ENV},
    {"key-env", required_argument, NULL, OPT_KEY_ENV},
    {"no-agent", no_argument, NULL, OPT_NO_AGENT},
    {"base-port", required_argument, NULL, OPT_BASE_PORT},
    {"connections", required_argument, NULL, OPT_CONNECTIONS},
    {"mode", required_argument, NULL, OPT_MODE},
    {"address", required_argument, NULL, OPT_ADDRESS},
    {"remote", required_argument, NULL, OPT_REMOTE},
    {"socket", required_argument, NULL, OPT_SOCKET},
    {"streamlocal", no_argument, NULL, OPT_STREAMLOCAL},
    {"cmd", required_argument, NULL, OPT_CMD},
    {"keep-going", no_argument, NULL, OPT_KEEP_GOING},
    {"sudo", no_argument, NULL, OPT_SUDO},
    {"sudo-user", required_argument, NULL, OPT_SUDO_USER},
    {"sudo-password-env", required_argument, NULL, OPT_SUDO_PASSWORD_ENV},
    {"sudo-ask-pass", no_argument, NULL, OPT_SUDO_ASK_PASS},
    {"proxy-user", required_argument, NULL, OPT_PROXY_USER},
    {"proxy-key", required_argument, NULL, OPT_PROXY_KEY},
    {"proxy-key-env", required_argument, NULL, OPT_PROXY_KEY_ENV},
    {"proxy-password-env", required_argument, NULL, OPT_PROXY_PASSWORD_ENV},
    {"proxy-passphrase-env", required_argument, NULL, OPT_PROXY_PASSPHRASE_ENV},
    {"recursive", no_argument, NULL, 'r'},
    {"resume", no_argument, NULL, OPT_RESUME},
    {"fsync", no_argument, NULL, OPT_FSYNC},
    {"no-atomic", no_argument, NULL, OPT_NO_ATOMIC},
    {"block-size", required_argument, NULL, OPT_BLOCK_SIZE},
    {"requests", required_argument, NULL, OPT_REQUESTS},
    {"transfer-timeout", required_argument, NULL, OPT_TRANSFER_TIMEOUT},
    {"suffix", no_argument, NULL, OPT_SUFFIX},
    {"progress", no_argument, NULL, OPT_PROGRESS},
    {"broadcast", no_argument, NULL, OPT_BROADCAST},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

void cli_error(const cli *c, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: ", c->prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

void cli_warn(const cli *c, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: warning: ", c->prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static int cli_valid_env(const char *kv)
{
    const char *eq = strchr(kv, '=');
    if (!eq || eq == kv || !(isalpha((unsigned char)kv[0]) || kv[0] == '_'))
        return 0;
    for (const char *p = kv; p < eq; p++)
        if (!isalnum((unsigned char)*p) && *p != '_')
            return 0;
    return 1;
}

/* Timeouts are int milliseconds in the library: seconds stop where they would overflow. */
#define CLI_SECONDS_MAX (INT_MAX / 1000)

/* Every numeric option, with the range sshmux can honour: timeouts are kept in int
 * milliseconds, so seconds stop at CLI_SECONDS_MAX (beyond it -u 4294968 once became 0.7 s). */
static const struct cli_numopt {
    int opt;
    const char *name;
    unsigned long long min, max;
} cli_numopts[] = {
    {'p', "-p (port)", 1, 65535},
    {'P', "-P (port)", 1, 65535},
    {OPT_BLOCK_SIZE, "--block-size (bytes)", 512, 1048576 - 1024},
    {OPT_REQUESTS, "--requests", 1, 4096},
    {OPT_TRANSFER_TIMEOUT, "--transfer-timeout (seconds)", 1, CLI_SECONDS_MAX},
    {'f', "-f (fanout)", 1, 100000},
    {'u', "-u (command timeout, seconds)", 0, CLI_SECONDS_MAX},
    {OPT_CONNECT_TIMEOUT, "--connect-timeout (seconds)", 1, 3600},
    {OPT_AUTH_TIMEOUT, "--auth-timeout (seconds)", 1, 3600},
    {OPT_KILL_GRACE, "--kill-grace (seconds)", 0, 3600},
    {OPT_RETRIES, "--retries", 0, 100},
    {OPT_HANDSHAKES, "--handshakes", 1, 100000},
    {OPT_MAX_OUTPUT, "--max-output (bytes)", 0, 1ULL << 40},
    {OPT_BASE_PORT, "--base-port", 1, 65535},
    {OPT_CONNECTIONS, "--connections", 1, SMX_FORWARD_MAX_CONNECTIONS},
};

/* Decimal digits only (no sign, space or base prefix) within [min, max], however many digits:
 * 0, or -1 for anything else. */
static int cli_number(const char *s, unsigned long long min, unsigned long long max,
                      unsigned long long *out)
{
    if (!*s || s[strspn(s, "0123456789")] != '\0')
        return -1;
    errno = 0;
    unsigned long long v = strtoull(s, NULL, 10);
    if (errno == ERANGE || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

/* Numeric options: returns 1 if opt is one (0 or -1 in *rc), else 0. */
static int cli_apply_numeric(cli *c, int opt, const char *arg, int *rc)
{
    const struct cli_numopt *t = NULL;
    unsigned long long v;
    for (size_t i = 0; i < sizeof cli_numopts / sizeof *cli_numopts && !t; i++)
        t = cli_numopts[i].opt == opt ? &cli_numopts[i] : NULL;
    if (!t)
        return 0;
    *rc = 0;
    if (cli_number(arg, t->min, t->max, &v) < 0) {
        cli_error(c, "invalid value \"%s\" for %s: expected a number from %llu to %llu", arg,
                  t->name, t->min, t->max);
        *rc = -1;
        return 1;
    }
    switch (opt) {
    case 'p':
    case 'P': c->ov.port = (int)v; break;
    case OPT_BLOCK_SIZE: c->block_size = (size_t)v; break;
    case OPT_REQUESTS: c->requests = (int)v; break;
    case OPT_TRANSFER_TIMEOUT: c->transfer_timeout_ms = (int)v * 1000; break;
    case 'f': c->eng.fanout = (int)v; break;
    case 'u': c->x.timeout_ms = (int)v * 1000; break;
    case OPT_CONNECT_TIMEOUT: c->eng.connect_timeout_ms = (int)v * 1000; break;
    case OPT_AUTH_TIMEOUT: c->eng.auth_timeout_ms = (int)v * 1000; break;
    case OPT_KILL_GRACE: c->x.kill_grace_ms = (int)v * 1000; break;
    case OPT_RETRIES: c->eng.retries = (int)v; break;
    case OPT_HANDSHAKES: c->eng.handshake_initial = (int)v; break;
    case OPT_MAX_OUTPUT: c->x.max_output = (size_t)v; break;
    case OPT_BASE_PORT: c->base_port = (int)v; break;
    case OPT_CONNECTIONS: c->connections = (int)v; break;
    }
    return 1;
}

static int cli_apply_mode(cli *c, const char *arg)
{
    char *end;
    unsigned long m = strtoul(arg, &end, 8);
    if (*arg == '\0' || *end || m > 0777) {
        cli_error(c, "invalid value \"%s\" for --mode: expected octal permissions like 0600", arg);
        return -1;
    }
    c->sock_mode = (unsigned)m;
    c->mode_given = 1;
    return 0;
}


/* One hop of a ProxyJump value: its URL password, if any, is taken out; only the first hop's
 * is used (as its password, like --proxy-password-env), and only for the first ProxyJump given
 * (later ones lose, as in ssh). Appends the hop without it to out. 0 or -1 (message printed). */
static int cli_jump_hop(cli *c, const char *opt, const char *hop, size_t len, size_t idx,
                        char *out)
{
    char *text = strndup(hop, len), *plain = NULL, *pw = NULL;
    smx_err err = {{0}};
    int rc = text ? smx_target_take_password(text, &plain, &pw, &err) : SMX_ENOMEM;
    smx_str_wipe_free(text);
    if (rc < 0) {
        cli_error(c, "%s: %s", opt, rc == SMX_ENOMEM ? "out of memory" : err.msg);
        return -1;
    }
    c->argv_password |= pw != NULL;
    if (pw && idx > 0) {
        cli_error(c, "%s: hop %zu \"%s\": a password is only taken from the first hop's URL "
                  "(give the others keys or ssh_config settings)", opt, idx + 1, plain);
        rc = -1;
    } else if (pw && !c->have_jump) {
        c->jump_password = pw;
        pw = NULL;
    }
    smx_str_wipe_free(pw);
    if (idx > 0)
        strcat(out, ",");
    strcat(out, plain);
    free(plain);
    return rc;
}

/* -J and -o ProxyJump: the value is stored as "ProxyJump=..." without any URL password, so no
 * later message, `sshmux hosts` output or error can quote one; argv is scrubbed as well. */
static int cli_add_jump(cli *c, const char *opt, char *chain)
{
    static const char key[] = "ProxyJump=";
    char *kv = malloc(sizeof key + strlen(chain));
    if (!kv) {
        cli_error(c, "out of memory");
        return -1;
    }
    memcpy(kv, key, sizeof key);
    int rc = 0;
    size_t idx = 0;
    for (const char *p = chain; rc == 0; idx++) {
        size_t len = strcspn(p, ",");
        rc = cli_jump_hop(c, opt, p, len, idx, kv + sizeof key - 1);
        if (!p[len])
            break;
        p += len + 1;
    }
    c->have_jump = 1;
    smx_target_strip_in_place(chain);
    smx_err err = {{0}};
    if (rc == 0 && smx_config_validate_option(kv, &err) < 0) {
        cli_error(c, "%s: %s", opt, err.msg);
        rc = -1;
    }
    if (rc == 0 && smx_strvec_push_owned(&c->ov.options, kv) < 0) {
        cli_error(c, "out of memory");
        return -1;
    }
    if (rc < 0)
        free(kv);
    return rc;
}

/* The value of "-o ProxyJump=V" / "-o ProxyJump V" (ssh_config line syntax), or NULL. */
static char *cli_proxyjump_value(char *kv)
{
    char *p = kv + strspn(kv, " \t");
    if (strncasecmp(p, "ProxyJump", 9) != 0 || p[9] == '\0' || !strchr(" \t=", p[9]))
        return NULL;
    p += 9 + strspn(p + 9, " \t");
    if (*p == '=')
        p++;
    return p + strspn(p, " \t");
}

/* -w/-x lists are copied as given (the ssh:// passwords in them are taken out when they are
 * parsed) and scrubbed from argv, which other users can read. */
static int cli_add_list(smx_strvec *lists, char *arg)
{
    int rc = smx_strvec_push(lists, arg);
    smx_target_strip_in_place(arg);
    return rc;
}

/* -g ATTR[=VAL][,ATTR...] (pdsh's genders option): the nodes matching any of them, as the
 * host list "@genders:ATTR,..." (each part may also be a nodeattr query). */
static int cli_add_genders_query(cli *c, const char *arg)
{
    static const char prefix[] = "@genders:";
    size_t parts = 1;
    for (const char *p = arg; *p; p++)
        parts += *p == ',';
    char *list = malloc(strlen(arg) + parts * (sizeof prefix - 1) + 1), *o = list;
    if (!list) {
        cli_error(c, "out of memory");
        return -1;
    }
    for (const char *p = arg;;) {
        size_t n = strcspn(p, ",");
        while (n && (*p == ' ' || *p == '\t')) {
            p++;
            n--;
        }
        if (n == 0) {
            cli_error(c, "-g \"%s\": empty genders attribute", arg);
            free(list);
            return -1;
        }
        o += sprintf(o, "%s%s%.*s", o == list ? "" : ",", prefix, (int)n, p);
        if (!p[n])
            break;
        p += n + 1;
    }
    return smx_strvec_push_owned(&c->wlists, list);
}

/* One option; returns 0 or -1 (message printed). */
static int cli_apply_option(cli *c, int opt, char *arg)
{
    smx_err err = {{0}};
    char *jump;
    int rc;
    if (cli_apply_numeric(c, opt, arg, &rc))
        return rc;
    switch (opt) {
    case 'w': return cli_add_list(&c->wlists, arg);
    case 'x': return cli_add_list(&c->xlists, arg);
    case OPT_HOSTFILE: return smx_strvec_push(&c->hostfiles, arg);
    case OPT_GROUPS: return smx_strvec_push(&c->groups_files, arg);
    case OPT_INVENTORY: return smx_strvec_push(&c->inventories, arg);
    case OPT_GENDERS: return smx_strvec_push(&c->genders_files, arg);
    case 'g': return cli_add_genders_query(c, arg);
    case 'F': c->config_file = arg; return 0;
    case 'o':
        if ((jump = cli_proxyjump_value(arg)))
            return cli_add_jump(c, "-o ProxyJump", jump);
        if (smx_config_validate_option(arg, &err) < 0) {
            cli_error(c, "-o %s: %s", arg, err.msg);
            return -1;
        }
        return smx_strvec_push(&c->ov.options, arg);
    case 'J': return cli_add_jump(c, "-J", arg); /* as ssh: ProxyJump on the command line */
    case 'l': c->ov.user = arg; return 0;
    case 'i': return smx_strvec_push(&c->ov.identityfiles, arg);
    case 'L': return smx_strvec_push(&c->lspecs, arg);
    case 'R': return smx_strvec_push(&c->rspecs, arg);
    case 'D': return smx_strvec_push(&c->dspecs, arg);
    case OPT_MODE: return cli_apply_mode(c, arg);
    case OPT_ENV:
        if (!cli_valid_env(arg)) {
            cli_error(c, "--env \"%s\": expected NAME=VALUE with NAME made of letters, digits "
                      "and _", arg);
            return -1;
        }
        return smx_strvec_push(&c->env, arg);
    case 't': c->x.pty = 1; c->tty_flags++; return 0;
    case 'T': c->no_pty = 1; return 0;
    case 'e': c->escape = arg; return 0;
    case OPT_BROADCAST: c->broadcast = 1; return 0;
    case 'b': c->gather = 1; return 0;
    case 'q': c->quiet = 1; return 0;
    case 'v': c->eng.verbose = ++c->verbose; return 0;
    case OPT_JSON: c->json = 1; return 0;
    case 'r': c->recursive = 1; return 0;
    case OPT_RESUME: c->resume = 1; return 0;
    case OPT_FSYNC: c->fsync = 1; return 0;
    case OPT_NO_ATOMIC: c->no_atomic = 1; return 0;
    case OPT_SUFFIX: c->suffix = 1; return 0;
    case OPT_PROGRESS: c->progress = 1; return 0;
    case OPT_ADDRESS: c->address = arg; return 0;
    case OPT_REMOTE: c->remote = arg; return 0;
    case OPT_SOCKET: c->socket_path = arg; return 0;
    case OPT_STREAMLOCAL: c->streamlocal = 1; return 0;
    case OPT_CMD: return smx_strvec_push(&c->cmds, arg);
    case OPT_KEEP_GOING: c->x.keep_going = 1; return 0;
    case OPT_SUDO: c->x.sudo = 1; return 0;
    case OPT_SUDO_USER: c->x.sudo = 1; c->x.sudo_user = arg; return 0;
    case OPT_SUDO_PASSWORD_ENV: c->x.sudo = 1; c->sudo_password_env = arg; return 0;
    case OPT_SUDO_ASK_PASS: c->x.sudo = 1; c->sudo_ask_pass = 1; return 0;
    case OPT_PASSWORD_ENV: c->password_env = arg; return 0;
    case OPT_PASSWORD_FILE: c->password_file = arg; return 0;
    case OPT_ASK_PASS: c->ask_pass = 1; return 0;
    case OPT_PASSPHRASE_ENV: c->passphrase_env = arg; return 0;
    case OPT_KEY_ENV: c->key_env = arg; return 0;
    case OPT_NO_AGENT: c->no_agent = 1; return 0;
    case OPT_PROXY_USER: c->proxy_user = arg; return 0;
    case OPT_PROXY_KEY: return smx_strvec_push(&c->proxy_keys, arg);
    case OPT_PROXY_KEY_ENV: c->proxy_key_env = arg; return 0;
    case OPT_PROXY_PASSWORD_ENV: c->proxy_password_env = arg; return 0;
    case OPT_PROXY_PASSPHRASE_ENV: c->proxy_passphrase_env = arg; return 0;
    }
    return -1;
}

int cli_parse(cli *c, int argc, char **argv, const char *prog)
{
    return cli_parse_mode(c, argc, argv, prog, CLI_PARSE_COMMAND);
}

/* Option letters per kind of command: a remote command keeps its own options (parsing stops at
 * it); file copies take options anywhere, with scp's letters (-p preserve, -P port, -r). */
static const char *cli_optstring(enum cli_parse_kind kind)
{
    switch (kind) {
    case CLI_PARSE_COPY: return "w:x:g:F:o:l:P:i:f:u:J:rpbqvh";
    case CLI_PARSE_SCRIPT: return "+w:x:g:F:o:l:p:i:f:u:J:tbqvh";
    case CLI_PARSE_FORWARD: return "+w:x:g:F:o:l:p:i:f:u:L:R:D:J:tbqvh";
    case CLI_PARSE_SHELL: return "+w:x:g:F:o:l:p:i:f:u:J:e:tTqvh";
    default: return "+w:x:g:F:o:l:p:i:f:u:L:J:tbqvh";
    }
}

int cli_parse_mode(cli *c, int argc, char **argv, const char *prog, enum cli_parse_kind kind)
{
    memset(c, 0, sizeof *c);
    c->prog = prog;
    smx_engine_opts_default(&c->eng);
    c->eng.interactive = 1;   /* only if there is a terminal; BatchMode yes turns it off */
    c->x.max_output = 8u << 20;
    c->x.kill_grace_ms = 2000;
    c->sock_mode = 0600;
    c->transfer_timeout_ms = 60000;   /* every wait has a bound: a copy stuck for a minute */
    optind = 1;
    opterr = 0;
    int opt;
    /* "+": stop at the first non-option, so the remote command keeps its own options. */
    const char *optstring = cli_optstring(kind);
    while ((opt = getopt_long(argc, argv, optstring, cli_long_options, NULL)) != -1) {
        if (kind == CLI_PARSE_COPY && opt == 'p') {
            c->preserve = 1;
            continue;
        }
        if (opt == 'h') {
            cli_usage(stdout);
            exit(0);
        }
        if (opt == '?' || opt == ':') {
            const char *bad = argv[optind - 1];
            if (optopt && strchr("wxgFolpPifuLRDJe", optopt))
                cli_error(c, "option -%c needs a value", optopt);
            else
                cli_error(c, "unknown option \"%s\" (see sshmux --help)", bad);
            return EXIT_USAGE;
        }
        if (cli_apply_option(c, opt, optarg) < 0)
            return EXIT_USAGE;
    }
    for (int i = optind; i < argc; i++)
        smx_strvec_push(&c->args, argv[i]);
    return 0;
}

void cli_free(cli *c)
{
    for (size_t i = 0; i < c->nhosts; i++) {
        free(c->hosts[i].target);
        smx_str_wipe_free(c->hosts[i].password);
        smx_hostcfg_destroy(c->hosts[i].hc);
    }
    free(c->hosts);
    smx_strvec_free_wipe(&c->wlists);
    smx_strvec_free_wipe(&c->xlists);
    smx_strvec_free_wipe(&c->secrets);
    smx_str_wipe_free(c->jump_password);
    smx_strvec_free(&c->hostfiles);
    smx_strvec_free(&c->groups_files);
    smx_strvec_free(&c->inventories);
    smx_strvec_free(&c->genders_files);
    smx_strvec_free_wipe(&c->ov.options);
    smx_strvec_free(&c->ov.identityfiles);
    smx_strvec_free(&c->env);
    smx_strvec_free(&c->args);
    smx_strvec_free(&c->lspecs);
    smx_strvec_free(&c->cmds);
    smx_str_wipe_free(c->sudo_password);
    smx_strvec_free(&c->rspecs);
    smx_strvec_free(&c->dspecs);
    smx_strvec_free(&c->proxy_keys);
    smx_str_wipe_free(c->proxy_password);
    smx_config_free(c->config);
    memset(c, 0, sizeof *c);
}

int cli_take_target(cli *c, const char *usage)
{
    if (c->wlists.n > 0 || c->hostfiles.n > 0)
        return 0;
    if (c->args.n == 0) {
        if (usage)
            cli_error(c, "no target given (usage: %s)", usage);
        else
            cli_error(c, "no target given");
        return -1;
    }
    if (smx_strvec_push(&c->wlists, c->args.v[0]) < 0) {
        cli_error(c, "out of memory");
        return -1;
    }
    return 1;
}

char *cli_join_args(const smx_strvec *args, size_t from)
{
    size_t len = 1;
    for (size_t i = from; i < args->n; i++)
        len += strlen(args->v[i]) + 1;
    char *s = calloc(1, len);
    for (size_t i = from; s && i < args->n; i++) {
        if (i > from)
            strcat(s, " ");
        strcat(s, args->v[i]);
    }
    return s;
}
