"""sshmux forward -R (remote forwarding) against a real sshd: TCP->TCP with 100 MiB checked by
sha256 each way, Unix sockets both ways and Unix->Unix, port 0 reported in text and --json and
the reported port used, the default bind address sent to the server (loopback, never the
wildcard), 200 concurrent connections through one -R with every byte echoed, a remote listener
the server refuses (port in use, AllowTcpForwarding/AllowStreamLocalForwarding local, one host
of several) -> error naming host and spec and exit 255, a refused or unresolvable local
destination closes that connection only (a name is tried on each of its addresses), the remote
ports free again after SIGTERM/SIGINT (we bind them) and the cancel requests sent, -R on each
host of -w (each listener in its own host's sshd), reverse SOCKS (-R port alone) with curl to a
local HTTP server, its failure codes and a destination that talks first, -R, -L and -D mixed on
one connection, stalled readers at either end with bounded memory, `-- CMD` finding its listener
bound, a lost connection (exit 255) and SIGTERM with transfers in flight.

Every sshd here runs on this machine, so the "remote" ports are on 127.0.0.1 too: which process
holds a listener (/proc) tells a remote listener (an sshd session) from a local one. The sshd
logs at DEBUG1 so the tcpip-forward / cancel-tcpip-forward requests sshmux sent can be read back.
"""
import hashlib
import os
import pwd
import re
import signal
import socket
import stat
import subprocess
import threading
import time

from common import *  # noqa: F403
import fwdkit
import netserv
from fwdkit import Forward

F = None
RDIR = None     # where the server's session creates remote Unix sockets (world-writable)
SSHD_EXTRA = ("LogLevel DEBUG1\nGatewayPorts clientspecified\nStreamLocalBindUnlink yes\n"
              "AllowStreamLocalForwarding yes\n")
BIG = 100 * 1024 * 1024


def setup():
    global F, RDIR
    fixture.raise_fd_limit(8192)
    F = Fleet(n=3, sshd_kwargs={"extra_config": SSHD_EXTRA})
    RDIR = F.wd.mkdir("remote-sockets")
    os.chmod(RDIR, 0o1777)   # the login may be a throwaway user (fleet_user)


def fwd(*args, **kw):
    return Forward(F.cfg, list(args), workdir=F.wd, **kw)


def remote_sshd_holds(port, sshd=None):
    """The listener on port belongs to the (given) sshd's processes: a remote listener."""
    return fwdkit.owned_by(port, sshd or F.sshd)


def echo_check(connect, size, what):
    """One connection from connect(): size random bytes echoed back intact."""
    c = connect()
    c.settimeout(60)
    payload = os.urandom(size)
    t = threading.Thread(target=lambda: (c.sendall(payload), c.shutdown(socket.SHUT_WR)),
                         daemon=True)
    t.start()
    got = netserv.recv_all(c)
    t.join(60)
    c.close()
    check_eq(len(got), len(payload), f"{what}: echoed length")
    check(got == payload, f"{what}: echoed bytes differ")


def tcp(port, host="127.0.0.1"):
    return lambda: socket.create_connection((host, port), timeout=30)


def unix(path):
    def connect():
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(30)
        s.connect(path)
        return s
    return connect


def stop_ok(f, expected=0):
    rc, err = f.stop()
    check_eq(rc, expected, f"exit status after SIGTERM; stderr:\n{err}")
    return err


def test_tcp_to_tcp_100mib_each_way():
    payload = os.urandom(BIG)
    digest = hashlib.sha256(payload).hexdigest()
    sink, source = netserv.Server(netserv.sink), netserv.Server(netserv.source(payload))
    f = fwd("-R", f"127.0.0.1:0:127.0.0.1:{sink.port}",
            "-R", f"127.0.0.1:0:127.0.0.1:{source.port}", "h0001", want=2)
    up = f.row(kind="remote", to=f"127.0.0.1:{sink.port}")["port"]
    down = f.row(kind="remote", to=f"127.0.0.1:{source.port}")["port"]
    check(remote_sshd_holds(up) and remote_sshd_holds(down), "listeners are not the sshd's")
    c = socket.create_connection(("127.0.0.1", up), timeout=120)
    c.sendall(payload)
    c.shutdown(socket.SHUT_WR)
    check_eq(netserv.recv_all(c).decode(), f"{BIG} {digest}", "server -> local sink")
    c = socket.create_connection(("127.0.0.1", down), timeout=120)
    got = netserv.recv_all(c)
    check_eq(len(got), BIG, "bytes from the local source")
    check_eq(hashlib.sha256(got).hexdigest(), digest, "local source -> server")
    stop_ok(f)


