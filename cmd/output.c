#include "output.h"

#include <stdlib.h>
#include <string.h>

struct output {
    const cli *c;
    smx_exec_callbacks cb;
    uv_check_t flusher;        /* flushes stdio once per loop iteration, not once per line */
    smx_result **results;      /* kept for -b and the summary's failure list */
    size_t n, cap;
    int worst;                 /* exit status so far */
    size_t ok, nonzero, failed, timedout;
    uint64_t bytes;            /* file copies: payload moved by all hosts */
    output_hook hide;          /* clears a live status line before anything is printed */
    void *hide_ud;
};

void output_set_hide_hook(output *o, output_hook hide, void *ud)
{
    o->hide = hide;
    o->hide_ud = ud;
}

static void output_hide(const output *o)
{
    if (o->hide)
        o->hide(o->hide_ud);
}

static void output_on_check(uv_check_t *h)
{
    fflush(stdout);
    fflush(stderr);
}

static void output_on_line(void *ud, const smx_result *r, int is_stderr, const char *line,
                           size_t len)
{
    output_hide(ud);
    FILE *f = is_stderr ? stderr : stdout;
    fprintf(f, "%s: %.*s\n", r->host, (int)len, line);
}

static void output_keep(output *o, smx_result *r)
{
    if (o->n == o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 256;
        smx_result **v = realloc(o->results, cap * sizeof *v);
        if (!v) {
            smx_result_destroy(r);
            return;
        }
        o->results = v;
        o->cap = cap;
    }
    o->results[o->n++] = r;
}

static void output_count(output *o, const smx_result *r)
{
    int st = smx_result_exit_status(r);
    if (r->timed_out)
        o->timedout++;
    else if (r->err_stage != SMX_STAGE_NONE && r->exit_code < 0)
        o->failed++;
    else if (st == 0)
        o->ok++;
    else
        o->nonzero++;
    /* 255 (unreachable) dominates; otherwise the largest status. */
    if (o->worst != 255 && (st == 255 || st > o->worst))
        o->worst = st;
}

/* The buffer holds text + "\n" (it is the result's: freed with it). */
static void output_set_text(smx_buf *b, const char *text)
{
    size_t n = strlen(text);
    char *p = realloc(b->data, n + 2);
    if (!p)
        return;
    memcpy(p, text, n);
    p[n] = '\n';
    p[n + 1] = '\0';
    b->data = p;
    b->len = n + 1;
    b->cap = n + 2;
}

/* A copy's outcome per host: "3 files, 10485760 bytes in 0.42 s (24.97 MB/s)", each failed
 * file on stderr. Gathered (-b), the outcome without its timing is the host's "output". */
static void output_copy_done(output *o, smx_result *r)
{
    o->bytes += r->bytes;
    for (size_t i = 0; !o->c->json && !o->c->gather && i < r->nfiles; i++)
        if (r->files[i].error && strcmp(r->files[i].error, smx_result_error(r)) != 0)
            fprintf(stderr, "%s: sshmux: sftp: %s\n", r->host, r->files[i].error);
    size_t good = 0;
    for (size_t i = 0; i < r->nfiles; i++)
        good += r->files[i].error == NULL;
    char line[160];
    snprintf(line, sizeof line, "%zu file%s, %llu bytes", good, good == 1 ? "" : "s",
             (unsigned long long)r->bytes);
    if (o->c->gather) {
        output_set_text(&r->out, line);
    } else if (!o->c->json && (r->err_stage == SMX_STAGE_NONE || good > 0)) {
        double s = r->t.exec / 1000.0;
        fprintf(stdout, "%s: %s in %.2f s (%.2f MB/s)\n", r->host, line, s,
                s > 0 ? (double)r->bytes / s / 1e6 : 0.0);
    }
}

/* Gathered (-b), a command list's (or an expect script's) output is shown step by step: a header
 * line per step with its command and status, then what it printed; hosts group when every step
 * printed the same. */
static void output_steps_text(smx_result *r, int expect)
{
    char *text = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&text, &len);
    if (!m)
        return;
    for (size_t i = 0; i < r->nsteps; i++) {
        const smx_step_result *st = &r->steps[i];
        if (expect)
            fprintf(m, "--- step %zu: %s (%s)\n", i + 1, st->command ? st->command : "(wait)",
                    st->exit_code == 0 ? "matched" : "no match");
        else if (st->exit_signal)
            fprintf(m, "--- step %zu: %s (signal %s)\n", i + 1, st->command, st->exit_signal);
        else
            fprintf(m, "--- step %zu: %s (exit %d)\n", i + 1, st->command, st->exit_code);
        fwrite(st->out.data ? st->out.data : "", 1, st->out.len, m);
        if (st->out.len && st->out.data[st->out.len - 1] != '\n')
            fputc('\n', m);
    }
    if (fclose(m) != 0 || !text) {
        free(text);
        return;
    }
    free(r->out.data);
    r->out.data = text;
    r->out.len = len;
    r->out.cap = len + 1;
}

