"""sshmux upload / download / run-script against a real OpenSSH sshd (its sftp-server, which
offers limits@openssh.com: 261120-byte blocks) and against AsyncSSH's SFTP server (no limits@:
32 KiB blocks; standard SSH_FXP_SYMLINK argument order where OpenSSH's is reversed).

Every transfer is checked by sha256 on both ends; block-boundary sizes, a 1 GiB file, trees with
symlinks, -p, %h/%n on 200 aliases, the download layouts, --json, resume of a partial
destination, the errors a server reports (no such file, permission denied, is a directory), usage
errors and the exit statuses of files-spec (0 / 1 / 2 / 255).

The login is the fleet user (a throwaway non-root user when the suite runs as root), so file
permissions are enforced by the server; the "remote" files live in the test's workdir, in
directories that user owns."""
import glob
import hashlib
import os
import pwd
import re
import shutil
import stat
import time

from common import *  # noqa: F403

BLOCK_OPENSSH = 261120     # sftp-server's limits@openssh.com max-read/write-length
BLOCK_DEFAULT = 32768      # without limits@
PARTIAL = ".sshmux-partial"
LINE_RE = r"^{host}: (\d+) files?, (\d+) bytes in [0-9.]+ s \([0-9.]+ MB/s\)$"


# ------------------------------------------------------------------ helpers (shared with
# test_faults_files.py)
def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                return h.hexdigest()
            h.update(b)


