"""sshmux docker against real OpenSSH sshds and a real, private Docker daemon (tests/lib/dockerd.py:
its own containerd, sockets and storage in the test's temp dir, no networking), driven by the
real docker CLI through the local socket sshmux serves:
- default mode, each accepted connection a session channel running `docker system dial-stdio` on
  the server, the remote daemon taken from the session's DOCKER_HOST (plain alias), from
  --remote RSOCK and from an ssh://alias///RSOCK URL; and --streamlocal (direct-streamlocal to
  RSOCK): docker version, info (the private daemon's root dir: the right daemon), ps, run, and
  run -i with stdin closed early (half-close: all the output arrives, exit 0);
- the `export DOCKER_HOST=unix://...` line, --json, --socket; the socket's directory 0700 and
  the socket 0600, both gone after SIGTERM (exit 0);
- `-- CMD`: CMD runs with DOCKER_HOST set and sshmux exits with CMD's status; 255 without
  running CMD when the host cannot be reached;
- 40 calls 8 at a time over one SSH connection (counted in sshd's log), and the docker CLI's own
  ssh:// helper on the same sshd for comparison (its handshakes are printed, not asserted);
- sshd with MaxSessions 2: 8 concurrent calls (`docker wait`, one API connection each) all
  succeed, sshmux opening further connections when sessions are refused;
- a killed dial-stdio process (one channel) leaves sshmux serving; the connection killed while
  `docker run -i cat` streams ends sshmux with 255 or leaves it serving; never a crash or a
  sanitizer report.
Needs root (dockerd); skipped with the reason otherwise.

The docker CLI is Debian's /usr/bin/docker when installed (what CI has; tests/lib/dockerd.py),
on both ends: the sshds' SetEnv puts its directory first in the sessions' PATH. That CLI (20.10)
rejects a path in an ssh:// DOCKER_HOST ("extra path after the host"), so its helper is pointed
at the sshd whose sessions get DOCKER_HOST=unix://<private socket> through SetEnv (alias denv).
"""
import json
import os
import re
import signal
import stat
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from common import *  # noqa: F403
import dockerd
import faults

B = None   # the Bed, built by the first test that needs it
HANDSHAKE = "Accepted publickey for "
SANITIZER = re.compile(r"ERROR: (Address|Leak|Memory|Thread)Sanitizer|runtime error: ")


class Bed:
    """A private dockerd (busybox image imported), a throwaway login user in the socket's group,
    three sshds: `denv` (sessions get DOCKER_HOST), `dock` (they do not) and `dock2`
    (MaxSessions 2); an ssh_config with those aliases and `down` (a refused port); a bin/ssh
    wrapper that adds -F <that config> for the docker CLI's ssh:// helper."""

    def __init__(self):
        why = dockerd.reason()
        if why:
            fixture.skip(f"private dockerd unavailable: {why}")
        self.wd = fixture.Workdir()
        self.keys = fixture.Keys(self.wd)
        self.user = fixture.TestUser(self.wd).name
        self.docker = dockerd.Dockerd(self.wd, group=self.user)
        self.image = self.docker.import_busybox()
        self.cli, self.rsock = self.docker.cli, self.docker.socket
        self.path = f"{os.path.dirname(self.cli)}:/usr/bin:/bin"
        setenv = f"SetEnv PATH={self.path}"
        self.sshd_env = fixture.Sshd(self.wd, self.keys,
                                     extra_config=f"{setenv} DOCKER_HOST={self.docker.host}\n")
        self.sshd = fixture.Sshd(self.wd, self.keys, extra_config=setenv + "\n")
        self.sshd_max2 = fixture.Sshd(self.wd, self.keys, max_sessions=2,
                                      extra_config=setenv + "\n")
        kh = self.wd.file("known_hosts")
        for i, s in enumerate((self.sshd_env, self.sshd, self.sshd_max2)):
            s.write_known_hosts(kh, append=i > 0)
        self.cfg = fixture.write_ssh_config(
            self.wd.file("ssh_config"), {"denv": {"Port": self.sshd_env.port},
                                         "dock": {"Port": self.sshd.port},
                                         "dock2": {"Port": self.sshd_max2.port},
                                         "down": {"Port": fixture.refused_port()}},
            identity=self.keys.ed25519, known_hosts=kh, user=self.user,
            extra={"GlobalKnownHostsFile": "/dev/null", "BatchMode": "yes"})
        bindir = self.wd.mkdir("bin")
        self.wd.file("bin/ssh", f'#!/bin/sh\nexec /usr/bin/ssh -F {self.cfg} "$@"\n', 0o755)
        # The chosen docker CLI first for CMDs and the helper, then the ssh wrapper.
        self.local_path = f"{bindir}:{os.path.dirname(self.cli)}:" + \
            os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")


