"""`bench/run --files`: issue 11's file-transfer targets, on a throwaway sshd fleet on loopback.

1. single: one 1 GiB file, `sshmux upload TARGET FILE DIR/` and `sshmux download TARGET
   DIR/FILE LOCALDIR` against OpenSSH `sftp -b -` (put/get) and `scp` (SFTP protocol since
   OpenSSH 9.0), per cipher, interleaved rep by rep: throughput (MB/s = 1e6 bytes/s, from the
   wall time of the whole invocation) and client CPU s per GiB (the client's process tree,
   user+sys, measure.py).
2. fleet: 10 MiB to 200 hosts and back: sshmux upload/download -w against clush --copy/--rcopy,
   parallel-scp/parallel-slurp, pdcp/rpdcp and AsyncSSH (asyncssh_copy.py): wall time and client
   CPU; every byte verified by sha256 (each host's remote file, each downloaded file).
3. memory: sshmux's peak RSS while it uploads a 1 GiB file to 200 hosts (remote path /dev/null,
   --no-atomic: 200 GiB of copies would not fit), against the same over 1 host.

Each alias logs in as its own throwaway user whose home is a directory of its own: the peers copy
one path to every host (no per-host token), and on one machine every "host" would otherwise write
the same file. sshmux writes to the same files through %h in an absolute path. All files (sources,
remote copies, downloads) live in one directory tree on one filesystem (tmpfs /dev/shm when it
has room; --files-dir to choose), removed after use and at exit.
"""
import csv
import hashlib
import json
import os
import pwd
import re
import secrets
import shutil
import statistics
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import fleet
import fixture
import measure
import tools

CIPHERS = ["aes128-gcm@openssh.com", "chacha20-poly1305@openssh.com"]
KEX = tools.KEX
MIB, GIB = 1 << 20, 1 << 30
PAYLOAD, DL = "payload", "dl"   # fleet: file names, relative to each host's home
SINGLE_TOOLS = ["sshmux-openssl", "sshmux-mbedtls", "sftp", "scp"]
SINGLE_DEFAULT = ["sshmux-openssl", "sftp", "scp"]   # mbedtls's AES-GCM: see forward.md
PARTS = ["single", "memory", "fleet"]
COLUMNS = ["part", "tool", "direction", "cipher", "hosts", "fanout", "rep", "bytes", "wall_s",
           "cpu_s", "cpu_user_s", "cpu_sys_s", "mb_per_s", "cpu_s_per_gib", "cpu_ms_per_host",
           "maxrss_mib", "ok", "failed", "rc", "timed_out", "peak_rss_kib", "hwm_kib",
           "rss_anon_kib", "rss_file_kib", "concurrent", "fs", "notes"]


# ------------------------------------------------------------------ files and hashes
def fs_desc(path):
    """'tmpfs (/dev/shm)' / 'ext4 (/)': the filesystem path lives on."""
    best = ("?", "/")
    with open("/proc/self/mounts") as f:
        for line in f:
            dev, mnt, fstype = line.split()[:3]
            if (path + "/").startswith(mnt.rstrip("/") + "/") and len(mnt) >= len(best[1]):
                best = (fstype, mnt)
    return f"{best[0]} ({best[1]})"


def choose_dir(wanted, need):
    """wanted, or /dev/shm if it has need bytes free (with 4 GiB of RAM to spare), else /var/tmp."""
    if wanted:
        return wanted
    st = os.statvfs("/dev/shm") if os.path.isdir("/dev/shm") else None
    with open("/proc/meminfo") as f:
        avail = int(re.search(r"MemAvailable:\s+(\d+)", f.read())[1]) * 1024
    if st and st.f_bavail * st.f_frsize > need and avail > need + 4 * GIB:
        return "/dev/shm"
    return "/var/tmp"


def write_stamped(path, base, stamp):
    """base with its first bytes replaced by stamp; returns the file's sha256."""
    data = stamp + base[len(stamp):]
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, 0o644)
    return hashlib.sha256(data).hexdigest()


def write_random(path, size, stamp=b""):
    """A file of size random bytes starting with stamp; returns its sha256."""
    h = hashlib.sha256()
    with open(path, "wb") as f:
        left, first = size, stamp
        while left:
            chunk = first + os.urandom(min(left, 16 * MIB) - len(first))
            first = b""
            h.update(chunk)
            f.write(chunk)
            left -= len(chunk)
    os.chmod(path, 0o644)
    return h.hexdigest()


def sha256_file(path):
    try:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            while True:
                b = f.read(4 * MIB)
                if not b:
                    return h.hexdigest()
                h.update(b)
    except OSError:
        return None


