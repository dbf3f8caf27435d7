/* The copy job: one host's connection carrying an SFTP channel (apps/sftp.c) that moves the
 * copy's files one after the other (apps/upload.c, apps/download.c), and for run-script an exec
 * channel afterwards. The job ends when the SFTP client, the exec and the connection are all
 * closed. Per file results go into the host's result. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "job_copy.h"


/* ---- results ---------------------------------------------------------------------------------- */

void copy_record(copy_job *job, const char *local, const char *remote,
                        const smx_xfer_outcome *o, const char *error)
{
    smx_result *r = job->result;
    smx_file_result *v = realloc(r->files, (r->nfiles + 1) * sizeof *v);
    if (!v)
        return;
    r->files = v;
    smx_file_result *f = &v[r->nfiles++];
    memset(f, 0, sizeof *f);
    f->local = local ? strdup(local) : NULL;
    f->remote = remote ? strdup(remote) : NULL;
    if (o) {
        f->size = o->size;
        f->bytes = o->bytes;
        f->resumed_from = o->resumed_from;
        f->seconds = o->seconds;
        r->bytes += o->bytes;
    }
    if (error) {
        f->error = strdup(error);
        job->failed_files++;
        job->copy->progress.files_failed++;
        smx_result_set_error(r, SMX_STAGE_SFTP, SMX_EIO, error);   /* the first one stands */
    } else {
        job->copy->progress.files_done++;
    }
    job->activity++;
}

void copy_item_error(copy_job *job, copy_item *it, const char *detail)
{
    char msg[SMX_MSG_MAX];
    snprintf(msg, sizeof msg, "%s: %s", it->remote ? it->remote : it->local, detail);
    copy_record(job, it->local, it->remote, NULL, msg);
}

/* ---- the job's own requests (STAT, MKDIR, directory listing, links) --------------------------- */

typedef struct copy_op {
    copy_job *job;
    copy_reply_fn fn;
} copy_op;

static void copy_on_op(void *ud, smx_sftp_reply *r)
{
    copy_op *op = ud;
    copy_job *job = op->job;
    copy_reply_fn fn = op->fn;
    free(op);
    job->ops--;
    job->activity++;
    if (!r) {
        copy_close(job);   /* the session is gone: its error is the host's */
        return;
    }
    fn(job, r);
}

/* Sends the request begun on the client; fn gets the reply (never NULL). */
void copy_send(copy_job *job, copy_reply_fn fn)
{
    copy_op *op = malloc(sizeof *op);
    if (op) {
        op->job = job;
        op->fn = fn;
    }
    if (!op || smx_sftp_send(job->sftp, NULL, copy_on_op, op) < 0) {
        free(op);
        smx_result_set_error(job->result, SMX_STAGE_SFTP, SMX_ENOMEM, "sftp: request failed");
        copy_close(job);
        return;
    }
    job->ops++;
}

void copy_path_op(copy_job *job, uint8_t type, const char *path, copy_reply_fn fn)
{
    smx_sftp_begin_path(job->sftp, type, path);
    copy_send(job, fn);
}

int copy_status_ok(const smx_sftp_reply *r)
{
    return r->type == SMX_FXP_STATUS && r->status == SMX_FX_OK;
}

void copy_item_failed_reply(copy_job *job, const smx_sftp_reply *r)
{
    copy_item *it = &job->items[job->next - 1];
    char msg[SMX_MSG_MAX];
    smx_sftp_status_message(r, it->remote, msg, sizeof msg);
    copy_record(job, it->local, it->remote, NULL, msg);
    copy_next(job);
}

/* ---- items ------------------------------------------------------------------------------------ */

copy_item *copy_push(copy_job *job, char kind, char *remote, char *local)
{
    if (job->nitems == job->cap && remote) {
        size_t cap = job->cap ? job->cap * 2 : 8;
        copy_item *v = realloc(job->items, cap * sizeof *v);
        if (v) {
            job->items = v;
            job->cap = cap;
        }
    }
    if (!remote || (job->copy->o.kind == SMX_COPY_DOWNLOAD && !local) ||
        job->nitems == job->cap) {
        free(remote);
        free(local);
        return NULL;
    }
    copy_item *it = &job->items[job->nitems++];
    memset(it, 0, sizeof *it);
    it->kind = kind;
    it->remote = remote;
    it->local = local;
    return it;
}

