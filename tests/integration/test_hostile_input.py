"""Hostile or careless input (issue 9, defects 6, 8, 10, 11, 12, 13), against a real sshd where
the path needs a connection: an ssh:// URL's password never in any message, output or the process
list; numeric options out of range refused with exit 2 instead of wrapping around; a large
hostfile read in linear time and the host cap counted per run; a -J longer than any old buffer
honoured in full; a loop-free Include fan-out stopped early; env-var secrets and the key
passphrase gone from /proc/PID/environ and from the process's memory once the keys are loaded.

The memory scan reads /proc/PID/mem of the running, non-dumpable sshmux: root passes that check
through CAP_SYS_PTRACE, so no test-only switch in the binary is needed (without the capability
the test skips, saying so)."""
import os
import re
import select
import subprocess
import tempfile
import threading
import time

from common import *  # noqa: F403
from fixture import Failure

WD = KEYS = SSHD = KH = CFG = USER = None
PW = "Url-Pw-7f3a9c"          # an ssh:// URL password: must never be shown
LONG = 800                     # jump host aliases longer than the old 600-byte hop buffer


def setup():
    global WD, KEYS, SSHD, KH, CFG, USER
    WD = fixture.Workdir()
    KEYS = fixture.Keys(WD)
    SSHD = fixture.Sshd(WD, KEYS)
    KH = SSHD.write_known_hosts(WD.file("known_hosts"))
    USER = fleet_user(WD) or SSHD.user
    hosts = {"t1": {}, "badvar": {"IdentityFile": "${SSHMUX_TEST_UNSET_VAR}"}}
    for c in "abc":
        hosts["j" * LONG + c] = {}
    CFG = fixture.write_ssh_config(WD.file("ssh_config"), hosts, sshd=SSHD,
                                   identity=KEYS.ed25519, known_hosts=KH, user=USER)


def run(*args, sub="exec", **kw):
    return fixture.run_sshmux([sub, "-F", CFG] + list(args), **kw)


def no_secret(r, secret, what):
    for name, text in (("stdout", r.stdout), ("stderr", r.stderr)):
        check(secret not in text, f"{what}: the secret is in {name}:\n{text}")


def read_proc(path):
    with open(path, "rb") as f:
        return f.read()


def spawn_sshmux(args, env=None):
    """sshmux in the background; returns the Popen."""
    return fixture.spawn([fixture.sshmux_bin()] + list(args), env=env, text=False, bufsize=0)


# ------------------------------------------------------------------ 6: URL passwords

def test_url_password_never_shown():
    url = f"ssh://{USER}:{PW}@"
    # an ssh_config resolution error for that very target (it quoted the raw URL)
    r = run("-w", url + "badvar", "true")
    check_rc(r, 2)
    no_secret(r, PW, "resolution error")
    check_in("SSHMUX_TEST_UNSET_VAR", r.stderr)
    # a -J URL with a bad port (the message quoted the whole -o ProxyJump line)
    r = run("-J", f"{url}127.0.0.1:99999", "-w", "t1", "true")
    check_rc(r, 2)
    no_secret(r, PW, "-J bad port")
    check_in("99999", r.stderr)
    # only the first hop may carry one; the refusal names the hop without it
    r = run("-J", f"t1,{url}127.0.0.1", "-w", "t1", "true")
    check_rc(r, 2)
    no_secret(r, PW, "-J second hop")
    check_in("hop 2", r.stderr)
    # nothing prints it back: not `hosts`, not its JSON (proxyjump showed the raw URL)
    for mode in ((), ("--json",)):
        r = run(*mode, "-J", f"{url}127.0.0.1:{SSHD.port}", "-w", url + "t1", sub="hosts")
        check_rc(r, 0)
        no_secret(r, PW, f"hosts {mode}")
    # -x matches the target without its password (and drops its own)
    r = run("-w", f"{url}t1,zz", "-x", f"ssh://{USER}:other@t1", sub="hosts")
    check_rc(r, 0)
    check_eq(r.stdout.split(), ["zz"])
    # a name that does not resolve, and a refused port: per-host errors, JSON and text
    refused = fixture.refused_port()
    for target in (url + "nonexistent.invalid", f"{url}127.0.0.1:{refused}"):
        for mode in ((), ("--json",)):
            r = run(*mode, "-o", "ConnectTimeout=5", "-w", target, "true")
            check_rc(r, 255)
            no_secret(r, PW, f"{target} {mode}")
            if mode:
                row = json_lines(r.stdout)[0]
                check_eq(row["target"], target.replace(f":{PW}@", "@"))
                check(row["error"]["stage"] in ("resolve", "connect"), row)


