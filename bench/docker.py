"""`bench/run --docker`: Docker over SSH, `sshmux docker` against the docker CLI's own ssh://
helper, both talking to the same private Docker daemon (tests/lib/dockerd.py) behind one
throwaway OpenSSH sshd on loopback.

One invocation = CALLS `docker version` calls, PARALLEL at a time (default 50 and 10), run by
this file's driver (`docker.py --drive CALLS PARALLEL`, a thread pool of docker CLI processes
that prints how many succeeded). Measured per invocation: wall time, the client CPU of the whole
process tree (driver, docker CLIs, sshmux or the ssh processes; measure.py), the server's CPU
(the sshd and everything it forks, `docker system dial-stdio` included, kept in a cgroup of its
own; dockerd not counted), the SSH handshakes made (sshd's "Accepted publickey" lines) and
failed calls. Tools, interleaved rep by rep:
  sshmux-<backend>              `sshmux docker alias -- DRIVER`: one connection set up, then the
                                calls, each API connection a session channel running
                                `docker system dial-stdio` on the server
  sshmux-<backend>-streamlocal  the same with --streamlocal --remote SOCK (no process on the
                                server per API connection)
  docker-ssh                    DOCKER_HOST=ssh://alias DRIVER: the CLI runs `ssh alias docker
                                system dial-stdio` for every API connection
  direct                        DOCKER_HOST=unix://SOCK DRIVER: no SSH at all (the floor)
Debian 12's docker CLI (20.10) takes no path in an ssh:// URL, so the sshd gives its sessions
DOCKER_HOST=unix://<private socket> (and the CLI's directory first in PATH) with SetEnv; sshmux's
default mode then finds the daemon the same way.
Writes docker.csv (one row per invocation) and docker.md (medians, min-max) to the output dir.
"""
import csv
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
COLUMNS = ["tool", "rep", "calls", "parallel", "wall_s", "calls_per_s", "cpu_s", "cpu_user_s",
           "cpu_sys_s", "server_cpu_s", "handshakes", "ok", "failed", "rc", "timed_out", "notes"]
HANDSHAKE = "Accepted publickey for "


# ------------------------------------------------------------------ the driver (a subprocess)
def drive(calls, parallel):
    """Runs `docker version` calls times, parallel at a time, with this environment's
    DOCKER_HOST and PATH; prints {"ok": n, "failed": n, "error": first error}; exit 0 if all
    succeeded, else 1."""
    def one(_):
        try:
            r = subprocess.run(["docker", "version"], stdin=subprocess.DEVNULL,
                               capture_output=True, text=True, timeout=120)
            return r.returncode, r.stderr.strip()[-300:]
        except subprocess.TimeoutExpired:
            return -1, "timed out after 120 s"
    with ThreadPoolExecutor(parallel) as ex:
        res = list(ex.map(one, range(calls)))
    bad = [e for rc, e in res if rc != 0]
    print(json.dumps({"ok": calls - len(bad), "failed": len(bad),
                      "error": bad[0] if bad else ""}))
    return 0 if not bad else 1


