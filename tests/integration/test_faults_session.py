"""Faults a session meets, against real sshds (tests/lib/faults.py): connections lost during the
handshake, during authentication and while a command runs (the serving processes SIGKILLed, the
sockets reset with `ss -K`, or the server frozen with SIGSTOP, detected by keepalives or bounded
by the timeouts); keepalives on silent healthy hosts; a changed host key accepted under
StrictHostKeyChecking=no never gets a password; SIGINT/SIGTERM end the remote commands.

Every run checks: no signal exit, no sanitizer report, one JSON row per host, the exit status the
README's table gives, and no descriptor growth (sampled from /proc while it runs)."""
import os
import signal
import threading
import time

from common import *  # noqa: F403
import faults

SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


class Watched:
    """sshmux started in the background; its descriptor count is sampled until it exits.
    Attributes after wait(): rc, out, err, took, fd_max, fd_samples."""

    def __init__(self, args, env=None, workdir=None, preexec_fn=None):
        self.t0 = time.monotonic()
        self.p = fixture.spawn([fixture.sshmux_bin()] + list(args), env=env, workdir=workdir,
                               preexec_fn=preexec_fn)
        self.fd_samples = []
        self._done = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def _sample(self):
        while not self._done.is_set():
            try:
                self.fd_samples.append(faults.fd_count(self.p.pid))
            except OSError:
                return
            time.sleep(0.05)

    @property
    def pid(self):
        return self.p.pid

    def fds(self):
        return faults.fd_count(self.p.pid)

    def wait(self, timeout=120):
        try:
            self.out, self.err = self.p.communicate(timeout=timeout)
        except Exception:
            fixture.kill_tree(self.p.pid, self.p)
            out, err = self.p.communicate()
            raise Failure(f"sshmux did not finish within {timeout}s\n--- stdout\n{out}\n"
                          f"--- stderr\n{err}")
        finally:
            self._done.set()
        self.took = time.monotonic() - self.t0
        self.rc = self.p.returncode
        self.fd_max = max(self.fd_samples, default=0)
        return self


def check_clean(w, hosts, rc, fd_bound=None):
    """The invariants every fault run keeps; returns the rows by host."""
    check(w.rc >= 0, f"sshmux died of signal {-w.rc}\n--- stderr\n{w.err}")
    for mark in SANITIZER_MARKS:
        check(mark not in w.err, f"sanitizer report:\n{w.err}")
    rows = {r["host"]: r for r in json_lines(w.out)}
    check_eq(sorted(rows), sorted(hosts), "one JSON row per host")
    check_eq(w.rc, rc, f"exit status\n--- stderr\n{w.err}")
    if fd_bound is not None:
        check(w.fd_max <= fd_bound, f"descriptors grew to {w.fd_max} (bound {fd_bound})")
    return rows


def fd_bound(fanout, per_session=1):
    # per session: its socket (libssh uses it without a dup of its own: patch 0032), plus what
    # the capability holds (a file being copied); plus the loop's own handful and what the
    # resolver threads may hold open for a moment (/etc/hosts, nsswitch)
    return per_session * fanout + 40


def wait_for(pred, timeout, what):
    return fixture.wait_until(pred, timeout, what, interval=0.1)


def remote_procs(sshd, name):
    """Live processes named `name` (comm) anywhere below sshd, orphans included."""
    out = []
    for pid in set(sshd._session_pids()) | set(faults.serving_pids(sshd)):
        try:
            with open(f"/proc/{pid}/comm") as f:
                if f.read().strip() == name:
                    out.append(pid)
        except OSError:
            pass
    return out


# ---- connection loss during the handshake -------------------------------------------------
# The listener is frozen: the kernel completes the TCP handshakes (backlog) and sshmux waits for
# a banner that does not come. Then the server crashes (the listener is killed: the kernel
# resets what waits in its backlog), the sockets are reset, or it stays frozen (ConnectTimeout).

