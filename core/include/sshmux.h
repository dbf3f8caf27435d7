/* sshmux: an event-driven SSH multiplexer, as a C library.
 *
 * One libuv loop drives many non-blocking SSH sessions; on it, jobs (a command, or local port
 * forwards) run across a fleet of hosts named as OpenSSH names them: ssh_config(5), ProxyJump,
 * known_hosts, keys and ssh-agent. This header is the whole interface: it needs only the C
 * standard library and <uv.h>, and everything behind it is reached through opaque handles.
 * The sshmux command (cmd/) is built against exactly this header.
 *
 * The shortest use (see examples/fleet_exec.c):
 *
 *     smx_engine_new(&e, uv_default_loop(), &opts);
 *     smx_engine_load_config(e, "ssh_config", &err);          optional: as ssh -F
 *     smx_engine_add_target(e, "web[01-20]", &job, &err);      resolve, load keys, queue
 *     smx_engine_run(e);                                       results arrive in callbacks
 *     smx_engine_free(e);
 *
 * Conventions, as libuv's:
 *  - Fallible calls return 0 (or a count) on success, a negative SMX_* code on failure. Those that
 *    take an smx_err fill its message for humans; it names the input at fault.
 *  - Ownership is stated at every pointer. "Borrowed" means the library keeps the pointer and
 *    the caller keeps the memory alive for as long as stated; "copied" means the library took
 *    its own copy before returning; "the caller's" means the caller frees it with the function
 *    named.
 *  - Everything runs on the loop's thread; nothing here blocks once smx_engine_run() started
 *    (key passphrases are asked before, while targets are added).
 *  - Secrets (passwords, passphrases, key content) are wiped when the library frees them. */
#ifndef SSHMUX_H
#define SSHMUX_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SSHMUX_VERSION "0.1.0"

/* ---- library ---------------------------------------------------------------------------- */

/* Once per process, before anything else, and smx_library_shutdown() once after the last engine
 * is freed: they set up and release the SSH library's global state (its crypto backend). The
 * SSH library sshmux carries is linked in statically, where its own constructor may not run.
 * 0 or SMX_ESSH. */
int smx_library_init(void);
void smx_library_shutdown(void);
/* The version of the SSH library linked in ("0.11.5"): static storage. */
const char *smx_libssh_version(void);

/* ---- errors ----------------------------------------------------------------------------- */

enum smx_errcode {
    SMX_OK = 0,
    SMX_EINVAL = -1,      /* malformed input (hostlist, option, config line) */
    SMX_ENOMEM = -2,
    SMX_EIO = -3,         /* file could not be read or written */
    SMX_ENOENT = -4,      /* file or host not found */
    SMX_ERANGE = -5,      /* number out of range (port, range too large) */
    SMX_ERESOLVE = -6,    /* name resolution failed */
    SMX_ECONNECT = -7,    /* TCP connect failed / refused */
    SMX_ETIMEDOUT = -8,
    SMX_EHOSTKEY = -9,    /* host key unknown, changed or revoked */
    SMX_EAUTH = -10,      /* no authentication method succeeded */
    SMX_ESSH = -11,       /* protocol error reported by the SSH library */
    SMX_ECHANNEL = -12,   /* channel open/request refused */
    SMX_EMFILE = -13,     /* out of file descriptors */
    SMX_ECLOSED = -14,    /* peer closed the connection */
    SMX_ECANCELED = -15,
    SMX_EPASSPHRASE = -16, /* wrong passphrase for an encrypted key */
    SMX_EBUSY = -17        /* a jump host refused a channel while full: try another connection */
};

/* The name of an SMX_* code ("out of memory"): static storage. */
const char *smx_strerror(int code);

/* The one size of every buffer that holds an error message (smx_err, results): a message copied
 * from one to another is never cut shorter on the way. */
#define SMX_MSG_MAX 512

/* Detail for humans that travels with an error code; filled by the call that failed. */
typedef struct smx_err {
    char msg[SMX_MSG_MAX];
} smx_err;

/* ---- strings ---------------------------------------------------------------------------- */

/* A growable vector of C strings, v[0..n). The library takes string lists in this form; a
 * vector filled with smx_strvec_push*() owns its strings (smx_strvec_free). A caller may also
 * point v at an array of its own (cap 0): the library only reads lists it is given. */
typedef struct smx_strvec {
    char **v;
    size_t n, cap;
} smx_strvec;

int smx_strvec_push(smx_strvec *sv, const char *s);     /* copies s; 0 or SMX_ENOMEM */
int smx_strvec_push_owned(smx_strvec *sv, char *s);     /* takes s (malloc'd; freed on error) */
int smx_strvec_contains(const smx_strvec *sv, const char *s);
void smx_strvec_free(smx_strvec *sv);                   /* frees strings and array; zeroes sv */
void smx_strvec_free_wipe(smx_strvec *sv);              /* same, zeroing each string first */
/* A C string that held a secret: zeroed, then freed (OpenSSH's freezero). NULL is a no-op. */
void smx_str_wipe_free(char *s);
/* The same for len bytes at p (a buffer that held a secret). NULL is a no-op. */
void smx_wipe_free(void *p, size_t len);
/* Reads a whole file that holds a secret (password, key, a host list with ssh:// passwords) into
 * a malloc'd NUL-terminated buffer (the caller's: smx_str_wipe_free), its length in *len.
 * No stdio buffer and no realloc leave a copy behind. NULL with errno set (EFBIG: larger than
 * max bytes). */
char *smx_secret_read_file(const char *path, size_t max, size_t *len);

/* ---- results ---------------------------------------------------------------------------- */

/* Where a host's run stopped: the "stage" of an error in results and JSON. */
enum smx_stage {
    SMX_STAGE_NONE = 0,
    SMX_STAGE_RESOLVE,
    SMX_STAGE_CONNECT,    /* TCP connect, banner and key exchange */
    SMX_STAGE_HOSTKEY,
    SMX_STAGE_AUTH,
    SMX_STAGE_EXEC,       /* the command, or (forward jobs) the connection once it carried forwards */
    SMX_STAGE_TIMEOUT,    /* the command ran past its timeout */
    SMX_STAGE_SFTP,       /* a file transfer (the SFTP session, or one file of it) */
    SMX_STAGE_SUDO,       /* sudo refused the password, or asked for one it was not given */
    SMX_STAGE_EXPECT      /* send/expect: a step's regex (or the prompt) never came */
};

