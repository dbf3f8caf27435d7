#include "keyring.h"
#include "strvec.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct keyring_entry {
    struct keyring_entry *next;
    char *path;
    ssh_key key;
    int status;               /* result of the load, returned again on repeat loads */
    char errmsg[sizeof(((smx_err *)0)->msg)];
} keyring_entry;

struct smx_keyring {
    keyring_entry *entries;
    ssh_key content_key;
    smx_secret fixed;         /* --passphrase-env */
    smx_secret fixed2;        /* --proxy-passphrase-env */
    smx_secret asked;         /* what the operator typed, reused for later keys */
    smx_ask_fn ask;
    void *ask_ud;
};

int smx_secret_set(smx_secret *sec, const char *s, size_t len)
{
    smx_secret_wipe(sec);
    sec->s = malloc(len + 1);
    if (!sec->s)
        return SMX_ENOMEM;
    memcpy(sec->s, s, len);
    sec->s[len] = '\0';
    sec->len = len;
    return 0;
}

void smx_secret_wipe(smx_secret *sec)
{
    smx_wipe_free(sec->s, sec->len);
    sec->s = NULL;
    sec->len = 0;
}

smx_keyring *smx_keyring_new(void)
{
    return calloc(1, sizeof(smx_keyring));
}

void smx_keyring_free(smx_keyring *kr)
{
    if (!kr)
        return;
    keyring_entry *e = kr->entries;
    while (e) {
        keyring_entry *next = e->next;
        ssh_key_free(e->key);
        free(e->path);
        free(e);
        e = next;
    }
    ssh_key_free(kr->content_key);
    smx_secret_wipe(&kr->fixed);
    smx_secret_wipe(&kr->fixed2);
    smx_secret_wipe(&kr->asked);
    free(kr);
}

void smx_keyring_set_passphrase(smx_keyring *kr, const char *pass)
{
    smx_secret_set(&kr->fixed, pass, strlen(pass));
}

void smx_keyring_add_passphrase(smx_keyring *kr, const char *pass)
{
    smx_secret_set(&kr->fixed2, pass, strlen(pass));
}

/* Zeroes the stack below the caller's frame. OpenSSL's PEM password callback wrapper copies the
 * passphrase into stack buffers it never wipes, so after libssh has decrypted a PEM key the
 * passphrase lingers in dead frames (two copies, found by scanning /proc/PID/mem). The key loads
 * ran in frames below our caller's, well within this much stack. */
__attribute__((noinline)) static void keyring_burn_stack(void)
{
    unsigned char dead_frames[64 * 1024];
    explicit_bzero(dead_frames, sizeof dead_frames);
    __asm__ __volatile__("" : : "r"(dead_frames) : "memory");
}

void smx_keyring_forget_passphrases(smx_keyring *kr)
{
    smx_secret_wipe(&kr->fixed);
    smx_secret_wipe(&kr->fixed2);
    smx_secret_wipe(&kr->asked);
    keyring_burn_stack();
}

void smx_keyring_set_ask(smx_keyring *kr, smx_ask_fn ask, void *ud)
{
    kr->ask = ask;
    kr->ask_ud = ud;
}

/* libssh asks for a passphrase through this only when the key is encrypted: it is how we learn
 * that without parsing the key format ourselves. */
static int keyring_detect_encrypted(const char *prompt, char *buf, size_t len, int echo,
                                    int verify, void *userdata)
{
    *(int *)userdata = 1;
    return -1;
}

/* Imports `content` (text of a key file) with passphrase `pass` (may be NULL). */
static int keyring_import(const char *content, const char *pass, ssh_key *out, int *encrypted)
{
    *encrypted = 0;
    int rc = ssh_pki_import_privkey_base64(content, pass, pass ? NULL : keyring_detect_encrypted,
                                           encrypted, out);
    return rc == SSH_OK ? 0 : -1;
}

static int keyring_try_passphrases(smx_keyring *kr, const char *label, const char *content,
                                   ssh_key *out, smx_err *err)
{
    int enc;
    if (kr->fixed.s || kr->fixed2.s) {
        if (kr->fixed.s && keyring_import(content, kr->fixed.s, out, &enc) == 0)
            return 0;
        if (kr->fixed2.s && keyring_import(content, kr->fixed2.s, out, &enc) == 0)
            return 0;
        return smx_seterr(err, SMX_EPASSPHRASE, "key %s: wrong passphrase (from --passphrase-env"
                          "%s)", label, kr->fixed2.s ? " / --proxy-passphrase-env" : "");
    }
    if (kr->asked.s && keyring_import(content, kr->asked.s, out, &enc) == 0)
        return 0;
    if (!kr->ask)
        return smx_seterr(err, SMX_EPASSPHRASE,
                          "key %s is encrypted: give its passphrase with --passphrase-env VAR",
                          label);
    int asked = 0;
    for (int tries = 0; tries < 3; tries++) {
        char prompt[512];
        snprintf(prompt, sizeof prompt, "Enter passphrase for key '%s': ", label);
        char *answer = kr->ask(prompt, kr->ask_ud);
        if (!answer)
            break;
        asked = 1;
        smx_secret_set(&kr->asked, answer, strlen(answer));
        smx_str_wipe_free(answer);
        if (keyring_import(content, kr->asked.s, out, &enc) == 0)
            return 0;
    }
    if (!asked)
        return smx_seterr(err, SMX_EPASSPHRASE, "key %s is encrypted and there is no terminal to "
                          "ask for its passphrase: give it with --passphrase-env VAR", label);
    return smx_seterr(err, SMX_EPASSPHRASE, "key %s: wrong passphrase", label);
}