def handshake_fault(fault):
    n = 4
    f = Fleet(n=n)
    os.kill(f.sshd.proc.pid, signal.SIGSTOP)
    fixture.on_cleanup(lambda: faults._signal_all([f.sshd.proc.pid] if f.sshd.proc else [],
                                                  signal.SIGCONT), "resume listener")
    w = Watched(["exec", "-F", f.cfg, "--json", "--connect-timeout", "4", "--retries", "1",
                 "-w", f.hostlist(), "sleep 1"], workdir=f.wd)
    wait_for(lambda: f.sshd.count_established_connections() >= n, 20, f"{n} connections")
    t0 = time.monotonic()
    if fault == "kill":
        os.kill(f.sshd.proc.pid, signal.SIGKILL)
    elif fault == "reset":
        faults.reset_connections(f.sshd.port)
    w.wait(60)
    took = time.monotonic() - t0
    rows = check_clean(w, f.names, 255, fd_bound(n))
    for h, r in rows.items():
        check_eq(r["error"]["stage"], "connect", h)
    # stopped: ConnectTimeout 4 s; reset: one retry (backoff) that meets the frozen listener and
    # its ConnectTimeout; killed: the retry is refused at once
    check(took < 15, f"{fault}: took {took:.1f}s")
    return rows


def test_handshake_server_killed():
    rows = handshake_fault("kill")
    check(all("refused" in r["error"]["message"] or "closed" in r["error"]["message"]
              for r in rows.values()), rows)


def test_handshake_reset():
    handshake_fault("reset")


def test_handshake_server_stopped():
    rows = handshake_fault("stop")
    check(all("within 4 s" in r["error"]["message"] for r in rows.values()), rows)


# ---- connection loss during authentication ------------------------------------------------
# An AuthorizedKeysCommand that sleeps (authorized_keys is empty, so sshd asks it) holds every
# login inside authentication, with real serving processes to kill, reset or freeze.

def auth_sshd(f_wd, keys):
    if not fixture.IS_ROOT:
        skip("AuthorizedKeysCommandUser needs a root sshd")
    return fixture.Sshd(f_wd, keys, authorized=[], extra_config=(
        "AuthorizedKeysCommand /bin/sleep 60\nAuthorizedKeysCommandUser nobody\n"))


def auth_fault(fault, keepalive=False):
    n = 4
    wd = fixture.Workdir()
    keys = fixture.Keys(wd)
    sshd = auth_sshd(wd, keys)
    kh = sshd.write_known_hosts(wd.file("known_hosts"))
    names = fixture.aliases(n)
    cfg = fixture.write_ssh_config(wd.file("ssh_config"), names, sshd=sshd,
                                   identity=keys.ed25519, known_hosts=kh)
    ka = ["-o", "ServerAliveInterval=1", "-o", "ServerAliveCountMax=1"] if keepalive else []
    w = Watched(["exec", "-F", cfg, "--json", "--auth-timeout", "4"] + ka +
                ["-w", f"h[0001-{n:04d}]", "true"], workdir=wd)
    wait_for(lambda: len(remote_procs(sshd, "sleep")) >= n, 20, f"{n} logins in auth")
    t0 = time.monotonic()
    if fault == "kill":
        faults.kill_connections(sshd)
    elif fault == "reset":
        faults.reset_connections(sshd.port)
    else:
        faults.stop_connections(sshd)
    w.wait(60)
    took = time.monotonic() - t0
    rows = check_clean(w, names, 255, fd_bound(n))
    for h, r in rows.items():
        check_eq(r["error"]["stage"], "auth", h)
    check(took < (8 if fault == "stop" else 4), f"{fault}: took {took:.1f}s")
    return rows


def test_auth_server_killed():
    rows = auth_fault("kill")
    check(all("closed" in r["error"]["message"] or "lost" in r["error"]["message"] or
              "reset" in r["error"]["message"] for r in rows.values()), rows)


