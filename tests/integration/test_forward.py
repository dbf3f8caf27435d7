"""sshmux forward (-L) against a real sshd: TCP and Unix sockets checked by sha256 both ways,
half-close, three bursts of 2000 concurrent connections over one session (500 where the fd limit
is low) to a fast one-process echo server, a stalled reader with bounded memory, a port in use,
a refused remote port, fleet forwarding with --base-port, the forward-tcp/-unix aliases, and
--connections N spreading parallel forwarded connections over N SSH connections."""
import hashlib
import os
import signal
import socket
import stat
import threading
import time

from common import *  # noqa: F403
import netserv

F = None


FD_LIMIT = 0


def setup():
    global F, FD_LIMIT
    FD_LIMIT = fixture.raise_fd_limit(16384)
    F = Fleet(n=3)


def start_forward(*args, sub="forward", lines=1, env=None):
    """Starts sshmux forward; returns (process, [(local, remote), ...]) once it printed its
    listeners."""
    p = fixture.spawn([fixture.sshmux_bin(), sub, "-F", F.cfg] + list(args), workdir=F.wd,
                      env=env)
    out = []
    deadline = time.monotonic() + 20
    while len(out) < lines and time.monotonic() < deadline:
        line = p.stdout.readline()
        if not line:
            raise Failure(f"sshmux {sub} exited early: {p.wait(5)} {p.stderr.read()}")
        if line.startswith("HOST"):
            continue
        parts = line.split()
        out.append((parts[1], parts[2]))
    return p, out


def tcp_port(local):
    return int(local.rsplit(":", 1)[1])


def stop(p):
    p.send_signal(signal.SIGTERM)
    rc = p.wait(10)
    return rc, p.stderr.read()


def test_tcp_both_directions_sha256():
    sink, payload = netserv.Server(netserv.sink), os.urandom(16 * 1024 * 1024)
    source = netserv.Server(netserv.source(payload))
    p, ls = start_forward("-L", f"0:127.0.0.1:{sink.port}", "-L", f"0:127.0.0.1:{source.port}",
                          "h0001", lines=2)
    c = socket.create_connection(("127.0.0.1", tcp_port(ls[0][0])))
    c.sendall(payload)
    c.shutdown(socket.SHUT_WR)
    check_eq(netserv.recv_all(c).decode(), f"{len(payload)} {hashlib.sha256(payload).hexdigest()}")
    c = socket.create_connection(("127.0.0.1", tcp_port(ls[1][0])))
    got = netserv.recv_all(c)
    check_eq(hashlib.sha256(got).hexdigest(), hashlib.sha256(payload).hexdigest())
    rc, err = stop(p)
    check_eq(rc, 0, err)


def test_echo_bidirectional_concurrently():
    echo = netserv.Server(netserv.echo)
    p, ls = start_forward("-L", f"0:127.0.0.1:{echo.port}", "h0001")
    payload = os.urandom(8 * 1024 * 1024)
    for _ in range(3):
        c = socket.create_connection(("127.0.0.1", tcp_port(ls[0][0])))
        t = threading.Thread(target=lambda: (c.sendall(payload), c.shutdown(socket.SHUT_WR)))
        t.start()
        got = netserv.recv_all(c)
        t.join()
        check_eq(len(got), len(payload))
        check(got == payload, "echoed bytes differ")
    stop(p)


def test_half_close():
    # The client shuts its sending side and still receives the server's answer.
    sink = netserv.Server(netserv.sink)
    p, ls = start_forward("-L", f"0:127.0.0.1:{sink.port}", "h0001")
    c = socket.create_connection(("127.0.0.1", tcp_port(ls[0][0])))
    c.sendall(b"hello")
    c.shutdown(socket.SHUT_WR)
    check_eq(netserv.recv_all(c).decode(), f"5 {hashlib.sha256(b'hello').hexdigest()}")
    stop(p)


def test_unix_sockets_both_sides():
    rpath = F.wd.file("remote.sock")
    netserv.Server(netserv.echo, unix_path=rpath)
    lpath = F.wd.file("local.sock")
    p, ls = start_forward("-L", f"{lpath}:{rpath}", "h0001")
    check_eq(ls[0], (lpath, rpath))
    check_eq(stat.S_IMODE(os.stat(lpath).st_mode), 0o600)
    payload = os.urandom(2 * 1024 * 1024)
    c = socket.socket(socket.AF_UNIX)
    c.connect(lpath)
    threading.Thread(target=lambda: (c.sendall(payload), c.shutdown(socket.SHUT_WR))).start()
    check(netserv.recv_all(c) == payload, "unix echo differs")
    # TCP listener -> remote Unix socket
    p2, ls2 = start_forward("-L", f"0:{rpath}", "h0001")
    c = socket.create_connection(("127.0.0.1", tcp_port(ls2[0][0])))
    c.sendall(b"ping")
    c.shutdown(socket.SHUT_WR)
    check_eq(netserv.recv_all(c), b"ping")
    stop(p2)
    rc, err = stop(p)
    check_eq(rc, 0, err)
    check(not os.path.exists(lpath), "local socket not removed on exit")


