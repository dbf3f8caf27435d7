"""Faults during file transfers, against real sshds: sshmux killed mid-file and the transfer
resumed (--resume, both ways); a remote (and a local) file system that fills up; a host whose
connection dies mid-transfer while 20 others finish; a frozen host and --transfer-timeout;
run-script's remote temp file removed whatever ends the script (failure, -u, SIGINT); SIGINT
during a fleet upload (every row, exit 130, no partial files unless --resume, which then resumes).

Every sshmux run in the background is checked as the fault suite does (test_faults_session):
no signal exit, no sanitizer report, one JSON row per host, the exit status, no descriptor
growth."""
import os
import signal
import subprocess
import time

from common import *  # noqa: F403
import faults
from test_faults_session import Watched, check_clean, fd_bound, remote_procs
from test_files import (PARTIAL, FilesFleet, check_failed_row, check_resumed, make_file,
                        my_scripts, partials, sha256_file)

MiB = 1 << 20


def freeze_and_kill(w, path, size):
    """SIGSTOP sshmux (its transfer stops where it is), check the partial file is short of
    size, then SIGKILL it; returns the partial's size once sshmux is gone (a write a thread of
    its had under way when the stop came still completes)."""
    os.kill(w.pid, signal.SIGSTOP)
    have = os.path.getsize(path)
    check(have < size, f"the transfer finished ({have} bytes) before sshmux could be stopped")
    fixture.kill_tree(w.pid, w.p)
    w.wait(30)
    check_eq(w.rc, -signal.SIGKILL, "sshmux was killed")
    return os.path.getsize(path)


def staged(f, name, size):
    """A LOCAL payload of size random bytes and a fresh remote directory: (src, sha256, rdir)."""
    src = f.wd.file(f"{name}-src/payload.bin")
    return src, make_file(src, size), f.rdir(name)


def host_of(partial):
    """The host of a partial named <rdir>/<host>.bin.sshmux-partial."""
    return os.path.basename(partial)[:-len(".bin" + PARTIAL)]


def wait_sessions_gone(sshd):
    fixture.wait_until(lambda: not faults.serving_pids(sshd), 20, "the server's sessions to end")


# ------------------------------------------------------------------ resume after a kill
def test_resume_after_kill_upload():
    f = FilesFleet(n=1)
    size = 200 * MiB
    src, want, rd = staged(f, "kill", size)
    dst = rd + "/big.bin"
    try:
        w = Watched(["upload", "-F", f.cfg, "--json", "h0001", src, dst], workdir=f.wd)
        faults.wait_size(dst + PARTIAL, 16 * MiB)
        freeze_and_kill(w, dst + PARTIAL, size)
        wait_sessions_gone(f.sshd)   # sftp-server has written what reached it
        have = os.path.getsize(dst + PARTIAL)
        check(not os.path.exists(dst), "the destination appeared before the transfer ended")
        r = f.up("--json", "--resume", "h0001", src, dst, timeout=120)
        e = check_resumed(r, have, size)
        check_eq(json_lines(r.stdout)[0]["bytes"], size - e["resumed_from"], "row bytes")
        check_eq(sha256_file(dst), want, "sha256 after resuming")
        check_eq(partials(rd), [], "partial left")
        print(f"    upload killed at {have >> 20} MiB, resumed from {e['resumed_from']}")
    finally:
        os.unlink(src)


def test_resume_after_kill_download():
    f = FilesFleet(n=1)
    size = 200 * MiB
    rd = f.rdir("killd")
    remote = rd + "/big.bin"
    want = make_file(remote, size, mode=0o644)
    ld = f.ldir("killd-down")
    local = ld + "/big.bin"
    try:
        w = Watched(["download", "-F", f.cfg, "--json", "h0001", remote, ld], workdir=f.wd)
        faults.wait_size(local + PARTIAL, 16 * MiB)
        have = freeze_and_kill(w, local + PARTIAL, size)
        check(not os.path.exists(local), "the destination appeared before the transfer ended")
        e = check_resumed(f.down("--json", "--resume", "h0001", remote, ld, timeout=120), have,
                          size)
        check_eq(sha256_file(local), want, "sha256 after resuming")
        check_eq(os.listdir(ld), ["big.bin"], "partial left")
        print(f"    download killed at {have >> 20} MiB, resumed from {e['resumed_from']}")
    finally:
        for p in (remote, local, local + PARTIAL):
            if os.path.exists(p):
                os.unlink(p)


