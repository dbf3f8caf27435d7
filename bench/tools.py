"""The tools under test: how to invoke each one against a Fleet, and how to count, from its own
output, the hosts that ran the job correctly.

Every tool reads the same ssh_config (host aliases, User, IdentityFile, IdentitiesOnly,
UserKnownHostsFile, StrictHostKeyChecking yes, BatchMode yes) and runs at the same fanout.
Variants: 'default' (the tool's own defaults) and 'samekex' (key exchange pinned to
curve25519-sha256 for everyone, so the comparison is about the tool, not the KEX it picks).
"""
import json
import os
import re
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
KEX = "curve25519-sha256"
PYTHON = "/usr/bin/python3"   # Debian's, which has python3-asyncssh (not a pyenv shim)


class Job:
    def __init__(self, name, cmd, check, desc):
        self.name, self.cmd, self.check, self.desc = name, cmd, check, desc


JOBS = {j.name: j for j in [
    Job("true", "true", lambda out: out.strip() == "", "true (no output)"),
    Job("echo", "echo hello", lambda out: out.strip() == "hello", "echo hello"),
    Job("64k", "head -c 65536 /dev/zero | tr '\\0' x",
        lambda out: out.count("x") == 65536 and not out.replace("x", "").strip(),
        "64 KiB of output per host"),
]}

HOST_RE = re.compile(r"\bh\d{4,}\b")


class Ctx:
    """One invocation: fleet, n hosts, fanout, job, variant, scratch dir, sshmux binaries."""

    def __init__(self, fleet, n, fanout, job, variant, scratch, binaries):
        self.fleet, self.n, self.fanout, self.job, self.variant = fleet, n, fanout, job, variant
        self.scratch, self.binaries = scratch, binaries
        self.names = fleet.names(n)
        self.samekex = variant == "samekex"


PREFIX_RE = re.compile(r"(h\d{4,}): ")


def _prefixed(text):
    """pdsh-style 'host: payload' output -> ({host: payload text}, glued). A prefix found in
    the middle of a line still starts that host's output (pdsh prints a host's unterminated
    last line and the next host's output on the same line); glued counts those. pdsh also
    prints an unterminated line longer than its 8 KiB buffer in pieces, and only the first
    piece has the prefix: the rest lands after another host's prefix, and both hosts then
    fail the job's check - their output cannot be attributed."""
    out, glued = {}, 0
    parts = PREFIX_RE.split(text)
    for i in range(1, len(parts) - 1, 2):
        host, payload = parts[i], parts[i + 1]
        prev = parts[i - 1]
        glued += bool(prev) and not prev.endswith("\n")
        out.setdefault(host, []).append(payload if payload.endswith("\n") else payload + "\n")
    return {h: "".join(v) for h, v in out.items()}, glued


def _count(ctx, outputs, failed):
    """(ok, failed): hosts not reported failed whose output passes the job's check."""
    ok = sum(1 for h in ctx.names if h not in failed and ctx.job.check(outputs.get(h, "")))
    return ok, len(ctx.names) - ok


# ------------------------------------------------------------------ sshmux
class Sshmux:
    def __init__(self, backend):
        self.backend, self.name = backend, f"sshmux-{backend}"

    def available(self, binaries):
        return bool(binaries.get(self.backend))

    def argv(self, ctx):
        cmd = [ctx.binaries[self.backend], "exec", "-F", ctx.fleet.cfg, "-f", str(ctx.fanout),
               "-q", "--json"]
        if ctx.samekex:
            cmd += ["-o", f"KexAlgorithms={KEX}"]
        return cmd + ["-w", ctx.fleet.hostrange(ctx.n), ctx.job.cmd], {}, None

    def parse(self, ctx, res):
        outputs, failed, notes = {}, set(), {}
        for line in res.stdout.splitlines():
            try:
                o = json.loads(line)
            except ValueError:
                continue
            h = o.get("host")
            if not (o.get("ok") and o.get("exit_code") == 0):
                failed.add(h)
                err = (o.get("error") or {}).get("message") or f"exit {o.get('exit_code')}"
                notes[err] = notes.get(err, 0) + 1
            outputs[h] = o.get("stdout") or ""
            if (o.get("attempts") or 1) > 1:
                notes["retried"] = notes.get("retried", 0) + 1
        ok, nfailed = _count(ctx, outputs, failed)
        return ok, nfailed, notes


# ------------------------------------------------------------------ pdsh-style peers
def _ssh_opts(ctx):
    return ["-F", ctx.fleet.cfg] + (["-o", f"KexAlgorithms={KEX}"] if ctx.samekex else [])


class Prefixed:
    """Tools printing 'host: line' on stdout and naming failed hosts on stderr."""

    def parse(self, ctx, res):
        failed = set(HOST_RE.findall(res.stderr))
        notes = {}
        for line in res.stderr.splitlines():
            key = HOST_RE.sub("H", re.sub(r"\d+", "N", line))[:100]
            notes[key] = notes.get(key, 0) + 1
        outputs, glued = _prefixed(res.stdout)
        ok, nfailed = _count(ctx, outputs, failed)
        notes = dict(sorted(notes.items(), key=lambda kv: -kv[1])[:5])
        if glued:
            notes["host prefix in mid-line (output of hosts interleaved)"] = glued
        return ok, nfailed, notes


