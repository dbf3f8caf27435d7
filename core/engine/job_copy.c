/* The copy run: on a connection it does not own, an SFTP channel (apps/sftp.c) that moves the
 * copy's files one after the other (apps/upload.c, apps/download.c), and for run-script an exec
 * channel afterwards. The run is over when the SFTP client, the exec, the timer and a local step
 * are all closed; its owner then gets `finished`. Per file results go into the host's result.
 *
 * The copy job (the end of this file) is one connection of its own and one run on it; a link
 * (job_link.c) runs copy items on its shared connection, in turn with exec items. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "job_copy.h"


/* ---- results ---------------------------------------------------------------------------------- */

void copy_record(copy_run *run, const char *local, const char *remote,
                        const smx_xfer_outcome *o, const char *error)
{
    smx_result *r = run->result;
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
        run->failed_files++;
        run->copy->progress.files_failed++;
        smx_result_set_error(r, SMX_STAGE_SFTP, SMX_EIO, error);   /* the first one stands */
    } else {
        run->copy->progress.files_done++;
    }
    run->activity++;
}

void copy_item_error(copy_run *run, copy_item *it, const char *detail)
{
    char msg[SMX_MSG_MAX];
    snprintf(msg, sizeof msg, "%s: %s", it->remote ? it->remote : it->local, detail);
    copy_record(run, it->local, it->remote, NULL, msg);
}

/* ---- the run's own requests (STAT, MKDIR, directory listing, links) --------------------------- */

typedef struct copy_op {
    copy_run *run;
    copy_reply_fn fn;
} copy_op;

static void copy_on_op(void *ud, smx_sftp_reply *r)
{
    copy_op *op = ud;
    copy_run *run = op->run;
    copy_reply_fn fn = op->fn;
    free(op);
    run->ops--;
    run->activity++;
    if (!r) {
        copy_close(run);   /* the session is gone: its error is the host's */
        return;
    }
    fn(run, r);
}

/* Sends the request begun on the client; fn gets the reply (never NULL). */
void copy_send(copy_run *run, copy_reply_fn fn)
{
    copy_op *op = malloc(sizeof *op);
    if (op) {
        op->run = run;
        op->fn = fn;
    }
    if (!op || smx_sftp_send(run->sftp, NULL, copy_on_op, op) < 0) {
        free(op);
        smx_result_set_error(run->result, SMX_STAGE_SFTP, SMX_ENOMEM, "sftp: request failed");
        copy_close(run);
        return;
    }
    run->ops++;
}

void copy_path_op(copy_run *run, uint8_t type, const char *path, copy_reply_fn fn)
{
    smx_sftp_begin_path(run->sftp, type, path);
    copy_send(run, fn);
}

int copy_status_ok(const smx_sftp_reply *r)
{
    return r->type == SMX_FXP_STATUS && r->status == SMX_FX_OK;
}

void copy_item_failed_reply(copy_run *run, const smx_sftp_reply *r)
{
    copy_item *it = &run->items[run->next - 1];
    char msg[SMX_MSG_MAX];
    smx_sftp_status_message(r, it->remote, msg, sizeof msg);
    copy_record(run, it->local, it->remote, NULL, msg);
    copy_next(run);
}

/* ---- items ------------------------------------------------------------------------------------ */

copy_item *copy_push(copy_run *run, char kind, char *remote, char *local)
{
    if (run->nitems == run->cap && remote) {
        size_t cap = run->cap ? run->cap * 2 : 8;
        copy_item *v = realloc(run->items, cap * sizeof *v);
        if (v) {
            run->items = v;
            run->cap = cap;
        }
    }
    if (!remote || (run->copy->o.kind == SMX_COPY_DOWNLOAD && !local) ||
        run->nitems == run->cap) {
        free(remote);
        free(local);
        return NULL;
    }
    copy_item *it = &run->items[run->nitems++];
    memset(it, 0, sizeof *it);
    it->kind = kind;
    it->remote = remote;
    it->local = local;
    return it;
}

static void copy_on_file_done(void *ud)
{
    copy_run *run = ud;
    copy_item *it = &run->items[run->next - 1];
    run->up = NULL;
    run->down = NULL;
    copy_record(run, it->local, it->remote, &run->outcome,
                run->outcome.failed ? run->outcome.err : NULL);
    if (run->outcome.lost || run->canceled)
        copy_close(run);
    else
        copy_next(run);
}

