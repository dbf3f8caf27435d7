"""Jump hosts (ProxyJump / -J) against real sshds: 200 targets through one bastion over exactly
one TCP connection, 2- and 3-hop chains, -J with ssh:// URIs, a bastion that refuses channels
(by policy: the hosts fail; because one connection is full: the rest spill onto more), failures reported with the hop and stage, first-hop credentials (--proxy-*), forwarding through
a bastion."""
import json
import os
import socket
import subprocess
import threading
import time

from common import *  # noqa: F403
import netserv

WD = KEYS = KH = USER = None
SSHD = {}


def setup():
    global WD, KEYS, KH, USER
    WD = fixture.Workdir()
    KEYS = fixture.Keys(WD)
    KH = WD.file("known_hosts", "")
    for name in ("a", "b", "c", "target"):
        SSHD[name] = fixture.Sshd(WD, KEYS)
        SSHD[name].write_known_hosts(KH, append=True)
    USER = fleet_user(WD) or SSHD["a"].user


def config(path, entries):
    """entries: alias -> (sshd name, extra options)."""
    text = ""
    for alias, (name, extra) in entries.items():
        opts = {"HostName": "127.0.0.1", "Port": SSHD[name].port, "User": USER,
                "IdentityFile": KEYS.ed25519, "IdentitiesOnly": "yes",
                "UserKnownHostsFile": KH, "StrictHostKeyChecking": "yes", **(extra or {})}
        text += fixture.ssh_config_entry(alias, **opts)
    # hops named on the command line (-J 127.0.0.1:PORT) fall back to these, as in a real config
    text += fixture.ssh_config_entry("*", UserKnownHostsFile=KH, StrictHostKeyChecking="yes",
                                     IdentityFile=KEYS.ed25519)
    return WD.file(path, text)


def run(cfg, *args, timeout=120):
    r = fixture.run_sshmux(["exec", "-F", cfg, "--json"] + list(args), timeout=timeout)
    return r, {x["host"]: x for x in json_lines(r.stdout)}


def test_200_targets_one_connection_to_the_bastion():
    entries = {"bastion": ("a", None)}
    entries.update({f"t{i:03d}": ("target", {"ProxyJump": "bastion"}) for i in range(1, 201)})
    cfg = config("cfg-200", entries)
    logins = SSHD["a"].log_text().count("Accepted publickey")
    (r, rows), peak = peak_connections(
        SSHD["a"], lambda: run(cfg, "-w", "t[001-200]", "sleep 1; echo $((40+2))"))
    check_rc(r, 0)
    check_eq(len(rows), 200)
    check(all(x["ok"] and x["stdout"] == "42\n" for x in rows.values()), "every target ran")
    # Counted by the bastion (its log: one login per connection) and on the wire (sockets to its
    # port, sampled). The log is the exact count; the sample also sees other processes'
    # sockets, so it only has to agree when it saw anything at all.
    SSHD["a"].wait_log("Accepted publickey")
    check_eq(SSHD["a"].log_text().count("Accepted publickey") - logins, 1,
             "logins (TCP connections) at the bastion")
    check(peak >= 1, "the sampler saw the connection")
    if peak != 1:
        print(f"note: {peak} sockets to the bastion's port seen: {''.join(SNAPSHOTS[:1])}")


def test_two_and_three_hop_chains():
    cfg = config("cfg-chain", {
        "ha": ("a", None), "hb": ("b", None), "hc": ("c", None),
        "two": ("target", {"ProxyJump": "ha,hb"}),
        "three": ("target", {"ProxyJump": "ha,hb,hc"}),
    })
    r, rows = run(cfg, "-w", "two,three", "echo deep")
    check_rc(r, 0)
    check_eq(rows["two"]["stdout"], "deep\n")
    check_eq(rows["three"]["stdout"], "deep\n")
    # the hop before c holds its connection to c until its sshd child notices the end
    SSHD["c"].wait_connections(0, timeout=10)


