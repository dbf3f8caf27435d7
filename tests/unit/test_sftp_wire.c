/* SFTP v3 wire code (core/apps/sftp_wire.c): the encoders byte for byte and through the decoder,
 * every reply a server sends, and malformed replies (truncated anywhere, strings past the end,
 * absurd counts, unknown types) rejected without reading outside the packet. Truncated packets
 * are copied into buffers of exactly their size, so an ASan build catches an over-read. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "sftp.h"

/* ---- helpers --------------------------------------------------------------------------------- */

/* A finished packet's body (after the length), which is what the decoders take. */
static const uint8_t *finish(smx_sftp_out *o, size_t *len)
{
    assert_int_equal(smx_sftp_out_end(o, 0), 0);
    uint32_t n = (uint32_t)o->p[0] << 24 | (uint32_t)o->p[1] << 16 | (uint32_t)o->p[2] << 8 | o->p[3];
    assert_int_equal(n, o->len - 4);
    *len = o->len - 4;
    return o->p + 4;
}

static uint8_t *copy_of(const uint8_t *p, size_t n)
{
    uint8_t *c = malloc(n ? n : 1);
    assert_non_null(c);
    if (n)
        memcpy(c, p, n);
    return c;
}

/* Attrs with every field, and `pairs` EXTENDED pairs "ext<i>" -> "val<i>" (smx_sftp_out_attrs
 * never sends EXTENDED, so written by hand as a server would). */
static const smx_sftp_attrs full_attrs = {
    .flags = SMX_FXA_SIZE | SMX_FXA_UIDGID | SMX_FXA_PERMISSIONS | SMX_FXA_ACMODTIME,
    .size = 0x0102030405060708ull, .uid = 1000, .gid = 100, .perm = 0100644,
    .atime = 1700000000, .mtime = 1700000001,
};

static void put_attrs_ext(smx_sftp_out *o, const smx_sftp_attrs *a, uint32_t pairs)
{
    smx_sftp_attrs b = *a;
    b.flags &= ~SMX_FXA_EXTENDED;
    size_t at = o->len;
    smx_sftp_out_attrs(o, &b);
    if (!pairs)
        return;
    o->p[at] |= SMX_FXA_EXTENDED >> 24;   /* the flags' high byte */
    smx_sftp_out_u32(o, pairs);
    for (uint32_t i = 0; i < pairs; i++) {
        char k[16], v[16];
        snprintf(k, sizeof k, "ext%u@x", i);
        snprintf(v, sizeof v, "val%u", i);
        smx_sftp_out_cstr(o, k);
        smx_sftp_out_cstr(o, v);
    }
}

static void assert_attrs_equal(const smx_sftp_attrs *got, const smx_sftp_attrs *want)
{
    uint32_t f = want->flags;
    assert_int_equal(got->flags, f);
    assert_true(got->size == (f & SMX_FXA_SIZE ? want->size : 0));
    assert_int_equal(got->uid, f & SMX_FXA_UIDGID ? want->uid : 0);
    assert_int_equal(got->gid, f & SMX_FXA_UIDGID ? want->gid : 0);
    assert_int_equal(got->perm, f & SMX_FXA_PERMISSIONS ? want->perm : 0);
    assert_int_equal(got->atime, f & SMX_FXA_ACMODTIME ? want->atime : 0);
    assert_int_equal(got->mtime, f & SMX_FXA_ACMODTIME ? want->mtime : 0);
}

/* A whole reply decoded as the client does: parse_reply, then every NAME entry. */
static int decode_all(const uint8_t *b, size_t n)
{
    smx_sftp_reply r;
    smx_sftp_name e;
    int rc = smx_sftp_parse_reply(b, n, &r);
    if (rc < 0)
        return rc;
    while ((rc = smx_sftp_name_next(&r, &e)) == 1)
        ;
    return rc;
}

static void assert_mem(const uint8_t *p, size_t n, const char *want)
{
    assert_int_equal(n, strlen(want));
    assert_memory_equal(p, want, n);
}

/* ---- encoding -------------------------------------------------------------------------------- */

