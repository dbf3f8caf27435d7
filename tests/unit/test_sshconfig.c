/* Unit tests for the ssh_config parser/resolver (core/sshconfig*.c).
 *
 * Every test runs in its own mkdtemp() directory with HOME pointing at <tmp>/home, so the real
 * ~/.ssh is never read. Expected values were checked against `ssh -G` (OpenSSH 9.2). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* vasprintf */
#endif
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <ftw.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "sshconfig_internal.h"   /* the Host block index (tests at the end) */

typedef struct fx {
    char dir[64];               /* the temp dir */
    char home[PATH_MAX];        /* $HOME for the test: <dir>/home */
    char cfgpath[PATH_MAX];     /* <dir>/config, the -F file */
    smx_config *cfg;
    smx_hostcfg hc;
    smx_err err;
    char *saved_home;
} fx;

#define assert_msg(msg, sub)                                                                  \
    do {                                                                                      \
        if (!strstr((msg), (sub)))                                                            \
            fail_msg("message \"%s\" does not contain \"%s\"", (msg), (sub));                 \
    } while (0)

/* ---- fixture --------------------------------------------------------------------------- */

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb; (void)flag; (void)ftw;
    return remove(path);
}

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    const char *old = getenv("HOME");

    if (!f)
        return -1;
    strcpy(f->dir, "/tmp/smx-sshconfig-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->home, sizeof f->home, "%s/home", f->dir);
    snprintf(f->cfgpath, sizeof f->cfgpath, "%s/config", f->dir);
    char ssh[PATH_MAX + 8];
    snprintf(ssh, sizeof ssh, "%s/.ssh", f->home);
    if (mkdir(f->home, 0700) < 0 || mkdir(ssh, 0700) < 0)
        return -1;
    f->saved_home = old ? strdup(old) : NULL;
    setenv("HOME", f->home, 1);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;

    smx_hostcfg_free(&f->hc);
    smx_config_free(f->cfg);
    nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    if (f->saved_home)
        setenv("HOME", f->saved_home, 1);
    else
        unsetenv("HOME");
    free(f->saved_home);
    free(f);
    return 0;
}

/* Write <dir>/<rel> (or an absolute path), creating parent directories. */
static void put(fx *f, const char *rel, const char *text)
{
    char path[PATH_MAX * 2];
    FILE *fp;

    if (rel[0] == '/')
        snprintf(path, sizeof path, "%s", rel);
    else
        snprintf(path, sizeof path, "%s/%s", f->dir, rel);
    for (char *p = path + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            mkdir(path, 0700);
            *p = '/';
        }
    }
    fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

