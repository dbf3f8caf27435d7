#!/usr/bin/env python3
"""Self-check of tests/lib/fixture.py using OpenSSH's own ssh client (not sshmux): proves the
sshd fixture, keys, test user, tarpit, refused port, ssh_config writer, runner and cleanup work."""
import json, os, pwd, select, signal, socket, subprocess, sys, textwrap, time

import fixture as fx

_shared = {}


def shared():
    """One workdir, key set and tuned sshd shared by the tests that only need a plain server."""
    if not _shared:
        wd = fx.Workdir()
        keys = fx.Keys(wd)
        sshd = fx.Sshd(wd, keys)
        kh = sshd.write_known_hosts(wd.file("known_hosts"))
        _shared.update(wd=wd, keys=keys, sshd=sshd, kh=kh)
    return _shared["wd"], _shared["keys"], _shared["sshd"], _shared["kh"]


def ssh(sshd, timeout=30, env=None, **kw):
    return fx.run(fx.openssh_cmd(sshd, **kw), env=env, timeout=timeout)


def test_key_login_each_type():
    wd, keys, sshd, kh = shared()
    with open(keys.rsa_pem) as f:
        fx.check_in("BEGIN RSA PRIVATE KEY", f.read(), "rsa_pem is not PEM")
    with open(keys.ed25519) as f:
        fx.check_in("BEGIN OPENSSH PRIVATE KEY", f.read(), "ed25519 is not OpenSSH format")
    with open(keys.ecdsa_pub) as f:
        fx.check(f.read().startswith("ecdsa-sha2-nistp256 "), "ecdsa is not nistp256")
    for name, logtype in (("ed25519", "ED25519"), ("rsa_pem", "RSA"), ("ecdsa", "ECDSA")):
        r = ssh(sshd, identity=getattr(keys, name), known_hosts=kh)
        fx.check_rc(r, 0, f"{name} login")
        fx.check_eq(r.stdout, "ok\n", f"{name} output")
        sshd.wait_log(rf"Accepted publickey for {sshd.user} from 127\.0\.0\.1 .*: {logtype} ")
    r = ssh(sshd, identity=keys.ed25519, known_hosts=kh, remote=["printf", "%s", "$HOME"])
    fx.check_eq(r.stdout, pwd.getpwuid(os.geteuid()).pw_dir, "remote HOME")


def test_unauthorized_key_rejected():
    wd, keys, _, _ = shared()
    sshd = fx.Sshd(wd, keys, authorized=[keys.ed25519_pub])
    kh = sshd.write_known_hosts(wd.file("known_hosts_unauth"))
    fx.check_rc(ssh(sshd, identity=keys.ed25519, known_hosts=kh), 0, "authorized key")
    r = ssh(sshd, identity=keys.ecdsa, known_hosts=kh)
    fx.check_rc(r, 255, "unauthorized key must be refused")
    fx.check_in("Permission denied (publickey)", r.stderr)
    sshd.stop()


def test_encrypted_key_askpass():
    wd, keys, sshd, kh = shared()
    log = wd.file("askpass-enc.log")
    env = fx.askpass_env(wd, keys.PASSPHRASE, log=log)
    r = ssh(sshd, identity=keys.ed25519_enc, known_hosts=kh, batch=False, env=env)
    fx.check_rc(r, 0, "encrypted key login via askpass")
    fx.check_eq(r.stdout, "ok\n")
    with open(log) as f:
        fx.check_match(r"Enter passphrase for key .*ed25519_enc", f.read(), "askpass was used")
    r = ssh(sshd, identity=keys.ed25519_enc, known_hosts=kh, batch=False,
            env=fx.askpass_env(wd, "wrong horse"), options={"NumberOfPasswordPrompts": "1"})
    fx.check_rc(r, 255, "wrong passphrase must fail")


