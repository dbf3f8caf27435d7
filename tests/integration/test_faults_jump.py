"""Fault suite, jump hosts and ProxyCommand: the bastion's connection dies while 20 targets run
a command through it, in each way an operator meets it (its sshd processes SIGKILLed, the TCP
connection reset with `ss -K`, the server frozen with SIGSTOP), on the first hop of one- and
two-hop chains and on the second hop; a ProxyCommand process killed mid-command; a refused
channel named by its RFC 4254 reason. Each run must end without a signal or a sanitizer report,
with one JSON row per host naming the stage, and with the documented exit status (255: hosts
failed)."""
import os
import shutil
import signal
import time
from contextlib import suppress

from common import *  # noqa: F403
import faults

WD = KEYS = KH = USER = None
SSHD = {}
N = 20
CRASH_RCS = {128 + s for s in (signal.SIGSEGV, signal.SIGBUS, signal.SIGABRT, signal.SIGILL,
                               signal.SIGFPE)}


def setup():
    global WD, KEYS, KH, USER
    WD = fixture.Workdir()
    KEYS = fixture.Keys(WD)
    KH = WD.file("known_hosts", "")
    for name in ("a", "b", "target"):
        SSHD[name] = fixture.Sshd(WD, KEYS)
        SSHD[name].write_known_hosts(KH, append=True)
    USER = fleet_user(WD) or SSHD["a"].user


def entry(alias, name, **extra):
    return fixture.ssh_config_entry(
        alias, HostName="127.0.0.1", Port=SSHD[name].port, User=USER,
        IdentityFile=KEYS.ed25519, IdentitiesOnly="yes", UserKnownHostsFile=KH,
        StrictHostKeyChecking="yes", **extra)


def config(path, chain, n=N, keepalive_hops=False):
    """ssh_config: hops ha (sshd a), hb (sshd b); targets t1..tn (sshd target) behind `chain`.
    keepalive_hops: ServerAliveInterval 1 / CountMax 2 on the hops (a frozen hop is found in
    about 3 s); the targets have none."""
    ka = {"ServerAliveInterval": 1, "ServerAliveCountMax": 2} if keepalive_hops else {}
    text = entry("ha", "a", **ka) + entry("hb", "b", **ka)
    text += "".join(entry(f"t{i}", "target", ProxyJump=chain) for i in range(1, n + 1))
    return WD.file(path, text)


def check_no_crash(rc, err):
    """No signal death, no sanitizer report."""
    check(rc >= 0 and rc not in CRASH_RCS, f"sshmux died: exit {rc}\n--- stderr\n{err[-6000:]}")
    for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
        check(marker not in err, f"sanitizer report ({marker}):\n{err[-6000:]}")


def logins(sshd):
    return sshd.log_text().count("Accepted publickey")


def run_with_fault(chain, victim, fault, n=N, extra=(), keepalive_hops=False, timeout=90,
                   command="sleep 6"):
    """Runs `exec --json -w t[1-n] COMMAND` through `chain`; once every target is logged in and
    running, applies fault(victim sshd). Returns (rc, rows by host, stderr, seconds from the
    fault to the end)."""
    cfg = config(f"cfg-{chain}-{time.monotonic_ns()}", chain, n, keepalive_hops)
    before = logins(SSHD["target"])
    p = fixture.spawn([fixture.sshmux_bin(), "exec", "-F", cfg, "--json", "-w", f"t[1-{n}]"]
                      + list(extra) + [command], workdir=WD)
    fixture.wait_until(lambda: logins(SSHD["target"]) - before >= n or p.poll() is not None, 60,
                       f"{n} target logins")
    time.sleep(1.0)   # the exec requests are through: the commands are running
    if p.poll() is not None:
        raise Failure(f"sshmux ended before the fault: {p.poll()} {p.stderr.read()}")
    t0 = time.monotonic()
    check(fault(SSHD[victim]) > 0, "the fault hit nothing")
    try:
        out, err = p.communicate(timeout=timeout)
    except Exception:
        fixture.kill_tree(p.pid, p)
        raise Failure(f"sshmux did not end within {timeout} s of the fault")
    elapsed = time.monotonic() - t0
    faults.resume_connections(SSHD[victim])
    rows = {x["host"]: x for x in json_lines(out)}
    check_no_crash(p.returncode, err)
    check_eq(sorted(rows), sorted(f"t{i}" for i in range(1, n + 1)), "one row per host")
    return p.returncode, rows, err, elapsed


