"""`bench/run --requests` and `bench/run --expect`: sshmux's NetPulse-shaped front ends against
the ways Python tools do the same, on throwaway OpenSSH sshds on loopback.

--requests: 200 JSON requests (--requests-count) in the shape of NetPulse's paramiko driver
  ({"connection_args": {host, port, username, key_filename, host_key_policy, ...}, "command":
  ["uname -a", "echo $RANDOM"]}), spread round-robin over 20 targets: one sshd listening on
  127.0.0.1-127.0.0.20 (two sshds of 10 addresses each: an sshd has at most 16 listening
  sockets), so 20 distinct connection_args. Tools, interleaved rep by rep:
    sshmux-<backend>       `sshmux request REQFILE`: requests with equal connection_args share
                           one connection (20 handshakes), run in line order on it
    sshmux-<backend>-p4    the same with --parallel 4 (up to 4 requests' channels at once)
    asyncssh               bench/asyncssh_requests.py: a connection per request, its commands one
                           exec channel each, 20 requests at a time (the paramiko driver's way)
    ssh-xargs              xargs -P 20 runs `ssh ... 'uname -a && echo $RANDOM'` per request
                           (a connection per request, the commands joined)
    ssh-xargs-samekex      the same with -o KexAlgorithms=curve25519-sha256 (ssh's default,
                           sntrup761x25519, costs more CPU than what the others negotiate)
  Each request's output is checked: `uname -a` must print this machine's `uname -a` (the sshd is
  local) and both commands must succeed; a request that does not is a failure.
--expect: 50 (--expect-hosts) aliases of one sshd, the throwaway user's login shell (dash) with
  PS1 "sm> " from its ~/.profile, 3 steps: `uname -n`, `echo $((6*7))` expecting ^42$, `ls /`.
    sshmux-<backend>       `sshmux expect -w h[0001-0050] --json STEPS` (prompt found as
                           netmiko's find_prompt, no regex given)
    asyncssh               bench/asyncssh_expect.py: PTY shells, 50 at once, the prompt regex
  Each host's step outputs are checked against the truth (`uname -n` of this machine, 42, the
  entries of /) and the tools' outputs against each other.
Measured per invocation: wall time, client CPU of the whole process tree (measure.py), peak
memory, SSH handshakes (the sshd's "Accepted publickey" lines), failures. Writes requests.csv /
expect.csv and .md (medians, min-max, ratios against sshmux measured in the same run) and
machine-requests.txt / machine-expect.txt.
"""
import json
import os
import platform
import re
import shlex
import subprocess
import sys
import time

import docker   # the report helpers (_med, _spread) and Bed-like sshd bookkeeping
import fixture
import measure
import report

HERE = os.path.dirname(os.path.abspath(__file__))
PY = "/usr/bin/python3"
HANDSHAKE = "Accepted publickey for "
TARGETS = 20
COMMANDS = ["uname -a", "echo $RANDOM"]
PROMPT = "sm> "
KEX = "curve25519-sha256"   # sshmux's and AsyncSSH's pick here; ssh's is sntrup761x25519
STEPS = [("uname -n", None), ("echo $((6*7))", "^42$"), ("ls /", None)]
COLUMNS = ["tool", "rep", "items", "wall_s", "cpu_s", "cpu_user_s", "cpu_sys_s", "peak_mib",
           "handshakes", "ok", "failed", "rc", "timed_out", "notes"]


# ------------------------------------------------------------------ shared
def handshakes(sshds):
    return sum(s.log_text().count(HANDSHAKE) for s in sshds)


def settle(sshds, timeout=15):
    """Wait until the sshds have no session processes left from the previous invocation."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(s.proc and fixture.descendants(s.proc.pid)
                                              for s in sshds):
        time.sleep(0.1)
    time.sleep(0.3)


def measure_one(name, argv, env, sshds, check, items, cgroups, scratch, timeout, rep, log,
                kind):
    """One invocation: settle, run under measure.run, count handshakes, check() the output
    (-> ok count, notes)."""
    settle(sshds)
    before = handshakes(sshds)
    res = measure.run(argv, env, timeout, cgroups, scratch, f"{kind}-{name}-{rep}")
    settle(sshds)   # the log lines of connections still closing
    hs = handshakes(sshds) - before
    ok, notes = check(res)
    for p in (res.stdout_path, res.stderr_path):
        os.unlink(p)
    if res.timed_out:
        notes.insert(0, f"timed out after {timeout:.0f} s")
    if res.rc not in (0,) and not res.timed_out and ok == items:
        notes.append(f"exit {res.rc} though every item checked out")
    row = dict(tool=name, rep=rep, items=items, wall_s=res.wall_s, cpu_s=res.cpu_s,
               cpu_user_s=res.cpu_user_s, cpu_sys_s=res.cpu_sys_s, peak_mib=res.peak_mib,
               handshakes=hs, ok=ok, failed=items - ok, rc=res.rc,
               timed_out=int(res.timed_out), notes=" | ".join(notes)[:400])
    log(f"{kind} {name:22} rep {rep}: wall {res.wall_s:6.2f} s  cpu {res.cpu_s:6.2f} s  "
        f"handshakes {hs:4}  ok {ok}/{items}" + (f"  [{row['notes'][:160]}]" if notes else ""))
    return row


def json_rows(text):
    """The JSON objects of a tool's output lines (other lines skipped)."""
    for line in text.splitlines():
        try:
            yield json.loads(line)
        except ValueError:
            continue


