/* From -w/--hostfile/-x and ssh_config to resolved hosts; credentials loaded before the loop. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define CLI_HOSTFILE_MAX (256u << 20)

/* Where a list came from, for messages: "-w", or a hostfile path and line. */
struct cli_where {
    const char *what;
    unsigned long line;
};

/* One item of a host list: an ssh:// password in it is taken out here, before the item is
 * expanded, parsed or quoted anywhere, and kept in c->secrets; its names get the tag. */
static int cli_add_item(cli *c, smx_hostlist *hl, const char *p, size_t len,
                        const struct cli_where *where, int keep_password)
{
    while (len > 0 && (*p == ' ' || *p == '\t')) {
        p++;
        len--;
    }
    char *item = strndup(p, len), *plain = NULL, *pw = NULL;
    smx_err err = {{0}};
    int rc = item ? smx_target_take_password(item, &plain, &pw, &err) : SMX_ENOMEM;
    if (item) {
        explicit_bzero(item, len);
        free(item);
    }
    size_t tag = 0;
    if (pw && !where->line)
        c->argv_password = 1; /* it was on the command line */
    if (rc == 0 && pw && keep_password) {
        rc = smx_strvec_push_owned(&c->secrets, pw);
        tag = c->secrets.n;
        pw = NULL;
    }
    smx_str_wipe_free(pw);
    if (rc == 0)
        rc = smx_hostlist_add(hl, plain, tag, &err);
    free(plain);
    if (rc < 0) {
        const char *msg = rc == SMX_ENOMEM ? "out of memory" : err.msg;
        if (where->line)
            cli_error(c, "%s:%lu: %s", where->what, where->line, msg);
        else
            cli_error(c, "%s: %s", where->what, msg);
        return EXIT_USAGE;
    }
    return 0;
}

/* A list item by item (commas outside brackets), then wiped: it may hold passwords. */
static int cli_add_list(cli *c, smx_hostlist *hl, char *list, const struct cli_where *where,
                        int keep_pw)
{
    int rc = 0;
    for (const char *p = list; rc == 0 && *p;) {
        const char *end = smx_hostlist_item_end(p);
        rc = cli_add_item(c, hl, p, (size_t)(end - p), where, keep_pw);
        p = *end ? end + 1 : end;
    }
    explicit_bzero(list, strlen(list));
    return rc;
}

/* Read whole, without stdio: its buffer would be freed with any ssh:// passwords still in it. */
static int cli_read_hostfile(cli *c, const char *path, smx_hostlist *hl)
{
    size_t len;
    char *text = smx_secret_read_file(path, CLI_HOSTFILE_MAX, &len);
    if (!text) {
        cli_error(c, "--hostfile %s: %s", path,
                  errno == EFBIG ? "larger than 256 MiB" : strerror(errno));
        return EXIT_USAGE;
    }
    int rc = 0;
    struct cli_where where = { path, 1 };
    for (char *line = text; rc == 0 && line < text + len; where.line++) {
        char *end = memchr(line, '\n', (size_t)(text + len - line));
        char *next = end ? end + 1 : text + len;
        if (end)
            *end = '\0';
        line[strcspn(line, "#\r")] = '\0';
        rc = cli_add_list(c, hl, line, &where, 1);
        line = next;
    }
    explicit_bzero(text, len);
    free(text);
    return rc;
}

/* -w lists, then hostfiles, minus -x: one smx_hostlist for the run, so the host cap applies to
 * all of them together and a hostfile costs time linear in its size. */
static int cli_expand_targets(cli *c, smx_hostlist *targets)
{
    static const struct cli_where w = { "-w", 0 }, x = { "-x", 0 };
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < c->wlists.n; i++)
        rc = cli_add_list(c, targets, c->wlists.v[i], &w, 1);
    for (size_t i = 0; rc == 0 && i < c->hostfiles.n; i++)
        rc = cli_read_hostfile(c, c->hostfiles.v[i], targets);
    if (rc || !c->xlists.n)
        return rc;
    smx_hostlist *excluded = smx_hostlist_new(SMX_HOSTLIST_MAX);
    if (!excluded) {
        cli_error(c, "out of memory");
        return EXIT_USAGE;
    }
    for (size_t i = 0; rc == 0 && i < c->xlists.n; i++)
        rc = cli_add_list(c, excluded, c->xlists.v[i], &x, 0);
    if (rc == 0)
        smx_hostlist_remove(targets, excluded);
    smx_hostlist_free(excluded);
    return rc;
}

