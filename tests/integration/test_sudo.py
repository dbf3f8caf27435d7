"""exec --sudo and command lists against a real sshd and a real sudo: throwaway users (random
passwords) with sudoers rules of their own, one requiring a password, one also `requiretty`,
both with credential caching off so every run is asked. Right and wrong passwords on 50 hosts
(every host reports, a wrong password fails with stage "sudo" in seconds, not a hang), no
password given, --sudo-user, the requiretty user's commands re-run on a PTY, and the password
absent from every byte sshmux writes; command lists stop at the first failure or go on with
--keep-going, with per-step results in --json and per-step sections in the gathered view.
Skipped where sudo is missing or users cannot be created (not root)."""
import json
import os
import shutil

from common import *  # noqa: F403
import faults

F = None
USERS = {}
RULES = []
N = 50


def add_sudoer(kind):
    """A TestUser whose sudoers rule wants its password every time (and a tty for
    "requiretty"); the rule goes when the test run ends."""
    u = fixture.TestUser(F.wd)
    path = f"/etc/sudoers.d/sshmuxtest-{u.name}"
    extra = f"Defaults:{u.name} requiretty\n" if kind == "requiretty" else ""
    with open(path, "w") as f:
        f.write(f"{u.name} ALL=(ALL:ALL) ALL\nDefaults:{u.name} timestamp_timeout=0\n{extra}")
    os.chmod(path, 0o440)
    fixture.on_cleanup(lambda: os.path.exists(path) and os.unlink(path), f"rm {path}")
    USERS[kind] = u
    return u


def setup():
    global F
    if F:
        return
    if not shutil.which("sudo"):
        fixture.skip("sudo is not installed (scripts/install-deps.sh installs it)")
    if not fixture.TestUser.available():
        fixture.skip(f"test users: {fixture.TestUser.reason()}")
    F = Fleet(n=N)
    for kind in ("password", "requiretty"):
        add_sudoer(kind)


def run(kind, *args, password=None, hosts=f"h[0001-{N:04d}]", timeout=120):
    """sshmux exec as USERS[kind] (-l); the sudo password (if any) through the environment."""
    env = dict(os.environ)
    if password is not None:
        env["SUDO_PW"] = password
        args = ("--sudo-password-env", "SUDO_PW") + args
    return fixture.run_sshmux(["exec", "-F", F.cfg, "-l", USERS[kind].name, "-w", hosts]
                              + list(args), env=env, timeout=timeout)


def check_no_secret(r, *secrets):
    for s in secrets:
        for name, text in (("stdout", r.stdout), ("stderr", r.stderr)):
            check(s not in text, f"the password appears in sshmux's {name}")


def rows(r):
    out = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    check_eq(len(out), N, f"one JSON row per host\n{r.stderr[-2000:]}")
    return out


def test_right_password_50_hosts():
    u = USERS["password"]
    r = run("password", "--json", "--sudo", "id -un; echo to-stderr >&2", password=u.password)
    check_rc(r, 0)
    for row in rows(r):
        check(row["ok"], f"{row['host']}: {row['error']}")
        check_eq(row["stdout"], "root\n", f"{row['host']}: the command ran as root")
        check_eq(row["stderr"], "to-stderr\n", f"{row['host']}: no prompt in stderr")
        check_eq(len(row["steps"]), 1)
    check_no_secret(r, u.password)
    r = run("password", "--sudo", "id -un", password=u.password)   # streamed, prefixed
    check_rc(r, 0)
    check_eq(sorted(r.stdout.splitlines()), sorted(f"h{i:04d}: root" for i in range(1, N + 1)))
    check("sshmux-sudo" not in r.stdout + r.stderr, "the prompt marker leaked")
    check_no_secret(r, u.password)


def test_wrong_password_fails_with_stage_sudo():
    u = USERS["password"]
    r = run("password", "--json", "--sudo", "id -un", password="not-" + u.password)
    check_rc(r, 1)
    for row in rows(r):
        check(not row["ok"], f"{row['host']} succeeded with a wrong password")
        check_eq(row["error"]["stage"], "sudo", row["host"])
        check_in("incorrect password", row["error"]["message"])
        check(row["timing_ms"]["total"] < 30000, f"{row['host']} took too long")
    check_no_secret(r, u.password, "not-" + u.password)


def test_no_password_given():
    r = run("password", "--json", "--sudo", "id -un", hosts="h000[1-3]")
    check_rc(r, 1)
    for row in [json.loads(l) for l in r.stdout.splitlines()]:
        check_eq(row["error"]["stage"], "sudo")
        check_in("--sudo-password-env", row["error"]["message"])


def test_sudo_user():
    u = USERS["password"]
    other = USERS["requiretty"].name
    r = run("password", "--sudo-user", other, "id -un", password=u.password, hosts="h0001")
    check_rc(r, 0)
    check_eq(r.stdout.strip(), f"h0001: {other}")


