"""--sessions N: memory per open session of sshmux.

sshmux runs over N hosts with fanout N and a remote command that blocks until we let it go
(`flock -s LOCK true`: we hold LOCK exclusively), so all N sessions are open at once for as
long as we like. We count the open sessions on the server side (the test user's blocked
`flock` processes, one per session, plus the ESTABLISHED client sockets to the sshd), sample
sshmux's VmRSS every 100 ms for a few seconds while all of them are open, read its VmHWM, then
release the lock and check every host finished ok. The same with 1 host gives the baseline:
    KiB per session = (peak RSS with N open - peak RSS with 1 open) / N
"""
import csv
import fcntl
import json
import os
import pwd
import resource
import subprocess
import time

import fleet  # noqa: F401
import fixture
from measure import rss_kib


def _flock_waiters(uid):
    n = 0
    for d in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{d}/comm") as f:
                if f.read().strip() != "flock":
                    continue
            if os.stat(f"/proc/{d}").st_uid == uid:
                n += 1
        except OSError:
            pass
    return n


class OpenSshTarget:
    """Sessions against the fleet's OpenSSH sshd: the command blocks on a lock we hold."""
    name = "openssh"

    def __init__(self, setup, fl):
        self.setup, self.fl, self.lf = setup, fl, None
        self.lock = setup.wd.file("sessions.lock", "", 0o644)
        self.uid = pwd.getpwnam(fl.user).pw_uid if fl.user else os.geteuid()
        self.cfg = fl.cfg

    def hostrange(self, n):
        return self.fl.hostrange(n)

    def command(self):
        return f"flock -s {self.lock} true"

    def hold(self):
        self.lf = open(self.lock, "r")
        fcntl.flock(self.lf, fcntl.LOCK_EX)

    def open_sessions(self):
        return _flock_waiters(self.uid)

    def connections(self):
        return self.fl.sshd.count_established_connections()

    def release(self):
        fcntl.flock(self.lf, fcntl.LOCK_UN)
        self.lf.close()