/* "none", "resolve", "connect", ...: static storage. */
const char *smx_stage_name(enum smx_stage stage);

/* Captured output: data[0..len), NUL-terminated when data is not NULL. */
typedef struct smx_buf {
    char *data;
    size_t len, cap;
} smx_buf;

typedef struct smx_timing {
    double resolve, connect, handshake, auth, exec, total;   /* milliseconds */
} smx_timing;

/* One file of a copy (upload, download, run-script's script), as --json prints it. */
typedef struct smx_file_result {
    char *local, *remote;
    uint64_t size;             /* the source's size */
    uint64_t bytes;            /* payload moved this run (less than size when resumed) */
    uint64_t resumed_from;     /* bytes already there and kept (--resume), else 0 */
    double seconds;
    char *error;               /* NULL when the file arrived whole */
} smx_file_result;

/* One command of a command list (smx_exec_opts.commands), in the order run. */
typedef struct smx_step_result {
    char *command;             /* as given (without the sudo wrapper) */
    int exit_code;             /* -1 if none */
    char *exit_signal;
    smx_buf out, err;          /* when capturing */
    int truncated, timed_out;
    double ms;                 /* from its channel's open to its close */
} smx_step_result;

/* The outcome of one host's job, as --json prints it. Every pointer in it is owned by the
 * result and freed with it (smx_result_destroy); NULL where the run did not get that far. */
typedef struct smx_result {
    char *host;                /* alias as given */
    char *target;              /* the target it came from, as shown (never a password) */
    char *user, *hostname;
    int port;
    int ok;                    /* connected, authenticated and the command exited 0 */
    int exit_code;             /* -1 if none */
    char *exit_signal;         /* "TERM", ... or NULL */
    smx_buf out, err;          /* stdout, stderr: only when capturing (smx_exec_opts.capture) */
    int truncated;             /* the capture reached max_output */
    enum smx_stage err_stage;  /* SMX_STAGE_NONE if no error */
    int err_code;              /* SMX_* */
    char *err_msg;             /* why, when err_stage is set (owned); read it with
                                * smx_result_error, which never returns NULL */
    int err_hop;               /* jump hop index that failed, -1 for the target itself */
    int attempts;
    int timed_out;             /* the command ran past smx_exec_opts.timeout_ms */
    smx_timing t;
    char *server_banner, *kex, *cipher, *hostkey, *auth_method;
    int is_copy;               /* a file copy: bytes and files below are its record */
    uint64_t bytes;            /* payload bytes moved, all files */
    smx_file_result *files;
    size_t nfiles;
    smx_step_result *steps;    /* a command list's (or sudo's) steps, in order; the fields above
                                * hold the last step run and out/err all steps' output */
    size_t nsteps;
} smx_result;

/* Frees a result handed over by an on_done callback, and everything in it. NULL is a no-op. */
void smx_result_destroy(smx_result *r);
/* Why the host failed, "" when it did not (never NULL; owned by r). */
const char *smx_result_error(const smx_result *r);
/* The record as one line of compact JSON (what `sshmux exec --json` prints), without a newline:
 * malloc'd, the caller's (free). NULL when out of memory. */
char *smx_result_json(const smx_result *r);
/* As a shell would report the host: 0 ok; 255 not reached, verified or authenticated; 124 the
 * command timed out; 1 a file copy failed (as scp), sudo refused or an expect step did not
 * match; else the remote status (128+N for signal N). */
int smx_result_exit_status(const smx_result *r);

/* ---- host lists and targets ------------------------------------------------------------- */

/* A target is "[user@]host[:port]", "[user@][v6addr]:port", a bare IPv6 address, or
 * "ssh://[user[:password]@]host[:port]". A host list is targets separated by commas, each
 * with ranges in the style of ClusterShell and pdsh: "web[01-20]", "r[1-2]n[1-3]", "n[1-10/2]",
 * "a[1,3,5-7]b". A bracket group is a range only when made of digits, ',', '-' and '/'. */

/* Most names one smx_hostlist may generate, duplicates included: past it a list is almost
 * certainly a typo. */
#define SMX_HOSTLIST_MAX 1000000

/* The targets of a run, from any number of lists: names in order of first appearance, each with
 * a caller's tag (e.g. which password goes with it). Adding N names costs O(N). */
typedef struct smx_hostlist smx_hostlist;

/* An empty list generating at most max names over all adds. NULL when out of memory. The
 * caller's: smx_hostlist_free. */
smx_hostlist *smx_hostlist_new(size_t max);
void smx_hostlist_free(smx_hostlist *hl);
/* Expands list (copied) and appends the names not present yet, tagged tag. Returns the number
 * appended, or SMX_EINVAL (syntax), SMX_ERANGE (a number too large, or past the list's max),
 * SMX_ENOMEM; on error the list is as it was. */
int smx_hostlist_add(smx_hostlist *hl, const char *list, size_t tag, smx_err *err);
/* The same for a list of targets that may hold ssh:// passwords, item by item: each item's
 * password is taken out before it is expanded or quoted in any message. With `passwords`, it is
 * appended there (the vector's: wipe with smx_strvec_free_wipe) and the item's names are tagged
 * with its index + 1; without, it is dropped (wiped). The list text is wiped afterwards (it is
 * the caller's memory, written to). Returns the number of passwords found, or the codes of
 * smx_hostlist_add with the failing item's message; items before it stay added. */
int smx_hostlist_add_targets(smx_hostlist *hl, char *list, smx_strvec *passwords, smx_err *err);
/* Removes every name of excluded (order kept). */
void smx_hostlist_remove(smx_hostlist *hl, const smx_hostlist *excluded);
size_t smx_hostlist_count(const smx_hostlist *hl);
/* Name i (borrowed from the list: valid until it is freed) and its tag. */
const char *smx_hostlist_name(const smx_hostlist *hl, size_t i);
size_t smx_hostlist_tag(const smx_hostlist *hl, size_t i);
/* The end of the item starting at s: the first ',' outside brackets, or the terminating NUL. */
const char *smx_hostlist_item_end(const char *s);
/* Folds names into one compact hostlist: {web01,web02,web03,db1} -> "db1,web[01-03]" (sorted,
 * duplicates dropped). *out: malloc'd, the caller's (free). 0, SMX_EINVAL or SMX_ENOMEM. */
