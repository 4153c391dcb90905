#!/usr/bin/env python3
"""Node loss while work runs (real 3-node cluster on 127.0.0.1, slots 2,
heartbeat_interval_ms 200, node_down_after_ms 1500).

1. kill -9 the node running a long stage (`echo $$ > pid; sleep 6; echo
   done > r.txt`): the leader declares it down, the job is requeued and
   rerun on another node as attempt 2 and ends succeeded exactly once
   (one `succeeded` event, attempt 2, node != the killed one).  The killed
   node's stage process survives the kill (own process group); restarting
   the node kills it (the worker's reap of leftover groups).  Stale reports
   for attempt 1 (finish succeeded, stage_finish, sent as worker.report) are
   rejected with stale_attempt; the restarted node reports nothing for
   attempt 1 and the job stays succeeded with attempt 2.  Figures printed:
   kill -> requeued, kill -> rerun started, kill -> succeeded.
2. kill -9 and restart at once (before the node is declared down): the
   restarted worker finds its attempt interrupted at start (unprompted: no
   other write needed), reports it lost, the job is rerun as attempt 2 and
   succeeds once.
3. kill -9 the leader while 10 jobs (1.5 s stage) run and wait: every job
   ends succeeded once, no job has two `assigned` events for one attempt,
   attempt numbers strictly increase, each attempt ends (requeued) before
   the next is assigned, no node ever runs more than its 2 slots; jobs
   queued at the kill are assigned by the new leader.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clusterlib as cl  # noqa: E402
import test_execution as ex  # noqa: E402

LONG_TARGET = """name: t-long
stages:
  - name: long
    argv: [sh, -c, 'echo $$ > "$1/pid"; sleep 6; echo done > "$1/r.txt"', long, "{out}"]
    timeout: 60s
    outputs: [r.txt]
"""
SHORT_TARGET = """name: t-short
stages:
  - name: short
    argv: [sh, -c, 'sleep 1.5; echo ok > "$1/r.txt"', short, "{out}"]
    timeout: 60s
    outputs: [r.txt]
"""
FINAL_KINDS = ("succeeded", "failed", "cancelled")


def wait_running(c, jid, timeout=20):
    return cl.wait_for("job %d running" % jid,
                       lambda: (lambda j: j if j["state"] == "running" else None)(ex.job(c, jid)),
                       timeout, interval=0.05)


def restarted_log(c, n):
    """Node n's log since its last start."""
    text = c.log(n)
    mark = "---- test: start #%d of node %d" % (c.starts[n], n)
    i = text.rfind(mark)
    return text[i:] if i >= 0 else text


def attempt_checks(t, label, jid, ev):
    """No two assigned events for one attempt, strictly increasing attempts,
    each attempt ended (requeued/final) before the next was assigned."""
    assigned = [e["attempt"] for e in ev if e["kind"] == "assigned"]
    t.check("%s job %d: attempts assigned strictly increase, none twice" % (label, jid),
            all(a < b for a, b in zip(assigned, assigned[1:])), "assigned attempts %s" % assigned)
    live = None
    bad = []
    for e in ev:
        if e["kind"] == "assigned":
            if live is not None:
                bad.append("attempt %d assigned while attempt %d (node %s) was live" % (e["attempt"], live[0],
                                                                                         live[1]))
            live = (e["attempt"], e["node"])
        elif e["kind"] in ("requeued",) + FINAL_KINDS and live is not None and e["attempt"] == live[0]:
            live = None
    t.check("%s job %d: never assigned to two nodes at once" % (label, jid), not bad, "; ".join(bad))


