#!/usr/bin/env python3
"""System calls per host of `sshmux exec`, counted by strace: what one more host costs the
kernel side of the client, without start-up (issue 14 target 1: a third of the client CPU per
host was system time).

Runs `sshmux exec -o KexAlgorithms=curve25519-sha256 -f 50 ... true` (the matrix's samekex
variant) under `strace -f -c` over 1 and over N aliases of one throwaway loopback sshd
(bench/fleet.py) and prints, per system call, (count(N) - count(1)) / (N - 1), largest first.
With --trace the full `strace -f` of the N-host run stays in OUTDIR for reading.

    bench/syscalls.py build/openssl/sshmux 100 /tmp/sc [--trace]
"""
import os
import re
import subprocess
import sys

import fleet

KEX = "curve25519-sha256"


def counts(binary, fl, env, n, out, trace):
    """{syscall: calls} of one run over n hosts; fails unless every host succeeded."""
    argv = ["strace", "-f", "-c", "-o", out]
    if trace:
        argv = ["strace", "-f", "-tt", "-o", out]
    argv += [binary, "exec", "-F", fl.cfg, "-f", "50", "-q", "--json",
             "-o", f"KexAlgorithms={KEX}", "-w", fl.hostrange(n), "true"]
    p = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
    ok = sum('"ok":true' in line.replace(" ", "") for line in p.stdout.splitlines())
    if ok != n:
        sys.exit(f"syscalls: {ok}/{n} hosts ok, rc {p.returncode}\n{p.stderr[-2000:]}")
    if trace:
        res = {}
        with open(out) as f:
            for line in f:
                m = re.match(r"\d+\s+[\d:.]+\s+(?:<\.\.\. )?(\w+)", line)
                if m and "resumed>" not in line:
                    res[m.group(1)] = res.get(m.group(1), 0) + 1
        return res
    res = {}
    with open(out) as f:
        for line in f:
            m = re.match(r"\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)\s*$", line)
            if m and m.group(2) != "total":
                res[m.group(2)] = int(m.group(1))
    return res


def main():
    args = [a for a in sys.argv[1:] if a != "--trace"]
    trace = "--trace" in sys.argv
    if len(args) != 3:
        sys.exit(__doc__)
    binary, n, outdir = os.path.abspath(args[0]), int(args[1]), args[2]
    os.makedirs(outdir, exist_ok=True)
    setup = fleet.Setup()
    fl = setup.fleet("sc", n)
    c = {k: counts(binary, fl, setup.env, k, os.path.join(outdir, f"strace.{k}"), trace)
         for k in (1, n)}
    names = sorted(set(c[1]) | set(c[n]), key=lambda s: -(c[n].get(s, 0) - c[1].get(s, 0)))
    total1, totaln = sum(c[1].values()), sum(c[n].values())
    print(f"{binary}: {total1} system calls for 1 host, {totaln} for {n}: "
          f"{(totaln - total1) / (n - 1):.1f} per host")
    print("| system call | 1 host | %d hosts | per host |" % n)
    print("|---|---:|---:|---:|")
    for s in names:
        per = (c[n].get(s, 0) - c[1].get(s, 0)) / (n - 1)
        print(f"| {s} | {c[1].get(s, 0)} | {c[n].get(s, 0)} | {per:.2f} |")


if __name__ == "__main__":
    main()
