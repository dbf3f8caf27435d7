"""Helpers for the -R / -D forwarding tests and bench (stdlib only): a running `sshmux forward`
whose listener lines are read with a timeout, a raw SOCKS4/4a/5 client that exposes the reply
bytes (curl only says "failed"), many concurrent connections each checked byte for byte through
an echo server, a small HTTP server, and who owns a listening TCP port."""
import hashlib
import http.server
import ipaddress
import json
import os
import re
import selectors
import signal
import socket
import struct
import threading
import time

import fixture
from fixture import Failure

SANITIZER_RE = re.compile(r"ERROR: (Address|Leak|Memory|Thread)Sanitizer|runtime error:|"
                          r"SUMMARY: \w+Sanitizer")


# ------------------------------------------------------------------ sshmux forward
class Forward:
    """`sshmux forward -F cfg [--json] ARGS...` in the background. Waits (timeout seconds) for
    `want` listener lines on stdout and parses them into self.rows: with --json the objects as
    printed, in text mode {"host", "listen", "to"} (a leading -L/-R/-D column is tolerated,
    the "HOST LISTEN TO" header of fleet runs skipped). stderr goes to a file (many failed
    connections must not fill a pipe nobody reads)."""
    _seq = 0

    def __init__(self, cfg, args, want=1, as_json=True, env=None, workdir=None, timeout=20,
                 binary=None):
        Forward._seq += 1
        wd = workdir or fixture._current_workdir
        self.err_path = wd.file(f"forward-{os.getpid()}-{Forward._seq}.err")
        self.argv = [binary or fixture.sshmux_bin(), "forward", "-F", cfg] + \
            (["--json"] if as_json else []) + list(args)
        self._err = open(self.err_path, "wb")
        self.proc = fixture.spawn(self.argv, env=env, workdir=wd, text=False, bufsize=0,
                                  stderr=self._err)
        self.as_json, self.rows, self.lines, self.headers, self._buf = as_json, [], [], [], b""
        self.read_rows(want, timeout)

    @property
    def pid(self):
        return self.proc.pid

    def read_rows(self, n, timeout=20):
        """Reads n more listener lines; Failure (with stderr) on exit or timeout."""
        deadline, got = time.monotonic() + timeout, 0
        while got < n:
            while b"\n" not in self._buf:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise Failure(f"{self.argv!r}: no listener line within {timeout}s (have "
                                  f"{self.lines})\n--- stderr\n{self.stderr()}")
                if not fixture_readable(self.proc.stdout, left):
                    continue
                chunk = os.read(self.proc.stdout.fileno(), 65536)
                if not chunk:
                    rc = self.proc.wait(10)
                    raise Failure(f"{self.argv!r} exited {rc} after {self.lines}\n"
                                  f"--- stderr\n{self.stderr()}")
                self._buf += chunk
            line, self._buf = self._buf.split(b"\n", 1)
            line = line.decode()
            if not line.strip():
                continue
            if line.split()[0] == "HOST":
                self.headers.append(line)
                continue
            self.lines.append(line)
            self.rows.append(self.parse(line))
            got += 1
        return self.rows[-n:] if n else []

    def parse(self, line):
        if self.as_json:
            try:
                return json.loads(line)
            except ValueError:
                raise Failure(f"not a JSON line: {line!r}")
        parts = line.split()
        if parts and parts[0] in ("-L", "-R", "-D"):
            parts = parts[1:]
        if len(parts) != 3:
            raise Failure(f"listener line is not HOST LISTEN TO: {line!r}")
        return {"host": parts[0], "listen": parts[1], "to": parts[2]}

    def row(self, **match):
        """The one row whose fields equal match (Failure otherwise)."""
        found = [r for r in self.rows if all(r.get(k) == v for k, v in match.items())]
        if len(found) != 1:
            raise Failure(f"{len(found)} rows match {match}: {self.rows}")
        return found[0]

    def stderr(self):
        self._err.flush()
        with open(self.err_path, errors="replace") as f:
            return f.read()

    def alive(self):
        return self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=15):
        """Signals sshmux and waits: (exit status, stderr). Failure if it does not exit, or if
        stderr carries a sanitizer report."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except Exception:
            fixture.kill_tree(self.proc.pid, self.proc)
            raise Failure(f"sshmux did not exit within {timeout}s of signal {sig}\n"
                          f"--- stderr\n{self.stderr()}")
        err = self.stderr()
        check_no_sanitizer(err)
        return rc, err


def fixture_readable(f, timeout):
    with selectors.DefaultSelector() as sel:
        sel.register(f, selectors.EVENT_READ)
        return bool(sel.select(timeout))


def check_no_sanitizer(text):
    m = SANITIZER_RE.search(text or "")
    if m:
        raise Failure(f"sanitizer report in sshmux's stderr:\n{text[max(0, m.start() - 200):][:6000]}")


def port_of(listen):
    """'127.0.0.1:43567' / '[::1]:80' -> 43567 / 80."""
    return int(listen.rsplit(":", 1)[1])


def host_of(listen):
    return listen.rsplit(":", 1)[0].strip("[]")


# ------------------------------------------------------------------ more servers
def add_sshds(fleet, names, extra_configs):
    """One more sshd per alias (same keys and login as fleet's, its extra_config from the list),
    added to fleet's ssh_config and known_hosts: hosts that can be told apart. Returns
    {alias: Sshd}."""
    out = {}
    for alias, extra in zip(names, extra_configs):
        s = fixture.Sshd(fleet.wd, fleet.keys, extra_config=extra)
        s.write_known_hosts(fleet.kh, append=True)
        fleet.add(alias, HostName=s.host, Port=s.port, User=fleet.user,
                  IdentityFile=fleet.keys.ed25519, IdentitiesOnly="yes",
                  UserKnownHostsFile=fleet.kh, StrictHostKeyChecking="yes")
        out[alias] = s
    return out


def owned_by(port, sshd):
    """True if a TCP listener on port is held by sshd or one of its session processes (a
    remote forward's listener lives in the session's sshd process)."""
    family = {sshd.proc.pid, *fixture.descendants(sshd.proc.pid)} if sshd.proc else set()
    return any(set(socket_owners(inode)) & family for _, inode in listeners(port))


# ------------------------------------------------------------------ ports and listeners
def _hexaddr(addr, v6):
    raw = ipaddress.ip_address(addr).packed
    if v6:   # /proc/net/tcp6 prints each 32-bit word in host (little-endian) order
        return "".join(raw[i:i + 4][::-1].hex().upper() for i in range(0, 16, 4))
    return raw[::-1].hex().upper()


def listeners(port):
    """[(address, inode)] of TCP sockets in LISTEN on port (IPv4 and IPv6, this namespace)."""
    out = []
    for table, v6 in (("/proc/net/tcp", False), ("/proc/net/tcp6", True)):
        try:
            rows = open(table).read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            cols = row.split()
            addr, p = cols[1].split(":")
            if cols[3] == "0A" and int(p, 16) == port:
                if v6:
                    words = [bytes.fromhex(addr[i:i + 8])[::-1] for i in range(0, 32, 8)]
                    a = str(ipaddress.IPv6Address(b"".join(words)))
                else:
                    a = str(ipaddress.IPv4Address(bytes.fromhex(addr)[::-1]))
                out.append((a, int(cols[9])))
    return out


def socket_owners(inode):
    """pids holding socket inode open."""
    needle, pids = f"socket:[{inode}]", []
    for d in filter(str.isdigit, os.listdir("/proc")):
        try:
            for fd in os.listdir(f"/proc/{d}/fd"):
                if os.readlink(f"/proc/{d}/fd/{fd}") == needle:
                    pids.append(int(d))
                    break
        except OSError:
            continue
    return pids


def connections_of(pid, port):
    """ESTABLISHED TCP connections of process pid (and its children) to 127.0.0.1:port: its SSH
    connections to an sshd there."""
    inodes = set()
    for p in [pid] + fixture.descendants(pid):
        try:
            inodes |= {os.readlink(f"/proc/{p}/fd/{fd}") for fd in os.listdir(f"/proc/{p}/fd")}
        except OSError:
            pass
    n = 0
    with open("/proc/net/tcp") as f:
        for row in f.read().splitlines()[1:]:
            cols = row.split()
            n += (cols[3] == "01" and cols[2] == f"0100007F:{port:04X}"
                  and f"socket:[{cols[9]}]" in inodes)
    return n


def port_is_free(port, host="127.0.0.1"):
    """True if we can bind and listen on host:port right now (SO_REUSEADDR: connections in
    TIME_WAIT do not count, a listener does)."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(fam) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
            s.listen(1)
            return True
        except OSError:
            return False


def have_ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


# ------------------------------------------------------------------ raw SOCKS client
class SocksError(Exception):
    """The proxy answered with a failure: .code is the reply byte (SOCKS5 REP or SOCKS4 CD),
    .reply the raw bytes read."""

    def __init__(self, code, reply):
        super().__init__(f"SOCKS reply code 0x{code:02x} ({reply.hex()})")
        self.code, self.reply = code, reply


def recv_exact(s, n):
    """n bytes, or fewer if the peer closed first."""
    out = b""
    while len(out) < n:
        d = s.recv(n - len(out))
        if not d:
            break
        out += d
    return out


def socks5_address(host):
    """ATYP + address bytes for an IP literal or a name."""
    try:
        ip = ipaddress.ip_address(host)
        return (b"\x01" if ip.version == 4 else b"\x04") + ip.packed
    except ValueError:
        name = host.encode()
        return b"\x03" + bytes([len(name)]) + name


def socks5_request(host, port, cmd=1):
    return b"\x05" + bytes([cmd]) + b"\x00" + socks5_address(host) + struct.pack(">H", port)


def socks5_read_reply(s):
    """Reads a SOCKS5 reply (VER REP RSV ATYP BND.ADDR BND.PORT); returns it; SocksError on
    REP != 0; Failure on a malformed or short reply."""
    head = recv_exact(s, 4)
    if not head:
        raise Failure("the SOCKS5 proxy closed the connection without a reply")
    if len(head) < 2 or head[0] != 5:
        raise Failure(f"bad SOCKS5 reply head {head.hex()!r}")
    if head[1] != 0:
        raise SocksError(head[1], head + s.recv(262))
    if len(head) < 4:
        raise Failure(f"short SOCKS5 reply {head.hex()!r}")
    alen = {1: 4, 4: 16}.get(head[3])
    if alen is None:
        n = recv_exact(s, 1)
        alen = n[0] if n else 0
        head += n
    rest = recv_exact(s, alen + 2)
    if len(rest) != alen + 2:
        raise Failure(f"short SOCKS5 reply {head.hex()} {rest.hex()}")
    return head + rest


def socks5_connect(proxy, host, port, timeout=20, methods=b"\x00", fam=socket.AF_INET):
    """A socket connected through the SOCKS5 proxy (host, port) to host:port (no auth)."""
    s = socket.socket(fam)
    s.settimeout(timeout)
    try:
        s.connect(proxy)
        s.sendall(b"\x05" + bytes([len(methods)]) + methods)
        sel = recv_exact(s, 2)
        if sel != b"\x05\x00":
            raise SocksError(sel[1] if len(sel) > 1 else -1, sel)
        s.sendall(socks5_request(host, port))
        socks5_read_reply(s)
        return s
    except BaseException:
        s.close()
        raise


def socks4_connect(proxy, host, port, timeout=20, userid=b"sshmux"):
    """A socket connected through a SOCKS4 (IPv4 literal) or SOCKS4a (name) proxy."""
    s = socket.socket()
    s.settimeout(timeout)
    try:
        s.connect(proxy)
        try:
            ip, name = ipaddress.IPv4Address(host).packed, b""
        except ValueError:
            ip, name = b"\x00\x00\x00\x01", host.encode() + b"\x00"
        s.sendall(b"\x04\x01" + struct.pack(">H", port) + ip + userid + b"\x00" + name)
        reply = recv_exact(s, 8)
        if len(reply) != 8 or reply[0] != 0:
            raise Failure(f"bad SOCKS4 reply {reply.hex()!r}")
        if reply[1] != 0x5A:
            raise SocksError(reply[1], reply)
        return s
    except BaseException:
        s.close()
        raise


def first_bytes_check(proxy, port, payload, via="socks5", timeout=20):
    """CONNECT through the proxy to 127.0.0.1:port, whose server sends payload at once and
    closes: None if the reply and then exactly payload arrive, else what went wrong (e.g. the
    reply found in the middle of the destination's bytes)."""
    with socket.create_connection(proxy, timeout=timeout) as s:
        if via == "socks5":
            s.sendall(b"\x05\x01\x00")
            if recv_exact(s, 2) != b"\x05\x00":
                return "no method selected"
            s.sendall(socks5_request("127.0.0.1", port))
            nreply, ok = 10, b"\x05\x00"
        else:
            s.sendall(b"\x04\x01" + struct.pack(">H", port) + b"\x7f\x00\x00\x01\x00")
            nreply, ok = 8, b"\x00\x5a"
        s.shutdown(socket.SHUT_WR)
        got = bytearray()
        while True:
            d = s.recv(1 << 20)
            if not d:
                break
            got += d
    if got[:2] == ok and got[nreply:] == payload:
        return None
    k = 0   # how many of the destination's bytes came before anything else
    while k < min(len(got), len(payload)) and got[k] == payload[k]:
        k += 1
    return (f"{via}: {len(got)} bytes (want {nreply}+{len(payload)}), first "
            f"{bytes(got[:12]).hex()}; the destination's first {k} bytes came before the reply"
            + (f", then {bytes(got[k:k + nreply]).hex()}" if k else ""))


def socks5_code(proxy, host, port, timeout=20):
    """The SOCKS5 REP byte the proxy answers a CONNECT to host:port with (0 = success)."""
    try:
        socks5_connect(proxy, host, port, timeout).close()
        return 0
    except SocksError as e:
        return e.code


def closed_by_peer(s, timeout=10):
    """True if the peer closes s (EOF or reset) within timeout, reading and dropping data."""
    s.settimeout(timeout)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if not s.recv(65536):
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False
    return False


# ------------------------------------------------------------------ many connections
def payload_for(i, size):
    """Distinct, reproducible bytes for connection i."""
    seed = hashlib.sha256(f"conn-{i}".encode()).digest()
    return (seed * (size // len(seed) + 1))[:size]


def echo_many(connect, n, size=8192, timeout=60):
    """Opens n connections at once with connect(i) -> socket (each through the forward to an
    echo server), sends each its own payload of size bytes, half-closes, reads every echo back.
    Handshakes run in a thread pool of up to 64 so the channel opens overlap; then all n are
    open together. Returns a dict: ok (count), failed {i: reason}, wall_s (first connect to last
    byte verified)."""
    socks, failed = [None] * n, {}
    t0 = time.monotonic()
    lock, nxt = threading.Lock(), [0]

    def opener():
        while True:
            with lock:
                i = nxt[0]
                nxt[0] += 1
            if i >= n:
                return
            try:
                socks[i] = connect(i)
            except Exception as e:   # noqa: BLE001 (every failure is a result here)
                failed[i] = f"connect: {type(e).__name__}: {e}"
    ts = [threading.Thread(target=opener, daemon=True) for _ in range(min(64, n))]
    deadline = t0 + timeout
    for t in ts:
        t.start()
    for t in ts:
        t.join(max(0.0, deadline - time.monotonic()))
    sel = selectors.DefaultSelector()
    state = {}
    for i, s in enumerate(socks):
        if s is None:
            failed.setdefault(i, "connect: no result in time")
            continue
        s.setblocking(False)
        state[s] = {"i": i, "out": memoryview(payload_for(i, size)), "in": bytearray()}
        sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE)
    while state and time.monotonic() < deadline:
        for key, ev in sel.select(max(0.01, deadline - time.monotonic())):
            s, st = key.fileobj, state[key.fileobj]
            try:
                if ev & selectors.EVENT_WRITE and st["out"] is not None:
                    k = s.send(st["out"][:65536])
                    st["out"] = st["out"][k:]
                    if not len(st["out"]):
                        s.shutdown(socket.SHUT_WR)
                        st["out"] = None
                        sel.modify(s, selectors.EVENT_READ)
                if ev & selectors.EVENT_READ:
                    d = s.recv(65536)
                    if d:
                        st["in"] += d
                        continue
                    if bytes(st["in"]) != payload_for(st["i"], size):
                        failed[st["i"]] = f"echo differs: got {len(st['in'])} bytes"
                    sel.unregister(s)
                    s.close()
                    del state[s]
            except (BlockingIOError, InterruptedError):
                pass
            except OSError as e:
                failed[st["i"]] = f"io: {e}"
                sel.unregister(s)
                s.close()
                del state[s]
    for s, st in state.items():
        failed[st["i"]] = f"stuck: sent all={st['out'] is None}, got {len(st['in'])} bytes"
        s.close()
    sel.close()
    return {"ok": n - len(failed), "failed": failed, "wall_s": time.monotonic() - t0}


# ------------------------------------------------------------------ HTTP
class HttpServer:
    """http.server on (host, 0) in a thread serving directory `root` (files written by put()).
    Attributes: host, port, root."""

    def __init__(self, root, host="127.0.0.1"):
        os.makedirs(root, exist_ok=True)
        self.host, self.root = host, root
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *a, **kw):
                super().__init__(*a, directory=root, **kw)

            def log_message(self, *a):
                pass

        class Server(http.server.ThreadingHTTPServer):
            address_family = fam
            daemon_threads = True

        self.httpd = Server((host, 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        fixture.on_cleanup(self.stop, f"http {host}:{self.port}")

    def put(self, name, data):
        with open(os.path.join(self.root, name), "wb") as f:
            f.write(data)
        return data

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
