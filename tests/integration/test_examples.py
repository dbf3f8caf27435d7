"""The library as an embedder gets it: the build installed into a temporary prefix (cmake
--install), examples/fleet_exec.c, examples/forward.c and examples/fleet_expect.c compiled with
nothing but the installed sshmux.h and `pkg-config --cflags --libs sshmux`, then run against a
real sshd. fleet_exec sets nothing but an ssh_config: it authenticates only if
smx_engine_add_target loads the keys that ssh_config names (or offers the agent). The installed
include dir holds sshmux.h alone, so a program that reaches for an internal header does not
compile.

Environment (set by tests/CMakeLists.txt): SSHMUX_BUILD_DIR, the build to install (default: the
directory of $SSHMUX); SSHMUX_SANITIZE=ON when the library was built with ASan+UBSan, which its
users then link with too (default: read from the build's CMakeCache.txt)."""
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import time

from common import *  # noqa: F403
import netserv

SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
F = PREFIX = None
BIN = {}


def build_dir():
    d = os.environ.get("SSHMUX_BUILD_DIR") or os.path.dirname(fixture.sshmux_bin())
    if not os.path.exists(os.path.join(d, "cmake_install.cmake")):
        fixture.skip(f"no CMake build to install at {d!r}")
    return d


def sanitized(build):
    flag = os.environ.get("SSHMUX_SANITIZE")
    if flag is None:
        with open(os.path.join(build, "CMakeCache.txt")) as f:
            m = re.search(r"^SSHMUX_SANITIZE:BOOL=(\w+)$", f.read(), re.M)
        flag = m.group(1) if m else "OFF"
    return flag.upper() in ("ON", "1", "TRUE", "YES")


def pkg_env():
    return {"PKG_CONFIG_PATH": os.path.join(PREFIX, "lib", "pkgconfig")}


def compile_c(src, out, extra=()):
    """cc src -> out with pkg-config's flags for sshmux only (ASan builds: the same sanitizers)."""
    flags = fixture.run(["pkg-config", "--cflags", "--libs", "sshmux"], env=pkg_env())
    check_rc(flags, 0, "pkg-config --cflags --libs sshmux")
    san = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer"] if SANITIZE else []
    return fixture.run(["cc", "-std=c11", "-D_POSIX_C_SOURCE=200809L", "-Wall", "-Wextra",
                        "-Wno-unused-parameter", "-Werror", *san, *extra, src, "-o", out]
                       + shlex.split(flags.stdout), timeout=120)


def setup():
    global F, PREFIX, SANITIZE
    for tool in ("cc", "pkg-config"):
        if not shutil.which(tool):
            fixture.skip(f"{tool} not installed")
    build = build_dir()
    SANITIZE = sanitized(build)
    F = Fleet(n=4)
    PREFIX = F.wd.mkdir("prefix")
    r = fixture.run(["cmake", "--install", build, "--prefix", PREFIX], timeout=120)
    check_rc(r, 0, "cmake --install")
    for name in ("examples/fleet_exec", "examples/forward", "examples/fleet_expect",
                 "tests/tools/smx-lateadd"):
        base = os.path.basename(name)
        BIN[base] = os.path.join(F.wd.path, base)
        r = compile_c(os.path.join(SRC, name + ".c"), BIN[base])
        check_rc(r, 0, f"compiling {name}.c")


def test_installed_layout():
    for path in ("bin/sshmux", "include/sshmux.h", "lib/libsshmux.a",
                 "lib/pkgconfig/sshmux.pc", "share/man/man1/sshmux.1"):
        check(os.path.isfile(os.path.join(PREFIX, path)), f"{path} not installed")
    check_eq(os.listdir(os.path.join(PREFIX, "include")), ["sshmux.h"], "include dir")
    with open(os.path.join(PREFIX, "include", "sshmux.h")) as f:
        included = re.findall(r"^\s*#\s*include\s*(\S+)", f.read(), re.M)
    # the C library and libuv, nothing else (no libssh, jansson or internal header)
    c_library = {"<stddef.h>", "<stdint.h>", "<stdbool.h>", "<stdarg.h>", "<stdio.h>"}
    check("<uv.h>" in included, f"the public header does not include <uv.h>: {included}")
    check_eq(sorted(h for h in included if h != "<uv.h>" and h not in c_library), [],
             "what the public header includes beyond the C library and <uv.h>")
    with open(os.path.join(PREFIX, "lib", "pkgconfig", "sshmux.pc")) as f:
        check_in(f"prefix={PREFIX}\n", f.read(), "sshmux.pc names the prefix installed to")
    # libssh is inside the archive: an embedder needs no private build of it
    nm = fixture.run(["nm", "--defined-only", os.path.join(PREFIX, "lib", "libsshmux.a")])
    check_rc(nm, 0)
    for sym in ("smx_engine_add_target", "ssh_new", "ssh_channel_open_forward"):
        check(re.search(rf" T {sym}$", nm.stdout, re.M), f"{sym} not defined in libsshmux.a")
    r = fixture.run([os.path.join(PREFIX, "bin", "sshmux"), "version"])
    check_rc(r, 0)
    check_match(r"^sshmux \d+\.\d+\.\d+ \(libssh 0\.11", r.stdout)