def write_csv(path, rows):
    with open(path, "w") as f:
        f.write(",".join(COLUMNS) + "\n")
        for r in rows:
            f.write(",".join(report._fmt(r.get(c)) if c != "notes" else
                             '"' + str(r[c]).replace('"', "'") + '"' for c in COLUMNS) + "\n")


def markdown(title, rows, meta, ref):
    """Medians (min-max) per tool and ratios against `ref` (sshmux) in the same run."""
    tools = list(dict.fromkeys(r["tool"] for r in rows))
    L = [f"# {title} — {meta['date']}", "",
         f"Machine: {meta['summary']}. Command: `{meta['command']}`. Repetitions: "
         f"{meta['reps']}, interleaved (each repetition runs every tool once, in turn); medians "
         "(min–max). Client CPU = user+sys of the tool's whole process tree "
         f"({meta['cpu_method']}); handshakes = the sshd's accepted logins during the "
         "invocation. The sshd shares the 2 cores with the client: compare the rows, not the "
         f"absolute numbers. Load average at the start: {meta['load']}.", "", meta["what"], ""]
    L += [f"- {n}" for n in meta.get("notes", [])] + ([""] if meta.get("notes") else [])
    L += [f"| tool | wall s | client CPU s | peak MiB | handshakes | failed | wall vs {ref} | "
          f"CPU vs {ref} |", "|---|---|---|---|---|---|---|---|"]
    sel_ref = [r for r in rows if r["tool"] == ref]
    rw, rc = docker._med(sel_ref, "wall_s"), docker._med(sel_ref, "cpu_s")
    for t in tools:
        sel = [r for r in rows if r["tool"] == t]
        w, c = docker._med(sel, "wall_s"), docker._med(sel, "cpu_s")
        failed = sum(r["failed"] for r in sel)
        timed = sum(r["timed_out"] for r in sel)
        L.append(f"| {t} | {docker._spread(sel, 'wall_s', '{:.2f}')} | "
                 f"{docker._spread(sel, 'cpu_s', '{:.2f}')} | "
                 f"{docker._spread(sel, 'peak_mib', '{:.0f}')} | "
                 f"{docker._spread(sel, 'handshakes', '{:.0f}')} | "
                 f"{failed}/{sum(r['items'] for r in sel)}"
                 + (f" (**{timed} timed out**)" if timed else "") + " | "
                 + (f"{w / rw:.2f}x" if w and rw else "-") + " | "
                 + (f"{c / rc:.2f}x" if c and rc else "-") + " |")
    errs = sorted({(r["tool"], r["notes"]) for r in rows if r["notes"]})
    if errs:
        L += ["", "Notes (tool: failures its output checks found; the key exchange sshmux negotiated):", ""] + \
            [f"- {t}: {n}" for t, n in errs]
    return "\n".join(L) + "\n"


def finish(args, kind, title, rows, meta, ref, log):
    path = os.path.join(args.outdir, f"{kind}.csv")
    write_csv(path, rows)
    with open(os.path.join(args.outdir, f"{kind}.md"), "w") as f:
        f.write(markdown(title, rows, meta, ref))
    log(f"{kind}: wrote {path} and {kind}.md")


def base_meta(args, summary, cgroups, what, notes):
    return dict(date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), summary=summary,
                reps=args.reps, command="bench/run " + " ".join(map(shlex.quote, sys.argv[1:])),
                cpu_method=cgroups.describe()[0], what=what, notes=notes,
                load=" ".join(open("/proc/loadavg").read().split()[:3]))