int smx_hostlist_fold(char *const *hosts, size_t n, char **out, smx_err *err);

/* Separates the password of a scheme://user:password@host URL from the rest: *stripped gets a
 * malloc'd copy of s without ":password", *password the malloc'd decoded password or NULL (both
 * the caller's: free, smx_str_wipe_free). 0, SMX_EINVAL (bad percent-encoding) or SMX_ENOMEM. */
int smx_target_take_password(const char *s, char **stripped, char **password, smx_err *err);
/* Removes ":password" from every URL of the comma-separated list s, in place, and zeroes the
 * bytes no longer used: for scrubbing argv (what ps shows) once it has been copied. */
void smx_target_strip_in_place(char *s);
/* Copies s into buf (size bytes) for quoting in messages: URL passwords become "***", control
 * characters '?', and text that does not fit ends in "...". */
void smx_target_display(const char *s, char *buf, size_t size);

/* ---- ssh_config ------------------------------------------------------------------------- */

/* Parsed ssh_config files, immutable after load; shared by every host resolved against it. */
typedef struct smx_config smx_config;

/* path: a file as ssh -F takes it; NULL for ssh's defaults (~/.ssh/config, then
 * /etc/ssh/ssh_config: missing ones are fine); "none" for no file. Match exec is never run (it
 * is false; a warning says so). *out: the caller's (smx_config_free). Errors: SMX_EINVAL
 * (syntax, "file:line: ..."), SMX_ERANGE, SMX_EIO, SMX_ENOENT (a missing -F file), SMX_ENOMEM. */
int smx_config_load(smx_config **out, const char *path, smx_err *err);
void smx_config_free(smx_config *cfg);
/* Warnings from loading, to show once (borrowed from cfg; never NULL). */
const smx_strvec *smx_config_warnings(const smx_config *cfg);
/* Checks one -o argument ("Key=Value" or "Key Value") as ssh would: unknown keywords, bad
 * values, and Host/Match/Include are SMX_EINVAL or SMX_ERANGE. */
int smx_config_validate_option(const char *kv, smx_err *err);

/* ---- groups and inventories ------------------------------------------------------------- */

/* Named groups of hosts, used as `@group` in host lists (smx_hostlist_set_config; the lists of
 * smx_engine_add_target always) and `@source:group` for one source. They are loaded into an
 * smx_config before hosts are resolved against it (not while a run resolves hosts):
 *  - ClusterShell group files (YAML, `source: {group: "nodeset", ...}`): each top-level key is a
 *    source; a group's node set may hold ranges, other groups of its source (`@other`) and
 *    ClusterShell's operators (`,` union, `!` difference, `&` intersection, `^` symmetric
 *    difference, left to right). `@*` is the source's group "all", else all its groups;
 *  - Ansible inventories (INI or YAML), together the source "ansible": groups, children, ranges
 *    (web[01:03], db-[a:c]), `all` and `ungrouped`; a host's ansible_host, ansible_port and
 *    ansible_user (or ansible_ssh_*) become its HostName, Port and User when it is resolved,
 *    above ssh_config and below the command line (smx_overrides, user@ and :port);
 *  - genders files, together the source "genders", whose group names are queries: "attr",
 *    "attr=value", combined with || && -- ~ and parentheses as nodeattr takes them.
 * An unqualified `@name` is looked up in ClusterShell's default source, then the inventory,
 * then genders. A group that is nowhere is an error naming it (SMX_ENOENT); cycles are
 * errors. Names come out in the order the files give them, without duplicates.
 * Each add reads one file whole; on error nothing of it stays and err says "file:line: why":
 * SMX_ENOENT (missing), SMX_EIO, SMX_EINVAL, SMX_ERANGE, SMX_ENOMEM. */
int smx_config_add_groups_file(smx_config *cfg, const char *path, smx_err *err);
int smx_config_add_inventory(smx_config *cfg, const char *path, smx_err *err);
int smx_config_add_genders(smx_config *cfg, const char *path, smx_err *err);

/* The files read when none are named, per format (bits of `which`):
 *  SMX_GROUPS_CLUSTERSHELL  groups.conf where ClusterShell reads it (/etc/clustershell,
 *                           ~/.local/etc/clustershell, $XDG_CONFIG_HOME/clustershell or
 *                           ~/.config/clustershell, $CLUSTERSHELL_CFGDIR), its groupsdir/confdir
 *                           and autodir (*.yaml); upcalls are never run (a note says which
 *                           sources have only upcalls);
 *  SMX_GROUPS_ANSIBLE       the comma-separated files of $ANSIBLE_INVENTORY;
 *  SMX_GROUPS_GENDERS       /etc/genders.
 * Missing files are no groups. A file that does not load is not an error here: a later lookup
 * of a group that is not found reports it. Notes for a verbose user go to notes (may be NULL).
 * 0 or SMX_ENOMEM. */
#define SMX_GROUPS_CLUSTERSHELL 1u
#define SMX_GROUPS_ANSIBLE 2u
#define SMX_GROUPS_GENDERS 4u
int smx_config_add_default_groups(smx_config *cfg, unsigned which, smx_strvec *notes,
                                  smx_err *err);
/* Host lists added to hl from now on expand `@group` items against cfg's groups (borrowed: it
 * must outlive hl). Without it (or with NULL) an item starting with '@' is a plain name. */
void smx_hostlist_set_config(smx_hostlist *hl, const smx_config *cfg);

/* What ssh's command line adds to ssh_config, applied as ssh applies it: options are config
 * lines read before the files (first value wins), user and port beat the files, identity files
 * are tried first. A target's own user@ and :port beat user and port. -J is the option
 * "ProxyJump=...". The struct and its strings are the caller's. */
typedef struct smx_overrides {
    smx_strvec options;         /* -o lines */
    const char *user;           /* -l, or NULL */
    int port;                   /* -p, or 0 */
    smx_strvec identityfiles;   /* -i files */
} smx_overrides;

/* One host's resolved settings (what `ssh -G` prints), from smx_hostcfg_resolve. */
typedef struct smx_hostcfg smx_hostcfg;

