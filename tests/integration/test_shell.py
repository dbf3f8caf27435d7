"""sshmux shell: an interactive session as `ssh HOST` gives one, driven through a real
pseudo-terminal (python's pty pair, sshmux as the session leader with it as its controlling
terminal) against the suite's sshd: a command and its output, the PTY's size and TERM from the
local terminal, a resize seen by `stty size`, OpenSSH's escapes (~. ~? ~# ~~), the remote exit
status, the local terminal's settings identical before and after (also after ~., a killed
connection and SIGTERM), a command without a PTY, stdin that is not a terminal, a jump host,
--broadcast over several hosts, and more than one host refused without it."""
import fcntl
import os
import re
import select
import signal
import struct
import subprocess
import termios
import time

from common import *  # noqa: F403

F = None


def setup():
    global F
    F = Fleet(n=3)


class Term:
    """sshmux in a fresh pseudo-terminal of rows x cols, reading everything it writes."""

    def __init__(self, args, rows=24, cols=80, term="xterm-256color"):
        self.master, self.slave = os.openpty()
        self.resize(rows, cols)
        self.before = termios.tcgetattr(self.slave)
        env = fixture.base_env(F.wd, {"TERM": term})
        self.proc = subprocess.Popen(
            [fixture.sshmux_bin(), "shell", "-F", F.cfg] + list(args), env=env,
            stdin=self.slave, stdout=self.slave, stderr=self.slave, start_new_session=True,
            preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0))
        fixture.on_cleanup(lambda: fixture.kill_tree(self.proc.pid, self.proc),
                           f"pid {self.proc.pid}")
        self.seen = b""

    def resize(self, rows, cols):
        fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def send(self, text):
        os.write(self.master, text.encode() if isinstance(text, str) else text)

    def expect(self, pattern, timeout=15):
        """Reads until pattern (bytes regex) matches what arrived since the last match."""
        rx = re.compile(pattern.encode() if isinstance(pattern, str) else pattern)
        deadline = time.monotonic() + timeout
        while True:
            m = rx.search(self.seen)
            if m:
                self.seen = self.seen[m.end():]
                return m
            left = deadline - time.monotonic()
            if left <= 0:
                raise Failure(f"no {pattern!r} within {timeout}s; got {self.seen[-400:]!r}")
            r, _, _ = select.select([self.master], [], [], min(left, 0.5))
            if r:
                try:
                    chunk = os.read(self.master, 65536)
                except OSError:
                    chunk = b""
                if not chunk and self.proc.poll() is not None:
                    raise Failure(f"sshmux exited ({self.proc.returncode}) before {pattern!r}; "
                                  f"got {self.seen[-400:]!r}")
                self.seen += chunk

    def prompt(self):
        """A known prompt, so commands' output can be told apart from it."""
        self.send("PS1='s''m> '\r")   # its echo is not the prompt
        self.expect(r"sm> ")

    def finish(self, timeout=15):
        """Waits for the exit (reading meanwhile); returns (status, the rest of the output)."""
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                raise Failure(f"sshmux shell did not exit; got {self.seen[-400:]!r}")
            r, _, _ = select.select([self.master], [], [], 0.2)
            if r:
                try:
                    self.seen += os.read(self.master, 65536)
                except OSError:
                    break
        self.proc.wait(timeout=5)
        while select.select([self.master], [], [], 0.1)[0]:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:
                break
            if not chunk:
                break
            self.seen += chunk
        out = self.seen.decode(errors="replace")
        for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
            check(marker not in out, f"sanitizer report: {out[-2000:]}")
        return self.proc.returncode, out

    def check_restored(self):
        check_eq(termios.tcgetattr(self.slave), self.before,
                 "the terminal's settings after sshmux shell differ from before")


