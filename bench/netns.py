"""--latency MS [--loss PCT]: a fleet behind a slow (and lossy) network link.

Two network namespaces of our own, joined by tests/lib/wire.py's user-space wire (a TAP device in
each and the smx-wire relay between them: no netem qdisc needed); nothing in the host's own
network namespace is touched (no addresses, no routes, no qdiscs):
    <cli ns> 10.213.0.2  <-- smx-wire: MS/2 ms and PCT % loss each way -->  10.213.0.1 <srv ns>
sshd runs inside the server namespace, every tool inside the client namespace (ip netns exec),
so the only targets are that namespace's own addresses. Every round trip gets MS ms longer.
Everything is removed at exit.
"""
import statistics

import fleet  # noqa: F401  (puts tests/lib on sys.path)
import wire

SRV_ADDR, CLI_ADDR = wire.SRV_ADDR, wire.CLI_ADDR


class Netns:
    """The namespace pair and the wire (attribute wire); cli, srv: the namespaces' names."""

    def __init__(self, delay_ms, loss_pct=0.0):
        self.delay_ms, self.loss_pct = delay_ms, loss_pct
        self.wire = wire.Wire(delay_ms / 2, loss_pct / 100)
        self.cli, self.srv = self.wire.cli, self.wire.srv

    def describe(self):
        return (f"smx-wire (tests/lib/wire.py) {self.delay_ms / 2:g} ms each way"
                + (f", {self.loss_pct:g} % loss each way" if self.loss_pct else "")
                + f", seed {self.wire.seed}")

    def rtt_ms(self, port, tries=5):
        """Median TCP connect time from the client namespace to SRV_ADDR:port (ms)."""
        try:
            return statistics.median(self.wire.connect_ms(port, tries))
        except OSError:
            return None


class NsSshd(wire.Sshd):
    """fixture.Sshd, but listening on SRV_ADDR inside the server namespace."""

    def __init__(self, netns, workdir, keys, **kw):
        super().__init__(netns.wire, workdir, keys, **kw)


def probe(delay_ms, loss_pct=0.0):
    """(Netns(delay_ms, loss_pct), "") or (None, reason) if no wire can be built here."""
    why = wire.reason()
    if why:
        return None, why
    try:
        return Netns(delay_ms, loss_pct), ""
    except (RuntimeError, OSError) as e:
        return None, str(e)
