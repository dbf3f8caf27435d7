"""Fault suite, forwarding: the connection under `sshmux forward` dies while forwarded
connections of each kind (-L, -D through SOCKS5, -R through the server's listeners) carry data
both ways (a remote generator that never stops, a local reader that
never reads, a local writer that never reads its echo), in each way an operator meets it (sshd
processes SIGKILLed, the TCP connection reset with `ss -K`, the server frozen with SIGSTOP and
found by ServerAlive* keepalives; frozen without keepalives until SIGTERM). sshmux must not
crash, must say the forward was lost, exit 255, remove its Unix sockets and, in a run that goes
on with another host, hold no descriptor opened for the lost one. Also bad -L input that used
to crash or mislead: an unusable bind address, a Unix socket path longer than sun_path; and
channel refusals named by their RFC 4254 reason."""
import os
import signal
import socket
import struct
import subprocess
import threading
import time
from contextlib import suppress

from common import *  # noqa: F403
import faults
import netserv

WD = KEYS = KH = USER = None
SSHD = {}
CRASH_RCS = {128 + s for s in (signal.SIGSEGV, signal.SIGBUS, signal.SIGABRT, signal.SIGILL,
                               signal.SIGFPE)}
GEN = ECHO = None


def generator(c):
    """Sends until the peer goes away, never reads."""
    chunk = os.urandom(64 * 1024)
    while True:
        c.sendall(chunk)


def setup():
    global WD, KEYS, KH, USER, GEN, ECHO
    WD = fixture.Workdir()
    KEYS = fixture.Keys(WD)
    KH = WD.file("known_hosts", "")
    for name in ("victim", "survivor"):
        SSHD[name] = fixture.Sshd(WD, KEYS)
        SSHD[name].write_known_hosts(KH, append=True)
    USER = fleet_user(WD) or SSHD["victim"].user
    GEN = netserv.Server(generator)
    ECHO = netserv.Server(netserv.echo)


def entry(alias, name, **extra):
    return fixture.ssh_config_entry(
        alias, HostName="127.0.0.1", Port=SSHD[name].port, User=USER,
        IdentityFile=KEYS.ed25519, IdentitiesOnly="yes", UserKnownHostsFile=KH,
        StrictHostKeyChecking="yes", **extra)


def config(keepalive):
    ka = {"ServerAliveInterval": 1, "ServerAliveCountMax": 2} if keepalive else {}
    return WD.file(f"cfg-{keepalive}", entry("victim", "victim", **ka) +
                   entry("survivor", "survivor", **ka))


def check_no_crash(rc, err):
    check(rc >= 0 and rc not in CRASH_RCS, f"sshmux died: exit {rc}\n--- stderr\n{err[-6000:]}")
    for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
        check(marker not in err, f"sanitizer report ({marker}):\n{err[-6000:]}")


def sigterm(p, what):
    """SIGTERMs a forward and waits for its end (a Failure naming `what` if it does not come);
    checks it did not crash and returns its stderr."""
    p.send_signal(signal.SIGTERM)
    try:
        _, err = p.communicate(timeout=30)
    except Exception:
        fixture.kill_tree(p.pid, p)
        raise Failure(f"{what} did not end on SIGTERM")
    check_no_crash(p.returncode, err)
    return err


def start(args, lines):
    """sshmux forward ARGS; returns (process, [(host, local), ...]) once `lines` listeners are
    printed."""
    p = fixture.spawn([fixture.sshmux_bin(), "forward"] + args, workdir=WD)
    out = []
    deadline = time.monotonic() + 60
    while len(out) < lines and time.monotonic() < deadline:
        line = p.stdout.readline()
        if not line:
            raise Failure(f"sshmux forward exited early: {p.wait(5)} {p.stderr.read()}")
        if not line.startswith("HOST"):
            out.append(tuple(line.split()[:2]))
    return p, out


def socks_connect(local, dport):
    """A SOCKS5 CONNECT to 127.0.0.1:dport through the -D listener at local."""
    s = socket.create_connection(("127.0.0.1", int(local.rsplit(":", 1)[1])), timeout=30)
    s.sendall(b"\x05\x01\x00")
    check_eq(s.recv(2), b"\x05\x00", "SOCKS5 method choice")
    s.sendall(b"\x05\x01\x00\x01" + socket.inet_aton("127.0.0.1") + struct.pack(">H", dport))
    reply = b""
    while len(reply) < 10:
        d = s.recv(10 - len(reply))
        if not d:
            raise Failure(f"SOCKS reply cut short: {reply!r}")
        reply += d
    check_eq(reply[1], 0, "SOCKS5 reply code")
    return s