/* Write the -F file from a printf format ("%1$s" is the temp dir) and load it. */
static int loadf(fx *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int loadf(fx *f, const char *fmt, ...)
{
    char *text;
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vasprintf(&text, fmt, ap);
    va_end(ap);
    assert_true(n >= 0);
    put(f, f->cfgpath, text);
    free(text);
    smx_config_free(f->cfg);
    f->cfg = NULL;
    return smx_config_load(&f->cfg, f->cfgpath, &f->err);
}

static void load_ok(fx *f, const char *text)
{
    int rc = loadf(f, "%s", text);

    if (rc != 0)
        fail_msg("load failed (%d): %s", rc, f->err.msg);
}

static int resolve_ov(fx *f, const char *host, const smx_overrides *ov)
{
    smx_hostcfg_free(&f->hc);
    return smx_config_resolve(f->cfg, host, ov, &f->hc, &f->err);
}

static const smx_hostcfg *resolve(fx *f, const char *host)
{
    int rc = resolve_ov(f, host, NULL);

    if (rc != 0)
        fail_msg("resolve %s failed (%d): %s", host, rc, f->err.msg);
    return &f->hc;
}

static const char *local_user(void)
{
    struct passwd *pw = getpwuid(getuid());

    return pw ? pw->pw_name : "";
}

static char *homepath(const fx *f, const char *rel)
{
    static char buf[PATH_MAX * 2];

    snprintf(buf, sizeof buf, "%s/%s", f->home, rel);
    return buf;
}

#define assert_vec(vec, ...)                                                                  \
    do {                                                                                      \
        const char *want_[] = {__VA_ARGS__};                                                  \
        size_t n_ = sizeof want_ / sizeof want_[0];                                           \
        if ((vec).n != n_)                                                                    \
            fail_msg("%s: %zu entries, want %zu (first: %s)", #vec, (vec).n, n_,              \
                     (vec).n ? (vec).v[0] : "-");                                             \
        for (size_t i_ = 0; i_ < n_; i_++)                                                    \
            assert_string_equal((vec).v[i_], want_[i_]);                                      \
    } while (0)

/* ---- defaults -------------------------------------------------------------------------- */

static void test_defaults(void **state)
{
    fx *f = *state;
    const smx_hostcfg *hc;

    load_ok(f, "# nothing but a comment\n\n");
    hc = resolve(f, "Web1.Example.com");
    assert_string_equal(hc->host, "Web1.Example.com");
    assert_string_equal(hc->hostname, "web1.example.com");   /* lowercased like ssh */
    assert_string_equal(hc->user, local_user());
    assert_int_equal(hc->port, 22);
    assert_vec(hc->identityfile_raw, "~/.ssh/id_rsa", "~/.ssh/id_ecdsa", "~/.ssh/id_ecdsa_sk",
               "~/.ssh/id_ed25519", "~/.ssh/id_ed25519_sk", "~/.ssh/id_xmss", "~/.ssh/id_dsa");
    assert_int_equal(hc->identityfile.n, 7);
    assert_string_equal(hc->identityfile.v[0], homepath(f, ".ssh/id_rsa"));
    assert_string_equal(hc->identityfile.v[6], homepath(f, ".ssh/id_dsa"));
    assert_int_equal(hc->userknownhostsfile.n, 2);
    assert_string_equal(hc->userknownhostsfile.v[0], homepath(f, ".ssh/known_hosts"));
    assert_string_equal(hc->userknownhostsfile.v[1], homepath(f, ".ssh/known_hosts2"));
    assert_vec(hc->globalknownhostsfile, "/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2");
    assert_string_equal(hc->stricthostkeychecking, "ask");
    assert_int_equal(hc->connecttimeout, 0);
    assert_int_equal(hc->serveraliveinterval, 0);
    assert_int_equal(hc->serveralivecountmax, 3);
    assert_int_equal(hc->compression, 0);
    assert_null(hc->ciphers);
    assert_null(hc->kexalgorithms);
    assert_null(hc->hostkeyalgorithms);
    assert_null(hc->macs);
    assert_null(hc->preferredauthentications);
    assert_int_equal(hc->pubkeyauthentication, 1);
    assert_int_equal(hc->passwordauthentication, 1);
    assert_int_equal(hc->kbdinteractiveauthentication, 1);
    assert_int_equal(hc->batchmode, 0);
    assert_int_equal(hc->identitiesonly, 0);
    assert_null(hc->identityagent);
    assert_null(hc->proxyjump);
    assert_null(hc->proxycommand);
    assert_null(hc->hostkeyalias);
    assert_string_equal(hc->loglevel, "INFO");
    assert_int_equal(hc->connectionattempts, 1);
    assert_int_equal(hc->tcpkeepalive, 1);
    assert_string_equal(hc->addressfamily, "any");
}

static void test_batchmode_alive_default(void **state)
{
    fx *f = *state;

    /* Debian's ssh: BatchMode yes implies ServerAliveInterval 300 unless set. */
    load_ok(f, "Host a\n BatchMode yes\nHost b\n BatchMode yes\n ServerAliveInterval 0\n");
    assert_int_equal(resolve(f, "a")->serveraliveinterval, 300);
    assert_int_equal(resolve(f, "b")->serveraliveinterval, 0);
    assert_int_equal(resolve(f, "c")->serveraliveinterval, 0);
}

static void test_no_file_and_none(void **state)
{
    fx *f = *state;
    char missing[PATH_MAX + 16];

    snprintf(missing, sizeof missing, "%s/nope", f->dir);
    assert_int_equal(smx_config_load(&f->cfg, missing, &f->err), SMX_ENOENT);
    assert_null(f->cfg);
    assert_msg(f->err.msg, "nope");
    /* -F none reads nothing at all. */
    assert_int_equal(smx_config_load(&f->cfg, "none", &f->err), 0);
    assert_int_equal(resolve(f, "h")->port, 22);
}

/* NULL path: ~/.ssh/config (from $HOME), then the system file. */
static void test_default_files(void **state)
{
    fx *f = *state;

    put(f, homepath(f, ".ssh/config"), "Host dflt\n  Port 2022\n  Include extra.conf\n");
    put(f, homepath(f, ".ssh/extra.conf"), "User from-extra\n");
    assert_int_equal(smx_config_load(&f->cfg, NULL, &f->err), 0);
    assert_int_equal(resolve(f, "dflt")->port, 2022);
    assert_string_equal(f->hc.user, "from-extra");   /* relative Include: under ~/.ssh */
    assert_int_equal(resolve(f, "other")->port, 22);
}

/* ---- syntax ---------------------------------------------------------------------------- */

static void test_syntax_forms(void **state)
{
    fx *f = *state;
    const smx_hostcfg *hc;

    load_ok(f, "  # leading comment\n"
               "host=a\n"                       /* keywords are case-insensitive */
               "  PORT=2001\n"
               "Host b\n"
               "\tPort = 2002 # trailing comment\n"
               "\tHostName \"b host\"\n"
               "\tUser a\\\"b\n"
               "Host c\r\n"                     /* CRLF */
               "  Port 2003\r\n"
               "  HostName c#not-a-comment\r\n"
               "Host d\n"
               "  HostName 'single'\n"
               "  User pre\"mid dle\"post\n");
    assert_int_equal(resolve(f, "a")->port, 2001);
    hc = resolve(f, "b");
    assert_int_equal(hc->port, 2002);
    assert_string_equal(hc->hostname, "b host");
    assert_string_equal(hc->user, "a\"b");
    hc = resolve(f, "c");
    assert_int_equal(hc->port, 2003);
    assert_string_equal(hc->hostname, "c#not-a-comment");
    hc = resolve(f, "d");
    assert_string_equal(hc->hostname, "single");
    assert_string_equal(hc->user, "premid dlepost");
}

static void test_first_value_wins(void **state)
{
    fx *f = *state;
    const smx_hostcfg *hc;

    load_ok(f, "Host web1\n  Port 1001\n  User first\n"
               "Host web*\n  Port 1002\n  User second\n  HostName w.example\n"
               "Host *\n  Port 1003\n  Compression yes\n  IdentityFile ~/.ssh/a\n"
               "  IdentityFile ~/.ssh/b\n  IdentityFile ~/.ssh/a\n"
               "  UserKnownHostsFile ~/kh1 ~/kh2\n  UserKnownHostsFile ~/kh3\n");
    hc = resolve(f, "web1");
    assert_int_equal(hc->port, 1001);
    assert_string_equal(hc->user, "first");
    assert_string_equal(hc->hostname, "w.example");
    assert_int_equal(hc->compression, 1);
    assert_vec(hc->identityfile_raw, "~/.ssh/a", "~/.ssh/b");   /* accumulates, no dups */
    assert_int_equal(hc->userknownhostsfile.n, 2);              /* first list wins whole */
    assert_string_equal(hc->userknownhostsfile.v[1], homepath(f, "kh2"));
    assert_int_equal(resolve(f, "web2")->port, 1002);
    assert_int_equal(resolve(f, "db")->port, 1003);
}

static void test_values(void **state)
{
    fx *f = *state;
    const smx_hostcfg *hc;

    load_ok(f, "Host *\n"
               "  ConnectTimeout 1m30s\n  ServerAliveInterval 2H\n  ServerAliveCountMax 010\n"
               "  StrictHostKeyChecking off\n  PubkeyAuthentication host-bound\n"
               "  ChallengeResponseAuthentication no\n  PasswordAuthentication no\n"
               "  LogLevel debug1\n  AddressFamily inet6\n  KeepAlive no\n"
               "  Ciphers aes128-ctr,aes256-ctr\n  KexAlgorithms +diffie-hellman-group14-sha1\n"
               "  MACs hmac-sha2-256\n  HostKeyAlgorithms ssh-ed25519\n"
               "  PreferredAuthentications publickey,password\n  HostKeyAlias alias\n"
               "  IdentitiesOnly yes\n  BatchMode no\n  HashKnownHosts yes\n"
               "  ConnectionAttempts 4\n  PubkeyAcceptedKeyTypes ssh-ed25519\n");
    hc = resolve(f, "h");
    assert_int_equal(hc->connecttimeout, 90);
    assert_int_equal(hc->serveraliveinterval, 7200);
    assert_int_equal(hc->serveralivecountmax, 10);
    assert_string_equal(hc->stricthostkeychecking, "no");
    assert_int_equal(hc->pubkeyauthentication, 1);
    assert_int_equal(hc->kbdinteractiveauthentication, 0);
    assert_int_equal(hc->passwordauthentication, 0);
    assert_string_equal(hc->loglevel, "DEBUG");
    assert_string_equal(hc->addressfamily, "inet6");
    assert_int_equal(hc->tcpkeepalive, 0);
    assert_string_equal(hc->ciphers, "aes128-ctr,aes256-ctr");
    assert_string_equal(hc->kexalgorithms, "+diffie-hellman-group14-sha1");
    assert_string_equal(hc->macs, "hmac-sha2-256");
    assert_string_equal(hc->hostkeyalgorithms, "ssh-ed25519");
    assert_string_equal(hc->pubkeyacceptedalgorithms, "ssh-ed25519");
    assert_string_equal(hc->preferredauthentications, "publickey,password");
    assert_string_equal(hc->hostkeyalias, "alias");
    assert_int_equal(hc->identitiesonly, 1);
    assert_int_equal(hc->batchmode, 0);
    assert_int_equal(hc->hashknownhosts, 1);
    assert_int_equal(hc->connectionattempts, 4);
}

static void test_strict_host_key_words(void **state)
{
    fx *f = *state;

    load_ok(f, "Host a\n StrictHostKeyChecking YES\nHost b\n StrictHostKeyChecking false\n"
               "Host c\n StrictHostKeyChecking accept-new\nHost d\n StrictHostKeyChecking Ask\n");
    assert_string_equal(resolve(f, "a")->stricthostkeychecking, "yes");
    assert_string_equal(resolve(f, "b")->stricthostkeychecking, "no");
    assert_string_equal(resolve(f, "c")->stricthostkeychecking, "accept-new");
    assert_string_equal(resolve(f, "d")->stricthostkeychecking, "ask");
}

static void test_connecttimeout_none(void **state)
{
    fx *f = *state;

    /* "none" leaves the option unset, so a later value still applies (as in ssh). */
    load_ok(f, "Host a\n ConnectTimeout none\nHost *\n ConnectTimeout 5\n");
    assert_int_equal(resolve(f, "a")->connecttimeout, 5);
}

/* Debian's stock /etc/ssh/ssh_config and typical user options must load. */
static void test_known_but_ignored(void **state)
{
    fx *f = *state;

    put(f, "ssh_config.d/x.conf", "ForwardX11 no\n");
    assert_int_equal(loadf(f,
        "Include %s/ssh_config.d/*.conf\n"
        "Host *\n"
        "#   ForwardAgent no\n"
        "    SendEnv LANG LC_*\n"
        "    HashKnownHosts yes\n"
        "    GSSAPIAuthentication yes\n"
        "    ForwardAgent yes\n    AddKeysToAgent confirm 1h\n    VisualHostKey yes\n"
        "    UpdateHostKeys ask\n    ControlMaster auto\n    ControlPath ~/.ssh/cm-%%C\n"
        "    ControlPersist 10m\n    LocalForward 8080 localhost:80\n"
        "    RemoteCommand \"unbalanced quotes are not our business\n"
        "    Protocol 2\n    UseRoaming no\n    RSAAuthentication yes\n"
        "    ObscureKeystrokeTiming no\n", f->dir), 0);
    assert_int_equal(resolve(f, "h")->hashknownhosts, 1);
}

/* ---- Host and Match -------------------------------------------------------------------- */

static void test_host_negation(void **state)
{
    fx *f = *state;

    load_ok(f, "Host web-* !web-bad\n  Port 1\n"
               "Host !db1\n  Port 2\n"            /* a negation alone matches nothing */
               "Host db1 !db1\n  Port 3\n"
               "Host *\n  Port 4\n");
    assert_int_equal(resolve(f, "web-ok")->port, 1);
    assert_int_equal(resolve(f, "web-bad")->port, 4);
    assert_int_equal(resolve(f, "db2")->port, 4);
    assert_int_equal(resolve(f, "db1")->port, 4);
}

static void test_host_case(void **state)
{
    fx *f = *state;

    /* ssh matches Host lines case-sensitively against the name as typed, but Match host /
     * originalhost case-insensitively. */
    load_ok(f, "Host FOO\n  Port 1\nMatch host bar\n  Port 2\nMatch originalhost BaZ\n  Port 3\n");
    assert_int_equal(resolve(f, "FOO")->port, 1);
    assert_int_equal(resolve(f, "foo")->port, 22);
    assert_string_equal(f->hc.hostname, "foo");
    assert_int_equal(resolve(f, "BAR")->port, 2);
    assert_int_equal(resolve(f, "baz")->port, 3);
}

static void test_match_host_uses_hostname(void **state)
{
    fx *f = *state;

    load_ok(f, "Host short\n  HostName %h.corp.example.com\n"
               "Match host *.corp.example.com\n  Port 1\n"
               "Match originalhost short\n  User orig\n"
               "Match host short\n  User never\n");
    assert_int_equal(resolve(f, "short")->port, 1);
    assert_string_equal(f->hc.user, "orig");
    assert_string_equal(f->hc.hostname, "short.corp.example.com");
}

static void test_match_criteria(void **state)
{
    fx *f = *state;
    char text[512];

    snprintf(text, sizeof text,
             "Match host a user bob\n  Port 1\n"
             "Match host b localuser %s\n  Port 2\n"
             "Match host c !localuser %s\n  Port 3\n"
             "Match host=d user=nobody,root,%s\n  Port 4\n"
             "Match !host e,f all\n  Compression yes\n"
             "Match all\n  Port 9\n", local_user(), local_user(), local_user());
    load_ok(f, text);
    assert_int_equal(resolve(f, "a")->port, 9);               /* user is the local user */
    smx_overrides ov = {.user = "bob"};
    assert_int_equal(resolve_ov(f, "a", &ov), 0);
    assert_int_equal(f->hc.port, 1);                          /* -l is seen by Match user */
    assert_int_equal(resolve(f, "b")->port, 2);
    assert_int_equal(resolve(f, "c")->port, 9);
    assert_int_equal(resolve(f, "d")->port, 4);
    assert_int_equal(resolve(f, "e")->compression, 0);
    assert_int_equal(resolve(f, "g")->compression, 1);
}

static void test_match_user_after_user_set(void **state)
{
    fx *f = *state;

    load_ok(f, "User deploy\nMatch user deploy\n  Port 7\nMatch user DEPLOY\n  Port 8\n");
    assert_int_equal(resolve(f, "x")->port, 7);   /* Match user is case-sensitive */
}

static void test_match_exec_not_run(void **state)
{
    fx *f = *state;
    char marker[PATH_MAX + 16];
    const smx_strvec *w;

    snprintf(marker, sizeof marker, "%s/ran", f->dir);
    assert_int_equal(loadf(f, "Match exec \"touch %s\"\n  Port 1\n"
                              "Match !exec \"touch %s\"\n  User notrun\n", marker, marker), 0);
    assert_int_equal(resolve(f, "x")->port, 22);              /* exec is false ... */
    assert_string_equal(f->hc.user, "notrun");                /* ... so !exec is true */
    assert_int_equal(access(marker, F_OK), -1);               /* and nothing was run */
    w = smx_config_warnings(f->cfg);
    assert_int_equal(w->n, 2);
    assert_msg(w->v[0], "config:1: Match exec is not run");
    assert_msg(w->v[1], "config:3:");
}

static void test_match_final_pass(void **state)
{
    fx *f = *state;

    /* The final pass runs after everything else, with the resolved hostname; values set in
     * the first pass still win. */
    load_ok(f, "Host fin\n  HostName Final-1.Example.NET\n"
               "Match final host final-*.example.net\n  Port 2022\n  User fromfinal\n"
               "Match canonical\n  LogLevel ERROR\n"
               "Match !final\n  Compression yes\n"
               "Host final-1.example.net\n  HostKeyAlias onlyinfinal\n"
               "Host *\n  User first\n");
    assert_int_equal(resolve(f, "fin")->port, 2022);
    assert_string_equal(f->hc.user, "first");
    assert_string_equal(f->hc.hostname, "final-1.example.net");
    assert_string_equal(f->hc.loglevel, "ERROR");             /* canonical holds there too */
    assert_int_equal(f->hc.compression, 1);
    assert_string_equal(f->hc.hostkeyalias, "onlyinfinal");
    /* Without a `Match final` anywhere there is no second pass: canonical never holds. */
    load_ok(f, "Match canonical\n  Port 5\n");
    assert_int_equal(resolve(f, "x")->port, 22);
    /* CanonicalizeHostname also triggers it (we never rewrite the name through DNS). */
    load_ok(f, "CanonicalizeHostname yes\nMatch canonical\n  Port 6\n");
    assert_int_equal(resolve(f, "x")->port, 6);
}

/* ---- Include --------------------------------------------------------------------------- */

static void test_include_glob_order(void **state)
{
    fx *f = *state;

    put(f, "inc/20-b.conf", "User from-b\nPort 2\n");
    put(f, "inc/10-a.conf", "Port 1\n");
    put(f, "inc/README", "this is not a config file\n");
    put(f, "inc/sub.conf/ignored", "Port 3\n");               /* a directory named *.conf */
    assert_int_equal(loadf(f, "Include %1$s/inc/*.conf %1$s/missing/*.conf\nUser late\n",
                           f->dir), 0);
    assert_int_equal(resolve(f, "x")->port, 1);
    assert_string_equal(f->hc.user, "from-b");
}

static void test_include_relative_and_tilde(void **state)
{
    fx *f = *state;

    /* For user files (and -F), relative paths live in ~/.ssh. */
    put(f, homepath(f, ".ssh/conf.d/a.conf"), "Port 1234\n");
    put(f, homepath(f, "elsewhere.conf"), "User tilde\n");
    load_ok(f, "Include conf.d/*.conf\nInclude ~/elsewhere.conf\nInclude nothing-here.conf\n");
    assert_int_equal(resolve(f, "x")->port, 1234);
    assert_string_equal(f->hc.user, "tilde");
}

static void test_include_in_host_block(void **state)
{
    fx *f = *state;

    put(f, "inc/a.conf", "Port 100\nHost y\n  User y-from-include\nHost *\n  User star-inc\n");
    put(f, "inc/b.conf", "HostKeyAlias inherits-block-state\n");
    assert_int_equal(loadf(f, "Host x\n  Include %s/inc/*.conf\n  HostName after-include\n"
                              "Host *\n  User fallback\n", f->dir), 0);
    /* Matching block: the included lines apply, an included Host line only scopes the rest of
     * its own file, and the includer's block continues after the Include. */
    resolve(f, "x");
    assert_int_equal(f->hc.port, 100);
    assert_string_equal(f->hc.user, "star-inc");
    assert_string_equal(f->hc.hostkeyalias, "inherits-block-state");
    assert_string_equal(f->hc.hostname, "after-include");
    /* Non-matching block: nothing inside the include may match, not even "Host y"/"Host *". */
    resolve(f, "y");
    assert_int_equal(f->hc.port, 22);
    assert_string_equal(f->hc.user, "fallback");
    assert_null(f->hc.hostkeyalias);
}

static void test_include_depth_limit(void **state)
{
    fx *f = *state;

    put(f, "loop.conf", "");
    assert_int_equal(loadf(f, "Include %s/loop.conf\n", f->dir), 0);
    char text[PATH_MAX + 32];
    snprintf(text, sizeof text, "Include %s/loop.conf\n", f->dir);
    put(f, "loop.conf", text);
    assert_int_equal(loadf(f, "Include %s/loop.conf\n", f->dir), SMX_EINVAL);
    assert_msg(f->err.msg, "loop.conf:1: Include nested too deeply (limit 16)");
    assert_null(f->cfg);
}

/* No loop, so the depth limit never fires: each level includes the next four times. Depth 10
 * read 4^10 files (10 s, 1.8 GB); now the load stops after SMX_CFG_MAX_FILES files with a
 * message naming the Include and the file it would have read next. */
static void test_include_fanout_cap(void **state)
{
    fx *f = *state;
    char name[32], text[PATH_MAX * 5];

    for (int i = 0; i < 10; i++) {
        snprintf(name, sizeof name, "fan/l%d", i);
        snprintf(text, sizeof text, "Host x%1$d\n  Port 22\nHost *\n"
                 "Include %2$s/fan/l%1$d\nInclude %2$s/fan/l%1$d\nInclude %2$s/fan/l%1$d\n"
                 "Include %2$s/fan/l%1$d\n", i + 1, f->dir);
        put(f, name, text);
    }
    put(f, "fan/l10", "Host leaf\n");
    clock_t t0 = clock();
    assert_int_equal(loadf(f, "Include %s/fan/l0\n", f->dir), SMX_ERANGE);
    double secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
    assert_msg(f->err.msg, "Include ");
    assert_msg(f->err.msg, "/fan/l");
    assert_msg(f->err.msg, "more than 4096 files read for one configuration");
    assert_null(f->cfg);
    if (secs > 10)
        fail_msg("the capped load still took %.1f s of CPU", secs);

    /* A wide but finite tree under the cap loads: 4 x 4 x 4 = 64 leaves. */
    for (int i = 0; i < 3; i++) {
        snprintf(name, sizeof name, "ok/l%d", i);
        snprintf(text, sizeof text, "Include %2$s/ok/l%1$d %2$s/ok/l%1$d\n"
                 "Include %2$s/ok/l%1$d %2$s/ok/l%1$d\n", i + 1, f->dir);
        put(f, name, text);
    }
    put(f, "ok/l3", "Host leaf\n  Port 2222\n");
    int rc = loadf(f, "Include %s/ok/l0\n", f->dir);
    if (rc != 0)
        fail_msg("the 64-leaf tree did not load: %s", f->err.msg);
    assert_int_equal(resolve(f, "leaf")->port, 2222);
}

/* Timeouts are kept in int milliseconds: the largest value that fits loads, one more does not
 * (ConnectTimeout 3000000 became a negative timeout). */
static void test_time_limits(void **state)
{
    fx *f = *state;

    load_ok(f, "Host *\n  ConnectTimeout 2147483\n  ServerAliveInterval 24d20h31m23s\n");
    assert_int_equal(resolve(f, "h")->connecttimeout, 2147483);
    assert_int_equal(f->hc.serveraliveinterval, 2147483);
    assert_int_equal(loadf(f, "ConnectTimeout 2147484\n"), SMX_ERANGE);
    assert_msg(f->err.msg, "config:1: time value \"2147484\" for ConnectTimeout is out of range");
}

/* A ProxyJump URL's password never appears in a message, even from a config file. */
static void test_proxyjump_error_masks_password(void **state)
{
    fx *f = *state;

    assert_int_equal(loadf(f, "ProxyJump ssh://u:hunter2@j:99999\n"), SMX_ERANGE);
    assert_msg(f->err.msg, "bad ProxyJump \"ssh://u:***@j:99999\"");
    assert_null(strstr(f->err.msg, "hunter2"));
}

static void test_include_error_names_file(void **state)
{
    fx *f = *state;

    /* Included files are syntax-checked even inside a block that matches nothing (ssh too). */
    put(f, homepath(f, ".ssh/bad.conf"), "\n\nPort 70x\n");
    assert_int_equal(loadf(f, "Host never\n  Include bad.conf\n"), SMX_EINVAL);
    assert_string_equal(f->err.msg, "~/.ssh/bad.conf:3: bad port \"70x\"");
}

/* ---- tokens ---------------------------------------------------------------------------- */

static void test_hostname_tokens(void **state)
{
    fx *f = *state;

    load_ok(f, "Host a\n  HostName %h.Example.COM\n"
               "Host B\n  HostName X%%Y.%h\n"            /* '%' in the result: no lowercasing */
               "Host c\n  HostName FE80::1\n");
    assert_string_equal(resolve(f, "a")->hostname, "a.example.com");
    assert_string_equal(resolve(f, "B")->hostname, "X%Y.B");
    assert_string_equal(resolve(f, "c")->hostname, "FE80::1");
    assert_string_equal(resolve(f, "AB:CD")->hostname, "AB:CD");
}

static void test_path_tokens(void **state)
{
    fx *f = *state;
    const smx_hostcfg *hc;
    char want[PATH_MAX * 2], lhost[256] = "", lshort[256];

    gethostname(lhost, sizeof lhost - 1);
    snprintf(lshort, sizeof lshort, "%.*s", (int)strcspn(lhost, "."), lhost);
    load_ok(f, "Host Web\n  HostName web.example.com\n  User bob\n  Port 2200\n"
               "  IdentityFile ~/.ssh/%h_%p_%r_%n_%%\n"
               "  IdentityFile %d/k_%u_%i_%l_%L\n"
               "  IdentityFile /k/%C\n"
               "  UserKnownHostsFile ~/kh/%k %d/kh2_%h\n"
               "  IdentityAgent ~/agent-%n.sock\n"
               "  ProxyCommand nc -x proxy %h %p # %r stays\n");
    hc = resolve(f, "Web");
    /* ssh -G prints identity files unexpanded; the struct has them expanded. */
    assert_vec(hc->identityfile_raw, "~/.ssh/%h_%p_%r_%n_%%", "%d/k_%u_%i_%l_%L", "/k/%C");
    assert_string_equal(hc->identityfile.v[0], homepath(f, ".ssh/web.example.com_2200_bob_Web_%"));
    snprintf(want, sizeof want, "%s/k_%s_%lu_%s_%s", f->home, local_user(),
             (unsigned long)getuid(), lhost, lshort);
    assert_string_equal(hc->identityfile.v[1], want);
    assert_int_equal(strlen(hc->identityfile.v[2]), 3 + 40);  /* SHA-1 hex of %l%h%p%r */
    for (const char *p = hc->identityfile.v[2] + 3; *p; p++)
        assert_true(isxdigit((unsigned char)*p) && !isupper((unsigned char)*p));
    assert_string_equal(hc->userknownhostsfile.v[0], homepath(f, "kh/Web"));
    assert_string_equal(hc->userknownhostsfile.v[1], homepath(f, "kh2_web.example.com"));
    assert_string_equal(hc->identityagent, homepath(f, "agent-Web.sock"));
    assert_string_equal(hc->proxycommand, "nc -x proxy %h %p # %r stays");  /* verbatim */
}

static void test_hostkeyalias_token_and_env(void **state)
{
    fx *f = *state;

    setenv("SMX_TEST_DIR", "/env/dir", 1);
    load_ok(f, "HostKeyAlias hk\nUserKnownHostsFile %k ${SMX_TEST_DIR}/kh\n"
               "IdentityFile ${SMX_TEST_DIR}/id\nIdentityAgent ${SMX_TEST_DIR}/sock\n");
    resolve(f, "x");
    assert_vec(f->hc.userknownhostsfile, "hk", "/env/dir/kh");
    assert_vec(f->hc.identityfile, "/env/dir/id");
    assert_string_equal(f->hc.identityagent, "/env/dir/sock");
    unsetenv("SMX_TEST_DIR");
}

static void test_special_values(void **state)
{
    fx *f = *state;

    load_ok(f, "Host a\n  IdentityAgent SSH_AUTH_SOCK\n  UserKnownHostsFile none\n"
               "  IdentityFile none\n"
               "Host b\n  IdentityAgent $SSH_AUTH_SOCK\n  GlobalKnownHostsFile none\n"
               "Host c\n  IdentityAgent none\n"
               "Host d\n  UserKnownHostsFile ~\n");
    resolve(f, "a");
    assert_string_equal(f->hc.identityagent, "SSH_AUTH_SOCK");
    assert_int_equal(f->hc.userknownhostsfile.n, 0);        /* "none" */
    assert_int_equal(f->hc.identityfile.n, 0);              /* "none": and no defaults */
    assert_vec(f->hc.identityfile_raw, "none");
    assert_string_equal(resolve(f, "b")->identityagent, "$SSH_AUTH_SOCK");
    assert_int_equal(f->hc.globalknownhostsfile.n, 0);
    assert_string_equal(resolve(f, "c")->identityagent, "none");
    resolve(f, "d");
    char want[PATH_MAX + 2];
    snprintf(want, sizeof want, "%s/", f->home);            /* ssh's "~" -> "<home>/" */
    assert_string_equal(f->hc.userknownhostsfile.v[0], want);
}

static void test_expand_proxy(void **state)
{
    fx *f = *state;
    char *cmd = NULL;

    load_ok(f, "Host j\n  HostName jump.example\n  User u\n  Port 2\n"
               "  ProxyCommand ssh -W %h:%p gw %r %n %%\n");
    resolve(f, "j");
    assert_int_equal(smx_hostcfg_expand_proxy(&f->hc, f->hc.proxycommand, &cmd, &f->err), 0);
    assert_string_equal(cmd, "ssh -W jump.example:2 gw u j %");
    free(cmd);
    assert_int_equal(smx_hostcfg_expand_proxy(&f->hc, "nc %d", &cmd, &f->err), SMX_EINVAL);
    assert_msg(f->err.msg, "unknown token %d");
}

/* ---- ProxyJump / ProxyCommand ---------------------------------------------------------- */

static void test_proxy_precedence(void **state)
{
    fx *f = *state;

    load_ok(f, "Host jc\n  ProxyJump j1\n  ProxyCommand nc %h %p\n"
               "Host cj\n  ProxyCommand nc %h %p\n  ProxyJump j1\n"
               "Host nonejump\n  ProxyJump none\n  ProxyCommand nc\n"   /* not blocked */
               "Host nonecmd\n  ProxyCommand none\n  ProxyJump j1\n"    /* blocked */
               "Host jj\n  ProxyJump NONE\n  ProxyJump j2\n"
               "Host norm\n  ProxyJump a:22,ssh://u@b:0022/\n"
               "Host *\n  ProxyJump fallback\n");
    resolve(f, "jc");
    assert_string_equal(f->hc.proxyjump, "j1");
    assert_null(f->hc.proxycommand);
    resolve(f, "cj");
    assert_null(f->hc.proxyjump);
    assert_string_equal(f->hc.proxycommand, "nc %h %p");
    resolve(f, "nonejump");
    assert_null(f->hc.proxyjump);
    assert_string_equal(f->hc.proxycommand, "nc");
    resolve(f, "nonecmd");
    assert_null(f->hc.proxyjump);
    assert_null(f->hc.proxycommand);
    resolve(f, "jj");
    assert_null(f->hc.proxyjump);
    assert_string_equal(resolve(f, "norm")->proxyjump, "a:22,u@b:22");  /* as ssh -G */
    assert_string_equal(resolve(f, "other")->proxyjump, "fallback");
}

static void test_proxyjump_parse(void **state)
{
    smx_jumphop *hops;
    size_t n;
    smx_err err;

    (void)state;
    assert_int_equal(smx_proxyjump_parse("admin@bastion:2222,ssh://u@[::1]:23,plain,v6@[fe80::1]",
                                         &hops, &n, &err), 0);
    assert_int_equal(n, 4);
    assert_string_equal(hops[0].user, "admin");
    assert_string_equal(hops[0].host, "bastion");
    assert_int_equal(hops[0].port, 2222);
    assert_string_equal(hops[1].user, "u");
    assert_string_equal(hops[1].host, "::1");
    assert_int_equal(hops[1].port, 23);
    assert_null(hops[2].user);
    assert_string_equal(hops[2].host, "plain");
    assert_int_equal(hops[2].port, 0);
    assert_string_equal(hops[3].host, "fe80::1");
    smx_jumphops_free(hops, n);
    assert_int_equal(smx_proxyjump_parse("None", &hops, &n, &err), 0);
    assert_int_equal(n, 0);
    assert_null(hops);
    assert_int_equal(smx_proxyjump_parse("a,,b", &hops, &n, &err), SMX_EINVAL);
    assert_msg(err.msg, "empty hop");
    assert_int_equal(smx_proxyjump_parse("@a", &hops, &n, &err), SMX_EINVAL);
    assert_int_equal(smx_proxyjump_parse("u@", &hops, &n, &err), SMX_EINVAL);
    assert_int_equal(smx_proxyjump_parse("a:0", &hops, &n, &err), SMX_ERANGE);
    assert_int_equal(smx_proxyjump_parse("a:70x", &hops, &n, &err), SMX_ERANGE);
    assert_msg(err.msg, "bad port \"70x\"");
    assert_int_equal(smx_proxyjump_parse("[::1", &hops, &n, &err), SMX_EINVAL);
    assert_int_equal(smx_proxyjump_parse("[::1]x", &hops, &n, &err), SMX_EINVAL);
}

/* ---- overrides ------------------------------------------------------------------------- */

static void test_overrides(void **state)
{
    fx *f = *state;
    smx_overrides ov = {0};
    char key[PATH_MAX + 16];

    load_ok(f, "Host h\n  User cfguser\n  Port 1000\n  IdentityFile ~/.ssh/cfg_key\n"
               "  Compression no\n  ProxyJump cfgjump\n");
    /* -o lines come before the files: first value wins. */
    smx_strvec_push(&ov.options, "Compression=yes");
    smx_strvec_push(&ov.options, "Port 3000");
    smx_strvec_push(&ov.options, "Port=3001");
    smx_strvec_push(&ov.options, "IdentityFile ~/.ssh/o_%h");
    smx_strvec_push(&ov.options, "ProxyJump none");
    assert_int_equal(resolve_ov(f, "h", &ov), 0);
    assert_int_equal(f->hc.compression, 1);
    assert_int_equal(f->hc.port, 3000);
    assert_string_equal(f->hc.user, "cfguser");
    assert_null(f->hc.proxyjump);
    assert_vec(f->hc.identityfile_raw, "~/.ssh/o_%h", "~/.ssh/cfg_key");
    /* -l/-p beat both the files and -o; -i comes first, "~" expanded like ssh's getopt. */
    ov.user = "lu";
    ov.port = 2000;
    smx_strvec_push(&ov.identityfiles, "~/.ssh/i_key");
    smx_strvec_push(&ov.identityfiles, "/abs/key");
    smx_strvec_push(&ov.options, "User=ou");
    assert_int_equal(resolve_ov(f, "h", &ov), 0);
    assert_string_equal(f->hc.user, "lu");
    assert_int_equal(f->hc.port, 2000);
    snprintf(key, sizeof key, "%s/.ssh/i_key", f->home);
    assert_vec(f->hc.identityfile_raw, key, "/abs/key", "~/.ssh/o_%h", "~/.ssh/cfg_key");
    assert_string_equal(f->hc.identityfile.v[2], homepath(f, ".ssh/o_h"));
    smx_strvec_free(&ov.options);
    smx_strvec_free(&ov.identityfiles);
}

static void test_override_hostname_and_ignoreunknown(void **state)
{
    fx *f = *state;
    smx_overrides ov = {0};

    load_ok(f, "Host *\n  SomethingNew yes\n  HostName cfg.example\n");
    smx_strvec_push(&ov.options, "IgnoreUnknown=SomethingNew");
    smx_strvec_push(&ov.options, "HostName=%h.over");
    assert_int_equal(resolve_ov(f, "X", &ov), 0);
    assert_string_equal(f->hc.hostname, "x.over");
    smx_strvec_free(&ov.options);
    /* without the -o IgnoreUnknown the unknown keyword is an error */
    assert_int_equal(resolve_ov(f, "X", NULL), SMX_EINVAL);
}

static void test_override_errors(void **state)
{
    fx *f = *state;
    smx_overrides ov = {0};

    load_ok(f, "");
    smx_strvec_push(&ov.options, "Port 70x");
    assert_int_equal(resolve_ov(f, "h", &ov), SMX_EINVAL);
    assert_string_equal(f->err.msg, "-o 'Port 70x': bad port \"70x\"");
    smx_strvec_free(&ov.options);
    smx_strvec_push(&ov.options, "Host other");
    assert_int_equal(resolve_ov(f, "h", &ov), SMX_EINVAL);
    assert_msg(f->err.msg, "Host is not supported as a command-line option");
    smx_strvec_free(&ov.options);
    smx_strvec_push(&ov.options, "Foo=bar");
    assert_int_equal(resolve_ov(f, "h", &ov), SMX_EINVAL);
    assert_msg(f->err.msg, "unknown option \"Foo\"");
    smx_strvec_free(&ov.options);
    ov.port = 70000;
    assert_int_equal(resolve_ov(f, "h", &ov), SMX_ERANGE);
    assert_msg(f->err.msg, "bad port 70000");
    assert_null(f->hc.hostname);                 /* out stays zeroed on error */
}

static void test_validate_option(void **state)
{
    smx_err err;

    (void)state;
    assert_int_equal(smx_config_validate_option("Port=2222", &err), 0);
    assert_int_equal(smx_config_validate_option("StrictHostKeyChecking accept-new", &err), 0);
    assert_int_equal(smx_config_validate_option("SendEnv LANG", &err), 0);   /* ignore-listed */
    assert_int_equal(smx_config_validate_option("forwardagent=yes", &err), 0);
    assert_int_equal(smx_config_validate_option("Foo=1", &err), SMX_EINVAL);
    assert_string_equal(err.msg, "unknown option \"Foo\"");
    assert_int_equal(smx_config_validate_option("Port=0", &err), SMX_ERANGE);
    assert_int_equal(smx_config_validate_option("BatchMode=maybe", &err), SMX_EINVAL);
    assert_msg(err.msg, "bad value \"maybe\" for BatchMode (expected yes or no)");
    assert_int_equal(smx_config_validate_option("Match all", &err), SMX_EINVAL);
    assert_int_equal(smx_config_validate_option("Include /etc/passwd", &err), SMX_EINVAL);
    assert_int_equal(smx_config_validate_option("Port", &err), SMX_EINVAL);
    assert_msg(err.msg, "missing argument for Port");
}

/* ---- errors ---------------------------------------------------------------------------- */

static void expect_load_error(fx *f, const char *text, int code, const char *msg)
{
    int rc = loadf(f, "%s", text);

    if (rc != code)
        fail_msg("\"%s\": got %d (%s), want %d", text, rc, f->err.msg, code);
    assert_msg(f->err.msg, msg);
    assert_null(f->cfg);
}

static void test_load_errors(void **state)
{
    fx *f = *state;

    expect_load_error(f, "Host x\n  Port 70x\n", SMX_EINVAL, "config:2: bad port \"70x\"");
    expect_load_error(f, "Port 0\n", SMX_ERANGE, "config:1: bad port \"0\" (must be 1..65535)");
    expect_load_error(f, "Port 65536\n", SMX_ERANGE, "bad port \"65536\"");
    expect_load_error(f, "Port==22\n", SMX_EINVAL, "bad port \"=22\"");
    expect_load_error(f, "Port 22 33\n", SMX_EINVAL, "Port takes one argument, extra \"33\"");
    expect_load_error(f, "Port\n", SMX_EINVAL, "config:1: missing argument for Port");
    expect_load_error(f, "HostName \"\"\n", SMX_EINVAL, "missing argument for HostName");
    expect_load_error(f, "Compression true\n", SMX_EINVAL,
                      "bad value \"true\" for Compression (expected yes or no)");
    expect_load_error(f, "StrictHostKeyChecking on\n", SMX_EINVAL,
                      "bad value \"on\" for StrictHostKeyChecking");
    expect_load_error(f, "LogLevel loud\n", SMX_EINVAL, "bad value \"loud\" for LogLevel");
    expect_load_error(f, "ConnectTimeout 10x\n", SMX_EINVAL,
                      "bad time value \"10x\" for ConnectTimeout");
    /* Timeouts are int milliseconds inside: a value past 2147483 s must not wrap around. */
    expect_load_error(f, "ConnectTimeout 99999999999\n", SMX_ERANGE,
                      "time value \"99999999999\" for ConnectTimeout is out of range "
                      "(at most 2147483 seconds)");
    expect_load_error(f, "ConnectTimeout 3000000\n", SMX_ERANGE, "out of range");
    expect_load_error(f, "ServerAliveInterval 24856d\n", SMX_ERANGE,
                      "time value \"24856d\" for ServerAliveInterval is out of range");
    expect_load_error(f, "ServerAliveInterval 2147483s1s\n", SMX_ERANGE, "out of range");
    expect_load_error(f, "ConnectTimeout 1x5\n", SMX_EINVAL, "bad time value");
    expect_load_error(f, "ServerAliveCountMax 1m\n", SMX_EINVAL,
                      "bad number \"1m\" for ServerAliveCountMax");
    expect_load_error(f, "ServerAliveCountMax -1\n", SMX_ERANGE, "must not be negative");
    expect_load_error(f, "ServerAliveCountMax 9999999999\n", SMX_ERANGE, "number too large");
    expect_load_error(f, "HostName \"abc\n", SMX_EINVAL, "config:1: unbalanced quotes");
    expect_load_error(f, "=Port 22\n", SMX_EINVAL, "missing keyword");
    expect_load_error(f, "Host\n", SMX_EINVAL, "missing argument for Host");
    expect_load_error(f, "Host \"\" x\n", SMX_EINVAL, "empty argument for Host");
    expect_load_error(f, "Match\n", SMX_EINVAL, "missing argument for Match");
    expect_load_error(f, "Match bogus x\n", SMX_EINVAL, "unknown Match criterion \"bogus\"");
    expect_load_error(f, "Match host\n", SMX_EINVAL, "Match host needs an argument");
    expect_load_error(f, "Match exec\n", SMX_EINVAL, "Match exec needs an argument");
    expect_load_error(f, "Match all host x\n", SMX_EINVAL, "'all' cannot be combined");
    expect_load_error(f, "Match final=x\n", SMX_EINVAL, "Match final takes no argument");
    expect_load_error(f, "Include\n", SMX_EINVAL, "missing argument for Include");
    expect_load_error(f, "ProxyJump a,,b\n", SMX_EINVAL, "bad ProxyJump \"a,,b\": empty hop");
    expect_load_error(f, "ProxyJump a:0\n", SMX_ERANGE, "bad ProxyJump \"a:0\": bad port");
    expect_load_error(f, "ProxyCommand\n", SMX_EINVAL, "missing argument for ProxyCommand");
    expect_load_error(f, "IdentityAgent $HOME/x\n", SMX_EINVAL, "bad environment variable name");
    expect_load_error(f, "Ciphers aes128-ctr,,aes256-ctr\n", SMX_EINVAL, "bad Ciphers list");
    expect_load_error(f, "IdentityFile a b\n", SMX_EINVAL, "IdentityFile takes one argument");
}

static void test_line_too_long(void **state)
{
    fx *f = *state;
    size_t n = 20000;
    char *text = malloc(n + 16);

    strcpy(text, "# ok\nHostName ");
    memset(text + strlen(text), 'a', n);
    strcpy(text + 14 + n, "\n");
    expect_load_error(f, text, SMX_EINVAL, "config:2: line too long");
    free(text);
}

static void test_garbage_does_not_crash(void **state)
{
    fx *f = *state;
    char text[4096];

    /* Random bytes, NULs, stray quotes and '=': the loader may reject, must not crash. */
    srand(42);
    for (int round = 0; round < 200; round++) {
        size_t n = (size_t)(rand() % (int)(sizeof text - 1));
        static const char alphabet[] = "Host Match Port = \" ' \\ # % ~ ! * , \n \t \r x y 1";

        for (size_t i = 0; i < n; i++)
            text[i] = round % 2 ? alphabet[rand() % (int)(sizeof alphabet - 1)]
                                : (char)(rand() % 256);
        text[n] = '\0';
        put(f, f->cfgpath, text);
        smx_config_free(f->cfg);
        f->cfg = NULL;
        if (smx_config_load(&f->cfg, f->cfgpath, &f->err) == 0) {
            smx_hostcfg_free(&f->hc);
            smx_config_resolve(f->cfg, "x", NULL, &f->hc, &f->err);
        }
    }
}

static void test_unknown_keyword(void **state)
{
    fx *f = *state;

    /* Unknown keywords are an error even inside non-matching blocks, unless an IgnoreUnknown
     * in effect for this host (first value wins, set before the line) covers them. */
    load_ok(f, "Host never\n  FooBar 1\n");
    assert_int_equal(resolve_ov(f, "x", NULL), SMX_EINVAL);
    assert_msg(f->err.msg, "/config:2: unknown option \"FooBar\"");
    load_ok(f, "IgnoreUnknown usekeychain,Foo*\nIgnoreUnknown Bar\nUseKeychain yes\nFooBar 1\n");
    assert_int_equal(resolve(f, "x")->port, 22);
    load_ok(f, "IgnoreUnknown Foo*\nIgnoreUnknown Bar\nBar 1\n");
    assert_int_equal(resolve_ov(f, "x", NULL), SMX_EINVAL);
    assert_msg(f->err.msg, "config:3: unknown option \"Bar\"");
    load_ok(f, "FooBar 1\nIgnoreUnknown FooBar\n");              /* must come first */
    assert_int_equal(resolve_ov(f, "x", NULL), SMX_EINVAL);
    load_ok(f, "Host y\n  IgnoreUnknown FooBar\nHost *\n  FooBar 1\n");  /* per host */
    assert_int_equal(resolve_ov(f, "x", NULL), SMX_EINVAL);
    assert_int_equal(resolve_ov(f, "y", NULL), 0);
}

static void test_resolve_errors(void **state)
{
    fx *f = *state;

    load_ok(f, "Host p\n  HostName %p\n"
               "Host q\n  IdentityFile ~/x%\n"
               "Host r\n  UserKnownHostsFile ${SMX_SURELY_UNSET_VAR}/kh\n"
               "Host s\n  IdentityFile ~smx-no-such-user/key\n"
               "Host t\n  UserKnownHostsFile ${unterminated\n"
               "Host u\n  UserKnownHostsFile a%z\n");
    assert_int_equal(resolve_ov(f, "p", NULL), SMX_EINVAL);
    assert_msg(f->err.msg, "HostName \"%p\": unknown token %p");
    assert_int_equal(resolve_ov(f, "q", NULL), SMX_EINVAL);
    assert_msg(f->err.msg, "'%' at end of value");
    assert_int_equal(resolve_ov(f, "r", NULL), SMX_EINVAL);
    assert_msg(f->err.msg, "environment variable \"SMX_SURELY_UNSET_VAR\" is not set");
    assert_int_equal(resolve_ov(f, "s", NULL), SMX_EINVAL);
    assert_msg(f->err.msg, "no such user \"smx-no-such-user\"");
    assert_int_equal(resolve_ov(f, "t", NULL), SMX_EINVAL);
    assert_msg(f->err.msg, "unterminated ${");
    assert_int_equal(resolve_ov(f, "u", NULL), SMX_EINVAL);
    assert_msg(f->err.msg, "UserKnownHostsFile \"a%z\": unknown token %z");
    assert_int_equal(resolve_ov(f, "", NULL), SMX_EINVAL);
    assert_msg(f->err.msg, "empty host name");
    assert_int_equal(smx_config_resolve(NULL, "x", NULL, &f->hc, &f->err), SMX_EINVAL);
    /* a bad token only matters where it is used */
    assert_int_equal(resolve(f, "other")->port, 22);
}

static void test_too_many_identities(void **state)
{
    fx *f = *state;
    char *text = malloc(200 * 32);

    text[0] = '\0';
    for (int i = 0; i < 101; i++)
        sprintf(text + strlen(text), "IdentityFile /k/%d\n", i);
    load_ok(f, text);
    free(text);
    assert_int_equal(resolve_ov(f, "x", NULL), SMX_ERANGE);
    assert_msg(f->err.msg, "too many identity files (max 100)");
}

/* ---- JSON ------------------------------------------------------------------------------ */

static void test_json(void **state)
{
    fx *f = *state;
    json_t *j;

    load_ok(f, "Host a\n  HostName A.example\n  ConnectTimeout 7\n  UserKnownHostsFile none\n"
               "  Ciphers aes128-ctr\n  ProxyJump j\n  StrictHostKeyChecking true\n");
    resolve(f, "a");
    j = smx_hostcfg_to_json(&f->hc);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "host")), "a");
    assert_string_equal(json_string_value(json_object_get(j, "hostname")), "a.example");
    assert_int_equal(json_integer_value(json_object_get(j, "port")), 22);
    assert_int_equal(json_integer_value(json_object_get(j, "connecttimeout")), 7);
    assert_true(json_is_array(json_object_get(j, "identityfile")));
    assert_string_equal(json_string_value(json_array_get(json_object_get(j, "identityfile"), 0)),
                        "~/.ssh/id_rsa");
    assert_string_equal(json_string_value(json_array_get(json_object_get(j, "userknownhostsfile"), 0)),
                        "none");
    assert_true(json_is_false(json_object_get(j, "compression")));
    assert_true(json_is_true(json_object_get(j, "pubkeyauthentication")));
    assert_string_equal(json_string_value(json_object_get(j, "ciphers")), "aes128-ctr");
    assert_true(json_is_null(json_object_get(j, "macs")));
    assert_true(json_is_null(json_object_get(j, "proxycommand")));
    assert_string_equal(json_string_value(json_object_get(j, "proxyjump")), "j");
    assert_string_equal(json_string_value(json_object_get(j, "stricthostkeychecking")), "yes");
    assert_int_equal(json_integer_value(json_object_get(j, "serveralivecountmax")), 3);
    json_decref(j);
    resolve(f, "b");
    j = smx_hostcfg_to_json(&f->hc);
    assert_string_equal(json_string_value(json_object_get(j, "connecttimeout")), "none");
    assert_int_equal(json_array_size(json_object_get(j, "userknownhostsfile")), 2);
    json_decref(j);
}

