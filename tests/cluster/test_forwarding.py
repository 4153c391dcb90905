#!/usr/bin/env python3
"""Forwarding and reads through any node (real 3-node cluster on 127.0.0.1).

A target is applied through node 1, jobs are submitted through each node
alone (followers forward to the leader), and every job is visible from every
node: linearizable reads through followers see a write at once (read your
write through another node), stale reads see it eventually.  With no leader,
a linearizable read fails with exit 3 while a stale read still answers.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clusterlib as cl  # noqa: E402

PER_NODE = 5


def main(t):
    c = t.cluster()
    lead = c.wait_leader()
    followers = [n for n in cl.NODES if n != lead]
    t.log("leader %d, followers %s" % (lead, followers))

    r = c.apply_target("t-fwd", via=1)
    t.check("target applied through node 1", r.get("name") == "t-fwd" and r.get("revision") == 1, str(r))
    r = c.apply_target("t-fwd-f", via=followers[0])
    t.check("target applied through follower node %d" % followers[0],
            r.get("name") == "t-fwd-f" and r.get("revision") == 1, str(r))
    for n in cl.NODES:
        g = c.ctl("target", "get", "t-fwd-f", nodes=[n])
        t.check("target applied via follower visible through node %d" % n,
                g.rc == 0 and g.json().get("name") == "t-fwd-f", repr(g) if g.rc else "")
        g = c.ctl("target", "get", "t-fwd", nodes=[n])
        t.check("target visible (linearizable) through node %d" % n,
                g.rc == 0 and g.json().get("name") == "t-fwd", repr(g) if g.rc else "")

    # Submit through each node alone; read each job back at once through
    # every other node (linearizable: no retry allowed).
    src = c.write_file("src/kernel.c", "int kernel(void) { return 42; }\n")
    submitted = {}  # id -> node it was submitted through
    read_misses = []
    for n in cl.NODES:
        for i in range(PER_NODE):
            r = c.ctl("job", "submit", "--target", "t-fwd", "--request-id", "fwd-%d-%d" % (n, i), src,
                      nodes=[n])
            if r.rc != 0:
                t.check("submit through node %d #%d" % (n, i), False, repr(r))
                continue
            jid = r.json()["id"]
            submitted[jid] = n
            for m in cl.NODES:
                if m == n:
                    continue
                g = c.ctl("job", "get", jid, nodes=[m])
                if g.rc != 0 or g.json().get("id") != jid:
                    read_misses.append("job %d (via %d) read via %d: %r" % (jid, n, m, g))
    t.check("submits through every node (%d per node, followers forward)" % PER_NODE,
            len(submitted) == PER_NODE * len(cl.NODES), "ids %s" % sorted(submitted))
    t.check("read-your-write through another node at once (linearizable, %d reads)"
            % (len(submitted) * 2), not read_misses, "; ".join(read_misses[:5]))

    ids = sorted(submitted)
    for n in cl.NODES:
        jobs = c.all_jobs(n)
        got = sorted(j["id"] for j in jobs)
        t.check("job list --all through node %d (%s) lists every job"
                % (n, "leader" if n == lead else "follower"), got == ids, "got %s" % got)
        ok = all(j["target"] == "t-fwd" and j["state"] == "queued" for j in jobs)
        t.check("jobs through node %d have the target and are queued" % n, ok)

    # Stale reads: eventually the same on every node.
    for n in cl.NODES:
        def stale_all(n=n):
            got = sorted(j["id"] for j in c.all_jobs(n, stale=True))
            return got == ids
        try:
            cl.wait_for("stale job list on node %d" % n, stale_all, 10)
            ok = True
        except cl.TestFailure as e:
            ok = False
            t.log(str(e))
        t.check("--stale job list on node %d eventually lists every job" % n, ok)
        g = c.ctl("job", "get", ids[-1], "--stale", nodes=[n])
        t.check("--stale job get on node %d" % n, g.rc == 0 and g.json().get("id") == ids[-1], repr(g) if g.rc else "")

    # The sources came through intact whichever node forwarded them.
    g = c.ctl_json("job", "get", ids[0], nodes=[followers[0]])
    srcs = g.get("sources", [])
    t.check("job sources recorded (path, size)",
            len(srcs) == 1 and srcs[0]["size"] == os.path.getsize(src) and srcs[0]["path"] == "kernel.c",
            str(srcs))

    # A write refused by the leader is relayed with its error through a follower.
    r = c.ctl("job", "submit", "--target", "no-such-target", src, nodes=[followers[0]])
    t.check("a refused write through a follower: exit 1 and the leader's error relayed",
            r.rc == 1 and "ingotctl: " in r.err, repr(r))

    # Writes through every node again, now through all endpoints, jobs on every node.
    idx, secs = c.wait_converged()
    dumps = c.dumps()
    t.check("all nodes at applied index %d hold identical tables (mdb_dump)" % idx,
            cl.dumps_identical(dumps), cl.dump_diff(dumps))

    # No leader: stop both followers.  Linearizable reads fail (exit 3),
    # stale reads still answer from the node's own state.
    for n in followers:
        c.stop(n)
    r = c.ctl("job", "list", "--all", nodes=[lead], timeout="1500ms")
    t.check("no quorum: linearizable job list exits 3", r.rc == 3, repr(r))
    r = c.ctl("job", "list", "--all", "--stale", nodes=[lead], timeout="3s")
    t.check("no quorum: --stale job list still answers with every job",
            r.rc == 0 and sorted(j["id"] for j in r.json()["jobs"]) == ids, repr(r) if r.rc else "")
    r = c.ctl("status", "--stale", nodes=[lead], timeout="3s")
    t.check("no quorum: status --stale answers", r.rc == 0, repr(r) if r.rc else "")
    r = c.ctl("job", "submit", "--target", "t-fwd", src, nodes=[lead], timeout="1500ms")
    t.check("no quorum: a write exits 3 (unavailable/timeout)", r.rc == 3, repr(r))
    for n in followers:
        c.start(n)
    c.wait_leader()
    r = c.ctl("job", "list", "--all")
    t.check("quorum back: linearizable job list works", r.rc == 0, repr(r) if r.rc else "")
    for n in cl.NODES:
        if c.running(n):
            rc = c.stop(n)
            t.check("node %d stops cleanly on SIGTERM (exit 0)" % n, rc == 0, "exit code %s" % rc)


cl.run_tests(main)
