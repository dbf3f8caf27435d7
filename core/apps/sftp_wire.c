#include "sftp_wire.h"

#include <stdlib.h>
#include <string.h>

#include "error.h"

/* ---- encoding -------------------------------------------------------------------------------- */

static void out_put(smx_sftp_out *o, const void *p, size_t n)
{
    if (o->oom)
        return;
    if (o->len + n > o->cap) {
        size_t cap = o->cap ? o->cap : 128;
        while (cap < o->len + n)
            cap *= 2;
        uint8_t *np = realloc(o->p, cap);
        if (!np) {
            o->oom = 1;
            return;
        }
        o->p = np;
        o->cap = cap;
    }
    memcpy(o->p + o->len, p, n);
    o->len += n;
}

void smx_sftp_out_u8(smx_sftp_out *o, uint8_t v)
{
    out_put(o, &v, 1);
}

void smx_sftp_out_u32(smx_sftp_out *o, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    out_put(o, b, 4);
}

void smx_sftp_out_u64(smx_sftp_out *o, uint64_t v)
{
    smx_sftp_out_u32(o, (uint32_t)(v >> 32));
    smx_sftp_out_u32(o, (uint32_t)v);
}

void smx_sftp_out_str(smx_sftp_out *o, const void *s, size_t n)
{
    smx_sftp_out_u32(o, (uint32_t)n);
    out_put(o, s, n);
}

void smx_sftp_out_cstr(smx_sftp_out *o, const char *s)
{
    smx_sftp_out_str(o, s, strlen(s));
}

void smx_sftp_out_attrs(smx_sftp_out *o, const smx_sftp_attrs *a)
{
    uint32_t f = a ? a->flags & ~SMX_FXA_EXTENDED : 0;
    smx_sftp_out_u32(o, f);
    if (f & SMX_FXA_SIZE)
        smx_sftp_out_u64(o, a->size);
    if (f & SMX_FXA_UIDGID) {
        smx_sftp_out_u32(o, a->uid);
        smx_sftp_out_u32(o, a->gid);
    }
    if (f & SMX_FXA_PERMISSIONS)
        smx_sftp_out_u32(o, a->perm);
    if (f & SMX_FXA_ACMODTIME) {
        smx_sftp_out_u32(o, a->atime);
        smx_sftp_out_u32(o, a->mtime);
    }
}

void smx_sftp_out_begin(smx_sftp_out *o, uint8_t type, uint32_t id)
{
    o->len = 0;
    o->oom = 0;
    smx_sftp_out_u32(o, 0);   /* length, filled by _end */
    smx_sftp_out_u8(o, type);
    smx_sftp_out_u32(o, id);
}

void smx_sftp_out_begin_init(smx_sftp_out *o)
{
    o->len = 0;
    o->oom = 0;
    smx_sftp_out_u32(o, 0);
    smx_sftp_out_u8(o, SMX_FXP_INIT);
    smx_sftp_out_u32(o, 3);
}

int smx_sftp_out_end(smx_sftp_out *o, size_t extra)
{
    if (o->oom || o->len < 4)
        return SMX_ENOMEM;
    uint32_t n = (uint32_t)(o->len - 4 + extra);
    o->p[0] = (uint8_t)(n >> 24);
    o->p[1] = (uint8_t)(n >> 16);
    o->p[2] = (uint8_t)(n >> 8);
    o->p[3] = (uint8_t)n;
    return 0;
}

void smx_sftp_out_free(smx_sftp_out *o)
{
    free(o->p);
    memset(o, 0, sizeof *o);
}

/* ---- decoding -------------------------------------------------------------------------------- */

static const uint8_t *in_take(smx_sftp_in *in, size_t n)
{
    if (in->bad || in->n < n) {
        in->bad = 1;
        return NULL;
    }
    const uint8_t *p = in->p;
    in->p += n;
    in->n -= n;
    return p;
}

uint8_t smx_sftp_in_u8(smx_sftp_in *in)
{
    const uint8_t *p = in_take(in, 1);
    return p ? p[0] : 0;
}

uint32_t smx_sftp_in_u32(smx_sftp_in *in)
{
    const uint8_t *p = in_take(in, 4);
    return p ? (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3] : 0;
}

uint64_t smx_sftp_in_u64(smx_sftp_in *in)
{
    uint64_t hi = smx_sftp_in_u32(in);
    return hi << 32 | smx_sftp_in_u32(in);
}

const uint8_t *smx_sftp_in_str(smx_sftp_in *in, size_t *len)
{
    uint32_t n = smx_sftp_in_u32(in);
    const uint8_t *p = in_take(in, n);
    *len = p ? n : 0;
    return p;
}

