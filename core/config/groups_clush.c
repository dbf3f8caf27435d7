/* ClusterShell's node groups: YAML group files (`source: {group: "nodeset", ...}`), and its
 * configuration, groups.conf, read from where ClusterShell 1.9 reads it (Defaults.py
 * config_paths, NodeUtils.GroupResolverConfig):
 *   /etc/clustershell, ~/.local/etc/clustershell, $XDG_CONFIG_HOME/clustershell (default
 *   ~/.config/clustershell), $CLUSTERSHELL_CFGDIR: every groups.conf found, later ones
 *   overriding earlier keys (Python's ConfigParser reads them all); $CFGDIR is the directory of
 *   the last one. [Main] groupsdir (else confdir) names directories of *.conf files whose
 *   sections are upcall sources; autodir directories of *.yaml group files; `default` the
 *   source of unqualified groups (else the first source). Other sections of groups.conf are
 *   upcall sources too.
 * Upcalls (map, list, all, reverse) are shell commands: sshmux never runs them, so such a
 * source has no groups here (a note says so). Python's own prefix (sys.prefix/etc/clustershell)
 * is not looked at. */
#ifndef _DEFAULT_SOURCE
#define _DEFAULT_SOURCE
#endif
#include "groups_internal.h"

#include <ctype.h>
#include <stdarg.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- YAML group files ------------------------------------------------------------------ */

/* A group's value: a string (parts separated by white space), a list of strings, or null.
 * ClusterShell joins list items with ',' and then every white-space separated part with ','. */
static int clush_group_def(grp_yaml *y, yaml_node_t *v, const char *where, const char *group,
                           char **out, smx_err *err)
{
    smx_strvec parts = {0};
    int rc = 0;
    if (v->type == YAML_SCALAR_NODE) {
        if (!grp_yaml_is_null(v))
            rc = smx_strvec_push(&parts, grp_yaml_scalar(v));
    } else if (v->type == YAML_SEQUENCE_NODE) {
        for (yaml_node_item_t *it = v->data.sequence.items.start;
             rc == 0 && it < v->data.sequence.items.top; it++) {
            yaml_node_t *e = grp_yaml_node(y, *it);
            if ((rc = grp_yaml_visit(y, e, err)) < 0)
                break;
            if (!e || e->type != YAML_SCALAR_NODE) {
                rc = smx_seterr(err, SMX_EINVAL, "%s: group \"%s\": list items must be "
                                "strings", where, group);
                break;
            }
            rc = smx_strvec_push(&parts, grp_yaml_scalar(e));
        }
    } else {
        rc = smx_seterr(err, SMX_EINVAL, "%s: group \"%s\": expected a node set (a string or "
                        "a list), not a mapping", where, group);
    }
    size_t len = 1;
    for (size_t i = 0; i < parts.n; i++)
        len += strlen(parts.v[i]) + 1;
    char *def = rc == 0 ? malloc(len) : NULL;
    if (rc == 0 && !def)
        rc = SMX_ENOMEM;
    if (rc == 0) {
        size_t n = 0;
        for (size_t i = 0; i < parts.n; i++) {
            for (const char *p = parts.v[i]; *p;) {
                while (*p && isspace((unsigned char)*p))
                    p++;
                size_t w = 0;
                while (p[w] && !isspace((unsigned char)p[w]))
                    w++;
                if (w) {
                    if (n)
                        def[n++] = ',';
                    memcpy(def + n, p, w);
                    n += w;
                }
                p += w;
            }
        }
        def[n] = '\0';
        *out = def;
    }
    smx_strvec_free(&parts);
    return rc == SMX_ENOMEM ? smx_seterr(err, rc, "out of memory") : rc;
}

