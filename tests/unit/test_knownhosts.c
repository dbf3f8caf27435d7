/* Unit tests for core/trust/knownhosts.c and core/trust/hmac_sha1.c. Fixture keys and hashed lines are made
 * with ssh-keygen at run time in a private temporary directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libssh/libssh.h>

#include "error.h"
#include "hmac_sha1.h"
#include "knownhosts.h"

enum { ED_A, ED_B, RSA, EC256, EC384, NKEYS };

static const char *const key_args[NKEYS] = {
    "-t ed25519", "-t ed25519", "-t rsa -b 2048", "-t ecdsa -b 256", "-t ecdsa -b 384",
};

struct fixture {
    char dir[64];
    ssh_key key[NKEYS];
    char pub[NKEYS][1024]; /* "keytype base64" as ssh-keygen wrote it */
    char fp[NKEYS][128];   /* "SHA256:..." as ssh-keygen -l prints it */
};

/* ---- helpers ---- */

/* snprintf that fails the test instead of truncating. */
static void fmt(char *buf, size_t cap, const char *format, ...)
    __attribute__((format(printf, 3, 4)));
static void fmt(char *buf, size_t cap, const char *format, ...)
{
    va_list ap;
    int n;

    va_start(ap, format);
    n = vsnprintf(buf, cap, format, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= cap)
        fail_msg("fixture text does not fit in %zu bytes", cap);
}

static void run(const char *cmd)
{
    int rc = system(cmd);

    if (rc != 0)
        fail_msg("command failed (%d): %s", rc, cmd);
}

static void capture(const char *cmd, char *out, size_t cap)
{
    FILE *p = popen(cmd, "r");

    assert_non_null(p);
    assert_non_null(fgets(out, (int)cap, p));
    assert_int_equal(pclose(p), 0);
}

static void make_path(char *buf, size_t cap, const struct fixture *f, const char *name)
{
    fmt(buf, cap, "%s/%s", f->dir, name);
}

static void write_file(const char *path, const char *content)
{
    FILE *fp = fopen(path, "w");

    assert_non_null(fp);
    assert_int_equal(fputs(content, fp) >= 0, 1);
    assert_int_equal(fclose(fp), 0);
}

/* Reads path into lines (without '\n'); returns the count. Caller frees with free_lines. */
static size_t read_lines(const char *path, char ***lines)
{
    FILE *fp = fopen(path, "r");
    char *line = NULL;
    size_t cap = 0, n = 0;
    ssize_t len;

    assert_non_null(fp);
    *lines = NULL;
    while ((len = getline(&line, &cap, fp)) >= 0) {
        assert_true(len > 0 && line[len - 1] == '\n'); /* every line complete */
        line[len - 1] = '\0';
        *lines = realloc(*lines, (n + 1) * sizeof **lines);
        assert_non_null(*lines);
        (*lines)[n++] = strdup(line);
    }
    free(line);
    fclose(fp);
    return n;
}

static void free_lines(char **lines, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        free(lines[i]);
    free(lines);
}

static smx_knownhosts *load_one(const char *path)
{
    smx_knownhosts *kh = NULL;
    smx_err err = {{0}};
    const char *files[1] = {path};

    assert_int_equal(smx_knownhosts_load(&kh, files, 1, &err), 0);
    assert_non_null(kh);
    return kh;
}

/* Writes content (with %s placeholders filled by the caller via snprintf) and loads it. */
static smx_knownhosts *load_text(const struct fixture *f, const char *name, const char *content)
{
    char path[256];

    make_path(path, sizeof path, f, name);
    write_file(path, content);
    return load_one(path);
}

static void gen_key(struct fixture *f, int i)
{
    char cmd[512], path[256], line[2048], *sp;

    fmt(path, sizeof path, "%s/key%d", f->dir, i);
    fmt(cmd, sizeof cmd, "ssh-keygen -q %s -N '' -C test%d -f %s", key_args[i], i, path);
    run(cmd);
    fmt(cmd, sizeof cmd, "cat %s.pub", path);
    capture(cmd, line, sizeof line);
    sp = strchr(line, ' ');
    assert_non_null(sp);
    sp = strchr(sp + 1, ' '); /* drop the comment */
    assert_non_null(sp);
    *sp = '\0';
    fmt(f->pub[i], sizeof f->pub[i], "%s", line);

    fmt(cmd, sizeof cmd, "ssh-keygen -l -E sha256 -f %s.pub", path);
    capture(cmd, line, sizeof line);
    sp = strchr(line, ' '); /* "256 SHA256:xxx comment (ED25519)" */
    assert_non_null(sp);
    fmt(f->fp[i], sizeof f->fp[i], "%.*s", (int)strcspn(sp + 1, " "), sp + 1);

    strcat(path, ".pub");
    assert_int_equal(ssh_pki_import_pubkey_file(path, &f->key[i]), SSH_OK);
}

