#!/usr/bin/env python3
"""Snapshot catch-up (real 3-node cluster on 127.0.0.1).

With snapshot_threshold 64 and snapshot_trailing 16, a follower is killed
(kill -9), ~300 jobs are submitted, and the follower is restarted: the leader
no longer has the entries it missed, so it must install a snapshot ("snapshot
restored ... replaced=yes" in its log), catch up to the others' applied index,
and hold byte-identical tables (mdb_dump).  It is then killed and restarted
once more (starting from the installed snapshot) and must still agree.
Finally every node is killed (kill -9) and started: each restarts from its
snapshot and log tail, with tables identical to before and dedupe intact.
"""
import os
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clusterlib as cl  # noqa: E402

JOBS = 300
THREADS = 4


def submit_many(t, c, src, prefix, count):
    """Submits `count` jobs over THREADS threads (request ids prefix-i);
    returns {request id: job id} of the acknowledged ones."""
    acked, errors, lock = {}, [], threading.Lock()

    def run(k):
        for i in range(k, count, THREADS):
            rid = "%s-%d" % (prefix, i)
            r = c.ctl("job", "submit", "--target", "t-snap", "--request-id", rid, src, timeout="10s")
            with lock:
                if r.rc == 0:
                    acked[rid] = r.json()["id"]
                else:
                    errors.append(repr(r))
    ths = [threading.Thread(target=run, args=(k,), daemon=True) for k in range(THREADS)]
    for th in ths:
        th.start()
    for th in ths:
        th.join(timeout=120)
    t.check("%d submits acknowledged" % count, len(acked) == count and not errors, "; ".join(errors[:3]))
    return acked


def main(t):
    c = t.cluster(overrides={"snapshot_threshold": 64, "snapshot_trailing": 16,
                             "snapshot_interval_ms": 0})
    c.apply_target("t-snap")
    lead = c.wait_leader()
    victim = max(n for n in cl.NODES if n != lead)
    src = c.write_file("src/snap.c", "int snap;\n")
    submit_many(t, c, src, "pre", 20)
    c.wait_converged()

    c.kill(victim)
    t.log("killed follower node %d (kill -9); leader is node %d" % (victim, lead))
    log_len = len(c.log(victim))
    t0 = cl.now()
    acked = submit_many(t, c, src, "snap", JOBS)
    t.log("%d submits with node %d down took %.1f s" % (JOBS, victim, cl.now() - t0))
    taken = [ln for ln in c.log(lead).splitlines() if "raft snapshot taken" in ln and " reference=" in ln]
    t.check("leader took reference snapshots (%d 'raft snapshot taken ... reference=' lines)" % len(taken),
            len(taken) >= 2, taken[-1] if taken else "")
    sizes = c.snapshot_file_sizes(lead)
    t.check("the leader's raft/ keeps references, not copies (snapshot files of %s bytes)" % sizes,
            sizes and max(sizes) < 100, repr(sizes))

    t0 = cl.now()
    c.restart(victim)
    idx, _ = c.wait_converged(nodes=list(cl.NODES), timeout=60)
    t.log("CATCH-UP by snapshot: node %d reached applied index %d in %.2f s (restart included)"
          % (victim, idx, cl.now() - t0))
    new_log = c.log(victim)[log_len:]
    restored = [ln for ln in new_log.splitlines() if "snapshot restored" in ln]
    t.check("restarted node %d installed a snapshot ('snapshot restored ... replaced=yes')" % victim,
            any("replaced=yes" in ln for ln in restored), "; ".join(restored) or "no 'snapshot restored' line")
    # Whichever node led when node `victim` came back made the copy: on a
    # loaded machine leadership may have moved during the submits.
    copied = [ln for n in cl.NODES if n != victim
              for ln in c.log(n).splitlines() if "raft snapshot copied for install" in ln]
    t.check("a leader copied its state for that install", len(copied) >= 1, "no 'copied for install' line")
    dumps = c.dumps()
    t.check("mdb_dump identical on all three nodes at index %d" % idx, cl.dumps_identical(dumps),
            cl.dump_diff(dumps))
    jobs = c.all_jobs(victim, stale=True)
    t.check("node %d serves all %d jobs from its own state" % (victim, JOBS + 20),
            len(jobs) == JOBS + 20 and set(acked.values()) <= {j["id"] for j in jobs}, "%d jobs" % len(jobs))

    # Restart from the installed snapshot (kill -9 again), with more writes meanwhile.
    c.kill(victim)
    submit_many(t, c, src, "post", 30)
    t0 = cl.now()
    c.restart(victim)
    idx, _ = c.wait_converged(nodes=list(cl.NODES), timeout=60)
    t.log("node %d restarted from its snapshot and caught up to %d in %.2f s" % (victim, idx, cl.now() - t0))
    dumps = c.dumps()
    t.check("after a second restart of node %d: mdb_dump identical at index %d" % (victim, idx),
            cl.dumps_identical(dumps), cl.dump_diff(dumps))
    # Every node now starts from a snapshot plus a log tail: kill -9 all, start all.
    for n in cl.NODES:
        c.kill(n)
    t0 = cl.now()
    c.start_all()
    idx2, _ = c.wait_converged(nodes=list(cl.NODES), timeout=60)
    t.log("kill -9 of all, restart from snapshots: converged at %d after %.2f s" % (idx2, cl.now() - t0))
    # The victim still holds the copy it installed until its own next snapshot.
    others = [n for n in cl.NODES if n != victim]
    checked = [n for n in others if "raft snapshot reference checked" in c.log(n)]
    t.check("nodes %s restarted from a reference checked against their store" % others,
            checked == others, repr(checked))
    again = c.dumps()
    # A leader other than the one before may be elected after the restart
    # and then records a leader_changed cluster event: that is the only
    # change allowed.
    changes = {n: cl.changes_besides_cluster_events(dumps[n], again[n]) for n in cl.NODES}
    for n in cl.NODES:
        if changes[n][1]:
            t.log("node %d: %d cluster event(s) recorded after the restart" % (n, len(changes[n][1])))
    t.check("kill -9 of all and restart from snapshots: stores as before (cluster events aside)",
            all(not changes[n][0] for n in cl.NODES),
            "; ".join("node %d: %s" % (n, ", ".join(changes[n][0][:5])) for n in cl.NODES if changes[n][0]))
    t.check("and identical on every node", cl.dumps_identical(again), cl.dump_diff(again))
    r = c.ctl("job", "submit", "--target", "t-snap", "--request-id", "snap-0", src)
    t.check("a request id from before the restarts still returns its first job",
            r.rc == 0 and r.json()["id"] == acked["snap-0"], repr(r))
    t.check("and created nothing", len(c.all_jobs()) == JOBS + 50)
    errs = [ln for n in cl.NODES for ln in c.log(n).splitlines() if " ERROR " in ln]
    t.check("no ERROR lines in the node logs", not errs, "; ".join(errs[:5]))
    for n in cl.NODES:
        rc = c.stop(n)
        t.check("node %d stops cleanly on SIGTERM (exit 0)" % n, rc == 0, "exit code %s" % rc)


cl.run_tests(main)
