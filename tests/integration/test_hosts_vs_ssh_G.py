#!/usr/bin/env python3
"""Compare `sshmux hosts --json` with OpenSSH's `ssh -G`, key by key.

Both tools are pointed at the same rich ssh_config (Host/Match blocks, negation, Include with a
glob inside a Host block, %-tokens, ProxyJump/ProxyCommand precedence, IdentityFile lists, a
final pass) and the same -o/-l/-p/-i overrides, and must agree on every compared key.

Environment: SSHMUX = path of the sshmux binary. Exit status: 0 pass, 1 fail, 77 skip (no
sshmux, no ssh, or a sshmux without the `hosts` command).

Known, documented differences are normalised here rather than hidden:
  * ssh expands "~" and %d from the passwd entry, sshmux from $HOME. We run both with a
    temporary HOME (so no real ~/.ssh file can leak in) and map that HOME back to the passwd
    home in sshmux's output before comparing.
  * ssh -G prints booleans as yes/no/true/false and StrictHostKeyChecking yes/no as
    true/false; sshmux uses JSON booleans and "yes"/"no".
  * ssh -G prints "connecttimeout 0" for an explicit 0; sshmux prints "none" (same meaning).
  * Relative Include paths resolve against ~/.ssh, i.e. the passwd home for ssh: they are
    covered by the unit tests instead, this file only uses absolute Include paths.
  * Match exec is run by ssh but never by sshmux (always false): the config only uses
    commands whose result is false anyway.
"""
import json
import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile

SKIP = 77

# Keys compared for every host; value normalisers are chosen per key below.
ALWAYS = [
    "hostname", "user", "port", "identityfile", "proxyjump", "proxycommand",
    "stricthostkeychecking", "userknownhostsfile", "globalknownhostsfile", "connecttimeout",
    "serveraliveinterval", "serveralivecountmax", "compression", "identitiesonly",
    "identityagent", "hostkeyalias", "batchmode", "passwordauthentication",
    "kbdinteractiveauthentication", "loglevel", "hashknownhosts", "connectionattempts",
    "tcpkeepalive", "addressfamily",
]
# ssh -G prints the computed algorithm lists; sshmux prints what was configured (or null).
# They are comparable only when a case sets them explicitly without +/-/^.
ALGO_KEYS = ["ciphers", "kexalgorithms", "macs", "hostkeyalgorithms"]
LIST_KEYS = {"identityfile"}
SPLIT_KEYS = {"userknownhostsfile", "globalknownhostsfile"}
BOOL_KEYS = {"compression", "identitiesonly", "batchmode", "passwordauthentication",
             "kbdinteractiveauthentication", "hashknownhosts", "tcpkeepalive"}
