/* Local files read once for every host that uploads them: a cache of fixed-size blocks shared by
 * every source of a copy, filled by libuv's threadpool reads (the loop never waits on the disk).
 *
 * A host asks for the bytes it sends next; blocks in the cache are handed out at once, others are
 * read (one read per block, however many hosts wait for it) with a little read-ahead. Blocks are
 * reference counted: a host holds at most the two blocks its next WRITE spans, until libssh has
 * taken them. Unreferenced blocks stay until the cache's budget is reached, oldest use first out:
 * hosts that keep pace share one read; a host that falls behind reads its blocks again from the
 * page cache instead of holding memory. Memory: budget + 2 blocks per uploading host at most. */
#ifndef SSHMUX_FILESRC_H
#define SSHMUX_FILESRC_H

#include <stdint.h>
#include <uv.h>

#include "list.h"

#define SMX_FILESRC_BLOCK (256u * 1024u)

typedef struct smx_filecache smx_filecache;
typedef struct smx_filesrc smx_filesrc;
typedef struct smx_block smx_block;

struct smx_block {
    smx_list lru;                 /* on the cache's LRU while unreferenced */
    smx_list waiters;
    smx_filesrc *src;
    uint64_t index;
    uint8_t *data;
    size_t len;                   /* valid bytes (the last block may be short) */
    int refs;
    int loading;
    int used;                     /* handed to a reader at least once (not only read ahead) */
    int err;                      /* a failed read: negative uv error */
    uv_fs_t req;
};

/* bytes = the budget for unreferenced blocks. */
smx_filecache *smx_filecache_new(uv_loop_t *loop, size_t bytes);
/* Every source must be freed first (smx_filesrc_free); one whose read is still in flight ends on
 * the loop later, and the cache is freed with the last of them. */
void smx_filecache_free(smx_filecache *fc);
size_t smx_filecache_peak(const smx_filecache *fc);   /* most bytes of blocks held at once */

/* A local file of `size` bytes (as stat'ed when the copy was planned). path copied. */
smx_filesrc *smx_filesrc_new(smx_filecache *fc, const char *path, uint64_t size);
void smx_filesrc_free(smx_filesrc *s);

/* A wait for a block: embedded in the caller's object; cb runs once, with the block referenced
 * (the caller's: smx_block_unref) or with err < 0 (block NULL). */
typedef struct smx_block_wait {
    smx_list node;
    void (*cb)(struct smx_block_wait *w, smx_block *b, int err);
} smx_block_wait;

/* Block `index` of s: returned referenced if cached (w not used), else NULL and w->cb later.
 * An error opening the file also comes through w->cb. */
smx_block *smx_filesrc_get(smx_filesrc *s, uint64_t index, smx_block_wait *w);
/* An upload starts or stops reading s: with one reader, blocks it is done with are freed at once
 * (no other host will ask for them). */
void smx_filesrc_acquire(smx_filesrc *s);
void smx_filesrc_release(smx_filesrc *s);
/* Drops a wait not yet answered (its owner is going away). */
void smx_filesrc_cancel(smx_block_wait *w);
void smx_block_unref(smx_block *b);
/* Another reference to a block already held. */
static inline void smx_block_ref(smx_block *b)
{
    b->refs++;
}

#endif
