"""Fan-out at scale: 500 hosts through one tuned sshd; a stock-config sshd (MaxStartups
10:30:100) at -f 300 with every host through."""
import time

from common import *  # noqa: F403


def test_500_hosts():
    f = Fleet(n=500)
    t0 = time.monotonic()
    r = f.run("--json", "-f", "256", "-w", f.hostlist(), "echo $((6*7))", timeout=300)
    took = time.monotonic() - t0
    rows = json_lines(r.stdout)
    bad = [x for x in rows if not x["ok"]]
    check_eq(bad[:3], [])
    check_eq(len(rows), 500)
    check_eq(len({x["host"] for x in rows}), 500)
    check(all(x["stdout"] == "42\n" for x in rows), "every host printed 42")
    check_rc(r, 0)
    print(f"    500 hosts in {took:.1f}s")


def test_stock_maxstartups_all_through():
    f = Fleet(n=300, stock=True)
    r = f.run("--json", "-f", "300", "-w", f.hostlist(), "true", timeout=300)
    rows = json_lines(r.stdout)
    bad = [x for x in rows if not x["ok"]]
    check_eq([(x["host"], x["error"]) for x in bad][:5], [])
    check_eq(len(rows), 300)
    check_rc(r, 0)
    retried = sum(1 for x in rows if x["attempts"] > 1)
    print(f"    stock sshd: 300/300 ok, {retried} needed a retry")


if __name__ == "__main__":
    main([test_500_hosts, test_stock_maxstartups_all_through])