/* Resolves one target (a single name, no ranges) against cfg with ov (NULL: none). A URL
 * password in the target is ignored: take it out first (smx_target_take_password). *out: the
 * caller's (smx_hostcfg_destroy), or handed to smx_engine_add_exec/_forward. Errors: SMX_EINVAL
 * or SMX_ERANGE for a malformed target (the message quotes it) or a setting that does not
 * resolve (the message starts "TARGET: "), SMX_ENOMEM. */
int smx_hostcfg_resolve(const smx_config *cfg, const smx_overrides *ov, const char *target,
                        smx_hostcfg **out, smx_err *err);
void smx_hostcfg_destroy(smx_hostcfg *hc);
/* The alias as given, and the ProxyJump chain (NULL if none): borrowed from hc. */
const char *smx_hostcfg_host(const smx_hostcfg *hc);
const char *smx_hostcfg_proxyjump(const smx_hostcfg *hc);
/* File descriptors a running session to this host holds: 1 over TCP, 2 through a ProxyJump
 * channel or a ProxyCommand (the socketpair's ends). For fitting a fanout under ulimit -n. */
int smx_hostcfg_fds(const smx_hostcfg *hc);
/* The settings as one line of compact JSON keyed with ssh -G's names, after "target" (as given)
 * and "host" (what `sshmux hosts --json` prints): malloc'd, the caller's (free); NULL when out of
 * memory. */
char *smx_hostcfg_json(const smx_hostcfg *hc, const char *target);

/* ---- the engine ------------------------------------------------------------------------- */

/* A run: hosts queued as jobs, started as the fanout allows, sharing one loop, the handshake
 * gates, the loaded keys, the known_hosts caches and the jump host connections. */
typedef struct smx_engine smx_engine;

typedef struct smx_engine_opts {
    int fanout;                /* jobs at once, default 256 */
    int connect_timeout_ms;    /* when the host has no ConnectTimeout; covers TCP+banner+kex */
    int auth_timeout_ms;
    int retries;               /* extra attempts after an early drop (MaxStartups) */
    int handshake_initial;     /* starting handshakes in flight per server address */
    int interactive;           /* may ask the operator (keyboard-interactive) on /dev/tty */
    int prompt_timeout_ms;     /* how long an operator question may stay unanswered */
    int verbose;               /* 1: report keys skipped while loading; 2+: trace session and
                                * auth steps on stderr */
    /* Non-fatal notices about a host (host key accepted under StrictHostKeyChecking=no, a key
     * that could not be loaded), or about the ssh_config file named as `host`. May be NULL. */
    void (*warn)(void *ud, const char *host, const char *msg);
    void *ud;
} smx_engine_opts;

void smx_engine_opts_default(smx_engine_opts *o);

/* loop is borrowed (it must outlive the engine); o is copied. *out: the caller's
 * (smx_engine_free). 0 or SMX_ENOMEM. */
int smx_engine_new(smx_engine **out, uv_loop_t *loop, const smx_engine_opts *o);
/* Frees the engine: jobs never started are dropped without results (their listeners closed).
 * Call it once smx_engine_run() returned; then run the loop once (UV_RUN_NOWAIT) so closed
 * handles finish before uv_loop_close. */
void smx_engine_free(smx_engine *e);

/* The ssh_config that targets and jump hops resolve against: loaded from path (as
 * smx_config_load; owned by the engine from then on) or borrowed (it must outlive the engine).
 * Without either, smx_engine_add_target loads ssh's default files. Load warnings go to
 * opts.warn with the file as host. */
int smx_engine_load_config(smx_engine *e, const char *path, smx_err *err);
void smx_engine_set_config(smx_engine *e, const smx_config *cfg);
/* ssh's command-line options for the targets of smx_engine_add_target (copied; NULL: none). The
 * identity files (-i) are loaded now and must load: the first that does not is the error, with
 * its path. */
int smx_engine_set_overrides(smx_engine *e, const smx_overrides *ov, smx_err *err);

/* Credentials for the first jump hop, beyond what ssh_config says: a user, key files (or labels
 * of smx_engine_add_key_content) and a password; and ssh_config lines for it, read before the
 * files as -o lines are (e.g. its StrictHostKeyChecking). */
typedef struct smx_jump_overrides {
    const char *user;
    smx_strvec identityfiles;
    const char *password;
    smx_strvec options;
} smx_jump_overrides;

/* Copies identityfiles and options; user and password are borrowed (they must outlive the
 * engine). */
int smx_engine_set_jump_overrides(smx_engine *e, const smx_jump_overrides *jo);

/* ---- credentials ------------------------------------------------------------------------ */
/* Keys are loaded and decrypted once, before the loop runs: smx_engine_add_target loads each
 * host's own (IdentityFile, its ProxyJump hops' ones). The calls below are for a caller that
 * resolves hosts itself, and for secrets that come from elsewhere. */

/* A password tried on every host without one of its own (copied). 0 or SMX_ENOMEM. */
int smx_engine_set_password(smx_engine *e, const char *pw, size_t len);
/* Offer the keys of the ssh-agent at $SSH_AUTH_SOCK (IdentityAgent in ssh_config still decides
 * per host). smx_engine_add_target turns it on when $SSH_AUTH_SOCK is set. */
void smx_engine_use_agent(smx_engine *e, int on);
/* Passphrases for encrypted keys loaded from now on: a fixed one, a second one (e.g. for jump
 * host keys), both copied; and a function asking the operator (no echo; returns a malloc'd
 * string the library wipes and frees, or NULL), asked once per run: the answer is reused. */
void smx_engine_set_passphrase(smx_engine *e, const char *pass);
void smx_engine_add_passphrase(smx_engine *e, const char *pass);
void smx_engine_set_ask(smx_engine *e, char *(*ask)(const char *prompt, void *ud), void *ud);
/* Wipes every passphrase held, once all keys are loaded. Call it from a frame no deeper than the
 * one that loaded the keys: it also wipes the dead stack below, where crypto code left copies. */
void smx_engine_forget_passphrases(smx_engine *e);
/* Loads a key file (idempotent). 0, SMX_ENOENT (missing), SMX_EPASSPHRASE (encrypted, no or
 * wrong passphrase) or SMX_EIO (unreadable, not a key), with the path named. */
