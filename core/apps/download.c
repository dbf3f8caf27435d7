/* One file from one host:
 *   OPEN remote -> open LOCAL.sshmux-partial [--resume: compare its last bytes with the remote's]
 *   -> READ x N (pipelined; a short read is asked again for the rest, only a STATUS EOF ends the
 *   file) with the DATA written in file order by libuv's threadpool, one write at a time (what
 *   came early waits in memory): the partial file is always a whole prefix of the source, so a
 *   run killed at any moment leaves nothing --resume would take for good data (written at their
 *   offsets as they came, a later block could land before an earlier one and leave a hole
 *   whose end matches the source) -> CLOSE remote
 *   -> [fsync] [times] [mode] -> close -> rename onto LOCAL.
 * On failure: CLOSE remote, close and unlink the partial unless --resume may use it. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xfer.h"

#define DN_DISK_QUEUE_MAX (4u * 1024u * 1024u)   /* bytes received, not yet on disk */
#define DN_VERIFY_MAX (64u * 1024u)

enum dn_state {
    DL_OPEN_REMOTE,
    DL_OPEN_LOCAL,
    DL_STAT_LOCAL,      /* --resume: how much is there */
    DL_READ_LOCAL,      /* --resume: its last bytes */
    DL_VERIFY,          /* --resume: the same bytes from the server */
    DL_TRUNCATE,
    DL_READ,
    DL_CLOSE_REMOTE,
    DL_FSYNC, DL_FUTIME, DL_FCHMOD, DL_CLOSE_LOCAL, DL_RENAME,
    DL_CLEANUP,         /* failed: closing and unlinking */
    DL_DONE
};

struct smx_download {
    smx_sftp *s;
    uv_loop_t *loop;
    char *remote, *local, *path;
    smx_sftp_attrs attrs;
    smx_xfer_params p;
    smx_xfer_outcome *out;
    smx_xfer_done_cb done;
    void *ud;
    enum dn_state st;
    uint8_t *handle;
    size_t hlen;
    uv_file fd;
    int fd_open, created;
    uv_fs_t fs;                     /* the sequential local step in flight */
    int fs_busy;
    uint64_t size, next_off, eof_at;
    size_t block, disk_queued;
    int reads, inflight, writes, busy, finished;
    uint8_t *vbuf;
    size_t vlen;
    uint64_t voff;
    uint64_t t0;
    struct dn_write *pending;       /* received, not yet written: by offset */
    struct dn_write *writing;       /* the blocks of the write in flight */
    uint64_t wr_off;                /* everything below is written */
    uv_fs_t wreq;
};

typedef struct dn_read {
    smx_download *d;
    uint64_t off;
    uint32_t len;
} dn_read;

typedef struct dn_write {
    struct dn_write *next;
    uint64_t off;
    size_t len;
    uint8_t data[];
} dn_write;

#define DN_WRITE_BATCH 16   /* contiguous blocks in one writev */

static void dn_pump(smx_download *d);
static void dn_local_step(smx_download *d);
static void dn_cleanup(smx_download *d);

/* ---- lifetime --------------------------------------------------------------------------------- */

static void dn_maybe_done(smx_download *d)
{
    if (d->busy || d->finished || d->inflight || d->writes || d->fs_busy || d->st != DL_DONE)
        return;
    d->finished = 1;
    d->out->seconds = (double)(uv_hrtime() - d->t0) / 1e9;
    smx_xfer_done_cb done = d->done;
    void *ud = d->ud;
    for (dn_write *w = d->pending, *next; w; w = next) {
        next = w->next;
        free(w);
    }
    free(d->vbuf);
    free(d->handle);
    free(d->remote);
    free(d->local);
    free(d->path);
    free(d);
    done(ud);
}

static void dn_enter(smx_download *d)
{
    d->busy++;
}

static void dn_leave(smx_download *d)
{
    if (--d->busy == 0)
        dn_maybe_done(d);
}

/* The session ended under the task: the local side is cleaned up, nothing more is sent. */
static void dn_lost(smx_download *d, const char *why)
{
    if (!d->out->failed)
        snprintf(d->out->err, sizeof d->out->err, "%s: %s", d->remote, why);
    d->out->failed = d->out->lost = 1;
    if (d->st != DL_CLEANUP && d->st != DL_DONE)
        dn_cleanup(d);
}

