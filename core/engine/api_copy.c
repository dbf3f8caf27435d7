/* Planning a copy once for every host: local sources stat'ed and walked before the run (as key
 * files are read), each file given one shared source in the block cache. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "copy_internal.h"
#include "error.h"

char *smx_copy_expand(const char *tmpl, const char *host, unsigned index)
{
    char num[16];
    snprintf(num, sizeof num, "%u", index);
    size_t len = 1;
    for (const char *p = tmpl; *p; p++)
        len += p[0] == '%' && p[1] == 'h' ? strlen(host) : p[0] == '%' && p[1] == 'n' ? strlen(num) : 1;
    char *out = malloc(len), *q = out;
    for (const char *p = tmpl; out && *p; p++) {
        if (p[0] == '%' && (p[1] == 'h' || p[1] == 'n' || p[1] == '%')) {
            const char *rep = p[1] == 'h' ? host : p[1] == 'n' ? num : "%";
            q = stpcpy(q, rep);
            p++;
        } else {
            *q++ = *p;
        }
    }
    if (out)
        *q = '\0';
    /* "~/x": the SFTP server starts in the home directory, so "x" is the same place */
    if (out && out[0] == '~' && (out[1] == '/' || out[1] == '\0')) {
        const char *rest = out[1] ? out + 2 : "";
        memmove(out, *rest ? rest : ".", strlen(*rest ? rest : ".") + 1);
    }
    return out;
}

char *smx_copy_join(const char *a, const char *b)
{
    size_t la = strlen(a);
    int slash = la > 0 && a[la - 1] != '/';
    char *out = malloc(la + slash + strlen(b) + 1);
    if (out)
        sprintf(out, "%s%s%s", a, slash ? "/" : "", b);
    return out;
}

static copy_entry *copy_add_entry(smx_copy *c)
{
    if (c->nentries == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 16;
        copy_entry *v = realloc(c->entries, cap * sizeof *v);
        if (!v)
            return NULL;
        c->entries = v;
        c->cap = cap;
    }
    copy_entry *e = &c->entries[c->nentries++];
    memset(e, 0, sizeof *e);
    return e;
}

char *smx_copy_basename(const char *path)
{
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/')
        n--;
    size_t start = n;
    while (start > 0 && path[start - 1] != '/')
        start--;
    return strndup(path + start, n - start);
}

static int copy_walk(smx_copy *c, const char *local, const char *rel, size_t top_len, int depth,
                     smx_err *err);

static int copy_walk_dir(smx_copy *c, const char *local, const char *rel, size_t top_len,
                         int depth, smx_err *err)
{
    DIR *d = opendir(local);
    if (!d)
        return smx_seterr(err, SMX_EIO, "%s: %s", local, strerror(errno));
    int rc = 0;
    struct dirent *de;
    while (rc == 0 && (de = readdir(d))) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        char *l = smx_copy_join(local, de->d_name), *r = smx_copy_join(rel, de->d_name);
        rc = l && r ? copy_walk(c, l, r, top_len, depth + 1, err)
                    : smx_seterr(err, SMX_ENOMEM, "out of memory");
        free(l);
        free(r);
    }
    closedir(d);
    return rc;
}