def check_all_lost(rc, rows, err, hop=None, cause="jump host"):
    """Every row failed with a stage; with hop, each names the jump host (hop N) that went, not
    just libssh's "Socket error"."""
    check_eq(rc, 255, f"exit status\n{err[-3000:]}")
    for host, row in rows.items():
        check(not row["ok"], f"{host} succeeded through a dead jump host")
        check(row["error"] and row["error"]["stage"] in ("exec", "connect"),
              f"{host}: error names no stage: {row['error']}")
        check(row["error"]["message"], f"{host}: empty message")
        if hop is not None:
            check_in(cause, row["error"]["message"], f"{host}: the cause is not named")
            check_eq(row["error"].get("hop"), hop, f"{host}: error.hop")


def kill(sshd):
    return faults.kill_connections(sshd)


def reset(sshd):
    return faults.reset_connections(sshd.port)


def stop(sshd):
    return faults.stop_connections(sshd)


# ------------------------------------------------------------------ first hop, one-hop chain
def test_bastion_killed():
    check_all_lost(*run_with_fault("ha", "a", kill)[:3], hop=1)


def test_bastion_reset():
    check_all_lost(*run_with_fault("ha", "a", reset)[:3], hop=1)


def test_bastion_frozen_with_keepalives():
    # ServerAliveInterval 1, CountMax 2 on the bastion: declared dead after about 3 s; the
    # commands would have ended after 6.
    rc, rows, err, elapsed = run_with_fault("ha", "a", stop, keepalive_hops=True,
                                            command="sleep 30")
    check_all_lost(rc, rows, err)
    check(elapsed < 20, f"a frozen bastion took {elapsed:.1f} s to be noticed")


def test_bastion_frozen_without_keepalives_bounded_by_u():
    # No keepalives: nothing can tell a frozen server from a quiet one (README: "dead server:
    # off" by default). -u bounds the command: TERM at 3 s, then KILL after the 1 s grace and
    # the channel is closed, with no answer needed from the server.
    rc, rows, err, elapsed = run_with_fault("ha", "a", stop, extra=("-u", "3", "--kill-grace",
                                                                    "1"), command="sleep 30")
    check(elapsed < 30, f"-u 3 took {elapsed:.1f} s to end a run through a frozen bastion")
    check_eq(rc, 124, f"exit status (README: 124 when commands ran past -u)\n{err[-3000:]}")
    for host, row in rows.items():
        check(not row["ok"], f"{host} succeeded through a frozen bastion")
        check(row["error"] and row["error"]["stage"] == "timeout", f"{host}: {row['error']}")


# ------------------------------------------------------------------ two-hop chain
def test_first_hop_of_two_killed():
    check_all_lost(*run_with_fault("ha,hb", "a", kill, n=10)[:3], hop=1)


def test_first_hop_of_two_reset():
    check_all_lost(*run_with_fault("ha,hb", "a", reset, n=10)[:3], hop=1)


def test_first_hop_of_two_frozen_with_keepalives():
    rc, rows, err, elapsed = run_with_fault("ha,hb", "a", stop, n=10, keepalive_hops=True,
                                            command="sleep 30")
    check_all_lost(rc, rows, err)
    check(elapsed < 20, f"a frozen first hop took {elapsed:.1f} s to be noticed")


def test_second_hop_of_two_killed():
    check_all_lost(*run_with_fault("ha,hb", "b", kill, n=10)[:3], hop=2)


def test_second_hop_of_two_reset():
    check_all_lost(*run_with_fault("ha,hb", "b", reset, n=10)[:3], hop=2)


def test_second_hop_of_two_frozen_with_keepalives():
    rc, rows, err, elapsed = run_with_fault("ha,hb", "b", stop, n=10, keepalive_hops=True,
                                            command="sleep 30")
    check_all_lost(rc, rows, err)
    check(elapsed < 20, f"a frozen second hop took {elapsed:.1f} s to be noticed")


