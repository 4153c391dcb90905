#!/usr/bin/env python3
"""An attempt runs at most once (real 3-node cluster; issue 11, item 1).

Node 1 leads and runs no work (slots 0); nodes 2 and 3 run it (slots 2,
heartbeat 200 ms, node_down_after_ms 1500, the stage sandbox off: the
ledger lies outside the attempts' directories).  Each job's first stage
appends "<job> <attempt> <stage> <its directory>" to a ledger file and then
sleeps.  Five times: a job is submitted, and at the instant its stage
writes its ledger line the node running it is killed (`kill -9`) and
restarted at once, before its own store may have applied the stage's
start.  Each node also runs a `hold` job (a stage that sleeps) when the
job is submitted, and the stores commit once a second
(store_commit_interval_ms): the restarted node's store has lost the killed
attempt's assignment, which its raft log replays only later, while it
already sees the hold job's, so its worker looks at its journal of started
attempts before the replay (the marker must survive that look).  The
restarted node must report that attempt lost (its log says
"attempt lost in a restart"), never start it again: every (job, attempt,
stage) appears at most once in the ledger; every job ends succeeded with
exactly one final event, on a later attempt than the killed one; no
attempt marker (work/started.journal) is left once the attempts ended; the stores
end byte-identical.
"""
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clusterlib as cl  # noqa: E402

ROUNDS = 5
# sandbox off: the stages append to a ledger outside their attempt's
# directory, which a sandboxed stage cannot reach (its own mount view).
OVERRIDES = {"slots": "2", "node_down_after_ms": "1500", "heartbeat_interval_ms": "200",
             "sandbox": "off", "store_commit_interval_ms": "1000"}
TARGET = """name: once
stages:
  - name: one
    argv: [/bin/sh, -c, 'echo "{job} {attempt} one {out}" >> "{param:LEDGER}"; sleep 1']
    timeout: 30s
  - name: two
    argv: [/bin/sh, -c, 'echo "{job} {attempt} two {out}" >> "{param:LEDGER}"']
    timeout: 30s
"""
HOLD = """name: hold
stages:
  - name: hold
    argv: [sleep, '2']
    timeout: 30s
"""
LINE = re.compile(r"^(\d+) (\d+) (\w+) \S*/node(\d+)/data/\S*$")


def ledger_lines(path):
    try:
        with open(path) as f:
            return [LINE.match(ln.strip()) for ln in f if LINE.match(ln.strip())]
    except FileNotFoundError:
        return []


def main(t):
    c = t.cluster(overrides=OVERRIDES, node_overrides={1: {"slots": "0"}})
    if c.leader() != 1:
        r = c.member("transfer", 1)
        t.require("leadership on node 1 (runs no work)", r.ok and c.wait_leader() == 1, repr(r))
    ledger = c.path("ledger.txt")
    c.ctl_json("target", "apply", c.write_file("targets/once.yaml", TARGET))
    c.ctl_json("target", "apply", c.write_file("targets/hold.yaml", HOLD))
    src = c.write_file("src/o.c", "int once;\n")
    jobs, holds = [], []
    for i in range(ROUNDS):
        # A hold job running on each worker node (2 and 3).
        holds += [c.ctl_json("job", "submit", "--target", "hold", src)["id"] for _ in range(2)]

        def held():
            js = [c.ctl_json("job", "get", h) for h in holds]
            nodes = {j["node"] for j in js if j["state"] == "running"}
            if {2, 3} <= nodes:
                return nodes
            if sum(1 for j in js if j["state"] in ("queued", "assigned", "running")) < 2:
                holds.append(c.ctl_json("job", "submit", "--target", "hold", src)["id"])
            return None
        cl.wait_for("a hold job running on nodes 2 and 3", held, 30, interval=0.05)
        jid = c.ctl_json("job", "submit", "--target", "once", "--param", "LEDGER=" + ledger, src)["id"]
        jobs.append(jid)
        m = cl.wait_for("job %d's first stage to start" % jid,
                        lambda: next((x for x in ledger_lines(ledger) if int(x.group(1)) == jid), None),
                        30, interval=0.002)
        victim = int(m.group(4))
        k = c.starts[victim]
        c.kill(victim)
        c.start(victim)
        t.log("round %d: job %d attempt %s started on node %d: killed and restarted at once"
              % (i + 1, jid, m.group(2), victim))
        end = cl.wait_for("job %d to end" % jid,
                          lambda: (lambda j: j if j["state"] in ("succeeded", "failed", "cancelled") else None)(
                              c.ctl_json("job", "get", jid)), 60, interval=0.2)
        ev = c.ctl_json("job", "events", jid)
        finals = [e["kind"] for e in ev if e["kind"] in ("succeeded", "failed", "cancelled")]
        t.check("job %d ends succeeded once, on an attempt after the killed one" % jid,
                end["state"] == "succeeded" and finals == ["succeeded"] and end["attempt"] > int(m.group(2)),
                "state %s attempt %s finals %s" % (end["state"], end["attempt"], finals))
        log = c.log_since(victim, k + 1)
        t.check("job %d: restarted node %d reports the attempt lost" % (jid, victim),
                re.search(r"attempt lost in a restart job=%d attempt=%s\b" % (jid, m.group(2)), log)
                is not None, "\n".join(ln for ln in log.splitlines() if "job=%d " % jid in ln)[:600])
        time.sleep(0.2)
    for h in holds:
        cl.wait_for("hold job %d to end" % h,
                    lambda: c.ctl_json("job", "get", h)["state"] in ("succeeded", "failed", "cancelled"),
                    60, interval=0.2)
    runs = {}
    for x in ledger_lines(ledger):
        runs.setdefault((int(x.group(1)), int(x.group(2)), x.group(3)), []).append(int(x.group(4)))
    twice = {k: v for k, v in runs.items() if len(v) > 1}
    t.check("every (job, attempt, stage) ran at most once (ledger, %d runs)" % len(runs), not twice,
            "; ".join("job %d attempt %d stage %s ran on nodes %s" % (k + (v,)) for k, v in sorted(twice.items())))
    c.wait_converged()
    # The journal of started attempts is back to its 8-byte header once no
    # attempt runs (docs/formats.md); no marker of the old layout either.
    # A marker goes once the store has committed its attempt's end (at most
    # store_commit_interval_ms, 1 s here, after it).
    def markers_left():
        left = {}
        for n in c.nodes:
            j = os.path.join(c.data_dir(n), "work", "started.journal")
            size = os.path.getsize(j) if os.path.exists(j) else 8
            if size != 8 or os.path.isdir(os.path.join(c.data_dir(n), "work", "started")):
                left[n] = size
        return left
    deadline = time.time() + 5
    while markers_left() and time.time() < deadline:
        time.sleep(0.1)
    left = markers_left()
    t.check("no attempt marker left once every attempt ended (work/started.journal)",
            not left, "journal sizes %s" % left)
    dumps = c.dumps()
    t.check("byte-identical stores", cl.dumps_identical(dumps), cl.dump_diff(dumps))


if __name__ == "__main__":
    cl.run_tests(main)