def test_dash_J_with_uri_and_user_at_host():
    cfg = config("cfg-j", {"t1": ("target", None)})
    a = SSHD["a"]
    r, rows = run(cfg, "-J", f"ssh://{USER}@127.0.0.1:{a.port}", "-o",
                  f"IdentityFile={KEYS.ed25519}", "-w", "t1", "echo via-uri")
    check_rc(r, 0, r.stderr)
    check_eq(rows["t1"]["stdout"], "via-uri\n")
    r, rows = run(cfg, "-J", f"{USER}@127.0.0.1:{a.port}", "-w", "t1", "true")
    check_rc(r, 0, r.stderr)


def test_bastion_refusing_channels():
    refusing = fixture.Sshd(WD, KEYS, extra_config="AllowTcpForwarding no\n")
    refusing.write_known_hosts(KH, append=True)
    SSHD["refusing"] = refusing
    cfg = config("cfg-refuse", {"nofwd": ("refusing", None),
                                "t1": ("target", {"ProxyJump": "nofwd"}),
                                "t2": ("target", {"ProxyJump": "nofwd"})})
    t0 = time.monotonic()
    r, rows = run(cfg, "-w", "t1,t2", "true")
    check_rc(r, 255)
    check(time.monotonic() - t0 < 10, "refusals are quick")
    for name in ("t1", "t2"):
        err = rows[name]["error"]
        check_eq(err["stage"], "connect")
        check_eq(err["hop"], 1)
        check_in("nofwd", err["message"])
        check_in("could not open a channel", err["message"])


SNAPSHOTS = []


def peak_connections(sshd, fn):
    """Runs fn() while sampling sshd's established connections; returns (fn(), peak). The
    first time the count passes 1, `ss` output for the port goes into SNAPSHOTS (diagnostics)."""
    peak, stop = [0], [False]

    def sample():
        while not stop[0]:
            n = sshd.count_established_connections()
            if n > max(peak[0], 1) and not SNAPSHOTS:
                try:
                    ss = subprocess.run(["ss", "-tanpo"], capture_output=True, text=True).stdout
                except OSError:   # no iproute2
                    ss = open("/proc/net/tcp").read()
                SNAPSHOTS.append("\n".join(l for l in ss.splitlines()
                                            if f":{sshd.port}" in l or f":{sshd.port:04X}" in l))
            peak[0] = max(peak[0], n)
            time.sleep(0.05)

    t = threading.Thread(target=sample)
    t.start()
    try:
        return fn(), peak[0]
    finally:
        stop[0] = True
        t.join()


def test_full_bastion_spills_onto_a_second_connection():
    # A real sshd that runs out of descriptors: each per-connection sshd can hold ~30
    # direct-tcpip channels, then refuses with "open failed" (reason 2), like a bastion with a
    # channel cap. 100 targets held open at once need several connections; none may fail.
    full = fixture.Sshd(WD, KEYS, nofile=40)
    full.write_known_hosts(KH, append=True)
    SSHD["full"] = full
    entries = {"full": ("full", None)}
    entries.update({f"f{i:03d}": ("target", {"ProxyJump": "full"}) for i in range(1, 101)})
    cfg = config("cfg-full", entries)
    r, rows = run(cfg, "-f", "100", "-w", "f[001-100]", "sleep 2; echo ok")
    logins = full.log_text().count("Accepted publickey")
    check_rc(r, 0, r.stderr[-2000:])
    check_eq(len(rows), 100)
    check(all(x["ok"] and x["stdout"] == "ok\n" for x in rows.values()), "every target ran")
    check(2 <= logins <= 8, f"{logins} connections to the full bastion (want 2..8)")
    check_in("Too many open files", full.log_text(), "the bastion did refuse channels")
    check(any(x["attempts"] > 1 for x in rows.values()), "refused targets were retried")
    check_in("needed more than one attempt", r.stderr, "the summary says so")