def test_destdir_keeps_the_prefix():
    stage = F.wd.mkdir("stage")
    r = fixture.run(["cmake", "--install", build_dir(), "--prefix", "/opt/smx"],
                    env={"DESTDIR": stage}, timeout=120)
    check_rc(r, 0, "cmake --install with DESTDIR")
    with open(os.path.join(stage, "opt", "smx", "lib", "pkgconfig", "sshmux.pc")) as f:
        check_in("prefix=/opt/smx\n", f.read())
    check(os.path.isfile(os.path.join(stage, "opt", "smx", "include", "sshmux.h")), "header")


def test_header_alone_compiles_internal_ones_do_not():
    ok = F.wd.file("public_only.c", "#include <sshmux.h>\n"
                   "int main(void) { smx_err e = {{0}}; return smx_strerror(SMX_EINVAL)[0]"
                   " + e.msg[0] + SMX_MSG_MAX + (int)sizeof(smx_result); }\n")
    check_rc(compile_c(ok, F.wd.file("public_only")), 0, "a program using only sshmux.h")
    for internal in ("result.h", "conn.h", "engine_internal.h", "libssh/libssh.h"):
        bad = F.wd.file("internal.c", f"#include <sshmux.h>\n#include \"{internal}\"\n"
                        "int main(void) { return 0; }\n")
        r = compile_c(bad, F.wd.file("internal"))
        check(r.returncode != 0, f"#include \"{internal}\" compiled against the install")
        check_in(internal, r.stderr)


def fleet_exec(*args, env=None):
    return fixture.run([BIN["fleet_exec"], "-F", F.cfg] + list(args), env=env, timeout=120)


def lines_of(r):
    return sorted(r.stdout.splitlines())


def test_host_added_to_a_running_engine_starts_at_once():
    """The second host is added from the first one's result callback, while the loop runs and
    nothing else is queued: it must start then, and the run must wait for it."""
    r = fixture.run([BIN["smx-lateadd"], "-F", F.cfg, "h0001", "h0002", "echo x; exit 0"],
                    timeout=120)
    check_rc(r, 0, "both hosts ran")
    check_eq(r.stdout.splitlines(), ["h0001: 0", "h0002: 0"])
    r = fixture.run([BIN["smx-lateadd"], "-F", F.cfg, "h0001", "h000[2-4]", "exit 0"],
                    timeout=120)
    check_rc(r, 1, "a late list of three: four results, the program counts two")
    check_eq(len(r.stdout.splitlines()), 4)


def test_fleet_exec_all_hosts_ok():
    r = fleet_exec(F.hostlist(), "echo hi; exit 0")
    check_rc(r, 0, "every host exited 0")
    check_eq(lines_of(r), [f"{h}: 0" for h in F.names])


def test_fleet_exec_one_host_exits_3():
    """Every alias reaches the same sshd: the first host to create the directory exits 3."""
    race = F.wd.mkdir("race")
    os.chmod(race, 0o1777)   # the fleet's login may be a throwaway user
    r = fleet_exec(F.hostlist(), f"mkdir {race}/first 2>/dev/null && exit 3; exit 0")
    check_rc(r, 1, "a host exited non-zero")
    codes = sorted(line.rsplit(": ", 1)[1] for line in r.stdout.splitlines())
    check_eq(codes, ["0"] * (len(F.names) - 1) + ["3"], f"output: {r.stdout}")
    check_eq(sorted(line.rsplit(": ", 1)[0] for line in r.stdout.splitlines()), F.names)


def test_fleet_exec_one_host_unreachable():
    F.add("gone", HostName=fixture.LOOPBACK, Port=fixture.refused_port())
    r = fleet_exec(F.hostlist(3) + ",gone", "true")
    check_rc(r, 1, "one host failed")
    check_eq(lines_of(r), sorted([f"{h}: 0" for h in F.names[:3]] + ["gone: -1"]))
    check_match(r"gone: connect: ", r.stderr)


def test_fleet_exec_without_keys_is_an_auth_failure():
    """The keys come from ssh_config's IdentityFile only: an alias naming none (and no agent)
    cannot authenticate. This is what fails if add-target does not load keys."""
    F.add("nokey", HostName=fixture.LOOPBACK, Port=F.sshd.port, User=F.user,
          UserKnownHostsFile=F.kh, StrictHostKeyChecking="yes", IdentitiesOnly="yes",
          IdentityFile=F.wd.file("missing_key"), PasswordAuthentication="no",
          KbdInteractiveAuthentication="no")
    r = fleet_exec("h0001,nokey", "true")
    check_rc(r, 1)
    check_eq(lines_of(r), ["h0001: 0", "nokey: -1"])
    check_match(r"nokey: auth: ", r.stderr)


