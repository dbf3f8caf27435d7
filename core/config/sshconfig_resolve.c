/* Per-host evaluation: walk the parsed files the way ssh does (first value wins, Host/Match
 * blocks, Include scoping, optional final pass), then fill defaults and expand tokens. */
#include "sshconfig_internal.h"
#include "pattern.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const default_identities[] = {
    "~/.ssh/id_rsa", "~/.ssh/id_ecdsa", "~/.ssh/id_ecdsa_sk", "~/.ssh/id_ed25519",
    "~/.ssh/id_ed25519_sk", "~/.ssh/id_xmss", "~/.ssh/id_dsa", NULL
};
static const char *const default_user_known_hosts[] = {
    "~/.ssh/known_hosts", "~/.ssh/known_hosts2", NULL
};
static const char *const default_global_known_hosts[] = {
    "/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2", NULL
};

/* Tokens accepted by IdentityFile, IdentityAgent and UserKnownHostsFile. */
#define FILE_TOKENS "CdhikLlnpru"

typedef struct walkctx {
    const smx_config *cfg;
    smx_resolving *st;
    const char *orig;           /* the host as typed (%n, originalhost) */
    const char *final_host;     /* the resolved hostname, set for the final pass */
    int pass;                   /* 1, or 2 for ssh's "final" pass */
    int want_final;             /* pass 1 met a Match final */
    smx_err *err;
} walkctx;

/* ---- field access through the keyword table's offsets ---------------------------------- */

static char **str_field(smx_resolving *st, const smx_keyword *kw)
{
    return (char **)(void *)((char *)st + kw->offset);
}

static int *int_field(smx_resolving *st, const smx_keyword *kw)
{
    return (int *)(void *)((char *)st + kw->offset);
}

static smx_strvec *vec_field(smx_resolving *st, const smx_keyword *kw)
{
    return (smx_strvec *)(void *)((char *)st + kw->offset);
}

static int set_str(char **field, const char *value)
{
    if (*field)
        return 0;                   /* first obtained value wins */
    return (*field = strdup(value)) ? 0 : SMX_ENOMEM;
}

/* ---- hostname -------------------------------------------------------------------------- */

/* HostName with %h (the name as typed) and %% expanded. */
static int expand_hostname(const walkctx *w, const char *raw, char **out)
{
    smx__tokens t = {0};

    t.hostname = w->orig;
    return smx__expand(raw, &t, "h", 0, "HostName", out, w->err);
}

/* ssh lowercases the final hostname unless it looks like an address literal or scoped name. */
static void lowercase_hostname(char *h)
{
    if (strchr(h, ':') || strchr(h, '%'))
        return;
    for (; *h; h++)
        if (*h >= 'A' && *h <= 'Z')
            *h += 'a' - 'A';
}

/* The name "Match host" tests: the hostname so far (HostName expanded) or the typed name. */
static int current_hostname(const walkctx *w, char **out)
{
    if (w->final_host)
        return (*out = strdup(w->final_host)) ? 0 : SMX_ENOMEM;
    if (w->st->hc.hostname)
        return expand_hostname(w, w->st->hc.hostname, out);
    return (*out = strdup(w->orig)) ? 0 : SMX_ENOMEM;
}

/* ---- Host / Match ---------------------------------------------------------------------- */

/* ssh compares Host patterns case-sensitively with the name as typed (pass 1) or with the
 * resolved, lowercased hostname (final pass). A matching negated pattern vetoes the line. */
static int host_line_matches(const walkctx *w, const smx_directive *d)
{
    const char *name = w->final_host ? w->final_host : w->orig;
    int matched = 0;

    for (size_t i = 0; i < d->nargs; i++) {
        const char *p = d->args[i];

        if (p[0] == '!') {
            if (smx_pattern_match_cs(name, p + 1))
                return 0;
        } else if (smx_pattern_match_cs(name, p)) {
            matched = 1;
        }
    }
    return matched;
}

