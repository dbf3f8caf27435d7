"""A slow, lossy network for tests and benches, without the netem qdisc (this kernel has none).

Two network namespaces of our own, each with one TAP device, joined by smx-wire
(tests/tools/smx-wire.c), which holds every frame `delay_ms` and drops a fraction `loss` of them,
in each direction:

    <client ns> smxw0 10.213.0.2 <-- smx-wire: delay, loss, rate --> 10.213.0.1 smxw0 <server ns>

Nothing in the host's own namespace is touched. Neighbours are static and IPv6 is off on the
wire, so every frame it carries was sent by the test (its counters add up exactly).

    w = Wire(delay_ms=50, loss=0.05)       # skip()s when not root / no TAP / no `ip netns`
    sshd = wire.Sshd(w, workdir, keys)      # fixture.Sshd listening on SRV_ADDR in the server ns
    with w.inside("cli"):                   # sockets made and processes started in this block
        fixture.run_sshmux([...])           # belong to the client namespace
    w.stats()  # {"c2s_in": frames read on the client side, "c2s_lost", "c2s_overflow",
               #  "c2s_out", "c2s_wfail", and the same for "s2c_"}

Everything (relay, namespaces) goes away with the fixture's cleanups. The relay binary is
$SMX_WIRE, else tests/smx-wire next to $SSHMUX, else build/*/tests/smx-wire, else compiled with
cc into a temp dir. Start Wires from the main thread: the relay dies with the thread that
started it (PR_SET_PDEATHSIG)."""
import contextlib
import ctypes
import glob
import os
import random
import re
import secrets
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import fixture

SRV_ADDR, CLI_ADDR = "10.213.0.1", "10.213.0.2"
_MAC = {"srv": "02:73:6d:78:00:01", "cli": "02:73:6d:78:00:02"}
_ADDR = {"srv": SRV_ADDR, "cli": CLI_ADDR}
DEV = "smxw0"
HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
_CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def _ip(*args, ns=None, input=None, check=True):
    cmd = ["ip"] + (["-n", ns] if ns else []) + list(args)
    r = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=30)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {r.stderr.strip()}")
    return r


def _setns(fd):
    if _libc.setns(fd, _CLONE_NEWNET) != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"setns: {os.strerror(e)}")


