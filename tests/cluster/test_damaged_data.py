#!/usr/bin/env python3
"""A damaged data directory (real `ingotd` on 127.0.0.1; issue 11, items 11, 12).

1. Damage at start, each on a copy of the same stopped
   one-node directory (about 40 entries, snapshots every 16): a corrupt
   byte in the last closed segment, the last closed segment truncated to
   zero, both metadata files damaged, the newest snapshot (a 16-byte
   reference in its LZ4 frame) cut to half its size, `state.mdb` truncated
   to half, an emptied `raft/` directory, and (after a `kill -9`) a
   corrupt batch in the open segment.
   Each start exits 1 within 15 s (no abort, no spin, no signal) naming
   the damaged file or saying the log ends before the store, and says how
   to bring the node back (`member remove`, `--join`); the open segment's
   corruption, which libraft 0.15 reports only as a trace, is a warn line.
   The untouched copy starts and serves.
2. The advice works (3 nodes): node 3's `raft/` is emptied while it is
   stopped; it refuses to start (exit 1); `ingotctl member remove 3`, an
   empty data directory and `--join` bring it back as a voter with every
   acknowledged job and a byte-identical store.
3. A follower that restarts right after installing a snapshot (a copy of
   the leader's state, which may hold entries past the snapshot's index,
   and so past the follower's log) is not refused: node 3 is stopped, the
   leader's log moves past what it keeps, node 3 is started and killed
   (`kill -9`) the moment it logs the install, and starts again to serve
   with a byte-identical store.
"""
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clusterlib as cl  # noqa: E402

SIGNS_OF_CRASH = ("Assertion", "AddressSanitizer", "runtime error", "SIGBUS", "Aborted")


def write_targets(c, n, prefix, via=1):
    for i in range(n):
        f = c.write_file("targets/%s%d.yaml" % (prefix, i),
                         "name: %s%d\nstages:\n  - name: s\n    argv: [\"true\"]\n" % (prefix, i))
        c.ctl_json("target", "apply", f, nodes=[via])


def raft_files(d):
    return sorted(os.listdir(os.path.join(d, "raft")))


def segments(d):
    """Closed segments, oldest first."""
    return [f for f in raft_files(d) if len(f) == 33 and f[16] == "-"]