def _password_like(kind):
    if not fx.TestUser.available():
        fx.skip(f"{kind} login test needs root: {fx.TestUser.reason()}")
    wd, keys, _, _ = shared()
    user = fx.TestUser(wd)
    sshd = fx.Sshd(wd, keys, password_auth=(kind == "password"), kbdint=(kind != "password"))
    kh = sshd.write_known_hosts(wd.file(f"known_hosts_{kind}"))
    log = wd.file(f"askpass-{kind}.log")
    opts = {"PreferredAuthentications": kind, "PubkeyAuthentication": "no",
            "NumberOfPasswordPrompts": "1"}
    r = ssh(sshd, known_hosts=kh, user=user.name, batch=False, options=opts, remote=["id", "-un"],
            env=fx.askpass_env(wd, user.password, log=log))
    fx.check_rc(r, 0, f"{kind} login as {user.name}")
    fx.check_eq(r.stdout, user.name + "\n")
    method = "password" if kind == "password" else "keyboard-interactive/pam"
    sshd.wait_log(rf"Accepted {method} for {user.name} from 127\.0\.0\.1")
    with open(log) as f:
        prompts = f.read()
    fx.check_match(r"'s password: $" if kind == "password" else r"^\(.*\) Password: ?$", prompts,
                   "expected prompt")
    r = ssh(sshd, known_hosts=kh, user=user.name, batch=False, options=opts,
            env=fx.askpass_env(wd, "not-the-password"))
    fx.check_rc(r, 255, f"wrong {kind} must fail")
    other = "keyboard-interactive" if kind == "password" else "password"
    r = ssh(sshd, known_hosts=kh, user=user.name, batch=False,
            options={**opts, "PreferredAuthentications": other},
            env=fx.askpass_env(wd, user.password))
    fx.check_rc(r, 255, f"{other} must be disabled on a {kind}-only sshd")
    sshd.authorize(keys.ed25519_pub)   # key login as the test user: its paths are reachable
    r = ssh(sshd, identity=keys.ed25519, known_hosts=kh, user=user.name, remote=["id", "-un"])
    fx.check_rc(r, 0, "key login as test user")
    return user, sshd


def test_password_login():
    _password_like("password")


def test_kbdint_login():
    _password_like("keyboard-interactive")


def test_tarpit():
    tp = fx.Tarpit()
    with socket.create_connection((tp.host, tp.port), timeout=2) as s:
        s.settimeout(1.0)
        t0 = time.monotonic()
        try:
            data = s.recv(100)
            fx.check(False, f"tarpit sent {data!r}")
        except socket.timeout:
            pass
        fx.check(time.monotonic() - t0 >= 0.9, "recv returned early")
    wd, _, sshd, kh = shared()
    t0 = time.monotonic()
    r = fx.run(["ssh", "-F", "/dev/null", "-o", "ConnectTimeout=1", "-o", "BatchMode=yes",
                "-p", str(tp.port), "x@127.0.0.1", "true"], timeout=20)
    fx.check_rc(r, 255, "ssh against tarpit")
    fx.check_match(r"timed out", r.stderr, "ssh banner timeout")
    fx.check(time.monotonic() - t0 < 10, "ssh should give up after ~2s")
    fx.check(tp.accepted >= 2, f"tarpit accepted {tp.accepted}")
    tp.stop()
    bp = fx.Tarpit(banner=b"SSH-2.0-Tarpit\r\n")
    with socket.create_connection((bp.host, bp.port), timeout=2) as s:
        s.settimeout(2)
        fx.check_eq(s.recv(100), b"SSH-2.0-Tarpit\r\n", "banner tarpit")
        s.settimeout(0.5)
        try:
            fx.check(False, f"banner tarpit sent more: {s.recv(100)!r}")
        except socket.timeout:
            pass


def test_refused_port():
    port = fx.refused_port()
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        fx.check(False, f"port {port} accepted a connection")
    except ConnectionRefusedError:
        pass


