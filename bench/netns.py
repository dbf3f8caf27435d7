"""--latency MS: a fleet behind an emulated network link.

Two network namespaces of our own, joined by a veth pair; nothing in the host's own network
namespace is touched (no addresses, no routes, no qdiscs):
    <cli ns> veth 10.200.0.2/24  <---- netem delay MS ms on the server side ---->  10.200.0.1/24 <srv ns>
sshd runs inside the server namespace (ip netns exec), every tool inside the client namespace,
so the only targets are that namespace's own addresses. The delay is added once, on the server
side's egress, so every round trip gets MS ms longer. Everything is removed at exit.
"""
import os
import subprocess
import time

import fleet  # noqa: F401
import fixture

SRV_ADDR, CLI_ADDR = "10.200.0.1", "10.200.0.2"


def _ip(*args, check=True):
    r = subprocess.run(["ip"] + list(args), capture_output=True, text=True, timeout=30)
    if check and r.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {r.stderr.strip()}")
    return r


class Netns:
    """The namespace pair. Raises RuntimeError (with ip's message) if not permitted."""

    def __init__(self, delay_ms):
        tag = f"{os.getpid() % 100000}"
        self.srv, self.cli = f"smxb-srv-{tag}", f"smxb-cli-{tag}"
        self.delay_ms = delay_ms
        fixture.on_cleanup(self.teardown, f"netns {self.srv}/{self.cli}")
        _ip("netns", "add", self.srv)
        _ip("netns", "add", self.cli)
        veth_s, veth_c = f"smxs{tag}", f"smxc{tag}"
        _ip("-n", self.cli, "link", "add", veth_c, "type", "veth", "peer", "name", veth_s,
            "netns", self.srv)
        for ns, dev, addr in ((self.srv, veth_s, SRV_ADDR), (self.cli, veth_c, CLI_ADDR)):
            _ip("-n", ns, "link", "set", "lo", "up")
            _ip("-n", ns, "addr", "add", f"{addr}/24", "dev", dev)
            _ip("-n", ns, "link", "set", dev, "up")
        if delay_ms:
            r = subprocess.run(["ip", "netns", "exec", self.srv, "tc", "qdisc", "add", "dev",
                                veth_s, "root", "netem", "delay", f"{delay_ms}ms",
                                "limit", "100000"], capture_output=True, text=True, timeout=30)
            if r.returncode != 0:
                raise RuntimeError(f"tc netem: {r.stderr.strip()}")

    def teardown(self):
        for ns in (self.cli, self.srv):
            _ip("netns", "del", ns, check=False)

    def rtt_ms(self, port, tries=5):
        """Median TCP connect time from the client namespace to SRV_ADDR:port (ms)."""
        code = ("import socket,time,statistics as s\nv=[]\nfor _ in range(%d):\n"
                " t=time.monotonic(); c=socket.create_connection(('%s',%d),5); "
                "v.append((time.monotonic()-t)*1e3); c.close()\nprint(s.median(v))"
                % (tries, SRV_ADDR, port))
        r = subprocess.run(["ip", "netns", "exec", self.cli, "/usr/bin/python3", "-c", code],
                           capture_output=True, text=True, timeout=60)
        try:
            return float(r.stdout.strip())
        except ValueError:
            return None


class NsSshd(fixture.Sshd):
    """fixture.Sshd, but listening on SRV_ADDR inside the server namespace."""

    def __init__(self, netns, workdir, keys, **kw):
        self.netns = netns
        super().__init__(workdir, keys, **kw)
        self.host = SRV_ADDR

    def _config(self):
        return super()._config().replace(f"ListenAddress {fixture.LOOPBACK}",
                                         f"ListenAddress {SRV_ADDR}")

    def _start(self, bind_retry=False):
        self.config_path = os.path.join(self.dir, "sshd_config")
        with open(self.config_path, "w") as f:
            f.write(self._config())
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        self.log_path = os.path.join(self.workdir.path, f"sshd-ns-{self.port}.log")
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                ["ip", "netns", "exec", self.netns.srv, fixture.SSHD, "-D", "-e", "-f",
                 self.config_path], stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                start_new_session=True)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.proc = None
                raise RuntimeError(f"sshd (netns) exited at startup:\n{self.log_text()}")
            if self._banner_ok():
                return True
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"sshd (netns) sent no banner within 10s:\n{self.log_text()}")

    def _banner_ok(self):
        code = ("import socket\ns=socket.create_connection(('%s',%d),2)\n"
                "print(s.recv(256).startswith(b'SSH-2.0-'))" % (SRV_ADDR, self.port))
        r = subprocess.run(["ip", "netns", "exec", self.netns.cli, "/usr/bin/python3", "-c",
                            code], capture_output=True, text=True, timeout=30)
        return r.stdout.strip() == "True"

    def _session_pids(self):
        tail, out = f" {SRV_ADDR} {self.port}".encode(), []
        for d in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{d}/environ", "rb") as f:
                    env = f.read().split(b"\0")
            except OSError:
                continue
            if any(e.startswith(b"SSH_CONNECTION=") and e.endswith(tail) for e in env):
                out.append(int(d))
        return out

    def count_established_connections(self):
        return 0   # in another namespace: /proc/net/tcp of ours does not see them


def probe(delay_ms):
    """Netns(delay_ms), or (None, reason) if namespaces / netem are not permitted here."""
    try:
        return Netns(delay_ms), ""
    except (RuntimeError, OSError, subprocess.SubprocessError) as e:
        return None, str(e)

