#!/usr/bin/env python3
"""Job deadlines are enforced (real 3-node cluster on 127.0.0.1, slots 2 per
node, heartbeat_interval_ms 200: the leader looks for passed deadlines on
every heartbeat tick).

1. A queued job no node can run (capabilities [no-such-tool]) submitted with
   --deadline 2s ends `failed` with error "deadline passed" within about
   4 s of its submission, leaves the queue, and its events end with one
   `failed` event.
2. A running job (its stage writes its pid, `echo $$ > {out}/pid; exec sleep
   30`, read from DATA_DIR/work/job-<id>-a<attempt>/out/0-<stage>/pid)
   submitted with --deadline 2s ends `failed` "deadline passed" within a few
   seconds and its process is gone (/proc/<pid>); the stage that ran stays
   in the job's history.
3. A job with a deadline that finishes in time is not touched.
4. A new leader enforces the deadlines of jobs submitted under the old one
   (it rebuilds its list from the store): a queued job with --deadline 3s,
   the leader killed right after the submit, ends failed within ~6 s.
Finally no slot is left in use on any node (node.list used_slots == 0).
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clusterlib as cl  # noqa: E402
from test_execution import (EXEC_OVERRIDES, apply_yaml, check_no_used_slots, events, job,  # noqa: E402
                            proc_alive, proc_exists, read_pid, stage_dir, submit, wait_final,
                            wait_registered)

NOWHERE_TARGET = """name: t-nowhere
capabilities: [no-such-tool]
stages:
  - name: s
    argv: [no-such-tool, "{source}"]
    timeout: 10s
"""

SLEEP_TARGET = """name: t-sleep
stages:
  - name: wait
    argv: [sh, -c, 'echo $$ > "$1/pid"; exec sleep 30', wait, "{out}"]
    timeout: 60s
    outputs: [pid]
"""

QUICK_TARGET = """name: t-quick
stages:
  - name: ok
    argv: [sh, -c, 'true']
    timeout: 10s
"""


def queued(t, c):
    apply_yaml(c, "t-nowhere", NOWHERE_TARGET)
    src = c.write_file("src/q.txt", "never runs\n")
    t0 = cl.now()
    jid = submit(c, "t-nowhere", [src], "--deadline", "2s")
    j = job(c, jid)
    t.check("queued job %d has its deadline_at set" % jid, j["state"] == "queued" and
            isinstance(j.get("deadline_at"), int), "state %s deadline_at %r" % (j["state"], j.get("deadline_at")))
    jf = wait_final(c, jid, 10)
    dt = cl.now() - t0
    t.check("queued job with --deadline 2s ends failed within ~4 s", jf["state"] == "failed" and 1.5 <= dt < 4.5,
            "state %s after %.2f s" % (jf["state"], dt))
    t.check("its error is 'deadline passed'", jf["error"] == "deadline passed", "error %r" % jf["error"])
    t.check("it ended at or after its deadline", jf["finished_at"] >= jf["deadline_at"],
            "finished_at %r deadline_at %r" % (jf["finished_at"], jf["deadline_at"]))
    kinds = [e["kind"] for e in events(c, jid)]
    t.check("events: submitted, failed (once)", kinds == ["submitted", "failed"], str(kinds))
    t.log("QUEUED: failed %.2f s after submission" % dt)


def running(t, c):
    apply_yaml(c, "t-sleep", SLEEP_TARGET)
    src = c.write_file("src/r.txt", "runs too long\n")
    t0 = cl.now()
    jid = submit(c, "t-sleep", [src], "--deadline", "2s")
    j = cl.wait_for("job %d running" % jid, lambda: (lambda j: j if j["state"] == "running" else None)(job(c, jid)),
                    10, interval=0.1)
    pidf = os.path.join(stage_dir(c, j["node"], jid, j["attempt"], 0, "wait"), "pid")
    pid = cl.wait_for("the stage's pid file %s" % pidf, lambda: read_pid(pidf), 10, interval=0.05)
    alive = cl.wait_for("pid %d to be sleep" % pid, lambda: proc_alive(pid) and
                        open("/proc/%d/cmdline" % pid, "rb").read().split(b"\0")[0].endswith(b"sleep"), 5)
    t.check("running job %d: its stage (pid %d, sleep) runs on node %d" % (jid, pid, j["node"]), alive)
    jf = wait_final(c, jid, 15)
    dt = cl.now() - t0
    t.check("running job with --deadline 2s ends failed within ~4 s", jf["state"] == "failed" and dt < 4.5,
            "state %s after %.2f s" % (jf["state"], dt))
    t.check("its error is 'deadline passed'", jf["error"] == "deadline passed", "error %r" % jf["error"])
    gone = None
    try:
        gone = cl.wait_for("pid %d gone" % pid, lambda: not proc_alive(pid), 5, interval=0.05)
    except cl.TestFailure:
        pass
    t.check("the stage's process (pid %d) is gone" % pid, bool(gone),
            "still exists: %s" % (open("/proc/%d/stat" % pid).read() if proc_exists(pid) else "no"))
    t.log("RUNNING: failed %.2f s after submission; /proc/%d %s" % (dt, pid, "gone" if not proc_exists(pid)
                                                                    else "zombie"))
    kinds = [e["kind"] for e in events(c, jid)]
    t.check("events: ..., stage_started, failed (once)", kinds.count("failed") == 1 and kinds[-1] == "failed" and
            "stage_started" in kinds, str(kinds))
    # The worker never reports a fenced attempt: no second end, no requeue.
    time.sleep(1.0)
    jl = job(c, jid)
    t.check("the job stays failed at attempt %d" % j["attempt"], jl["state"] == "failed" and
            jl["attempt"] == j["attempt"], "state %s attempt %d" % (jl["state"], jl["attempt"]))


def in_time(t, c):
    apply_yaml(c, "t-quick", QUICK_TARGET)
    src = c.write_file("src/k.txt", "quick\n")
    jid = submit(c, "t-quick", [src], "--deadline", "1m")
    jf = wait_final(c, jid, 15)
    t.check("a job that ends before its deadline succeeds", jf["state"] == "succeeded",
            "state %s error %r" % (jf["state"], jf["error"]))


def new_leader(t, c):
    lead = c.leader()
    src = c.write_file("src/l.txt", "outlives its leader\n")
    t0 = cl.now()
    jid = submit(c, "t-nowhere", [src], "--deadline", "3s")
    c.kill(lead)
    t.log("killed leader node %d after submitting job %d" % (lead, jid))
    others = [n for n in cl.NODES if n != lead]
    c.wait_leader(nodes=others)
    jf = cl.wait_for("job %d to end" % jid,
                     lambda: (lambda j: j if j["state"] != "queued" else None)(job(c, jid, nodes=others)), 15,
                     interval=0.2)
    dt = cl.now() - t0
    t.check("a new leader expires a job submitted under the old one (failed within ~6 s)",
            jf["state"] == "failed" and jf["error"] == "deadline passed" and dt < 6.5,
            "state %s error %r after %.2f s" % (jf["state"], jf["error"], dt))
    c.start(lead)
    c.wait_leader()


def main(t):
    c = t.cluster(overrides=EXEC_OVERRIDES)
    wait_registered(c)
    queued(t, c)
    running(t, c)
    in_time(t, c)
    new_leader(t, c)
    check_no_used_slots(t, c, "after every job ended")


if __name__ == "__main__":
    cl.run_tests(main)
