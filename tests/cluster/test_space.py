#!/usr/bin/env python3
"""A store near its ceiling refuses new jobs, nothing else (real 3-node
cluster on 127.0.0.1).

Every node runs with a deliberately small store (store_map_max_bytes 8 MiB,
store_reserve_bytes 4 MiB).  Jobs with 32 KiB sources are submitted until the
cluster answers no_space; then: the refusal is the no_space error naming the
ceiling, on every node; reads (job list, job get) and another write kind
(target put) still work; every acknowledged job is there; the nodes never
stopped and their stores are identical (mdb_dump).  With the ceiling raised
(store_map_max_bytes 64 MiB, every node restarted), submits are accepted
again and the earlier jobs are all still there.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clusterlib as cl  # noqa: E402

MAX_SUBMITS = 400


def main(t):
    c = t.cluster(overrides={"store_map_max_bytes": 8 << 20, "store_reserve_bytes": 4 << 20})
    c.apply_target("t-space")
    c.wait_leader()
    acked, refusal = [], None
    for i in range(MAX_SUBMITS):
        src = c.write_file("src/s%d.c" % i, "/* %d */\n" % i + "x" * (32 << 10) + "\n")
        r = c.ctl("job", "submit", "--target", "t-space", src, nodes=[1 + i % 3])
        if r.rc == 0:
            acked.append(r.json()["id"])
            continue
        refusal = r
        break
    t.log("%d jobs accepted before the first refusal" % len(acked))
    t.check("submits are refused before the store fills (after %d accepted)" % len(acked),
            refusal is not None and len(acked) > 10, repr(refusal))
    t.check("the refusal is no_space, exit 1, naming the ceiling",
            refusal is not None and refusal.rc == 1 and "no_space" in refusal.err
            and "store_map_max_bytes" in refusal.err, repr(refusal))
    src = c.write_file("src/last.c", "int last;\n")
    for n in cl.NODES:
        r = c.ctl("job", "submit", "--target", "t-space", src, nodes=[n])
        t.check("node %d refuses a new job too (no_space)" % n, r.rc == 1 and "no_space" in r.err, repr(r))
    jobs = c.all_jobs()
    t.check("reads go on: job list has every acknowledged job (%d)" % len(acked),
            set(acked) <= {j["id"] for j in jobs}, "%d listed" % len(jobs))
    r = c.ctl("job", "get", str(acked[0]))
    t.check("job get works", r.rc == 0 and r.json()["id"] == acked[0], repr(r))
    c.apply_target("t-space2")
    t.check("other writes go on (target put)", c.ctl("target", "get", "t-space2").rc == 0)
    c.wait_converged()
    dumps = c.dumps()
    t.check("stores identical on all three nodes", cl.dumps_identical(dumps), cl.dump_diff(dumps))
    errs = [ln for n in cl.NODES for ln in c.log(n).splitlines() if "store failed" in ln or " fatal " in ln]
    t.check("no node's store failed", not errs, "; ".join(errs[:3]))

    for n in cl.NODES:
        c.stop(n)
        c.configure(n, store_map_max_bytes=64 << 20)
    c.start_all()
    c.wait_leader()
    r = c.ctl("job", "submit", "--target", "t-space", src)
    t.check("with the ceiling raised, submits are accepted again", r.rc == 0, repr(r))
    t.check("and every earlier job is still there",
            set(acked) <= {j["id"] for j in c.all_jobs()})
    for n in cl.NODES:
        rc = c.stop(n)
        t.check("node %d stops cleanly (exit 0)" % n, rc == 0, "exit code %s" % rc)


cl.run_tests(main)