def hash_many(paths):
    """{path: sha256 or None (missing/unreadable)}; two threads (hashlib releases the GIL)."""
    with ThreadPoolExecutor(2) as ex:
        return dict(zip(paths, ex.map(sha256_file, paths)))


def clear_dir(d, owner=None):
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d, mode=0o755)
    if owner:
        pw = pwd.getpwnam(owner)
        os.chown(d, pw.pw_uid, pw.pw_gid)


def fold(line):
    return re.sub(r"\bh\d{4,}\b", "H", re.sub(r"\d+", "N", line.strip()))[:120]


def stderr_notes(res, limit=5):
    notes = {}
    for line in res.stderr.splitlines():
        if line.strip():
            k = fold(line)
            notes[k] = notes.get(k, 0) + 1
    return dict(sorted(notes.items(), key=lambda kv: -kv[1])[:limit])


# ------------------------------------------------------------------ the bed: users, sshd, config
def _newusers(text):
    for _ in range(20):   # /etc/passwd lock contention with parallel test runs: retry
        r = subprocess.run(["newusers"], input=text, capture_output=True, text=True, timeout=60)
        if r.returncode == 0 or "lock" not in r.stderr.lower():
            break
        time.sleep(0.25)
    if r.returncode != 0:
        raise RuntimeError(f"newusers failed ({r.returncode}): {r.stderr}")


def _remove_users(names):
    for u in names:
        try:
            pwd.getpwnam(u)
        except KeyError:
            continue
        subprocess.run(["userdel", "-f", "-r", u], capture_output=True, timeout=30)


def make_users(aliases, homes):
    """One throwaway login user per alias (shell /bin/sh, home homes/<alias>), created by one
    newusers(8) call; removed at exit. Named and described like fixture.TestUser, so a later
    TestUser() removes them if a killed run left them behind. Returns {alias: user}."""
    users = {}
    while len(set(users.values())) < len(aliases):
        users = {a: "sshmuxtest" + secrets.token_hex(4) for a in aliases}
    fixture.on_cleanup(lambda: _remove_users(users.values()), f"userdel x{len(users)}")
    _newusers("".join(f"{u}:Pw-{secrets.token_urlsafe(12)}:::sshmux test:"
                      f"{os.path.join(homes, a)}:/bin/sh\n" for a, u in users.items()))
    return users


class Bed:
    """The directory tree (base), one user per alias with home base/hosts/<alias>, one tuned
    sshd, and the ssh_config every tool reads (alias -> 127.0.0.1, its own User)."""

    def __init__(self, setup, n, parent):
        self.base = tempfile.mkdtemp(prefix="sshmux-files-", dir=parent)
        fixture.on_cleanup(lambda: shutil.rmtree(self.base, ignore_errors=True),
                           f"rm {self.base}")
        os.chmod(self.base, 0o755)
        self.fs = fs_desc(self.base)
        self.homes = os.path.join(self.base, "hosts")
        os.mkdir(self.homes, 0o755)
        self.names = fixture.aliases(n)
        self.users = make_users(self.names, self.homes)
        self.sshd = fixture.Sshd(setup.wd, setup.keys)
        d = setup.wd.mkdir("fleet-files")
        self.kh = self.sshd.write_known_hosts(os.path.join(d, "known_hosts"))
        self.cfg = fixture.write_ssh_config(
            os.path.join(d, "ssh_config"), {a: {"User": u} for a, u in self.users.items()},
            sshd=self.sshd, identity=setup.keys.ed25519, known_hosts=self.kh,
            extra={"GlobalKnownHostsFile": "/dev/null", "BatchMode": "yes"})
        self.hostfile = os.path.join(d, "hosts")
        with open(self.hostfile, "w") as f:
            f.write("".join(a + "\n" for a in self.names))
        self.env = setup.env

    def home(self, alias):
        return os.path.join(self.homes, alias)

    def settle(self, timeout=15):
        """Wait until the sshd has no session processes left from the previous invocation."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.sshd.proc and \
                fixture.descendants(self.sshd.proc.pid):
            time.sleep(0.1)
        time.sleep(0.3)

    def ssh_opts(self, cipher):
        return ["-F", self.cfg, "-o", f"KexAlgorithms={KEX}", "-o", f"Ciphers={cipher}"]

    def hostrange(self, n=None):
        return fleet.Fleet.hostrange(n or len(self.names))


class Run:
    """What every measurement needs: bed, binaries, cgroups, scratch dir, timeout, CSV."""

    def __init__(self, bed, binaries, cgroups, scratch, timeout, csv_path, log):
        self.bed, self.binaries, self.cgroups, self.scratch = bed, binaries, cgroups, scratch
        self.timeout, self.log, self.rows, self.csv_path = timeout, log, [], csv_path
        with open(csv_path, "w", newline="") as f:
            csv.writer(f).writerow(COLUMNS)

    def measure(self, argv, tag, env_extra=None, stdin=None, timeout=None):
        """measure.run's Result; res.timeout = the bound it ran under."""
        self.bed.settle()
        env = dict(self.bed.env, **(env_extra or {}))
        res = measure.run(argv, env, timeout or self.timeout, self.cgroups, self.scratch, tag,
                          stdin_path=stdin)
        res.timeout = timeout or self.timeout
        for p in (res.stdout_path, res.stderr_path):
            os.unlink(p)
        return res

    def add(self, row):
        self.rows.append(row)
        with open(self.csv_path, "a", newline="") as f:
            csv.writer(f).writerow([f"{v:.4f}" if isinstance(v, float) else
                                    "" if v is None else v for v in
                                    (row.get(c) for c in COLUMNS)])


