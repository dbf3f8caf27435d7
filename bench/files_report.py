"""files.md for `bench/run --files`: medians (min-max) over the repetitions and ratios against
the peers measured in the same run. A tool any of whose copies was wrong or missing in a
repetition is marked FAILED and gets no ratios: a wrong copy is not a fast one."""
import csv
import json
import os
import statistics
import sys

PEERS_SINGLE = ("sftp", "scp")
BASE_FLEET = "sshmux-openssl"


def _vals(rows, key):
    return [r[key] for r in rows if r.get(key) is not None]


def _med(rows, key):
    v = _vals(rows, key)
    return statistics.median(v) if v else None


def _spread(rows, key, fmt):
    v = _vals(rows, key)
    if not v:
        return "-"
    m, lo, hi = statistics.median(v), min(v), max(v)
    return fmt.format(m) if len(v) == 1 or lo == hi else \
        f"{fmt.format(m)} ({fmt.format(lo)}–{fmt.format(hi)})"


def _ratio(a, b):
    return f"{a / b:.2f}x" if a is not None and b else "-"


def _failed(rows):
    return any(r["failed"] or r["timed_out"] for r in rows)


def _okcol(rows):
    ok, tot = sum(r["ok"] for r in rows), sum(r["ok"] + r["failed"] for r in rows)
    if any(r["timed_out"] for r in rows):
        return f"**TIMED OUT** ({sum(r['timed_out'] for r in rows)}x), {ok}/{tot}"
    return f"{ok}/{tot}" if not _failed(rows) else f"**FAILED** {ok}/{tot}"


def _at_least(sel, base, key):
    """A timed-out tool's ratio is a lower bound: its wall (or CPU) ÷ the base's, '≥'."""
    if not base or _failed(base) or any(r["failed"] and not r["timed_out"] for r in sel):
        return "-"
    return "≥ " + _ratio(min(_vals(sel, key)), _med(base, key))


def _sel(rows, **kw):
    return [r for r in rows if all(r.get(k) == v for k, v in kw.items())]