static void test_encode_bytes(void **state)
{
    (void)state;
    smx_sftp_out o = {0};
    smx_sftp_attrs a = full_attrs;
    a.flags |= SMX_FXA_EXTENDED;   /* never sent: the client has no pairs to send */
    smx_sftp_out_begin(&o, SMX_FXP_OPEN, 0x01020304);
    smx_sftp_out_cstr(&o, "ab");
    smx_sftp_out_u32(&o, SMX_FXF_WRITE | SMX_FXF_CREAT | SMX_FXF_TRUNC);
    smx_sftp_out_attrs(&o, &a);
    smx_sftp_out_u8(&o, 0xfe);
    smx_sftp_out_u64(&o, 0xa1a2a3a4a5a6a7a8ull);
    assert_int_equal(smx_sftp_out_end(&o, 0), 0);
    static const uint8_t want[] = {
        0, 0, 0, 56, SMX_FXP_OPEN, 1, 2, 3, 4,
        0, 0, 0, 2, 'a', 'b',
        0, 0, 0, 0x1a,
        0, 0, 0, 0x0f, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0x03, 0xe8, 0, 0, 0, 100,
        0, 0, 0x81, 0xa4, 0x65, 0x53, 0xf1, 0x00, 0x65, 0x53, 0xf1, 0x01,
        0xfe, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8,
    };
    assert_int_equal(o.len, sizeof want);
    assert_memory_equal(o.p, want, sizeof want);

    /* INIT has no id: version 3 in its place */
    smx_sftp_out_begin_init(&o);
    assert_int_equal(smx_sftp_out_end(&o, 0), 0);
    static const uint8_t init[] = {0, 0, 0, 5, SMX_FXP_INIT, 0, 0, 0, 3};
    assert_int_equal(o.len, sizeof init);
    assert_memory_equal(o.p, init, sizeof init);

    /* no attrs: flags 0 alone; WRITE's data counted in the length but not stored */
    smx_sftp_out_begin(&o, SMX_FXP_WRITE, 7);
    smx_sftp_out_str(&o, "h", 1);
    smx_sftp_out_u64(&o, 0);
    smx_sftp_out_u32(&o, 1000);
    smx_sftp_out_attrs(&o, NULL);
    assert_int_equal(smx_sftp_out_end(&o, 1000), 0);
    assert_int_equal(o.len, 4 + 1 + 4 + 5 + 8 + 4 + 4);
    static const uint8_t wr[] = {0, 0, 0x04, 0x02, SMX_FXP_WRITE, 0, 0, 0, 7, 0, 0, 0, 1, 'h'};
    assert_memory_equal(o.p, wr, sizeof wr);
    assert_memory_equal(o.p + o.len - 4, "\0\0\0\0", 4);
    smx_sftp_out_free(&o);
    assert_null(o.p);
    assert_int_equal(o.len + o.cap, 0);
}

static void test_encode_roundtrip(void **state)
{
    (void)state;
    static const uint32_t u32s[] = {0, 1, 0x7fffffff, 0x80000000u, 0xffffffffu};
    static const uint64_t u64s[] = {0, 1, 0xffffffffull, 0x100000000ull, UINT64_MAX};
    static const uint8_t bin[] = {0, 1, 0xff, 0, 'x'};
    smx_sftp_out o = {0};
    smx_sftp_out_begin(&o, SMX_FXP_EXTENDED, 42);
    for (size_t i = 0; i < sizeof u32s / sizeof *u32s; i++)
        smx_sftp_out_u32(&o, u32s[i]);
    for (size_t i = 0; i < sizeof u64s / sizeof *u64s; i++)
        smx_sftp_out_u64(&o, u64s[i]);
    smx_sftp_out_u8(&o, 0);
    smx_sftp_out_u8(&o, 0xff);
    smx_sftp_out_str(&o, bin, sizeof bin);
    smx_sftp_out_str(&o, "", 0);
    smx_sftp_out_cstr(&o, "limits@openssh.com");
    smx_sftp_out_cstr(&o, "");
    /* every combination of the attribute flags */
    for (uint32_t f = 0; f < 16; f++) {
        smx_sftp_attrs a = full_attrs;
        a.flags = f;
        smx_sftp_out_attrs(&o, &a);
    }
    size_t n;
    const uint8_t *b = finish(&o, &n);

    smx_sftp_in in = {b, n, 0};
    assert_int_equal(smx_sftp_in_u8(&in), SMX_FXP_EXTENDED);
    assert_int_equal(smx_sftp_in_u32(&in), 42);
    for (size_t i = 0; i < sizeof u32s / sizeof *u32s; i++)
        assert_int_equal(smx_sftp_in_u32(&in), u32s[i]);
    for (size_t i = 0; i < sizeof u64s / sizeof *u64s; i++)
        assert_true(smx_sftp_in_u64(&in) == u64s[i]);
    assert_int_equal(smx_sftp_in_u8(&in), 0);
    assert_int_equal(smx_sftp_in_u8(&in), 0xff);
    size_t l;
    const uint8_t *s = smx_sftp_in_str(&in, &l);
    assert_int_equal(l, sizeof bin);
    assert_memory_equal(s, bin, sizeof bin);
    assert_non_null(smx_sftp_in_str(&in, &l));   /* empty, but present */
    assert_int_equal(l, 0);
    s = smx_sftp_in_str(&in, &l);
    assert_mem(s, l, "limits@openssh.com");
    assert_non_null(smx_sftp_in_str(&in, &l));
    assert_int_equal(l, 0);
    for (uint32_t f = 0; f < 16; f++) {
        smx_sftp_attrs want = full_attrs, got;
        want.flags = f;
        smx_sftp_in_attrs(&in, &got);
        assert_attrs_equal(&got, &want);
    }
    assert_false(in.bad);
    assert_int_equal(in.n, 0);
    smx_sftp_out_free(&o);
}