def test_port0_reported_text_and_json():
    echo = netserv.Server(netserv.echo)
    # text: HOST remote:ADDR:PORT TO, the port the server picked
    f = fwd("-R", f"127.0.0.1:0:127.0.0.1:{echo.port}", "h0001", as_json=False)
    row = f.rows[0]
    check_eq(row["host"], "h0001")
    check_eq(row["to"], f"127.0.0.1:{echo.port}")
    m = check_match(r"^remote:127\.0\.0\.1:(\d+)$", row["listen"], "listen column")
    port = int(m.group(1))
    check(0 < port < 65536, f"port {port}")
    check(remote_sshd_holds(port), f"port {port} is not held by the sshd")
    echo_check(tcp(port), 65536, "text-mode port")
    stop_ok(f)
    # --json: the same, as an object
    f = fwd("-R", f"127.0.0.1:0:127.0.0.1:{echo.port}", "h0001")
    port = f.rows[0].get("port")
    check_eq(f.rows[0], {"host": "h0001", "kind": "remote", "listen": f"127.0.0.1:{port}",
                         "port": port, "to": f"127.0.0.1:{echo.port}"})
    check(isinstance(port, int) and port > 0 and remote_sshd_holds(port), f"port {port!r}")
    echo_check(tcp(port), 65536, "json port")
    stop_ok(f)
    # a fixed port is printed as given
    fixed = fixture.free_port()
    f = fwd("-R", f"127.0.0.1:{fixed}:127.0.0.1:{echo.port}", "h0001")
    check_eq((f.rows[0]["listen"], f.rows[0]["port"]), (f"127.0.0.1:{fixed}", fixed))
    echo_check(tcp(fixed), 1024, "fixed port")
    stop_ok(f)


def test_default_bind_is_loopback():
    # No bind address: like OpenSSH, ask the server for "localhost" (loopback), never "" or "*"
    # (all interfaces where GatewayPorts allows it). Read back from the sshd's DEBUG1 log what
    # was asked for; this sshd has GatewayPorts no, so nothing binds beyond loopback anyway.
    s = fixture.Sshd(F.wd, F.keys, extra_config="LogLevel DEBUG1\nGatewayPorts no\n")
    s.write_known_hosts(F.kh, append=True)
    F.add("gwno", HostName=s.host, Port=s.port, User=F.user, IdentityFile=F.keys.ed25519,
          IdentitiesOnly="yes", UserKnownHostsFile=F.kh)
    echo = netserv.Server(netserv.echo)
    f = fwd("-R", f"0:127.0.0.1:{echo.port}", "gwno")
    port = f.rows[0]["port"]
    m = s.wait_log(r"tcpip-forward listen (\S*) port 0\b")
    check_in(m.group(1), ("localhost", "127.0.0.1", "::1"), "bind address sent for -R 0:...")
    check(all(a in ("127.0.0.1", "::1") for a, _ in fwdkit.listeners(port)),
          f"listeners on {port}: {fwdkit.listeners(port)}")
    echo_check(tcp(port), 4096, "default bind")
    stop_ok(f)