def _sshd_T(sshd):
    r = subprocess.run([fx.SSHD, "-T", "-f", sshd.config_path], capture_output=True, text=True,
                       timeout=30)
    fx.check_rc(r, 0, "sshd -T")
    return dict(l.split(" ", 1) for l in r.stdout.splitlines() if " " in l)


def test_stock_and_tuned_configs():
    wd, keys, tuned, _ = shared()
    stock = fx.Sshd(wd, keys, stock=True)
    custom = fx.Sshd(wd, keys, max_startups="10:30:100", max_sessions=3,
                     extra_config="ClientAliveInterval 7\nMatch User nobody\n  MaxSessions 1\n")
    t, s, c = _sshd_T(tuned), _sshd_T(stock), _sshd_T(custom)
    fx.check_eq((t["maxstartups"], t["maxsessions"]), ("2000:30:2000", "100"), "tuned")
    fx.check_eq((s["maxstartups"], s["maxsessions"]), ("10:30:100", "10"), "stock")
    fx.check_eq((c["maxstartups"], c["maxsessions"], c["clientaliveinterval"]),
                ("10:30:100", "3", "7"), "custom")
    for d in (t, s):
        fx.check_eq((d["passwordauthentication"], d["kbdinteractiveauthentication"],
                     d["usepam"], d["listenaddress"]),
                    ("no", "no", "yes" if fx.IS_ROOT else "no", f"127.0.0.1:{d['port']}"),
                    "auth defaults")
    for srv in (stock, custom):
        kh = srv.write_known_hosts(wd.file(f"kh-{srv.port}"))
        fx.check_rc(ssh(srv, identity=keys.ed25519, known_hosts=kh), 0, "login")


def test_changed_host_key():
    wd, keys, _, _ = shared()
    sshd = fx.Sshd(wd, keys, host_key_types=("ed25519", "ecdsa", "rsa"))
    fx.check_eq(len(sshd.host_pubkey_lines()), 3, "three host keys")
    line = sshd.known_hosts_line()
    fx.check_match(rf"^\[127\.0\.0\.1\]:{sshd.port} ssh-ed25519 AAAA\S+$", line.splitlines()[0])
    kh = sshd.write_known_hosts(wd.file("kh-changed"))
    fx.check_rc(ssh(sshd, identity=keys.ed25519, known_hosts=kh), 0, "before key change")
    port, old = sshd.port, sshd.host_pubkey_lines()
    sshd.restart_with_new_host_key()
    fx.check_eq(sshd.port, port, "same port after restart")
    fx.check(set(old).isdisjoint(sshd.host_pubkey_lines()), "host keys changed")
    r = ssh(sshd, identity=keys.ed25519, known_hosts=kh)
    fx.check_rc(r, 255, "changed host key must be rejected")
    fx.check_in("REMOTE HOST IDENTIFICATION HAS CHANGED", r.stderr)
    kh2 = sshd.write_known_hosts(wd.file("kh-changed2"))
    fx.check_rc(ssh(sshd, identity=keys.ed25519, known_hosts=kh2), 0, "new known_hosts")


def test_count_established_connections():
    wd, keys, _, _ = shared()
    sshd = fx.Sshd(wd, keys)
    kh = sshd.write_known_hosts(wd.file("kh-count"))
    fx.check_eq(sshd.count_established_connections(), 0, "idle")
    s = socket.create_connection(("127.0.0.1", sshd.port), timeout=2)
    try:
        sshd.wait_connections(1)
        p = fx.spawn(fx.openssh_cmd(sshd, identity=keys.ed25519, known_hosts=kh,
                                    remote=["echo", "up;", "exec", "sleep", "60"]))
        fx.check_eq(p.stdout.readline(), "up\n", "held session")
        sshd.wait_connections(2)
    finally:
        s.close()
    sshd.wait_connections(1)
    sshd.stop()   # kills the session processes too
    sshd.wait_connections(0)
    p.wait(timeout=10)
    fx.check(p.returncode != 0, "ssh must see the server go away")


