/* SFTP version 3 on the wire (draft-ietf-secsh-filexfer-02, and OpenSSH's PROTOCOL.sftp for the
 * extensions): packet encoding into a growable buffer and bounds-checked decoding of the
 * server's packets. Pure code, no I/O: the client (apps/sftp.c) and the fuzzer use it. */
#ifndef SSHMUX_SFTP_WIRE_H
#define SSHMUX_SFTP_WIRE_H

#include <stddef.h>
#include <stdint.h>

enum smx_sftp_type {
    SMX_FXP_INIT = 1, SMX_FXP_VERSION = 2, SMX_FXP_OPEN = 3, SMX_FXP_CLOSE = 4, SMX_FXP_READ = 5,
    SMX_FXP_WRITE = 6, SMX_FXP_LSTAT = 7, SMX_FXP_FSTAT = 8, SMX_FXP_SETSTAT = 9,
    SMX_FXP_FSETSTAT = 10, SMX_FXP_OPENDIR = 11, SMX_FXP_READDIR = 12, SMX_FXP_REMOVE = 13,
    SMX_FXP_MKDIR = 14, SMX_FXP_RMDIR = 15, SMX_FXP_REALPATH = 16, SMX_FXP_STAT = 17,
    SMX_FXP_RENAME = 18, SMX_FXP_READLINK = 19, SMX_FXP_SYMLINK = 20,
    SMX_FXP_STATUS = 101, SMX_FXP_HANDLE = 102, SMX_FXP_DATA = 103, SMX_FXP_NAME = 104,
    SMX_FXP_ATTRS = 105, SMX_FXP_EXTENDED = 200, SMX_FXP_EXTENDED_REPLY = 201
};

enum smx_sftp_status {
    SMX_FX_OK = 0, SMX_FX_EOF = 1, SMX_FX_NO_SUCH_FILE = 2, SMX_FX_PERMISSION_DENIED = 3,
    SMX_FX_FAILURE = 4, SMX_FX_BAD_MESSAGE = 5, SMX_FX_NO_CONNECTION = 6,
    SMX_FX_CONNECTION_LOST = 7, SMX_FX_OP_UNSUPPORTED = 8,
    /* later drafts; some servers send them in v3 */
    SMX_FX_INVALID_HANDLE = 9, SMX_FX_NO_SUCH_PATH = 10, SMX_FX_FILE_ALREADY_EXISTS = 11,
    SMX_FX_WRITE_PROTECT = 12, SMX_FX_NO_MEDIA = 13, SMX_FX_NO_SPACE_ON_FILESYSTEM = 14,
    SMX_FX_QUOTA_EXCEEDED = 15
};

/* pflags of SSH_FXP_OPEN */
#define SMX_FXF_READ 0x01u
#define SMX_FXF_WRITE 0x02u
#define SMX_FXF_APPEND 0x04u
#define SMX_FXF_CREAT 0x08u
#define SMX_FXF_TRUNC 0x10u
#define SMX_FXF_EXCL 0x20u

/* attribute flags */
#define SMX_FXA_SIZE 0x01u
#define SMX_FXA_UIDGID 0x02u
#define SMX_FXA_PERMISSIONS 0x04u
#define SMX_FXA_ACMODTIME 0x08u
#define SMX_FXA_EXTENDED 0x80000000u

/* The largest packet accepted from a server: OpenSSH's sftp-server sends at most 256 KiB. */
#define SMX_SFTP_MAX_PACKET (1024u * 1024u)

typedef struct smx_sftp_attrs {
    uint32_t flags;
    uint64_t size;
    uint32_t uid, gid, perm, atime, mtime;
} smx_sftp_attrs;

/* S_IFMT bits of perm (the server sends POSIX st_mode). */
#define SMX_SFTP_IS_DIR(a) (((a)->flags & SMX_FXA_PERMISSIONS) && ((a)->perm & 0170000) == 0040000)
#define SMX_SFTP_IS_REG(a) (((a)->flags & SMX_FXA_PERMISSIONS) && ((a)->perm & 0170000) == 0100000)
#define SMX_SFTP_IS_LNK(a) (((a)->flags & SMX_FXA_PERMISSIONS) && ((a)->perm & 0170000) == 0120000)

