/* From a host list to queued jobs (smx_engine_add_target): what the CLI does for -w with its own
 * per-host control, done once for an embedder: passwords out of ssh:// targets before anything
 * can quote them, ssh_config resolved per host, the keys each host and its jump hops name
 * loaded, one job per host. */
#include <stdlib.h>
#include <string.h>

#include "engine_internal.h"
#include "hostlist.h"
#include "target.h"

/* One item of a list: its password taken out first, kept in `passwords` (tag = index + 1) or
 * wiped. Counts the passwords found in *found. */
static int api_add_item(smx_hostlist *hl, const char *p, size_t len, smx_strvec *passwords,
                        int *found, smx_err *err)
{
    while (len > 0 && (*p == ' ' || *p == '\t')) {
        p++;
        len--;
    }
    char *item = strndup(p, len), *plain = NULL, *pw = NULL;
    int rc = item ? smx_target_take_password(item, &plain, &pw, err) : SMX_ENOMEM;
    smx_wipe_free(item, len);
    size_t tag = 0;
    *found += pw != NULL;
    if (rc == 0 && pw && passwords) {
        rc = smx_strvec_push_owned(passwords, pw);
        tag = passwords->n;
        pw = NULL;
    }
    smx_str_wipe_free(pw);
    if (rc == 0)
        rc = smx_hostlist_add(hl, plain, tag, err);
    free(plain);
    if (rc == SMX_ENOMEM)
        smx_seterr(err, rc, "out of memory");
    return rc < 0 ? rc : 0;
}

int smx_hostlist_add_targets(smx_hostlist *hl, char *list, smx_strvec *passwords, smx_err *err)
{
    int rc = 0, found = 0;
    for (const char *p = list; rc == 0 && *p;) {
        const char *end = smx_hostlist_item_end(p);
        rc = api_add_item(hl, p, (size_t)(end - p), passwords, &found, err);
        p = *end ? end + 1 : end;
    }
    explicit_bzero(list, strlen(list));
    return rc < 0 ? rc : found;
}

/* ---- smx_engine_add_target ------------------------------------------------------------- */

typedef struct api_batch {
    smx_engine *e;
    const smx_target_job *job;
    smx_hostlist *names;
    smx_strvec passwords;      /* of ssh:// targets: name i has passwords.v[tag - 1] */
    smx_hostcfg **hcs;         /* per name; NULL once handed to the engine */
    size_t n;
} api_batch;

typedef struct api_skip {
    smx_engine *e;
    const char *host;
} api_skip;

static void api_key_skipped(void *ud, const char *msg)
{
    const api_skip *s = ud;
    s->e->opts.warn(s->e->opts.ud, s->host, msg);
}

static int api_expand(api_batch *b, const char *targets, smx_err *err)
{
    char *text = strdup(targets);
    b->names = smx_hostlist_new(SMX_HOSTLIST_MAX);
    if (!text || !b->names) {
        free(text);
        return smx_seterr(err, SMX_ENOMEM, "out of memory");
    }
    smx_hostlist_set_config(b->names, b->e->config);   /* @group items */
    int rc = smx_hostlist_add_targets(b->names, text, &b->passwords, err);
    free(text);   /* wiped by smx_hostlist_add_targets */
    if (rc < 0)
        return rc;
    b->n = smx_hostlist_count(b->names);
    b->hcs = calloc(b->n ? b->n : 1, sizeof *b->hcs);
    return b->hcs ? 0 : smx_seterr(err, SMX_ENOMEM, "out of memory");
}

