#!/usr/bin/env python3
"""The leader's scheduler (node/leader/scheduler.c) on a real 3-node cluster on
127.0.0.1, 1 slot per node (3 slots in all), heartbeat 200 ms,
node_down_after_ms 1500.  Assignment order is read from the `assigned`
event of every job (`ingotctl -o json job events ID`, time in ms).

1. Fairness across tenants: 24 jobs (`sleep 0.3`) of tenant `big` submitted
   quickly, then 3 of tenant `small`, all priority 50.  All 27 succeed; the
   3 `small` jobs are assigned before the 12th `big` assignment (round-robin
   across tenants within a priority: a backlog does not starve a small
   tenant).  The assignment order is printed.
2. Priority: 3 `sleep 1.5` jobs occupy the 3 slots, then 9 jobs of
   priority 10 and 3 of priority 90 are submitted; the 3 high ones are
   assigned before any low one.
3. Spreading: with every slot free, the 3 jobs of a fresh batch land on 3
   different nodes.
"""
import os
import sys
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clusterlib as cl  # noqa: E402
import test_execution as tx  # noqa: E402

OVERRIDES = {"slots": "1", "heartbeat_interval_ms": "200", "node_down_after_ms": "1500"}

SHORT_TARGET = """name: t-short
stages:
  - name: s
    argv: [sh, -c, "sleep 0.3"]
    timeout: 30s
"""

LONG_TARGET = """name: t-long
stages:
  - name: s
    argv: [sh, -c, "sleep 1.5"]
    timeout: 30s
"""


def submit_many(c, n, target, src, *extra, workers=8):
    """Submits n jobs concurrently; returns their ids (all acknowledged)."""
    with ThreadPoolExecutor(max_workers=workers) as ex:
        futs = [ex.submit(tx.submit, c, target, [src], *extra) for _ in range(n)]
        return [f.result() for f in futs]


def first_event(evs, kind):
    for e in evs:
        if e["kind"] == kind:
            return e
    return None


def assignments(c, ids):
    """{job: (assigned time ms, node, submitted time ms)} from the events."""
    out = {}
    for jid in ids:
        evs = tx.events(c, jid)
        a, s = first_event(evs, "assigned"), first_event(evs, "submitted")
        if a is None:
            raise cl.TestFailure("job %d has no assigned event: %s" % (jid, [e["kind"] for e in evs]))
        out[jid] = (a["time"], a["node"], s["time"] if s else None)
    return out


def check_all_succeeded(t, c, ids, what, timeout):
    final = tx.wait_all_final(c, ids, timeout)
    bad = {j: final[j]["state"] for j in ids if final[j]["state"] != "succeeded"}
    t.check("%s: all %d jobs succeeded" % (what, len(ids)), not bad, "not succeeded: %r" % bad)


# ---- 1. fairness across tenants ---------------------------------------------
def fairness(t, c, src):
    t0 = cl.now()
    big = submit_many(c, 24, "t-short", src, "--tenant", "big", "--priority", "50")
    small = [tx.submit(c, "t-short", [src], "--tenant", "small", "--priority", "50") for _ in range(3)]
    t.log("submitted 24 big and 3 small jobs in %.2f s" % (cl.now() - t0))
    check_all_succeeded(t, c, big + small, "fairness", 60)
    asg = assignments(c, big + small)
    order = sorted(big + small, key=lambda j: (asg[j][0], j))
    tenant = {j: ("big" if j in big else "small") for j in big + small}
    base = asg[order[0]][0]
    t.log("assignment order (job:tenant@+ms/node): " +
          " ".join("%d:%s@+%d/n%s" % (j, tenant[j][0].upper(), asg[j][0] - base, asg[j][1]) for j in order))
    big_times = sorted(asg[j][0] for j in big)
    last_small_submit = max(asg[j][2] for j in small)
    before = sum(1 for x in big_times if x < last_small_submit)
    t.log("big jobs already assigned when the last small one was submitted: %d" % before)
    # Precondition: a backlog of big jobs existed when the small ones came.
    t.require("fairness setup: fewer than 11 big jobs assigned before the last small submit "
              "(a backlog remained)", before < 11, "%d assigned before" % before)
    t12 = big_times[11]
    late = {j: "big assignments at or before it: %d" % sum(1 for x in big_times if x <= asg[j][0])
            for j in small if not asg[j][0] < t12}
    pos = [order.index(j) + 1 for j in small]
    t.check("fairness: all 3 small jobs assigned before the 12th big assignment",
            not late, "12th big at +%d ms; small jobs at overall positions %s (of 27): late %r"
            % (t12 - base, pos, late))


