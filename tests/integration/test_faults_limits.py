"""Descriptor limits: a run is never limited in hosts by RLIMIT_NOFILE, only in fanout. Every
finished host gives back all its descriptors (libssh forgets, without closing, a descriptor it
was handed once it disconnects: sshmux closes it), so thousands of hosts pass under
`ulimit -n 1024`, and the count sampled during a long run stays at fanout size."""
import resource
import threading
import time

from common import *  # noqa: F403
import faults
from test_faults_session import SANITIZER_MARKS, Watched, check_clean, fd_bound

def limit_nofile(n):
    def f():
        resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))
    return f


def test_thousands_of_hosts_under_ulimit_1024():
    # More hosts than descriptors: a leak of one per host fails the ~1000th and later ones.
    n = 1500
    fixture.raise_fd_limit(8192)   # for the sshd (the client gets 1024)
    f = Fleet(n=n)
    w = Watched(["exec", "-F", f.cfg, "--json", "-f", "100", "-w", f.hostlist(), "true"],
                workdir=f.wd, preexec_fn=limit_nofile(1024)).wait(400)
    rows = check_clean(w, f.names, 0, fd_bound(100))
    bad = [(h, r["error"]) for h, r in rows.items() if not r["ok"]]
    check_eq(bad[:5], [], f"{len(bad)} of {n} hosts failed")
    print(f"    {n} hosts in {w.took:.1f}s, at most {w.fd_max} descriptors")


def sample_after(w, rows_before):
    """Reads w's stdout to the end; from the rows_before-th line on, a thread samples its
    descriptors until it exits (stdout keeps being read: a full pipe would stall sshmux).
    Returns (lines, samples, descriptor targets at the first sample)."""
    lines, late, targets = [], [], {}
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            try:
                late.append(faults.fd_count(w.pid))
            except OSError:
                return
            time.sleep(0.05)
    t = threading.Thread(target=sample, daemon=True)
    for line in w.p.stdout:
        lines.append(line)
        if len(lines) == rows_before:
            targets.update(faults.fd_targets(w.pid))
            t.start()
    stop.set()
    if t.ident:
        t.join()
    return lines, late, targets


def kinds(targets):
    out = {}
    for t in targets.values():
        k = t.split(":")[0]
        out[k] = out.get(k, 0) + 1
    return out


def run_sampled(f, args, n, fanout, rc):
    w = Watched(["exec", "-F", f.cfg, "-f", str(fanout)] + args, workdir=f.wd)
    lines, late, targets = sample_after(w, n // 3)
    out, err = w.p.communicate(timeout=300)
    w._done.set()
    check_eq(w.p.returncode, rc, f"exit status\n{err[-2000:]}")
    for mark in SANITIZER_MARKS:
        check(mark not in err, f"sanitizer report:\n{err}")
    check_eq(len(lines) + len(out.splitlines()), n, "one line per host")
    check(late, "sampled while running")
    check(max(late) <= fd_bound(fanout),
          f"{max(late)} descriptors with {fanout} sessions at once (bound {fd_bound(fanout)}); "
          f"after {n // 3} hosts: {kinds(targets)}")
    print(f"    at most {max(late)} descriptors after {n // 3} of {n} hosts")


def test_descriptors_stay_at_fanout_size():
    # 300 hosts at -f 20: sampled after 100+ hosts finished, the count is what 20 sessions need,
    # not one more per finished host.
    n, fanout = 300, 20
    f = Fleet(n=n)
    run_sampled(f, ["-w", f.hostlist(), "sleep 0.2; echo x"], n, fanout, 0)


def test_failing_hosts_give_back_descriptors():
    # The same for hosts that end early: host key unknown, authentication refused, connection
    # refused, in turn (--json: one line each).
    n, fanout = 300, 20
    f = Fleet(n=n)
    empty_kh = f.wd.file("known_hosts.empty", "")
    refused = fixture.refused_port()
    with open(f.cfg) as cf:
        text = cf.read()
    blocks = text.split("Host ")[1:]
    out = []
    for i, b in enumerate(blocks):
        if i % 4 == 1:
            b = b.replace(f.kh, empty_kh)
        elif i % 4 == 2:
            b = b.replace(f.keys.ed25519, f.keys.ed25519 + ".nope").replace(
                "IdentitiesOnly yes", "IdentitiesOnly yes\n    PreferredAuthentications publickey")
        elif i % 4 == 3:
            b = b.replace(f"Port {f.sshd.port}", f"Port {refused}")
        out.append("Host " + b)
    with open(f.cfg, "w") as cf:
        cf.write("".join(out))
    run_sampled(f, ["--json", "-w", f.hostlist(), "sleep 0.2"], n, fanout, 255)


if __name__ == "__main__":
    main([v for k, v in sorted(globals().items()) if k.startswith("test_")])
