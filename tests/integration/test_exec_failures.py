"""One failing or hanging host never delays the others; bad input gets a clear message and a
documented exit status."""
import os
import time

from common import *  # noqa: F403

F = None
TARPIT = None
# A 64-character label: glibc rejects it without sending a DNS query (tests stay on loopback).
UNRESOLVABLE = "unresolvable-" + "a" * 64 + ".invalid"


def setup():
    global F, TARPIT
    F = Fleet(n=20)
    TARPIT = fixture.Tarpit()
    F.add("tarpit", HostName="127.0.0.1", Port=TARPIT.port, User=F.sshd.user,
          IdentityFile=F.keys.ed25519, UserKnownHostsFile=F.kh, ConnectTimeout=3)
    F.add("refused", HostName="127.0.0.1", Port=fixture.refused_port(), User=F.sshd.user,
          IdentityFile=F.keys.ed25519, UserKnownHostsFile=F.kh)
    F.add("nowhere", HostName=UNRESOLVABLE, User=F.sshd.user,
          IdentityFile=F.keys.ed25519, UserKnownHostsFile=F.kh)


def test_bad_hosts_beside_good_ones():
    t0 = time.monotonic()
    r = F.run("--json", "-w", F.hostlist(20) + ",tarpit,refused,nowhere", "echo hi", timeout=60)
    took = time.monotonic() - t0
    rows = {x["host"]: x for x in json_lines(r.stdout)}
    check_eq(len(rows), 23)
    for name in F.names:
        check_eq(rows[name]["ok"], True, name)
        check_eq(rows[name]["stdout"], "hi\n")
        # the good ones are not held up by the tarpit's 3 s ConnectTimeout
        check(rows[name]["timing_ms"]["total"] < 2500, f"{name}: {rows[name]['timing_ms']}")
    check_eq(rows["tarpit"]["error"]["stage"], "connect")
    check_in("within 3 s", rows["tarpit"]["error"]["message"])
    check(2500 < rows["tarpit"]["timing_ms"]["total"] < 6000, rows["tarpit"]["timing_ms"])
    check_eq(rows["refused"]["error"]["stage"], "connect")
    check_in("refused", rows["refused"]["error"]["message"].lower())
    check_eq(rows["nowhere"]["error"]["stage"], "resolve")
    check_in(UNRESOLVABLE, rows["nowhere"]["error"]["message"])
    check(took < 10, f"run took {took:.1f}s")
    check_rc(r, 255)
    check_in("connect failed on", r.stderr)


def test_streaming_reports_failures_on_stderr():
    r = F.run("-w", "h0001,refused", "echo hi")
    check_rc(r, 255)
    check_eq(r.stdout, "h0001: hi\n")
    check_match(r"refused: sshmux: connect: connect to 127\.0\.0\.1:\d+: Connection refused",
                r.stderr)
    check_in("2 hosts: 1 ok, 0 exit non-zero, 1 failed", r.stderr)


def test_malformed_hostlist():
    r = F.run("-w", "web[3-1]", "true")
    check_rc(r, 2)
    check_in("web[3-1]", r.stderr)
    r = F.run("-w", "web[01-", "true")
    check_rc(r, 2)
    check_in("web[01-", r.stderr)


def test_unknown_option():
    r = F.run("--frobnicate", "-w", "h0001", "true")
    check_rc(r, 2)
    check_in("--frobnicate", r.stderr)
    r = F.run("-o", "NoSuchOption=yes", "-w", "h0001", "true")
    check_rc(r, 2)
    check_in("NoSuchOption", r.stderr)


def test_port_out_of_range():
    r = F.run("-w", "h0001:70000", "true")
    check_rc(r, 2)
    check_in("70000", r.stderr)
    r = F.run("-p", "0", "-w", "h0001", "true")
    check_rc(r, 2)
    check_in("-p", r.stderr)


def test_unreadable_key():
    missing = F.wd.file("no-such-key")
    r = F.run("-i", missing, "-w", "h0001", "true")
    check_rc(r, 255)
    check_in(missing, r.stderr)