# ---- 1. kill the node running a long stage -----------------------------------
def kill_worker(t, c):
    ex.apply_yaml(c, "t-long", LONG_TARGET)
    src = c.write_file("src/long.txt", "long\n")
    jid = ex.submit(c, "t-long", [src])
    j = wait_running(c, jid)
    victim, att = j["node"], j["attempt"]
    pidf = os.path.join(ex.stage_dir(c, victim, jid, att, 0, "long"), "pid")
    old_pid = cl.wait_for("pid file %s" % pidf, lambda: ex.read_pid(pidf), 10, interval=0.05)
    lead = c.leader()
    t.log("job %d runs attempt %d on node %d (leader: node %d); stage pid %d" % (jid, att, victim, lead, old_pid))
    t.check("job %d: attempt 1 running on node %d" % (jid, victim), att == 1 and ex.proc_alive(old_pid))
    wall_kill, t_kill = time.time(), cl.now()
    c.kill(victim)
    t.log("killed node %d (kill -9)%s" % (victim, " -- it was the leader" if victim == lead else ""))
    others = [n for n in cl.NODES if n != victim]
    j2 = cl.wait_for("job %d reassigned (attempt 2)" % jid,
                     lambda: (lambda j: j if j["attempt"] >= 2 else None)(ex.job(c, jid, nodes=others)),
                     30, interval=0.05)
    t_re = cl.now() - t_kill
    t.check("job %d: requeued and reassigned to another node as attempt 2" % jid,
            j2["attempt"] == 2 and j2["node"] not in (None, victim), "attempt %d node %s" % (j2["attempt"], j2["node"]))
    survived = ex.proc_alive(old_pid)
    t.log("node %d's stage process %d %s the kill of its ingotd" % (victim, old_pid,
                                                                    "survived" if survived else "did not survive"))
    # Restart the killed node while its old stage may still run.
    c.restart(victim)
    t_restart = cl.now()
    gone_after = None
    if survived:
        try:
            cl.wait_for("old stage pid %d gone" % old_pid, lambda: not ex.proc_alive(old_pid), 10, interval=0.05)
            gone_after = cl.now() - t_restart
        except cl.TestFailure:
            pass
        t.check("the killed node's leftover stage process (pid %d, own process group) is killed within 10 s of "
                "its restart" % old_pid, gone_after is not None,
                "gone %.2f s after the restart" % gone_after if gone_after is not None else "still running")
        t.log("KILL-WORKER: leftover stage process %d %s" % (
            old_pid, "gone %.2f s after the restart (/proc entry %s)" % (
                gone_after, "left as a zombie" if ex.proc_exists(old_pid) else "removed")
            if gone_after is not None else "still running 10 s after the restart"))
    jf = ex.wait_final(c, jid, 40)
    t_end = cl.now() - t_kill
    ev = ex.events(c, jid)
    kinds = [e["kind"] for e in ev]
    t.check("job %d ends succeeded, attempt 2, on a node other than %d" % (jid, victim),
            jf["state"] == "succeeded" and jf["attempt"] == 2 and jf["node"] != victim,
            "state %s attempt %d node %s error %r" % (jf["state"], jf["attempt"], jf["node"], jf["error"]))
    t.check("job %d: exactly one succeeded event" % jid, kinds.count("succeeded") == 1, str(kinds))
    rq = [e for e in ev if e["kind"] == "requeued"]
    # The requeued event's node is null (the job has none then); the
    # message names the node that was declared down.
    t.check("job %d: one requeued event, for attempt 1, naming node %d down" % (jid, victim),
            len(rq) == 1 and rq[0]["attempt"] == 1 and rq[0]["node"] in (None, victim) and
            ("node %d down" % victim) in rq[0]["message"],
            str([(e["attempt"], e["node"], e["message"]) for e in rq]))
    as2 = [e for e in ev if e["kind"] == "assigned" and e["attempt"] == 2]
    # retry_backoff_ms (default 1000): the lost attempt's job waits before
    # its next one
    t.check("job %d: attempt 2 assigned no sooner than the 1 s retry backoff after the requeue" % jid,
            bool(rq) and bool(as2) and as2[0]["time"] - rq[0]["time"] >= 1000,
            str([(e["kind"], e["time"]) for e in rq + as2]))
    st2 = [e for e in ev if e["kind"] == "stage_started" and e["attempt"] == 2]
    if rq and st2:
        t.log("KILL-WORKER: kill -> requeued %.2f s, kill -> attempt 2 assigned (seen) %.2f s, kill -> rerun "
              "started %.2f s, kill -> succeeded %.2f s (node_down_after_ms 1500); requeue message %r"
              % (rq[0]["time"] / 1000 - wall_kill, t_re, st2[0]["time"] / 1000 - wall_kill, t_end, rq[0]["message"]))
    attempt_checks(t, "kill-worker", jid, ev)
    out = [s for s in jf["stages"] if s["index"] == 0]
    t.check("job %d: the result is attempt 2's (stage done, exit 0, r.txt)" % jid,
            len(out) == 1 and out[0]["exit_code"] == 0 and [f["path"] for f in out[0]["outputs"]] == ["r.txt"],
            str(jf["stages"]))

    # Stale reports for attempt 1 are refused.
    lead = c.wait_leader()
    for args in ({"kind": "finish", "job": jid, "attempt": 1, "outcome": "succeeded", "message": "stale"},
                 {"kind": "stage_finish", "job": jid, "attempt": 1, "stage": 0, "exit_code": 0,
                  "duration_ms": 6000},
                 {"kind": "stage_start", "job": jid, "attempt": 1, "stage": 0}):
        for via in (lead, victim):
            # As the node that ran attempt 1 sends it: its certificate, no
            # token; an admin's token may not report (test_auth.py).
            err, res = ex.raw_call(via, "worker.report", args, request_id="stale-%s-%d-%d" % (args["kind"], jid, via),
                                   token=None, tls=c.node_context(victim))
            t.check("stale worker.report %s for attempt 1 via node %d refused (stale_attempt)" % (args["kind"], via),
                    err is not None and err[0] == "stale_attempt", "error %r result %r" % (err, res))
    # The restarted node comes back up and reports nothing for attempt 1.
    nl = ex.wait_registered(c, timeout=15)
    t.check("node %d is declared up again after its restart" % victim, not nl[victim]["down"])
    time.sleep(1.0)
    jl = ex.job(c, jid)
    ev2 = ex.events(c, jid)
    t.check("job %d unchanged after the restart: succeeded, attempt 2, same %d events" % (jid, len(ev)),
            jl["state"] == "succeeded" and jl["attempt"] == 2 and len(ev2) == len(ev),
            "state %s attempt %d events %d -> %d" % (jl["state"], jl["attempt"], len(ev), len(ev2)))
    log = restarted_log(c, victim)
    bad = [ln for ln in log.splitlines() if ("job=%d " % jid) in ln and "attempt=1" in ln and
           ("outcome=succeeded" in ln or "attempt starting" in ln or "stage finished" in ln)]
    t.check("node %d's log since its restart: no start, stage result or success for job %d attempt 1"
            % (victim, jid), not bad, "\n".join(bad[:5]))
    reap = [ln for ln in log.splitlines() if "killed leftover stage processes" in ln]
    t.log("node %d after restart: %s" % (victim, reap[0].split(" ", 3)[-1] if reap else "no leftover group killed"))
    return victim