class Pdsh(Prefixed):
    name = "pdsh"

    def available(self, _):
        return bool(shutil.which("pdsh"))

    def argv(self, ctx):
        # pdsh's ssh module passes '-l <local user>' unless told the user: give it ours.
        env = {"PDSH_SSH_ARGS_APPEND": " ".join(_ssh_opts(ctx)), "PDSH_RCMD_TYPE": "ssh"}
        return (["pdsh", "-R", "ssh", "-l", ctx.fleet.user, "-f", str(ctx.fanout),
                 "-w", ctx.fleet.hostrange(ctx.n), ctx.job.cmd], env, None)


class Clush(Prefixed):
    name = "clush"

    def available(self, _):
        return bool(shutil.which("clush"))

    def argv(self, ctx):
        return (["clush", "-f", str(ctx.fanout), "-o", " ".join(_ssh_opts(ctx)),
                 "-w", ctx.fleet.hostrange(ctx.n), ctx.job.cmd], {}, None)


class AsyncSSH(Prefixed):
    name = "asyncssh"

    def available(self, _):
        return os.path.exists(PYTHON) and os.system(
            f"{PYTHON} -c 'import asyncssh' >/dev/null 2>&1") == 0

    def argv(self, ctx):
        cmd = [PYTHON, os.path.join(HERE, "asyncssh_exec.py"), "-F", ctx.fleet.cfg,
               "--known-hosts", ctx.fleet.kh, "-f", str(ctx.fanout),
               "--hostfile", ctx.fleet.hostfile_for(ctx.n)]
        if ctx.samekex:
            cmd += ["--kex", KEX]
        return cmd + [ctx.job.cmd], {}, None


# ------------------------------------------------------------------ parallel-ssh
class Pssh:
    name = "pssh"
    HEADER = re.compile(r"\[\d+\] \d\d:\d\d:\d\d \[(SUCCESS|FAILURE)\] (\S+)([^\n]*)\n?")

    def available(self, _):
        return bool(shutil.which("parallel-ssh"))

    def argv(self, ctx):
        # -i: print each host's output inline when it finishes; -t 0: no per-host timeout of
        # its own (default 60 s), like the other tools (the harness bounds the whole run).
        return (["parallel-ssh", "-p", str(ctx.fanout), "-t", "0", "-i",
                 "-x", " ".join(_ssh_opts(ctx)), "-h", ctx.fleet.hostfile_for(ctx.n),
                 ctx.job.cmd], {}, None)

    def parse(self, ctx, res):
        parts = self.HEADER.split(res.stdout)   # [pre, status, host, rest, body, status, ...]
        outputs, failed, notes = {}, set(), {}
        for i in range(1, len(parts) - 3, 4):
            status, host, rest, body = parts[i:i + 4]
            body = body.split("Stderr: ", 1)[0]
            outputs[host] = body
            if status != "SUCCESS":
                failed.add(host)
                key = re.sub(r"\d+", "N", rest.strip())[:80]
                notes[key] = notes.get(key, 0) + 1
        seen = set(outputs)
        failed |= set(ctx.names) - seen
        ok, nfailed = _count(ctx, outputs, failed)
        return ok, nfailed, notes


# ------------------------------------------------------------------ plain ssh in xargs
class SshXargs:
    """printf hosts | xargs -P FANOUT -I{} ssh -F cfg -o BatchMode=yes -E errdir/{} {} CMD.

    Output is not attributed to hosts, so: failed = hosts whose ssh -E log (ssh's own
    diagnostics, one file per host) is non-empty; ok = the other hosts, capped by the number of
    correct outputs seen (counted as 'hello' lines / 64 KiB blocks) for jobs with output."""
    name = "ssh-xargs"

    def available(self, _):
        return bool(shutil.which("ssh") and shutil.which("xargs"))

    def argv(self, ctx):
        self.errdir = os.path.join(ctx.scratch, "ssh-errors")
        shutil.rmtree(self.errdir, ignore_errors=True)
        os.makedirs(self.errdir)
        cmd = ["xargs", "-P", str(ctx.fanout), "-I{}", "ssh"] + _ssh_opts(ctx) + [
            "-o", "BatchMode=yes", "-E", os.path.join(self.errdir, "{}"), "{}", ctx.job.cmd]
        return cmd, {}, ctx.fleet.hostfile_for(ctx.n)

    def parse(self, ctx, res):
        failed, notes = set(), {}
        for h in ctx.names:
            p = os.path.join(self.errdir, h)
            try:
                txt = open(p, errors="replace").read() if os.path.getsize(p) else ""
            except OSError:
                txt = "not run: xargs stops launching after an ssh exits 255"
            if txt:
                failed.add(h)
                key = re.sub(r"\d+", "N", txt.strip().splitlines()[-1])[:80]
                notes[key] = notes.get(key, 0) + 1
        good = len(ctx.names) - len(failed)
        if ctx.job.name == "echo":
            good = min(good, sum(1 for l in res.stdout.splitlines() if l == "hello"))
        elif ctx.job.name == "64k":
            good = min(good, res.stdout.count("x") // 65536)
        if res.rc not in (0, None) and not failed:
            notes[f"xargs exit {res.rc}"] = 1
        return good, len(ctx.names) - good, notes


ALL = [Sshmux("openssl"), Sshmux("mbedtls"), Sshmux("baseline"), Pdsh(), Clush(), Pssh(),
       AsyncSSH(), SshXargs()]
QUICK = ["sshmux-openssl", "sshmux-mbedtls", "pdsh", "ssh-xargs"]


def by_name(names):
    table = {t.name: t for t in ALL}
    unknown = [n for n in names if n not in table]
    if unknown:
        sys.exit(f"bench: unknown tool(s) {unknown}; known: {list(table)}")
    return [table[n] for n in names]
