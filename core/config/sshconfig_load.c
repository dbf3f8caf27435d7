/* Loading: reading config files line by line, following Include, and the -o command-line
 * options. The result is an immutable tree of smx_cfgfile/smx_directive. */
#include "sshconfig_internal.h"
#include "groups.h"

#include <errno.h>
#include <glob.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define USER_CONFIG_REL "/.ssh/config"
#define SYSTEM_CONFIG "/etc/ssh/ssh_config"
#define SYSTEM_DIR "/etc/ssh/"

/* How much one smx_config_load() has read so far, against the SMX_CFG_MAX_* caps. */
typedef struct loadbudget {
    size_t files, lines, bytes;
} loadbudget;

typedef struct loadctx {
    smx_config *cfg;
    int system;                 /* /etc/ssh file: relative Include base, no "~" (as ssh) */
    int depth;                  /* Include nesting */
    loadbudget *budget;         /* shared by every file of the load */
} loadctx;

static int read_file(const loadctx *lc, const char *path, smx_cfgfile **out, smx_err *err);

/* ---- small helpers --------------------------------------------------------------------- */

/* Show paths under $HOME as "~/...": that is how users wrote them. */
static char *display_name(const smx_config *cfg, const char *path)
{
    size_t hl = strlen(cfg->home);
    char *s;

    if (hl > 1 && strncmp(path, cfg->home, hl) == 0 && path[hl] == '/') {
        if ((s = malloc(strlen(path) - hl + 2)))
            sprintf(s, "~%s", path + hl);
        return s;
    }
    return strdup(path);
}

static int append_directive(smx_cfgfile *f, smx_directive *d)
{
    if (f->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 16;
        smx_directive *v = realloc(f->d, cap * sizeof *v);

        if (!v)
            return SMX_ENOMEM;
        f->d = v;
        f->cap = cap;
    }
    f->d[f->n++] = *d;
    return 0;
}

static int append_include(smx_directive *d, smx_cfgfile *child)
{
    smx_cfgfile **v = realloc(d->inc, (d->ninc + 1) * sizeof *v);

    if (!v) {
        smx__cfgfile_free(child);
        return SMX_ENOMEM;
    }
    d->inc = v;
    d->inc[d->ninc++] = child;
    return 0;
}

void smx__cfgfile_free(smx_cfgfile *f)
{
    if (!f)
        return;
    smx__cfgfile_unindex(f);
    for (size_t i = 0; i < f->n; i++)
        smx__directive_free(&f->d[i]);
    free(f->d);
    free(f->display);
    free(f);
}

/* ---- Include --------------------------------------------------------------------------- */

/* The glob pattern for one Include argument: "~" expanded (user files only), relative paths
 * anchored at ~/.ssh or /etc/ssh. */
static int include_pattern(const loadctx *lc, const char *arg, char **out, const smx__loc *loc,
                           smx_err *err)
{
    char *expanded = NULL;
    int rc;

    if (!lc->system && arg[0] == '~') {
        smx_err why;

        if ((rc = smx__tilde(arg, lc->cfg->home, &expanded, &why)) < 0)
            return rc == SMX_ENOMEM ? rc : smx__cfgerr(err, rc, loc, "Include %s", why.msg);
        arg = expanded;
    }
    if (arg[0] == '/') {
        *out = expanded ? expanded : strdup(arg);
    } else {
        const char *base = lc->system ? SYSTEM_DIR : lc->cfg->home;
        const char *mid = lc->system ? "" : "/.ssh/";

        if ((*out = malloc(strlen(base) + strlen(mid) + strlen(arg) + 1)))
            sprintf(*out, "%s%s%s", base, mid, arg);
        free(expanded);
    }
    return *out ? 0 : SMX_ENOMEM;
}

static int include_too_many(const loadctx *lc, const char *path, const smx__loc *loc,
                            smx_err *err)
{
    char *shown = display_name(lc->cfg, path);
    int rc = smx__cfgerr(err, SMX_ERANGE, loc, "Include %s: more than %d files read for one "
                         "configuration (Include fan-out?)", shown ? shown : path,
                         SMX_CFG_MAX_FILES);

    free(shown);
    return rc;
}