static int cli_resolve_one(cli *c, const char *token, const char *password, cli_host *h)
{
    smx_target_spec spec;
    smx_err err = {{0}};
    /* The target as shown in output and JSON: it has no password, but may have control bytes. */
    size_t shown_size = strlen(token) + 4;
    if (!(h->target = malloc(shown_size))) {
        cli_error(c, "out of memory");
        return EXIT_USAGE;
    }
    smx_target_display(token, h->target, shown_size);
    if (smx_target_parse(token, &spec, &err) < 0) {
        cli_error(c, "%s", err.msg);
        return EXIT_USAGE;
    }
    smx_overrides ov = c->ov;
    ov.user = spec.user ? spec.user : c->login;
    ov.port = spec.port ? spec.port : c->port;
    h->password = password ? strdup(password) : NULL;
    h->hc = calloc(1, sizeof *h->hc);
    int rc = 0;
    if (!h->hc || (password && !h->password)) {
        cli_error(c, "out of memory");
        rc = EXIT_USAGE;
    } else if (smx_config_resolve(c->config, spec.host, &ov, h->hc, &err) < 0) {
        cli_error(c, "%s: %s", h->target, err.msg);
        rc = EXIT_USAGE;
    }
    smx_target_spec_free(&spec);
    return rc;
}

static int cli_resolve_all(cli *c, const smx_hostlist *targets)
{
    size_t n = smx_hostlist_count(targets);
    if (n && !(c->hosts = calloc(n, sizeof *c->hosts))) {
        cli_error(c, "out of memory");
        return EXIT_USAGE;
    }
    if (c->argv_password)
        cli_warn(c, "password given in an ssh:// URL: it is visible to other local users in the "
                 "process list; prefer --password-env or --password-file");
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        size_t tag = smx_hostlist_tag(targets, i);
        rc = cli_resolve_one(c, smx_hostlist_name(targets, i),
                             tag ? c->secrets.v[tag - 1] : NULL, &c->hosts[i]);
        c->nhosts = i + 1;
    }
    return rc;
}

int cli_resolve_hosts(cli *c, int need_targets)
{
    smx_hostlist *targets = smx_hostlist_new(SMX_HOSTLIST_MAX);
    int rc = targets ? cli_expand_targets(c, targets) : EXIT_USAGE;
    if (!targets)
        cli_error(c, "out of memory");
    if (rc == 0 && need_targets && smx_hostlist_count(targets) == 0) {
        cli_error(c, "no targets: give hosts with -w LIST or --hostfile FILE");
        rc = EXIT_USAGE;
    }
    smx_err err = {{0}};
    if (rc == 0 && smx_config_load(&c->config, c->config_file, &err) < 0) {
        cli_error(c, "%s", err.msg);
        rc = EXIT_USAGE;
    }
    if (rc == 0 && !c->quiet) {
        const smx_strvec *warnings = smx_config_warnings(c->config);
        for (size_t i = 0; warnings && i < warnings->n; i++)
            cli_warn(c, "%s", warnings->v[i]);
    }
    if (rc == 0)
        rc = cli_resolve_all(c, targets);
    smx_hostlist_free(targets);
    smx_strvec_free_wipe(&c->secrets); /* each host holds its own copy now */
    return rc;
}

/* ---- credentials ---------------------------------------------------------------------- */

extern char **environ;

/* Reads VAR for a secret and wipes it out of the process. unsetenv() only drops the pointer: the
 * bytes stay in the environment block the kernel set up, which /proc/PID/environ shows (and a
 * core or memory dump holds), so the value is zeroed in place first, in every VAR= entry. It is
 * then not handed down to anything we start later either (ProxyCommand, ...). */
static char *cli_take_env(cli *c, const char *opt, const char *var)
{
    const char *v = getenv(var);
    if (!v) {
        cli_error(c, "%s %s: the environment variable is not set", opt, var);
        return NULL;
    }
    char *copy = strdup(v);
    size_t n = strlen(var);
    for (char **e = environ; e && *e; e++) {
        if (strncmp(*e, var, n) == 0 && (*e)[n] == '=')
            explicit_bzero(*e + n + 1, strlen(*e + n + 1));
    }
    unsetenv(var);
    if (!copy)
        cli_error(c, "out of memory");
    return copy;
}


