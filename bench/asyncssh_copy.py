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
from asyncssh_exec import add_common_args, run_all  # noqa: E402


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
    add_common_args(ap)
    ap.add_argument("--cipher", action="append", default=None)
    ap.add_argument("op", choices=("put", "get"))
    ap.add_argument("src")
    ap.add_argument("dst")
    args = ap.parse_args()
    opts = {"encryption_algs": args.cipher} if args.cipher else {}
    return 0 if await run_all(args, one, opts) else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
