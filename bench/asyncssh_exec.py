#!/usr/bin/python3
"""AsyncSSH peer for the benchmark: run one command on many hosts at once.

usage: asyncssh_exec.py -F SSH_CONFIG --known-hosts FILE -f FANOUT [--kex ALG]
                        [--whole-config] --hostfile FILE CMD

One asyncio loop, asyncio.gather over every host, an asyncio.Semaphore(FANOUT) bounding how many
are in flight: asyncssh.connect(alias, config=[cfg], known_hosts=kh). Output like pdsh:
'host: line' on stdout for each stdout line, 'host: ...' on stderr for remote stderr and for
failures. Exit status 0 if every host ran CMD and exited 0, else 1.

asyncssh re-reads and re-parses every config file on every connect(); with one `Host` block per
alias that is O(N) per connection (~0.2 ms per block here: 100 ms per connection at N=500), which
would swamp everything else measured. So by default the SAME ssh_config is split once, up front,
into one file per alias holding that alias's `Host` block (plus any global lines before the
first `Host`), and connect() gets that file. --whole-config passes the whole file instead.
"""
import argparse
import asyncio
import os
import re
import sys
import tempfile
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


def split_config(path, hosts):
    """{alias: path of a file with only its Host block}, or None if the file is not a plain
    list of single-alias Host blocks (then the whole file is used)."""
    head, blocks, cur = [], {}, None
    with open(path) as f:
        for line in f:
            if re.match(r"\s*match\b", line, re.I):
                return None
            m = re.match(r"\s*host\s+(.*?)\s*$", line, re.I)
            if m:
                if re.search(r"[\s*?!,]", m.group(1)):
                    return None
                cur = m.group(1)
                blocks[cur] = [line]
            elif cur is None:
                head.append(line)
            else:
                blocks[cur].append(line)
    d = tempfile.mkdtemp(prefix="asyncssh-cfg-")
    out = {}
    for h in hosts:
        out[h] = os.path.join(d, h)
        with open(out[h], "w") as f:
            f.write("".join(head + blocks.get(h, [])))
    return out


async def one(host, args, sem, opts, config):
    async with sem:
        try:
            async with asyncssh.connect(host, config=[config], known_hosts=args.known_hosts,
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


def add_common_args(ap):
    """The options every AsyncSSH peer script takes (this one and asyncssh_copy.py)."""
    ap.add_argument("-F", dest="config", required=True)
    ap.add_argument("--known-hosts", required=True)
    ap.add_argument("-f", dest="fanout", type=int, default=256)
    ap.add_argument("--kex", action="append", default=None)
    ap.add_argument("--hostfile", required=True)
    ap.add_argument("--whole-config", action="store_true")


async def run_all(args, one, opts):
    """one(host, args, sem, opts, config) for every host of --hostfile, at most --fanout at
    once; True if every one returned True."""
    with open(args.hostfile) as f:
        hosts = [h.strip() for h in f if h.strip() and not h.startswith("#")]
    if args.kex:
        opts["kex_algs"] = args.kex
    per_host = None if args.whole_config else split_config(args.config, hosts)
    sem = asyncio.Semaphore(args.fanout)
    results = await asyncio.gather(*(one(h, args, sem, opts,
                                         per_host[h] if per_host else args.config)
                                     for h in hosts))
    return all(results)


async def main():
    ap = argparse.ArgumentParser()
    add_common_args(ap)
    ap.add_argument("--connect-timeout", type=float, default=None)
    ap.add_argument("command", nargs="+")
    args = ap.parse_args()
    args.command = " ".join(args.command)
    opts = {}
    if args.connect_timeout:
        opts["connect_timeout"] = args.connect_timeout
    ok = await run_all(args, one, opts)
    sys.stdout.flush()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