def test_failures_name_the_hop_and_stage():
    dead = fixture.refused_port()
    cfg = config("cfg-fail", {
        "ha": ("a", None),
        "deadhop": ("a", {"Port": dead}),
        "badauth": ("b", {"User": "no-such-user-sshmux"}),
        "via-dead": ("target", {"ProxyJump": "deadhop"}),
        "via-badauth": ("target", {"ProxyJump": "ha,badauth"}),
        "good": ("target", {"ProxyJump": "ha"}),
    })
    r, rows = run(cfg, "-w", "via-dead,via-badauth,good", "true")
    check_rc(r, 255)
    check_eq(rows["good"]["ok"], True)
    check_eq(rows["via-dead"]["error"]["hop"], 1)
    check_eq(rows["via-dead"]["error"]["stage"], "connect")
    check_in("deadhop", rows["via-dead"]["error"]["message"])
    check_eq(rows["via-badauth"]["error"]["hop"], 2)
    check_eq(rows["via-badauth"]["error"]["stage"], "auth")
    check_in("badauth", rows["via-badauth"]["error"]["message"])


def test_proxy_credentials_for_the_first_hop():
    # A bastion that takes only the ecdsa key and a target that takes only ed25519.
    bastion = fixture.Sshd(WD, KEYS, authorized=[KEYS.ecdsa_pub])
    bastion.write_known_hosts(KH, append=True)
    target = fixture.Sshd(WD, KEYS, authorized=[KEYS.ed25519_pub])
    target.write_known_hosts(KH, append=True)
    SSHD["kb"], SSHD["kt"] = bastion, target
    cfg = config("cfg-proxy", {"kt1": ("kt", None)})
    with open(KEYS.ecdsa) as f:
        content = f.read()
    r = fixture.run_sshmux(["exec", "-F", cfg, "--json", "-J", f"127.0.0.1:{bastion.port}",
                            "--proxy-user", USER, "--proxy-key-env", "BASTION_KEY", "-w", "kt1",
                            "echo ok"], env={"BASTION_KEY": content})
    check_rc(r, 0, r.stderr)
    check("PRIVATE KEY" not in r.stdout + r.stderr, "key content leaked")
    r = fixture.run_sshmux(["exec", "-F", cfg, "--json", "-J", f"127.0.0.1:{bastion.port}",
                            "--proxy-user", USER, "--proxy-key", KEYS.ecdsa, "-w", "kt1", "true"])
    check_rc(r, 0, r.stderr)
    # without the bastion's key: the first hop fails at auth
    r = fixture.run_sshmux(["exec", "-F", cfg, "--json", "-J", f"{USER}@127.0.0.1:{bastion.port}",
                            "-w", "kt1", "true"])
    check_rc(r, 255)
    err = json_lines(r.stdout)[0]["error"]
    check_eq((err["stage"], err["hop"]), ("auth", 1))


def test_forward_through_a_bastion():
    echo = netserv.Server(netserv.echo)
    cfg = config("cfg-fwd", {"ha": ("a", None), "t1": ("target", {"ProxyJump": "ha"})})
    p = fixture.spawn([fixture.sshmux_bin(), "forward", "-F", cfg, "-L",
                       f"0:127.0.0.1:{echo.port}", "t1"], workdir=WD)
    line = p.stdout.readline()
    port = int(line.split()[1].rsplit(":", 1)[1])
    payload = os.urandom(1 << 20)
    c = socket.create_connection(("127.0.0.1", port))
    threading.Thread(target=lambda: (c.sendall(payload), c.shutdown(socket.SHUT_WR))).start()
    check(netserv.recv_all(c) == payload, "echo through bastion differs")
    p.terminate()
    check_eq(p.wait(10), 0)


if __name__ == "__main__":
    setup()
    main([v for k, v in sorted(globals().items()) if k.startswith("test_")])