def bed():
    global B
    if B is None:
        B = Bed()
    return B


# ------------------------------------------------------------------ helpers
def readline(p, timeout=30):
    """p's next stdout line, waiting at most timeout seconds ('' at EOF)."""
    box = []
    t = threading.Thread(target=lambda: box.append(p.stdout.readline()), daemon=True)
    t.start()
    t.join(timeout)
    if not box:
        fixture.kill_tree(p.pid, p)
        raise Failure(f"no line from {p.args!r} within {timeout}s; stderr:\n{p.stderr.read()}")
    return box[0]


class Served:
    """`sshmux docker -F cfg ARGS` running in the background (no CMD): .proc, .socket (local
    path), .line (what it printed)."""

    def __init__(self, *args, json_out=False):
        b = bed()
        # grace: a failed test's cleanup SIGTERMs it, so it removes its socket and directory
        self.proc = fixture.spawn([fixture.sshmux_bin(), "docker", "-F", b.cfg] + list(args),
                                  env={"PATH": b.local_path}, workdir=b.wd, grace=5)
        self.line = readline(self.proc)
        if not self.line:
            raise Failure(f"sshmux docker {args} exited {self.proc.wait(10)} before serving:\n"
                          f"{self.proc.stderr.read()}")
        if json_out:
            obj = json.loads(self.line)
            check_eq(obj.get("docker_host"), "unix://" + obj.get("socket", ""), self.line)
            self.socket, self.json = obj["socket"], obj
        else:
            m = check_match(r"\Aexport DOCKER_HOST=unix://(/\S+)\n\Z", self.line,
                            "the DOCKER_HOST line")
            self.socket = m.group(1)

    @property
    def docker_host(self):
        return "unix://" + self.socket

    def stop(self, expect=0):
        """SIGTERM; checks the exit status and that stderr has no sanitizer report."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(20)
        err = self.proc.stderr.read()
        check_eq(rc, expect, f"sshmux docker's exit status; stderr:\n{err}")
        no_sanitizer_report(err)
        return err


def no_sanitizer_report(err):
    check(not SANITIZER.search(err or ""), f"sanitizer report in sshmux's stderr:\n{err}")


def docker(docker_host, *args, input=None, timeout=90):
    """The docker CLI with DOCKER_HOST=docker_host -> CompletedProcess."""
    b = bed()
    return fixture.run([b.cli] + list(args), env={"DOCKER_HOST": docker_host, "PATH": b.local_path},
                       input=input, timeout=timeout, workdir=b.wd)


def handshakes(sshd):
    return sshd.log_text().count(HANDSHAKE)


def check_calls(dh):
    """The CLI's everyday calls through DOCKER_HOST dh reach the private daemon."""
    b = bed()
    r = docker(dh, "version", "--format", "{{.Server.Version}}")
    check_rc(r, 0, "docker version")
    check_eq(r.stdout.strip(), b.docker.version()[1], "server version through sshmux")
    r = docker(dh, "info", "--format", "{{.DockerRootDir}} {{.Driver}}")
    check_rc(r, 0, "docker info")
    check_eq(r.stdout.split(), [os.path.join(b.docker.dir, "data"), "vfs"],
             "not the private daemon")
    check_rc(docker(dh, "ps", "-a"), 0, "docker ps")
    r = docker(dh, "run", "--rm", "--network", "none", b.image, "echo", "hi")
    check_rc(r, 0, "docker run echo")
    check_eq(r.stdout, "hi\n")
    # Half-close: the CLI sends its stdin, closes its writing side, and still gets cat's output.
    r = docker(dh, "run", "-i", "--rm", "--network", "none", b.image, "cat", input="data\n")
    check_rc(r, 0, "echo data | docker run -i cat")
    check_eq(r.stdout, "data\n")
    big = "".join(f"{i:07d} streamed through sshmux docker\n" for i in range(8192))  # 312 KiB
    r = docker(dh, "run", "-i", "--rm", "--network", "none", b.image, "cat", input=big)
    check_rc(r, 0, "docker run -i cat of 312 KiB")
    check(r.stdout == big, f"cat's output differs: {len(r.stdout)} of {len(big)} bytes")


def check_gone(path):
    check(not os.path.exists(path), f"{path} still exists after SIGTERM")


# ------------------------------------------------------------------ tests
def test_dial_stdio_remote_daemon_from_env_remote_and_url():
    b = bed()
    for args in (["denv"], ["--remote", b.rsock, "dock"], [f"ssh://dock//{b.rsock}"]):
        s = Served(*args)
        check_calls(s.docker_host)
        s.stop()
        check_gone(s.socket)
        check_gone(os.path.dirname(s.socket))


