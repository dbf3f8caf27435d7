#!/usr/bin/env python3
"""Client instructions per host of `sshmux exec`, counted by callgrind: a figure that does not
move with the machine's load, unlike CPU seconds on the shared 2-core machine.

Runs `sshmux exec -o KexAlgorithms=curve25519-sha256 ... true` (the matrix's samekex variant)
under valgrind --tool=callgrind over 1 and over N aliases of one throwaway loopback sshd
(bench/fleet.py) and prints (Ir(N) - Ir(1)) / (N - 1): what one more host costs, without
start-up. The callgrind files stay in OUTDIR for callgrind_annotate (--inclusive=yes).

    bench/cgprofile.py build/openssl/sshmux 100 /tmp/cg-openssl [FANOUT]

FANOUT (default 50) is sshmux's -f: under valgrind a handshake runs ~50x slower, and on a loaded
machine 50 at once can outlast the connect timeout (a host that fails costs fewer
instructions and the run is refused). Say which fanout a figure was counted with.
"""
import os
import re
import subprocess
import sys

import fleet

KEX = "curve25519-sha256"


def instructions(binary, fl, env, n, out, fanout=50):
    """Instructions of one run over n hosts; fails unless every host succeeded."""
    argv = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
            binary, "exec", "-F", fl.cfg, "-f", str(fanout), "-q", "--json",
            "-o", f"KexAlgorithms={KEX}", "-w", fl.hostrange(n), "true"]
    p = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=900)
    ok = sum('"ok":true' in line.replace(" ", "") for line in p.stdout.splitlines())
    m = re.search(r"Collected : (\d+)", p.stderr)
    if ok != n or not m:
        sys.exit(f"cgprofile: {ok}/{n} hosts ok, rc {p.returncode}\n{p.stderr[-2000:]}")
    return int(m.group(1))


def main():
    if len(sys.argv) not in (4, 5):
        sys.exit(__doc__)
    binary, n, outdir = os.path.abspath(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    fanout = int(sys.argv[4]) if len(sys.argv) == 5 else 50
    os.makedirs(outdir, exist_ok=True)
    setup = fleet.Setup()
    fl = setup.fleet("cg", n)
    ir = {k: instructions(binary, fl, setup.env, k, os.path.join(outdir, f"callgrind.{k}"),
                         fanout)
          for k in (1, n)}
    print(f"{binary}: {ir[1]} instructions for 1 host, {ir[n]} for {n}: "
          f"{(ir[n] - ir[1]) / (n - 1):.0f} per host")


if __name__ == "__main__":
    main()
