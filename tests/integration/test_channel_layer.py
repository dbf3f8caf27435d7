"""The channel layer's inbound side, driven directly by tests/tools/smx-chantest.c (one connection,
no job, no CLI) against a real sshd: global requests queued behind a keepalive each get their own
answer, the bound port of a `tcpip-forward` to port 0 from that answer's payload (two requests, two
distinct ports); channels the server opens for a TCP and a Unix socket forward
(forwarded-tcpip, forwarded-streamlocal@openssh.com) are dispatched by kind and piped to the
tool's echo server; a kind nobody accepts is refused at once, by the connection layer, and by
libssh itself when no callback takes it (libssh patch 0006); a connection killed under an open
forwarded channel ends the tool with an error, no crash and no sanitizer report.

The tool is $SMX_CHANTEST, else tests/smx-chantest next to $SSHMUX."""
import os
import queue
import re
import signal
import socket
import subprocess
import threading
import time
from contextlib import suppress

from common import *  # noqa: F403
import faults

WD = KEYS = SSHD = CFG = None
CRASH_RCS = {128 + s for s in (signal.SIGSEGV, signal.SIGBUS, signal.SIGABRT, signal.SIGILL,
                               signal.SIGFPE)}
STREAMLOCAL = "forwarded-streamlocal@openssh.com"


def tool_bin():
    cands = [os.environ.get("SMX_CHANTEST", "")]
    if os.environ.get("SSHMUX"):
        cands.append(os.path.join(os.path.dirname(os.environ["SSHMUX"]), "tests", "smx-chantest"))
    for c in cands:
        if c and os.access(c, os.X_OK):
            return c
    fixture.skip(f"smx-chantest not found (SMX_CHANTEST={cands[0]!r})")


def setup():
    global WD, KEYS, SSHD, CFG
    if WD:
        return
    WD = fixture.Workdir()
    KEYS = fixture.Keys(WD)
    # Unix socket forwards are allowed by default; a socket left by an earlier run is replaced.
    SSHD = fixture.Sshd(WD, KEYS, extra_config="AllowStreamLocalForwarding yes\n"
                                               "StreamLocalBindUnlink yes\n")
    kh = SSHD.write_known_hosts(WD.file("known_hosts"))
    CFG = fixture.write_ssh_config(WD.file("ssh_config"), ["srv"], sshd=SSHD,
                                   identity=KEYS.ed25519, known_hosts=kh,
                                   extra={"ServerAliveInterval": 1, "ServerAliveCountMax": 3})


class Tool:
    """smx-chantest running in the background; its stdout lines are collected by a thread."""

    def __init__(self, *opts):
        setup()
        self.sock = WD.file(f"fwd-{time.monotonic_ns()}.sock")
        self.p = fixture.spawn([tool_bin(), *opts, CFG, "srv", self.sock], workdir=WD,
                               stdin=subprocess.PIPE)
        self.lines, self.q = [], queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        # The tool queues its requests once a keepalive is in flight. libssh polls right after a
        # send, so on a busy machine (sshd scheduled at once on the send's wakeup) the answer
        # could be read before the tool's turn: hold the server still until the tool has queued.
        self.wait(r"^ready$", 30)
        faults.stop_connections(SSHD)
        try:
            self.wait(r"^keepalive-in-flight [01]$", 15)
        finally:
            faults.resume_connections(SSHD)
        m = self.wait(r"^listening (\d+) (\d+)$", 30)
        self.ports = int(m.group(1)), int(m.group(2))

    def _read(self):
        for line in self.p.stdout:
            self.q.put(line.rstrip("\n"))
        self.q.put(None)

    def wait(self, pattern, timeout=10):
        """The first line (seen or to come) matching pattern; Failure on timeout or exit."""
        deadline = time.monotonic() + timeout
        for line in self.lines:
            if re.search(pattern, line):
                return re.search(pattern, line)
        while True:
            try:
                line = self.q.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise Failure(f"no /{pattern}/ within {timeout}s; output:\n" +
                              "\n".join(self.lines))
            if line is None:
                self.q.put(None)
                raise Failure(f"the tool exited ({self.p.wait(10)}) before /{pattern}/:\n" +
                              "\n".join(self.lines) + "\n--- stderr\n" + self.p.stderr.read())
            self.lines.append(line)
            if re.search(pattern, line):
                return re.search(pattern, line)

    def finish(self, timeout=15):
        """Closes stdin (the tool's cue to close the connection); returns (rc, stderr)."""
        with suppress(OSError):
            self.p.stdin.close()
        return self.end(timeout)

    def end(self, timeout=15):
        try:
            self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            fixture.kill_tree(self.p.pid, self.p)
            raise Failure(f"the tool did not exit within {timeout}s:\n" + "\n".join(self.lines))
        err = self.p.stderr.read()
        with suppress(Failure):
            self.wait(r"^closed$", 5)   # the reader thread has seen the end of stdout
        check(self.p.returncode not in CRASH_RCS and self.p.returncode >= 0,
              f"the tool died: exit {self.p.returncode}\n--- stderr\n{err[-6000:]}")
        for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
            check(marker not in err, f"sanitizer report ({marker}):\n{err[-6000:]}")
        return self.p.returncode, err