static void test_json_non_utf8(void **state)
{
    fx *f = *state;
    json_t *j;

    load_ok(f, "Host *\n  User caf\xe9\n");
    resolve(f, "x");
    j = smx_hostcfg_to_json(&f->hc);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "user")), "caf?");
    json_decref(j);
}

/* ---- the literal Host block index (sshconfig_index.c) ---------------------------------
 *
 * The index may only make resolving faster: these tests resolve hosts twice, once with the
 * index that smx_config_load built and once after removing it from every file (the plain walk
 * of every block), and require the same result, error and message. Fixed cases cover what must
 * not be skipped (wildcards, negations, Match, Include and unknown keywords inside blocks, the
 * final pass, duplicates); a seeded generator mixes them at random. */

static size_t unindex_file(smx_cfgfile *file)
{
    size_t had = file->index != NULL;

    smx__cfgfile_unindex(file);
    for (size_t i = 0; i < file->n; i++)
        for (size_t k = 0; k < file->d[i].ninc; k++)
            had += unindex_file(file->d[i].inc[k]);
    return had;
}

/* Removes every file's index; returns how many files had one. */
static size_t unindex(smx_config *cfg)
{
    size_t had = 0;

    for (size_t i = 0; i < cfg->nfiles; i++)
        had += unindex_file(cfg->files[i]);
    return had;
}

