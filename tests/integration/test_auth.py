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


def start_agent(name, *keys):
    """A real ssh-agent on WD/name holding keys; returns (process, socket path)."""
    sock = os.path.join(WD.path, name)
    agent = fixture.spawn(["ssh-agent", "-D", "-a", sock])
    fixture.wait_until(lambda: os.path.exists(sock), 10, "ssh-agent socket")
    for k in keys:
        subprocess.run(["ssh-add", "-q", k], env={**os.environ, "SSH_AUTH_SOCK": sock},
                       check=True, capture_output=True, timeout=20)
    return agent, sock


def test_agent():
    sshd = only_key_sshd(KEYS.rsa_pem_pub)
    agent, sock = start_agent("agent.sock", KEYS.ed25519, KEYS.rsa_pem)   # one refused, one taken
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


class StallingAgent:
    """A unix-socket ssh-agent stand-in: with `upstream`, identity lists are relayed from that
    real agent and sign requests are swallowed (never answered); without, nothing is answered.
    What a wedged forwarded agent or a hardware key waiting for a touch looks like."""

    def __init__(self, path, upstream=None):
        import socket
        self.path, self.upstream = path, upstream
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(path)
        self.srv.listen(64)
        self.conns = []
        threading.Thread(target=self._accept, daemon=True).start()
        fixture.on_cleanup(self.close, f"stalling agent {path}")

    def close(self):
        for c in self.conns + [self.srv]:
            try:
                c.close()
            except OSError:
                pass

    def _accept(self):
        while True:
            try:
                c, _ = self.srv.accept()
            except OSError:
                return
            self.conns.append(c)
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    @staticmethod
    def _read_msg(c):
        def exact(n):
            b = b""
            while len(b) < n:
                d = c.recv(n - len(b))
                if not d:
                    raise EOFError
                b += d
            return b
        n = int.from_bytes(exact(4), "big")
        return exact(n)

    def _serve(self, c):
        import socket
        try:
            while True:
                msg = self._read_msg(c)
                if msg[0] == 11 and self.upstream:   # REQUEST_IDENTITIES: ask the real agent
                    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as u:
                        u.connect(self.upstream)
                        u.sendall(len(msg).to_bytes(4, "big") + msg)
                        answer = self._read_msg(u)
                    c.sendall(len(answer).to_bytes(4, "big") + answer)
                # anything else (sign requests; everything without upstream): no answer, ever
        except (EOFError, OSError):
            pass


def test_stalled_agent_never_blocks_other_hosts():
    # libssh's own agent client would block the whole loop here. Hosts that sign with a key
    # file must finish at their own pace while hosts waiting on a stalled agent time out.
    sshd = only_key_sshd(KEYS.ed25519_pub)
    agent, real = start_agent("real-agent.sock", KEYS.ed25519)
    signing = StallingAgent(os.path.join(WD.path, "no-sign.sock"), upstream=real)
    mute = StallingAgent(os.path.join(WD.path, "mute.sock"))
    text, user = "", fleet_user(WD) or sshd.user
    for name, opts in (("key", {"IdentityFile": KEYS.ed25519, "IdentitiesOnly": "yes",
                                 "IdentityAgent": "none"}),
                       ("nosign", {"IdentityAgent": signing.path}),
                       ("mute", {"IdentityAgent": mute.path})):
        for i in range(1, 4):
            text += fixture.ssh_config_entry(f"{name}{i}", HostName="127.0.0.1", Port=sshd.port,
                                             User=user, UserKnownHostsFile=KH, **opts)
    cfg = WD.file("cfg-stall", text)
    r = fixture.run_sshmux(["exec", "-F", cfg, "--json", "--auth-timeout", "8", "-w",
                            "key[1-3],nosign[1-3],mute[1-3]", "true"], timeout=60)
    rows = {x["host"]: x for x in json_lines(r.stdout)}
    check_eq(len(rows), 9, r.stderr)
    for i in range(1, 4):
        k, ns, mu = rows[f"key{i}"], rows[f"nosign{i}"], rows[f"mute{i}"]
        check(k["ok"] and k["timing_ms"]["total"] < 2500, f"key host held up: {k}")
        # the agent listed its key, the server took it, the signature never came: auth timeout
        check(not ns["ok"] and ns["error"]["stage"] in ("auth", "timeout"), ns)
        check(7000 < ns["timing_ms"]["total"] < 12000, f"nosign: {ns['timing_ms']}")
        check(ns["timing_ms"]["auth"] > 7000, f"the auth phase shows its wait: {ns['timing_ms']}")
        # the agent never listed anything: given up on after 5 s, the other methods fail
        check_eq(mu["error"]["stage"], "auth", mu)
        check_in("did not answer", mu["error"]["message"])
        check(4500 < mu["timing_ms"]["total"] < 8000, mu["timing_ms"])
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
