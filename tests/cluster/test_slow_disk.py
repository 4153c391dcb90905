#!/usr/bin/env python3
"""Stopping a node whose disk is slow (issue 11, item 9; real `ingotd`).

libraft 0.15 crashes in raft_close when two or more leader appends are
still queued behind a write.  ingotd used to wait at most 2 s for the disk
before closing; this test makes the disk slower than that.

A one-node cluster keeps its raft/ directory on an ext4 file system of its
own (a loop device), whose writes the kernel throttles for the node's
process only (blkio cgroup, v1 `blkio.throttle.write_bps_device` or v2
`io.max`) to 1 KiB/s once the node is up: each 4 KiB log write then takes
about 4 s, while state.mdb, elsewhere, stays fast.  20 writes are sent at
once and the node gets SIGTERM half a second later, with the first write
still on the disk and the rest queued behind it (the log line `raft
closing ... last_index=L last_stored=S` shows L - S >= 2).  The node must
wait for the disk and exit 0 (no crash, no sanitizer report), the close
must have taken longer than the old 2 s limit, and after a restart every
write that was acknowledged is there and the log holds every entry it
held at the close.

Needs root, a free loop device, mkfs.ext4 and the blkio/io cgroup
controller; without them it says SKIP and why.
"""
import os
import re
import shutil
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clusterlib as cl  # noqa: E402

BPS = 1024


def sh(*argv):
    p = subprocess.run(list(argv), capture_output=True, timeout=60)
    if p.returncode != 0:
        raise cl.TestFailure("%s: %s" % (" ".join(argv), p.stderr.decode(errors="replace").strip()))
    return p.stdout.decode().strip()


def cgroup_kind():
    """('v1', dir) or ('v2', dir) where a throttling child cgroup can be made, or (None, why)."""
    v1 = "/sys/fs/cgroup/blkio"
    if os.path.exists(os.path.join(v1, "blkio.throttle.write_bps_device")):
        return "v1", v1
    v2 = "/sys/fs/cgroup"
    try:
        with open(os.path.join(v2, "cgroup.controllers")) as f:
            if "io" in f.read().split():
                return "v2", v2
    except OSError:
        pass
    return None, "no blkio (v1) or io (v2) cgroup controller"


class SlowDisk:
    """An ext4 image on a loop device mounted at `mountpoint`, and a cgroup
    that throttles writes to it."""

    def __init__(self, workdir, mountpoint):
        self.image = os.path.join(workdir, "raft-disk.img")
        self.mountpoint = mountpoint
        self.loop = self.mounted = self.cgroup = None

    def setup(self):
        with open(self.image, "wb") as f:
            f.truncate(64 << 20)
        sh("mkfs.ext4", "-q", "-F", self.image)
        self.loop = sh("losetup", "-f", "--show", self.image)
        os.makedirs(self.mountpoint, exist_ok=True)
        sh("mount", self.loop, self.mountpoint)
        self.mounted = True
        with open("/sys/block/%s/dev" % os.path.basename(self.loop)) as f:
            self.devno = f.read().strip()

    def throttle(self, pid, bps):
        kind, root = cgroup_kind()
        self.cgroup = os.path.join(root, "ingot-slowdisk-%d" % os.getpid())
        os.makedirs(self.cgroup, exist_ok=True)
        if kind == "v1":
            with open(os.path.join(self.cgroup, "blkio.throttle.write_bps_device"), "w") as f:
                f.write("%s %d\n" % (self.devno, bps))
        else:
            with open(os.path.join(root, "cgroup.subtree_control"), "w") as f:
                f.write("+io\n")
            with open(os.path.join(self.cgroup, "io.max"), "w") as f:
                f.write("%s wbps=%d\n" % (self.devno, bps))
        with open(os.path.join(self.cgroup, "cgroup.procs"), "w") as f:
            f.write("%d\n" % pid)

    def teardown(self):
        if self.mounted:
            subprocess.run(["umount", self.mountpoint], capture_output=True, timeout=60)
        if self.loop:
            subprocess.run(["losetup", "-d", self.loop], capture_output=True, timeout=60)
        if self.cgroup:
            for _ in range(50):
                try:
                    os.rmdir(self.cgroup)
                    break
                except OSError:
                    time.sleep(0.1)