static int criterion_holds(walkctx *w, const smx_criterion *c)
{
    const char *user = w->st->hc.user ? w->st->hc.user : w->cfg->localuser;
    char *host;
    int r;

    switch (c->type) {
    case SMX_CRIT_ALL: return 1;
    case SMX_CRIT_CANONICAL: return w->pass == 2;
    case SMX_CRIT_FINAL:
        w->want_final |= w->pass == 1;
        return w->pass == 2;
    case SMX_CRIT_EXEC: return 0;  /* never run; see smx_config_warnings() */
    case SMX_CRIT_ORIGINALHOST: return smx_pattern_list_match(w->orig, c->arg) == 1;
    case SMX_CRIT_USER: return smx_pattern_list_match_cs(user, c->arg) == 1;
    case SMX_CRIT_LOCALUSER: return smx_pattern_list_match_cs(w->cfg->localuser, c->arg) == 1;
    case SMX_CRIT_HOST:
        if ((r = current_hostname(w, &host)) < 0)
            return r;
        r = smx_pattern_list_match(host, c->arg) == 1;
        free(host);
        return r;
    }
    return 0;
}

/* All criteria must hold. Every criterion is evaluated, so a `final` anywhere on the line
 * still requests the final pass. Returns 1/0, or a negative error. */
static int match_line_matches(walkctx *w, const smx_directive *d)
{
    int result = 1;

    for (size_t i = 0; i < d->ncrit; i++) {
        int r = criterion_holds(w, &d->crit[i]);

        if (r < 0)
            return r;
        if (d->crit[i].negated)
            r = !r;
        if (!r)
            result = 0;
    }
    return result;
}

/* ---- applying one option --------------------------------------------------------------- */

static int add_identity(smx_resolving *st, const char *raw, smx_err *err)
{
    st->have_identity = 1;
    if (smx_strvec_contains(&st->hc.identityfile_raw, raw))
        return 0;                   /* ssh drops duplicates */
    if (st->hc.identityfile_raw.n >= SMX_CFG_MAX_IDENTITIES)
        return smx_seterr(err, SMX_ERANGE, "too many identity files (max %d)",
                          SMX_CFG_MAX_IDENTITIES);
    return smx_strvec_push(&st->hc.identityfile_raw, raw);
}

static int apply_files(smx_strvec *v, const smx_directive *d)
{
    if (v->n > 0)
        return 0;
    for (size_t i = 0; i < d->nargs; i++)
        if (smx_strvec_push(v, d->args[i]) < 0)
            return SMX_ENOMEM;
    return 0;
}

/* ProxyJump and ProxyCommand compete: whichever comes first wins. As ssh -G shows, an early
 * "ProxyJump none" does not block a later ProxyCommand, but "ProxyCommand none" blocks
 * ProxyJump. */
static int apply_proxy(smx_resolving *st, const smx_directive *d)
{
    smx_hostcfg *hc = &st->hc;

    if (d->kw->type == SMX_KW_JUMP) {
        if (hc->proxyjump || hc->proxycommand)
            return 0;
        return set_str(&hc->proxyjump, d->args[0]);
    }
    if (hc->proxyjump && strcasecmp(hc->proxyjump, "none") != 0)
        return 0;
    return set_str(&hc->proxycommand, d->args[0]);
}

static int apply(walkctx *w, const smx_directive *d)
{
    smx_resolving *st = w->st;
    int *ip;

    switch (d->kw->type) {
    case SMX_KW_PORT:
    case SMX_KW_TIME:
    case SMX_KW_INT:
    case SMX_KW_BOOL:
        ip = int_field(st, d->kw);
        if (*ip == -1)
            *ip = d->ival;          /* "ConnectTimeout none" is -1: leaves it unset */
        return 0;
    case SMX_KW_HOSTNAME:
        return w->final_host ? 0 : set_str(str_field(st, d->kw), d->args[0]);
    case SMX_KW_IDFILE:
        return add_identity(st, d->args[0], w->err);
    case SMX_KW_FILES:
        return apply_files(vec_field(st, d->kw), d);
    case SMX_KW_JUMP:
    case SMX_KW_PROXYCMD:
        return apply_proxy(st, d);
    case SMX_KW_IGNORED:
        return 0;
    default:                        /* STR, AGENT, ALGOS, ENUM, IGNUNKNOWN */
        return set_str(str_field(st, d->kw), d->args[0]);
    }
}

/* ---- walking --------------------------------------------------------------------------- */

static int check_unknown(const walkctx *w, const smx_cfgfile *f, const smx_directive *d)
{
    const char *ign = w->st->ignoreunknown;
    smx__loc loc = {f->display, d->line};

    if (ign && smx_pattern_list_match(d->args[0], ign) == 1)
        return 0;
    return smx__cfgerr(w->err, SMX_EINVAL, &loc, "unknown option \"%s\"", d->args[0]);
}

