#!/usr/bin/env python3
"""Every membership change the cluster must refuse, and that each refusal
changes nothing (real ingotd processes on 127.0.0.1).

On a 3-voter cluster (member_catchup_timeout_ms: 2000):
1. ids and addresses already in use: member add of id 2 with new
   addresses, of a new id with node 2's raft address, of a new id with
   node 3's API address -> already_exists; adding node 2 again exactly as
   it is succeeds (idempotent) and changes nothing.
2. demoting the leader -> conflict (to standby and to spare).
3. one change at a time: member add 4 while node 4 is not running hangs in
   catch-up; meanwhile member add 5, member remove 3 and member promote 4
   -> conflict naming the change in progress; then the add fails with
   `timeout` after about 2 s and the configuration is as before.  Node 4,
   started afterwards, can be added (nothing left behind), then removed
   again (it exits 0).
4. quorum: with one voter killed (and seen dead by the leader), removing or
   demoting a live follower -> conflict naming the numbers; the same
   removal sent at once after the kill (before the leader could notice) must
   be refused too, and so must removing the other live voter at once after
   the leader's kill, sent to the new leader (issue 11 item 2).
5. a failed promotion puts the role back: spare 5, killed, promoted ->
   timeout, still a spare (item 3); node 4, removed in step 3, is down in
   `node list` until `ingotctl node forget 4` drops it (forgetting a live
   node is refused; item 22).
On a 1-node cluster: removing or demoting the last voter -> conflict.
After each refusal: `status` members (id/role) unchanged on every node.
"""
import os
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clusterlib as cl  # noqa: E402

BASE = {1: "voter", 2: "voter", 3: "voter"}
CATCHUP_MS = 2000


def port(ep, delta):
    host, p = ep.rsplit(":", 1)
    return "%s:%d" % (host, int(p) + delta)


def last_seq(c):
    evs = c.events()
    return evs[-1]["seq"] if evs else None


def no_events(t, c, label, since):
    evs = c.events(after=since)
    t.check("%s: no cluster event recorded" % label, not evs,
            "; ".join("%s %s %s" % (e["kind"], e.get("member"), e.get("message", "")[:60]) for e in evs))


def unchanged(t, c, label, want=BASE, nodes=None):
    """The leader's linearizable status and every running node's stale
    one show `want` (the leader's at once; followers within 3 s)."""
    lead = c.wait_leader(nodes=nodes)
    got = c.config_of(lead, stale=False)
    ok = got == want
    if ok:
        try:
            c.wait_config(want, nodes=nodes or c.active(), timeout=3)
        except cl.TestFailure as e:
            ok, got = False, str(e)
    t.check("%s: configuration unchanged %s" % (label, want), ok, str(got))


def refused(t, c, label, r, code, *words):
    msg = r.message.lower() if not r.ok else ""
    t.check("%s: refused with %s naming %s" % (label, code, ", ".join(words) or "the reason"),
            r.code == code and all(w.lower() in msg for w in words), repr(r))


def in_use(t, c, lead):
    fresh_raft, fresh_api = port(cl.raft_ep(3), 90), port(cl.api_ep(3), 90)  # 7593/7493: nobody's
    seq = last_seq(c)
    r = c.member("add", 2, raft_address=fresh_raft, api_address=fresh_api)
    refused(t, c, "member add of id 2 (in use) with new addresses", r, "already_exists")
    r = c.member("add", 9, raft_address=cl.raft_ep(2), api_address=fresh_api)
    refused(t, c, "member add 9 with node 2's raft address", r, "already_exists", cl.raft_ep(2))
    r = c.member("add", 9, raft_address=fresh_raft, api_address=cl.api_ep(3))
    refused(t, c, "member add 9 with node 3's API address", r, "already_exists", cl.api_ep(3))
    r = c.member("add", 0, raft_address=fresh_raft, api_address=fresh_api)
    t.check("member add of id 0: invalid", r.code == "invalid", repr(r))
    unchanged(t, c, "after the refused adds")
    no_events(t, c, "after the refused adds", seq)
    r = c.member("add", 2, **c.add_args(2, "voter"))
    t.check("member add 2 exactly as it is: succeeds and says so (idempotent)",
            r.ok and r.result.get("id") == 2 and r.result.get("role") == "voter"
            and any("already" in st for st in r.result.get("steps", [])), repr(r))
    unchanged(t, c, "after the repeated add")


def demote_leader(t, c, lead):
    seq = last_seq(c)
    for role in ("standby", "spare"):
        via = next(n for n in cl.NODES if n != lead)
        r = c.member("demote", lead, via=via, role=role)
        refused(t, c, "member demote of the leader (node %d) to %s" % (lead, role), r, "conflict",
                str(lead))
    unchanged(t, c, "after demoting the leader was refused")
    no_events(t, c, "after demoting the leader was refused", seq)


