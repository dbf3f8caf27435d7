/* Private keys and secrets for a run, loaded once before the loop starts. A fleet names the same
 * few key files thousands of times; decrypting each once (bcrypt KDF costs ~100 ms) and keeping
 * the parsed key is what keeps auth off the disk and off the prompt during the run.
 * Secrets are wiped when freed. */
#ifndef SSHMUX_KEYRING_H
#define SSHMUX_KEYRING_H

#include <libssh/libssh.h>
#include <stddef.h>

#include "error.h"
#include "sshmux.h"

typedef struct smx_secret {
    char *s;          /* NUL-terminated; NULL when unset */
    size_t len;
} smx_secret;

int smx_secret_set(smx_secret *sec, const char *s, size_t len);
void smx_secret_wipe(smx_secret *sec);

/* smx_secret_read_file (a file holding a secret, read without leaving copies) is in the public
 * header. */

/* Asks the operator for a secret (no echo); returns malloc'd string or NULL. */
typedef char *(*smx_ask_fn)(const char *prompt, void *ud);

typedef struct smx_keyring smx_keyring;

smx_keyring *smx_keyring_new(void);
void smx_keyring_free(smx_keyring *kr);

/* Passphrase source for encrypted keys: a fixed one (--passphrase-env) and/or an ask function
 * (asked once per run; the answer is reused for every encrypted key it opens). */
void smx_keyring_set_passphrase(smx_keyring *kr, const char *pass);
/* A second fixed passphrase (for jump host keys: --proxy-passphrase-env). */
void smx_keyring_add_passphrase(smx_keyring *kr, const char *pass);
void smx_keyring_set_ask(smx_keyring *kr, smx_ask_fn ask, void *ud);
/* Wipes every passphrase held (fixed and asked) once all keys are loaded, and the dead stack
 * frames below the caller where the crypto library left copies: call it from a frame no deeper
 * than the one that loaded the keys. Encrypted keys loaded after this fail as if no passphrase
 * had been given. */
void smx_keyring_forget_passphrases(smx_keyring *kr);

/* Loads path (idempotent). Returns 0, SMX_ENOENT (no such file: skipped silently, as ssh does
 * for configured files), SMX_EPASSPHRASE (encrypted, no or wrong passphrase) or SMX_EIO (unreadable
 * or not a key), with the path named in err. */
int smx_keyring_load_file(smx_keyring *kr, const char *path, smx_err *err);
/* Key given as content (OpenSSH or PEM text), e.g. from --key-env. */
int smx_keyring_load_content(smx_keyring *kr, const char *label, const char *content, smx_err *err);
/* Key content stored under a label usable like a path (e.g. "env:VAR" in an identity list). */
int smx_keyring_add_content(smx_keyring *kr, const char *label, const char *content, smx_err *err);
/* The loaded key for path, or NULL. */
ssh_key smx_keyring_get(const smx_keyring *kr, const char *path);
/* The key loaded with smx_keyring_load_content, or NULL. */
ssh_key smx_keyring_content_key(const smx_keyring *kr);

#endif
