/* A copy shared by every host of a run (engine/api_copy.c) and the per-host copy job
 * (engine/job_copy.c). */
#ifndef SSHMUX_COPY_INTERNAL_H
#define SSHMUX_COPY_INTERNAL_H

#include "engine_internal.h"
#include "xfer.h"

#define COPY_DEFAULT_REQUESTS 64
#define COPY_CANCEL_GRACE_MS 10000   /* for a canceled copy to remove its partial file */
#define COPY_CACHE_BYTES (64u * 1024u * 1024u)   /* shared blocks not held by any host */

/* One thing an upload creates on every host, in creation order (a directory before what is in
 * it). rel is the path under the destination; its first top_len bytes name the source itself. */
typedef struct copy_entry {
    char kind;                  /* 'f' file, 'd' directory, 'l' symlink */
    char *rel;
    size_t top_len;
    char *local;
    char *link;                 /* symlink target */
    smx_xfer_local file;        /* files: size, mode, times and the shared source */
} copy_entry;

struct smx_copy {
    smx_engine *engine;
    smx_copy_opts o;            /* strings below are the copy's own */
    smx_strvec sources;
    char *dest;
    smx_exec_opts script;
    copy_entry *entries;        /* uploads and scripts */
    size_t nentries, cap;
    int dest_is_dir;            /* several sources, or dest ends in '/' */
    smx_filecache *cache;
    unsigned next_index;        /* %n of the next host added */
    smx_copy_progress progress;
};

/* tmpl with %h, %n and %% replaced, and a leading "~/" made relative (the SFTP server starts in
 * the home directory); malloc'd or NULL. */
char *smx_copy_expand(const char *tmpl, const char *host, unsigned index);
/* The last component of a path, without trailing slashes ("a/b/" -> "b", "/" -> ""). */
char *smx_copy_basename(const char *path);
/* a/b joined with one '/' between them; malloc'd or NULL. */
char *smx_copy_join(const char *a, const char *b);

#endif
