#!/usr/bin/python3
"""AsyncSSH peer for `bench/run --files`: copy one file to or from many hosts over SFTP.

usage: asyncssh_copy.py -F SSH_CONFIG --known-hosts FILE -f FANOUT [--kex ALG] [--cipher ALG]
                        --hostfile FILE put LOCAL REMOTE
       asyncssh_copy.py ... get REMOTE LOCALDIR        (-> LOCALDIR/<host>/<basename>)

One asyncio loop, asyncio.gather over every host, an asyncio.Semaphore(FANOUT) bounding how many
are in flight: asyncssh.connect(alias, config=[cfg], known_hosts=kh), start_sftp_client(), then
sftp.put / sftp.get with asyncssh's defaults (16 KiB blocks, 128 requests in flight; asyncssh
2.10 does not ask the server's limits@). The ssh_config is split into one file per alias up
front, as asyncssh_exec.py does (asyncssh re-parses every config file on every connect).
Failures go to stderr as 'host: error: ...'. Exit status 0 if every host's copy succeeded.
"""
import argparse
import asyncio
import os
import sys
import warnings

warnings.simplefilter("ignore")   # asyncssh imports deprecated ciphers (Blowfish, CAST5, ...)
import asyncssh  # noqa: E402

sys.dont_write_bytecode = True   # no __pycache__ in bench/
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from asyncssh_exec import split_config  # noqa: E402


async def one(host, args, sem, opts, config):
    async with sem:
        try:
            async with asyncssh.connect(host, config=[config], known_hosts=args.known_hosts,
                                        **opts) as conn:
                async with conn.start_sftp_client() as sftp:
                    if args.op == "put":
                        await sftp.put(args.src, args.dst)
                    else:
                        d = os.path.join(args.dst, host)
                        os.makedirs(d, exist_ok=True)
                        await sftp.get(args.src, os.path.join(d, os.path.basename(args.src)))
        except (OSError, asyncssh.Error, asyncio.TimeoutError) as e:
            sys.stderr.write(f"{host}: error: {type(e).__name__}: {e}\n")
            return False
    return True


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-F", dest="config", required=True)
    ap.add_argument("--known-hosts", required=True)
    ap.add_argument("-f", dest="fanout", type=int, default=256)
    ap.add_argument("--kex", action="append", default=None)
    ap.add_argument("--cipher", action="append", default=None)
    ap.add_argument("--hostfile", required=True)
    ap.add_argument("op", choices=("put", "get"))
    ap.add_argument("src")
    ap.add_argument("dst")
    args = ap.parse_args()
    with open(args.hostfile) as f:
        hosts = [h.strip() for h in f if h.strip() and not h.startswith("#")]
    opts = {}
    if args.kex:
        opts["kex_algs"] = args.kex
    if args.cipher:
        opts["encryption_algs"] = args.cipher
    per_host = split_config(args.config, hosts)
    sem = asyncio.Semaphore(args.fanout)
    results = await asyncio.gather(*(one(h, args, sem, opts,
                                         per_host[h] if per_host else args.config)
                                     for h in hosts))
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