def loop(args, tools, one, log):
    """Every tool once per rep, in turn; Ctrl-C keeps what was measured."""
    rows, notes = [], []
    try:
        for rep in range(1, args.reps + 1):
            for name in tools:
                rows.append(one(name, rep))
    except KeyboardInterrupt:
        log("interrupted; writing what was measured")
        notes.append("interrupted (Ctrl-C): partial results")
    return rows, notes


# ------------------------------------------------------------------ --requests
def request_lines(n, targets, user, key):
    """n JSON requests, round-robin over targets [(address, port)]."""
    out = []
    for i in range(n):
        addr, port = targets[i % len(targets)]
        ca = {"host": addr, "port": port, "username": user,
              "key_filename": key, "host_key_policy": "auto_add", "look_for_keys": False,
              "allow_agent": False, "timeout": 30}
        out.append(json.dumps({"connection_args": ca, "command": COMMANDS, "driver": "paramiko",
                               "id": f"r{i + 1:03d}"}))
    return out


def check_results(res, n, uname):
    """sshmux request's / asyncssh_requests.py's JSON lines: every id once, ok, the first
    command printed `uname -a`, both exited 0."""
    seen = {r.get("id"): r for r in json_rows(res.stdout)}
    bad = []
    for i in range(1, n + 1):
        r = seen.get(f"r{i:03d}")
        why = ("no result" if r is None else
               f"not ok: {r.get('error')}" if not r.get("ok") else
               "not 2 results" if len(r.get("results") or []) != 2 else
               f"uname -a printed {r['results'][0].get('output')!r}"
               if r["results"][0].get("output") != uname + "\n" else
               "a command exited non-zero" if any(x.get("exit_status") != 0
                                                  for x in r["results"]) else None)
        if why:
            bad.append(f"r{i:03d}: {why}")
    notes = [f"{len(bad)} failed, first: {bad[0]}"] if bad else []
    kex = sorted({r["kex"] for r in seen.values() if r.get("kex")})
    if kex:   # sshmux's results name it; asyncssh_requests.py's do not
        notes.append(f"kex {', '.join(kex)}")
    if not seen:
        notes.append(f"stderr: {res.stderr.strip()[-200:]}")
    return n - len(bad), notes


def check_files(outdir, n, uname):
    """ssh-xargs: out/rNNN holds what ssh printed (stdout+stderr): `uname -a`'s line, then
    `echo $RANDOM`'s (empty under dash: it has no $RANDOM)."""
    bad = []
    for i in range(1, n + 1):
        try:
            with open(os.path.join(outdir, f"r{i:03d}")) as f:
                lines = f.read().split("\n")
        except OSError:
            lines = None
        if lines is None or len(lines) != 3 or lines[0] != uname or lines[2] != "":
            bad.append(f"r{i:03d}: {lines!r}"[:200])
    return n - len(bad), ([f"{len(bad)} failed, first: {bad[0]}"] if bad else [])