def make_file(path, size, mode=None):
    """A file of `size` random bytes (big ones: 1 MiB of random data repeated, each MiB stamped
    with its index, so no two blocks are equal and nothing is sparse); returns its sha256."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    h = hashlib.sha256()
    block = bytearray(os.urandom(min(size, 1 << 20)))
    with open(path, "wb") as f:
        for i in range(0, size, 1 << 20):
            block[:8] = i.to_bytes(8, "little")[:len(block)]
            chunk = block[:min(1 << 20, size - i)]
            f.write(chunk)
            h.update(chunk)
    if mode is not None:
        os.chmod(path, mode)
    return h.hexdigest()


def partials(root):
    """Every *.sshmux-partial below root."""
    return sorted(glob.glob(os.path.join(root, "**", "*" + PARTIAL), recursive=True))


def tree_state(root, times=False):
    """relpath -> description of every entry below root: ("dir", mode), ("file", mode, sha256),
    ("link", target); with times, files and dirs also carry their mtime in whole seconds (not
    the atime: relatime moves it when the file is read, as the hashing here does)."""
    out = {}
    for d, dirs, files in os.walk(root):
        for name in dirs + files:
            p = os.path.join(d, name)
            st = os.lstat(p)
            rel = os.path.relpath(p, root)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(p))
                continue
            t = (int(st.st_mtime),) if times else ()
            kind = ("dir",) if stat.S_ISDIR(st.st_mode) else ("file",)
            extra = () if stat.S_ISDIR(st.st_mode) else (sha256_file(p),)
            out[rel] = kind + (oct(stat.S_IMODE(st.st_mode)),) + extra + t
    return out


def no_modes(state):
    """tree_state without modes and times (what a transfer without -p must keep)."""
    return {k: ("file", v[2]) if v[0] == "file" else v[:1] if v[0] == "dir" else v
            for k, v in state.items()}


class FilesFleet(Fleet):
    """Fleet whose login user owns directories under workdir/remote (the remote side)."""

    def __init__(self, n=5, **kw):
        super().__init__(n=n, **kw)
        pw = pwd.getpwnam(self.user)
        self.uid, self.gid = pw.pw_uid, pw.pw_gid
        os.makedirs(self.rpath(), mode=0o755, exist_ok=True)
        os.chmod(self.rpath(), 0o755)

    def rpath(self, *parts):
        return os.path.join(self.wd.path, "remote", *parts)

    def rdir(self, name, owned=True):
        """A fresh remote directory, owned by the login user unless owned=False (then root's,
        0755: the login user cannot write in it when it is not root)."""
        p = self.rpath(name)
        shutil.rmtree(p, ignore_errors=True)
        os.makedirs(p, mode=0o755)
        if owned:
            self.chown(p)
        return p

    def chown(self, path):
        for d, dirs, files in os.walk(path):
            for n in [d] + [os.path.join(d, x) for x in dirs + files]:
                os.lchown(n, self.uid, self.gid)
        os.lchown(path, self.uid, self.gid)

    def ldir(self, name):
        """A fresh local directory path (not created: download must create it)."""
        p = os.path.join(self.wd.path, "local", name)
        shutil.rmtree(p, ignore_errors=True)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        return p

    def up(self, *args, **kw):
        return self.run(*args, sub="upload", **kw)

    def down(self, *args, **kw):
        return self.run(*args, sub="download", **kw)

    def script(self, *args, **kw):
        return self.run(*args, sub="run-script", **kw)


def rows_by_host(r):
    return {x["host"]: x for x in json_lines(r.stdout)}


def check_file_entries(row, expect):
    """row["files"] against expect: [(local, remote, size)], in any order; each entry moved its
    whole size, from 0, without error, and carries seconds and mbps."""
    got = sorted(row["files"], key=lambda e: (e["local"], e["remote"]))
    check_eq([(e["local"], e["remote"], e["size"]) for e in got], sorted(expect),
             f"{row['host']}: files (local, remote, size)")
    for e in got:
        check_eq((e["bytes"], e["resumed_from"], e["error"]), (e["size"], 0, None),
                 f"{row['host']}: {e['remote']}: bytes, resumed_from, error")
        check(isinstance(e["seconds"], (int, float)) and e["seconds"] >= 0, e)
        check(isinstance(e["mbps"], (int, float)) and e["mbps"] >= 0, e)
    check_eq(row["bytes"], sum(s for _, _, s in expect), f"{row['host']}: bytes")


def check_resumed(r, have, size):
    """A --resume run that went well and continued a partial of `have` bytes: its first file
    entry resumed inside that partial and moved only the rest. Returns the entry."""
    check_rc(r, 0)
    e = json_lines(r.stdout)[0]["files"][0]
    check(0 < e["resumed_from"] <= have, f"resumed_from {e['resumed_from']} (partial {have})")
    check_eq(e["bytes"], size - e["resumed_from"], "bytes moved after resuming")
    return e


def check_failed_row(row, needle):
    """A host whose transfer failed: not ok, stage sftp, the message contains needle."""
    check(row["ok"] is False, f"{row['host']} should have failed: {row}")
    check(row["error"] is not None, f"{row['host']}: no error: {row}")
    check_eq(row["error"]["stage"], "sftp", f"{row['host']}: stage")
    check_in(needle, row["error"]["message"], f"{row['host']}: error message")


F = None


def fleet():
    global F
    if F is None:
        F = FilesFleet(n=5)
    return F


# ------------------------------------------------------------------ sizes, both ways
def test_sizes_both_ways():
    # 0, 1, one block, one block + 1, two blocks, a few MiB: up in one run (several LOCALs into
    # an existing directory), down in one run (several REMOTEs), each file compared by sha256.
    f = fleet()
    sizes = {"empty": 0, "one": 1, "block": BLOCK_OPENSSH, "block1": BLOCK_OPENSSH + 1,
             "twoblocks": 2 * BLOCK_OPENSSH, "small32k": BLOCK_DEFAULT,
             "mib3": 3 * 1024 * 1024 + 17}
    src = {n: f.wd.file(f"sizes/{n}") for n in sizes}
    sums = {n: make_file(src[n], s) for n, s in sizes.items()}
    rd = f.rdir("sizes")
    r = f.up("--json", "-w", "h0001", *src.values(), rd, timeout=120)
    check_rc(r, 0)
    row = rows_by_host(r)["h0001"]
    check_eq((row["ok"], row["error"]), (True, None))
    check_file_entries(row, [(src[n], os.path.join(rd, n), s) for n, s in sizes.items()])
    check_eq({n: sha256_file(os.path.join(rd, n)) for n in sizes}, sums, "uploaded sha256")
    check_eq(partials(rd), [], "partial files left")
    ld = f.ldir("sizes-down")
    r = f.down("--json", "-w", "h0001", *[os.path.join(rd, n) for n in sizes], ld, timeout=120)
    check_rc(r, 0)
    row = rows_by_host(r)["h0001"]
    check_file_entries(row, [(os.path.join(ld, "h0001", n), os.path.join(rd, n), s)
                             for n, s in sizes.items()])
    check_eq({n: sha256_file(os.path.join(ld, "h0001", n)) for n in sizes}, sums,
             "downloaded sha256")
    check_eq(sorted(os.listdir(os.path.join(ld, "h0001"))), sorted(sizes), "nothing else")


def test_every_aead_cipher_both_ways():
    # Each AEAD cipher on its own, a few MiB each way, compared by sha256: in the mbedTLS build
    # they are libssh-patches 0021 (chacha20-poly1305 from libsodium) and 0022 (AES-GCM with
    # AES-NI, four blocks per step: 17 bytes over whole blocks exercise its tail), where a
    # wrong byte or tag fails the transfer or the sum against a real OpenSSH peer.
    f = fleet()
    size = 3 * 1024 * 1024 + 17
    src = f.wd.file("ciphers/data")
    want = make_file(src, size)
    for cipher in ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com",
                   "chacha20-poly1305@openssh.com"):
        rd = f.rdir("cipher-" + cipher.split("@")[0])
        r = f.up("--json", "-o", f"Ciphers={cipher}", "-w", "h0001", src, rd, timeout=120)
        check_rc(r, 0, f"upload with {cipher}")
        check_eq(sha256_file(os.path.join(rd, "data")), want, f"uploaded sha256 ({cipher})")
        ld = f.ldir("cipher-down-" + cipher.split("@")[0])
        r = f.down("--json", "-o", f"Ciphers={cipher}", "-w", "h0001",
                   os.path.join(rd, "data"), ld, timeout=120)
        check_rc(r, 0, f"download with {cipher}")
        check_eq(sha256_file(os.path.join(ld, "h0001", "data")), want,
                 f"downloaded sha256 ({cipher})")
        r = f.run("--json", "-o", f"Ciphers={cipher}", "-w", "h0001", "true")
        check_rc(r, 0)
        check_eq(json_lines(r.stdout)[0]["cipher"], cipher, "negotiated cipher")


def sanitized():
    """True when $SSHMUX is an ASan build (ctest says so; else look for the runtime's symbol)."""
    flag = os.environ.get("SSHMUX_SANITIZE")
    if flag is not None:
        return flag.upper() in ("ON", "1", "TRUE", "YES")
    with open(fixture.sshmux_bin(), "rb") as fh:
        return b"__asan_init" in fh.read()


def primary_build():
    """The OpenSSL build without sanitizers: the one that moves the full sizes. The suite runs
    once per build (OpenSSL, mbedTLS, ASan); the others take the same code paths at smaller
    sizes, to keep `make test` short."""
    return not sanitized() and os.environ.get("SSHMUX_CRYPTO", "openssl") == "openssl"


def test_one_gib_file():
    # 1 GiB, up and down; the mbedTLS and ASan builds move 128 MiB (the same code paths: the
    # suite runs once per build and must stay short)
    f = fleet()
    size = (1 << 30) if primary_build() else (128 << 20)
    free = shutil.disk_usage(f.wd.path).free
    if free < 3 * size:
        skip(f"a {size >> 20} MiB transfer needs {3 * size >> 20} MiB free in {f.wd.path}, "
             f"have {free >> 20} MiB")
    src = f.wd.file("big/src.bin")
    t0 = time.monotonic()
    want = make_file(src, size)
    rd = f.rdir("big")
    dst = os.path.join(rd, "big.bin")
    ld = f.ldir("big-down")
    try:
        t1 = time.monotonic()
        r = f.up("--json", "h0001", src, dst, timeout=300)
        t2 = time.monotonic()
        check_rc(r, 0)
        row = json_lines(r.stdout)[0]
        check_eq((row["bytes"], row["files"][0]["size"], row["files"][0]["bytes"]),
                 (size, size, size), "bytes in the row")
        check_eq(os.path.getsize(dst), size, "remote size")
        check_eq(sha256_file(dst), want, "remote sha256")
        t3 = time.monotonic()
        r = f.down("--json", "h0001", dst, ld, timeout=300)
        t4 = time.monotonic()
        check_rc(r, 0)
        check_eq(sorted(os.listdir(ld)), ["big.bin"], "single TARGET: LOCALDIR/<name>")
        check_eq(sha256_file(os.path.join(ld, "big.bin")), want, "downloaded sha256")
        print(f"    {size >> 20} MiB: write {t1 - t0:.1f}s, up {t2 - t1:.1f}s, down {t4 - t3:.1f}s, "
              f"total {time.monotonic() - t0:.1f}s")
    finally:
        for p in (src, dst, os.path.join(ld, "big.bin")):
            if os.path.exists(p):
                os.unlink(p)


def test_odd_block_size_and_requests():
    # --block-size and --requests change only how the file is cut, never what arrives
    f = fleet()
    src = f.wd.file("odd/src")
    want = make_file(src, 1000003)
    rd = f.rdir("odd")
    for bs, rq in (("4097", "1"), ("1000000", "3"), ("65536", "200")):
        r = f.up("--block-size", bs, "--requests", rq, "--fsync", "h0001", src, rd + "/x",
                 timeout=60)
        check_rc(r, 0, f"--block-size {bs} --requests {rq}")
        check_eq(sha256_file(rd + "/x"), want, f"--block-size {bs} --requests {rq}: up")
        ld = f.ldir("odd-down")
        r = f.down("--block-size", bs, "--requests", rq, "--fsync", "h0001", rd + "/x", ld)
        check_rc(r, 0)
        check_eq(sha256_file(ld + "/x"), want, f"--block-size {bs} --requests {rq}: down")


# ------------------------------------------------------------------ destinations and layouts
def test_upload_destinations():
    f = fleet()
    a, b = f.wd.file("dest/a.txt", "alpha\n"), f.wd.file("dest/b.txt", "beta\n")
    rd = f.rdir("dest")
    # REMOTE that does not exist: the file's new name
    check_rc(f.up("h0001", a, rd + "/renamed.txt"), 0)
    # REMOTE an existing directory, with and without a trailing slash: LOCAL's basename inside
    os.makedirs(rd + "/sub")
    f.chown(rd + "/sub")
    check_rc(f.up("h0001", a, rd + "/sub"), 0)
    check_rc(f.up("h0001", b, rd + "/sub/"), 0)
    # an existing file is replaced
    check_rc(f.up("h0001", b, rd + "/renamed.txt"), 0)
    got = {os.path.relpath(p, rd): open(p).read()
           for p in glob.glob(rd + "/**", recursive=True) if os.path.isfile(p)}
    check_eq(got, {"renamed.txt": "beta\n", "sub/a.txt": "alpha\n", "sub/b.txt": "beta\n"})
    # the login user owns what it wrote
    check_eq(os.stat(rd + "/sub/a.txt").st_uid, f.uid, "owner")


def test_home_relative_paths():
    # ~/ is the login's home (where the SFTP server starts), both ways
    f = fleet()
    home = pwd.getpwnam(f.user).pw_dir
    x = f.wd.file("tilde/tilde-x.txt", "tilde\n")
    for p in (home + "/tilde-x.txt", home + "/tilde-y.txt"):
        if os.path.exists(p):
            os.unlink(p)
    check_rc(f.up("h0001", x, "~/"), 0)
    check_rc(f.up("h0001", x, "~/tilde-y.txt"), 0)
    check_eq((open(home + "/tilde-x.txt").read(), open(home + "/tilde-y.txt").read()),
             ("tilde\n", "tilde\n"), "uploaded into the home directory")
    ld = f.ldir("tilde-down")
    check_rc(f.down("-w", "h0001", "~/tilde-y.txt", ld), 0)
    check_eq(open(ld + "/h0001/tilde-y.txt").read(), "tilde\n")
    os.unlink(home + "/tilde-x.txt")
    os.unlink(home + "/tilde-y.txt")


def test_download_layouts():
    f = fleet()
    rd = f.rdir("layout")
    one = os.path.join(rd, "one.txt")
    with open(one, "w") as fh:
        fh.write("one\n")
    # -w: LOCALDIR/<host>/<name>, LOCALDIR created; also with a single host in -w
    ld = f.ldir("lay-w")
    check_rc(f.down("-w", "h0001,h0002", one, ld), 0)
    check_eq(sorted(glob.glob(ld + "/**", recursive=True)),
             [ld + "/", ld + "/h0001", ld + "/h0001/one.txt", ld + "/h0002",
              ld + "/h0002/one.txt"], "LOCALDIR/<host>/<name>")
    check_eq(open(ld + "/h0002/one.txt").read(), "one\n")
    ld = f.ldir("lay-w1")
    check_rc(f.down("-w", "h0003", one, ld), 0)
    check_eq(os.listdir(ld), ["h0003"], "-w with one host still makes LOCALDIR/<host>")
    # --suffix: LOCALDIR/<name>.<host>
    ld = f.ldir("lay-suffix")
    check_rc(f.down("--suffix", "-w", "h0001,h0002", one, ld), 0)
    check_eq(sorted(os.listdir(ld)), ["one.txt.h0001", "one.txt.h0002"], "--suffix")
    # a single TARGET: LOCALDIR/<name>, as scp; a missing LOCALDIR (and its parent) is created
    ld = f.ldir("lay-target") + "/deeper"
    check_rc(f.down("h0001", one, ld), 0)
    check_eq(os.listdir(ld), ["one.txt"], "single TARGET")
    check_eq(open(ld + "/one.txt").read(), "one\n")


# ------------------------------------------------------------------ trees, symlinks, -p
T_ATIME, T_MTIME = 1000000000, 1234567890   # 2001-09-09, 2009-02-13


def make_tree(root):
    """A tree with nested and empty directories, odd modes, old times and three kinds of
    symlink (relative, absolute, dangling)."""
    os.makedirs(root + "/sub/deeper")
    os.makedirs(root + "/emptydir")
    with open(root + "/a.txt", "w") as fh:
        fh.write("a\n")
    make_file(root + "/sub/b.bin", 100000)
    open(root + "/sub/deeper/c", "w").close()
    make_file(root + "/sub/deeper/d.bin", BLOCK_OPENSSH + 5)
    os.symlink("a.txt", root + "/link")
    os.symlink("/etc/hostname", root + "/sub/abs")
    os.symlink("../nowhere", root + "/sub/dangling")
    for p, m in (("a.txt", 0o640), ("sub/b.bin", 0o600), ("sub/deeper/c", 0o751),
                 ("sub/deeper/d.bin", 0o644), ("sub", 0o750), ("sub/deeper", 0o711),
                 ("emptydir", 0o755)):
        os.chmod(os.path.join(root, p), m)
    for d, dirs, files in os.walk(root, topdown=False):   # children first: dirs keep theirs
        for n in files:
            if not os.path.islink(os.path.join(d, n)):
                os.utime(os.path.join(d, n), (T_ATIME, T_MTIME))
        for n in dirs:
            os.utime(os.path.join(d, n), (T_ATIME, T_MTIME + 60))


def test_recursive_tree_with_symlinks_and_p():
    f = fleet()
    tree = f.wd.path + "/trees/tree"
    shutil.rmtree(tree, ignore_errors=True)
    make_tree(tree)
    want = tree_state(tree, times=True)
    rd = f.rdir("trees")
    r = f.up("--json", "-r", "-p", "-w", "h0001", tree, rd, timeout=60)
    check_rc(r, 0)
    check_eq(tree_state(rd + "/tree", times=True), want, "uploaded tree (-r -p)")
    row = rows_by_host(r)["h0001"]
    check_eq(row["bytes"], 2 + 100000 + BLOCK_OPENSSH + 5, "bytes of the regular files")
    check_eq(partials(rd), [])
    # down from two hosts: LOCALDIR/<host>/tree/...
    ld = f.ldir("trees-down")
    r = f.down("-r", "-p", "-w", "h0001,h0002", rd + "/tree", ld, timeout=60)
    check_rc(r, 0)
    for h in ("h0001", "h0002"):
        check_eq(tree_state(os.path.join(ld, h, "tree"), times=True), want, f"{h}: tree")
    # without -p the content and the links still come through
    rd2 = f.rdir("trees-nop")
    check_rc(f.up("-r", "h0001", tree, rd2), 0)
    check_eq(no_modes(tree_state(rd2 + "/tree")), no_modes(want), "uploaded tree (-r)")
    # a directory without -r is refused, and says why
    r = f.up("--json", "-w", "h0001", tree, f.rdir("trees-nor"))
    check(r.returncode in (1, 2), f"directory without -r: exit {r.returncode}\n{r.stderr}")
    check_match(r"-r|directory", r.stderr + r.stdout, "why a directory needs -r")


def test_p_single_file_both_ways_and_mode():
    f = fleet()
    src = f.wd.file("pfile/p.txt", "keep me\n", mode=0o604)
    os.utime(src, (T_ATIME, T_MTIME))
    rd = f.rdir("pfile")
    check_rc(f.up("-p", "h0001", src, rd), 0)
    st = os.stat(rd + "/p.txt")
    check_eq((oct(stat.S_IMODE(st.st_mode)), int(st.st_atime), int(st.st_mtime)),
             (oct(0o604), T_ATIME, T_MTIME), "upload -p: mode, atime, mtime")
    ld = f.ldir("pfile-down")
    check_rc(f.down("-p", "h0001", rd + "/p.txt", ld), 0)
    st = os.stat(ld + "/p.txt")
    check_eq((oct(stat.S_IMODE(st.st_mode)), int(st.st_atime), int(st.st_mtime)),
             (oct(0o604), T_ATIME, T_MTIME), "download -p: mode, atime, mtime")
    # without -p the file is new (its mtime is now); --mode sets the permissions
    check_rc(f.up("--mode", "0640", "h0001", src, rd + "/m.txt"), 0)
    st = os.stat(rd + "/m.txt")
    check_eq(oct(stat.S_IMODE(st.st_mode)), oct(0o640), "--mode 0640")
    check(abs(st.st_mtime - time.time()) < 120, f"mtime without -p: {st.st_mtime}")


# ------------------------------------------------------------------ %h %n on 200 hosts
def test_percent_tokens_200_hosts():
    n = 200 if primary_build() else 50
    f = FilesFleet(n=n)
    src = f.wd.file("pct/payload", "payload\n")
    rd = f.rdir("pct")
    r = f.up("-f", "64", "-w", f.hostlist(), src, rd + "/%h.%n.txt", timeout=240)
    check_rc(r, 0)
    want = sorted(f"h{i + 1:04d}.{i}.txt" for i in range(n))
    check_eq(sorted(os.listdir(rd)), want, "one file per host, named by %h and %n")
    check(all(open(os.path.join(rd, x)).read() == "payload\n" for x in want), "contents")
    # streamed: one line per host on stdout, the summary on stderr
    lines = r.stdout.splitlines()
    check_eq(len(lines), n, "one stdout line per host")
    for h in ("h0001", f"h{n:04d}"):
        m = check_match(LINE_RE.format(host=h), r.stdout, f"{h}'s line")
        check_eq((m.group(1), m.group(2)), ("1", "8"), f"{h}: files, bytes")
    check_match(rf"^sshmux: {n} hosts: {n} ok, 0 failed in [0-9.]+ s; {8 * n} bytes ",
                r.stderr, "summary")
    # and back: LOCALDIR/<host>/<name> for every host, with %h/%n expanded per host
    ld = f.ldir("pct-down")
    r = f.down("--json", "-f", "64", "-w", f.hostlist(), rd + "/%h.%n.txt", ld, timeout=240)
    check_rc(r, 0)
    rows = rows_by_host(r)
    check_eq(len(rows), n)
    check_eq([h for h, x in rows.items() if not x["ok"]], [], "failed hosts")
    got = sorted(os.path.relpath(p, ld) for p in glob.glob(ld + "/*/*"))
    check_eq(got, sorted(f"h{i + 1:04d}/h{i + 1:04d}.{i}.txt" for i in range(n)))
    check_eq(rows["h0042"]["files"][0]["remote"], rd + "/h0042.41.txt", "remote, expanded")


def test_percent_percent():
    f = fleet()
    src = f.wd.file("pp/x", "x")
    rd = f.rdir("pp")
    check_rc(f.up("-w", "h0002", src, rd + "/100%%-%h"), 0)
    check_eq(os.listdir(rd), ["100%-h0002"], "%% is a literal %")


# ------------------------------------------------------------------ JSON and output
def test_json_row_fields():
    f = fleet()
    a = f.wd.file("js/a", "12345")
    b = f.wd.file("js/b", "1234567890")
    rd = f.rdir("js")
    for d in ("h0001", "h0002"):
        os.makedirs(os.path.join(rd, d), exist_ok=True)
        f.chown(os.path.join(rd, d))
    r = f.up("--json", "-w", "h0001,h0002", a, b, rd + "/%h/", timeout=60)
    check_rc(r, 0)
    rows = rows_by_host(r)
    check_eq(sorted(rows), ["h0001", "h0002"])
    for h, row in rows.items():
        for k in ("host", "target", "user", "hostname", "port", "ok", "exit_code", "error",
                  "timing_ms", "attempts", "bytes", "files"):
            check(k in row, f"{h}: missing {k}: {row}")
        check_eq((row["ok"], row["error"], row["user"], row["port"]),
                 (True, None, f.user, f.sshd.port), h)
        check_file_entries(row, [(a, f"{rd}/{h}/a", 5), (b, f"{rd}/{h}/b", 10)])
        check(isinstance(row["timing_ms"]["total"], (int, float)), row["timing_ms"])


def test_stream_and_gather_output():
    f = fleet()
    src = f.wd.file("out/x.bin", "0123456789")
    rd = f.rdir("out")
    r = f.up("-w", "h[0001-0003]", src, rd + "/%h")
    check_rc(r, 0)
    for h in ("h0001", "h0002", "h0003"):
        m = check_match(LINE_RE.format(host=h), r.stdout, f"{h}'s line")
        check_eq((m.group(1), m.group(2)), ("1", "10"), h)
    check_match(r"^sshmux: 3 hosts: 3 ok, 0 failed in [0-9.]+ s; 30 bytes \(", r.stderr)
    r = f.up("-q", "-w", "h[0001-0003]", src, rd + "/%h")
    check_rc(r, 0)
    check("sshmux: 3 hosts" not in r.stderr, f"-q keeps the summary off:\n{r.stderr}")
    r = f.up("-b", "-w", "h[0001-0003]", src, rd + "/%h")
    check_rc(r, 0)
    check_in("h[0001-0003]", r.stdout, "-b gathers the three identical outcomes")


# ------------------------------------------------------------------ errors and exit statuses
def test_remote_errors():
    f = fleet()
    if f.user == "root":
        skip("the login is root: the server would not refuse it anything")
    rd = f.rdir("errs")
    with open(rd + "/secret", "w") as fh:
        fh.write("no\n")
    os.chmod(rd + "/secret", 0o000)
    os.makedirs(rd + "/adir/x")
    f.chown(rd)
    locked = f.rdir("errs-locked", owned=False)     # root's 0755: not writable for the user
    x = f.wd.file("errs-src/x", "x\n")
    ld = f.ldir("errs-down")
    cases = [
        ("download missing", f.down, [rd + "/missing", ld], rd + "/missing: no such file"),
        ("download mode 000", f.down, [rd + "/secret", ld], rd + "/secret: permission denied"),
        ("download a directory", f.down, [rd + "/adir", ld], rd + "/adir: is a directory"),
        ("upload into root's dir", f.up, [x, locked + "/x"], "permission denied"),
        ("upload onto a directory", f.up, [x, rd + "/adir/"], rd + "/adir/x"),
        ("upload, parent missing", f.up, [x, rd + "/nodir/x"], "no such file"),
    ]
    for what, fn, args, needle in cases:
        r = fn("--json", "-w", "h0001", *args)
        check_rc(r, 1, what)
        row = rows_by_host(r)["h0001"]
        check_failed_row(row, needle)
        check(any(e["error"] for e in row["files"]) or not row["files"], f"{what}: {row}")
        r = fn("-w", "h0001", *args)
        check_rc(r, 1, what)
        check_match(r"^h0001: sshmux: sftp: .*" + re.escape(needle), r.stderr, what)
        check_match(r"1 hosts?: 0 ok, 1 failed", r.stderr, f"{what}: summary")
    check_eq(os.listdir(locked), [], "nothing left in the unwritable directory")
    check_eq(partials(rd), [], "partial files left")
    check_eq([p for p in glob.glob(ld + "/**", recursive=True) if not os.path.isdir(p)], [],
             "failed downloads leave no files")


def test_exit_statuses():
    f = fleet()
    rd = f.rdir("rc")
    with open(rd + "/h0001.txt", "w") as fh:
        fh.write("only h0001 has it\n")
    ld = f.ldir("rc-down")
    # 1: a transfer failed on one host, the other is fine
    r = f.down("--json", "-w", "h0001,h0002", rd + "/%h.txt", ld)
    check_rc(r, 1)
    rows = rows_by_host(r)
    check_eq((rows["h0001"]["ok"], rows["h0002"]["ok"]), (True, False))
    check_failed_row(rows["h0002"], rd + "/h0002.txt: no such file")
    check_eq(open(ld + "/h0001/h0001.txt").read(), "only h0001 has it\n")
    r = f.down("-w", "h0001,h0002", rd + "/%h.txt", f.ldir("rc-down2"))
    check_rc(r, 1)
    check_match(LINE_RE.format(host="h0001"), r.stdout)
    check_match(rf"^h0002: sshmux: sftp: {re.escape(rd)}/h0002.txt: no such file", r.stderr)
    check_match(r"^sshmux: 2 hosts: 1 ok, 1 failed", r.stderr)
    # 255 beats 1: one host unreachable, one transfer failed
    f.add("gone", HostName=fixture.LOOPBACK, Port=fixture.refused_port(), User=f.user,
          IdentityFile=f.keys.ed25519, UserKnownHostsFile=f.kh)
    r = f.down("--json", "-w", "h0001,h0002,gone", rd + "/%h.txt", f.ldir("rc-down3"))
    check_rc(r, 255)
    rows = rows_by_host(r)
    check_eq(sorted(rows), ["gone", "h0001", "h0002"])
    check_eq(rows["gone"]["error"]["stage"], "connect")
    x = f.wd.file("rc/x", "x")
    check_rc(f.up("-w", "gone", x, rd), 255, "upload to an unreachable host")


def test_usage_errors():
    f = fleet()
    x = f.wd.file("usage/x", "x")
    for what, sub, args in [
        ("upload without files", "upload", ["-w", "h0001"]),
        ("upload without REMOTE", "upload", ["-w", "h0001", x]),
        ("upload TARGET without REMOTE", "upload", ["h0001", x]),
        ("download without LOCALDIR", "download", ["-w", "h0001", "/etc/hostname"]),
        ("download nothing", "download", ["h0001"]),
        ("run-script without a script", "run-script", ["-w", "h0001"]),
        ("unknown option", "upload", ["--no-such-option", "-w", "h0001", x, "/tmp"]),
        ("--block-size 0", "upload", ["--block-size", "0", "-w", "h0001", x, "/tmp"]),
        ("--requests x", "upload", ["--requests", "x", "-w", "h0001", x, "/tmp"]),
        ("--mode 999", "upload", ["--mode", "999", "-w", "h0001", x, "/tmp"]),
    ]:
        r = f.run(*args, sub=sub)
        check_rc(r, 2, what)
        check(r.stderr.strip() != "", f"{what}: no message")
    # a local file that does not exist: named, before any host is contacted
    before = f.sshd.log_text().count("Accepted publickey")
    r = f.up("-w", "h0001", x, f.wd.path + "/usage/not-there", f.rdir("usage"))
    check_rc(r, 2, "missing local file")
    check_in(f.wd.path + "/usage/not-there", r.stderr, "the missing file is named")
    check_match(r"(?i)no such file", r.stderr)
    check_eq(f.sshd.log_text().count("Accepted publickey"), before, "no login for a usage error")
    check_eq(os.listdir(f.rpath("usage")), [], "nothing uploaded")


# ------------------------------------------------------------------ resume of a partial
def test_resume_partial_upload():
    f = fleet()
    size = 3 * 1024 * 1024 + 1001
    src = f.wd.file("res/src.bin")
    want = make_file(src, size)
    data = open(src, "rb").read()
    rd = f.rdir("res")
    dst = rd + "/dst.bin"

    def seed(path, content):
        with open(path, "wb") as fh:
            fh.write(content)
        os.lchown(path, f.uid, f.gid)

    def resume(*extra, have=None):
        r = f.up("--json", "--resume", *extra, "h0001", src, dst)
        e = check_resumed(r, have, size) if have else json_lines(r.stdout)[0]["files"][0]
        check_rc(r, 0)
        check_eq(sha256_file(dst), want, "sha256 after --resume")
        check_eq(partials(rd), [], "partial gone after the rename")
        return e

    have = 1024 * 1024 + 5
    seed(dst + PARTIAL, data[:have])
    resume(have=have)
    # a partial whose tail does not match the source: start again from 0
    os.unlink(dst)
    bad = bytearray(data[:have])
    bad[-100:] = bytes(100)
    seed(dst + PARTIAL, bytes(bad))
    e = resume()
    check_eq((e["resumed_from"], e["bytes"]), (0, size), "mismatching partial restarts")
    # --no-atomic: the destination itself is the partial
    os.unlink(dst)
    seed(dst, data[:have])
    resume("--no-atomic", have=have)
    # without --resume a partial is not trusted
    os.unlink(dst)
    seed(dst + PARTIAL, bad)
    r = f.up("--json", "h0001", src, dst)
    check_rc(r, 0)
    check_eq(json_lines(r.stdout)[0]["files"][0]["resumed_from"], 0)
    check_eq(sha256_file(dst), want)


def test_resume_partial_download():
    f = fleet()
    size = 2 * 1024 * 1024 + 333
    rd = f.rdir("resd")
    want = make_file(rd + "/file.bin", size)
    data = open(rd + "/file.bin", "rb").read()
    ld = f.ldir("resd-down")
    os.makedirs(ld)
    have = 700000
    with open(ld + "/file.bin" + PARTIAL, "wb") as fh:
        fh.write(data[:have])
    check_resumed(f.down("--json", "--resume", "h0001", rd + "/file.bin", ld), have, size)
    check_eq(sha256_file(ld + "/file.bin"), want)
    check_eq(os.listdir(ld), ["file.bin"], "the partial became the file")


# ------------------------------------------------------------------ run-script
SCRIPT = r"""#!/bin/sh
echo "argc=$#"
for a in "$@"; do printf '<%s>\n' "$a"; done
echo "self=$0"
echo "mode=$(stat -c %a "$0")"
echo oops >&2
exit "${EXIT:-3}"
"""


def my_scripts(uid):
    """/tmp/.sshmux-script-* owned by uid (other tests may run scripts meanwhile)."""
    out = []
    for p in glob.glob("/tmp/.sshmux-script-*"):
        try:
            if os.lstat(p).st_uid == uid:
                out.append(p)
        except OSError:
            pass
    return sorted(out)


def test_run_script():
    f = fleet()
    script = f.wd.file("rs/s.sh", SCRIPT, mode=0o644)   # not executable here: it need not be
    before = my_scripts(f.uid)
    args = ["a b", "it's", "$HOME", "", "-x", "*", "semi;colon"]
    r = f.script("--json", "-w", "h0001,h0002", script, *args, timeout=60)
    check_rc(r, 3, "the script's exit status")
    rows = rows_by_host(r)
    check_eq(sorted(rows), ["h0001", "h0002"])
    for h, row in rows.items():
        out = row["stdout"].splitlines()
        check_eq(out[:1 + len(args)], [f"argc={len(args)}"] + [f"<{a}>" for a in args],
                 f"{h}: arguments arrive as given")
        m = check_match(r"^self=(/tmp/\.sshmux-script-[A-Za-z0-9]{8,})$", row["stdout"], h)
        check_in("mode=700", out, f"{h}: the script is 0700")
        check_eq(row["stderr"], "oops\n", h)
        check_eq((row["exit_code"], row["ok"]), (3, False), h)
        check_eq(len(row["files"]), 1, f"{h}: the script's upload")
        check_eq(row["files"][0]["remote"], m.group(1), f"{h}: remote name")
        check_eq(row["files"][0]["size"], len(SCRIPT), h)
        check(not os.path.exists(m.group(1)), f"{h}: {m.group(1)} left behind")
    check_eq(my_scripts(f.uid), before, "script files left in /tmp")
    # streamed output; the exit status is the largest
    r = f.script("-w", "h0001", script, "x")
    check_match(r"^h0001: argc=1$", r.stdout)
    check_match(r"^h0001: oops$", r.stderr)
    check_rc(r, 3)
    r = f.script("--json", "-w", "h0001,h0002", f.wd.file("rs/ok.sh", "#!/bin/sh\necho hi\n"))
    check_rc(r, 0)
    check(all(x["stdout"] == "hi\n" and x["ok"] for x in json_lines(r.stdout)), r.stdout)
    check_eq(my_scripts(f.uid), before, "script files left in /tmp")


def test_run_script_missing_script():
    f = fleet()
    r = f.script("-w", "h0001", f.wd.path + "/rs/none.sh")
    check_rc(r, 2)
    check_in(f.wd.path + "/rs/none.sh", r.stderr)


# ------------------------------------------------------------------ AsyncSSH interop
def asyncssh_fleet():
    import asyncsshd
    f = fleet()
    srv = asyncsshd.AsyncSshd(f.wd, f.keys)
    with open(f.kh, "a") as fh:
        fh.write(srv.known_hosts_line())
    f.add("async", HostName=srv.host, Port=srv.port, User=srv.user,
          IdentityFile=f.keys.ed25519, IdentitiesOnly="yes", UserKnownHostsFile=f.kh)
    return f, srv


def test_asyncssh_interop():
    f, srv = asyncssh_fleet()
    size = 5 * BLOCK_DEFAULT + 1234
    src = f.wd.file("as/src.bin")
    want = make_file(src, size)
    rd = f.rdir("as")
    srv.clear_log()
    r = f.up("--json", "async", src, rd + "/up.bin", timeout=60)
    check_rc(r, 0)
    check_eq(sha256_file(rd + "/up.bin"), want, "upload to AsyncSSH")
    writes = srv.log_lines("write")
    check_eq((max(writes), sum(writes)), (BLOCK_DEFAULT, size),
             "no limits@: WRITEs of 32 KiB, covering the file once")
    check_eq(partials(rd), [])
    # again onto the existing file (the rename must replace it)
    want2 = make_file(src, size + 1)
    check_rc(f.up("async", src, rd + "/up.bin"), 0)
    check_eq(sha256_file(rd + "/up.bin"), want2, "replaced on AsyncSSH")
    srv.clear_log()
    ld = f.ldir("as-down")
    r = f.down("--json", "-w", "async", rd + "/up.bin", ld, timeout=60)
    check_rc(r, 0)
    check_eq(sha256_file(ld + "/async/up.bin"), want2, "download from AsyncSSH")
    reads = srv.log_lines("read")
    check_eq(max(reads), BLOCK_DEFAULT, "no limits@: READs of 32 KiB")
    # a smaller --block-size is honoured
    srv.clear_log()
    check_rc(f.up("--block-size", "8192", "async", src, rd + "/small.bin"), 0)
    check_eq(max(srv.log_lines("write")), 8192, "--block-size 8192")
    check_eq(sha256_file(rd + "/small.bin"), want2)


def test_asyncssh_tree_symlinks_and_p():
    # AsyncSSH reads SSH_FXP_SYMLINK in the draft's order (OpenSSH's sftp-server swaps the two
    # paths): links must come out pointing where they pointed, on both servers.
    f, srv = asyncssh_fleet()
    tree = f.wd.path + "/as-trees/tree"
    shutil.rmtree(tree, ignore_errors=True)
    make_tree(tree)
    want = tree_state(tree, times=True)
    rd = f.rdir("as-trees")
    check_rc(f.up("-r", "-p", "async", tree, rd, timeout=60), 0)
    check_eq(tree_state(rd + "/tree", times=True), want, "tree on AsyncSSH")
    ld = f.ldir("as-trees-down")
    check_rc(f.down("-r", "-p", "async", rd + "/tree", ld, timeout=60), 0)
    check_eq(tree_state(ld + "/tree", times=True), want, "tree from AsyncSSH")


def test_asyncssh_run_script():
    f, srv = asyncssh_fleet()
    script = f.wd.file("as-rs/s.sh", SCRIPT)
    r = f.script("--json", "async", script, "one two")
    check_rc(r, 3)
    row = json_lines(r.stdout)[0]
    check_eq(row["stdout"].splitlines()[:2], ["argc=1", "<one two>"])
    m = check_match(r"^self=(/tmp/\.sshmux-script-[A-Za-z0-9]{8,})$", row["stdout"])
    check(not os.path.exists(m.group(1)), f"{m.group(1)} left behind")


if __name__ == "__main__":
    main([v for k, v in globals().items() if k.startswith("test_")])