def test_url_password_not_in_process_list():
    # argv is scrubbed once the options are read: ps and /proc/PID/cmdline show no password
    p = spawn_sshmux(["exec", "-F", CFG, "-J", f"ssh://{USER}:{PW}@t1",
                      "-w", f"ssh://{USER}:{PW}@t1", "sleep 3"])
    try:
        def cmdline():
            text = read_proc(f"/proc/{p.pid}/cmdline")
            return text if b"ssh://" + USER.encode() + b"@t1" in text else None
        text = wait_until(cmdline, 20, "sshmux to scrub its argv")
        check(PW.encode() not in text, f"password in /proc/PID/cmdline: {text!r}")
        out, err = p.communicate(timeout=60)
        check_eq(p.returncode, 0, err)
        check(PW.encode() not in out + err, "password in output")
    finally:
        fixture.kill_tree(p.pid, p)


def test_jump_url_password_authenticates_first_hop():
    # The password taken out of -J's first hop is that hop's password (as --proxy-password-env).
    user = fixture.TestUser(WD)
    bastion = fixture.Sshd(WD, KEYS, authorized=[], password_auth=True)
    bastion.write_known_hosts(KH, append=True)
    fixture.add_ssh_config_entry(CFG, "bastion", HostName="127.0.0.1", Port=bastion.port,
                                 UserKnownHostsFile=KH, StrictHostKeyChecking="yes",
                                 PubkeyAuthentication="no")
    pw = user.password.replace("%", "%25").replace("@", "%40").replace(":", "%3A")
    r = run("--json", "-J", f"ssh://{user.name}:{pw}@bastion", "-w", "t1", "echo via-bastion")
    check_rc(r, 0)
    row = json_lines(r.stdout)[0]
    check_eq(row["stdout"], "via-bastion\n")
    no_secret(r, user.password, "jump password")
    check_in("warning", r.stderr)
    bastion.stop()


# ------------------------------------------------------------------ 8: numeric options

def test_numeric_options_out_of_range():
    # Each is refused up front (exit 2) with the option and the value in the message.
    bad = [("-u", "3000000"), ("-u", "4294968"), ("-u", "-1"), ("-u", "99999999999999999999999"),
           ("-f", "0"), ("-f", "100001"), ("--connect-timeout", "0"),
           ("--connect-timeout", "3601"), ("--auth-timeout", "4294968"), ("--kill-grace", "3601"),
           ("--retries", "101"), ("--handshakes", "0"), ("--max-output", "1099511627777"),
           ("-p", "0"), ("-p", "65536"), ("-p", "4294967318"), ("-f", "+5"), ("-u", "1e3")]
    for opt, value in bad:
        r = run(opt, value, "-w", "t1", "true", timeout=30)
        check_rc(r, 2, f"{opt} {value}")
        check(opt in r.stderr and value in r.stderr, f"{opt} {value}: {r.stderr}")
    r = fixture.run_sshmux(["forward", "-F", CFG, "-L", "0:localhost:22", "--base-port",
                            "65536", "-w", "t1"], timeout=30)
    check_rc(r, 2)
    check_in("--base-port", r.stderr)
    # ssh_config values that would overflow the int milliseconds they become
    for kv in ("ConnectTimeout=3000000", "ServerAliveInterval=99999999999",
               "ServerAliveCountMax=99999999999", "ConnectTimeout=24856d"):
        r = run("-o", kv, "-w", "t1", "true", timeout=30)
        check_rc(r, 2, kv)
        check_in(kv.split("=")[1], r.stderr)


def test_command_timeout_does_not_wrap():
    # -u 4294968 used to wrap to 0.7 s and kill the command (exit 124). Refused now; the
    # largest value accepted is really that long (the command finishes first).
    r = run("-u", "4294968", "-w", "t1", "sleep 2", timeout=60)
    check_rc(r, 2)
    t0 = time.monotonic()
    r = run("-u", "2147483", "-o", "ServerAliveInterval=2147483", "-o", "ConnectTimeout=2147483",
            "-w", "t1", "sleep 2; echo done", timeout=60)
    check_rc(r, 0)
    check_in("t1: done", r.stdout)
    check(time.monotonic() - t0 >= 2, "the command was cut short")


# ------------------------------------------------------------------ 10: hostfiles, host cap

