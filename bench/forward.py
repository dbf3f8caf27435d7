#!/usr/bin/env python3
"""Forwarding benchmark: iperf3 through `sshmux forward -L` (both crypto backends) and through
OpenSSH's `ssh -L`, in the same run, both directions (iperf3 -R), aes128-gcm and
chacha20-poly1305; client CPU per GiB from the forwarder's own user+sys time; and a connection
rate test (short connections per second through one forward).

Everything runs on loopback against a throwaway sshd (tests/lib/fixture.py), bounded in time;
with --latency MS [--loss PCT], the sshd, iperf3 server and targets sit in a network namespace
behind tests/lib/wire.py's wire (MS/2 ms and PCT % loss each way), the forwarders and clients
in another (bench/netns.py).
With --parallel 1,8 each throughput case runs once per stream count (iperf3 -P N: N forwarded
connections at once through the one forward, hence N channels on its SSH connection).
Usage: bench/forward.py [--reps N] [--seconds S] [--out-dir bench/results] [--latency MS]
       [--parallel 1,8] [--prefix NAME] [--no-extras] [--base-binary PATH]"""
import argparse
import contextlib
import csv
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(TOP, "tests", "lib"))
import fixture  # noqa: E402

CIPHERS = ["aes128-gcm@openssh.com", "chacha20-poly1305@openssh.com"]
TOOLS = {"sshmux-openssl": os.path.join(TOP, "build", "openssl", "sshmux"),
         "sshmux-mbedtls": os.path.join(TOP, "build", "mbedtls", "sshmux"),
         "ssh": "ssh"}


def tool_binary(tool):
    """(binary, extra args): "sshmux-openssl-c4" is sshmux-openssl with --connections 4 (its
    forwarded connections spread over 4 SSH connections, each with its own sshd)."""
    base, sep, n = tool.rpartition("-c")
    if sep and n.isdigit() and base in TOOLS:
        return TOOLS[base], ["--connections", n]
    return TOOLS[tool], []


def cpu_seconds(pid, children=False):
    """user+sys of pid (children: also of its reaped children)."""
    with open(f"/proc/{pid}/stat") as f:
        st = f.read().rsplit(")", 1)[1].split()
    ticks = int(st[11]) + int(st[12]) + (int(st[13]) + int(st[14]) if children else 0)
    return ticks / os.sysconf("SC_CLK_TCK")


def tree_cpu(pid):
    """{pid: user+sys+reaped children} for pid and every live descendant."""
    out = {}
    for p in [pid] + fixture.descendants(pid):
        with contextlib.suppress(OSError, ValueError, IndexError):
            out[p] = cpu_seconds(p, children=True)
    return out


def tree_cpu_delta(before, after):
    """CPU a process tree spent between two tree_cpu snapshots: processes that ended in between
    were reaped into their parent's children times (their part before the first snapshot was
    counted there already)."""
    return sum(after.values()) - sum(before.values())


