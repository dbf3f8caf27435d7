"""Results: the CSV (one row per invocation, written as we go), the Markdown summary (medians
with min-max spread and ratios against sshmux-openssl of the same run), gnuplot PNGs and
machine.txt."""
import csv
import os
import platform
import re
import shutil
import statistics
import subprocess
import time

COLUMNS = ["tool", "variant", "job", "hosts", "fanout", "rep", "wall_s", "cpu_s",
           "cpu_ms_per_host", "peak_mib", "ok", "failed", "server", "rc", "timed_out",
           "cpu_user_s", "cpu_sys_s", "rusage_cpu_s", "notes",
           # --latency only: the relay and the server side during the invocation (bench/netns.py)
           "relay_cpu_s", "relay_frames", "relay_overflow", "relay_core_pct",
           "relay_us_per_frame", "rtt_p50_ms", "rtt_p99_ms", "rtt_max_ms", "rtt_lost",
           "server_cpu_s", "machine_busy_pct"]
BASE = "sshmux-openssl"


class CsvLog:
    """Appends rows to the CSV as they are measured (a Ctrl-C keeps what was done)."""

    def __init__(self, path):
        self.path, self.rows = path, []
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "w", newline="") as f:
            csv.writer(f).writerow(COLUMNS)

    def add(self, row):
        self.rows.append(row)
        with open(self.path, "a", newline="") as f:
            csv.writer(f).writerow([_fmt(row.get(c)) for c in COLUMNS])


def load_csv(path):
    """Rows of a results.csv back as dicts with numbers converted."""
    ints = {"hosts", "fanout", "rep", "ok", "failed", "timed_out", "relay_frames",
            "relay_overflow", "rtt_lost"}
    rows = []
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            for k, v in r.items():
                if k in ints and v != "":
                    r[k] = int(v)
                elif k.endswith(("_s", "_mib", "_host", "_ms", "_pct", "_frame")) and v != "":
                    r[k] = float(v)
                elif v == "" and k != "notes":
                    r[k] = None
            rows.append(r)
    return rows


def _fmt(v):
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.4f}"
    return str(v)


def _med(vals):
    vals = [v for v in vals if v is not None]
    return (statistics.median(vals), min(vals), max(vals)) if vals else (None, None, None)


def _spread(vals, fmt="{:.2f}"):
    m, lo, hi = _med(vals)
    if m is None:
        return "-"
    return fmt.format(m) if lo == hi else f"{fmt.format(m)} ({fmt.format(lo)}–{fmt.format(hi)})"


def _groups(rows, keys):
    out = {}
    for r in rows:
        out.setdefault(tuple(r[k] for k in keys), []).append(r)
    return out


def _ratio(x, base):
    if x is None or not base:
        return "-"
    return f"{x / base:.1f}x"


def _tool_order(tools):
    pref = ["sshmux-openssl", "sshmux-mbedtls", "sshmux-baseline", "pdsh", "clush", "pssh",
            "asyncssh", "ssh-xargs"]
    return sorted(tools, key=lambda t: (pref.index(t) if t in pref else 99, t))