def single_section(rows, ciphers, tools):
    L = ["## One 1 GiB file, one host", "",
         "`sshmux upload h0001 FILE DIR/` / `sshmux download h0001 DIR/FILE LOCALDIR` against "
         "`sftp -b -` (`put` / `get`) and `scp` (OpenSSH 9.2: the SFTP protocol). MB/s = 1e6 "
         "bytes per second of the whole invocation's wall time (connection setup included); CPU "
         "= user+sys of the client's whole process tree (ssh included) per GiB. Ratios: this "
         "tool ÷ sftp / ÷ scp, medians of the same run (MB/s: higher is faster; CPU: lower is "
         "cheaper). Peak RSS: the largest process of the client's tree (wait4's ru_maxrss).",
         "",
         "| cipher | direction | tool | MB/s | CPU s/GiB | peak RSS MiB | ok | MB/s ÷ sftp "
         "| CPU ÷ sftp | MB/s ÷ scp | CPU ÷ scp |",
         "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for cipher in ciphers:
        for direction in ("upload", "download"):
            peers = {p: _sel(rows, cipher=cipher, direction=direction, tool=p)
                     for p in PEERS_SINGLE}
            for tool in tools:
                sel = _sel(rows, cipher=cipher, direction=direction, tool=tool)
                if not sel:
                    continue
                cells = []
                for p in PEERS_SINGLE:
                    good = peers[p] and not _failed(peers[p]) and not _failed(sel)
                    cells += [_ratio(_med(sel, "mb_per_s"), _med(peers[p], "mb_per_s")),
                              _ratio(_med(sel, "cpu_s_per_gib"), _med(peers[p], "cpu_s_per_gib"))
                              ] if good and p != tool else ["-", "-"]
                L.append(f"| {cipher} | {direction} | {tool} | "
                         f"{_spread(sel, 'mb_per_s', '{:.0f}')} | "
                         f"{_spread(sel, 'cpu_s_per_gib', '{:.2f}')} | "
                         f"{_spread(sel, 'maxrss_mib', '{:.0f}')} | {_okcol(sel)} | "
                         + " | ".join(cells) + " |")
    return L


def fleet_section(rows, tools, labels):
    n = max((r["hosts"] for r in rows), default=0)
    size = rows[0]["bytes"] // n if rows and n else 0
    L = [f"## {size / 2**20:.0f} MiB to {n} hosts and back", "",
         "Upload: every host gets the same file; download: each host has its own file (its name "
         "first, so a mix-up fails). Every copy is checked by sha256. Wall time and the client's "
         "whole process tree's CPU (every ssh/scp it forks included); the largest single process's "
         "peak RSS (wait4's ru_maxrss). Ratios: this tool ÷ "
         f"{BASE_FLEET} (medians, same run). A tool the harness had to stop (timeout) gets "
         "lower bounds (≥).", "",
         "| direction | tool | wall s | client CPU s | CPU ms/host | largest process MiB "
         "| ok copies | wall ÷ sshmux | CPU ÷ sshmux |",
         "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    heads = []
    for direction in ("upload", "download"):
        base = _sel(rows, direction=direction, tool=BASE_FLEET)
        base_ok = base and not _failed(base)
        for tool in tools:
            sel = _sel(rows, direction=direction, tool=tool)
            if not sel:
                continue
            good = base_ok and not _failed(sel) and tool != BASE_FLEET
            w = _ratio(_med(sel, "wall_s"), _med(base, "wall_s")) if good else "-"
            c = _ratio(_med(sel, "cpu_s"), _med(base, "cpu_s")) if good else "-"
            if any(r["timed_out"] for r in sel):
                w, c = _at_least(sel, base, "wall_s"), _at_least(sel, base, "cpu_s")
                heads.append(f"- {direction}: {labels.get(tool, tool)} did not finish within "
                             f"its {max(_vals(sel, 'wall_s')):.0f} s: {w} the wall time, {c} "
                             f"the client CPU of {BASE_FLEET} (lower bounds)")
            L.append(f"| {direction} | {labels.get(tool, tool)} | "
                     f"{_spread(sel, 'wall_s', '{:.2f}')} | {_spread(sel, 'cpu_s', '{:.2f}')} | "
                     f"{_spread(sel, 'cpu_ms_per_host', '{:.1f}')} | "
                     f"{_spread(sel, 'maxrss_mib', '{:.0f}')} | {_okcol(sel)} | {w} | {c} |")
            if good:
                heads.append(f"- {direction}: {labels.get(tool, tool)} takes {w} the wall time "
                             f"and {c} the client CPU of {BASE_FLEET}")
    return L + ([""] + heads if heads else [])


def memory_section(rows, bounds):
    if not rows:
        return []
    L = ["## sshmux's memory while uploading a 1 GiB file to many hosts", "",
         "`sshmux upload --no-atomic -f N -w HOSTS FILE /dev/null` (the remote copies go to "
         "/dev/null: N GiB of them would not fit), stopped after a bounded time if not done; "
         "VmRSS and its parts sampled every 100 ms, VmHWM read at the end, sftp-server processes "
         "of the fleet's users counted (= hosts transferring at once). MB/s: the bytes those "
         "sftp-servers read from their sshd (their rchar), all hosts, per second of the run.",
         "",
         "| hosts | peak VmRSS KiB | of it anon / file KiB | VmHWM KiB | hosts at once | "
         "seconds | MB/s received by the sftp-servers (all hosts) | ok hosts | notes |",
         "|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        L.append(f"| {r['hosts']} | {r['peak_rss_kib']} | {r['rss_anon_kib']} / "
                 f"{r['rss_file_kib']} | {r['hwm_kib']} | {r['concurrent']} | "
                 f"{r['wall_s']:.1f} | {r['mb_per_s'] or 0:.0f} | {r['ok']} | {r['notes']} |")
    one = [r for r in rows if r["hosts"] == 1]
    big = [r for r in rows if r["hosts"] > 1]
    if one and big and one[0]["peak_rss_kib"] and big[0]["peak_rss_kib"]:
        b, o = big[0], one[0]
        per = (b["peak_rss_kib"] - o["peak_rss_kib"]) / (b["hosts"] - 1)
        L += ["", f"**Per host: {per:.0f} KiB** = (peak VmRSS with {b['hosts']} hosts − with 1) "
              f"/ {b['hosts'] - 1}."]
        blk, budget = (bounds or {}).get("sshmux") or (None, None)
        if blk and budget:
            L.append(f"The bound sshmux's sources state (core/apps/filesrc.h): the file's blocks "
                     f"are read once for all hosts into a shared cache of {budget >> 20} MiB "
                     f"(blocks no host holds) + at most 2 blocks of {blk >> 10} KiB held per "
                     f"uploading host = {2 * blk >> 10} KiB of file data per host; the rest of "
                     "a host's share is its session (libssh buffers up to the channel window, "
                     "the SFTP client, the per-host job). The 1-host run shows the cache's "
                     "fixed cost.")
        srv = (bounds or {}).get("server")
        if srv:
            L.append(f"Server's limits@ max write length (as OpenSSH's sftp reads it): {srv} B "
                     "per WRITE (sshmux's default --block-size).")
    return L
    return L


def notes_section(rows):
    seen = {}
    for r in rows:
        if r["part"] == "memory":   # its notes are in its table
            continue
        for part in (r.get("notes") or "").split("; "):
            if part and not part.startswith("sshmux's own"):
                key = (r["part"], r["tool"], r["direction"], part.rsplit(" x", 1)[0])
                seen[key] = seen.get(key, 0) + 1
    if not seen:
        return []
    return ["## Messages and problems seen (per part, tool, direction; count of invocations)", ""] \
        + [f"- {p} / {t} / {d}: {msg} ({n}x)" for (p, t, d, msg), n in sorted(seen.items())]


def markdown(rows, meta):
    single_tools, fleet_tools = meta["single_tools"], meta["fleet_tools"]
    labels, ciphers, bounds = meta["labels"], meta["ciphers"], meta["bounds"]
    L = [f"# File transfer benchmark — {meta['date']}", "",
         f"Machine: {meta['summary']}. Command: `{meta['command']}`. Repetitions: "
         f"{meta['reps']}, interleaved (each repetition runs every tool once, in turn).", "",
         f"Files: {meta['fs']}: sources, remote copies and downloads in one directory tree on "
         "that filesystem, removed after each transfer. Key exchange curve25519-sha256 for "
         f"everyone; CPU by {meta['cpu_method']}. The sshd (and its sftp-servers) shares the 2 "
         "cores with the client: the ratios matter, not the absolute numbers.", ""]
    L += [f"- {n}" for n in meta.get("notes", [])]
    if meta.get("notes"):
        L.append("")
    parts = [single_section(_sel(rows, part="single"), ciphers, single_tools),
             fleet_section(_sel(rows, part="fleet"), fleet_tools, labels),
             memory_section(_sel(rows, part="memory"), bounds), notes_section(rows)]
    for p, has in zip(parts, ("single", "fleet", "memory", None)):
        if p and (has is None or _sel(rows, part=has)):
            L += p + [""]
    return "\n".join(L)


def write(outdir, rows, meta):
    """files.md, and files-meta.json so that `files_report.py CSV` can rewrite it later."""
    with open(os.path.join(outdir, "files-meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
    with open(os.path.join(outdir, "files.md"), "w") as f:
        f.write(markdown(rows, meta))


def load(csv_path):
    ints = {"hosts", "fanout", "rep", "bytes", "ok", "failed", "timed_out", "peak_rss_kib",
            "hwm_kib", "rss_anon_kib", "rss_file_kib", "concurrent"}
    rows = []
    with open(csv_path, newline="") as f:
        for r in csv.DictReader(f):
            for k, v in r.items():
                if v == "" and k != "notes":
                    r[k] = None
                elif k in ints:
                    r[k] = int(v)
                elif k.endswith(("_s", "_mib", "_per_s", "_gib", "_host")) or k == "rc":
                    r[k] = float(v)
            rows.append(r)
    return rows


if __name__ == "__main__":   # files_report.py bench/results/files.csv: rewrite files.md
    path = os.path.abspath(sys.argv[1])
    d = os.path.dirname(path)
    with open(os.path.join(d, "files-meta.json")) as f:
        write(d, load(path), json.load(f))