def connect(local, dport=None):
    """A connection to a listener: a Unix or TCP -L/-R one (a remote listener's line says
    "remote:ADDR:PORT": the server is on this machine), or through a -D one to dport."""
    if dport is not None:
        return socks_connect(local, dport)
    if local.startswith("remote:"):
        local = local[len("remote:"):]
    if local.startswith("/"):
        s = socket.socket(socket.AF_UNIX)
        s.connect(local)
        return s
    return socket.create_connection(("127.0.0.1", int(local.rsplit(":", 1)[1])), timeout=30)


def listening(local):
    """Whether a local listener still accepts (a lost host's listeners are closed)."""
    try:
        connect(local).close()
        return True
    except OSError:
        return False


class Stream:
    """One forwarded connection reading the generator without pause; `ended` once it got EOF or
    an error (its SSH connection was lost)."""

    def __init__(self, local, dport=None):
        self.read, self.ended = 0, False
        self.sock = connect(local, dport)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        with suppress(OSError):
            while True:
                d = self.sock.recv(1 << 20)
                if not d:
                    break
                self.read += len(d)
        self.ended = True

    def close(self):
        with suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


class Traffic:
    """On the generator listener: one reader that reads all the time, one that never reads.
    On the echo listener: a writer that never reads its echo. Bytes are in flight both ways."""

    def __init__(self, gen_local, echo_local, socks=False, write=True):
        self.written = 0
        self.write = write
        gport, eport = (GEN.port, ECHO.port) if socks else (None, None)
        self.stalled = connect(gen_local, gport)
        self.stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32768)
        self.reader = Stream(gen_local, gport)
        self.writer = connect(echo_local, eport)
        threading.Thread(target=self._write, daemon=True).start()

    @property
    def read(self):
        return self.reader.read

    def _write(self):
        chunk = os.urandom(64 * 1024)
        with suppress(OSError):
            while self.write:
                self.writer.sendall(chunk)
                self.written += len(chunk)

    def wait_flowing(self):
        fixture.wait_until(lambda: self.read > (4 << 20) and
                           (self.written > (4 << 20) or not self.write), 60,
                           "data flowing both ways")

    def close(self):
        self.reader.close()
        for s in (self.stalled, self.writer):
            with suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()


def connected_to(pid, port):
    """Whether pid holds a TCP connection to 127.0.0.1:port (its SSH connection to that sshd)."""
    out = subprocess.run(["ss", "-Htnp", "state", "established", "dst", f"127.0.0.1:{port}"],
                         capture_output=True, text=True).stdout
    return f"pid={pid}," in out


def new_fds(pid, before):
    """Descriptors of pid that were not open (or pointed elsewhere) at `before`. libuv keeps one
    /dev/null open from its first stream on (to shed connections when out of descriptors): a
    -R run makes its first stream with its first forwarded connection."""
    now = faults.fd_targets(pid)
    return {fd: t for fd, t in now.items() if before.get(fd) != t and t != "/dev/null"}


def fault_specs(kind, lpath):
    """(fleet args, single args) for two listeners (generator, echo) of one kind."""
    if kind == "D":
        return ["-D", "0", "-D", "0"], ["-D", "0", "-D", "0"]
    fleet = [f"0:127.0.0.1:{GEN.port}", f"0:127.0.0.1:{ECHO.port}"]
    single = [f"{lpath}:127.0.0.1:{GEN.port}", f"0:127.0.0.1:{ECHO.port}"]
    flag = "-" + kind
    return ([a for spec in fleet for a in (flag, spec)],
            [a for spec in single for a in (flag, spec)])


