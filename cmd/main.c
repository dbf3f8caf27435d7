/* sshmux: an event-driven SSH multiplexer. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

void cli_usage(FILE *f)
{
    fputs(
"usage: sshmux COMMAND [options]\n"
"\n"
"commands:\n"
"  exec -w HOSTS [options] CMD...   run CMD on every host; output prefixed 'host: '\n"
"  hosts -w HOSTS [--json]          expand a host list; --json: resolved ssh_config per host\n"
"  test [options] TARGET            connect once and report every phase\n"
"  forward -L|-R|-D SPEC... TARGET [-- CMD]   ssh -L/-R/-D forwarding until SIGINT/SIGTERM\n"
"  forward SPEC... [--base-port N] -w HOSTS   every host; local ports N, N+1, ...\n"
"  forward-tcp [--address ADDR] PORT TARGET   local PORT -> the target's localhost:PORT\n"
"  forward-unix [--remote RPATH] [PATH] TARGET   local Unix socket PATH -> RPATH\n"
"  shell [options] TARGET [CMD...]  interactive shell as ssh (PTY, escapes ~. ~^Z ~# ~?)\n"
"  shell --broadcast -w HOSTS       type once into every host's shell, output by host\n"
"  docker [--socket PATH] [--streamlocal] TARGET [-- CMD]   DOCKER_HOST over one connection\n"
"  upload [-w HOSTS | TARGET] LOCAL... REMOTE   copy files to every host (SFTP)\n"
"  download [-w HOSTS | TARGET] REMOTE... LOCALDIR   from every host: LOCALDIR/<host>/...\n"
"  run-script [-w HOSTS | TARGET] SCRIPT [ARGS...]   upload SCRIPT, run it, remove it\n"
"  expect -w HOSTS|TARGET --send TEXT [--expect RE]...   steps typed into a PTY shell\n"
"  request [-F CFG] [-f N] [--parallel N] [FILE|-]   NetPulse JSON lines, a result line each\n"
"  version                          print the version\n"
"\n"
"targets:\n"
"  -w LIST             hosts: [user@]host[:port], [user@][v6addr]:port, ssh://user@host:port,\n"
"                      with ranges: web[01-20], r[1-2]n[1-3], n[1-10/2], a[1,3,5-7]b\n"
"  --hostfile FILE     one host list per line, '#' comments\n"
"  -x LIST             exclude these hosts\n"
"  @GROUP, @SRC:GROUP  in any list: a node group (ClusterShell, Ansible, genders)\n"
"  --groups FILE       ClusterShell group file (default: ClusterShell's groups.conf)\n"
"  --inventory FILE    Ansible inventory, INI or YAML (default: $ANSIBLE_INVENTORY)\n"
"  --genders FILE      genders file (default: /etc/genders)\n"
"  -g ATTR[=VAL],...   the genders nodes with any of these attributes (as pdsh -g)\n"
"ssh options (as ssh):\n"
"  -F FILE  -o Key=Value  -l USER  -p PORT  -i IDENTITY\n"
"exec:\n"
"  -f N                fanout: hosts at once (default 256)\n"
"  -u SECS             command timeout: TERM, then KILL after --kill-grace (default 2)\n"
"  -t                  allocate a PTY\n"
"  --env NAME=VALUE    set a remote variable (via the command line if AcceptEnv refuses)\n"
"  --cmd CMD           a command list (repeatable): in order, stop at the first failure\n"
"  --keep-going        run the rest of a command list after a failure\n"
"  --sudo              run under sudo, password from --sudo-password-env VAR or\n"
"                      --sudo-ask-pass (asked once); --sudo-user USER\n"
"  -b, --gather        group hosts with identical output (clush -b)\n"
"  --json              one JSON object per host per line\n"
"  -q                  no summary\n"
"  --max-output BYTES  per host and stream when gathering (default 8 MiB)\n"
"  --connect-timeout S (default 10, or ConnectTimeout)   --auth-timeout S (default 30)\n"
"  --retries N         retries after a server drops the connection early (default 8)\n"
"forward:\n"
"  --connections N     spread -L/-D connections over up to N SSH connections (1-8)\n"
"shell:\n"
"  -t / -tt / -T       PTY with a command / even without a terminal / never\n"
"  -e CHAR|^X|none     escape character (default ~)\n"
"  --broadcast         every host of -w: each typed line goes to all\n"
"expect (step options anywhere, in order; the others before the target):\n"
"  --send TEXT         a step: TEXT and a newline typed into the shell\n"
"  --send-raw TEXT     a step: TEXT typed as it is (no newline)\n"
"  --expect REGEX      the step ends when this POSIX extended regex is in its output\n"
"                      (none: when the shell's prompt comes back, found as netmiko does)\n"
"  --timeout S         the step's limit (default 10; before any step: every step's)\n"
"  --script FILE       steps as JSON lines {\"send\"|\"send_raw\": T, \"expect\": R, \"timeout\": S}\n"
"  exit status: 0 every step matched, 1 a step did not match in time, 255 unreachable\n"
"upload / download (options anywhere, as scp):\n"
"  -r                  directories, recursively (symlinks kept as symlinks)\n"
"  -p                  keep mode and times (-P PORT for the port, as scp)\n"
"  --resume            continue a partial file whose last bytes match the source\n"
"  --fsync             flush each file to disk before it is renamed into place\n"
"  --no-atomic         write in place (default: DEST.sshmux-partial, renamed when whole)\n"
"  --block-size N      bytes per request (default: the server's limit, else 32768)\n"
"  --requests N        requests in flight per file (default 64)\n"
"  --transfer-timeout S   a host with no progress for S seconds fails (default 60)\n"
"  --mode OCTAL        permissions of created files (default: the source's)\n"
"  --suffix            download: LOCALDIR/<name>.<host> (as clush's rcopy)\n"
"  --progress          live status line even when stderr is not a terminal\n"
"  REMOTE paths: %h the host as given, %n its index in the run, %% a %\n"
"credentials (never on the command line):\n"
"  --password-env VAR  --password-file FILE  --ask-pass\n"
"  --passphrase-env VAR  --key-env VAR  --no-agent\n"
"\n"
"exit status: 0 all ok; 2 usage error (an unknown @group too); 255 a host\n"
"unreachable, unverified or not authenticated; 1 a file copy failed on some host;\n"
"else the largest remote exit status (124 timeout, 128+N signal N)\n",
        f);
}

/* Secrets live in this process's memory: keep them out of core files and away from ptrace by
 * other users, as ssh does. */