static int include_one(const loadctx *lc, smx_directive *d, const char *arg, const smx__loc *loc,
                       smx_err *err)
{
    loadctx child = {lc->cfg, lc->system, lc->depth + 1, lc->budget};
    char *pattern = NULL;
    glob_t g;
    int rc, grc;

    if ((rc = include_pattern(lc, arg, &pattern, loc, err)) < 0)
        return rc;
    grc = glob(pattern, 0, NULL, &g);
    free(pattern);
    if (grc == GLOB_NOSPACE)
        return SMX_ENOMEM;
    if (grc != 0)
        return 0;                   /* no match (or unreadable dir): nothing to include, as ssh */
    for (size_t i = 0; i < g.gl_pathc && rc == 0; i++) {
        struct stat st;
        smx_cfgfile *f;

        if (stat(g.gl_pathv[i], &st) == 0 && S_ISDIR(st.st_mode))
            continue;               /* ssh reads a directory as an empty file */
        if (child.depth > SMX_CFG_MAX_INCLUDE_DEPTH)
            rc = smx__cfgerr(err, SMX_EINVAL, loc, "Include nested too deeply (limit %d)",
                             SMX_CFG_MAX_INCLUDE_DEPTH);
        else if (lc->budget->files >= SMX_CFG_MAX_FILES)
            rc = include_too_many(lc, g.gl_pathv[i], loc, err);
        else if ((rc = read_file(&child, g.gl_pathv[i], &f, err)) == 0)
            rc = append_include(d, f);
    }
    globfree(&g);
    return rc;
}

static int process_include(const loadctx *lc, smx_directive *d, const smx__loc *loc,
                           smx_err *err)
{
    for (size_t i = 0; i < d->nargs; i++) {
        int rc = include_one(lc, d, d->args[i], loc, err);

        if (rc < 0)
            return rc;
    }
    return 0;
}

/* ---- files ----------------------------------------------------------------------------- */

static int note_exec(smx_config *cfg, const smx_directive *d, const smx__loc *loc)
{
    for (size_t i = 0; i < d->ncrit; i++) {
        if (d->crit[i].type == SMX_CRIT_EXEC) {
            char *msg = NULL;   /* sized to fit: a long path must not cut the warning short */

            if (asprintf(&msg, "%s:%d: Match exec is not run by sshmux; treated as false",
                         loc->file, loc->line) < 0)
                return SMX_ENOMEM;
            return smx_strvec_push_owned(&cfg->warnings, msg);
        }
    }
    return 0;
}

/* Parse one line and append it to f; Include is followed right away. */
static int load_line(const loadctx *lc, smx_cfgfile *f, char *line, const smx__loc *loc,
                     smx_err *err)
{
    smx_directive d;
    int blank, rc;

    if ((rc = smx__parse_line(line, loc, &d, &blank, err)) < 0 || blank)
        return rc;
    if (d.kw && d.kw->type == SMX_KW_INCLUDE)
        rc = process_include(lc, &d, loc, err);
    else if (d.kw && d.kw->type == SMX_KW_MATCH)
        rc = note_exec(lc->cfg, &d, loc);
    if (rc == 0)
        rc = append_directive(f, &d);
    if (rc < 0)
        smx__directive_free(&d);
    return rc;
}