def run_requests(args, setup, binaries, cgroups, log, summary):
    # An sshd listens on 16 sockets at most (MAX_LISTEN_SOCKS): two sshds, 10 addresses each.
    addrs = [f"127.0.0.{i}" for i in range(1, TARGETS + 1)]
    half = TARGETS // 2
    sshds = [fixture.Sshd(setup.wd, setup.keys, host=group[0], extra_config="".join(
        f"ListenAddress {a}\n" for a in group[1:])) for group in (addrs[:half], addrs[half:])]
    targets = [(a, sshds[0 if i < half else 1].port) for i, a in enumerate(addrs)]
    user = setup.user or sshds[0].user
    d = setup.wd.mkdir("requests-bench")
    kh = os.path.join(d, "known_hosts")
    sshds[0].write_known_hosts(kh, hosts=addrs[:half])
    sshds[1].write_known_hosts(kh, hosts=addrs[half:], append=True)
    cfg = os.path.join(d, "ssh_config")
    with open(cfg, "w") as f:
        f.write(f"Host *\n    UserKnownHostsFile {kh}\n    GlobalKnownHostsFile /dev/null\n"
                "    BatchMode yes\n")
    key = setup.keys.ed25519
    n = args.requests_count
    reqfile = os.path.join(d, "requests.jsonl")
    with open(reqfile, "w") as f:
        f.write("".join(l + "\n" for l in request_lines(n, targets, user, key)))
    # ssh-xargs: one line per request: its output file, then ssh's arguments.
    joined = " && ".join(COMMANDS)
    xfile, xout = os.path.join(d, "xargs.txt"), os.path.join(d, "xargs-out")
    with open(xfile, "w") as f:
        for i in range(n):
            f.write(" ".join(shlex.quote(a) for a in [
                os.path.join(xout, f"r{i + 1:03d}"), "-F", cfg, "-i", key, "-o",
                "IdentitiesOnly=yes", "-o", "IdentityAgent=none", "-o",
                "StrictHostKeyChecking=accept-new", "-p", str(targets[i % TARGETS][1]),
                "-l", user, targets[i % TARGETS][0], joined]) + "\n")
    uname = subprocess.run(["uname", "-a"], capture_output=True, text=True,
                           timeout=10).stdout.strip()
    tools = {}
    for backend, b in binaries.items():
        if b:
            tools[f"sshmux-{backend}"] = [b, "request", "-F", cfg, reqfile]
            tools[f"sshmux-{backend}-p4"] = [b, "request", "-F", cfg, "--parallel", "4",
                                             reqfile]
    tools["asyncssh"] = [PY, os.path.join(HERE, "asyncssh_requests.py"), "--known-hosts", kh,
                         "-f", str(TARGETS), reqfile]
    for name, opts in (("ssh-xargs", ""), ("ssh-xargs-samekex", f" -o KexAlgorithms={KEX}")):
        tools[name] = ["xargs", "-P", str(TARGETS), "-L", "1", "-a", xfile, "sh", "-c",
                       f'exec ssh{opts} "$@" >"$0" 2>&1']
    scratch = setup.wd.mkdir("runs")
    log(f"requests: {n} requests over {TARGETS} targets ({addrs[0]}-{addrs[half - 1]}:"
        f"{sshds[0].port}, {addrs[half]}-{addrs[-1]}:{sshds[1].port}), "
        f"user {user}; tools {list(tools)}")

    def one(name, rep):
        if name.startswith("ssh-xargs"):
            subprocess.run(["rm", "-rf", xout], timeout=60)
            os.makedirs(xout)
            check = lambda res: check_files(xout, n, uname)   # noqa: E731
        else:
            check = lambda res: check_results(res, n, uname)   # noqa: E731
        return measure_one(name, tools[name], setup.env, sshds, check, n, cgroups, scratch,
                           args.timeout, rep, log, "requests")
    rows, notes = loop(args, tools, one, log)
    what = (f"Each invocation: {n} JSON requests in NetPulse's paramiko-driver shape, "
            f"`command: {json.dumps(COMMANDS)}`, round-robin over {TARGETS} targets (two "
            f"OpenSSH sshds, each listening on {half} loopback addresses, {addrs[0]}-"
            f"{addrs[-1]}: {TARGETS} distinct connection_args), host_key_policy auto_add (known_hosts pre-filled), one ed25519 "
            "key, no agent. sshmux request shares one connection per distinct connection_args "
            "(requests in line order on it; -p4: `--parallel 4`); asyncssh "
            "(bench/asyncssh_requests.py) and ssh-xargs (`xargs -P 20`, one `ssh` per request, "
            "the commands joined by `&&`) open a connection per request, 20 at a time, as "
            "NetPulse's paramiko driver does. ssh's default key exchange here is "
            f"sntrup761x25519-sha512 (costlier); ssh-xargs-samekex pins {KEX}, which sshmux "
            "negotiates (see its kex note) and AsyncSSH 2.10 lists first (after GSS kex, "
            "unused here). A request counts as failed unless both commands "
            "succeeded and `uname -a` printed this machine's `uname -a`; `echo $RANDOM` prints "
            "an empty line (the login shell is dash, which has no $RANDOM).")
    meta = base_meta(args, summary, cgroups, what, notes)
    ref = next((t for t in tools if t.startswith("sshmux-") and not t.endswith("-p4")), None)
    finish(args, "requests", f"sshmux request benchmark ({n} requests, {TARGETS} targets)",
           rows, meta, ref, log)
    return rows


# ------------------------------------------------------------------ --expect
def step_truth():
    """What each step must print, as whitespace-separated words (a PTY's `ls` lays out in
    columns; the words are what matter): this machine's node name, 42, the entries of /."""
    return [[platform.node()], ["42"], None]


def check_steps(outputs, truth_ls):
    """outputs: a host's 3 step outputs -> None if right, else why."""
    if len(outputs) != 3:
        return f"{len(outputs)} steps"
    words = [o.split() for o in outputs]
    want = step_truth()
    for i in (0, 1):
        if words[i] != want[i]:
            return f"step {i + 1}: {outputs[i]!r}"
    if sorted(words[2]) != truth_ls:
        return f"step 3: {outputs[2][:120]!r}"
    return None