void copy_start_file(copy_run *run, copy_item *it)
{
    memset(&run->outcome, 0, sizeof run->outcome);
    run->outcome.progress = &run->copy->progress.bytes_done;
    if (run->copy->o.kind == SMX_COPY_DOWNLOAD) {
        if (it->attrs.flags & SMX_FXA_SIZE)
            run->copy->progress.bytes_total += it->attrs.size;
        run->down = smx_download_start(run->sftp, run->loop, it->remote,
                                       &it->attrs, it->local, &run->params, &run->outcome,
                                       copy_on_file_done, run);
    } else {
        run->up = smx_upload_start(run->sftp, &it->entry->file, it->remote, &run->params,
                                   &run->outcome, copy_on_file_done, run);
    }
    if (!run->up && !run->down) {
        copy_item_error(run, it, "out of memory");
        copy_next(run);
    }
}

/* upload: a directory made, or already there */
static void copy_on_mkdir_stat(copy_run *run, smx_sftp_reply *r)
{
    if (r->type == SMX_FXP_ATTRS && SMX_SFTP_IS_DIR(&r->attrs))
        copy_next(run);
    else
        copy_item_failed_reply(run, r);
}

static void copy_on_mkdir(copy_run *run, smx_sftp_reply *r)
{
    if (copy_status_ok(r))
        copy_next(run);
    else   /* "Failure" when it exists: a directory there is fine */
        copy_path_op(run, SMX_FXP_STAT, run->items[run->next - 1].remote, copy_on_mkdir_stat);
}

static void copy_on_symlink(copy_run *run, smx_sftp_reply *r)
{
    if (copy_status_ok(r)) {
        copy_record(run, NULL, run->items[run->next - 1].remote, NULL, NULL);
        copy_next(run);
    } else {
        copy_item_failed_reply(run, r);
    }
}

static void copy_on_link_removed(copy_run *run, smx_sftp_reply *r)
{
    /* OpenSSH's sftp-server takes SYMLINK's paths the other way round from the draft (target
     * first); dropbear runs that same sftp-server, and paramiko copied it. Other servers
     * (AsyncSSH's, with a client that is not OpenSSH) follow the draft: link path first. */
    copy_item *it = &run->items[run->next - 1];
    const char *banner = run->result->server_banner ? run->result->server_banner : "";
    int target_first = strstr(banner, "OpenSSH") || strstr(banner, "dropbear") ||
                       strstr(banner, "paramiko");
    smx_sftp_out *o = smx_sftp_begin(run->sftp, SMX_FXP_SYMLINK);
    smx_sftp_out_cstr(o, target_first ? it->entry->link : it->remote);
    smx_sftp_out_cstr(o, target_first ? it->remote : it->entry->link);
    copy_send(run, copy_on_symlink);
}

static void copy_upload_item(copy_run *run, copy_item *it)
{
    switch (it->kind) {
    case 'd':
        copy_path_op(run, SMX_FXP_MKDIR, it->remote, copy_on_mkdir);
        break;
    case 'l':   /* replaces what is there, as ln -sf */
        copy_path_op(run, SMX_FXP_REMOVE, it->remote, copy_on_link_removed);
        break;
    default:
        copy_start_file(run, it);
        break;
    }
}

static void copy_on_dir_times(copy_run *run, smx_sftp_reply *r)
{
    if (!copy_status_ok(r)) {
        char msg[SMX_MSG_MAX];
        smx_sftp_status_message(r, "setting a directory's mode and times", msg, sizeof msg);
        smx_result_set_error(run->result, SMX_STAGE_SFTP, SMX_EIO, msg);
    }
    if (run->ops == 0)
        copy_close(run);
}

/* -p: directories get their mode and times last (what was created in them changed the times),
 * deepest first. 1 if any SETSTAT went out (the replies close the run). */
static int copy_set_dir_times(copy_run *run)
{
    int sent = 0;
    run->phase = COPY_DIR_TIMES;
    for (size_t i = run->nitems; i-- > 0;) {
        const copy_item *it = &run->items[i];
        if (it->kind != 'd' || !it->entry)
            continue;
        smx_sftp_attrs a = {0};
        a.flags = SMX_FXA_PERMISSIONS | SMX_FXA_ACMODTIME;
        a.perm = it->entry->file.perm & 07777;
        a.atime = it->entry->file.atime;
        a.mtime = it->entry->file.mtime;
        smx_sftp_out_attrs(smx_sftp_begin_path(run->sftp, SMX_FXP_SETSTAT, it->remote), &a);
        copy_send(run, copy_on_dir_times);
        sent = 1;
        if (run->phase == COPY_CLOSING)
            break;   /* the send failed: the run is closing */
    }
    return sent;
}