def markdown(rows, stock_rows, meta, sessions=None):
    """The results.md text."""
    L = [f"# sshmux benchmark — {meta['date']}", "",
         f"Machine: {meta['summary']}. Command: `{meta['command']}`.", "",
         f"CPU = user+sys of the tool's whole process tree ({meta['cpu_method']}); "
         f"peak memory: {meta['mem_method']}. Each cell: median over {meta['reps']} rep(s), "
         "(min–max) when they differ. Ratios compare medians against sshmux-openssl in the same "
         "run, same job/N/variant: on a shared, noisy machine the ratios matter, not the "
         "absolute numbers. `ok` is the smallest number of hosts that ran the job correctly in "
         "any rep, checked from the tool's own output.", ""]
    if meta.get("notes"):
        L += [f"- {n}" for n in meta["notes"]] + [""]
    headlines = []
    for (server, job, n, variant), grp in sorted(
            _groups(rows, ["server", "job", "hosts", "variant"]).items(),
            key=lambda kv: (kv[0][0], list(_JOB_ORDER).index(kv[0][1]) if kv[0][1] in _JOB_ORDER
                            else 9, kv[0][2], kv[0][3])):
        by_tool = _groups(grp, ["tool"])
        base = by_tool.get((BASE,), [])
        bwall = _med([r["wall_s"] for r in base])[0]
        bcpu = _med([r["cpu_ms_per_host"] for r in base])[0]
        L += [f"## job `{job}`, {n} hosts, fanout {grp[0]['fanout']}, variant `{variant}`, "
              f"server {server}", "",
              "| tool | wall s | CPU ms/host | peak MiB | ok/N | wall vs sshmux-openssl "
              "| CPU/host vs sshmux-openssl |", "|---|---:|---:|---:|---:|---:|---:|"]
        for tool in _tool_order(t for (t,) in by_tool):
            rs = by_tool[(tool,)]
            wall = _med([r["wall_s"] for r in rs])[0]
            cpu = _med([r["cpu_ms_per_host"] for r in rs])[0]
            ok = min(r["ok"] for r in rs)
            to = sum(1 for r in rs if r.get("timed_out"))
            okcell = f"{ok}/{n}" + (f" ({to} timed out)" if to else "")
            L.append(f"| {tool} | {_spread([r['wall_s'] for r in rs])} | "
                     f"{_spread([r['cpu_ms_per_host'] for r in rs], '{:.1f}')} | "
                     f"{_spread([r['peak_mib'] for r in rs], '{:.0f}')} | {okcell} | "
                     f"{_ratio(wall, bwall)} | {_ratio(cpu, bcpu)} |")
            if tool != BASE and variant == "samekex" and bwall and bcpu and wall and cpu:
                headlines.append((server, job, n, tool, wall / bwall, cpu / bcpu))
        L.append("")
        L += _wire_table(grp, by_tool)
        notes = _merged_notes(grp, ["tool"])
        if notes:
            L += ["Messages from the tools (count summed over all reps):", ""]
            L += [f"- {x}" for x in notes] + [""]
    if headlines:
        top = max(h[2] for h in headlines)
        hl = ["## Headline (variant samekex, largest N, vs sshmux-openssl)", ""]
        order = _tool_order({h[3] for h in headlines})
        for server, job, n, tool, rw, rc in sorted(
                headlines, key=lambda h: (_JOB_ORDER.index(h[1]) if h[1] in _JOB_ORDER else 9,
                                          order.index(h[3]))):
            if n == top:
                hl.append(f"- job `{job}`, {n} hosts ({server}): **{tool}: {rc:.1f}x the CPU "
                          f"per host, {rw:.1f}x the wall time**")
        L = L[:_intro_len(L)] + hl + [""] + L[_intro_len(L):]
    if stock_rows:
        L += ["## Stock sshd (MaxStartups 10:30:100): success rate at high fanout", "",
              "| tool | variant | hosts | fanout | success % (median, min–max) | wall s |",
              "|---|---|---:|---:|---:|---:|"]
        order = _tool_order({r["tool"] for r in stock_rows})
        for (tool, variant), rs in sorted(_groups(stock_rows, ["tool", "variant"]).items(),
                                          key=lambda kv: (kv[0][1], order.index(kv[0][0]))):
            pct = [100.0 * r["ok"] / r["hosts"] for r in rs]
            L.append(f"| {tool} | {variant} | {rs[0]['hosts']} | {rs[0]['fanout']} | "
                     f"{_spread(pct, '{:.0f}')} | {_spread([r['wall_s'] for r in rs])} |")
        L.append("")
        notes = _merged_notes(stock_rows, ["tool", "variant"])
        if notes:
            L += ["Messages from the tools against the stock sshd (count summed over all reps):",
                  ""] + [f"- {x}" for x in notes] + [""]
    if sessions:
        L += sessions + [""]
    return "\n".join(L) + "\n"


_JOB_ORDER = ("true", "echo", "64k")