int smx_engine_load_key(smx_engine *e, const char *path, smx_err *err);
/* A key given as content (OpenSSH or PEM text), tried on every host; label names it in
 * messages. The content is not kept. */
int smx_engine_load_key_content(smx_engine *e, const char *label, const char *content,
                                smx_err *err);
/* Key content stored under a label usable where a key path is (in identityfiles lists). */
int smx_engine_add_key_content(smx_engine *e, const char *label, const char *content,
                               smx_err *err);
/* Loads the identity files hc names, as ssh does: missing ones are skipped silently; others that
 * fail are skipped and reported to `skipped` (may be NULL) with the reason. */
void smx_engine_load_host_keys(smx_engine *e, const smx_hostcfg *hc,
                               void (*skipped)(void *ud, const char *msg), void *ud);
/* Resolves every hop of a ProxyJump chain (as smx_hostcfg_proxyjump gives it) against the
 * engine's config and first-hop overrides, and loads each hop's identity files, silently skipping
 * those that fail. 0, or the error resolving a hop (the hosts behind it will fail with it). */
int smx_engine_load_jump_keys(smx_engine *e, const char *chain, smx_err *err);

/* ---- jobs ------------------------------------------------------------------------------- */

typedef struct smx_exec_opts {
    const char *command;       /* one command (NULL with no commands: the login shell); or: */
    const char *const *commands;   /* a command list: run in order over one connection, each on
                                    * its own channel; stops at the first that fails unless
                                    * keep_going. Per-step results in smx_result.steps */
    size_t ncommands;
    int keep_going;
    /* Run each command under `sudo -S -p MARKER [-u sudo_user] -- sh -c CMD`, answering sudo's
     * prompt with sudo_password (borrowed; NULL: a prompt fails the host with stage "sudo").
     * The prompt is removed from the output and the password never appears in it; a second
     * prompt (wrong password) fails the host with stage "sudo". When sudoers wants a tty
     * (requiretty), the step runs again on a PTY. */
    int sudo;
    const char *sudo_user;
    const char *sudo_password;
    int pty;
    const char *term;          /* the PTY's terminal type (NULL: "xterm") and size (0: 80 x 24) */
    int cols, rows;
    const smx_strvec *env;     /* "K=V" strings, or NULL */
    int timeout_ms;            /* 0 = none; then TERM, and KILL after kill_grace_ms */
    int kill_grace_ms;
    int capture;               /* keep stdout/stderr in the result */
    size_t max_output;         /* per stream, when capturing */
} smx_exec_opts;

typedef struct smx_exec_callbacks {
    /* A complete line of output (without its newline), as it arrives; r is borrowed for the
     * call. NULL: no streaming. */
    void (*on_line)(void *ud, const smx_result *r, int is_stderr, const char *line, size_t len);
    /* The host is done. The result is the callee's: free it with smx_result_destroy(). */
    void (*on_done)(void *ud, smx_result *r);
    void *ud;
} smx_exec_callbacks;

/* Queues one resolved host. hc is taken over (freed by the engine) on success; target (the
 * result's "target": never a password) and password (an ssh:// URL's, or NULL) are copied. x,
 * x->env and cb are borrowed: they must outlive the run. 0 or SMX_ENOMEM. */
int smx_engine_add_exec(smx_engine *e, const char *target, smx_hostcfg *hc, const char *password,
                        const smx_exec_opts *x, const smx_exec_callbacks *cb);

/* An interactive session on one host: the login shell (smx_exec_opts.command NULL) or a
 * command, usually on a PTY (pty, term, cols, rows), whose input the caller writes and whose
 * output arrives as it comes, as `ssh HOST` gives a terminal. Everything else of x applies as
 * for exec (env, timeout, capture). The engine's: valid from smx_engine_add_shell until its
 * on_done returned. */
typedef struct smx_shell smx_shell;

typedef struct smx_shell_callbacks {
    /* The shell runs: input written from now goes out at once. May be NULL. */
    void (*started)(void *ud, smx_shell *s);
    /* Output as it arrives (stderr apart unless on a PTY); or, with on_data NULL, line by line
     * as exec gives it (on_line). */
    void (*on_data)(void *ud, smx_shell *s, int is_stderr, const char *p, size_t n);
    void (*on_line)(void *ud, const smx_result *r, int is_stderr, const char *line, size_t len);
    /* The session is over (its exit status, or why it ended): the callee's (smx_result_destroy). */
    void (*on_done)(void *ud, smx_result *r);
    void *ud;
} smx_shell_callbacks;

/* Queues one resolved host, as smx_engine_add_exec (hc taken over on success; target and
 * password copied; x and cb borrowed for the run); a shell runs x->command alone (command lists
 * and sudo are exec's). With a PTY, the terminal modes sent are those of the process's stdin
 * when it is a terminal. *out (if not NULL): the shell. 0 or SMX_ENOMEM. */
int smx_engine_add_shell(smx_engine *e, const char *target, smx_hostcfg *hc, const char *password,
                         const smx_exec_opts *x, const smx_shell_callbacks *cb, smx_shell **out);
/* Input: copied; what is written before the shell started is sent when it starts. 0,
 * SMX_ENOMEM, or SMX_ECLOSED once its input was closed or the session ended. */
int smx_shell_write(smx_shell *s, const void *p, size_t n);
/* Input bytes queued and not yet taken by the server (a reader's back-pressure). */
size_t smx_shell_pending(const smx_shell *s);
/* EOF on the shell's input, once what was written went. */
void smx_shell_send_eof(smx_shell *s);
/* Output back-pressure (a reader that cannot keep up): while paused, on_data is not called and
 * the server stops sending once the SSH window is full; resumed, what waited comes first. What
 * is left when the session ends is delivered then: output is never dropped. */
void smx_shell_pause_output(smx_shell *s, int paused);
/* The local terminal's size changed (SIGWINCH): sent as a window-change. */
void smx_shell_resize(smx_shell *s, int cols, int rows);
/* Ends the session now, as ssh's `~.`: the connection is closed; the result says `why`. */
void smx_shell_close(smx_shell *s, const char *why);
/* The host alias (borrowed from s). */
const char *smx_shell_host(const smx_shell *s);