def test_unix_sockets_both_ways():
    tcp_echo = netserv.Server(netserv.echo)
    lsock = F.wd.file("local-echo.sock")
    netserv.Server(netserv.echo, unix_path=lsock)
    ra, rc = os.path.join(RDIR, "a.sock"), os.path.join(RDIR, "c.sock")
    f = fwd("-R", f"{ra}:127.0.0.1:{tcp_echo.port}",      # remote Unix -> local TCP
            "-R", f"127.0.0.1:0:{lsock}",                   # remote TCP -> local Unix
            "-R", f"{rc}:{lsock}",                          # Unix -> Unix
            "h0001", want=3)
    check_eq(f.row(listen=ra), {"host": "h0001", "kind": "remote", "listen": ra,
                                "to": f"127.0.0.1:{tcp_echo.port}"})
    b = [r for r in f.rows if r["to"] == lsock and "port" in r]
    check_eq(len(b), 1, f"one TCP row to {lsock}: {f.rows}")
    b = b[0]
    check_eq(b, {"host": "h0001", "kind": "remote", "listen": f"127.0.0.1:{b['port']}",
                 "port": b["port"], "to": lsock})
    check_eq(f.row(listen=rc), {"host": "h0001", "kind": "remote", "listen": rc, "to": lsock})
    for path in (ra, rc):   # made by the server's session, as the login user
        st = os.stat(path)
        check(stat.S_ISSOCK(st.st_mode), f"{path} is not a socket")
        check_eq(st.st_uid, pwd.getpwnam(F.user).pw_uid, f"owner of {path}")
    check(remote_sshd_holds(b["port"]), f"TCP listener not in the sshd: {b} {fwdkit.listeners(b['port'])}")
    echo_check(unix(ra), 4 * 1024 * 1024, "remote unix -> local tcp")
    echo_check(tcp(b["port"]), 4 * 1024 * 1024, "remote tcp -> local unix")
    echo_check(unix(rc), 4 * 1024 * 1024, "remote unix -> local unix")
    stop_ok(f)


def test_200_concurrent_connections():
    echo = netserv.EchoProcess()
    f = fwd("-R", f"127.0.0.1:0:127.0.0.1:{echo.port}", "h0001")
    port = f.rows[0]["port"]
    res = fwdkit.echo_many(lambda i: socket.create_connection(("127.0.0.1", port), timeout=30),
                           200, size=65536, timeout=90)
    check_eq(dict(list(res["failed"].items())[:5]), {}, f"{len(res['failed'])} of 200 failed")
    check_eq(res["ok"], 200)
    check(echo.accepted >= 200, f"echo server saw {echo.accepted} connections")
    check(f.alive(), "sshmux exited")
    stop_ok(f)


def busy_listener():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    fixture.on_cleanup(s.close, "busy listener")
    return s, s.getsockname()[1]


def check_refused(r, host, spec):
    check_rc(r, 255)
    check_in(f"{host}: sshmux: forward: -R {spec}: remote listener refused", r.stderr)
    fwdkit.check_no_sanitizer(r.stderr)


def test_remote_listener_refused():
    echo = netserv.Server(netserv.echo)
    busy, bport = busy_listener()
    spec = f"127.0.0.1:{bport}:127.0.0.1:{echo.port}"
    r = fixture.run_sshmux(["forward", "-F", F.cfg, "-R", spec, "h0001"], timeout=30)
    check_refused(r, "h0001", spec)
    # with an accepted -R before it: the host's forward ends, the accepted listener goes too
    ok_spec = f"127.0.0.1:0:127.0.0.1:{echo.port}"
    r = fixture.run_sshmux(["forward", "-F", F.cfg, "--json", "-R", ok_spec, "-R", spec,
                            "h0001"], timeout=30)
    check_refused(r, "h0001", spec)
    for row in json_lines(r.stdout):
        check(fixture.wait_until(lambda: fwdkit.port_is_free(row["port"]), 5, "port freed"),
              f"accepted listener {row} still bound")
    # the server forbids remote forwarding (TCP and Unix)
    s = fixture.Sshd(F.wd, F.keys, extra_config="AllowTcpForwarding local\n"
                     "AllowStreamLocalForwarding local\n")
    s.write_known_hosts(F.kh, append=True)
    F.add("noremote", HostName=s.host, Port=s.port, User=F.user, IdentityFile=F.keys.ed25519,
          IdentitiesOnly="yes", UserKnownHostsFile=F.kh)
    for spec in (ok_spec, f"{os.path.join(RDIR, 'denied.sock')}:127.0.0.1:{echo.port}"):
        r = fixture.run_sshmux(["forward", "-F", F.cfg, "-R", spec, "noremote"], timeout=30)
        check_refused(r, "noremote", spec)
    # one host of two refuses: the other keeps forwarding, the exit status says a host failed
    f = fwd("-R", ok_spec, "-w", "h0001,noremote")
    check_eq(f.rows[0]["host"], "h0001")
    fixture.wait_until(lambda: "noremote: sshmux: forward: -R" in f.stderr(), 20,
                       "noremote's refusal on stderr")
    echo_check(tcp(f.rows[0]["port"]), 4096, "the other host's listener")
    stop_ok(f, 255)
    busy.close()


