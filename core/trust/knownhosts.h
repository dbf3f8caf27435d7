/* In-memory known_hosts: each file is read once at load, its keys parsed and kept, and server keys
 * are compared against them without touching the disk again. libssh's ssh_session_is_known_server
 * re-reads the file on every call and ignores @revoked, which does not scale to thousands of
 * sessions. New keys (StrictHostKeyChecking accept-new) are appended to the first file and to the
 * cache, one write() per line on an O_APPEND descriptor so that concurrent writers never interleave
 * partial lines.
 *
 * Lookups use OpenSSH's naming: "host" for port 22, "[host]:port" otherwise, compared without
 * regard to ASCII case. Exact names are found through a hash index; wildcard lines and hashed
 * (|1|) lines are scanned, and each hashed line costs one HMAC-SHA1 per lookup (their salts
 * differ by design).
 *
 * Not thread-safe: one smx_knownhosts belongs to one event loop. */
#ifndef SSHMUX_KNOWNHOSTS_H
#define SSHMUX_KNOWNHOSTS_H

#include <stddef.h>

#include <libssh/libssh.h>

#include "error.h"

typedef struct smx_knownhosts smx_knownhosts;

/* Loads every file in files[0..n). A missing file is an empty one; an existing file that cannot be
 * read is SMX_EIO naming it. Malformed lines and keys of unsupported types (sk-*, certificates,
 * unknown names) are skipped and counted, never fatal; @cert-authority lines are ignored (host
 * certificates are not supported yet). New entries are appended to files[0], which is created 0600
 * (and its directory 0700) on the first add. n may be 0: nothing is known and add() fails. */
int smx_knownhosts_load(smx_knownhosts **out, const char *const *files, size_t n, smx_err *err);
void smx_knownhosts_free(smx_knownhosts *kh);

enum smx_hostkey_status {
    SMX_HOSTKEY_OK = 0,        /* a matching key for this host */
    SMX_HOSTKEY_UNKNOWN = 1,   /* no entry for this host at all */
    SMX_HOSTKEY_CHANGED = 2,   /* entries of the same key type exist, none matches */
    SMX_HOSTKEY_OTHER = 3,     /* only keys of other types are known for this host */
    SMX_HOSTKEY_REVOKED = 4    /* key matches a @revoked line (wins over everything else) */
};

/* host: the name used for lookup (HostKeyAlias or HostName); port: lookup uses "host" when port is
 * 22 (or 0), else "[host]:port". ECDSA curves count as different key types. Returns a status >= 0,
 * or SMX_EINVAL (NULL/empty/oversized host, NULL key), SMX_ERANGE (port outside 0..65535). */
int smx_knownhosts_check(smx_knownhosts *kh, const char *host, int port, const ssh_key key);

/* Appends "host_or_[host]:port keytype base64\n" (host lowercased, as OpenSSH writes it) to
 * files[0] and to the cache, and returns 1 (lines written). Adding a key that already checks OK
 * for this host writes nothing and returns 0, so a host is written once however many sessions add
 * it. A key revoked for the host is refused (SMX_EHOSTKEY); whether to add over a CHANGED key is
 * the caller's policy. Host names that could alter the file's meaning (whitespace, ',', '*', '?',
 * '!', leading '#', '@' or '|', control characters) are SMX_EINVAL; write failures are SMX_EIO and
 * leave the cache unchanged (a line cut short on disk is ended by the next add's newline). */
int smx_knownhosts_add(smx_knownhosts *kh, const char *host, int port, const ssh_key key,
                       smx_err *err);

/* Usable entries held (including @revoked ones), and lines skipped as malformed or unsupported. */
size_t smx_knownhosts_count(const smx_knownhosts *kh);
size_t smx_knownhosts_skipped(const smx_knownhosts *kh);

/* "SHA256:base64..." fingerprint of key for messages, malloc'd (free()); NULL on failure. */
char *smx_key_fingerprint(const ssh_key key);

#endif
