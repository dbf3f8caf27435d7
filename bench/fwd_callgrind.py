#!/usr/bin/env python3
"""Instructions per GiB forwarded, load-independent: `sshmux forward -L` under callgrind carries
a fixed number of bytes (iperf3 -n) each way through a throwaway sshd on loopback, for one or
more sshmux builds; user-space instructions only (the kernel's socket work is not counted), so
it compares builds, not sshmux against ssh. The top functions of each run go in the output.
Usage: bench/fwd_callgrind.py [--mib 256] [--cipher aes128-gcm@openssh.com] NAME=BINARY..."""
import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "lib"))
sys.path.insert(0, HERE)
import fixture  # noqa: E402
import forward  # noqa: E402


def run_one(fleet, iperf_port, binary, cipher, reverse, mib, out):
    lport = fixture.free_port()
    cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", binary, "forward",
           "-F", fleet.cfg, "-o", f"Ciphers={cipher}", "-L", f"{lport}:127.0.0.1:{iperf_port}",
           "target"]
    p = subprocess.Popen(cmd, env=fleet.env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True)
    fixture.on_cleanup(lambda: fixture.kill_tree(p.pid, p), f"callgrind {p.pid}")
    try:
        forward.wait_port(lport, timeout=120)
        args = ["iperf3", "-c", "127.0.0.1", "-p", str(lport), "-n", f"{mib}M"]
        subprocess.run(args + (["-R"] if reverse else []), capture_output=True, timeout=600,
                       check=True)
    finally:
        p.send_signal(signal.SIGTERM)   # sshmux ends cleanly: callgrind writes its counts
        p.wait(120)
    return totals(out)


def totals(path):
    """(total Ir, [(Ir, function)] top 8) from callgrind_annotate."""
    txt = subprocess.run(["callgrind_annotate", "--inclusive=no", path], capture_output=True,
                         text=True, timeout=120).stdout
    total = int(re.search(r"([\d,]+) \(100.0%\)\s+PROGRAM TOTALS", txt).group(1).replace(",", ""))
    top = []
    for line in txt.split("PROGRAM TOTALS", 1)[1].splitlines():
        m = re.match(r"\s*([\d,]+) \(\s*[\d.]+%\)\s+(\S+)", line)
        if m and len(top) < 8:
            top.append((int(m.group(1).replace(",", "")), m.group(2)))
    return total, top


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mib", type=int, default=256)
    ap.add_argument("--cipher", default="aes128-gcm@openssh.com")
    ap.add_argument("builds", nargs="+", metavar="NAME=BINARY")
    a = ap.parse_args()
    fleet = forward.Fleet()
    iperf_port = forward.iperf_server()
    gib = a.mib / 1024
    print(f"# callgrind: instructions per GiB through sshmux forward -L ({a.cipher}, "
          f"{a.mib} MiB each way, user space only)\n")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for direction, reverse in (("upload", False), ("download", True)):
                for b in a.builds:
                    name, binary = b.split("=", 1)
                    total, top = run_one(fleet, iperf_port, binary, a.cipher, reverse, a.mib,
                                         os.path.join(tmp, f"cg.{name}.{direction}"))
                    print(f"## {direction}, {name}: {total / gib / 1e9:.2f} G instructions/GiB\n")
                    for ir, fn in top:
                        print(f"- {ir / gib / 1e9:.3f} G/GiB {fn}")
                    print(flush=True)
    finally:
        fixture.cleanup_all()


if __name__ == "__main__":
    main()
