"""The benchmark fleet: real OpenSSH sshd instances with throwaway keys, a throwaway login user
and one ssh_config of host aliases (h0001..hN) per sshd, shared by every tool.

Built on tests/lib/fixture.py: everything started here (sshd, users, temp dirs) is registered
with fixture's cleanup list and removed at exit, on SIGTERM/SIGHUP and on Ctrl-C.
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))
import fixture  # noqa: E402

# A clean PATH: no pyenv shims (each shim is a bash script costing ~100 ms of CPU).
CLEAN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class Setup:
    """What every fleet shares: one Workdir, one client key, one throwaway login user.

    The login user matters: root's ~/.bashrc on a developer machine may run something slow
    (pyenv init: ~200 ms of CPU per ssh command) which would dominate every measurement, so as
    root we log in as a fresh user with /bin/sh and an empty home."""

    def __init__(self):
        self.wd = fixture.Workdir(prefix="sshmux-bench-")
        self.keys = fixture.Keys(self.wd)
        if fixture.TestUser.available():
            self.user = fixture.TestUser(self.wd).name
        else:
            self.user = None   # not root: sshd runs as us and we log in as ourselves
            print(f"bench: no throwaway user ({fixture.TestUser.reason()}); logging in as the "
                  "current user: make sure its shell rc files are fast", file=sys.stderr)
        # Every tool runs with this environment: fake HOME (no ~/.ssh of ours), clean PATH.
        self.env = fixture.base_env(self.wd, {"PATH": CLEAN_PATH})

    def fleet(self, name, n, stock=False, sshd=None, host=fixture.LOOPBACK):
        """A Fleet of n aliases; a new loopback sshd (tuned, or stock=True) unless sshd given."""
        sshd = sshd or fixture.Sshd(self.wd, self.keys, stock=stock)
        return Fleet(self, name, n, sshd, host)


class Fleet:
    """One sshd + known_hosts + ssh_config with aliases h0001..h<n> (all pointing at it).

    Attributes: name, sshd, n, cfg (ssh_config path), kh (known_hosts path), user, host."""

    def __init__(self, setup, name, n, sshd, host=fixture.LOOPBACK):
        self.setup, self.name, self.sshd, self.n, self.host = setup, name, sshd, n, host
        self.user = setup.user or sshd.user
        d = setup.wd.mkdir(f"fleet-{name}")
        self.kh = sshd.write_known_hosts(os.path.join(d, "known_hosts"), hosts=(host,))
        self.cfg = fixture.write_ssh_config(
            os.path.join(d, "ssh_config"), fixture.aliases(n), sshd=sshd, hostname=host,
            identity=setup.keys.ed25519, known_hosts=self.kh, user=self.user,
            extra={"GlobalKnownHostsFile": "/dev/null", "BatchMode": "yes"})
        self.hostfile = os.path.join(d, "hosts")
        with open(self.hostfile, "w") as f:
            f.write("".join(a + "\n" for a in fixture.aliases(n)))

    def names(self, n):
        return fixture.aliases(n)

    def hostfile_for(self, n):
        """A file listing h0001..h<n>, one per line (parallel-ssh -h, xargs, asyncssh)."""
        p = os.path.join(os.path.dirname(self.hostfile), f"hosts-{n}")
        if not os.path.exists(p):
            with open(p, "w") as f:
                f.write("".join(a + "\n" for a in fixture.aliases(n)))
        return p

    @staticmethod
    def hostrange(n):
        """pdsh / sshmux / clush range syntax: h[0001-0500]."""
        return f"h[0001-{n:04d}]" if n > 1 else "h0001"

    def log_offset(self):
        try:
            return os.path.getsize(self.sshd.log_path)
        except (OSError, TypeError):
            return 0

    def log_since(self, offset):
        """sshd log text written since offset (from log_offset())."""
        try:
            with open(self.sshd.log_path, "rb") as f:
                f.seek(offset)
                return f.read().decode(errors="replace")
        except (OSError, TypeError):
            return ""