@contextlib.contextmanager
def netns(name):
    """Inside the block the calling thread lives in network namespace `name` (/run/netns/name):
    sockets it creates and processes it starts belong there. Other threads are unaffected."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        target = os.open(f"/run/netns/{name}", os.O_RDONLY | os.O_CLOEXEC)
        try:
            _setns(target)
        finally:
            os.close(target)
        try:
            yield
        finally:
            _setns(own)
    finally:
        os.close(own)


_compiled = []


def relay_path():
    """The smx-wire binary (see the module doc); None if there is none and no cc."""
    cands = [os.environ.get("SMX_WIRE", "")]
    if os.environ.get("SSHMUX"):
        cands.append(os.path.join(os.path.dirname(os.environ["SSHMUX"]), "tests", "smx-wire"))
    cands += sorted(glob.glob(os.path.join(TOP, "build", "*", "tests", "smx-wire")))
    for c in cands + _compiled:
        if c and os.access(c, os.X_OK):
            return c
    cc = shutil.which("cc") or shutil.which("gcc")
    if not cc:
        return None
    d = tempfile.mkdtemp(prefix="smx-wire-")
    fixture.on_cleanup(lambda: shutil.rmtree(d, ignore_errors=True), f"rm {d}")
    out = os.path.join(d, "smx-wire")
    r = subprocess.run([cc, "-O2", "-o", out, os.path.join(TOP, "tests", "tools", "smx-wire.c")],
                       capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise RuntimeError(f"compiling smx-wire: {r.stderr}")
    _compiled.append(out)
    return out


def reason():
    """Why no Wire can be built here ("" if one can)."""
    if not fixture.IS_ROOT:
        return f"not root (uid {os.geteuid()}): network namespaces and TAP devices need root"
    if not os.path.exists("/dev/net/tun"):
        return "no /dev/net/tun (TUN/TAP driver)"
    if not shutil.which("ip"):
        return "no `ip` (iproute2)"
    probe = f"smxw-probe-{os.getpid()}"
    r = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        return f"`ip netns add` failed: {r.stderr.strip()}"
    _ip("netns", "del", probe, check=False)
    return "" if relay_path() else "no smx-wire binary (build tests/, or install cc)"


def _remove_stale():
    """Namespaces left by runs that were SIGKILLed (their relay died with them), and what those
    runs left running inside them (an sshd, an sshmux forward)."""
    for name in os.listdir("/run/netns") if os.path.isdir("/run/netns") else []:
        m = re.fullmatch(r"smxw-(?:cli|srv)-(\d+)-[0-9a-f]+", name)
        if m and not os.path.exists(f"/proc/{m.group(1)}"):
            for pid in _ip("netns", "pids", name, check=False).stdout.split():
                fixture.kill_tree(int(pid))
            _ip("netns", "del", name, check=False)


class Wire:
    """Two namespaces (attributes cli, srv: their names) and the relay between them.
    delay_ms: held per frame in each direction (a round trip gets 2 x delay_ms longer);
    loss: fraction of frames dropped in each direction; rate: bytes/s per direction (None: as
    fast as the relay goes); queue: frames held per direction at most; seed: the loss PRNG's
    (random unless given; attribute seed); mtu: of both TAP devices; cc: the TCP congestion
    control of both namespaces (None: the host's default; "reno" is always allowed in a
    namespace, others only if listed in the host's net.ipv4.tcp_allowed_congestion_control).
    skip()s where reason() says no."""

    def __init__(self, delay_ms=0, loss=0.0, rate=None, queue=None, seed=None, mtu=1500,
                 cc=None):
        why = reason()
        if why:
            fixture.skip(f"no network namespace wire: {why}")
        _remove_stale()
        tag = f"{os.getpid()}-{secrets.token_hex(3)}"
        self.cli, self.srv = f"smxw-cli-{tag}", f"smxw-srv-{tag}"
        self.delay_ms, self.loss = delay_ms, loss
        self.seed = random.randrange(1, 2**32) if seed is None else seed
        self.proc, self.final_stats = None, None
        fixture.on_cleanup(self.stop, f"wire {self.cli}/{self.srv}")
        for ns in (self.cli, self.srv):
            _ip("netns", "add", ns)
        cmd = [relay_path(), "-d", str(delay_ms), "-l", str(loss), "-s", str(self.seed)]
        cmd += (["-r", str(int(rate))] if rate else []) + (["-q", str(queue)] if queue else [])
        self.proc = subprocess.Popen(cmd + [self.cli, DEV, self.srv, DEV], bufsize=0,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, start_new_session=True)
        line = self._line(10)
        if line != "ready":
            self.proc.kill()
            raise RuntimeError(f"smx-wire did not start: {line!r} {self.proc.stderr.read()!r}")
        for side in ("cli", "srv"):
            self._configure(side, mtu, cc)

    def _configure(self, side, mtu, cc):
        peer = "srv" if side == "cli" else "cli"
        ns = getattr(self, side)
        # IPv6 off and a static neighbour: no ND/ARP chatter, only what the test sends
        sysctls = [f"net.ipv6.conf.{DEV}.disable_ipv6=1"]
        sysctls += [f"net.ipv4.tcp_congestion_control={cc}"] if cc else []
        r = subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-qw"] + sysctls,
                           capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            raise RuntimeError(f"sysctl {' '.join(sysctls)} in {ns}: {r.stderr.strip()}")
        _ip("-batch", "-", ns=ns, input="\n".join([
            "link set lo up",
            f"link set {DEV} address {_MAC[side]} mtu {mtu}",
            f"addr add {_ADDR[side]}/24 dev {DEV}",
            f"link set {DEV} up",
            f"neigh replace {_ADDR[peer]} lladdr {_MAC[peer]} dev {DEV} nud permanent"]) + "\n")

    def _line(self, timeout):
        """One line of the relay's stdout (unbuffered pipe), "" at EOF or after timeout s."""
        buf, deadline = b"", time.monotonic() + timeout
        while not buf.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.proc.stdout], [], [], left)[0]:
                break
            b = os.read(self.proc.stdout.fileno(), 1)
            if not b:
                break
            buf += b
        return buf.decode().strip()

    @staticmethod
    def _parse(line):
        if not line.startswith("stats "):
            raise RuntimeError(f"smx-wire: unexpected output {line!r}")
        ren = {"a2b": "c2s", "b2a": "s2c"}   # the relay's side a is the client namespace
        return {ren[k[:3]] + k[3:]: int(v) for k, v in
                (kv.split("=") for kv in line.split()[1:])}

    def stats(self):
        """The relay's counters now (see the module doc)."""
        self.proc.send_signal(signal.SIGUSR1)
        return self._parse(self._line(10))

    def inside(self, side):
        """netns(self.cli) or netns(self.srv): side is "cli" or "srv"."""
        return netns(getattr(self, side))

    def cmd(self, side, argv):
        """argv run inside a side's namespace by `ip netns exec`."""
        return ["ip", "netns", "exec", getattr(self, side)] + list(argv)

    def connect_ms(self, port, n=5, timeout=30):
        """Times (ms) of n TCP connects from the client namespace to SRV_ADDR:port: one round
        trip each, plus retransmission time when a SYN or SYN-ACK is lost."""
        out = []
        with self.inside("cli"):
            for _ in range(n):
                t = time.monotonic()
                socket.create_connection((SRV_ADDR, port), timeout).close()
                out.append((time.monotonic() - t) * 1e3)
        return out

    def stop(self):
        """Stop the relay (final counters in final_stats) and delete both namespaces.
        Idempotent; processes still inside them keep them alive until they exit."""
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                line = self._line(5)
                self.final_stats = self._parse(line) if line.startswith("stats ") else None
            fixture.kill_tree(self.proc.pid, self.proc)
            self.proc = None
        for ns in (self.cli, self.srv):
            if os.path.exists(f"/run/netns/{ns}"):
                _ip("netns", "del", ns, check=False)


class Sshd(fixture.Sshd):
    """fixture.Sshd (same arguments after the wire) listening on SRV_ADDR inside the wire's
    server namespace."""

    def __init__(self, wire, workdir, keys=None, **kw):
        self.wire = wire
        super().__init__(workdir, keys, host=SRV_ADDR, **kw)

    def _start(self, bind_retry=False):
        with self.wire.inside("srv"):   # sshd -t, sshd itself and the banner probe
            return super()._start(bind_retry)

    def count_established_connections(self):
        with self.wire.inside("cli"):   # /proc/thread-self/net: this thread's namespace
            with open("/proc/thread-self/net/tcp") as f:
                rows = f.read().splitlines()[1:]
        want = "%08X:%04X" % (int.from_bytes(socket.inet_aton(SRV_ADDR), "little"), self.port)
        return sum(r.split()[3] == "01" and r.split()[2] == want for r in rows)