void smx_sftp_in_attrs(smx_sftp_in *in, smx_sftp_attrs *a)
{
    memset(a, 0, sizeof *a);
    a->flags = smx_sftp_in_u32(in);
    if (a->flags & SMX_FXA_SIZE)
        a->size = smx_sftp_in_u64(in);
    if (a->flags & SMX_FXA_UIDGID) {
        a->uid = smx_sftp_in_u32(in);
        a->gid = smx_sftp_in_u32(in);
    }
    if (a->flags & SMX_FXA_PERMISSIONS)
        a->perm = smx_sftp_in_u32(in);
    if (a->flags & SMX_FXA_ACMODTIME) {
        a->atime = smx_sftp_in_u32(in);
        a->mtime = smx_sftp_in_u32(in);
    }
    if (a->flags & SMX_FXA_EXTENDED) {
        uint32_t n = smx_sftp_in_u32(in);
        size_t l;
        /* each pair is at least 8 bytes: a count past what is left is malformed */
        if (n > in->n / 8)
            in->bad = 1;
        for (uint32_t i = 0; i < n && !in->bad; i++) {
            smx_sftp_in_str(in, &l);
            smx_sftp_in_str(in, &l);
        }
    }
}

int smx_sftp_parse_reply(const uint8_t *body, size_t len, smx_sftp_reply *r)
{
    smx_sftp_in in = {body, len, 0};
    memset(r, 0, sizeof *r);
    r->type = smx_sftp_in_u8(&in);
    r->id = smx_sftp_in_u32(&in);
    switch (r->type) {
    case SMX_FXP_STATUS:
        r->status = smx_sftp_in_u32(&in);
        if (in.n > 0)   /* v3 servers send message and language; very old ones did not */
            r->msg = smx_sftp_in_str(&in, &r->msg_len);
        break;
    case SMX_FXP_HANDLE:
    case SMX_FXP_DATA:
        r->data = smx_sftp_in_str(&in, &r->data_len);
        break;
    case SMX_FXP_ATTRS:
        smx_sftp_in_attrs(&in, &r->attrs);
        break;
    case SMX_FXP_NAME:
        r->count = smx_sftp_in_u32(&in);
        r->names = in;
        break;
    case SMX_FXP_EXTENDED_REPLY:
        r->data = in.p;
        r->data_len = in.n;
        break;
    default:
        return SMX_EINVAL;
    }
    return in.bad ? SMX_EINVAL : 0;
}

int smx_sftp_name_next(smx_sftp_reply *r, smx_sftp_name *out)
{
    if (r->count == 0)
        return 0;
    r->count--;
    smx_sftp_in *in = &r->names;
    out->name = smx_sftp_in_str(in, &out->name_len);
    out->longname = smx_sftp_in_str(in, &out->longname_len);
    smx_sftp_in_attrs(in, &out->attrs);
    return in->bad ? SMX_EINVAL : 1;
}

int smx_sftp_parse_version(const uint8_t *body, size_t len, uint32_t *version,
                           void (*cb)(void *ud, const char *name, size_t nlen, const uint8_t *data,
                                      size_t dlen),
                           void *ud)
{
    smx_sftp_in in = {body, len, 0};
    if (smx_sftp_in_u8(&in) != SMX_FXP_VERSION)
        return SMX_EINVAL;
    *version = smx_sftp_in_u32(&in);
    while (!in.bad && in.n > 0) {
        size_t nl, dl;
        const uint8_t *name = smx_sftp_in_str(&in, &nl);
        const uint8_t *data = smx_sftp_in_str(&in, &dl);
        if (!in.bad)
            cb(ud, (const char *)name, nl, data, dl);
    }
    return in.bad ? SMX_EINVAL : 0;
}

int smx_sftp_parse_limits(const uint8_t *data, size_t len, smx_sftp_limits *out)
{
    smx_sftp_in in = {data, len, 0};
    out->packet = smx_sftp_in_u64(&in);
    out->read = smx_sftp_in_u64(&in);
    out->write = smx_sftp_in_u64(&in);
    out->handles = smx_sftp_in_u64(&in);
    return in.bad ? SMX_EINVAL : 0;
}

const char *smx_sftp_status_text(uint32_t status)
{
    switch (status) {
    case SMX_FX_OK: return "ok";
    case SMX_FX_EOF: return "end of file";
    case SMX_FX_NO_SUCH_FILE: return "no such file";
    case SMX_FX_PERMISSION_DENIED: return "permission denied";
    case SMX_FX_FAILURE: return "failure";
    case SMX_FX_BAD_MESSAGE: return "bad message";
    case SMX_FX_NO_CONNECTION: return "no connection";
    case SMX_FX_CONNECTION_LOST: return "connection lost";
    case SMX_FX_OP_UNSUPPORTED: return "operation not supported by the server";
    case SMX_FX_INVALID_HANDLE: return "invalid handle";
    case SMX_FX_NO_SUCH_PATH: return "no such path";
    case SMX_FX_FILE_ALREADY_EXISTS: return "file already exists";
    case SMX_FX_WRITE_PROTECT: return "write protected";
    case SMX_FX_NO_MEDIA: return "no media";
    case SMX_FX_NO_SPACE_ON_FILESYSTEM: return "no space left on device";
    case SMX_FX_QUOTA_EXCEEDED: return "quota exceeded";
    default: return "unknown error";
    }
}