/* The buffer grows from nothing, and a packet begun again reuses it. */
static void test_encode_growth(void **state)
{
    (void)state;
    size_t big = 300000;
    uint8_t *data = malloc(big);
    assert_non_null(data);
    for (size_t i = 0; i < big; i++)
        data[i] = (uint8_t)(i * 7);
    smx_sftp_out o = {0};
    smx_sftp_out_begin(&o, SMX_FXP_WRITE, 1);
    for (int i = 0; i < 1000; i++)
        smx_sftp_out_u32(&o, (uint32_t)i);
    smx_sftp_out_str(&o, data, big);
    size_t n;
    const uint8_t *b = finish(&o, &n);
    assert_int_equal(n, 5 + 4000 + 4 + big);
    smx_sftp_in in = {b + 5, n - 5, 0};
    for (int i = 0; i < 1000; i++)
        assert_int_equal(smx_sftp_in_u32(&in), i);
    size_t l;
    const uint8_t *s = smx_sftp_in_str(&in, &l);
    assert_int_equal(l, big);
    assert_memory_equal(s, data, big);

    size_t cap = o.cap;
    smx_sftp_out_begin(&o, SMX_FXP_CLOSE, 2);
    smx_sftp_out_str(&o, "h", 1);
    b = finish(&o, &n);
    assert_int_equal(n, 10);
    assert_int_equal(o.cap, cap);
    smx_sftp_out_free(&o);
    free(data);

    /* a packet never begun is not sent */
    assert_int_equal(smx_sftp_out_end(&o, 0), SMX_ENOMEM);
}

/* A read past the end sticks: later reads yield 0 even where bytes are left. */
static void test_in_bad_sticks(void **state)
{
    (void)state;
    static const uint8_t b[] = {1, 2, 3};
    smx_sftp_in in = {b, sizeof b, 0};
    assert_int_equal(smx_sftp_in_u32(&in), 0);
    assert_true(in.bad);
    assert_int_equal(smx_sftp_in_u8(&in), 0);
    size_t l = 99;
    assert_null(smx_sftp_in_str(&in, &l));
    assert_int_equal(l, 0);
    smx_sftp_attrs a;
    smx_sftp_in_attrs(&in, &a);
    assert_int_equal(a.flags, 0);
    assert_true(smx_sftp_in_u64(&in) == 0);
}

/* ---- replies --------------------------------------------------------------------------------- */

static void test_status(void **state)
{
    (void)state;
    smx_sftp_out o = {0};
    smx_sftp_reply r;
    size_t n;
    const uint8_t *b;

    smx_sftp_out_begin(&o, SMX_FXP_STATUS, 9);
    smx_sftp_out_u32(&o, SMX_FX_NO_SUCH_FILE);
    smx_sftp_out_cstr(&o, "No such file");
    smx_sftp_out_cstr(&o, "en");
    b = finish(&o, &n);
    assert_int_equal(smx_sftp_parse_reply(b, n, &r), 0);
    assert_int_equal(r.type, SMX_FXP_STATUS);
    assert_int_equal(r.id, 9);
    assert_int_equal(r.status, SMX_FX_NO_SUCH_FILE);
    assert_mem(r.msg, r.msg_len, "No such file");

    /* old servers: no message and no language */
    smx_sftp_out_begin(&o, SMX_FXP_STATUS, 10);
    smx_sftp_out_u32(&o, SMX_FX_EOF);
    b = finish(&o, &n);
    assert_int_equal(smx_sftp_parse_reply(b, n, &r), 0);
    assert_int_equal(r.id, 10);
    assert_int_equal(r.status, SMX_FX_EOF);
    assert_null(r.msg);
    assert_int_equal(r.msg_len, 0);

    /* a message without a language tag: the tag is not used */
    smx_sftp_out_begin(&o, SMX_FXP_STATUS, 11);
    smx_sftp_out_u32(&o, SMX_FX_FAILURE);
    smx_sftp_out_cstr(&o, "disk on fire");
    b = finish(&o, &n);
    assert_int_equal(smx_sftp_parse_reply(b, n, &r), 0);
    assert_int_equal(r.status, SMX_FX_FAILURE);
    assert_mem(r.msg, r.msg_len, "disk on fire");

    /* a message that runs past the end */
    smx_sftp_out_begin(&o, SMX_FXP_STATUS, 12);
    smx_sftp_out_u32(&o, SMX_FX_FAILURE);
    smx_sftp_out_u32(&o, 5);
    smx_sftp_out_u32(&o, 0x41414141);
    b = finish(&o, &n);
    assert_int_equal(smx_sftp_parse_reply(b, n, &r), SMX_EINVAL);
    smx_sftp_out_free(&o);
}

