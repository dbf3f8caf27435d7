#include "auth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "container.h"
#include "ctx.h"
#include "session.h"

#define SSH_AGENT_RSA_SHA2_256 0x02
#define SSH_AGENT_RSA_SHA2_512 0x04

void smx_auth_init(smx_auth *a, const char *preferred, int pubkey, int kbdint, int password)
{
    memset(a, 0, sizeof *a);
    const char *order = preferred ? preferred : "publickey,keyboard-interactive,password";
    char buf[256];
    snprintf(buf, sizeof buf, "%s", order);
    char *save = NULL;
    for (char *m = strtok_r(buf, ",", &save); m && a->nmethods < 4; m = strtok_r(NULL, ",", &save)) {
        if (strcmp(m, "publickey") == 0 && pubkey)
            a->methods[a->nmethods++] = SMX_AM_PUBKEY;
        else if (strcmp(m, "keyboard-interactive") == 0 && kbdint)
            a->methods[a->nmethods++] = SMX_AM_KBDINT;
        else if (strcmp(m, "password") == 0 && password)
            a->methods[a->nmethods++] = SMX_AM_PASSWORD;
    }
}

void smx_auth_withhold_secrets(smx_auth *a)
{
    int n = 0;
    for (int i = 0; i < a->nmethods; i++) {
        if (a->methods[i] == SMX_AM_PASSWORD || a->methods[i] == SMX_AM_KBDINT)
            a->withheld = 1;
        else
            a->methods[n++] = a->methods[i];
    }
    a->nmethods = n;
}

/* "publickey,keyboard-interactive,password" (what the server offers), or "none". */
static void auth_offered(int allowed, char *buf, size_t size)
{
    static const struct { int bit; const char *name; } names[] = {
        {SSH_AUTH_METHOD_PUBLICKEY, "publickey"},
        {SSH_AUTH_METHOD_INTERACTIVE, "keyboard-interactive"},
        {SSH_AUTH_METHOD_PASSWORD, "password"},
    };
    size_t len = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if ((allowed & names[i].bit) && len < size)
            len += (size_t)snprintf(buf + len, size - len, "%s%s", len ? "," : "", names[i].name);
    if (!buf[0])
        snprintf(buf, size, "none");
}

static void auth_note_tried(smx_auth *a, const char *what)
{
    if (strstr(a->tried, what))
        return;
    size_t len = strlen(a->tried);
    snprintf(a->tried + len, sizeof a->tried - len, "%s%s", len ? "," : "", what);
}

static int auth_failed(smx_session *s, const char *why)
{
    smx_auth *a = &s->auth;
    a->state = SMX_AUTH_FAILED;
    char msg[SMX_MSG_MAX], offered[64];
    if (why) {
        snprintf(msg, sizeof msg, "%s", why);
    } else {
        auth_offered(a->allowed, offered, sizeof offered);
        snprintf(msg, sizeof msg, "%s@%s: permission denied (tried: %s; server offers: %s)",
                 s->hc->user ? s->hc->user : "?", s->hc->hostname,
                 a->tried[0] ? a->tried : "nothing usable", offered);
    }
    if (a->withheld && (a->allowed & (SSH_AUTH_METHOD_PASSWORD | SSH_AUTH_METHOD_INTERACTIVE))) {
        size_t len = strlen(msg);
        snprintf(msg + len, sizeof msg - len, "; password and keyboard-interactive authentication "
                 "are disabled because the host key has changed (accepted under "
                 "StrictHostKeyChecking=no), to avoid man-in-the-middle attacks");
    }
    if (a->agent && smx_agent_error(a->agent)[0]) {
        size_t len = strlen(msg);
        snprintf(msg + len, sizeof msg - len, "; %s", smx_agent_error(a->agent));
    }
    if (s->result->err_stage == SMX_STAGE_NONE)
        smx_result_set_error(s->result, SMX_STAGE_AUTH, SMX_EAUTH, msg);
    return SMX_EAUTH;
}

static int auth_succeeded(smx_auth *a, const char *method)
{
    a->state = SMX_AUTH_OK;
    snprintf(a->used, sizeof a->used, "%s", method);
    return 1;
}

