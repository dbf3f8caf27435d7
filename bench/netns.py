"""--latency MS [--loss PCT]: a fleet behind a slow (and lossy) network link.

Two network namespaces of our own, joined by tests/lib/wire.py's user-space wire (a TAP device in
each and the smx-wire relay between them: no netem qdisc needed); nothing in the host's own
network namespace is touched (no addresses, no routes, no qdiscs):
    <cli ns> 10.213.0.2  <-- smx-wire: MS/2 ms and PCT % loss each way -->  10.213.0.1 <srv ns>
sshd runs inside the server namespace, every tool inside the client namespace (ip netns exec),
so the only targets are that namespace's own addresses. Every round trip gets MS ms longer.
Everything is removed at exit.
"""
import contextlib
import os
import socket
import statistics
import threading
import time

import fleet  # noqa: F401  (puts tests/lib on sys.path)
import fixture
import wire

SRV_ADDR, CLI_ADDR = wire.SRV_ADDR, wire.CLI_ADDR


class Netns:
    """The namespace pair and the wire (attribute wire); cli, srv: the namespaces' names."""

    def __init__(self, delay_ms, loss_pct=0.0):
        self.delay_ms, self.loss_pct = delay_ms, loss_pct
        self.wire = wire.Wire(delay_ms / 2, loss_pct / 100)
        self.cli, self.srv = self.wire.cli, self.wire.srv

    def describe(self):
        return (f"smx-wire (tests/lib/wire.py) {self.delay_ms / 2:g} ms each way"
                + (f", {self.loss_pct:g} % loss each way" if self.loss_pct else "")
                + f", seed {self.wire.seed}")

    def rtt_ms(self, port, tries=5):
        """Median TCP connect time from the client namespace to SRV_ADDR:port (ms)."""
        try:
            return statistics.median(self.wire.connect_ms(port, tries))
        except OSError:
            return None


class NsSshd(wire.Sshd):
    """fixture.Sshd, but listening on SRV_ADDR inside the server namespace."""

    def __init__(self, netns, workdir, keys, **kw):
        super().__init__(netns.wire, workdir, keys, **kw)


def probe(delay_ms, loss_pct=0.0):
    """(Netns(delay_ms, loss_pct), "") or (None, reason) if no wire can be built here."""
    why = wire.reason()
    if why:
        return None, why
    try:
        return Netns(delay_ms, loss_pct), ""
    except (RuntimeError, OSError) as e:
        return None, str(e)


def _proc_cpu_s(pid, children=False):
    """utime+stime of pid in seconds (+ its reaped children's with children=True); None if
    it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    ticks = int(fields[11]) + int(fields[12])   # utime, stime (fields 14, 15 of stat(5))
    if children:
        ticks += int(fields[13]) + int(fields[14])   # cutime, cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def machine_cpu():
    """(busy, total) jiffies of all CPUs from /proc/stat: busy is everything but idle and
    iowait, whoever spent it (this machine is shared)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v) - v[3] - v[4], sum(v)