def test_command_output_and_exit_status():
    t = Term(["h0001"])
    t.prompt()
    t.send("echo $((6*7)) $TERM\r")
    t.expect(r"42 xterm-256color")
    t.send("tty\r")
    t.expect(r"/dev/pts/\d+")
    t.send("exit 3\r")
    rc, out = t.finish()
    check_eq(rc, 3, "sshmux shell exits with the remote shell's status")
    check_in("Connection to h0001 closed.", out)
    t.check_restored()


def test_resize_is_seen_by_stty_size():
    t = Term(["h0001"], rows=30, cols=90)
    t.prompt()
    t.send("stty size\r")
    t.expect(r"30 90")
    t.resize(41, 101)   # the kernel sends SIGWINCH to sshmux, the terminal's foreground
    time.sleep(0.3)
    t.send("stty size\r")
    t.expect(r"41 101")
    t.send("exit\r")
    rc, _ = t.finish()
    check_eq(rc, 0)
    t.check_restored()


def test_escape_dot_closes_the_connection():
    t = Term(["h0001"])
    t.prompt()
    t.send("sleep 300\r")
    time.sleep(0.3)
    t.send("\r~.")
    rc, out = t.finish()
    check_eq(rc, 255, "~. ends with 255, as ssh")
    check_in("Connection to h0001 closed.", out)
    t.check_restored()


def test_escape_help_list_and_literal_tilde():
    t = Term(["h0001"])
    t.prompt()
    t.send("~?")
    t.expect(r"Supported escape sequences")
    t.send("~#")
    t.expect(r"The following connections are open")
    t.send("cat\r")
    time.sleep(0.3)
    t.send("~~x\r")        # at a line start ~~ sends one ~: cat gets "~x"
    t.expect(r"~x\r\n~x")  # the terminal's echo, then cat's copy
    t.send("a~.b\r")       # not at a line start: no escape
    t.expect(r"a~\.b\r\na~\.b")
    t.send("\x04")
    t.expect(r"sm> ")
    t.send("exit 0\r")
    rc, _ = t.finish()
    check_eq(rc, 0, "an escape that is not ~. does not end the session")
    t.check_restored()


def test_other_escape_character():
    t = Term(["-e", "^]", "h0001"])
    t.prompt()
    t.send("\r~.\r")   # ~ is an ordinary character now: the session goes on
    t.send("echo still-$((1+1))\r")
    t.expect(r"still-2")
    t.send("\r\x1d.")
    rc, _ = t.finish()
    check_eq(rc, 255)
    t.check_restored()


def sshd_children():
    """The per-connection sshd processes (not the shell under them: a shell killed first
    would report its own signal as the session's status)."""
    found = set()
    for pid in fixture.descendants(F.sshd.proc.pid):
        with suppress(OSError):
            with open(f"/proc/{pid}/comm") as f:
                if f.read().strip().startswith("sshd"):
                    found.add(pid)
    return found


def test_connection_killed_restores_the_terminal():
    t = Term(["h0001"])
    t.prompt()
    before = sshd_children()
    check(before, "the sshd serving the session has children")
    for child in before:   # the per-connection sshd processes: the connection dies
        with suppress(ProcessLookupError):
            os.kill(child, signal.SIGKILL)
    rc, out = t.finish()
    check_eq(rc, 255, "a lost connection is 255, as ssh")
    check_in("sshmux shell: h0001:", out)
    t.check_restored()