/* What resolving host gives, as one string: the return code, the error message or the
 * hostcfg as JSON (every field ssh -G would print). */
static char *outcome(const smx_config *cfg, const char *host)
{
    smx_hostcfg hc;
    smx_err err = {0};
    int rc = smx_config_resolve(cfg, host, NULL, &hc, &err);
    char *s = NULL;

    if (rc == 0) {
        json_t *j = smx_hostcfg_to_json(&hc);
        char *dump = json_dumps(j, JSON_SORT_KEYS);

        assert_true(asprintf(&s, "ok %s", dump) > 0);
        free(dump);
        json_decref(j);
        smx_hostcfg_free(&hc);
    } else {
        assert_true(asprintf(&s, "rc %d %s", rc, err.msg) > 0);
    }
    return s;
}

/* Resolves every host with the index, then without it; they must agree. Returns how many
 * files were indexed. */
static size_t same_with_and_without(fx *f, const char *const *hosts, size_t nhosts)
{
    char **with = calloc(nhosts, sizeof *with);
    size_t had;

    assert_non_null(with);
    for (size_t i = 0; i < nhosts; i++)
        with[i] = outcome(f->cfg, hosts[i]);
    had = unindex(f->cfg);
    for (size_t i = 0; i < nhosts; i++) {
        char *without = outcome(f->cfg, hosts[i]);

        if (strcmp(with[i], without) != 0)
            fail_msg("host %s: indexed \"%s\" but walked \"%s\"", hosts[i], with[i], without);
        free(without);
        free(with[i]);
    }
    free(with);
    return had;
}

