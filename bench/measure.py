"""Run one tool invocation and measure it: wall time, client CPU (user+sys) of its whole process
tree, peak memory; always bounded by a timeout, and everything it started is killed afterwards.

CPU and memory, best source first (the one used is recorded with each row):
  - a cgroup per invocation. cgroup v2 (cpu.stat usage_usec, memory.peak) where writable; on a
    hybrid cgroup v1/v2 host the v2 hierarchy still gives cpu.stat and the v1 memory controller
    gives memory.max_usage_in_bytes. The cgroup also catches processes that escape the tree
    (daemonised, reparented) and lets us kill everything left over.
  - otherwise os.wait4's rusage of the direct child (which includes every descendant it reaped)
    for CPU, and a sampled sum of VmRSS over the process tree for memory.
"""
import os
import re
import signal
import subprocess
import threading
import time
from contextlib import suppress

import fleet  # noqa: F401  (puts tests/lib on sys.path)
import fixture

CG_ROOT = "/sys/fs/cgroup"


def _mounts():
    """{fstype_or_controller: mountpoint} for cgroup mounts."""
    out = {}
    with suppress(OSError):
        with open("/proc/self/mounts") as f:
            for line in f:
                dev, mnt, fstype, opts = line.split()[:4]
                if fstype == "cgroup2":
                    out.setdefault("v2", mnt)
                elif fstype == "cgroup":
                    for o in opts.split(","):
                        if o in ("memory", "cpuacct"):
                            out.setdefault(o, mnt)
    return out


def _own_cgroup(controller):
    """Our cgroup path in the hierarchy of controller ('' = v2)."""
    with suppress(OSError):
        with open("/proc/self/cgroup") as f:
            for line in f:
                _, ctrls, path = line.rstrip("\n").split(":", 2)
                if (controller == "" and ctrls == "") or controller in ctrls.split(","):
                    return path
    return "/"


def _try_mkdir(base):
    """Create base (our benchmark cgroup parent); returns base or None if not permitted."""
    try:
        os.makedirs(base, exist_ok=True)
        probe = os.path.join(base, "probe")
        os.mkdir(probe)
        os.rmdir(probe)
        return base
    except OSError:
        return None


def _read(path):
    with open(path) as f:
        return f.read()


class Cgroups:
    """Per-invocation cgroups under <our cgroup>/sshmux-bench-<pid> in each usable hierarchy."""

    def __init__(self):
        m, tag = _mounts(), f"sshmux-bench-{os.getpid()}"
        self.v2 = self.v1mem = None
        if "v2" in m:
            self.v2 = _try_mkdir(os.path.join(m["v2"] + _own_cgroup(""), tag))
            if self.v2 and not os.path.exists(os.path.join(self.v2, "cpu.stat")):
                os.rmdir(self.v2)
                self.v2 = None
        if "memory" in m:
            self.v1mem = _try_mkdir(os.path.join(m["memory"] + _own_cgroup("memory"), tag))
        for d in (self.v2, self.v1mem):
            if d:
                fixture.on_cleanup(lambda d=d: _rmtree_cgroup(d), f"cgroup {d}")
        self._seq = 0

    def describe(self):
        cpu = "cgroup v2 cpu.stat" if self.v2 else "wait4 rusage (children)"
        if self.v2 and os.path.exists(os.path.join(self.v2, "memory.peak")):
            mem = "cgroup v2 memory.peak"
        elif self.v1mem:
            mem = "cgroup v1 memory.max_usage_in_bytes"
        else:
            mem = "sampled VmRSS sum of the process tree"
        return cpu, mem

    def new(self):
        self._seq += 1
        return Group(self, f"run{self._seq}")


def _rmtree_cgroup(d):
    """Kill whatever is left in d and its children, then rmdir them (deepest first)."""
    for root, dirs, _ in os.walk(d, topdown=False):
        _kill_cgroup(root)
        with suppress(OSError):
            os.rmdir(root)