def test_many_concurrent_connections():
    # A fast one-process echo server and bursts back to back: a lost wakeup in sshmux (packets
    # that libssh took off the socket outside a step, with nothing left to wake it) shows up as
    # the last connections of a burst never getting their echo.
    echo = netserv.EchoProcess()
    p, ls = start_forward("-L", f"0:127.0.0.1:{echo.port}", "h0001")
    # each connection costs 2 fds here (client + echo side) and 1 in sshd: thousands need room
    port, n = tcp_port(ls[0][0]), 2000 if FD_LIMIT >= 8192 else 500
    for burst in range(3):
        check_burst_echoed(p, port, echo, n, burst)
    check(echo.accepted >= 3 * n, f"server saw {echo.accepted} connections")
    rc, err = stop(p)
    check_eq(rc, 0, err)


def check_burst_echoed(p, port, echo, n, burst):
    socks = [socket.create_connection(("127.0.0.1", port), timeout=60) for _ in range(n)]
    for i, s in enumerate(socks):
        s.sendall(f"burst-{burst}-conn-{i}\n".encode())
        s.shutdown(socket.SHUT_WR)
    bad, stuck, deadline = [], [], time.monotonic() + 60
    for i, s in enumerate(socks):
        s.settimeout(max(0.05, deadline - time.monotonic()))   # 60 s for all, not each
        try:
            if netserv.recv_all(s) != f"burst-{burst}-conn-{i}\n".encode():
                bad.append(i)
        except socket.timeout:
            stuck.append(i)
    if stuck:   # say where the bytes are: sshmux's queues, the server's, or nowhere
        import subprocess
        ss = subprocess.run(["ss", "-tan", f"( sport = :{port} or dport = :{echo.port} )"],
                            capture_output=True, text=True).stdout
        raise Failure(f"burst {burst}: {len(stuck)} of {n} connections got no echo in 60 s "
                      f"(first {stuck[:5]}); server accepted {echo.accepted}; "
                      f"sshmux alive: {p.poll() is None}\n"
                      + "\n".join(l for l in ss.splitlines() if not l.rstrip().endswith("*"))[:4000])
    check_eq(bad[:5], [])
    for s in socks:
        s.close()


def accepted_logins():
    """Connections sshd has authenticated so far (each a line in its log)."""
    with open(F.sshd.log_path, "rb") as f:
        return f.read().count(b"Accepted publickey")


def wait_logins(n, timeout=20):
    deadline = time.monotonic() + timeout
    while accepted_logins() < n and time.monotonic() < deadline:
        time.sleep(0.05)
    return accepted_logins()


