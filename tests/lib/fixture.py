"""Test fixture for sshmux integration tests (python3 stdlib only).

Everything runs against a REAL OpenSSH sshd started on 127.0.0.1 (random free port, generated
keys, throwaway config in a temp dir). Everything started here is stopped at exit: each object
registers a cleanup, run LIFO by main()'s finally, by atexit, and on SIGTERM/SIGHUP/Ctrl-C.

Typical use:
    wd = Workdir(); keys = Keys(wd); sshd = Sshd(wd, keys)
    kh = sshd.write_known_hosts(wd.file("known_hosts"))
    cfg = write_ssh_config(wd.file("ssh_config"), aliases(500), sshd=sshd,
                           identity=keys.ed25519, known_hosts=kh)
    res = run_sshmux(["-F", cfg, ...]); check_rc(res, 0); rows = json_lines(res.stdout)
Environment: SSHMUX (binary), SSHMUX_CRYPTO, SSHMUX_KEEP_TMP=1 keeps temp dirs.
"""
import atexit, difflib, functools, json, os, pwd, re, secrets, shutil, signal, socket
import resource, subprocess, sys, tempfile, threading, time, traceback
from contextlib import suppress

import tarpit
from tarpit import LOOPBACK, free_port, free_port_run, refused_port   # noqa: F401 (re-exported)

SSHD = "/usr/sbin/sshd"
SSH_KEYGEN = shutil.which("ssh-keygen") or "/usr/bin/ssh-keygen"
IS_ROOT = os.geteuid() == 0

# ------------------------------------------------------------------ cleanup / processes
_cleanups, _cleanup_lock = [], threading.Lock()   # LIFO list of (name, fn)

def on_cleanup(fn, name=""):
    """Register fn() to run at exit (LIFO); returns fn (for run_cleanup)."""
    with _cleanup_lock:
        _cleanups.append((name or getattr(fn, "__name__", "cleanup"), fn))
    return fn

def run_cleanup(fn):
    """Run a registered cleanup now and unregister it (no-op if it already ran)."""
    with _cleanup_lock:
        found = [e for e in _cleanups if e[1] is fn]
        for e in found:
            _cleanups.remove(e)
    if found:
        fn()

def cleanup_all():
    """Run every pending cleanup (LIFO); errors are printed, never raised."""
    while True:
        with _cleanup_lock:
            if not _cleanups:
                return
            name, fn = _cleanups.pop()
        try:
            fn()
        except BaseException as e:   # keep cleaning, even on KeyboardInterrupt
            print(f"fixture: cleanup {name} failed: {e!r}", file=sys.stderr)

def _exit_on_signal(signum, _frame):
    raise SystemExit(128 + signum)   # unwinds finally blocks, then atexit runs

atexit.register(cleanup_all)
if threading.current_thread() is threading.main_thread():
    for _s in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(_s, _exit_on_signal)