static int clush_source(smx_groups *g, grp_yaml *y, yaml_node_t *key, yaml_node_t *val,
                        grp_source **out, smx_err *err)
{
    const char *path = y->path, *name = grp_yaml_scalar(key);
    unsigned long line = grp_yaml_line(key);
    if (!name || !*name || strchr(name, ':'))
        return smx_seterr(err, SMX_EINVAL, "%s:%lu: a group source name must be a string "
                          "without ':'", path, line);
    if (!val || val->type != YAML_MAPPING_NODE)
        return smx_seterr(err, SMX_EINVAL, "%s:%lu: group source \"%s\" is not a mapping of "
                          "groups", path, line, name);
    const grp_source *old = grp_find_source(g, name, GRP_CLUSH);
    if (old)
        return smx_seterr(err, SMX_EINVAL, "%s:%lu: group source \"%s\" is already defined "
                          "(in %s)", path, line, name, old->origin);
    grp_source *s = grp_source_new(name, GRP_CLUSH, path);
    if (!s)
        return smx_seterr(err, SMX_ENOMEM, "out of memory");
    int rc = 0;
    for (yaml_node_pair_t *p = val->data.mapping.pairs.start;
         rc == 0 && p < val->data.mapping.pairs.top; p++) {
        yaml_node_t *k = grp_yaml_node(y, p->key), *v = grp_yaml_node(y, p->value);
        const char *group = grp_yaml_scalar(k);
        char *where = grp_where(path, grp_yaml_line(k)), *def = NULL;
        size_t gi;
        if (!where) {
            rc = smx_seterr(err, SMX_ENOMEM, "out of memory");
        } else if ((rc = grp_yaml_visit(y, v, err)) < 0) {
        } else if (!group || !*group || strpbrk(group, "@,!&^*: \t")) {
            rc = smx_seterr(err, SMX_EINVAL, "%s: group names are strings without white space "
                            "or any of @,!&^*:", where);
        } else if ((rc = clush_group_def(y, v, where, group, &def, err)) == 0) {
            if (grp_index_get(&s->gix, group, &gi))
                rc = smx_seterr(err, SMX_EINVAL, "%s: group \"%s\" is defined twice in source "
                                "\"%s\"", where, group, name);
            else if (grp_source_group(s, group, where, &gi) < 0)
                rc = smx_seterr(err, SMX_ENOMEM, "out of memory");
            else {
                s->groups[gi].def = def;
                def = NULL;
            }
        }
        free(def);
        free(where);
    }
    if (rc < 0) {
        grp_source_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

int smx_groups_load_clush_yaml(smx_groups *g, const char *path, smx_err *err)
{
    char *text;
    size_t len;
    grp_yaml y;
    int rc = smx__groups_read_file(path, &text, &len, err);
    if (rc < 0)
        return rc;
    rc = grp_yaml_load(&y, path, text, len, err);
    free(text);
    if (rc < 0)
        return rc;
    yaml_node_t *root = grp_yaml_root(&y);
    grp_source **made = NULL;
    size_t n = 0;
    if (!root || root->type != YAML_MAPPING_NODE) {
        rc = smx_seterr(err, SMX_EINVAL, "%s: not a ClusterShell group file (expected a mapping "
                        "of group sources, e.g. \"local: {web: 'web[01-04]'}\")", path);
    } else {
        size_t npairs = (size_t)(root->data.mapping.pairs.top - root->data.mapping.pairs.start);
        made = calloc(npairs ? npairs : 1, sizeof *made);
        if (!made)
            rc = smx_seterr(err, SMX_ENOMEM, "out of memory");
        for (yaml_node_pair_t *p = root->data.mapping.pairs.start;
             rc == 0 && p < root->data.mapping.pairs.top; p++) {
            rc = clush_source(g, &y, grp_yaml_node(&y, p->key), grp_yaml_node(&y, p->value),
                              &made[n], err);
            for (size_t i = 0; rc == 0 && i < n; i++)
                if (strcmp(made[i]->name, made[n]->name) == 0) {
                    rc = smx_seterr(err, SMX_EINVAL, "%s: group source \"%s\" is defined twice",
                                    path, made[n]->name);
                    grp_source_free(made[n]);
                }
            if (rc == 0)
                n++;
        }
    }
    grp_yaml_free(&y);
    for (size_t i = 0; i < n; i++) {
        if (rc == 0)
            rc = grp_add_source(g, made[i]);   /* frees it on failure */
        else
            grp_source_free(made[i]);
    }
    free(made);
    if (rc == SMX_ENOMEM)
        smx_seterr(err, rc, "out of memory");
    return rc;
}

/* ---- groups.conf ------------------------------------------------------------------------ */

/* What ConfigParser would hold after reading every groups.conf: (section, key) -> value, later
 * files overriding earlier ones. Keys are lower-cased, as ConfigParser's optionxform does. */
typedef struct ini_entry {
    char *section, *key, *value;
    char *file;
} ini_entry;

typedef struct ini {
    ini_entry *e;
    size_t n, cap;
    smx_strvec sections;      /* in order of first appearance */
} ini;

static void ini_free(ini *c)
{
    for (size_t i = 0; i < c->n; i++) {
        free(c->e[i].section);
        free(c->e[i].key);
        free(c->e[i].value);
        free(c->e[i].file);
    }
    free(c->e);
    smx_strvec_free(&c->sections);
    memset(c, 0, sizeof *c);
}

static ini_entry *ini_find(ini *c, const char *section, const char *key)
{
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->e[i].section, section) == 0 && strcmp(c->e[i].key, key) == 0)
            return &c->e[i];
    return NULL;
}

