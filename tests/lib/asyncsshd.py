"""A second SSH server implementation for interop tests: AsyncSSH (Debian's python3-asyncssh).

Its SFTP server speaks the same protocol (v3) as OpenSSH's sftp-server but offers no
limits@openssh.com extension, so a client must fall back to its own block size (32 KiB); it
logs the length of every READ and WRITE request it serves, so a test can check what was used.

Two halves in one file:
- the server (`/usr/bin/python3 asyncsshd.py --host-key K --authorized-keys A --log L`): run by
  Debian's python3, which has asyncssh (the test runner's python3 may be another one). It
  listens on 127.0.0.1, port 0, prints `PORT <n>` on stdout once listening, and serves until
  killed: publickey auth only (any user name), the default SFTPServer (the real file system as
  the server process sees it), and commands (exec requests) run with /bin/sh -c.
- AsyncSshd (imported by tests; stdlib only): starts the server as a subprocess and stops it at
  exit. Attributes: host, port, user, log_path, host_key, proc.
"""
import os
import sys

ASYNCSSH_PYTHON = "/usr/bin/python3"


# ------------------------------------------------------------------ server (Debian python3)
def _serve(args):
    import asyncio
    import asyncssh

    log = open(args.log, "a", buffering=1)

    class LoggingSFTPServer(asyncssh.SFTPServer):
        """The stock server; every READ/WRITE request's length is logged (`read N`/`write N`)."""

        def read(self, file_obj, offset, size):
            log.write(f"read {size}\n")
            return super().read(file_obj, offset, size)

        def write(self, file_obj, offset, data):
            log.write(f"write {len(data)}\n")
            return super().write(file_obj, offset, data)

    async def pump(reader, writer, close):
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            if hasattr(writer, "drain"):
                await writer.drain()
        close()

    async def run_command(process):
        cmd = process.command
        log.write(f"exec {cmd!r}\n")
        if cmd is None:   # a shell request: not offered
            process.exit(1)
            return
        proc = await asyncio.create_subprocess_exec(
            "/bin/sh", "-c", cmd, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        tasks = [asyncio.ensure_future(pump(process.stdin, proc.stdin, proc.stdin.close)),
                 asyncio.ensure_future(pump(proc.stdout, process.stdout, process.stdout.write_eof)),
                 asyncio.ensure_future(pump(proc.stderr, process.stderr, lambda: None))]
        rc = await proc.wait()
        await asyncio.gather(*tasks[1:], return_exceptions=True)
        tasks[0].cancel()
        process.exit(rc if rc >= 0 else 128 - rc)

    async def start():
        server = await asyncssh.listen(
            "127.0.0.1", 0, server_host_keys=[args.host_key],
            authorized_client_keys=args.authorized_keys, sftp_factory=LoggingSFTPServer,
            process_factory=run_command, encoding=None, allow_scp=False,
            password_auth=False, kbdint_auth=False)
        print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
        await server.wait_closed()

    asyncio.get_event_loop().run_until_complete(start())


def server_args(*extra):
    """A server half's command line: --host-key, --authorized-keys and extra (flag, kwargs)
    pairs, parsed. Also quiets cryptography's deprecation warnings (printed on import)."""
    import argparse
    import warnings
    warnings.simplefilter("ignore")
    ap = argparse.ArgumentParser()
    ap.add_argument("--host-key", required=True)
    ap.add_argument("--authorized-keys", required=True)
    for flag, kw in extra:
        ap.add_argument(flag, **kw)
    return ap.parse_args()


def _main():
    _serve(server_args(("--log", dict(required=True))))


# ------------------------------------------------------------------ fixture (test runner)
class AsyncSshd:
    """AsyncSSH server on 127.0.0.1:<port it picked>, host key and authorized_keys in
    workdir/asyncsshd-<n>/ (authorized: .pub paths, default keys.pubs()). skip()s when Debian's python3 has no
    asyncssh (scripts/install-deps.sh installs python3-asyncssh)."""
    _seq = 0

    def __init__(self, workdir, keys, authorized=None):
        import subprocess
        import fixture
        probe = subprocess.run([ASYNCSSH_PYTHON, "-c", "import asyncssh"], capture_output=True,
                               timeout=60) if os.access(ASYNCSSH_PYTHON, os.X_OK) else None
        if probe is None or probe.returncode != 0:
            fixture.skip(f"{ASYNCSSH_PYTHON} cannot import asyncssh (apt-get install "
                         "python3-asyncssh)")
        AsyncSshd._seq += 1
        self.dir = workdir.mkdir(f"asyncsshd-{AsyncSshd._seq}", 0o755)
        self.host, self.user = fixture.LOOPBACK, "sftpuser"
        self.host_key = fixture._keygen(os.path.join(self.dir, "host_ed25519"), "ed25519")
        self.authorized_keys = os.path.join(self.dir, "authorized_keys")
        with open(self.authorized_keys, "w") as f:
            f.write("".join(open(p).read().strip() + "\n" for p in authorized or keys.pubs()))
        self.log_path = os.path.join(self.dir, "server.log")
        self.err_path = os.path.join(self.dir, "server.err")
        with open(self.err_path, "ab") as err:
            self.proc = subprocess.Popen(
                [ASYNCSSH_PYTHON, os.path.abspath(__file__), "--host-key", self.host_key,
                 "--authorized-keys", self.authorized_keys, "--log", self.log_path],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err,
                start_new_session=True, text=True, cwd=self.dir)   # relative paths land here
        fixture.on_cleanup(self.stop, f"asyncsshd {self.dir}")
        line = self.proc.stdout.readline()   # the server prints its port once listening
        if not line.startswith("PORT "):
            self.stop()
            raise RuntimeError(f"asyncsshd did not start: {line!r}\n{open(self.err_path).read()}")
        self.port = int(line.split()[1])

    def stop(self):
        import fixture
        if self.proc is not None:
            fixture.kill_tree(self.proc.pid, self.proc)
            self.proc = None

    def known_hosts_line(self, name=None):
        name = name or f"[{self.host}]:{self.port}"
        return f"{name} {' '.join(open(self.host_key + '.pub').read().split()[:2])}\n"

    def log_lines(self, kind):
        """Lengths of the READ (kind "read") or WRITE ("write") requests served so far."""
        with open(self.log_path) as f:
            return [int(l.split()[1]) for l in f if l.startswith(kind + " ")]

    def clear_log(self):
        open(self.log_path, "w").close()


if __name__ == "__main__":
    sys.exit(_main())