def base_row(res, **kw):
    if res.timed_out:   # killed by the harness: its copies are incomplete, it was not fast
        kw["notes"] = "; ".join(filter(None, [f"timed out after {res.timeout:.0f} s",
                                              kw.get("notes")]))
    return dict(kw, wall_s=res.wall_s, cpu_s=res.cpu_s, cpu_user_s=res.cpu_user_s,
                cpu_sys_s=res.cpu_sys_s, maxrss_mib=res.maxrss_mib, rc=res.rc,
                timed_out=int(res.timed_out))


def sshmux_notes(res):
    """Error messages and the per-host MB/s sshmux itself reported (--json)."""
    notes, mbps = {}, []
    for line in res.stdout.splitlines():
        try:
            o = json.loads(line)
        except ValueError:
            continue
        if not o.get("ok"):
            k = fold((o.get("error") or {}).get("message") or f"exit {o.get('exit_code')}")
            notes[k] = notes.get(k, 0) + 1
        mbps += [f.get("mbps") for f in o.get("files") or [] if f.get("mbps")]
    if mbps:
        notes[f"sshmux's own MB/s (median) {statistics.median(mbps):.0f}"] = len(mbps)
    for k, v in stderr_notes(res).items():
        notes[k] = notes.get(k, 0) + v
    return notes


# ------------------------------------------------------------------ 1. one 1 GiB file
class Single:
    """One file between h0001's home tree and a local directory on the same filesystem."""

    def __init__(self, run, size):
        bed = run.bed
        self.run, self.size, self.host = run, size, bed.names[0]
        d = os.path.join(bed.base, "single")
        os.mkdir(d, 0o755)
        self.src = os.path.join(d, "src.bin")
        self.sha = write_random(self.src, size)
        self.up, self.down = os.path.join(d, "up"), os.path.join(d, "down")
        self.batch = os.path.join(d, "batch")

    def argv(self, tool, direction, cipher):
        """(argv, stdin path or None) for one transfer; the copy lands in up/ or down/."""
        opts, h = self.run.bed.ssh_opts(cipher), self.host
        if tool.startswith("sshmux-"):
            b = self.run.binaries[tool[len("sshmux-"):]]
            return ([b, "upload"] + opts + ["-q", "--json", h, self.src, self.up + "/"]
                    if direction == "upload" else
                    [b, "download"] + opts + ["-q", "--json", h, self.src, self.down]), None
        if tool == "sftp":
            with open(self.batch, "w") as f:
                f.write(f"put {self.src} {self.up}/\n" if direction == "upload" else
                        f"get {self.src} {self.down}/\n")
            return ["sftp", "-b", "-"] + opts + [h], self.batch
        if tool == "scp":
            return (["scp", "-q"] + opts + [self.src, f"{h}:{self.up}/"] if direction == "upload"
                    else ["scp", "-q"] + opts + [f"{h}:{self.src}", self.down + "/"]), None
        raise ValueError(tool)

    def one(self, tool, direction, cipher, rep):
        clear_dir(self.up, self.run.bed.users[self.host])
        clear_dir(self.down)
        argv, stdin = self.argv(tool, direction, cipher)
        res = self.run.measure(argv, f"single-{tool}-{direction}-{rep}", stdin=stdin)
        dest_dir = self.up if direction == "upload" else self.down
        dest = os.path.join(dest_dir, os.path.basename(self.src))
        notes = sshmux_notes(res) if tool.startswith("sshmux-") else stderr_notes(res)
        size = os.path.getsize(dest) if os.path.exists(dest) else None
        good = size == self.size and sha256_file(dest) == self.sha
        if not good:
            notes[f"copy wrong: size {size}, want {self.size}" if size != self.size else
                  "copy wrong: sha256 differs"] = 1
        extra = sorted(set(os.listdir(dest_dir)) - {os.path.basename(dest)})
        if extra:
            notes[f"left in the destination: {' '.join(extra)[:80]}"] = 1
        clear_dir(dest_dir)
        gib = self.size / GIB
        row = base_row(res, part="single", tool=tool, direction=direction, cipher=cipher,
                       hosts=1, fanout=1, rep=rep, bytes=self.size, ok=int(good),
                       failed=int(not good), fs=self.run.bed.fs,
                       mb_per_s=self.size / res.wall_s / 1e6, cpu_s_per_gib=res.cpu_s / gib,
                       cpu_ms_per_host=1000 * res.cpu_s,
                       notes="; ".join(f"{k} x{v}" for k, v in notes.items()))
        self.run.log(f"{tool:15} {direction:8} {cipher:30} rep {rep}: {row['mb_per_s']:6.0f} MB/s"
                     f"  {row['cpu_s_per_gib']:5.2f} s CPU/GiB  {'ok' if good else 'FAILED'}"
                     + (f"  [{row['notes'][:140]}]" if row["notes"] else ""))
        return row