static void copy_on_file_done(void *ud)
{
    copy_job *job = ud;
    copy_item *it = &job->items[job->next - 1];
    job->up = NULL;
    job->down = NULL;
    copy_record(job, it->local, it->remote, &job->outcome,
                job->outcome.failed ? job->outcome.err : NULL);
    if (job->outcome.lost || job->canceled)
        copy_close(job);
    else
        copy_next(job);
}

void copy_start_file(copy_job *job, copy_item *it)
{
    memset(&job->outcome, 0, sizeof job->outcome);
    job->outcome.progress = &job->copy->progress.bytes_done;
    if (job->copy->o.kind == SMX_COPY_DOWNLOAD) {
        if (it->attrs.flags & SMX_FXA_SIZE)
            job->copy->progress.bytes_total += it->attrs.size;
        job->down = smx_download_start(job->sftp, job->base.engine->ctx.loop, it->remote,
                                       &it->attrs, it->local, &job->params, &job->outcome,
                                       copy_on_file_done, job);
    } else {
        job->up = smx_upload_start(job->sftp, &it->entry->file, it->remote, &job->params,
                                   &job->outcome, copy_on_file_done, job);
    }
    if (!job->up && !job->down) {
        copy_item_error(job, it, "out of memory");
        copy_next(job);
    }
}

/* upload: a directory made, or already there */
static void copy_on_mkdir_stat(copy_job *job, smx_sftp_reply *r)
{
    if (r->type == SMX_FXP_ATTRS && SMX_SFTP_IS_DIR(&r->attrs))
        copy_next(job);
    else
        copy_item_failed_reply(job, r);
}

static void copy_on_mkdir(copy_job *job, smx_sftp_reply *r)
{
    if (copy_status_ok(r))
        copy_next(job);
    else   /* "Failure" when it exists: a directory there is fine */
        copy_path_op(job, SMX_FXP_STAT, job->items[job->next - 1].remote, copy_on_mkdir_stat);
}

static void copy_on_symlink(copy_job *job, smx_sftp_reply *r)
{
    if (copy_status_ok(r)) {
        copy_record(job, NULL, job->items[job->next - 1].remote, NULL, NULL);
        copy_next(job);
    } else {
        copy_item_failed_reply(job, r);
    }
}

static void copy_on_link_removed(copy_job *job, smx_sftp_reply *r)
{
    /* OpenSSH's sftp-server takes SYMLINK's paths the other way round from the draft (target
     * first); dropbear runs that same sftp-server, and paramiko copied it. Other servers
     * (AsyncSSH's, with a client that is not OpenSSH) follow the draft: link path first. */
    copy_item *it = &job->items[job->next - 1];
    const char *banner = job->result->server_banner ? job->result->server_banner : "";
    int target_first = strstr(banner, "OpenSSH") || strstr(banner, "dropbear") ||
                       strstr(banner, "paramiko");
    smx_sftp_out *o = smx_sftp_begin(job->sftp, SMX_FXP_SYMLINK);
    smx_sftp_out_cstr(o, target_first ? it->entry->link : it->remote);
    smx_sftp_out_cstr(o, target_first ? it->remote : it->entry->link);
    copy_send(job, copy_on_symlink);
}

static void copy_upload_item(copy_job *job, copy_item *it)
{
    switch (it->kind) {
    case 'd':
        copy_path_op(job, SMX_FXP_MKDIR, it->remote, copy_on_mkdir);
        break;
    case 'l':   /* replaces what is there, as ln -sf */
        copy_path_op(job, SMX_FXP_REMOVE, it->remote, copy_on_link_removed);
        break;
    default:
        copy_start_file(job, it);
        break;
    }
}

static void copy_on_dir_times(copy_job *job, smx_sftp_reply *r)
{
    if (!copy_status_ok(r)) {
        char msg[SMX_MSG_MAX];
        smx_sftp_status_message(r, "setting a directory's mode and times", msg, sizeof msg);
        smx_result_set_error(job->result, SMX_STAGE_SFTP, SMX_EIO, msg);
    }
    if (job->ops == 0)
        copy_close(job);
}

