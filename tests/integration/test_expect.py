"""sshmux expect against a real sshd: a PTY login shell (dash, the throwaway test user's) whose
~/.profile sets a custom PS1 ("sm> "), driven by send/expect steps.

- Prompt detection as netmiko does (no regex): commands and their outputs per step on 20 hosts
  at once, the echo of each command and the trailing prompt stripped, in the default
  `host: line` view, the gathered (-b) step view and --json's per-step fields.
- Regex steps: the output up to the match; the echo is never searched; the rest of a matched
  command's output is no step's (the next step's output is its own).
- A step that never matches: that host fails at that step (stage "expect", the last bytes it
  saw in the message, the step timed_out in --json), exit 1, the other hosts fine. A second
  test user (its ~/.profile sets SLOW) makes one host of the run slow.
- --script FILE of JSON lines (with --send after it), a malformed line (exit 2, file:line
  named, nothing connects), a bad regex (exit 2).
- The sshd's session processes killed while a step runs: every host still has a result row,
  exit 255, no hang.
Needs root (test users); skipped otherwise."""
import os
import pwd
import time

from common import *  # noqa: F403
import faults

F = None
N = 20
PROFILE = "PS1='sm> '; export PS1\n"


def add_user(profile):
    """A TestUser whose login shell (/bin/sh) reads `profile` from its ~/.profile."""
    u = fixture.TestUser(F.wd)
    with open(os.path.join(u.home, ".profile"), "a") as f:
        f.write(profile)
    return u


def setup():
    global F
    if F:
        return
    if not fixture.TestUser.available():
        fixture.skip(f"test users: {fixture.TestUser.reason()}")
    F = Fleet(n=N)
    with open(os.path.join(pwd.getpwnam(F.user).pw_dir, ".profile"), "a") as f:
        f.write(PROFILE)
    slow = add_user(PROFILE + "SLOW=1; export SLOW\n")
    fixture.write_ssh_config(F.cfg, {"slow": {"User": slow.name}}, sshd=F.sshd,
                             identity=F.keys.ed25519, known_hosts=F.kh, append=True)


def check_no_sanitizer(err):
    for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
        check(marker not in err, f"sanitizer report:\n{err[-4000:]}")


def expect(*args, timeout=60):
    """sshmux expect on the fleet; a sanitizer's report (an ASan build) fails the test whatever
    the exit status."""
    r = F.run(*args, sub="expect", timeout=timeout)
    check_no_sanitizer(r.stderr)
    return r


def rows(r):
    """--json rows by host."""
    return {row["host"]: row for row in fixture.json_lines(r.stdout)}


def test_prompt_steps_on_20_hosts():
    t0 = time.monotonic()
    r = expect("-w", F.hostlist(), "--json", "--send", 'echo "a  b"; echo c',
               "--send", "printf '%s\\n' x y", "--send", 'echo "[$PS1]"', "--send", "true")
    took = time.monotonic() - t0
    check_rc(r, 0)
    got = rows(r)
    check_eq(sorted(got), F.names, "one row per host")
    for host, row in got.items():
        check(row["ok"] and row["error"] is None, f"{host}: {row['error']}")
        check_eq(row["exit_code"], 0, f"{host}: exit_code")
        check_eq([s["command"] for s in row["steps"]],
                 ['echo "a  b"; echo c', "printf '%s\\n' x y", 'echo "[$PS1]"', "true"])
        check_eq([s["stdout"] for s in row["steps"]], ["a  b\nc\n", "x\ny\n", "[sm> ]\n", ""],
                 f"{host}: step outputs (echo and prompt stripped)")
        for s in row["steps"]:
            check(s["exit_code"] == 0 and s["timed_out"] is False, f"{host}: step {s}")
            check(isinstance(s["time_ms"], float) and 0 <= s["time_ms"] < 10000,
                  f"{host}: time_ms {s['time_ms']}")
        check_eq(row["stdout"], "a  b\nc\nx\ny\n[sm> ]\n", f"{host}: every step's output")
    check(took < 30, f"20 hosts took {took:.1f} s")


def test_default_and_gathered_views():
    r = expect("-w", "h000[1-3]", "--send", "echo hello; echo world", "--send", "echo bye")
    check_rc(r, 0)
    want = sorted(f"h000{i}: {w}" for i in range(1, 4) for w in ("hello", "world", "bye"))
    check_eq(sorted(r.stdout.splitlines()), want, "each step's lines prefixed 'host: '")
    for line in r.stdout.splitlines():
        check("sm>" not in line and "echo" not in line, f"prompt or echo left: {line!r}")
    r = expect("-w", "h000[1-3]", "-b", "--send", "echo hello")
    check_rc(r, 0)
    check_in("h[0001-0003] (3)", r.stdout)
    check_in("--- step 1: echo hello (matched)\nhello\n", r.stdout)


def test_regex_steps():
    r = expect("-w", "h0001", "--json",
               "--send", "echo start; sleep 0.3; echo READY-42; sleep 0.01; echo rest",
               "--expect", "READY-[0-9]+", "--timeout", "5",
               "--send", "echo MARK", "--expect", "MARK",
               "--send", "echo next")
    check_rc(r, 0)
    steps = rows(r)["h0001"]["steps"]
    check_eq([s["stdout"] for s in steps], ["start\nREADY-42", "MARK", "next\n"],
             "regex output up to the match, the echo not searched, the rest of a matched "
             "output nobody's (it comes 10 ms after the match: the drain waits for 100 ms of "
             "quiet)")