# ------------------------------------------------------------------ the bed
class Bed:
    """Private dockerd (its API socket group = the login user's), one tuned sshd whose sessions
    get DOCKER_HOST and PATH, an ssh_config with alias `dock`, and a bin/ssh wrapper adding
    -F <config> for the docker CLI's helper."""

    def __init__(self, setup):
        import dockerd
        import fixture
        self.fixture = fixture
        why = dockerd.reason()
        if why:
            raise SystemExit(f"bench --docker: {why}")
        if not setup.user:
            raise SystemExit("bench --docker needs root (a throwaway login user)")
        self.setup, self.user = setup, setup.user
        self.docker = dockerd.Dockerd(setup.wd, group=self.user)
        self.cli = self.docker.cli
        clidir = os.path.dirname(self.cli)
        self.sshd = fixture.Sshd(setup.wd, setup.keys, extra_config=(
            f"SetEnv PATH={clidir}:/usr/bin:/bin DOCKER_HOST={self.docker.host}\n"))
        d = setup.wd.mkdir("docker-bench")
        kh = self.sshd.write_known_hosts(os.path.join(d, "known_hosts"))
        self.cfg = fixture.write_ssh_config(
            os.path.join(d, "ssh_config"), ["dock"], sshd=self.sshd, user=self.user,
            identity=setup.keys.ed25519, known_hosts=kh,
            extra={"GlobalKnownHostsFile": "/dev/null", "BatchMode": "yes"})
        bindir = os.path.join(d, "bin")
        os.makedirs(bindir, exist_ok=True)
        wrapper = os.path.join(bindir, "ssh")
        with open(wrapper, "w") as f:
            f.write(f'#!/bin/sh\nexec /usr/bin/ssh -F {self.cfg} "$@"\n')
        os.chmod(wrapper, 0o755)
        self.env = dict(setup.env, PATH=f"{bindir}:{clidir}:{setup.env['PATH']}")

    def handshakes(self):
        return self.sshd.log_text().count(HANDSHAKE)

    def watch_server(self, cgroups):
        """Moves the sshd into a cgroup of its own (cgroup v2 only): every process it forks
        for a connection or session is then counted by server_cpu()."""
        self.srv = cgroups.new() if cgroups and cgroups.v2 else None
        if self.srv:
            with open(os.path.join(self.srv.v2, "cgroup.procs"), "w") as f:
                f.write(str(self.sshd.proc.pid))

    def server_cpu(self):
        """user+sys seconds of the sshd's cgroup so far, or None."""
        cpu = self.srv.cpu() if self.srv else None
        return sum(cpu) if cpu else None

    def settle(self, timeout=15):
        """Wait until the sshd has no session processes left from the previous invocation."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.sshd.proc and \
                self.fixture.descendants(self.sshd.proc.pid):
            time.sleep(0.1)
        time.sleep(0.3)


def tool_argvs(bed, binaries, driver):
    """{tool name: (argv, extra env)} of what is available."""
    out = {}
    for backend in ("openssl", "mbedtls"):
        b = binaries.get(backend)
        if not b:
            continue
        out[f"sshmux-{backend}"] = ([b, "docker", "-F", bed.cfg, "dock", "--"] + driver, {})
        out[f"sshmux-{backend}-streamlocal"] = (
            [b, "docker", "-F", bed.cfg, "--streamlocal", "--remote", bed.docker.socket, "dock",
             "--"] + driver, {})
    out["docker-ssh"] = (driver, {"DOCKER_HOST": "ssh://dock"})
    out["direct"] = (driver, {"DOCKER_HOST": bed.docker.host})
    return out


def has_docker_command(binary):
    r = subprocess.run([binary, "docker", "--help"], capture_output=True, text=True, timeout=30)
    return r.returncode == 0 and "docker" in r.stdout + r.stderr


def one(bed, name, argv, env_extra, calls, parallel, cgroups, scratch, timeout, rep, log):
    import measure
    bed.settle()
    before, srv0 = bed.handshakes(), bed.server_cpu()
    env = dict(bed.env, **env_extra)
    res = measure.run(argv, env, timeout, cgroups, scratch, f"docker-{name}-{rep}")
    for p in (res.stdout_path, res.stderr_path):
        os.unlink(p)
    hs = bed.handshakes() - before
    bed.settle()   # sessions still ending are the invocation's server cost
    srv = bed.server_cpu() - srv0 if srv0 is not None else None
    out = {}
    for line in res.stdout.splitlines():
        if line.startswith("{"):
            try:
                out = json.loads(line)
            except ValueError:
                pass
    ok = out.get("ok", 0)
    notes = out.get("error", "") or ("" if out else f"no driver result; stderr: "
                                     f"{res.stderr.strip()[-300:]}")
    if res.rc not in (0, 1) and not res.timed_out:
        notes = f"exit {res.rc}; {notes}; stderr: {res.stderr.strip()[-200:]}"
    row = dict(tool=name, rep=rep, calls=calls, parallel=parallel, wall_s=res.wall_s,
               calls_per_s=calls / res.wall_s if res.wall_s else None, cpu_s=res.cpu_s,
               cpu_user_s=res.cpu_user_s, cpu_sys_s=res.cpu_sys_s, server_cpu_s=srv,
               handshakes=hs if name != "direct" else 0, ok=ok, failed=calls - ok, rc=res.rc,
               timed_out=int(res.timed_out), notes=" ".join(notes.split())[:300])
    log(f"docker {name:28} rep {rep}: wall {res.wall_s:6.2f} s  cpu {res.cpu_s:6.2f} s  "
        f"server cpu {srv if srv is not None else float('nan'):5.2f} s  "
        f"handshakes {hs:3}  ok {ok}/{calls}" + (f"  [{row['notes'][:120]}]" if notes else ""))
    return row


# ------------------------------------------------------------------ report
def _med(rows, key):
    v = [r[key] for r in rows if r.get(key) is not None]
    return statistics.median(v) if v else None


def _spread(rows, key, fmt):
    v = [r[key] for r in rows if r.get(key) is not None]
    if not v:
        return "-"
    m, lo, hi = statistics.median(v), min(v), max(v)
    return fmt.format(m) if lo == hi else f"{fmt.format(m)} ({fmt.format(lo)}–{fmt.format(hi)})"


def markdown(rows, meta):
    tools = list(dict.fromkeys(r["tool"] for r in rows))
    ref = [r for r in rows if r["tool"] == "docker-ssh"]
    L = [f"# Docker over SSH benchmark — {meta['date']}", "",
         f"Machine: {meta['summary']}. Command: `{meta['command']}`. Repetitions: {meta['reps']},"
         " interleaved (each repetition runs every tool once, in turn); medians (min–max).", "",
         f"Each invocation: {meta['calls']} `docker version` calls, {meta['parallel']} at a "
         f"time, against one private dockerd ({meta['daemon']}) behind one OpenSSH sshd on "
         f"loopback (MaxSessions 100), docker CLI {meta['cli']}. Wall time and client CPU "
         "(user+sys of the whole process tree: driver, docker CLIs, sshmux or ssh; "
         f"{meta['cpu_method']}) per invocation; server CPU = the sshd and all it forked "
         "(sessions, the remote `docker system dial-stdio`s; not dockerd); handshakes = sshd's "
         "accepted logins during it. sshmux's rows include its own connection setup (`sshmux docker alias -- "
         "DRIVER`). sshd and dockerd share the 2 cores with the client: compare the rows, "
         f"not the absolute numbers. Load average at the start: {meta.get('load', '?')}.", ""]
    L += [f"- {n}" for n in meta.get("notes", [])] + ([""] if meta.get("notes") else [])
    L += ["| tool | wall s | calls/s | client CPU s | server CPU s | handshakes | failed calls |"
          " wall vs docker-ssh | handshakes vs docker-ssh |", "|---|---|---|---|---|---|---|---|---|"]
    ref_wall, ref_hs = _med(ref, "wall_s"), _med(ref, "handshakes")
    for t in tools:
        sel = [r for r in rows if r["tool"] == t]
        failed = sum(r["failed"] for r in sel)
        timed = sum(r["timed_out"] for r in sel)
        w, h = _med(sel, "wall_s"), _med(sel, "handshakes")
        L.append(f"| {t} | {_spread(sel, 'wall_s', '{:.2f}')} | "
                 f"{_spread(sel, 'calls_per_s', '{:.1f}')} | {_spread(sel, 'cpu_s', '{:.2f}')} | "
                 f"{_spread(sel, 'server_cpu_s', '{:.2f}')} | "
                 f"{_spread(sel, 'handshakes', '{:.0f}')} | "
                 f"{failed}/{sum(r['calls'] for r in sel)}"
                 + (f" (**{timed} timed out**)" if timed else "") + " | "
                 + (f"{w / ref_wall:.2f}x" if w and ref_wall and t != "docker-ssh" else "-")
                 + " | " + (f"{h / ref_hs:.3f}x" if h is not None and ref_hs and t not in
                            ("docker-ssh", "direct") else "-") + " |")
    errs = sorted({(r["tool"], r["notes"]) for r in rows if r["notes"]})
    if errs:
        L += ["", "Errors seen (tool: first error of an invocation):", ""] + \
            [f"- {t}: {n}" for t, n in errs]
    return "\n".join(L) + "\n"


def write(outdir, rows, meta):
    with open(os.path.join(outdir, "docker-meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
    with open(os.path.join(outdir, "docker.md"), "w") as f:
        f.write(markdown(rows, meta))


def load(csv_path):
    rows = []
    with open(csv_path, newline="") as f:
        for r in csv.DictReader(f):
            for k, v in r.items():
                if k in ("tool", "notes"):
                    continue
                r[k] = None if v == "" else float(v) if "." in v else int(v)
            rows.append(r)
    return rows


# ------------------------------------------------------------------ entry point (bench/run)
def run(args, setup, binaries, cgroups, log, summary):
    bed = Bed(setup)
    bed.watch_server(cgroups)
    load = open("/proc/loadavg").read().split()[:3]
    notes = [] if bed.srv else ["server CPU not measured (needs a writable cgroup v2)"]
    usable = {}
    for backend, b in binaries.items():
        if b and has_docker_command(b):
            usable[backend] = b
        elif b:
            notes.append(f"sshmux-{backend}: no `docker` command in this build, skipped")
    driver = ["/usr/bin/python3", os.path.join(HERE, "docker.py"), "--drive",
              str(args.docker_calls), str(args.docker_parallel)]
    tools = tool_argvs(bed, usable, driver)
    scratch = setup.wd.mkdir("runs")
    csv_path = os.path.join(args.outdir, "docker.csv")
    with open(csv_path, "w", newline="") as f:
        csv.writer(f).writerow(COLUMNS)
    client, server = bed.docker.version()
    log(f"docker: dockerd {server}, CLI {client} ({bed.cli}), sshd port {bed.sshd.port}, "
        f"user {bed.user}; tools {list(tools)}")
    rows = []
    timeout = max(args.timeout, 120)
    try:
        for rep in range(1, args.reps + 1):
            for name, (argv, env_extra) in tools.items():
                row = one(bed, name, argv, env_extra, args.docker_calls, args.docker_parallel,
                          cgroups, scratch, timeout, rep, log)
                rows.append(row)
                with open(csv_path, "a", newline="") as f:
                    csv.writer(f).writerow([f"{row[c]:.4f}" if isinstance(row[c], float)
                                            else row[c] for c in COLUMNS])
    except KeyboardInterrupt:
        log("docker: interrupted; writing what was measured")
        notes.append("interrupted (Ctrl-C): partial results")
    finally:
        meta = dict(date=time.strftime("%Y-%m-%d %H:%M"), summary=summary, reps=args.reps,
                    command="bench/run " + " ".join(map(shlex.quote, sys.argv[1:])),
                    calls=args.docker_calls, parallel=args.docker_parallel,
                    daemon=f"docker.io {server}, vfs, no networking",
                    cli=f"{client} ({bed.cli})", cpu_method=cgroups.describe()[0], notes=notes,
                    load=" ".join(load))
        write(args.outdir, rows, meta)
        log(f"docker: wrote {csv_path} and docker.md")
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--drive":
        sys.exit(drive(int(sys.argv[2]), int(sys.argv[3])))
    if len(sys.argv) == 2 and sys.argv[1].endswith(".csv"):   # rewrite docker.md from the CSV
        d = os.path.dirname(os.path.abspath(sys.argv[1]))
        with open(os.path.join(d, "docker-meta.json")) as f:
            write(d, load(sys.argv[1]), json.load(f))
        sys.exit(0)
    sys.exit(__doc__)