static const char *ini_get(ini *c, const char *section, const char *key)
{
    ini_entry *e = ini_find(c, section, key);
    return e ? e->value : NULL;
}

static int ini_set(ini *c, const char *section, const char *key, const char *value,
                   const char *file)
{
    ini_entry *e = ini_find(c, section, key);
    if (!e) {
        if (c->n == c->cap) {
            size_t cap = c->cap ? c->cap * 2 : 16;
            ini_entry *p = realloc(c->e, cap * sizeof *p);
            if (!p)
                return SMX_ENOMEM;
            c->e = p;
            c->cap = cap;
        }
        e = &c->e[c->n];
        memset(e, 0, sizeof *e);
        if (!(e->section = strdup(section)) || !(e->key = strdup(key))) {
            free(e->section);
            return SMX_ENOMEM;
        }
        c->n++;
    }
    char *v = strdup(value), *f = strdup(file);
    if (!v || !f) {
        free(v);
        free(f);
        return SMX_ENOMEM;
    }
    free(e->value);
    free(e->file);
    e->value = v;
    e->file = f;
    return 0;
}

static char *ini_trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

/* One file in ConfigParser's dialect: [section], key = value or key: value, continuation lines
 * indented, # and ; comment lines. */
static int ini_read(ini *c, const char *path, smx_err *err)
{
    char *text;
    size_t len;
    int rc = smx__groups_read_file(path, &text, &len, err);
    if (rc < 0)
        return rc;
    char section[256] = "", key[256] = "";
    char *value = NULL;
    unsigned long lineno = 0;
    for (char *line = text, *next; rc == 0 && line && *line; line = next) {
        lineno++;
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        line[strcspn(line, "\r")] = '\0';
        char *t = ini_trim(line);
        if (*t == '#' || *t == ';')
            continue;
        if (!*t) {
            key[0] = '\0';
            continue;
        }
        if (key[0] && isspace((unsigned char)line[0])) {   /* a continuation line */
            const char *old = ini_get(c, section, key);
            size_t size = strlen(old) + strlen(t) + 2;
            char *joined = malloc(size);
            if (!joined) {
                rc = SMX_ENOMEM;
                break;
            }
            snprintf(joined, size, "%s\n%s", old, t);
            rc = ini_set(c, section, key, joined, path);
            free(joined);
            continue;
        }
        if (*t == '[') {
            char *close = strchr(t, ']');
            if (!close || close == t + 1 || (size_t)(close - t) >= sizeof section) {
                rc = smx_seterr(err, SMX_EINVAL, "%s:%lu: malformed section header", path,
                                lineno);
                break;
            }
            *close = '\0';
            snprintf(section, sizeof section, "%s", t + 1);
            key[0] = '\0';
            if (!smx_strvec_contains(&c->sections, section))
                rc = smx_strvec_push(&c->sections, section);
            continue;
        }
        size_t klen = strcspn(t, ":=");
        if (!section[0] || !t[klen] || klen == 0) {
            rc = smx_seterr(err, SMX_EINVAL, "%s:%lu: expected \"key: value\"%s", path, lineno,
                            section[0] ? "" : " inside a [section]");
            break;
        }
        t[klen] = '\0';
        value = ini_trim(t + klen + 1);
        char *k = ini_trim(t);
        for (char *p = k; *p; p++)
            *p = (char)tolower((unsigned char)*p);
        snprintf(key, sizeof key, "%s", k);
        rc = ini_set(c, section, key, value, path);
    }
    free(text);
    return rc == SMX_ENOMEM ? smx_seterr(err, rc, "out of memory") : rc;
}

