/* Shared harness helpers; see fuzz_common.h. */
#include "fuzz_common.h"

#include <errno.h>
#include <ftw.h>
#include <glob.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char scratch[PATH_MAX];

void fz_fail(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    fputs("fuzz: property violated: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    abort();
}

char *fz_cstring(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);

    if (!s)
        abort();
    memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)type;
    (void)ftw;
    remove(path);
    return 0;
}

static void remove_scratch(void)
{
    if (scratch[0])
        nftw(scratch, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void make_dir(const char *rel)
{
    char path[PATH_MAX];

    fz_path(path, sizeof path, rel);
    if (mkdir(path, 0700) != 0 && errno != EEXIST) {
        perror(path);
        abort();
    }
}

const char *fz_scratch(void)
{
    char tmpl[PATH_MAX], home[PATH_MAX];
    const char *base = getenv("TMPDIR");

    if (scratch[0])
        return scratch;
    snprintf(tmpl, sizeof tmpl, "%s/sshmux-fuzz-XXXXXX", base && *base ? base : "/tmp");
    /* realpath: the glob guard compares resolved paths against this prefix. */
    if (!mkdtemp(tmpl) || !realpath(tmpl, scratch)) {
        perror(tmpl);
        abort();
    }
    atexit(remove_scratch);
    make_dir("home");
    make_dir("home/.ssh");
    fz_path(home, sizeof home, "home");
    setenv("HOME", home, 1);
    return scratch;
}

void fz_path(char *buf, size_t cap, const char *rel)
{
    int n = snprintf(buf, cap, "%s/%s", fz_scratch(), rel);

    if (n < 0 || (size_t)n >= cap)
        abort();
}

void fz_write_file(const char *path, const void *data, size_t size)
{
    FILE *f = fopen(path, "w");

    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0) {
        perror(path);
        abort();
    }
}

size_t fz_split(const uint8_t *data, size_t size, const char *sep, struct fz_part *parts,
                size_t max)
{
    size_t seplen = strlen(sep), start = 0, line = 0, k = 0;

    if (max == 0)
        return 0;
    while (k + 1 < max) {
        const uint8_t *nl = memchr(data + line, '\n', size - line);
        size_t eol = nl ? (size_t)(nl - data) : size;

        if (eol - line == seplen && memcmp(data + line, sep, seplen) == 0) {
            parts[k].data = data + start;
            parts[k++].size = line - start;
            start = nl ? eol + 1 : size;
        }
        if (!nl)
            break;
        line = eol + 1;
    }
    parts[k].data = data + start;
    parts[k++].size = size - start;
    return k;
}

/* ---- glob confinement ------------------------------------------------------------------ */

/* A path component that could match "." or "..": a literal one, or a pattern starting with a
 * period or an escape (glob matches a leading period only with a literal '.'). */
static int may_climb(const char *c, size_t len)
{
    if (len == 0 || (c[0] != '.' && c[0] != '\\'))
        return 0;
    if (len == 1 || (len == 2 && c[1] == '.'))
        return 1;
    for (size_t i = 0; i < len; i++)
        if (strchr("*?[\\", c[i]))
            return 1;
    return 0;
}

static int pattern_confined(const char *pattern)
{
    size_t n = strlen(scratch);

    if (!scratch[0] || strncmp(pattern, scratch, n) != 0 || pattern[n] != '/')
        return 0;
    for (const char *c = pattern + n; *c;) {
        size_t len;

        c += strspn(c, "/");
        len = strcspn(c, "/");
        if (may_climb(c, len))
            return 0;
        c += len;
    }
    return 1;
}

static int path_confined(const char *path)
{
    char real[PATH_MAX];
    size_t n = strlen(scratch);

    return realpath(path, real) && strncmp(real, scratch, n) == 0 && real[n] == '/';
}

int __real_glob(const char *pattern, int flags, int (*errfunc)(const char *, int), glob_t *g);
int __wrap_glob(const char *pattern, int flags, int (*errfunc)(const char *, int), glob_t *g);

/* Globs only inside the scratch directory, and drops any match that resolves outside it. */
int __wrap_glob(const char *pattern, int flags, int (*errfunc)(const char *, int), glob_t *g)
{
    size_t kept = 0;
    int rc;

    if (!pattern_confined(pattern))
        return GLOB_NOMATCH;
    if (flags & GLOB_APPEND)
        fz_fail("glob guard: GLOB_APPEND is not supported");
    if ((rc = __real_glob(pattern, flags, errfunc, g)) != 0)
        return rc;
    for (size_t i = 0; i < g->gl_pathc; i++) {
        char *p = g->gl_pathv[g->gl_offs + i];

        if (path_confined(p)) {
            g->gl_pathv[g->gl_offs + kept++] = p;
        } else {
            free(p);
        }
    }
    g->gl_pathv[g->gl_offs + kept] = NULL;
    g->gl_pathc = kept;
    if (kept == 0) {
        globfree(g);
        return GLOB_NOMATCH;
    }
    return 0;
}