/* ---- send/expect on a PTY shell (sshmux expect) ------------------------------------------ */

/* One step: `send` is written to the shell as it is (NULL: nothing; `sshmux expect --send`
 * appends the newline), then the output that arrives from then on (ANSI escape sequences, NULs
 * and carriage returns removed) is searched for `expect`, a POSIX extended regex (REG_NEWLINE),
 * or with expect NULL for the shell's prompt at its end. The prompt is found as netmiko does:
 * once the shell is quiet, a newline is sent and the last non-empty line that comes back is
 * the prompt. A step that does not match within timeout_ms (0: 10 s) fails the host (stage
 * "expect", with the last 200 bytes seen in the message) and ends its connection. */
typedef struct smx_expect_step {
    const char *send;
    const char *expect;
    int timeout_ms;
} smx_expect_step;

typedef struct smx_expect_opts {
    const smx_expect_step *steps;
    size_t nsteps;
    const char *term;          /* the PTY's terminal type (NULL: "xterm") and size (0: 512 x 24:
                                * wide, so that the shell does not wrap the echo of a step) */
    int cols, rows;
    const smx_strvec *env;     /* "K=V" strings, or NULL */
    size_t max_output;         /* per step (0: 8 MiB) */
} smx_expect_opts;

/* Checks every step's regex: 0, or SMX_EINVAL naming the step and regcomp's reason. */
int smx_expect_opts_check(const smx_expect_opts *o, smx_err *err);

/* Queues one resolved host for a send/expect script (hc, target, password as
 * smx_engine_add_exec). One session channel with a PTY runs the login shell; the steps run in
 * order; after the last one "exit" is sent and the connection closed. The result's steps hold
 * one record per step run: command = what was sent (without its last newline), out = the
 * step's output with the echo of what was sent and (without a regex) the trailing prompt
 * removed, exit_code 0 matched / -1 not, timed_out, ms; the host's out is every step's output
 * in order. cb->on_line is not called. opts is borrowed: it must outlive the run. 0 or
 * SMX_ENOMEM. */
int smx_engine_add_expect(smx_engine *e, const char *target, smx_hostcfg *hc,
                          const char *password, const smx_expect_opts *opts,
                          const smx_exec_callbacks *cb);

/* A script of steps, e.g. from JSON lines: its strings are its own. */
typedef struct smx_expect_script {
    smx_expect_step *steps;
    size_t nsteps, cap;
} smx_expect_script;

/* Appends a step (send, expect may be NULL; copied). 0 or SMX_ENOMEM. */
int smx_expect_script_add(smx_expect_script *s, const char *send, const char *expect,
                          int timeout_ms);
/* One JSON line {"send": TEXT, "send_raw": TEXT, "expect": REGEX, "timeout": SECONDS} (send
 * gets a newline appended, send_raw does not; at most one of them; timeout a number > 0), or a
 * blank line or one starting with '#' (nothing added). 0, or SMX_EINVAL saying what is wrong
 * (the caller names the line). */
int smx_expect_script_add_json(smx_expect_script *s, const char *line, size_t len, smx_err *err);
/* Every line of a file; an error names "path:line". */
int smx_expect_script_load(smx_expect_script *s, const char *path, smx_err *err);
void smx_expect_script_free(smx_expect_script *s);

/* A link: one connection to one host on which exec items and copy items run one after another,
 * each with its own result and callbacks (as smx_engine_add_exec's and smx_engine_add_copy's,
 * but sharing the connection's setup: its
 * result carries the connection's timing, attempts, banner and algorithms, and the connection's
 * error when it could not be set up or was lost). The link is a job: it connects when it takes a
 * fanout slot. Items start in the order added, one after another (or up to
 * smx_link_set_parallel's number at once, each on a channel of its own); an item that fails does
 * not stop the next ones while the connection lasts. A link is the caller's until smx_link_release: after that the
 * engine frees it once its items are done and its connection closed. */
typedef struct smx_link smx_link;

/* Queues a link to one resolved host (hc taken over on success; target and password copied, as
 * smx_engine_add_exec). *out: the link, to add items to and release. 0 or SMX_ENOMEM. */
int smx_engine_add_link(smx_engine *e, const char *target, smx_hostcfg *hc, const char *password,
                        smx_link **out);
/* Queues an exec item on the link (x, x->env and cb borrowed until its on_done). An item added
 * once the connection is gone (it failed, or the run was canceled) gets the connection's error:
 * its on_done may run before this returns. 0, SMX_EINVAL (already released) or SMX_ENOMEM. */
int smx_link_exec(smx_link *l, const smx_exec_opts *x, const smx_exec_callbacks *cb);
struct smx_copy;   /* smx_copy: smx_copy_new, below */
/* Queues a copy item on the link: copy's transfer to the link's host (what smx_engine_add_copy
 * does on a connection of its own: uploads, downloads, run-script), on an SFTP channel of the
 * link's connection, in turn with the other items. copy and cb are borrowed until its on_done,
 * which gets the item's own result: the copy's files and bytes recorded as smx_engine_add_copy
 * records them, and the connection's phases. The connection is not closed while the item runs.
 * When it is lost mid-copy, the item ends with that loss (the file in flight failed, stage
 * sftp) once its channel is closed, and every later item gets the link's error. Added once the
 * connection is gone: as smx_link_exec. 0, SMX_EINVAL (already released) or SMX_ENOMEM. */
int smx_link_copy(smx_link *l, struct smx_copy *copy, const smx_exec_callbacks *cb);
/* How many items may run at once (default 1: each after the previous one ended), 1 to
 * SMX_LINK_PARALLEL_MAX. More than the server's MaxSessions (OpenSSH: 10) fail as refused
 * channels. */
#define SMX_LINK_PARALLEL_MAX 64
void smx_link_set_parallel(smx_link *l, int n);
/* 1 once the link's connection is gone (it failed, was lost, closed or canceled): items added
 * from now on only get its error, so a caller with more work for the host opens a new link. */
int smx_link_closed(const smx_link *l);
/* No more items: the connection closes once the queued ones are done. The one close path of a
 * link; l is not to be used after it. Release every link before smx_engine_free. */
void smx_link_release(smx_link *l);

