"""sshmux forward -L ... TARGET -- CMD: the command runs over the same connection as the forwards
(one SSH connection carries a session channel and direct-tcpip channels at once), as
`ssh -L ... host cmd` does: its output is printed, the forwards serve while it runs and close when
it ends, and sshmux exits with its status (255 when the connection fails, 130 on SIGINT)."""
import os
import signal
import socket
import time

from common import *  # noqa: F403
import faults
import netserv

F = None


def setup():
    global F
    F = Fleet(n=3)


def spawn_forward(*args):
    """Starts sshmux forward; returns (process, local address) once its listener is printed."""
    p = fixture.spawn([fixture.sshmux_bin(), "forward", "-F", F.cfg] + list(args), workdir=F.wd)
    line = p.stdout.readline()
    if not line:
        raise Failure(f"sshmux forward exited early: {p.wait(5)} {p.stderr.read()}")
    return p, line.split()[1]


def echo_through(local, payload):
    c = socket.create_connection(("127.0.0.1", int(local.rsplit(":", 1)[1])), timeout=10)
    c.sendall(payload)
    c.shutdown(socket.SHUT_WR)
    got = netserv.recv_all(c)
    c.close()
    return got


def test_forwards_while_the_command_runs_then_exits_with_its_status():
    echo = netserv.Server(netserv.echo)
    p, local = spawn_forward("-L", f"0:127.0.0.1:{echo.port}", "h0001", "--",
                             "sleep 2; echo remote-done; echo to-stderr >&2; exit 7")
    check_eq(echo_through(local, b"while the command runs"), b"while the command runs")
    rc = p.wait(30)
    out, err = p.stdout.read(), p.stderr.read()
    check_eq(rc, 7, err)
    check_in("remote-done", out)
    check("to-stderr" not in out, out)
    check_in("to-stderr", err)
    try:   # the listener went with the command
        socket.create_connection(("127.0.0.1", int(local.rsplit(":", 1)[1])), timeout=2).close()
        raise Failure("the forward still listens after the command ended")
    except ConnectionRefusedError:
        pass


def test_one_connection_carries_both():
    # sshd logs one accepted session per connection: the command and the forward share one.
    echo = netserv.Server(netserv.echo)
    before = F.sshd.log_text().count("Accepted publickey for ")
    p, local = spawn_forward("-L", f"0:127.0.0.1:{echo.port}", "h0002", "--", "sleep 1; exit 0")
    check_eq(echo_through(local, b"x"), b"x")
    check_eq(p.wait(30), 0, p.stderr.read())
    fixture.wait_until(lambda: F.sshd.log_text().count("Accepted publickey for ") > before, 10, "sshd's log")
    check_eq(F.sshd.log_text().count("Accepted publickey for ") - before, 1)


def test_exit_zero_and_no_command_output_mixup():
    p, _ = spawn_forward("-L", "0:127.0.0.1:9", "h0001", "--", "printf 'a\\nb\\n'")
    check_eq(p.wait(30), 0)
    check_eq(p.stdout.read(), "a\nb\n")


def test_sigint_ends_the_command_with_130():
    p, local = spawn_forward("-L", "0:127.0.0.1:9", "h0001", "--", "sleep 60")
    time.sleep(1)
    p.send_signal(signal.SIGINT)
    check_eq(p.wait(20), 130, p.stderr.read())


def test_lost_connection_is_255_and_named():
    p, local = spawn_forward("-L", "0:127.0.0.1:9", "h0003", "--", "sleep 60")
    time.sleep(1)
    faults.kill_connections(F.sshd)
    rc = p.wait(30)
    err = p.stderr.read()
    check_eq(rc, 255, err)
    check_in("h0003", err)
    check_in("connection lost", err)


def test_reset_connection_is_255():
    p, local = spawn_forward("-L", "0:127.0.0.1:9", "h0003", "--", "sleep 60")
    time.sleep(1)
    check(faults.reset_connections(F.sshd.port) > 0, "no connection to reset")
    rc = p.wait(30)
    err = p.stderr.read()
    check_eq(rc, 255, err)
    check_in("h0003", err)


def test_frozen_server_found_by_keepalives_is_255():
    echo = netserv.Server(netserv.echo)
    t0 = time.monotonic()
    p, local = spawn_forward("-o", "ServerAliveInterval=1", "-o", "ServerAliveCountMax=2", "-L",
                             f"0:127.0.0.1:{echo.port}", "h0003", "--", "sleep 60")
    check_eq(echo_through(local, b"before"), b"before")
    faults.stop_connections(F.sshd)
    try:
        rc = p.wait(30)
    finally:
        faults.resume_connections(F.sshd)
    err = p.stderr.read()
    check_eq(rc, 255, err)
    check_in("not responding", err)
    check(time.monotonic() - t0 < 20, "keepalives took too long")


def test_fleet_runs_the_command_on_every_host():
    echo = netserv.Server(netserv.echo)
    base = free_port_run(3)
    r = fixture.run_sshmux(["forward", "-F", F.cfg, "-L", f"0:127.0.0.1:{echo.port}",
                            "--base-port", str(base), "-w", "h[0001-0003]", "--",
                            "test $(hostname) = $(hostname) && exit 3"], timeout=60)
    check_rc(r, 3)
    check_eq(sorted(l.split()[0] for l in r.stdout.splitlines()
                    if l.startswith("h0")), ["h0001", "h0002", "h0003"])


if __name__ == "__main__":
    setup()
    main([v for k, v in sorted(globals().items()) if k.startswith("test_")])
