/* One file to one host:
 *   [--resume: STAT the partial -> OPEN read/write -> READ its last bytes -> compare]
 *   OPEN -> WRITE x N (pipelined, data borrowed from the shared blocks) -> [fsync@] -> [FSETSTAT]
 *   -> CLOSE -> [posix-rename@ DEST.sshmux-partial onto DEST]
 * On failure: CLOSE, and REMOVE what was written unless --resume may use it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xfer.h"

#define UP_VERIFY_MAX (64u * 1024u)   /* bytes of a partial file compared before resuming */

enum up_state {
    UP_STAT,        /* --resume: how much is there */
    UP_OPEN,
    UP_VERIFY,      /* --resume: reading the partial's last bytes */
    UP_TRUNCATE,    /* --resume found a different file: start over */
    UP_WRITE,
    UP_FSYNC,
    UP_SETSTAT,
    UP_CLOSE,
    UP_UNLINK,      /* no posix-rename@: the old file goes first */
    UP_RENAME,
    UP_STATVFS,     /* a write failed: is the disk full? */
    UP_DONE
};

struct smx_upload {
    smx_sftp *s;
    smx_xfer_local src;
    char *remote, *path;            /* the destination, and where the bytes go */
    smx_xfer_params p;
    smx_xfer_outcome *out;
    smx_xfer_done_cb done;
    void *ud;
    enum up_state st;
    uint8_t *handle;
    size_t hlen;
    size_t block;
    uint64_t next_off, verify_off;
    size_t verify_len;
    int inflight;                   /* requests awaiting a reply */
    int writes;                     /* ... of which WRITEs */
    int busy;                       /* inside one of our callbacks: finish afterwards */
    int finished;
    int opened;                     /* the file was created or truncated by us */
    smx_block *hold[2];
    smx_block_wait wait;
    int waiting;
    uint64_t wait_index;
    uint64_t t0;
};

typedef struct up_wreq {
    smx_upload *u;
    smx_block *b[2];
    uint32_t len;
} up_wreq;

static void up_step(smx_upload *u);
static void up_pump(smx_upload *u);

/* ---- lifetime --------------------------------------------------------------------------------- */

static void up_maybe_done(smx_upload *u)
{
    if (u->busy || u->finished || u->inflight || u->waiting ||
        !(u->st == UP_DONE || (u->out->lost && u->out->failed)))
        return;
    u->finished = 1;
    for (int i = 0; i < 2; i++)
        if (u->hold[i])
            smx_block_unref(u->hold[i]);
    smx_filesrc_release(u->src.src);
    u->out->seconds = (double)(uv_hrtime() - u->t0) / 1e9;
    smx_xfer_done_cb done = u->done;
    void *ud = u->ud;
    free(u->handle);
    free(u->remote);
    free(u->path);
    free(u);
    done(ud);
}

static void up_enter(smx_upload *u)
{
    u->busy++;
}

static void up_leave(smx_upload *u)
{
    if (--u->busy == 0)
        up_maybe_done(u);
}

/* The session ended under the task: nothing more is sent, the host is done. */
static void up_lost(smx_upload *u, const char *why)
{
    if (!u->out->failed)
        snprintf(u->out->err, sizeof u->out->err, "%s: %s", u->remote, why);
    u->out->failed = u->out->lost = 1;
}

/* A request of ours went out (its callback gets u): counted until its reply. */
static int up_sent(smx_upload *u, int rc)
{
    if (rc == 0)
        u->inflight++;
    else
        up_lost(u, rc == SMX_ENOMEM ? "out of memory" : "the SFTP session ended");
    return rc;
}

/* The cleanup after a failure: CLOSE the handle, REMOVE what --resume will not use. */
static void up_cleanup(smx_upload *u);

static void up_fail_text(smx_upload *u, const char *msg)
{
    if (u->out->failed)
        return;
    u->out->failed = 1;
    snprintf(u->out->err, sizeof u->out->err, "%s", msg);
    up_cleanup(u);
}