def test_streamlocal():
    b = bed()
    s = Served("--streamlocal", "--remote", b.rsock, "dock")
    check_calls(s.docker_host)
    s.stop()
    # the URL's path is the remote socket of --streamlocal too
    s = Served("--streamlocal", f"ssh://dock//{b.rsock}")
    check_rc(docker(s.docker_host, "ps"), 0, "docker ps via --streamlocal and a URL path")
    s.stop()


def test_socket_modes_json_and_removal_on_sigterm():
    s = Served("denv")
    d = os.path.dirname(s.socket)
    check_eq(oct(stat.S_IMODE(os.stat(d).st_mode)), "0o700", f"mode of {d}")
    st = os.stat(s.socket)
    check(stat.S_ISSOCK(st.st_mode), f"{s.socket} is not a socket")
    check_eq(oct(stat.S_IMODE(st.st_mode)), "0o600", f"mode of {s.socket}")
    check_eq(os.listdir(d), [os.path.basename(s.socket)], "the socket's directory")
    s.stop()
    check_gone(s.socket)
    check_gone(d)
    # --json and --socket PATH: the chosen path, same modes, removed at exit (its dir stays)
    path = os.path.join(bed().wd.mkdir("sock", 0o755), "d.sock")
    s = Served("--json", "--socket", path, "denv", json_out=True)
    check_eq(s.json, {"host": "denv", "socket": path, "docker_host": "unix://" + path})
    check_eq(oct(stat.S_IMODE(os.stat(path).st_mode)), "0o600", f"mode of {path}")
    check_rc(docker(s.docker_host, "ps"), 0, "docker ps via --socket")
    s.stop()
    check_gone(path)


def test_command_gets_docker_host_and_its_status_is_sshmuxs():
    b = bed()
    argv = [fixture.sshmux_bin(), "docker", "-F", b.cfg]
    env = {"PATH": b.local_path}
    r = fixture.run(argv + ["--remote", b.rsock, "dock", "--", "sh", "-c",
                            f"docker ps >/dev/null && docker run --rm --network none {b.image} "
                            "echo from-cmd && echo \"$DOCKER_HOST\" && exit 3"],
                    env=env, timeout=120, workdir=b.wd)
    check_rc(r, 3, "sshmux docker -- CMD exits with CMD's status")
    lines = r.stdout.splitlines()
    check_eq(lines[0], "from-cmd", r.stdout)
    check_match(r"\Aunix:///\S+\Z", lines[1], "CMD's DOCKER_HOST")
    check("export DOCKER_HOST" not in r.stdout, f"the export line is printed with CMD:\n{r.stdout}")
    check_gone(lines[1][len("unix://"):])
    no_sanitizer_report(r.stderr)
    r = fixture.run(argv + ["denv", "--", "docker", "ps"], env=env, timeout=60, workdir=b.wd)
    check_rc(r, 0, "sshmux docker -- docker ps")
    check_match(r"^CONTAINER ID", r.stdout, "docker ps's header")
    # An unreachable host: 255 and CMD never runs.
    marker = b.wd.file("cmd-ran")
    r = fixture.run(argv + ["down", "--", "touch", marker], env=env, timeout=60, workdir=b.wd)
    check_rc(r, 255, "sshmux docker to a refused port")
    check(not os.path.exists(marker), "CMD ran although the connection failed")
    check_in("down", r.stderr, "the host is named")
    no_sanitizer_report(r.stderr)


def run_parallel(fn, n, width):
    with ThreadPoolExecutor(width) as ex:
        return list(ex.map(fn, range(n)))


def test_40_calls_8_at_a_time_over_one_connection_vs_docker_ssh_helper():
    b = bed()
    calls = [["version", "--format", "{{.Server.Version}}"], ["ps"], ["info", "--format",
                                                                       "{{.Containers}}"]]
    before = handshakes(b.sshd_env)
    s = Served("denv")
    t0 = time.monotonic()
    res = run_parallel(lambda i: docker(s.docker_host, *calls[i % 3]), 40, 8)
    t_sshmux = time.monotonic() - t0
    bad = [r for r in res if r.returncode != 0]
    check(not bad, f"{len(bad)} of 40 calls failed through sshmux docker; first:\n"
          f"{bad and (bad[0].args, bad[0].stdout, bad[0].stderr)}")
    n_sshmux = handshakes(b.sshd_env) - before
    check_eq(n_sshmux, 1, "SSH connections sshmux made for 40 calls (MaxSessions 100)")
    s.stop()
    # The docker CLI's own helper: one `ssh ... docker system dial-stdio` per API connection.
    before = handshakes(b.sshd_env)
    t0 = time.monotonic()
    res = run_parallel(lambda i: docker("ssh://denv", *calls[i % 3]), 40, 8)
    t_helper = time.monotonic() - t0
    bad = [r for r in res if r.returncode != 0]
    check(not bad, f"{len(bad)} of 40 calls failed through DOCKER_HOST=ssh://denv; first:\n"
          f"{bad and (bad[0].args, bad[0].stdout, bad[0].stderr)}")
    n_helper = handshakes(b.sshd_env) - before
    check(n_helper >= 40, f"the docker ssh helper made {n_helper} handshakes: not through sshd?")
    print(f"  40 calls, 8 at a time: sshmux docker {n_sshmux} handshake(s) {t_sshmux:.1f}s; "
          f"DOCKER_HOST=ssh:// {n_helper} handshakes {t_helper:.1f}s", flush=True)