static int dn_sent(smx_download *d, int rc)
{
    if (rc == 0)
        d->inflight++;
    else
        dn_lost(d, rc == SMX_ENOMEM ? "out of memory" : "the SFTP session ended");
    return rc;
}

static void dn_fail_text(smx_download *d, const char *what)
{
    if (d->out->failed)
        return;
    d->out->failed = 1;
    snprintf(d->out->err, sizeof d->out->err, "%s: %s", d->local, what);
    dn_cleanup(d);
}

/* 1 if r is not what was wanted (the failure recorded and the cleanup started). */
static int dn_check(smx_download *d, smx_sftp_reply *r, uint8_t want)
{
    if (!r) {
        dn_lost(d, smx_sftp_error(d->s)[0] ? smx_sftp_error(d->s) : "connection lost");
        return 1;
    }
    if (r->type == want && (want != SMX_FXP_STATUS || r->status == SMX_FX_OK))
        return 0;
    if (!d->out->failed) {
        smx_xfer_fail_reply(d->out, r, d->remote);
        dn_cleanup(d);
    }
    return 1;
}

/* ---- local file steps (libuv's threadpool) ---------------------------------------------------- */

static void dn_on_fs(uv_fs_t *req)
{
    smx_download *d = req->data;
    dn_enter(d);
    d->fs_busy = 0;
    ssize_t res = req->result;
    /* what the step did counts whatever happened meanwhile (a cancel while the open ran) */
    if (req->fs_type == UV_FS_OPEN && res >= 0) {
        d->fd = (uv_file)res;
        d->fd_open = d->created = 1;
    } else if (req->fs_type == UV_FS_CLOSE) {
        d->fd_open = 0;
    }
    uv_fs_req_cleanup(req);
    if (d->st == DL_CLEANUP) {
        dn_local_step(d);   /* errors there are not reported: the first failure is */
    } else if (res < 0) {
        dn_fail_text(d, uv_strerror((int)res));
    } else {
        if (d->st == DL_STAT_LOCAL)
            d->voff = d->fs.statbuf.st_size;   /* what is there */
        else if (d->st == DL_READ_LOCAL)
            d->vlen = (size_t)res;
        dn_local_step(d);
    }
    dn_leave(d);
}

static void dn_fs_started(smx_download *d, int rc)
{
    if (rc < 0) {
        d->fs.result = rc;
        d->fs_busy = 1;
        dn_on_fs(&d->fs);   /* reported as the step's failure */
        return;
    }
    d->fs_busy = 1;
}

static void dn_on_verify(void *ud, smx_sftp_reply *r);
static void dn_on_reply(void *ud, smx_sftp_reply *r);

/* --resume: after the local partial's size and last bytes, the same range from the server. */
static void dn_resume_steps(smx_download *d)
{
    uint64_t have;
    switch (d->st) {
    case DL_OPEN_LOCAL:
        if (!d->p.resume) {
            d->st = DL_READ;
            dn_pump(d);
            return;
        }
        d->st = DL_STAT_LOCAL;
        dn_fs_started(d, uv_fs_fstat(d->loop, &d->fs, d->fd, dn_on_fs));
        return;
    case DL_STAT_LOCAL:
        have = d->voff;
        if (have == 0 || have > d->size) {
            d->st = DL_TRUNCATE;
            dn_fs_started(d, uv_fs_ftruncate(d->loop, &d->fs, d->fd, 0, dn_on_fs));
            return;
        }
        d->voff = have > DN_VERIFY_MAX ? have - DN_VERIFY_MAX : 0;
        d->vlen = (size_t)(have - d->voff);
        d->vbuf = malloc(d->vlen);
        if (!d->vbuf) {
            dn_fail_text(d, "out of memory");
            return;
        }
        d->st = DL_READ_LOCAL;
        uv_buf_t b = uv_buf_init((char *)d->vbuf, (unsigned)d->vlen);
        dn_fs_started(d, uv_fs_read(d->loop, &d->fs, d->fd, &b, 1, (int64_t)d->voff, dn_on_fs));
        return;
    case DL_READ_LOCAL:
        d->st = DL_VERIFY;
        dn_sent(d, smx_sftp_read(d->s, d->handle, d->hlen, d->voff, (uint32_t)d->vlen,
                                 dn_on_verify, d));
        return;
    case DL_TRUNCATE:
        d->next_off = d->wr_off = 0;
        d->st = DL_READ;
        dn_pump(d);
        return;
    default:
        return;
    }
}