/* One local path and (with -r) everything under it, in creation order. */
static int copy_walk(smx_copy *c, const char *local, const char *rel, size_t top_len, int depth,
                     smx_err *err)
{
    struct stat st;
    if (depth > 64)
        return smx_seterr(err, SMX_EINVAL, "%s: directories nested too deep", local);
    if ((depth == 0 ? stat(local, &st) : lstat(local, &st)) != 0)
        return smx_seterr(err, errno == ENOENT ? SMX_ENOENT : SMX_EIO, "%s: %s", local,
                          strerror(errno));
    if (S_ISDIR(st.st_mode) && !c->o.recursive)
        return smx_seterr(err, SMX_EINVAL, "%s: is a directory (use -r)", local);
    if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode) && !S_ISLNK(st.st_mode)) {
        if (depth == 0)
            return smx_seterr(err, SMX_EINVAL, "%s: not a regular file", local);
        if (c->engine->opts.warn)   /* inside a tree, as scp -r: devices, fifos, sockets */
            c->engine->opts.warn(c->engine->opts.ud, local, "not a regular file: not copied");
        return 0;
    }
    if (S_ISREG(st.st_mode) && access(local, R_OK) != 0)
        return smx_seterr(err, SMX_EIO, "%s: %s", local, strerror(errno));
    copy_entry *e = copy_add_entry(c);
    if (!e || !(e->rel = strdup(rel)) || !(e->local = strdup(local)))
        return smx_seterr(err, SMX_ENOMEM, "out of memory");
    e->top_len = top_len;
    e->file.size = S_ISREG(st.st_mode) ? (uint64_t)st.st_size : 0;
    e->file.perm = st.st_mode & 07777;
    e->file.atime = (uint32_t)st.st_atime;
    e->file.mtime = (uint32_t)st.st_mtime;
    if (S_ISLNK(st.st_mode)) {
        char buf[4096];
        ssize_t n = readlink(local, buf, sizeof buf - 1);
        if (n < 0)
            return smx_seterr(err, SMX_EIO, "%s: %s", local, strerror(errno));
        e->kind = 'l';
        e->link = strndup(buf, (size_t)n);
        return e->link ? 0 : smx_seterr(err, SMX_ENOMEM, "out of memory");
    }
    if (S_ISDIR(st.st_mode)) {
        e->kind = 'd';
        return copy_walk_dir(c, local, rel, top_len, depth, err);
    }
    e->kind = 'f';
    e->file.src = smx_filesrc_new(c->cache, local, e->file.size);
    return e->file.src ? 0 : smx_seterr(err, SMX_ENOMEM, "out of memory");
}

static int copy_plan_local(smx_copy *c, smx_err *err)
{
    for (size_t i = 0; i < c->sources.n; i++) {
        char *name = smx_copy_basename(c->sources.v[i]);
        int rc = name ? copy_walk(c, c->sources.v[i], name, strlen(name), 0, err)
                      : smx_seterr(err, SMX_ENOMEM, "out of memory");
        free(name);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int smx_copy_new(smx_engine *e, const smx_copy_opts *opts, smx_copy **out, smx_err *err)
{
    *out = NULL;
    if (!opts->sources || opts->sources->n == 0 || (opts->kind != SMX_COPY_SCRIPT && !opts->dest))
        return smx_seterr(err, SMX_EINVAL, "nothing to copy");
    smx_copy *c = calloc(1, sizeof *c);
    if (!c)
        return smx_seterr(err, SMX_ENOMEM, "out of memory");
    c->engine = e;
    c->o = *opts;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < opts->sources->n; i++)
        rc = smx_strvec_push(&c->sources, opts->sources->v[i]);
    if (rc == 0 && opts->dest && !(c->dest = strdup(opts->dest)))
        rc = SMX_ENOMEM;
    if (rc == 0 && opts->script) {
        c->script = *opts->script;
        if (!(c->script.command = strdup(opts->script->command ? opts->script->command : "")))
            rc = SMX_ENOMEM;
    }
    if (rc == 0 && !(c->cache = smx_filecache_new(e->ctx.loop, COPY_CACHE_BYTES)))
        rc = SMX_ENOMEM;
    if (rc < 0) {
        smx_copy_free(c);
        return smx_seterr(err, rc, "out of memory");
    }
    c->o.sources = &c->sources;
    c->o.dest = c->dest;
    c->o.script = opts->script ? &c->script : NULL;
    if (c->o.requests <= 0)
        c->o.requests = COPY_DEFAULT_REQUESTS;
    size_t dl = c->dest ? strlen(c->dest) : 0;
    c->dest_is_dir = c->sources.n > 1 || (dl > 0 && c->dest[dl - 1] == '/');
    if (opts->kind != SMX_COPY_DOWNLOAD && (rc = copy_plan_local(c, err)) < 0) {
        smx_copy_free(c);
        return rc;
    }
    if (opts->kind == SMX_COPY_SCRIPT && c->entries[0].kind != 'f') {
        smx_copy_free(c);
        return smx_seterr(err, SMX_EINVAL, "%s: not a regular file", opts->sources->v[0]);
    }
    *out = c;
    return 0;
}

void smx_copy_free(smx_copy *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->nentries; i++) {
        copy_entry *e = &c->entries[i];
        smx_filesrc_free(e->file.src);
        free(e->rel);
        free(e->local);
        free(e->link);
    }
    free(c->entries);
    smx_filecache_free(c->cache);
    smx_strvec_free(&c->sources);
    free(c->dest);
    free((char *)c->script.command);
    free(c);
}

void smx_copy_get_progress(const smx_copy *c, smx_copy_progress *p)
{
    *p = c->progress;
    p->peak_cache_bytes = smx_filecache_peak(c->cache);
}
