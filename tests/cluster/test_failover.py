#!/usr/bin/env python3
"""kill -9 of the leader under concurrent submits with request ids, then the
killed node's restart and catch-up (real 3-node cluster on 127.0.0.1).

Concurrent submitters (one ingotctl per submit, all three endpoints in a
per-thread order so that some go through followers, a fixed
request id per job retried unchanged until it is acknowledged) run while the
leader is killed with SIGKILL.  Afterwards every acknowledged job exists
exactly once: the cluster holds as many jobs as distinct request ids were
acknowledged, each request id maps to one job id, and re-sending every
request id returns the same id and creates nothing.  The time from the kill
to the first successful write is measured.  The killed node is restarted and
must catch up: equal applied index, then byte-identical mdb_dump on all three.
Two rounds (the second kills the leader elected in the first), then a third
where the leader is stopped with SIGTERM instead.
"""
import os
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clusterlib as cl  # noqa: E402

THREADS = 4
BEFORE_KILL = 40      # acknowledged submits before the kill
AFTER_KILL = 40       # ... and after it
RID_DEADLINE = 30.0   # seconds one request id may take, retries included


class Submitters:
    def __init__(self, c, src, rnd):
        self.c, self.src, self.rnd = c, src, rnd
        self.lock = threading.Lock()
        self.acked = {}          # request id -> job id
        self.attempts = []       # (rid, start, end, rc)
        self.unacked = []        # request ids that hit their deadline
        self.dups = []           # request id acknowledged twice with different ids
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.run, args=(i,), daemon=True) for i in range(THREADS)]

    def run(self, i):
        # Each thread lists the three endpoints from a different node, so
        # some submits reach the leader through a follower (forwarded).
        order = [cl.NODES[(i + j) % len(cl.NODES)] for j in range(len(cl.NODES))]
        eps = ",".join(cl.api_ep(n) for n in order)
        k = 0
        while not self.stop.is_set():
            rid = "r%d-%d-%d" % (self.rnd, i, k)
            k += 1
            deadline = cl.now() + RID_DEADLINE
            while True:
                t0 = cl.now()
                r = self.c.ctl("job", "submit", "--target", "t-fo", "--request-id", rid, self.src,
                               eps=eps, timeout="5s", proc_timeout=30)
                t1 = cl.now()
                with self.lock:
                    self.attempts.append((rid, t0, t1, r.rc))
                if r.rc == 0:
                    jid = r.json()["id"]
                    with self.lock:
                        if rid in self.acked and self.acked[rid] != jid:
                            self.dups.append((rid, self.acked[rid], jid))
                        self.acked[rid] = jid
                    break
                if cl.now() > deadline:
                    with self.lock:
                        self.unacked.append((rid, repr(r)))
                    break
                self.stop.wait(0.05)

    def count(self):
        with self.lock:
            return len(self.acked)


