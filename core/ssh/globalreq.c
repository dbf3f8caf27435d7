#include "globalreq.h"

#include <libssh/libssh.h>
#include <stdlib.h>
#include <string.h>

#include "session.h"

/* libssh's own (channels.c): not in its public headers, but exported by the static library
 * sshmux links (scripts/build-libssh.sh pins 0.11.5). Non-blocking: while a request is
 * outstanding a call sends nothing and collects its answer (SSH_AGAIN while there is none). */
int ssh_global_request(ssh_session session, const char *request, ssh_buffer buffer, int reply);

struct smx_global_req {
    smx_list node;
    char *name;
    ssh_buffer payload;      /* NULL for none */
    int want_reply;
    int sent;                /* sent, its answer not collected yet (libssh holds it) */
    smx_global_cb cb;        /* NULL once canceled */
    void *ud;
};

static void globalreq_free(smx_global_req *r)
{
    smx_list_remove(&r->node);
    if (r->payload)
        ssh_buffer_free(r->payload);
    free(r->name);
    free(r);
}

smx_global_req *smx_session_global_request(smx_session *s, const char *name, const void *data,
                                           size_t len, int want_reply, smx_global_cb cb, void *ud)
{
    smx_global_req *r = calloc(1, sizeof *r);
    if (!r || !(r->name = strdup(name))) {
        free(r);
        return NULL;
    }
    smx_list_init(&r->node);
    if (len && (!(r->payload = ssh_buffer_new()) ||
                ssh_buffer_add_data(r->payload, data, (uint32_t)len) < 0)) {
        globalreq_free(r);
        return NULL;
    }
    r->want_reply = want_reply;
    r->cb = cb;
    r->ud = ud;
    smx_list_append(&s->globalreqs, &r->node);
    if (s->state == SMX_SESSION_READY)
        smx_session_defer_step(s);
    return r;
}

void smx_global_req_cancel(smx_global_req *r)
{
    if (r)
        r->cb = NULL;
}

void smx_globalreqs_drive(smx_session *s)
{
    while (!smx_list_empty(&s->globalreqs) && s->state == SMX_SESSION_READY) {
        smx_global_req *r = smx_list_entry(s->globalreqs.next, smx_global_req, node);
        int rc = ssh_global_request(s->ssh, r->name, r->payload, r->want_reply);
        if (rc == SSH_AGAIN) {
            r->sent = 1;
            return;
        }
        smx_list_remove(&r->node);
        /* The answer's data lives in libssh until the next request is sent (patch 0006). */
        size_t len = 0;
        const void *data = rc == SSH_OK ? ssh_get_global_request_reply(s->ssh, &len) : NULL;
        if (r->cb)
            r->cb(r->ud, rc == SSH_OK ? 0 : ssh_is_connected(s->ssh) ? SMX_ECHANNEL : SMX_ECLOSED,
                  data, len);
        globalreq_free(r);
    }
}

void smx_globalreqs_send_unanswered(smx_session *s)
{
    if (!smx_list_empty(&s->globalreqs) &&
        smx_list_entry(s->globalreqs.next, smx_global_req, node)->sent)
        return;   /* libssh sends nothing while an answer is outstanding */
    for (smx_list *n = s->globalreqs.next, *next; n != &s->globalreqs; n = next) {
        next = n->next;
        smx_global_req *r = smx_list_entry(n, smx_global_req, node);
        if (r->want_reply)
            continue;
        ssh_global_request(s->ssh, r->name, r->payload, 0);
        if (r->cb)
            r->cb(r->ud, 0, NULL, 0);
        globalreq_free(r);
    }
}

void smx_globalreqs_fail_all(smx_session *s)
{
    while (!smx_list_empty(&s->globalreqs)) {
        smx_global_req *r = smx_list_entry(s->globalreqs.next, smx_global_req, node);
        smx_list_remove(&r->node);
        if (r->cb)
            r->cb(r->ud, SMX_ECLOSED, NULL, 0);
        globalreq_free(r);
    }
}

int smx_globalreqs_pending(const smx_session *s)
{
    return !smx_list_empty(&s->globalreqs);
}
