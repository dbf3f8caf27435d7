"""Fault injection for the fault suite: end, reset or freeze the connections a real sshd serves.

Three ways a connection dies, as an operator meets them:
  kill_connections(sshd)        the sshd processes serving connections get SIGKILL (a crashed or
                                OOM-killed server): the client sees EOF or a reset;
  reset_connections(port)       the kernel destroys the TCP sockets (`ss -K`, a middlebox or a
                                reboot): the client sees ECONNABORTED/ECONNRESET at once;
  stop_connections(sshd)        the serving processes get SIGSTOP (a hung or partitioned server):
                                the TCP connection stays up and nothing ever answers; only a
                                keepalive or a timeout can tell. resume_connections() undoes it.
The listener itself is left alone, so new connections (retries) still reach the server.
connection_pids(sshd, client_port) narrows the first and the last to one connection among
several (reset_connections(client_port) the second).
"""
import os
import re
import signal
import subprocess
from contextlib import suppress

import fixture


def serving_pids(sshd):
    """Every process under the sshd listener (per-connection monitors, their privsep children
    and the sessions they run), not the listener itself."""
    if sshd.proc is None:
        return []
    return sorted(fixture.descendants(sshd.proc.pid))


def running(sshd, *argv):
    """How many of sshd's session processes run exactly argv (their /proc cmdline), e.g.
    ("sleep", "60"): for waiting until every host is inside a given command."""
    want, n = [a.encode() for a in argv], 0
    for pid in serving_pids(sshd):
        with suppress(OSError):
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                n += f.read().split(b"\0")[:len(want)] == want
    return n


def connection_pids(sshd, client_port, host=fixture.LOOPBACK):
    """The processes serving the one connection of sshd that comes from client_port: the
    per-connection process the listener forked for it and all below it (its privsep child may
    be the one holding the socket)."""
    out = subprocess.run(["ss", "-Htnp", "state", "established", "src", f"{host}:{sshd.port}",
                          "dst", f"{host}:{client_port}"], capture_output=True, text=True,
                         timeout=10).stdout
    tops = set()
    for pid in map(int, re.findall(r"pid=(\d+)", out)):
        while pid > 1 and _parent(pid) not in (sshd.proc.pid, None):
            pid = _parent(pid)
        if _parent(pid) == sshd.proc.pid:
            tops.add(pid)
    return sorted(tops | {d for t in tops for d in fixture.descendants(t)})


def _parent(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def _signal_all(pids, sig):
    for p in pids:
        with suppress(ProcessLookupError, PermissionError):
            os.kill(p, sig)
    return len(pids)


def kill_connections(sshd, sig=signal.SIGKILL):
    """Signals every process serving a connection of sshd; returns how many were signalled."""
    return _signal_all(serving_pids(sshd), sig)


def stop_connections(sshd):
    """SIGSTOPs every serving process (resume_connections() is registered as a cleanup)."""
    pids = serving_pids(sshd)
    fixture.on_cleanup(lambda: _signal_all(pids, signal.SIGCONT), "resume stopped sshd")
    return _signal_all(pids, signal.SIGSTOP)


def resume_connections(sshd):
    return _signal_all(serving_pids(sshd), signal.SIGCONT)


def reset_connections(port, host=fixture.LOOPBACK):
    """Destroys every TCP socket to or from host:port with `ss -K` (needs root and a kernel with
    INET_DIAG_DESTROY). Returns how many sockets ss listed (both ends of loopback connections)."""
    if os.geteuid() != 0:
        fixture.skip("ss -K needs root")
    out = ""
    for side in ("dport", "sport"):
        r = subprocess.run(["ss", "-K", "-t", "-n", "dst" if side == "dport" else "src", host,
                            side, "=", str(port)], capture_output=True, text=True, timeout=10)
        out += r.stdout
    return sum(1 for line in out.splitlines() if line and not line.startswith(("State", "Netid")))


def fd_count(pid):
    """Open descriptors of a live process."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def fd_targets(pid):
    """What each descriptor of pid points at (for a message when a count grew)."""
    out = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with suppress(OSError):
            out[int(fd)] = os.readlink(f"/proc/{pid}/fd/{fd}")
    return out


def wait_size(path, at_least, timeout=60):
    """Poll (finely: loopback moves hundreds of MiB/s) until path holds at_least bytes: a
    transfer caught mid-file."""
    def big_enough():
        try:
            return os.path.getsize(path) >= at_least
        except OSError:
            return False
    fixture.wait_until(big_enough, timeout, f"{path} to reach {at_least} bytes", interval=0.003)