def test_wrong_passphrase():
    r = F.run("-i", F.keys.ed25519_enc, "--passphrase-env", "PP", "-w", "h0001", "true",
              env={"PP": "wrong horse"})
    check_rc(r, 255)
    check_in("wrong passphrase", r.stderr)
    check_in(F.keys.ed25519_enc, r.stderr)
    check("wrong horse" not in r.stderr + r.stdout, "passphrase leaked into output")


def test_missing_command_and_targets():
    r = F.run("-w", "h0001")
    check_rc(r, 2)
    check_in("no command", r.stderr)
    r = F.run("true")
    check_rc(r, 2)
    check_in("no targets", r.stderr)


def test_missing_config_file():
    r = fixture.run_sshmux(["exec", "-F", F.wd.file("nope.cfg"), "-w", "x", "true"])
    check_rc(r, 2)
    check_in("nope.cfg", r.stderr)


def test_exclude_and_hostfile():
    hf = F.wd.file("hosts.txt", "# fleet\nh[0001-0004]\nh0005  # trailing comment\n\n")
    r = F.run("--hostfile", hf, "-x", "h[0002-0003]", "-q", "echo hi")
    check_rc(r, 0)
    check_eq(sorted(r.stdout.splitlines()), ["h0001: hi", "h0004: hi", "h0005: hi"])


def test_dead_peer_detected_by_keepalive():
    # The server stops answering mid-command (its session processes are frozen): ServerAlive*
    # notices within interval * (countmax + 1), the other host finishes normally.
    import signal
    r_holder = {}

    def freeze_when_running():
        fixture.wait_until(lambda: F.sshd._session_pids(), 10, "remote session started")
        time.sleep(0.5)
        # every process below the listening sshd: the connection's sshd and the session
        r_holder["pids"] = fixture.descendants(F.sshd.proc.pid)
        for pid in r_holder["pids"]:
            os.kill(pid, signal.SIGSTOP)

    import threading
    t = threading.Thread(target=freeze_when_running)
    t.start()
    t0 = time.monotonic()
    r = F.run("--json", "-o", "ServerAliveInterval=1", "-o", "ServerAliveCountMax=2",
              "-w", "h0001", "sleep 60", timeout=30)
    took = time.monotonic() - t0
    t.join()
    for pid in r_holder.get("pids", []):
        os.kill(pid, signal.SIGCONT)
    row = json_lines(r.stdout)[0]
    check_eq(row["error"]["stage"], "timeout")
    check_in("keepalive", row["error"]["message"])
    check(took < 10, f"took {took:.1f}s")
    check_rc(r, 255)


def test_fd_limit_lowers_fanout_not_hang():
    # 40 usable fds: sshmux says it lowered the fanout and still gets every host through.
    r = fixture.run(["bash", "-c", f'ulimit -n 100 && exec "$SSHMUX" exec -F {F.cfg} -f 200 '
                     f'-q -w "{F.hostlist(20)}" true'],
                    env={"SSHMUX": fixture.sshmux_bin()}, timeout=60)
    check_rc(r, 0)
    check_in("fanout 200 lowered", r.stderr)


def test_sigint_cancels_cleanly():
    # Ctrl-C: running hosts are closed, hosts not started are reported, exit 130, no hang.
    marker = f"sigint-{os.getpid()}"
    p = fixture.spawn([fixture.sshmux_bin(), "exec", "-F", F.cfg, "--json", "-f", "2", "-w",
                       F.hostlist(5), f"sleep 30; : {marker}"], workdir=F.wd)

    def running():
        n = 0
        for d in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{d}/cmdline", "rb") as f:
                    n += marker.encode() in f.read()
            except OSError:
                pass
        return n >= 2

    fixture.wait_until(running, 20, "two commands running")
    t0 = time.monotonic()
    p.send_signal(2)
    out, err = p.communicate(timeout=15)
    check(time.monotonic() - t0 < 5, "cancel took too long")
    check_eq(p.returncode, 130, err)
    rows = json_lines(out)
    check_eq(len(rows), 5)
    stages = sorted(r["error"]["stage"] for r in rows)
    check_eq(stages, ["connect", "connect", "connect", "exec", "exec"])
    check(all("canceled (SIGINT)" in r["error"]["message"] for r in rows), str(rows))
    check_in("5 hosts", err)


if __name__ == "__main__":
    setup()
    main([v for k, v in sorted(globals().items()) if k.startswith("test_")])