def _cg_pids(d):
    try:
        return [int(p) for p in _read(os.path.join(d, "cgroup.procs")).split()]
    except (OSError, ValueError):
        return []


def _kill_cgroup(d):
    if os.path.exists(os.path.join(d, "cgroup.kill")):
        with suppress(OSError):
            with open(os.path.join(d, "cgroup.kill"), "w") as f:
                f.write("1")
    for _ in range(50):
        pids = _cg_pids(d)
        if not pids:
            return
        for p in pids:
            with suppress(ProcessLookupError, PermissionError):
                os.kill(p, signal.SIGKILL)
        time.sleep(0.02)


class Group:
    """One invocation's cgroups (v2 and/or v1 memory)."""

    def __init__(self, cgs, name):
        self.dirs = []
        self.v2 = self.mem = None
        if cgs.v2:
            self.v2 = os.path.join(cgs.v2, name)
            os.mkdir(self.v2)
            self.dirs.append(self.v2)
            if os.path.exists(os.path.join(self.v2, "memory.peak")):
                self.mem = os.path.join(self.v2, "memory.peak")
        if cgs.v1mem and not self.mem:
            d = os.path.join(cgs.v1mem, name)
            os.mkdir(d)
            self.dirs.append(d)
            self.mem = os.path.join(d, "memory.max_usage_in_bytes")

    def attach_self(self):
        """In the child between fork and exec: move ourselves into every group."""
        pid = str(os.getpid())
        for d in self.dirs:
            with open(os.path.join(d, "cgroup.procs"), "w") as f:
                f.write(pid)

    def pids(self):
        return _cg_pids(self.dirs[0]) if self.dirs else []

    def cpu(self):
        """(user_s, sys_s) from cpu.stat, or None."""
        if not self.v2:
            return None
        st = dict(l.split() for l in _read(os.path.join(self.v2, "cpu.stat")).splitlines())
        return int(st["user_usec"]) / 1e6, int(st["system_usec"]) / 1e6

    def peak_bytes(self):
        return int(_read(self.mem)) if self.mem else None

    def destroy(self):
        for d in reversed(self.dirs):
            _kill_cgroup(d)
            with suppress(OSError):
                os.rmdir(d)