def test_auth_reset():
    auth_fault("reset")


def test_auth_server_stopped():
    # keepalives start once authenticated: before that --auth-timeout bounds a frozen server
    for ka in (False, True):
        rows = auth_fault("stop", keepalive=ka)
        check(all("timed out after 4 s" in r["error"]["message"] for r in rows.values()), rows)


# ---- connection loss while the command runs -----------------------------------------------

def exec_fault(fault, extra=(), rc=255):
    n = 4
    f = Fleet(n=n)
    w = Watched(["exec", "-F", f.cfg, "--json"] + list(extra) + ["-w", f.hostlist(), "sleep 30"],
                workdir=f.wd)
    wait_for(lambda: len(remote_procs(f.sshd, "sleep")) >= n, 20, f"{n} commands running")
    t0 = time.monotonic()
    if fault == "kill":
        faults.kill_connections(f.sshd)
    elif fault == "reset":
        faults.reset_connections(f.sshd.port)
    else:
        faults.stop_connections(f.sshd)
    w.wait(60)
    took = time.monotonic() - t0
    rows = check_clean(w, f.names, rc, fd_bound(n))
    return rows, took


def test_exec_server_killed():
    rows, took = exec_fault("kill")
    for h, r in rows.items():
        check_eq(r["error"]["stage"], "exec", h)
        check_in("lost", r["error"]["message"])
    check(took < 4, f"took {took:.1f}s")


def test_exec_reset():
    rows, took = exec_fault("reset")
    for h, r in rows.items():
        check_eq(r["error"]["stage"], "exec", h)
    check(took < 4, f"took {took:.1f}s")


def test_exec_server_stopped_keepalive():
    # interval 1 s x (countmax 2 + 1) = 3 s of silence, the last answer at most 1 s before the
    # freeze; plus slack for a loaded machine
    rows, took = exec_fault("stop", ["-o", "ServerAliveInterval=1", "-o",
                                     "ServerAliveCountMax=2"])
    for h, r in rows.items():
        check_eq(r["error"]["stage"], "timeout", h)
        check_in("server not responding", r["error"]["message"])
    check(1.8 <= took < 6, f"took {took:.1f}s")


def test_exec_server_stopped_command_timeout():
    # no keepalives: -u 3 bounds it (TERM, then KILL after the 1 s grace, channel closed)
    rows, took = exec_fault("stop", ["-u", "3", "--kill-grace", "1"], rc=124)
    for h, r in rows.items():
        check_eq(r["error"]["stage"], "timeout", h)
    check(took < 8, f"took {took:.1f}s")


# ---- keepalives on healthy hosts ----------------------------------------------------------

def test_keepalive_silent_commands_all_ok():
    # Silent for 7 s with ServerAliveInterval 2 / CountMax 1: every keepalive is answered, so no
    # host may be declared dead (the replies are read wherever libssh reads them).
    n = 50
    f = Fleet(n=n)
    w = Watched(["exec", "-F", f.cfg, "--json", "-o", "ServerAliveInterval=2", "-o",
                 "ServerAliveCountMax=1", "-w", f.hostlist(), "sleep 7; echo done"],
                workdir=f.wd).wait(120)
    rows = check_clean(w, f.names, 0, fd_bound(n))
    bad = {h: r["error"] for h, r in rows.items() if not r["ok"]}
    check_eq(bad, {}, "hosts failed")
    check(all(r["stdout"] == "done\n" for r in rows.values()), "every host printed done")


# ---- a changed host key accepted under StrictHostKeyChecking=no ---------------------------