INT_KEYS = {"port", "serveraliveinterval", "serveralivecountmax", "connectionattempts"}


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def build_config(tmp):
    """The shared config tree. Returns (config path, identity files for -i)."""
    inc = os.path.join(tmp, "inc")
    write(os.path.join(inc, "conf.d", "10-ports.conf"), """\
Port 4000
HostName %h.inc.example.com
Host inc-special
    User special
""")
    write(os.path.join(inc, "conf.d", "20-ids.conf"), """\
# starts active again: the includer's block state, not 10-ports.conf's last Host line
IdentityFile /keys/%n-from-include
Host *
    HostKeyAlias from-include
""")
    write(os.path.join(inc, "conf.d", "README"), "not included: does not match *.conf\n")
    cfg = os.path.join(tmp, "ssh_config")
    write(cfg, f"""\
# sshmux vs ssh -G fixture
IgnoreUnknown UseKeychain,XUnknown*
UseKeychain yes
XUnknownThing 1

Host web-* !web-bad
    User deploy
    Port 2201
    IdentityFile ~/.ssh/web_%h_%r
    ProxyJump admin@bastion.example.com:2222,gw2

Host web-bad
    HostName bad.%h.internal
    ProxyCommand nc -X connect -x proxy:3128 %h %p

Host db?
    HostName %h.db.example.com
    StrictHostKeyChecking accept-new
    UserKnownHostsFile ~/.ssh/known_hosts.d/%k %d/.ssh/kh_%n_%p
    ConnectTimeout 15
    Ciphers aes256-gcm@openssh.com,aes128-ctr
    KexAlgorithms curve25519-sha256
    MACs hmac-sha2-256

Match host *.corp.example.com
    Compression yes
    ServerAliveInterval 1m
    ServerAliveCountMax 5
    IdentityAgent ~/.ssh/agent-%h.sock

Host jumpy
    HostName JumPy.Corp.Example.com
    ProxyJump none
    ProxyCommand ssh -W %h:%p gw

Host noproxy
    ProxyCommand none
    ProxyJump must-not-apply
    StrictHostKeyChecking no
    UserKnownHostsFile none

Host inc-*
    Include {inc}/conf.d/*.conf

Match originalhost alias1,alias2 !user nobody-here
    HostName alias.example.org
    IdentitiesOnly yes
    PasswordAuthentication no
    KbdInteractiveAuthentication no

Match exec false
    Port 9

Host fin
    HostName final-1.example.net

Match final host final-*.example.net
    Port 2022
    LogLevel DEBUG2

Host UPPER
    Port 3333
    HashKnownHosts yes
    AddressFamily inet

Host *.example.org !alias*
    ConnectionAttempts 3
    TCPKeepAlive no
    GlobalKnownHostsFile /etc/ssh/other_known_hosts

Host *
    IdentityFile ~/.ssh/id_common
    StrictHostKeyChecking yes
    ServerAliveInterval 30
    User fallback
""")
    keys = []
    for name in ("key1", "key2"):
        path = os.path.join(tmp, "keys", name)
        write(path, "not a real key\n")   # ssh -G drops -i files that do not exist
        keys.append(path)
    return cfg, keys


def cases(keys):
    """(label, extra command-line arguments, target). ssh -G accepts the same flags."""
    plain = [(h, [], h) for h in (
        "web-1", "WEB-1", "web-bad", "db1", "dbx", "jumpy", "noproxy", "inc-a",
        "inc-special", "alias1", "fin", "UPPER", "upper", "host.example.org", "x.corp.example.com",
    )]
    return plain + [
        ("-o Port", ["-o", "Port=1234"], "web-1"),
        ("-o User + ProxyJump none", ["-o", "User=ou", "-o", "ProxyJump none"], "web-1"),
        ("-l -p", ["-l", "alice", "-p", "2200"], "db1"),
        ("-l with Match user", ["-l", "nobody-here"], "alias1"),
        ("-i", ["-i", keys[0], "-i", keys[1]], "web-1"),
        ("-o IdentityFile", ["-o", "IdentityFile=~/.ssh/o_%h"], "web-1"),
        ("-o UserKnownHostsFile", ["-o", "UserKnownHostsFile=/x/%h /y/%r"], "db1"),
        ("-o HostName %h", ["-o", "HostName=%h.over.example.com"], "plain"),
        ("-o StrictHostKeyChecking", ["-o", "StrictHostKeyChecking=accept-new"], "web-bad"),
        ("-o BatchMode", ["-o", "BatchMode=yes", "-o", "ServerAliveCountMax=7"], "plain"),
        ("-o Ciphers", ["-o", "Ciphers=aes128-ctr"], "db1"),
        ("-o ConnectTimeout", ["-o", "ConnectTimeout=2m"], "plain"),
    ]


def parse_ssh_G(text):
    out = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key in LIST_KEYS:
            out.setdefault(key, []).append(value)
        else:
            out[key] = value
    return out


def expected_value(key, raw):
    """ssh -G's text -> the value sshmux must print."""
    if raw is None:
        return None
    if key in SPLIT_KEYS:
        return raw.split()
    if key in BOOL_KEYS:
        return raw in ("yes", "true")
    if key in INT_KEYS:
        return int(raw)
    if key == "stricthostkeychecking":
        return {"true": "yes", "false": "no"}.get(raw, raw)
    if key == "connecttimeout":
        return "none" if raw in ("none", "0") else int(raw)
    return raw


