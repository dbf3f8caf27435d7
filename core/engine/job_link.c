/* The link job: one host's connection on which exec items (each an smx_exec_run, as the exec
 * job's) and copy items (each an smx_copy_run, as the copy job's) run, each with its own result
 * and callbacks. What a run of requests
 * needs when many of them go to the same host: one handshake and one authentication, not one per
 * request.
 *
 * Items start in the order added, one at a time unless smx_link_set_parallel allows more (each
 * on a channel of its own).
 *
 * Lifetime: the job is over (its fanout slot given back) once its connection is closed and no
 * item is running or waiting; the struct is freed once that is so AND the caller released it
 * (smx_link_release), never from inside a callback of one of its items. Items added after the
 * connection is gone get its error at once. The connection is closed only when no item runs: a
 * copy item's SFTP channel ends before it does; when the connection is lost under a running item
 * the item ends with the loss (its channels failed first), then the waiting ones get the error. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine_internal.h"

typedef struct link_item {
    smx_list node;                  /* the link's waiting list, then its running one */
    smx_link *link;
    smx_result *result;             /* handed to cb->on_done */
    const smx_exec_callbacks *cb;
    smx_exec_run run;               /* an exec item's */
    smx_copy_run *copy;             /* a copy item's (then `run` is unused) */
    uint64_t t0;                    /* when it started on the connection */
} link_item;

struct smx_link {
    smx_job base;
    smx_hostcfg *hc;
    char *password;                 /* wiped on free */
    char *target;
    smx_result *result;             /* the connection's: phases, banner, its error */
    smx_conn *conn;                 /* NULL before the start and once closed */
    smx_list items;                 /* waiting, in order */
    smx_list running;               /* started on the connection */
    int nrunning, parallel;
    int ready, closed, job_done, released, canceled;
    int depth;                      /* inside item callbacks: not to be freed there */
    char cancel_why[128];
};

static void link_next(smx_link *l);

static void link_free(smx_link *l)
{
    smx_result_destroy(l->result);
    smx_str_wipe_free(l->password);
    free(l->target);
    smx_hostcfg_free(l->hc);
    free(l->hc);
    free(l);
}

/* The job is over once the connection is closed and nothing waits; the struct goes once the
 * caller released it too. */