def test_fleet_exec_agent_from_ssh_auth_sock():
    sock = os.path.join(F.wd.path, "agent.sock")
    agent = fixture.spawn(["ssh-agent", "-D", "-a", sock])
    fixture.wait_until(lambda: os.path.exists(sock), 10, "ssh-agent socket")
    subprocess.run(["ssh-add", "-q", F.keys.ed25519], env={**os.environ, "SSH_AUTH_SOCK": sock},
                   check=True, capture_output=True, timeout=20)
    F.add("viaagent", HostName=fixture.LOOPBACK, Port=F.sshd.port, User=F.user,
          UserKnownHostsFile=F.kh, StrictHostKeyChecking="yes",
          IdentityFile=F.wd.file("missing_key"), PasswordAuthentication="no",
          KbdInteractiveAuthentication="no")
    r = fleet_exec("viaagent", "true", env={"SSH_AUTH_SOCK": sock})
    check_rc(r, 0, "authenticated through the agent")
    r = fleet_exec("viaagent", "true")
    check_rc(r, 1, "no agent without SSH_AUTH_SOCK")
    fixture.kill_tree(agent.pid, agent)


def test_fleet_exec_bad_input():
    r = fleet_exec("web[01-", "true")
    check_rc(r, 2)
    check_in("web[01-", r.stderr)
    r = fleet_exec("ssh://me:sekrit@h0001,h[", "true")
    check_rc(r, 2)
    check("sekrit" not in r.stdout + r.stderr, "a URL password reached a message")
    r = fixture.run([BIN["fleet_exec"]])
    check_rc(r, 2)
    check_in("usage: fleet_exec", r.stderr)


def start_forward(spec, *command):
    p = fixture.spawn([BIN["forward"], "-F", F.cfg, spec, "h0001"] + list(command))
    line = p.stdout.readline()
    if not line:
        raise Failure(f"forward exited early: {p.wait(10)} {p.stderr.read()}")
    local, arrow, remote = line.split()
    check_eq(arrow, "->")
    return p, local, remote


def connect(local):
    host, port = local.rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=20)


def test_fleet_expect_script():
    """smx_target_job.expect from a JSON-lines script: prompt and regex steps on every host, a
    step that never matches fails its host with stage expect, a bad line is refused first."""
    script = F.wd.file("steps.jsonl")
    with open(script, "w") as f:
        f.write('{"send": "echo hi"}\n{"send": "echo there", "expect": "ther."}\n')
    r = fixture.run([BIN["fleet_expect"], "-F", F.cfg, F.hostlist(), script], timeout=120)
    check_rc(r, 0, "every step matched")
    check_eq(lines_of(r), sorted(f"{h}: {w}" for h in F.names
                                 for w in ("step 1: hi", "step 2: there", "ok")))
    with open(script, "a") as f:
        f.write('{"send": "true", "expect": "never", "timeout": 0.5}\n')
    r = fixture.run([BIN["fleet_expect"], "-F", F.cfg, "h0001", script], timeout=120)
    check_rc(r, 1, "a step that never matched")
    check_in("h0001: failed: expect: step 3: no match for /never/", r.stdout)
    with open(script, "a") as f:
        f.write('{"send": 1}\n')
    r = fixture.run([BIN["fleet_expect"], "-F", F.cfg, "h0001", script], timeout=120)
    check_rc(r, 2, "a bad line")
    check_in(f"{script}:4: \"send\" must be a string", r.stderr)


def test_forward_to_sshd_until_sigint():
    p, local, remote = start_forward(f"0:127.0.0.1:{F.sshd.port}")
    check_eq(remote, f"127.0.0.1:{F.sshd.port}")
    for _ in range(2):   # two connections over the one session
        with connect(local) as c:
            banner = c.makefile("rb").readline()
        check(banner.startswith(b"SSH-2.0-"), f"not an SSH banner: {banner!r}")
    p.send_signal(signal.SIGINT)
    check_eq(p.wait(30), 0, f"exit status after SIGINT; stderr: {p.stderr.read()}")
    try:
        connect(local).close()
        check(False, "the listener outlived the run")
    except OSError:
        pass


def test_forward_while_a_command_runs():
    echo = netserv.Server(netserv.echo)
    p, local, _ = start_forward(f"0:127.0.0.1:{echo.port}", "sleep 5; exit 3")
    payload = os.urandom(256 * 1024)
    with connect(local) as c:
        c.sendall(payload)
        c.shutdown(socket.SHUT_WR)
        got = netserv.recv_all(c)
    check(got == payload, f"echo through the forward: {len(got)} of {len(payload)} bytes back")
    t0 = time.monotonic()
    check_eq(p.wait(60), 3, f"the command's status; stderr: {p.stderr.read()}")
    check(time.monotonic() - t0 < 60, "ended with the command")
    echo.stop()


def test_forward_unreachable_target():
    F.add("fwdgone", HostName=fixture.LOOPBACK, Port=fixture.refused_port())
    p = fixture.spawn([BIN["forward"], "-F", F.cfg, "0:127.0.0.1:1", "fwdgone"])
    check_eq(p.wait(60), 255, "connection failed")
    check_match(r"fwdgone: connect: ", p.stderr.read())


if __name__ == "__main__":
    setup()
    # In the order they are written (the install checks first); every test_ function runs.
    fixture.main([v for k, v in list(globals().items()) if k.startswith("test_")])