def run_fault(fault, keepalive=False, settle=30, label="forward", kind="L"):
    """Two forward processes hit by one fault on the victim sshd:
    - `fleet`: victim and survivor hosts (--base-port), traffic through both; it must go on
      with the survivor, holding no descriptor it opened after the baseline;
    - `single`: the victim alone with a TCP and a Unix listener (-L: local, -R: on the server;
      -D: two TCP ones); it must exit 255 and remove the socket it made.
    label: how the loss is reported ("HOST: sshmux: LABEL: ..."). Returns the seconds from the
    fault to the single run's end."""
    cfg = config(keepalive)
    base = free_port_run(4)
    lpath = WD.file(f"fwd-{time.monotonic_ns()}.sock")
    if kind == "R":   # made by the server's login, which cannot enter our workdir
        lpath = f"/tmp/sshmux-rfwd-{time.monotonic_ns()}.sock"
        fixture.on_cleanup(lambda: os.path.exists(lpath) and os.unlink(lpath), "remote socket")
    fleet_specs, single_specs = fault_specs(kind, lpath)
    fleet, ls = start(["-F", cfg, "--base-port", str(base)] + fleet_specs +
                      ["-w", "victim,survivor"], 4)
    single, sls = start(["-F", cfg] + single_specs + ["victim"], 2)
    if kind == "R":
        sls.sort(key=lambda hl: not hl[1].startswith("remote:/"))   # the socket's line first
    check(kind == "D" or os.path.exists(lpath), "the Unix listener exists")
    baseline = faults.fd_targets(fleet.pid)
    by_host = {}
    for host, local in ls:
        by_host.setdefault(host, []).append(local)
    socks = kind == "D"
    # Through -R, a client that never reads the echo and then goes away leaves sshd holding the
    # channel until what that client sent reaches the echo server, which waits to write its echo
    # first (sshd's nchan rules, ssh -R's too): the survivor's writer, closed before the
    # descriptor check, must not leave that state behind. The victim's still writes.
    traffic = [Traffic(*by_host["victim"], socks=socks),
               Traffic(*by_host["survivor"], socks=socks, write=kind != "R"),
               Traffic(sls[0][1], sls[1][1], socks=socks)]
    for t in traffic:
        t.wait_flowing()
    t0 = time.monotonic()
    check(fault(SSHD["victim"]) > 0, "the fault hit nothing")
    try:
        _, serr = single.communicate(timeout=settle)
    except Exception:
        fixture.kill_tree(single.pid, single)
        raise Failure(f"the victim's forward did not end within {settle} s of the fault")
    noticed = time.monotonic() - t0
    # The fleet run notices the loss on its own clock (keepalives: seconds after the fault, not
    # when the single run did), and a lost host's listeners close. A frozen server stays frozen
    # until then: resumed earlier, it would answer the fleet run's next keepalive.
    # (-R's listeners are the server's, and a frozen one still accepts: its SSH connection
    # going is the sign there.)
    if kind != "R":
        fixture.wait_until(lambda: not any(listening(local) for local in by_host["victim"]),
                           settle, "the fleet run's victim listeners closed")
    else:
        fixture.wait_until(lambda: not connected_to(fleet.pid, SSHD["victim"].port), settle,
                           "the fleet run's victim connection closed")
    faults.resume_connections(SSHD["victim"])
    check_no_crash(single.returncode, serr)
    check_eq(single.returncode, 255, f"exit status\n{serr[-3000:]}")
    if kind == "L":
        check(not os.path.exists(lpath), "the Unix socket was left behind")
    check_in(f"victim: sshmux: {label}: ", serr, "the loss is labelled as the forward's")
    # The fleet run lost one host and keeps the other: the survivor still flows...
    survivor = traffic[1]
    n = survivor.read
    fixture.wait_until(lambda: survivor.read > n + (1 << 20), 30, "the survivor still forwards")
    for t in traffic:
        t.close()
    # ...and once the victim's end has settled, nothing opened since the baseline is left.
    try:
        fixture.wait_until(lambda: not new_fds(fleet.pid, baseline), settle, "descriptors freed")
    except Failure:
        raise Failure(f"descriptors left after the fault: {new_fds(fleet.pid, baseline)} "
                      f"(baseline {len(baseline)}, now {faults.fd_count(fleet.pid)})")
    check(faults.fd_count(fleet.pid) <= len(baseline) + (kind == "R"), "descriptor count grew")
    check(fleet.poll() is None, "the fleet forward ended with a host still up")
    ferr = sigterm(fleet, "the fleet forward")
    check_eq(fleet.returncode, 255, f"a host failed: exit 255\n{ferr[-3000:]}")
    check_in(f"victim: sshmux: {label}: ", ferr)
    check("survivor: sshmux" not in ferr, f"the survivor reported a failure:\n{ferr}")
    return noticed