def run_single(run, tool_names, ciphers, reps):
    s = Single(run, GIB)
    try:
        for cipher in ciphers:
            for direction in ("upload", "download"):
                for rep in range(1, reps + 1):
                    for tool in tool_names:   # interleaved: every tool sees the same machine
                        run.add(s.one(tool, direction, cipher, rep))
    finally:
        for p in (s.up, s.down):
            shutil.rmtree(p, ignore_errors=True)
    return s.src


# ------------------------------------------------------------------ 2. 10 MiB to/from N hosts
class FleetCtx:
    def __init__(self, run, fanout, cipher, payload, localdir):
        self.run, self.bed, self.fanout, self.cipher = run, run.bed, fanout, cipher
        self.payload, self.localdir = payload, localdir
        self.opts = self.bed.ssh_opts(cipher)
        self.opts_str = " ".join(self.opts)


class SshmuxCopy:
    """sshmux upload/download -w: %h puts each host's file in that host's own home."""
    name = "sshmux-openssl"

    def available(self, binaries):
        return bool(binaries.get("openssl"))

    def _cmd(self, c, verb):
        return [c.run.binaries["openssl"], verb] + c.opts + ["-f", str(c.fanout), "-q", "--json",
                                                            "-w", c.bed.hostrange()]

    def upload(self, c):
        return self._cmd(c, "upload") + [c.payload, os.path.join(c.bed.homes, "%h", PAYLOAD)], {}

    def download(self, c):
        return self._cmd(c, "download") + [os.path.join(c.bed.homes, "%h", DL), c.localdir], {}

    def local(self, c, host):
        return os.path.join(c.localdir, host, DL)


class ClushCopy:
    name = "clush"

    def available(self, _):
        return bool(shutil.which("clush"))

    def _cmd(self, c):
        return ["clush", "-f", str(c.fanout), "-o", c.opts_str, "-w", c.bed.hostrange()]

    def upload(self, c):
        return self._cmd(c) + ["--copy", c.payload, "--dest", PAYLOAD], {}

    def download(self, c):
        return self._cmd(c) + ["--rcopy", DL, "--dest", c.localdir], {}

    def local(self, c, host):
        return os.path.join(c.localdir, f"{DL}.{host}")


class PsshCopy:
    name = "pssh"   # parallel-scp / parallel-slurp

    def available(self, _):
        return bool(shutil.which("parallel-scp") and shutil.which("parallel-slurp"))

    def _cmd(self, c, exe):
        # -t 0: no per-host timeout of its own (default 60 s); the harness bounds the run
        return [exe, "-p", str(c.fanout), "-t", "0", "-x", c.opts_str, "-h", c.bed.hostfile]

    def upload(self, c):
        return self._cmd(c, "parallel-scp") + [c.payload, PAYLOAD], {}

    def download(self, c):
        return self._cmd(c, "parallel-slurp") + ["-L", c.localdir, DL, DL], {}

    def local(self, c, host):
        # Debian 12's pssh 2.3.4 (python3) names the directory 'host:None' (the port it was
        # not given): the copies are right, the name is a bug of that version; accepted.
        p = os.path.join(c.localdir, host, DL)
        quirk = os.path.join(c.localdir, f"{host}:None", DL)
        return quirk if not os.path.exists(p) and os.path.exists(quirk) else p