def connect_tcp(port):
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def connect_unix(path):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(10)
    s.connect(path)
    return s


def echo_check(s, size=300 * 1024):
    """Sends size random bytes (more than the server's first window of a forwarded channel),
    half-closes, and checks the same bytes come back, then EOF."""
    data = os.urandom(size)
    got = bytearray()
    writer = threading.Thread(target=lambda: (s.sendall(data), s.shutdown(socket.SHUT_WR)),
                              daemon=True)
    writer.start()
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        got += chunk
    writer.join(10)
    s.close()
    check_eq(len(got), size, "bytes echoed")
    check(bytes(got) == data, "the echoed bytes differ from those sent")


def check_refused_promptly(path):
    """The server is told at once that the channel was refused: it closes the client."""
    s = connect_unix(path)
    s.settimeout(5)
    try:
        check_eq(s.recv(100), b"", "a refused channel's client gets EOF")
    except socket.timeout:
        raise Failure("the refused channel hangs: the server was never answered")
    finally:
        s.close()


def test_forwards_and_answers():
    t = Tool()
    check_in("keepalive-in-flight 1", t.lines, "the requests were queued behind a keepalive")
    answers = [l for l in t.lines if l.startswith("answer ")]
    check_eq(answers, [f"answer tcpip-forward#1 ok port {t.ports[0]}",
                       f"answer tcpip-forward#2 ok port {t.ports[1]}",
                       "answer streamlocal-forward@openssh.com ok"], "answers, in order")
    check(all(1024 <= p < 65536 for p in t.ports), f"bound ports {t.ports}")
    check(t.ports[0] != t.ports[1], f"each forward got its own port: {t.ports}")
    for port in t.ports:
        echo_check(connect_tcp(port))
        t.wait(rf"^accepted forwarded-tcpip 127\.0\.0\.1 {port}$")
    echo_check(connect_unix(t.sock))
    t.wait(rf"^accepted {re.escape(STREAMLOCAL)} {re.escape(t.sock)} 0$")
    # Several at once, both kinds, each with its own channel.
    socks = [connect_tcp(t.ports[0]), connect_unix(t.sock), connect_tcp(t.ports[1])]
    threads = [threading.Thread(target=echo_check, args=(s, 64 * 1024)) for s in socks]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    fixture.wait_until(lambda: sum(l.startswith("pipe-done") for l in t.lines + list(t.q.queue))
                       >= 6, 10, "every pipe done")
    rc, err = t.finish()
    check_eq(rc, 0, f"exit status after a clean close\n{err[-3000:]}")
    done = [l for l in t.lines if l.startswith("pipe-done")]
    check(all(l.endswith(" ok") for l in done), f"pipes ended cleanly: {done}")


def test_refused_kind():
    """A kind the tool did not accept: the connection layer refuses it, the other still works."""
    t = Tool("--refuse", STREAMLOCAL)
    check_refused_promptly(t.sock)
    echo_check(connect_tcp(t.ports[0]))
    check(t.p.poll() is None, "the tool ended after a refusal")
    check(not any(l.startswith(f"accepted {STREAMLOCAL}") for l in t.lines), "refused, accepted")
    rc, err = t.finish()
    check_eq(rc, 0, f"exit status\n{err[-3000:]}")


def test_libssh_refuses_unclaimed_kind():
    """No callback takes the kind (the connection's are removed): libssh refuses it itself,
    where it used to queue it unanswered (patch 0006)."""
    t = Tool("--libssh-refuses")
    check_refused_promptly(t.sock)
    echo_check(connect_tcp(t.ports[1]))
    rc, err = t.finish()
    check_eq(rc, 0, f"exit status\n{err[-3000:]}")


def test_connection_killed_under_open_channel():
    t = Tool()
    s = connect_tcp(t.ports[0])
    s.sendall(b"ping")
    check_eq(s.recv(4), b"ping", "echo before the fault")
    t.wait(r"^accepted forwarded-tcpip ")
    check(faults.kill_connections(SSHD) > 0, "the fault hit nothing")
    rc, err = t.end(20)
    check_eq(rc, 1, f"exit status after the connection died\n{err[-3000:]}")
    m = t.wait(r"^ended (.*)$")
    check(m.group(1) != "-", "the end says why")
    t.wait(r"^pipe-done forwarded-tcpip (?!ok$)")   # the open channel failed, with a reason
    s.close()


if __name__ == "__main__":
    fixture.main([test_forwards_and_answers, test_refused_kind,
                  test_libssh_refuses_unclaimed_kind, test_connection_killed_under_open_channel])