/* A field of host's resolution, through the index. */
static char *user_of(const fx *f, const char *host)
{
    smx_hostcfg hc;
    smx_err err = {0};
    char *user;

    assert_int_equal(smx_config_resolve(f->cfg, host, NULL, &hc, &err), 0);
    user = strdup(hc.user);
    smx_hostcfg_free(&hc);
    return user;
}

static void assert_user(const fx *f, const char *host, const char *want)
{
    char *got = user_of(f, host);

    assert_string_equal(got, want);
    free(got);
}

/* ---- fixed cases ---------------------------------------------------------------------- */

static void test_index_runs_and_lookup(void **state)
{
    fx *f = *state;
    const smx__litblock *b;
    const smx__cfgindex *ix;

    assert_int_equal(loadf(f, "%s", "User g\n"                 /* 0: global section, not a block */
                             "Host a b\n  Port 1\n"      /* 1-2: run 1 */
                             "Host c a\n  Port 2\n"      /* 3-4 */
                             "Host c*\n  Port 3\n"       /* 5-6: wildcard, ends the run */
                             "Host a\n  Port 4\n"        /* 7-8: run 2 */
                             "Host a a\n  Port 5\n"), 0); /* 9-10: one entry for "a" */
    ix = f->cfg->files[0]->index;
    assert_non_null(ix);
    assert_int_equal(ix->run_end[0], 0);
    assert_int_equal(ix->run_end[1], 5);
    assert_int_equal(ix->run_end[3], 0);        /* inside run 1, not its start */
    assert_int_equal(ix->run_end[5], 0);
    assert_int_equal(ix->run_end[7], 11);
    assert_int_equal(smx__cfgindex_find(ix, "a", 1, 5, &b), 2);
    assert_int_equal(b[0].start, 1);
    assert_int_equal(b[0].end, 3);
    assert_int_equal(b[1].start, 3);
    assert_int_equal(b[1].end, 5);
    assert_int_equal(smx__cfgindex_find(ix, "a", 7, 11, &b), 2);
    assert_int_equal(b[0].start, 7);
    assert_int_equal(b[1].start, 9);
    assert_int_equal(smx__cfgindex_find(ix, "b", 7, 11, &b), 0);
    assert_int_equal(smx__cfgindex_find(ix, "zz", 1, 11, &b), 0);
    assert_int_equal(smx__cfgindex_find(ix, "A", 1, 11, &b), 0);  /* Host is case-sensitive */
    same_with_and_without(f, (const char *const[]){"a", "b", "c", "cx", "A", "d"}, 6);
}

