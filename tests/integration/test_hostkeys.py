"""StrictHostKeyChecking yes / accept-new / no, a changed host key, hashed known_hosts, and
hundreds of new keys recorded at once without losing lines."""
import subprocess

from common import *  # noqa: F403

WD = KEYS = SSHD = USER = None


def setup():
    global WD, KEYS, SSHD, USER
    WD = fixture.Workdir()
    KEYS = fixture.Keys(WD)
    SSHD = fixture.Sshd(WD, KEYS)
    USER = fleet_user(WD) or SSHD.user


def run(kh, strict, hosts="127.0.0.1", extra=()):
    return fixture.run_sshmux(["exec", "-F", "/dev/null", "--json", "-i", KEYS.ed25519,
                               "-l", USER, "-p", str(SSHD.port),
                               "-o", f"UserKnownHostsFile={kh}",
                               "-o", f"StrictHostKeyChecking={strict}", "-w", hosts] +
                              list(extra) + ["true"])


def test_yes_rejects_unknown():
    kh = WD.file("kh-empty", "")
    r = run(kh, "yes")
    check_rc(r, 255)
    row = json_lines(r.stdout)[0]
    check_eq(row["error"]["stage"], "hostkey")
    check_in("not known", row["error"]["message"])
    check_in("SHA256:", row["error"]["message"])
    check_eq(open(kh).read(), "")


def test_accept_new_records_then_yes_accepts():
    kh = WD.file("kh-new", "# keep me\n")
    r = run(kh, "accept-new")
    check_rc(r, 0)
    lines = open(kh).read().splitlines()
    check_eq(lines[0], "# keep me")
    check_eq(len(lines), 2)
    check(lines[1].startswith(f"[127.0.0.1]:{SSHD.port} ssh-ed25519 "), lines[1])
    check_rc(run(kh, "yes"), 0)


def test_no_accepts_with_warning():
    kh = WD.file("kh-no", "")
    r = run(kh, "no")
    check_rc(r, 0)
    check_in("not verified", r.stderr)
    check_eq(open(kh).read(), "")


def test_global_known_hosts_file():
    empty = WD.file("kh-user-empty", "")
    glob = SSHD.write_known_hosts(WD.file("kh-global"))
    r = run(empty, "yes", extra=("-o", f"GlobalKnownHostsFile={glob}"))
    check_rc(r, 0)
    check_eq(open(empty).read(), "")


def test_hashed_entries():
    kh = WD.file("kh-hashed")
    SSHD.write_known_hosts(kh)
    subprocess.run(["ssh-keygen", "-H", "-f", kh], check=True, capture_output=True, timeout=20)
    check(open(kh).read().startswith("|1|"), "file is hashed")
    check_rc(run(kh, "yes"), 0)


def test_many_new_keys_at_once():
    kh = WD.file("kh-many", "# header\n")
    n = 300
    cfg = WD.file("cfg-many", "".join(
        f"Host a{i:03d}\n  HostName 127.0.0.1\n  HostKeyAlias alias{i:03d}\n" for i in range(n)))
    r = fixture.run_sshmux(["exec", "-F", cfg, "--json", "-i", KEYS.ed25519, "-l", USER,
                            "-p", str(SSHD.port), "-o", f"UserKnownHostsFile={kh}",
                            "-o", "StrictHostKeyChecking=accept-new", "-w", f"a[000-{n-1:03d}]",
                            "true"], timeout=120)
    check_rc(r, 0)
    lines = open(kh).read().splitlines()
    check_eq(lines[0], "# header")
    check_eq(len(lines), n + 1)
    names = sorted(l.split()[0] for l in lines[1:])
    check_eq(names, [f"alias{i:03d}" for i in range(n)])
    check(all(len(l.split()) == 3 for l in lines[1:]), "every line whole")


def test_changed_key_rejected_unless_no():
    kh = WD.file("kh-changed")
    SSHD.write_known_hosts(kh)
    check_rc(run(kh, "yes"), 0)
    SSHD.restart_with_new_host_key()
    for strict in ("yes", "accept-new"):
        r = run(kh, strict)
        check_rc(r, 255)
        row = json_lines(r.stdout)[0]
        check_eq(row["error"]["stage"], "hostkey")
        check_in("CHANGED", row["error"]["message"])
    r = run(kh, "no")
    check_rc(r, 0)
    check_in("CHANGED", r.stderr)


if __name__ == "__main__":
    setup()
    main([v for k, v in sorted(globals().items()) if k.startswith("test_")])