def wait_until(pred, timeout, what="condition", interval=0.05):
    """Poll pred() until truthy (returns its value); Failure after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise Failure(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)

def rss_kib(pid):
    """Resident memory of process pid in KiB (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def descendants(pid):
    """All live descendant pids of pid (from /proc), not including pid itself."""
    kids = {}
    for d in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{d}/stat") as f:
                kids.setdefault(int(f.read().rsplit(")", 1)[1].split()[1]), []).append(int(d))
        except (OSError, IndexError, ValueError):
            pass
    out, todo = [], [pid]
    while todo:
        for c in kids.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out

def _read(path):
    with open(path, errors="replace") as f:
        return f.read()

def _signal(pid, sig):
    with suppress(ProcessLookupError):
        os.kill(pid, sig)

def kill_tree(pid, proc=None, timeout=5.0):
    """SIGSTOP pid and its whole process tree (so nothing forks meanwhile), then SIGKILL all of
    it. With proc (its Popen): skip the tree walk if it already exited (pid may be reused),
    SIGKILL what is left of its process group (start_new_session) and reap it."""
    seen = set()
    for _ in range(10 if proc is None or proc.poll() is None else 0):
        new = [p for p in [pid] + descendants(pid) if p not in seen]
        if not new:
            break
        for p in new:
            seen.add(p)
            _signal(p, signal.SIGSTOP)
    for p in seen:
        _signal(p, signal.SIGKILL)
    if proc is not None:
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            print(f"fixture: pid {pid} did not die", file=sys.stderr)

# ------------------------------------------------------------------ assertions / runner
class Failure(AssertionError):
    """A test assertion failed (message already formatted)."""

class Skip(Exception):
    """Raised by skip(); main() reports the test as skipped, loudly."""

def skip(reason):
    raise Skip(reason)

stats = {"checks": 0, "failed_checks": 0}

def _fmt(v):
    return (json.dumps(v, indent=2, sort_keys=True, default=str) if isinstance(v, (dict, list))
            else v if isinstance(v, str) else repr(v))

def _fail(msg):
    stats["failed_checks"] += 1
    raise Failure(msg)

def check(cond, msg="check failed"):
    """Assert cond is truthy."""
    stats["checks"] += 1
    if not cond:
        _fail(msg)

def check_eq(actual, expected, msg="values differ"):
    """Assert actual == expected; the failure shows a unified diff (expected -> actual)."""
    stats["checks"] += 1
    if actual != expected:
        a, e = _fmt(actual), _fmt(expected)
        diff = "\n".join(difflib.unified_diff(e.splitlines(), a.splitlines(), "expected",
                                              "actual", lineterm=""))
        _fail(f"{msg}\n{diff or f'expected {e!r}, got {a!r}'}")

def check_in(needle, haystack, msg="not found"):
    """Assert needle in haystack (string or container)."""
    stats["checks"] += 1
    if needle not in haystack:
        _fail(f"{msg}: {needle!r} not in:\n{_fmt(haystack)}")

def check_match(pattern, text, msg="no match"):
    """Assert re.search(pattern, text, re.M); returns the match."""
    stats["checks"] += 1
    m = re.search(pattern, text or "", re.M)
    if not m:
        _fail(f"{msg}: /{pattern}/ not found in:\n{text}")
    return m

def check_rc(res, expected=0, msg="unexpected exit code"):
    """Assert a CompletedProcess exited with expected; the failure shows stdout/stderr."""
    stats["checks"] += 1
    if res.returncode != expected:
        _fail(f"{msg}: {res.args!r} exited {res.returncode}, expected {expected}\n"
              f"--- stdout\n{res.stdout}\n--- stderr\n{res.stderr}")

def main(tests):
    """Run test functions (list, or dict name -> fn); names on argv select a subset. Prints
    `ok name` / `FAIL name: reason` / `SKIP name: reason`, then `N passed, N failed` (plus
    `, N skipped`). Exits 1 if any failed, 77 if all skipped, else 0. Cleanups always run."""
    items = list(tests.items()) if isinstance(tests, dict) else [(t.__name__, t) for t in tests]
    passed = failed = skipped = 0
    if len(sys.argv) > 1:
        for unknown in sorted(set(sys.argv[1:]) - {n for n, _ in items}):
            failed += 1
            print(f"FAIL {unknown}: no such test", flush=True)
        items = [(n, t) for n, t in items if n in sys.argv[1:]]
    try:
        for name, fn in items:
            t0 = time.monotonic()
            try:
                fn()
            except Skip as e:
                skipped += 1
                print(f"SKIP {name}: {e}\n*** SKIPPED: {name}: {e} ***", flush=True)
            except Failure as e:
                failed += 1
                print(f"FAIL {name}: {e}", flush=True)
            except Exception as e:
                failed += 1
                tb = traceback.format_exc().rstrip().replace("\n", "\n    ")
                print(f"FAIL {name}: {type(e).__name__}: {e}\n    {tb}", flush=True)
            else:
                passed += 1
                print(f"ok {name} ({time.monotonic() - t0:.1f}s)", flush=True)
    finally:
        cleanup_all()
    print(f"{passed} passed, {failed} failed" + (f", {skipped} skipped" if skipped else ""),
          flush=True)
    sys.exit(1 if failed else 77 if skipped and not passed else 0)

# ------------------------------------------------------------------ workdir / keys
_current_workdir = None

class Workdir:
    """Temp dir (removed at exit unless SSHMUX_KEEP_TMP=1) with a fake HOME: `home/.ssh` (0700).
    Attributes: path, home, ssh_dir. The newest Workdir is the default for run()/run_sshmux()."""

    def __init__(self, prefix="sshmux-it-"):
        global _current_workdir
        self.path = tempfile.mkdtemp(prefix=prefix)
        self.home = os.path.join(self.path, "home")
        self.ssh_dir = os.path.join(self.home, ".ssh")
        os.makedirs(self.ssh_dir, mode=0o700)
        _current_workdir = self
        on_cleanup(self._remove, f"rm {self.path}")

    def _remove(self):
        if os.environ.get("SSHMUX_KEEP_TMP") == "1":
            print(f"fixture: keeping {self.path} (SSHMUX_KEEP_TMP=1)", file=sys.stderr)
        else:
            shutil.rmtree(self.path, ignore_errors=True)

    def file(self, name, content=None, mode=None):
        """Path of workdir/name (parents created); writes content / chmods when given."""
        p = os.path.join(self.path, name)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        if content is not None:
            with open(p, "w") as f:
                f.write(content)
        if mode is not None:
            os.chmod(p, mode)
        return p

    def mkdir(self, name, mode=0o755):
        """Create (if needed) and return workdir/name."""
        p = os.path.join(self.path, name)
        os.makedirs(p, mode=mode, exist_ok=True)
        return p

def _keygen(path, ktype, bits=None, fmt=None, passphrase="", comment=""):
    cmd = [SSH_KEYGEN, "-q", "-t", ktype, "-N", passphrase, "-C", comment or ktype, "-f", path]
    cmd += (["-b", str(bits)] if bits else []) + (["-m", fmt] if fmt else [])
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        raise RuntimeError(f"ssh-keygen {ktype} failed: {r.stderr}")
    return path

class Keys:
    """Client keys, generated once per test process (later Keys() reuse them), 0600:
    ed25519 (OpenSSH format), rsa_pem (RSA 2048, `-m PEM`), ecdsa (nistp256), ed25519_enc
    (passphrase Keys.PASSPHRASE). Attribute <name> = private key path, <name>_pub = .pub path."""
    PASSPHRASE = "correct horse"
    NAMES = ("ed25519", "rsa_pem", "ecdsa", "ed25519_enc")
    _cached_dir = None

    def __init__(self, workdir):
        d = Keys._cached_dir
        if not (d and os.path.exists(os.path.join(d, "ed25519_enc.pub"))):
            d = workdir.mkdir("client-keys", 0o700)
            _keygen(os.path.join(d, "ed25519"), "ed25519")
            _keygen(os.path.join(d, "rsa_pem"), "rsa", bits=2048, fmt="PEM")
            _keygen(os.path.join(d, "ecdsa"), "ecdsa", bits=256)
            _keygen(os.path.join(d, "ed25519_enc"), "ed25519", passphrase=self.PASSPHRASE)
            Keys._cached_dir = d
        self.dir = d
        for n in self.NAMES:
            setattr(self, n, os.path.join(d, n))
            setattr(self, n + "_pub", os.path.join(d, n + ".pub"))

    def pubs(self):
        """Paths of all four .pub files."""
        return [getattr(self, n + "_pub") for n in self.NAMES]

def askpass_env(workdir, secret, log=None):
    """Env making OpenSSH's ssh answer every passphrase/password prompt with secret without a
    tty (SSH_ASKPASS + SSH_ASKPASS_REQUIRE=force; use BatchMode=no). Prompts are appended to
    the file `log` if given."""
    script = workdir.file("askpass.sh", "#!/bin/sh\n"
                          '[ -n "$SSHMUX_ASKPASS_LOG" ] && printf "%s\\n" "$1" >> "$SSHMUX_ASKPASS_LOG"\n'
                          'printf "%s\\n" "$SSHMUX_ASKPASS_SECRET"\n', 0o755)
    env = {"SSH_ASKPASS": script, "SSH_ASKPASS_REQUIRE": "force", "DISPLAY": ":0",
           "SSHMUX_ASKPASS_SECRET": secret}
    if log:
        env["SSHMUX_ASKPASS_LOG"] = log
    return env

# ------------------------------------------------------------------ ports / tarpit
class Tarpit(tarpit.Tarpit):
    """tarpit.Tarpit(banner=None) whose stop() is registered as a cleanup."""

    def __init__(self, banner=None, backlog=4096):
        super().__init__(banner, backlog)
        on_cleanup(self.stop, f"tarpit {self.port}")

def raise_fd_limit(want):
    """Raises this process's soft RLIMIT_NOFILE towards want (as far as the hard limit allows;
    sshds started afterwards inherit it); returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return max(soft, target)


# ------------------------------------------------------------------ sshd
@functools.lru_cache(maxsize=None)
def openssh_version():
    """(major, minor) of the installed OpenSSH, e.g. (9, 2)."""
    r = subprocess.run(["ssh", "-V"], capture_output=True, text=True, timeout=10)
    m = re.search(r"OpenSSH_(\d+)\.(\d+)", r.stderr + r.stdout)
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)

class Sshd:
    """A real OpenSSH sshd on 127.0.0.1:<free port>; config, host keys and authorized_keys in
    workdir/sshd-<n>/, log (sshd -D -e) in workdir/sshd-<port>.log.

    Sshd(workdir, keys=None, authorized=None, max_startups=None, max_sessions=None,
         extra_config="", password_auth=False, kbdint=False, host_key_types=("ed25519",),
         stock=False, nofile=None, host=LOOPBACK)
    - authorized: .pub paths for authorized_keys (default: all keys.pubs(); [] = none).
    - tuned for fan-out by default (MaxStartups 2000:30:2000, MaxSessions 100); stock=True leaves
      both unset (OpenSSH defaults 10:30:100 / 10); explicit values always win.
    - extra_config goes BEFORE the defaults (sshd keeps the first value of an option, so it
      overrides them); from its first `Match` line on, it goes at the end.
    - host_key_types: any of "ed25519", "rsa", "ecdsa": the host keys generated and served.
    - password_auth / kbdint need root (UsePAM yes); skip() otherwise.
    - nofile: RLIMIT_NOFILE for sshd and so for every per-connection sshd: a server that runs out
      of descriptors and refuses channels (direct-tcpip) once a connection carries a few dozen.
    - host: the address to listen on (wire.Sshd: an address inside a test network namespace).
    UsePAM is yes as root, no otherwise (unprivileged sshd: only Sshd.user, keys only).
    Attributes: host, port, user (current user; PermitRootLogin yes), config_path, log_path,
    authorized_keys, host_keys, proc."""
    _seq = 0

    def __init__(self, workdir, keys=None, authorized=None, max_startups=None, max_sessions=None,
                 extra_config="", password_auth=False, kbdint=False,
                 host_key_types=("ed25519",), stock=False, nofile=None, host=LOOPBACK):
        if (password_auth or kbdint) and not IS_ROOT:
            skip("password/keyboard-interactive auth needs root (sshd with PAM); uid "
                 f"{os.geteuid()}")
        Sshd._seq += 1
        self.workdir, self.host = workdir, host
        self.user = pwd.getpwuid(os.geteuid()).pw_name
        self.dir = workdir.mkdir(f"sshd-{Sshd._seq}", 0o755)   # readable by TestUsers too
        self.host_key_types = tuple(host_key_types)
        self.authorized_keys = os.path.join(self.dir, "authorized_keys")
        open(self.authorized_keys, "w").close()
        os.chmod(self.authorized_keys, 0o644)
        for p in (keys.pubs() if authorized is None and keys else authorized or []):
            self.authorize(p)
        if not stock:
            max_startups, max_sessions = max_startups or "2000:30:2000", max_sessions or 100
        self.opts = dict(max_startups=max_startups, max_sessions=max_sessions,
                         extra_config=extra_config, password_auth=password_auth, kbdint=kbdint)
        self.proc = self.port = self.log_path = None
        self.nofile = nofile
        self._gen_host_keys()
        on_cleanup(self.stop, f"sshd {self.dir}")
        for attempt in range(5):   # the free port may get taken by a parallel test: retry
            self.port = free_port()
            if self._start(bind_retry=attempt < 4):
                break

    def _gen_host_keys(self):
        self.host_keys = []
        for t in self.host_key_types:
            p = os.path.join(self.dir, f"ssh_host_{t}_key")
            for f in (p, p + ".pub"):
                if os.path.exists(f):
                    os.unlink(f)
            self.host_keys.append(_keygen(p, t, bits={"rsa": 2048}.get(t),   # 3072: slow
                                          comment=f"sshmux-test-host-{t}"))

    def _config(self):
        o = self.opts
        head, match = (re.split(r"(?im)^(?=[ \t]*match\s)", o["extra_config"], maxsplit=1)
                       + [""])[:2]
        lines = [head.strip(), f"ListenAddress {self.host}", f"Port {self.port}"]
        lines += [f"HostKey {k}" for k in self.host_keys]
        lines += [f"AuthorizedKeysFile {self.authorized_keys}",
                  f"PidFile {os.path.join(self.dir, 'sshd.pid')}",
                  "StrictModes no", f"UsePAM {'yes' if IS_ROOT else 'no'}",
                  "PermitRootLogin yes", "PubkeyAuthentication yes",
                  f"PasswordAuthentication {'yes' if o['password_auth'] else 'no'}",
                  f"KbdInteractiveAuthentication {'yes' if o['kbdint'] else 'no'}",
                  "LogLevel VERBOSE", "UseDNS no", "PrintMotd no", "PrintLastLog no",
                  "X11Forwarding no", "AllowTcpForwarding yes", "AllowAgentForwarding yes",
                  "AcceptEnv LANG LC_*", "Subsystem sftp /usr/lib/openssh/sftp-server"]
        if o["max_startups"]:
            lines.append(f"MaxStartups {o['max_startups']}")
        if o["max_sessions"]:
            lines.append(f"MaxSessions {o['max_sessions']}")
        if openssh_version() >= (9, 8):   # 9.8+ would penalise failing/refused test clients
            lines.append("PerSourcePenalties no")
        return "\n".join(l for l in lines if l) + "\n" + match

    def _start(self, bind_retry=False):
        self.config_path = os.path.join(self.dir, "sshd_config")
        with open(self.config_path, "w") as f:
            f.write(self._config())
        if IS_ROOT:
            os.makedirs("/run/sshd", mode=0o755, exist_ok=True)   # privsep chroot dir
        t = subprocess.run([SSHD, "-t", "-f", self.config_path], capture_output=True, text=True,
                           timeout=30, stdin=subprocess.DEVNULL)
        if t.returncode != 0:
            raise RuntimeError(f"sshd -t rejected {self.config_path}:\n{t.stderr}\n"
                               f"--- config\n{self._config()}")
        self.log_path = os.path.join(self.workdir.path, f"sshd-{self.port}.log")
        with open(self.log_path, "ab") as log:
            limit = None
            if self.nofile:
                def limit():
                    resource.setrlimit(resource.RLIMIT_NOFILE, (self.nofile, self.nofile))
            self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", self.config_path],
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         start_new_session=True, preexec_fn=limit)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.proc, text = None, self.log_text()
                if bind_retry and re.search(r"Address already in use|Cannot bind", text):
                    return False
                raise RuntimeError(f"sshd exited at startup:\n{text}")
            if self._banner_ok():
                return True
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"sshd did not send its banner within 10s:\n{self.log_text()}")

    def _banner_ok(self):
        try:
            with socket.create_connection((self.host, self.port), timeout=2) as s:
                return s.recv(256).startswith(b"SSH-2.0-")
        except OSError:
            return False

    def _session_pids(self):
        """Session processes of this sshd, even orphaned ones: SSH_CONNECTION ends in our port."""
        tail, out = f" {self.host} {self.port}".encode(), []
        for d in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{d}/environ", "rb") as f:
                    env = f.read().split(b"\0")
            except OSError:
                continue
            if any(e.startswith(b"SSH_CONNECTION=") and e.endswith(tail) for e in env):
                out.append(int(d))
        return out

    def stop(self):
        """Stop sshd and everything it forked, sessions included (also those whose sshd parent
        already exited, found by SSH_CONNECTION). Idempotent."""
        if self.proc is not None:
            _signal(self.proc.pid, signal.SIGSTOP)
            for p in self._session_pids():
                _signal(p, signal.SIGKILL)
            kill_tree(self.proc.pid, self.proc)
            self.proc = None

    def restart_with_new_host_key(self):
        """Regenerate the host keys and restart on the same port (changed-host-key tests)."""
        self.stop()
        self._gen_host_keys()
        deadline = time.monotonic() + 10
        while not self._start(bind_retry=True):
            if time.monotonic() > deadline:
                raise RuntimeError(f"could not rebind port {self.port}")
            time.sleep(0.2)

    def host_pubkey_lines(self):
        """Public host key lines in use: ["ssh-ed25519 AAAA... comment", ...]."""
        return [_read(k + ".pub").strip() for k in self.host_keys]

    def known_hosts_line(self, alias_or_host=LOOPBACK, port=None):
        """known_hosts entry: "[127.0.0.1]:PORT ssh-ed25519 AAAA..." (no brackets for port 22);
        one line per host key type, joined by newlines."""
        port = self.port if port is None else port
        name = alias_or_host if port == 22 else f"[{alias_or_host}]:{port}"
        return "\n".join(f"{name} {' '.join(l.split()[:2])}" for l in self.host_pubkey_lines())

    def write_known_hosts(self, path, hosts=(LOOPBACK,), append=False):
        """Write known_hosts_line(h) for each h in hosts to path; returns path."""
        with open(path, "a" if append else "w") as f:
            f.write("".join(self.known_hosts_line(h) + "\n" for h in hosts))
        return path

    def authorize(self, pub_path):
        """Append a public key to authorized_keys (sshd rereads it for every login)."""
        with open(self.authorized_keys, "a") as f:
            f.write(_read(pub_path).strip() + "\n")

    def count_established_connections(self):
        """ESTABLISHED TCP connections to 127.0.0.1:port, counted on the client side (sockets
        whose remote end is our port, from /proc/net/tcp); half-closed ones do not count."""
        n = 0
        with open("/proc/net/tcp") as f:
            for row in f.read().splitlines()[1:]:
                cols = row.split()
                n += cols[3] == "01" and cols[2] == f"0100007F:{self.port:04X}"
        return n

    def wait_connections(self, n, timeout=10):
        """Wait until count_established_connections() == n (Failure after timeout)."""
        wait_until(lambda: self.count_established_connections() == n, timeout,
                   f"{n} connections (have {self.count_established_connections()})")

    def log_text(self):
        """Everything sshd logged so far (all its runs on this port)."""
        return _read(self.log_path) if self.log_path else ""

    def wait_log(self, pattern, timeout=10):
        """Wait until the sshd log matches regex pattern (re.M); returns the match."""
        return wait_until(lambda: re.search(pattern, self.log_text(), re.M), timeout,
                          f"sshd log /{pattern}/; log so far:\n{self.log_text()}")

# ------------------------------------------------------------------ test user (root only)
class TestUser:
    """Throwaway local user `sshmuxtest<hex>` with a random password (useradd + chpasswd), home
    in workdir/users/ (workdir is made 0711 so the user can reach it); removed with userdel -f -r
    at exit. Root only: check TestUser.available() first; TestUser.reason() says why not.
    Attributes: name, password, home, uid."""

    @staticmethod
    def reason():
        if not IS_ROOT:
            return f"not root (uid {os.geteuid()}): cannot create users or run sshd with PAM"
        missing = [t for t in ("useradd", "chpasswd", "userdel")
                   if not shutil.which(t, path="/usr/sbin:/sbin:/usr/bin")]
        return f"missing {missing}" if missing else ""

    @classmethod
    def available(cls):
        return cls.reason() == ""

    def __init__(self, workdir):
        if not self.available():
            skip(f"TestUser unavailable: {self.reason()}")
        for p in pwd.getpwall():   # leftovers of killed runs: their workdir is gone
            if p.pw_name.startswith("sshmuxtest") and p.pw_gecos == "sshmux test" \
                    and not os.path.exists(os.path.dirname(p.pw_dir)):
                print(f"fixture: removing stale test user {p.pw_name}", file=sys.stderr)
                subprocess.run(["userdel", "-f", "-r", p.pw_name], capture_output=True, timeout=30)
        os.chmod(workdir.path, 0o711)
        self.name = "sshmuxtest" + secrets.token_hex(4)
        self.password = "Pw-" + secrets.token_urlsafe(12)
        self.home = os.path.join(workdir.mkdir("users", 0o755), self.name)
        on_cleanup(self.remove, f"userdel {self.name}")   # before useradd: a signal may hit it
        self._run(["useradd", "-m", "-d", self.home, "-s", "/bin/sh", "-c", "sshmux test",
                   self.name])
        self._run(["chpasswd"], input=f"{self.name}:{self.password}\n")
        self.uid = pwd.getpwnam(self.name).pw_uid

    def _exists(self):
        return self.name in {p.pw_name for p in pwd.getpwall()}

    def _run(self, cmd, input=None, ok=lambda: False):
        for _ in range(20):   # /etc/passwd lock contention with parallel tests: retry
            r = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=30)
            if r.returncode == 0 or "lock" not in r.stderr.lower():
                break
            time.sleep(0.25)
        if r.returncode != 0 and not ok():
            raise RuntimeError(f"{cmd[0]} failed ({r.returncode}): {r.stderr}")

    def remove(self):
        """Delete the user, its group and home (userdel -f -r). Idempotent."""
        if self._exists():
            self._run(["userdel", "-f", "-r", self.name], ok=lambda: not self._exists())

# ------------------------------------------------------------------ ssh_config
def aliases(n, prefix="h", width=4):
    """["h0001", ..., "h<n>"]."""
    return [f"{prefix}{i:0{width}d}" for i in range(1, n + 1)]

def ssh_config_entry(alias, **options):
    """Text of one `Host alias` block; options whose value is None are left out."""
    return f"Host {alias}\n" + "".join(f"    {k} {v}\n" for k, v in options.items()
                                       if v is not None)

def write_ssh_config(path, hosts, sshd=None, identity=None, known_hosts=None, user=None,
                     port=None, hostname=LOOPBACK, strict="yes", extra=None, append=False):
    """Write an ssh_config; returns path. hosts: list of aliases, or dict alias -> {option:
    value} overriding the defaults for that alias (value None drops the option). Defaults per
    alias: HostName hostname, Port (port or sshd.port), User (user or sshd.user), IdentityFile +
    IdentitiesOnly yes (if identity), UserKnownHostsFile, StrictHostKeyChecking, then `extra`."""
    base = {"HostName": hostname, "Port": port or (sshd.port if sshd else None),
            "User": user or (sshd.user if sshd else None), "IdentityFile": identity,
            "IdentitiesOnly": "yes" if identity else None, "UserKnownHostsFile": known_hosts,
            "StrictHostKeyChecking": strict, **(extra or {})}
    items = hosts.items() if isinstance(hosts, dict) else ((h, {}) for h in hosts)
    with open(path, "a" if append else "w") as f:
        f.write("".join(ssh_config_entry(a, **{**base, **(o or {})}) for a, o in items))
    return path

def add_ssh_config_entry(path, alias, **options):
    """Append one Host block (e.g. a tarpit, refused port or nonexistent.invalid alias)."""
    with open(path, "a") as f:
        f.write(ssh_config_entry(alias, **options))
    return path

# ------------------------------------------------------------------ running things
def base_env(workdir=None, extra=None):
    """Clean env: HOME=fake home, PATH, LANG=C.UTF-8, USER/LOGNAME, TMPDIR=workdir, plus
    SSHMUX_CRYPTO and sanitizer options if set. No SSH_AUTH_SOCK unless in extra; extra keys
    mapped to None are removed."""
    wd = workdir or _current_workdir or Workdir()
    user = pwd.getpwuid(os.geteuid()).pw_name
    env = {"HOME": wd.home, "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
           "LANG": "C.UTF-8", "USER": user, "LOGNAME": user, "TMPDIR": wd.path}
    env.update({k: os.environ[k] for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS",
                                           "SSHMUX_CRYPTO") if k in os.environ})
    env.update(extra or {})
    return {k: v for k, v in env.items() if v is not None}

def sshmux_bin():
    """Path of the sshmux binary from $SSHMUX; skip() if unset or not executable."""
    p = os.environ.get("SSHMUX", "")
    if not p or not os.access(p, os.X_OK):
        skip(f"SSHMUX not set or not executable: {p!r}")
    return p

def run(cmd, env=None, input=None, timeout=60, workdir=None):
    """Run cmd (text mode, stdout/stderr captured, stdin /dev/null unless input) in a new
    session with base_env(workdir, env) -> CompletedProcess. Leftovers in its process group are
    killed when it returns; on timeout the whole tree is killed and Failure raised with the
    partial output."""
    p = subprocess.Popen(cmd, env=base_env(workdir, env), text=True, start_new_session=True,
                         stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    kill = on_cleanup(lambda: kill_tree(p.pid, p), f"pid {p.pid}")
    try:
        out, err = p.communicate(input, timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_tree(p.pid, p)
        out, err = p.communicate()
        raise Failure(f"timeout after {timeout}s: {cmd!r}\n--- stdout\n{out}\n--- stderr\n{err}")
    finally:
        run_cleanup(kill)
    return subprocess.CompletedProcess(cmd, p.returncode, out, err)

def run_sshmux(args, env=None, input=None, timeout=60, workdir=None):
    """run([$SSHMUX] + args, ...) -> CompletedProcess (text; .stdout, .stderr, .returncode)."""
    return run([sshmux_bin()] + list(args), env, input, timeout, workdir)

def spawn(cmd, env=None, workdir=None, grace=0, **popen_kw):
    """Start cmd in the background (new session, base_env, pipes, text) -> Popen. At exit it
    gets SIGTERM and `grace` seconds to finish (if grace), then its tree is killed. Note:
    readline() on a text pipe may buffer ahead of what communicate() returns later; pass
    text=False, bufsize=0 if you mix them."""
    kw = dict(stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    p = subprocess.Popen(cmd, env=base_env(workdir, env), start_new_session=True,
                         **{**kw, **popen_kw})

    def stop():
        if grace and p.poll() is None:
            p.terminate()
            with suppress(subprocess.TimeoutExpired):
                p.wait(timeout=grace)
        kill_tree(p.pid, p)
    on_cleanup(stop, f"pid {p.pid}")
    return p

def json_lines(stdout):
    """Parse JSON-lines output (blank lines ignored) -> list; Failure names the bad line."""
    out = []
    for i, line in enumerate(stdout.splitlines(), 1):
        if line.strip():
            try:
                out.append(json.loads(line))
            except ValueError as e:
                raise Failure(f"line {i} is not JSON ({e}): {line!r}\n--- output\n{stdout}")
    return out

def openssh_cmd(sshd, identity=None, known_hosts="/dev/null", user=None, remote=("echo", "ok"),
                options=None, batch=True):
    """argv for OpenSSH's ssh to sshd without any user config (-F /dev/null), strict host key
    checking against known_hosts, only `identity` (if given), extra -o `options` dict."""
    cmd = ["ssh", "-F", "/dev/null", "-p", str(sshd.port), "-o", f"UserKnownHostsFile={known_hosts}",
           "-o", "GlobalKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=yes",
           "-o", "ConnectTimeout=10", "-o", f"BatchMode={'yes' if batch else 'no'}"]
    if identity:
        cmd += ["-i", identity, "-o", "IdentitiesOnly=yes"]
    for k, v in (options or {}).items():
        cmd += ["-o", f"{k}={v}"]
    return cmd + [f"{user or sshd.user}@{sshd.host}", "--"] + list(remote)
