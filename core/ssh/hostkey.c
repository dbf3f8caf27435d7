/* Host key verification against known_hosts files read once per run (trust/knownhosts.c) under
 * StrictHostKeyChecking: yes (and ssh's default "ask", as no one is there to ask) rejects unknown
 * keys; accept-new records them; no accepts them with a warning. A changed key is rejected unless
 * "no" (and then the server gets no password or keyboard-interactive answers); a revoked key
 * always. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctx.h"
#include "hostkey.h"
#include "knownhosts.h"
#include "session.h"

enum hostkey_policy { POLICY_YES, POLICY_ACCEPT_NEW, POLICY_NO };

static enum hostkey_policy hostkey_policy(const char *v)
{
    if (!v)
        return POLICY_YES;
    if (strcmp(v, "no") == 0 || strcmp(v, "off") == 0)
        return POLICY_NO;
    if (strcmp(v, "accept-new") == 0)
        return POLICY_ACCEPT_NEW;
    return POLICY_YES;
}

typedef struct kh_entry {
    struct kh_entry *next;
    char *files_key;         /* the known_hosts file list joined with \n */
    struct smx_knownhosts *kh;
} kh_entry;

struct smx_hostkeys {
    kh_entry *files;
    unsigned unverified;     /* StrictHostKeyChecking=no acceptances, for the summary */
    unsigned added;
};

smx_hostkeys *smx_hostkeys_new(void)
{
    return calloc(1, sizeof(smx_hostkeys));
}

void smx_hostkeys_free(smx_hostkeys *hk)
{
    if (!hk)
        return;
    kh_entry *k = hk->files;
    while (k) {
        kh_entry *next = k->next;
        smx_knownhosts_free(k->kh);
        free(k->files_key);
        free(k);
        k = next;
    }
    free(hk);
}

unsigned smx_hostkeys_unverified(const smx_hostkeys *hk)
{
    return hk->unverified;
}

unsigned smx_hostkeys_added(const smx_hostkeys *hk)
{
    return hk->added;
}

/* The user's files then the global ones, read once per distinct list. New keys go to the first
 * user file; the global files are only read (as ssh). */
static struct smx_knownhosts *hostkey_files(smx_hostkeys *hk, const smx_hostcfg *hc, smx_err *err)
{
    const smx_strvec *lists[2] = {&hc->userknownhostsfile, &hc->globalknownhostsfile};
    smx_strvec files = {0};
    size_t len = 1;
    for (int l = 0; l < 2; l++)
        for (size_t i = 0; i < lists[l]->n; i++) {
            smx_strvec_push(&files, lists[l]->v[i]);
            len += strlen(lists[l]->v[i]) + 2;
        }
    char *key = calloc(1, len);
    for (size_t i = 0; key && i < files.n; i++) {
        strcat(key, files.v[i]);
        strcat(key, i + 1 == hc->userknownhostsfile.n ? "|\n" : "\n");
    }
    kh_entry *k = NULL;
    for (k = key ? hk->files : NULL; k; k = k->next)
        if (strcmp(k->files_key, key) == 0)
            break;
    if (!k && key && (k = calloc(1, sizeof *k)) != NULL) {
        k->files_key = key;
        key = NULL;
        if (smx_knownhosts_load(&k->kh, (const char *const *)files.v, files.n, err) < 0) {
            free(k->files_key);
            free(k);
            k = NULL;
        } else {
            k->next = hk->files;
            hk->files = k;
        }
    }
    free(key);
    smx_strvec_free(&files);
    return k ? k->kh : NULL;
}

static int hostkey_fail(smx_session *s, const char *msg)
{
    smx_result_set_error(s->result, SMX_STAGE_HOSTKEY, SMX_EHOSTKEY, msg);
    return SMX_EHOSTKEY;
}

static void hostkey_warn(smx_session *s, const char *msg)
{
    const smx_ctx_opts *o = &s->ctx->opts;
    if (o->warn)
        o->warn(o->ud, s->result->host, msg);
}