class Pinger:
    """One TCP connection through the wire (client ns -> an echo socket in the server ns) that
    sends one byte every `interval` s and times its echo: the round trip a connection sees
    through the relay right now, queueing included. Runs in a thread between start() and
    stop(); samples_ms holds the round trips of the last start()..stop()."""

    def __init__(self, ns, interval=0.1):
        self.interval, self.samples_ms, self.lost = interval, [], 0
        with ns.wire.inside("srv"):
            self._lsock = socket.create_server((SRV_ADDR, 0))
        port = self._lsock.getsockname()[1]
        self._lsock.settimeout(30)
        with ns.wire.inside("cli"):
            self._csock = socket.create_connection((SRV_ADDR, port), 30)
        self._ssock, _ = self._lsock.accept()
        for s in (self._csock, self._ssock):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._echo = threading.Thread(target=self._echo_loop, daemon=True)
        self._echo.start()
        self._stop, self._thread = threading.Event(), None
        fixture.on_cleanup(self.close, "wire pinger")

    def _echo_loop(self):
        try:
            while True:
                b = self._ssock.recv(64)
                if not b:
                    return
                self._ssock.sendall(b)
        except OSError:
            return

    def ping_ms(self, timeout=10):
        """One round trip (ms); None if no echo within timeout."""
        self._csock.settimeout(timeout)
        t = time.monotonic()
        try:
            self._csock.sendall(b"p")
            if not self._csock.recv(64):
                return None
        except OSError:
            return None
        return (time.monotonic() - t) * 1e3

    def _loop(self):
        while not self._stop.wait(self.interval):
            ms = self.ping_ms()
            if ms is None:
                self.lost += 1
            else:
                self.samples_ms.append(ms)

    def start(self):
        self.samples_ms, self.lost = [], 0
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def stop(self):
        self._stop.set()
        if self._thread:
            self._thread.join(15)
        return self.samples_ms

    def close(self):
        self._stop.set()
        for s in (self._csock, self._ssock, self._lsock):
            with contextlib.suppress(OSError):
                s.close()


def pct(vals, p):
    """The p-th percentile (nearest rank) of vals; None if empty."""
    if not vals:
        return None
    s = sorted(vals)
    return s[min(len(s) - 1, max(0, int(round(p / 100 * len(s) + 0.5)) - 1))]


class WireWatch:
    """What the wire and the server side did during one tool invocation: the relay's CPU
    (its process's utime+stime) and frames (both directions, from its counters), a connection's
    round trip through it every 0.1 s (Pinger), and the sshd's CPU (the listener's own plus its
    reaped children's: every per-connection fork, once reaped)."""

    def __init__(self, ns, sshd):
        self.ns, self.sshd = ns, sshd
        self.pinger = Pinger(ns)
        idle = [self.pinger.ping_ms() for _ in range(20)]
        self.idle_ms = [x for x in idle if x is not None]

    def _snap(self):
        st = self.ns.wire.stats()
        frames = sum(v for k, v in st.items() if k.endswith("_in"))
        return (time.monotonic(), _proc_cpu_s(self.ns.wire.proc.pid), frames,
                _proc_cpu_s(self.sshd.proc.pid, children=True), st)

    def begin(self):
        self._t0 = self._snap()
        self._m0 = self._m1 = machine_cpu()
        self.pinger.start()

    def tool_done(self):
        """Marks the end of the tool's run (for the machine's busy share)."""
        self._m1 = machine_cpu()

    def end(self):
        """{relay_cpu_s, relay_frames, relay_overflow, relay_core_pct, relay_us_per_frame,
        rtt_p50_ms, rtt_p99_ms, rtt_max_ms, rtt_lost, server_cpu_s} over begin()..end(), and
        machine_busy_pct (all CPUs, anyone's use) over begin()..tool_done(). Call it after the
        sshd has reaped the run's connections (bench/run's settle)."""
        rtts = self.pinger.stop()
        t1 = self._snap()
        t0 = self._t0
        wall, cpu, frames = t1[0] - t0[0], t1[1] - t0[1], t1[2] - t0[2]
        over = sum(t1[4][k] - t0[4][k] for k in t1[4] if k.endswith("_overflow"))
        busy, total = (b - a for a, b in zip(self._m0, self._m1))
        return dict(relay_cpu_s=cpu, relay_frames=frames, relay_overflow=over,
                    relay_core_pct=100 * cpu / wall if wall > 0 else None,
                    relay_us_per_frame=1e6 * cpu / frames if frames else None,
                    rtt_p50_ms=pct(rtts, 50), rtt_p99_ms=pct(rtts, 99),
                    rtt_max_ms=max(rtts) if rtts else None, rtt_lost=self.pinger.lost,
                    server_cpu_s=t1[3] - t0[3],
                    machine_busy_pct=100 * busy / total if total else None)