static int read_lines(const loadctx *lc, FILE *fp, smx_cfgfile *f, smx_err *err)
{
    smx__loc loc = {f->display, 0};
    char *buf = NULL;
    size_t cap = 0;
    ssize_t len;
    int rc = 0;

    while (rc == 0 && (len = getline(&buf, &cap, fp)) >= 0) {
        loc.line++;
        lc->budget->bytes += (size_t)len;
        if (len > SMX_CFG_MAX_LINE)
            rc = smx__cfgerr(err, SMX_EINVAL, &loc, "line too long");
        else if (++lc->budget->lines > SMX_CFG_MAX_LINES ||
                 lc->budget->bytes > SMX_CFG_MAX_BYTES)
            rc = smx__cfgerr(err, SMX_ERANGE, &loc, "configuration too large: more than %d "
                             "lines or %d MiB read, Includes counted", SMX_CFG_MAX_LINES,
                             SMX_CFG_MAX_BYTES >> 20);
        else
            rc = load_line(lc, f, buf, &loc, err);
    }
    if (rc == 0 && ferror(fp) && errno != EISDIR)
        rc = smx_seterr(err, SMX_EIO, "%s: %s", f->display, strerror(errno));
    free(buf);
    return rc;
}

static int read_file(const loadctx *lc, const char *path, smx_cfgfile **out, smx_err *err)
{
    smx_cfgfile *f = calloc(1, sizeof *f);
    FILE *fp;
    int rc;

    *out = NULL;
    if (!f || !(f->display = display_name(lc->cfg, path))) {
        free(f);
        return SMX_ENOMEM;
    }
    lc->budget->files++;
    if (!(fp = fopen(path, "r"))) {
        rc = smx_seterr(err, errno == ENOENT ? SMX_ENOENT : SMX_EIO, "cannot open %s: %s",
                        f->display, strerror(errno));
        smx__cfgfile_free(f);
        return rc;
    }
    rc = read_lines(lc, fp, f, err);
    fclose(fp);
    if (rc == 0 && (rc = smx__cfgfile_index(f)) < 0)
        rc = smx_seterr(err, rc, "out of memory");
    if (rc < 0) {
        smx__cfgfile_free(f);
        return rc;
    }
    *out = f;
    return 0;
}

/* Add a top-level file; optional ones may be missing (ssh's default files). */
static int add_top_file(smx_config *cfg, loadbudget *budget, const char *path, int system,
                        int optional, smx_err *err)
{
    loadctx lc = {cfg, system, 0, budget};
    smx_cfgfile *f, **v;
    int rc = read_file(&lc, path, &f, err);

    if (rc == SMX_ENOENT && optional)
        return 0;
    if (rc < 0)
        return rc;
    if (!(v = realloc(cfg->files, (cfg->nfiles + 1) * sizeof *v))) {
        smx__cfgfile_free(f);
        return SMX_ENOMEM;
    }
    cfg->files = v;
    cfg->files[cfg->nfiles++] = f;
    return 0;
}

/* ---- identity of the local side -------------------------------------------------------- */

static int init_local(smx_config *cfg)
{
    struct passwd pw, *res = NULL;
    size_t size = 16384;
    char *buf = malloc(size), host[256] = "", num[24];
    const char *home = getenv("HOME"), *user;

    if (!buf)
        return SMX_ENOMEM;
    cfg->uid = (unsigned long)getuid();
    if (getpwuid_r(getuid(), &pw, buf, size, &res) != 0)
        res = NULL;
    if (!home || !*home)
        home = res ? res->pw_dir : "/";
    snprintf(num, sizeof num, "%lu", cfg->uid);
    user = res ? res->pw_name : getenv("USER") ? getenv("USER") : num;
    cfg->home = strdup(home);
    cfg->localuser = strdup(user);
    free(buf);
    if (gethostname(host, sizeof host - 1) != 0)
        strcpy(host, "localhost");
    cfg->lhost_full = strdup(host);
    cfg->lhost_short = strndup(host, strcspn(host, "."));
    if (!cfg->home || !cfg->localuser || !cfg->lhost_full || !cfg->lhost_short)
        return SMX_ENOMEM;
    /* "/home/me/" and "/home/me" must expand "~/x" the same way. */
    for (size_t n = strlen(cfg->home); n > 1 && cfg->home[n - 1] == '/'; n--)
        cfg->home[n - 1] = '\0';
    return 0;
}

/* ---- public ---------------------------------------------------------------------------- */

