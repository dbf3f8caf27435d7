#!/usr/bin/env python3
"""Remote (-R) and dynamic (-D) forwarding benchmark: sshmux forward vs OpenSSH's ssh, same run,
same sshd, same cipher, interleaved repetitions.

- throughput: iperf3 through `sshmux forward -R` vs `ssh -R` (the iperf3 server is the local
  destination, the client connects to the sshd's listener) and through `-D` (the client reaches
  the iperf3 server through the SOCKS5 listener, by Debian's proxychains4 preloaded into
  iperf3: its connect() becomes a SOCKS5 CONNECT), both directions over the SSH connection;
  client CPU per GiB = the forwarder process's user+sys time over the bytes iperf3 moved.
- 1000 concurrent SOCKS5 connections through one -D to a one-process echo server
  (tests/lib/echoserver.py), 16 KiB each, every byte checked: wall time from the first connect to
  the last byte verified, failures, and the forwarder's CPU time.
Directions are named by the SSH connection: upload = client to server (the forwarder encrypts),
download = server to client. Everything on loopback against a throwaway sshd.
Usage: bench/forward_rd.py [--reps N] [--seconds S] [--tools sshmux-openssl,ssh] [--out-dir D]"""
import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(TOP, "tests", "lib"))
import fixture  # noqa: E402
import forward  # noqa: E402  (Fleet, cpu_seconds, wait_port)
import fwdkit  # noqa: E402
import netserv  # noqa: E402

CIPHERS = ["aes128-gcm@openssh.com", "chacha20-poly1305@openssh.com"]
TOOLS = {"sshmux-openssl": os.path.join(TOP, "build", "openssl", "sshmux"),
         "sshmux-mbedtls": os.path.join(TOP, "build", "mbedtls", "sshmux"),
         "ssh": "ssh"}
NCONN, CONN_BYTES = 1000, 16384


def start(fleet, tool, cipher, spec_flag, spec, wait):
    """The forwarder (sshmux forward or ssh -N) with one -R/-D spec; waits until `wait` (a port
    on this machine: the sshd's listener for -R, ours for -D) listens."""
    if tool == "ssh":
        cmd = ["ssh", "-F", fleet.cfg, "-o", f"Ciphers={cipher}", "-o", "BatchMode=yes",
               "-o", "ExitOnForwardFailure=yes", "-N", spec_flag, spec, "target"]
    else:
        cmd = [TOOLS[tool], "forward", "-F", fleet.cfg, "-o", f"Ciphers={cipher}", spec_flag,
               spec, "target"]
    p = subprocess.Popen(cmd, env=fleet.env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, start_new_session=True)
    fixture.on_cleanup(lambda: fixture.kill_tree(p.pid, p), f"forwarder {p.pid}")
    try:
        forward.wait_port(wait, timeout=20)
    except RuntimeError:
        fixture.kill_tree(p.pid, p)
        raise RuntimeError(f"{tool} {spec_flag} {spec}: no listener; stderr: "
                           f"{p.stderr.read().decode(errors='replace')[-2000:]}")
    return p


def iperf(port, seconds, reverse, prefix=()):
    args = list(prefix) + ["iperf3", "-c", "127.0.0.1", "-p", str(port), "-t", str(seconds), "-J"]
    r = subprocess.run(args + (["-R"] if reverse else []), capture_output=True, text=True,
                       timeout=seconds + 40)
    try:
        j = json.loads(r.stdout)
    except ValueError:
        raise RuntimeError(f"iperf3 said no JSON (rc {r.returncode}): {r.stderr[-1000:]}")
    if "error" in j:
        raise RuntimeError(j["error"])
    end = j["end"]["sum_received"]
    return end["bytes"], end["bits_per_second"] / 8


def proxychains_conf(fleet, port):
    return fleet.wd.file(f"proxychains-{port}.conf",
                         f"strict_chain\nquiet_mode\ntcp_read_time_out 15000\n"
                         f"tcp_connect_time_out 8000\n[ProxyList]\nsocks5 127.0.0.1 {port}\n")


def measure_throughput(fleet, iperf_port, kind, tool, cipher, direction, seconds):
    """kind R: iperf3 client -> sshd's listener -> forwarder -> iperf3 server (download over
    SSH unless iperf3 -R); kind D: iperf3 (proxychains4) -> forwarder's SOCKS -> sshd -> iperf3
    server (upload unless iperf3 -R)."""
    port = fixture.free_port()
    if kind == "R":
        p = start(fleet, tool, cipher, "-R", f"127.0.0.1:{port}:127.0.0.1:{iperf_port}", port)
        target, prefix, reverse = port, (), direction == "upload"
    else:
        p = start(fleet, tool, cipher, "-D", f"127.0.0.1:{port}", port)
        target, reverse = iperf_port, direction == "download"
        prefix = ("proxychains4", "-q", "-f", proxychains_conf(fleet, port))
    try:
        cpu0 = forward.cpu_seconds(p.pid)
        nbytes, bps = iperf(target, seconds, reverse, prefix)
        cpu = forward.cpu_seconds(p.pid) - cpu0
    finally:
        fixture.kill_tree(p.pid, p)
    gib = nbytes / 2**30
    return {"mb_per_s": bps / 1e6, "cpu_s_per_gib": cpu / gib if gib else 0.0, "gib": gib,
            "cpu_s": cpu}


