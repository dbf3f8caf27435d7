#!/usr/bin/env python3
"""User and system CPU per host of `sshmux exec`, from getrusage of the child, for several builds
run interleaved against one loopback sshd: which part of a host's cost is the kernel's.

Runs `sshmux exec -o KexAlgorithms=curve25519-sha256 -f 256 ... true` (the matrix's samekex
variant) over 1 and N aliases for each LABEL=BINARY, REPS times round-robin, and prints a
markdown table of (ru(N) - ru(1)) / (N - 1) in ms, user and sys, median and range over the
repetitions. Timed: run it under the shared benchmark lock.

    bench/usersys.py 500 3 new=build/openssl/sshmux main=/tmp/sshmux-main
"""
import os
import resource
import statistics
import subprocess
import sys

import fleet

KEX = "curve25519-sha256"


def rusage(binary, fl, env, n):
    """(user s, sys s) of one run over n hosts; fails unless every host succeeded."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    p = subprocess.run([binary, "exec", "-F", fl.cfg, "-f", "256", "-q", "--json",
                        "-o", f"KexAlgorithms={KEX}", "-w", fl.hostrange(n), "true"],
                       env=env, capture_output=True, text=True, timeout=600)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    ok = sum('"ok":true' in line.replace(" ", "") for line in p.stdout.splitlines())
    if ok != n:
        sys.exit(f"usersys: {binary}: {ok}/{n} hosts ok, rc {p.returncode}\n{p.stderr[-2000:]}")
    return after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    n, reps = int(sys.argv[1]), int(sys.argv[2])
    builds = [a.split("=", 1) for a in sys.argv[3:]]
    setup = fleet.Setup()
    fl = setup.fleet("us", n)
    per = {label: [] for label, _ in builds}
    for _ in range(reps):
        for label, binary in builds:
            u1, s1 = rusage(os.path.abspath(binary), fl, setup.env, 1)
            un, sn = rusage(os.path.abspath(binary), fl, setup.env, n)
            per[label].append(((un - u1) / (n - 1) * 1e3, (sn - s1) / (n - 1) * 1e3))
    print(f"| build ({n} hosts, {reps} reps) | user ms/host | sys ms/host | user+sys |")
    print("|---|---:|---:|---:|")
    for label, _ in builds:
        cols = []
        for vals in ([u for u, _ in per[label]], [s for _, s in per[label]],
                     [u + s for u, s in per[label]]):
            cols.append(f"{statistics.median(vals):.3f} ({min(vals):.3f}-{max(vals):.3f})")
        print(f"| {label} | " + " | ".join(cols) + " |")


if __name__ == "__main__":
    main()