/* Python's shlex.split (POSIX mode), enough for directory lists: blanks separate words, quotes
 * and backslashes group them. */
static int clush_split(const char *s, smx_strvec *out)
{
    size_t cap = strlen(s) + 1;
    char *w = malloc(cap);
    if (!w)
        return SMX_ENOMEM;
    int rc = 0;
    for (const char *p = s; rc == 0 && *p;) {
        while (*p && isspace((unsigned char)*p))
            p++;
        if (!*p)
            break;
        size_t n = 0;
        char q = 0;
        for (; *p && (q || !isspace((unsigned char)*p)); p++) {
            if (q) {
                if (*p == q)
                    q = 0;
                else if (*p == '\\' && q == '"' && p[1] && strchr("\\\"", p[1]))
                    w[n++] = *++p;
                else
                    w[n++] = *p;
            } else if (*p == '\'' || *p == '"') {
                q = *p;
            } else if (*p == '\\' && p[1]) {
                w[n++] = *++p;
            } else {
                w[n++] = *p;
            }
        }
        w[n] = '\0';
        rc = smx_strvec_push(out, w);
    }
    free(w);
    return rc;
}

/* string.Template.safe_substitute with CFGDIR only: $CFGDIR and ${CFGDIR}, $$ for '$'. */
static char *clush_subst(const char *s, const char *cfgdir)
{
    size_t size = strlen(s) * (strlen(cfgdir) + 1) + 1;
    char *out = malloc(size), *o = out;
    if (!out)
        return NULL;
    for (const char *p = s; *p;) {
        if (strncmp(p, "$CFGDIR", 7) == 0 && !(isalnum((unsigned char)p[7]) || p[7] == '_')) {
            o += sprintf(o, "%s", cfgdir);
            p += 7;
        } else if (strncmp(p, "${CFGDIR}", 9) == 0) {
            o += sprintf(o, "%s", cfgdir);
            p += 9;
        } else if (p[0] == '$' && p[1] == '$') {
            *o++ = '$';
            p += 2;
        } else {
            *o++ = *p++;
        }
    }
    *o = '\0';
    return out;
}

/* os.path.normpath for absolute and relative paths: no "//", ".", or "x/..". */
static void clush_normpath(char *path)
{
    int abs = path[0] == '/';
    char *parts[256];
    size_t n = 0;
    for (char *tok = strtok(path, "/"); tok && n < 256; tok = strtok(NULL, "/")) {
        if (strcmp(tok, ".") == 0)
            continue;
        if (strcmp(tok, "..") == 0 && n > 0 && strcmp(parts[n - 1], "..") != 0) {
            n--;
            continue;
        }
        if (strcmp(tok, "..") == 0 && abs)
            continue;
        parts[n++] = tok;
    }
    char buf[4096];
    size_t len = 0;
    buf[0] = '\0';
    if (abs)
        buf[len++] = '/';
    for (size_t i = 0; i < n && len < sizeof buf; i++)
        len += (size_t)snprintf(buf + len, sizeof buf - len, "%s%s", i ? "/" : "", parts[i]);
    if (len == 0)
        snprintf(buf, sizeof buf, ".");
    buf[sizeof buf - 1] = '\0';
    strcpy(path, buf);   /* never longer than the input */
}

