"""sshmux forward -D (a local SOCKS4/4a/5 proxy whose connections are direct-tcpip channels)
against a real sshd: curl --socks5-hostname, --socks5, --socks4a and --socks4 to a local HTTP
server by name (localhost) and by address, IPv6 ([::1] targets and a [::1] listener; skipped
without ::1); the reply codes, read by a raw client: refused -> 05, a name the server cannot
resolve -> 04, not permitted by the server (PermitOpen) -> 02, SOCKS4 refused -> 0x5B, BIND and
UDP ASSOCIATE -> 07, only GSSAPI/username offered -> 05 FF, each followed by a close; hostile
clients (garbage, truncated greetings and requests, silent clients, clients gone while their
channel opens, a request pipelined with its data) with sshmux still serving after each and no
sanitizer report; --base-port N -w HOSTS: one SOCKS port per host, each reaching only its own
host's sshd, and -R beside it on each host with the server's port; 500 concurrent SOCKS
connections, every byte echoed; the text and --json lines; a destination that speaks first (the
reply before its first byte, 400 tries); clients that never finish their request closed after
30 s; malformed -D specs (exit 2) and a port in use (255)."""
import os
import socket
import subprocess
import time

from common import *  # noqa: F403
import fwdkit
import netserv
from fwdkit import Forward

F = HTTP = HTTP6 = BLOB = None


def setup():
    global F, HTTP, HTTP6, BLOB
    fixture.raise_fd_limit(8192)
    F = Fleet(n=3)
    HTTP = fwdkit.HttpServer(F.wd.mkdir("www"))
    BLOB = HTTP.put("blob", os.urandom(1024 * 1024 + 17))
    if fwdkit.have_ipv6_loopback():
        HTTP6 = fwdkit.HttpServer(F.wd.mkdir("www6"), host="::1")
        HTTP6.put("blob", BLOB)


def socks_proxy(*extra, target="h0001", **kw):
    """sshmux forward -D 127.0.0.1:0 ...; returns (Forward, (host, port))."""
    f = Forward(F.cfg, ["-D", "127.0.0.1:0"] + list(extra) + [target], workdir=F.wd, **kw)
    return f, ("127.0.0.1", f.rows[0]["port"])


def curl(flag, proxy, url, extra=(), timeout=20):
    r = subprocess.run(["curl", "-sS", "--fail", "--max-time", str(timeout)] + list(extra) +
                       [flag, proxy, url], capture_output=True, env=fixture.base_env(F.wd),
                       timeout=timeout + 10)
    return r.returncode, r.stdout, r.stderr.decode(errors="replace")


def check_curl(flag, proxy, url, extra=()):
    rc, out, err = curl(flag, proxy, url, extra)
    check_eq(rc, 0, f"curl {' '.join(extra)} {flag} {proxy} {url}: {err}")
    check(out == BLOB, f"curl {flag} {url}: body differs ({len(out)} of {len(BLOB)} bytes)")


def check_echo(proxy, port, via="socks5", size=4096):
    """One connection through the proxy to the echo server on port, echoed intact."""
    s = (fwdkit.socks5_connect(proxy, "127.0.0.1", port) if via == "socks5"
         else fwdkit.socks4_connect(proxy, "127.0.0.1", port))
    payload = os.urandom(size)
    s.sendall(payload)
    s.shutdown(socket.SHUT_WR)
    got = netserv.recv_all(s)
    s.close()
    check(got == payload, f"echo through {via} differs ({len(got)} of {size} bytes)")


def stop_ok(f):
    rc, err = f.stop()
    check_eq(rc, 0, f"exit status after SIGTERM; stderr:\n{err}")
    return err


def test_output_lines():
    f = Forward(F.cfg, ["-D", "127.0.0.1:0", "h0001"], workdir=F.wd, as_json=False)
    row = f.rows[0]
    m = check_match(r"^127\.0\.0\.1:(\d+)$", row["listen"], "listen column")
    check_eq((row["host"], row["to"]), ("h0001", "socks"))
    check(not fwdkit.port_is_free(int(m.group(1))), "nothing listens on the printed port")
    stop_ok(f)
    fixed = fixture.free_port()
    f = Forward(F.cfg, ["-D", str(fixed), "h0001"], workdir=F.wd)
    check_eq(f.rows[0]["port"], fixed)
    check_eq(f.rows[0]["kind"], "dynamic")
    check_eq(f.rows[0]["to"], "socks")
    check(fwdkit.host_of(f.rows[0]["listen"]) in ("127.0.0.1", "::1", "localhost"),
          f"-D PORT listens on loopback only: {f.rows[0]}")
    check(all(a in ("127.0.0.1", "::1") for a, _ in fwdkit.listeners(fixed)),
          f"-D {fixed} listeners {fwdkit.listeners(fixed)}")
    check_eq(curl("--socks5-hostname", f"127.0.0.1:{fixed}",
                  f"http://localhost:{HTTP.port}/blob")[1], BLOB, "-D PORT serves")
    stop_ok(f)