def _wire_table(grp, by_tool):
    """--latency runs: the relay's CPU and round trip and the sshd's CPU during each tool's
    runs (medians over the reps), and the wall time the sshd's CPU alone needs on the
    machine's cores: where that is close to a tool's wall time, the server side bounds it."""
    if not any(r.get("relay_cpu_s") is not None for r in grp):
        return []
    ncpu = os.cpu_count() or 1
    n = grp[0]["hosts"]
    L = ["The wire and the server side during these runs (medians over the reps): the relay's "
         "CPU (% of one core over the tool's wall time, µs per frame), an open TCP "
         "connection's round trip through it (1 byte echoed every 0.1 s during the run), and "
         f"the sshd's CPU (per connection, and divided by the {ncpu} cores: the wall time the "
         "server side alone needs), and how busy the whole machine was during the tool's run "
         "(all CPUs, /proc/stat: anyone's use, other work on a shared machine included).", "",
         "| tool | relay CPU s | relay % core | frames | µs/frame | overflow | RTT p50 ms "
         "| RTT p99 ms | RTT max ms | sshd CPU s | sshd ms/conn | sshd CPU / cores s | wall s "
         "| machine busy % |",
         "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for tool in _tool_order(t for (t,) in by_tool):
        rs = [r for r in by_tool[(tool,)] if r.get("relay_cpu_s") is not None]
        if not rs:
            continue
        m = lambda k: _med([r.get(k) for r in rs])[0]  # noqa: E731
        f = lambda v, fmt="{:.2f}": "?" if v is None else fmt.format(v)  # noqa: E731
        srv = m("server_cpu_s")
        L.append(f"| {tool} | {f(m('relay_cpu_s'))} | {f(m('relay_core_pct'), '{:.0f}')} | "
                 f"{f(m('relay_frames'), '{:.0f}')} | {f(m('relay_us_per_frame'), '{:.1f}')} | "
                 f"{f(m('relay_overflow'), '{:.0f}')} | {f(m('rtt_p50_ms'), '{:.1f}')} | "
                 f"{f(m('rtt_p99_ms'), '{:.1f}')} | {f(m('rtt_max_ms'), '{:.1f}')} | "
                 f"{f(srv)} | {f(srv and 1000 * srv / n, '{:.1f}')} | "
                 f"{f(srv and srv / ncpu)} | {f(m('wall_s'))} | "
                 f"{f(m('machine_busy_pct'), '{:.0f}')} |")
    return L + [""]


def _merged_notes(rows, keys, per_key=6):
    """'tool[/variant]: msg xN; msg xN' lines, counts summed over rows (reps)."""
    out = []
    order = _tool_order({r["tool"] for r in rows})
    for key, rs in sorted(_groups(rows, keys).items(),
                          key=lambda kv: (order.index(kv[0][0]), kv[0][1:])):
        counts = {}
        for r in rs:
            for part in filter(None, (r.get("notes") or "").split("; ")):
                m = re.match(r"(.*) x(\d+)$", part)
                msg, n = (m[1], int(m[2])) if m else (part, 1)
                counts[msg] = counts.get(msg, 0) + n
        if counts:
            top = sorted(counts.items(), key=lambda kv: -kv[1])[:per_key]
            out.append(f"{'/'.join(map(str, key))} ({len(rs)} runs): "
                       + "; ".join(f"{m} x{n}" for m, n in top))
    return out


def _intro_len(L):
    """Index just after the intro paragraphs (before the first '## ')."""
    for i, line in enumerate(L):
        if line.startswith("## "):
            return i
    return len(L)


def plots(rows, outdir, job="true", variant="samekex"):
    """wall.png and cpu_per_host.png: median against N, one line per tool (min-max bars), for
    job/variant (or the first ones measured if those were not).
    Returns the list of files written (empty if gnuplot is missing)."""
    gp = shutil.which("gnuplot")
    jobs = [r["job"] for r in rows]
    job = job if job in jobs else (jobs[0] if jobs else job)   # e.g. --jobs echo
    variants = [r["variant"] for r in rows]
    variant = variant if variant in variants else (variants[0] if variants else variant)
    sel = [r for r in rows if r["job"] == job and r["variant"] == variant]
    if not gp or not sel:
        return []
    written = []
    server = sel[0]["server"]
    sel = [r for r in sel if r["server"] == server]
    for metric, fname, ylabel in (("wall_s", "wall.png", "wall time (s)"),
                                  ("cpu_ms_per_host", "cpu_per_host.png",
                                   "client CPU per host (ms, user+sys)")):
        blocks, titles = [], []
        for tool in _tool_order({r["tool"] for r in sel}):
            pts = []
            for (n,), rs in sorted(_groups([r for r in sel if r["tool"] == tool],
                                           ["hosts"]).items()):
                m, lo, hi = _med([r[metric] for r in rs])
                if m is not None:
                    pts.append(f"{n} {m} {lo} {hi}")
            if pts:
                blocks.append("\n".join(pts))
                titles.append(tool)
        if not blocks:
            continue
        data = os.path.join(outdir, fname.replace(".png", ".dat"))
        with open(data, "w") as f:
            f.write("\n\n\n".join(blocks) + "\n")
        ns = sorted({r["hosts"] for r in sel})
        xr = f"[{ns[0] * 0.8}:{ns[-1] * 1.25}]" if len(ns) > 1 else f"[{ns[0] - 50}:{ns[0] + 50}]"
        logy = "set logscale y" if metric == "cpu_ms_per_host" else ""
        plot = ", ".join(f"'{data}' index {i} using 1:2:3:4 with yerrorlines lw 2 pt 7 "
                         f"title '{t}'" for i, t in enumerate(titles))
        script = f"""set terminal pngcairo size 900,560 font 'sans,10'
set output '{os.path.join(outdir, fname)}'
set title "{ylabel} vs hosts — job '{job}', variant {variant}, fanout {sel[0]['fanout']}, server {server}"
set xlabel 'hosts (N)'
set ylabel '{ylabel}'
set grid
set key outside right top
set xrange {xr}
set xtics ({', '.join(str(n) for n in ns)})
{logy}
plot {plot}
"""
        r = subprocess.run([gp], input=script, text=True, capture_output=True, timeout=60)
        if r.returncode == 0:
            written.append(os.path.join(outdir, fname))
        else:
            print(f"bench: gnuplot failed for {fname}: {r.stderr}")
    return written


def _cmd(argv):
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=20)
        return (r.stdout + r.stderr).strip()
    except (OSError, subprocess.SubprocessError) as e:
        return f"({e})"