/* Default identity files come after the agent, as in ssh; configured ones before it. */
static int auth_is_default_identity(const char *path)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    static const char *const defaults[] = {"id_rsa", "id_ecdsa", "id_ecdsa_sk", "id_ed25519",
                                           "id_ed25519_sk", "id_xmss", "id_dsa"};
    for (size_t i = 0; i < sizeof defaults / sizeof *defaults; i++)
        if (strcmp(base, defaults[i]) == 0 && strstr(path, "/.ssh/"))
            return 1;
    return 0;
}

/* Candidate n of the publickey sequence: configured key files, --key-env content, the agent
 * (marked by *is_agent), then default key files. Returns NULL when exhausted. */
static ssh_key auth_key_candidate(smx_session *s, int n, int *is_agent, int *end)
{
    const smx_hostcfg *hc = s->hc;
    smx_keyring *kr = s->ctx->keyring;
    int i = 0;
    *is_agent = 0;
    *end = 0;
    for (size_t k = 0; k < hc->identityfile.n; k++) {
        if (auth_is_default_identity(hc->identityfile.v[k]))
            continue;
        ssh_key key = smx_keyring_get(kr, hc->identityfile.v[k]);
        if (key && i++ == n)
            return key;
    }
    ssh_key content = smx_keyring_content_key(kr);
    if (content && i++ == n)
        return content;
    /* The agent: from $SSH_AUTH_SOCK (unless --no-agent) or an explicit IdentityAgent. */
    int agent = hc->identityagent && strcmp(hc->identityagent, "none") == 0 ? 0
              : smx_hostcfg_agent_socket(hc) ? 1 : s->ctx->use_agent;
    if (agent && !hc->identitiesonly && i++ == n) {
        *is_agent = 1;
        return NULL;
    }
    for (size_t k = 0; k < hc->identityfile.n; k++) {
        if (!auth_is_default_identity(hc->identityfile.v[k]))
            continue;
        ssh_key key = smx_keyring_get(kr, hc->identityfile.v[k]);
        if (key && i++ == n)
            return key;
    }
    *end = 1;
    return NULL;
}

static const char *auth_password(smx_session *s)
{
    if (s->password)
        return s->password;
    return s->ctx->password.s;
}

/* Handles an answer from a pending ssh_userauth_* call. */
static int auth_handle(smx_session *s, int rc, const char *method)
{
    smx_auth *a = &s->auth;
    switch (rc) {
    case SSH_AUTH_AGAIN:
        return 0;
    case SSH_AUTH_SUCCESS:
        return auth_succeeded(a, method);
    case SSH_AUTH_PARTIAL:
        /* One factor done (e.g. publickey then keyboard-interactive): the server's new list of
         * methods says what is left. */
        a->allowed = ssh_userauth_list(s->ssh, NULL);
        a->method_pos = 0;
        a->state = SMX_AUTH_NEXT;
        return smx_auth_step(s);
    case SSH_AUTH_DENIED:
        a->state = SMX_AUTH_NEXT;
        return smx_auth_step(s);
    default: {
        char why[SMX_MSG_MAX];
        if (!ssh_is_connected(s->ssh))   /* the server went away mid-request */
            snprintf(why, sizeof why, "%s closed the connection during authentication (%s: %s)",
                     s->transport ? s->transport->peer : s->hc->hostname, method,
                     ssh_get_error(s->ssh));
        else
            snprintf(why, sizeof why, "%s: %s", method, ssh_get_error(s->ssh));
        return auth_failed(s, why);
    }
    }
}

/* ---- ssh-agent: core/trust/agent.c talks to it without blocking; these states wait for it ------- */

static int auth_agent_try(smx_session *s);

static void auth_agent_answered(smx_agent_waiter *w, int status, const unsigned char *sig,
                                size_t len)
{
    smx_auth *a = SMX_CONTAINER_OF(w, smx_auth, agent_w);
    smx_session *s = SMX_CONTAINER_OF(a, smx_session, auth);
    if (a->state == SMX_AUTH_AGENT_SIGNING) {
        if (status == 0 && len && (a->agent_sig = malloc(len))) {
            memcpy(a->agent_sig, sig, len);
            a->agent_siglen = len;
            a->state = SMX_AUTH_AGENT_SEND;
        } else {
            a->agent_idx++;   /* refused (or a confirmation said no): its next identity */
            a->state = SMX_AUTH_AGENT_TRY;
        }
    }
    smx_session_kick(s);   /* AGENT_LIST: the list is in (or the agent failed) */
}