def test_local_destination_refused_closes_only_that_connection():
    echo = netserv.Server(netserv.echo)
    closed = fixture.refused_port()
    f = fwd("-R", f"127.0.0.1:0:127.0.0.1:{closed}", "-R", f"127.0.0.1:0:127.0.0.1:{echo.port}",
            "h0001", want=2)
    bad = f.row(to=f"127.0.0.1:{closed}")["port"]
    good = f.row(to=f"127.0.0.1:{echo.port}")["port"]
    held = socket.create_connection(("127.0.0.1", good), timeout=30)   # open across the failures
    held.sendall(b"before ")
    for _ in range(3):
        c = socket.create_connection(("127.0.0.1", bad), timeout=30)
        check(fwdkit.closed_by_peer(c, 10), "connection to a refused destination not closed")
        c.close()
    check(f.alive(), "sshmux exited")
    held.sendall(b"after")
    held.shutdown(socket.SHUT_WR)
    check_eq(netserv.recv_all(held), b"before after", "connection open across the failures")
    echo_check(tcp(good), 65536, "the other -R")
    stop_ok(f)


def cancel_run(sig, rpath, echo):
    """A forward with a TCP -R, a reverse SOCKS -R and a Unix -R, stopped by sig (exit 0);
    returns (TCP ports, a function reading the sshd log written since it began)."""
    log_before = len(F.sshd.log_text())
    f = fwd("-R", f"127.0.0.1:0:127.0.0.1:{echo.port}", "-R", "127.0.0.1:0",
            "-R", f"{rpath}:127.0.0.1:{echo.port}", "h0001", want=3)
    ports = [r["port"] for r in f.rows if "port" in r]
    check_eq(len(ports), 2, f"TCP listeners: {f.rows}")
    for p in ports:
        check(not fwdkit.port_is_free(p), f"port {p} free while forwarding")
    tcp_row = [r for r in f.rows if r["kind"] == "remote" and "port" in r]
    echo_check(tcp(tcp_row[0]["port"]), 1024, "tcp")
    rc, err = f.stop(sig)
    check_eq(rc, 0, f"exit status after {sig!r}; stderr:\n{err}")
    return ports, lambda: F.sshd.log_text()[log_before:]


def test_ports_free_after_exit():
    echo = netserv.Server(netserv.echo)
    for sig in (signal.SIGTERM, signal.SIGINT):
        ports, _ = cancel_run(sig, os.path.join(RDIR, f"exit-{sig}.sock"), echo)
        for p in ports:
            fixture.wait_until(lambda: fwdkit.port_is_free(p), 3, f"port {p} free after exit")


def test_cancel_requests_sent_on_exit():
    # "SIGINT/SIGTERM -> remote listeners cancelled": the server gets cancel-tcpip-forward /
    # cancel-streamlocal-forward@openssh.com for each listener (its DEBUG1 log names them)
    # before the connection goes, not only the end of the connection.
    echo = netserv.Server(netserv.echo)
    rpath = os.path.join(RDIR, "cancel.sock")
    ports, log = cancel_run(signal.SIGTERM, rpath, echo)
    # sshd's child writes its log after sshmux has gone: wait for the lines, not the exit.
    wanted = [(rf"cancel-tcpip-forward addr 127\.0\.0\.1 port {p}\b", f"cancel of port {p}")
              for p in ports]
    wanted.append((rf"cancel-streamlocal-forward path {re.escape(rpath)}$", "Unix cancel"))
    for pattern, what in wanted:
        fixture.wait_until(lambda: re.search(pattern, log(), re.M), 5, f"{what} in the sshd log")