/* The first line of the file, read without stdio so that no unwiped buffer keeps a copy. */
static char *cli_read_password_file(cli *c, const char *path)
{
    size_t len = 0;
    char *text = smx_secret_read_file(path, 1u << 20, &len);
    if (!text) {
        cli_error(c, "--password-file %s: %s", path,
                  errno == EFBIG ? "larger than 1 MiB: not a password file" : strerror(errno));
        return NULL;
    }
    size_t line = strcspn(text, "\r\n");
    if (len == 0) {
        smx_str_wipe_free(text);
        cli_error(c, "--password-file %s: file is empty", path);
        return NULL;
    }
    explicit_bzero(text + line, len - line);
    return text;
}

static int cli_load_password(cli *c, smx_engine *e)
{
    char *pw = NULL;
    if (c->password_env)
        pw = cli_take_env(c, "--password-env", c->password_env);
    else if (c->password_file)
        pw = cli_read_password_file(c, c->password_file);
    else if (c->ask_pass) {
        pw = cli_ask_secret("Password (for all hosts): ", NULL);
        if (!pw)
            cli_error(c, "--ask-pass: no terminal to ask on");
    } else {
        return 0;
    }
    if (!pw)
        return EXIT_USAGE;
    smx_engine_set_password(e, pw, strlen(pw));
    smx_str_wipe_free(pw);
    return 0;
}

static int cli_load_keys(cli *c, smx_engine *e)
{
    smx_keyring *kr = smx_engine_keyring(e);
    smx_err err = {{0}};
    if (c->passphrase_env) {
        char *p = cli_take_env(c, "--passphrase-env", c->passphrase_env);
        if (!p)
            return EXIT_USAGE;
        smx_keyring_set_passphrase(kr, p);
        smx_str_wipe_free(p);
    }
    smx_keyring_set_ask(kr, cli_ask_secret, NULL);
    if (c->key_env) {
        char *content = cli_take_env(c, "--key-env", c->key_env);
        if (!content)
            return EXIT_USAGE;
        int rc = smx_keyring_load_content(kr, c->key_env, content, &err);
        smx_str_wipe_free(content);
        if (rc < 0) {
            cli_error(c, "--key-env %s", err.msg);
            return EXIT_UNREACHABLE;
        }
    }
    /* Keys named with -i must load; keys from ssh_config are skipped when missing, as ssh does. */
    for (size_t i = 0; i < c->ov.identityfiles.n; i++) {
        if (smx_keyring_load_file(kr, c->ov.identityfiles.v[i], &err) < 0) {
            cli_error(c, "-i %s", err.msg);
            return EXIT_UNREACHABLE;
        }
    }
    for (size_t h = 0; h < c->nhosts; h++) {
        const smx_strvec *ids = &c->hosts[h].hc->identityfile;
        for (size_t i = 0; i < ids->n; i++) {
            int rc = smx_keyring_load_file(kr, ids->v[i], &err);
            if (rc < 0 && rc != SMX_ENOENT && c->verbose)
                cli_warn(c, "%s (skipped)", err.msg);
        }
    }
    return 0;
}

/* Loads the keys of every hop of every distinct ProxyJump chain the hosts use. */
static void cli_load_hop_keys(cli *c, smx_engine *e)
{
    smx_strvec seen = {0};
    smx_keyring *kr = smx_engine_keyring(e);
    for (size_t h = 0; h < c->nhosts; h++) {
        const char *chain = c->hosts[h].hc->proxyjump;
        if (!chain || strcmp(chain, "none") == 0 || smx_strvec_contains(&seen, chain))
            continue;
        smx_strvec_push(&seen, chain);
        smx_hostcfg *hops = NULL;
        size_t n = 0;
        smx_err err = {{0}};
        if (smx_engine_resolve_hops(e, chain, &hops, &n, &err) < 0)
            continue;   /* the hosts behind it fail with this error when they connect */
        for (size_t i = 0; i < n; i++) {
            for (size_t k = 0; k < hops[i].identityfile.n; k++)
                smx_keyring_load_file(kr, hops[i].identityfile.v[k], &err);
            smx_hostcfg_free(&hops[i]);
        }
        free(hops);
    }
    smx_strvec_free(&seen);
}