# ---- 2. kill and restart at once ---------------------------------------------
def kill_restart_fast(t, c):
    src = c.write_file("src/long2.txt", "long 2\n")
    jid = ex.submit(c, "t-long", [src])
    j = wait_running(c, jid)
    victim = j["node"]
    c.kill(victim)
    c.restart(victim)
    t_kill = cl.now()
    t.log("job %d: node %d killed and restarted at once (attempt 1 was running there)" % (jid, victim))
    # The restarted worker finds its interrupted attempt at start (no log
    # entry needs to be applied first) and reports it lost.
    requeued = None
    try:
        requeued = cl.wait_for("job %d attempt 1 reported lost" % jid,
                               lambda: ex.job(c, jid)["attempt"] >= 2, 8, interval=0.1)
    except cl.TestFailure:
        pass
    t.check("job %d: the restarted node reports its interrupted attempt lost within 8 s, unprompted" % jid,
            bool(requeued), "still %s" % ex.job(c, jid)["state"])
    jf = ex.wait_final(c, jid, 40)
    ev = ex.events(c, jid)
    kinds = [e["kind"] for e in ev]
    rq = [e for e in ev if e["kind"] == "requeued"]
    t.check("job %d: ends succeeded once, attempt 2" % jid,
            jf["state"] == "succeeded" and jf["attempt"] == 2 and kinds.count("succeeded") == 1,
            "state %s attempt %d kinds %s" % (jf["state"], jf["attempt"], kinds))
    t.check("job %d: attempt 1 requeued as lost in the restart" % jid,
            len(rq) == 1 and rq[0]["attempt"] == 1, str([(e["attempt"], e["node"], e["message"]) for e in rq]))
    attempt_checks(t, "kill-restart", jid, ev)
    t.log("KILL-RESTART: attempt 2 on node %s; ended %.2f s after the restart; requeue message %r"
          % (jf["node"], cl.now() - t_kill, rq[0]["message"] if rq else None))