/* Is this key text encrypted? libssh's OpenSSH-container code asks for a passphrase only when
 * the key is encrypted, so `asked` says it there; its PEM paths differ by backend (mbedTLS asks
 * always), so for PEM the format's own marker decides. */
static int keyring_is_encrypted(const char *content, int asked)
{
    if (strstr(content, "BEGIN OPENSSH PRIVATE KEY"))
        return asked;
    return strstr(content, "ENCRYPTED") != NULL;
}

static int keyring_load_text(smx_keyring *kr, const char *label, const char *content,
                             ssh_key *out, smx_err *err)
{
    int asked = 0;
    /* Always with a callback: without one, OpenSSL would prompt on the terminal itself. */
    if (keyring_import(content, NULL, out, &asked) == 0)
        return 0;
    if (!keyring_is_encrypted(content, asked)) {
        /* An unencrypted PEM key under mbedTLS: it wants a (any) passphrase up front. */
        if (ssh_pki_import_privkey_base64(content, "", NULL, NULL, out) == SSH_OK)
            return 0;
        return smx_seterr(err, SMX_EIO, "key %s: not a private key libssh can read", label);
    }
    return keyring_try_passphrases(kr, label, content, out, err);
}

/* Moves buf[0..len) into a buffer of cap bytes, wiping and freeing the old one. */
static char *secret_grow(char *buf, size_t len, size_t cap)
{
    char *nb = malloc(cap);
    if (nb && len)
        memcpy(nb, buf, len);
    smx_wipe_free(buf, len);
    return nb;
}

char *smx_secret_read_file(const char *path, size_t max, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    char *buf = NULL;
    size_t cap = 0, n = 0;
    int saved = 0;
    for (;;) {
        if (n + 1 >= cap) {
            size_t want = cap ? cap * 2 : 4096;
            if (cap > max + 1 || !(buf = secret_grow(buf, n, want))) {
                saved = cap > max + 1 ? EFBIG : ENOMEM;
                break;
            }
            cap = want;
        }
        ssize_t got = read(fd, buf + n, cap - n - 1);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0) {
            saved = got < 0 ? errno : 0;
            break;
        }
        n += (size_t)got;
        if (n > max) {
            saved = EFBIG;
            break;
        }
    }
    close(fd);
    if (saved) {
        smx_wipe_free(buf, n);
        errno = saved;
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

static char *keyring_read_file(const char *path, smx_err *err, int *code)
{
    size_t len;
    char *text = smx_secret_read_file(path, 1u << 20, &len); /* no key file is this big */
    if (!text) {
        *code = errno == ENOENT ? SMX_ENOENT : errno == ENOMEM ? SMX_ENOMEM : SMX_EIO;
        smx_seterr(err, *code, "key %s: %s", path,
                   errno == EFBIG ? "file too large" : strerror(errno));
    }
    return text;
}

static keyring_entry *keyring_find(const smx_keyring *kr, const char *path)
{
    for (keyring_entry *e = kr->entries; e; e = e->next)
        if (strcmp(e->path, path) == 0)
            return e;
    return NULL;
}

/* Loads a key once per path or label: `content` is the key text, or NULL to read `path`. The
 * outcome (key or error) is remembered and returned again on later calls. */
static int keyring_entry_load(smx_keyring *kr, const char *path, const char *content, smx_err *err)
{
    keyring_entry *e = keyring_find(kr, path);
    if (e) {
        if (e->status < 0 && err)
            memcpy(err->msg, e->errmsg, sizeof err->msg);
        return e->status;
    }
    e = calloc(1, sizeof *e);
    if (!e || !(e->path = strdup(path))) {
        free(e);
        return SMX_ENOMEM;
    }
    smx_err local = {{0}};
    int code = 0;
    char *text = content ? NULL : keyring_read_file(path, &local, &code);
    if (content)
        code = keyring_load_text(kr, path, content, &e->key, &local);
    else if (text)
        code = keyring_load_text(kr, path, text, &e->key, &local);
    smx_str_wipe_free(text);
    e->status = code;
    memcpy(e->errmsg, local.msg, sizeof e->errmsg);
    if (err)
        memcpy(err->msg, local.msg, sizeof err->msg);
    e->next = kr->entries;
    kr->entries = e;
    return code;
}

int smx_keyring_load_file(smx_keyring *kr, const char *path, smx_err *err)
{
    return keyring_entry_load(kr, path, NULL, err);
}

int smx_keyring_load_content(smx_keyring *kr, const char *label, const char *content,
                             smx_err *err)
{
    ssh_key_free(kr->content_key);
    kr->content_key = NULL;
    return keyring_load_text(kr, label, content, &kr->content_key, err);
}

int smx_keyring_add_content(smx_keyring *kr, const char *label, const char *content, smx_err *err)
{
    return keyring_entry_load(kr, label, content, err);
}

ssh_key smx_keyring_get(const smx_keyring *kr, const char *path)
{
    keyring_entry *e = keyring_find(kr, path);
    return e && e->status == 0 ? e->key : NULL;
}

ssh_key smx_keyring_content_key(const smx_keyring *kr)
{
    return kr->content_key;
}