/* A file without literal blocks has no index; one with only such blocks is all one run. */
static void test_index_when_built(void **state)
{
    fx *f = *state;

    assert_int_equal(loadf(f, "%s", "Host *\n  User x\nMatch all\n  Port 2\n"), 0);
    assert_null(f->cfg->files[0]->index);
    assert_int_equal(loadf(f, "%s", "Host !a\n  User x\nHost a?\n  Port 2\n"), 0);
    assert_null(f->cfg->files[0]->index);
    assert_int_equal(loadf(f, "%s", "Host a\n  User x\nHost b\n  User y\n"), 0);
    assert_non_null(f->cfg->files[0]->index);
    assert_int_equal(f->cfg->files[0]->index->run_end[0], 4);
}

/* The block state after a run decides whether the lines that follow it apply. */
static void test_index_state_after_run(void **state)
{
    fx *f = *state;

    assert_int_equal(loadf(f, "%s", "Host a\n  User ua\nHost b\n  User ub\n"
                             "Include /nonexistent/none-*.conf\n  User after\n"
                             "Host *\n  User star\n"), 0);
    assert_user(f, "a", "ua");
    assert_user(f, "b", "ub");
    assert_user(f, "c", "star");
    same_with_and_without(f, (const char *const[]){"a", "b", "c"}, 3);
}

