"""A single-process SSH server that holds thousands of sessions open: AsyncSSH (python3-asyncssh).

OpenSSH's sshd forks a process (two, with privilege separation) per connection, so one machine
cannot hold 10,000 of them; AsyncSSH serves every connection from one asyncio loop. Every exec
request is answered in-process (no /bin/sh per session, which would cost a process each):
the session waits until the server gets SIGUSR1 (the harness's "release"; sessions started
after it wait for the next one) or `--hold` seconds
pass, then writes one line `T <CLOCK_MONOTONIC ns>` and exits 0; the command `tick` writes
such a line every --tick seconds while it waits (for the loop-latency run: CLOCK_MONOTONIC is
one clock for every process, so the reader of sshmux's output sees how long the line took).
The server counts the sessions currently waiting in a small status file (`--status`),
rewritten every 0.2 s, so the harness can see how many are open without guessing from sockets.

Two halves, as tests/lib/asyncsshd.py:
- the server, run by Debian's /usr/bin/python3 (which has asyncssh); prints `PORT <n>` once
  listening on 127.0.0.1;
- SessionServer (stdlib only): starts one server process, release(), open_sessions(), stop().
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ASYNCSSH_PYTHON = "/usr/bin/python3"


# ------------------------------------------------------------------ server (Debian python3)
def _serve(args):
    import asyncio
    import random
    import signal
    import time
    import asyncssh

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    gen = {"release": asyncio.Event()}   # one Event per release: later sessions wait again
    waiting = [0]

    def release():
        ev, gen["release"] = gen["release"], asyncio.Event()
        ev.set()

    async def tick(process, ev):
        """Command `tick`: a line `T <CLOCK_MONOTONIC ns>` every --tick seconds (first one at a
        random phase, so N sessions spread their lines evenly) until released."""
        await asyncio.sleep(random.uniform(0, args.tick))
        while not ev.is_set():
            process.stdout.write(f"T {time.monotonic_ns()}\n")
            try:
                await asyncio.wait_for(ev.wait(), args.tick)
            except asyncio.TimeoutError:
                pass

    async def session(process):
        waiting[0] += 1
        if process.command == "tick":
            try:
                await asyncio.wait_for(tick(process, gen["release"]), args.hold)
            except asyncio.TimeoutError:
                pass
            finally:
                waiting[0] -= 1
            process.exit(0)
            return
        try:
            await asyncio.wait_for(gen["release"].wait(), args.hold)
        except asyncio.TimeoutError:
            pass
        finally:
            waiting[0] -= 1
        process.stdout.write(f"T {time.monotonic_ns()}\n")
        process.exit(0)

    async def status():
        while True:
            tmp = args.status + ".tmp"
            with open(tmp, "w") as f:
                f.write(f"{waiting[0]}\n")
            os.replace(tmp, args.status)
            await asyncio.sleep(0.2)

    async def start():
        server = await asyncssh.listen(
            "127.0.0.1", 0, server_host_keys=[args.host_key],
            authorized_client_keys=args.authorized_keys, process_factory=session,
            encoding="utf-8", allow_scp=False, password_auth=False, kbdint_auth=False,
            backlog=4096)
        loop.add_signal_handler(signal.SIGUSR1, release)
        loop.create_task(status())
        print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
        await server.wait_closed()

    loop.run_until_complete(start())


def _main():
    sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "lib"))
    import asyncsshd
    _serve(asyncsshd.server_args(("--status", dict(required=True)),
                                 ("--hold", dict(type=float, default=90.0)),
                                 ("--tick", dict(type=float, default=10.0))))


# ------------------------------------------------------------------ harness side (stdlib)
class SessionServer:
    """One server process on 127.0.0.1:<port>; host key and authorized_keys in workdir.
    Registered with fixture's cleanup list. Attributes: host, port, host_key, proc."""
    _seq = 0

    def __init__(self, workdir, keys, hold=90.0):
        import subprocess
        import fixture
        SessionServer._seq += 1
        self.dir = workdir.mkdir(f"asyncssh-sessions-{SessionServer._seq}", 0o755)
        self.host = fixture.LOOPBACK
        self.host_key = fixture._keygen(os.path.join(self.dir, "host_ed25519"), "ed25519")
        auth = os.path.join(self.dir, "authorized_keys")
        with open(auth, "w") as f:
            f.write("".join(open(p).read().strip() + "\n" for p in keys.pubs()))
        self.status_path = os.path.join(self.dir, "status")
        err = open(os.path.join(self.dir, "server.err"), "ab")
        self.proc = subprocess.Popen(
            [ASYNCSSH_PYTHON, os.path.abspath(__file__), "--host-key", self.host_key,
             "--authorized-keys", auth, "--status", self.status_path, "--hold", str(hold)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err,
            start_new_session=True, text=True, cwd=self.dir)
        fixture.on_cleanup(self.stop, f"asyncssh sessions server {self.dir}")
        line = self.proc.stdout.readline()
        if not line.startswith("PORT "):
            self.stop()
            raise RuntimeError(f"asyncssh sessions server did not start: {line!r}")
        self.port = int(line.split()[1])

    def open_sessions(self):
        try:
            with open(self.status_path) as f:
                return int(f.read().strip() or 0)
        except (OSError, ValueError):
            return 0

    def release(self):
        import signal
        if self.proc is not None:
            os.kill(self.proc.pid, signal.SIGUSR1)

    def stop(self):
        import fixture
        if self.proc is not None:
            fixture.kill_tree(self.proc.pid, self.proc)
            self.proc = None

    def known_hosts_line(self):
        key = " ".join(open(self.host_key + ".pub").read().split()[:2])
        return f"[{self.host}]:{self.port} {key}\n"


if __name__ == "__main__":
    sys.exit(_main())
