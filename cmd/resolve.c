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

/* A list, item by item: each ssh:// password is taken out before the item is expanded, parsed
 * or quoted anywhere, and kept in c->secrets (its names get the tag) or dropped (-x). The list
 * text is wiped afterwards: it may hold passwords. */
static int cli_add_list(cli *c, smx_hostlist *hl, char *list, const struct cli_where *where,
                        int keep_pw)
{
    smx_err err = {{0}};
    int rc = smx_hostlist_add_targets(hl, list, keep_pw ? &c->secrets : NULL, &err);
    if (rc > 0 && !where->line)
        c->argv_password = 1; /* it was on the command line */
    if (rc >= 0)
        return 0;
    if (where->line)
        cli_error(c, "%s:%lu: %s", where->what, where->line, err.msg);
    else
        cli_error(c, "%s: %s", where->what, err.msg);
    return EXIT_USAGE;
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
    smx_wipe_free(text, len);
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
    smx_hostlist_set_config(excluded, c->config);   /* -x @group */
    for (size_t i = 0; rc == 0 && i < c->xlists.n; i++)
        rc = cli_add_list(c, excluded, c->xlists.v[i], &x, 0);
    if (rc == 0)
        smx_hostlist_remove(targets, excluded);
    smx_hostlist_free(excluded);
    return rc;
}

