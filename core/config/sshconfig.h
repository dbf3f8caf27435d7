/* OpenSSH client configuration (ssh_config(5)): parse once, resolve per host.
 *
 * Why not libssh's config code: libssh's parser only applies options to a live ssh_session and
 * most values cannot be read back afterwards; it runs `Match exec` commands (fork + block the
 * event loop); and it has no notion of a resolved, connection-less per-host result. sshmux
 * needs exactly that result for thousands of hosts, for `sshmux hosts --json`, and for each
 * ProxyJump hop separately. So we parse the files once into an immutable smx_config and
 * evaluate it per host into a plain smx_hostcfg, mirroring what `ssh -G` (OpenSSH 9.2) prints.
 *
 * Semantics follow ssh_config(5) and were checked against `ssh -G`:
 *  - first obtained value wins; IdentityFile accumulates (duplicates dropped); sources in order:
 *    overrides (-l/-p/-i, then -o lines), then the -F file or ~/.ssh/config + /etc/ssh/ssh_config;
 *  - Host patterns are matched case-sensitively against the name as typed; Match host and
 *    originalhost are case-insensitive; Match user/localuser are case-sensitive (as ssh does);
 *  - `Match final` (or CanonicalizeHostname yes/always) triggers a second pass like ssh's final
 *    pass: `canonical` and `final` are true only there, Host lines then match the resolved
 *    hostname. We never canonicalize through DNS, so the hostname does not change in that pass;
 *  - `Match exec` is NOT run (that would fork and block): it evaluates to false (so `!exec` is
 *    true) and smx_config_warnings() carries a message for the CLI to print once;
 *  - Include: glob, lexical order, relative to ~/.ssh (user files, -F) or /etc/ssh (system file),
 *    allowed inside Host/Match (applies only when the block matches), depth limit 16. Included
 *    files are parsed (and syntax-checked) even inside non-matching blocks, like ssh does. One
 *    load reads at most 4096 files, 1,000,000 lines and 64 MiB (ssh has no such cap; a loop-free
 *    fan-out within the depth limit could otherwise read millions of files): SMX_ERANGE;
 *  - time values (ConnectTimeout, ServerAliveInterval) above 2147483 s are SMX_ERANGE (they become
 *    int milliseconds; ssh accepts up to INT_MAX seconds and overflows);
 *  - unknown keywords are an error at resolve time unless an IgnoreUnknown pattern in effect for
 *    that host covers them (ssh's rule: IgnoreUnknown is itself a first-wins, per-host option).
 *    Valid OpenSSH keywords that sshmux does not model are accepted and ignored.
 * Known differences from ssh -G are listed at smx_hostcfg_to_json().
 *
 * All functions are reentrant: no global state; an smx_config may be shared by threads. */
#ifndef SSHMUX_SSHCONFIG_H
#define SSHMUX_SSHCONFIG_H

#include "error.h"
#include "sshmux.h"

#include <jansson.h>

/* smx_config (the parsed files, immutable after load, shared by all hosts) with smx_config_load,
 * smx_config_free, smx_config_warnings and smx_config_validate_option, and smx_overrides (ssh's
 * command line), are in the public header. smx_config_load: path is the -F file, or NULL for
 * the defaults (~/.ssh/config then /etc/ssh/ssh_config; missing default files are fine; a
 * missing -F file is an error SMX_ENOENT naming it; "-F none" reads no file at all, as in ssh).
 * The home directory comes from $HOME (getpwuid() if unset); ssh itself always uses the passwd
 * entry. User files are not permission-checked (ssh refuses group/world writable ones). Errors:
 * SMX_EINVAL (syntax; message "file:line: ..." with $HOME shown as "~"), SMX_ERANGE (number out
 * of range, e.g. `bad port "0"`), SMX_EIO, SMX_ENOENT, SMX_ENOMEM. Unknown keywords are reported
 * by smx_config_resolve() (see IgnoreUnknown above). smx_config_warnings: human-readable
 * warnings collected while loading (e.g. "~/.ssh/config:7: Match exec is not run by sshmux;
 * treated as false"). */