def test_ssh_config_aliases():
    wd, keys, sshd, kh = shared()
    tp = fx.Tarpit()
    cfg = fx.write_ssh_config(wd.file("ssh_config"), fx.aliases(500), sshd=sshd,
                              identity=keys.ed25519, known_hosts=kh)
    fx.add_ssh_config_entry(cfg, "tarpit", HostName="127.0.0.1", Port=tp.port, ConnectTimeout=1)
    fx.add_ssh_config_entry(cfg, "refused", HostName="127.0.0.1", Port=fx.refused_port())
    fx.add_ssh_config_entry(cfg, "nxhost", HostName="nonexistent.invalid")
    with open(cfg) as f:
        text = f.read()
    fx.check_eq(text.count("\nHost ") + 1, 503, "host blocks")
    fx.check_eq(fx.aliases(3), ["h0001", "h0002", "h0003"])
    r = fx.run(["ssh", "-F", cfg, "-o", "BatchMode=yes", "h0500", "echo", "ok"], timeout=30)
    fx.check_rc(r, 0, "login via alias h0500")
    fx.check_eq(r.stdout, "ok\n")
    r = fx.run(["ssh", "-F", cfg, "-G", "h0042"], timeout=10)   # -G: parse only, no DNS
    for want in (f"port {sshd.port}", "hostname 127.0.0.1", f"user {sshd.user}",
                 "stricthostkeychecking true", f"userknownhostsfile {kh}"):
        fx.check_in(want, r.stdout.splitlines(), "ssh -G h0042")
    fx.check_in("hostname nonexistent.invalid",
                fx.run(["ssh", "-F", cfg, "-G", "nxhost"], timeout=10).stdout.splitlines())
    r = fx.run(["ssh", "-F", cfg, "-o", "BatchMode=yes", "refused", "true"], timeout=20)
    fx.check_rc(r, 255)
    fx.check_in("Connection refused", r.stderr)
    r = fx.run(["ssh", "-F", cfg, "-o", "BatchMode=yes", "tarpit", "true"], timeout=20)
    fx.check_rc(r, 255)
    fx.check_match("timed out", r.stderr)
    d = fx.write_ssh_config(wd.file("ssh_config2"), {"a": {"Port": 1}, "b": {"User": None}},
                            sshd=sshd)
    with open(d) as f:
        fx.check_eq(f.read(), "Host a\n    HostName 127.0.0.1\n    Port 1\n    User %s\n"
                    "    StrictHostKeyChecking yes\nHost b\n    HostName 127.0.0.1\n    Port %d\n"
                    "    StrictHostKeyChecking yes\n" % (sshd.user, sshd.port))


def test_run_sshmux_env_and_timeout():
    wd, _, _, _ = shared()
    fake = wd.file("fake-sshmux", textwrap.dedent("""\
        #!/usr/bin/env python3
        import json, os, sys, time
        if sys.argv[1:2] == ["sleep"]:
            time.sleep(60)
        print(json.dumps({"args": sys.argv[1:], "env": dict(os.environ), "in": sys.stdin.read()}))
        print()
        print(json.dumps({"n": 2}))
        """), 0o755)
    saved = {k: os.environ.get(k) for k in ("SSHMUX", "SSH_AUTH_SOCK")}
    os.environ.update(SSHMUX=fake, SSH_AUTH_SOCK="/nonexistent/agent.sock")
    try:
        r = fx.run_sshmux(["a", "b c"], env={"FOO": "1"}, input="hello")
        fx.check_rc(r, 0)
        rows = fx.json_lines(r.stdout)
        fx.check_eq(len(rows), 2)
        fx.check_eq((rows[0]["args"], rows[0]["in"], rows[1]), (["a", "b c"], "hello", {"n": 2}))
        env = rows[0]["env"]
        fx.check_eq((env["HOME"], env.get("FOO"), "SSH_AUTH_SOCK" in env), (wd.home, "1", False))
        r = fx.run_sshmux([], env={"SSH_AUTH_SOCK": "/x"})
        fx.check_eq(fx.json_lines(r.stdout)[0]["env"]["SSH_AUTH_SOCK"], "/x")
        t0 = time.monotonic()
        try:
            fx.run_sshmux(["sleep"], timeout=1)
            fx.check(False, "timeout not raised")
        except fx.Failure as e:
            fx.check_in("timeout after 1s", str(e))
        fx.check(time.monotonic() - t0 < 5, "timeout kill took too long")
        try:
            fx.json_lines('{"ok": 1}\nnot json\n')
            fx.check(False, "bad JSON accepted")
        except fx.Failure as e:
            fx.check_in("line 2", str(e))
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


