"""Every auth method against a real sshd: key files of each type (OpenSSH and PEM), encrypted
keys, key content from the environment, ssh-agent, password (env, file, ssh:// URL) and
keyboard-interactive answered from the password. Secrets never show up in output."""
import json
import os
import threading
import subprocess

from common import *  # noqa: F403
from fixture import Failure

WD = KEYS = KH = None


def setup():
    global WD, KEYS, KH
    WD = fixture.Workdir()
    KEYS = fixture.Keys(WD)
    KH = WD.file("known_hosts", "")


def only_key_sshd(pub):
    """An sshd that accepts just this public key; its host key appended to known_hosts."""
    s = fixture.Sshd(WD, KEYS, authorized=[pub])
    s.write_known_hosts(KH, append=True)
    return s


def exec_json(sshd, *args, env=None, user=None, cfg_extra=None):
    target = f"{user or sshd.user}@127.0.0.1:{sshd.port}"
    cfg = WD.file(f"cfg-{sshd.port}", "".join(f"{k} {v}\n" for k, v in (cfg_extra or {}).items()))
    r = fixture.run_sshmux(["exec", "-F", cfg, "-o", f"UserKnownHostsFile={KH}", "--json",
                            "-w", target] + list(args) + ["echo authed-$(id -un)"], env=env)
    rows = json_lines(r.stdout)
    check_eq(len(rows), 1, f"stderr: {r.stderr}")
    return r, rows[0]


def test_key_types():
    for name in ("ed25519", "rsa_pem", "ecdsa"):
        sshd = only_key_sshd(getattr(KEYS, name + "_pub"))
        r, row = exec_json(sshd, "-i", getattr(KEYS, name))
        check_rc(r, 0, f"{name}: {row['error']}")
        check_eq(row["auth_method"], "publickey")
        # the other keys are refused by this sshd: auth fails cleanly
        other = "ecdsa" if name != "ecdsa" else "ed25519"
        r, row = exec_json(sshd, "-i", getattr(KEYS, other), "-o", "IdentitiesOnly=yes")
        check_rc(r, 255)
        check_eq(row["error"]["stage"], "auth")
        check_in("permission denied", row["error"]["message"])
        sshd.stop()


def test_default_identity_files():
    sshd = only_key_sshd(KEYS.ecdsa_pub)
    dst = os.path.join(WD.ssh_dir, "id_ecdsa")
    with open(KEYS.ecdsa) as src, open(dst, "w") as out:
        out.write(src.read())
    os.chmod(dst, 0o600)
    try:
        r, row = exec_json(sshd)
        check_rc(r, 0, str(row["error"]))
    finally:
        os.unlink(dst)
        sshd.stop()


def test_encrypted_key_passphrase_env():
    sshd = only_key_sshd(KEYS.ed25519_enc_pub)
    r, row = exec_json(sshd, "-i", KEYS.ed25519_enc, "--passphrase-env", "MY_PP",
                       env={"MY_PP": KEYS.PASSPHRASE})
    check_rc(r, 0, str(row["error"]))
    check(KEYS.PASSPHRASE not in r.stdout + r.stderr, "passphrase leaked")
    # without a passphrase and without a terminal: a clear error, exit 255
    r = fixture.run_sshmux(["exec", "-F", "/dev/null", "-i", KEYS.ed25519_enc, "-w",
                            f"127.0.0.1:{sshd.port}", "true"])
    check_rc(r, 255)
    check_in("encrypted", r.stderr)
    sshd.stop()


def test_key_env_content():
    sshd = only_key_sshd(KEYS.ecdsa_pub)
    with open(KEYS.ecdsa) as f:
        content = f.read()
    r, row = exec_json(sshd, "--key-env", "SSHMUX_KEY", env={"SSHMUX_KEY": content})
    check_rc(r, 0, str(row["error"]))
    check("PRIVATE KEY" not in r.stdout + r.stderr, "key content leaked")
    sshd.stop()


