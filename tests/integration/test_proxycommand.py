"""ProxyCommand: the session's byte stream is a child process's stdio (transports/command.c).

The bridge is OpenSSH's own `ssh -W %h:%p` through the test sshd (AllowTcpForwarding yes), so
every inner session really crosses a child process. Also: a bridge that dies at once is reported
with its exit status and stderr; one that hangs is cut by ConnectTimeout and killed; no child or
zombie outlives its session; the child's environment is sanitised."""
import os
import secrets
import shutil
import signal
import time
from contextlib import suppress

from common import *  # noqa: F403

F = None
MARK = "pc" + secrets.token_hex(6)       # in every child's environment and some command lines
TOKENS_LOG = None
ENV_DUMP = None
HOLD_FIFO = None
RELEASED = None
N = 20


def bridge(dest="%h:%p", user="%r", port="%p"):
    """A ProxyCommand: OpenSSH's ssh through the test sshd, forwarding to dest."""
    return (f"ssh -F /dev/null -i {F.keys.ed25519} -o IdentitiesOnly=yes "
            f"-o UserKnownHostsFile={F.kh} -o GlobalKnownHostsFile=/dev/null "
            f"-o StrictHostKeyChecking=yes -o BatchMode=yes -p {port} -W {dest} {user}@127.0.0.1")


def add_alias(alias, proxycommand, **options):
    F.add(alias, HostName="127.0.0.1", Port=F.sshd.port, User=F.user,
          IdentityFile=F.keys.ed25519, IdentitiesOnly="yes", UserKnownHostsFile=F.kh,
          StrictHostKeyChecking="yes", ProxyCommand=proxycommand, **options)


def setup():
    global F, TOKENS_LOG, ENV_DUMP, HOLD_FIFO, RELEASED
    if not shutil.which("ssh"):
        skip("OpenSSH's ssh (the bridge) is not installed")
    F = Fleet(n=N)
    TOKENS_LOG = F.wd.file("tokens.log")
    ENV_DUMP = F.wd.file("child-env.txt")
    HOLD_FIFO = F.wd.file("hold.fifo")
    os.mkfifo(HOLD_FIFO)
    RELEASED = F.wd.file("released")   # created on release: a retried attempt must not block
    # %n in a comment: each bridge's /bin/sh command line names its alias.
    for i in range(1, N + 1):
        add_alias(f"pc{i:02d}", f'echo "%n %h %p %r" >> {TOKENS_LOG}; exec {bridge()} # {MARK}-%n')
    add_alias("pcfail", "sh -c 'echo boom >&2; exit 3'")
    add_alias("pchang", f"sleep 600 # {MARK}-hang", ConnectTimeout=2)
    # Blocks (one process: sh in open()) until the test writes a line into the FIFO.
    add_alias("pchold", f"[ -e {RELEASED} ] || read line < {HOLD_FIFO}; echo released >&2; "
              f"exit 7 # {MARK}-hold", ConnectTimeout=60)
    add_alias("pcstubborn", f"trap '' TERM; sleep 600 # {MARK}-stubborn", ConnectTimeout=2)
    add_alias("pcenv", f"env > {ENV_DUMP}; exec {bridge()}")
    probe_wiring()


def probe_wiring():
    """Sessions only use the command transport once core/session.c picks it for ProxyCommand."""
    r = F.run("--json", "-w", "pcfail", "true", env=mark_env())
    rows = json_lines(r.stdout)
    if rows and rows[0]["ok"]:
        skip("this sshmux ignores ProxyCommand (core/session.c does not use the command "
             "transport yet): connected directly")


def mark_env(extra=None):
    return {"SSHMUX_PC_MARK": MARK, **(extra or {})}


# ------------------------------------------------------------------ /proc
def procs():
    """pid -> (ppid, state, cmdline, environ) of every live process we may read."""
    out = {}
    for d in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{d}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{d}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
            try:
                with open(f"/proc/{d}/environ", "rb") as f:
                    env = f.read().split(b"\0")
            except OSError:
                env = []
        except (OSError, IndexError):
            continue
        out[int(d)] = (int(fields[1]), fields[0], cmd, env)
    return out


def marked(exclude=()):
    """Processes started under MARK (our children and theirs): {pid: cmdline}. Zombies have an
    empty environ, so they are found by zombies() instead."""
    tag = f"SSHMUX_PC_MARK={MARK}".encode()
    return {pid: cmd for pid, (_, _, cmd, env) in procs().items()
            if tag in env and pid not in exclude}