CHILD = r'''
import json, os, signal, sys, time
import fixture as fx
signal.signal(signal.SIGINT, signal.default_int_handler)   # even if inherited as ignored
mode = sys.argv.pop(1)
def t_ok(): fx.check_eq(1, 1)
def t_fail(): fx.check_eq({"a": 1}, {"a": 2}, "dict differs")
def t_skip(): fx.skip("nothing to see")
if mode == "allskip":
    fx.main([t_skip])
wd = fx.Workdir(); keys = fx.Keys(wd); sshd = fx.Sshd(wd, keys); tp = fx.Tarpit()
user = fx.TestUser(wd).name if fx.TestUser.available() else None
kh = sshd.write_known_hosts(wd.file("kh"))
p = fx.spawn(fx.openssh_cmd(sshd, identity=keys.ed25519, known_hosts=kh,
                            remote=["echo", "up;", "exec", "sleep", "60"]))
assert p.stdout.readline() == "up\n"
pids = [sshd.proc.pid, p.pid] + fx.descendants(sshd.proc.pid)
print(json.dumps({"pids": pids, "dir": wd.path, "user": user, "ports": [sshd.port, tp.port]}),
      flush=True)
if mode == "main":
    fx.main([t_ok, t_fail, t_skip])
time.sleep(60)
'''


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline") as f:
            return f.read().replace("\0", " ").strip()
    except OSError:
        return "?"


def _run_child(wd, mode, sig=None):
    script = wd.file("child.py", CHILD)
    env = {"PYTHONPATH": os.path.dirname(fx.__file__), "SSHMUX_KEEP_TMP": None}
    # unbuffered bytes: readline() must not swallow output that communicate() should return
    p = fx.spawn([sys.executable, script, mode], env=env, text=False, bufsize=0, grace=15)
    info = None
    if mode != "allskip":
        ready, _, _ = select.select([p.stdout], [], [], 30)
        fx.check(ready, "child did not report")
        line = p.stdout.readline().decode()
        fx.check(line.startswith("{"), f"child said {line!r}")
        info = json.loads(line)
        fx.check(len(info["pids"]) >= 4, f"expected sshd + session processes: {info}")
        if sig:
            p.send_signal(sig)
    try:
        out, err = (b.decode() for b in p.communicate(timeout=30))
    except subprocess.TimeoutExpired:   # spawn's cleanup: SIGTERM, 15 s grace, then kill
        fx.check(False, f"child {mode} hung")
    if info:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(_alive(x) for x in info["pids"]):
            time.sleep(0.05)
        left = [x for x in info["pids"] if _alive(x)]
        fx.check_eq([_cmdline(x) for x in left], [], f"{mode}: leftover processes {left}")
        fx.check(not os.path.exists(info["dir"]), f"{mode}: temp dir left: {info['dir']}")
        if info["user"]:
            fx.check(subprocess.run(["getent", "passwd", info["user"]],
                                    capture_output=True).returncode == 2, f"user {info['user']} left")
        for port in info["ports"]:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                fx.check(False, f"{mode}: port {port} still listening")
            except ConnectionRefusedError:
                pass
    return p.returncode, out, err