/* -p: directories get their mode and times last (what was created in them changed the times),
 * deepest first. 1 if any SETSTAT went out (the replies close the job). */
static int copy_set_dir_times(copy_job *job)
{
    int sent = 0;
    job->phase = COPY_DIR_TIMES;
    for (size_t i = job->nitems; i-- > 0;) {
        const copy_item *it = &job->items[i];
        if (it->kind != 'd' || !it->entry)
            continue;
        smx_sftp_attrs a = {0};
        a.flags = SMX_FXA_PERMISSIONS | SMX_FXA_ACMODTIME;
        a.perm = it->entry->file.perm & 07777;
        a.atime = it->entry->file.atime;
        a.mtime = it->entry->file.mtime;
        smx_sftp_out_attrs(smx_sftp_begin_path(job->sftp, SMX_FXP_SETSTAT, it->remote), &a);
        copy_send(job, copy_on_dir_times);
        sent = 1;
        if (job->phase == COPY_CLOSING)
            break;   /* the send failed: the job is closing */
    }
    return sent;
}

void copy_next(copy_job *job)
{
    if (job->phase == COPY_CLOSING) {
        copy_close(job);   /* what ran was the last thing holding it open */
        return;
    }
    if (job->phase != COPY_ITEMS)
        return;
    if (job->canceled || job->next == job->nitems) {
        if (job->copy->o.preserve && !job->canceled &&
            (job->copy->o.kind == SMX_COPY_UPLOAD ? copy_set_dir_times(job)
             : job->copy->o.kind == SMX_COPY_DOWNLOAD ? copy_download_dir_times(job) : 0))
            return;
        if (job->copy->o.kind == SMX_COPY_SCRIPT && !job->canceled && !job->failed_files) {
            job->phase = COPY_RUNNING;
            job->exec = smx_exec_start(job->conn, &job->xopts, job->result, &job->xev);
            if (!job->exec)
                copy_close(job);
            return;
        }
        copy_close(job);
        return;
    }
    copy_item *it = &job->items[job->next++];
    if (job->copy->o.kind == SMX_COPY_DOWNLOAD)
        copy_download_item(job, it);
    else
        copy_upload_item(job, it);
}

/* ---- planning per host ------------------------------------------------------------------------ */

/* upload: where entry e goes on this host. */
static char *copy_upload_path(copy_job *job, const copy_entry *e)
{
    if (job->dest_is_dir)
        return smx_copy_join(job->dest, e->rel);
    size_t n = strlen(job->dest) + strlen(e->rel + e->top_len) + 1;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s%s", job->dest, e->rel + e->top_len);   /* the source renamed */
    return p;
}

static void copy_plan_upload(copy_job *job)
{
    const smx_copy *c = job->copy;
    for (size_t i = 0; i < c->nentries; i++) {
        const copy_entry *e = &c->entries[i];
        copy_item *it = copy_push(job, e->kind, copy_upload_path(job, e),
                                  e->local ? strdup(e->local) : NULL);
        if (!it) {
            smx_result_set_error(job->result, SMX_STAGE_SFTP, SMX_ENOMEM, "out of memory");
            copy_close(job);
            return;
        }
        it->entry = e;
        if (e->kind == 'f')
            job->copy->progress.bytes_total += e->file.size;
    }
    job->phase = COPY_ITEMS;
    copy_next(job);
}

static void copy_on_dest_stat(copy_job *job, smx_sftp_reply *r)
{
    if (r->type == SMX_FXP_ATTRS && SMX_SFTP_IS_DIR(&r->attrs)) {
        job->dest_is_dir = 1;
    } else if (job->dest_is_dir) {
        char msg[SMX_MSG_MAX];
        smx_sftp_status_message(r, job->dest, msg, sizeof msg);
        if (r->type == SMX_FXP_ATTRS)
            snprintf(msg, sizeof msg, "%s: not a directory", job->dest);
        smx_result_set_error(job->result, SMX_STAGE_SFTP, SMX_ENOENT, msg);
        copy_close(job);
        return;
    }
    copy_plan_upload(job);
}