def test_connection_frozen_ends_by_keepalive():
    t = Term(["-o", "ServerAliveInterval=1", "-o", "ServerAliveCountMax=2", "h0001"])
    t.prompt()
    frozen = sshd_children()
    for child in frozen:   # the server stops answering, the TCP connection stays up
        with suppress(ProcessLookupError):
            os.kill(child, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        rc, out = t.finish(timeout=20)
        check_eq(rc, 255, "a server that stopped answering is 255")
        check(time.monotonic() - t0 < 15, "ended by the keepalives, not a long timeout")
        t.check_restored()
    finally:
        for child in frozen:
            with suppress(ProcessLookupError):
                os.kill(child, signal.SIGCONT)


def test_sigterm_restores_the_terminal():
    t = Term(["h0001"])
    t.prompt()
    t.proc.send_signal(signal.SIGTERM)
    rc, _ = t.finish()
    check_eq(rc, 255)
    t.check_restored()


def test_command_without_pty_and_with_t():
    r = F.run("h0001", "echo", "plain;", "test", "-t", "0", "||", "echo", "no-tty", sub="shell")
    check_rc(r, 0)
    check_in("plain", r.stdout)
    check_in("no-tty", r.stdout)
    t = Term(["-t", "h0001", "tty;", "exit", "5"])
    t.expect(r"/dev/pts/\d+")
    rc, _ = t.finish()
    check_eq(rc, 5, "-t COMMAND: its status")
    t.check_restored()


def test_slow_reader_bounds_memory_and_loses_nothing():
    """200 MB of output to a stdout nobody reads for 3 s: the host is held back (sshmux's memory
    stays far below what was sent), then every byte arrives."""
    total = 200_000_000
    p = fixture.spawn([fixture.sshmux_bin(), "shell", "-F", F.cfg, "h0001",
                       f"head -c {total} /dev/zero"], workdir=F.wd, text=False, bufsize=0)
    time.sleep(3)
    rss = fixture.rss_kib(p.pid)
    check(p.poll() is None, "still running while its output is not read")
    check(rss < 100 * 1024, f"sshmux holds {rss} KiB while its reader is stalled")
    got = 0
    while True:
        chunk = p.stdout.read(1 << 20)
        if not chunk:
            break
        got += len(chunk)
    check_eq(p.wait(timeout=60), 0)
    check_eq(got, total, "every byte of the output arrived")


def test_stdin_not_a_terminal():
    r = F.run("h0001", sub="shell", input="echo piped-$((1+1))\nexit 7\n")
    check_eq(r.returncode, 7, f"the shell read stdin to its exit: {r.stderr}")
    check_in("piped-2", r.stdout)
    check_in("Pseudo-terminal will not be allocated because stdin is not a terminal", r.stderr)


def test_through_a_jump_host():
    r = F.run("-J", "h0001", "h0002", "echo", "via-jump", sub="shell")
    check_rc(r, 0)
    check_in("via-jump", r.stdout)


def test_many_hosts_need_broadcast():
    r = F.run("-w", "h[0001-0003]", sub="shell")
    check_eq(r.returncode, 2)
    check_in("3 hosts given", r.stderr)
    check_in("--broadcast", r.stderr)


def test_broadcast_types_once_into_every_host():
    r = F.run("--broadcast", "-w", "h[0001-0003]", sub="shell",
              input="echo hello-$((2*3))\nexit 4\n")
    check_eq(r.returncode, 4, f"the largest status: {r.stderr}")
    for h in ("h0001", "h0002", "h0003"):
        check_in(f"{h}: hello-6", r.stdout)


def test_unreachable_host_is_255():
    r = F.run("-p", "1", "-o", "ConnectTimeout=5", "127.0.0.1", "true", sub="shell")
    check_eq(r.returncode, 255)
    check_in("127.0.0.1", r.stderr)


if __name__ == "__main__":
    setup()
    main([test_command_output_and_exit_status, test_resize_is_seen_by_stty_size,
          test_escape_dot_closes_the_connection, test_escape_help_list_and_literal_tilde,
          test_other_escape_character, test_connection_killed_restores_the_terminal,
          test_connection_frozen_ends_by_keepalive, test_sigterm_restores_the_terminal, test_command_without_pty_and_with_t,
          test_slow_reader_bounds_memory_and_loses_nothing, test_stdin_not_a_terminal, test_through_a_jump_host, test_many_hosts_need_broadcast,
          test_broadcast_types_once_into_every_host, test_unreachable_host_is_255])