__attribute__((format(printf, 2, 3)))
static void clush_note(smx_strvec *notes, const char *fmt, ...)
{
    char msg[SMX_MSG_MAX];
    va_list ap;
    if (!notes)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    smx_strvec_push(notes, msg);
}

/* Sections of a groups.conf or a confdir *.conf file: upcall sources ("a,b" names several). */
static int clush_upcall_sources(smx_groups *g, ini *c, const char *origin, smx_strvec *notes,
                                smx_err *err)
{
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < c->sections.n; i++) {
        const char *section = c->sections.v[i];
        if (strcmp(section, "Main") == 0)
            continue;
        if (!ini_get(c, section, "map")) {
            smx_seterr(err, SMX_EINVAL, "%s: section [%s] has no \"map\" upcall", origin,
                       section);
            smx_groups_defer_error(g, err);
            continue;
        }
        smx_strvec names = {0};
        char *copy = strdup(section);
        for (char *tok = copy ? strtok(copy, ",") : NULL; rc == 0 && tok;
             tok = strtok(NULL, ","))
            if (*tok)
                rc = smx_strvec_push(&names, tok);
        free(copy);
        for (size_t k = 0; rc == 0 && k < names.n; k++) {
            if (grp_find_source(g, names.v[k], GRP_CLUSH))
                continue;
            grp_source *s = grp_source_new(names.v[k], GRP_CLUSH, origin);
            if (!s) {
                rc = SMX_ENOMEM;
                break;
            }
            s->upcalls = 1;
            rc = grp_add_source(g, s);
            clush_note(notes, "ClusterShell group source \"%s\" (%s) is defined by upcalls, "
                       "which sshmux does not run: it has no groups here", names.v[k], origin);
        }
        smx_strvec_free(&names);
    }
    return rc;
}

/* Every existing directory of a confdir/autodir value (blank-separated, quoted as shlex,
 * $CFGDIR substituted, normalised, each once). */
static int clush_dirs(const char *value, const char *cfgdir, smx_strvec *dirs)
{
    smx_strvec words = {0};
    int rc = clush_split(value, &words);
    for (size_t i = 0; rc == 0 && i < words.n; i++) {
        char *d = clush_subst(words.v[i], cfgdir);
        struct stat st;
        if (!d) {
            rc = SMX_ENOMEM;
            break;
        }
        clush_normpath(d);
        if (!smx_strvec_contains(dirs, d) && stat(d, &st) == 0 && S_ISDIR(st.st_mode))
            rc = smx_strvec_push_owned(dirs, d);
        else
            free(d);
    }
    smx_strvec_free(&words);
    return rc;
}

static int clush_glob(const char *dir, const char *suffix, smx_strvec *out)
{
    char pattern[4200];
    glob_t gl;
    snprintf(pattern, sizeof pattern, "%s/*%s", dir, suffix);
    if (glob(pattern, 0, NULL, &gl) != 0)
        return 0;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < gl.gl_pathc; i++)   /* glob sorts, as sorted() does */
        rc = smx_strvec_push(out, gl.gl_pathv[i]);
    globfree(&gl);
    return rc;
}

static void clush_config_paths(smx_strvec *paths)
{
    const char *home = getenv("HOME"), *xdg = getenv("XDG_CONFIG_HOME"),
               *cfgdir = getenv("CLUSTERSHELL_CFGDIR");
    char buf[4200];
    smx_strvec_push(paths, "/etc/clustershell/groups.conf");
    if (home && *home) {
        snprintf(buf, sizeof buf, "%s/.local/etc/clustershell/groups.conf", home);
        smx_strvec_push(paths, buf);
    }
    if (xdg && *xdg)
        snprintf(buf, sizeof buf, "%s/clustershell/groups.conf", xdg);
    else
        snprintf(buf, sizeof buf, "%s/.config/clustershell/groups.conf", home ? home : "");
    if ((xdg && *xdg) || (home && *home))
        smx_strvec_push(paths, buf);
    if (cfgdir) {
        snprintf(buf, sizeof buf, "%s/groups.conf", cfgdir);
        smx_strvec_push(paths, buf);
    }
}