/* A reply (its request already uncounted) that is not the expected one, or none: the session
 * is gone. 1 if it was a failure. */
static int up_check(smx_upload *u, smx_sftp_reply *r, uint8_t want)
{
    if (!r) {
        up_lost(u, smx_sftp_error(u->s)[0] ? smx_sftp_error(u->s) : "connection lost");
        return 1;
    }
    if (r->type == want && (want != SMX_FXP_STATUS || r->status == SMX_FX_OK))
        return 0;
    if (!u->out->failed) {
        smx_xfer_fail_reply(u->out, r, u->remote);
        up_cleanup(u);
    }
    return 1;
}

static void up_on_cleanup_reply(void *ud, smx_sftp_reply *r)
{
    smx_upload *u = ud;
    up_enter(u);
    u->inflight--;
    if (!r)
        u->out->lost = 1;
    up_leave(u);
}

static void up_cleanup(smx_upload *u)
{
    if (!u->out->lost && u->handle)
        up_sent(u, smx_sftp_handle_op(u->s, SMX_FXP_CLOSE, u->handle, u->hlen,
                                      up_on_cleanup_reply, u));
    free(u->handle);
    u->handle = NULL;
    /* only what this task created or truncated: never a file it could not open */
    if (!u->out->lost && u->opened && !u->p.resume)
        up_sent(u, smx_sftp_path_op(u->s, SMX_FXP_REMOVE, u->path, up_on_cleanup_reply, u));
    u->st = UP_DONE;
}

/* ---- the shared blocks ------------------------------------------------------------------------ */

static void up_on_block(smx_block_wait *w, smx_block *b, int err)
{
    smx_upload *u = smx_list_entry(w, smx_upload, wait);
    up_enter(u);
    u->waiting = 0;
    if (!b) {
        char msg[SMX_MSG_MAX];
        snprintf(msg, sizeof msg, "%s: reading the local file: %s", u->remote, uv_strerror(err));
        up_fail_text(u, msg);
    } else if (u->out->failed) {
        smx_block_unref(b);
    } else {
        int slot = u->hold[0] ? 1 : 0;
        if (u->hold[slot])
            smx_block_unref(u->hold[slot]);
        u->hold[slot] = b;
        up_step(u);
    }
    up_leave(u);
}

/* Block `index` held in one of the two slots: the slot, or -1 while it is being read. */
static int up_hold(smx_upload *u, uint64_t index)
{
    for (int i = 0; i < 2; i++)
        if (u->hold[i] && u->hold[i]->index == index)
            return i;
    if (u->waiting)
        return -1;
    /* keep the block of the current offset, drop the other */
    int keep = u->hold[0] && u->hold[0]->index == u->next_off / SMX_FILESRC_BLOCK ? 0 : 1;
    int slot = 1 - keep;
    if (u->hold[slot]) {
        smx_block_unref(u->hold[slot]);
        u->hold[slot] = NULL;
    }
    if (!u->hold[keep] || u->hold[keep]->index != u->next_off / SMX_FILESRC_BLOCK) {
        if (u->hold[keep])
            smx_block_unref(u->hold[keep]);
        u->hold[keep] = NULL;
    }
    u->waiting = 1;
    u->wait.cb = up_on_block;
    smx_block *b = smx_filesrc_get(u->src.src, index, &u->wait);
    if (!b)
        return -1;   /* read in progress, or failed (up_on_block ran) */
    u->waiting = 0;
    slot = u->hold[0] ? 1 : 0;
    u->hold[slot] = b;
    return slot;
}

/* ---- writing ---------------------------------------------------------------------------------- */

static void up_release_data(void *arg)
{
    up_wreq *w = arg;
    for (int i = 0; i < 2; i++)
        if (w->b[i])
            smx_block_unref(w->b[i]);
    w->b[0] = w->b[1] = NULL;
}