/* run-script: a name nobody else can have guessed, created exclusively. */
static char *copy_script_path(void)
{
    unsigned char rnd[8];
    char *p = malloc(64);
    if (p && uv_random(NULL, NULL, rnd, sizeof rnd, 0, NULL) == 0)
        snprintf(p, 64, "/tmp/.sshmux-script-%02x%02x%02x%02x%02x%02x%02x%02x", rnd[0], rnd[1],
                 rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);
    else if (p)
        snprintf(p, 64, "/tmp/.sshmux-script-%08x%08x", (unsigned)rand(), (unsigned)rand());
    return p;
}

static void copy_on_sftp_ready(void *ud)
{
    copy_job *job = ud;
    smx_copy *c = job->copy;
    job->activity++;
    job->phase = COPY_PLANNING;
    switch (c->o.kind) {
    case SMX_COPY_UPLOAD:
        job->dest = smx_copy_expand(c->dest, job->result->host, job->index);
        job->dest_is_dir = c->dest_is_dir;
        if (!job->dest)
            break;
        copy_path_op(job, SMX_FXP_STAT, job->dest, copy_on_dest_stat);
        return;
    case SMX_COPY_SCRIPT:
        job->dest = job->script_path = copy_script_path();
        if (!job->dest)
            break;
        job->params.atomic = 0;
        job->params.excl = 1;
        job->params.mode = 0700;
        job->params.resume = 0;
        size_t n = strlen(job->script_path) + strlen(c->script.command) + 2;
        if (!(job->command = malloc(n)))
            break;
        snprintf(job->command, n, "%s%s%s", job->script_path, c->script.command[0] ? " " : "",
                 c->script.command);
        job->xopts.command = job->command;
        copy_plan_upload(job);
        return;
    case SMX_COPY_DOWNLOAD:
        copy_plan_download(job);
        return;
    }
    smx_result_set_error(job->result, SMX_STAGE_SFTP, SMX_ENOMEM, "out of memory");
    copy_close(job);
}

/* ---- closing ---------------------------------------------------------------------------------- */

static void copy_job_release(copy_job *job)
{
    for (size_t i = 0; i < job->nitems; i++) {
        free(job->items[i].remote);
        free(job->items[i].local);
        free(job->items[i].link);
    }
    free(job->items);
    free(job->dest);
    free(job->command);
    free(job->dirh);
    smx_str_wipe_free(job->password);
    smx_hostcfg_free(job->hc);
    free(job->hc);
    free(job);
}

static void copy_maybe_done(copy_job *job)
{
    if (job->closing || !job->conn_closed || job->sftp_open || job->exec || !job->timer_closed ||
        job->fs_busy)
        return;
    smx_result *r = job->result;
    /* a connection lost while moving files failed the transfer */
    if (r->err_stage == SMX_STAGE_EXEC && r->exit_code < 0 && !r->exit_signal &&
        job->copy->o.kind != SMX_COPY_SCRIPT)
        r->err_stage = SMX_STAGE_SFTP;
    if (job->t_start && job->copy->o.kind != SMX_COPY_SCRIPT)
        r->t.exec = (double)(uv_hrtime() - job->t_start) / 1e6;   /* the copy's own time */
    r->ok = r->err_stage == SMX_STAGE_NONE &&
            (job->copy->o.kind != SMX_COPY_SCRIPT || r->exit_code == 0);
    const smx_exec_callbacks *cb = job->cb;
    smx_engine_job_done(job->base.engine, &job->base);
    copy_job_release(job);
    cb->on_done(cb->ud, r);
}

static void copy_on_timer_closed(uv_handle_t *h)
{
    copy_job *job = h->data;
    job->timer_closed = 1;
    copy_maybe_done(job);
}

/* Ends what runs: the SFTP client first (the tasks on it end with it), then the connection.
 * Closing a channel may tell the job at once that the connection is closed: `closing` keeps
 * the job alive until this returns. */
