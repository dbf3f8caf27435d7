/* What a download does on each host beyond moving file bytes: the sources' STAT, the local base
 * directory, remote directories read and recreated (-r), symlinks recreated as symlinks. Names
 * from the server are taken only as single path components: a READDIR entry with a '/' or a
 * "." / ".." cannot write outside the destination. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "job_copy.h"

static void copy_fs_done(uv_fs_t *req)
{
    copy_job *job = req->data;
    ssize_t res = req->result;
    uv_fs_req_cleanup(req);
    job->fs_busy = 0;
    if (job->phase == COPY_CLOSING) {
        copy_close(job);   /* this step may have been the last thing it waited for */
        return;
    }
    job->fs_next(job, res);
}

/* Starts a local step on the job's request; next gets its result. */
static void copy_fs_started(copy_job *job, int rc, void (*next)(copy_job *, ssize_t))
{
    job->fs_next = next;
    job->fs_busy = 1;
    if (rc < 0) {
        job->fs.result = rc;
        copy_fs_done(&job->fs);
    }
}

static char *copy_host_component(const char *host)
{
    char *h = strdup(host ? host : "host");
    for (char *p = h; p && *p; p++)
        if (*p == '/')
            *p = '_';
    return h;
}

static void copy_on_base_dir(copy_job *job, ssize_t res)
{
    if (res < 0 && res != UV_EEXIST) {
        char msg[SMX_MSG_MAX];
        snprintf(msg, sizeof msg, "%s: %s", job->dest, uv_strerror((int)res));
        smx_result_set_error(job->result, SMX_STAGE_SFTP, SMX_EIO, msg);
        copy_close(job);
        return;
    }
    job->phase = COPY_ITEMS;
    copy_next(job);
}

void copy_plan_download(copy_job *job)
{
    smx_copy *c = job->copy;
    char *host = copy_host_component(job->result->host);
    job->dest = host && c->o.layout == SMX_LAYOUT_HOSTDIR ? smx_copy_join(c->dest, host)
                                                          : strdup(c->dest);
    int ok = host && job->dest;
    for (size_t i = 0; ok && i < c->sources.n; i++) {
        char *remote = smx_copy_expand(c->sources.v[i], job->result->host, job->index);
        char *name = remote ? smx_copy_basename(remote) : NULL;
        char *local = NULL;
        if (name && c->o.layout == SMX_LAYOUT_SUFFIX) {
            size_t n = strlen(name) + strlen(host) + 2;
            char *suffixed = malloc(n);
            if (suffixed)
                snprintf(suffixed, n, "%s.%s", name, host);
            free(name);
            name = suffixed;
        }
        if (name && c->o.layout == SMX_LAYOUT_PATH)
            local = strdup(job->dest);   /* the exact local file */
        else if (name)
            local = smx_copy_join(job->dest, name[0] ? name : host);
        free(name);
        ok = copy_push(job, '?', remote, local) != NULL;
    }
    free(host);
    if (!ok) {
        smx_result_set_error(job->result, SMX_STAGE_SFTP, SMX_ENOMEM, "out of memory");
        copy_close(job);
        return;
    }
    if (c->o.layout == SMX_LAYOUT_HOSTDIR)
        copy_fs_started(job, uv_fs_mkdir(job->base.engine->ctx.loop, &job->fs, job->dest, 0755,
                                         copy_fs_done), copy_on_base_dir);
    else
        copy_on_base_dir(job, 0);
}

static copy_item *copy_current(copy_job *job)
{
    return &job->items[job->next - 1];
}

/* ---- directories (-r) ------------------------------------------------------------------------- */

static void copy_on_readdir(copy_job *job, smx_sftp_reply *r);

static void copy_on_dir_closed(copy_job *job, smx_sftp_reply *r)
{
    copy_next(job);
}

static void copy_read_dir(copy_job *job)
{
    smx_sftp_begin_handle(job->sftp, SMX_FXP_READDIR, job->dirh, job->dirhlen);
    copy_send(job, copy_on_readdir);
}

