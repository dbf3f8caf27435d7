/* What an SFTP server sends (core/apps/sftp_wire.c's decoders, and the status line of
 * core/apps/sftp.c). The input is the channel's byte stream: packets behind a uint32 length,
 * split as sftp.c's sftp_parse_input splits them. Each packet is copied into a buffer of its own
 * size (so a read past the packet, not only past the input, is caught) and goes through every
 * decoder: smx_sftp_parse_reply and each NAME entry, smx_sftp_parse_version, smx_sftp_parse_limits.
 *
 * Besides memory errors, checks that every string a decoder returns lies inside the packet, that
 * a NAME entry consumes bytes (so a huge count ends with the packet), that decoded attributes
 * encode and decode back to themselves, and that the status line is a terminated string. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "sftp.h"

typedef struct pkt {
    const uint8_t *p;
    size_t n;
} pkt;

static volatile uint8_t sink;

/* Reads every byte (ASan checks each) after checking that [s, s+len) is inside the packet. */
static void touch(const pkt *k, const void *s, size_t len, const char *what)
{
    uintptr_t lo = (uintptr_t)k->p, hi = lo + k->n, a = (uintptr_t)s;
    if (len && (!s || a < lo || a > hi || len > hi - a))
        fz_fail("%s: %zu bytes at offset %td, outside the %zu-byte packet", what, len,
                (const uint8_t *)s - k->p, k->n);
    const uint8_t *b = s;
    uint8_t x = 0;
    for (size_t i = 0; i < len; i++)
        x ^= b[i];
    sink = x;
}

/* Fields the flags do not name are 0; encoding and decoding again gives the same attrs (without
 * EXTENDED, which the client never sends). */
static void check_attrs(const smx_sftp_attrs *a)
{
    uint32_t f = a->flags;
    if ((!(f & SMX_FXA_SIZE) && a->size) || (!(f & SMX_FXA_UIDGID) && (a->uid || a->gid)) ||
        (!(f & SMX_FXA_PERMISSIONS) && a->perm) ||
        (!(f & SMX_FXA_ACMODTIME) && (a->atime || a->mtime)))
        fz_fail("attrs with flags %#x carry a field the flags do not name", f);
    smx_sftp_out o = {0};
    smx_sftp_out_begin(&o, SMX_FXP_ATTRS, 0);
    smx_sftp_out_attrs(&o, a);
    if (smx_sftp_out_end(&o, 0) < 0)
        abort();
    smx_sftp_in in = {o.p + 9, o.len - 9, 0};
    smx_sftp_attrs b, want = *a;
    want.flags &= ~SMX_FXA_EXTENDED;
    smx_sftp_in_attrs(&in, &b);
    if (in.bad || in.n || memcmp(&b, &want, sizeof b) != 0)
        fz_fail("attrs with flags %#x do not survive encoding", f);
    smx_sftp_out_free(&o);
}

static void check_status_message(const smx_sftp_reply *r)
{
    char out[300];
    static const size_t sizes[] = {1, 8, sizeof out - 1};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        memset(out, 'X', sizeof out);
        smx_sftp_status_message(r, "/p", out, sizes[i]);
        if (!memchr(out, '\0', sizes[i]) || out[sizes[i]] != 'X')
            fz_fail("status line into %zu bytes not terminated inside them", sizes[i]);
    }
}

static void run_reply(const pkt *k)
{
    smx_sftp_reply r;
    smx_sftp_name e;
    if (smx_sftp_parse_reply(k->p, k->n, &r) < 0)
        return;
    touch(k, r.msg, r.msg_len, "STATUS message");
    touch(k, r.data, r.data_len, "reply data");
    check_attrs(&r.attrs);
    check_status_message(&r);
    if (r.type == SMX_FXP_EXTENDED_REPLY) {
        smx_sftp_limits lim;
        smx_sftp_parse_limits(r.data, r.data_len, &lim);
    }
    if (r.type == SMX_FXP_NAME && (!r.names.p || r.names.p + r.names.n != k->p + k->n))
        fz_fail("NAME entries do not run to the end of the packet");
    size_t entries = 0;
    int rc;
    while ((rc = smx_sftp_name_next(&r, &e)) > 0) {
        touch(k, e.name, e.name_len, "NAME name");
        touch(k, e.longname, e.longname_len, "NAME longname");
        check_attrs(&e.attrs);
        /* two strings and the flags at least */
        if (++entries > k->n / 12)
            fz_fail("%zu NAME entries out of %zu bytes", entries, k->n);
    }
}

static const pkt *version_pkt;

static void on_ext(void *ud, const char *name, size_t nlen, const uint8_t *data, size_t dlen)
{
    size_t *count = ud;
    touch(version_pkt, name, nlen, "extension name");
    touch(version_pkt, data, dlen, "extension data");
    if (++*count > version_pkt->n / 8)
        fz_fail("%zu extensions out of %zu bytes", *count, version_pkt->n);
}

static void run_packet(const uint8_t *body, size_t n)
{
    uint8_t *copy = malloc(n);
    if (!copy)
        abort();
    memcpy(copy, body, n);
    pkt k = {copy, n};

    run_reply(&k);
    uint32_t version;
    size_t count = 0;
    version_pkt = &k;
    smx_sftp_parse_version(copy, n, &version, on_ext, &count);
    smx_sftp_limits lim;
    smx_sftp_parse_limits(copy, n, &lim);
    free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t off = 0;
    while (size - off >= 4) {
        const uint8_t *p = data + off;
        uint32_t n = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
        if (n == 0 || n > SMX_SFTP_MAX_PACKET || size - off - 4 < n)
            break;   /* the client fails the channel, or waits for the rest */
        run_packet(p + 4, n);
        off += 4 + n;
    }
    return 0;
}