def test_curl_socks_variants():
    f, (h, p) = socks_proxy()
    check_eq(f.rows[0], {"host": "h0001", "kind": "dynamic", "listen": f"127.0.0.1:{p}",
                         "port": p, "to": "socks"})
    proxy, name, addr = f"{h}:{p}", f"http://localhost:{HTTP.port}/blob", \
        f"http://127.0.0.1:{HTTP.port}/blob"
    check_curl("--socks5-hostname", proxy, name)      # name resolved by the server
    check_curl("--socks5-hostname", proxy, addr)
    check_curl("--socks5", proxy, name, ["-4"])        # resolved by curl, sent as IPv4
    check_curl("--socks5", proxy, addr)
    check_curl("--socks4a", proxy, name)               # SOCKS4a: name after the user id
    check_curl("--socks4", proxy, name)                # SOCKS4: curl resolves to IPv4
    check_curl("--socks4", proxy, addr)
    stop_ok(f)


def test_curl_ipv6():
    if HTTP6 is None:
        skip("no ::1 on this machine")
    f, (h, p) = socks_proxy()
    url6 = f"http://[::1]:{HTTP6.port}/blob"
    check_curl("--socks5", f"{h}:{p}", url6)             # ATYP 4
    check_curl("--socks5-hostname", f"{h}:{p}", url6)
    stop_ok(f)
    # a SOCKS listener on ::1
    f = Forward(F.cfg, ["-D", "[::1]:0", "h0001"], workdir=F.wd)
    row = f.rows[0]
    check_eq(fwdkit.host_of(row["listen"]), "::1", f"listen of -D [::1]:0: {row}")
    check(any(a == "::1" for a, _ in fwdkit.listeners(row["port"])), "nothing on [::1]")
    check_curl("--socks5-hostname", f"[::1]:{row['port']}", url6)
    check_curl("--socks5-hostname", f"[::1]:{row['port']}", f"http://localhost:{HTTP.port}/blob")
    stop_ok(f)


def reply_then_close(proxy, data, n, timeout=10):
    """Sends data on a new connection; returns (first n reply bytes, closed afterwards)."""
    with socket.create_connection(proxy, timeout=timeout) as s:
        s.sendall(data)
        got = fwdkit.recv_exact(s, n)
        return got, fwdkit.closed_by_peer(s, timeout)