static int copy_safe_name(const uint8_t *n, size_t len)
{
    return len > 0 && memchr(n, '/', len) == NULL && memchr(n, '\0', len) == NULL &&
           !(len == 1 && n[0] == '.') && !(len == 2 && n[0] == '.' && n[1] == '.');
}

static void copy_on_readdir(copy_job *job, smx_sftp_reply *r)
{
    if (r->type == SMX_FXP_STATUS) {
        copy_item *it = copy_current(job);
        if (r->status != SMX_FX_EOF) {   /* what was listed so far is still copied */
            char msg[SMX_MSG_MAX];
            smx_sftp_status_message(r, it->remote, msg, sizeof msg);
            copy_record(job, it->local, it->remote, NULL, msg);
        }
        smx_sftp_begin_handle(job->sftp, SMX_FXP_CLOSE, job->dirh, job->dirhlen);
        copy_send(job, copy_on_dir_closed);
        return;
    }
    smx_sftp_name e;
    int rc;
    /* items are appended: the parent's pointer is not kept across copy_push */
    while ((rc = smx_sftp_name_next(r, &e)) > 0) {
        if (!copy_safe_name(e.name, e.name_len))
            continue;
        char kind = SMX_SFTP_IS_DIR(&e.attrs) ? 'd' : SMX_SFTP_IS_REG(&e.attrs) ? 'f'
                    : SMX_SFTP_IS_LNK(&e.attrs) ? 'l' : 0;
        if (!kind)
            continue;   /* devices, sockets, fifos: as scp -r, not copied */
        char *name = strndup((const char *)e.name, e.name_len);
        copy_item *cur = copy_current(job);
        copy_item *it = copy_push(job, kind, name ? smx_copy_join(cur->remote, name) : NULL,
                                  name ? smx_copy_join(cur->local, name) : NULL);
        free(name);
        if (it)
            it->attrs = e.attrs;
    }
    copy_read_dir(job);
}

static void copy_on_opendir(copy_job *job, smx_sftp_reply *r)
{
    if (r->type != SMX_FXP_HANDLE) {
        copy_item_failed_reply(job, r);
        return;
    }
    free(job->dirh);
    job->dirh = malloc(r->data_len ? r->data_len : 1);
    if (!job->dirh) {
        copy_item_error(job, copy_current(job), "out of memory");
        copy_next(job);
        return;
    }
    memcpy(job->dirh, r->data, r->data_len);
    job->dirhlen = r->data_len;
    copy_read_dir(job);
}

/* The current item's local side failed (named by its local path); on to the next. */
static void copy_local_failed(copy_job *job, const char *why)
{
    copy_item *it = copy_current(job);
    char msg[SMX_MSG_MAX];
    snprintf(msg, sizeof msg, "%s: %s", it->local, why);
    copy_record(job, it->local, it->remote, NULL, msg);
    copy_next(job);
}

/* What was already there is used only if it is a directory itself: a symlink (an earlier entry
 * of the same listing could have made one) would lead the files outside the destination. */
static void copy_on_local_dir_lstat(copy_job *job, ssize_t res)
{
    if (res < 0)
        copy_local_failed(job, uv_strerror((int)res));
    else if (!S_ISDIR(job->fs.statbuf.st_mode))
        copy_local_failed(job, "exists and is not a directory");
    else
        copy_path_op(job, SMX_FXP_OPENDIR, copy_current(job)->remote, copy_on_opendir);
}

static void copy_on_local_dir(copy_job *job, ssize_t res)
{
    copy_item *it = copy_current(job);
    if (res == UV_EEXIST)
        copy_fs_started(job, uv_fs_lstat(job->base.engine->ctx.loop, &job->fs, it->local,
                                         copy_fs_done), copy_on_local_dir_lstat);
    else if (res < 0)
        copy_local_failed(job, uv_strerror((int)res));
    else
        copy_path_op(job, SMX_FXP_OPENDIR, it->remote, copy_on_opendir);
}

/* ---- symlinks --------------------------------------------------------------------------------- */

static void copy_on_local_link(copy_job *job, ssize_t res)
{
    copy_item *it = copy_current(job);
    if (res < 0) {
        copy_local_failed(job, uv_strerror((int)res));
        return;
    }
    copy_record(job, it->local, it->remote, NULL, NULL);
    copy_next(job);
}