def test_max_sessions_2_more_connections_all_calls_succeed():
    # 8 `docker wait`s on one running container: each holds one API connection (the CLI's ping
    # and its wait share it) until the container ends, so 8 session channels are open at once
    # and sshd (MaxSessions 2) refuses all but 2 per connection. (8 concurrent `docker run`s
    # would hold ~24: idle keep-alive, attach and wait each.)
    b = bed()
    r = b.docker.docker("run", "-d", "--network", "none", b.image, "sleep", "4")
    check_rc(r, 0, "docker run -d sleep 4 (directly)")
    cid = r.stdout.strip()
    before = handshakes(b.sshd_max2)
    s = Served("--remote", b.rsock, "dock2")
    t0 = time.monotonic()
    res = run_parallel(lambda i: docker(s.docker_host, "wait", cid), 8, 8)
    wall = time.monotonic() - t0
    for i, r in enumerate(res):
        check_rc(r, 0, f"docker wait {i} with MaxSessions 2")
        check_eq(r.stdout, "0\n", f"docker wait {i}'s output")
    n = handshakes(b.sshd_max2) - before
    refused = b.sshd_max2.log_text().count("no more sessions")
    print(f"  MaxSessions 2, 8 concurrent docker wait: {n} SSH connections (sshd refused "
          f"{refused} session(s)), {wall:.1f}s", flush=True)
    check(refused > 0 and n >= 2, f"{n} SSH connection(s), {refused} sessions refused: the "
          "calls did not overlap, nothing was tested")
    check_rc(docker(s.docker_host, "run", "--rm", "--network", "none", b.image, "echo", "x"), 0,
             "docker run after the burst")
    s.stop()


def streaming_cat(dh):
    """`docker run -i --rm IMG cat` that has echoed a first line back: (proc, reader thread
    result box). The reader keeps reading into the box until EOF."""
    b = bed()
    p = fixture.spawn([b.cli, "run", "-i", "--rm", "--network", "none", b.image, "cat"],
                      env={"DOCKER_HOST": dh, "PATH": b.local_path}, workdir=b.wd,
                      stdin=subprocess.PIPE)
    p.stdin.write("first\n")
    p.stdin.flush()
    check_eq(readline(p, 60), "first\n", "cat's echo of the first line")
    return p


def dial_stdio_pids(sshd):
    return [p for p in faults.serving_pids(sshd)
            if b"dial-stdio" in open(f"/proc/{p}/cmdline", "rb").read()] \
        if sshd.proc else []


def test_killed_channel_then_killed_connection():
    b = bed()
    s = Served("--remote", b.rsock, "dock")
    # One channel's remote process dies: that call fails, sshmux serves on.
    p = streaming_cat(s.docker_host)
    pids = dial_stdio_pids(b.sshd)
    check(pids, "no `docker system dial-stdio` process on the server")
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    rc = p.wait(60)
    check(rc != 0, "docker run -i cat succeeded although its API connection was cut")
    if s.proc.poll() is not None:
        raise Failure(f"sshmux exited ({s.proc.returncode}) when one channel closed; stderr:\n"
                      f"{s.proc.stderr.read()}")
    check_rc(docker(s.docker_host, "version"), 0, "docker version after a channel was cut")
    # The whole connection dies mid-stream: 255, or still serving; never a crash.
    p = streaming_cat(s.docker_host)
    check(faults.kill_connections(b.sshd) > 0, "no sshd process to kill")
    check(p.wait(60) is not None, "the docker client never ended")
    try:
        rc = s.proc.wait(30)
    except subprocess.TimeoutExpired:
        rc = None
    print(f"  connection killed mid-stream: sshmux {'kept serving' if rc is None else f'exited {rc}'}",
          flush=True)
    if rc is None:   # still serving: then it must work (a new connection)
        check_rc(docker(s.docker_host, "version"), 0, "docker version after reconnecting")
        s.stop()
    else:
        err = s.proc.stderr.read()
        check_eq(rc, 255, f"sshmux docker after its connection was killed; stderr:\n{err}")
        no_sanitizer_report(err)
        check_gone(s.socket)


if __name__ == "__main__":
    main([v for k, v in sorted(globals().items()) if k.startswith("test_")])