def test_failure_reply_codes():
    f, proxy = socks_proxy()
    refused = fixture.refused_port()
    check_eq(fwdkit.socks5_code(proxy, "127.0.0.1", refused), 0x05, "refused port")
    check_eq(fwdkit.socks5_code(proxy, "localhost", refused), 0x05, "refused port by name")
    check_eq(fwdkit.socks5_code(proxy, "nonexistent.invalid", 80), 0x04, "unresolvable name")
    try:
        fwdkit.socks4_connect(proxy, "127.0.0.1", refused).close()
        fail4 = None
    except fwdkit.SocksError as e:
        fail4 = e.code
    check_eq(fail4, 0x5B, "SOCKS4 to a refused port")
    try:
        fwdkit.socks4_connect(proxy, "nonexistent.invalid", 80).close()
        fail4a = None
    except fwdkit.SocksError as e:
        fail4a = e.code
    check_eq(fail4a, 0x5B, "SOCKS4a to an unresolvable name")
    # the reply and then the close, for the refused CONNECT too
    with socket.create_connection(proxy, timeout=10) as s:
        s.sendall(b"\x05\x01\x00")
        check_eq(fwdkit.recv_exact(s, 2), b"\x05\x00")
        s.sendall(fwdkit.socks5_request("127.0.0.1", refused))
        check_eq(fwdkit.recv_exact(s, 2), b"\x05\x05", "reply to a refused CONNECT")
        check(fwdkit.closed_by_peer(s), "not closed after a failure reply")
    # BIND (2) and UDP ASSOCIATE (3): command not supported
    for cmd in (2, 3):
        with socket.create_connection(proxy, timeout=10) as s:
            s.sendall(b"\x05\x01\x00")
            check_eq(fwdkit.recv_exact(s, 2), b"\x05\x00")
            s.sendall(fwdkit.socks5_request("127.0.0.1", 80, cmd=cmd))
            check_eq(fwdkit.recv_exact(s, 2), b"\x05\x07", f"reply to command {cmd}")
            check(fwdkit.closed_by_peer(s), f"not closed after command {cmd}")
    # only GSSAPI (1) and username/password (2) offered: no acceptable method
    got, closed = reply_then_close(proxy, b"\x05\x02\x01\x02", 2)
    check_eq(got, b"\x05\xff", "no acceptable method")
    check(closed, "not closed after 05 FF")
    got, closed = reply_then_close(proxy, b"\x05\x00", 2)   # zero methods
    check_eq(got, b"\x05\xff", "empty method list")
    check(closed, "not closed after 05 FF (no methods)")
    # SOCKS4 BIND
    got, closed = reply_then_close(proxy, b"\x04\x02\x00\x50\x7f\x00\x00\x01x\x00", 8)
    check_eq(got[:2], b"\x00\x5b", "SOCKS4 BIND")
    check(closed, "not closed after SOCKS4 BIND")
    check_curl("--socks5-hostname", f"{proxy[0]}:{proxy[1]}",
               f"http://localhost:{HTTP.port}/blob")
    stop_ok(f)


HOSTILE = {
    "connect and close": b"",
    "http request": b"GET / HTTP/1.1\r\nHost: example\r\n\r\n",
    "version 6": b"\x06\x01\x00",
    "socks5 version byte only": b"\x05",
    "3 methods announced, 1 sent": b"\x05\x03\x00",
    "truncated request": b"\x05\x01\x00\x05\x01\x00\x03\x20abc",
    "address type 9": b"\x05\x01\x00\x05\x01\x00\x09\x7f\x00\x00\x01\x00\x50",
    "empty name": b"\x05\x01\x00\x05\x01\x00\x03\x00\x00\x50",
    "name with NULs": b"\x05\x01\x00\x05\x01\x00\x03\x04a\x00b\x00\x00\x50",
    "reserved byte set": b"\x05\x01\x00\x05\x01\xff\x01\x7f\x00\x00\x01\x00\x50",
    "request version 4 after 5": b"\x05\x01\x00\x04\x01\x00\x01\x7f\x00\x00\x01\x00\x50",
    "socks4 truncated": b"\x04\x01\x00",
    "socks4 user id without end": b"\x04\x01\x00\x50\x7f\x00\x00\x01" + b"u" * 8192,
    "socks4a name without end": b"\x04\x01\x00\x50\x00\x00\x00\x01u\x00" + b"n" * 8192,
    "socks4 command 9": b"\x04\x09\x00\x50\x7f\x00\x00\x01\x00",
    "port 0": b"\x05\x01\x00\x05\x01\x00\x01\x7f\x00\x00\x01\x00\x00",
    "64 KiB of random bytes": os.urandom(65536),
    "64 KiB after a valid greeting": b"\x05\x01\x00" + os.urandom(65536),
}