def measured(args, timeout):
    """Runs sshmux; returns (returncode, stdout, stderr, seconds, peak RSS in MiB)."""
    out, err = tempfile.TemporaryFile(), tempfile.TemporaryFile()
    t0 = time.monotonic()
    p = subprocess.Popen([fixture.sshmux_bin()] + args, env=fixture.base_env(WD),
                         stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                         start_new_session=True)
    timer = threading.Timer(timeout, lambda: fixture.kill_tree(p.pid))
    timer.start()
    try:
        _, status, usage = os.wait4(p.pid, 0)
    finally:
        timer.cancel()
    secs = time.monotonic() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    out.seek(0)
    err.seek(0)
    text_out, text_err = out.read().decode(), err.read().decode()
    if secs >= timeout:
        raise Failure(f"{args[:6]}... still running after {timeout} s\n{text_err}")
    return p.returncode, text_out, text_err, secs, usage.ru_maxrss / 1024


def test_hostfile_linear():
    # 95,000 lines, 1.8 MB: 74 s when every line rescanned the whole list; the same hosts on
    # one line took 0.35 s. Linear now: a generous bound that quadratic time cannot meet.
    path = WD.file("hosts-95k.txt", "".join(f"host{i:06d}.example\n" for i in range(95000)))
    rc, out, err, secs, _ = measured(["hosts", "-F", "none", "--hostfile", path], timeout=120)
    check_eq(rc, 0, err)
    names = out.split()
    check_eq(len(names), 95000)
    check_eq(names[-1], "host094999.example")
    check(secs < 25, f"95,000-line hostfile took {secs:.1f} s")


def test_host_cap_per_run():
    # The 1,000,000-host cap is for the whole run: two lists of 600,000 each were accepted
    # (3.8 GB). Refused now, quickly, naming the cap; a hostfile counts toward it as well.
    path = WD.file("hosts-cap.txt", "c[1-500000]\n")
    for args in (["-w", "a[1-600000]", "-w", "b[1-600000]"],
                 ["-w", "a[1-600000]", "--hostfile", path],
                 ["--hostfile", path, "--hostfile", path, "-w", "z"]):
        rc, out, err, secs, mib = measured(["hosts", "-F", "none"] + args, timeout=120)
        check_eq(rc, 2, f"{args}: {err}")
        check_in("more than 1000000 hosts", err)
        check(secs < 30, f"{args}: {secs:.1f} s")
        check(mib < 1024, f"{args}: peak RSS {mib:.0f} MiB")
    # exactly at the cap is fine (-x does not count toward it)
    rc, out, err, secs, _ = measured(["hosts", "-F", "none", "-w", "a[1-600000]", "-w",
                                   "b[1-400000]", "-x", "a[1-599999],b[1-399999]"], timeout=120)
    check_eq(rc, 0, err)
    check_eq(out.split(), ["a600000", "b400000"])


# ------------------------------------------------------------------ 11: long -J

def test_long_jump_honoured():
    # 3000 characters of hops: cut at ~2040 before, the last hop becoming another host.
    hops = [f"hop{i:04d}.example" for i in range(200)]
    chain = ",".join(hops)
    check(len(chain) > 3000, len(chain))
    r = run("--json", "-J", chain, "-w", "t1", sub="hosts")
    check_rc(r, 0)
    check_eq(json_lines(r.stdout)[0]["proxyjump"], chain)
    # and through a real sshd: three hops with 800-character aliases (2400 characters of -J;
    # each hop's own chain was built in a 600-byte buffer too)
    chain = ",".join("j" * LONG + c for c in "abc")
    r = run("--json", "-J", chain, "-w", "t1", "echo through-3-hops", timeout=120)
    check_rc(r, 0)
    check_eq(json_lines(r.stdout)[0]["stdout"], "through-3-hops\n")


# ------------------------------------------------------------------ 12: Include fan-out

def test_include_fanout_stopped():
    # No loop, each level includes the next four times, depth 10: 10 s and 1.8 GB before.
    d = WD.mkdir("fan")
    for i in range(10):
        inc = f"Include {d}/l{i + 1}\n" * 4
        WD.file(f"fan/l{i}", f"Host x{i}\n  Port 22\nHost *\n{inc}")
    WD.file("fan/l10", "Host leaf\n")
    rc, out, err, secs, _ = measured(["hosts", "-F", f"{d}/l0", "-w", "a"], timeout=120)
    check_eq(rc, 2, err)
    check_in("more than 4096 files", err)
    check(re.search(r"fan/l\d+", err), f"the message names no file: {err}")
    check(secs < 10, f"{secs:.1f} s")


# ------------------------------------------------------------------ 13: secrets in memory

def sanitized():
    """Whether $SSHMUX is an ASan build."""
    with open(fixture.sshmux_bin(), "rb") as f:
        return b"__asan_init" in f.read()


