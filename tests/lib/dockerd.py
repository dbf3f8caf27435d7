"""A private Docker daemon for the `sshmux docker` tests and benchmark (python3 stdlib only).

Dockerd(workdir, group=None) starts Debian's /usr/sbin/dockerd (package docker.io) as a second,
throwaway daemon that cannot collide with a system one:
- its own containerd, started here with a config whose root, state, sockets and plugin dirs all
  lie in the fixture's directory, and handed to dockerd with --containerd: a dockerd left to
  itself would use the system containerd whenever /run/containerd/containerd.sock exists (and
  share its "moby" namespace with the system dockerd);
- API socket, data root, exec root, pid file, trust key and daemon.json in the same directory
  (--config-file: a system /etc/docker/daemon.json is not read);
- no networking it could change on the host: --bridge=none --iptables=false --ip-masq=false
  (containers run with --network none); storage driver vfs (works on any filesystem, no
  overlayfs mounts).
Stopping it (a registered cleanup, LIFO before the Workdir's removal): SIGTERM to dockerd, a
bounded wait, SIGKILL; the same for containerd; then containerd-shim processes still serving
this containerd are killed and their sockets (containerd 1.6 puts them in /run/containerd/s/,
whatever its state dir) removed; then everything still mounted under the fixture's directory
(exec-root/netns/default and the like, from /proc/mounts) is unmounted, deepest first; empty
/run/containerd/s, /run/docker/plugins left behind are removed when this run created them.

The docker CLI: /usr/bin/docker (Debian's, what CI has) when present, else the first `docker` on
PATH; docker_cli() says which. Images: import_busybox() builds a one-layer image from the static
busybox of busybox-static (sh, cat, echo, sleep, true) and `docker import`s it, no registry.

Needs root (dockerd, mounts, namespaces); reason() says why it cannot run, and Dockerd() calls
fixture.skip() with that reason.
"""
import ctypes
import grp
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import time
from contextlib import suppress

import fixture

DOCKERD = "/usr/sbin/dockerd"
CONTAINERD = "/usr/bin/containerd"
BUSYBOX = "/bin/busybox"          # busybox-static's binary (Debian 12)
IMAGE = "sshmux-busybox:latest"
APPLETS = ("sh", "cat", "echo", "sleep", "true")
SHIM_SOCKET_DIR = "/run/containerd/s"


def docker_cli():
    """Path of the docker CLI to use: Debian's /usr/bin/docker when installed, else PATH's."""
    if os.access("/usr/bin/docker", os.X_OK):
        return "/usr/bin/docker"
    return shutil.which("docker") or ""


def reason():
    """'' when a private dockerd can run here, else why not."""
    if os.geteuid() != 0:
        return f"not root (uid {os.geteuid()}): dockerd needs root"
    missing = [p for p in (DOCKERD, CONTAINERD) if not os.access(p, os.X_OK)]
    missing += [] if docker_cli() else ["docker CLI"]
    missing += [] if shutil.which("runc", path="/usr/sbin:/usr/bin:/sbin:/bin") else ["runc"]
    if missing:
        return f"missing {', '.join(missing)} (Debian: apt-get install docker.io; " \
               "scripts/install-deps.sh)"
    return ""


def _unescape_mount(path):
    """/proc/mounts escapes space, tab, newline and backslash as octal (\\040)."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), path)


def mounts_under(top):
    """Mount points at or below directory top (from /proc/mounts), deepest first."""
    top = os.path.realpath(top).rstrip("/") + "/"
    with open("/proc/mounts") as f:
        points = [_unescape_mount(line.split()[1]) for line in f if line.strip()]
    return sorted({p for p in points if (p.rstrip("/") + "/").startswith(top)},
                  key=lambda p: -p.count("/"))


_libc = None


def umount_detach(path):
    """umount2(path, MNT_DETACH); True when it went (or nothing was mounted there)."""
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    if _libc.umount2(os.fsencode(path), 2) == 0:
        return True
    return ctypes.get_errno() in (22, 2)   # EINVAL: not a mount point; ENOENT: gone


def _cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().split(b"\0")
    except OSError:
        return []


def _pids_with_arg(needle):
    """Processes any of whose argv elements contains needle (bytes)."""
    out = []
    for d in filter(str.isdigit, os.listdir("/proc")):
        if int(d) != os.getpid() and any(needle in a for a in _cmdline(d)):
            out.append(int(d))
    return out


def _unix_paths_of(pid):
    """Paths of the Unix sockets pid has open and bound (matched through /proc/net/unix)."""
    inodes = set()
    with suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with suppress(OSError):
                m = re.fullmatch(r"socket:\[(\d+)\]", os.readlink(f"/proc/{pid}/fd/{fd}"))
                if m:
                    inodes.add(m.group(1))
    out = set()
    with suppress(OSError), open(f"/proc/{pid}/net/unix") as f:
        for row in f.read().splitlines()[1:]:
            cols = row.split()
            if len(cols) >= 8 and cols[6] in inodes and cols[7].startswith("/"):
                out.add(cols[7])
    return out


def _stop_process(proc, name, grace):
    """SIGTERM, wait up to grace seconds, SIGKILL, reap."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        print(f"dockerd fixture: {name} ignored SIGTERM for {grace}s, killing it",
              file=sys.stderr)
        fixture.kill_tree(proc.pid, proc)


