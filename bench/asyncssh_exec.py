#!/usr/bin/python3
"""AsyncSSH peer for the benchmark: run one command on many hosts at once.

usage: asyncssh_exec.py -F SSH_CONFIG --known-hosts FILE -f FANOUT [--kex ALG]
                        --hostfile FILE CMD

One asyncio loop, asyncio.gather over every host, an asyncio.Semaphore(FANOUT) bounding how many
are in flight. Output like pdsh: 'host: line' on stdout for each stdout line, 'host: ...' on
stderr for remote stderr and for failures. Exit status 0 if every host ran CMD and exited 0,
else 1.
"""
import argparse
import asyncio
import sys
import warnings

warnings.simplefilter("ignore")   # asyncssh imports deprecated ciphers (Blowfish, CAST5, ...)
import asyncssh  # noqa: E402


def emit(stream, host, text):
    if not text:
        return
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    stream.write("".join(f"{host}: {l}\n" for l in lines))


async def one(host, args, sem, opts):
    async with sem:
        try:
            async with asyncssh.connect(host, config=[args.config], known_hosts=args.known_hosts,
                                        **opts) as conn:
                r = await conn.run(args.command, check=False)
        except (OSError, asyncssh.Error, asyncio.TimeoutError) as e:
            emit(sys.stderr, host, f"error: {type(e).__name__}: {e}")
            return False
    emit(sys.stdout, host, r.stdout)
    emit(sys.stderr, host, r.stderr)
    if r.exit_status != 0:
        emit(sys.stderr, host, f"exited with exit code {r.exit_status}")
        return False
    return True


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-F", dest="config", required=True)
    ap.add_argument("--known-hosts", required=True)
    ap.add_argument("-f", dest="fanout", type=int, default=256)
    ap.add_argument("--kex", action="append", default=None)
    ap.add_argument("--connect-timeout", type=float, default=None)
    ap.add_argument("--hostfile", required=True)
    ap.add_argument("command", nargs="+")
    args = ap.parse_args()
    args.command = " ".join(args.command)
    with open(args.hostfile) as f:
        hosts = [h.strip() for h in f if h.strip() and not h.startswith("#")]
    opts = {}
    if args.kex:
        opts["kex_algs"] = args.kex
    if args.connect_timeout:
        opts["connect_timeout"] = args.connect_timeout
    sem = asyncio.Semaphore(args.fanout)
    results = await asyncio.gather(*(one(h, args, sem, opts) for h in hosts))
    sys.stdout.flush()
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
