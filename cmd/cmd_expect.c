/* sshmux expect: a send/expect script on a PTY shell of every target. The step options (--send,
 * --send-raw, --expect, --timeout, --script) may come anywhere and are taken out first, in
 * order; the rest are the common options and the target. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define EXPECT_USAGE "sshmux expect [options] -w HOSTS|TARGET --send TEXT [--expect REGEX] " \
                     "[--timeout S] ... | --script FILE"

typedef struct expect_cli {
    smx_expect_script script;
    int open;                  /* the last step takes an --expect / --timeout still */
    int has_expect, has_timeout;
    int default_timeout_ms;    /* --timeout before any step: for every step */
    char **rest;               /* argv without the step options */
    int nrest;
} expect_cli;

/* "--name VALUE" or "--name=VALUE": 1 and *val when argv[*i] is that option (advancing *i past
 * a separate value), -1 when its value is missing, else 0. */
static int expect_opt(const char *name, char **argv, int argc, int *i, const char **val)
{
    size_t n = strlen(name);
    const char *a = argv[*i];
    if (strncmp(a, name, n) != 0)
        return 0;
    if (a[n] == '=') {
        *val = a + n + 1;
        return 1;
    }
    if (a[n] != '\0')
        return 0;
    if (*i + 1 >= argc)
        return -1;
    *val = argv[++*i];
    return 1;
}

static int expect_seconds(const char *s, int *ms)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (*s == '\0' || *end || errno || !(v > 0 && v <= 86400))
        return -1;
    *ms = (int)ceil(v * 1000);
    return 0;
}

static int expect_new_step(expect_cli *ec, const char *send, const char *expect)
{
    ec->open = 1;
    ec->has_expect = expect != NULL;
    ec->has_timeout = 0;
    return smx_expect_script_add(&ec->script, send, expect, 0);
}

/* One step option. 0, or -1 with the message printed. */
static int expect_apply(expect_cli *ec, const char *opt, const char *val)
{
    smx_expect_step *last = ec->open ? &ec->script.steps[ec->script.nsteps - 1] : NULL;
    int rc = 0;
    if (strcmp(opt, "--send") == 0 || strcmp(opt, "--send-raw") == 0) {
        char *text = NULL;
        int raw = strcmp(opt, "--send-raw") == 0;
        if (!raw && asprintf(&text, "%s\n", val) < 0)
            rc = SMX_ENOMEM;
        if (rc == 0)
            rc = expect_new_step(ec, raw ? val : text, NULL);
        smx_str_wipe_free(text);
    } else if (strcmp(opt, "--expect") == 0) {
        if (last && !ec->has_expect) {
            char *copy = strdup(val);
            rc = copy ? 0 : SMX_ENOMEM;
            last->expect = copy;
            ec->has_expect = 1;
        } else {
            rc = expect_new_step(ec, NULL, val);   /* a step that only waits */
        }
    } else if (strcmp(opt, "--timeout") == 0) {
        int ms;
        if (expect_seconds(val, &ms) < 0) {
            fprintf(stderr, "sshmux expect: invalid value \"%s\" for --timeout: expected "
                    "seconds (0 < S <= 86400)\n", val);
            return -1;
        }
        if (!last) {
            ec->default_timeout_ms = ms;
        } else if (ec->has_timeout) {
            fprintf(stderr, "sshmux expect: step %zu has two --timeout values\n",
                    ec->script.nsteps);
            return -1;
        } else {
            last->timeout_ms = ms;
            ec->has_timeout = 1;
        }
    } else {   /* --script */
        smx_err err = {{0}};
        ec->open = 0;
        if (smx_expect_script_load(&ec->script, val, &err) < 0) {
            fprintf(stderr, "sshmux expect: --script %s\n", err.msg);
            return -1;
        }
    }
    if (rc < 0)
        fprintf(stderr, "sshmux expect: out of memory\n");
    return rc < 0 ? -1 : 0;
}

/* Takes the step options out of argv (before a "--"); ec->rest keeps the others, in order. */
static int expect_take_steps(expect_cli *ec, int argc, char **argv)
{
    static const char *const opts[] = {"--send-raw", "--send", "--expect", "--timeout",
                                       "--script"};
    ec->rest = calloc((size_t)argc + 1, sizeof *ec->rest);
    if (!ec->rest)
        return -1;
    ec->rest[ec->nrest++] = argv[0];
    int i = 1;
    for (; i < argc && strcmp(argv[i], "--") != 0; i++) {
        int found = 0;
        for (size_t k = 0; k < sizeof opts / sizeof *opts && !found; k++) {
            const char *val;
            found = expect_opt(opts[k], argv, argc, &i, &val);
            if (found < 0) {
                fprintf(stderr, "sshmux expect: option %s needs a value\n", opts[k]);
                return -1;
            }
            if (found && expect_apply(ec, opts[k], val) < 0)
                return -1;
        }
        if (!found)
            ec->rest[ec->nrest++] = argv[i];
    }
    for (; i < argc; i++)
        ec->rest[ec->nrest++] = argv[i];
    for (size_t s = 0; s < ec->script.nsteps; s++)
        if (ec->script.steps[s].timeout_ms == 0)
            ec->script.steps[s].timeout_ms = ec->default_timeout_ms;
    return 0;
}

static int expect_check(cli *c, expect_cli *ec, smx_expect_opts *o)
{
    smx_err err = {{0}};
    if (ec->script.nsteps == 0) {
        cli_error(c, "no steps given (usage: %s)", EXPECT_USAGE);
        return EXIT_USAGE;
    }
    if (c->x.timeout_ms || c->cmds.n || c->x.sudo || c->x.pty) {
        cli_error(c, "-u, -t, --cmd and --sudo are exec's: a script's steps have --timeout");
        return EXIT_USAGE;
    }
    o->steps = ec->script.steps;
    o->nsteps = ec->script.nsteps;
    if (smx_expect_opts_check(o, &err) < 0) {
        cli_error(c, "%s", err.msg);
        return EXIT_USAGE;
    }
    int taken = cli_take_target(c, EXPECT_USAGE);
    if (taken < 0)
        return EXIT_USAGE;
    if (c->args.n > (size_t)taken) {
        cli_error(c, "unexpected argument \"%s\" (options go before the target; usage: %s)",
                  c->args.v[taken], EXPECT_USAGE);
        return EXIT_USAGE;
    }
    return 0;
}

static int expect_add_host(smx_engine *e, cli_host *h, const smx_exec_callbacks *cb, void *ud)
{
    return smx_engine_add_expect(e, h->target, h->hc, h->password, ud, cb);
}

int cmd_expect(int argc, char **argv)
{
    cli c;
    expect_cli ec = {0};
    smx_expect_opts o = {0};
    int rc = expect_take_steps(&ec, argc, argv) < 0 ? EXIT_USAGE : 0;
    if (rc) {
        free(ec.rest);
        smx_expect_script_free(&ec.script);
        return rc;
    }
    rc = cli_parse(&c, ec.nrest, ec.rest, "sshmux expect");
    c.expect = 1;
    if (rc == 0)
        rc = expect_check(&c, &ec, &o);
    if (rc == 0)
        rc = cli_resolve_hosts(&c, 1);
    if (rc)
        goto out_free;
    cli_fit_fanout(&c);
    o.env = c.env.n ? &c.env : NULL;
    o.max_output = c.x.max_output;

    rc = cli_run_hosts(&c, expect_add_host, &o);
out_free:
    cli_free(&c);
    free(ec.rest);
    smx_expect_script_free(&ec.script);
    return rc;
}