class PdcpCopy:
    """pdcp/rpdcp run pdcp on the remote side too (here: this machine's /usr/bin/pdcp)."""
    name = "pdcp"

    def available(self, _):
        return bool(shutil.which("pdcp") and shutil.which("rpdcp"))

    def _cmd(self, c, exe):
        env = {"PDSH_RCMD_TYPE": "ssh", "PDSH_SSH_ARGS_APPEND": c.opts_str}
        return [exe, "-R", "ssh", "-f", str(c.fanout), "-w", c.bed.hostrange()], env

    def upload(self, c):
        argv, env = self._cmd(c, "pdcp")
        return argv + [c.payload, PAYLOAD], env

    def download(self, c):
        argv, env = self._cmd(c, "rpdcp")
        return argv + [DL, c.localdir], env

    def local(self, c, host):
        return os.path.join(c.localdir, f"{DL}.{host}")


class AsyncsshCopy:
    name = "asyncssh"

    def available(self, binaries):
        return tools.AsyncSSH().available(binaries)

    def _cmd(self, c):
        return [tools.PYTHON, os.path.join(tools.HERE, "asyncssh_copy.py"), "-F", c.bed.cfg,
                "--known-hosts", c.bed.kh, "-f", str(c.fanout), "--kex", KEX,
                "--cipher", c.cipher, "--hostfile", c.bed.hostfile]

    def upload(self, c):
        return self._cmd(c) + ["put", c.payload, PAYLOAD], {}

    def download(self, c):
        return self._cmd(c) + ["get", DL, c.localdir], {}

    def local(self, c, host):
        return os.path.join(c.localdir, host, DL)


FLEET = [SshmuxCopy(), ClushCopy(), PsshCopy(), PdcpCopy(), AsyncsshCopy()]
LABELS = {"pssh": "parallel-scp / parallel-slurp", "pdcp": "pdcp / rpdcp",
          "clush": "clush --copy / --rcopy", "asyncssh": "asyncssh (sftp put/get)",
          "sshmux-openssl": "sshmux-openssl upload/download -w"}


class FleetBench:
    def __init__(self, run, fanout, cipher, size):
        bed = self.bed = run.bed
        self.run, self.size = run, size
        d = os.path.join(bed.base, "fleet")
        os.mkdir(d, 0o755)
        payload = os.path.join(d, PAYLOAD)
        self.payload_sha = write_random(payload, size)
        self.ctx = FleetCtx(run, fanout, cipher, payload, os.path.join(d, "got"))
        # each host's download source differs (its name first): a mix-up cannot pass
        base = os.urandom(size)
        self.dl_sha = {h: write_stamped(os.path.join(bed.home(h), DL), base, h.encode() + b"\n")
                       for h in bed.names}

    def _clear_remote(self):
        for h in self.bed.names:
            for f in os.listdir(self.bed.home(h)):
                if f != DL and not f.startswith("."):
                    p = os.path.join(self.bed.home(h), f)
                    shutil.rmtree(p) if os.path.isdir(p) else os.unlink(p)

    def _verify(self, tool, direction):
        """(ok hosts, failure notes, leftover notes) from the copies on disk."""
        c, names = self.ctx, self.bed.names
        if direction == "upload":
            paths = {h: os.path.join(self.bed.home(h), PAYLOAD) for h in names}
            want = {h: self.payload_sha for h in names}
        else:
            paths = {h: tool.local(c, h) for h in names}
            want = self.dl_sha
        got = hash_many(list(paths.values()))
        bad = {}
        for h in names:
            g = got[paths[h]]
            k = "copy missing" if g is None else "copy wrong (sha256 differs)" if g != want[h] \
                else None
            if k:
                bad[k] = bad.get(k, 0) + 1
        left = sum(1 for h in names for f in os.listdir(self.bed.home(h))
                   if f not in (DL, PAYLOAD) and not f.startswith("."))
        if left:
            bad["other files left in the remote homes"] = left
        ok = len(names) - sum(v for k, v in bad.items() if k.startswith("copy"))
        return ok, bad

    def one(self, tool, direction, rep):
        c = self.ctx
        self._clear_remote()
        clear_dir(c.localdir)
        argv, env = tool.upload(c) if direction == "upload" else tool.download(c)
        # 2 s per host: the slowest peer (asyncssh, ~0.6 s of CPU per host) needs minutes when
        # other work shares the 2 cores
        res = self.run.measure(argv, f"fleet-{tool.name}-{direction}-{rep}", env_extra=env,
                               timeout=max(self.run.timeout, 2.0 * len(self.bed.names)))
        notes = sshmux_notes(res) if tool.name.startswith("sshmux") else stderr_notes(res)
        ok, bad = self._verify(tool, direction)
        notes.update(bad)
        if res.rc not in (0, None):
            notes[f"exit status {res.rc}"] = 1
        self._clear_remote()
        clear_dir(c.localdir)
        n = len(self.bed.names)
        row = base_row(res, part="fleet", tool=tool.name, direction=direction, cipher=c.cipher,
                       hosts=n, fanout=c.fanout, rep=rep, bytes=n * self.size, ok=ok,
                       failed=n - ok, fs=self.bed.fs, mb_per_s=n * self.size / res.wall_s / 1e6,
                       cpu_s_per_gib=res.cpu_s / (n * self.size / GIB),
                       cpu_ms_per_host=1000 * res.cpu_s / n,
                       notes="; ".join(f"{k} x{v}" for k, v in notes.items()))
        self.run.log(f"{tool.name:15} {direction:8} N={n} rep {rep}: wall {res.wall_s:6.2f} s  "
                     f"cpu {res.cpu_s:6.2f} s ({row['cpu_ms_per_host']:5.1f} ms/host)  "
                     f"ok {ok}/{n}" + (f"  [{row['notes'][:160]}]" if row["notes"] else ""))
        return row