static void dn_on_verify(void *ud, smx_sftp_reply *r)
{
    smx_download *d = ud;
    dn_enter(d);
    d->inflight--;
    if (!r) {
        dn_check(d, r, 0);
    } else if (!d->out->failed) {
        if (r->type == SMX_FXP_DATA && r->data_len == d->vlen &&
            memcmp(r->data, d->vbuf, d->vlen) == 0) {
            d->next_off = d->wr_off = d->out->resumed_from = d->voff + d->vlen;
            d->st = DL_READ;
            dn_pump(d);
        } else {
            d->st = DL_TRUNCATE;   /* a different file: start over */
            dn_fs_started(d, uv_fs_ftruncate(d->loop, &d->fs, d->fd, 0, dn_on_fs));
        }
    }
    dn_leave(d);
}

/* After the remote file is closed: fsync, times, mode, close, rename, each when due. */
static void dn_finish_steps(smx_download *d)
{
    switch (d->st) {
    case DL_CLOSE_REMOTE:
        if (d->p.fsync) {
            d->st = DL_FSYNC;
            dn_fs_started(d, uv_fs_fsync(d->loop, &d->fs, d->fd, dn_on_fs));
            return;
        }
        /* fall through */
    case DL_FSYNC:
        if (d->p.preserve && (d->attrs.flags & SMX_FXA_ACMODTIME)) {
            d->st = DL_FUTIME;
            dn_fs_started(d, uv_fs_futime(d->loop, &d->fs, d->fd, d->attrs.atime,
                                          d->attrs.mtime, dn_on_fs));
            return;
        }
        /* fall through */
    case DL_FUTIME:
        if (d->p.mode >= 0 || (d->p.preserve && (d->attrs.flags & SMX_FXA_PERMISSIONS))) {
            d->st = DL_FCHMOD;
            int mode = d->p.mode >= 0 ? d->p.mode : (int)(d->attrs.perm & 07777);
            dn_fs_started(d, uv_fs_fchmod(d->loop, &d->fs, d->fd, mode, dn_on_fs));
            return;
        }
        /* fall through */
    case DL_FCHMOD:
        d->st = DL_CLOSE_LOCAL;
        dn_fs_started(d, uv_fs_close(d->loop, &d->fs, d->fd, dn_on_fs));
        return;
    case DL_CLOSE_LOCAL:
        if (strcmp(d->path, d->local) != 0) {
            d->st = DL_RENAME;
            dn_fs_started(d, uv_fs_rename(d->loop, &d->fs, d->path, d->local, dn_on_fs));
            return;
        }
        /* fall through */
    default:
        d->st = DL_DONE;
        return;
    }
}

/* Failure: the remote handle closed, the local file closed and (unless --resume) unlinked, one
 * step at a time; called again as each local step ends. */
static void dn_cleanup(smx_download *d)
{
    d->st = DL_CLEANUP;
    if (d->handle && !d->out->lost) {
        dn_sent(d, smx_sftp_handle_op(d->s, SMX_FXP_CLOSE, d->handle, d->hlen, dn_on_reply, d));
        free(d->handle);
        d->handle = NULL;
    }
    dn_local_step(d);
}

static void dn_local_step(smx_download *d)
{
    if (d->fs_busy || d->writes)
        return;   /* called again when it ends */
    if (d->st != DL_CLEANUP) {
        if (d->st >= DL_CLOSE_REMOTE)
            dn_finish_steps(d);
        else
            dn_resume_steps(d);
        return;
    }
    if (d->fd_open) {
        d->fd_open = 0;
        dn_fs_started(d, uv_fs_close(d->loop, &d->fs, d->fd, dn_on_fs));
    } else if (d->created && !d->p.resume) {
        d->created = 0;
        dn_fs_started(d, uv_fs_unlink(d->loop, &d->fs, d->path, dn_on_fs));
    } else {
        d->st = DL_DONE;
    }
}

/* ---- reading ---------------------------------------------------------------------------------- */

static void dn_on_written(uv_fs_t *req);