def one_at_a_time(t, c, lead):
    box = {}

    def slow_add():
        box["t0"] = cl.now()
        try:
            box["r"] = c.member("add", 4, via=lead, timeout=20, **c.add_args(4))
        except cl.TestFailure as e:
            box["err"] = str(e)
        box["t1"] = cl.now()

    other = next(n for n in cl.NODES if n != lead)
    th = threading.Thread(target=slow_add, daemon=True)
    th.start()
    # The add is in progress once the leader lists node 4 (as spare/standby).
    try:
        cl.wait_for("node 4 listed by the leader while it is being added",
                    lambda: 4 in c.config_of(lead, stale=False), 1.5, interval=0.05)
        seen = True
    except cl.TestFailure:
        seen = False
        cl.time.sleep(0.2)
    t.check("member add 4 (node not running) in progress: node 4 listed as a non-voter",
            seen and c.config_of(lead).get(4) in ("spare", "standby"), str(c.config_of(lead)))
    for label, r in (("member add 5", c.member("add", 5, **c.add_args(5))),
                     ("member remove 3", c.member("remove", 3)),
                     ("member promote 4", c.member("promote", 4)),
                     ("member demote %d" % other, c.member("demote", other))):
        t.check("%s while the add of 4 is in progress: conflict naming member 4" % label,
                r.code == "conflict" and "4" in r.message, repr(r))
    th.join(timeout=25)
    r = box.get("r")
    secs = box["t1"] - box["t0"] if "t1" in box else None
    t.log("the hanging member add 4: %r (%s)" % (r, box.get("err", "")))
    t.check("the add of a node that never catches up fails with timeout after member_catchup_timeout_ms "
            "(%d ms)" % CATCHUP_MS,
            r is not None and r.code == "timeout" and secs is not None and CATCHUP_MS / 1000.0 - 0.2 <= secs < 10,
            "%r after %s s" % (r, secs))
    unchanged(t, c, "after the timed-out add")

    # Nothing left behind: node 4, running now, can be added, then removed.
    c.start(4)
    r = c.member("add", 4, **c.add_args(4))
    t.check("node 4 running: member add 4 succeeds after the failed attempt",
            r.ok and r.result.get("role") == "voter", repr(r))
    c.wait_config({**BASE, 4: "voter"}, nodes=[1, 2, 3, 4], timeout=10)
    c.expect_exit.add(4)
    r = c.member("remove", 4)
    t.check("member remove 4 succeeds", r.ok and r.result.get("role") is None, repr(r))
    rc = c.wait_exit(4, 10)
    c.removed.add(4)
    t.check("removed node 4 exits by itself with status 0", rc == 0, "exit %s" % rc)
    unchanged(t, c, "after adding and removing node 4")


def quorum(t, c, lead):
    dead, live = [n for n in cl.NODES if n != lead]
    c.kill(dead)
    t.log("killed voter node %d (kill -9); waiting for the leader to see it dead" % dead)

    # The leader counts a voter live while it heard from it over Raft within
    # two election timeouts (600 ms): wait until it cannot.
    def seen_dead():
        m = c.members(lead, stale=False).get(dead)
        return m if m and not m.get("alive") and (m.get("last_contact_ms") or 0) >= 1000 else None
    cl.wait_for("leader not hearing from node %d for 1 s" % dead, seen_dead, 10)
    seq = last_seq(c)
    r = c.member("remove", live, via=lead)
    refused(t, c, "member remove of live voter %d with voter %d down" % (live, dead), r, "conflict", "quorum")
    r = c.member("demote", live, via=live)
    refused(t, c, "member demote of live voter %d with voter %d down" % (live, dead), r, "conflict", "quorum")
    unchanged(t, c, "after the quorum refusals", nodes=[lead, live])
    no_events(t, c, "after the quorum refusals", seq)
    c.restart(dead)
    idx, _ = c.wait_converged(nodes=list(cl.NODES), timeout=30)
    dumps = c.dumps(list(cl.NODES))
    t.check("node %d restarted: stores identical at index %d" % (dead, idx), cl.dumps_identical(dumps),
            cl.dump_diff(dumps))


def quorum_at_once(t, c, lead):
    """The same removal sent at once after the kill, before the leader's
    view of liveness has caught up: it must be refused all the same, or the
    cluster is left with one live voter of two and no quorum."""
    dead, live = [n for n in cl.NODES if n != lead]
    c.kill(dead)
    r = c.member("remove", live, via=lead, timeout=4)
    t.log("member remove %d sent at once after the kill of %d: %r" % (live, dead, r))
    refused_ok = r.code == "conflict"
    t.check("member remove of live voter %d at once after voter %d's kill -9: conflict (issue 11 item 2)"
            % (live, dead), refused_ok, repr(r))
    if not refused_ok:
        c.expect_exit.add(live)  # it may have been removed: then it stops by itself
    c.restart(dead)

    def settled():
        running = [n for n in cl.NODES if c.running(n)]
        lead2 = c.leader(nodes=running)
        return (lead2, running) if lead2 else None
    lead2, running = cl.wait_for("a leader once node %d is back" % dead, settled, 40, interval=0.2)
    got = c.config_of(lead2, stale=False)
    t.log("node %d back: leader %d, configuration %s" % (dead, lead2, got))
    t.check("node %d back after the removal sent at once: configuration %s (as before)" % (dead, BASE),
            got == BASE, str(got))
    if live not in got:
        rc = c.wait_exit(live, 15)
        c.removed.add(live)
        t.check("node %d, removed after all, stops by itself (exit 0)" % live, rc == 0, "exit %s" % rc)
    members = sorted(got)
    t.check("the cluster serves again: configuration %s on every member" % got,
            all(r == "voter" for r in got.values()) and all(c.config_of(n) == got for n in members)
            and c.ctl("job", "list", nodes=members).rc == 0, str({n: c.config_of(n) for n in members}))
    return members


