#!/usr/bin/env python3
"""Assignments ahead of a free slot (issue 16, goal 4; node/leader/scheduler.c,
node/worker/worker.c; docs/operations.md, `assign_ahead`).

One node with one slot, assign_ahead 3 and assign_ahead_max_ms 5000, the
stage sandbox off (the stages write a ledger outside their directories:
"start|end <job> <attempt> <time>").  A warm-up job teaches the leader how
long the target's attempts run (0.4 s, under 5 s), then:

  - four jobs are submitted: the node takes all four at once (used_slots 4:
    one slot, three ahead) and its worker parks three ("attempt waits for a
    slot", and ingot_worker_attempts_waiting counts them);
  - the last one is cancelled while it waits: it ends cancelled and never
    starts;
  - the other three succeed, one at a time: no two runs in the ledger
    overlap (the node never runs more than its slot);
  - three more are submitted and the node is killed (kill -9) while the
    first runs and two wait; restarted, it reports every one of them lost
    (the waiting ones too: their markers are on disk), and each job ends
    succeeded exactly once, on its second attempt; no (job, attempt) starts
    twice;
  - restarted with the stage sandbox on, four more (after a warm-up: a new
    run of the leader knows no target's run time): the node again takes all
    four at once, but never holds more than two sandboxes (records in
    data/sandbox/, sampled every 5 ms): the one running and the one that ran
    before it, still closing while the next opens.  A parked attempt opens
    its sandbox only once it has its slot (opened at once, all four were
    seen).
"""
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clusterlib as cl  # noqa: E402

OVERRIDES = {"slots": "1", "assign_ahead": "3", "assign_ahead_max_ms": "5000",
             "sandbox": "off", "log_level": "debug", "retry_backoff_ms": "0"}
TARGET = """name: short
stages:
  - name: run
    argv: [/bin/sh, -c, 'echo "start {job} {attempt} $(date +%s.%N)" >> "{param:LEDGER}"; sleep 0.4; echo "end {job} {attempt} $(date +%s.%N)" >> "{param:LEDGER}"']
    timeout: 30s
"""
LINE = re.compile(r"^(start|end) (\d+) (\d+) ([\d.]+)$")
FINAL = ("succeeded", "failed", "cancelled")
SLEEPER = """name: sleeper
stages:
  - name: run
    argv: [sleep, '0.3']
    timeout: 30s
"""


def ledger(path):
    try:
        with open(path) as f:
            return [m.groups() for m in (LINE.match(ln.strip()) for ln in f) if m]
    except FileNotFoundError:
        return []


def runs(path):
    """(job, attempt) -> [start, end or None], from the ledger."""
    out = {}
    for kind, job, attempt, when in ledger(path):
        r = out.setdefault((int(job), int(attempt)), [None, None, 0])
        if kind == "start":
            r[0] = float(when)
            r[2] += 1
        else:
            r[1] = float(when)
    return out


def waiting_metric():
    """ingot_worker_attempts_waiting on node 1's /metrics."""
    conn = cl.http_connection(1)
    try:
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
    finally:
        conn.close()
    m = re.search(r"^ingot_worker_attempts_waiting (\d+)$", text, re.M)
    return int(m.group(1)) if m else None