def test_every_host_of_fleet():
    names = ["m1", "m2", "m3"]
    sshds = fwdkit.add_sshds(F, names, [SSHD_EXTRA] * 3)
    echo = netserv.Server(netserv.echo)
    f = fwd("-R", f"127.0.0.1:0:127.0.0.1:{echo.port}", "-w", "m[1-3]", want=3, as_json=False)
    check_eq(len(f.headers), 1, f"header line: {f.headers} / {f.lines}")
    check_eq(f.headers[0].split(), ["HOST", "LISTEN", "TO"])
    check_eq(sorted(r["host"] for r in f.rows), names)
    ports = {}
    for r in f.rows:
        check_eq(r["to"], f"127.0.0.1:{echo.port}")
        ports[r["host"]] = int(check_match(r"^remote:127\.0\.0\.1:(\d+)$", r["listen"]).group(1))
    check_eq(len(set(ports.values())), 3, f"distinct ports {ports}")
    for h, p in ports.items():
        check(remote_sshd_holds(p, sshds[h]), f"{h}'s port {p} is not in {h}'s sshd")
        echo_check(tcp(p), 65536, f"{h}'s listener")
    stop_ok(f)


def curl(proxy_flag, proxy, url, timeout=20):
    r = subprocess.run(["curl", "-sS", "--fail", "--max-time", str(timeout), proxy_flag, proxy,
                        url], capture_output=True, env=fixture.base_env(F.wd),
                       timeout=timeout + 10)
    return r.returncode, r.stdout, r.stderr.decode(errors="replace")


def test_reverse_socks_with_curl():
    http = fwdkit.HttpServer(F.wd.mkdir("www"))
    blob = http.put("blob", os.urandom(1024 * 1024))
    f = fwd("-R", "127.0.0.1:0", "h0001", as_json=False)
    row = f.rows[0]
    check_eq((row["host"], row["to"]), ("h0001", "socks"))
    port = int(check_match(r"^remote:127\.0\.0\.1:(\d+)$", row["listen"]).group(1))
    check(remote_sshd_holds(port), "reverse SOCKS listener is not the sshd's")
    proxy = f"127.0.0.1:{port}"
    for flag, host in (("--socks5-hostname", "localhost"), ("--socks5", "127.0.0.1"),
                       ("--socks4a", "localhost"), ("--socks4", "127.0.0.1")):
        rc, out, err = curl(flag, proxy, f"http://{host}:{http.port}/blob")
        check_eq(rc, 0, f"curl {flag} via reverse SOCKS: {err}")
        check(out == blob, f"curl {flag}: body differs ({len(out)} bytes)")
    # failures are SOCKS replies too; names are resolved here, by sshmux
    check_eq(fwdkit.socks5_code(("127.0.0.1", port), "127.0.0.1", fixture.refused_port()), 5)
    check_eq(fwdkit.socks5_code(("127.0.0.1", port), "nonexistent.invalid", 80), 4)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
        c.sendall(b"GET / HTTP/1.0\r\n\r\n")   # not SOCKS
        check(fwdkit.closed_by_peer(c, 10), "garbage on reverse SOCKS not closed")
    rc, out, err = curl("--socks5-hostname", proxy, f"http://localhost:{http.port}/blob")
    check(rc == 0 and out == blob, f"after the failures: curl rc {rc} {err}")
    # a destination that talks first: the reply still precedes its bytes (400 tries)
    payload = os.urandom(65536)
    src = netserv.Server(netserv.source(payload))
    bad = [w for w in (fwdkit.first_bytes_check(("127.0.0.1", port), src.port, payload,
                                                "socks5" if i % 2 else "socks4")
                       for i in range(400)) if w]
    check_eq(bad[:3], [], f"{len(bad)} of 400 reverse SOCKS connections: reply out of place")
    stop_ok(f)