static void copy_on_old_removed(copy_job *job, ssize_t res)
{
    copy_item *it = copy_current(job);
    copy_fs_started(job, uv_fs_symlink(job->base.engine->ctx.loop, &job->fs, it->link,
                                       it->local, 0, copy_fs_done), copy_on_local_link);
}

static void copy_on_readlink(copy_job *job, smx_sftp_reply *r)
{
    smx_sftp_name e;
    copy_item *it = copy_current(job);
    if (r->type != SMX_FXP_NAME || smx_sftp_name_next(r, &e) <= 0) {
        copy_item_failed_reply(job, r);
        return;
    }
    free(it->link);
    it->link = strndup((const char *)e.name, e.name_len);
    if (!it->link) {
        copy_item_error(job, it, "out of memory");
        copy_next(job);
        return;
    }
    /* replaces what is there, as ln -sf */
    copy_fs_started(job, uv_fs_unlink(job->base.engine->ctx.loop, &job->fs, it->local,
                                      copy_fs_done), copy_on_old_removed);
}

/* ---- items ------------------------------------------------------------------------------------ */

static void copy_on_source_stat(copy_job *job, smx_sftp_reply *r)
{
    copy_item *it = copy_current(job);
    if (r->type != SMX_FXP_ATTRS) {
        copy_item_failed_reply(job, r);
        return;
    }
    it->attrs = r->attrs;
    it->kind = SMX_SFTP_IS_DIR(&r->attrs) ? 'd' : 'f';
    if (!SMX_SFTP_IS_DIR(&r->attrs) && (r->attrs.flags & SMX_FXA_PERMISSIONS) &&
        !SMX_SFTP_IS_REG(&r->attrs)) {
        copy_item_error(job, it, "not a regular file");
        copy_next(job);
        return;
    }
    copy_download_item(job, it);
}

void copy_download_item(copy_job *job, copy_item *it)
{
    uv_loop_t *loop = job->base.engine->ctx.loop;
    switch (it->kind) {
    case '?':   /* a source as given: links followed, as scp does */
        copy_path_op(job, SMX_FXP_STAT, it->remote, copy_on_source_stat);
        break;
    case 'd':
        if (!job->copy->o.recursive) {
            copy_item_error(job, it, "is a directory (use -r)");
            copy_next(job);
            break;
        }
        copy_fs_started(job, uv_fs_mkdir(loop, &job->fs, it->local, 0755, copy_fs_done),
                        copy_on_local_dir);
        break;
    case 'l':
        copy_path_op(job, SMX_FXP_READLINK, it->remote, copy_on_readlink);
        break;
    default:
        copy_start_file(job, it);
        break;
    }
}

/* ---- -p: directories' mode and times, deepest first, once everything in them is written ------ */

static void copy_next_dir_times(copy_job *job);

static void copy_on_dir_utime(copy_job *job, ssize_t res)
{
    copy_next_dir_times(job);   /* as scp -p, a directory it cannot touch is not an error */
}

static void copy_on_dir_chmod(copy_job *job, ssize_t res)
{
    const copy_item *it = &job->items[job->dir_times_at];
    copy_fs_started(job, uv_fs_utime(job->base.engine->ctx.loop, &job->fs, it->local,
                                     it->attrs.atime, it->attrs.mtime, copy_fs_done),
                    copy_on_dir_utime);
}

static void copy_next_dir_times(copy_job *job)
{
    while (job->dir_times_at-- > 0) {
        const copy_item *it = &job->items[job->dir_times_at];
        if (it->kind != 'd' || !(it->attrs.flags & SMX_FXA_ACMODTIME) || !it->local)
            continue;
        copy_fs_started(job, uv_fs_chmod(job->base.engine->ctx.loop, &job->fs, it->local,
                                         (int)(it->attrs.perm & 07777), copy_fs_done),
                        copy_on_dir_chmod);
        return;
    }
    copy_close(job);
}

int copy_download_dir_times(copy_job *job)
{
    job->phase = COPY_DIR_TIMES;
    job->dir_times_at = job->nitems;
    copy_next_dir_times(job);
    return 1;
}