def measure_socks_burst(fleet, echo_port, tool, cipher):
    """NCONN SOCKS5 connections at once through one -D, each CONN_BYTES echoed and checked."""
    port = fixture.free_port()
    p = start(fleet, tool, cipher, "-D", f"127.0.0.1:{port}", port)
    try:
        cpu0 = forward.cpu_seconds(p.pid)
        res = fwdkit.echo_many(
            lambda i: fwdkit.socks5_connect(("127.0.0.1", port), "127.0.0.1", echo_port,
                                            timeout=60),
            NCONN, size=CONN_BYTES, timeout=180)
        cpu = forward.cpu_seconds(p.pid) - cpu0
    finally:
        fixture.kill_tree(p.pid, p)
    reasons = {}
    for why in res["failed"].values():
        key = why.split(":")[0] + ": " + why.split(":", 2)[-1].strip()[:60]
        reasons[key] = reasons.get(key, 0) + 1
    return {"wall_s": res["wall_s"], "ok": res["ok"], "failed": len(res["failed"]),
            "cpu_s": cpu, "notes": "; ".join(f"{k} x{v}" for k, v in reasons.items())}


def run(reps, seconds, out_dir, tools=None, ciphers=None, log=print, summary=None):
    """Measures and writes forward-rd.csv / forward-rd.md in out_dir."""
    tools = [t for t in (tools or list(TOOLS)) if t == "ssh" or os.access(TOOLS[t], os.X_OK)]
    ciphers = ciphers or CIPHERS[:1]
    os.makedirs(out_dir, exist_ok=True)
    for exe in ("iperf3", "proxychains4"):
        if not any(os.access(os.path.join(d, exe), os.X_OK)
                   for d in os.environ.get("PATH", "/usr/bin").split(":")):
            log(f"forward-rd bench: {exe} missing (bench/run installs it: PEERS)")
            return 1
    fixture.raise_fd_limit(16384)   # before the sshd: it inherits the limit
    fleet = forward.Fleet()
    iperf_port = forward.iperf_server()
    echo = netserv.EchoProcess()
    date, rev = time.strftime("%Y-%m-%d %H:%M:%S %z"), source_revision()
    rows, bursts = [], []
    try:
        for rep in range(reps):
            for kind in ("R", "D"):
                for cipher in ciphers:
                    for direction in ("upload", "download"):
                        for tool in tools:   # interleaved: both see the same machine state
                            m = measure_throughput(fleet, iperf_port, kind, tool, cipher,
                                                   direction, seconds)
                            rows.append({"test": f"-{kind}", "tool": tool, "cipher": cipher,
                                         "direction": direction, "rep": rep, **m})
                            log(f"-{kind} {tool:15s} {cipher:30s} {direction:8s} "
                                f"{m['mb_per_s']:7.0f} MB/s {m['cpu_s_per_gib']:5.2f} s CPU/GiB")
            for tool in tools:
                b = measure_socks_burst(fleet, echo.port, tool, ciphers[0])
                bursts.append({"test": f"-D x{NCONN}", "tool": tool, "cipher": ciphers[0],
                               "rep": rep, **b})
                log(f"-D x{NCONN} {tool:15s} wall {b['wall_s']:6.2f} s  ok {b['ok']}  "
                    f"failed {b['failed']}  cpu {b['cpu_s']:5.2f} s  {b['notes']}")
    finally:
        fixture.cleanup_all()
    write_results(out_dir, rows, bursts, tools, ciphers, reps, seconds, date, summary, rev)
    return 0


def med(rows, key):
    vals = [r[key] for r in rows]
    return statistics.median(vals), min(vals), max(vals)


def source_revision():
    """The checkout's commit, + "-modified" when tracked files other than results differ."""
    git = ["git", "-C", TOP]
    rev = subprocess.run(git + ["rev-parse", "--short", "HEAD"], capture_output=True,
                         text=True).stdout.strip() or "?"
    changed = subprocess.run(git + ["status", "--porcelain", "--untracked-files=no", "--", ".",
                                    ":!bench/results"], capture_output=True, text=True).stdout
    return rev + ("-modified" if changed.strip() else "")