/* expect's default view: each step's output, line by line, prefixed "host: ". */
static void output_expect_text(const smx_result *r)
{
    for (size_t i = 0; i < r->nsteps; i++) {
        const char *p = r->steps[i].out.data, *end = p + r->steps[i].out.len;
        while (p && p < end) {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
            fprintf(stdout, "%s: %.*s\n", r->host, (int)n, p);
            p += n + 1;
        }
    }
}

static void output_on_done(void *ud, smx_result *r)
{
    output *o = ud;
    output_hide(o);
    output_count(o, r);
    if (r->is_copy && !o->c->x.command)
        output_copy_done(o, r);
    if (o->c->gather && !o->c->json && (o->c->x.ncommands || o->c->expect))
        output_steps_text(r, o->c->expect);
    if (o->c->expect && !o->c->gather && !o->c->json)
        output_expect_text(r);
    if (o->c->json) {
        char *s = smx_result_json(r);
        if (s) {
            fputs(s, stdout);
            fputc('\n', stdout);
            free(s);
        }
    } else if (!o->c->gather) {
        if (r->err_stage != SMX_STAGE_NONE)
            fprintf(stderr, "%s: sshmux: %s: %s\n", r->host, smx_stage_name(r->err_stage),
                    smx_result_error(r));
        else if (r->exit_code > 0 && !o->c->quiet)
            fprintf(stderr, "%s: sshmux: exited with exit code %d\n", r->host, r->exit_code);
        else if (r->exit_signal)
            fprintf(stderr, "%s: sshmux: killed by signal %s\n", r->host, r->exit_signal);
    }
    if (r->truncated && !o->c->json)
        fprintf(stderr, "%s: sshmux: output truncated at %zu bytes (--max-output)\n", r->host,
                o->c->x.max_output);
    output_keep(o, r);
}

output *output_new(const cli *c, uv_loop_t *loop)
{
    output *o = calloc(1, sizeof *o);
    if (!o)
        return NULL;
    o->c = c;
    o->cb.ud = o;
    o->cb.on_done = output_on_done;
    o->cb.on_line = (c->json || c->gather) ? NULL : output_on_line;
    uv_check_init(loop, &o->flusher);
    uv_check_start(&o->flusher, output_on_check);
    uv_unref((uv_handle_t *)&o->flusher);
    static char outbuf[1 << 16];
    setvbuf(stdout, outbuf, _IOFBF, sizeof outbuf);
    return o;
}

void output_counts(const output *o, size_t *done, size_t *failed)
{
    *done = o->n;
    *failed = o->n - o->ok;
}

const smx_exec_callbacks *output_callbacks(output *o)
{
    return &o->cb;
}

void output_warn(void *ud, const char *host, const char *msg)
{
    fprintf(stderr, "%s: sshmux: warning: %s\n", host, msg);
}

void output_free(output *o)
{
    if (!o)
        return;
    for (size_t i = 0; i < o->n; i++)
        smx_result_destroy(o->results[i]);
    free(o->results);
    uv_close((uv_handle_t *)&o->flusher, NULL);
    free(o);
}

/* ---- gather (-b) and summary ------------------------------------------------------------ */

/* clush -b: stdout is grouped by (stdout, exit status), stderr separately by its content, so a
 * noisy stderr does not split hosts whose real output agrees. */
static int output_same_stdout(const smx_result *a, const smx_result *b)
{
    return a->out.len == b->out.len &&
           smx_result_exit_status(a) == smx_result_exit_status(b) &&
           (a->out.len == 0 || memcmp(a->out.data, b->out.data, a->out.len) == 0);
}

static int output_same_stderr(const smx_result *a, const smx_result *b)
{
    return a->err.len == b->err.len && memcmp(a->err.data, b->err.data, a->err.len) == 0;
}

static char *output_fold(smx_result **v, size_t n)
{
    char **names = malloc(n * sizeof *names);
    char *folded = NULL;
    if (!names)
        return NULL;
    for (size_t i = 0; i < n; i++)
        names[i] = v[i]->host;
    smx_err err = {{0}};
    if (smx_hostlist_fold(names, n, &folded, &err) < 0)
        folded = NULL;
    free(names);
    return folded;
}

