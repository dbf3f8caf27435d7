#include "filesrc.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#define FILESRC_READ_AHEAD 8   /* blocks read past the one asked for: 2 MiB */

struct smx_filecache {
    uv_loop_t *loop;
    size_t budget, held, peak;
    smx_list lru;                 /* unreferenced loaded blocks, least recently used first */
    size_t sources;               /* not yet freed (a source freed mid-read still counts) */
    int freeing;                  /* freed while a source finished its reads: free with the last */
};

enum src_fd_state { SRC_CLOSED, SRC_OPENING, SRC_OPEN, SRC_FAILED };

struct smx_filesrc {
    smx_filecache *fc;
    char *path;
    uint64_t size, nblocks;
    smx_block **blocks;           /* by index; NULL when not present */
    enum src_fd_state fd_state;
    uv_file fd;
    int open_err;
    uv_fs_t open_req;
    smx_list open_waiters;        /* blocks to load once the file is open */
    int loads;                    /* reads in flight */
    int readers;                  /* uploads using it now */
    int freeing;                  /* freed while reads were in flight: finish then */
};

smx_filecache *smx_filecache_new(uv_loop_t *loop, size_t bytes)
{
    smx_filecache *fc = calloc(1, sizeof *fc);
    if (!fc)
        return NULL;
    fc->loop = loop;
    fc->budget = bytes;
    smx_list_init(&fc->lru);
    return fc;
}

void smx_filecache_free(smx_filecache *fc)
{
    if (fc && fc->sources)
        fc->freeing = 1;   /* a source's read is in flight: its blocks still use the cache */
    else
        free(fc);
}

size_t smx_filecache_peak(const smx_filecache *fc)
{
    return fc->peak;
}

smx_filesrc *smx_filesrc_new(smx_filecache *fc, const char *path, uint64_t size)
{
    smx_filesrc *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->fc = fc;
    s->size = size;
    s->nblocks = (size + SMX_FILESRC_BLOCK - 1) / SMX_FILESRC_BLOCK;
    s->path = strdup(path);
    s->blocks = calloc(s->nblocks ? s->nblocks : 1, sizeof *s->blocks);
    smx_list_init(&s->open_waiters);
    if (!s->path || !s->blocks) {
        free(s->path);
        free(s->blocks);
        free(s);
        return NULL;
    }
    fc->sources++;
    return s;
}

static void block_free(smx_block *b)
{
    smx_filecache *fc = b->src->fc;
    smx_list_remove(&b->lru);
    b->src->blocks[b->index] = NULL;
    fc->held -= SMX_FILESRC_BLOCK;
    free(b->data);
    free(b);
}

static void cache_trim(smx_filecache *fc, size_t want)
{
    while (fc->held + want > fc->budget && !smx_list_empty(&fc->lru))
        block_free(smx_list_entry(fc->lru.next, smx_block, lru));
}

static void src_finish_free(smx_filesrc *s)
{
    for (uint64_t i = 0; i < s->nblocks; i++)
        if (s->blocks[i])
            block_free(s->blocks[i]);   /* nobody holds them: the copy is over */
    if (s->fd_state == SRC_OPEN) {
        uv_fs_t req;
        uv_fs_close(NULL, &req, s->fd, NULL);
        uv_fs_req_cleanup(&req);
    }
    smx_filecache *fc = s->fc;
    free(s->blocks);
    free(s->path);
    free(s);
    if (--fc->sources == 0 && fc->freeing)
        free(fc);
}

void smx_filesrc_free(smx_filesrc *s)
{
    if (!s)
        return;
    if (s->loads || s->fd_state == SRC_OPENING) {
        s->freeing = 1;   /* a threadpool request still points at us */
        return;
    }
    src_finish_free(s);
}

/* Answers every waiter of b (each gets its own reference). A waiter may drop its reference at
 * once: b is pinned until all are answered. */
static void block_deliver(smx_block *b)
{
    smx_list all;
    smx_list_init(&all);
    smx_list_splice(&all, &b->waiters);
    int err = b->err;
    if (err < 0) {
        block_free(b);   /* a later get reads it again */
        b = NULL;
    } else {
        b->refs++;
    }
    while (!smx_list_empty(&all)) {
        smx_block_wait *w = smx_list_entry(all.next, smx_block_wait, node);
        smx_list_remove(&w->node);
        if (b) {
            b->refs++;
            b->used = 1;
        }
        w->cb(w, b, err);
    }
    if (b)
        smx_block_unref(b);
}

static void block_on_read(uv_fs_t *req)
{
    smx_block *b = req->data;
    smx_filesrc *s = b->src;
    ssize_t n = req->result;
    uv_fs_req_cleanup(req);
    s->loads--;
    b->loading = 0;
    if (n < 0)
        b->err = (int)n;
    else if ((size_t)n != b->len)
        b->err = UV_EIO;   /* the file shrank since it was planned */
    if (s->freeing) {
        b->err = b->err ? b->err : UV_ECANCELED;
        block_deliver(b);
        if (!s->loads)
            src_finish_free(s);
        return;
    }
    block_deliver(b);
}

static void block_start_read(smx_block *b)
{
    smx_filesrc *s = b->src;
    uv_buf_t buf = uv_buf_init((char *)b->data, (unsigned)b->len);
    b->req.data = b;
    int rc = uv_fs_read(s->fc->loop, &b->req, s->fd, &buf, 1,
                        (int64_t)(b->index * SMX_FILESRC_BLOCK), block_on_read);
    if (rc < 0) {
        b->loading = 0;
        b->err = rc;
        block_deliver(b);
        return;
    }
    s->loads++;
}