def main(t):
    c = t.cluster(nodes=(1,), overrides=OVERRIDES)
    path = c.path("ledger.txt")
    c.ctl_json("target", "apply", c.write_file("targets/short.yaml", TARGET), nodes=[1])
    src = c.write_file("src/a.c", "int a;\n")

    def submit():
        return c.ctl_json("job", "submit", "--target", "short", "--param", "LEDGER=" + path, src,
                          nodes=[1])["id"]

    def get(j):
        return c.ctl_json("job", "get", j, nodes=[1])

    def final(j):
        return cl.wait_for("job %d to end" % j,
                           lambda: (lambda x: x if x["state"] in FINAL else None)(get(j)), 60,
                           interval=0.1)

    def used_slots():
        return [n for n in c.ctl_json("node", "list", nodes=[1]) if n["id"] == 1][0]["used_slots"]

    warm = submit()
    t.check("the warm-up job succeeds", final(warm)["state"] == "succeeded")

    jobs = [submit() for _ in range(4)]
    t.check("the node holds all four at once (1 slot + 3 ahead)",
            cl.wait_for("used_slots 4", lambda: used_slots() == 4, 10, interval=0.02) is not None)
    parked = lambda: {int(j) for j in re.findall(r"attempt waits for a slot job=(\d+)", c.log(1))}
    cl.wait_for("three attempts parked", lambda: parked() >= set(jobs[1:]), 10)
    w = waiting_metric()
    t.check("/metrics counts the waiting attempts (2 or 3: the first runs 0.4 s)",
            w in (2, 3), "ingot_worker_attempts_waiting %r" % w)
    r = c.ctl_json("job", "cancel", jobs[3], nodes=[1])
    t.log("cancelled job %d while it waits: %r" % (jobs[3], r))
    end = final(jobs[3])
    t.check("the waiting job ends cancelled", end["state"] == "cancelled", repr(end))
    t.check("the waiting job never started", (jobs[3], 1) not in runs(path), repr(runs(path)))
    for j in jobs[:3]:
        t.check("job %d succeeds" % j, final(j)["state"] == "succeeded")
    rs = sorted(v for k, v in runs(path).items() if k[0] in jobs[:3])
    overlap = [(a, b) for a, b in zip(rs, rs[1:]) if b[0] < a[1]]
    t.check("one run at a time on a node with one slot (%d runs)" % len(rs),
            len(rs) == 3 and not overlap, repr(rs))

    # kill -9 while one runs and two wait
    more = [submit() for _ in range(3)]
    cl.wait_for("used_slots 3", lambda: used_slots() == 3, 10, interval=0.02)
    cl.wait_for("the first of them to start", lambda: (more[0], 1) in runs(path), 10,
                interval=0.01)
    k = c.starts[1]
    c.kill(1)
    c.start(1)
    for j in more:
        end = final(j)
        ev = c.ctl_json("job", "events", j, nodes=[1])
        finals = [e["kind"] for e in ev if e["kind"] in FINAL]
        t.check("job %d ends succeeded once, on its second attempt" % j,
                end["state"] == "succeeded" and finals == ["succeeded"] and end["attempt"] == 2,
                "state %s attempt %s finals %s" % (end["state"], end["attempt"], finals))
    log = c.log_since(1, k + 1)
    lost = {int(j) for j in re.findall(r"attempt lost in a restart job=(\d+) attempt=1\b", log)}
    t.check("the restarted node reports all three lost, the waiting ones too",
            lost >= set(more), "lost %s" % sorted(lost))
    twice = {k: v for k, v in runs(path).items() if v[2] > 1}
    t.check("no (job, attempt) started twice", not twice, repr(twice))
    t.check("the waiting ones never ran on attempt 1",
            all((j, 1) not in runs(path) for j in more[1:]), repr(runs(path)))

    # the stage sandbox on: a parked attempt holds no sandbox
    c.stop(1)
    c.configure(1, sandbox="on")
    c.start(1)
    c.wait_leader()
    c.ctl_json("target", "apply", c.write_file("targets/sleeper.yaml", SLEEPER), nodes=[1])

    def sleeper():
        return c.ctl_json("job", "submit", "--target", "sleeper", src, nodes=[1])["id"]

    t.check("the warm-up job succeeds in the sandbox", final(sleeper())["state"] == "succeeded")
    state = os.path.join(c.data_dir(1), "sandbox")
    boxed = [sleeper() for _ in range(4)]
    held = used_slots()  # right after the submits: all four are placed at once
    most, n = 0, 0
    deadline = time.time() + 30
    while time.time() < deadline:
        open_now = len([f for f in os.listdir(state) if f.endswith(".rec")]) if os.path.isdir(state) else 0
        most = max(most, open_now)
        n += 1
        if n % 40 == 0:
            held = max(held, used_slots())
            if all(get(j)["state"] in FINAL for j in boxed):
                break
        time.sleep(0.005)
    t.check("the four sandboxed jobs succeed",
            all(get(j)["state"] == "succeeded" for j in boxed), repr([get(j)["state"] for j in boxed]))
    t.check("the node held them at once (used_slots %d)" % held, held == 4)
    t.check("at most two sandboxes at a time, one running and one closing (%d seen)" % most,
            1 <= most <= 2)


if __name__ == "__main__":
    cl.run_tests(main)
