/* The copy job's state, shared by engine/job_copy.c (the job, uploads, run-script) and
 * engine/job_copy_download.c (what downloads do per host: sources, directories, links). */
#ifndef SSHMUX_JOB_COPY_H
#define SSHMUX_JOB_COPY_H

#include "copy_internal.h"
#include "exec.h"

enum copy_phase {
    COPY_CONNECTING,
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

typedef struct copy_job {
    smx_job base;
    smx_copy *copy;
    smx_hostcfg *hc;
    char *password;
    const smx_exec_callbacks *cb;
    smx_result *result;
    unsigned index;
    enum copy_phase phase;
    smx_conn *conn;
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
    uint64_t last_progress;
    size_t dir_times_at;          /* download -p: the item whose directory is set next */       /* loop time of the last change seen */
    uint64_t t_start;
    int closing;                  /* inside copy_close: callbacks it causes must not free us */             /* the SFTP channel was asked for */
    int ops;                      /* job-level requests in flight */
    uv_fs_t fs;                   /* download: the local step in flight (mkdir, symlink) */
    void (*fs_next)(struct copy_job *job, ssize_t result);
    int fs_busy;
    int conn_closed, sftp_open, timer_inited, timer_closed, canceled, failed_files;
} copy_job;

typedef void (*copy_reply_fn)(struct copy_job *job, smx_sftp_reply *r);

/* The next item, or the end of the items. */
void copy_next(copy_job *job);
/* Ends what runs (SFTP client, exec, connection, timer), and finishes the job (on_done: it is
 * freed) once all of it is closed: callers must not touch the job afterwards. */
void copy_close(copy_job *job);
/* One line of the host's file record; error NULL when it arrived whole. */
void copy_record(copy_job *job, const char *local, const char *remote,
                 const smx_xfer_outcome *o, const char *error);
void copy_item_error(copy_job *job, copy_item *it, const char *detail);
/* The current item failed with this reply; on to the next. */
void copy_item_failed_reply(copy_job *job, const smx_sftp_reply *r);
/* Appends an item (remote and local taken over); NULL when out of memory (both freed). */
copy_item *copy_push(copy_job *job, char kind, char *remote, char *local);
/* Sends the request begun on the job's client; fn gets the reply (a lost session closes the
 * job instead). */
void copy_send(copy_job *job, copy_reply_fn fn);
void copy_path_op(copy_job *job, uint8_t type, const char *path, copy_reply_fn fn);
void copy_start_file(copy_job *job, copy_item *it);
int copy_status_ok(const smx_sftp_reply *r);

/* engine/job_copy_download.c */
void copy_plan_download(copy_job *job);
void copy_download_item(copy_job *job, copy_item *it);
/* download -p: local directories' mode and times last; closes the job when done. */
int copy_download_dir_times(copy_job *job);

#endif