def failover_round(t, c, rnd, src, all_acked, how):
    lead = c.wait_leader()
    term0 = c.status(lead)["term"]
    t.log("round %d: leader is node %d (term %d); starting %d submitters" % (rnd, lead, term0, THREADS))
    s = Submitters(c, src, rnd)
    for th in s.threads:
        th.start()
    cl.wait_for("%d acknowledged submits" % BEFORE_KILL, lambda: s.count() >= BEFORE_KILL, 30)
    n_before = s.count()
    t_kill = cl.now()
    if how == "kill":
        c.kill(lead)
    else:
        rc = c.stop(lead)
        t.check("round %d: leader node %d stops cleanly on SIGTERM under load (exit 0)" % (rnd, lead), rc == 0,
                "exit code %s" % rc)
    t.log("round %d: %s leader node %d after %d acknowledged submits"
          % (rnd, "killed (kill -9)" if how == "kill" else "stopped (SIGTERM)", lead, n_before))
    try:
        cl.wait_for("%d more acknowledged submits" % AFTER_KILL,
                    lambda: s.count() >= n_before + AFTER_KILL, 40)
    finally:
        s.stop.set()
        for th in s.threads:
            th.join(timeout=RID_DEADLINE + 40)
    t.check("round %d: submitter threads finished" % rnd, not any(th.is_alive() for th in s.threads))

    survivors = [n for n in cl.NODES if c.running(n)]
    new_lead = c.wait_leader(nodes=survivors)
    st = c.status(new_lead)
    t.check("round %d: a new leader among the survivors, newer term" % rnd,
            new_lead != lead and st["term"] > term0,
            "leader %d term %d (was %d, term %d)" % (new_lead, st["term"], lead, term0))

    ok_after = [(a[1], a[2]) for a in s.attempts if a[3] == 0 and a[2] > t_kill]
    ok_started_after = [a[2] for a in s.attempts if a[3] == 0 and a[1] >= t_kill]
    failed = [a for a in s.attempts if a[3] != 0]
    first_any = min(e for _, e in ok_after) - t_kill if ok_after else None
    first_new = min(ok_started_after) - t_kill if ok_started_after else None
    t.log("round %d: FAILOVER first write acknowledged %.3f s after the kill "
          "(first write sent after the kill: acknowledged at +%.3f s); %d attempts failed and were retried"
          % (rnd, first_any if first_any is not None else -1, first_new if first_new is not None else -1,
             len(failed)))
    t.check("round %d: writes succeed again within 10 s of the kill" % rnd,
            first_new is not None and first_new < 10.0, "first_new=%s" % first_new)
    t.check("round %d: every request id acknowledged before its deadline" % rnd, not s.unacked,
            "; ".join("%s: %s" % u for u in s.unacked[:3]))
    t.check("round %d: no request id acknowledged with two job ids" % rnd, not s.dups, str(s.dups[:5]))
    ids = list(s.acked.values())
    t.check("round %d: distinct request ids got distinct job ids (%d acknowledged)" % (rnd, len(ids)),
            len(set(ids)) == len(ids))
    all_acked.update(s.acked)

    # Every acknowledged job exists exactly once, nothing else was created.
    jobs = c.all_jobs(timeout="10s")
    jids = [j["id"] for j in jobs]
    acked_ids = set(all_acked.values())
    missing = sorted(acked_ids - set(jids))
    extra = sorted(set(jids) - acked_ids)
    t.check("round %d: every acknowledged job exists (none lost)" % rnd, not missing,
            "missing %s" % missing[:20])
    t.check("round %d: job count %d == distinct acknowledged request ids %d (no duplicate applies)"
            % (rnd, len(jids), len(all_acked)),
            len(jids) == len(all_acked) and len(set(jids)) == len(jids) and not extra,
            "extra jobs %s" % extra[:20])

    # Re-sending every request id of this round returns the same job and creates nothing.
    wrong = []
    for rid, jid in sorted(s.acked.items())[:40]:
        r = c.ctl("job", "submit", "--target", "t-fo", "--request-id", rid, src)
        if r.rc != 0 or r.json().get("id") != jid:
            wrong.append("%s: expected %d, %r" % (rid, jid, r))
    jobs2 = c.all_jobs()
    t.check("round %d: re-sent request ids return the first job id (dedupe across the leader change)" % rnd,
            not wrong, "; ".join(wrong[:3]))
    t.check("round %d: re-sending created nothing (%d jobs)" % (rnd, len(jobs2)), len(jobs2) == len(jids))
    return lead


def catch_up(t, c, rnd, killed):
    # The submits after the kill happened while the node was down.
    before = c.applied()
    t0 = cl.now()
    c.restart(killed)
    idx, _ = c.wait_converged(nodes=list(cl.NODES), timeout=60)
    secs = cl.now() - t0
    others = max(v for n, v in before.items() if n != killed and v is not None)
    t.log("round %d: CATCH-UP node %d (down during the failover; others at applied index %d) reached %d "
          "in %.2f s (restart included)" % (rnd, killed, others, idx, secs))
    t.check("round %d: restarted node %d caught up to applied index %d" % (rnd, killed, idx), True)
    dumps = c.dumps()
    t.check("round %d: mdb_dump identical on all three nodes at index %d" % (rnd, idx),
            cl.dumps_identical(dumps), cl.dump_diff(dumps))
    jobs = c.all_jobs(killed, stale=True)
    jobs_l = c.all_jobs()
    t.check("round %d: restarted node serves every job from its own state (--stale)" % rnd,
            sorted(j["id"] for j in jobs) == sorted(j["id"] for j in jobs_l),
            "%d vs %d" % (len(jobs), len(jobs_l)))


def main(t):
    c = t.cluster()
    c.apply_target("t-fo")
    src = c.write_file("src/fo.c", "void f(void) {}\n")
    all_acked = {}
    for rnd, how in ((1, "kill"), (2, "kill"), (3, "term")):
        killed = failover_round(t, c, rnd, src, all_acked, how)
        catch_up(t, c, rnd, killed)
    for n in cl.NODES:
        rc = c.stop(n)
        t.check("node %d stops cleanly on SIGTERM (exit 0)" % n, rc == 0, "exit code %s" % rc)


cl.run_tests(main)