static int group_setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    int i;

    assert_non_null(f);
    assert_int_equal(ssh_init(), 0);
    strcpy(f->dir, "/tmp/smx-kh-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    for (i = 0; i < NKEYS; i++)
        gen_key(f, i);
    *state = f;
    return 0;
}

static int group_teardown(void **state)
{
    struct fixture *f = *state;
    char cmd[128];
    int i;

    for (i = 0; i < NKEYS; i++)
        ssh_key_free(f->key[i]);
    fmt(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    run(cmd);
    free(f);
    ssh_finalize();
    return 0;
}

#define CHECK(kh, host, port, k, want) \
    assert_int_equal(smx_knownhosts_check((kh), (host), (port), f->key[k]), (want))

/* ---- lookups ---- */

static void test_plain_ok(void **state)
{
    struct fixture *f = *state;
    smx_knownhosts *kh;
    char text[4096];

    fmt(text, sizeof text, "# a comment\n\nhost1,Host2 %s some comment\n", f->pub[ED_A]);
    kh = load_text(f, "plain", text);
    CHECK(kh, "host1", 22, ED_A, SMX_HOSTKEY_OK);
    CHECK(kh, "host2", 22, ED_A, SMX_HOSTKEY_OK);
    CHECK(kh, "HOST1", 22, ED_A, SMX_HOSTKEY_OK); /* names compare without ASCII case */
    CHECK(kh, "host3", 22, ED_A, SMX_HOSTKEY_UNKNOWN);
    CHECK(kh, "host", 22, ED_A, SMX_HOSTKEY_UNKNOWN);
    assert_int_equal(smx_knownhosts_count(kh), 1);
    assert_int_equal(smx_knownhosts_skipped(kh), 0);
    smx_knownhosts_free(kh);
}

static void test_ports(void **state)
{
    struct fixture *f = *state;
    smx_knownhosts *kh;
    char text[4096];

    fmt(text, sizeof text, "[host3]:2222 %s\nhost4 %s\n[host5]:22 %s\n[::1]:2200 %s\n",
             f->pub[ED_A], f->pub[ED_A], f->pub[ED_A], f->pub[ED_A]);
    kh = load_text(f, "ports", text);
    CHECK(kh, "host3", 2222, ED_A, SMX_HOSTKEY_OK);
    CHECK(kh, "host3", 22, ED_A, SMX_HOSTKEY_UNKNOWN);
    CHECK(kh, "host3", 2223, ED_A, SMX_HOSTKEY_UNKNOWN);
    CHECK(kh, "host4", 22, ED_A, SMX_HOSTKEY_OK);  /* port 22 looks up the bare name */
    CHECK(kh, "host4", 0, ED_A, SMX_HOSTKEY_OK);   /* 0 = default port */
    CHECK(kh, "host4", 2200, ED_A, SMX_HOSTKEY_UNKNOWN);
    CHECK(kh, "host5", 22, ED_A, SMX_HOSTKEY_UNKNOWN); /* as OpenSSH: [h]:22 is never looked up */
    CHECK(kh, "::1", 2200, ED_A, SMX_HOSTKEY_OK);
    smx_knownhosts_free(kh);
}

static void test_changed_other(void **state)
{
    struct fixture *f = *state;
    smx_knownhosts *kh;
    char text[4096];

    fmt(text, sizeof text, "host1 %s\nhost1 %s\nhost2 %s\n", f->pub[ED_A], f->pub[EC256],
             f->pub[RSA]);
    kh = load_text(f, "changed", text);
    CHECK(kh, "host1", 22, ED_A, SMX_HOSTKEY_OK);
    CHECK(kh, "host1", 22, EC256, SMX_HOSTKEY_OK);
    CHECK(kh, "host1", 22, ED_B, SMX_HOSTKEY_CHANGED);
    CHECK(kh, "host1", 22, RSA, SMX_HOSTKEY_OTHER);
    CHECK(kh, "host1", 22, EC384, SMX_HOSTKEY_OTHER); /* ECDSA curves are distinct types */
    CHECK(kh, "host2", 22, RSA, SMX_HOSTKEY_OK);
    CHECK(kh, "host2", 22, ED_A, SMX_HOSTKEY_OTHER);
    CHECK(kh, "host3", 22, RSA, SMX_HOSTKEY_UNKNOWN);
    smx_knownhosts_free(kh);
}

static void test_rsa_sha2_type_name(void **state)
{
    struct fixture *f = *state;
    smx_knownhosts *kh;
    char text[4096];

    /* some tools write the signature algorithm as the key type */
    fmt(text, sizeof text, "rsahost rsa-sha2-512 %s\nrsahost2 rsa-sha2-256 %s\n",
             strchr(f->pub[RSA], ' ') + 1, strchr(f->pub[RSA], ' ') + 1);
    kh = load_text(f, "rsasha2", text);
    CHECK(kh, "rsahost", 22, RSA, SMX_HOSTKEY_OK);
    CHECK(kh, "rsahost2", 22, RSA, SMX_HOSTKEY_OK);
    assert_int_equal(smx_knownhosts_skipped(kh), 0);
    smx_knownhosts_free(kh);
}

static void test_revoked(void **state)
{
    struct fixture *f = *state;
    smx_knownhosts *kh;
    char text[8192];

    fmt(text, sizeof text,
             "host6 %s\nhost7 %s\n@revoked * %s\n"
             "@revoked host8 %s\nhost8 %s\n@revoked host10 %s\n",
             f->pub[ED_B], f->pub[ED_A], f->pub[ED_B], f->pub[RSA], f->pub[ED_A], f->pub[RSA]);
    kh = load_text(f, "revoked", text);
    CHECK(kh, "host6", 22, ED_B, SMX_HOSTKEY_REVOKED); /* revoked wins over a matching line */
    CHECK(kh, "host7", 22, ED_B, SMX_HOSTKEY_REVOKED); /* ... and over CHANGED */
    CHECK(kh, "nowhere", 22, ED_B, SMX_HOSTKEY_REVOKED);
    CHECK(kh, "host7", 22, ED_A, SMX_HOSTKEY_OK);
    CHECK(kh, "host8", 22, RSA, SMX_HOSTKEY_REVOKED);
    CHECK(kh, "host8", 22, ED_A, SMX_HOSTKEY_OK);
    CHECK(kh, "host9", 22, RSA, SMX_HOSTKEY_UNKNOWN);  /* the revocation names host8 only */
    CHECK(kh, "host10", 22, ED_A, SMX_HOSTKEY_UNKNOWN); /* a revoked line does not make it known */
    smx_knownhosts_free(kh);
}

static void test_hashed(void **state)
{
    struct fixture *f = *state;
    smx_knownhosts *kh;
    char text[4096], path[256], cmd[512], **lines;
    size_t n, i;

    fmt(text, sizeof text, "hashme %s\n[hashport]:2022 %s\n", f->pub[ED_A], f->pub[RSA]);
    make_path(path, sizeof path, f, "hashed");
    write_file(path, text);
    fmt(cmd, sizeof cmd, "ssh-keygen -q -H -f %s >/dev/null 2>&1", path);
    run(cmd);
    n = read_lines(path, &lines);
    assert_int_equal(n, 2);
    for (i = 0; i < n; i++) {
        assert_memory_equal(lines[i], "|1|", 3);
        assert_null(strstr(lines[i], "hash"));
    }
    free_lines(lines, n);

    kh = load_one(path);
    assert_int_equal(smx_knownhosts_count(kh), 2);
    CHECK(kh, "hashme", 22, ED_A, SMX_HOSTKEY_OK);
    CHECK(kh, "HashMe", 22, ED_A, SMX_HOSTKEY_OK); /* lowercased before hashing, as ssh does */
    CHECK(kh, "hashme", 22, ED_B, SMX_HOSTKEY_CHANGED);
    CHECK(kh, "hashme", 22, RSA, SMX_HOSTKEY_OTHER);
    CHECK(kh, "hashme", 2222, ED_A, SMX_HOSTKEY_UNKNOWN);
    CHECK(kh, "hashport", 2022, RSA, SMX_HOSTKEY_OK);
    CHECK(kh, "hashport", 2022, ED_A, SMX_HOSTKEY_OTHER);
    CHECK(kh, "hashport", 22, RSA, SMX_HOSTKEY_UNKNOWN);
    CHECK(kh, "other", 22, ED_A, SMX_HOSTKEY_UNKNOWN);
    smx_knownhosts_free(kh);
}

static void test_patterns(void **state)
{
    struct fixture *f = *state;
    smx_knownhosts *kh;
    char text[4096];

    fmt(text, sizeof text,
             "*.example.com,!bad.example.com %s\nweb?.test %s\n[*.p.test]:2200 %s\n",
             f->pub[ED_A], f->pub[RSA], f->pub[EC256]);
    kh = load_text(f, "patterns", text);
    CHECK(kh, "a.example.com", 22, ED_A, SMX_HOSTKEY_OK);
    CHECK(kh, "Web.Example.COM", 22, ED_A, SMX_HOSTKEY_OK);
    CHECK(kh, "a.example.com", 22, ED_B, SMX_HOSTKEY_CHANGED);
    CHECK(kh, "bad.example.com", 22, ED_A, SMX_HOSTKEY_UNKNOWN); /* negation excludes the line */
    CHECK(kh, "example.com", 22, ED_A, SMX_HOSTKEY_UNKNOWN);
    CHECK(kh, "a.example.com", 2222, ED_A, SMX_HOSTKEY_UNKNOWN);
    CHECK(kh, "web1.test", 22, RSA, SMX_HOSTKEY_OK);
    CHECK(kh, "web12.test", 22, RSA, SMX_HOSTKEY_UNKNOWN);
    CHECK(kh, "x.p.test", 2200, EC256, SMX_HOSTKEY_OK);
    CHECK(kh, "x.p.test", 22, EC256, SMX_HOSTKEY_UNKNOWN);
    smx_knownhosts_free(kh);
}

static void test_cert_authority_ignored(void **state)
{
    struct fixture *f = *state;
    smx_knownhosts *kh;
    char text[4096];

    fmt(text, sizeof text, "@cert-authority *.ca.test %s\n@cert-authority host1 %s\n",
             f->pub[ED_A], f->pub[ED_A]);
    kh = load_text(f, "certauth", text);
    CHECK(kh, "a.ca.test", 22, ED_A, SMX_HOSTKEY_UNKNOWN);
    CHECK(kh, "host1", 22, ED_A, SMX_HOSTKEY_UNKNOWN);
    assert_int_equal(smx_knownhosts_count(kh), 0);
    assert_int_equal(smx_knownhosts_skipped(kh), 0); /* ignored on purpose, not malformed */
    smx_knownhosts_free(kh);
}

static void test_malformed_skipped(void **state)
{
    struct fixture *f = *state;
    const char *b64 = strchr(f->pub[ED_A], ' ') + 1;
    char bad_char[256], truncated[256], path[256], *big, *text;
    smx_knownhosts *kh;
    FILE *fp;
    size_t len;

    fmt(bad_char, sizeof bad_char, "%s", b64);
    bad_char[10] = '*';
    fmt(truncated, sizeof truncated, "%.*s", (int)strlen(b64) - 4, b64);
    big = malloc(100001);
    assert_non_null(big);
    memset(big, 'A', 100000);
    big[100000] = '\0';
    len = 200000;
    text = malloc(len);
    assert_non_null(text);
    fmt(text, len,
             "justahost\n"
             "host ssh-ed25519\n"
             "host ssh-ed25519 !!!!\n"
             "host ssh-ed25519 AAAA\n"
             "host ssh-rsa %s\n"                  /* type does not match the blob */
             "host ssh-ed25519 %s\n"              /* truncated blob */
             "host ssh-ed25519 %s\n"              /* invalid base64 character */
             "host ssh-ed25519 %s=\n"             /* bad base64 length */
             "host foo-type %s\n"
             "host sk-ssh-ed25519@openssh.com %s\n"
             "host ssh-ed25519-cert-v01@openssh.com %s\n"
             "|1|bad|bad %s\n"
             "|2|abc|def %s\n"
             "@bogus host %s\n"
             "@revoked\n"
             ",,, %s\n"
             "host ssh-ed25519 %s\n"              /* 100 kB of zeros */
             "good %s trailing comment\r\n"       /* CRLF line endings are fine */
             "   # indented comment\n"
             "\n"
             " \t\n"
             "good2\tssh-ed25519\t%s\n",
             b64, truncated, bad_char, b64, b64, b64, b64, f->pub[ED_A], f->pub[ED_A],
             f->pub[ED_A], f->pub[ED_A], big, f->pub[ED_A], b64);
    make_path(path, sizeof path, f, "malformed");
    fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fwrite("host\0x ", 1, 7, fp); /* a NUL inside a line */
    fprintf(fp, "%s\n", f->pub[ED_A]);
    fputs("@revoked good ssh-ed25519", fp); /* cut short, no newline at the end */
    assert_int_equal(fclose(fp), 0);
    free(text);
    free(big);

    kh = load_one(path);
    assert_int_equal(smx_knownhosts_skipped(kh), 19);
    assert_int_equal(smx_knownhosts_count(kh), 2);
    CHECK(kh, "good", 22, ED_A, SMX_HOSTKEY_OK);
    CHECK(kh, "good2", 22, ED_A, SMX_HOSTKEY_OK);
    CHECK(kh, "host", 22, ED_A, SMX_HOSTKEY_UNKNOWN);
    CHECK(kh, "x", 22, ED_A, SMX_HOSTKEY_UNKNOWN);
    smx_knownhosts_free(kh);
}

static void test_missing_and_unreadable(void **state)
{
    struct fixture *f = *state;
    smx_knownhosts *kh = NULL;
    smx_err err = {{0}};
    char missing[256], notdir[256], dir[256];
    const char *files[2];

    make_path(missing, sizeof missing, f, "no/such/dir/known_hosts");
    kh = load_one(missing);
    assert_int_equal(smx_knownhosts_count(kh), 0);
    CHECK(kh, "host1", 22, ED_A, SMX_HOSTKEY_UNKNOWN);
    smx_knownhosts_free(kh);

    make_path(notdir, sizeof notdir, f, "key0/known_hosts"); /* key0 is a file */
    kh = load_one(notdir);
    smx_knownhosts_free(kh);

    make_path(dir, sizeof dir, f, "adir");
    assert_int_equal(mkdir(dir, 0700), 0);
    files[0] = missing;
    files[1] = dir; /* exists but cannot be read as a file */
    kh = NULL;
    assert_int_equal(smx_knownhosts_load(&kh, files, 2, &err), SMX_EIO);
    assert_null(kh);
    assert_non_null(strstr(err.msg, dir));

    assert_int_equal(smx_knownhosts_load(&kh, NULL, 0, &err), 0); /* no files at all */
    CHECK(kh, "host1", 22, ED_A, SMX_HOSTKEY_UNKNOWN);
    assert_int_equal(smx_knownhosts_add(kh, "host1", 22, f->key[ED_A], &err), SMX_EINVAL);
    smx_knownhosts_free(kh);
}

static void test_multiple_files(void **state)
{
    struct fixture *f = *state;
    smx_knownhosts *kh = NULL;
    smx_err err = {{0}};
    char first[256], global[256], text[4096], **lines;
    const char *files[2] = {first, global};
    size_t n;

    make_path(first, sizeof first, f, "multi_user");
    make_path(global, sizeof global, f, "multi_global");
    fmt(text, sizeof text, "globalhost %s\n", f->pub[RSA]);
    write_file(global, text);
    assert_int_equal(smx_knownhosts_load(&kh, files, 2, &err), 0);
    CHECK(kh, "globalhost", 22, RSA, SMX_HOSTKEY_OK);
    assert_int_equal(smx_knownhosts_add(kh, "userhost", 22, f->key[ED_A], &err), 1);
    CHECK(kh, "userhost", 22, ED_A, SMX_HOSTKEY_OK);
    smx_knownhosts_free(kh);

    n = read_lines(first, &lines); /* new entries go to files[0] only */
    assert_int_equal(n, 1);
    free_lines(lines, n);
    n = read_lines(global, &lines);
    assert_int_equal(n, 1);
    free_lines(lines, n);
}

static void test_bad_arguments(void **state)
{
    struct fixture *f = *state;
    smx_knownhosts *kh;
    char longhost[2048];

    kh = load_text(f, "empty", "");
    memset(longhost, 'a', sizeof longhost - 1);
    longhost[sizeof longhost - 1] = '\0';
    CHECK(kh, NULL, 22, ED_A, SMX_EINVAL);
    CHECK(kh, "", 22, ED_A, SMX_EINVAL);
    CHECK(kh, longhost, 22, ED_A, SMX_EINVAL);
    CHECK(kh, "h", -1, ED_A, SMX_ERANGE);
    CHECK(kh, "h", 65536, ED_A, SMX_ERANGE);
    assert_int_equal(smx_knownhosts_check(kh, "h", 22, NULL), SMX_EINVAL);
    assert_int_equal(smx_knownhosts_check(NULL, "h", 22, f->key[ED_A]), SMX_EINVAL);
    smx_knownhosts_free(kh);
}

/* ---- adding ---- */

static void expect_line(const char *line, const char *name, const char *pub)
{
    char want[2048];

    fmt(want, sizeof want, "%s %s", name, pub);
    assert_string_equal(line, want);
}

static void test_add_appends(void **state)
{
    struct fixture *f = *state;
    smx_knownhosts *kh;
    smx_err err = {{0}};
    char text[4096], path[256], **lines;
    size_t n;

    /* the last line has no newline: the new entry must not be glued to it */
    fmt(text, sizeof text, "# keep me\nold1 %s\n@revoked * %s\nold2 %s", f->pub[ED_A],
             f->pub[EC384], f->pub[RSA]);
    make_path(path, sizeof path, f, "add");
    write_file(path, text);
    kh = load_one(path);
    CHECK(kh, "new1", 22, ED_B, SMX_HOSTKEY_UNKNOWN);
    assert_int_equal(smx_knownhosts_add(kh, "new1", 22, f->key[ED_B], &err), 1);
    assert_int_equal(smx_knownhosts_add(kh, "New2", 2222, f->key[EC256], &err), 1);
    /* the cache knows them at once, without reloading */
    CHECK(kh, "new1", 22, ED_B, SMX_HOSTKEY_OK);
    CHECK(kh, "new2", 2222, EC256, SMX_HOSTKEY_OK);
    CHECK(kh, "new1", 22, ED_A, SMX_HOSTKEY_CHANGED);
    /* a second add of a known key writes nothing */
    assert_int_equal(smx_knownhosts_add(kh, "new1", 22, f->key[ED_B], &err), 0);
    assert_int_equal(smx_knownhosts_add(kh, "old1", 22, f->key[ED_A], &err), 0);
    /* another key type for a known host is the caller's call; it is added next to the first */
    assert_int_equal(smx_knownhosts_add(kh, "new1", 22, f->key[RSA], &err), 1);
    CHECK(kh, "new1", 22, RSA, SMX_HOSTKEY_OK);
    /* refused: revoked keys and names that would change the line's meaning */
    assert_int_equal(smx_knownhosts_add(kh, "new3", 22, f->key[EC384], &err), SMX_EHOSTKEY);
    assert_int_equal(smx_knownhosts_add(kh, "a b", 22, f->key[ED_A], &err), SMX_EINVAL);
    assert_int_equal(smx_knownhosts_add(kh, "a,b", 22, f->key[ED_A], &err), SMX_EINVAL);
    assert_int_equal(smx_knownhosts_add(kh, "*", 22, f->key[ED_A], &err), SMX_EINVAL);
    assert_int_equal(smx_knownhosts_add(kh, "!x", 22, f->key[ED_A], &err), SMX_EINVAL);
    assert_int_equal(smx_knownhosts_add(kh, "#x", 22, f->key[ED_A], &err), SMX_EINVAL);
    assert_int_equal(smx_knownhosts_add(kh, "@x", 22, f->key[ED_A], &err), SMX_EINVAL);
    assert_int_equal(smx_knownhosts_add(kh, "|1|x", 22, f->key[ED_A], &err), SMX_EINVAL);
    assert_int_equal(smx_knownhosts_add(kh, "a\nb", 22, f->key[ED_A], &err), SMX_EINVAL);
    assert_int_equal(smx_knownhosts_add(kh, "", 22, f->key[ED_A], &err), SMX_EINVAL);
    assert_int_equal(smx_knownhosts_add(kh, "h", 70000, f->key[ED_A], &err), SMX_ERANGE);
    smx_knownhosts_free(kh);

    n = read_lines(path, &lines);
    assert_int_equal(n, 7);
    assert_string_equal(lines[0], "# keep me");
    expect_line(lines[1], "old1", f->pub[ED_A]);
    expect_line(lines[2], "@revoked *", f->pub[EC384]);
    expect_line(lines[3], "old2", f->pub[RSA]);
    expect_line(lines[4], "new1", f->pub[ED_B]);
    expect_line(lines[5], "[new2]:2222", f->pub[EC256]); /* lowercased, as ssh writes it */
    expect_line(lines[6], "new1", f->pub[RSA]);
    free_lines(lines, n);

    kh = load_one(path); /* and the file reads back the same */
    assert_int_equal(smx_knownhosts_skipped(kh), 0);
    CHECK(kh, "new1", 22, ED_B, SMX_HOSTKEY_OK);
    CHECK(kh, "new2", 2222, EC256, SMX_HOSTKEY_OK);
    CHECK(kh, "old2", 22, RSA, SMX_HOSTKEY_OK);
    smx_knownhosts_free(kh);
}

static void test_add_creates_file(void **state)
{
    struct fixture *f = *state;
    smx_knownhosts *kh;
    smx_err err = {{0}};
    char path[256], dir[256], **lines;
    struct stat st;
    size_t n;

    make_path(path, sizeof path, f, "fresh/sub/known_hosts");
    make_path(dir, sizeof dir, f, "fresh/sub");
    kh = load_one(path);
    assert_int_equal(stat(path, &st), -1); /* loading alone creates nothing */
    assert_int_equal(smx_knownhosts_add(kh, "created", 22, f->key[ED_A], &err), 1);
    smx_knownhosts_free(kh);

    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    assert_int_equal(stat(dir, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(st.st_mode & 0077, 0);
    n = read_lines(path, &lines);
    assert_int_equal(n, 1);
    expect_line(lines[0], "created", f->pub[ED_A]);
    free_lines(lines, n);
}

static void test_add_many(void **state)
{
    struct fixture *f = *state;
    static const int keys[3] = {ED_A, RSA, EC256};
    smx_knownhosts *kh;
    smx_err err = {{0}};
    char path[256], host[64], text[4096], **lines;
    size_t n;
    int i;

    make_path(path, sizeof path, f, "many");
    fmt(text, sizeof text, "# first line\nexisting %s\n", f->pub[ED_B]);
    write_file(path, text);
    kh = load_one(path);
    for (i = 0; i < 500; i++) {
        fmt(host, sizeof host, "host-%d.example", i);
        assert_int_equal(smx_knownhosts_add(kh, host, i % 2 ? 22 : 2000 + i, f->key[keys[i % 3]],
                                            &err), 1);
    }
    for (i = 0; i < 500; i++) { /* racing sessions re-adding the same hosts write nothing */
        fmt(host, sizeof host, "host-%d.example", i);
        assert_int_equal(smx_knownhosts_add(kh, host, i % 2 ? 22 : 2000 + i, f->key[keys[i % 3]],
                                            &err), 0);
        CHECK(kh, host, i % 2 ? 22 : 2000 + i, keys[i % 3], SMX_HOSTKEY_OK);
    }
    assert_int_equal(smx_knownhosts_count(kh), 501);
    smx_knownhosts_free(kh);

    n = read_lines(path, &lines); /* read_lines asserts every line is complete */
    assert_int_equal(n, 502);
    assert_string_equal(lines[0], "# first line");
    expect_line(lines[1], "existing", f->pub[ED_B]);
    for (i = 0; i < 500; i++) {
        char name[80];

        if (i % 2)
            fmt(name, sizeof name, "host-%d.example", i);
        else
            fmt(name, sizeof name, "[host-%d.example]:%d", i, 2000 + i);
        expect_line(lines[i + 2], name, f->pub[keys[i % 3]]);
    }
    free_lines(lines, n);

    kh = load_one(path);
    assert_int_equal(smx_knownhosts_count(kh), 501);
    assert_int_equal(smx_knownhosts_skipped(kh), 0);
    for (i = 0; i < 500; i++) {
        fmt(host, sizeof host, "host-%d.example", i);
        CHECK(kh, host, i % 2 ? 22 : 2000 + i, keys[i % 3], SMX_HOSTKEY_OK);
        CHECK(kh, host, i % 2 ? 22 : 2000 + i, ED_B, i % 3 == 0 ? SMX_HOSTKEY_CHANGED
                                                                : SMX_HOSTKEY_OTHER);
    }
    smx_knownhosts_free(kh);
}

/* Several sshmux processes appending at once: O_APPEND and one write() per line keep every line
 * whole. */
static void test_add_concurrent_processes(void **state)
{
    struct fixture *f = *state;
    enum { PROCS = 4, PER_PROC = 200 };
    smx_knownhosts *kh;
    char path[256], **lines;
    size_t n, i;
    int p, status;

    make_path(path, sizeof path, f, "concurrent");
    for (p = 0; p < PROCS; p++) {
        pid_t pid = fork();

        assert_true(pid >= 0);
        if (pid == 0) {
            smx_err err = {{0}};
            char host[64];
            int j, bad = 0;

            kh = load_one(path);
            for (j = 0; j < PER_PROC; j++) {
                fmt(host, sizeof host, "p%d-h%d", p, j);
                bad |= smx_knownhosts_add(kh, host, 22, f->key[RSA], &err) != 1;
            }
            smx_knownhosts_free(kh);
            _exit(bad);
        }
    }
    for (p = 0; p < PROCS; p++) {
        assert_true(wait(&status) > 0);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    n = read_lines(path, &lines);
    assert_int_equal(n, PROCS * PER_PROC);
    for (i = 0; i < n; i++) {
        char *sp = strchr(lines[i], ' ');

        assert_non_null(sp);
        assert_string_equal(sp + 1, f->pub[RSA]);
    }
    free_lines(lines, n);
    kh = load_one(path);
    assert_int_equal(smx_knownhosts_count(kh), PROCS * PER_PROC);
    assert_int_equal(smx_knownhosts_skipped(kh), 0);
    CHECK(kh, "p3-h199", 22, RSA, SMX_HOSTKEY_OK);
    smx_knownhosts_free(kh);
}

/* ---- fingerprints and HMAC ---- */

static void test_fingerprint(void **state)
{
    struct fixture *f = *state;
    int i;

    for (i = 0; i < NKEYS; i++) {
        char *fp = smx_key_fingerprint(f->key[i]);

        assert_non_null(fp);
        assert_string_equal(fp, f->fp[i]); /* same text as ssh-keygen -l */
        free(fp);
    }
    assert_null(smx_key_fingerprint(NULL));
}

/* Checks both the one-shot form and a context reused across calls. */
static void expect_hmac(smx_hmac_sha1_ctx *ctx, const void *key, size_t keylen, const char *msg,
                        const char *hex)
{
    unsigned char mac[SMX_SHA1_LEN], mac2[SMX_SHA1_LEN];
    char got[2 * SMX_SHA1_LEN + 1];
    int i;

    assert_int_equal(smx_hmac_sha1(key, keylen, msg, strlen(msg), mac), 0);
    for (i = 0; i < SMX_SHA1_LEN; i++)
        fmt(got + 2 * i, 3, "%02x", mac[i]);
    assert_string_equal(got, hex);
    assert_int_equal(smx_hmac_sha1_compute(ctx, key, keylen, msg, strlen(msg), mac2), 0);
    assert_memory_equal(mac, mac2, sizeof mac);
}

static void test_hmac_sha1_rfc2202(void **state)
{
    smx_hmac_sha1_ctx *ctx = smx_hmac_sha1_new();
    unsigned char k1[20], k6[80];

    (void)state;
    assert_non_null(ctx);
    memset(k1, 0x0b, sizeof k1);
    memset(k6, 0xaa, sizeof k6);
    expect_hmac(ctx, k1, sizeof k1, "Hi There", "b617318655057264e28bc0b6fb378c8ef146be00");
    expect_hmac(ctx, "Jefe", 4, "what do ya want for nothing?",
                "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79");
    expect_hmac(ctx, k6, sizeof k6, "Test Using Larger Than Block-Size Key - Hash Key First",
                "aa4ae5e15272d00e95705637ce8a3b55ed402112");
    expect_hmac(ctx, k6, sizeof k6,
                "Test Using Larger Than Block-Size Key and Larger Than One Block-Size Data",
                "e8e99d0f45237d786d6bbaa7965c7808bbff1a91");
    expect_hmac(ctx, "", 0, "", "fbdb1d1b18aa6c08324b7d64b71fb76370690e1d");
    smx_hmac_sha1_free(ctx);
    smx_hmac_sha1_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hmac_sha1_rfc2202),
        cmocka_unit_test(test_plain_ok),
        cmocka_unit_test(test_ports),
        cmocka_unit_test(test_changed_other),
        cmocka_unit_test(test_rsa_sha2_type_name),
        cmocka_unit_test(test_revoked),
        cmocka_unit_test(test_hashed),
        cmocka_unit_test(test_patterns),
        cmocka_unit_test(test_cert_authority_ignored),
        cmocka_unit_test(test_malformed_skipped),
        cmocka_unit_test(test_missing_and_unreadable),
        cmocka_unit_test(test_multiple_files),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_add_appends),
        cmocka_unit_test(test_add_creates_file),
        cmocka_unit_test(test_add_many),
        cmocka_unit_test(test_add_concurrent_processes),
        cmocka_unit_test(test_fingerprint),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