def test_hosts_after_a_lost_bastion_get_a_new_connection():
    # -f 5: five targets run, fifteen wait. The bastion connection dies under the first five;
    # the rest start afterwards and must get a fresh connection, not the dead one.
    cfg = config("cfg-requeue", "ha", n=N)
    before = logins(SSHD["a"])
    tb = logins(SSHD["target"])
    p = fixture.spawn([fixture.sshmux_bin(), "exec", "-F", cfg, "--json", "-f", "5", "-w",
                       f"t[1-{N}]", "sleep 3; echo done"], workdir=WD)
    fixture.wait_until(lambda: logins(SSHD["target"]) - tb >= 5, 60, "5 target logins")
    time.sleep(0.5)
    check(faults.kill_connections(SSHD["a"]) > 0, "the fault hit nothing")
    out, err = p.communicate(timeout=120)
    check_no_crash(p.returncode, err)
    rows = {x["host"]: x for x in json_lines(out)}
    check_eq(len(rows), N, "one row per host")
    ok = [h for h, r in rows.items() if r["ok"]]
    check(len(ok) >= N - 5, f"only {len(ok)} hosts ran after the bastion came back: {err[-2000:]}")
    check(logins(SSHD["a"]) - before >= 2, "a second connection to the bastion")
    check_eq(p.returncode, 255)


def test_refused_jump_channel_names_the_reason():
    # libssh says "channel 3 error (1) open failed"; the row says what code 1 means.
    nofwd = fixture.Sshd(WD, KEYS, extra_config="AllowTcpForwarding no\n")
    nofwd.write_known_hosts(KH, append=True)
    SSHD["nofwd"] = nofwd
    cfg = WD.file("cfg-nofwd", entry("hn", "nofwd") + entry("t1", "target", ProxyJump="hn"))
    r = fixture.run_sshmux(["exec", "-F", cfg, "--json", "-w", "t1", "true"], timeout=60)
    check_no_crash(r.returncode, r.stderr)
    check_rc(r, 255)
    err = json_lines(r.stdout)[0]["error"]
    check_eq((err["stage"], err["hop"]), ("connect", 1))
    check_in("channel refused: administratively prohibited", err["message"])
    check("error (" not in err["message"], f"libssh's raw text: {err['message']}")


# ------------------------------------------------------------------ ProxyCommand
def test_proxycommand_killed_mid_command():
    if not shutil.which("ssh"):
        skip("OpenSSH's ssh (the bridge) is not installed")
    bridge = (f"ssh -F /dev/null -i {KEYS.ed25519} -o IdentitiesOnly=yes "
              f"-o UserKnownHostsFile={KH} -o GlobalKnownHostsFile=/dev/null "
              f"-o StrictHostKeyChecking=yes -o BatchMode=yes -p {SSHD['a'].port} "
              f"-W %h:%p {USER}@127.0.0.1")
    n = 5
    text = "".join(entry(f"t{i}", "target", ProxyCommand=bridge) for i in range(1, n + 1))
    cfg = WD.file("cfg-pc", text)
    before = logins(SSHD["target"])
    p = fixture.spawn([fixture.sshmux_bin(), "exec", "-F", cfg, "--json", "-w", f"t[1-{n}]",
                       "sleep 6"], workdir=WD)
    fixture.wait_until(lambda: logins(SSHD["target"]) - before >= n, 60, f"{n} target logins")
    time.sleep(1.0)
    bridges = [pid for pid in fixture.descendants(p.pid)]
    check(bridges, "no ProxyCommand processes found")
    for pid in bridges:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    out, err = p.communicate(timeout=60)
    check_no_crash(p.returncode, err)
    rows = {x["host"]: x for x in json_lines(out)}
    check_eq(sorted(rows), sorted(f"t{i}" for i in range(1, n + 1)), "one row per host")
    check_all_lost(p.returncode, rows, err)


if __name__ == "__main__":
    setup()
    main([v for k, v in sorted(globals().items()) if k.startswith("test_")])