# ------------------------------------------------------------------ disk full
def small_tmpfs(f, path, owner_uid, owner_gid):
    """A 4 MiB tmpfs on path (root only; skip() when it cannot be mounted), unmounted at exit."""
    if not fixture.IS_ROOT:
        skip("mounting a small tmpfs needs root")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o",
                        f"size=4m,mode=0755,uid={owner_uid},gid={owner_gid}", "sshmux-full", path],
                       capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        skip(f"cannot mount a tmpfs on {path}: {r.stderr.strip()}")
    fixture.on_cleanup(lambda: subprocess.run(["umount", "-l", path], capture_output=True,
                                              timeout=30), f"umount {path}")
    return path


def test_remote_disk_full():
    f = FilesFleet(n=1)
    full = small_tmpfs(f, f.rdir("full"), f.uid, f.gid)
    src = f.wd.file("full-src/eight.bin")
    make_file(src, 8 * MiB)
    r = f.up("--json", "-w", "h0001", src, full + "/eight.bin", timeout=60)
    check_rc(r, 1)
    row = json_lines(r.stdout)[0]
    check_failed_row(row, full + "/eight.bin")
    check_match(r"(?i)no space left on device|disk full", row["error"]["message"],
                "the message says the disk is full")
    check_eq(os.listdir(full), [], "nothing left on the full file system (no partial)")
    r = f.up("-w", "h0001", src, full + "/eight.bin", timeout=60)
    check_rc(r, 1)
    check_match(r"^h0001: sshmux: sftp: .*(no space left on device|disk full)", r.stderr)
    check_eq(os.listdir(full), [], "nothing left on the full file system (no partial)")


def test_local_disk_full():
    f = FilesFleet(n=1)
    rd = f.rdir("lfull")
    make_file(rd + "/eight.bin", 8 * MiB, mode=0o644)
    full = f.ldir("lfull-down")
    os.makedirs(full)
    small_tmpfs(f, full, 0, 0)
    r = f.down("--json", "h0001", rd + "/eight.bin", full, timeout=60)
    check_rc(r, 1)
    row = json_lines(r.stdout)[0]
    check_failed_row(row, "eight.bin")
    check_match(r"(?i)no space left on device|disk full", row["error"]["message"])
    check_eq(os.listdir(full), [], "nothing left on the full local file system")


# ------------------------------------------------------------------ a host lost mid-transfer
def fleet_plus_one(n, alias):
    """FilesFleet of n aliases on one sshd, plus `alias` on a second sshd of its own (so that
    host's connection can be frozen or killed alone)."""
    f = FilesFleet(n=n)
    other = fixture.Sshd(f.wd, f.keys)
    other.write_known_hosts(f.kh, append=True)
    f.add(alias, HostName=fixture.LOOPBACK, Port=other.port, User=f.user,
          IdentityFile=f.keys.ed25519, IdentitiesOnly="yes", UserKnownHostsFile=f.kh)
    return f, other


def test_host_lost_mid_transfer_others_finish():
    n = 20
    f, other = fleet_plus_one(n, "lost")
    size = 32 * MiB
    src, want, rd = staged(f, "lost", size)
    hosts = f.names + ["lost"]
    w = Watched(["upload", "-F", f.cfg, "--json", "-f", str(n + 1), "-w",
                 f"{f.hostlist()},lost", src, rd + "/%h.bin"], workdir=f.wd)
    faults.wait_size(rd + "/lost.bin" + PARTIAL, 1)
    faults.stop_connections(other)          # freeze it where it is, then crash it
    check(os.path.getsize(rd + "/lost.bin" + PARTIAL) < size, "lost's transfer already ended")
    faults.kill_connections(other)
    w.wait(120)
    check(w.rc in (1, 255), f"exit {w.rc}: a host failed, no other failure\n{w.err}")
    rows = check_clean(w, hosts, w.rc, fd_bound(n + 1, per_session=2))
    bad = {h: r["error"] for h, r in rows.items() if not r["ok"]}
    check_eq(sorted(bad), ["lost"], "only the lost host failed")
    check_failed_row(rows["lost"], "")
    check_match(r"(?i)lost|closed|reset|eof", rows["lost"]["error"]["message"])
    check(not os.path.exists(rd + "/lost.bin"), "the lost host's file was completed")
    for h in f.names:
        check_eq(sha256_file(f"{rd}/{h}.bin"), want, h)
        check_eq(rows[h]["bytes"], size, h)