void copy_next(copy_run *run)
{
    if (run->phase == COPY_CLOSING) {
        copy_close(run);   /* what ran was the last thing holding it open */
        return;
    }
    if (run->phase != COPY_ITEMS)
        return;
    if (run->canceled || run->next == run->nitems) {
        if (run->copy->o.preserve && !run->canceled &&
            (run->copy->o.kind == SMX_COPY_UPLOAD ? copy_set_dir_times(run)
             : run->copy->o.kind == SMX_COPY_DOWNLOAD ? copy_download_dir_times(run) : 0))
            return;
        if (run->copy->o.kind == SMX_COPY_SCRIPT && !run->canceled && !run->failed_files) {
            run->phase = COPY_RUNNING;
            run->exec = smx_exec_start(run->conn, &run->xopts, run->result, &run->xev);
            if (!run->exec)
                copy_close(run);
            return;
        }
        copy_close(run);
        return;
    }
    copy_item *it = &run->items[run->next++];
    if (run->copy->o.kind == SMX_COPY_DOWNLOAD)
        copy_download_item(run, it);
    else
        copy_upload_item(run, it);
}

/* ---- planning per host ------------------------------------------------------------------------ */

/* upload: where entry e goes on this host. */
static char *copy_upload_path(copy_run *run, const copy_entry *e)
{
    if (run->dest_is_dir)
        return smx_copy_join(run->dest, e->rel);
    size_t n = strlen(run->dest) + strlen(e->rel + e->top_len) + 1;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s%s", run->dest, e->rel + e->top_len);   /* the source renamed */
    return p;
}

static void copy_plan_upload(copy_run *run)
{
    const smx_copy *c = run->copy;
    for (size_t i = 0; i < c->nentries; i++) {
        const copy_entry *e = &c->entries[i];
        copy_item *it = copy_push(run, e->kind, copy_upload_path(run, e),
                                  e->local ? strdup(e->local) : NULL);
        if (!it) {
            smx_result_set_error(run->result, SMX_STAGE_SFTP, SMX_ENOMEM, "out of memory");
            copy_close(run);
            return;
        }
        it->entry = e;
        if (e->kind == 'f')
            run->copy->progress.bytes_total += e->file.size;
    }
    run->phase = COPY_ITEMS;
    copy_next(run);
}

static void copy_on_dest_stat(copy_run *run, smx_sftp_reply *r)
{
    if (r->type == SMX_FXP_ATTRS && SMX_SFTP_IS_DIR(&r->attrs)) {
        run->dest_is_dir = 1;
    } else if (run->dest_is_dir) {
        char msg[SMX_MSG_MAX];
        smx_sftp_status_message(r, run->dest, msg, sizeof msg);
        if (r->type == SMX_FXP_ATTRS)
            snprintf(msg, sizeof msg, "%s: not a directory", run->dest);
        smx_result_set_error(run->result, SMX_STAGE_SFTP, SMX_ENOENT, msg);
        copy_close(run);
        return;
    }
    copy_plan_upload(run);
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
    copy_run *run = ud;
    smx_copy *c = run->copy;
    run->activity++;
    run->phase = COPY_PLANNING;
    switch (c->o.kind) {
    case SMX_COPY_UPLOAD:
        run->dest = smx_copy_expand(c->dest, run->result->host, run->index);
        run->dest_is_dir = c->dest_is_dir;
        if (!run->dest)
            break;
        copy_path_op(run, SMX_FXP_STAT, run->dest, copy_on_dest_stat);
        return;
    case SMX_COPY_SCRIPT:
        run->dest = run->script_path = copy_script_path();
        if (!run->dest)
            break;
        run->params.atomic = 0;
        run->params.excl = 1;
        run->params.mode = 0700;
        run->params.resume = 0;
        size_t n = strlen(run->script_path) + strlen(c->script.command) + 2;
        if (!(run->command = malloc(n)))
            break;
        snprintf(run->command, n, "%s%s%s", run->script_path, c->script.command[0] ? " " : "",
                 c->script.command);
        run->xopts.command = run->command;
        copy_plan_upload(run);
        return;
    case SMX_COPY_DOWNLOAD:
        copy_plan_download(run);
        return;
    }
    smx_result_set_error(run->result, SMX_STAGE_SFTP, SMX_ENOMEM, "out of memory");
    copy_close(run);
}