int smx_config_load(smx_config **out, const char *path, smx_err *err)
{
    smx_config *cfg = calloc(1, sizeof *cfg);
    loadbudget budget = {0, 0, 0};
    int rc;

    *out = NULL;
    if (!cfg)
        return SMX_ENOMEM;
    if ((rc = init_local(cfg)) < 0)
        goto fail;
    if (path && strcmp(path, "none") == 0) {
        rc = 0;                     /* ssh -F none: no configuration files at all */
    } else if (path) {
        rc = add_top_file(cfg, &budget, path, 0, 0, err);
    } else {
        char *user = malloc(strlen(cfg->home) + sizeof USER_CONFIG_REL);

        if (!user) {
            rc = SMX_ENOMEM;
            goto fail;
        }
        sprintf(user, "%s%s", cfg->home, USER_CONFIG_REL);
        rc = add_top_file(cfg, &budget, user, 0, 1, err);
        free(user);
        if (rc == 0)
            rc = add_top_file(cfg, &budget, SYSTEM_CONFIG, 1, 1, err);
    }
    if (rc == 0) {
        *out = cfg;
        return 0;
    }
fail:
    smx_config_free(cfg);
    return rc == SMX_ENOMEM ? smx_seterr(err, rc, "out of memory") : rc;
}

void smx_config_free(smx_config *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < cfg->nfiles; i++)
        smx__cfgfile_free(cfg->files[i]);
    free(cfg->files);
    free(cfg->home);
    free(cfg->localuser);
    free(cfg->lhost_full);
    free(cfg->lhost_short);
    smx_strvec_free(&cfg->warnings);
    smx_groups_free(cfg->groups);
    free(cfg);
}

const smx_strvec *smx_config_warnings(const smx_config *cfg)
{
    return &cfg->warnings;
}

/* ---- -o -------------------------------------------------------------------------------- */

static int cmdline_line(smx_cfgfile *f, const char *opt, smx_err *err)
{
    char where[128];
    smx__loc loc = {where, 0};
    smx_directive d;
    char *copy = strdup(opt);
    int blank, rc;

    if (!copy)
        return SMX_ENOMEM;
    snprintf(where, sizeof where, "-o '%s'", opt);   /* errors read "-o 'Port 70x': ..." */
    rc = smx__parse_line(copy, &loc, &d, &blank, err);
    free(copy);
    if (rc < 0 || blank)
        return rc;
    if (d.kw && (d.kw->type == SMX_KW_HOST || d.kw->type == SMX_KW_MATCH ||
                 d.kw->type == SMX_KW_INCLUDE))
        rc = smx__cfgerr(err, SMX_EINVAL, &loc, "%s is not supported as a command-line option",
                         d.kw->name);
    if (rc == 0)
        rc = append_directive(f, &d);
    if (rc < 0)
        smx__directive_free(&d);
    return rc;
}

int smx__parse_cmdline(const smx_strvec *options, smx_cfgfile **out, smx_err *err)
{
    smx_cfgfile *f = calloc(1, sizeof *f);
    int rc = 0;

    *out = NULL;
    if (!f || !(f->display = strdup("command line (-o)"))) {
        free(f);
        return SMX_ENOMEM;
    }
    for (size_t i = 0; options && i < options->n && rc == 0; i++)
        rc = cmdline_line(f, options->v[i], err);
    if (rc < 0) {
        smx__cfgfile_free(f);
        return rc;
    }
    *out = f;
    return 0;
}

int smx_config_validate_option(const char *kv, smx_err *err)
{
    smx_strvec one = {(char **)&kv, 1, 1};
    smx_cfgfile *f;
    int rc = smx__parse_cmdline(&one, &f, err);

    if (rc < 0)
        return rc;
    if (f->n == 1 && !f->d[0].kw)
        rc = smx_seterr(err, SMX_EINVAL, "unknown option \"%s\"", f->d[0].args[0]);
    smx__cfgfile_free(f);
    return rc;
}