static void link_maybe_done(smx_link *l)
{
    if (l->depth > 0 || !l->closed || l->nrunning || !smx_list_empty(&l->items))
        return;
    if (!l->job_done) {
        l->job_done = 1;
        smx_engine_job_done(l->base.engine, &l->base);
    }
    if (l->released)
        link_free(l);
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

/* What the item shares with the connection goes into its result: the setup phases, attempts,
 * what the server said, and the connection's error when the item has none of its own. Its total
 * is the setup plus its own time on the connection. */
static void link_fill_result(const smx_link *l, link_item *it)
{
    smx_result *r = it->result;
    const smx_result *c = l->result;
    r->attempts = c->attempts;
    r->t.resolve = c->t.resolve;
    r->t.connect = c->t.connect;
    r->t.handshake = c->t.handshake;
    r->t.auth = c->t.auth;
    r->t.total = c->t.resolve + c->t.connect + c->t.handshake + c->t.auth +
                 (it->t0 ? (double)(uv_hrtime() - it->t0) / 1e6 : 0);
    char **dst[] = {&r->server_banner, &r->kex, &r->cipher, &r->hostkey, &r->auth_method};
    const char *src[] = {c->server_banner, c->kex, c->cipher, c->hostkey, c->auth_method};
    for (size_t i = 0; i < sizeof dst / sizeof *dst; i++)
        if (!*dst[i])
            *dst[i] = dup_or_null(src[i]);
    if (r->err_stage == SMX_STAGE_NONE && c->err_stage != SMX_STAGE_NONE) {
        smx_result_set_error(r, c->err_stage, c->err_code, c->err_msg);
        r->err_hop = c->err_hop;
    }
    r->ok = r->err_stage == SMX_STAGE_NONE && r->exit_code == 0;
    if (it->copy)
        smx_copy_run_settle(it->copy);   /* a copy's own ok and time */
}

static void link_item_free(link_item *it)
{
    if (it->copy)
        smx_copy_run_free(it->copy);
    else
        smx_exec_run_free(&it->run);
    free(it);
}

/* Hands the item's result to its caller and frees the item. */
static void link_item_finish(smx_link *l, link_item *it)
{
    link_fill_result(l, it);
    smx_result *r = it->result;
    const smx_exec_callbacks *cb = it->cb;
    link_item_free(it);
    l->depth++;
    cb->on_done(cb->ud, r);
    l->depth--;
}

/* Every waiting item ends with `msg` (or the connection's own error). */
static void link_fail_waiting(smx_link *l, enum smx_stage stage, int code, const char *msg)
{
    while (!smx_list_empty(&l->items)) {
        link_item *it = smx_list_entry(l->items.next, link_item, node);
        smx_list_remove(&it->node);
        if (l->result->err_stage == SMX_STAGE_NONE || l->canceled)
            smx_result_set_error(it->result, stage, code, msg);
        link_item_finish(l, it);
    }
}

static void link_item_over(link_item *it)
{
    smx_link *l = it->link;
    smx_list_remove(&it->node);
    l->nrunning--;
    link_item_finish(l, it);
    link_next(l);
    link_maybe_done(l);
}

static void link_run_finished(smx_exec_run *run)
{
    link_item_over(run->ud);
}

static void link_copy_finished(void *ud)
{
    link_item_over(ud);
}

static int link_gone(const smx_link *l)
{
    return l->closed || (l->conn && l->conn->ended);
}

/* Starts waiting items while the connection is ready and has room; fails the waiting ones when
 * it is gone; closes it when released (or canceled) and idle. */
static void link_next(smx_link *l)
{
    while (l->nrunning < l->parallel && l->ready && !link_gone(l) && !l->canceled &&
           !smx_list_empty(&l->items)) {
        link_item *it = smx_list_entry(l->items.next, link_item, node);
        smx_list_remove(&it->node);
        smx_list_append(&l->running, &it->node);
        l->nrunning++;
        it->t0 = uv_hrtime();
        int rc = it->copy ? smx_copy_run_start(it->copy, l->conn)
                          : smx_exec_run_start(&it->run, l->conn);
        if (rc == 0)
            continue;   /* it is the run's now: it may even be over already */
        smx_list_remove(&it->node);
        l->nrunning--;
        smx_result_set_error(it->result, it->copy ? SMX_STAGE_SFTP : SMX_STAGE_EXEC, SMX_ENOMEM,
                             "out of memory");
        link_item_finish(l, it);
    }
    if (l->nrunning)
        return;
    int gone = link_gone(l);
    if (gone || l->canceled)
        link_fail_waiting(l, l->canceled ? SMX_STAGE_EXEC : SMX_STAGE_CONNECT,
                          l->canceled ? SMX_ECANCELED : SMX_ECLOSED,
                          l->canceled ? l->cancel_why : "connection closed");
    if ((l->released || l->canceled) && smx_list_empty(&l->items) && l->conn && !l->conn->ended)
        smx_conn_close(l->conn);
}

static void link_on_ready(smx_conn *c, void *ud)
{
    smx_link *l = ud;
    c->loss_context = " while running";
    l->ready = 1;
    link_next(l);
}

/* Tells the running copy items that the connection ended (closed: is gone). An item may finish
 * from here: the next one is taken before. */
static void link_tell_copies(smx_link *l, int closed)
{
    l->depth++;
    for (smx_list *n = l->running.next, *next; n != &l->running; n = next) {
        next = n->next;
        link_item *it = smx_list_entry(n, link_item, node);
        if (!it->copy)
            continue;
        if (closed)
            smx_copy_run_conn_closed(it->copy);
        else
            smx_copy_run_conn_ended(it->copy);
    }
    l->depth--;
}

static void link_on_ended(smx_conn *c, void *ud)
{
    smx_link *l = ud;
    link_tell_copies(l, 0);
    link_next(l);   /* the running items were failed first; the waiting ones get its error */
    link_maybe_done(l);
}

static void link_on_closed(smx_conn *c, void *ud)
{
    smx_link *l = ud;
    link_tell_copies(l, 1);
    l->conn = NULL;
    l->closed = 1;
    link_next(l);
    link_maybe_done(l);
}

static const smx_conn_events link_conn_events = {
    .ready = link_on_ready,
    .ended = link_on_ended,
    .closed = link_on_closed,
};

static void link_start(smx_job *base)
{
    smx_link *l = (smx_link *)base;
    l->conn = smx_conn_new(&base->engine->ctx, l->hc, l->password, l->result, &link_conn_events,
                           l);
    if (!l->conn) {
        smx_result_set_error(l->result, SMX_STAGE_CONNECT, SMX_ENOMEM, "out of memory");
        l->closed = 1;
        link_next(l);
        link_maybe_done(l);
        return;
    }
    smx_conn_start(l->conn);
}

static void link_cancel(smx_job *base, const char *why)
{
    smx_link *l = (smx_link *)base;
    if (!l->canceled)
        snprintf(l->cancel_why, sizeof l->cancel_why, "%s", why);
    l->canceled = 1;
    if (l->nrunning) {
        for (smx_list *n = l->running.next, *next; n != &l->running; n = next) {
            next = n->next;
            link_item *it = smx_list_entry(n, link_item, node);
            if (it->copy)
                smx_copy_run_cancel(it->copy, why);
            else
                smx_exec_run_cancel(&it->run, why);
        }
        return;   /* their end closes the connection (link_next) */
    }
    if (l->conn && !l->conn->ended && !l->ready)
        smx_session_fail(&l->conn->session, smx_engine_stage_of(l->conn), SMX_ECANCELED, "%s",
                         why);   /* nothing runs remotely yet */
    else
        link_next(l);
}

static void link_discard(smx_job *base, const char *why)
{
    smx_link *l = (smx_link *)base;
    snprintf(l->cancel_why, sizeof l->cancel_why, "%s", why);
    smx_result_set_error(l->result, SMX_STAGE_CONNECT, SMX_ECANCELED, why);
    l->closed = 1;
    link_next(l);
    link_maybe_done(l);
}

static void link_free_unstarted(smx_job *base)
{
    smx_link *l = (smx_link *)base;
    while (!smx_list_empty(&l->items)) {
        link_item *it = smx_list_entry(l->items.next, link_item, node);
        smx_list_remove(&it->node);
        smx_result_destroy(it->result);
        link_item_free(it);
    }
    link_free(l);
}

static const smx_job_ops link_job_ops = {
    .kind = "link",
    .start = link_start,
    .cancel = link_cancel,
    .discard = link_discard,
    .free_unstarted = link_free_unstarted,
};

int smx_engine_add_link(smx_engine *e, const char *target, smx_hostcfg *hc, const char *password,
                        smx_link **out)
{
    smx_link *l = calloc(1, sizeof *l);
    smx_result *r = smx_engine_new_result(target, hc);
    if (!l || !r || (password && !(l->password = strdup(password))) ||
        (target && !(l->target = strdup(target)))) {
        if (l)
            smx_str_wipe_free(l->password);
        free(l);
        smx_result_destroy(r);
        return SMX_ENOMEM;
    }
    l->base.ops = &link_job_ops;
    l->base.host = hc->host;
    l->hc = hc;
    l->result = r;
    smx_list_init(&l->items);
    smx_list_init(&l->running);
    l->parallel = 1;
    *out = l;
    smx_engine_queue_job(e, &l->base);
    return 0;
}

/* A new item with its own result, or NULL (out of memory). */
static link_item *link_item_new(smx_link *l, const smx_exec_callbacks *cb)
{
    link_item *it = calloc(1, sizeof *it);
    smx_result *r = smx_engine_new_result(l->target, l->hc);
    if (!it || !r) {
        free(it);
        smx_result_destroy(r);
        return NULL;
    }
    it->link = l;
    it->result = r;
    it->cb = cb;
    return it;
}

/* Queues the item and starts what can start. */
static void link_add(smx_link *l, link_item *it)
{
    smx_list_init(&it->node);
    smx_list_append(&l->items, &it->node);
    l->depth++;   /* an item failed at once must not free the caller's link under it */
    link_next(l);
    l->depth--;
    link_maybe_done(l);
}

int smx_link_exec(smx_link *l, const smx_exec_opts *x, const smx_exec_callbacks *cb)
{
    if (l->released)
        return SMX_EINVAL;
    link_item *it = link_item_new(l, cb);
    if (!it)
        return SMX_ENOMEM;
    smx_exec_run_init(&it->run, x, cb, it->result, link_run_finished, it);
    link_add(l, it);
    return 0;
}

int smx_link_copy(smx_link *l, smx_copy *copy, const smx_exec_callbacks *cb)
{
    if (l->released)
        return SMX_EINVAL;
    link_item *it = link_item_new(l, cb);
    if (it && !(it->copy = smx_copy_run_new(copy, cb, it->result, link_copy_finished, it))) {
        smx_result_destroy(it->result);
        free(it);
        it = NULL;
    }
    if (!it)
        return SMX_ENOMEM;
    link_add(l, it);
    return 0;
}

void smx_link_set_parallel(smx_link *l, int n)
{
    l->parallel = n < 1 ? 1 : n > SMX_LINK_PARALLEL_MAX ? SMX_LINK_PARALLEL_MAX : n;
    l->depth++;
    link_next(l);
    l->depth--;
    link_maybe_done(l);
}

int smx_link_closed(const smx_link *l)
{
    return l->closed || l->canceled || (l->conn && l->conn->ended);
}

void smx_link_release(smx_link *l)
{
    if (!l || l->released)
        return;
    l->released = 1;
    link_next(l);
    link_maybe_done(l);
}