/* Blocks that act even when they do not match are walked: an unknown keyword fails the
 * resolution of every host (unless IgnoreUnknown set earlier covers it), and an Include's
 * files are read for their own errors. */
static void test_index_unknown_and_include_not_skipped(void **state)
{
    fx *f = *state;
    smx_hostcfg hc;
    smx_err err = {0};

    assert_int_equal(loadf(f, "%s", "Host a\n  User ua\nHost b\n  Frobnicate yes\nHost c\n  User uc\n"), 0);
    assert_int_equal(smx_config_resolve(f->cfg, "a", NULL, &hc, &err), SMX_EINVAL);
    assert_non_null(strstr(err.msg, "Frobnicate"));
    same_with_and_without(f, (const char *const[]){"a", "b", "c"}, 3);

    assert_int_equal(loadf(f, "%s", "Host a\n  IgnoreUnknown Frob*\nHost b\n  Frobnicate yes\n"
                             "Host c\n  User uc\n"), 0);
    same_with_and_without(f, (const char *const[]){"a", "b", "c"}, 3);

    put(f, "inc.conf", "Host *\n  Bogus 1\n");
    char text[PATH_MAX + 128];
    snprintf(text, sizeof text, "Host a\n  User ua\nHost b\n  Include %s/inc.conf\n"
                                "Host c\n  User uc\n", f->dir);
    assert_int_equal(loadf(f, "%s", text), 0);
    same_with_and_without(f, (const char *const[]){"a", "b", "c"}, 3);
}