# ------------------------------------------------------------------ connection faults
def test_connection_killed_with_data_in_flight():
    run_fault(faults.kill_connections)


def test_connection_reset_with_data_in_flight():
    run_fault(lambda sshd: faults.reset_connections(sshd.port))


def test_connection_frozen_found_by_keepalives():
    noticed = run_fault(faults.stop_connections, keepalive=True,
                        label="timeout: server not responding")
    check(noticed < 20, f"a frozen server took {noticed:.1f} s to be noticed (keepalive 1 s x 2)")


def test_dynamic_connection_killed_with_data_in_flight():
    run_fault(faults.kill_connections, kind="D")


def test_dynamic_connection_reset_with_data_in_flight():
    run_fault(lambda sshd: faults.reset_connections(sshd.port), kind="D")


def test_dynamic_connection_frozen_found_by_keepalives():
    run_fault(faults.stop_connections, keepalive=True, label="timeout: server not responding",
              kind="D")


def test_remote_connection_killed_with_data_in_flight():
    run_fault(faults.kill_connections, kind="R")


def test_remote_connection_reset_with_data_in_flight():
    run_fault(lambda sshd: faults.reset_connections(sshd.port), kind="R")


def test_remote_connection_frozen_found_by_keepalives():
    run_fault(faults.stop_connections, keepalive=True, label="timeout: server not responding",
              kind="R")


def test_connection_frozen_without_keepalives_sigterm_ends_it():
    # Nothing can tell a frozen server from an idle one without keepalives (README: "dead
    # server: off"): the forward keeps running; SIGTERM must still end it promptly and cleanly.
    cfg = config(False)
    lpath = WD.file(f"frozen-{time.monotonic_ns()}.sock")
    p, ls = start(["-F", cfg, "-L", f"{lpath}:127.0.0.1:{GEN.port}", "-L",
                   f"0:127.0.0.1:{ECHO.port}", "victim"], 2)
    t = Traffic(ls[0][1], ls[1][1])
    t.wait_flowing()
    check(faults.stop_connections(SSHD["victim"]) > 0, "the fault hit nothing")
    time.sleep(2)
    check(p.poll() is None, "the forward ended without being told")
    t0 = time.monotonic()
    err = sigterm(p, "a forward whose server is frozen")
    faults.resume_connections(SSHD["victim"])
    t.close()
    check_eq(p.returncode, 0, err)
    check(time.monotonic() - t0 < 15, "SIGTERM took too long")
    check(not os.path.exists(lpath), "the Unix socket was left behind")


# ------------------------------------------------------------------ --connections N
def ssh_client_ports(pid, port):
    """The local ports of pid's established connections to 127.0.0.1:port (its SSH
    connections to that sshd)."""
    out = subprocess.run(["ss", "-Htnp", "state", "established", "dst", f"127.0.0.1:{port}"],
                         capture_output=True, text=True).stdout
    return {int(line.split()[2].rsplit(":", 1)[1]) for line in out.splitlines()
            if f"pid={pid}," in line}


def echoed(local, size=1 << 20):
    """Sends size random bytes through a listener to the echo server: True when they all came
    back unchanged, else what happened."""
    data = os.urandom(size)
    try:
        with connect(local) as c:
            c.settimeout(30)
            threading.Thread(target=c.sendall, args=(data,), daemon=True).start()
            got = b""
            while len(got) < len(data):
                d = c.recv(1 << 20)
                if not d:
                    break
                got += d
    except OSError as e:
        return repr(e)
    return got == data or f"{len(got)} of {size} bytes, prefix equal {got == data[:len(got)]}"


def wait_flowing(streams, what):
    marks = [s.read for s in streams]
    fixture.wait_until(lambda: all(s.read > m + (1 << 20) for s, m in zip(streams, marks)), 60,
                       what)


