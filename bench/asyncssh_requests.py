#!/usr/bin/python3
"""AsyncSSH peer for `bench/run --requests`: NetPulse's paramiko driver, done with AsyncSSH.

usage: asyncssh_requests.py --known-hosts FILE [-f PARALLEL] REQUESTS_FILE

REQUESTS_FILE holds the same JSON lines that `sshmux request` gets. Every request gets a
connection of its own (asyncssh.connect to its connection_args' host, port, username, with its
key_filename as the only key, no agent, no ssh_config), runs its `command` list in order, one
exec channel each (conn.run), stopping at the first command that fails, and closes the
connection; at most PARALLEL requests (default 20) are in flight. One JSON line per request on
stdout, as they complete: {"id", "ok", "results": [{"command", "output", "exit_status"}],
"error"}. Exit status 0 if every request succeeded, else 1.
"""
import argparse
import asyncio
import json
import sys
import warnings

warnings.simplefilter("ignore")   # asyncssh imports deprecated ciphers (Blowfish, CAST5, ...)
import asyncssh  # noqa: E402


async def one(req, args, sem, keys):
    ca = req["connection_args"]
    cmds = req["command"] if isinstance(req["command"], list) else [req["command"]]
    out = {"id": req.get("id"), "ok": False, "results": [], "error": None}
    async with sem:
        try:
            async with asyncssh.connect(
                    ca["host"], port=ca.get("port", 22), username=ca.get("username"),
                    client_keys=[keys[ca["key_filename"]]], known_hosts=args.known_hosts,
                    agent_path=None, config=[], connect_timeout=ca.get("timeout", 30)) as conn:
                for c in cmds:
                    r = await conn.run(c, check=False)
                    out["results"].append({"command": c, "output": r.stdout,
                                           "error": r.stderr, "exit_status": r.exit_status})
                    if r.exit_status != 0:
                        break
            out["ok"] = len(out["results"]) == len(cmds) and \
                all(x["exit_status"] == 0 for x in out["results"])
        except (OSError, asyncssh.Error, asyncio.TimeoutError) as e:
            out["error"] = f"{type(e).__name__}: {e}"
    sys.stdout.write(json.dumps(out) + "\n")
    return out["ok"]


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--known-hosts", required=True)
    ap.add_argument("-f", dest="parallel", type=int, default=20)
    ap.add_argument("requests")
    args = ap.parse_args()
    with open(args.requests) as f:
        reqs = [json.loads(l) for l in f if l.strip()]
    # Each key file is read once, up front (sshmux request also loads a key file once a run).
    keys = {p: asyncssh.read_private_key(p)
            for p in {r["connection_args"]["key_filename"] for r in reqs}}
    sem = asyncio.Semaphore(args.parallel)
    results = await asyncio.gather(*(one(r, args, sem, keys) for r in reqs))
    sys.stdout.flush()
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