def explicit_algos(extra, target_algo_hosts, target):
    """Algorithm keys that are set explicitly for this case (only those are comparable)."""
    keys = set()
    for i, arg in enumerate(extra):
        if i > 0 and extra[i - 1] == "-o":
            k = re.split(r"[ =]", arg, 1)[0].lower()
            if k in ALGO_KEYS:
                keys.add(k)
    keys |= target_algo_hosts.get(target, set())
    return keys


def run(argv, env):
    return subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, timeout=60)


def sshmux_json(sshmux, cfg, extra, target, env):
    p = run([sshmux, "hosts", "-F", cfg] + extra + ["-w", target, "--json"], env)
    if p.returncode != 0:
        return None, p
    for line in p.stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            obj = json.loads(line)
            if obj.get("host", target) == target:
                return obj, p
    return None, p


def map_home(value, home, pw_home):
    """sshmux expanded ~ and %d from $HOME, ssh from the passwd entry."""
    if isinstance(value, str) and (value == home or value.startswith(home + "/")):
        return pw_home.rstrip("/") + value[len(home):]
    if isinstance(value, list):
        return [map_home(v, home, pw_home) for v in value]
    return value


def looks_unimplemented(p):
    msg = (p.stderr + p.stdout).lower()
    return p.returncode != 0 and re.search(
        r"unknown (sub)?command|usage:|not implemented|invalid command|unrecognized", msg)


def compare_case(ctx, label, extra, target):
    sshmux, cfg, env, home, pw_home, algo_hosts = ctx
    ssh = run(["ssh", "-G", "-F", cfg] + extra + [target], env)
    if ssh.returncode != 0:
        return [f"{label}: ssh -G failed: {ssh.stderr.strip()}"]
    want = parse_ssh_G(ssh.stdout)
    got, p = sshmux_json(sshmux, cfg, extra, target, env)
    if got is None:
        return [f"{label}: sshmux hosts failed (rc {p.returncode}): {p.stderr.strip()}"]
    errors = []
    for key in ALWAYS + sorted(explicit_algos(extra, algo_hosts, target)):
        exp = expected_value(key, want.get(key))
        val = map_home(got.get(key, "<missing>"), home, pw_home)
        if val != exp:
            errors.append(f"{label} [{target}]: {key}: sshmux {val!r} != ssh -G {exp!r}")
    return errors


def main():
    sshmux = os.environ.get("SSHMUX")
    if not sshmux or not os.access(sshmux, os.X_OK):
        print("SKIP: $SSHMUX is not set to an executable")
        return SKIP
    if not shutil.which("ssh"):
        print("SKIP: no ssh client")
        return SKIP
    pw_home = pwd.getpwuid(os.getuid()).pw_dir
    with tempfile.TemporaryDirectory(prefix="sshmux-G-") as tmp:
        home = os.path.join(tmp, "home")
        os.makedirs(os.path.join(home, ".ssh"))
        cfg, keys = build_config(tmp)
        env = dict(os.environ, HOME=home)
        env.pop("SSH_AUTH_SOCK", None)
        algo_hosts = {"db1": {"ciphers", "kexalgorithms", "macs"},
                      "dbx": {"ciphers", "kexalgorithms", "macs"}}
        ctx = (sshmux, cfg, env, home, pw_home, algo_hosts)

        _, probe = sshmux_json(sshmux, cfg, [], "web-1", env)
        if looks_unimplemented(probe):
            print("SKIP: this sshmux has no working `hosts` command:", probe.stderr.strip()[:200])
            return SKIP
        errors = []
        all_cases = cases(keys)
        for label, extra, target in all_cases:
            errors += compare_case(ctx, label, extra, target)
    for e in errors:
        print("FAIL:", e)
    print(f"{len(all_cases)} cases, {len(errors)} mismatches")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