/* One forward, as ssh takes it.
 * Local (-L):
 *   [bind_address:]port:host:hostport      TCP listener -> the remote host:hostport
 *   [bind_address:]port:remote_socket      TCP listener -> a remote Unix socket
 *   local_socket:host:hostport             Unix listener -> the remote host:hostport
 *   local_socket:remote_socket             Unix listener -> a remote Unix socket
 * Remote (-R): the same four forms with the listener on the server and the destination here,
 *   and [bind_address:]port alone: a SOCKS proxy served here for connections made there.
 *   No bind address: the server's loopback ("localhost"); "*" or "": every address, where the
 *   server's GatewayPorts allows it. Port 0: the server picks one.
 * Dynamic (-D): [bind_address:]port, a local SOCKS 4/4a/5 listener; names resolved remotely.
 * IPv6 addresses in brackets; a field with a '/' is a socket path. Strings are the spec's. */
enum smx_fwd_kind { SMX_FWD_LOCAL, SMX_FWD_REMOTE, SMX_FWD_DYNAMIC };

typedef struct smx_fwd_spec {
    enum smx_fwd_kind kind;
    /* The listener: here for local and dynamic forwards, on the server for remote ones. */
    char *bind_addr;      /* NULL: loopback */
    int bind_port;        /* TCP listener port (0: any free one), unless bind_path */
    char *bind_path;      /* Unix listener path, or NULL */
    /* Where its connections go (none: SOCKS, the client names it). */
    char *host;           /* TCP destination, unless dest_path or command */
    int port;
    char *dest_path;      /* Unix socket destination, or NULL */
    char *command;        /* local forwards only, set by the caller: every connection is a
                           * session channel running this command, its stdin/stdout the bytes
                           * (as `docker system dial-stdio`); NULL otherwise */
} smx_fwd_spec;

/* A -L spec. *out needs no initialisation; free it with smx_fwd_spec_free. SMX_EINVAL quoting s. */
int smx_fwd_spec_parse(const char *s, smx_fwd_spec *out, smx_err *err);
/* A spec of the given kind (-L, -R or -D syntax). */
int smx_fwd_spec_parse_kind(const char *s, enum smx_fwd_kind kind, smx_fwd_spec *out,
                            smx_err *err);
/* 1 when the forward's connections are SOCKS requests (-D, and -R without a destination). */
int smx_fwd_spec_is_socks(const smx_fwd_spec *f);
void smx_fwd_spec_free(smx_fwd_spec *f);

/* One host's forwards: local listeners bound when added, remote ones asked for once connected,
 * served over one connection (and more to the same host when the server refuses channels as a
 * limit, e.g. sshd's MaxSessions, while it carries others). The engine's; it is gone once its
 * on_done returned. */
typedef struct smx_forward smx_forward;

typedef struct smx_forward_opts {
    const smx_fwd_spec *specs;      /* bound in order (borrowed for the add call only) */
    size_t nspecs;
    unsigned sock_mode;             /* permissions of Unix listener sockets (e.g. 0600) */
    const smx_exec_opts *command;   /* run this over the same connection while forwarding (as
                                     * `ssh -L ... host cmd`; borrowed for the run); its end ends
                                     * the forwards. NULL: forward until the connection ends or
                                     * the run is canceled */
    int connections;                /* local and dynamic forwards' connections are spread over
                                     * up to this many SSH connections to the host (each link
                                     * on the least loaded; more opened as links come), at most
                                     * SMX_FORWARD_MAX_CONNECTIONS; 0 or 1: one, and more only
                                     * when the server refuses channels as a limit */
} smx_forward_opts;
#define SMX_FORWARD_MAX_CONNECTIONS 8

typedef struct smx_forward_callbacks {
    /* Connected: the local listeners serve; remote ones are being asked for. May be NULL. */
    void (*ready)(void *ud, smx_forward *f);
    /* Remote listener i (-R) is bound on the server (err NULL: smx_forward_local/_port say
     * where) or was refused (err names the spec; the host's forwards then end, as ssh's
     * ExitOnForwardFailure). May be NULL. */
    void (*remote_bound)(void *ud, smx_forward *f, size_t i, const char *err);
    /* A forwarded connection ended; err NULL on a clean end, else why. May be NULL. */
    void (*link_ended)(void *ud, smx_forward *f, const char *listener, const char *err);
    /* The command's output, line by line (when a command is given). */
    void (*on_line)(void *ud, const smx_result *r, int is_stderr, const char *line, size_t len);
    /* Everything is closed: the result (the connection's error, the command's status) is the
     * callee's (smx_result_destroy). */
    void (*on_done)(void *ud, smx_result *r);
    void *ud;
} smx_forward_callbacks;

/* Binds the listeners now (a port in use fails here, before anything connects) and queues the
 * host. hc is taken over on success (the caller keeps it on failure); target and password are
 * copied; cb must outlive the run. *out (if out is not NULL): the forward, the engine's. Returns
 * 0, or a negative code with err (SMX_EINVAL: a spec the listener cannot use). */
int smx_engine_add_forward(smx_engine *e, const char *target, smx_hostcfg *hc,
                           const char *password, const smx_forward_opts *opts,
                           const smx_forward_callbacks *cb, smx_forward **out, smx_err *err);
size_t smx_forward_listeners(const smx_forward *f);
/* Listener i in the order of the specs: where it listens ("127.0.0.1:43817", the socket path;
 * for a remote one the address on the server, with the bound port once known), where its
 * connections go ("db:5432", a path, "socks"), and the host alias: borrowed from f. */
const char *smx_forward_local(const smx_forward *f, size_t i);
const char *smx_forward_remote(const smx_forward *f, size_t i);
const char *smx_forward_host(const smx_forward *f);
/* "local", "dynamic", "remote" or "remote-socks". */
const char *smx_forward_kind(const smx_forward *f, size_t i);
/* The bound TCP port of listener i (0 for a socket, or a remote one not bound yet). */
int smx_forward_port(const smx_forward *f, size_t i);
/* Listener i as one line of compact JSON, {"host":...,"kind":...,"listen":...,"port":...,
 * "to":...} (port for TCP listeners only): malloc'd, the caller's (free); NULL when out of
 * memory. */
char *smx_forward_json(const smx_forward *f, size_t i);