/* The next write: the blocks that continue the file from wr_off, if any, in one writev. */
static void dn_write_ready(smx_download *d)
{
    if (d->writes || d->out->failed || !d->pending || d->pending->off != d->wr_off)
        return;
    uv_buf_t bufs[DN_WRITE_BATCH];
    unsigned n = 0;
    uint64_t end = d->wr_off;
    dn_write *last = NULL;
    for (dn_write *w = d->pending; w && n < DN_WRITE_BATCH && w->off == end; w = w->next) {
        bufs[n++] = uv_buf_init((char *)w->data, (unsigned)w->len);
        end += w->len;
        last = w;
    }
    d->writing = d->pending;
    d->pending = last->next;
    last->next = NULL;
    d->wreq.data = d;
    int rc = uv_fs_write(d->loop, &d->wreq, d->fd, bufs, n, (int64_t)d->wr_off, dn_on_written);
    if (rc < 0) {
        dn_fail_text(d, uv_strerror(rc));
        return;
    }
    d->writes = 1;
}

/* A short write (the disk filling up) took only `done` bytes: what it did not take goes back to
 * the front, and the next write says why. */
static void dn_requeue_unwritten(smx_download *d, size_t done)
{
    dn_write *rest = NULL, **tail = &rest;
    for (dn_write *w = d->writing, *next; w; w = next) {
        next = w->next;
        if (done >= w->len) {
            done -= w->len;
            free(w);
            continue;
        }
        if (done) {
            memmove(w->data, w->data + done, w->len - done);
            w->off += done;
            w->len -= done;
            done = 0;
        }
        *tail = w;
        tail = &w->next;
    }
    *tail = d->pending;
    d->pending = rest;
    d->writing = NULL;
}

static void dn_on_written(uv_fs_t *req)
{
    smx_download *d = req->data;
    ssize_t res = req->result;
    uv_fs_req_cleanup(req);
    dn_enter(d);
    d->writes = 0;
    size_t done = res > 0 ? (size_t)res : 0;
    dn_requeue_unwritten(d, done);
    d->disk_queued -= done;
    d->wr_off += done;
    if (!d->out->failed) {
        d->out->bytes += done;
        if (d->out->progress)
            *d->out->progress += done;
    }
    if (res < 0)
        dn_fail_text(d, uv_strerror((int)res));
    else if (res == 0 && d->pending)
        dn_fail_text(d, "the local file takes no more data");
    else
        dn_write_ready(d);
    if (d->st == DL_CLEANUP)
        dn_local_step(d);
    else
        dn_pump(d);
    dn_leave(d);
}

/* Keeps a block until the file reaches it (they nearly always come in order: one look back). */
static void dn_queue_block(smx_download *d, dn_write *w)
{
    dn_write **pp = &d->pending;
    while (*pp && (*pp)->off < w->off)
        pp = &(*pp)->next;
    w->next = *pp;
    *pp = w;
    d->disk_queued += w->len;
    dn_write_ready(d);
}

static void dn_send_read(smx_download *d, uint64_t off, uint32_t len);

static void dn_on_data(void *ud, smx_sftp_reply *r)
{
    dn_read *rq = ud;
    smx_download *d = rq->d;
    uint64_t off = rq->off;
    uint32_t len = rq->len;
    free(rq);
    dn_enter(d);
    d->inflight--;
    d->reads--;
    if (d->out->failed || !r) {
        if (!r)
            dn_check(d, r, 0);
    } else if (r->type == SMX_FXP_STATUS && r->status == SMX_FX_EOF) {
        if (off < d->eof_at)
            d->eof_at = off;   /* the file is shorter than it was */
    } else if (!dn_check(d, r, SMX_FXP_DATA) && r->data_len == 0) {
        dn_fail_text(d, "the server sent an empty read");   /* asked again, it never ends */
    } else if (!d->out->failed) {
        size_t n = r->data_len < len ? r->data_len : len;
        dn_write *w = n ? malloc(sizeof *w + n) : NULL;
        if (n && !w) {
            dn_fail_text(d, "out of memory");
        } else if (n > 0) {
            memcpy(w->data, r->data, n);
            w->off = off;
            w->len = n;
            dn_queue_block(d, w);
        }
        if (!d->out->failed && n < len)
            dn_send_read(d, off + n, (uint32_t)(len - n));   /* short read: the rest again */
    }
    dn_pump(d);
    dn_leave(d);
}

static void dn_send_read(smx_download *d, uint64_t off, uint32_t len)
{
    dn_read *rq = malloc(sizeof *rq);
    if (!rq) {
        dn_fail_text(d, "out of memory");
        return;
    }
    rq->d = d;
    rq->off = off;
    rq->len = len;
    if (dn_sent(d, smx_sftp_read(d->s, d->handle, d->hlen, off, len, dn_on_data, rq)) < 0)
        free(rq);
    else
        d->reads++;
}