/* ---- closing ---------------------------------------------------------------------------------- */

void smx_copy_run_free(copy_run *run)
{
    if (!run)
        return;
    for (size_t i = 0; i < run->nitems; i++) {
        free(run->items[i].remote);
        free(run->items[i].local);
        free(run->items[i].link);
    }
    free(run->items);
    free(run->dest);
    free(run->command);
    free(run->dirh);
    free(run);
}

static void copy_maybe_done(copy_run *run)
{
    if (run->closing || run->sftp_open || run->exec || !run->timer_closed || run->fs_busy)
        return;
    run->finished(run->ud);
}

void smx_copy_run_settle(copy_run *run)
{
    smx_result *r = run->result;
    /* a connection lost while moving files failed the transfer */
    if (r->err_stage == SMX_STAGE_EXEC && r->exit_code < 0 && !r->exit_signal &&
        run->copy->o.kind != SMX_COPY_SCRIPT)
        r->err_stage = SMX_STAGE_SFTP;
    if (run->t_start && run->copy->o.kind != SMX_COPY_SCRIPT)
        r->t.exec = (double)(uv_hrtime() - run->t_start) / 1e6;   /* the copy's own time */
    r->ok = r->err_stage == SMX_STAGE_NONE &&
            (run->copy->o.kind != SMX_COPY_SCRIPT || r->exit_code == 0);
}

static void copy_on_timer_closed(uv_handle_t *h)
{
    copy_run *run = h->data;
    run->timer_closed = 1;
    copy_maybe_done(run);
}

/* Ends what runs: the SFTP client first (the tasks on it end with it), then the timer. The
 * connection is the owner's. Closing a channel may tell the run at once that it is closed:
 * `closing` keeps the run alive until this returns. */
void copy_close(copy_run *run)
{
    run->closing++;
    run->phase = COPY_CLOSING;
    if (run->sftp && !run->up && !run->down && !run->ops) {
        smx_sftp *s = run->sftp;
        run->sftp = NULL;
        smx_sftp_close(s);
    }
    if (!run->sftp && !run->exec && !run->timer_closed) {
        if (!run->timer_inited)
            run->timer_closed = 1;
        else if (!uv_is_closing((uv_handle_t *)&run->timer))
            uv_close((uv_handle_t *)&run->timer, copy_on_timer_closed);
    }
    run->closing--;
    copy_maybe_done(run);
}

static void copy_on_sftp_ended(void *ud, int code, const char *why)
{
    copy_run *run = ud;
    smx_result_set_error(run->result, SMX_STAGE_SFTP, code, why);
    if (run->up || run->down || run->ops)
        return;   /* their failed replies came first; they close the run when they end */
    copy_close(run);
}

static void copy_on_sftp_writable(void *ud)
{
    copy_run *run = ud;
    if (run->up)
        smx_upload_writable(run->up);
}

static void copy_on_sftp_closed(void *ud)
{
    copy_run *run = ud;
    run->sftp_open = 0;
    copy_close(run);
}

static void copy_on_script_removed(copy_run *run, smx_sftp_reply *r)
{
    copy_close(run);
}

static void copy_on_exec_done(void *ud)
{
    copy_run *run = ud;
    run->exec = NULL;
    if (run->sftp && run->conn && !run->conn->ended) {
        run->phase = COPY_SCRIPT_REMOVE;   /* whatever happened to the script */
        copy_path_op(run, SMX_FXP_REMOVE, run->script_path, copy_on_script_removed);
        return;
    }
    copy_close(run);
}

static void copy_on_exec_line(void *ud, int is_stderr, const char *line, size_t len)
{
    copy_run *run = ud;
    run->cb->on_line(run->cb->ud, run->result, is_stderr, line, len);
}

/* ---- timeouts and cancel ---------------------------------------------------------------------- */