typedef struct smx_hostcfg {
    char *host;                 /* the alias as given (%n), case preserved */
    char *hostname;             /* HostName with %h expanded, else host; lowercased like ssh
                                 * (unless it contains ':' or '%', i.e. looks like an address) */
    char *user;                 /* default: the local user (getpwuid) */
    int port;                   /* default 22 */
    smx_strvec identityfile;    /* paths to try in order: ~, ${ENV} and %-tokens expanded; the
                                 * default list when none is set; "none" entries dropped */
    smx_strvec identityfile_raw;/* the same list as ssh -G prints it (unexpanded) */
    int identitiesonly;
    char *identityagent;        /* NULL = use $SSH_AUTH_SOCK; else expanded path, or verbatim
                                 * "none", "SSH_AUTH_SOCK" or "$VAR" (an env var to read) */
    smx_strvec userknownhostsfile;   /* expanded; empty means "none" */
    smx_strvec globalknownhostsfile; /* "~" expanded (no tokens, as in ssh); empty = "none" */
    char *stricthostkeychecking;     /* "yes", "no", "accept-new" or "ask" (default) */
    int connecttimeout;              /* seconds; 0 = none */
    int serveraliveinterval;         /* seconds; default 0, or 300 with BatchMode yes (Debian) */
    int serveralivecountmax;         /* default 3 */
    int compression;
    char *ciphers, *kexalgorithms, *hostkeyalgorithms, *macs; /* raw value as configured
                                                                  * (maybe +/-/^ forms); NULL = default */
    char *pubkeyacceptedalgorithms;  /* raw; NULL = default */
    char *preferredauthentications;  /* NULL = default */
    int pubkeyauthentication;        /* 1 for yes, unbound and host-bound */
    int passwordauthentication, kbdinteractiveauthentication, batchmode; /* yes=1, no=0 */
    char *proxyjump;            /* ProxyJump as ssh -G prints it (last hop normalised, tokens
                                 * unexpanded; see smx_proxyjump_parse), NULL = none */
    char *proxycommand;         /* raw, tokens unexpanded (see smx_hostcfg_expand_proxy), NULL = none */
    char *hostkeyalias;         /* NULL = none */
    char *loglevel;             /* as ssh -G prints it: "INFO" (default), "DEBUG", "SILENT"... */
    int hashknownhosts;         /* default 0 */
    int connectionattempts;     /* default 1 */
    int tcpkeepalive;           /* default 1 */
    char *addressfamily;        /* "any" (default), "inet", "inet6" */
} smx_hostcfg;

/* Command-line overrides (smx_overrides) are applied like ssh does: -o lines are parsed as config
 * lines BEFORE the files (first obtained value wins); -l/-p take precedence over config; -i files
 * are tried first. Difference from ssh: ssh lets -o User/-o Port and -l/-p compete in
 * command-line order and lets -o User beat user@host; here `user` and `port` always beat -o. */

/* Resolve the configuration for one destination. ov may be NULL. On error out is left zeroed
 * (nothing to free). Errors: SMX_EINVAL (bad -o line, unknown keyword not covered by
 * IgnoreUnknown, unknown %-token, unset ${VAR}, unknown ~user), SMX_ERANGE, SMX_ENOMEM. */
int smx_config_resolve(const smx_config *cfg, const char *host, const smx_overrides *ov,
                       smx_hostcfg *out, smx_err *err);
void smx_hostcfg_free(smx_hostcfg *hc);

/* JSON object keyed with ssh -G's lowercase names. Types: numbers for ints, true/false for
 * yes/no flags, arrays for file lists, null for unset/default (ciphers, macs, proxyjump, ...).
 * Known differences from `ssh -G`, all deliberate:
 *  - connecttimeout: "none" when unset (like ssh -G); an explicit `ConnectTimeout 0` also
 *    prints "none" (ssh prints 0; both mean no timeout);
 *  - stricthostkeychecking: "yes"/"no"/"accept-new"/"ask" (ssh -G prints "true"/"false");
 *  - booleans are JSON true/false (ssh prints yes/no, and "true" for pubkeyauthentication);
 *  - ciphers/kexalgorithms/hostkeyalgorithms/macs/pubkeyacceptedalgorithms: the configured
 *    string or null (ssh -G prints the computed list, including defaults);
 *  - identityfile: as ssh -G prints it (unexpanded); ssh additionally drops -i files that do
 *    not exist, we keep them;
 *  - userknownhostsfile: expanded, ["none"] when disabled (as ssh -G); "~" and %d use $HOME
 *    where ssh uses the passwd entry. globalknownhostsfile: "~" expanded (ssh -G prints it
 *    unexpanded);
 *  - proxyjump: ssh does not unquote ProxyJump arguments (`ProxyJump "a"` jumps via a host
 *    literally named "a" with quotes); we do;
 *  - a bad ~user or %-token in IdentityFile fails smx_config_resolve(); ssh -G prints it and
 *    fails only when connecting.
 * Returns NULL on allocation failure. */
json_t *smx_hostcfg_to_json(const smx_hostcfg *hc);

/* smx_config_validate_option (public header) checks one -o argument without a config: unknown
 * key -> SMX_EINVAL `unknown option "Foo"`; keywords valid in OpenSSH but ignored by sshmux are
 * fine; Host/Match/Include are rejected as ssh does; values are checked (bad port, yes/no...). */

/* Expand the tokens ProxyCommand accepts (%%, %h, %n, %p, %r) against a resolved host.
 * *out is malloc'ed. SMX_EINVAL names an unknown token. */
int smx_hostcfg_expand_proxy(const smx_hostcfg *hc, const char *tmpl, char **out, smx_err *err);

/* One ProxyJump hop. The engine resolves each hop as its own destination (with user/port as
 * -l/-p overrides): ssh does not apply the target's configuration to jump hosts. */
typedef struct smx_jumphop {
    char *user;                 /* NULL if not given */
    char *host;
    int port;                   /* 0 if not given */
} smx_jumphop;

/* Split a ProxyJump value ("[user@]host[:port],ssh://[user@]host[:port],...", IPv6 in [])
 * into hops, in connection order. "none" yields zero hops. */
int smx_proxyjump_parse(const char *spec, smx_jumphop **hops, size_t *nhops, smx_err *err);
void smx_jumphops_free(smx_jumphop *hops, size_t nhops);

#endif