static void test_handle_data_attrs_ext(void **state)
{
    (void)state;
    smx_sftp_out o = {0};
    smx_sftp_reply r;
    size_t n;
    const uint8_t *b;
    static const uint8_t blob[] = {0, 0, 0, 4, 0xff, 0, 'z'};

    smx_sftp_out_begin(&o, SMX_FXP_HANDLE, 3);
    smx_sftp_out_str(&o, "\0\0\0\1", 4);   /* OpenSSH's handles are binary */
    b = finish(&o, &n);
    assert_int_equal(smx_sftp_parse_reply(b, n, &r), 0);
    assert_int_equal(r.type, SMX_FXP_HANDLE);
    assert_int_equal(r.id, 3);
    assert_int_equal(r.data_len, 4);
    assert_memory_equal(r.data, "\0\0\0\1", 4);

    smx_sftp_out_begin(&o, SMX_FXP_DATA, 4);
    smx_sftp_out_str(&o, blob, sizeof blob);
    b = finish(&o, &n);
    assert_int_equal(smx_sftp_parse_reply(b, n, &r), 0);
    assert_int_equal(r.type, SMX_FXP_DATA);
    assert_int_equal(r.data_len, sizeof blob);
    assert_memory_equal(r.data, blob, sizeof blob);

    smx_sftp_out_begin(&o, SMX_FXP_DATA, 5);
    smx_sftp_out_str(&o, "", 0);
    b = finish(&o, &n);
    assert_int_equal(smx_sftp_parse_reply(b, n, &r), 0);
    assert_int_equal(r.data_len, 0);

    smx_sftp_out_begin(&o, SMX_FXP_ATTRS, 6);
    put_attrs_ext(&o, &full_attrs, 3);
    b = finish(&o, &n);
    assert_int_equal(smx_sftp_parse_reply(b, n, &r), 0);
    assert_int_equal(r.type, SMX_FXP_ATTRS);
    smx_sftp_attrs want = full_attrs;
    want.flags |= SMX_FXA_EXTENDED;
    assert_attrs_equal(&r.attrs, &want);
    assert_true(SMX_SFTP_IS_REG(&r.attrs));
    assert_false(SMX_SFTP_IS_DIR(&r.attrs));

    /* EXTENDED_REPLY: the rest of the packet, whatever it holds (here, limits@) */
    smx_sftp_out_begin(&o, SMX_FXP_EXTENDED_REPLY, 7);
    smx_sftp_out_u64(&o, 262144);
    smx_sftp_out_u64(&o, 261120);
    smx_sftp_out_u64(&o, 261120);
    smx_sftp_out_u64(&o, 0);
    b = finish(&o, &n);
    assert_int_equal(smx_sftp_parse_reply(b, n, &r), 0);
    assert_int_equal(r.type, SMX_FXP_EXTENDED_REPLY);
    assert_int_equal(r.id, 7);
    assert_int_equal(r.data_len, 32);
    assert_ptr_equal(r.data, b + 5);
    smx_sftp_limits lim;
    assert_int_equal(smx_sftp_parse_limits(r.data, r.data_len, &lim), 0);
    assert_true(lim.packet == 262144 && lim.read == 261120 && lim.write == 261120);
    assert_true(lim.handles == 0);

    smx_sftp_out_begin(&o, SMX_FXP_EXTENDED_REPLY, 8);
    b = finish(&o, &n);
    assert_int_equal(smx_sftp_parse_reply(b, n, &r), 0);
    assert_int_equal(r.data_len, 0);
    assert_int_equal(smx_sftp_parse_limits(r.data, r.data_len, &lim), SMX_EINVAL);
    smx_sftp_out_free(&o);
}

/* Three entries as READDIR returns them: a directory with no attrs, a file with all of them
 * and EXTENDED pairs, a symlink. */