/* Every host first: one that does not resolve fails the call before anything is queued. */
static int api_resolve_all(api_batch *b, smx_err *err)
{
    smx_engine *e = b->e;
    for (size_t i = 0; i < b->n; i++) {
        int rc = smx_hostcfg_resolve(e->config, e->overrides, smx_hostlist_name(b->names, i),
                                     &b->hcs[i], err);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* The keys of each host, then of each distinct jump chain (a fleet shares a few). */
static void api_load_keys(api_batch *b)
{
    smx_engine *e = b->e;
    smx_strvec chains = {0};
    for (size_t i = 0; i < b->n; i++) {
        api_skip skip = { e, smx_hostcfg_host(b->hcs[i]) };
        int report = e->opts.verbose && e->opts.warn;
        smx_engine_load_host_keys(e, b->hcs[i], report ? api_key_skipped : NULL, &skip);
        const char *chain = smx_hostcfg_proxyjump(b->hcs[i]);
        if (chain && strcmp(chain, "none") != 0 && !smx_strvec_contains(&chains, chain))
            smx_strvec_push(&chains, chain);
    }
    for (size_t i = 0; i < chains.n; i++) {
        smx_err ignored = {{0}};
        smx_engine_load_jump_keys(e, chains.v[i], &ignored);   /* its hosts fail with it */
    }
    smx_strvec_free(&chains);
    const char *sock = getenv("SSH_AUTH_SOCK");
    if (sock && *sock)
        smx_engine_use_agent(e, 1);
}

static int api_queue_one(api_batch *b, size_t i, smx_err *err)
{
    const char *name = smx_hostlist_name(b->names, i);
    size_t tag = smx_hostlist_tag(b->names, i);
    const char *password = tag ? b->passwords.v[tag - 1] : NULL;
    size_t size = strlen(name) + 4;
    char *shown = malloc(size);
    if (!shown)
        return smx_seterr(err, SMX_ENOMEM, "out of memory");
    smx_target_display(name, shown, size);
    const smx_target_job *job = b->job;
    int rc = job->exec && job->shell_cb
        ? smx_engine_add_shell(b->e, shown, b->hcs[i], password, job->exec, job->shell_cb, NULL)
        : job->exec
        ? smx_engine_add_exec(b->e, shown, b->hcs[i], password, job->exec, job->exec_cb)
        : job->expect
        ? smx_engine_add_expect(b->e, shown, b->hcs[i], password, job->expect, job->exec_cb)
        : smx_engine_add_forward(b->e, shown, b->hcs[i], password, job->forward,
                                 job->forward_cb, NULL, err);
    free(shown);
    if (rc == SMX_ENOMEM)
        smx_seterr(err, rc, "out of memory");
    if (rc == 0)
        b->hcs[i] = NULL;   /* the engine's now */
    return rc;
}

int smx_engine_add_target(smx_engine *e, const char *targets, const smx_target_job *job,
                          smx_err *err)
{
    int kinds = job ? !!job->exec + !!job->expect + !!job->forward : 0;
    int ok = kinds == 1 &&
             (job->exec ? (job->exec_cb != NULL) + (job->shell_cb != NULL) == 1
                        : job->expect ? job->exec_cb && !job->shell_cb : job->forward_cb != NULL);
    if (!ok)
        return smx_seterr(err, SMX_EINVAL, "smx_engine_add_target: give one of an exec job "
                          "(exec, exec_cb), a shell job (exec, shell_cb), an expect job "
                          "(expect, exec_cb) or a forward job (forward, forward_cb)");
    if (job->expect && smx_expect_opts_check(job->expect, err) < 0)
        return SMX_EINVAL;
    api_batch b = { .e = e, .job = job };
    int rc = e->config ? 0 : smx_engine_load_config(e, NULL, err);
    if (rc == 0)
        rc = api_expand(&b, targets, err);
    if (rc == 0)
        rc = api_resolve_all(&b, err);
    if (rc == 0)
        api_load_keys(&b);
    size_t queued = 0;
    for (; rc == 0 && queued < b.n; queued++)
        rc = api_queue_one(&b, queued, err);
    for (size_t i = 0; i < b.n; i++)
        smx_hostcfg_destroy(b.hcs[i]);
    free(b.hcs);
    smx_hostlist_free(b.names);
    smx_strvec_free_wipe(&b.passwords);   /* each job holds its own copy */
    return rc < 0 ? rc : (int)queued;
}