/* ---- encoding -------------------------------------------------------------------------------- */

/* A packet being built: uint32 length, byte type, [uint32 id], fields. */
typedef struct smx_sftp_out {
    uint8_t *p;
    size_t len, cap;
    int oom;                 /* an append failed: the packet is unusable */
} smx_sftp_out;

void smx_sftp_out_begin(smx_sftp_out *o, uint8_t type, uint32_t id);
void smx_sftp_out_begin_init(smx_sftp_out *o);   /* SSH_FXP_INIT: version 3, no id */
void smx_sftp_out_u8(smx_sftp_out *o, uint8_t v);
void smx_sftp_out_u32(smx_sftp_out *o, uint32_t v);
void smx_sftp_out_u64(smx_sftp_out *o, uint64_t v);
void smx_sftp_out_str(smx_sftp_out *o, const void *s, size_t n);
void smx_sftp_out_cstr(smx_sftp_out *o, const char *s);
void smx_sftp_out_attrs(smx_sftp_out *o, const smx_sftp_attrs *a);
/* Fills in the length; 0, or SMX_ENOMEM if any append failed. extra: payload bytes the caller
 * sends right after the packet (a WRITE's data), counted in the length but not stored. */
int smx_sftp_out_end(smx_sftp_out *o, size_t extra);
void smx_sftp_out_free(smx_sftp_out *o);

/* ---- decoding -------------------------------------------------------------------------------- */

typedef struct smx_sftp_in {
    const uint8_t *p;
    size_t n;
    int bad;                 /* a read ran past the end: every later read yields 0 */
} smx_sftp_in;

uint8_t smx_sftp_in_u8(smx_sftp_in *in);
uint32_t smx_sftp_in_u32(smx_sftp_in *in);
uint64_t smx_sftp_in_u64(smx_sftp_in *in);
/* A string: points into the packet (not NUL-terminated); NULL and *len 0 when bad. */
const uint8_t *smx_sftp_in_str(smx_sftp_in *in, size_t *len);
void smx_sftp_in_attrs(smx_sftp_in *in, smx_sftp_attrs *a);

/* A decoded reply. Pointers point into the packet. */
typedef struct smx_sftp_reply {
    uint8_t type;
    uint32_t id;
    uint32_t status;                 /* STATUS */
    const uint8_t *msg; size_t msg_len;     /* STATUS message */
    const uint8_t *data; size_t data_len;   /* HANDLE, DATA; EXTENDED_REPLY: the rest */
    smx_sftp_attrs attrs;            /* ATTRS */
    uint32_t count;                  /* NAME: entries, read with smx_sftp_name_next */
    smx_sftp_in names;
} smx_sftp_reply;

/* Decodes one packet body (after the uint32 length): 0, or SMX_EINVAL when it is malformed. */
int smx_sftp_parse_reply(const uint8_t *body, size_t len, smx_sftp_reply *r);

typedef struct smx_sftp_name {
    const uint8_t *name; size_t name_len;
    const uint8_t *longname; size_t longname_len;
    smx_sftp_attrs attrs;
} smx_sftp_name;

/* The next NAME entry: 1, 0 at the end, SMX_EINVAL when malformed. */
int smx_sftp_name_next(smx_sftp_reply *r, smx_sftp_name *out);

/* The VERSION packet: version and each extension pair through cb (name, data). 0 or EINVAL. */
int smx_sftp_parse_version(const uint8_t *body, size_t len, uint32_t *version,
                           void (*cb)(void *ud, const char *name, size_t nlen, const uint8_t *data,
                                      size_t dlen),
                           void *ud);

/* limits@openssh.com reply payload: max packet, read, write lengths and open handles. */
typedef struct smx_sftp_limits {
    uint64_t packet, read, write, handles;
} smx_sftp_limits;
int smx_sftp_parse_limits(const uint8_t *data, size_t len, smx_sftp_limits *out);

/* "no such file", "permission denied", "no space left on device", ...: static storage. A
 * server's own message is used by the caller when the code says no more than "failure". */
const char *smx_sftp_status_text(uint32_t status);

#endif