/* --proxy-key-env: the key content, stored in the keyring under "env:VAR" (a label usable where
 * a path is) and named in the first hop's identity list. 0 or an exit code. */
static int cli_load_proxy_key_env(cli *c, smx_keyring *kr, smx_strvec *ids)
{
    smx_err err = {{0}};
    char *content = cli_take_env(c, "--proxy-key-env", c->proxy_key_env);
    if (!content)
        return EXIT_USAGE;
    char *label = malloc(strlen(c->proxy_key_env) + sizeof "env:");
    int rc = label ? 0 : SMX_ENOMEM;
    if (label) {
        sprintf(label, "env:%s", c->proxy_key_env);
        rc = smx_keyring_add_content(kr, label, content, &err);
    }
    smx_str_wipe_free(content);
    if (rc < 0) {
        cli_error(c, "--proxy-key-env %s", rc == SMX_ENOMEM ? "out of memory" : err.msg);
        free(label);
        return EXIT_UNREACHABLE;
    }
    return smx_strvec_push_owned(ids, label) < 0 ? EXIT_UNREACHABLE : 0;
}

/* --proxy-*: the seeds' proxy_username / proxy_password / proxy_key_filename / proxy_pkey /
 * proxy_passphrase, for the first jump hop. */
static int cli_load_proxy_credentials(cli *c, smx_engine *e, char **proxy_pw)
{
    smx_keyring *kr = smx_engine_keyring(e);
    smx_jump_overrides jo = {0};
    jo.user = c->proxy_user;
    smx_err err = {{0}};
    if (c->proxy_passphrase_env) {
        char *p = cli_take_env(c, "--proxy-passphrase-env", c->proxy_passphrase_env);
        if (!p)
            return EXIT_USAGE;
        smx_keyring_add_passphrase(kr, p);
        smx_str_wipe_free(p);
    }
    for (size_t i = 0; i < c->proxy_keys.n; i++) {
        if (smx_keyring_load_file(kr, c->proxy_keys.v[i], &err) < 0) {
            cli_error(c, "--proxy-key %s", err.msg);
            return EXIT_UNREACHABLE;
        }
        smx_strvec_push(&jo.identityfiles, c->proxy_keys.v[i]);
    }
    if (c->proxy_key_env) {
        int rc = cli_load_proxy_key_env(c, kr, &jo.identityfiles);
        if (rc) {
            smx_strvec_free(&jo.identityfiles);
            return rc;
        }
    }
    if (c->proxy_password_env) {
        *proxy_pw = cli_take_env(c, "--proxy-password-env", c->proxy_password_env);
        if (!*proxy_pw) {
            smx_strvec_free(&jo.identityfiles);
            return EXIT_USAGE;
        }
        jo.password = *proxy_pw;
    }
    if (c->jump_password)
        jo.password = c->jump_password; /* the hop's own URL wins, as a target's does */
    int rc = smx_engine_set_jump_overrides(e, &jo);
    smx_strvec_free(&jo.identityfiles);
    return rc < 0 ? EXIT_UNREACHABLE : 0;
}

int cli_load_credentials(cli *c, smx_engine *e)
{
    smx_engine_set_config(e, c->config);
    int rc = cli_load_password(c, e);
    if (rc)
        return rc;
    rc = cli_load_keys(c, e);
    if (rc)
        return rc;
    char *proxy_pw = NULL;
    rc = cli_load_proxy_credentials(c, e, &proxy_pw);
    if (proxy_pw) {
        /* the engine keeps a pointer: the copy lives as long as the cli (wiped in cli_free) */
        c->proxy_password = proxy_pw;
    }
    if (rc)
        return rc;
    cli_load_hop_keys(c, e);
    /* Every key is decrypted: nothing needs a passphrase any more. */
    smx_keyring_forget_passphrases(smx_engine_keyring(e));
    /* the engine asks the agent for its keys once, without blocking, when a session needs them */
    const char *sock = getenv("SSH_AUTH_SOCK");
    smx_engine_use_agent(e, !c->no_agent && sock && *sock);
    return 0;
}