def test_requiretty_runs_on_a_pty():
    u = USERS["requiretty"]
    r = run("requiretty", "--json", "--sudo", "id -un", password=u.password)
    check_rc(r, 0)
    for row in rows(r):
        check(row["ok"], f"{row['host']}: {row['error']} {row['stderr']!r}")
        check_eq(row["stdout"].replace("\r", ""), "root\n", row["host"])
        check("tty" not in row["stderr"], f"{row['host']}: sudo's tty message kept")
    check_no_secret(r, u.password)
    r = run("requiretty", "--json", "--sudo", "id -un", password="bad", hosts="h000[1-2]")
    check_rc(r, 1)
    for row in [json.loads(l) for l in r.stdout.splitlines()]:
        check_eq(row["error"]["stage"], "sudo")
    check_no_secret(r, u.password, "bad\n")


def test_command_list_stops_at_first_failure():
    r = run("password", "--json", "--cmd", "echo one", "--cmd", "exit 3", "--cmd", "echo three",
            hosts="h000[1-4]")
    check_rc(r, 3)
    for row in [json.loads(l) for l in r.stdout.splitlines()]:
        check_eq([s["command"] for s in row["steps"]], ["echo one", "exit 3"])
        check_eq([s["exit_code"] for s in row["steps"]], [0, 3])
        check_eq(row["steps"][0]["stdout"], "one\n")
        check_eq(row["exit_code"], 3)
        check(all(s["time_ms"] > 0 for s in row["steps"]), "each step timed")


def test_command_list_keep_going_and_gathered_view():
    r = run("password", "--keep-going", "-b", "--cmd", "echo one", "--cmd", "false",
            "--cmd", "echo three", hosts="h000[1-4]")
    check_rc(r, 1)
    out = r.stdout
    for part in ("h[0001-0004] (4)", "--- step 1: echo one (exit 0)\none\n",
                 "--- step 2: false (exit 1)\n", "--- step 3: echo three (exit 0)\nthree\n"):
        check_in(part, out, "the gathered view shows each step")
    r = run("password", "--cmd", "echo a", "--cmd", "echo b", hosts="h0001")
    check_rc(r, 0)
    check_eq(r.stdout.splitlines(), ["h0001: a", "h0001: b"])
    r = run("password", "--cmd", "echo a", "echo", "b", hosts="h0001")
    check_rc(r, 2)
    check_in("not both", r.stderr)


def test_command_list_under_sudo():
    u = USERS["password"]
    r = run("password", "--json", "--sudo", "--cmd", "id -un", "--cmd", "id -u",
            password=u.password, hosts="h000[1-2]")
    check_rc(r, 0)
    for row in [json.loads(l) for l in r.stdout.splitlines()]:
        check_eq([s["stdout"] for s in row["steps"]], ["root\n", "0\n"])
    check_no_secret(r, u.password)


def list_hit_by(fault, settle=30):
    """A command list on 10 hosts whose second step waits; the fault hits the sshd while it
    does. Every host must report: step 1 kept, the host failed, no crash."""
    u = USERS["password"]
    p = fixture.spawn([fixture.sshmux_bin(), "exec", "-F", F.cfg, "-l", u.name, "-o",
                       "ServerAliveInterval=1", "-o", "ServerAliveCountMax=2", "--json",
                       "-w", "h00[01-10]", "--cmd", "echo first", "--cmd", "sleep 60",
                       "--cmd", "echo never"], workdir=F.wd)
    fixture.wait_until(lambda: faults.running(F.sshd, "sleep", "60") >= 10, 30,
                       "every host in step 2")
    check(fault(F.sshd) > 0, "the fault hit nothing")
    try:
        out, err = p.communicate(timeout=settle)
    except Exception:
        fixture.kill_tree(p.pid, p)
        raise Failure(f"the command list did not end within {settle} s of the fault")
    faults.resume_connections(F.sshd)
    check(p.returncode in (255,), f"exit {p.returncode}\n{err[-3000:]}")
    for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
        check(marker not in err, f"sanitizer report:\n{err[-4000:]}")
    got = [json.loads(l) for l in out.splitlines()]
    check_eq(sorted(r["host"] for r in got), [f"h{i:04d}" for i in range(1, 11)],
             "every host reported")
    for r in got:
        check(not r["ok"] and r["error"], f"{r['host']} did not fail")
        check_eq(r["steps"][0]["stdout"], "first\n", f"{r['host']}: step 1 kept")
        check(len(r["steps"]) <= 2, f"{r['host']} ran past the lost step")


def test_command_list_connection_killed():
    list_hit_by(faults.kill_connections)


def test_command_list_connection_reset():
    list_hit_by(lambda sshd: faults.reset_connections(sshd.port))


def test_command_list_server_frozen():
    list_hit_by(faults.stop_connections)


if __name__ == "__main__":
    setup()
    main([v for k, v in sorted(globals().items()) if k.startswith("test_")])
