"""sshmux exec against a real sshd: output, exit codes, signals, env, pty, JSON, gather, big
output, command timeout, sshmux test."""
import json
import time

from common import *  # noqa: F403

F = None


def setup():
    global F
    F = Fleet(n=5)


def test_stream_prefix_and_streams_apart():
    r = F.run("-w", F.hostlist(3), "echo out; echo err >&2")
    check_rc(r, 0)
    out = sorted(r.stdout.splitlines())
    check_eq(out, ["h0001: out", "h0002: out", "h0003: out"])
    err = sorted(l for l in r.stderr.splitlines() if not l.startswith("sshmux:"))
    check_eq(err, ["h0001: err", "h0002: err", "h0003: err"])
    check_in("3 hosts: 3 ok", r.stderr)


def test_exit_codes_largest_wins():
    r = F.run("-w", "h0001,h0002", "-q",
              'case $(hostname) in *) [ "$SSH_CONNECTION" ] && exit 3;; esac')
    check_rc(r, 3)
    r = F.run("-w", "h0001", "exit 0")
    check_rc(r, 0)
    r = F.run("--json", "-w", "h0001", "exit 7")
    check_rc(r, 7)
    row = json_lines(r.stdout)[0]
    check_eq(row["exit_code"], 7)
    check_eq(row["ok"], False)
    check_eq(row["error"], None)


def test_exit_signal():
    r = F.run("--json", "-w", "h0001", "kill -SEGV $$")
    row = json_lines(r.stdout)[0]
    check_eq(row["exit_signal"], "SEGV")
    check_eq(row["exit_code"], None)
    check_rc(r, 128 + 11)


def test_json_fields():
    r = F.run("--json", "-w", F.hostlist(2), "printf abc; printf xyz >&2")
    check_rc(r, 0)
    rows = sorted(json_lines(r.stdout), key=lambda x: x["host"])
    check_eq([x["host"] for x in rows], ["h0001", "h0002"])
    for row in rows:
        for k in ("host", "target", "user", "port", "ok", "exit_code", "exit_signal", "stdout",
                  "stderr", "truncated", "error", "attempts", "timing_ms", "server_banner",
                  "kex", "cipher"):
            check(k in row, f"missing key {k} in {row}")
        check_eq(row["stdout"], "abc")
        check_eq(row["stderr"], "xyz")
        check_eq(row["ok"], True)
        check_eq(row["port"], F.sshd.port)
        check_eq(row["attempts"], 1)
        check(row["server_banner"].startswith("SSH-2.0-OpenSSH"), row["server_banner"])
        for k in ("resolve", "connect", "handshake", "auth", "exec", "total"):
            check(isinstance(row["timing_ms"][k], (int, float)), k)
        tm = row["timing_ms"]
        phases = sum(tm[k] for k in ("resolve", "connect", "handshake", "auth", "exec"))
        check(tm["exec"] > 0, f"exec covers the channel open and close: {tm}")
        check(tm["total"] + 0.5 >= phases, f"total covers every phase: {tm}")


def test_sessions_end_with_a_disconnect_message():
    # sshd logs a session that ends without SSH_MSG_DISCONNECT as a dropped connection; at
    # fleet scale that is thousands of misleading lines per run.
    before = F.sshd.log_text().count("Received disconnect from")
    r = F.run("-w", F.hostlist(3), "true")
    check_rc(r, 0)
    fixture.wait_until(lambda: F.sshd.log_text().count("Received disconnect from") - before >= 3,
                       10, "three DISCONNECT messages in sshd's log")


def test_exec_timing_covers_the_command():
    r = F.run("--json", "-w", F.hostlist(1), "sleep 0.3")
    check_rc(r, 0)
    tm = json_lines(r.stdout)[0]["timing_ms"]
    check(300 <= tm["exec"] <= tm["total"], tm)


def test_gather_groups_identical_output():
    r = F.run("-b", "-w", F.hostlist(5),
              'case "$SSH_CONNECTION" in *) if [ "$(id -u)" = "$(id -u)" ]; then echo same; fi;; esac')
    check_rc(r, 0)
    check_in("h[0001-0005] (5)", r.stdout)
    check_eq(r.stdout.count("same"), 1)


def test_gather_splits_different_output():
    # A second sshd whose sessions see GROUP=b (sshd_config SetEnv): two groups, folded.
    other = fixture.Sshd(F.wd, F.keys, extra_config="SetEnv GROUP=b\n")
    other.write_known_hosts(F.kh, append=True)
    for alias in ("g1", "g2"):
        F.add(alias, HostName="127.0.0.1", Port=other.port, User=other.user,
              IdentityFile=F.keys.ed25519, UserKnownHostsFile=F.kh)
    r = F.run("-b", "-w", "h[0001-0003],g[1-2]", 'echo "group=${GROUP:-a}"')
    check_rc(r, 0)
    check_in("h[0001-0003] (3)\n---------------\ngroup=a\n", r.stdout)
    check_in("g[1-2] (2)\n---------------\ngroup=b\n", r.stdout)
    check_eq(r.stdout.count("group="), 2)
    r = F.run("-b", "-w", "h0001,h0002", "exit 3")
    check_rc(r, 3)
    check_in("h[0001-0002] (2) exit 3", r.stdout)