def test_mixed_R_L_D_one_connection():
    echo = netserv.EchoProcess()
    f = fwd("-L", f"0:127.0.0.1:{echo.port}", "-D", "127.0.0.1:0",
            "-R", f"127.0.0.1:0:127.0.0.1:{echo.port}", "-R", "127.0.0.1:0", "h0001", want=4)
    kinds = sorted(r["kind"] for r in f.rows)
    check_eq(kinds, ["dynamic", "local", "remote", "remote-socks"])
    local = f.row(kind="local")
    check_eq(local, {"host": "h0001", "kind": "local", "listen": f"127.0.0.1:{local['port']}",
                     "port": local["port"], "to": f"127.0.0.1:{echo.port}"})
    dyn = f.row(kind="dynamic")
    check_eq(dyn, {"host": "h0001", "kind": "dynamic", "listen": f"127.0.0.1:{dyn['port']}",
                   "port": dyn["port"], "to": "socks"})
    rs = f.row(kind="remote-socks")
    check_eq(rs, {"host": "h0001", "kind": "remote-socks", "listen": f"127.0.0.1:{rs['port']}",
                  "port": rs["port"], "to": "socks"})
    remote = f.row(kind="remote")["port"]
    check(remote_sshd_holds(remote) and remote_sshd_holds(rs["port"]), "remote listeners")
    check(not remote_sshd_holds(local["port"]) and not remote_sshd_holds(dyn["port"]),
          "local listeners held by the sshd?")
    ways = {
        "-L": lambda i: socket.create_connection(("127.0.0.1", local["port"]), timeout=30),
        "-R": lambda i: socket.create_connection(("127.0.0.1", remote), timeout=30),
        "-D": lambda i: fwdkit.socks5_connect(("127.0.0.1", dyn["port"]), "127.0.0.1",
                                              echo.port),
        "-R socks": lambda i: fwdkit.socks5_connect(("127.0.0.1", rs["port"]), "127.0.0.1",
                                                    echo.port),
    }
    order = list(ways)
    res = fwdkit.echo_many(lambda i: ways[order[i % 4]](i), 80, size=65536, timeout=60)
    check_eq(res["failed"], {}, "all four kinds at once")
    check_eq(fwdkit.connections_of(f.pid, F.sshd.port), 1, "one SSH connection carries them all")
    stop_ok(f)


def test_local_destination_by_name_tries_every_address():
    # "localhost" may resolve to ::1 first; the echo server listens on 127.0.0.1 only. An
    # unresolvable destination closes its connections only.
    echo = netserv.Server(netserv.echo)
    f = fwd("-R", f"127.0.0.1:0:localhost:{echo.port}",
            "-R", f"127.0.0.1:0:nonexistent.invalid:{echo.port}", "h0001", want=2)
    good = f.row(to=f"localhost:{echo.port}")["port"]
    bad = f.row(to=f"nonexistent.invalid:{echo.port}")["port"]
    for _ in range(3):
        echo_check(tcp(good), 65536, "-R to localhost")
        c = socket.create_connection(("127.0.0.1", bad), timeout=30)
        check(fwdkit.closed_by_peer(c, 20), "connection to an unresolvable destination not closed")
        c.close()
    check(f.alive(), "sshmux exited")
    stop_ok(f)


def hold(c):
    """A server end that never reads (its receive buffer fills, then the sender stalls)."""
    time.sleep(30)


def test_stalled_ends_bound_memory():
    # Nobody reads at one end: sshmux must stop taking data (window / reads paused), not
    # buffer it. Both directions: the remote client stalls (the local source keeps offering),
    # and the local destination stalls (the remote client keeps sending).
    asan = os.environ.get("ASAN_OPTIONS", "")
    env = {"ASAN_OPTIONS": (asan + ":" if asan else "") + "quarantine_size_mb=1"}
    source = netserv.Server(netserv.source(b"x" * (256 * 1024 * 1024)))
    stall = netserv.Server(hold)
    f = fwd("-R", f"127.0.0.1:0:127.0.0.1:{source.port}", "-R", f"127.0.0.1:0:127.0.0.1:{stall.port}",
            "h0001", want=2, env=env)
    from_source = f.row(to=f"127.0.0.1:{source.port}")["port"]
    to_stall = f.row(to=f"127.0.0.1:{stall.port}")["port"]
    base = fixture.rss_kib(f.pid)
    c = socket.create_connection(("127.0.0.1", from_source), timeout=30)
    c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    w = socket.create_connection(("127.0.0.1", to_stall), timeout=30)
    w.setblocking(False)
    sent, chunk, t_end = 0, b"y" * 65536, time.monotonic() + 3
    while time.monotonic() < t_end:   # push while it takes anything (3 s)
        try:
            sent += w.send(chunk)
        except BlockingIOError:
            time.sleep(0.01)
    grown = fixture.rss_kib(f.pid) - base
    check(grown < 16 * 1024, f"RSS grew by {grown} KiB with stalled ends (pushed {sent} bytes)")
    check(sent < 64 * 1024 * 1024, f"{sent} bytes taken towards a destination that reads nothing")
    got, t_end = 0, time.monotonic() + 30   # and the stalled stream flows once read
    c.settimeout(30)
    while got < 32 * 1024 * 1024 and time.monotonic() < t_end:
        d = c.recv(1 << 20)
        if not d:
            break
        got += len(d)
    check(got >= 32 * 1024 * 1024, f"only {got} bytes after resuming")
    c.close()
    w.close()
    stop_ok(f)