def test_hostile_clients_do_not_hurt():
    echo = netserv.Server(netserv.echo)
    f, proxy = socks_proxy()
    idle = socket.create_connection(proxy, timeout=10)      # silent the whole time
    half = socket.create_connection(proxy, timeout=10)      # greeting only, then silent
    half.sendall(b"\x05\x01\x00")
    check_eq(fwdkit.recv_exact(half, 2), b"\x05\x00")
    for name, data in HOSTILE.items():
        with socket.create_connection(proxy, timeout=10) as s:
            try:
                s.sendall(data)
                if name != "connect and close":
                    s.shutdown(socket.SHUT_WR)
                    fwdkit.closed_by_peer(s, 10)
            except OSError:
                pass   # closing (or resetting) on us is a fine answer
        check(f.alive(), f"sshmux died on: {name}\n{f.stderr()}")
        check_echo(proxy, echo.port)
    # connects and sends nothing, then closes after a while
    s = socket.create_connection(proxy, timeout=10)
    time.sleep(0.5)
    s.close()
    # gone while its channel is being opened (to an open and to a refused port), many times
    refused = fixture.refused_port()
    for i in range(100):
        s = socket.create_connection(proxy, timeout=10)
        s.sendall(b"\x05\x01\x00" + fwdkit.socks5_request("127.0.0.1",
                                                          echo.port if i % 2 else refused))
        if i % 3 == 0:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        s.close()
    # gone right after the reply, with data in flight towards it
    for i in range(20):
        s = fwdkit.socks5_connect(proxy, "127.0.0.1", echo.port)
        s.sendall(os.urandom(100000))
        s.close()
    check(f.alive(), f"sshmux died\n{f.stderr()}")
    check_echo(proxy, echo.port, size=1 << 20)
    check_echo(proxy, echo.port, via="socks4")
    # the silent ones did not block anybody; they still get served
    half.sendall(fwdkit.socks5_request("127.0.0.1", echo.port))
    fwdkit.socks5_read_reply(half)
    half.sendall(b"late")
    half.shutdown(socket.SHUT_WR)
    check_eq(netserv.recv_all(half), b"late")
    idle.close()
    check_curl("--socks5-hostname", f"{proxy[0]}:{proxy[1]}",
               f"http://localhost:{HTTP.port}/blob")
    stop_ok(f)


def test_silent_clients_closed_after_30s():
    # A client that connects and never completes its request is closed after 30 s (swept every
    # 5 s), so it cannot hold a descriptor for ever; a connection past its request is not.
    if os.environ.get("SSHMUX_CRYPTO") == "mbedtls":
        fixture.skip("a timer of the listener, not of the crypto backend: the OpenSSL and ASan "
                     "builds run it (30 s each)")
    echo = netserv.Server(netserv.echo)
    f, proxy = socks_proxy()
    t0 = time.monotonic()
    served = fwdkit.socks5_connect(proxy, "127.0.0.1", echo.port)
    silent = {"nothing": b"", "version byte": b"\x05", "greeting only": b"\x05\x01\x00",
              "half a request": b"\x05\x01\x00\x05\x01\x00\x03\x09exa"}
    socks = {}
    for name, data in silent.items():
        socks[name] = socket.create_connection(proxy, timeout=10)
        socks[name].sendall(data)
    for name, s in socks.items():
        check(fwdkit.closed_by_peer(s, max(1, t0 + 45 - time.monotonic())),
              f"silent client ({name}) still open after 45 s")
        took = time.monotonic() - t0
        check(took >= 29, f"silent client ({name}) closed after {took:.1f} s, before 30 s")
        s.close()
    served.sendall(b"still here")
    served.shutdown(socket.SHUT_WR)
    check_eq(netserv.recv_all(served), b"still here", "a connection past its request")
    check_echo(proxy, echo.port)
    stop_ok(f)


def test_pipelined_request_and_data():
    # Greeting, CONNECT and the first data in one write, before any reply: TCP may deliver a
    # client's separate writes in one read anyway, and clients with "optimistic data" send
    # right after the request. The bytes after the request belong to the stream.
    echo = netserv.Server(netserv.echo)
    f, proxy = socks_proxy()
    for via in ("socks5", "socks4"):
        payload = os.urandom(30000)
        if via == "socks5":
            head = b"\x05\x01\x00" + fwdkit.socks5_request("127.0.0.1", echo.port)
            nreply = 2 + 10
        else:
            head = b"\x04\x01" + echo.port.to_bytes(2, "big") + b"\x7f\x00\x00\x01\x00"
            nreply = 8
        with socket.create_connection(proxy, timeout=20) as s:
            s.sendall(head + payload)
            reply = fwdkit.recv_exact(s, nreply)
            check_eq(len(reply), nreply, f"{via}: reply length ({reply.hex()})")
            check(reply[:2] in (b"\x05\x00", b"\x00\x5a"), f"{via}: reply {reply.hex()}")
            s.shutdown(socket.SHUT_WR)
            got = netserv.recv_all(s)
        check_eq(len(got), len(payload), f"{via}: echo length")
        check(got == payload, f"{via}: pipelined data altered")
    stop_ok(f)