/* A WRITE failed with "Failure", which says nothing: a full disk is the usual cause. */
static void up_on_statvfs(void *ud, smx_sftp_reply *r)
{
    smx_upload *u = ud;
    up_enter(u);
    u->inflight--;
    if (!r) {
        up_lost(u, "connection lost");
    } else if (r->type == SMX_FXP_EXTENDED_REPLY) {
        smx_sftp_in in = {r->data, r->data_len, 0};
        smx_sftp_in_u64(&in);                       /* f_bsize */
        uint64_t frsize = smx_sftp_in_u64(&in);
        smx_sftp_in_u64(&in);                       /* f_blocks */
        smx_sftp_in_u64(&in);                       /* f_bfree */
        uint64_t avail = smx_sftp_in_u64(&in) * frsize;
        if (!in.bad && avail < u->block)
            snprintf(u->out->err, sizeof u->out->err,
                     "%s: no space left on device (%llu bytes free)", u->remote,
                     (unsigned long long)avail);
    }
    if (!u->out->lost)
        up_cleanup(u);
    up_leave(u);
}

static void up_on_write(void *ud, smx_sftp_reply *r)
{
    up_wreq *w = ud;
    smx_upload *u = w->u;
    uint32_t len = w->len;
    up_release_data(w);   /* already done unless the session closed before sending */
    free(w);
    up_enter(u);
    u->writes--;
    u->inflight--;
    if (r && r->type == SMX_FXP_STATUS && r->status == SMX_FX_FAILURE && !u->out->failed &&
        smx_sftp_has_ext(u->s, "statvfs@openssh.com")) {
        u->out->failed = 1;
        smx_xfer_fail_reply(u->out, r, u->remote);
        u->st = UP_STATVFS;
        smx_sftp_out *o = smx_sftp_begin_ext(u->s, "statvfs@openssh.com");
        smx_sftp_out_cstr(o, u->path);
        up_sent(u, smx_sftp_send(u->s, NULL, up_on_statvfs, u));
    } else if (!up_check(u, r, SMX_FXP_STATUS)) {
        u->out->bytes += len;
        if (u->out->progress)
            *u->out->progress += len;
        up_pump(u);
    }
    up_leave(u);
}

static void up_send_write(smx_upload *u, uint64_t off, size_t len, int s0, int s1)
{
    up_wreq *w = calloc(1, sizeof *w);
    if (!w) {
        up_fail_text(u, "out of memory");
        return;
    }
    smx_block *b0 = u->hold[s0];
    size_t in0 = (size_t)(off - b0->index * SMX_FILESRC_BLOCK);
    size_t len0 = len < b0->len - in0 ? len : b0->len - in0;
    smx_sftp_data d = {{b0->data + in0, NULL}, {len0, 0}, up_release_data, w};
    w->u = u;
    w->len = (uint32_t)len;
    w->b[0] = b0;
    smx_block_ref(b0);
    if (len0 < len) {
        w->b[1] = u->hold[s1];
        smx_block_ref(w->b[1]);
        d.p[1] = w->b[1]->data;
        d.len[1] = len - len0;
    }
    u->writes++;
    if (up_sent(u, smx_sftp_write(u->s, u->handle, u->hlen, off, &d, up_on_write, w)) < 0) {
        u->writes--;
        free(w);   /* smx_sftp_send released the data */
    }
}

static void up_pump(smx_upload *u)
{
    size_t cap = 2 * u->block + 65536;   /* queued bytes: keeps the blocks a host pins few */
    while (u->st == UP_WRITE && !u->out->failed && u->next_off < u->src.size &&
           u->writes < u->p.requests && smx_sftp_queued(u->s) < cap) {
        uint64_t off = u->next_off;
        size_t len = u->src.size - off < u->block ? (size_t)(u->src.size - off) : u->block;
        int s0 = up_hold(u, off / SMX_FILESRC_BLOCK);
        if (s0 < 0)
            return;
        int s1 = s0;
        if ((off + len - 1) / SMX_FILESRC_BLOCK != off / SMX_FILESRC_BLOCK &&
            (s1 = up_hold(u, (off + len - 1) / SMX_FILESRC_BLOCK)) < 0)
            return;
        if (u->hold[s0]->index != off / SMX_FILESRC_BLOCK)
            continue;   /* the second hold replaced the first (cannot with two slots) */
        u->next_off += len;
        up_send_write(u, off, len, s0, s1);
    }
    if (u->st == UP_WRITE && !u->out->failed && u->next_off >= u->src.size && u->writes == 0)
        up_step(u);
}

