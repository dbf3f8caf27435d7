/* The sshmux command line: options shared by every subcommand, and the path from them to a list
 * of resolved hosts. Exit statuses (documented in README):
 *   0 success; 2 usage error (bad option, malformed hostlist/target, unknown @group, unreadable
 *   -F/-i/--hostfile/--groups/--inventory/--genders);
 *   255 a host could not be reached, verified or authenticated (or credentials unusable);
 *   otherwise the largest remote exit status (124 for -u timeouts, 128+N for signal N). */
#ifndef SSHMUX_CLI_H
#define SSHMUX_CLI_H

#include <stdio.h>

#include "sshmux.h"

#define EXIT_USAGE 2
#define EXIT_UNREACHABLE 255

typedef struct cli_host {
    char *target;            /* the token as expanded from -w / --hostfile (never a password) */
    char *password;          /* from its ssh:// URL, or NULL (wiped on free) */
    smx_hostcfg *hc;         /* resolved settings (heap; handed to the engine) */
} cli_host;

typedef struct cli {
    const char *prog;        /* "sshmux exec" etc., for messages */
    smx_strvec wlists, xlists, hostfiles; /* as given: may hold ssh:// passwords (wiped); -g
                                           * adds "@genders:ATTR,..." to wlists */
    smx_strvec groups_files;  /* --groups: ClusterShell group files (else ClusterShell's own) */
    smx_strvec inventories;   /* --inventory: Ansible inventories (else $ANSIBLE_INVENTORY) */
    smx_strvec genders_files; /* --genders (else /etc/genders) */
    smx_strvec secrets;      /* passwords taken out of ssh:// targets; tag i + 1 is secrets.v[i] */
    char *jump_password;     /* from the first hop's ssh:// URL in -J / -o ProxyJump (wiped) */
    int have_jump;           /* a ProxyJump was given: later ones lose, as in ssh */
    int argv_password;       /* a URL password came from the command line: warn */
    const char *config_file;
    smx_overrides ov;        /* -o, -J (as -o ProxyJump), -l, -p, -i */
    smx_engine_opts eng;
    smx_exec_opts x;
    smx_strvec env;
    int gather, json, quiet, verbose, no_agent;
    const char *password_env, *password_file, *passphrase_env, *key_env;
    int ask_pass;
    smx_strvec args;         /* positional arguments (the command) */
    smx_strvec cmds;         /* --cmd (exec: a command list) */
    const char *sudo_password_env;
    int sudo_ask_pass;
    char *sudo_password;     /* wiped in cli_free */
    smx_strvec lspecs;       /* -L (forward) */
    smx_strvec rspecs;       /* -R (forward) */
    smx_strvec dspecs;       /* -D (forward) */
    const char *socket_path; /* --socket (docker) */
    int streamlocal;         /* --streamlocal (docker) */
    int base_port;           /* --base-port (forward over a host list) */
    int connections;         /* --connections (forward: links spread over that many) */
    int tty_flags;           /* -t given this many times (-tt: a PTY even without a terminal) */
    int no_pty;              /* -T */
    const char *escape;      /* -e (shell) */
    int broadcast;           /* --broadcast (shell) */
    unsigned sock_mode;      /* --mode (Unix listener permissions) */
    const char *address;     /* --address (forward-tcp) */
    const char *remote;      /* --remote (forward-unix) */
    const char *proxy_user, *proxy_password_env, *proxy_key_env, *proxy_passphrase_env;
    smx_strvec proxy_keys;   /* --proxy-key */
    char *proxy_password;    /* from --proxy-password-env; wiped in cli_free */

    int copy;                /* a file copy command (upload, download) */
    int expect;              /* sshmux expect: results are steps of a send/expect script */
    int recursive, preserve, resume, fsync, no_atomic, suffix, progress, mode_given;
    size_t block_size;       /* --block-size */
    int requests;            /* --requests */
    int transfer_timeout_ms; /* --transfer-timeout */

    cli_host *hosts;
    size_t nhosts;
    smx_config *config;
} cli;