def test_changed_hostkey_no_password_or_kbdint():
    # As OpenSSH: the key is accepted with a warning, but no password (nor keyboard-interactive
    # answer) goes to a server that may be a man in the middle; public keys may still be used.
    wd = fixture.Workdir()
    keys = fixture.Keys(wd)
    user = fixture.TestUser(wd)
    sshd = fixture.Sshd(wd, keys, authorized=[keys.ed25519_pub], password_auth=True, kbdint=True)
    os.makedirs(os.path.join(user.home, ".ssh"), exist_ok=True)
    kh = sshd.write_known_hosts(wd.file("known_hosts"))
    sshd.restart_with_new_host_key()
    target = f"{user.name}@127.0.0.1:{sshd.port}"
    base = ["exec", "-F", "/dev/null", "--json", "-o", f"UserKnownHostsFile={kh}",
            "-o", "StrictHostKeyChecking=no", "--password-env", "PW"]
    # no key this user can use: password and keyboard-interactive would be the way in
    w = Watched(base + ["-i", keys.ecdsa, "-w", target, "id -un"], env={"PW": user.password},
                workdir=wd).wait(60)
    rows = check_clean(w, [target.split("@")[1].split(":")[0]], 255)
    row = next(iter(rows.values()))
    check_eq(row["error"]["stage"], "auth")
    check_in("man-in-the-middle", row["error"]["message"])
    check_in("host key", row["error"]["message"])
    check_match(r"server offers: publickey,password,keyboard-interactive\)|"
                r"server offers: [a-z,-]+\)", row["error"]["message"])
    check(" )" not in row["error"]["message"], row["error"]["message"])
    check_in("CHANGED", w.err)
    check(user.password not in w.out + w.err, "password leaked")
    time.sleep(0.5)   # sshd logs the session end after we are gone
    log = sshd.log_text()
    for bad in (f"password for {user.name}", f"password for invalid user {user.name}",
                f"keyboard-interactive/pam for {user.name}",
                f"keyboard-interactive for {user.name}"):
        check(bad not in log, f"sshd saw {bad!r}:\n{log}")
    # a key the server takes still works there, as with ssh
    akh = os.path.join(user.home, ".ssh", "authorized_keys")
    with open(akh, "w") as f:
        f.write(open(keys.ed25519_pub).read())
    os.chown(akh, user.uid, -1)
    w = Watched(base + ["-i", keys.ed25519, "-w", target, "id -un"], env={"PW": user.password},
                workdir=wd).wait(60)
    rows = check_clean(w, ["127.0.0.1"], 0)
    row = rows["127.0.0.1"]
    check_eq(row["auth_method"], "publickey")
    check_eq(row["stdout"], user.name + "\n")


def test_auth_failure_lists_offered_methods():
    # "server offers: publickey)" -- the list is comma-separated, with nothing dangling
    wd = fixture.Workdir()
    keys = fixture.Keys(wd)
    sshd = fixture.Sshd(wd, keys, authorized=[keys.ed25519_pub])
    kh = sshd.write_known_hosts(wd.file("known_hosts"))
    w = Watched(["exec", "-F", "/dev/null", "--json", "-o", f"UserKnownHostsFile={kh}",
                 "-i", keys.ecdsa, "-w", f"127.0.0.1:{sshd.port}", "true"], workdir=wd).wait(60)
    row = check_clean(w, ["127.0.0.1"], 255)["127.0.0.1"]
    check_eq(row["error"]["stage"], "auth")
    check_match(r"\(tried: publickey; server offers: publickey\)$", row["error"]["message"])


# ---- SIGINT / SIGTERM end the remote commands ---------------------------------------------