class AsyncSshTarget:
    """Sessions against k single-process AsyncSSH servers (bench/asyncssh_sessions.py): host
    aliases a00001.. spread round-robin over the servers; the command waits in the server
    until release() (SIGUSR1 to every server)."""
    name = "asyncssh"

    def __init__(self, setup, n, servers):
        import asyncssh_sessions
        # Sessions wait up to 10 min: opening 10,000 took 87 s on a loaded 2-core machine
        # and a second 10,000 once more than 90 s, when the first sessions ended on their own.
        self.servers = [asyncssh_sessions.SessionServer(setup.wd, setup.keys, hold=600)
                        for _ in range(servers)]
        d = setup.wd.mkdir("fleet-asyncssh-sessions")
        kh = os.path.join(d, "known_hosts")
        with open(kh, "w") as f:
            f.write("".join(s.known_hosts_line() for s in self.servers))
        hosts = {f"a{i:05d}": {"Port": self.servers[(i - 1) % servers].port}
                 for i in range(1, n + 1)}
        self.cfg = fixture.write_ssh_config(
            os.path.join(d, "ssh_config"), hosts, identity=setup.keys.ed25519,
            known_hosts=kh, user="bench", port=self.servers[0].port,
            extra={"GlobalKnownHostsFile": "/dev/null", "BatchMode": "yes"})

    @staticmethod
    def hostrange(n):
        return f"a[00001-{n:05d}]" if n > 1 else "a00001"

    @staticmethod
    def command():
        return "wait"

    def hold(self):
        pass

    def open_sessions(self):
        return sum(s.open_sessions() for s in self.servers)

    def connections(self):
        return "n/a"

    def release(self):
        for s in self.servers:
            s.release()

    def server_cost(self):
        """(RSS KiB summed over the servers, CPU seconds summed) right now."""
        rss = cpu = 0
        for s in self.servers:
            rss += rss_kib(s.proc.pid)[0]
            with open(f"/proc/{s.proc.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            cpu += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return rss, cpu


def _wait_releasing(target, p, timeout, log):
    """Wait for sshmux to exit. AsyncSSH sessions that opened after the release (hosts that
    waited for a free descriptor) wait for the next one: release again every second."""
    t0 = time.monotonic()
    while p.poll() is None and time.monotonic() - t0 < timeout:
        if hasattr(target, "servers"):
            target.release()
        time.sleep(1)
    if p.poll() is None:
        log("sessions: sshmux did not finish after the release; killing it")


def _wait_drained(target, log, timeout=180):
    """Wait until the servers hold no session of an earlier run: a single-process AsyncSSH
    server takes tens of seconds to close 10,000 connections after sshmux exits, and counting
    those as this run's would start the sampling before its own sessions are open."""
    t0 = time.monotonic()
    left = target.open_sessions()
    while left and time.monotonic() - t0 < timeout:
        time.sleep(0.5)
        left = target.open_sessions()
    if left:
        log(f"sessions: {left} sessions of an earlier run still open after {timeout} s")
    elif time.monotonic() - t0 > 1:
        log(f"sessions: the servers closed an earlier run's sessions in "
            f"{time.monotonic() - t0:.1f} s")


def one_run(setup, target, binary, n, hold_s, timeout, log):
    """Returns dict: n, open (max seen), rss_open_kib (max VmRSS while all open), hwm_kib,
    ok, failed, wall_s, rc."""
    _wait_drained(target, log)
    target.hold()
    cmd = [binary, "exec", "-F", target.cfg, "-f", str(n), "-q", "--json",
           "--connect-timeout", "120", "--auth-timeout", "120",
           "-w", target.hostrange(n), target.command()]
    out_path = setup.wd.file(f"sessions-{n}.out")
    t0 = time.monotonic()
    with open(out_path, "wb") as out:
        p = subprocess.Popen(cmd, env=setup.env, stdout=out, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, start_new_session=True)
    kill = fixture.on_cleanup(lambda: fixture.kill_tree(p.pid, p), f"pid {p.pid}")
    seen, last_change, all_open_at = 0, time.monotonic(), None
    rss_open = hwm = 0
    server_cost = None
    try:
        while time.monotonic() - t0 < timeout and p.poll() is None:
            k = target.open_sessions()
            if k > seen:   # a count that falls (sessions ending) is no progress
                seen, last_change = k, time.monotonic()
            if k >= n or (k and time.monotonic() - last_change > 20):
                all_open_at = time.monotonic()
                break
            time.sleep(0.25)
        if all_open_at is None:
            log(f"sessions: only {seen}/{n} sessions ever open (sshmux "
                f"{'exited' if p.poll() is not None else 'timed out'})")
        else:
            est = target.connections()
            log(f"sessions: {seen}/{n} sessions open after {all_open_at - t0:.1f} s "
                f"({est} established TCP connections); sampling RSS for {hold_s} s")
            while time.monotonic() - all_open_at < hold_s and p.poll() is None:
                rss, hwm = rss_kib(p.pid)
                rss_open = max(rss_open, rss)
                time.sleep(0.1)
            hwm = max(hwm, rss_kib(p.pid)[1])
            if hasattr(target, "server_cost"):
                server_cost = target.server_cost()
    finally:
        target.release()
    _wait_releasing(target, p, max(10, timeout - (time.monotonic() - t0)), log)
    fixture.run_cleanup(kill)
    wall = time.monotonic() - t0
    ok = failed = 0
    errors = {}
    with open(out_path, errors="replace") as f:
        for line in f:
            try:
                o = json.loads(line)
            except ValueError:
                continue
            if o.get("ok") and o.get("exit_code") == 0:
                ok += 1
            else:
                failed += 1
                m = (o.get("error") or {}).get("message") or f"exit {o.get('exit_code')}"
                errors[m] = errors.get(m, 0) + 1
    return dict(n=n, open=seen, rss_open_kib=rss_open, hwm_kib=hwm, ok=ok, failed=failed,
                wall_s=wall, rc=p.returncode, errors=errors,
                server_cost=server_cost)


def run(setup, binaries, n, outdir, log, hold_s=3.0, timeout=300, server="openssh",
        servers=2, latency_s=20.0):
    """Measure every available backend; writes sessions.csv and returns Markdown lines."""
    # One descriptor per session in sshmux (libssh patch 0032: libssh uses the socket sshmux
    # watches and leaves it open); the servers this starts inherit the limit and hold N/K each.
    # Root may raise the hard limit too.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = n + 256
    if soft < need:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (need, max(hard, need)))
            soft, hard = need, max(hard, need)
        except (ValueError, OSError):
            log(f"sessions: RLIMIT_NOFILE hard limit is {hard} < {need}: sshmux cannot hold "
                f"{n} connections; raise it (ulimit -Hn) or use a smaller --sessions")
    if server == "asyncssh":
        target = AsyncSshTarget(setup, n, servers)
    else:
        ms = f"{n + 100}:30:{n + 100}"
        sshd = fixture.Sshd(setup.wd, setup.keys, max_startups=ms if n > 1900 else None)
        target = OpenSshTarget(setup, setup.fleet("sessions", n, sshd=sshd))
    rows, md = [], [f"## Memory per open session (`--sessions {n} --server {target.name}`)", "",
                    f"sshmux over {n} hosts ({target.name} server), fanout {n}; every remote "
                    "command waits until the harness releases it, so all sessions are open at "
                    "once; RSS sampled every "
                    f"100 ms for {hold_s:.0f} s while they are, VmHWM read at the end. Baseline: "
                    "the same over 1 host. RLIMIT_NOFILE soft/hard: "
                    f"{soft}/{hard}.", "",
                    "| sshmux | open | ok/N | RSS 1 host KiB | RSS N open KiB | HWM 1 host KiB "
                    "| HWM N KiB | **KiB per session** (RSS) | KiB per session (HWM) | target |",
                    "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for backend, binary in sorted(binaries.items()):
        if not binary:
            continue
        base = one_run(setup, target, binary, 1, hold_s, 60, log)
        big = one_run(setup, target, binary, n, hold_s, timeout, log)
        per_rss = (big["rss_open_kib"] - base["rss_open_kib"]) / n
        per_hwm = (big["hwm_kib"] - base["hwm_kib"]) / n
        verdict = "ok (<= 16)" if per_rss <= 16 else "ABOVE 16"
        if big["open"] < n:
            verdict += f"; only {big['open']} open"
        log(f"sessions: sshmux-{backend}: {per_rss:.1f} KiB/session (RSS), {per_hwm:.1f} (HWM); "
            f"{big['ok']}/{n} ok, errors {big['errors'] or 'none'}")
        rows.append(dict(tool=f"sshmux-{backend}", server=target.name, hosts=n,
                         open=big["open"], ok=big["ok"], failed=big["failed"], rss_1_kib=base["rss_open_kib"],
                         rss_n_kib=big["rss_open_kib"], hwm_1_kib=base["hwm_kib"],
                         hwm_n_kib=big["hwm_kib"], kib_per_session_rss=round(per_rss, 1),
                         kib_per_session_hwm=round(per_hwm, 1), wall_s=round(big["wall_s"], 2),
                         errors=json.dumps(big["errors"]) if big["errors"] else ""))
        md.append(f"| sshmux-{backend} | {big['open']} | {big['ok']}/{n} | "
                  f"{base['rss_open_kib']} | {big['rss_open_kib']} | {base['hwm_kib']} | "
                  f"{big['hwm_kib']} | **{per_rss:.1f}** | {per_hwm:.1f} | {verdict} |")
        if big["errors"]:
            md.append(f"|  | errors: {big['errors']} |||||||||")
        if big.get("server_cost"):
            srss, scpu = big["server_cost"]
            md.append(f"|  | servers ({len(target.servers)} AsyncSSH processes) with {n} open: "
                      f"{srss / 1024:.0f} MiB RSS, {scpu:.1f} s CPU so far |||||||||")
    if latency_s and hasattr(target, "servers"):
        md += ["", f"### Loop latency with {n} sessions open", "",
               f"Every session's server side writes `T <CLOCK_MONOTONIC ns>` every 10 s (random "
               "phase); sshmux streams the lines (`host: T <ns>`) and the harness timestamps each "
               f"on arrival, for {latency_s:.0f} s once all {n} are open: server write -> "
               "loopback -> sshmux read, decrypt, data callback, stdout write -> harness read "
               "(an upper bound on data-arrival-to-callback).", "",
               "| sshmux | open | lines | p50 ms | p99 ms | max ms | RSS KiB |",
               "|---|---:|---:|---:|---:|---:|---:|"]
        for backend, binary in sorted(binaries.items()):
            if not binary:
                continue
            lr = latency_run(setup, target, binary, n, latency_s, log, timeout)
            log(f"sessions: latency sshmux-{backend}: {lr}")
            md.append(f"| sshmux-{backend} | {lr['open']} | {lr['lines']} | {lr['p50_ms']} | "
                      f"{lr['p99_ms']} | {lr['max_ms']} | {lr['rss_kib']} |")
            for r in rows:
                if r["tool"] == f"sshmux-{backend}":
                    r.update(lat_lines=lr["lines"], lat_p50_ms=lr["p50_ms"],
                             lat_p99_ms=lr["p99_ms"], lat_max_ms=lr["max_ms"])
    if rows:
        with open(os.path.join(outdir, f"sessions-{target.name}-{n}.csv"), "w",
                  newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    return md


def plot(outdir, log):
    """sessions_rss.png: KiB of RSS per open session against N, one line per sshmux build and
    server, from every sessions-<server>-<N>.csv in outdir. Returns the path or None."""
    import glob
    import shutil
    gp = shutil.which("gnuplot")
    series = {}
    for path in glob.glob(os.path.join(outdir, "sessions-*-*.csv")):
        with open(path, newline="") as f:
            for r in csv.DictReader(f):
                key = f"{r['tool']} vs {r.get('server', 'openssh')}"
                series.setdefault(key, []).append((int(r["hosts"]),
                                                   float(r["kib_per_session_rss"])))
    if not gp or not series:
        return None
    data = os.path.join(outdir, "sessions_rss.dat")
    keys = sorted(series)
    with open(data, "w") as f:
        f.write("\n\n\n".join("\n".join(f"{n} {v}" for n, v in sorted(series[k]))
                              for k in keys) + "\n")
    ns = sorted({n for k in keys for n, _ in series[k]})
    png = os.path.join(outdir, "sessions_rss.png")
    lines = ", ".join(f"'{data}' index {i} using 1:2 with linespoints lw 2 pt 7 title '{k}'"
                      for i, k in enumerate(keys))
    script = f"""set terminal pngcairo size 900,560 font 'sans,10'
set output '{png}'
set title "sshmux RSS per open session vs N (sessions held open, command waiting)"
set xlabel 'open sessions (N)'
set ylabel 'KiB of RSS per session'
set grid
set key outside right top
set logscale x
set xrange [{ns[0] * 0.8}:{ns[-1] * 1.25}]
set yrange [0:*]
set xtics ({', '.join(str(n) for n in ns)})
plot {lines}, 16 with lines dt 2 lc rgb 'red' title 'target 16 KiB'
"""
    r = subprocess.run([gp], input=script, text=True, capture_output=True, timeout=60)
    if r.returncode != 0:
        log(f"sessions: gnuplot failed: {r.stderr}")
        return None
    return png


def latency_run(setup, target, binary, n, seconds, log, timeout=300):
    """Loop latency with n sessions open (AsyncSshTarget only): every session's server side
    writes `T <CLOCK_MONOTONIC ns>` every few seconds (command `tick`); sshmux streams
    `host: T <ns>` lines to our pipe as its callbacks get them, and we read them at once, so
    now - T is the server's write -> loopback -> sshmux's read, decrypt, callback and write ->
    our read. An upper bound on the data-arrival-to-callback time, measured only while all n
    are open. Returns dict: n, open, lines, p50_ms, p99_ms, max_ms, rss_kib, failed."""
    import threading
    _wait_drained(target, log)
    cmd = [binary, "exec", "-F", target.cfg, "-f", str(n), "-q",
           "--connect-timeout", "120", "--auth-timeout", "120", "-w", target.hostrange(n), "tick"]
    p = subprocess.Popen(cmd, env=setup.env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         stdin=subprocess.DEVNULL, start_new_session=True)
    kill = fixture.on_cleanup(lambda: fixture.kill_tree(p.pid, p), f"pid {p.pid}")
    lat, measuring = [], [False]

    def reader():
        for line in p.stdout:
            now = time.monotonic_ns()
            parts = line.split()
            if measuring[0] and len(parts) == 3 and parts[1] == b"T":
                lat.append((now - int(parts[2])) / 1e6)

    th = threading.Thread(target=reader, daemon=True)
    th.start()
    t0, seen, rss, last_change, settled = time.monotonic(), 0, 0, time.monotonic(), False
    while time.monotonic() - t0 < timeout and p.poll() is None:
        k = target.open_sessions()
        if k > seen:
            seen, last_change = k, time.monotonic()
        if k >= n or (k and time.monotonic() - last_change > 20):
            settled = True
            break
        time.sleep(0.25)
    if settled:
        log(f"sessions: latency: {seen}/{n} open after {time.monotonic() - t0:.1f} s; "
            f"reading ticks for {seconds:.0f} s")
        measuring[0] = True
        t1 = time.monotonic()
        while time.monotonic() - t1 < seconds and p.poll() is None:
            rss = max(rss, rss_kib(p.pid)[0])
            time.sleep(0.5)
        measuring[0] = False
    else:
        log(f"sessions: latency: only {seen}/{n} ever open; no measurement")
    target.release()
    _wait_releasing(target, p, 120, log)
    fixture.run_cleanup(kill)
    th.join(timeout=10)
    lat.sort()

    def pct(q):
        return round(lat[min(len(lat) - 1, int(q * len(lat)))], 2) if lat else None
    return dict(n=n, open=seen, lines=len(lat), p50_ms=pct(0.50), p99_ms=pct(0.99),
                max_ms=round(lat[-1], 2) if lat else None, rss_kib=rss, rc=p.returncode)