/* What smx_engine_add_target queues for each host: set exec and exec_cb for a command, exec
 * and shell_cb for shells, expect and exec_cb for a send/expect script, or forward and forward_cb
 * for forwards. Borrowed: they must outlive the run. */
typedef struct smx_target_job {
    const smx_exec_opts *exec;
    const smx_exec_callbacks *exec_cb;
    const smx_shell_callbacks *shell_cb;   /* with exec: interactive shells (smx_engine_add_shell) */
    const smx_expect_opts *expect;     /* or a send/expect script, with exec_cb */
    const smx_forward_opts *forward;
    const smx_forward_callbacks *forward_cb;
} smx_target_job;

/* The whole path from a host list to queued jobs, as ssh would take each host: expands targets
 * (copied; ssh:// passwords go with their hosts, never into messages or results), resolves
 * each host against the engine's ssh_config and overrides (ssh's default files when none was
 * set), loads the keys it and its ProxyJump hops name (missing ones skipped, as ssh does; others
 * reported to opts.warn when opts.verbose), offers the agent when $SSH_AUTH_SOCK is set, and
 * queues one job per host. Every host is resolved before any is queued: a target that does not
 * parse or resolve queues nothing. A forward's listeners are bound per host, so a list of hosts
 * needs specs with port 0 (or Unix paths unique per host). Key files are read (and passphrases
 * asked) here: called from a callback of a running loop, it holds the loop meanwhile. Returns
 * the number of hosts queued, or a negative code with err. */
int smx_engine_add_target(smx_engine *e, const char *targets, const smx_target_job *job,
                          smx_err *err);

/* ---- file copies over SFTP ------------------------------------------------------------------ */

enum smx_copy_kind {
    SMX_COPY_UPLOAD,     /* local sources -> dest on every host */
    SMX_COPY_DOWNLOAD,   /* remote sources on every host -> a local directory */
    SMX_COPY_SCRIPT      /* sources[0] uploaded to a private temp file, run, removed */
};

/* Where downloads land under dest. */
enum smx_copy_layout {
    SMX_LAYOUT_HOSTDIR,  /* dest/<host>/<name> (pslurp, Ansible fetch) */
    SMX_LAYOUT_SUFFIX,   /* dest/<name>.<host> (clush --rcopy) */
    SMX_LAYOUT_FLAT,     /* dest/<name> (one host, as scp) */
    SMX_LAYOUT_PATH      /* dest is the local file itself (one source, one host: a request's
                          * local_path) */
};

typedef struct smx_copy_opts {
    enum smx_copy_kind kind;
    const smx_strvec *sources;   /* upload/script: local paths; download: remote paths */
    const char *dest;            /* upload: remote path; download: local directory. In remote
                                  * paths %h is the host as given, %n its index, %% a % */
    enum smx_copy_layout layout;
    int recursive;               /* directories (symlinks are copied as symlinks) */
    int preserve;                /* mode and times, as scp -p */
    int resume;                  /* continue a partial destination whose last bytes match */
    int fsync;
    int in_place;                /* write dest itself, not dest.sshmux-partial then rename */
    int mode;                    /* permissions of created files; -1: the source's */
    size_t block_size;           /* bytes per request; 0: the server's limit (32 KiB without
                                  * limits@openssh.com) */
    int requests;                /* in flight per file; 0: 64 */
    int transfer_timeout_ms;     /* a host with no progress for this long fails; 0: none */
    const smx_exec_opts *script; /* SMX_COPY_SCRIPT: how to run it; command = its arguments,
                                  * already quoted for the remote shell ("" for none) */
} smx_copy_opts;

/* A copy shared by every host of a run: the local side is planned (and for uploads each file
 * read) once for all of them. */
typedef struct smx_copy smx_copy;

/* Plans the copy (uploads: every local source is stat'ed and, with recursive, walked, here,
 * before the run). opts and its strings are copied. SMX_ENOENT / SMX_EINVAL / SMX_EIO naming the
 * local path that cannot be copied. Free with smx_copy_free after the run. */
int smx_copy_new(smx_engine *e, const smx_copy_opts *opts, smx_copy **out, smx_err *err);
void smx_copy_free(smx_copy *c);

typedef struct smx_copy_progress {
    uint64_t bytes_done;          /* acknowledged by the servers / written locally */
    uint64_t bytes_total;         /* known so far (downloads learn sizes as they go) */
    size_t files_done, files_failed;
    size_t peak_cache_bytes;      /* the shared block cache's high-water mark */
} smx_copy_progress;
void smx_copy_get_progress(const smx_copy *c, smx_copy_progress *p);

/* Queues one resolved host for the copy (as smx_engine_add_exec: hc taken over on success;
 * target and password copied). cb->on_line gets run-script's output. The result's files and
 * bytes hold the record. 0 or SMX_ENOMEM. */
int smx_engine_add_copy(smx_engine *e, const char *target, smx_hostcfg *hc, const char *password,
                        smx_copy *copy, const smx_exec_callbacks *cb);

/* How far the run is: for a live status line. */
typedef struct smx_engine_progress {
    size_t queued, running, done;
    const char *oldest_host;      /* the host running longest (borrowed until the next loop
                                   * turn), or NULL */
    double oldest_ms;
} smx_engine_progress;
void smx_engine_get_progress(const smx_engine *e, smx_engine_progress *p);

/* Stops the run: hosts not started yet finish as canceled (`why`), running ones are closed
 * (their results say `why`). Safe from a signal watcher on the loop. */
void smx_engine_cancel(smx_engine *e, const char *why);
/* Starts the engine's queued jobs without running the loop (smx_engine_run does both): for
 * several engines on one loop (e.g. different jump host credentials), started each, then run
 * with uv_run. Jobs added later start at once, fanout allowing. */
void smx_engine_start(smx_engine *e);
/* Runs the loop until every queued host is done. Hosts added while it runs start at once
 * (fanout allowing). Returns uv_run's value. */
int smx_engine_run(smx_engine *e);
/* Host keys accepted without verification (StrictHostKeyChecking=no), and added to known_hosts
 * (accept-new), during the run. */
unsigned smx_engine_hostkeys_unverified(const smx_engine *e);
unsigned smx_engine_hostkeys_added(const smx_engine *e);

#ifdef __cplusplus
}
#endif

#endif