def test_lagging_host_gets_every_block():
    # Fan-out uploads share the blocks read from LOCAL: a host frozen for 2 s mid-file falls far
    # behind the others, which finish meanwhile; once let go it must still get every block.
    f, other = fleet_plus_one(10, "lag")
    size = 48 * MiB + 12345
    src, want, rd = staged(f, "lag", size)
    w = Watched(["upload", "-F", f.cfg, "--json", "-w", f"{f.hostlist()},lag", src,
                 rd + "/%h.bin"], workdir=f.wd)
    faults.wait_size(rd + "/lag.bin" + PARTIAL, 1)
    faults.stop_connections(other)
    check(os.path.getsize(rd + "/lag.bin" + PARTIAL) < size, "lag's transfer already ended")
    fixture.wait_until(lambda: all(os.path.exists(f"{rd}/{h}.bin") for h in f.names), 60,
                       "the other hosts to finish")
    faults.resume_connections(other)
    w.wait(120)
    rows = check_clean(w, f.names + ["lag"], 0, fd_bound(11, per_session=2))
    for h in f.names + ["lag"]:
        check_eq((rows[h]["ok"], rows[h]["bytes"]), (True, size), h)
        check_eq(sha256_file(f"{rd}/{h}.bin"), want, h)


def test_transfer_timeout_frozen_host():
    f, other = fleet_plus_one(3, "frozen")
    size = 32 * MiB
    src, want, rd = staged(f, "frz", size)
    hosts = f.names + ["frozen"]
    w = Watched(["upload", "-F", f.cfg, "--json", "--transfer-timeout", "2", "-w",
                 f"{f.hostlist()},frozen", src, rd + "/%h.bin"], workdir=f.wd)
    faults.wait_size(rd + "/frozen.bin" + PARTIAL, 1)
    faults.stop_connections(other)
    t0 = time.monotonic()
    check(os.path.getsize(rd + "/frozen.bin" + PARTIAL) < size, "frozen's transfer ended")
    w.wait(60)
    took = time.monotonic() - t0
    rows = check_clean(w, hosts, 1, fd_bound(4, per_session=2))
    check_failed_row(rows["frozen"], "")
    check(1.5 <= took < 7, f"--transfer-timeout 2 failed the frozen host after {took:.1f}s")
    for h in f.names:
        check(rows[h]["ok"], f"{h}: {rows[h]['error']}")
        check_eq(sha256_file(f"{rd}/{h}.bin"), want, h)


# ------------------------------------------------------------------ the progress line
def test_progress_line_only_when_forced():
    # The live line needs a run that lasts (it shows after 1 s): the server is frozen for 2 s
    # mid-file, then let go. stderr is a pipe here: only --progress shows it.
    f = FilesFleet(n=1)
    src, want, rd = staged(f, "prog", 8 * MiB)
    for forced in (True, False):
        w = Watched(["upload", "-F", f.cfg] + (["--progress"] if forced else []) +
                    ["-w", "h0001", src, rd + "/p.bin"], workdir=f.wd)
        faults.wait_size(rd + "/p.bin" + PARTIAL, 1)
        faults.stop_connections(f.sshd)
        time.sleep(2)
        faults.resume_connections(f.sshd)
        w.wait(60)
        check_eq(w.rc, 0, f"--progress {forced}: {w.err}")
        check_eq(sha256_file(rd + "/p.bin"), want)
        shown = "0/1 hosts done, 1 running" in w.err
        check_eq(shown, forced, f"progress line shown (--progress: {forced}):\n{w.err!r}")
        if forced:   # (the \r before it reads as a newline through the text-mode pipe)
            check_in("\033[Ksshmux: 0/1 hosts done", w.err, "the line is redrawn in place")