def quorum_new_leader(t, c, lead):
    """A new leader has heard from nobody yet: right after it is elected,
    removing the other live voter (the old leader being dead) must be
    refused, not counted live by a grace period (issue 11 item 2)."""
    c.kill(lead)
    survivors = [n for n in cl.NODES if n != lead]
    new = c.wait_leader(nodes=survivors)
    other = next(n for n in survivors if n != new)
    r = c.member("remove", other, via=new, timeout=4)
    t.log("member remove %d sent at once to the new leader %d (old leader %d dead): %r" % (other, new, lead, r))
    t.check("member remove of live voter %d right after the election, old leader %d dead: conflict"
            % (other, lead), r.code == "conflict" and "quorum" in r.message.lower(), repr(r))
    if r.ok:
        c.expect_exit.add(other)
    c.restart(lead)
    unchanged(t, c, "after the refusal by the new leader", nodes=list(cl.NODES))


def failed_promotion(t, c):
    """A promotion that fails half-way puts the role back (issue 11 item 3):
    spare 5, killed, promoted -> timeout, and 5 is a spare again (not left a
    standby)."""
    c.start(5)
    r = c.member("add", 5, role="spare", **c.add_args(5))
    t.check("member add 5 as spare", r.ok and r.result.get("role") == "spare", repr(r))
    c.wait_config({**BASE, 5: "spare"}, nodes=list(cl.NODES), timeout=10)
    c.kill(5)
    r = c.member("promote", 5, timeout=20)
    t.check("member promote 5 (spare, dead): timeout", r.code == "timeout", repr(r))
    unchanged(t, c, "after the failed promotion", want={**BASE, 5: "spare"})
    r = c.member("remove", 5)
    t.check("member remove 5 (dead spare)", r.ok, repr(r))
    c.removed.add(5)
    unchanged(t, c, "after removing node 5")
    # Node 4, removed and stopped earlier: its worker registration stays,
    # down, until forgotten (issue 11 item 22).
    r = c.ctl("node", "forget", "1", json_out=False)
    t.check("node forget 1 (alive): refused, exit 1 naming why", r.rc == 1 and "not down" in r.err, repr(r))
    cl.wait_for("node 4 down in node list",
                lambda: any(x["id"] == 4 and x["down"] for x in c.ctl_json("node", "list")), 20)
    r = c.ctl("node", "forget", "4", json_out=False)
    t.check("node forget 4 (removed, down): done", r.rc == 0 and "node 4 forgotten" in r.out, repr(r))
    ids = [x["id"] for x in c.ctl_json("node", "list")]
    t.check("node list no longer shows node 4", 4 not in ids, str(ids))


def last_voter(t):
    c = t.cluster("single", nodes=(1,))
    for label, r in (("member remove 1 (the last voter)", c.member("remove", 1)),
                     ("member demote 1 (the last voter)", c.member("demote", 1)),
                     ("member demote 1 to spare", c.member("demote", 1, role="spare"))):
        t.check("%s: conflict" % label, r.code == "conflict", repr(r))
    unchanged(t, c, "one-node cluster after the refusals", want={1: "voter"})
    rc = c.stop(1)
    t.check("the single node stops cleanly (exit 0)", rc == 0, "exit %s" % rc)


def main(t):
    c = t.cluster(overrides={"member_catchup_timeout_ms": CATCHUP_MS, "node_down_after_ms": 1500,
                             "heartbeat_interval_ms": 200}, extra=(4, 5))
    lead = c.wait_leader()
    unchanged(t, c, "at start")
    in_use(t, c, lead)
    demote_leader(t, c, lead)
    one_at_a_time(t, c, lead)
    failed_promotion(t, c)
    lead = c.wait_leader(nodes=list(cl.NODES))
    quorum(t, c, lead)
    lead = c.wait_leader(nodes=list(cl.NODES))
    quorum_new_leader(t, c, lead)
    lead = c.wait_leader(nodes=list(cl.NODES))
    running = quorum_at_once(t, c, lead)
    evs = c.events()
    t.log("cluster events: %s" % "; ".join("%s %s: %s" % (e["kind"], e.get("member"), e.get("message", "")[:70])
                                         for e in evs))
    for n in running:
        rc = c.stop(n)
        t.check("node %d stops cleanly on SIGTERM (exit 0)" % n, rc == 0, "exit code %s" % rc)
    last_voter(t)


cl.run_tests(main, nodes=(1, 2, 3, 4, 5))