def test_destination_speaks_first():
    # Servers that talk first (SSH, SMTP, MySQL...): the CONNECT reply must precede their first
    # byte, though the open confirmation and the first data often come in one read. 400 tries:
    # a race that loses once in 50 shows.
    payload = os.urandom(65536)
    src = netserv.Server(netserv.source(payload))
    f, proxy = socks_proxy()
    bad = []
    for i in range(400):
        why = fwdkit.first_bytes_check(proxy, src.port, payload, "socks5" if i % 2 else "socks4")
        if why:
            bad.append(f"try {i}: {why}")
    check_eq(bad[:3], [], f"{len(bad)} of 400 connections got the reply out of place")
    stop_ok(f)


def test_fleet_base_port_each_host_its_own():
    # Three hosts, each its own sshd that permits only its own echo server: through host i's
    # port, echo i answers and the others are refused by that sshd (02: not allowed).
    names = ["m1", "m2", "m3"]
    echoes = [netserv.Server(netserv.echo) for _ in names]
    sshds = fwdkit.add_sshds(F, names, [f"PermitOpen 127.0.0.1:{e.port}\n" for e in echoes])
    base = fixture.free_port_run(3)
    # --base-port numbers the local listeners (-D) only; each host's -R port is its server's
    back = netserv.Server(netserv.echo)
    f = Forward(F.cfg, ["--base-port", str(base), "-D", "0", "-R",
                        f"127.0.0.1:0:127.0.0.1:{back.port}", "-w", "m[1-3]"], workdir=F.wd,
                want=6)
    ports = {r["host"]: r["port"] for r in f.rows if r["kind"] == "dynamic"}
    check_eq(ports, {"m1": base, "m2": base + 1, "m3": base + 2})
    for r in f.rows:
        check_in((r["kind"], r["to"]), [("dynamic", "socks"),
                                        ("remote", f"127.0.0.1:{back.port}")])
    rports = {r["host"]: r["port"] for r in f.rows if r["kind"] == "remote"}
    check_eq(sorted(rports), names)
    for h, p in rports.items():
        check(p not in ports.values() and fwdkit.owned_by(p, sshds[h]),
              f"{h}'s -R port {p}: not its sshd's listener")
        with socket.create_connection(("127.0.0.1", p), timeout=10) as c:
            c.sendall(h.encode())
            c.shutdown(socket.SHUT_WR)
            check_eq(netserv.recv_all(c), h.encode(), f"{h}'s -R")
    for i, h in enumerate(names):
        proxy = ("127.0.0.1", ports[h])
        check_echo(proxy, echoes[i].port)
        for j, other in enumerate(echoes):
            if j != i:
                check_eq(fwdkit.socks5_code(proxy, "127.0.0.1", other.port), 0x02,
                         f"{h} to m{j + 1}'s echo (not permitted by {h}'s sshd)")
    check(all(s.proc for s in sshds.values()), "an sshd died")
    stop_ok(f)


def test_500_concurrent_connections():
    echo = netserv.EchoProcess()
    f, proxy = socks_proxy()

    def connect(i):   # all three protocols, names resolved by the server for a third
        if i % 3 == 0:
            return fwdkit.socks4_connect(proxy, "127.0.0.1", echo.port)
        return fwdkit.socks5_connect(proxy, "127.0.0.1" if i % 3 == 1 else "localhost",
                                     echo.port)
    res = fwdkit.echo_many(connect, 500, size=16384, timeout=90)
    check_eq(dict(list(res["failed"].items())[:5]), {}, f"{len(res['failed'])} of 500 failed")
    check_eq(res["ok"], 500)
    check(echo.accepted >= 500, f"echo server saw {echo.accepted} connections")
    check(f.alive(), "sshmux exited")
    stop_ok(f)


def test_bad_specs_and_port_in_use():
    for spec in ("127.0.0.1:abc", "70000", "127.0.0.1:", "1.2.3.4:5:6"):
        r = fixture.run_sshmux(["forward", "-F", F.cfg, "-D", spec, "h0001"], timeout=20)
        check_rc(r, 2, f"-D {spec}")
        check_in(spec, r.stderr)
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    port = busy.getsockname()[1]
    r = fixture.run_sshmux(["forward", "-F", F.cfg, "-D", f"127.0.0.1:{port}", "h0001"],
                           timeout=20)
    check_rc(r, 255)
    check_in(str(port), r.stderr)
    check_in("in use", r.stderr)
    busy.close()


if __name__ == "__main__":
    setup()
    main([v for k, v in sorted(globals().items()) if k.startswith("test_")])