/* The agent for this host: IdentityAgent, else $SSH_AUTH_SOCK. -1 if there is none. */
static int auth_agent_start(smx_session *s)
{
    const char *path = smx_hostcfg_agent_socket(s->hc);
    if (!path)
        path = getenv("SSH_AUTH_SOCK");
    if (!path || !*path || !(s->auth.agent = smx_agent_get(s->ctx->agents, path)))
        return -1;
    s->auth.agent_idx = 0;
    return 0;
}

/* The agent is done with (exhausted, failed): the next key candidate. */
static int auth_agent_done(smx_session *s)
{
    s->auth.state = SMX_AUTH_NEXT;
    return smx_auth_step(s);
}

static int auth_agent_list(smx_session *s)
{
    smx_auth *a = &s->auth;
    int n = smx_agent_identities(a->agent, &a->agent_w, auth_agent_answered);
    if (n == SMX_AGENT_PENDING)
        return 0;
    if (n <= 0)
        return auth_agent_done(s);
    a->state = SMX_AUTH_AGENT_TRY;
    return auth_agent_try(s);
}

/* Asks the server whether it takes identity agent_idx, before asking the agent to sign. */
static int auth_agent_try(smx_session *s)
{
    smx_auth *a = &s->auth;
    for (;;) {
        ssh_key key = smx_agent_key(a->agent, a->agent_idx);
        if (!key)
            return auth_agent_done(s);
        int rc = ssh_userauth_try_publickey(s->ssh, NULL, key);
        if (rc == SSH_AUTH_AGAIN)
            return 0;
        if (rc == SSH_AUTH_SUCCESS)
            break;
        if (rc == SSH_AUTH_ERROR)
            return auth_handle(s, rc, "publickey");
        a->agent_idx++;   /* not this one */
    }
    a->state = SMX_AUTH_AGENT_TOSIGN;
    return smx_auth_step(s);
}

static int auth_agent_tosign(smx_session *s)
{
    smx_auth *a = &s->auth;
    ssh_key key = smx_agent_key(a->agent, a->agent_idx);
    ssh_buffer tosign = NULL;
    const char *algo = NULL;
    int rc = ssh_userauth_publickey_tosign(s->ssh, NULL, key, &tosign, &algo);
    if (rc == SSH_AUTH_AGAIN)
        return 0;
    if (rc == SSH_AUTH_ERROR)
        return auth_handle(s, rc, "publickey");
    if (rc == SSH_AUTH_SUCCESS) {
        unsigned flags = !algo ? 0 : strcmp(algo, "rsa-sha2-256") == 0 ? SSH_AGENT_RSA_SHA2_256
                       : strcmp(algo, "rsa-sha2-512") == 0 ? SSH_AGENT_RSA_SHA2_512 : 0;
        rc = smx_agent_sign(a->agent, &a->agent_w, auth_agent_answered, key,
                            ssh_buffer_get(tosign), ssh_buffer_get_len(tosign), flags);
        ssh_buffer_free(tosign);
        if (rc == 0) {
            a->state = SMX_AUTH_AGENT_SIGNING;
            return 0;
        }
    }
    a->agent_idx++;   /* this key cannot be used after all */
    a->state = SMX_AUTH_AGENT_TRY;
    return auth_agent_try(s);
}

static int auth_agent_send(smx_session *s)
{
    smx_auth *a = &s->auth;
    ssh_key key = smx_agent_key(a->agent, a->agent_idx);
    int rc = ssh_userauth_publickey_signed(s->ssh, NULL, key, a->agent_sig, a->agent_siglen);
    if (rc == SSH_AUTH_AGAIN)
        return 0;
    free(a->agent_sig);
    a->agent_sig = NULL;
    if (rc == SSH_AUTH_DENIED) {
        a->agent_idx++;
        a->state = SMX_AUTH_AGENT_TRY;
        return auth_agent_try(s);
    }
    return auth_handle(s, rc, "publickey");
}

void smx_auth_cancel(smx_session *s)
{
    smx_auth *a = &s->auth;
    smx_agent_cancel(&a->agent_w);
    free(a->agent_sig);
    a->agent_sig = NULL;
}