def machine_cpu():
    """(busy, steal) seconds of the whole machine from /proc/stat: user+nice+system+irq+softirq
    (softirq time, loopback's delivery, is not always charged to any process) and what the
    hypervisor took."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    hz = os.sysconf("SC_CLK_TCK")
    return (v[0] + v[1] + v[2] + v[5] + v[6]) / hz, v[7] / hz


def wait_port(port, timeout=10):
    """Waits for a listener without connecting to it (a probe connection would be forwarded)."""
    deadline = time.monotonic() + timeout
    needle = f":{port:04X} "
    while time.monotonic() < deadline:
        # thread-self: the namespace this thread is in (Fleet.inside)
        for table in ("/proc/thread-self/net/tcp", "/proc/thread-self/net/tcp6"):
            with open(table) as f:
                if any(needle in line and line.split()[3] == "0A" for line in f):
                    return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


class Fleet:
    """latency (ms per round trip) not None: sshd behind bench/netns.py's wire; run the
    client side inside("cli") and the servers inside("srv")."""

    def __init__(self, latency=None, loss=0.0):
        self.wd = fixture.Workdir(prefix="sshmux-fwdbench-")
        self.keys = fixture.Keys(self.wd)
        self.ns, self.server = None, "loopback"
        if latency is not None:
            import netns
            self.ns = netns.Netns(latency, loss)
            self.sshd = netns.NsSshd(self.ns, self.wd, self.keys)
            self.server = f"netns+{latency:g}ms" + (f"+{loss:g}%loss" if loss else "")
        else:
            self.sshd = fixture.Sshd(self.wd, self.keys)
        user = fixture.TestUser(self.wd).name if fixture.TestUser.available() else None
        kh = self.sshd.write_known_hosts(self.wd.file("known_hosts"), hosts=(self.sshd.host,))
        self.cfg = fixture.write_ssh_config(self.wd.file("ssh_config"), ["target"],
                                            sshd=self.sshd, identity=self.keys.ed25519,
                                            known_hosts=kh, user=user, hostname=self.sshd.host)
        self.env = fixture.base_env(self.wd)

    def inside(self, side):
        return self.ns.wire.inside(side) if self.ns else contextlib.nullcontext()


def start_forwarder(fleet, tool, cipher, lport, dport, extra=()):
    """extra: more (local port, remote port) pairs forwarded over the same session."""
    specs = []
    for lp, dp in ((lport, dport),) + tuple(extra):
        specs += ["-L", f"{lp}:127.0.0.1:{dp}"]
    if tool == "ssh":
        cmd = ["ssh", "-F", fleet.cfg, "-o", f"Ciphers={cipher}", "-o", "BatchMode=yes",
               "-o", "ExitOnForwardFailure=yes", "-N"] + specs + ["target"]
    else:
        binary, opts = tool_binary(tool)
        cmd = [binary, "forward", "-F", fleet.cfg, "-o", f"Ciphers={cipher}"] + opts + specs + \
              ["target"]
    p = subprocess.Popen(cmd, env=fleet.env, stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         start_new_session=True)
    fixture.on_cleanup(lambda: fixture.kill_tree(p.pid, p), f"forwarder {p.pid}")
    for lp in [lport] + [lp for lp, _ in extra]:
        wait_port(lp)
    return p


def iperf_server():
    """An iperf3 server on 127.0.0.1 (removed by fixture's cleanup); returns its port once it
    listens."""
    port = fixture.free_port()
    srv = subprocess.Popen(["iperf3", "-s", "-B", "127.0.0.1", "-p", str(port)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           start_new_session=True)
    fixture.on_cleanup(lambda: fixture.kill_tree(srv.pid, srv), "iperf3 server")
    wait_port(port)
    return port


def iperf(port, seconds, reverse, streams=1):
    """(bytes, bytes/s received summed over the streams, CPU seconds of the iperf3 client and
    server as they report it)."""
    args = ["iperf3", "-c", "127.0.0.1", "-p", str(port), "-t", str(seconds), "-J"]
    if streams > 1:
        args += ["-P", str(streams)]
    r = subprocess.run(args + (["-R"] if reverse else []), capture_output=True, text=True,
                       timeout=seconds + 30)
    j = json.loads(r.stdout)
    if "error" in j:
        raise RuntimeError(j["error"])
    end = j["end"]["sum_received"]
    util = j["end"].get("cpu_utilization_percent", {})
    iperf_cpu = (util.get("host_total", 0) + util.get("remote_total", 0)) / 100 * end["seconds"]
    return end["bytes"], end["bits_per_second"] / 8, iperf_cpu


def measure_throughput(fleet, iperf_port, tool, cipher, reverse, seconds, streams=1):
    lport = fixture.free_port()
    p = start_forwarder(fleet, tool, cipher, lport, iperf_port)
    sshd = fleet.sshd.proc.pid if getattr(fleet.sshd, "proc", None) else None
    try:
        cpu0, sshd0, mach0 = cpu_seconds(p.pid), sshd and tree_cpu(sshd), machine_cpu()
        nbytes, bps, iperf_cpu = iperf(lport, seconds, reverse, streams)
        cpu, mach1 = cpu_seconds(p.pid) - cpu0, machine_cpu()
        sshd_cpu = tree_cpu_delta(sshd0, tree_cpu(sshd)) if sshd else 0.0
    finally:
        fixture.kill_tree(p.pid, p)
    gib = nbytes / 2**30

    def per_gib(x):
        return x / gib if gib else 0.0
    return {"mb_per_s": bps / 1e6, "cpu_s_per_gib": per_gib(cpu), "gib": gib,
            "sshd_s_per_gib": per_gib(sshd_cpu), "iperf_s_per_gib": per_gib(iperf_cpu),
            "machine_s_per_gib": per_gib(mach1[0] - mach0[0]),
            "machine_busy": (mach1[0] - mach0[0]) / (os.cpu_count() * seconds),
            "steal_s": mach1[1] - mach0[1]}


def echo_server(fleet):
    with fleet.inside("srv"):
        s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1024)

    def serve():
        while True:
            try:
                c, _ = s.accept()
            except OSError:
                return
            try:
                d = c.recv(64)
                if d:
                    c.sendall(d)
            finally:
                c.close()
    threading.Thread(target=serve, daemon=True).start()
    fixture.on_cleanup(s.close, "echo server")
    return s.getsockname()[1]


def measure_conn_rate(fleet, tool, seconds, threads=16):
    dport = echo_server(fleet)
    lport = fixture.free_port()
    p = start_forwarder(fleet, tool, CIPHERS[0], lport, dport)
    done, failed, stop = [0], [0], time.monotonic() + seconds

    def worker():
        while time.monotonic() < stop:
            try:
                with socket.create_connection(("127.0.0.1", lport), timeout=10) as c:
                    c.sendall(b"x")
                    if c.recv(1) == b"x":
                        done[0] += 1
                    else:
                        failed[0] += 1
            except OSError:
                failed[0] += 1
    ts = [threading.Thread(target=worker) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    fixture.kill_tree(p.pid, p)
    return done[0] / seconds, failed[0]


def idle_server(fleet):
    """Accepts connections and holds them open, silent, until the bench ends."""
    with fleet.inside("srv"):
        s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(4096)
    held = []

    def serve():
        while True:
            try:
                held.append(s.accept()[0])
            except OSError:
                return
    threading.Thread(target=serve, daemon=True).start()
    fixture.on_cleanup(lambda: [c.close() for c in held + [s]], "idle server")
    return s.getsockname()[1]


def measure_with_idle(fleet, iperf_port, tool, seconds, nidle):
    """Download throughput and CPU/GiB through one forward while nidle other forwarded
    connections sit open and silent on the same session (each an SSH channel)."""
    lport, iport = fixture.free_port(), fixture.free_port()
    p = start_forwarder(fleet, tool, CIPHERS[0], lport, iperf_port,
                        extra=((iport, idle_server(fleet)),))
    socks = []
    try:
        socks = [socket.create_connection(("127.0.0.1", iport), timeout=30) for _ in range(nidle)]
        time.sleep(1)   # every channel open before measuring
        cpu0 = cpu_seconds(p.pid)
        nbytes, bps, _ = iperf(lport, seconds, True)
        cpu = cpu_seconds(p.pid) - cpu0
    finally:
        for c in socks:
            c.close()
        fixture.kill_tree(p.pid, p)
    gib = nbytes / 2**30
    return bps / 1e6, cpu / gib if gib else 0.0


def relay_cpu(iperf_port, seconds, reverse, streams, buf=131072):
    """A plain relay, no encryption (socat, BUF-byte reads, a process per connection) between
    iperf3's client and server: (relay s/GiB, machine s/GiB, MB/s). None without socat."""
    lport = fixture.free_port()
    try:
        p = subprocess.Popen(["socat", "-b", str(buf),
                              f"TCP-LISTEN:{lport},bind=127.0.0.1,reuseaddr,fork",
                              f"TCP:127.0.0.1:{iperf_port}"], stderr=subprocess.DEVNULL,
                             start_new_session=True)
    except FileNotFoundError:
        return None
    fixture.on_cleanup(lambda: fixture.kill_tree(p.pid, p), "socat relay")
    try:
        wait_port(lport)
        t0, m0 = tree_cpu(p.pid), machine_cpu()
        nbytes, bps, _ = iperf(lport, seconds, reverse, streams)
        time.sleep(0.5)   # the per-connection children end and are reaped into the parent
        t1, m1 = tree_cpu(p.pid), machine_cpu()
    finally:
        fixture.kill_tree(p.pid, p)
    gib = nbytes / 2**30
    return tree_cpu_delta(t0, t1) / gib, (m1[0] - m0[0]) / gib, bps / 1e6


def cipher_seconds_per_gib():
    """{cipher: s/GiB} of the AEAD arithmetic alone on one core (openssl speed, 16 KiB)."""
    out = {}
    for cipher, evp in zip(CIPHERS, ("aes-128-gcm", "chacha20-poly1305")):
        r = subprocess.run(["openssl", "speed", "-seconds", "2", "-bytes", "16384", "-evp", evp],
                           capture_output=True, text=True, timeout=60)
        last = r.stdout.strip().splitlines()[-1].split() if r.stdout.strip() else []
        with contextlib.suppress(ValueError, IndexError):
            out[cipher] = 2**30 / (float(last[-1].rstrip("k")) * 1000)
    return out


def measure_floor(iperf_port, seconds, parallel):
    """What this machine's loopback and crypto cost whatever forwards: iperf3 straight to its
    server (one TCP hop), through a plain relay (two hops), and each cipher's arithmetic. A
    forward through sshd is three hops and two cipher passes (the forwarder's, sshd's): its
    machine CPU per GiB cannot go below that, nor its throughput above the cores over it."""
    rows = []
    for streams in parallel:
        for reverse in (False, True):
            m0 = machine_cpu()
            nbytes, bps, _ = iperf(iperf_port, seconds, reverse, streams)
            hop = (machine_cpu()[0] - m0[0]) / (nbytes / 2**30)
            relay = relay_cpu(iperf_port, seconds, reverse, streams)
            rows.append({"streams": streams, "direction": "download" if reverse else "upload",
                         "hop_s_per_gib": hop, "hop_mb_per_s": bps / 1e6, "relay": relay})
            print(f"floor P{streams} {rows[-1]['direction']}: hop {hop:.2f} s/GiB, relay "
                  f"{relay and f'{relay[0]:.2f} s/GiB own, {relay[1]:.2f} machine'}", flush=True)
    return rows, cipher_seconds_per_gib()


def floor_lines(floor):
    if not floor:
        return []
    rows, ciphers = floor
    lines = ["", "Floor of this machine (no SSH): iperf3 straight to its server (one loopback TCP "
             "hop, machine CPU per GiB), through a plain relay with no encryption (socat, "
             "128 KiB reads: its own CPU and the machine's per GiB), and each cipher's "
             "arithmetic on one core (openssl speed, 16 KiB). A forward through sshd is three "
             "hops and two cipher passes; that sum is the floor of its machine CPU per GiB, and "
             "the cores over it the ceiling of its throughput:", "",
             "| streams | direction | hop s/GiB | hop MB/s | relay own s/GiB | relay machine s/GiB "
             "| relay MB/s |", "|---:|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        rel = r["relay"]
        rel_cells = f"{rel[0]:.2f} | {rel[1]:.2f} | {rel[2]:.0f}" if rel else "- | - | -"
        lines.append(f"| {r['streams']} | {r['direction']} | {r['hop_s_per_gib']:.2f} "
                     f"| {r['hop_mb_per_s']:.0f} | {rel_cells} |")
    hop = statistics.median(r["hop_s_per_gib"] for r in rows)
    lines.append("")
    for cipher, c in ciphers.items():
        fl = 3 * hop + 2 * c
        lines.append(f"- {cipher}: {c:.2f} s/GiB per pass; floor 3 x {hop:.2f} + 2 x {c:.2f} = "
                     f"{fl:.2f} s/GiB, at most {os.cpu_count() / fl * 2**30 / 1e6:.0f} MB/s on "
                     f"{os.cpu_count()} cores")
    return lines


def median_row(rows, key):
    vals = [r[key] for r in rows]
    return statistics.median(vals), min(vals), max(vals)


def run(reps, seconds, out_dir, tools=None, main_csv=None, latency=None, loss=0.0,
        parallel=(1,), prefix="forward", extras=True, base_binary=None, with_floor=False):
    """Measures, writes <prefix>.csv/<prefix>.md in out_dir, and appends rows to main_csv (the
    harness's results.csv columns) when given. latency/loss: through bench/netns.py's wire.
    parallel: iperf3 stream counts, each a case of its own; extras: the connection-rate and
    idle-channel runs (and the floor, as with_floor); base_binary: another sshmux build measured
    as tool "sshmux-base"; with_floor: this machine's floor (measure_floor) on loopback."""
    if base_binary:
        TOOLS["sshmux-base"] = os.path.abspath(base_binary)
        tools = list(tools or TOOLS) + ["sshmux-base"]
    tools = [t for t in (tools or list(TOOLS)) if t == "ssh" or
             os.access(tool_binary(t)[0], os.X_OK)]
    os.makedirs(out_dir, exist_ok=True)
    # idle channels: 2 fds each here, 1 in sshd (which inherits this limit)
    nidle = 1500 if fixture.raise_fd_limit(8192) >= 4096 else 300
    try:
        fleet = Fleet(latency, loss)
    except fixture.Skip as e:
        print(f"forward bench: {e}", file=sys.stderr)
        return
    with fleet.inside("srv"):
        iperf_port = iperf_server()
    rows, floor = [], None
    try:
        with fleet.inside("cli"):   # forwarders, clients and their threads
            rates, idle = measure_all(fleet, iperf_port, tools, reps, seconds, nidle, rows,
                                      parallel, extras)
            if (extras or with_floor) and latency is None:
                floor = measure_floor(iperf_port, seconds, parallel)
    finally:
        fixture.cleanup_all()
    write_results(out_dir, rows, rates, tools, idle, nidle, fleet.server, prefix,
                  f"reps {reps}, {seconds} s each", floor)
    if main_csv:
        append_main_csv(main_csv, rows, seconds, fleet.server)


def measure_all(fleet, iperf_port, tools, reps, seconds, nidle, rows, parallel=(1,),
                extras=True):
    """Throughput rows (appended to rows), then {tool: conn rate}, {tool: idle result}."""
    for streams in parallel:
        for cipher in CIPHERS:
            for reverse in (False, True):
                for rep in range(reps):
                    for tool in tools:   # interleaved: every tool sees the same machine state
                        m = measure_throughput(fleet, iperf_port, tool, cipher, reverse, seconds,
                                               streams)
                        rows.append({"tool": tool, "cipher": cipher, "streams": streams,
                                     "direction": "download" if reverse else "upload",
                                     "rep": rep, **m})
                        print(f"{tool:15s} {cipher:30s} {rows[-1]['direction']:8s} P{streams} "
                              f"{m['mb_per_s']:7.0f} MB/s {m['cpu_s_per_gib']:5.2f} s CPU/GiB",
                              flush=True)
    if not extras:
        return {}, {}
    rates = {t: measure_conn_rate(fleet, t, seconds) for t in tools}
    idle = {}
    for t in tools:
        idle[t] = measure_with_idle(fleet, iperf_port, t, seconds, nidle)
        print(f"{t:15s} download with {nidle} idle channels {idle[t][0]:7.0f} MB/s "
              f"{idle[t][1]:5.2f} s CPU/GiB", flush=True)
    return rates, idle


def append_main_csv(path, rows, seconds, server="loopback"):
    """The harness's CSV: job forward-upload/-download, variant = cipher, one 'host'."""
    new = not os.path.exists(path)
    fields = ["tool", "variant", "job", "hosts", "fanout", "rep", "wall_s", "cpu_s",
              "cpu_ms_per_host", "peak_mib", "ok", "failed", "server", "rc", "timed_out",
              "cpu_user_s", "cpu_sys_s", "rusage_cpu_s", "notes"]
    with open(path, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        if new:
            w.writeheader()
        for r in rows:
            job = f"forward-{r['direction']}" + (f"-P{r['streams']}" if r["streams"] > 1 else "")
            w.writerow({"tool": r["tool"], "variant": r["cipher"], "job": job,
                        "hosts": 1, "fanout": 1, "rep": r["rep"], "wall_s": seconds,
                        "cpu_s": round(r["cpu_s_per_gib"] * r["gib"], 4), "ok": 1, "failed": 0,
                        "server": server, "rc": 0, "timed_out": 0,
                        "notes": f"{r['mb_per_s']:.0f} MB/s; {r['cpu_s_per_gib']:.2f} s CPU/GiB"})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--out-dir", default=os.path.join(HERE, "results"))
    ap.add_argument("--tools", default=",".join(TOOLS))
    ap.add_argument("--csv", help="also append rows to this results CSV")
    ap.add_argument("--latency", type=float, metavar="MS",
                    help="through a wire adding MS ms to every round trip (bench/netns.py)")
    ap.add_argument("--loss", type=float, default=0.0, metavar="PCT",
                    help="with --latency: drop PCT %% of the frames each way")
    ap.add_argument("--parallel", default="1", metavar="N[,N...]",
                    help="iperf3 parallel streams (-P), one case per value")
    ap.add_argument("--prefix", default="forward", help="output files <prefix>.csv/.md")
    ap.add_argument("--no-extras", action="store_true",
                    help="throughput only (no connection-rate and idle-channel runs)")
    ap.add_argument("--base-binary", metavar="PATH",
                    help="also measure this sshmux build, as tool sshmux-base")
    ap.add_argument("--floor", action="store_true",
                    help="with --no-extras: still measure the machine's floor (loopback hop, "
                         "plain relay, cipher arithmetic)")
    a = ap.parse_args()
    run(a.reps, a.seconds, a.out_dir, a.tools.split(","), a.csv, a.latency, a.loss,
        [int(x) for x in a.parallel.split(",")], a.prefix, not a.no_extras, a.base_binary,
        a.floor)


def each_case(rows, tools):
    """(streams, cipher, direction, ssh's rows, tool, the tool's rows) for every case measured,
    in table order."""
    for streams in sorted({r["streams"] for r in rows}):
        for cipher in CIPHERS:
            for direction in ("upload", "download"):
                case = [r for r in rows if r["streams"] == streams and r["cipher"] == cipher
                        and r["direction"] == direction]
                base = [r for r in case if r["tool"] == "ssh"]
                for tool in tools:
                    sel = [r for r in case if r["tool"] == tool]
                    if sel:
                        yield streams, cipher, direction, base, tool, sel


def cpu_split_table(rows, tools):
    """Where the CPU per GiB goes in each case (medians): the forwarder, the sshd processes
    serving it, iperf3's client and server (as they report it), and the whole machine's busy time
    (with the kernel work no process is charged for); busy: the machine's share of its cores.
    When busy is near 100%, throughput is the cores divided by the machine's CPU per GiB."""
    if not rows or "machine_s_per_gib" not in rows[0]:
        return []
    lines = ["", "Where the CPU per GiB goes (s/GiB, medians; machine = every process and the "
             "kernel's softirq work, from /proc/stat):", "",
             "| streams | cipher | direction | tool | forwarder | sshd | iperf3 | rest "
             "| machine | busy | machine vs ssh |", "|---:|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for streams, cipher, direction, base, tool, sel in each_case(rows, tools):
        bm = median_row(base, "machine_s_per_gib")[0] if base else None
        m = {k: median_row(sel, k)[0] for k in
             ("cpu_s_per_gib", "sshd_s_per_gib", "iperf_s_per_gib", "machine_s_per_gib",
              "machine_busy")}
        rest = m["machine_s_per_gib"] - m["cpu_s_per_gib"] - m["sshd_s_per_gib"] - \
            m["iperf_s_per_gib"]
        ratio = f"{m['machine_s_per_gib'] / bm:.2f}x" if bm else "-"
        lines.append(f"| {streams} | {cipher} | {direction} | {tool} "
                     f"| {m['cpu_s_per_gib']:.2f} | {m['sshd_s_per_gib']:.2f} "
                     f"| {m['iperf_s_per_gib']:.2f} | {rest:.2f} "
                     f"| {m['machine_s_per_gib']:.2f} | {m['machine_busy']:.0%} | {ratio} |")
    return lines


def write_results(out_dir, rows, rates, tools, idle=None, nidle=0, server="loopback",
                  prefix="forward", how="", floor=None):
    with open(os.path.join(out_dir, prefix + ".csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["tool", "cipher", "streams", "direction", "rep",
                                          "mb_per_s", "cpu_s_per_gib", "gib", "sshd_s_per_gib",
                                          "iperf_s_per_gib", "machine_s_per_gib",
                                          "machine_busy", "steal_s"])
        w.writeheader()
        w.writerows(rows)
    lines = ["# Forwarding: iperf3 through sshmux forward vs ssh -L (same run)", "",
             "Median (min-max) over repetitions; CPU = the forwarder process's user+sys per GiB "
             "moved. Ratios against `ssh` (OpenSSH) in the same run. Streams: iperf3 -P (that "
             "many forwarded connections at once). Link: " + server + "; " + how + "; "
             + time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()) + ".", "",
             "| streams | cipher | direction | tool | MB/s | CPU s/GiB | MB/s vs ssh "
             "| CPU/GiB vs ssh |",
             "|---:|---|---|---|---:|---:|---:|---:|"]
    for streams, cipher, direction, base, tool, sel in each_case(rows, tools):
        bt = median_row(base, "mb_per_s")[0] if base else None
        bc = median_row(base, "cpu_s_per_gib")[0] if base else None
        t, tmin, tmax = median_row(sel, "mb_per_s")
        c, cmin, cmax = median_row(sel, "cpu_s_per_gib")
        head = f"| {streams} | {cipher} | {direction} | {tool} "
        lines.append(head + f"| {t:.0f} ({tmin:.0f}-{tmax:.0f}) "
                     f"| {c:.2f} ({cmin:.2f}-{cmax:.2f}) | "
                     f"{t / bt:.2f}x | {c / bc:.2f}x |" if bt and bc else
                     head + f"| {t:.0f} | {c:.2f} | - | - |")
    lines += cpu_split_table(rows, tools) + floor_lines(floor)
    if rates:
        lines += ["", "Connection rate (short connections through one forward, 16 clients):", ""]
    for tool, (rate, failed) in rates.items():
        lines.append(f"- {tool}: {rate:.0f} connections/s ({failed} failed)")
    if idle:
        lines += ["", f"Download ({CIPHERS[0]}) through one forward while {nidle} other forwarded "
                  "connections sit open and idle on the same session (one channel each; sshd's "
                  "per-channel work bounds everyone's throughput here, the client CPU per GiB "
                  "is the comparison):", ""]
        for tool, (mbs, cpu) in idle.items():
            lines.append(f"- {tool}: {mbs:.0f} MB/s, {cpu:.2f} s CPU/GiB")
    with open(os.path.join(out_dir, prefix + ".md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