def echo_concurrently(port, n, size):
    """n connections at once, each echoing `size` random bytes; returns how many came back
    intact (every socket has a 60 s timeout)."""
    payloads = [os.urandom(size) for _ in range(n)]
    socks = [socket.create_connection(("127.0.0.1", port), timeout=60) for _ in range(n)]
    ok = [0]

    def one(s, data):
        t = threading.Thread(target=lambda: (s.sendall(data), s.shutdown(socket.SHUT_WR)))
        t.start()
        if netserv.recv_all(s) == data:
            ok[0] += 1
        t.join(60)
        s.close()
    ts = [threading.Thread(target=one, args=(s, d)) for s, d in zip(socks, payloads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(90)
    return ok[0]


def test_connections_spread_links():
    # --connections N: parallel forwarded connections spread over N SSH connections (each its
    # own sshd process on the server), the least loaded first; without it they share one.
    echo = netserv.Server(netserv.echo)
    for want, extra in ((1, ()), (3, ("--connections", "3"))):
        before = accepted_logins()
        p, ls = start_forward(*extra, "-L", f"0:127.0.0.1:{echo.port}", "h0001")
        check_eq(wait_logins(before + 1) - before, 1, "the forward's own connection")
        check_eq(echo_concurrently(tcp_port(ls[0][0]), 6, 2 * 1024 * 1024), 6)
        # more connections than asked for would show up here once authenticated
        time.sleep(0.5)
        check_eq(wait_logins(before + want) - before, want,
                 f"SSH connections for 6 parallel links with {' '.join(extra) or 'defaults'}")
        rc, err = stop(p)
        check_eq(rc, 0, err)


def test_stalled_reader_memory_bounded():
    payload = b"x" * (256 * 1024 * 1024)
    source = netserv.Server(netserv.source(payload))
    # Under ASan, freed buffers sit in its quarantine and count as RSS: keep that small.
    asan = os.environ.get("ASAN_OPTIONS", "")
    p, ls = start_forward("-L", f"0:127.0.0.1:{source.port}", "h0001",
                          env={"ASAN_OPTIONS": (asan + ":" if asan else "") + "quarantine_size_mb=1"})
    base = fixture.rss_kib(p.pid)
    c = socket.create_connection(("127.0.0.1", tcp_port(ls[0][0])))
    c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    time.sleep(3)   # nobody reads: sshmux must stop taking data, not buffer 256 MiB
    grown = fixture.rss_kib(p.pid) - base
    check(grown < 16 * 1024, f"RSS grew by {grown} KiB with a stalled reader")
    # and the data still flows once the reader reads
    got = 0
    c.settimeout(30)
    while got < 32 * 1024 * 1024:
        d = c.recv(1 << 20)
        if not d:
            break
        got += len(d)
    check(got >= 32 * 1024 * 1024, f"only {got} bytes after resuming")
    c.close()
    stop(p)


def test_port_in_use_is_an_error_and_leaves_nothing():
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    port = busy.getsockname()[1]
    lpath = F.wd.file("left-behind.sock")
    r = fixture.run_sshmux(["forward", "-F", F.cfg, "-L", f"{lpath}:/tmp/x.sock", "-L",
                            f"{port}:127.0.0.1:22", "h0001"], timeout=20)
    check_rc(r, 255)
    check_in(str(port), r.stderr)
    check_in("in use", r.stderr)
    check(not os.path.exists(lpath), "a listener was left behind")
    busy.close()


def test_remote_refusal_closes_only_that_connection():
    echo = netserv.Server(netserv.echo)
    closed = fixture.refused_port()
    p, ls = start_forward("-L", f"0:127.0.0.1:{closed}", "-L", f"0:127.0.0.1:{echo.port}",
                          "h0001", lines=2)
    c = socket.create_connection(("127.0.0.1", tcp_port(ls[0][0])))
    c.settimeout(10)
    check_eq(netserv.recv_all(c), b"")
    c = socket.create_connection(("127.0.0.1", tcp_port(ls[1][0])))
    c.sendall(b"still fine")
    c.shutdown(socket.SHUT_WR)
    check_eq(netserv.recv_all(c), b"still fine")
    rc, err = stop(p)
    check_eq(rc, 0)
    check_in("forwarded connection failed", err)


def test_fleet_base_port():
    echo = netserv.Server(netserv.echo)
    base = free_port_run(3)
    p, ls = start_forward("-L", f"0:127.0.0.1:{echo.port}", "--base-port", str(base), "-w",
                          "h[0001-0003]", lines=3)
    check_eq(sorted(tcp_port(l) for l, _ in ls), [base, base + 1, base + 2])
    for l, _ in ls:
        c = socket.create_connection(("127.0.0.1", tcp_port(l)))
        c.sendall(l.encode())
        c.shutdown(socket.SHUT_WR)
        check_eq(netserv.recv_all(c), l.encode())
    stop(p)


def test_forward_tcp_and_unix_aliases():
    # forward-tcp PORT: local PORT -> the target's localhost:PORT. Client and server share this
    # machine, so listen on 127.0.0.2 (same port number, other loopback address).
    echo = netserv.Server(netserv.echo)
    p = fixture.spawn([fixture.sshmux_bin(), "forward-tcp", "-F", F.cfg, "--json", "--address",
                       "127.0.0.2", str(echo.port), "h0001"], workdir=F.wd)
    row = json.loads(p.stdout.readline())
    check_eq(row, {"host": "h0001", "kind": "local", "listen": f"127.0.0.2:{echo.port}",
                   "port": echo.port, "to": f"localhost:{echo.port}"})
    c = socket.create_connection(("127.0.0.2", echo.port))
    c.sendall(b"via forward-tcp")
    c.shutdown(socket.SHUT_WR)
    check_eq(netserv.recv_all(c), b"via forward-tcp")
    stop(p)
    rpath = F.wd.file("alias-remote.sock")
    netserv.Server(netserv.echo, unix_path=rpath)
    lpath = F.wd.file("alias-local.sock")
    p, ls = start_forward("--remote", rpath, lpath, "h0001", sub="forward-unix")
    check_eq(ls[0], (lpath, rpath))
    c = socket.socket(socket.AF_UNIX)
    c.connect(lpath)
    c.sendall(b"via forward-unix")
    c.shutdown(socket.SHUT_WR)
    check_eq(netserv.recv_all(c), b"via forward-unix")
    stop(p)


def test_bad_spec_and_unreachable_target():
    r = fixture.run_sshmux(["forward", "-F", F.cfg, "-L", "8080:localhost", "h0001"])
    check_rc(r, 2)
    check_in("8080:localhost", r.stderr)
    F.add("fwd-refused", HostName="127.0.0.1", Port=fixture.refused_port(), User=F.user,
          IdentityFile=F.keys.ed25519, UserKnownHostsFile=F.kh)
    r = fixture.run_sshmux(["forward", "-F", F.cfg, "-L", "0:127.0.0.1:9", "fwd-refused"],
                           timeout=30)
    check_rc(r, 255)
    check_in("refused", r.stderr.lower())


if __name__ == "__main__":
    import json  # noqa: F401
    setup()
    main([v for k, v in sorted(globals().items()) if k.startswith("test_")])