void copy_close(copy_job *job)
{
    job->closing++;
    job->phase = COPY_CLOSING;
    if (job->sftp && !job->up && !job->down && !job->ops) {
        smx_sftp *s = job->sftp;
        job->sftp = NULL;
        smx_sftp_close(s);
    }
    if (!job->sftp && !job->exec && job->conn && !job->conn->ended)
        smx_conn_close(job->conn);
    if (!job->sftp && !job->exec && !job->timer_closed) {
        if (!job->timer_inited)
            job->timer_closed = 1;
        else if (!uv_is_closing((uv_handle_t *)&job->timer))
            uv_close((uv_handle_t *)&job->timer, copy_on_timer_closed);
    }
    job->closing--;
    copy_maybe_done(job);
}

static void copy_on_sftp_ended(void *ud, int code, const char *why)
{
    copy_job *job = ud;
    smx_result_set_error(job->result, SMX_STAGE_SFTP, code, why);
    if (job->up || job->down || job->ops)
        return;   /* their failed replies came first; they close the job when they end */
    copy_close(job);
}

static void copy_on_sftp_writable(void *ud)
{
    copy_job *job = ud;
    if (job->up)
        smx_upload_writable(job->up);
}

static void copy_on_sftp_closed(void *ud)
{
    copy_job *job = ud;
    job->sftp_open = 0;
    copy_close(job);
}

static void copy_on_script_removed(copy_job *job, smx_sftp_reply *r)
{
    copy_close(job);
}

static void copy_on_exec_done(void *ud)
{
    copy_job *job = ud;
    job->exec = NULL;
    if (job->sftp && job->conn && !job->conn->ended) {
        job->phase = COPY_SCRIPT_REMOVE;   /* whatever happened to the script */
        copy_path_op(job, SMX_FXP_REMOVE, job->script_path, copy_on_script_removed);
        return;
    }
    copy_close(job);
}

static void copy_on_exec_line(void *ud, int is_stderr, const char *line, size_t len)
{
    copy_job *job = ud;
    job->cb->on_line(job->cb->ud, job->result, is_stderr, line, len);
}

/* ---- timeouts and cancel ---------------------------------------------------------------------- */

static void copy_on_timer(uv_timer_t *t)
{
    copy_job *job = t->data;
    uint64_t seen = job->activity + job->outcome.bytes;
    uint64_t now = uv_now(t->loop);
    if (!job->canceled) {
        if (job->phase == COPY_RUNNING || seen != job->seen) {   /* -u bounds the command */
            job->seen = seen;
            job->last_progress = now;
            return;
        }
        if (now - job->last_progress < (uint64_t)job->copy->o.transfer_timeout_ms)
            return;
        char msg[128];
        snprintf(msg, sizeof msg, "transfer made no progress for %d s",
                 job->copy->o.transfer_timeout_ms / 1000);
        smx_result_set_error(job->result, SMX_STAGE_SFTP, SMX_ETIMEDOUT, msg);
    }
    /* the server does not answer (or the cancel's cleanup took the grace): close it all */
    uv_timer_stop(t);
    if (job->conn && !job->conn->ended)
        smx_session_fail(&job->conn->session, SMX_STAGE_SFTP, SMX_ETIMEDOUT, "%s",
                         job->result->err_msg);
}

static void copy_job_cancel(smx_job *base, const char *why)
{
    copy_job *job = (copy_job *)base;
    int again = job->canceled++;
    if (job->exec) {
        smx_exec_cancel(job->exec, why);   /* the script's own result: stage exec */
        return;
    }
    smx_result_set_error(job->result, SMX_STAGE_SFTP, SMX_ECANCELED, why);
    if (job->phase <= COPY_SFTP_OPENING || again) {
        if (job->conn && !job->conn->ended)
            smx_session_fail(&job->conn->session, smx_engine_stage_of(job->conn), SMX_ECANCELED,
                             "%s", why);
        return;
    }
    /* the task in flight cleans up (no partial file left), within the kill grace */
    if (job->up)
        smx_upload_cancel(job->up, why);
    else if (job->down)
        smx_download_cancel(job->down, why);
    /* what the servers already have is written first: loaded hosts need a while */
    if (job->timer_inited && !uv_is_closing((uv_handle_t *)&job->timer))
        uv_timer_start(&job->timer, copy_on_timer, COPY_CANCEL_GRACE_MS, 0);
}

/* ---- connection ------------------------------------------------------------------------------- */