def run_spread_fault(fault, rounds, keepalive=False):
    """forward --connections 3 with six streams, two on each SSH connection; `fault(sshd,
    client_port)` hits one connection the spread opened, `rounds` times in one run. Each time the
    two streams on it end (and are said to have failed), the four others go on, the host is not
    lost, and the next two streams get a fresh connection in its place (8 rounds: more losses
    than a forward has spare connections). At the end nothing is open but the listeners and
    the live SSH connections, SIGTERM ends it with 0, and an echo through it is whole."""
    cfg = config(keepalive)
    sshd = SSHD["victim"]
    p, ls = start(["-F", cfg, "--connections", "3", "-L", f"0:127.0.0.1:{GEN.port}", "-L",
                   f"0:127.0.0.1:{ECHO.port}", "victim"], 2)
    gen_local, echo_local = ls[0][1], ls[1][1]
    fixture.wait_until(lambda: len(ssh_client_ports(p.pid, sshd.port)) == 1, 30,
                       "the forward's own SSH connection")
    first = ssh_client_ports(p.pid, sshd.port)
    baseline = faults.fd_targets(p.pid)
    streams = []
    for _ in range(6):   # one at a time: each goes to the least loaded connection
        streams.append(Stream(gen_local))
        wait_flowing(streams[-1:], "a new stream flowing")
    check_eq(len(ssh_client_ports(p.pid, sshd.port)), 3, "SSH connections for six streams")
    lost = 0
    for rnd in range(rounds):
        spare = sorted(ssh_client_ports(p.pid, sshd.port) - first)
        check(len(spare) == 2, f"round {rnd}: spread connections {spare}")
        check(fault(sshd, spare[0]) > 0, f"round {rnd}: the fault hit nothing")
        fixture.wait_until(lambda: sum(s.ended for s in streams) >= 2, 30,
                           f"round {rnd}: the streams on the lost connection ending")
        live = [s for s in streams if not s.ended]
        wait_flowing(live, f"round {rnd}: the other streams flowing on")
        check_eq(len(live), 4, f"round {rnd}: streams still open")
        if p.poll() is not None:
            raise Failure(f"round {rnd}: the forward ended: {p.stderr.read()[-3000:]}")
        lost += 2
        for s in streams:
            if s.ended:
                s.close()
        streams = live
        for _ in range(2):
            streams.append(Stream(gen_local))
            wait_flowing(streams[-1:], f"round {rnd}: a new stream flowing")
        fixture.wait_until(lambda: len(ssh_client_ports(p.pid, sshd.port)) == 3, 30,
                           f"round {rnd}: a connection in the lost one's place")
    got = echoed(echo_local)
    check(got is True, f"echo through the forward: {got}")
    for s in streams:
        s.close()
    faults.resume_connections(sshd)

    def only_ssh_connections():
        new = new_fds(p.pid, baseline)
        spare = len(ssh_client_ports(p.pid, sshd.port)) - 1
        return len(new) == spare and all(t.startswith("socket:") for t in new.values())
    try:
        fixture.wait_until(only_ssh_connections, 30, "descriptors freed")
    except Failure:
        raise Failure(f"descriptors besides the SSH connections: {new_fds(p.pid, baseline)}")
    err = sigterm(p, "the forward")
    check_eq(p.returncode, 0, f"a lost spare connection is not a lost host\n{err[-3000:]}")
    check("victim: sshmux:" not in err, f"the host was reported lost:\n{err[-3000:]}")
    failed = err.count("forwarded connection failed")
    check(failed >= lost, f"{failed} failures reported for {lost} streams lost:\n{err[-3000:]}")