def machine(path, binaries, extra=()):
    """Write machine.txt; returns a one-line summary."""
    model = ""
    try:
        model = re.search(r"^model name\s*:\s*(.*)$", open("/proc/cpuinfo").read(), re.M)[1]
    except (OSError, TypeError):
        pass
    mem = ""
    try:
        kib = int(re.search(r"MemTotal:\s+(\d+)", open("/proc/meminfo").read())[1])
        mem = f"{kib // 1024} MiB"
    except (OSError, TypeError):
        pass
    lines = [f"date: {time.strftime('%Y-%m-%d %H:%M:%S %z')}",
             f"nproc: {os.cpu_count()}", f"cpu: {model}", f"memory: {mem}",
             f"kernel: {platform.release()} ({platform.version()})",
             f"os: {_cmd(['sh', '-c', '. /etc/os-release; echo $PRETTY_NAME'])}",
             f"loadavg at start: {open('/proc/loadavg').read().strip()}",
             f"openssh: {_cmd(['ssh', '-V'])}"]
    for backend, b in sorted(binaries.items()):
        lines.append(f"sshmux ({backend}): {_cmd([b, 'version']) if b else 'not built'}")
    for tool, argv in (("pdsh", ["pdsh", "-V"]), ("clush", ["clush", "--version"]),
                       ("parallel-ssh", ["parallel-ssh", "--version"]),
                       ("asyncssh", ["/usr/bin/python3", "-W", "ignore", "-c",
                                     "import asyncssh; print(asyncssh.__version__)"]),
                       ("python3", ["/usr/bin/python3", "--version"]),
                       ("gnuplot", ["gnuplot", "--version"])):
        lines.append(f"{tool}: {_cmd(argv).splitlines()[0] if _cmd(argv) else '-'}")
    lines += list(extra)
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return f"{os.cpu_count()} CPUs ({model}), {mem}, Linux {platform.release()}, " \
           f"{_cmd(['ssh', '-V']).split(',')[0]}"
