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
    copy_run *run = req->data;
    ssize_t res = req->result;
    uv_fs_req_cleanup(req);
    run->fs_busy = 0;
    if (run->phase == COPY_CLOSING) {
        copy_close(run);   /* this step may have been the last thing it waited for */
        return;
    }
    run->fs_next(run, res);
}

/* Starts a local step on the run's request; next gets its result. */
static void copy_fs_started(copy_run *run, int rc, void (*next)(copy_run *, ssize_t))
{
    run->fs_next = next;
    run->fs_busy = 1;
    if (rc < 0) {
        run->fs.result = rc;
        copy_fs_done(&run->fs);
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

static void copy_on_base_dir(copy_run *run, ssize_t res)
{
    if (res < 0 && res != UV_EEXIST) {
        char msg[SMX_MSG_MAX];
        snprintf(msg, sizeof msg, "%s: %s", run->dest, uv_strerror((int)res));
        smx_result_set_error(run->result, SMX_STAGE_SFTP, SMX_EIO, msg);
        copy_close(run);
        return;
    }
    run->phase = COPY_ITEMS;
    copy_next(run);
}

void copy_plan_download(copy_run *run)
{
    smx_copy *c = run->copy;
    char *host = copy_host_component(run->result->host);
    run->dest = host && c->o.layout == SMX_LAYOUT_HOSTDIR ? smx_copy_join(c->dest, host)
                                                          : strdup(c->dest);
    int ok = host && run->dest;
    for (size_t i = 0; ok && i < c->sources.n; i++) {
        char *remote = smx_copy_expand(c->sources.v[i], run->result->host, run->index);
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
            local = strdup(run->dest);   /* the exact local file */
        else if (name)
            local = smx_copy_join(run->dest, name[0] ? name : host);
        free(name);
        ok = copy_push(run, '?', remote, local) != NULL;
    }
    free(host);
    if (!ok) {
        smx_result_set_error(run->result, SMX_STAGE_SFTP, SMX_ENOMEM, "out of memory");
        copy_close(run);
        return;
    }
    if (c->o.layout == SMX_LAYOUT_HOSTDIR)
        copy_fs_started(run, uv_fs_mkdir(run->loop, &run->fs, run->dest, 0755,
                                         copy_fs_done), copy_on_base_dir);
    else
        copy_on_base_dir(run, 0);
}

static copy_item *copy_current(copy_run *run)
{
    return &run->items[run->next - 1];
}

/* ---- directories (-r) ------------------------------------------------------------------------- */

static void copy_on_readdir(copy_run *run, smx_sftp_reply *r);

static void copy_on_dir_closed(copy_run *run, smx_sftp_reply *r)
{
    copy_next(run);
}

static void copy_read_dir(copy_run *run)
{
    smx_sftp_begin_handle(run->sftp, SMX_FXP_READDIR, run->dirh, run->dirhlen);
    copy_send(run, copy_on_readdir);
}

static int copy_safe_name(const uint8_t *n, size_t len)
{
    return len > 0 && memchr(n, '/', len) == NULL && memchr(n, '\0', len) == NULL &&
           !(len == 1 && n[0] == '.') && !(len == 2 && n[0] == '.' && n[1] == '.');
}

static void copy_on_readdir(copy_run *run, smx_sftp_reply *r)
{
    if (r->type == SMX_FXP_STATUS) {
        copy_item *it = copy_current(run);
        if (r->status != SMX_FX_EOF) {   /* what was listed so far is still copied */
            char msg[SMX_MSG_MAX];
            smx_sftp_status_message(r, it->remote, msg, sizeof msg);
            copy_record(run, it->local, it->remote, NULL, msg);
        }
        smx_sftp_begin_handle(run->sftp, SMX_FXP_CLOSE, run->dirh, run->dirhlen);
        copy_send(run, copy_on_dir_closed);
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
        copy_item *cur = copy_current(run);
        copy_item *it = copy_push(run, kind, name ? smx_copy_join(cur->remote, name) : NULL,
                                  name ? smx_copy_join(cur->local, name) : NULL);
        free(name);
        if (it)
            it->attrs = e.attrs;
    }
    copy_read_dir(run);
}

static void copy_on_opendir(copy_run *run, smx_sftp_reply *r)
{
    if (r->type != SMX_FXP_HANDLE) {
        copy_item_failed_reply(run, r);
        return;
    }
    free(run->dirh);
    run->dirh = malloc(r->data_len ? r->data_len : 1);
    if (!run->dirh) {
        copy_item_error(run, copy_current(run), "out of memory");
        copy_next(run);
        return;
    }
    memcpy(run->dirh, r->data, r->data_len);
    run->dirhlen = r->data_len;
    copy_read_dir(run);
}

/* The current item's local side failed (named by its local path); on to the next. */
static void copy_local_failed(copy_run *run, const char *why)
{
    copy_item *it = copy_current(run);
    char msg[SMX_MSG_MAX];
    snprintf(msg, sizeof msg, "%s: %s", it->local, why);
    copy_record(run, it->local, it->remote, NULL, msg);
    copy_next(run);
}

/* What was already there is used only if it is a directory itself: a symlink (an earlier entry
 * of the same listing could have made one) would lead the files outside the destination. */
static void copy_on_local_dir_lstat(copy_run *run, ssize_t res)
{
    if (res < 0)
        copy_local_failed(run, uv_strerror((int)res));
    else if (!S_ISDIR(run->fs.statbuf.st_mode))
        copy_local_failed(run, "exists and is not a directory");
    else
        copy_path_op(run, SMX_FXP_OPENDIR, copy_current(run)->remote, copy_on_opendir);
}

static void copy_on_local_dir(copy_run *run, ssize_t res)
{
    copy_item *it = copy_current(run);
    if (res == UV_EEXIST)
        copy_fs_started(run, uv_fs_lstat(run->loop, &run->fs, it->local,
                                         copy_fs_done), copy_on_local_dir_lstat);
    else if (res < 0)
        copy_local_failed(run, uv_strerror((int)res));
    else
        copy_path_op(run, SMX_FXP_OPENDIR, it->remote, copy_on_opendir);
}

/* ---- symlinks --------------------------------------------------------------------------------- */

static void copy_on_local_link(copy_run *run, ssize_t res)
{
    copy_item *it = copy_current(run);
    if (res < 0) {
        copy_local_failed(run, uv_strerror((int)res));
        return;
    }
    copy_record(run, it->local, it->remote, NULL, NULL);
    copy_next(run);
}

static void copy_on_old_removed(copy_run *run, ssize_t res)
{
    copy_item *it = copy_current(run);
    copy_fs_started(run, uv_fs_symlink(run->loop, &run->fs, it->link,
                                       it->local, 0, copy_fs_done), copy_on_local_link);
}

static void copy_on_readlink(copy_run *run, smx_sftp_reply *r)
{
    smx_sftp_name e;
    copy_item *it = copy_current(run);
    if (r->type != SMX_FXP_NAME || smx_sftp_name_next(r, &e) <= 0) {
        copy_item_failed_reply(run, r);
        return;
    }
    free(it->link);
    it->link = strndup((const char *)e.name, e.name_len);
    if (!it->link) {
        copy_item_error(run, it, "out of memory");
        copy_next(run);
        return;
    }
    /* replaces what is there, as ln -sf */
    copy_fs_started(run, uv_fs_unlink(run->loop, &run->fs, it->local,
                                      copy_fs_done), copy_on_old_removed);
}

/* ---- items ------------------------------------------------------------------------------------ */

static void copy_on_source_stat(copy_run *run, smx_sftp_reply *r)
{
    copy_item *it = copy_current(run);
    if (r->type != SMX_FXP_ATTRS) {
        copy_item_failed_reply(run, r);
        return;
    }
    it->attrs = r->attrs;
    it->kind = SMX_SFTP_IS_DIR(&r->attrs) ? 'd' : 'f';
    if (!SMX_SFTP_IS_DIR(&r->attrs) && (r->attrs.flags & SMX_FXA_PERMISSIONS) &&
        !SMX_SFTP_IS_REG(&r->attrs)) {
        copy_item_error(run, it, "not a regular file");
        copy_next(run);
        return;
    }
    copy_download_item(run, it);
}

void copy_download_item(copy_run *run, copy_item *it)
{
    uv_loop_t *loop = run->loop;
    switch (it->kind) {
    case '?':   /* a source as given: links followed, as scp does */
        copy_path_op(run, SMX_FXP_STAT, it->remote, copy_on_source_stat);
        break;
    case 'd':
        if (!run->copy->o.recursive) {
            copy_item_error(run, it, "is a directory (use -r)");
            copy_next(run);
            break;
        }
        copy_fs_started(run, uv_fs_mkdir(loop, &run->fs, it->local, 0755, copy_fs_done),
                        copy_on_local_dir);
        break;
    case 'l':
        copy_path_op(run, SMX_FXP_READLINK, it->remote, copy_on_readlink);
        break;
    default:
        copy_start_file(run, it);
        break;
    }
}

/* ---- -p: directories' mode and times, deepest first, once everything in them is written ------ */

static void copy_next_dir_times(copy_run *run);

static void copy_on_dir_utime(copy_run *run, ssize_t res)
{
    copy_next_dir_times(run);   /* as scp -p, a directory it cannot touch is not an error */
}

static void copy_on_dir_chmod(copy_run *run, ssize_t res)
{
    const copy_item *it = &run->items[run->dir_times_at];
    copy_fs_started(run, uv_fs_utime(run->loop, &run->fs, it->local,
                                     it->attrs.atime, it->attrs.mtime, copy_fs_done),
                    copy_on_dir_utime);
}

static void copy_next_dir_times(copy_run *run)
{
    while (run->dir_times_at-- > 0) {
        const copy_item *it = &run->items[run->dir_times_at];
        if (it->kind != 'd' || !(it->attrs.flags & SMX_FXA_ACMODTIME) || !it->local)
            continue;
        copy_fs_started(run, uv_fs_chmod(run->loop, &run->fs, it->local,
                                         (int)(it->attrs.perm & 07777), copy_fs_done),
                        copy_on_dir_chmod);
        return;
    }
    copy_close(run);
}

int copy_download_dir_times(copy_run *run)
{
    run->phase = COPY_DIR_TIMES;
    run->dir_times_at = run->nitems;
    copy_next_dir_times(run);
    return 1;
}