def missing_requirements():
    if os.geteuid() != 0:
        return "not root"
    for tool in ("losetup", "mkfs.ext4", "mount", "umount"):
        if shutil.which(tool) is None:
            return "no %s" % tool
    kind, why = cgroup_kind()
    if kind is None:
        return why
    p = subprocess.run(["losetup", "-f"], capture_output=True)
    if p.returncode != 0:
        return "no free loop device"
    return None


def stamp(line):
    """Seconds since midnight of a log line's time stamp."""
    m = re.match(r"\d+-\d+-\d+T(\d+):(\d+):(\d+\.\d+)Z", line)
    return int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3))


def main(t):
    why = missing_requirements()
    if why:
        t.log("SKIP: cannot make a slow disk here (%s)" % why)
        return
    c = t.cluster(nodes=(1,), start=False)
    disk = SlowDisk(c.dir, os.path.join(c.data_dir(1), "raft"))
    try:
        disk.setup()
        c.start_all()
        files = [c.write_file("targets/s%d.yaml" % i,
                              "name: s%d\nstages:\n  - name: s\n    argv: [\"true\"]\n" % i)
                 for i in range(20)]
        c.ctl_json("target", "apply", files[0], nodes=[1])  # warm: a segment is open
        disk.throttle(c.pid(1), BPS)
        t.log("raft/ on %s, writes throttled to %d bytes/s for pid %d" % (disk.loop, BPS, c.pid(1)))
        acked = []
        lock = threading.Lock()

        def apply(f):
            r = c.ctl("target", "apply", f, nodes=[1], timeout="60s", proc_timeout=90)
            if r.rc == 0:
                with lock:
                    acked.append(os.path.basename(f)[:-5])

        threads = [threading.Thread(target=apply, args=(f,), daemon=True) for f in files[1:]]
        for th in threads:
            th.start()
        time.sleep(0.8)
        k = c.starts[1]
        t0 = cl.now()
        rc = c.stop(1, timeout=120)
        secs = cl.now() - t0
        for th in threads:
            th.join(timeout=30)
        log = c.log_since(1, k)
        m = re.search(r"^(.*) raft closing raft_node=1 .*last_index=(\d+) last_stored=(\d+)", log, re.M)
        closed = re.search(r"^(.*) raft closed raft_node=1", log, re.M)
        t.require("the close began with log writes outstanding", m is not None, log[-800:])
        behind = int(m.group(2)) - int(m.group(3))
        t.log("SIGTERM to exit: %.1f s; at close %d entries were not on disk yet" % (secs, behind))
        t.check("at close, two or more entries were still being written (the crash's precondition)",
                behind >= 2, m.group(0))
        crash = [s for s in ("AddressSanitizer", "SEGV", "Assertion", "runtime error") if s in log]
        t.check("the node waited for the disk and exited 0, no crash", rc == 0 and not crash,
                "rc=%s crash signs %s; log tail: %s" % (rc, crash, log[-800:]))
        if closed:
            wait = stamp(closed.group(0)) - stamp(m.group(0))
            t.check("the close waited longer than the old 2 s limit (%.1f s)" % wait, wait > 2.0)
        c.start(1)
        c.wait_leader(nodes=[1])
        started = re.search(r"raft started raft_node=1 .*last_index=(\d+)", c.log_since(1, k + 1))
        t.check("every entry proposed before the stop reached the log (last index %s >= %s)"
                % (started and started.group(1), m.group(2)),
                started is not None and int(started.group(1)) >= int(m.group(2)))
        names = set(x["name"] for x in c.ctl_json("target", "list", nodes=[1]))
        missing = sorted(set(acked) - names)
        t.check("after a restart every acknowledged write is there (%d acknowledged)" % len(acked),
                not missing, "missing %s" % missing)
        c.stop(1)
    finally:
        for n in c.nodes:
            if c.running(n):
                c.kill(n)
        disk.teardown()


if __name__ == "__main__":
    cl.run_tests(main)