def test_agent():
    sshd = only_key_sshd(KEYS.rsa_pem_pub)
    sock = os.path.join(WD.path, "agent.sock")
    agent = fixture.spawn(["ssh-agent", "-D", "-a", sock])
    fixture.wait_until(lambda: os.path.exists(sock), 10, "ssh-agent socket")
    subprocess.run(["ssh-add", "-q", KEYS.rsa_pem], env={**os.environ, "SSH_AUTH_SOCK": sock},
                   check=True, capture_output=True, timeout=20)
    r, row = exec_json(sshd, env={"SSH_AUTH_SOCK": sock})
    check_rc(r, 0, str(row["error"]))
    check_eq(row["auth_method"], "publickey")
    r, row = exec_json(sshd, "--no-agent", env={"SSH_AUTH_SOCK": sock})
    check_rc(r, 255)
    check_eq(row["error"]["stage"], "auth")
    # IdentityAgent in ssh_config works without SSH_AUTH_SOCK; "none" turns it off
    r, row = exec_json(sshd, cfg_extra={"IdentityAgent": sock})
    check_rc(r, 0, str(row["error"]))
    r, row = exec_json(sshd, env={"SSH_AUTH_SOCK": sock}, cfg_extra={"IdentityAgent": "none"})
    check_rc(r, 255)
    fixture.kill_tree(agent.pid, agent)
    sshd.stop()


def password_sshd(**kw):
    user = fixture.TestUser(WD)
    sshd = fixture.Sshd(WD, KEYS, authorized=[], **kw)
    sshd.write_known_hosts(KH, append=True)
    return user, sshd


def test_password_env_file_url():
    user, sshd = password_sshd(password_auth=True)
    r, row = exec_json(sshd, "--password-env", "PW", env={"PW": user.password}, user=user.name)
    check_rc(r, 0, str(row["error"]))
    check_eq(row["auth_method"], "password")
    check_eq(row["stdout"], f"authed-{user.name}\n")
    pwfile = WD.file("pw.txt", user.password + "\n", 0o600)
    r, row = exec_json(sshd, "--password-file", pwfile, user=user.name)
    check_rc(r, 0, str(row["error"]))
    # ssh:// URL with the password: works, warns, and the password is not echoed anywhere
    url = f"ssh://{user.name}:{user.password}@127.0.0.1:{sshd.port}"
    r = fixture.run_sshmux(["exec", "-F", "/dev/null", "-o", f"UserKnownHostsFile={KH}",
                            "--json", "-w", url, "true"])
    check_rc(r, 0)
    check_in("warning", r.stderr)
    row = json_lines(r.stdout)[0]
    check(user.password not in r.stderr + json.dumps(row), "password leaked")
    # a wrong password: auth stage failure, exit 255, no secret in the message
    r, row = exec_json(sshd, "--password-env", "PW", env={"PW": "not-the-password"},
                       user=user.name)
    check_rc(r, 255)
    check_eq(row["error"]["stage"], "auth")
    check("not-the-password" not in r.stdout + r.stderr, "password leaked")
    sshd.stop()


def test_keyboard_interactive_answered_from_password():
    user, sshd = password_sshd(kbdint=True)
    r, row = exec_json(sshd, "--password-env", "PW", env={"PW": user.password}, user=user.name)
    check_rc(r, 0, str(row["error"]))
    check_eq(row["auth_method"], "keyboard-interactive")
    sshd.stop()