static void copy_on_ready(smx_conn *c, void *ud)
{
    copy_job *job = ud;
    job->conn->loss_context = " while copying";
    job->phase = COPY_SFTP_OPENING;
    job->t_start = uv_hrtime();
    job->sev.ready = copy_on_sftp_ready;
    job->sev.ended = copy_on_sftp_ended;
    job->sev.writable = copy_on_sftp_writable;
    job->sev.closed = copy_on_sftp_closed;
    job->sev.ud = job;
    job->sftp = smx_sftp_start(c, &job->sev);
    if (!job->sftp) {
        smx_session_fail(&c->session, SMX_STAGE_SFTP, SMX_ENOMEM, "out of memory");
        return;
    }
    job->sftp_open = 1;
    /* checked four times per period: a host stalls for SECS to SECS + a quarter, no more */
    uint64_t t = (uint64_t)job->copy->o.transfer_timeout_ms;
    job->last_progress = uv_now(c->ctx->loop);
    if (t > 0)
        uv_timer_start(&job->timer, copy_on_timer, t / 4 ? t / 4 : 1, t / 4 ? t / 4 : 1);
}

static void copy_on_ended(smx_conn *c, void *ud)
{
    copy_job *job = ud;
    if (!job->sftp_open && !job->exec)
        copy_close(job);
}

static void copy_on_closed(smx_conn *c, void *ud)
{
    copy_job *job = ud;
    job->conn = NULL;
    job->conn_closed = 1;
    copy_close(job);
}

static const smx_conn_events copy_conn_events = {
    .ready = copy_on_ready,
    .ended = copy_on_ended,
    .closed = copy_on_closed,
};

static void copy_job_start(smx_job *base)
{
    copy_job *job = (copy_job *)base;
    uv_timer_init(base->engine->ctx.loop, &job->timer);
    job->timer.data = job;
    job->timer_inited = 1;
    job->conn = smx_conn_new(&base->engine->ctx, job->hc, job->password, job->result,
                             &copy_conn_events, job);
    if (!job->conn) {
        smx_result_set_error(job->result, SMX_STAGE_CONNECT, SMX_ENOMEM, "out of memory");
        job->conn_closed = 1;
        copy_close(job);
        return;
    }
    smx_conn_start(job->conn);
}

static void copy_job_discard(smx_job *base, const char *why)
{
    copy_job *job = (copy_job *)base;
    smx_result_set_error(job->result, SMX_STAGE_CONNECT, SMX_ECANCELED, why);
    job->conn_closed = 1;
    copy_close(job);
}

static void copy_job_free_unstarted(smx_job *base)
{
    copy_job *job = (copy_job *)base;
    smx_result_destroy(job->result);
    copy_job_release(job);
}

static const smx_job_ops copy_job_ops = {
    .kind = "copy",
    .start = copy_job_start,
    .cancel = copy_job_cancel,
    .discard = copy_job_discard,
    .free_unstarted = copy_job_free_unstarted,
};

int smx_engine_add_copy(smx_engine *e, const char *target, smx_hostcfg *hc, const char *password,
                        smx_copy *copy, const smx_exec_callbacks *cb)
{
    copy_job *job = calloc(1, sizeof *job);
    smx_result *r = smx_engine_new_result(target, hc);
    if (!job || !r || (password && !(job->password = strdup(password)))) {
        free(job);
        smx_result_destroy(r);
        return SMX_ENOMEM;
    }
    job->base.ops = &copy_job_ops;
    job->base.host = hc->host;
    job->copy = copy;
    job->hc = hc;
    job->cb = cb;
    job->result = r;
    job->fs.data = job;
    r->is_copy = 1;
    job->index = copy->next_index++;
    const smx_copy_opts *o = &copy->o;
    job->params.block_size = o->block_size;
    job->params.requests = o->requests;
    job->params.resume = o->resume;
    job->params.fsync = o->fsync;
    job->params.atomic = !o->in_place;
    job->params.preserve = o->preserve;
    job->params.mode = o->mode;
    if (o->script) {
        job->xopts = *o->script;
        job->xev.line = cb->on_line ? copy_on_exec_line : NULL;
        job->xev.done = copy_on_exec_done;
        job->xev.ud = job;
    }
    smx_engine_queue_job(e, &job->base);
    return 0;
}