static int cli_resolve_one(cli *c, const char *token, const char *password, cli_host *h)
{
    smx_err err = {{0}};
    /* The target as shown in output and JSON: it has no password, but may have control bytes. */
    size_t shown_size = strlen(token) + 4;
    if (!(h->target = malloc(shown_size))) {
        cli_error(c, "out of memory");
        return EXIT_USAGE;
    }
    smx_target_display(token, h->target, shown_size);
    h->password = password ? strdup(password) : NULL;
    if (password && !h->password) {
        cli_error(c, "out of memory");
        return EXIT_USAGE;
    }
    if (smx_hostcfg_resolve(c->config, &c->ov, token, &h->hc, &err) < 0) {
        cli_error(c, "%s", err.msg);   /* it names the target */
        return EXIT_USAGE;
    }
    return 0;
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

/* --groups, --inventory, --genders, or for each format not named, the files its own tools read
 * (ClusterShell's groups.conf and group files, $ANSIBLE_INVENTORY, /etc/genders: a default
 * file that does not load fails only a lookup of a group that is not found). */
static int cli_load_groups(cli *c)
{
    static const struct {
        const char *opt;
        int (*add)(smx_config *, const char *, smx_err *);
    } kinds[] = {
        { "--groups", smx_config_add_groups_file },
        { "--inventory", smx_config_add_inventory },
        { "--genders", smx_config_add_genders },
    };
    const smx_strvec *files[] = { &c->groups_files, &c->inventories, &c->genders_files };
    const unsigned bits[] = { SMX_GROUPS_CLUSTERSHELL, SMX_GROUPS_ANSIBLE, SMX_GROUPS_GENDERS };
    unsigned defaults = 0;
    smx_err err = {{0}};
    for (size_t k = 0; k < 3; k++) {
        if (!files[k]->n)
            defaults |= bits[k];
        for (size_t i = 0; i < files[k]->n; i++) {
            if (kinds[k].add(c->config, files[k]->v[i], &err) < 0) {
                cli_error(c, "%s: %s", kinds[k].opt, err.msg);
                return EXIT_USAGE;
            }
        }
    }
    smx_strvec notes = {0};
    int rc = smx_config_add_default_groups(c->config, defaults, &notes, &err);
    for (size_t i = 0; c->verbose && i < notes.n; i++)
        cli_warn(c, "%s", notes.v[i]);
    smx_strvec_free(&notes);
    if (rc < 0) {
        cli_error(c, "%s", err.msg);
        return EXIT_USAGE;
    }
    return 0;
}

int cli_resolve_hosts(cli *c, int need_targets)
{
    smx_hostlist *targets = NULL;
    smx_err err = {{0}};
    int rc = 0;
    /* The config first: its group sources expand @group items of the lists. */
    if (smx_config_load(&c->config, c->config_file, &err) < 0) {
        cli_error(c, "%s", err.msg);
        rc = EXIT_USAGE;
    }
    if (rc == 0 && !c->quiet) {
        const smx_strvec *warnings = smx_config_warnings(c->config);
        for (size_t i = 0; warnings && i < warnings->n; i++)
            cli_warn(c, "%s", warnings->v[i]);
    }
    if (rc == 0)
        rc = cli_load_groups(c);
    if (rc == 0 && !(targets = smx_hostlist_new(SMX_HOSTLIST_MAX))) {
        cli_error(c, "out of memory");
        rc = EXIT_USAGE;
    }
    smx_hostlist_set_config(targets, c->config);
    if (rc == 0)
        rc = cli_expand_targets(c, targets);
    if (rc == 0 && need_targets && smx_hostlist_count(targets) == 0) {
        cli_error(c, "no targets: give hosts with -w LIST or --hostfile FILE");
        rc = EXIT_USAGE;
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

static void cli_key_skipped(void *ud, const char *msg)
{
    cli_warn(ud, "%s (skipped)", msg);
}

static int cli_load_keys(cli *c, smx_engine *e)
{
    smx_err err = {{0}};
    if (c->passphrase_env) {
        char *p = cli_take_env(c, "--passphrase-env", c->passphrase_env);
        if (!p)
            return EXIT_USAGE;
        smx_engine_set_passphrase(e, p);
        smx_str_wipe_free(p);
    }
    smx_engine_set_ask(e, cli_ask_secret, NULL);
    if (c->key_env) {
        char *content = cli_take_env(c, "--key-env", c->key_env);
        if (!content)
            return EXIT_USAGE;
        int rc = smx_engine_load_key_content(e, c->key_env, content, &err);
        smx_str_wipe_free(content);
        if (rc < 0) {
            cli_error(c, "--key-env %s", err.msg);
            return EXIT_UNREACHABLE;
        }
    }
    /* Keys named with -i must load; keys from ssh_config are skipped when missing, as ssh does. */
    if (smx_engine_set_overrides(e, &c->ov, &err) < 0) {
        cli_error(c, "-i %s", err.msg);
        return EXIT_UNREACHABLE;
    }
    for (size_t h = 0; h < c->nhosts; h++)
        smx_engine_load_host_keys(e, c->hosts[h].hc, c->verbose ? cli_key_skipped : NULL, c);
    return 0;
}

/* Loads the keys of every hop of every distinct ProxyJump chain the hosts use. */
static void cli_load_hop_keys(cli *c, smx_engine *e)
{
    smx_strvec seen = {0};
    for (size_t h = 0; h < c->nhosts; h++) {
        const char *chain = smx_hostcfg_proxyjump(c->hosts[h].hc);
        if (!chain || strcmp(chain, "none") == 0 || smx_strvec_contains(&seen, chain))
            continue;
        smx_strvec_push(&seen, chain);
        smx_err err = {{0}};
        smx_engine_load_jump_keys(e, chain, &err); /* its hosts fail with this when they connect */
    }
    smx_strvec_free(&seen);
}

/* --proxy-key-env: the key content, stored in the keyring under "env:VAR" (a label usable where
 * a path is) and named in the first hop's identity list. 0 or an exit code. */
static int cli_load_proxy_key_env(cli *c, smx_engine *e, smx_strvec *ids)
{
    smx_err err = {{0}};
    char *content = cli_take_env(c, "--proxy-key-env", c->proxy_key_env);
    if (!content)
        return EXIT_USAGE;
    char *label = malloc(strlen(c->proxy_key_env) + sizeof "env:");
    int rc = label ? 0 : SMX_ENOMEM;
    if (label) {
        sprintf(label, "env:%s", c->proxy_key_env);
        rc = smx_engine_add_key_content(e, label, content, &err);
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
    smx_jump_overrides jo = {0};
    jo.user = c->proxy_user;
    smx_err err = {{0}};
    if (c->proxy_passphrase_env) {
        char *p = cli_take_env(c, "--proxy-passphrase-env", c->proxy_passphrase_env);
        if (!p)
            return EXIT_USAGE;
        smx_engine_add_passphrase(e, p);
        smx_str_wipe_free(p);
    }
    for (size_t i = 0; i < c->proxy_keys.n; i++) {
        if (smx_engine_load_key(e, c->proxy_keys.v[i], &err) < 0) {
            cli_error(c, "--proxy-key %s", err.msg);
            return EXIT_UNREACHABLE;
        }
        smx_strvec_push(&jo.identityfiles, c->proxy_keys.v[i]);
    }
    if (c->proxy_key_env) {
        int rc = cli_load_proxy_key_env(c, e, &jo.identityfiles);
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

/* --sudo's password, asked once for the whole fleet; the exec options point at the copy the cli
 * keeps (wiped in cli_free). */
static int cli_load_sudo_password(cli *c)
{
    if (c->sudo_password_env) {
        c->sudo_password = cli_take_env(c, "--sudo-password-env", c->sudo_password_env);
    } else if (c->sudo_ask_pass) {
        c->sudo_password = cli_ask_secret("sudo password (for all hosts): ", NULL);
        if (!c->sudo_password)
            cli_error(c, "--sudo-ask-pass: no terminal to ask on");
    } else {
        return 0;
    }
    if (!c->sudo_password)
        return EXIT_USAGE;
    c->x.sudo_password = c->sudo_password;
    return 0;
}

int cli_load_credentials(cli *c, smx_engine *e)
{
    smx_engine_set_config(e, c->config);
    int rc = cli_load_password(c, e);
    if (!rc)
        rc = cli_load_sudo_password(c);
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
    smx_engine_forget_passphrases(e);
    /* the engine asks the agent for its keys once, without blocking, when a session needs them */
    const char *sock = getenv("SSH_AUTH_SOCK");
    smx_engine_use_agent(e, !c->no_agent && sock && *sock);
    return 0;
}