def damage_cases(d):
    """(name, function(data_dir) -> what the error must name)."""
    def corrupt_closed(dd):
        seg = segments(dd)[-1]
        with open(os.path.join(dd, "raft", seg), "r+b") as f:
            f.seek(40)
            f.write(b"\xff\xff\xff\xff")
        return seg

    def truncate_closed(dd):
        seg = segments(dd)[-1]
        open(os.path.join(dd, "raft", seg), "wb").close()
        return seg

    def metadata(dd):
        for m in ("metadata1", "metadata2"):
            p = os.path.join(dd, "raft", m)
            if os.path.exists(p):
                with open(p, "r+b") as f:
                    f.write(b"\x07")
        return "metadata1 nor metadata2"

    def snapshot(dd):
        snaps = sorted((f for f in raft_files(dd) if f.startswith("snapshot-") and not f.endswith(".meta")),
                       key=lambda f: tuple(int(x) for x in f.split("-")[1:]))
        p = os.path.join(dd, "raft", snaps[-1])
        with open(p, "r+b") as f:
            f.truncate(os.path.getsize(p) // 2)
        return snaps[-1]

    def state(dd):
        p = os.path.join(dd, "state.mdb")
        with open(p, "r+b") as f:
            f.truncate(os.path.getsize(p) // 2)
        return "state.mdb is truncated"

    def emptied(dd):
        for f in raft_files(dd):
            os.unlink(os.path.join(dd, "raft", f))
        return "before the store's applied index"

    return [("a corrupt byte in the last closed segment", corrupt_closed),
            ("the last closed segment truncated to zero", truncate_closed),
            ("both metadata files damaged", metadata),
            ("the newest snapshot cut to half its size", snapshot),
            ("state.mdb truncated to half", state),
            ("an emptied raft/ directory", emptied)]


def start_must_refuse(t, c, label, names, advice=True):
    c.start(1)
    k = c.starts[1]
    rc = c.wait_exit(1, 15)
    if rc is None:
        c.kill(1)
    log = c.log_since(1, k)
    crash = [s for s in SIGNS_OF_CRASH if s in log]
    t.check("%s: exit 1 within 15 s, no crash" % label, rc == 1 and not crash,
            "rc=%s crash signs %s; log tail: %s" % (rc, crash, log[-600:]))
    t.check("%s: the error names %r" % (label, names), names in log, log[-600:])
    if advice:
        t.check("%s: the log says how to bring the node back" % label,
                "member remove 1" in log and "--join" in log, log[-800:])
    return log


def damaged_at_start(t, c):
    c.stop(1)
    pristine = c.path("pristine")
    shutil.copytree(c.data_dir(1), pristine)
    t.log("stopped node 1: raft/ holds %s" % raft_files(pristine))
    for label, damage in damage_cases(pristine):
        shutil.rmtree(c.data_dir(1))
        shutil.copytree(pristine, c.data_dir(1))
        names = damage(c.data_dir(1))
        start_must_refuse(t, c, label, names)

    # An open segment (left by kill -9) with a corrupt batch: libraft
    # truncates it at that batch and says so only in a trace.
    shutil.rmtree(c.data_dir(1))
    shutil.copytree(pristine, c.data_dir(1))
    c.start(1)
    c.wait_leader(nodes=[1])
    write_targets(c, 5, "open")
    c.kill(1)
    opens = [f for f in raft_files(c.data_dir(1)) if f.startswith("open-")]
    seg = None
    for f in sorted(opens, key=lambda x: int(x.split("-")[1])):
        with open(os.path.join(c.data_dir(1), "raft", f), "rb") as fh:
            if fh.read(8) == b"\x01" + b"\x00" * 7:  # libraft's disk format 1: written to
                seg = f
    t.require("kill -9 left an open segment with entries", seg is not None, str(opens))
    with open(os.path.join(c.data_dir(1), "raft", seg), "r+b") as f:
        f.seek(8 + 8 + 4)
        f.write(b"\x5a\x5a\x5a\x5a")
    log = start_must_refuse(t, c, "a corrupt batch in the open segment %s" % seg,
                            "before the store's applied index")
    warn = [ln for ln in log.splitlines() if " WARN " in ln and "raft log damage found at start" in ln
            and seg in ln]
    t.check("libraft's truncation of the open segment is a warn line", warn, "\n".join(warn)[:600])

    shutil.rmtree(c.data_dir(1))
    shutil.copytree(pristine, c.data_dir(1))
    c.start(1)
    c.wait_leader(nodes=[1])
    t.check("the undamaged copy starts and serves", c.ctl("target", "list", nodes=[1]).rc == 0)
    c.stop(1)


def advice_works(t):
    c = t.cluster(name="damaged-rejoin")
    write_targets(c, 10, "r", via=2)
    idx, _ = c.wait_converged()
    c.stop(3)
    for f in raft_files(c.data_dir(3)):
        os.unlink(os.path.join(c.data_dir(3), "raft", f))
    c.start(3)
    rc = c.wait_exit(3, 15)
    if rc is None:
        c.kill(3)
    log = c.log_since(3, c.starts[3])
    t.check("node 3 with an emptied raft/ refuses to start (exit 1) saying how to rejoin",
            rc == 1 and "member remove 3" in log and "--join" in log, "rc=%s %s" % (rc, log[-500:]))
    r = c.member("remove", 3, via=1)
    t.check("member remove 3 through node 1", r.ok, repr(r))
    shutil.rmtree(c.data_dir(3))
    c.configure(3, peers=None)
    c.start(3, args=("--join", cl.api_ep(1)))
    c.wait_config({1: "voter", 2: "voter", 3: "voter"}, nodes=[1, 2, 3], timeout=40)
    c.wait_converged(nodes=[1, 2, 3])
    names = sorted(x["name"] for x in c.ctl_json("target", "list", "--stale", nodes=[3]))
    t.check("node 3 is back as a voter with every target",
            all(("r%d" % i) in names for i in range(10)), str(names))
    dumps = c.dumps(nodes=[1, 2, 3])
    t.check("byte-identical stores", cl.dumps_identical(dumps), cl.dump_diff(dumps))
    for n in (1, 2, 3):
        c.stop(n)


def restart_after_install(t):
    c = t.cluster(name="install-restart",
                  overrides={"snapshot_threshold": 16, "snapshot_trailing": 4,
                             "snapshot_interval_ms": 0})
    write_targets(c, 4, "a", via=1)
    c.wait_converged()
    c.stop(3)
    # Far past what the leader keeps (16 + 4): node 3 needs a snapshot.
    # The last few land after the leader's latest reference, so the copy
    # it installs holds entries past that snapshot's index.
    write_targets(c, 45, "b", via=1)
    c.start(3)
    k = c.starts[3]
    installed = cl.wait_for("node 3 installs a snapshot",
                            lambda: "snapshot restored" in c.log_since(3, k), 30, interval=0.01)
    c.kill(3)
    t.log("node 3 killed right after it installed a snapshot")
    c.start(3)
    k = c.starts[3]
    rc = c.wait_exit(3, 5)
    log = c.log_since(3, k)
    cover = [ln for ln in log.splitlines() if "raft log covers the store" in ln]
    t.check("node 3 restarted after the install is not refused", rc is None and installed and cover,
            "rc=%s %s" % (rc, log[-600:]))
    t.log("at the restart: %s" % (cover[0].split("raft log covers the store", 1)[1] if cover else "?"))
    c.wait_converged(nodes=[1, 2, 3])
    names = sorted(x["name"] for x in c.ctl_json("target", "list", "--stale", nodes=[3]))
    t.check("node 3 serves every target", len(names) == 49, str(len(names)))
    dumps = c.dumps(nodes=[1, 2, 3])
    t.check("byte-identical stores", cl.dumps_identical(dumps), cl.dump_diff(dumps))


def main(t):
    c = t.cluster(nodes=(1,), overrides={"snapshot_threshold": 16, "snapshot_trailing": 4,
                                         "snapshot_interval_ms": 0})
    write_targets(c, 40, "t")
    damaged_at_start(t, c)
    advice_works(t)
    restart_after_install(t)


if __name__ == "__main__":
    cl.run_tests(main)