void smx_upload_writable(smx_upload *u)
{
    up_enter(u);
    up_pump(u);
    up_leave(u);
}

/* ---- the steps -------------------------------------------------------------------------------- */

static void up_on_reply(void *ud, smx_sftp_reply *r);

static void up_send_path(smx_upload *u, uint8_t type, const char *path)
{
    up_sent(u, smx_sftp_path_op(u->s, type, path, up_on_reply, u));
}

static void up_send_handle(smx_upload *u, uint8_t type)
{
    up_sent(u, smx_sftp_handle_op(u->s, type, u->handle, u->hlen, up_on_reply, u));
}

static void up_send_fsetstat(smx_upload *u, const smx_sftp_attrs *a)
{
    smx_sftp_out *o = smx_sftp_begin_handle(u->s, SMX_FXP_FSETSTAT, u->handle, u->hlen);
    smx_sftp_out_attrs(o, a);
    up_sent(u, smx_sftp_send(u->s, NULL, up_on_reply, u));
}

/* Permissions of the file created: --mode, else the source's. */
static uint32_t up_mode(const smx_upload *u)
{
    return (uint32_t)(u->p.mode >= 0 ? u->p.mode : (int)(u->src.perm & 07777));
}

static void up_open(smx_upload *u, int keep)
{
    smx_sftp_attrs a = {0};
    a.flags = SMX_FXA_PERMISSIONS;
    a.perm = up_mode(u);
    uint32_t fl = SMX_FXF_WRITE | SMX_FXF_CREAT | (keep ? SMX_FXF_READ : SMX_FXF_TRUNC) |
                  (u->p.excl ? SMX_FXF_EXCL : 0);
    u->st = UP_OPEN;
    up_sent(u, smx_sftp_open(u->s, u->path, fl, &a, up_on_reply, u));
}

/* The partial onto the destination: posix-rename@ replaces it atomically; plain RENAME only
 * after the old one was removed. */
static void up_send_rename(smx_upload *u, int posix)
{
    smx_sftp_out *o = posix ? smx_sftp_begin_ext(u->s, "posix-rename@openssh.com")
                            : smx_sftp_begin(u->s, SMX_FXP_RENAME);
    u->st = UP_RENAME;
    smx_sftp_out_cstr(o, u->path);
    smx_sftp_out_cstr(o, u->remote);
    up_sent(u, smx_sftp_send(u->s, NULL, up_on_reply, u));
}

/* After the writes: fsync, attributes, close, rename, each when asked for. */
static void up_finish_steps(smx_upload *u, enum up_state from)
{
    switch (from) {
    case UP_WRITE:
        if (u->p.fsync && smx_sftp_has_ext(u->s, "fsync@openssh.com")) {
            u->st = UP_FSYNC;
            smx_sftp_out *o = smx_sftp_begin_ext(u->s, "fsync@openssh.com");
            smx_sftp_out_str(o, u->handle, u->hlen);
            up_sent(u, smx_sftp_send(u->s, NULL, up_on_reply, u));
            return;
        }
        /* fall through */
    case UP_FSYNC:
        if (u->p.preserve || u->p.mode >= 0) {
            smx_sftp_attrs a = {0};
            a.flags = SMX_FXA_PERMISSIONS | (u->p.preserve ? SMX_FXA_ACMODTIME : 0);
            a.perm = up_mode(u);
            a.atime = u->src.atime;
            a.mtime = u->src.mtime;
            u->st = UP_SETSTAT;
            up_send_fsetstat(u, &a);
            return;
        }
        /* fall through */
    case UP_SETSTAT:
        u->st = UP_CLOSE;
        up_send_handle(u, SMX_FXP_CLOSE);
        return;
    case UP_CLOSE:
        free(u->handle);
        u->handle = NULL;
        if (strcmp(u->path, u->remote) == 0) {
            u->st = UP_DONE;
            return;
        }
        if (!smx_sftp_has_ext(u->s, "posix-rename@openssh.com")) {
            u->st = UP_UNLINK;   /* plain RENAME refuses to replace a file */
            up_send_path(u, SMX_FXP_REMOVE, u->remote);
            return;
        }
        up_send_rename(u, 1);
        return;
    case UP_UNLINK:
        up_send_rename(u, 0);
        return;
    default:
        u->st = UP_DONE;
        return;
    }
}