int smx_groups_load_clush_defaults(smx_groups *g, smx_strvec *notes, smx_err *err)
{
    smx_strvec paths = {0}, confdirs = {0}, autodirs = {0}, files = {0};
    ini c = {0};
    const char *last = NULL;
    int rc = 0;
    clush_config_paths(&paths);
    for (size_t i = 0; i < paths.n; i++) {
        smx_err e = {{0}};
        if (access(paths.v[i], F_OK) != 0)
            continue;
        int r = ini_read(&c, paths.v[i], &e);
        if (r == SMX_ENOMEM) {
            rc = r;
            goto out;
        }
        if (r < 0)
            smx_groups_defer_error(g, &e);
        else
            last = paths.v[i];
    }
    if (!last)
        goto out;   /* no groups.conf: ClusterShell has no groups either */
    char *cfgdir = strdup(last);
    if (!cfgdir) {
        rc = SMX_ENOMEM;
        goto out;
    }
    *strrchr(cfgdir, '/') = '\0';
    const char *confdir = ini_get(&c, "Main", "groupsdir");
    if (!confdir)
        confdir = ini_get(&c, "Main", "confdir");
    const char *autodir = ini_get(&c, "Main", "autodir");
    if (confdir)
        rc = clush_dirs(confdir, cfgdir, &confdirs);
    if (rc == 0 && autodir)
        rc = clush_dirs(autodir, cfgdir, &autodirs);
    for (size_t i = 0; rc == 0 && i < confdirs.n; i++)
        rc = clush_glob(confdirs.v[i], ".conf", &files);
    for (size_t i = 0; rc == 0 && i < files.n; i++) {
        ini part = {0};
        smx_err e = {{0}};
        int r = ini_read(&part, files.v[i], &e);
        if (r == 0)
            r = clush_upcall_sources(g, &part, files.v[i], notes, &e);
        else if (r != SMX_ENOMEM)
            smx_groups_defer_error(g, &e);
        ini_free(&part);
        rc = r == SMX_ENOMEM ? r : 0;
    }
    smx_strvec_free(&files);
    for (size_t i = 0; rc == 0 && i < autodirs.n; i++)
        rc = clush_glob(autodirs.v[i], ".yaml", &files);
    for (size_t i = 0; rc == 0 && i < files.n; i++) {
        smx_err e = {{0}};
        int r = smx_groups_load_clush_yaml(g, files.v[i], &e);
        if (r == SMX_ENOMEM)
            rc = r;
        else if (r < 0 && r != SMX_ENOENT) {
            smx_groups_defer_error(g, &e);
            clush_note(notes, "ClusterShell group file not loaded: %.400s", e.msg);
        }
    }
    if (rc == 0)
        rc = clush_upcall_sources(g, &c, last, notes, err);
    const char *def = ini_get(&c, "Main", "default");
    if (rc == 0 && def && *def) {
        free(g->default_src);
        if (!(g->default_src = strdup(def)))
            rc = SMX_ENOMEM;
        else if (!grp_find_source(g, def, GRP_CLUSH)) {
            smx_err e = {{0}};
            smx_seterr(&e, SMX_EINVAL, "%s: default group source not found: \"%s\"", last, def);
            smx_groups_defer_error(g, &e);
        }
    }
    free(cfgdir);
out:
    ini_free(&c);
    smx_strvec_free(&paths);
    smx_strvec_free(&confdirs);
    smx_strvec_free(&autodirs);
    smx_strvec_free(&files);
    return rc == SMX_ENOMEM ? smx_seterr(err, rc, "out of memory") : rc;
}
