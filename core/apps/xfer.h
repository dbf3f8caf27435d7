/* One file moved over an SFTP client: upload (apps/upload.c) from a shared local source, or
 * download (apps/download.c) to a local file, each a task that pipelines its requests and ends
 * with `done` once nothing of it is in flight. Both write DEST.sshmux-partial and rename it onto
 * DEST when whole (unless in place), resume a partial destination after comparing its last bytes
 * with the source, and fsync / keep mode and times on request. */
#ifndef SSHMUX_XFER_H
#define SSHMUX_XFER_H

#include <stdint.h>

#include "error.h"
#include "filesrc.h"
#include "sftp.h"

#define SMX_PARTIAL_SUFFIX ".sshmux-partial"

typedef struct smx_xfer_params {
    size_t block_size;       /* 0: the server's limit (32768 without limits@) */
    int requests;            /* in flight per file */
    int resume, fsync, atomic, preserve;
    int mode;                /* permissions of the created file; -1: the source's */
    int excl;                /* upload: fail if the file exists (run-script's temp file) */
} smx_xfer_params;

/* What the task reports; owned by the caller, outlives the task. */
typedef struct smx_xfer_outcome {
    uint64_t size;           /* the source's size */
    uint64_t bytes;          /* payload moved this time */
    uint64_t resumed_from;
    double seconds;
    int failed;
    int lost;                /* the SFTP session ended under it: the host is done */
    char err[SMX_MSG_MAX];
    uint64_t *progress;      /* if not NULL: added to as bytes are acknowledged */
} smx_xfer_outcome;

typedef void (*smx_xfer_done_cb)(void *ud);

/* A local file's identity as planned: size, permissions, times. */
typedef struct smx_xfer_local {
    smx_filesrc *src;
    uint64_t size;
    uint32_t perm, atime, mtime;
} smx_xfer_local;

typedef struct smx_upload smx_upload;
typedef struct smx_download smx_download;
/* remote is copied. NULL on ENOMEM (then `done` is not called). */
smx_upload *smx_upload_start(smx_sftp *s, const smx_xfer_local *src, const char *remote,
                             const smx_xfer_params *p, smx_xfer_outcome *out,
                             smx_xfer_done_cb done, void *ud);

/* Ends the transfer as failed with `why` (cleaning up as on any failure); `done` follows. */
void smx_upload_cancel(smx_upload *u, const char *why);
void smx_download_cancel(smx_download *d, const char *why);

/* The SFTP client can take more requests: the upload sends what it holds back. */
void smx_upload_writable(smx_upload *u);

/* attrs: the remote file's (from STAT or READDIR). */
smx_download *smx_download_start(smx_sftp *s, uv_loop_t *loop, const char *remote,
                                 const smx_sftp_attrs *attrs, const char *local,
                                 const smx_xfer_params *p, smx_xfer_outcome *out,
                                 smx_xfer_done_cb done, void *ud);

/* The transfer failed with this (non-NULL) reply: its text for `path`. */
void smx_xfer_fail_reply(smx_xfer_outcome *out, const smx_sftp_reply *r, const char *path);

#endif