/* --resume: the partial's last bytes against the source's. */
/* The source's bytes at [off, off + len) equal p's (they lie in at most the two held blocks). */
static int up_same_as_source(const smx_upload *u, uint64_t off, const uint8_t *p, size_t len)
{
    while (len > 0) {
        const smx_block *b = NULL;
        for (int i = 0; i < 2; i++)
            if (u->hold[i] && u->hold[i]->index == off / SMX_FILESRC_BLOCK)
                b = u->hold[i];
        if (!b)
            return 0;
        size_t in = (size_t)(off - b->index * SMX_FILESRC_BLOCK);
        size_t n = len < b->len - in ? len : b->len - in;
        if (n == 0 || memcmp(b->data + in, p, n) != 0)
            return 0;
        off += n;
        p += n;
        len -= n;
    }
    return 1;
}

/* Both blocks the comparison needs are held: 1, or 0 while one is read (up_step goes on). */
static int up_verify_blocks(smx_upload *u)
{
    return up_hold(u, u->verify_off / SMX_FILESRC_BLOCK) >= 0 &&
           up_hold(u, (u->verify_off + u->verify_len - 1) / SMX_FILESRC_BLOCK) >= 0;
}

/* --resume: the partial's last bytes against the source's. */
static void up_verify(smx_upload *u, smx_sftp_reply *r)
{
    int same = r && r->type == SMX_FXP_DATA && r->data_len == u->verify_len &&
               up_same_as_source(u, u->verify_off, r->data, u->verify_len);
    if (same) {
        u->next_off = u->out->resumed_from = u->verify_off + u->verify_len;
        u->st = UP_WRITE;
        up_pump(u);
        return;
    }
    u->next_off = 0;
    u->st = UP_TRUNCATE;   /* not the same file: start over */
    smx_sftp_attrs a = {0};
    a.flags = SMX_FXA_SIZE;   /* size 0 */
    up_send_fsetstat(u, &a);
}

static void up_on_opened(smx_upload *u, smx_sftp_reply *r)
{
    free(u->handle);
    u->handle = malloc(r->data_len ? r->data_len : 1);
    if (!u->handle) {
        up_fail_text(u, "out of memory");
        return;
    }
    memcpy(u->handle, r->data, r->data_len);
    u->hlen = r->data_len;
    u->opened = 1;
    if (u->verify_len == 0) {
        u->st = UP_WRITE;
        up_pump(u);
        return;
    }
    /* the blocks to compare against must be here before the partial's bytes are */
    if (!up_verify_blocks(u))
        return;   /* up_step sends the READ once they are (or the read failed) */
    u->st = UP_VERIFY;
    up_sent(u, smx_sftp_read(u->s, u->handle, u->hlen, u->verify_off, (uint32_t)u->verify_len,
                             up_on_reply, u));
}

static void up_on_stat(smx_upload *u, smx_sftp_reply *r)
{
    uint64_t have = r->type == SMX_FXP_ATTRS && (r->attrs.flags & SMX_FXA_SIZE) ? r->attrs.size : 0;
    if (have > 0 && have <= u->src.size && SMX_SFTP_IS_REG(&r->attrs)) {
        u->verify_off = have > UP_VERIFY_MAX ? have - UP_VERIFY_MAX : 0;
        u->verify_len = (size_t)(have - u->verify_off);
        u->next_off = u->verify_off;   /* up_hold keeps the block of next_off */
    }
    up_open(u, u->verify_len > 0);
}