def run_on_pty(args, answer, expect=b"Password:", timeout=60):
    """Runs sshmux with a controlling terminal (a pty); types `answer` at each `expect` prompt.
    Returns (returncode, stdout, stderr, everything written to the terminal)."""
    import fcntl
    import select
    import termios
    import time as _time
    master, slave = os.openpty()

    def become_tty_owner():
        os.setsid()
        fcntl.ioctl(slave, termios.TIOCSCTTY, 0)

    p = subprocess.Popen([fixture.sshmux_bin()] + args, stdin=slave, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=fixture.base_env(WD),
                         preexec_fn=become_tty_owner, pass_fds=(slave,))
    os.close(slave)
    # stdout/stderr are drained by threads so sshmux can never block on a full pipe
    outs = {}
    readers = [threading.Thread(target=lambda n=n, f=f: outs.__setitem__(n, f.read()))
               for n, f in (("out", p.stdout), ("err", p.stderr))]
    for t in readers:
        t.start()
    seen, answered, deadline = b"", 0, _time.monotonic() + timeout
    tty_open = True
    while p.poll() is None and _time.monotonic() < deadline:
        if not tty_open:
            # EIO on the master: the session leader is exiting (the kernel hangs up its
            # terminal first); wait for the exit itself.
            _time.sleep(0.05)
            continue
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                seen += os.read(master, 4096)
            except OSError:
                tty_open = False
                continue
        if seen.count(expect) > answered:
            answered += 1
            os.write(master, answer.encode() + b"\n")
    if p.poll() is None:
        if True:   # where it waits, for the failure message
            for f in ("wchan", "stack", "syscall"):
                try:
                    print(f, open(f"/proc/{p.pid}/{f}").read())
                except OSError as e:
                    print(f, e)
        fixture.kill_tree(p.pid, p)
        for t in readers:
            t.join(10)
        raise Failure(f"sshmux on a pty did not finish in {timeout}s; terminal:\n{seen!r}\n"
                      f"stderr:\n{outs.get('err', b'').decode()[-4000:]}")
    for t in readers:
        t.join(10)
    os.close(master)
    return p.returncode, outs["out"].decode(), outs["err"].decode(), seen


def test_keyboard_interactive_asked_once_for_the_fleet():
    user, sshd = password_sshd(kbdint=True)
    cfg = WD.file("cfg-kbd", "".join(
        f"Host k{i}\n  HostName 127.0.0.1\n  Port {sshd.port}\n  User {user.name}\n"
        f"  UserKnownHostsFile {KH}\n  PubkeyAuthentication no\n" for i in range(1, 6)))
    trace = ["-vv"] if os.environ.get("SSHMUX_TRACE") else []
    rc, out, err, tty = run_on_pty(["exec", "-F", cfg, "--json"] + trace +
                                   ["-w", "k[1-5]", "id -un"], user.password)
    check_eq(rc, 0, f"stderr: {err}\ntty: {tty!r}")
    rows = json_lines(out)
    check_eq(len(rows), 5)
    check(all(r["ok"] and r["auth_method"] == "keyboard-interactive" for r in rows), str(rows))
    check_eq(tty.count(b"Password:"), 1, f"prompted more than once: {tty!r}")
    check(user.password.encode() not in tty, "the answer was echoed on the terminal")
    sshd.stop()


def test_keyboard_interactive_on_the_bastion_asked_once():
    # paramiko-jump's 2FA case: the bastion wants keyboard-interactive, the targets behind it a
    # key. One prompt for the whole fleet, and the targets' sessions run through the bastion.
    user, bastion = password_sshd(kbdint=True)
    target = only_key_sshd(KEYS.ed25519_pub)
    cfg = WD.file("cfg-kbd-bastion", (
        f"Host kbastion\n  HostName 127.0.0.1\n  Port {bastion.port}\n  User {user.name}\n"
        f"  PubkeyAuthentication no\n  UserKnownHostsFile {KH}\n"
        f"Host j*\n  HostName 127.0.0.1\n  Port {target.port}\n  User {user.name}\n"
        f"  IdentityFile {KEYS.ed25519}\n  IdentitiesOnly yes\n  UserKnownHostsFile {KH}\n"
        f"  ProxyJump kbastion\n"))
    rc, out, err, tty = run_on_pty(["exec", "-F", cfg, "--json", "-w", "j[1-5]", "id -un"],
                                   user.password)
    check_eq(rc, 0, f"stderr: {err}\ntty: {tty!r}")
    rows = json_lines(out)
    check_eq(len(rows), 5)
    check(all(r["ok"] and r["stdout"] == f"{user.name}\n" and r["auth_method"] == "publickey"
              for r in rows), str(rows))
    check_eq(tty.count(b"Password:"), 1, f"prompted more than once: {tty!r}")
    check(user.password.encode() not in tty and user.password not in out + err, "the answer leaked")
    bastion.stop()


if __name__ == "__main__":
    import json  # noqa: F401
    setup()
    main([v for k, v in sorted(globals().items()) if k.startswith("test_")])