def write_results(out_dir, rows, bursts, tools, ciphers, reps, seconds, date, summary, rev="?"):
    fields = ["test", "tool", "cipher", "direction", "rep", "mb_per_s", "cpu_s_per_gib", "gib",
              "cpu_s", "wall_s", "ok", "failed", "notes"]
    with open(os.path.join(out_dir, "forward-rd.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        for r in rows + bursts:
            w.writerow({k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()})
    pc = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "proxychains4"],
                        capture_output=True, text=True).stdout or "?"
    ip = subprocess.run(["iperf3", "--version"], capture_output=True, text=True).stdout
    lines = [f"# Remote (-R) and dynamic (-D) forwarding: sshmux forward vs ssh, {date}", "",
             f"Machine: {summary or '?'}. sshmux built from commit {rev}.", "",
             f"Median (min-max) over {reps} repetitions of {seconds} s, tools interleaved "
             "within each repetition, against one sshd on loopback. CPU = the forwarder "
             "process's user+sys time per GiB iperf3 moved. Ratios: sshmux / ssh in the same "
             "run. upload = client to server over SSH (the forwarder encrypts), download = "
             "server to client.", "",
             "-R: iperf3's client connects to the sshd's listener, the forwarder connects to "
             "the iperf3 server. -D: iperf3 reaches the server through the forwarder's SOCKS5 "
             f"listener by proxychains4 {pc} (Debian's, preloaded into iperf3: "
             "every connect() becomes a SOCKS5 CONNECT; checked to work with "
             f"{(ip.split() or ['iperf3', '?'])[0]} {(ip.split() + ['?', '?'])[1]}).", "",
             "| forward | cipher | direction | tool | MB/s | CPU s/GiB | MB/s vs ssh | "
             "CPU/GiB vs ssh |", "|---|---|---|---|---:|---:|---:|---:|"]
    for test in ("-R", "-D"):
        for cipher in ciphers:
            for direction in ("upload", "download"):
                sel = lambda t: [r for r in rows if r["test"] == test and r["tool"] == t  # noqa
                                 and r["cipher"] == cipher and r["direction"] == direction]
                base = sel("ssh")
                bt = med(base, "mb_per_s")[0] if base else None
                bc = med(base, "cpu_s_per_gib")[0] if base else None
                for tool in tools:
                    if not sel(tool):
                        continue
                    t, tmin, tmax = med(sel(tool), "mb_per_s")
                    c, cmin, cmax = med(sel(tool), "cpu_s_per_gib")
                    ratio = (f"{t / bt:.2f}x | {c / bc:.2f}x" if bt and bc else "- | -")
                    lines.append(f"| {test} | {cipher.split('@')[0]} | {direction} | {tool} | "
                                 f"{t:.0f} ({tmin:.0f}-{tmax:.0f}) | {c:.2f} ({cmin:.2f}-{cmax:.2f})"
                                 f" | {ratio} |")
    lines += ["", f"{NCONN} SOCKS5 connections opened at once through one -D (handshakes 64 at "
              f"a time, then all {NCONN} open together), {CONN_BYTES // 1024} KiB each echoed and "
              "checked byte for byte; wall = first connect to last byte verified; CPU = the "
              "forwarder's user+sys over the burst; failures summed over the repetitions:", "",
              "| tool | wall s | CPU s | failed | wall vs ssh | CPU vs ssh |",
              "|---|---:|---:|---:|---:|---:|"]
    base = [b for b in bursts if b["tool"] == "ssh"]
    for tool in tools:
        sel = [b for b in bursts if b["tool"] == tool]
        if not sel:
            continue
        w_, wmin, wmax = med(sel, "wall_s")
        c, cmin, cmax = med(sel, "cpu_s")
        ratio = (f"{w_ / med(base, 'wall_s')[0]:.2f}x | {c / med(base, 'cpu_s')[0]:.2f}x"
                 if base and med(base, "cpu_s")[0] else "- | -")
        failed = sum(b["failed"] for b in sel)
        notes = "; ".join(sorted({b["notes"] for b in sel if b["notes"]}))
        lines.append(f"| {tool} | {w_:.2f} ({wmin:.2f}-{wmax:.2f}) | {c:.2f} ({cmin:.2f}-"
                     f"{cmax:.2f}) | {failed} of {NCONN * len(sel)}"
                     f"{' (' + notes + ')' if notes else ''} | {ratio} |")
    with open(os.path.join(out_dir, "forward-rd.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--out-dir", default=os.path.join(HERE, "results"))
    ap.add_argument("--tools", default="sshmux-openssl,ssh")
    ap.add_argument("--ciphers", default=CIPHERS[0], help="comma list; default aes128-gcm only")
    a = ap.parse_args()
    sys.exit(run(a.reps, a.seconds, a.out_dir, a.tools.split(","), a.ciphers.split(",")))


if __name__ == "__main__":
    main()