/* A run of literal Host blocks (sshconfig_internal.h) from the Host line at `from`: only the
 * blocks listing the name apply their options; the block state after the run is whether the
 * last one did. Their bodies hold known options only, so nothing else in the run acts. */
static int walk_run(walkctx *w, const smx_cfgfile *f, size_t from, int nevermatch, int *active)
{
    size_t to = f->index->run_end[from], nb;
    const smx__litblock *b;

    *active = 0;
    if (nevermatch)
        return 0;
    nb = smx__cfgindex_find(f->index, w->final_host ? w->final_host : w->orig, from, to, &b);
    for (size_t k = 0; k < nb; k++) {
        for (size_t j = b[k].start + 1; j < b[k].end; j++) {
            int rc = apply(w, &f->d[j]);

            if (rc < 0)
                return rc;
        }
        *active = b[k].end == to;
    }
    return 0;
}

/* One file. `active` is the block state inherited from the including line; inside an Include
 * from a non-matching block nothing may match (ssh's "never match"), and the includer's state
 * is restored afterwards simply because it is a local of the caller. */
static int walk_file(walkctx *w, const smx_cfgfile *f, int active, int nevermatch)
{
    for (size_t i = 0; i < f->n; i++) {
        const smx_directive *d = &f->d[i];
        int rc = 0;

        if (!d->kw) {
            rc = check_unknown(w, f, d);
        } else if (d->kw->type == SMX_KW_HOST && f->index && f->index->run_end[i]) {
            rc = walk_run(w, f, i, nevermatch, &active);
            i = f->index->run_end[i] - 1;
        } else if (d->kw->type == SMX_KW_HOST) {
            active = !nevermatch && host_line_matches(w, d);
        } else if (d->kw->type == SMX_KW_MATCH) {
            rc = nevermatch ? 0 : match_line_matches(w, d);
            active = rc > 0;
        } else if (d->kw->type == SMX_KW_INCLUDE) {
            for (size_t k = 0; k < d->ninc && rc == 0; k++)
                rc = walk_file(w, d->inc[k], active, nevermatch || !active);
        } else if (active) {
            rc = apply(w, d);
        }
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int walk_config(walkctx *w)
{
    for (size_t i = 0; i < w->cfg->nfiles; i++) {
        int rc = walk_file(w, w->cfg->files[i], 1, 0);

        if (rc < 0)
            return rc;
    }
    return 0;
}

/* ---- overrides ------------------------------------------------------------------------- */

/* -l/-p first (they beat everything), then -i (tried first, "~" expanded like ssh's getopt
 * handling does), then the -o lines as an always-active config file. */
static int apply_overrides(walkctx *w, const smx_overrides *ov)
{
    smx_hostcfg *hc = &w->st->hc;
    smx_cfgfile *opts;
    int rc;

    if (ov->user && !(hc->user = strdup(ov->user)))
        return SMX_ENOMEM;
    if (ov->port < 0 || ov->port > 65535)
        return smx_seterr(w->err, SMX_ERANGE, "bad port %d (must be 1..65535)", ov->port);
    if (ov->port > 0)
        hc->port = ov->port;
    for (size_t i = 0; i < ov->identityfiles.n; i++) {
        char *path;

        if ((rc = smx__tilde(ov->identityfiles.v[i], w->cfg->home, &path, w->err)) < 0)
            return rc;
        rc = add_identity(w->st, path, w->err);
        free(path);
        if (rc < 0)
            return rc;
    }
    if ((rc = smx__parse_cmdline(&ov->options, &opts, w->err)) < 0)
        return rc;
    rc = walk_file(w, opts, 1, 0);
    smx__cfgfile_free(opts);
    return rc;
}

/* ---- finishing: defaults and expansion ------------------------------------------------- */

static int default_int(int *field, int value)
{
    if (*field == -1)
        *field = value;
    return 0;
}

static int expand_path(const walkctx *w, const smx__tokens *t, const char *raw, const char *what,
                       char **out)
{
    char *tilded;
    int rc = smx__tilde(raw, w->cfg->home, &tilded, w->err);

    if (rc < 0)
        return rc;
    rc = smx__expand(tilded, t, FILE_TOKENS, 1, what, out, w->err);
    free(tilded);
    return rc;
}

/* Expand a file list in place; "none" entries are dropped, so empty means "none". Without
 * tokens (t == NULL) only "~" is expanded: ssh_config(5) gives GlobalKnownHostsFile no tokens. */
static int expand_list(const walkctx *w, const smx__tokens *t, smx_strvec *v,
                       const char *const *defaults, const char *what)
{
    smx_strvec out = {0};
    int rc = 0;

    if (v->n == 0)
        for (size_t i = 0; defaults[i]; i++)
            if ((rc = smx_strvec_push(v, defaults[i])) < 0)
                return rc;
    for (size_t i = 0; i < v->n && rc == 0; i++) {
        char *path;

        if (strcasecmp(v->v[i], "none") == 0)
            continue;
        if (t)
            rc = expand_path(w, t, v->v[i], what, &path);
        else
            rc = smx__tilde(v->v[i], w->cfg->home, &path, w->err);
        if (rc == 0)
            rc = smx_strvec_push_owned(&out, path);
    }
    if (rc < 0) {
        smx_strvec_free(&out);
        return rc;
    }
    smx_strvec_free(v);
    *v = out;
    return 0;
}

/* IdentityAgent: "none", "SSH_AUTH_SOCK" and "$VAR" are instructions, not paths. */
static int expand_agent(const walkctx *w, const smx__tokens *t, char **agent)
{
    char *path;
    int rc;

    if (!*agent || strcasecmp(*agent, "none") == 0 || strcmp(*agent, "SSH_AUTH_SOCK") == 0 ||
        ((*agent)[0] == '$' && (*agent)[1] != '{'))
        return 0;
    if ((rc = expand_path(w, t, *agent, "IdentityAgent", &path)) < 0)
        return rc;
    free(*agent);
    *agent = path;
    return 0;
}

static void drop_none(char **s)
{
    if (*s && strcasecmp(*s, "none") == 0) {
        free(*s);
        *s = NULL;
    }
}

static int fill_defaults(const walkctx *w)
{
    smx_hostcfg *hc = &w->st->hc;

    if ((!hc->user && !(hc->user = strdup(w->cfg->localuser))) ||
        (!hc->stricthostkeychecking && !(hc->stricthostkeychecking = strdup("ask"))) ||
        (!hc->loglevel && !(hc->loglevel = strdup("INFO"))) ||
        (!hc->addressfamily && !(hc->addressfamily = strdup("any"))) ||
        !(hc->host = strdup(w->orig)))
        return SMX_ENOMEM;
    default_int(&hc->port, 22);
    default_int(&hc->identitiesonly, 0);
    default_int(&hc->connecttimeout, 0);
    /* Debian's ssh: BatchMode yes implies ServerAliveInterval 300 unless set explicitly. */
    default_int(&hc->serveraliveinterval, hc->batchmode == 1 ? 300 : 0);
    default_int(&hc->serveralivecountmax, 3);
    default_int(&hc->compression, 0);
    default_int(&hc->pubkeyauthentication, 1);
    default_int(&hc->passwordauthentication, 1);
    default_int(&hc->kbdinteractiveauthentication, 1);
    default_int(&hc->batchmode, 0);
    default_int(&hc->hashknownhosts, 0);
    default_int(&hc->connectionattempts, 1);
    default_int(&hc->tcpkeepalive, 1);
    drop_none(&hc->proxyjump);
    drop_none(&hc->proxycommand);
    if (hc->proxyjump) {
        char *norm;

        if (smx__jump_normalize(hc->proxyjump, &norm) < 0)
            return SMX_ENOMEM;
        free(hc->proxyjump);
        hc->proxyjump = norm;
    }
    return 0;
}

static int expand_all(const walkctx *w)
{
    smx_hostcfg *hc = &w->st->hc;
    smx__tokens t = {0};
    int rc = 0;

    t.home = w->cfg->home;
    t.localuser = w->cfg->localuser;
    t.lhost_full = w->cfg->lhost_full;
    t.lhost_short = w->cfg->lhost_short;
    t.uid = w->cfg->uid;
    t.hostname = hc->hostname;
    t.orig = w->orig;
    t.alias = hc->hostkeyalias ? hc->hostkeyalias : w->orig;
    t.user = hc->user;
    t.port = hc->port;
    for (size_t i = 0; !w->st->have_identity && default_identities[i] && rc == 0; i++)
        rc = smx_strvec_push(&hc->identityfile_raw, default_identities[i]);
    for (size_t i = 0; i < hc->identityfile_raw.n && rc == 0; i++) {
        char *path;

        if (strcasecmp(hc->identityfile_raw.v[i], "none") == 0)
            continue;
        if ((rc = expand_path(w, &t, hc->identityfile_raw.v[i], "IdentityFile", &path)) == 0)
            rc = smx_strvec_push_owned(&hc->identityfile, path);
    }
    if (rc == 0)
        rc = expand_list(w, &t, &hc->userknownhostsfile, default_user_known_hosts,
                         "UserKnownHostsFile");
    if (rc == 0)
        rc = expand_list(w, NULL, &hc->globalknownhostsfile, default_global_known_hosts,
                         "GlobalKnownHostsFile");
    return rc == 0 ? expand_agent(w, &t, &hc->identityagent) : rc;
}

/* ---- public ---------------------------------------------------------------------------- */

static void resolving_init(smx_resolving *st)
{
    smx_hostcfg *hc = &st->hc;

    memset(st, 0, sizeof *st);
    hc->port = hc->identitiesonly = hc->connecttimeout = -1;
    hc->serveraliveinterval = hc->serveralivecountmax = hc->compression = -1;
    hc->pubkeyauthentication = hc->passwordauthentication = -1;
    hc->kbdinteractiveauthentication = hc->batchmode = hc->hashknownhosts = -1;
    hc->connectionattempts = hc->tcpkeepalive = -1;
}

static void resolving_free(smx_resolving *st)
{
    smx_hostcfg_free(&st->hc);
    free(st->ignoreunknown);
    free(st->canonicalize);
}

/* After pass 1 the hostname is fixed (HostName expanded with the typed name, lowercased);
 * the final pass then runs with it, like ssh's re-parse after canonicalisation. */
static int run_passes(walkctx *w)
{
    smx_hostcfg *hc = &w->st->hc;
    const char *canon;
    char *host;
    int rc;

    w->pass = 1;
    if ((rc = walk_config(w)) < 0)
        return rc;
    if (hc->hostname)
        rc = expand_hostname(w, hc->hostname, &host);
    else
        rc = (host = strdup(w->orig)) ? 0 : SMX_ENOMEM;
    if (rc < 0)
        return rc;
    lowercase_hostname(host);
    free(hc->hostname);
    hc->hostname = host;
    canon = w->st->canonicalize;
    if (!w->want_final && !(canon && strcmp(canon, "no") != 0))
        return 0;
    w->pass = 2;
    w->final_host = hc->hostname;
    return walk_config(w);
}

int smx_config_resolve(const smx_config *cfg, const char *host, const smx_overrides *ov,
                       smx_hostcfg *out, smx_err *err)
{
    static const smx_overrides no_overrides;
    smx_resolving st;
    walkctx w = {cfg, &st, host, NULL, 1, 0, err};
    int rc;

    memset(out, 0, sizeof *out);
    if (!cfg)
        return smx_seterr(err, SMX_EINVAL, "no configuration loaded");
    if (!host || !*host)
        return smx_seterr(err, SMX_EINVAL, "empty host name");
    resolving_init(&st);
    rc = apply_overrides(&w, ov ? ov : &no_overrides);
    if (rc == 0)
        rc = run_passes(&w);
    if (rc == 0)
        rc = fill_defaults(&w);
    if (rc == 0)
        rc = expand_all(&w);
    if (rc < 0) {
        resolving_free(&st);
        return rc == SMX_ENOMEM ? smx_seterr(err, rc, "out of memory") : rc;
    }
    *out = st.hc;
    free(st.ignoreunknown);
    free(st.canonicalize);
    return 0;
}

void smx_hostcfg_free(smx_hostcfg *hc)
{
    if (!hc)
        return;

    char **strs[] = {
        &hc->host, &hc->hostname, &hc->user, &hc->identityagent, &hc->stricthostkeychecking,
        &hc->ciphers, &hc->kexalgorithms, &hc->hostkeyalgorithms, &hc->macs,
        &hc->pubkeyacceptedalgorithms, &hc->preferredauthentications, &hc->proxyjump,
        &hc->proxycommand, &hc->hostkeyalias, &hc->loglevel, &hc->addressfamily,
    };

    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
        free(*strs[i]);
    smx_strvec_free(&hc->identityfile);
    smx_strvec_free(&hc->identityfile_raw);
    smx_strvec_free(&hc->userknownhostsfile);
    smx_strvec_free(&hc->globalknownhostsfile);
    memset(hc, 0, sizeof *hc);
}