static void main_harden(void)
{
    struct rlimit rl = {0, 0};
    setrlimit(RLIMIT_CORE, &rl);
    prctl(PR_SET_DUMPABLE, 0);
}

int main(int argc, char **argv)
{
    main_harden();
    signal(SIGPIPE, SIG_IGN);
    srand((unsigned)time(NULL) ^ (unsigned)getpid());
    /* getaddrinfo runs on libuv's pool; a few slow DNS answers must not hold up the rest. */
    setenv("UV_THREADPOOL_SIZE", "32", 0);
    if (argc < 2) {
        cli_usage(stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    smx_library_init();
    int rc;
    if (strcmp(cmd, "exec") == 0)
        rc = cmd_exec(argc - 1, argv + 1);
    else if (strcmp(cmd, "hosts") == 0)
        rc = cmd_hosts(argc - 1, argv + 1);
    else if (strcmp(cmd, "test") == 0)
        rc = cmd_test(argc - 1, argv + 1);
    else if (strcmp(cmd, "forward") == 0)
        rc = cmd_forward(argc - 1, argv + 1);
    else if (strcmp(cmd, "forward-tcp") == 0)
        rc = cmd_forward_tcp(argc - 1, argv + 1);
    else if (strcmp(cmd, "forward-unix") == 0)
        rc = cmd_forward_unix(argc - 1, argv + 1);
    else if (strcmp(cmd, "shell") == 0)
        rc = cmd_shell(argc - 1, argv + 1);
    else if (strcmp(cmd, "docker") == 0)
        rc = cmd_docker(argc - 1, argv + 1);
    else if (strcmp(cmd, "upload") == 0)
        rc = cmd_upload(argc - 1, argv + 1);
    else if (strcmp(cmd, "download") == 0)
        rc = cmd_download(argc - 1, argv + 1);
    else if (strcmp(cmd, "run-script") == 0)
        rc = cmd_run_script(argc - 1, argv + 1);
    else if (strcmp(cmd, "expect") == 0)
        rc = cmd_expect(argc - 1, argv + 1);
    else if (strcmp(cmd, "request") == 0)
        rc = cmd_request(argc - 1, argv + 1);
    else if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("sshmux %s (libssh %s)\n", SSHMUX_VERSION, smx_libssh_version());
        rc = 0;
    } else if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        cli_usage(stdout);
        rc = 0;
    } else {
        fprintf(stderr, "sshmux: unknown command \"%s\" (try sshmux --help)\n", cmd);
        rc = EXIT_USAGE;
    }
    smx_library_shutdown();
    return rc;
}