def scan_memory(pid, needles):
    """Counts of each needle (bytes) in the readable memory of pid (as root: /proc/PID/mem is
    readable even though sshmux is not dumpable). Huge reservations (sanitizer shadow) are
    skipped: they hold no data of ours. In an ASan build the sanitizer runtime keeps its own
    copy of the initial environment block, read from /proc/self/environ before main() runs (an
    anonymous mapping, not the stack): "NAME=value" matches outside the stack are not counted
    there. Release builds have no such copy, and the stack's block is checked like the rest."""
    counts = {n: 0 for n in needles}
    asan = sanitized()
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", 0) as mem:
        for line in maps:
            cols = line.split()
            lo, hi = (int(x, 16) for x in cols[0].split("-"))
            name = cols[5] if len(cols) > 5 else ""
            if "r" not in cols[1] or name in ("[vvar]", "[vsyscall]") or hi - lo > 1 << 30:
                continue
            try:
                mem.seek(lo)
                data = mem.read(hi - lo)
            except OSError:
                continue
            for n, env_name in needles.items():
                for m in re.finditer(re.escape(n), data):
                    if asan and name != "[stack]" and \
                            data[max(0, m.start() - 64):m.start()].endswith(env_name.encode() + b"="):
                        continue
                    counts[n] += 1
    return counts


def test_secrets_not_left_in_memory():
    # --password-env and --passphrase-env: after reading, the values are wiped from the
    # environment block (/proc/PID/environ kept them after unsetenv) and the passphrase from
    # every buffer once the keys are decrypted. The password stays in exactly one place, the
    # engine's copy, which later hosts' password auth needs.
    # Both formats: OpenSSH's (bcrypt KDF, in libssh) and an encrypted PEM key, which the crypto
    # library decrypts (OpenSSL's password callback left two copies in dead stack frames).
    pem = WD.file("rsa_pem_enc")
    subprocess.run([fixture.SSH_KEYGEN, "-q", "-t", "rsa", "-b", "2048", "-m", "PEM", "-N",
                    KEYS.PASSPHRASE, "-C", "pem-enc", "-f", pem], check=True, timeout=60,
                   stdin=subprocess.DEVNULL, capture_output=True)
    sshd = fixture.Sshd(WD, KEYS, authorized=[KEYS.ed25519_enc_pub, pem + ".pub"])
    kh = sshd.write_known_hosts(WD.file("kh-enc"))
    cfg = WD.file("cfg-enc", fixture.ssh_config_entry(
        "enc", HostName="127.0.0.1", Port=sshd.port, User=USER, IdentitiesOnly="yes",
        UserKnownHostsFile=kh, StrictHostKeyChecking="yes", IdentityFile=pem) +
        f"    IdentityFile {KEYS.ed25519_enc}\n")
    password = "Env-Pw-" + "4c1d" * 4
    p = spawn_sshmux(["exec", "-F", cfg, "--password-env", "SMX_PW", "--passphrase-env",
                      "SMX_PP", "-w", "enc", "echo started; sleep 4"],
                     env={"SMX_PW": password, "SMX_PP": KEYS.PASSPHRASE})
    try:
        seen, deadline = b"", time.monotonic() + 30
        while b"started" not in seen and time.monotonic() < deadline and p.poll() is None:
            if select.select([p.stdout], [], [], 0.5)[0]:
                seen += os.read(p.stdout.fileno(), 4096)
        check(b"enc: started" in seen and p.poll() is None,
              f"the remote command did not start: {seen!r}")
        try:
            environ = read_proc(f"/proc/{p.pid}/environ")
            counts = scan_memory(p.pid, {password.encode(): "SMX_PW",
                                         KEYS.PASSPHRASE.encode(): "SMX_PP"})
        except PermissionError as e:
            skip(f"cannot read /proc/PID/environ and /proc/PID/mem of a non-dumpable process "
                 f"here ({e}): needs root with CAP_SYS_PTRACE")
        check(password.encode() not in environ, "password still in /proc/PID/environ")
        check(KEYS.PASSPHRASE.encode() not in environ, "passphrase still in /proc/PID/environ")
        check_eq(counts[KEYS.PASSPHRASE.encode()], 0, "copies of the key passphrase in memory")
        check(counts[password.encode()] <= 1,
              f"{counts[password.encode()]} copies of the password in memory (want 1)")
        out, err = p.communicate(timeout=60)
        check_eq(p.returncode, 0, err)
        check(password.encode() not in out + err, "password in output")
    finally:
        fixture.kill_tree(p.pid, p)
        sshd.stop()


if __name__ == "__main__":
    setup()
    main([test_url_password_never_shown, test_url_password_not_in_process_list,
          test_jump_url_password_authenticates_first_hop, test_numeric_options_out_of_range,
          test_command_timeout_does_not_wrap, test_hostfile_linear, test_host_cap_per_run,
          test_long_jump_honoured, test_include_fanout_stopped, test_secrets_not_left_in_memory])