/* The final pass matches Host lines against the resolved, lowercased hostname. */
static void test_index_final_pass_and_canonical(void **state)
{
    fx *f = *state;

    assert_int_equal(loadf(f, "%s", "Host short\n  HostName Long.Example\n"
                             "Host long.example\n  User by-final\n"
                             "Host other\n  User o\n"
                             "Match final\n  Port 7\n"), 0);
    assert_user(f, "short", "by-final");
    same_with_and_without(f, (const char *const[]){"short", "long.example", "other", "x"}, 4);

    assert_int_equal(loadf(f, "%s", "CanonicalizeHostname yes\nHost n1\n  HostName real1\n"
                             "Host real1\n  User r1\nHost n2\n  User n2\n"), 0);
    assert_user(f, "n1", "r1");
    same_with_and_without(f, (const char *const[]){"n1", "n2", "real1", "x"}, 4);
}

/* Included files get their own index; a non-matching includer makes their blocks inert. */
static void test_index_included_file(void **state)
{
    fx *f = *state;
    char text[PATH_MAX + 128];

    put(f, "hosts.conf", "Host h1\n  User u1\nHost h2\n  User u2\nHost *\n  Port 9\n");
    snprintf(text, sizeof text, "Include %s/hosts.conf\nHost gate\n  Include %s/hosts.conf\n",
             f->dir, f->dir);
    assert_int_equal(loadf(f, "%s", text), 0);
    assert_user(f, "h1", "u1");
    assert_int_equal(same_with_and_without(
                         f, (const char *const[]){"h1", "h2", "gate", "h3"}, 4), 2);
}

/* ---- generated configurations ---------------------------------------------------------- */

static uint32_t rnd(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

static const char *const names[] = {"h0", "h1", "h2", "h3", "H1", "h1.x", "gw"};
#define NNAMES (sizeof names / sizeof names[0])

static const char *pick(uint32_t *s, const char *const *v, size_t n)
{
    return v[rnd(s) % n];
}

/* A template with '#' replaced by a digit and '@' by the temp dir. */
static void fill(char *buf, size_t len, const char *tmpl, unsigned a, const char *dir)
{
    size_t o = 0;

    for (const char *p = tmpl; *p && o + 1 < len; p++) {
        if (*p == '#')
            buf[o++] = (char)('0' + (a++ % 4));
        else if (*p == '@')
            o += (size_t)snprintf(buf + o, len - o, "%s", dir);
        else
            buf[o++] = *p;
    }
    buf[o < len ? o : len - 1] = '\0';
}

/* One random line: mostly literal Host blocks and options, some of everything else. */
static void random_line(uint32_t *s, const fx *f, char *buf, size_t len)
{
    static const char *const opts[] = {
        "User u#", "Port 1#", "HostName h#", "HostName H#.x", "IdentityFile ~/k#",
        "ProxyJump gw#", "HostKeyAlias a#", "ConnectTimeout #", "Hostname %h.x",
    };
    static const char *const rare[] = {
        "Host *", "Host h*", "Host !h1 h?", "Host h1 !h2", "Match host h1", "Match final",
        "Match originalhost h2", "Match all", "Frobnicate #", "IgnoreUnknown Frob*",
        "CanonicalizeHostname yes", "Include @/inc0.conf", "Include @/inc1.conf", "Host h# h#",
        "Host h1 !h1", "Host h1 h2 !h#",
    };
    unsigned r = rnd(s) % 100, a = rnd(s) % 4;

    if (r < 35)
        fill(buf, len, "Host ", 0, f->dir), strcat(buf, pick(s, names, NNAMES));
    else if (r < 85)
        fill(buf, len, pick(s, opts, sizeof opts / sizeof opts[0]), a, f->dir);
    else
        fill(buf, len, pick(s, rare, sizeof rare / sizeof rare[0]), a, f->dir);
}

static void random_file(uint32_t *s, fx *f, const char *rel, int lines)
{
    char *text = calloc(1, (size_t)lines * (PATH_MAX + 64));
    char line[PATH_MAX + 48];

    assert_non_null(text);
    for (int i = 0; i < lines; i++) {
        random_line(s, f, line, sizeof line);
        strcat(text, line);
        strcat(text, "\n");
    }
    put(f, rel, text);
    free(text);
}

static void test_index_random_configs(void **state)
{
    fx *f = *state;
    uint32_t seed = 0x5eed1417;
    int indexed = 0;

    for (int round = 0; round < 400; round++) {
        smx_err err = {0};

        random_file(&seed, f, "inc0.conf", 6);
        random_file(&seed, f, "inc1.conf", 6);
        random_file(&seed, f, "config", 4 + (int)(rnd(&seed) % 30));
        smx_config_free(f->cfg);
        f->cfg = NULL;
        if (smx_config_load(&f->cfg, f->cfgpath, &err) != 0)
            continue;   /* e.g. an Include loop of inc0/inc1 over the depth limit */
        indexed += f->cfg->files[0]->index != NULL;
        same_with_and_without(f, names, NNAMES);
    }
    /* The generator must exercise the index, or this test proves nothing. */
    assert_true(indexed > 200);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_defaults), T(test_batchmode_alive_default), T(test_no_file_and_none),
        T(test_default_files), T(test_syntax_forms), T(test_first_value_wins),
        T(test_values), T(test_strict_host_key_words), T(test_connecttimeout_none),
        T(test_known_but_ignored), T(test_host_negation), T(test_host_case),
        T(test_match_host_uses_hostname), T(test_match_criteria),
        T(test_match_user_after_user_set), T(test_match_exec_not_run),
        T(test_match_final_pass), T(test_include_glob_order),
        T(test_include_relative_and_tilde), T(test_include_in_host_block),
        T(test_include_depth_limit), T(test_include_fanout_cap), T(test_include_error_names_file),
        T(test_hostname_tokens), T(test_path_tokens), T(test_hostkeyalias_token_and_env),
        T(test_special_values), T(test_expand_proxy), T(test_proxy_precedence),
        T(test_proxyjump_parse), T(test_overrides), T(test_override_hostname_and_ignoreunknown),
        T(test_override_errors), T(test_validate_option), T(test_load_errors),
        T(test_line_too_long), T(test_garbage_does_not_crash), T(test_unknown_keyword),
        T(test_resolve_errors), T(test_too_many_identities), T(test_json),
        T(test_json_non_utf8), T(test_time_limits), T(test_proxyjump_error_masks_password),
        T(test_index_runs_and_lookup), T(test_index_when_built), T(test_index_state_after_run),
        T(test_index_unknown_and_include_not_skipped), T(test_index_final_pass_and_canonical),
        T(test_index_included_file), T(test_index_random_configs),
    };
#undef T

    return cmocka_run_group_tests(tests, NULL, NULL);
}
