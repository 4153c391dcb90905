#!/usr/bin/env python3
"""Nodes that come back after membership changed (real ingotd processes on
127.0.0.1).

1. A follower (node 2 unless it leads) is stopped; while it is down node 4
   is added as a voter (`member add`) and the other follower is removed
   (it exits 0 by itself), with jobs submitted before, between and after.
   The follower restarts, catches up, and its own `status` shows the new
   configuration; its store is byte-identical to the others'.
2. A member restarted with `join:` in its config (here node 4, added
   earlier) ignores it: a log line says so, it starts and catches up, the
   configuration does not change.
3. A data directory from another cluster: a separate one-node cluster
   (node 5 alone) is bootstrapped and stopped; node 5 is then started on
   that directory with `--join` to the first cluster: it refuses to start,
   exit status 2, with an error naming the cluster id mismatch, and the
   first cluster's configuration is unchanged.
"""
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clusterlib as cl  # noqa: E402


def submit(c, n, src, nodes):
    ids = []
    for _ in range(n):
        ids.append(c.ctl_json("job", "submit", "--target", "t-rj", src, nodes=nodes)["id"])
    return ids


def missed_changes(t, c, src):
    lead = c.wait_leader()
    down = 2 if lead != 2 else 3
    other = next(n for n in cl.NODES if n not in (lead, down))
    ids = submit(c, 5, src, [lead])
    rc = c.stop(down)
    t.check("follower node %d stops cleanly (exit 0)" % down, rc == 0, "exit %s" % rc)
    t.log("node %d down; leader %d; adding node 4 and removing node %d" % (down, lead, other))
    ids += submit(c, 5, src, [lead])

    c.start(4)
    r = c.member("add", 4, via=other, **c.add_args(4))
    t.check("member add 4 with follower %d down" % down, r.ok and r.result.get("role") == "voter", repr(r))
    ids += submit(c, 5, src, [lead])

    c.expect_exit.add(other)
    r = c.member("remove", other, via=4)
    t.check("member remove %d with follower %d down" % (other, down), r.ok and r.result.get("role") is None,
            repr(r))
    rc = c.wait_exit(other, 10) if r.ok else None
    c.removed.add(other)
    t.check("removed node %d exits by itself with status 0" % other, rc == 0, "exit %s" % rc)
    members = sorted([lead, down, 4])
    r = c.member("check", other, via=4, timeout=5)
    cid = c.call("node.info", via=4, timeout=5).result.get("cluster_id")
    t.check("member.check %d (removed): not a member, our cluster id" % other,
            r.ok and r.result.get("member") is False and r.result.get("role") is None
            and r.result.get("cluster_id") == cid, repr(r))
    r = c.member("check", 4, via=lead, timeout=5)
    t.check("member.check 4: a voter", r.ok and r.result.get("member") is True and r.result.get("role") == "voter",
            repr(r))
    lead = c.wait_leader(nodes=[lead, 4])
    ids += submit(c, 5, src, [lead, 4])
    want = {n: "voter" for n in members}
    t.check("the leader's configuration: %s" % want, c.config_of(lead, stale=False) == want,
            str(c.config_of(lead, stale=False)))

    t0 = cl.now()
    c.restart(down)
    c.wait_config(want, nodes=[down], timeout=20)
    idx, _ = c.wait_converged(nodes=members, timeout=30)
    t.log("node %d back: sees %s and reached applied index %d in %.2f s" % (down, want, idx, cl.now() - t0))
    t.check("restarted node %d shows the new configuration in its own status" % down, True)
    st = c.members(down)
    t.check("node %d's status lists the members' addresses" % down,
            all(st[n]["raft_address"] == cl.raft_ep(n) and st[n]["api_address"] == cl.api_ep(n) for n in members),
            str(st))
    dumps = c.dumps(members)
    t.check("stores byte-identical on nodes %s (applied index %d)" % (members, idx), cl.dumps_identical(dumps),
            cl.dump_diff(dumps))
    cl.check_jobs_everywhere(t, c, ids, members, "missed changes")
    return lead, members


def join_ignored(t, c, members):
    rc = c.stop(4)
    t.check("node 4 stops cleanly (exit 0)", rc == 0, "exit %s" % rc)
    c.configure(4, join=[cl.api_ep(n) for n in members if n != 4])
    c.start(4)
    want = {n: "voter" for n in members}
    idx, _ = c.wait_converged(nodes=members, timeout=30)
    lines = [ln for ln in c.log_since(4, c.starts[4]).splitlines() if "join" in ln.lower()]
    t.check("node 4 (a member) restarted with join: in its config: logs that it ignores join, runs",
            c.running(4) and any("ignor" in ln.lower() or "already" in ln.lower() for ln in lines),
            " / ".join(lines[:3]) or "no log line mentions join")
    t.check("node 4 restarted with join: configuration unchanged on every node",
            all(c.config_of(n) == want for n in members), str({n: c.config_of(n) for n in members}))
    t.check("node 4 restarted with join: caught up (applied index %d)" % idx, True)


def other_cluster(t, c, members):
    lead = c.wait_leader(nodes=members)
    info = c.call("node.info", via=lead, timeout=5)
    ours = info.result.get("cluster_id") if info.ok else None
    t.check("our cluster has a cluster id (32 hex digits)",
            isinstance(ours, str) and len(ours) == 32 and all(ch in "0123456789abcdef" for ch in ours.lower()),
            repr(info))

    o = t.cluster("other", nodes=(5,))
    info = cl.wait_for("the one-node cluster's cluster id",
                       lambda: (lambda r: r if r.ok and r.result.get("cluster_id") else None)(
                           o.call("node.info", via=5, timeout=2)), 10)
    theirs = info.result["cluster_id"]
    t.check("a separate one-node cluster has another cluster id", theirs != ours, "%s vs %s" % (theirs, ours))
    rc = o.stop(5)
    t.check("the one-node cluster stops cleanly", rc == 0, "exit %s" % rc)

    shutil.copytree(o.data_dir(5), c.data_dir(5))
    c.expect_exit.add(5)
    c.start(5, args=("--join", ",".join(cl.api_ep(n) for n in members)))
    rc = c.wait_exit(5, 15)
    log = c.log_since(5, 1)
    errs = [ln for ln in log.splitlines() if "cluster" in ln.lower() and (ours in ln or theirs in ln)]
    t.check("node 5 on another cluster's data directory with --join: refuses to start, exit status 2",
            rc == 2, "exit %s; log tail: %s" % (rc, log[-400:]))
    t.check("node 5's error names the cluster id mismatch (a line naming a cluster id)", errs,
            log[-300:])
    t.log("node 5's error: %s" % " / ".join(errs[:2]))
    want = {n: "voter" for n in members}
    t.check("the refused join changed nothing: configuration %s" % want,
            c.config_of(lead, stale=False) == want, str(c.config_of(lead, stale=False)))
    evs = c.events()
    t.check("cluster.events: nothing about node 5", not [e for e in evs if e.get("member") == 5],
            str([e for e in evs if e.get("member") == 5]))


def main(t):
    c = t.cluster(extra=(4, 5))
    c.apply_target("t-rj")
    src = c.write_file("src/rj.c", "int rejoin;\n")
    lead, members = missed_changes(t, c, src)
    join_ignored(t, c, members)
    other_cluster(t, c, members)
    for n in members:
        rc = c.stop(n)
        t.check("node %d stops cleanly on SIGTERM (exit 0)" % n, rc == 0, "exit code %s" % rc)


cl.run_tests(main, nodes=cl.ALL_NODES)