def test_env_accepted_and_refused():
    # LANG is in the fixture's AcceptEnv; FOO is not and must come through the fallback.
    r = F.run("--json", "-w", "h0001", "--env", "LANG=C", "--env", "FOO=it's here",
              'echo "$LANG|$FOO"')
    check_rc(r, 0)
    check_eq(json_lines(r.stdout)[0]["stdout"], "C|it's here\n")


def test_pty():
    r = F.run("--json", "-t", "-w", "h0001", "tty >/dev/null && echo has-tty")
    check_rc(r, 0)
    check_in("has-tty", json_lines(r.stdout)[0]["stdout"])
    r = F.run("--json", "-w", "h0001", "tty >/dev/null || echo no-tty")
    check_in("no-tty", json_lines(r.stdout)[0]["stdout"])


def test_ten_mib_output():
    size = 10 * 1024 * 1024
    r = F.run("--json", "--max-output", str(size + 1), "-w", "h0001",
              f"head -c {size} /dev/zero | tr '\\0' 'a'", timeout=120)
    check_rc(r, 0)
    row = json_lines(r.stdout)[0]
    check_eq(len(row["stdout"]), size)
    check_eq(row["truncated"], False)
    # Default cap (8 MiB): truncated and flagged, exit status unaffected.
    r = F.run("--json", "-w", "h0001", f"head -c {size} /dev/zero | tr '\\0' 'b'", timeout=120)
    row = json_lines(r.stdout)[0]
    check_eq(len(row["stdout"]), 8 * 1024 * 1024)
    check_eq(row["truncated"], True)
    check_eq(row["exit_code"], 0)
    # Streaming mode: every byte arrives, as lines.
    r = F.run("-w", "h0001", f"head -c {size} /dev/zero | tr '\\0' 'c' | fold -w 1023",
              timeout=120)
    check_rc(r, 0)
    lines = r.stdout.splitlines()
    check_eq(sum(len(l) - len("h0001: ") for l in lines), size)


def test_command_timeout_kills_remote():
    # OpenSSH delivers "signal" requests only to non-root sessions ("session signalling requires
    # privilege separation"); the fleet user is non-root when the suite runs as root.
    t0 = time.monotonic()
    r = F.run("--json", "-u", "1", "--kill-grace", "3", "-w", "h0001,h0002",
              "trap 'echo got-term; exit 143' TERM; sleep 30 & wait")
    took = time.monotonic() - t0
    check(took < 3, f"took {took:.1f}s: TERM should have ended it before the grace period")
    rows = json_lines(r.stdout)
    check_eq(len(rows), 2)
    for row in rows:
        check_eq(row["error"]["stage"], "timeout")
        check_eq(row["ok"], False)
        if F.user != "root":
            check_eq(row["stdout"], "got-term\n")
            check_eq(row["exit_code"], 143)
    check_rc(r, 124)


def test_command_timeout_kill_after_grace():
    t0 = time.monotonic()
    r = F.run("--json", "-u", "1", "--kill-grace", "1", "-w", "h0001",
              "trap '' TERM; sleep 20")
    took = time.monotonic() - t0
    check(took < 8, f"took {took:.1f}s")
    check_eq(json_lines(r.stdout)[0]["error"]["stage"], "timeout")
    check_rc(r, 124)


def test_sshmux_test_command():
    r = F.run("h0001", sub="test")
    check_rc(r, 0)
    for needle in ("SSH connection successful", "Server version: SSH-2.0-OpenSSH",
                   "Key exchange:", "Cipher:", "Host key:", "Auth method:    publickey",
                   "Command execution test passed"):
        check_in(needle, r.stdout)
    r = F.run("--json", "h0001", sub="test")
    check_rc(r, 0)
    row = json.loads(r.stdout)
    check_eq(row["exec_check"], True)
    check_eq(row["auth_method"], "publickey")
    check(row["hostkey"].startswith("ssh-ed25519 SHA256:"), row["hostkey"])


def test_same_kex_option():
    r = F.run("--json", "-o", "KexAlgorithms=curve25519-sha256", "-o",
              "Ciphers=aes128-gcm@openssh.com", "-w", "h0001", "true")
    check_rc(r, 0)
    row = json_lines(r.stdout)[0]
    check_eq(row["kex"], "curve25519-sha256")
    check_eq(row["cipher"], "aes128-gcm@openssh.com")


if __name__ == "__main__":
    setup()
    main([v for k, v in sorted(globals().items()) if k.startswith("test_")])
