"""Small loopback servers for forwarding tests (threads, stdlib only): echo, sink (replies with
the byte count and sha256 of what it got after EOF), source (sends a given payload), each on TCP
127.0.0.1 or a Unix socket. All stop at exit via fixture cleanups."""
import hashlib
import os
import socket
import threading

import fixture


class Server:
    """handler(conn) runs in a thread per connection. kind: "tcp" or a Unix socket path."""

    def __init__(self, handler, unix_path=None, mode=0o666):
        if unix_path:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.bind(unix_path)
            os.chmod(unix_path, mode)
            self.addr = unix_path
        else:
            self.sock = socket.socket()
            self.sock.bind(("127.0.0.1", 0))
            self.addr = self.sock.getsockname()[1]
        self.sock.listen(4096)   # bursts of thousands of connections (the kernel caps it at somaxconn)
        self.handler = handler
        self.accepted = 0
        self._stop = False
        threading.Thread(target=self._loop, daemon=True).start()
        fixture.on_cleanup(self.stop, f"server {self.addr}")

    @property
    def port(self):
        return self.addr

    def _loop(self):
        while not self._stop:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._run, args=(c,), daemon=True).start()

    def _run(self, c):
        try:
            self.handler(c)
        except OSError:
            pass
        finally:
            c.close()

    def stop(self):
        self._stop = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


def echo(c):
    while True:
        d = c.recv(65536)
        if not d:
            break
        c.sendall(d)
    c.shutdown(socket.SHUT_WR)


def sink(c):
    h, n = hashlib.sha256(), 0
    while True:
        d = c.recv(65536)
        if not d:
            break
        h.update(d)
        n += len(d)
    c.sendall(f"{n} {h.hexdigest()}".encode())


def source(payload):
    def handler(c):
        c.sendall(payload)
        c.shutdown(socket.SHUT_WR)
        while c.recv(65536):
            pass
    return handler


def recv_all(c):
    out = bytearray()
    while True:
        d = c.recv(1 << 20)
        if not d:
            return bytes(out)
        out += d



class EchoProcess:
    """echoserver.py in its own process: a fast one-thread echo server (see there)."""

    def __init__(self):
        import subprocess
        import sys
        script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "echoserver.py")
        self.proc = fixture.spawn([sys.executable, script], stdin=subprocess.PIPE)
        line = self.proc.stdout.readline()
        if not line.strip().isdigit():
            raise fixture.Failure(f"echo server did not start: {line!r} {self.proc.stderr.read()}")
        self.port = int(line)

    @property
    def accepted(self):
        self.proc.stdin.write("count\n")
        self.proc.stdin.flush()
        return int(self.proc.stdout.readline())