def signal_cancel(signum):
    n = 20
    f = Fleet(n=n)
    w = Watched(["exec", "-F", f.cfg, "--json", "-f", str(n), "-w", f.hostlist(), "sleep 60"],
                workdir=f.wd)
    wait_for(lambda: len(remote_procs(f.sshd, "sleep")) >= n, 40, f"{n} commands running")
    t0 = time.monotonic()
    os.kill(w.pid, signum)
    w.wait(30)
    took = time.monotonic() - t0
    rows = check_clean(w, f.names, 130, fd_bound(n))
    name = "SIGINT" if signum == signal.SIGINT else "SIGTERM"
    for h, r in rows.items():
        check(r["error"] and f"canceled ({name})" in r["error"]["message"], f"{h}: {r['error']}")
        check_eq(r["error"]["stage"], "exec", h)
    check(took < 6, f"cancel took {took:.1f}s")
    # the remote commands are gone too, within a few seconds (the TERM is delivered as the
    # channel's signal request; sshd ends the session)
    try:
        wait_for(lambda: not remote_procs(f.sshd, "sleep"), 5, "remote sleeps gone")
    except Failure:
        _fail_left(f.sshd, n)


def _fail_left(sshd, n):
    left = remote_procs(sshd, "sleep")
    raise Failure(f"{len(left)} of {n} remote commands still running after the cancel")


def test_sigint_ends_remote_commands():
    signal_cancel(signal.SIGINT)


def test_sigterm_ends_remote_commands():
    signal_cancel(signal.SIGTERM)


def login_as_self(n):
    """n aliases of a fresh sshd, logging in as the test's own user (root in CI, whose
    sessions sshd does not signal)."""
    wd = fixture.Workdir()
    keys = fixture.Keys(wd)
    sshd = fixture.Sshd(wd, keys)
    kh = sshd.write_known_hosts(wd.file("known_hosts"))
    names = fixture.aliases(n)
    cfg = fixture.write_ssh_config(wd.file("ssh_config"), names, sshd=sshd,
                                   identity=keys.ed25519, known_hosts=kh)
    return wd, sshd, names, cfg


def test_second_sigint_skips_the_grace():
    # A second Ctrl-C closes at once what the first left waiting out --kill-grace (as root the
    # login is root's, whose sessions sshd does not signal: the grace would run out in full).
    n = 3
    wd, sshd, names, cfg = login_as_self(n)
    w = Watched(["exec", "-F", cfg, "--json", "-t", "--kill-grace", "30",
                 "-w", f"h[0001-{n:04d}]", "sleep 60"], workdir=wd)
    wait_for(lambda: len(remote_procs(sshd, "sleep")) >= n, 20, f"{n} commands running")
    t0 = time.monotonic()
    os.kill(w.pid, signal.SIGINT)
    time.sleep(0.5)
    os.kill(w.pid, signal.SIGINT)
    w.wait(40)
    check(time.monotonic() - t0 < 5, f"took {time.monotonic() - t0:.1f}s")
    rows = check_clean(w, names, 130, fd_bound(n))
    check(all("canceled (SIGINT)" in r["error"]["message"] for r in rows.values()), rows)
    check_eq(w.err.count("interrupted: canceling"), 1, w.err)


def test_sigint_root_login_with_pty():
    # sshd delivers no signals to root sessions; closing the channel after the grace ends a
    # command on a PTY (sshd hangs the PTY up). Without a PTY a command that neither reads nor
    # writes outlives the session, as with ssh (README).
    n = 3
    wd, sshd, names, cfg = login_as_self(n)
    w = Watched(["exec", "-F", cfg, "--json", "-t", "--kill-grace", "1",
                 "-w", f"h[0001-{n:04d}]", "sleep 60"], workdir=wd)
    wait_for(lambda: len(remote_procs(sshd, "sleep")) >= n, 20, f"{n} commands running")
    t0 = time.monotonic()
    os.kill(w.pid, signal.SIGINT)
    w.wait(30)
    check(time.monotonic() - t0 < 5, "cancel took too long")
    rows = check_clean(w, names, 130, fd_bound(n))
    check(all("canceled (SIGINT)" in r["error"]["message"] for r in rows.values()), rows)
    try:
        wait_for(lambda: not remote_procs(sshd, "sleep"), 5, "remote sleeps gone")
    except Failure:
        _fail_left(sshd, n)


if __name__ == "__main__":
    main([v for k, v in sorted(globals().items()) if k.startswith("test_")])