# ---- 3. kill the leader while jobs run ----------------------------------------
def kill_leader(t, c):
    ex.apply_yaml(c, "t-short", SHORT_TARGET)
    src = c.write_file("src/short.txt", "short\n")
    lead = c.wait_leader()
    ids = [ex.submit(c, "t-short", [src]) for _ in range(10)]
    cl.wait_for("4 jobs running", lambda: sum(1 for j in c.all_jobs() if j["id"] in ids and j["state"] == "running")
                >= 4, 20, interval=0.05)
    states = {j["id"]: (j["state"], j["node"]) for j in c.all_jobs() if j["id"] in ids}
    wall_kill = time.time()
    c.kill(lead)
    t.log("killed leader node %d with jobs %s" % (lead, sorted(states.items())))
    survivors = [n for n in cl.NODES if n != lead]
    new_lead = c.wait_leader(nodes=survivors)
    t.log("new leader node %d" % new_lead)
    final = ex.wait_all_final(c, ids, 60)
    t.log("KILL-LEADER: all 10 jobs ended %.2f s after the kill" % (time.time() - wall_kill))
    t.check("kill-leader: all 10 jobs succeeded (none lost)", all(final[i]["state"] == "succeeded" for i in ids),
            str({i: (final[i]["state"], final[i]["error"]) for i in ids if final[i]["state"] != "succeeded"}))
    intervals = []
    late_assign = 0
    for jid in ids:
        ev = ex.events(c, jid)
        kinds = [e["kind"] for e in ev]
        t.check("kill-leader job %d: exactly one succeeded event" % jid, kinds.count("succeeded") == 1, str(kinds))
        attempt_checks(t, "kill-leader", jid, ev)
        live = None
        for e in ev:
            if e["kind"] == "assigned":
                live = (e["attempt"], e["node"], e["time"])
                late_assign += e["time"] / 1000 > wall_kill
            elif live and e["attempt"] == live[0] and e["kind"] in ("requeued",) + FINAL_KINDS:
                intervals.append((live[1], live[2], e["time"], jid, live[0]))
                live = None
    t.check("kill-leader: jobs assigned after the kill (scheduling resumed under node %d)" % new_lead,
            late_assign > 0 or all(s != "queued" for s, _ in states.values()), "%d late assignments" % late_assign)
    over = []
    for n in cl.NODES:
        pts = sorted([(s, 1) for (m, s, _, _, _) in intervals if m == n] +
                     [(e, -1) for (m, _, e, _, _) in intervals if m == n])
        cur = peak = 0
        for _, d in pts:
            cur += d
            peak = max(peak, cur)
        if peak > 2:
            over.append("node %d ran %d attempts at once" % (n, peak))
    t.check("kill-leader: no node ever held more than its 2 slots (from the events)", not over, "; ".join(over))
    reruns = [(jid, a) for (_, _, _, jid, a) in intervals if a > 1]
    t.log("kill-leader: %d attempts in all, reruns %s" % (len(intervals), reruns))
    c.restart(lead)
    ex.wait_registered(c, timeout=20)
    idx, _ = c.wait_converged(timeout=30)
    t.check("kill-leader: the old leader restarts and catches up (applied index %d everywhere)" % idx, True)
    after = {j["id"]: j["state"] for j in c.all_jobs() if j["id"] in ids}
    t.check("kill-leader: jobs unchanged after the old leader's return",
            all(s == "succeeded" for s in after.values()), str(after))


def main(t):
    c = t.cluster(overrides=ex.EXEC_OVERRIDES)
    ex.wait_registered(c)
    kill_worker(t, c)
    kill_restart_fast(t, c)
    kill_leader(t, c)
    ex.check_no_used_slots(t, c, "after every job ended")


if __name__ == "__main__":
    cl.run_tests(main)
