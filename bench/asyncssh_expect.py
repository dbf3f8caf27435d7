#!/usr/bin/python3
"""AsyncSSH peer for `bench/run --expect`: send/expect steps typed into PTY login shells.

usage: asyncssh_expect.py -F SSH_CONFIG --known-hosts FILE [-f FANOUT] --hostfile FILE
                          --prompt REGEX [--timeout S] (--send TEXT [--expect REGEX])...

Every host of --hostfile at once (at most FANOUT): asyncssh.connect(alias, config=[its Host
block], as asyncssh_exec.py), create_process() with a PTY (TERM xterm, 512 columns, as sshmux
expect) running the login shell. The output is cleaned (ANSI escapes, \\r, NUL, BEL dropped);
the shell is ready once the cleaned output ends with a line matching --prompt. Each step types
TEXT and a newline and reads until the output after the echo of TEXT matches the step's
--expect regex (multiline) or, without one, ends with the prompt; a step with --expect then also
reads up to the prompt, so that the next step starts clean. A step's output is what came after
the echo, up to the prompt or the end of the match. After the last step `exit` is typed. One
JSON line per host: {"host", "ok", "steps": [output, ...], "error"}. Exit status 0 if every
host ran every step, else 1.
"""
import argparse
import asyncio
import json
import re
import sys
import warnings

warnings.simplefilter("ignore")   # asyncssh imports deprecated ciphers (Blowfish, CAST5, ...)
import asyncssh  # noqa: E402
from asyncssh_exec import split_config  # noqa: E402

JUNK = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07|\x1b[()][0-9A-Za-z]|\x1b[=>]"
                  r"|[\r\x00\x07]")


class Shell:
    """The cleaned output of one PTY shell, read on demand until a pattern shows up."""

    def __init__(self, proc, timeout):
        self.proc, self.timeout, self.buf, self.raw = proc, timeout, "", ""

    async def until(self, test):
        """Reads until test(cleaned text so far) returns a match; returns it."""
        async def loop():
            while True:
                m = test(self.buf)
                if m:
                    return m
                data = await self.proc.stdout.read(65536)
                if not data:
                    raise EOFError("shell ended")
                self.raw += data
                self.buf = JUNK.sub("", self.raw)
        return await asyncio.wait_for(loop(), self.timeout)


async def one(host, args, sem, config):
    out = {"host": host, "ok": False, "steps": [], "error": None}
    prompt_at_end = re.compile(r"(?:^|\n)(" + args.prompt + r")$")
    async with sem:
        try:
            async with asyncssh.connect(host, config=[config], known_hosts=args.known_hosts,
                                        agent_path=None) as conn:
                proc = await conn.create_process(term_type="xterm", term_size=(512, 24),
                                                 encoding="utf-8", errors="replace")
                sh = Shell(proc, args.timeout)
                await sh.until(prompt_at_end.search)
                for text, expect in args.steps:
                    sh.raw = sh.buf = ""
                    proc.stdin.write(text + "\n")
                    echo = text + "\n"

                    def body(buf):
                        return buf[len(echo):] if buf.startswith(echo) else buf
                    if expect:
                        rx = re.compile(expect, re.M)
                        m = await sh.until(lambda b: rx.search(body(b)))
                        out["steps"].append(body(sh.buf)[:m.end()])
                        await sh.until(lambda b: prompt_at_end.search(body(b)))
                    else:
                        m = await sh.until(lambda b: prompt_at_end.search(body(b)))
                        out["steps"].append(body(sh.buf)[:m.start(1)])
                proc.stdin.write("exit\n")
                await asyncio.wait_for(proc.wait_closed(), args.timeout)
            out["ok"] = True
        except (OSError, EOFError, asyncssh.Error, asyncio.TimeoutError) as e:
            out["error"] = f"step {len(out['steps']) + 1}: {type(e).__name__}: {e}"
    sys.stdout.write(json.dumps(out) + "\n")
    return out["ok"]


class StepAction(argparse.Action):
    """--send starts a step, --expect sets the regex of the step before it."""

    def __call__(self, parser, ns, value, option):
        if option == "--send":
            ns.steps.append([value, None])
        elif not ns.steps:
            parser.error("--expect before any --send")
        else:
            ns.steps[-1][1] = value


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-F", dest="config", required=True)
    ap.add_argument("--known-hosts", required=True)
    ap.add_argument("-f", dest="fanout", type=int, default=256)
    ap.add_argument("--hostfile", required=True)
    ap.add_argument("--prompt", required=True)
    ap.add_argument("--timeout", type=float, default=10)
    ap.add_argument("--send", action=StepAction, dest="steps", default=[])
    ap.add_argument("--expect", action=StepAction, dest="steps")
    args = ap.parse_args()
    with open(args.hostfile) as f:
        hosts = [h.strip() for h in f if h.strip()]
    per_host = split_config(args.config, hosts)
    sem = asyncio.Semaphore(args.fanout)
    results = await asyncio.gather(*(one(h, args, sem, per_host[h] if per_host else args.config)
                                     for h in hosts))
    sys.stdout.flush()
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