def run_fleet(run, fleet_tools, fanout, cipher, reps, size=10 * MIB):
    fb = FleetBench(run, fanout, cipher, size)
    try:
        for direction in ("upload", "download"):
            for rep in range(1, reps + 1):
                for tool in fleet_tools:
                    run.add(fb.one(tool, direction, rep))
    finally:
        fb._clear_remote()
        shutil.rmtree(os.path.dirname(fb.ctx.payload), ignore_errors=True)
        for h in run.bed.names:
            with_dl = os.path.join(run.bed.home(h), DL)
            if os.path.exists(with_dl):
                os.unlink(with_dl)


# ------------------------------------------------------------------ 3. sshmux's memory
def sshmux_bounds():
    """(block bytes, cache budget bytes) from the sources (core/apps/filesrc.h: 'Memory: budget +
    2 blocks per uploading host at most'), or None where not found."""
    def grab(rel, name):
        try:
            with open(os.path.join(tools.ROOT, rel)) as f:
                m = re.search(rf"#define {name} \((\d+)u \* (\d+)u(?: \* (\d+)u)?\)", f.read())
        except OSError:
            return None
        return m and int(m[1]) * int(m[2]) * int(m[3] or 1)
    return (grab("core/apps/filesrc.h", "SMX_FILESRC_BLOCK"),
            grab("core/engine/copy_internal.h", "COPY_CACHE_BYTES"))