class Dockerd:
    """A private dockerd + containerd in workdir/dockerd-<n>/ (made 0711 so that a TestUser can
    reach the API socket). group: the group owning the API socket (mode 0660): the login user
    of the tests' sshd must be in it; default: the current user's primary group.
    Attributes: dir, socket (path), host ("unix://PATH"), cli (docker CLI path), log_path,
    containerd_log_path, proc, containerd."""
    _seq = 0

    def __init__(self, workdir, group=None, start_timeout=60):
        why = reason()
        if why:
            fixture.skip(f"private dockerd unavailable: {why}")
        Dockerd._seq += 1
        self.workdir, self.cli = workdir, docker_cli()
        self.dir = workdir.mkdir(f"dockerd-{Dockerd._seq}", 0o711)
        os.chmod(self.dir, 0o711)
        os.chmod(workdir.path, os.stat(workdir.path).st_mode | 0o011)   # traversable
        self.socket = os.path.join(self.dir, "docker.sock")
        self.host = "unix://" + self.socket
        self.log_path = os.path.join(self.dir, "dockerd.log")
        self.containerd_log_path = os.path.join(self.dir, "containerd.log")
        self.proc = self.containerd = None
        self._run_dirs = [d for d in (SHIM_SOCKET_DIR, "/run/containerd", "/run/docker/plugins",
                                      "/run/docker") if not os.path.exists(d)]
        self.group = group or grp.getgrgid(os.getegid()).gr_name
        fixture.on_cleanup(self.stop, f"dockerd {self.dir}")
        self._start_containerd(start_timeout)
        self._start_dockerd(start_timeout)

    # ---------------------------------------------------------------- starting
    def _path(self, *parts):
        return os.path.join(self.dir, *parts)

    def _start_containerd(self, timeout):
        d = self._path("containerd")
        os.makedirs(d, mode=0o711, exist_ok=True)
        self.containerd_socket = os.path.join(d, "containerd.sock")
        conf = os.path.join(d, "config.toml")
        # The opt plugin would create /opt/containerd; CRI is not needed by dockerd.
        with open(conf, "w") as f:
            f.write(f'version = 2\nroot = "{d}/root"\nstate = "{d}/state"\n'
                    'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
                    f'[grpc]\n  address = "{self.containerd_socket}"\n'
                    f'[ttrpc]\n  address = "{self.containerd_socket}.ttrpc"\n'
                    f'[debug]\n  address = "{d}/debug.sock"\n'
                    '[metrics]\n  address = ""\n'
                    f'[plugins."io.containerd.internal.v1.opt"]\n  path = "{d}/opt"\n')
        with open(self.containerd_log_path, "ab") as log:
            self.containerd = subprocess.Popen([CONTAINERD, "--config", conf], stdin=subprocess.DEVNULL,
                                               stdout=log, stderr=log, start_new_session=True)
        fixture.wait_until(lambda: self._died("containerd", self.containerd,
                                              self.containerd_log_path)
                           or self._listens(self.containerd_socket), timeout,
                           f"containerd's socket {self.containerd_socket}")

    def _start_dockerd(self, timeout):
        conf = self._path("daemon.json")
        with open(conf, "w") as f:
            # The 20.10 trust key would go to /etc/docker/key.json; containers still running at
            # stop() (a test's cut connection) get 1 s after SIGTERM, not 10.
            f.write('{"deprecated-key-path": "%s", "shutdown-timeout": 1}\n'
                    % self._path("key.json"))
        argv = [DOCKERD, "--config-file", conf, "--containerd", self.containerd_socket,
                "--iptables=false", "--ip-masq=false", "--bridge=none", "--storage-driver=vfs",
                "-H", self.host, "--data-root", self._path("data"),
                "--exec-root", self._path("exec"), "--pidfile", self._path("docker.pid"),
                "--group", self.group]
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": self.dir, "LANG": "C.UTF-8",
               "XDG_RUNTIME_DIR": self.dir}
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         env=env, start_new_session=True)
        t0 = time.monotonic()
        fixture.wait_until(lambda: self._died("dockerd", self.proc, self.log_path)
                           or self._answers(), timeout,
                           f"`docker -H {self.host} version`; dockerd log:\n{self.log_tail()}",
                           interval=0.2)
        self.start_seconds = time.monotonic() - t0

    @staticmethod
    def _died(name, proc, log_path):
        if proc.poll() is not None:
            with open(log_path, errors="replace") as f:
                tail = "".join(f.readlines()[-30:])
            raise RuntimeError(f"{name} exited with {proc.returncode} at startup:\n{tail}")
        return False

    @staticmethod
    def _listens(path):
        with suppress(OSError), socket.socket(socket.AF_UNIX) as s:
            s.settimeout(2)
            s.connect(path)
            return True
        return False

    def _answers(self):
        if not self._listens(self.socket):
            return False
        r = subprocess.run([self.cli, "-H", self.host, "version", "--format",
                            "{{.Server.Version}}"], capture_output=True, text=True, timeout=20,
                           stdin=subprocess.DEVNULL, env=self.env())
        return r.returncode == 0 and r.stdout.strip()

    # ---------------------------------------------------------------- using
    def env(self, extra=None):
        """Environment for a docker CLI talking to this daemon directly (fake HOME: no user
        ~/.docker/config.json, contexts or credential helpers)."""
        return fixture.base_env(self.workdir, dict({"DOCKER_HOST": self.host}, **(extra or {})))

    def docker(self, *args, input=None, timeout=60):
        """Run `docker ARGS` against this daemon directly -> CompletedProcess."""
        return fixture.run([self.cli] + list(args), env={"DOCKER_HOST": self.host},
                           input=input, timeout=timeout, workdir=self.workdir)

    def version(self):
        """(client version, server version) as the docker CLI reports them."""
        r = self.docker("version", "--format", "{{.Client.Version}} {{.Server.Version}}")
        return tuple(r.stdout.split()) if r.returncode == 0 else ("?", "?")

    def import_busybox(self, tag=IMAGE):
        """Build a rootfs of busybox + applet symlinks as a tar and `docker import` it as tag
        (no registry needed); returns tag."""
        if not os.access(BUSYBOX, os.X_OK):
            fixture.skip(f"{BUSYBOX} missing (Debian: apt-get install busybox-static)")
        tar_path = self._path("busybox-rootfs.tar")
        with tarfile.open(tar_path, "w") as tar:
            for d in ("bin", "tmp", "proc", "sys", "dev", "etc"):
                ti = tarfile.TarInfo(d)
                ti.type, ti.mode = tarfile.DIRTYPE, 0o1777 if d == "tmp" else 0o755
                tar.addfile(ti)
            tar.add(BUSYBOX, "bin/busybox")
            for a in APPLETS:
                ti = tarfile.TarInfo(f"bin/{a}")
                ti.type, ti.linkname, ti.mode = tarfile.SYMTYPE, "busybox", 0o777
                tar.addfile(ti)
        r = self.docker("import", "--change", 'CMD ["/bin/sh"]', tar_path, tag, timeout=120)
        if r.returncode != 0:
            raise RuntimeError(f"docker import failed ({r.returncode}): {r.stderr}")
        return tag

    def log_tail(self, n=30):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    # ---------------------------------------------------------------- stopping
    def stop(self):
        """Stop dockerd, then containerd and any shim of theirs, unmount what is left under
        the fixture's directory and remove the shims' sockets. Idempotent."""
        _stop_process(self.proc, "dockerd", 20)
        self.proc = None
        _stop_process(self.containerd, "containerd", 10)
        self.containerd = None
        # Shims outlive containerd by design (they are reparented); ours name its socket.
        for pid in _pids_with_arg(self._path("containerd").encode()):
            socks = {p for p in _unix_paths_of(pid) if p.startswith(SHIM_SOCKET_DIR + "/")}
            fixture.kill_tree(pid)
            for p in socks:
                with suppress(OSError):
                    os.unlink(p)
        for m in mounts_under(self.dir):
            if not umount_detach(m):
                print(f"dockerd fixture: cannot unmount {m}: errno {ctypes.get_errno()}",
                      file=sys.stderr)
        for d in self._run_dirs:   # created by this run; left alone if anything is in them
            with suppress(OSError):
                os.rmdir(d)