static void src_on_open(uv_fs_t *req)
{
    smx_filesrc *s = req->data;
    ssize_t fd = req->result;
    uv_fs_req_cleanup(req);
    if (fd < 0) {
        s->fd_state = SRC_FAILED;
        s->open_err = (int)fd;
    } else {
        s->fd_state = SRC_OPEN;
        s->fd = (uv_file)fd;
    }
    if (s->freeing) {
        /* nothing waits on a source being freed */
        src_finish_free(s);
        return;
    }
    while (!smx_list_empty(&s->open_waiters)) {
        smx_block *b = smx_list_entry(s->open_waiters.next, smx_block, lru);
        smx_list_remove(&b->lru);
        if (s->fd_state == SRC_OPEN) {
            block_start_read(b);
        } else {
            b->loading = 0;
            b->err = s->open_err;
            block_deliver(b);
        }
    }
}

/* A new block, loading (or queued until the file is open). NULL when out of memory. */
static smx_block *block_load(smx_filesrc *s, uint64_t index)
{
    smx_filecache *fc = s->fc;
    cache_trim(fc, SMX_FILESRC_BLOCK);
    smx_block *b = calloc(1, sizeof *b);
    uint64_t off = index * SMX_FILESRC_BLOCK;
    size_t len = s->size - off < SMX_FILESRC_BLOCK ? (size_t)(s->size - off) : SMX_FILESRC_BLOCK;
    if (!b || !(b->data = malloc(len ? len : 1))) {
        free(b);
        return NULL;
    }
    smx_list_init(&b->lru);
    smx_list_init(&b->waiters);
    b->src = s;
    b->index = index;
    b->len = len;
    b->loading = 1;
    s->blocks[index] = b;
    fc->held += SMX_FILESRC_BLOCK;
    if (fc->held > fc->peak)
        fc->peak = fc->held;
    switch (s->fd_state) {
    case SRC_OPEN:
        block_start_read(b);
        break;
    case SRC_CLOSED:
        s->fd_state = SRC_OPENING;
        s->open_req.data = s;
        if (uv_fs_open(fc->loop, &s->open_req, s->path, O_RDONLY | O_CLOEXEC, 0, src_on_open) < 0) {
            s->fd_state = SRC_FAILED;
            s->open_err = UV_EIO;
        }
        /* fall through */
    case SRC_OPENING:
        if (s->fd_state == SRC_OPENING) {
            smx_list_append(&s->open_waiters, &b->lru);
            break;
        }
        /* fall through */
    case SRC_FAILED:
        b->loading = 0;
        b->err = s->open_err;
        break;   /* delivered by the caller once its waiter is on the block */
    }
    return b;
}

static smx_block *filesrc_get_one(smx_filesrc *s, uint64_t index, smx_block_wait *w)
{
    smx_block *b = index < s->nblocks ? s->blocks[index] : NULL;
    if (index >= s->nblocks) {
        w->cb(w, NULL, UV_EINVAL);
        return NULL;
    }
    if (b && !b->loading) {
        if (b->refs++ == 0)
            smx_list_remove(&b->lru);
        return b;
    }
    if (!b && !(b = block_load(s, index))) {
        w->cb(w, NULL, UV_ENOMEM);
        return NULL;
    }
    smx_list_append(&b->waiters, &w->node);
    if (!b->loading) {   /* failed at once (the file cannot be opened) */
        block_deliver(b);
        return NULL;
    }
    return NULL;
}

/* Keeps the blocks after `index` loaded or loading, so that a reader keeping pace never waits
 * for the disk. Unreferenced blocks make room (oldest use first); blocks in use never do. */
static void filesrc_read_ahead(smx_filesrc *s, uint64_t index)
{
    smx_filecache *fc = s->fc;
    for (uint64_t i = index + 1; i <= index + FILESRC_READ_AHEAD && i < s->nblocks; i++) {
        if (s->blocks[i] || s->fd_state == SRC_FAILED)
            continue;
        if (fc->held + SMX_FILESRC_BLOCK > fc->budget && smx_list_empty(&fc->lru))
            break;   /* everything held is in use: no room */
        block_load(s, i);
    }
}

smx_block *smx_filesrc_get(smx_filesrc *s, uint64_t index, smx_block_wait *w)
{
    smx_block *b = filesrc_get_one(s, index, w);
    if (index < s->nblocks && s->fd_state != SRC_FAILED)
        filesrc_read_ahead(s, index);
    if (b)
        b->used = 1;
    return b;
}

void smx_filesrc_acquire(smx_filesrc *s)
{
    s->readers++;
}

void smx_filesrc_release(smx_filesrc *s)
{
    s->readers--;
}

void smx_filesrc_cancel(smx_block_wait *w)
{
    smx_list_remove(&w->node);
}

void smx_block_unref(smx_block *b)
{
    if (--b->refs == 0 && b->used && b->src->readers <= 1 && !b->loading) {
        block_free(b);   /* its one reader is past it: no one else will ask */
        return;
    }
    if (b->refs == 0 && !smx_list_linked(&b->lru)) {
        smx_list_append(&b->src->fc->lru, &b->lru);
        cache_trim(b->src->fc, 0);
    }
}