static int auth_try_pubkey(smx_session *s)
{
    smx_auth *a = &s->auth;
    for (;;) {
        int is_agent, end;
        ssh_key key = auth_key_candidate(s, a->key_pos++, &is_agent, &end);
        if (end)
            return -1;   /* no more keys: next method */
        auth_note_tried(a, "publickey");
        if (is_agent) {
            if (auth_agent_start(s) < 0)
                continue;   /* no agent to ask: next key */
            a->state = SMX_AUTH_AGENT_LIST;
            return auth_agent_list(s);
        }
        a->state = SMX_AUTH_PUBKEY;
        int rc = ssh_userauth_publickey(s->ssh, NULL, key);
        s->auth.pending_key = key;
        return auth_handle(s, rc, "publickey");
    }
}

static int auth_start_method(smx_session *s, int method)
{
    smx_auth *a = &s->auth;
    switch (method) {
    case SMX_AM_PUBKEY:
        if (!(a->allowed & SSH_AUTH_METHOD_PUBLICKEY))
            return -1;
        return auth_try_pubkey(s);
    case SMX_AM_PASSWORD: {
        const char *pw = auth_password(s);
        if (!pw || a->password_tried || !(a->allowed & SSH_AUTH_METHOD_PASSWORD))
            return -1;
        a->password_tried = 1;
        auth_note_tried(a, "password");
        a->state = SMX_AUTH_PASSWORD;
        return auth_handle(s, ssh_userauth_password(s->ssh, NULL, pw), "password");
    }
    case SMX_AM_KBDINT:
        if (!(a->allowed & SSH_AUTH_METHOD_INTERACTIVE) || a->kbd_rounds > 0)
            return -1;
        auth_note_tried(a, "keyboard-interactive");
        a->state = SMX_AUTH_KBDINT;
        return smx_kbdint_step(s, ssh_userauth_kbdint(s->ssh, NULL, NULL));
    }
    return -1;
}

/* Moves to the next method (or next key) until one is pending or all are exhausted. */
static int auth_next(smx_session *s)
{
    smx_auth *a = &s->auth;
    while (a->method_pos < a->nmethods) {
        int rc = auth_start_method(s, a->methods[a->method_pos]);
        if (rc != -1)
            return rc;
        a->method_pos++;
        a->key_pos = 0;
    }
    return auth_failed(s, NULL);
}

int smx_auth_step(smx_session *s)
{
    smx_auth *a = &s->auth;
    switch (a->state) {
    case SMX_AUTH_START:
        a->state = SMX_AUTH_NONE;
        /* fall through */
    case SMX_AUTH_NONE: {
        int rc = ssh_userauth_none(s->ssh, NULL);
        if (rc == SSH_AUTH_AGAIN)
            return 0;
        if (rc == SSH_AUTH_SUCCESS)
            return auth_succeeded(a, "none");
        if (rc == SSH_AUTH_ERROR)
            return auth_failed(s, ssh_get_error(s->ssh));
        a->allowed = ssh_userauth_list(s->ssh, NULL);
        a->state = SMX_AUTH_NEXT;
        return auth_next(s);
    }
    case SMX_AUTH_NEXT:
        return auth_next(s);
    case SMX_AUTH_PUBKEY:
        return auth_handle(s, ssh_userauth_publickey(s->ssh, NULL, a->pending_key), "publickey");
    case SMX_AUTH_AGENT_LIST:
        return auth_agent_list(s);
    case SMX_AUTH_AGENT_TRY:
        return auth_agent_try(s);
    case SMX_AUTH_AGENT_TOSIGN:
        return auth_agent_tosign(s);
    case SMX_AUTH_AGENT_SIGNING:
        return 0;
    case SMX_AUTH_AGENT_SEND:
        return auth_agent_send(s);
    case SMX_AUTH_PASSWORD:
        return auth_handle(s, ssh_userauth_password(s->ssh, NULL, auth_password(s)), "password");
    case SMX_AUTH_KBDINT:
        return smx_kbdint_step(s, ssh_userauth_kbdint(s->ssh, NULL, NULL));
    case SMX_AUTH_KBDINT_WAIT:
        return 0;
    case SMX_AUTH_OK:
        return 1;
    case SMX_AUTH_FAILED:
        return SMX_EAUTH;
    }
    return SMX_EAUTH;
}

int smx_auth_method_done(smx_session *s, int rc, const char *method)
{
    return auth_handle(s, rc, method);
}
