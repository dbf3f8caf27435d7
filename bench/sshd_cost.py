#!/usr/bin/python3
"""What one connection costs the OpenSSH server, and how much of it is PAM.

The --latency runs at N=1000/2000 are bound by the sshd's CPU (a fork and re-exec per
connection, on the same 2 cores as the tools). This measures that cost on loopback: the tuned
sshd of the matrix (UsePAM yes as root, Debian's PAM stack: pam_motd runs /etc/update-motd.d
on every session) and the same sshd with `UsePAM no`, each taking N `sshmux exec ... true`
connections, rep by rep interleaved. Server CPU = the listener's utime+stime plus its reaped
children's (every per-connection process, once reaped), read from /proc before and after.

  bench/sshd_cost.py [--hosts 300] [--reps 2] [--out bench/results/latency14-sshd.md]
"""
import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import fleet  # noqa: E402  (puts tests/lib on sys.path)
import fixture  # noqa: E402
import netns  # noqa: E402  (_proc_cpu_s)


def settle(sshd, timeout=60):
    """Until the sshd has reaped every connection (its CPU is then in cutime)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and fixture.descendants(sshd.proc.pid):
        time.sleep(0.1)


def one(fl, n, sshmux):
    """(server CPU ms per connection, hosts ok, wall s) of one sshmux exec over n aliases."""
    settle(fl.sshd)
    c0 = netns._proc_cpu_s(fl.sshd.proc.pid, children=True)
    t0 = time.monotonic()
    r = subprocess.run([sshmux, "exec", "-F", fl.cfg, "-f", "256", "-q", "--json", "-o",
                        "KexAlgorithms=curve25519-sha256", "-w", fl.hostrange(n), "true"], env=fl.setup.env, capture_output=True,
                       text=True, timeout=max(120, n * 0.2))
    wall = time.monotonic() - t0
    settle(fl.sshd)
    c1 = netns._proc_cpu_s(fl.sshd.proc.pid, children=True)
    ok = 0
    for line in r.stdout.splitlines():
        with contextlib.suppress(ValueError):
            o = json.loads(line)
            ok += bool(o.get("ok") and o.get("exit_code") == 0)
    return 1000 * (c1 - c0) / n, ok, wall


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hosts", type=int, default=300)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--sshmux", default=os.path.join(os.path.dirname(HERE), "build", "openssl",
                                                     "sshmux"))
    ap.add_argument("--out", help="Markdown table (default: stdout only)")
    a = ap.parse_args()
    setup = fleet.Setup()
    variants = {"UsePAM yes (the matrix's sshd)": "",
                "UsePAM no": "UsePAM no\n"}
    fleets = {name: setup.fleet(f"cost{i}", a.hosts,
                                sshd=fixture.Sshd(setup.wd, setup.keys, extra_config=extra))
              for i, (name, extra) in enumerate(variants.items())}
    res = {name: [] for name in variants}
    for rep in range(a.reps):
        for name, fl in fleets.items():
            ms, ok, wall = one(fl, a.hosts, a.sshmux)
            res[name].append(ms)
            print(f"rep {rep + 1} {name}: sshd {ms:.1f} ms CPU/conn, {ok}/{a.hosts} ok, "
                  f"wall {wall:.2f} s", flush=True)
            if ok != a.hosts:
                sys.exit(f"only {ok}/{a.hosts} hosts ran the command: not a valid measurement")
    L = [f"sshd CPU per connection, {a.hosts} connections (`sshmux exec ... true`, fanout 256, "
         f"loopback), median of {a.reps} reps ({time.strftime('%Y-%m-%d %H:%M')}, "
         f"{os.cpu_count()} CPUs, bench/sshd_cost.py):", "",
         "| sshd | ms CPU / connection | reps |", "|---|---:|---|"]
    for name, v in res.items():
        L.append(f"| {name} | {statistics.median(v):.1f} | "
                 f"{', '.join(f'{x:.1f}' for x in v)} |")
    text = "\n".join(L) + "\n"
    print(text)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    try:
        main()
    finally:
        fixture.cleanup_all()
