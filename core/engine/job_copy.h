/* The copy run's state (engine_internal.h: smx_copy_run), shared by engine/job_copy.c (the run,
 * uploads, run-script, the copy job) and engine/job_copy_download.c (what downloads do per host:
 * sources, directories, links). */
#ifndef SSHMUX_JOB_COPY_H
#define SSHMUX_JOB_COPY_H

#include "copy_internal.h"
#include "exec.h"

enum copy_phase {
    COPY_IDLE,           /* not started (its owner is connecting) */
    COPY_SFTP_OPENING,
    COPY_PLANNING,       /* STAT of the upload destination; local base directory of downloads */
    COPY_ITEMS,
    COPY_DIR_TIMES,      /* upload -p: directories' mode and times, once their contents are in */
    COPY_RUNNING,        /* run-script: the exec */
    COPY_SCRIPT_REMOVE,
    COPY_CLOSING
};

/* Something to do on the host: a planned upload entry, or a remote path to download. */
typedef struct copy_item {
    char kind;                    /* 'f', 'd', 'l'; '?' until STAT says (download sources) */
    char *remote, *local;
    const copy_entry *entry;      /* uploads */
    char *link;                   /* downloads: a symlink's target */
    smx_sftp_attrs attrs;
} copy_item;

/* A copy run: the SFTP channel, the items, the transfer timer and run-script's exec, on a
 * connection it does not own (the copy job's, or a link's). */
typedef struct smx_copy_run {
    smx_copy *copy;
    const smx_exec_callbacks *cb;
    smx_result *result;
    uv_loop_t *loop;              /* set by the start */
    unsigned index;
    enum copy_phase phase;
    smx_conn *conn;               /* the owner's: NULL once it told the run it is closed */
    smx_sftp *sftp;
    smx_exec *exec;
    smx_sftp_events sev;
    smx_exec_events xev;
    smx_exec_opts xopts;
    char *command;
    smx_xfer_params params;
    copy_item *items;
    size_t nitems, cap, next;
    smx_upload *up;
    smx_download *down;
    smx_xfer_outcome outcome;
    char *dest;                   /* upload: the remote destination; download: the local base */
    int dest_is_dir;
    char *script_path;
    uint8_t *dirh;                /* download -r: the directory being read */
    size_t dirhlen;
    uv_timer_t timer;             /* --transfer-timeout, and the cancel grace */
    uint64_t activity, seen;
    uint64_t last_progress;       /* loop time of the last change seen */
    size_t dir_times_at;          /* download -p: the item whose directory is set next */
    uint64_t t_start;
    int closing;                  /* inside copy_close: callbacks it causes must not free us */
    int ops;                      /* the run's own requests in flight */
    uv_fs_t fs;                   /* download: the local step in flight (mkdir, symlink) */
    void (*fs_next)(struct smx_copy_run *run, ssize_t result);
    int fs_busy;
    int sftp_open, timer_inited, timer_closed, canceled, failed_files;
    void (*finished)(void *ud);   /* over: the owner frees it */
    void *ud;                     /* the owner's */
} copy_run;

typedef void (*copy_reply_fn)(struct smx_copy_run *run, smx_sftp_reply *r);

/* The next item, or the end of the items. */
void copy_next(copy_run *run);
/* Ends what runs (SFTP client, exec, timer), and finishes the run (the owner's `finished`: it is
 * freed) once all of it is closed: callers must not touch the run afterwards. */
void copy_close(copy_run *run);
/* One line of the host's file record; error NULL when it arrived whole. */
void copy_record(copy_run *run, const char *local, const char *remote,
                 const smx_xfer_outcome *o, const char *error);
void copy_item_error(copy_run *run, copy_item *it, const char *detail);
/* The current item failed with this reply; on to the next. */
void copy_item_failed_reply(copy_run *run, const smx_sftp_reply *r);
/* Appends an item (remote and local taken over); NULL when out of memory (both freed). */
copy_item *copy_push(copy_run *run, char kind, char *remote, char *local);
/* Sends the request begun on the run's client; fn gets the reply (a lost session closes the
 * run instead). */
void copy_send(copy_run *run, copy_reply_fn fn);
void copy_path_op(copy_run *run, uint8_t type, const char *path, copy_reply_fn fn);
void copy_start_file(copy_run *run, copy_item *it);
int copy_status_ok(const smx_sftp_reply *r);

/* engine/job_copy_download.c */
void copy_plan_download(copy_run *run);
void copy_download_item(copy_run *run, copy_item *it);
/* download -p: local directories' mode and times last; closes the run when done. */
int copy_download_dir_times(copy_run *run);

#endif