def test_spread_connections_failing_their_handshake():
    # Only the forward's first connection gets through its ProxyCommand; the spare ones
    # --connections opens fail before the SSH banner. The streams first given to them must go
    # over the live connection instead of failing.
    once = WD.file(f"proxy-once-{time.monotonic_ns()}", "")
    os.unlink(once)
    proxy = (f"bash -c 'mkdir {once} 2>/dev/null || exit 1; exec 3<>/dev/tcp/%h/%p; "
             "cat <&3 & exec cat >&3'")
    cfg = WD.file("cfg-flaky", entry("victim", "victim", ProxyCommand=proxy))
    p, ls = start(["-F", cfg, "--connections", "3", "-L", f"0:127.0.0.1:{ECHO.port}",
                   "victim"], 1)
    results = [None] * 6

    def echo(i):
        results[i] = echoed(ls[0][1])
    threads = [threading.Thread(target=echo, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    err = sigterm(p, "the forward")
    check_eq(p.returncode, 0, err[-3000:])
    check_eq(results, [True] * 6, f"echoes through the forward\n{err[-3000:]}")
    check("forwarded connection failed" not in err, f"a stream failed:\n{err[-3000:]}")


def test_spread_first_connection_killed():
    # The first connection carries the host: its loss ends the forward (exit 255) with the
    # spare connections and every stream on any of them, whatever was mid-open.
    sshd = SSHD["victim"]
    p, ls = start(["-F", config(False), "--connections", "3", "-L", f"0:127.0.0.1:{GEN.port}",
                   "victim"], 1)
    fixture.wait_until(lambda: len(ssh_client_ports(p.pid, sshd.port)) == 1, 30,
                       "the forward's own SSH connection")
    first = ssh_client_ports(p.pid, sshd.port).pop()
    streams = [Stream(ls[0][1]) for _ in range(6)]
    wait_flowing(streams, "six streams flowing")
    check(faults._signal_all(faults.connection_pids(sshd, first), signal.SIGKILL) > 0,
          "the fault hit nothing")
    more = []   # accepted while it goes, or refused once its listener is closed
    for _ in range(2):
        with suppress(OSError):
            more.append(Stream(ls[0][1]))
    try:
        _, err = p.communicate(timeout=30)
    except Exception:
        fixture.kill_tree(p.pid, p)
        raise Failure("the forward did not end when its first connection was lost")
    check_no_crash(p.returncode, err)
    check_eq(p.returncode, 255, err[-3000:])
    check_in("victim: sshmux: forward: ", err)
    fixture.wait_until(lambda: all(s.ended for s in streams + more), 30, "every stream ended")


def test_spread_connection_killed_eight_times():
    run_spread_fault(lambda sshd, cp: faults._signal_all(faults.connection_pids(sshd, cp),
                                                         signal.SIGKILL), rounds=8)


def test_spread_connection_reset():
    run_spread_fault(lambda sshd, cp: faults.reset_connections(cp), rounds=2)


def test_spread_connection_frozen_found_by_keepalives():
    def freeze(sshd, cp):
        pids = faults.connection_pids(sshd, cp)
        fixture.on_cleanup(lambda: faults._signal_all(pids, signal.SIGCONT), "resume")
        return faults._signal_all(pids, signal.SIGSTOP)
    run_spread_fault(freeze, rounds=1, keepalive=True)


# ------------------------------------------------------------------ bad input, messages
def test_unusable_bind_address_is_an_error_not_an_abort():
    r = fixture.run_sshmux(["forward", "-F", config(False), "-L", "999.1.1.1:0:localhost:22",
                            "victim"], timeout=30)
    check_no_crash(r.returncode, r.stderr)
    check_rc(r, 255)
    check_in("999.1.1.1", r.stderr)


def test_unix_path_longer_than_sun_path_is_refused():
    d = WD.mkdir("d" * 60)
    path = os.path.join(d, "s" * 60 + ".sock")   # > 107 bytes
    r = fixture.run_sshmux(["forward", "-F", config(False), "-L", f"{path}:/tmp/remote.sock",
                            "victim"], timeout=30)
    check_no_crash(r.returncode, r.stderr)
    check_rc(r, 2)
    check_in(path, r.stderr, "the message names the path")
    check_in("107", r.stderr, "the message names the limit")
    check_eq(os.listdir(d), [], "a socket with the cut name was left behind")


def test_refused_channels_name_the_reason():
    closed = fixture.refused_port()
    nofwd = fixture.Sshd(WD, KEYS, extra_config="AllowTcpForwarding no\n")
    nofwd.write_known_hosts(KH, append=True)
    SSHD["nofwd"] = nofwd
    cfg = WD.file("cfg-refuse", entry("victim", "victim") + entry("nofwd", "nofwd"))
    for host, spec, reason in (("victim", f"0:127.0.0.1:{closed}", "connect failed"),
                               ("nofwd", f"0:127.0.0.1:{ECHO.port}",
                                "administratively prohibited")):
        p, ls = start(["-F", cfg, "-L", spec, host], 1)
        c = connect(ls[0][1])
        c.settimeout(20)
        check_eq(netserv.recv_all(c), b"")
        c.close()
        time.sleep(0.5)   # the message is written when the refusal arrives
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=30)
        check_no_crash(p.returncode, err)
        check_eq(p.returncode, 0, err)
        check_in(f"channel refused: {reason}", err)
        check("error (" not in err, f"libssh's raw message leaked: {err}")


if __name__ == "__main__":
    setup()
    main([v for k, v in sorted(globals().items()) if k.startswith("test_")])