def test_remote_command_sees_its_listener():
    # forward -R ... TARGET -- CMD: the listener is bound before the command starts (the
    # command connects at once), and sshmux exits with the command's status.
    echo = netserv.Server(netserv.echo)
    script = ("import socket,sys; s=socket.create_connection(('127.0.0.1',int(sys.argv[1])),5); "
              "s.sendall(b'from-remote'); s.shutdown(1); d=s.recv(100); print(d.decode()); "
              "sys.exit(7 if d==b'from-remote' else 1)")
    for i in range(5):
        port = fixture.free_port()
        r = fixture.run_sshmux(["forward", "-F", F.cfg, "-R", f"127.0.0.1:{port}:127.0.0.1:"
                                f"{echo.port}", "h0001", "--", "python3", "-c",
                                f'"{script}"', str(port)], timeout=60)
        check_rc(r, 7, f"run {i}: remote command through its own -R")
        check_in("from-remote", r.stdout)
        fwdkit.check_no_sanitizer(r.stderr)


def test_connection_lost_ends_with_255():
    import faults
    echo = netserv.Server(netserv.echo)
    f = fwd("-R", f"127.0.0.1:0:127.0.0.1:{echo.port}", "-R", "127.0.0.1:0", "h0001", want=2)
    held = socket.create_connection(("127.0.0.1", f.rows[0]["port"]), timeout=10)
    held.sendall(b"x")
    check(faults.kill_connections(F.sshd) > 0, "no sshd session to kill")
    try:
        rc = f.proc.wait(30)
    except subprocess.TimeoutExpired:
        raise Failure(f"sshmux still running 30 s after its connection died\n{f.stderr()}")
    err = f.stderr()
    fwdkit.check_no_sanitizer(err)
    check_eq(rc, 255, f"exit status after the connection died; stderr:\n{err}")
    check_in("h0001: sshmux: forward", err)
    held.close()


def test_sigterm_with_connections_in_flight():
    # Connections mid-transfer through -R, reverse SOCKS and -D when SIGTERM comes: exit 0,
    # promptly, nothing reported by the sanitizers (leaks included, in that build). The server
    # sends once asked (a byte), so the SOCKS replies are not raced by its data here.
    big = os.urandom(1 << 20) * 64

    def on_demand(c):
        if c.recv(1):
            c.sendall(big)
    source = netserv.Server(on_demand)
    f = fwd("-R", f"127.0.0.1:0:127.0.0.1:{source.port}", "-R", "127.0.0.1:0",
            "-D", "127.0.0.1:0", "h0001", want=3)
    socks = [socket.create_connection(("127.0.0.1", f.row(kind="remote")["port"]), timeout=10)
             for _ in range(5)]
    socks += [fwdkit.socks5_connect(("127.0.0.1", f.row(kind="remote-socks")["port"]),
                                    "127.0.0.1", source.port) for _ in range(5)]
    socks += [fwdkit.socks5_connect(("127.0.0.1", f.row(kind="dynamic")["port"]),
                                    "127.0.0.1", source.port) for _ in range(5)]
    for s in socks:
        s.sendall(b"go")
    for s in socks:
        check(len(s.recv(65536)) > 0, "no data flowing")
    half = socket.create_connection(("127.0.0.1", f.row(kind="remote-socks")["port"]), timeout=10)
    half.sendall(b"\x05\x01")   # a SOCKS greeting cut short
    t0 = time.monotonic()
    stop_ok(f)
    check(time.monotonic() - t0 < 10, "slow to exit")
    for s in socks + [half]:
        s.close()


def test_bad_specs():
    for spec in ("127.0.0.1:70000:127.0.0.1:80", "127.0.0.1:x:127.0.0.1:80", "0:127.0.0.1:99999",
                 "127.0.0.1:-1"):
        r = fixture.run_sshmux(["forward", "-F", F.cfg, "-R", spec, "h0001"], timeout=20)
        check_rc(r, 2, f"-R {spec}")
        check_in(spec, r.stderr)


if __name__ == "__main__":
    setup()
    main([v for k, v in sorted(globals().items()) if k.startswith("test_")])