def test_main_runner_and_cleanup():
    wd, _, _, _ = shared()
    rc, out, err = _run_child(wd, "main")
    fx.check_eq(rc, 1, f"main exit code; stderr:\n{err}")
    lines = out.splitlines()   # (the JSON line was already read)
    fx.check_match(r"^ok t_ok \(", lines[0])
    fx.check_match(r"^FAIL t_fail: dict differs\n", "\n".join(lines[1:]))
    fx.check_match(r'^-  "a": 2\n\+  "a": 1$', out, "diff shown")
    fx.check_match(r"^SKIP t_skip: nothing to see$", out)
    fx.check_eq(lines[-1], "1 passed, 1 failed, 1 skipped", "summary line")
    rc, out, _ = _run_child(wd, "allskip")
    fx.check_eq((rc, out.splitlines()[-1]), (77, "0 passed, 0 failed, 1 skipped"), "all skipped")
    for sig in (signal.SIGTERM, signal.SIGINT):
        rc, _, err = _run_child(wd, "signal", sig)
        fx.check(rc != 0, f"{sig.name}: exit code {rc}")


def test_asyncsshd():
    # The AsyncSSH server (tests/lib/asyncsshd.py) driven by OpenSSH's sftp and ssh: files both
    # ways in 32 KiB requests (it offers no limits@openssh.com, so sftp uses its default),
    # commands with stdin, stdout, stderr and exit status, and unknown keys refused.
    import asyncsshd
    wd = fx.Workdir()
    keys = fx.Keys(wd)
    srv = asyncsshd.AsyncSshd(wd, keys, authorized=[keys.ed25519_pub])
    kh = wd.file("asyncssh_known_hosts", srv.known_hosts_line())
    opts = ["-F", "/dev/null", "-o", f"UserKnownHostsFile={kh}", "-o", "BatchMode=yes",
            "-o", "IdentitiesOnly=yes", "-i", keys.ed25519]
    data = os.urandom(100000)
    with open(wd.file("src.bin"), "wb") as f:
        f.write(data)
    r = fx.run(["sftp"] + opts + ["-P", str(srv.port), "-b", "-", f"u@{srv.host}"],
               input=f"put {wd.path}/src.bin {wd.path}/dst.bin\n"
                     f"get {wd.path}/dst.bin {wd.path}/back.bin\n")
    fx.check_rc(r, 0, "sftp put/get")
    with open(wd.file("back.bin"), "rb") as f:
        fx.check(f.read() == data, "the file came back changed")
    fx.check_eq(sorted(set(srv.log_lines("write"))), [100000 - 3 * 32768, 32768], "writes")
    fx.check(max(srv.log_lines("read")) == 32768, "reads of 32 KiB")
    ssh = ["ssh"] + opts + ["-p", str(srv.port), f"u@{srv.host}"]
    r = fx.run(ssh + ["echo out; echo err >&2; tr a-z A-Z; exit 3"], input="in\n")
    fx.check_eq((r.returncode, r.stdout, r.stderr), (3, "out\nIN\n", "err\n"), "command")
    r = fx.run(["ssh"] + opts[:-1] + [keys.ecdsa, "-p", str(srv.port), f"u@{srv.host}", "true"])
    fx.check_rc(r, 255, "a key that is not authorized")
    srv.stop()


if __name__ == "__main__":
    t0 = time.monotonic()
    print(f"fixture self-check: uid={os.geteuid()} openssh={fx.openssh_version()}", flush=True)
    if not fx.IS_ROOT:
        print("*** NOT ROOT: password/keyboard-interactive tests will be SKIPPED ***", flush=True)
    import atexit
    atexit.register(lambda: print(f"self-check took {time.monotonic() - t0:.1f}s", flush=True))
    fx.main([test_key_login_each_type, test_unauthorized_key_rejected, test_encrypted_key_askpass,
             test_password_login, test_kbdint_login, test_tarpit, test_refused_port,
             test_stock_and_tuned_configs, test_changed_host_key,
             test_count_established_connections, test_ssh_config_aliases,
             test_run_sshmux_env_and_timeout, test_main_runner_and_cleanup, test_asyncsshd])
