"""Shared setup for sshmux exec tests: one sshd, one key, known_hosts and an ssh_config of
aliases pointing at it."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from fixture import *  # noqa: E402,F401,F403
import fixture  # noqa: E402


def fleet_user(wd):
    """The login for fan-out tests. As root: a throwaway user whose shell is /bin/sh, because
    root's own ~/.bashrc (which Debian's bash reads for every ssh command) may be arbitrarily
    slow on a developer machine and would dominate what we measure. Else the current user."""
    if fixture.TestUser.available():
        return fixture.TestUser(wd).name
    return None


class Fleet:
    """sshd + client key + known_hosts + ssh_config with `n` aliases h0001..; run() runs
    `sshmux <sub> -F cfg ...`."""

    def __init__(self, n=10, stock=False, sshd_kwargs=None, strict="yes"):
        self.wd = fixture.Workdir()
        self.keys = fixture.Keys(self.wd)
        self.sshd = fixture.Sshd(self.wd, self.keys, stock=stock, **(sshd_kwargs or {}))
        self.user = fleet_user(self.wd) or self.sshd.user
        self.kh = self.sshd.write_known_hosts(self.wd.file("known_hosts"))
        self.names = fixture.aliases(n)
        self.cfg = fixture.write_ssh_config(self.wd.file("ssh_config"), self.names,
                                            sshd=self.sshd, identity=self.keys.ed25519,
                                            known_hosts=self.kh, strict=strict, user=self.user)

    def hostlist(self, n=None):
        n = len(self.names) if n is None else n
        return f"h[0001-{n:04d}]"

    def add(self, alias, **options):
        fixture.add_ssh_config_entry(self.cfg, alias, **options)

    def run(self, *args, sub="exec", **kw):
        return fixture.run_sshmux([sub, "-F", self.cfg] + list(args), **kw)