# ------------------------------------------------------------------ run-script's temp file
def test_run_script_temp_file_removed():
    f = FilesFleet(n=2)
    before = my_scripts(f.uid)
    # a failing script
    fail = f.wd.file("rs/fail.sh", "#!/bin/sh\necho started\nexit 5\n")
    r = f.script("--json", "-w", f.hostlist(2), fail)
    check_rc(r, 5)
    check(all(x["stdout"] == "started\n" for x in json_lines(r.stdout)), r.stdout)
    check_eq(my_scripts(f.uid), before, "after a failing script")
    # past -u: TERM (the fleet user is not root, so sshd delivers it), the file removed
    slow = f.wd.file("rs/slow.sh", "#!/bin/sh\nsleep 30\n")
    t0 = time.monotonic()
    r = f.script("--json", "-u", "1", "--kill-grace", "1", "-w", f.hostlist(2), slow)
    check_rc(r, 124)
    check(time.monotonic() - t0 < 10, "-u 1 took too long")
    check(all(x["error"]["stage"] == "timeout" for x in json_lines(r.stdout)), r.stdout)
    check_eq(my_scripts(f.uid), before, "after a -u timeout")
    # SIGINT while the scripts run
    # (a sleep whose shell the TERM ended may outlive it, as with ssh: count only new ones)
    old = set(remote_procs(f.sshd, "sleep"))
    w = Watched(["run-script", "-F", f.cfg, "--json", "-w", f.hostlist(2), slow], workdir=f.wd)
    fixture.wait_until(lambda: len(set(remote_procs(f.sshd, "sleep")) - old) >= 2, 20,
                       "scripts running")
    running = sorted(set(my_scripts(f.uid)) - set(before))
    check_eq(len(running), 2, "one script file per host while they run")
    for p in running:
        st = os.stat(p)
        check_eq((oct(st.st_mode & 0o7777), st.st_uid), (oct(0o700), f.uid), p)
    os.kill(w.pid, signal.SIGINT)
    w.wait(30)
    rows = check_clean(w, f.names[:2], 130, fd_bound(2, per_session=2))
    check(all("canceled (SIGINT)" in r["error"]["message"] for r in rows.values()), rows)
    check_eq(my_scripts(f.uid), before, "after SIGINT")


# ------------------------------------------------------------------ SIGINT during a fleet upload
def sigint_upload(f, src, rd, resume):
    extra = ["--resume"] if resume else []
    w = Watched(["upload", "-F", f.cfg, "--json", "-f", str(len(f.names))] + extra +
                ["-w", f.hostlist(), src, rd + "/%h.bin"], workdir=f.wd)

    def started():
        return len([p for p in partials(rd) if os.path.getsize(p) > 0]) >= len(f.names) // 2
    fixture.wait_until(started, 60, "half the hosts transferring", interval=0.003)
    os.kill(w.pid, signal.SIGINT)
    w.wait(30)
    rows = check_clean(w, f.names, 130, fd_bound(len(f.names), per_session=2))
    canceled = [h for h, r in rows.items() if not r["ok"]]
    check(len(canceled) >= len(f.names) // 2, f"only {canceled} canceled")
    for h in canceled:
        check_in("canceled (SIGINT)", rows[h]["error"]["message"], h)
        check(not os.path.exists(f"{rd}/{h}.bin"), f"{h}: a canceled upload left its file")
    if not resume:
        wait_sessions_gone(f.sshd)   # whatever the servers still had queued is done
        left = {host_of(p): rows[host_of(p)] for p in partials(rd)}
        check_eq(left, {}, "partial files left after SIGINT without --resume (their rows)")
    return canceled


def test_sigint_fleet_upload():
    f = FilesFleet(n=20)
    size = 24 * MiB
    src, want, rd = staged(f, "int", size)
    sigint_upload(f, src, rd, resume=False)
    # with --resume the partials stay, and the next --resume run continues them
    rd = f.rdir("int-resume")
    canceled = sigint_upload(f, src, rd, resume=True)
    kept = {host_of(p) for p in partials(rd)}
    check(kept and kept <= set(canceled), f"partials kept: {sorted(kept)}, canceled {canceled}")
    r = f.up("--json", "--resume", "-w", f.hostlist(), src, rd + "/%h.bin", timeout=180)
    check_rc(r, 0)
    rows = {x["host"]: x for x in json_lines(r.stdout)}
    resumed = sorted(h for h, x in rows.items() if x["files"][0]["resumed_from"] > 0)
    check(resumed and set(resumed) <= kept, f"resumed {resumed}, partials were {sorted(kept)}")
    for h in f.names:
        check_eq(sha256_file(f"{rd}/{h}.bin"), want, h)
    check_eq(partials(rd), [], "partials left after the resumed run")


if __name__ == "__main__":
    main([v for k, v in globals().items() if k.startswith("test_")])