# ---- 2. priority ---------------------------------------------------------------
def priority(t, c, src):
    tx.check_no_used_slots(t, c, "before the priority batch")
    longs = submit_many(c, 3, "t-long", src, workers=3)

    def busy():
        js = [tx.job(c, j) for j in longs]
        return js if all(j["state"] in ("assigned", "running") for j in js) else None
    cl.wait_for("the 3 long jobs to occupy the 3 slots", busy, 10, interval=0.05)
    t0 = cl.now()
    low = submit_many(c, 9, "t-short", src, "--priority", "10", workers=9)
    high = submit_many(c, 3, "t-short", src, "--priority", "90", workers=3)
    t.log("submitted 9 low and 3 high jobs in %.2f s while the slots were busy" % (cl.now() - t0))
    check_all_succeeded(t, c, longs + low + high, "priority", 40)
    asg = assignments(c, longs + low + high)
    first_long_end = None
    for j in longs:
        evs = tx.events(c, j)
        e = first_event(evs, "succeeded")
        if e and (first_long_end is None or e["time"] < first_long_end):
            first_long_end = e["time"]
    last_high_submit = max(asg[j][2] for j in high)
    t.require("priority setup: the 3 high jobs were submitted before the first long job ended",
              last_high_submit < first_long_end, "last high submit %d, first long end %d (ms)"
              % (last_high_submit, first_long_end))
    order = sorted(low + high, key=lambda j: (asg[j][0], j))
    base = min(asg[j][0] for j in longs)
    t.log("assignment order (job:prio@+ms/node): " +
          " ".join("%d:%s@+%d/n%s" % (j, "90" if j in high else "10", asg[j][0] - base, asg[j][1])
                   for j in order))
    hmax, lmin = max(asg[j][0] for j in high), min(asg[j][0] for j in low)
    t.check("priority: the 3 priority-90 jobs assigned before any priority-10 one", hmax < lmin,
            "last high at +%d ms, first low at +%d ms; order %s"
            % (hmax - base, lmin - base, ["H" if j in high else "L" for j in order]))


# ---- 3. spreading --------------------------------------------------------------
def spreading(t, c, src):
    tx.check_no_used_slots(t, c, "before the spreading batch")
    ids = submit_many(c, 3, "t-long", src, workers=3)
    check_all_succeeded(t, c, ids, "spreading", 30)
    asg = assignments(c, ids)
    nodes = [asg[j][1] for j in ids]
    t.log("spreading: jobs %s on nodes %s" % (ids, nodes))
    t.check("spreading: the first 3 jobs of a fresh batch land on 3 different nodes",
            len(set(nodes)) == 3, "nodes %s" % nodes)


def main(t):
    c = t.cluster(overrides=OVERRIDES)
    nl = tx.wait_registered(c)
    t.log("nodes registered: %s" % {n: m["slots"] for n, m in nl.items()})
    tx.apply_yaml(c, "t-short", SHORT_TARGET)
    tx.apply_yaml(c, "t-long", LONG_TARGET)
    src = c.write_file("src/s.txt", "x\n")
    fairness(t, c, src)
    priority(t, c, src)
    spreading(t, c, src)
    tx.check_no_used_slots(t, c, "after every job ended")


if __name__ == "__main__":
    cl.run_tests(main)