def server_write_max(bed):
    """The server's limits@ max write length as OpenSSH's sftp reports it (sftp -vvv), or None."""
    try:
        r = subprocess.run(["sftp", "-vvv", "-b", "/dev/null"] + bed.ssh_opts(CIPHERS[0]) +
                           [bed.names[0]], capture_output=True, text=True, timeout=30,
                           env=bed.env, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return None
    m = re.search(r"server upload/download buffer sizes (\d+) / (\d+)", r.stderr)
    return int(m[1]) if m else None


def _status(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            txt = f.read()
    except OSError:
        return {}
    return {k: int(v) for k, v in re.findall(r"^(VmRSS|VmHWM|RssAnon|RssFile|RssShmem):\s+(\d+)",
                                             txt, re.M)}


def _sftp_servers(uids, got):
    """Counts the fleet users' sftp-server processes; got[pid] = bytes each has read so far
    (its rchar: what it received from its sshd). Returns the count."""
    n = 0
    for d in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{d}/comm") as f:
                if f.read().strip() != "sftp-server" or os.stat(f"/proc/{d}").st_uid not in uids:
                    continue
            n += 1
            got[d] = max(got.get(d, 0), _proc_io(d).get("rchar", 0))
        except OSError:
            pass
    return n


def _proc_io(pid):
    try:
        with open(f"/proc/{pid}/io") as f:
            return {k: int(v) for k, v in (l.split(": ") for l in f.read().splitlines())}
    except OSError:
        return {}


def _cpu_s(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            st = f.read().rsplit(")", 1)[1].split()
        return (int(st[11]) + int(st[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return None


def memory_one(run, n, src, cap_s, tag):
    """sshmux-openssl uploads src to /dev/null (--no-atomic) on n hosts, fanout n, for at most
    cap_s seconds; VmRSS etc. sampled every 100 ms, the sftp-servers counted every 0.5 s."""
    bed = run.bed
    argv = [run.binaries["openssl"], "upload"] + bed.ssh_opts(CIPHERS[0]) + \
        ["-f", str(n), "-q", "--json", "--no-atomic", "-w", bed.hostrange(n), src, "/dev/null"]
    uids = {pwd.getpwnam(bed.users[h]).pw_uid for h in bed.names[:n]}
    out = os.path.join(run.scratch, f"{tag}.out")
    bed.settle()
    t0 = time.monotonic()
    with open(out, "wb") as f:
        p = subprocess.Popen(argv, env=bed.env, stdout=f, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, start_new_session=True)
    kill = fixture.on_cleanup(lambda: fixture.kill_tree(p.pid, p), f"pid {p.pid}")
    peak, conc, last_count, io, cpu, hwm, trend, got = {}, 0, 0.0, {}, None, 0, [], {}
    while p.poll() is None and time.monotonic() - t0 < cap_s:
        st = _status(p.pid)
        if time.monotonic() - t0 >= 5 * (len(trend) + 1) and st:
            trend.append(st.get("VmRSS", 0) >> 10)   # MiB every 5 s: does it level off?
        if st.get("VmRSS", 0) > peak.get("VmRSS", 0):
            peak = dict(st, t=time.monotonic() - t0)
        if time.monotonic() - last_count >= 0.5:
            conc, last_count = max(conc, _sftp_servers(uids, got)), time.monotonic()
        io, cpu, hwm = _proc_io(p.pid) or io, _cpu_s(p.pid) or cpu, st.get("VmHWM", 0)
        time.sleep(0.1)
    wall, finished = time.monotonic() - t0, p.poll() is not None
    fixture.run_cleanup(kill)
    with open(out, errors="replace") as f:
        text = f.read()
    os.unlink(out)
    oks = errors = 0
    notes = {}
    for line in text.splitlines():
        try:
            o = json.loads(line)
        except ValueError:
            if line.strip():
                notes[fold(line)] = notes.get(fold(line), 0) + 1
            continue
        oks += bool(o.get("ok"))
        if not o.get("ok"):
            errors += 1
            k = fold((o.get("error") or {}).get("message") or "?")
            notes[k] = notes.get(k, 0) + 1
    sent = sum(got.values())
    return dict(part="memory", tool="sshmux-openssl", direction="upload", cipher=CIPHERS[0],
                hosts=n, fanout=n, rep=1, bytes=sent, wall_s=wall, cpu_s=cpu,
                mb_per_s=sent / wall / 1e6 if wall else None,
                peak_rss_kib=peak.get("VmRSS"), hwm_kib=max(hwm, peak.get("VmHWM", 0)),
                rss_anon_kib=peak.get("RssAnon"), rss_file_kib=peak.get("RssFile"),
                concurrent=conc, ok=oks, failed=errors, rc=p.returncode if finished else None,
                timed_out=0, fs=bed.fs,
                notes="; ".join([f"peak at {peak.get('t', 0):.1f} s",
                                 "VmRSS MiB every 5 s: " + " ".join(map(str, trend)),
                                 f"read {io.get('rchar', 0) / MIB:.0f} MiB of the file",
                                 f"finished, {oks} hosts ok" if finished else
                                 f"stopped at the {cap_s:.0f} s cap"] +
                                [f"{k} x{v}" for k, v in notes.items()]))


def run_memory(run, src, n, cap_s):
    rows = []
    for k in (1, n):
        r = memory_one(run, k, src, cap_s, f"memory-{k}")
        run.add(r)
        rows.append(r)
        run.log(f"memory: sshmux-openssl 1 GiB to /dev/null on {k} hosts: peak VmRSS "
                f"{r['peak_rss_kib']} KiB (anon {r['rss_anon_kib']}, file {r['rss_file_kib']}), "
                f"VmHWM {r['hwm_kib']} KiB, {r['concurrent']} sftp-servers at once, "
                f"{r['wall_s']:.1f} s, {r['notes']}")
    return rows


# ------------------------------------------------------------------ entry point (bench/run)
def has_files_commands(binary):
    r = subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=30)
    return "upload" in r.stdout + r.stderr


def pick_tools(binaries, names, notes):
    """(single tool names, fleet tool objects), those available; names=None: all."""
    have_cmd = {b: bool(p) and has_files_commands(p) for b, p in binaries.items()}
    single, fleet_tools = [], []
    for t in SINGLE_TOOLS:
        if t not in (names or SINGLE_DEFAULT):
            continue
        if t.startswith("sshmux-") and not have_cmd.get(t[len("sshmux-"):]):
            notes.append(f"{t}: no upload/download command in this build, skipped")
        elif not t.startswith("sshmux-") and not shutil.which(t):
            notes.append(f"{t}: not installed, skipped")
        else:
            single.append(t)
    for t in FLEET:
        if names and t.name not in names:
            continue
        ok = t.available(binaries) and (not t.name.startswith("sshmux") or have_cmd["openssl"])
        (fleet_tools.append(t) if ok else
         notes.append(f"{t.name}: not available (or no upload command), skipped"))
    return single, fleet_tools


def run(args, setup, binaries, cgroups, log, summary):
    """Measures what args.files_parts names; writes files.csv and files.md in args.outdir."""
    import files_report
    import shlex
    import sys
    notes = []
    parts = args.files_parts
    single, fleet_tools = pick_tools(binaries, args.files_tools, notes)
    if not fixture.TestUser.available():
        raise SystemExit(f"bench --files needs root (a login user per host): "
                         f"{fixture.TestUser.reason()}")
    # the parts run one after the other: single 1 GiB + its copy; fleet: every host's download
    # source + every host's upload (or download) copy
    need = max(2 * GIB if {"single", "memory"} & set(parts) else 0,
               (2 * args.files_hosts + 1) * 10 * MIB if "fleet" in parts else 0)
    bed = Bed(setup, args.files_hosts, choose_dir(args.files_dir, need))
    log(f"files: {args.files_hosts} aliases, each its own user, homes in {bed.homes} "
        f"({bed.fs}); sshd port {bed.sshd.port}; single: {single}; fleet: "
        f"{[t.name for t in fleet_tools]}")
    run = Run(bed, binaries, cgroups, setup.wd.mkdir("runs"), args.timeout,
              os.path.join(args.outdir, "files.csv"), log)
    ciphers = CIPHERS if args.files_ciphers == "both" else [CIPHERS[0]]
    if len(ciphers) == 1:
        notes.append(f"single: {ciphers[0]} only (`--files-ciphers both` adds {CIPHERS[1]}, "
                     "twice the time)")
    notes.append(f"fleet: every alias logs in as its own throwaway user whose home is its own "
                 f"directory, so tools that copy one path to every host (clush, parallel-scp, "
                 f"pdcp) write one file per host; sshmux writes the same files by absolute "
                 f"path with %h. Fanout {args.fanout} for every tool; cipher {CIPHERS[0]}.")
    if any(t.name == "pssh" for t in fleet_tools):
        notes.append("parallel-slurp (Debian 12's pssh 2.3.4) puts each host's file in "
                     "LOCALDIR/'<host>:None'/ (a python3 bug of that version): accepted, since "
                     "the bytes are right")
    block, src = None, None
    try:
        if "single" in parts and single:
            src = run_single(run, single, ciphers, args.reps)
        if "memory" in parts and binaries.get("openssl") and "sshmux-openssl" in single + [
                t.name for t in fleet_tools]:
            if not src:
                src = os.path.join(bed.base, "mem.bin")
                write_random(src, GIB)
            block = dict(server=server_write_max(bed), sshmux=sshmux_bounds())
            run_memory(run, src, args.files_hosts, args.mem_seconds)
        if src:
            os.unlink(src)
        if "fleet" in parts and fleet_tools:
            run_fleet(run, fleet_tools, args.fanout, CIPHERS[0], args.files_fleet_reps)
    except KeyboardInterrupt:
        log("files: interrupted; writing what was measured")
        notes.append("interrupted (Ctrl-C): partial results")
    finally:
        meta = dict(date=time.strftime("%Y-%m-%d %H:%M"), summary=summary,
                    reps=f"{args.reps} (single), {args.files_fleet_reps} (fleet)",
                    command="bench/run " + " ".join(map(shlex.quote, sys.argv[1:])),
                    fs=bed.fs, cpu_method=cgroups.describe()[0], notes=notes)
        meta.update(single_tools=single, fleet_tools=[t.name for t in fleet_tools],
                    labels=LABELS, ciphers=ciphers, bounds=block)
        files_report.write(args.outdir, run.rows, meta)
        log(f"files: wrote {run.csv_path} and files.md")
    return 0
