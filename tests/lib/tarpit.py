"""Loopback TCP helpers for sshmux tests (stdlib only): a tarpit and a refused port."""
import socket, threading

LOOPBACK = "127.0.0.1"


def refused_port():
    """A port on 127.0.0.1 with nothing listening (bind to 0, read it, close): connecting gets
    ECONNREFUSED (unless someone grabs the port meanwhile). Also used to pick sshd ports."""
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


free_port = refused_port


def free_port_run(n):
    """A base port with n free consecutive ports, below the ephemeral range (where other tests'
    connections would take them): for --base-port."""
    import random
    for _ in range(200):
        base = random.randrange(20000, 30000 - n)
        socks = []
        try:
            for i in range(n):
                s = socket.socket()
                s.bind((LOOPBACK, base + i))
                socks.append(s)
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no run of free ports found")


class Tarpit:
    """TCP listener on 127.0.0.1 (random port, background thread) that accepts connections and
    never sends anything (or only `banner`, e.g. b"SSH-2.0-x\\r\\n", then nothing); holds them
    open until stop(). Attributes: host, port, accepted (count so far)."""

    def __init__(self, banner=None, backlog=4096):
        self.host, self.banner, self.accepted, self._conns = LOOPBACK, banner, 0, []
        self._sock = socket.socket()
        self._sock.bind((LOOPBACK, 0))
        self._sock.listen(backlog)
        self._sock.settimeout(0.1)
        self.port = self._sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="tarpit", daemon=True)
        self._thread.start()

    def _loop(self):
        while not self._stop.is_set():
            try:
                c, _ = self._sock.accept()
            except OSError:   # includes socket.timeout: recheck _stop
                continue
            self.accepted += 1
            self._conns.append(c)
            try:
                if self.banner:
                    c.sendall(self.banner)
            except OSError:
                pass

    def stop(self):
        """Stop accepting and close every held connection. Idempotent."""
        self._stop.set()
        self._thread.join(timeout=5)
        for c in self._conns + [self._sock]:
            c.close()
        self._conns = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