static void copy_on_timer(uv_timer_t *t)
{
    copy_run *run = t->data;
    uint64_t seen = run->activity + run->outcome.bytes;
    uint64_t now = uv_now(t->loop);
    if (!run->canceled) {
        if (run->phase == COPY_RUNNING || seen != run->seen) {   /* -u bounds the command */
            run->seen = seen;
            run->last_progress = now;
            return;
        }
        if (now - run->last_progress < (uint64_t)run->copy->o.transfer_timeout_ms)
            return;
        char msg[128];
        snprintf(msg, sizeof msg, "transfer made no progress for %d s",
                 run->copy->o.transfer_timeout_ms / 1000);
        smx_result_set_error(run->result, SMX_STAGE_SFTP, SMX_ETIMEDOUT, msg);
    }
    /* the server does not answer (or the cancel's cleanup took the grace): close it all */
    uv_timer_stop(t);
    if (run->conn && !run->conn->ended)
        smx_session_fail(&run->conn->session, SMX_STAGE_SFTP, SMX_ETIMEDOUT, "%s",
                         smx_result_error(run->result));
}

void smx_copy_run_cancel(copy_run *run, const char *why)
{
    int again = run->canceled++;
    if (run->exec) {
        smx_exec_cancel(run->exec, why);   /* the script's own result: stage exec */
        return;
    }
    smx_result_set_error(run->result, SMX_STAGE_SFTP, SMX_ECANCELED, why);
    if (run->phase <= COPY_SFTP_OPENING || again) {
        if (run->conn && !run->conn->ended)
            smx_session_fail(&run->conn->session, smx_engine_stage_of(run->conn), SMX_ECANCELED,
                             "%s", why);
        return;
    }
    /* the task in flight cleans up (no partial file left), within the kill grace */
    if (run->up)
        smx_upload_cancel(run->up, why);
    else if (run->down)
        smx_download_cancel(run->down, why);
    /* what the servers already have is written first: loaded hosts need a while */
    if (run->timer_inited && !uv_is_closing((uv_handle_t *)&run->timer))
        uv_timer_start(&run->timer, copy_on_timer, COPY_CANCEL_GRACE_MS, 0);
}

/* ---- a run on a connection it does not own ---------------------------------------------------- */

copy_run *smx_copy_run_new(smx_copy *copy, const smx_exec_callbacks *cb, smx_result *r,
                           void (*finished)(void *ud), void *ud)
{
    copy_run *run = calloc(1, sizeof *run);
    if (!run)
        return NULL;
    run->copy = copy;
    run->cb = cb;
    run->result = r;
    run->finished = finished;
    run->ud = ud;
    run->fs.data = run;
    r->is_copy = 1;
    run->index = copy->next_index++;
    const smx_copy_opts *o = &copy->o;
    run->params.block_size = o->block_size;
    run->params.requests = o->requests;
    run->params.resume = o->resume;
    run->params.fsync = o->fsync;
    run->params.atomic = !o->in_place;
    run->params.preserve = o->preserve;
    run->params.mode = o->mode;
    if (o->script) {
        run->xopts = *o->script;
        run->xev.line = cb->on_line ? copy_on_exec_line : NULL;
        run->xev.done = copy_on_exec_done;
        run->xev.ud = run;
    }
    return run;
}

int smx_copy_run_start(copy_run *run, smx_conn *c)
{
    run->conn = c;
    run->loop = c->ctx->loop;
    run->sev.ready = copy_on_sftp_ready;
    run->sev.ended = copy_on_sftp_ended;
    run->sev.writable = copy_on_sftp_writable;
    run->sev.closed = copy_on_sftp_closed;
    run->sev.ud = run;
    run->sftp = smx_sftp_start(c, &run->sev);
    if (!run->sftp)
        return SMX_ENOMEM;
    run->sftp_open = 1;
    run->phase = COPY_SFTP_OPENING;
    run->t_start = uv_hrtime();
    uv_timer_init(run->loop, &run->timer);
    run->timer.data = run;
    run->timer_inited = 1;
    /* checked four times per period: a host stalls for SECS to SECS + a quarter, no more */
    uint64_t t = (uint64_t)run->copy->o.transfer_timeout_ms;
    run->last_progress = uv_now(run->loop);
    if (t > 0)
        uv_timer_start(&run->timer, copy_on_timer, t / 4 ? t / 4 : 1, t / 4 ? t / 4 : 1);
    return 0;
}

void smx_copy_run_conn_ended(copy_run *run)
{
    if (run->phase != COPY_IDLE && !run->sftp_open && !run->exec)
        copy_close(run);   /* nothing of it on the connection is left to say so */
}

