#!/usr/bin/env python3
"""make demo: a throwaway OpenSSH sshd on 127.0.0.1 (unprivileged if not root), 250 host aliases
pointing at it, and sshmux exec across all of them: gathered output, then per-host JSON and the
summary. Everything is removed at the end."""
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "lib"))
import fixture  # noqa: E402

N = 250


def show(cmd, sshmux, env):
    print("\n$ sshmux " + " ".join(cmd[1:]), flush=True)
    t0 = time.monotonic()
    r = subprocess.run([sshmux] + cmd[1:], env=env, text=True, capture_output=True, timeout=300)
    out = r.stdout.splitlines()
    if len(out) > 14:
        out = out[:12] + [f"... ({len(out) - 12} more lines)"]
    print("\n".join(out))
    sys.stderr.write(r.stderr)
    print(f"(exit status {r.returncode}, {time.monotonic() - t0:.2f} s)", flush=True)
    return r


def main():
    sshmux = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build/sshmux")
    wd = fixture.Workdir(prefix="sshmux-demo-")
    keys = fixture.Keys(wd)
    sshd = fixture.Sshd(wd, keys)
    kh = sshd.write_known_hosts(wd.file("known_hosts"))
    names = fixture.aliases(N)
    # As root, log in as a throwaway user with /bin/sh: root's own ~/.bashrc may be slow or noisy.
    user = fixture.TestUser(wd).name if fixture.TestUser.available() else None
    cfg = fixture.write_ssh_config(wd.file("ssh_config"), names, sshd=sshd, user=user,
                                   identity=keys.ed25519, known_hosts=kh)
    env = fixture.base_env(wd)
    print(f"sshd on 127.0.0.1:{sshd.port}; {N} aliases h0001..h{N:04d} in {cfg}")
    hosts = f"h[0001-{N:04d}]"
    try:
        show(["sshmux", "exec", "-F", cfg, "-b", "-w", hosts, "uname -sr; echo $((6*7))"],
             sshmux, env)
        show(["sshmux", "exec", "-F", cfg, "-w", "h[0001-0003]", "id -un; echo oops >&2"],
             sshmux, env)
        show(["sshmux", "exec", "-F", cfg, "--json", "-w", "h0001", "true"], sshmux, env)
        show(["sshmux", "test", "-F", cfg, "h0002"], sshmux, env)
    finally:
        fixture.cleanup_all()


if __name__ == "__main__":
    main()
