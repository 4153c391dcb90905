#!/usr/bin/env python3
"""Membership under load: grow 3 -> 5, transfer leadership around, shrink
5 -> 3 (real ingotd processes on 127.0.0.1).

1. Grow.  Two submitters (a fixed request id per job, retried unchanged
   until acknowledged) run throughout.  Node 4 starts with an empty data
   directory, no peers and no join: it belongs to no cluster until
   `member add 4` (sent to a follower, which forwards it) catches it up and
   makes it a voter.  Node 5 starts with `--join 127.0.0.1:7401,...`, asks
   a member to add it, and becomes a voter by itself.  Afterwards: no
   request id given up, every acknowledged job on all five nodes, stores
   byte-identical; the leader's `status` shows five voters with
   `last_contact_ms`; `cluster.events` has member_added for 4 and 5.
   Node 5, stopped and started again with the same --join, ignores it
   (already a member: a log line says so) and catches up.
2. Transfer.  Under the same kind of load, leadership is transferred to
   each other member in turn and back: each reply names the target as
   leader, every node's `status` agrees, writes go on after each, no
   acknowledged job lost.
3. Shrink.  The current leader is removed (it hands its leadership over
   first): its process exits by itself with status 0 ("removed from the
   cluster") within a few seconds.  Node 4, configured with
   `leave_on_shutdown: true`, gets SIGTERM: it removes itself (after handing
   over leadership if it has it) and exits 0.  The three left agree on
   three voters, and a removed node refuses to start again on its data
   directory.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clusterlib as cl  # noqa: E402

ALL = cl.ALL_NODES
VOTERS3 = {1: "voter", 2: "voter", 3: "voter"}
VOTERS5 = {n: "voter" for n in ALL}
EXIT_BOUND = 10.0  # seconds for a removed node to stop by itself ("a few election timeouts")
# Server bugs found by these checks (reported; see the branch's report).
BUG_REMOVE_LEADER_STEPS = ("member.remove of the leader: the old leader forwards the call after the "
                           "transfer and relays the new leader's reply as is, so steps and elapsed_ms "
                           "leave the transfer out")


def steps_text(r):
    return " | ".join(r.result.get("steps") or []) if r.ok and isinstance(r.result, dict) else ""


def kinds_for(events, kind):
    return [e for e in events if e.get("kind") == kind]


def grow(t, c, src, acked):
    lead = c.wait_leader()
    t.check("initial configuration: nodes 1-3 voters", c.config_of(lead, stale=False) == VOTERS3,
            str(c.config_of(lead, stale=False)))
    evs = c.events()
    t.check("cluster.events starts with cluster_created", evs and evs[0].get("kind") == "cluster_created",
            str(evs[:2]))
    last_seq = evs[-1]["seq"] if evs else None

    load = cl.Load(c, "t-mb", src, "grow", threads=2, nodes=[1, 2, 3]).start()
    try:
        load.wait_count(10, 30)

        # Node 4: empty data directory, no peers, no join.  It runs but is
        # nobody's member until it is added.
        c.start(4)
        info = cl.wait_for("node 4 answering node.info", lambda: c.call("node.info", via=4, timeout=2), 15)
        t.check("node 4 before being added: no leader, no cluster id",
                info.ok and info.result.get("leader") is None and info.result.get("cluster_id") is None,
                repr(info))
        via = next(n for n in (1, 2, 3) if n != lead)
        n0 = load.count()
        r = c.member("add", 4, via=via, **c.add_args(4))
        t.log("member add 4 via follower node %d: %r; steps: %s" % (via, r, steps_text(r)))
        t.check("member add 4 (through a follower) succeeds: voter",
                r.ok and r.result.get("id") == 4 and r.result.get("role") == "voter", repr(r))
        t.check("member add 4: steps say it caught up before getting the voter role",
                r.ok and any("caught up" in st for st in r.result.get("steps", []))
                and "voter" in (r.result.get("steps") or [""])[-1], steps_text(r))
        want4 = {**VOTERS3, 4: "voter"}
        c.wait_config(want4, nodes=[1, 2, 3, 4], timeout=10)
        t.check("after member add 4: every node (node 4 too) sees voters 1-4", True)
        t.check("writes acknowledged while node 4 was added", load.count() > n0,
                "%d -> %d" % (n0, load.count()))

        # Node 5 joins by naming two members (API addresses).
        load.wait_count(load.count() + 5, 20)
        n1 = load.count()
        t0 = cl.now()
        c.start(5, args=("--join", "%s,%s" % (cl.api_ep(1), cl.api_ep(2))))
        c.wait_config(VOTERS5, nodes=list(ALL), timeout=40)
        t.log("node 5 joined with --join: voter on every node %.2f s after its start" % (cl.now() - t0))
        t.check("node 5 joined with --join: five voters on every node", True)
        load.wait_count(load.count() + 10, 30)
        t.check("writes acknowledged while node 5 joined", load.count() > n1, "%d -> %d" % (n1, load.count()))
    finally:
        load.stop()
    load.check(t, "grow")
    acked.update(load.acked)

    idx, secs = c.wait_converged(nodes=list(ALL), timeout=30)
    dumps = c.dumps(list(ALL))
    t.check("grow: mdb_dump byte-identical on all five nodes (applied index %d)" % idx,
            cl.dumps_identical(dumps), cl.dump_diff(dumps))
    cl.check_jobs_everywhere(t, c, acked.values(), ALL, "grow")

    lead = c.wait_leader()
    ms = c.members(lead, stale=False)
    lc = {n: m.get("last_contact_ms") for n, m in ms.items()}
    t.check("status (leader): five voters, last_contact_ms < 2000 ms for the followers",
            sorted(ms) == list(ALL) and all(m["role"] == "voter" for m in ms.values())
            and all(isinstance(v, int) and v < 2000 for n, v in lc.items() if n != lead),
            "leader %d, last_contact_ms %s" % (lead, lc))
    t.check("status (leader): last_contact_ms is 0 for the leader itself (api.md; issue 11 item 16)",
            lc.get(lead) == 0, "leader %d: %s" % (lead, lc.get(lead)))
    via = next(n for n in ALL if n != lead)
    ms_f = c.members(via)
    lf = {n: m.get("last_contact_ms") for n, m in ms_f.items()}
    t.check("status through follower node %d: last_contact_ms is the leader's view (0 for it, set for all)"
            % via, lf.get(lead) == 0 and all(isinstance(v, int) and v < 2000 for v in lf.values()), str(lf))
    r = c.ctl("member", "list", nodes=[via], json_out=False)
    lines = r.out.splitlines()
    col = lines[0].find("CONTACT") if lines else -1
    cells = [ln[col:].split()[0] for ln in lines[1:] if ln.strip() and col >= 0 and len(ln) > col]
    t.check("member list through a follower shows CONTACT for every member (no '-')",
            r.rc == 0 and len(cells) == len(ALL) and "-" not in cells, r.out)
    evs = c.events(after=last_seq)
    added = sorted(e.get("member") for e in kinds_for(evs, "member_added"))
    t.log("cluster events while growing: %s" % "; ".join("%s %s %s" % (e["kind"], e.get("member"),
                                                                      e.get("message", "")[:80]) for e in evs))
    t.check("cluster.events: member_added for 4 and 5", added == [4, 5], str(added))

    # A member restarted with --join ignores it.
    rc = c.stop(5)
    t.check("node 5 stops cleanly on SIGTERM (exit 0)", rc == 0, "exit %s" % rc)
    c.start(5, args=("--join", cl.api_ep(1)))
    c.wait_converged(nodes=list(ALL), timeout=30)
    lines = [ln for ln in c.log_since(5, c.starts[5]).splitlines() if "join" in ln.lower()]
    t.check("node 5 restarted with --join: starts as a member, logs that it ignores --join",
            c.running(5) and any("ignor" in ln.lower() or "already" in ln.lower() for ln in lines),
            " / ".join(lines[:3]) or "no log line mentions join")
    t.check("node 5 restarted with --join: configuration unchanged", c.config_of(5) == VOTERS5,
            str(c.config_of(5)))


def transfers(t, c, src, acked):
    lead = c.wait_leader()
    order = [n for n in ALL if n > lead] + [n for n in ALL if n < lead] + [lead]
    load = cl.Load(c, "t-mb", src, "xfer", threads=2, nodes=list(ALL)).start()
    times = []
    try:
        load.wait_count(5, 20)
        prev = lead
        for target in order:
            n0 = load.count()
            via = next(n for n in ALL if n not in (prev, target))
            r = c.member("transfer", target, via=via, timeout=20)
            times.append("%d->%d %s" % (prev, target, ("%d ms, %s attempt(s)" % (
                r.result.get("elapsed_ms", -1), r.result.get("attempts")) if r.ok else r.code)))
            t.check("transfer %d -> %d: reply names node %d as leader, %d as previous" % (prev, target, target,
                                                                                           prev),
                    r.ok and r.result.get("leader") == target and r.result.get("previous") == prev, repr(r))

            def all_agree():
                seen = {n: c.status(n).get("leader") for n in ALL}
                return seen if set(seen.values()) == {target} else None
            try:
                cl.wait_for("every node to see node %d as leader" % target, all_agree, 5)
                ok = True
            except cl.TestFailure as e:
                ok, detail = False, str(e)
            t.check("transfer %d -> %d: every node's status shows %d as leader" % (prev, target, target), ok,
                    "" if ok else detail)
            st = c.call("status", {}, via=target, timeout=5)
            t.check("transfer %d -> %d: linearizable status through node %d names it leader"
                    % (prev, target, target), st.ok and st.result.get("leader") == target, repr(st))
            load.wait_count(n0 + 4, 20)
            prev = target
    finally:
        load.stop()
    t.log("transfers: %s" % "; ".join(times))
    load.check(t, "transfer")
    acked.update(load.acked)
    evs = c.events()
    changed = [e.get("member") for e in kinds_for(evs, "leader_changed")]
    t.check("cluster.events: a leader_changed for each transfer, in order %s" % order,
            changed[-len(order):] == order, "leader_changed members %s" % changed)
    idx, _ = c.wait_converged(nodes=list(ALL), timeout=30)
    dumps = c.dumps(list(ALL))
    t.check("transfer: mdb_dump byte-identical on all five nodes (applied index %d)" % idx,
            cl.dumps_identical(dumps), cl.dump_diff(dumps))
    cl.check_jobs_everywhere(t, c, acked.values(), ALL, "transfer")


def remove_and_wait_exit(t, c, victim, via, label):
    c.expect_exit.add(victim)
    r = c.member("remove", victim, via=via, timeout=30)
    t.log("%s: member remove %d via node %d: %r; steps: %s" % (label, victim, via, r, steps_text(r)))
    t0 = cl.now()
    rc = c.wait_exit(victim, EXIT_BOUND) if r.ok else None
    secs = cl.now() - t0
    c.removed.add(victim)
    t.check("%s: member remove %d succeeds (role nil)" % (label, victim),
            r.ok and r.result.get("id") == victim and r.result.get("role") is None, repr(r))
    t.check("%s: removed node %d stops by itself with status 0 within %.0f s" % (label, victim, EXIT_BOUND),
            rc == 0, "exit %s after %.2f s" % (rc, secs))
    t.log("%s: node %d exited %.2f s after the reply" % (label, victim, secs))
    t.check("%s: node %d logs 'removed from the cluster'" % (label, victim),
            "removed from the cluster" in c.log_since(victim, c.starts[victim]))
    return r


def shrink(t, c, acked):
    lead = c.wait_leader()
    evs0 = c.events()
    last_seq = evs0[-1]["seq"] if evs0 else None
    via = next(n for n in ALL if n != lead)
    r = remove_and_wait_exit(t, c, lead, via, "shrink (leader)")
    t.xfail("removing the leader: steps say leadership was transferred first",
            any("transfer" in st.lower() for st in (r.result.get("steps") or [])) if r.ok else False,
            steps_text(r), BUG_REMOVE_LEADER_STEPS)
    left = [n for n in ALL if n != lead]
    new_lead = c.wait_leader(nodes=left)
    t.check("a new leader among the four left", new_lead in left and new_lead != lead, "leader %s" % new_lead)
    # Node 4 runs with leave_on_shutdown: SIGTERM makes it hand over its
    # leadership if it has it, remove itself, and exit 0.
    second = 4
    was_leader = new_lead == second
    t0 = cl.now()
    rc = c.stop(second, timeout=EXIT_BOUND + 10)
    secs = cl.now() - t0
    c.removed.add(second)
    t.log("node 4 (leave_on_shutdown, %s) left on SIGTERM in %.2f s" % ("leader" if was_leader else "follower",
                                                                         secs))
    t.check("node 4 with leave_on_shutdown (%s): SIGTERM -> exit 0 within %.0f s"
            % ("the leader" if was_leader else "a follower", EXIT_BOUND), rc == 0 and secs < EXIT_BOUND,
            "exit %s after %.2f s" % (rc, secs))
    left = [n for n in left if n != second]
    want = {n: "voter" for n in left}
    c.wait_config(want, nodes=left, timeout=10)
    t.check("after shrinking: nodes %s see exactly themselves as voters" % left, True)
    evs = c.events(after=last_seq)
    removed = sorted(e.get("member") for e in kinds_for(evs, "member_removed"))
    t.check("cluster.events: member_removed for %d and %d" % (lead, second), removed == sorted([lead, second]),
            str(removed))

    # A removed node refuses to start again on its data directory.
    c.start(second)
    rc = c.wait_exit(second, EXIT_BOUND)
    tail = c.log_since(second, c.starts[second])
    t.check("removed node %d refuses to start again (non-zero exit, log names the removal)" % second,
            rc not in (None, 0) and "removed" in tail, "exit %s; log: %s" % (rc, tail[-300:]))
    t.check("the refused start changed nothing: configuration %s" % want, c.config_of(left[0]) == want,
            str(c.config_of(left[0])))

    idx, _ = c.wait_converged(nodes=left, timeout=30)
    dumps = c.dumps(left)
    t.check("shrink: mdb_dump byte-identical on the three left (applied index %d)" % idx,
            cl.dumps_identical(dumps), cl.dump_diff(dumps))
    cl.check_jobs_everywhere(t, c, acked.values(), left, "shrink")
    r = c.ctl("job", "submit", "--target", "t-mb", c.path("src/mb.c"), nodes=left)
    t.check("writes work on the three-voter cluster", r.rc == 0, repr(r))
    return left


def main(t):
    c = t.cluster(extra=(4, 5), node_overrides={4: {"leave_on_shutdown": True}})
    c.apply_target("t-mb")
    src = c.write_file("src/mb.c", "int member;\n")
    acked = {}
    grow(t, c, src, acked)
    transfers(t, c, src, acked)
    left = shrink(t, c, acked)
    for n in left:
        rc = c.stop(n)
        t.check("node %d stops cleanly on SIGTERM (exit 0)" % n, rc == 0, "exit code %s" % rc)


cl.run_tests(main, nodes=cl.ALL_NODES)