static const uint8_t *name_reply(smx_sftp_out *o, uint32_t count, size_t *n)
{
    smx_sftp_attrs dir = {.flags = SMX_FXA_PERMISSIONS, .perm = 040755};
    smx_sftp_attrs lnk = {.flags = SMX_FXA_PERMISSIONS | SMX_FXA_SIZE, .perm = 0120777, .size = 4};
    smx_sftp_out_begin(o, SMX_FXP_NAME, 21);
    smx_sftp_out_u32(o, count);
    smx_sftp_out_cstr(o, "sub");
    smx_sftp_out_cstr(o, "drwxr-xr-x    2 u g 4096 Jan  1 00:00 sub");
    put_attrs_ext(o, &dir, 0);
    smx_sftp_out_cstr(o, "file.bin");
    smx_sftp_out_cstr(o, "");
    put_attrs_ext(o, &full_attrs, 2);
    smx_sftp_out_cstr(o, "link");
    smx_sftp_out_cstr(o, "lrwxrwxrwx    1 u g 4 Jan  1 00:00 link -> file");
    put_attrs_ext(o, &lnk, 1);
    return finish(o, n);
}

static void test_name(void **state)
{
    (void)state;
    smx_sftp_out o = {0};
    smx_sftp_reply r;
    smx_sftp_name e;
    size_t n;
    const uint8_t *b = name_reply(&o, 3, &n);

    assert_int_equal(smx_sftp_parse_reply(b, n, &r), 0);
    assert_int_equal(r.type, SMX_FXP_NAME);
    assert_int_equal(r.id, 21);
    assert_int_equal(r.count, 3);
    assert_int_equal(smx_sftp_name_next(&r, &e), 1);
    assert_mem(e.name, e.name_len, "sub");
    assert_mem(e.longname, e.longname_len, "drwxr-xr-x    2 u g 4096 Jan  1 00:00 sub");
    assert_true(SMX_SFTP_IS_DIR(&e.attrs));
    assert_int_equal(smx_sftp_name_next(&r, &e), 1);
    assert_mem(e.name, e.name_len, "file.bin");
    assert_int_equal(e.longname_len, 0);
    smx_sftp_attrs want = full_attrs;
    want.flags |= SMX_FXA_EXTENDED;
    assert_attrs_equal(&e.attrs, &want);
    assert_int_equal(smx_sftp_name_next(&r, &e), 1);
    assert_mem(e.name, e.name_len, "link");
    assert_true(SMX_SFTP_IS_LNK(&e.attrs));
    assert_true(e.attrs.size == 4);
    assert_int_equal(smx_sftp_name_next(&r, &e), 0);
    assert_int_equal(smx_sftp_name_next(&r, &e), 0);

    /* REALPATH's reply: one entry; and an empty READDIR batch */
    assert_int_equal(smx_sftp_parse_reply(b, n, &r), 0);
    r.count = 1;
    assert_int_equal(smx_sftp_name_next(&r, &e), 1);
    assert_int_equal(smx_sftp_name_next(&r, &e), 0);
    smx_sftp_out_begin(&o, SMX_FXP_NAME, 22);
    smx_sftp_out_u32(&o, 0);
    b = finish(&o, &n);
    assert_int_equal(smx_sftp_parse_reply(b, n, &r), 0);
    assert_int_equal(smx_sftp_name_next(&r, &e), 0);

    /* a count larger than the entries sent: the entries, then an error (and it stays one) */
    b = name_reply(&o, 0xffffffffu, &n);
    assert_int_equal(smx_sftp_parse_reply(b, n, &r), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(smx_sftp_name_next(&r, &e), 1);
    assert_int_equal(smx_sftp_name_next(&r, &e), SMX_EINVAL);
    assert_int_equal(smx_sftp_name_next(&r, &e), SMX_EINVAL);

    /* an entry's name longer than the packet */
    smx_sftp_out_begin(&o, SMX_FXP_NAME, 23);
    smx_sftp_out_u32(&o, 1);
    smx_sftp_out_u32(&o, 0x7fffffff);
    smx_sftp_out_cstr(&o, "x");
    b = finish(&o, &n);
    assert_int_equal(smx_sftp_parse_reply(b, n, &r), 0);
    assert_int_equal(smx_sftp_name_next(&r, &e), SMX_EINVAL);
    smx_sftp_out_free(&o);
}

typedef struct exts {
    int n;
    char name[8][32];
    char data[8][32];
} exts;

static void on_ext(void *ud, const char *name, size_t nlen, const uint8_t *data, size_t dlen)
{
    exts *x = ud;
    assert_true(x->n < 8 && nlen < 32 && dlen < 32);
    memcpy(x->name[x->n], name, nlen);
    x->name[x->n][nlen] = '\0';
    memcpy(x->data[x->n], data, dlen);
    x->data[x->n][dlen] = '\0';
    x->n++;
}

static const char *const openssh_exts[][2] = {
    {"posix-rename@openssh.com", "1"}, {"statvfs@openssh.com", "2"},
    {"hardlink@openssh.com", "1"}, {"fsync@openssh.com", "1"},
    {"limits@openssh.com", "1"}, {"copy-data", "1"},
};
#define N_OPENSSH_EXTS (sizeof openssh_exts / sizeof *openssh_exts)

static const uint8_t *version_packet(smx_sftp_out *o, size_t *n)
{
    smx_sftp_out_begin(o, SMX_FXP_VERSION, 3);   /* the version where a reply's id is */
    for (size_t i = 0; i < N_OPENSSH_EXTS; i++) {
        smx_sftp_out_cstr(o, openssh_exts[i][0]);
        smx_sftp_out_cstr(o, openssh_exts[i][1]);
    }
    return finish(o, n);
}

static void test_version(void **state)
{
    (void)state;
    smx_sftp_out o = {0};
    exts x = {0};
    uint32_t v = 0;
    size_t n;
    const uint8_t *b = version_packet(&o, &n);

    assert_int_equal(smx_sftp_parse_version(b, n, &v, on_ext, &x), 0);
    assert_int_equal(v, 3);
    assert_int_equal(x.n, N_OPENSSH_EXTS);
    for (size_t i = 0; i < N_OPENSSH_EXTS; i++) {
        assert_string_equal(x.name[i], openssh_exts[i][0]);
        assert_string_equal(x.data[i], openssh_exts[i][1]);
    }

    /* no extensions; a later version (the caller refuses it) */
    smx_sftp_out_begin(&o, SMX_FXP_VERSION, 6);
    b = finish(&o, &n);
    memset(&x, 0, sizeof x);
    assert_int_equal(smx_sftp_parse_version(b, n, &v, on_ext, &x), 0);
    assert_int_equal(v, 6);
    assert_int_equal(x.n, 0);

    /* not a VERSION packet; a name without its data */
    smx_sftp_out_begin(&o, SMX_FXP_STATUS, 3);
    b = finish(&o, &n);
    assert_int_equal(smx_sftp_parse_version(b, n, &v, on_ext, &x), SMX_EINVAL);
    smx_sftp_out_begin(&o, SMX_FXP_VERSION, 3);
    smx_sftp_out_cstr(&o, "limits@openssh.com");
    b = finish(&o, &n);
    assert_int_equal(smx_sftp_parse_version(b, n, &v, on_ext, &x), SMX_EINVAL);
    assert_int_equal(x.n, 0);
    assert_int_equal(smx_sftp_parse_version(b, 0, &v, on_ext, &x), SMX_EINVAL);
    smx_sftp_out_free(&o);
}

static void test_limits(void **state)
{
    (void)state;
    static const uint8_t b[] = {
        0, 0, 0, 0, 0, 4, 0, 0,   0, 0, 0, 0, 0, 3, 0xfc, 0,
        0, 0, 0, 0, 0, 3, 0xfc, 0,   0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        9,   /* trailing bytes are ignored (a later version may add fields) */
    };
    smx_sftp_limits lim;
    assert_int_equal(smx_sftp_parse_limits(b, sizeof b, &lim), 0);
    assert_true(lim.packet == 262144 && lim.read == 261120 && lim.write == 261120);
    assert_true(lim.handles == UINT64_MAX);
    for (size_t cut = 0; cut < 32; cut++) {
        uint8_t *c = copy_of(b, cut);
        assert_int_equal(smx_sftp_parse_limits(c, cut, &lim), SMX_EINVAL);
        free(c);
    }
}

/* ---- malformed replies ----------------------------------------------------------------------- */

/* Every prefix of a valid reply is rejected, but for the prefixes that are replies themselves
 * (ok_from..: a STATUS without its message or language, from old servers). */
static void check_truncations(const uint8_t *b, size_t n, size_t ok_at, size_t ok_from)
{
    assert_int_equal(decode_all(b, n), 0);
    for (size_t cut = 0; cut < n; cut++) {
        uint8_t *c = copy_of(b, cut);
        int want = cut == ok_at || cut >= ok_from ? 0 : SMX_EINVAL;
        if (decode_all(c, cut) != want)
            fail_msg("packet type %u cut to %zu of %zu bytes: want %d", b[0], cut, n, want);
        free(c);
    }
}

static void test_truncated(void **state)
{
    (void)state;
    smx_sftp_out o = {0};
    size_t n;
    const uint8_t *b;

    smx_sftp_out_begin(&o, SMX_FXP_STATUS, 1);
    smx_sftp_out_u32(&o, SMX_FX_PERMISSION_DENIED);
    smx_sftp_out_cstr(&o, "Permission denied");
    smx_sftp_out_cstr(&o, "en");
    b = finish(&o, &n);
    check_truncations(b, n, 9, 9 + 4 + strlen("Permission denied"));

    smx_sftp_out_begin(&o, SMX_FXP_HANDLE, 2);
    smx_sftp_out_str(&o, "\0\0\0\7", 4);
    b = finish(&o, &n);
    check_truncations(b, n, SIZE_MAX, n);

    smx_sftp_out_begin(&o, SMX_FXP_DATA, 3);
    smx_sftp_out_cstr(&o, "some file data");
    b = finish(&o, &n);
    check_truncations(b, n, SIZE_MAX, n);

    smx_sftp_out_begin(&o, SMX_FXP_ATTRS, 4);
    put_attrs_ext(&o, &full_attrs, 2);
    b = finish(&o, &n);
    check_truncations(b, n, SIZE_MAX, n);

    b = name_reply(&o, 3, &n);
    check_truncations(b, n, SIZE_MAX, n);

    smx_sftp_out_begin(&o, SMX_FXP_EXTENDED_REPLY, 5);
    smx_sftp_out_u64(&o, 1);
    b = finish(&o, &n);
    check_truncations(b, n, SIZE_MAX, 5);

    /* VERSION: a prefix ending between two extension pairs is a shorter VERSION */
    exts x;
    uint32_t v;
    b = version_packet(&o, &n);
    size_t bound = 5, pair = 0;
    for (size_t cut = 0; cut < n; cut++) {
        if (cut > bound && pair < N_OPENSSH_EXTS)
            bound += 8 + strlen(openssh_exts[pair][0]) + strlen(openssh_exts[pair][1]), pair++;
        uint8_t *c = copy_of(b, cut);
        memset(&x, 0, sizeof x);
        int want = cut == bound ? 0 : SMX_EINVAL;
        if (smx_sftp_parse_version(c, cut, &v, on_ext, &x) != want)
            fail_msg("VERSION cut to %zu of %zu bytes: want %d", cut, n, want);
        free(c);
    }
    smx_sftp_out_free(&o);
}

static void test_string_past_end(void **state)
{
    (void)state;
    static const uint8_t types[] = {SMX_FXP_HANDLE, SMX_FXP_DATA, SMX_FXP_STATUS};
    smx_sftp_out o = {0};
    smx_sftp_reply r;
    size_t n;
    const uint8_t *b;

    for (size_t t = 0; t < sizeof types; t++) {
        /* 9 bytes follow the length: 9 fits, 10 is one past the end */
        static const uint32_t lens[] = {9, 10, 0x7fffffff, 0xffffffffu};
        for (size_t i = 0; i < sizeof lens / sizeof *lens; i++) {
            smx_sftp_out_begin(&o, types[t], 1);
            if (types[t] == SMX_FXP_STATUS)
                smx_sftp_out_u32(&o, SMX_FX_FAILURE);
            smx_sftp_out_u32(&o, lens[i]);
            smx_sftp_out_cstr(&o, "abcde");
            b = finish(&o, &n);
            int want = lens[i] <= 9 ? 0 : SMX_EINVAL;
            assert_int_equal(smx_sftp_parse_reply(b, n, &r), want);
        }
    }

    /* an extension pair's string in ATTRS */
    smx_sftp_out_begin(&o, SMX_FXP_ATTRS, 2);
    smx_sftp_out_u32(&o, SMX_FXA_EXTENDED);
    smx_sftp_out_u32(&o, 1);
    smx_sftp_out_cstr(&o, "name");
    smx_sftp_out_u32(&o, 100);
    smx_sftp_out_u32(&o, 0);
    b = finish(&o, &n);
    assert_int_equal(smx_sftp_parse_reply(b, n, &r), SMX_EINVAL);
    smx_sftp_out_free(&o);
}

/* EXTENDED counts that would loop 4 billion times are refused at once, also inside NAME. */
static void test_ext_count(void **state)
{
    (void)state;
    smx_sftp_out o = {0};
    smx_sftp_reply r;
    smx_sftp_name e;
    size_t n;
    const uint8_t *b;
    static const uint32_t counts[] = {2, 3, 0x10000000, 0x7fffffff, 0xffffffffu};

    for (size_t i = 0; i < sizeof counts / sizeof *counts; i++) {
        /* 16 bytes after the count: room for two pairs of empty strings */
        smx_sftp_out_begin(&o, SMX_FXP_ATTRS, 3);
        smx_sftp_out_u32(&o, SMX_FXA_EXTENDED);
        smx_sftp_out_u32(&o, counts[i]);
        for (int k = 0; k < 4; k++)
            smx_sftp_out_u32(&o, 0);
        b = finish(&o, &n);
        assert_int_equal(smx_sftp_parse_reply(b, n, &r), counts[i] == 2 ? 0 : SMX_EINVAL);

        smx_sftp_out_begin(&o, SMX_FXP_NAME, 4);
        smx_sftp_out_u32(&o, 1);
        smx_sftp_out_cstr(&o, "n");
        smx_sftp_out_cstr(&o, "l");
        smx_sftp_out_u32(&o, SMX_FXA_EXTENDED);
        smx_sftp_out_u32(&o, counts[i]);
        for (int k = 0; k < 4; k++)
            smx_sftp_out_u32(&o, 0);
        b = finish(&o, &n);
        assert_int_equal(smx_sftp_parse_reply(b, n, &r), 0);
        assert_int_equal(smx_sftp_name_next(&r, &e), counts[i] == 2 ? 1 : SMX_EINVAL);
    }
    smx_sftp_out_free(&o);
}

static void test_unknown_types(void **state)
{
    (void)state;
    uint8_t b[64] = {0};
    smx_sftp_reply r;
    for (int t = 0; t < 256; t++) {
        b[0] = (uint8_t)t;
        int known = t == SMX_FXP_STATUS || t == SMX_FXP_HANDLE || t == SMX_FXP_DATA ||
                    t == SMX_FXP_NAME || t == SMX_FXP_ATTRS || t == SMX_FXP_EXTENDED_REPLY;
        if (smx_sftp_parse_reply(b, sizeof b, &r) != (known ? 0 : SMX_EINVAL))
            fail_msg("type %d", t);
    }
    assert_int_equal(smx_sftp_parse_reply(b, 0, &r), SMX_EINVAL);
    assert_int_equal(smx_sftp_parse_reply(NULL, 0, &r), SMX_EINVAL);
}

/* ---- messages -------------------------------------------------------------------------------- */

static void test_status_text(void **state)
{
    (void)state;
    static const char *const want[] = {
        "ok", "end of file", "no such file", "permission denied", "failure", "bad message",
        "no connection", "connection lost", "operation not supported by the server",
        "invalid handle", "no such path", "file already exists", "write protected", "no media",
        "no space left on device", "quota exceeded",
    };
    assert_int_equal(sizeof want / sizeof *want, SMX_FX_QUOTA_EXCEEDED + 1);
    for (uint32_t i = 0; i <= SMX_FX_QUOTA_EXCEEDED; i++)
        assert_string_equal(smx_sftp_status_text(i), want[i]);
    assert_string_equal(smx_sftp_status_text(16), "unknown error");
    assert_string_equal(smx_sftp_status_text(0xffffffffu), "unknown error");
}

/* The line a failed request prints: the server's own text only where the code says no more
 * than "failure", cut to 200 bytes. */
static void test_status_message(void **state)
{
    (void)state;
    char out[300], lng[400];
    smx_sftp_reply r = {.type = SMX_FXP_STATUS, .status = SMX_FX_NO_SUCH_FILE};
    r.msg = (const uint8_t *)"No such file or directory";
    r.msg_len = strlen((const char *)r.msg);
    smx_sftp_status_message(&r, "/x", out, sizeof out);
    assert_string_equal(out, "/x: no such file");
    r.status = SMX_FX_FAILURE;
    smx_sftp_status_message(&r, "/x", out, sizeof out);
    assert_string_equal(out, "/x: No such file or directory");
    r.msg = (const uint8_t *)"Failure";
    r.msg_len = 7;
    smx_sftp_status_message(&r, "/x", out, sizeof out);
    assert_string_equal(out, "/x: failure");
    r.msg_len = 0;
    smx_sftp_status_message(&r, "/x", out, sizeof out);
    assert_string_equal(out, "/x: failure");
    memset(lng, 'm', sizeof lng);
    r.status = 99;
    r.msg = (const uint8_t *)lng;
    r.msg_len = sizeof lng;   /* not NUL-terminated */
    smx_sftp_status_message(&r, "/x", out, sizeof out);
    assert_int_equal(strlen(out), 4 + 200);
    r.type = SMX_FXP_HANDLE;
    smx_sftp_status_message(&r, "/x", out, sizeof out);
    assert_string_equal(out, "/x: unexpected reply type 102");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encode_bytes),
        cmocka_unit_test(test_encode_roundtrip),
        cmocka_unit_test(test_encode_growth),
        cmocka_unit_test(test_in_bad_sticks),
        cmocka_unit_test(test_status),
        cmocka_unit_test(test_handle_data_attrs_ext),
        cmocka_unit_test(test_name),
        cmocka_unit_test(test_version),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_string_past_end),
        cmocka_unit_test(test_ext_count),
        cmocka_unit_test(test_unknown_types),
        cmocka_unit_test(test_status_text),
        cmocka_unit_test(test_status_message),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