void smx_copy_run_conn_closed(copy_run *run)
{
    run->conn = NULL;
}

/* ---- the copy job: a connection of its own for one run ---------------------------------------- */

typedef struct copy_job {
    smx_job base;
    smx_hostcfg *hc;
    char *password;                 /* wiped on free */
    copy_run *run;
    smx_conn *conn;                 /* NULL before the start and once closed */
    int conn_closed, run_done;
} copy_job;

static void copy_job_release(copy_job *job)
{
    smx_copy_run_free(job->run);
    smx_str_wipe_free(job->password);
    smx_hostcfg_free(job->hc);
    free(job->hc);
    free(job);
}

static void copy_job_maybe_done(copy_job *job)
{
    if (!job->conn_closed || !job->run_done)
        return;
    smx_result *r = job->run->result;
    const smx_exec_callbacks *cb = job->run->cb;
    smx_copy_run_settle(job->run);
    smx_engine_job_done(job->base.engine, &job->base);
    copy_job_release(job);
    cb->on_done(cb->ud, r);
}

static void copy_job_run_finished(void *ud)
{
    copy_job *job = ud;
    job->run_done = 1;
    if (job->conn && !job->conn->ended)
        smx_conn_close(job->conn);
    copy_job_maybe_done(job);
}

static void copy_job_cancel(smx_job *base, const char *why)
{
    copy_job *job = (copy_job *)base;
    if (job->run->phase != COPY_IDLE) {
        smx_copy_run_cancel(job->run, why);
        return;
    }
    smx_result_set_error(job->run->result, SMX_STAGE_SFTP, SMX_ECANCELED, why);
    if (job->conn && !job->conn->ended)
        smx_session_fail(&job->conn->session, smx_engine_stage_of(job->conn), SMX_ECANCELED,
                         "%s", why);
}

static void copy_on_ready(smx_conn *c, void *ud)
{
    copy_job *job = ud;
    c->loss_context = " while copying";
    if (smx_copy_run_start(job->run, c) < 0)
        smx_session_fail(&c->session, SMX_STAGE_SFTP, SMX_ENOMEM, "out of memory");
}

static void copy_on_ended(smx_conn *c, void *ud)
{
    copy_job *job = ud;
    if (job->run->phase == COPY_IDLE)
        job->run_done = 1;   /* it never started */
    else if (!job->run_done)
        smx_copy_run_conn_ended(job->run);
}

static void copy_on_closed(smx_conn *c, void *ud)
{
    copy_job *job = ud;
    job->conn = NULL;
    job->conn_closed = 1;
    smx_copy_run_conn_closed(job->run);
    copy_job_maybe_done(job);
}

static const smx_conn_events copy_conn_events = {
    .ready = copy_on_ready,
    .ended = copy_on_ended,
    .closed = copy_on_closed,
};

static void copy_job_start(smx_job *base)
{
    copy_job *job = (copy_job *)base;
    job->conn = smx_conn_new(&base->engine->ctx, job->hc, job->password, job->run->result,
                             &copy_conn_events, job);
    if (!job->conn) {
        smx_result_set_error(job->run->result, SMX_STAGE_CONNECT, SMX_ENOMEM, "out of memory");
        job->conn_closed = job->run_done = 1;
        copy_job_maybe_done(job);
        return;
    }
    smx_conn_start(job->conn);
}

static void copy_job_discard(smx_job *base, const char *why)
{
    copy_job *job = (copy_job *)base;
    smx_result_set_error(job->run->result, SMX_STAGE_CONNECT, SMX_ECANCELED, why);
    job->conn_closed = job->run_done = 1;
    copy_job_maybe_done(job);
}

static void copy_job_free_unstarted(smx_job *base)
{
    copy_job *job = (copy_job *)base;
    smx_result_destroy(job->run->result);
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
    if (!job || !r || (password && !(job->password = strdup(password))) ||
        !(job->run = smx_copy_run_new(copy, cb, r, copy_job_run_finished, job))) {
        if (job)
            smx_str_wipe_free(job->password);
        free(job);
        smx_result_destroy(r);
        return SMX_ENOMEM;
    }
    job->base.ops = &copy_job_ops;
    job->base.host = hc->host;
    job->hc = hc;
    smx_engine_queue_job(e, &job->base);
    return 0;
}