def parse_expect(res, sshmux):
    """{host: [step outputs]} and {host: error} from either tool's JSON lines."""
    outs, errs = {}, {}
    for r in json_rows(res.stdout):
        h = r.get("host")
        if sshmux:
            outs[h] = [s.get("stdout", "") for s in r.get("steps") or []]
        else:
            outs[h] = r.get("steps") or []
        if not r.get("ok"):
            errs[h] = r.get("error")
    return outs, errs


def run_expect(args, setup, binaries, cgroups, log, summary):
    import pwd
    if not setup.user:
        raise SystemExit("bench --expect needs root (a throwaway login user with its PS1)")
    with open(os.path.join(pwd.getpwnam(setup.user).pw_dir, ".profile"), "a") as f:
        f.write(f"PS1='{PROMPT}'; export PS1\n")
    n = args.expect_hosts
    fl = setup.fleet("expect", n)
    hosts = fl.names(n)
    truth_ls = sorted(e for e in os.listdir("/") if not e.startswith("."))
    steps = []
    for text, rx in STEPS:
        steps += ["--send", text] + (["--expect", rx] if rx else [])
    tools = {}
    for backend, b in binaries.items():
        if b:
            tools[f"sshmux-{backend}"] = [b, "expect", "-F", fl.cfg, "-w", fl.hostrange(n),
                                          "--json"] + steps
    tools["asyncssh"] = [PY, os.path.join(HERE, "asyncssh_expect.py"), "-F", fl.cfg,
                         "--known-hosts", fl.kh, "-f", str(n), "--hostfile",
                         fl.hostfile_for(n), "--prompt", re.escape(PROMPT)] + steps
    scratch = setup.wd.mkdir("runs")
    seen = {}   # tool -> {host: outputs} of its last invocation, to compare the tools
    disagree = []
    log(f"expect: {n} hosts on sshd port {fl.sshd.port}, user {setup.user}; tools {list(tools)}")

    def one(name, rep):
        def check(res):
            outs, errs = parse_expect(res, name.startswith("sshmux"))
            bad = []
            for h in hosts:
                why = "no row" if h not in outs else errs.get(h) and f"error {errs[h]}" \
                    or check_steps(outs[h], truth_ls)
                if why:
                    bad.append(f"{h}: {why}")
            seen[name] = outs
            return n - len(bad), ([f"{len(bad)} failed, first: {bad[0]}"[:300]] if bad else [])
        row = measure_one(name, tools[name], setup.env, [fl.sshd], check, n, cgroups, scratch,
                          args.timeout, rep, log, "expect")
        if len(seen) == len(tools):   # every tool ran in this rep: compare their outputs
            names = list(seen)
            for h in hosts:
                got = [[o.split() for o in seen[t].get(h, [])] for t in names]
                if any(g != got[0] for g in got[1:]):
                    disagree.append(f"rep {rep} {h}: " + "; ".join(
                        f"{t} {seen[t].get(h)!r}"[:150] for t in names))
            seen.clear()
        return row
    rows, notes = loop(args, tools, one, log)
    notes.append("step outputs (as words) of the tools agree on every host in every rep"
                 if not disagree else f"tools disagree on {len(disagree)} host-reps, first: "
                 f"{disagree[0]}")
    log(f"expect: {notes[-1][:200]}")
    what = (f"Each invocation: {n} host aliases of one OpenSSH sshd, one session each with a PTY "
            "(xterm, 512 columns) running the throwaway user's login shell (dash, "
            f"PS1 `{PROMPT}` from ~/.profile), 3 steps: "
            + ", ".join(f"`{t}`" + (f" expecting `{r}`" if r else "") for t, r in STEPS)
            + ", then `exit`. sshmux: `sshmux expect -w HOSTS --json` with those steps "
            "(the prompt found as netmiko's find_prompt: 0.3 s of quiet after login, then a "
            "newline); asyncssh: bench/asyncssh_expect.py, create_process with a PTY of the "
            "same size, every host at once, the prompt given as a regex (no quiet wait). A "
            "host counts as failed unless its step outputs, as words, are this machine's "
            "`uname -n`, `42` and the entries of `/`.")
    meta = base_meta(args, summary, cgroups, what, notes)
    ref = next((t for t in tools if t.startswith("sshmux-")), None)
    finish(args, "expect", f"sshmux expect benchmark ({n} hosts, {len(STEPS)} steps)", rows,
           meta, ref, log)
    return rows