static void dn_pump(smx_download *d)
{
    while (d->st == DL_READ && !d->out->failed && d->next_off < d->eof_at &&
           d->reads < d->p.requests && d->disk_queued < DN_DISK_QUEUE_MAX) {
        uint64_t left = d->eof_at - d->next_off;
        uint32_t len = (uint32_t)(left < d->block ? left : d->block);
        dn_send_read(d, d->next_off, len);
        d->next_off += len;
    }
    if (d->st == DL_READ && !d->out->failed && d->reads == 0 && d->next_off >= d->eof_at &&
        d->writes == 0 && d->pending) {
        /* Data past a read that met the end: the file changed size while it was read. */
        dn_fail_text(d, "the file changed while it was read");
        return;
    }
    if (d->st == DL_READ && !d->out->failed && d->reads == 0 && d->next_off >= d->eof_at &&
        d->writes == 0) {
        d->st = DL_CLOSE_REMOTE;
        dn_sent(d, smx_sftp_handle_op(d->s, SMX_FXP_CLOSE, d->handle, d->hlen, dn_on_reply, d));
    }
}

/* ---- remote steps ----------------------------------------------------------------------------- */

static void dn_on_reply(void *ud, smx_sftp_reply *r)
{
    smx_download *d = ud;
    dn_enter(d);
    d->inflight--;
    if (!r) {
        dn_check(d, r, 0);
    } else if (d->st == DL_OPEN_REMOTE) {
        if (!dn_check(d, r, SMX_FXP_HANDLE)) {
            d->handle = malloc(r->data_len ? r->data_len : 1);
            if (!d->handle) {
                dn_fail_text(d, "out of memory");
            } else {
                memcpy(d->handle, r->data, r->data_len);
                d->hlen = r->data_len;
                /* --resume reads the partial's tail back; a symlink planted there is not
                 * followed out of the destination */
                int flags = O_CREAT | O_CLOEXEC | O_NOFOLLOW |
                            (d->p.resume ? O_RDWR : O_WRONLY | O_TRUNC);
                int mode = d->p.mode >= 0 ? d->p.mode
                           : (d->attrs.flags & SMX_FXA_PERMISSIONS) ? (int)(d->attrs.perm & 0777)
                                                                    : 0644;
                d->st = DL_OPEN_LOCAL;
                dn_fs_started(d, uv_fs_open(d->loop, &d->fs, d->path, flags, mode | 0600,
                                            dn_on_fs));
            }
        }
    } else if (d->st == DL_CLOSE_REMOTE) {
        free(d->handle);
        d->handle = NULL;
        if (!dn_check(d, r, SMX_FXP_STATUS))
            dn_local_step(d);
    }
    dn_leave(d);
}

smx_download *smx_download_start(smx_sftp *s, uv_loop_t *loop, const char *remote,
                                 const smx_sftp_attrs *attrs, const char *local,
                                 const smx_xfer_params *p, smx_xfer_outcome *out,
                                 smx_xfer_done_cb done, void *ud)
{
    smx_download *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    size_t n = strlen(local) + sizeof SMX_PARTIAL_SUFFIX;
    d->remote = strdup(remote);
    d->local = strdup(local);
    d->path = malloc(n);
    if (!d->remote || !d->local || !d->path) {
        free(d->remote);
        free(d->local);
        free(d->path);
        free(d);
        return NULL;
    }
    snprintf(d->path, n, "%s%s", local, p->atomic ? SMX_PARTIAL_SUFFIX : "");
    d->s = s;
    d->loop = loop;
    d->attrs = *attrs;
    d->p = *p;
    d->out = out;
    d->done = done;
    d->ud = ud;
    d->fs.data = d;
    d->t0 = uv_hrtime();
    d->size = d->eof_at = (attrs->flags & SMX_FXA_SIZE) ? attrs->size : UINT64_MAX;
    out->size = d->size == UINT64_MAX ? 0 : d->size;
    size_t max = smx_sftp_max_read(s);
    d->block = p->block_size && p->block_size < max ? p->block_size : max;
    d->busy = 1;
    d->st = DL_OPEN_REMOTE;
    dn_sent(d, smx_sftp_open(s, remote, SMX_FXF_READ, NULL, dn_on_reply, d));
    dn_leave(d);
    return d;
}

void smx_download_cancel(smx_download *d, const char *why)
{
    dn_enter(d);
    dn_fail_text(d, why);
    dn_leave(d);
}