def _block_signals():
    """Helper threads block SIGINT/SIGTERM/SIGHUP so the kernel delivers them to the main
    thread, interrupting its wait4 at once (Ctrl-C and kill stop the run promptly)."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM, signal.SIGHUP})


class Deadline(threading.Thread):
    """Calls fn() after timeout seconds unless cancel()ed first (a daemon threading.Timer)."""

    def __init__(self, timeout, fn):
        super().__init__(daemon=True)
        self.timeout, self.fn, self._cancel = timeout, fn, threading.Event()

    def run(self):
        _block_signals()
        if not self._cancel.wait(self.timeout):
            self.fn()

    def cancel(self):
        self._cancel.set()


def rss_kib(pid):
    """VmRSS and VmHWM of pid in KiB ((0, 0) if gone)."""
    try:
        txt = _read(f"/proc/{pid}/status")
    except OSError:
        return 0, 0
    val = lambda k: int((re.search(rf"^{k}:\s+(\d+)", txt, re.M) or [0, 0])[1])  # noqa: E731
    return val("VmRSS"), val("VmHWM")


class RssSampler(threading.Thread):
    """Samples the summed VmRSS of a process tree (pids from fn()) every interval seconds."""

    def __init__(self, pids_fn, interval=0.2):
        super().__init__(daemon=True)
        self.pids_fn, self.interval, self.peak_kib = pids_fn, interval, 0
        self._stop = threading.Event()

    def run(self):
        _block_signals()
        while not self._stop.wait(self.interval):
            self.peak_kib = max(self.peak_kib, sum(rss_kib(p)[0] for p in self.pids_fn()))

    def stop(self):
        self._stop.set()
        self.join(timeout=5)


class Drain(threading.Thread):
    """Copies a pipe to a file until EOF."""

    def __init__(self, pipe, path):
        super().__init__(daemon=True)
        self.pipe, self.path = pipe, path
        self.start()

    def run(self):
        _block_signals()
        with open(self.path, "wb") as f:
            while True:
                chunk = self.pipe.read1(1 << 16)
                if not chunk:
                    break
                f.write(chunk)

    def finish(self, timeout=10):
        """Wait for EOF (every writer gone); then close the pipe regardless."""
        self.join(timeout)
        self.pipe.close()
        self.join(1)


class Result:
    """rc (None on timeout), timed_out, wall_s, cpu_s, cpu_user_s, cpu_sys_s, rusage_cpu_s,
    peak_mib (None if unknown), maxrss_mib (wait4's: the tree's largest process), stdout_path,
    stderr_path, stdout (str), stderr (str)."""

    def text(self):
        with open(self.stdout_path, errors="replace") as f:
            self.stdout = f.read()
        with open(self.stderr_path, errors="replace") as f:
            self.stderr = f.read()
        return self


def run(cmd, env, timeout, cgroups, outdir, tag, stdin_path=None, netns=None):
    """Run cmd (argv) under measurement; stdout/stderr go to outdir/tag.{out,err}. Always returns
    a Result; on timeout the whole tree (and cgroup) is killed and rc is None."""
    if netns:
        cmd = ["ip", "netns", "exec", netns] + list(cmd)
    grp = cgroups.new() if cgroups else None
    res = Result()
    res.stdout_path = os.path.join(outdir, tag + ".out")
    res.stderr_path = os.path.join(outdir, tag + ".err")
    stdin = open(stdin_path, "rb") if stdin_path else subprocess.DEVNULL
    # Output goes through pipes that we copy to files: written by the tool straight into a
    # file, 64 KiB x N hosts of page cache would be charged to the tool's memory cgroup.
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, env=env, stdin=stdin, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, start_new_session=True,
                         preexec_fn=grp.attach_self if grp and grp.dirs else None)
    drains = [Drain(p.stdout, res.stdout_path), Drain(p.stderr, res.stderr_path)]
    if stdin_path:
        stdin.close()
    kill = fixture.on_cleanup(lambda: fixture.kill_tree(p.pid), f"pid {p.pid}")
    sampler = None
    if not (grp and grp.mem):
        sampler = RssSampler(grp.pids if grp and grp.dirs else
                             (lambda: [p.pid] + fixture.descendants(p.pid)))
        sampler.start()
    res.timed_out = False

    def on_timeout():
        res.timed_out = True
        fixture.kill_tree(p.pid)
        if grp:
            for d in grp.dirs:
                _kill_cgroup(d)
    timer = Deadline(timeout, on_timeout)
    timer.start()
    try:
        _, status, ru = os.wait4(p.pid, 0)
    finally:
        timer.cancel()
    res.wall_s = time.monotonic() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    res.rc = None if res.timed_out else p.returncode
    fixture.run_cleanup(kill)
    if sampler:
        sampler.stop()
    # Leftovers (e.g. ssh processes whose parent died) are killed before we read the counters
    # so their CPU is included and nothing outlives the measurement.
    if grp:
        for d in grp.dirs:
            _kill_cgroup(d)
    for d in drains:
        d.finish()
    res.rusage_cpu_s = ru.ru_utime + ru.ru_stime
    res.maxrss_mib = ru.ru_maxrss / 1024   # the largest single process of the tree
    cg = grp.cpu() if grp else None
    res.cpu_user_s, res.cpu_sys_s = cg if cg else (ru.ru_utime, ru.ru_stime)
    res.cpu_s = res.cpu_user_s + res.cpu_sys_s
    peak = grp.peak_bytes() if grp else None
    res.peak_mib = (peak / 2**20 if peak is not None
                    else sampler.peak_kib / 1024 if sampler and sampler.peak_kib else None)
    if grp:
        grp.destroy()
    return res.text()