static int hostkey_decide(smx_hostkeys *hk, smx_session *s, struct smx_knownhosts *kh, int status,
                          const char *name, int port, ssh_key key)
{
    enum hostkey_policy policy = hostkey_policy(s->hc->stricthostkeychecking);
    const char *shown = s->result->hostkey;
    /* Sized so that every message below fits a result's SMX_MSG_MAX with a host name of up to
     * 150 bytes (DNS names stop at 253; longer ones are cut, not the advice). */
    char label[160], msg[SMX_MSG_MAX];
    if (port == 22)
        snprintf(label, sizeof label, "%s", name);
    else
        snprintf(label, sizeof label, "[%s]:%d", name, port);
    switch (status) {
    case SMX_HOSTKEY_OK:
        return 0;
    case SMX_HOSTKEY_REVOKED:
        snprintf(msg, sizeof msg, "host key for %s is REVOKED in known_hosts (%s)", label, shown);
        return hostkey_fail(s, msg);
    case SMX_HOSTKEY_UNKNOWN:
        if (policy == POLICY_NO) {
            hk->unverified++;
            return 0;
        }
        if (policy == POLICY_ACCEPT_NEW) {
            smx_err err = {{0}};
            if (s->hc->userknownhostsfile.n == 0)
                hostkey_warn(s, "new host key accepted but not recorded: "
                             "UserKnownHostsFile is none");
            else if (smx_knownhosts_add(kh, name, port, key, &err) < 0)
                hostkey_warn(s, err.msg);
            else
                hk->added++;
            return 0;
        }
        snprintf(msg, sizeof msg,
                 "host key for %s is not known (%s); add it to known_hosts or use "
                 "-o StrictHostKeyChecking=accept-new", label, shown);
        return hostkey_fail(s, msg);
    default:   /* CHANGED, or only keys of other types known: treated alike, as a possible MITM */
        if (policy == POLICY_NO) {
            /* As ssh: the connection goes on, but the server may be a man in the middle, so it
             * gets no password and no keyboard-interactive answers (core/ssh/auth.c). */
            snprintf(msg, sizeof msg, "WARNING: host key for %s has CHANGED (now %s); accepted "
                     "because StrictHostKeyChecking=no, but password and keyboard-interactive "
                     "authentication are disabled to avoid man-in-the-middle attacks",
                     label, shown);
            hostkey_warn(s, msg);
            hk->unverified++;
            s->hostkey_changed = 1;
            return 0;
        }
        snprintf(msg, sizeof msg,
                 "host key for %s has CHANGED (now %s): possible man-in-the-middle; if the "
                 "change is expected, run ssh-keygen -R '%s'", label, shown, label);
        return hostkey_fail(s, msg);
    }
}

int smx_hostkey_verify(smx_session *s)
{
    smx_hostkeys *hk = s->ctx->hostkeys;
    ssh_key key = NULL;
    s->hostkey_changed = 0;
    if (ssh_get_server_publickey(s->ssh, &key) != SSH_OK || !key)
        return hostkey_fail(s, "server sent no host key");
    char *fp = smx_key_fingerprint(key);
    free(s->result->hostkey);
    s->result->hostkey = NULL;
    if (fp) {
        char buf[200];
        snprintf(buf, sizeof buf, "%s %s", ssh_key_type_to_char(ssh_key_type(key)), fp);
        s->result->hostkey = strdup(buf);
        free(fp);
    }
    smx_err err = {{0}};
    struct smx_knownhosts *kh = hostkey_files(hk, s->hc, &err);
    if (!kh) {
        ssh_key_free(key);
        return hostkey_fail(s, err.msg[0] ? err.msg : "cannot read known_hosts");
    }
    /* With HostKeyAlias, OpenSSH looks the alias up without a port. */
    const char *name = s->hc->hostkeyalias ? s->hc->hostkeyalias : s->hc->hostname;
    int port = s->hc->hostkeyalias ? 22 : s->hc->port;
    int status = smx_knownhosts_check(kh, name, port, key);
    int rc = status < 0 ? hostkey_fail(s, "known_hosts lookup failed")
                        : hostkey_decide(hk, s, kh, status, name, port, key);
    ssh_key_free(key);
    return rc;
}