/* Parses argv (after the subcommand name). `allowed` is a string of the short options this
 * subcommand accepts beyond the common ones. Returns 0, or EXIT_USAGE after printing why. */
int cli_parse(cli *c, int argc, char **argv, const char *prog);
enum cli_parse_kind {
    CLI_PARSE_COMMAND,   /* options stop at the first argument (the remote command's own) */
    CLI_PARSE_COPY,      /* upload/download: options anywhere (as scp), -p preserve, -P port */
    CLI_PARSE_SCRIPT,    /* run-script: options stop at the script */
    CLI_PARSE_FORWARD,   /* forward, docker: as COMMAND, and -R/-D */
    CLI_PARSE_SHELL      /* shell: as COMMAND, and -T, -e */
};
int cli_parse_mode(cli *c, int argc, char **argv, const char *prog, enum cli_parse_kind kind);
/* Expands targets, applies excludes, loads ssh_config, resolves each host. 0 or an exit code. */
int cli_resolve_hosts(cli *c, int need_targets);
/* Reads passwords/passphrases/key content and loads every key file the hosts (and their jump
 * hosts) name, before the loop starts; gives the engine the config. 0 or an exit code. */
int cli_load_credentials(cli *c, smx_engine *e);
void cli_free(cli *c);
/* Without -w or --hostfile the first argument is the one target (as ssh's host, scp's host:):
 * it goes to the host lists. Returns how many arguments it took (0 or 1), or -1 when there is no
 * target (message printed, with usage when given). */
int cli_take_target(cli *c, const char *usage);
/* args[from..] joined with spaces, as ssh sends a command given in several words. */
char *cli_join_args(const smx_strvec *args, size_t from);

/* Raises the fd limit as far as allowed and lowers the fanout to what fits. */
void cli_fit_fanout(cli *c);

/* Queues one resolved host (taking h->hc over) with the output's callbacks: 0 or SMX_ENOMEM. */
typedef int (*cli_add_host_fn)(smx_engine *e, cli_host *h, const smx_exec_callbacks *cb,
                               void *ud);
/* A run in which every host gives one result (exec, expect): output, engine, credentials, each
 * host queued by add, signals, progress and summary. Returns the exit status. */
int cli_run_hosts(cli *c, cli_add_host_fn add, void *ud);
/* Its second half, for a caller that made the output and the engine itself (file copies: copy
 * is shown by the progress line, else NULL): every host queued, the run, the summary; 130 when
 * interrupted. */
typedef struct output output;
int cli_queue_and_run(cli *c, smx_engine *e, output *o, smx_copy *copy, cli_add_host_fn add,
                      void *ud);

/* SIGINT/SIGTERM cancel the run (a second one closes what is left at once). */
typedef struct cli_signals {
    uv_signal_t sig[2];
    smx_engine *e;
    int caught;
} cli_signals;
void cli_watch_signals(cli_signals *es, uv_loop_t *loop, smx_engine *e);
void cli_unwatch_signals(cli_signals *es);

void cli_error(const cli *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void cli_warn(const cli *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));


/* cmd/prompt.c: reads a line from /dev/tty without echo; NULL if there is no terminal. */
char *cli_ask_secret(const char *prompt, void *ud);

int cmd_exec(int argc, char **argv);
int cmd_hosts(int argc, char **argv);
int cmd_test(int argc, char **argv);
int cmd_forward(int argc, char **argv);
int cmd_forward_tcp(int argc, char **argv);
int cmd_forward_unix(int argc, char **argv);
int cmd_docker(int argc, char **argv);
int cmd_shell(int argc, char **argv);
int cmd_upload(int argc, char **argv);
int cmd_download(int argc, char **argv);
int cmd_run_script(int argc, char **argv);
int cmd_expect(int argc, char **argv);
int cmd_request(int argc, char **argv);
void cli_usage(FILE *f);

#endif