static void output_print_block(FILE *f, smx_result **members, size_t n, const smx_buf *text,
                               const char *what)
{
    char *folded = output_fold(members, n);
    fprintf(f, "---------------\n%s (%zu)%s\n---------------\n", folded ? folded : members[0]->host,
            n, what);
    if (text->len) {
        fwrite(text->data, 1, text->len, f);
        if (text->data[text->len - 1] != '\n')
            fputc('\n', f);
    }
    free(folded);
}

/* Groups the hosts that ran (no connection-level error) with `same` and prints each group. */
static void output_groups(output *o, int (*same)(const smx_result *, const smx_result *),
                          int use_stderr)
{
    size_t n = o->n ? o->n : 1;
    char *done = calloc(n, 1);
    smx_result **members = malloc(n * sizeof *members);
    for (size_t i = 0; done && members && i < o->n; i++) {
        const smx_result *r = o->results[i];
        if (done[i] || r->err_stage != SMX_STAGE_NONE || (use_stderr && r->err.len == 0))
            continue;
        size_t m = 0;
        for (size_t j = i; j < o->n; j++) {
            const smx_result *q = o->results[j];
            if (!done[j] && q->err_stage == SMX_STAGE_NONE && same(r, q)) {
                done[j] = 1;
                members[m++] = o->results[j];
            }
        }
        char what[64] = "";
        int st = smx_result_exit_status(r);
        if (use_stderr)
            snprintf(what, sizeof what, " stderr");
        else if (st != 0)
            snprintf(what, sizeof what, " exit %d", st);
        output_print_block(use_stderr ? stderr : stdout, members, m,
                           use_stderr ? &r->err : &r->out, what);
    }
    free(done);
    free(members);
}

static void output_gather(output *o)
{
    output_groups(o, output_same_stdout, 0);
    fflush(stdout);
    output_groups(o, output_same_stderr, 1);
}

/* Failures grouped by stage and message, each with the folded list of hosts it hit. */
static void output_failures(output *o)
{
    char *done = calloc(o->n ? o->n : 1, 1);
    smx_result **members = malloc((o->n ? o->n : 1) * sizeof *members);
    for (size_t i = 0; done && members && i < o->n; i++) {
        const smx_result *r = o->results[i];
        if (done[i] || r->err_stage == SMX_STAGE_NONE)
            continue;
        size_t m = 0;
        for (size_t j = i; j < o->n; j++) {
            const smx_result *q = o->results[j];
            if (!done[j] && q->err_stage == r->err_stage
                && strcmp(smx_result_error(q), smx_result_error(r)) == 0) {
                done[j] = 1;
                members[m++] = o->results[j];
            }
        }
        char *folded = output_fold(members, m);
        fprintf(stderr, "sshmux: %s failed on %s (%zu): %s\n", smx_stage_name(r->err_stage),
                folded ? folded : r->host, m, smx_result_error(r));
        free(folded);
    }
    free(done);
    free(members);
}

int output_finish(output *o, double wall_ms, smx_engine *e)
{
    output_hide(o);
    if (o->c->gather && !o->c->json)
        output_gather(o);
    fflush(stdout);
    if (!o->c->quiet) {
        if (o->c->gather || o->c->json)
            output_failures(o);
        unsigned unverified = smx_engine_hostkeys_unverified(e);
        if (unverified)
            fprintf(stderr, "sshmux: warning: %u host keys were not verified "
                    "(StrictHostKeyChecking=no)\n", unverified);
        size_t retried = 0;
        for (size_t i = 0; i < o->n; i++)
            retried += o->results[i]->attempts > 1;
        if (retried)
            fprintf(stderr, "sshmux: %zu hosts needed more than one attempt (a server dropping "
                    "connections before the handshake, or a full jump connection)\n", retried);
        if (o->c->copy)
            fprintf(stderr, "sshmux: %zu hosts: %zu ok, %zu failed in %.2f s; %llu bytes "
                    "(%.2f MB/s)\n", o->n, o->ok, o->n - o->ok, wall_ms / 1000.0,
                    (unsigned long long)o->bytes,
                    wall_ms > 0 ? (double)o->bytes / (wall_ms / 1000.0) / 1e6 : 0.0);
        else
            fprintf(stderr, "sshmux: %zu hosts: %zu ok, %zu exit non-zero, %zu failed, "
                    "%zu timed out in %.2f s\n", o->n, o->ok, o->nonzero, o->failed,
                    o->timedout, wall_ms / 1000.0);
    }
    fflush(stderr);
    return o->worst;
}