def test_step_timeout_fails_that_host_only():
    t0 = time.monotonic()
    r = expect("-w", "h0001,h0002,slow", "--json", "--send", "echo one",
               "--send", 'echo before; [ -n "$SLOW" ] && sleep 30; echo after',
               "--timeout", "2", "--send", "echo three")
    took = time.monotonic() - t0
    check_rc(r, 1)
    got = rows(r)
    check_eq(sorted(got), ["h0001", "h0002", "slow"])
    for host in ("h0001", "h0002"):
        check(got[host]["ok"], f"{host} failed: {got[host]['error']}")
        check_eq([s["stdout"] for s in got[host]["steps"]], ["one\n", "before\nafter\n",
                                                              "three\n"])
    slow = got["slow"]
    check(not slow["ok"], "the slow host did not fail")
    check_eq(slow["error"]["stage"], "expect")
    msg = slow["error"]["message"]
    check_in("step 2:", msg)
    check_in('the prompt "sm>" did not come back', msg, "the prompt netmiko's way")
    check_in("last bytes:", msg)
    check_in("before\\r\\n", msg, "the last bytes seen, escaped")
    check_eq(len(slow["steps"]), 2, "no step after the failed one")
    check_eq(slow["steps"][0]["stdout"], "one\n")
    st = slow["steps"][1]
    check(st["timed_out"] is True and st["exit_code"] is None, f"failed step: {st}")
    check_eq(st["stdout"], "before\n", "what the failed step printed")
    check(1.9 < st["time_ms"] / 1000 < 5, f"the step ran {st['time_ms']} ms for --timeout 2")
    check(took < 15, f"took {took:.1f} s")
    check_in("sshmux: expect failed on slow (1): step 2", r.stderr)


def test_script_file():
    path = F.wd.file("steps.jsonl")
    with open(path, "w") as f:
        f.write('# set up\n{"send": "X=41"}\n\n'
                '{"send": "echo $((X + 1)); echo done", "expect": "done", "timeout": 5}\n'
                '{"send_raw": "echo raw\\n"}\n')
    r = expect("-w", "h000[1-2]", "--json", "--script", path, "--send", "echo $X")
    check_rc(r, 0)
    for host, row in rows(r).items():
        check_eq([s["command"] for s in row["steps"]],
                 ["X=41", "echo $((X + 1)); echo done", "echo raw", "echo $X"], host)
        check_eq([s["stdout"] for s in row["steps"]], ["", "42\ndone", "raw\n", "41\n"], host)


def test_malformed_script_line():
    path = F.wd.file("bad.jsonl")
    with open(path, "w") as f:
        f.write('{"send": "true"}\n{"send": "x", "expct": "y"}\n')
    t0 = time.monotonic()
    r = expect("-w", F.hostlist(), "--script", path)
    check_rc(r, 2)
    check_in(f"{path}:2: unknown key \"expct\"", r.stderr)
    check(time.monotonic() - t0 < 5, "a usage error should not connect anywhere")
    r = expect("-w", "h0001", "--send", "true", "--expect", "a(")
    check_rc(r, 2)
    check_in("step 1: regex \"a(\"", r.stderr)
    r = expect("-w", "h0001")
    check_rc(r, 2)
    check_in("no steps given", r.stderr)


def test_connection_killed_mid_step():
    hosts = 5
    p = fixture.spawn([fixture.sshmux_bin(), "expect", "-F", F.cfg, "--json",
                       "-w", F.hostlist(hosts), "--send", "echo first", "--send", "sleep 60",
                       "--timeout", "50", "--send", "echo never"], workdir=F.wd)
    fixture.wait_until(lambda: faults.running(F.sshd, "sleep", "60") >= hosts, 30,
                       "every host in step 2")
    t0 = time.monotonic()
    check(faults.kill_connections(F.sshd) > 0, "the fault hit nothing")
    try:
        out, err = p.communicate(timeout=20)
    except Exception:
        fixture.kill_tree(p.pid, p)
        raise Failure("sshmux expect did not end within 20 s of the kill")
    check(time.monotonic() - t0 < 10, "slow to notice the lost connections")
    check_no_sanitizer(err)
    check(p.returncode == 255, f"exit {p.returncode}\n{err[-3000:]}")
    got = {row["host"]: row for row in fixture.json_lines(out)}
    check_eq(sorted(got), F.names[:hosts], "every host reported")
    for host, row in got.items():
        check(not row["ok"] and row["error"], f"{host} did not fail")
        check(row["error"]["stage"] != "expect", f"{host}: {row['error']}")
        check_eq(row["steps"][0]["stdout"], "first\n", f"{host}: step 1 kept")
        check(len(row["steps"]) <= 2, f"{host} ran past the lost step")


if __name__ == "__main__":
    setup()
    main([v for k, v in sorted(globals().items()) if k.startswith("test_")])
