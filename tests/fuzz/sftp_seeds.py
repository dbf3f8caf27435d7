#!/usr/bin/env python3
"""Writes the seeds of fuzz_sftp (tests/fuzz/corpus/sftp/): byte streams as an SFTP server sends
them, each a run of packets behind a uint32 length, shaped as OpenSSH's sftp-server shapes them.

    tests/fuzz/sftp_seeds.py            # rewrites corpus/sftp/* but openssh_capture

corpus/sftp/openssh_capture is not written here: it is OpenSSH 9.2's sftp-server's own output
(its stdout, driven over a pipe) for INIT, limits@, REALPATH, OPENDIR and two READDIRs, a
missing LSTAT, OPEN and READ to the end, FSTAT, CLOSE and READLINK.
"""
import os
import struct

FXP_VERSION, FXP_STATUS, FXP_HANDLE, FXP_DATA, FXP_NAME, FXP_ATTRS = 2, 101, 102, 103, 104, 105
FXP_EXTENDED_REPLY = 201
FXA_SIZE, FXA_UIDGID, FXA_PERMISSIONS, FXA_ACMODTIME, FXA_EXTENDED = 1, 2, 4, 8, 0x80000000


def u32(v):
    return struct.pack(">I", v)


def u64(v):
    return struct.pack(">Q", v)


def string(s):
    if isinstance(s, str):
        s = s.encode()
    return u32(len(s)) + s


def packet(ptype, rid, payload=b""):
    body = bytes([ptype]) + u32(rid) + payload
    return u32(len(body)) + body


def attrs(size=None, uid=None, perm=None, times=None, ext=()):
    flags, out = 0, b""
    if size is not None:
        flags |= FXA_SIZE
        out += u64(size)
    if uid is not None:
        flags |= FXA_UIDGID
        out += u32(uid) + u32(uid)
    if perm is not None:
        flags |= FXA_PERMISSIONS
        out += u32(perm)
    if times is not None:
        flags |= FXA_ACMODTIME
        out += u32(times) + u32(times + 1)
    if ext:
        flags |= FXA_EXTENDED
        out += u32(len(ext)) + b"".join(string(k) + string(v) for k, v in ext)
    return u32(flags) + out


def status(rid, code, msg="", lang="en", old=False):
    return packet(FXP_STATUS, rid, u32(code) + (b"" if old else string(msg) + string(lang)))


def name(rid, entries):
    return packet(FXP_NAME, rid, u32(len(entries)) +
                  b"".join(string(n) + string(ln) + a for n, ln, a in entries))


OPENSSH_EXTS = [("posix-rename@openssh.com", "1"), ("statvfs@openssh.com", "2"),
                ("fstatvfs@openssh.com", "2"), ("hardlink@openssh.com", "1"),
                ("fsync@openssh.com", "1"), ("lsetstat@openssh.com", "1"),
                ("limits@openssh.com", "1"), ("expand-path@openssh.com", "1"),
                ("copy-data", "1"), ("home-directory", "1"),
                ("users-groups-by-id@openssh.com", "1")]
T = 1700000000
FILE = dict(size=1234, uid=1000, perm=0o100644, times=T)
DIR = dict(size=4096, uid=1000, perm=0o40755, times=T)

SEEDS = {
    # INIT's answer, then limits@ (max packet 256 KiB, read and write 255 KiB, no handle limit)
    "handshake": packet(FXP_VERSION, 3, b"".join(string(k) + string(v) for k, v in OPENSSH_EXTS))
    + packet(FXP_EXTENDED_REPLY, 0, u64(262144) + u64(261120) + u64(261120) + u64(0)),
    "handshake_bare": packet(FXP_VERSION, 3),
    "realpath": name(1, [("/home/u", "/home/u", attrs())]),
    "readdir": name(2, [
        (".", "drwxr-xr-x    3 u        u            4096 Nov 14 22:13 .", attrs(**DIR)),
        ("a.txt", "-rw-r--r--    1 u        u            1234 Nov 14 22:13 a.txt",
         attrs(**FILE)),
        ("ln", "lrwxrwxrwx    1 u        u               5 Nov 14 22:13 ln",
         attrs(size=5, uid=1000, perm=0o120777, times=T)),
    ]) + status(3, 1, "End of file"),
    "upload": packet(FXP_HANDLE, 4, string(b"\0\0\0\0")) + status(5, 0, "Success")
    + status(6, 0, "Success") + status(7, 0, "Success"),
    "download": packet(FXP_ATTRS, 8, attrs(**FILE)) + packet(FXP_HANDLE, 9, string(b"\0\0\0\1"))
    + packet(FXP_DATA, 10, string(bytes(range(256)) * 4)) + status(11, 1, "End of file"),
    "errors": status(12, 2, "No such file") + status(13, 3, "Permission denied")
    + status(14, 4, "Failure") + status(15, 8, "Operation unsupported")
    + status(16, 14, "No space left on device", lang=""),
    "old_status": status(17, 1, old=True) + status(18, 4, old=True),
    "ext_attrs": packet(FXP_ATTRS, 19, attrs(size=1, ext=[("acl@x", "u::rw-"), ("", "")]))
    + name(20, [("f", "", attrs(perm=0o100600, ext=[("k@x", "v")]))]),
    # malformed: a string past the end, an extended count far past the bytes, an unknown type
    "bad": packet(FXP_HANDLE, 21, u32(0xffffffff)) + packet(FXP_ATTRS, 22, u32(FXA_EXTENDED)
    + u32(0xffffffff) + u32(0) * 4) + packet(FXP_NAME, 23, u32(0xffffffff)) + packet(7, 24),
}


def main():
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "sftp")
    os.makedirs(out, exist_ok=True)
    for fname, data in SEEDS.items():
        with open(os.path.join(out, fname), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