def zombies(parent):
    return {pid: cmd for pid, (ppid, state, cmd, _) in procs().items()
            if ppid == parent and state == "Z"}


def kill_leftovers():
    for pid in marked(exclude={os.getpid()}):
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)



def release_hold():
    """Write a line into HOLD_FIFO if the held command has it open (never blocks)."""
    open(RELEASED, "w").close()
    try:
        fd = os.open(HOLD_FIFO, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:   # ENXIO: no reader (yet, or any more)
        return False
    try:
        os.write(fd, b"go\n")
    finally:
        os.close(fd)
    return True


def check_no_leftovers(what):
    left = marked(exclude={os.getpid()})
    if left:
        kill_leftovers()
    check_eq(left, {}, f"processes left behind after {what}")


# ------------------------------------------------------------------ tests
def test_cmdline_option_fanout():
    # -o ProxyCommand applies to every host: 20 sessions, each through its own ssh -W.
    before = F.sshd.log_text().count("Accepted publickey")
    pc = f"ProxyCommand={bridge(user=F.user, port=F.sshd.port)}"
    t0 = time.monotonic()
    r = F.run("--json", "-o", pc, "-w", F.hostlist(), "echo via-$((40+2))", env=mark_env(),
              timeout=120)
    took = time.monotonic() - t0
    rows = {x["host"]: x for x in json_lines(r.stdout)}
    check_eq(sorted(rows), F.names)
    check_eq([(h, x["error"]) for h, x in rows.items() if not x["ok"]], [])
    check(all(x["stdout"] == "via-42\n" for x in rows.values()), "every host printed via-42")
    check(all(x["attempts"] == 1 for x in rows.values()), "one attempt each")
    check_rc(r, 0)
    # Each host logged in twice: the bridge, then sshmux's session through its forwarding.
    accepted = F.sshd.log_text().count("Accepted publickey") - before
    check_eq(accepted, 2 * N, "logins (bridge + session per host)")
    check_no_leftovers("a 20-host run")
    print(f"    20 hosts through ssh -W in {took:.1f}s")


def test_config_file_with_tokens():
    r = F.run("--json", "-w", "pc01", sub="hosts")
    check_rc(r, 0)
    row = json_lines(r.stdout)[0]
    check_in("%r@127.0.0.1", row["proxycommand"], "hosts --json shows the raw ProxyCommand")
    check_in("-W %h:%p", row["proxycommand"])

    open(TOKENS_LOG, "w").close()
    r = F.run("--json", "-w", f"pc[01-{N:02d}]", "echo ok", env=mark_env(), timeout=120)
    rows = {x["host"]: x for x in json_lines(r.stdout)}
    check_eq([(h, x["error"]) for h, x in rows.items() if not x["ok"]], [])
    check_eq(len(rows), N)
    check(all(x["stdout"] == "ok\n" for x in rows.values()), "every host printed ok")
    check_rc(r, 0)
    with open(TOKENS_LOG) as f:
        expanded = sorted(f.read().splitlines())
    check_eq(expanded, [f"pc{i:02d} 127.0.0.1 {F.sshd.port} {F.user}" for i in range(1, N + 1)],
             "%n %h %p %r as the commands saw them")
    check_no_leftovers("a config-file ProxyCommand run")


def test_command_exits_at_once():
    t0 = time.monotonic()
    r = F.run("--json", "-w", "pcfail,h[0001-0005]", "echo hi", env=mark_env())
    took = time.monotonic() - t0
    rows = {x["host"]: x for x in json_lines(r.stdout)}
    bad = rows["pcfail"]
    check_eq(bad["ok"], False)
    check_eq(bad["error"]["stage"], "connect")
    msg = bad["error"]["message"]
    for part in ("ProxyCommand", "exited with status 3", "boom"):
        check_in(part, msg, "failure message")
    check_eq(bad["attempts"], 1, "a command that exited is not retried")
    check(bad["timing_ms"]["total"] < 5000, bad["timing_ms"])
    for h in F.names[:5]:
        check_eq((rows[h]["ok"], rows[h]["stdout"]), (True, "hi\n"), h)
    check(took < 15, f"run took {took:.1f}s")   # the good hosts' handshakes, on a loaded box
    check_rc(r, 255)
    check_in("boom", r.stderr)


def test_silent_command_times_out_and_is_killed():
    t0 = time.monotonic()
    r = F.run("--json", "-w", "pchang,h0001", "echo hi", env=mark_env())
    took = time.monotonic() - t0
    rows = {x["host"]: x for x in json_lines(r.stdout)}
    err = rows["pchang"]["error"]
    check_eq(err["stage"], "connect")
    check_in("ConnectTimeout", err["message"])
    check(1800 < rows["pchang"]["timing_ms"]["total"] < 3500, rows["pchang"]["timing_ms"])
    check_eq(rows["h0001"]["ok"], True)
    check(took < 15, f"run took {took:.1f}s")
    check_rc(r, 255)
    hung = [p for p, cmd in marked().items() if f"{MARK}-hang" in cmd]
    check_eq(hung, [], "the sleep 600 ProxyCommand is gone")
    check_no_leftovers("a ConnectTimeout")


def test_sigterm_ignored_gets_sigkill():
    t0 = time.monotonic()
    r = F.run("--json", "-w", "pcstubborn", "true", env=mark_env())
    took = time.monotonic() - t0
    row = json_lines(r.stdout)[0]
    check_eq(row["error"]["stage"], "connect")
    # The session ends once its child is reaped: ConnectTimeout 2 s, TERM, KILL 1 s later.
    check(2800 < row["timing_ms"]["total"] < 4500, row["timing_ms"])
    check(took < 15, f"run took {took:.1f}s")
    check_rc(r, 255)
    check_no_leftovers("a child that ignores SIGTERM")


def test_children_reaped_while_running():
    # The 20 bridges end with their sessions, pcfail's child at once; pchold keeps the run (and
    # its loop) going until released. Meanwhile only pchold's sh may be left, and no zombie.
    p = fixture.spawn([fixture.sshmux_bin(), "exec", "-F", F.cfg, "--json", "-w",
                       f"pc[01-{N:02d}],pcfail,pchold", "true"], env=mark_env())
    t0 = time.monotonic()

    def settled():
        left = marked(exclude={p.pid, os.getpid()})
        return (len(left) == 1 and f"{MARK}-hold" in next(iter(left.values()))
                and not zombies(p.pid))
    try:
        try:
            fixture.wait_until(settled, 50, "only the held command left, no zombies")
        except Failure as e:
            left, zs = marked(exclude={p.pid, os.getpid()}), zombies(p.pid)
            release_hold()
            out, err = p.communicate(timeout=30)
            raise Failure(f"{e}\nleft: {left}\nzombies: {zs}\n--- stdout\n{out}\n"
                          f"--- stderr\n{err}") from None
        settle = time.monotonic() - t0
        fixture.wait_until(release_hold, 10, "the held command reading its FIFO")   # exits 7
        out, err = p.communicate(timeout=30)
    finally:
        kill_leftovers()
    rows = {x["host"]: x for x in json_lines(out)}
    check_eq(len(rows), N + 2)
    check_eq(sorted(h for h, x in rows.items() if not x["ok"]), ["pcfail", "pchold"],
             f"failures (stderr: {err})")
    check_in("exited with status 7: released", rows["pchold"]["error"]["message"])
    check_eq(p.returncode, 255)
    check_no_leftovers("a 22-host run")
    print(f"    settled after {settle:.1f}s with only the held command alive")


def test_environment_sanitised():
    if os.path.exists(ENV_DUMP):
        os.unlink(ENV_DUMP)
    env = mark_env({"LD_LIBRARY_PATH": "/nonexistent-marker", "BASH_ENV": "/nonexistent-bashenv",
                    "SSHMUX_TEST_MARK": "1"})
    r = F.run("--json", "-w", "pcenv", "echo fine", env=env)
    row = json_lines(r.stdout)[0]
    check_eq((row["ok"], row["stdout"]), (True, "fine\n"), f"row: {row}")
    check_rc(r, 0)
    with open(ENV_DUMP) as f:
        names = {line.split("=", 1)[0]: line for line in f.read().splitlines() if "=" in line}
    check_eq(names.get("SSHMUX_TEST_MARK"), "SSHMUX_TEST_MARK=1", "ordinary variables pass")
    check("LD_LIBRARY_PATH" not in names, f"LD_LIBRARY_PATH reached the child: "
          f"{names.get('LD_LIBRARY_PATH')}")
    check("BASH_ENV" not in names, "BASH_ENV reached the child")


if __name__ == "__main__":
    tests = [v for k, v in sorted(globals().items()) if k.startswith("test_")]
    try:
        setup()
    except Skip as e:
        print(f"SKIP setup: {e}\n*** SKIPPED: test_proxycommand: {e} ***", flush=True)
        fixture.cleanup_all()
        raise SystemExit(77)
    main(tests)