static void up_on_reply(void *ud, smx_sftp_reply *r)
{
    smx_upload *u = ud;
    up_enter(u);
    u->inflight--;
    if (!r) {
        up_check(u, r, 0);
    } else if (u->out->failed) {
        /* the cleanup already started; an OPEN answered since created a file it must remove */
        if (r->type == SMX_FXP_HANDLE && !u->out->lost && (u->handle = malloc(r->data_len + 1))) {
            memcpy(u->handle, r->data, r->data_len);
            u->hlen = r->data_len;
            u->opened = 1;
            up_cleanup(u);
        }
    } else {
        switch (u->st) {
        case UP_STAT:
            up_on_stat(u, r);
            break;
        case UP_OPEN:
            if (!up_check(u, r, SMX_FXP_HANDLE))
                up_on_opened(u, r);
            break;
        case UP_VERIFY:
            up_verify(u, r);
            break;
        case UP_TRUNCATE:
            if (!up_check(u, r, SMX_FXP_STATUS)) {
                u->next_off = 0;
                u->st = UP_WRITE;
                up_pump(u);
            }
            break;
        case UP_UNLINK:   /* a missing DEST is fine */
            up_finish_steps(u, UP_UNLINK);
            break;
        case UP_FSYNC:
        case UP_SETSTAT:
        case UP_CLOSE:
        case UP_RENAME:
            if (!up_check(u, r, SMX_FXP_STATUS))
                up_finish_steps(u, u->st);
            break;
        default:
            break;
        }
    }
    up_leave(u);
}

static void up_step(smx_upload *u)
{
    if (u->out->failed)
        return;
    switch (u->st) {
    case UP_OPEN:
        if (u->verify_len && u->handle && up_verify_blocks(u)) {   /* the blocks came */
            u->st = UP_VERIFY;
            up_sent(u, smx_sftp_read(u->s, u->handle, u->hlen, u->verify_off,
                                     (uint32_t)u->verify_len, up_on_reply, u));
        }
        break;
    case UP_WRITE:
        if (u->next_off >= u->src.size && u->writes == 0)
            up_finish_steps(u, UP_WRITE);
        else
            up_pump(u);
        break;
    default:
        break;
    }
}

smx_upload *smx_upload_start(smx_sftp *s, const smx_xfer_local *src, const char *remote,
                             const smx_xfer_params *p, smx_xfer_outcome *out,
                             smx_xfer_done_cb done, void *ud)
{
    smx_upload *u = calloc(1, sizeof *u);
    if (!u)
        return NULL;
    u->remote = strdup(remote);
    size_t n = strlen(remote) + sizeof SMX_PARTIAL_SUFFIX;
    u->path = malloc(n);
    if (!u->remote || !u->path) {
        free(u->remote);
        free(u->path);
        free(u);
        return NULL;
    }
    snprintf(u->path, n, "%s%s", remote, p->atomic ? SMX_PARTIAL_SUFFIX : "");
    u->s = s;
    u->src = *src;
    u->p = *p;
    u->out = out;
    u->done = done;
    u->ud = ud;
    u->t0 = uv_hrtime();
    out->size = src->size;
    smx_filesrc_acquire(src->src);
    size_t max = smx_sftp_max_write(s);
    u->block = p->block_size && p->block_size < max ? p->block_size : max;
    u->busy = 1;
    if (p->resume) {
        u->st = UP_STAT;
        up_send_path(u, SMX_FXP_STAT, u->path);
    } else {
        up_open(u, 0);
    }
    up_leave(u);
    return u;
}

void smx_upload_cancel(smx_upload *u, const char *why)
{
    up_enter(u);
    if (!u->out->failed) {
        u->out->failed = 1;
        snprintf(u->out->err, sizeof u->out->err, "%s: %s", u->remote, why);
        /* WRITEs still in our queue never reach the server: its cleanup comes sooner */
        smx_sftp_discard_unsent(u->s, why);
        up_cleanup(u);
    }
    up_leave(u);
}
