#!/usr/bin/env python3
"""Work really runs (real 3-node cluster on 127.0.0.1, slots 2 per node,
real toolchains as child processes of the workers).

1. Every example target end to end: cluster-configs/targets/x86_64-avx2,
   aarch64-neon, x86_64-verify (and cuda-sm90 when nvcc is on the stages'
   default PATH /usr/local/bin:/usr/bin:/bin; skipped with the reason
   otherwise) with the example kernels of examples/README.md.  Each job ends
   succeeded, every stage done with exit 0, every declared output present
   with a size > 0; `job watch` of one of them exits 0.  x86_64-verify with
   examples/fir/fir_wrong.c ends failed with an error naming the stage
   (`job watch` exits 1).
2. Cancel a running job: its stage writes its pid (`echo $$ > "$1/pid";
   exec sleep 30`, read from DATA_DIR/work/job-<id>-a<attempt>/out/0-<name>/),
   the job is cancelled, it ends `cancelled` within a few seconds and the
   process is gone (/proc/<pid>).  A queued job cancelled ends at once.
3. A job no node can run (capabilities [no-such-tool]) stays queued and
   `job get` shows a `waiting` reason naming the capabilities.
Finally no slot is left in use on any node (node.list used_slots == 0).

Helpers shared with test_execution_faults.py live here.
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clusterlib as cl  # noqa: E402

EXEC_OVERRIDES = {"slots": "2", "node_down_after_ms": "1500", "heartbeat_interval_ms": "200"}
FINAL = ("succeeded", "failed", "cancelled")
EX = os.path.join(cl.SOURCE_DIR, "examples")
TARGETS = os.path.join(cl.SOURCE_DIR, "cluster-configs", "targets")
STAGE_PATH = ("/usr/local/bin", "/usr/bin", "/bin")


# ---- helpers (also used by test_execution_faults.py) ----------------------
def raw_call(n, op, args, request_id=None, timeout=5.0):
    """One request on a fresh connection to node n; returns (error, result):
    error is None or [code, message]."""
    s = cl.connect_api(cl.api_port(n), timeout=timeout)
    try:
        s.sendall(cl.frame(cl.mp_pack([0, 1, op, args, None, request_id])))
        s.settimeout(timeout)
        buf = b""
        while True:
            if len(buf) >= 4:
                ln = int.from_bytes(buf[:4], "big")
                if len(buf) >= 4 + ln:
                    v = cl.mp_unpack(buf[4:4 + ln])[0]
                    if isinstance(v, list) and len(v) == 4 and v[0] == 1:
                        return v[2], v[3]
                    buf = buf[4 + ln:]
                    continue
            chunk = s.recv(65536)
            if not chunk:
                raise cl.TestFailure("node %d closed the connection on %s" % (n, op))
            buf += chunk
    finally:
        s.close()


def node_list(c, via=None):
    for n in ([via] if via else [m for m in cl.NODES if c.running(m)]):
        try:
            err, res = raw_call(n, "node.list", {})
        except OSError:
            continue
        if err is None:
            return {m["id"]: m for m in res}
    raise cl.TestFailure("node.list answered by no node")


def wait_registered(c, nodes=cl.NODES, timeout=20):
    """Waits until every node of `nodes` is registered and not down."""
    def ok():
        nl = node_list(c)
        return nl if all(n in nl and not nl[n]["down"] for n in nodes) else None
    return cl.wait_for("nodes %s registered and up" % (nodes,), ok, timeout, interval=0.2)


def apply_yaml(c, name, text):
    f = c.write_file("targets/%s.yaml" % name, text)
    return c.ctl_json("target", "apply", f, timeout="10s")


def submit(c, target, files, *extra):
    return c.ctl_json("job", "submit", "--target", target, *(list(extra) + list(files)), timeout="10s")["id"]


def job(c, jid, **kw):
    return c.ctl_json("job", "get", jid, timeout="10s", **kw)


def events(c, jid, **kw):
    return c.ctl_json("job", "events", jid, timeout="10s", **kw)


def wait_final(c, jid, timeout):
    return cl.wait_for("job %d to end" % jid,
                       lambda: (lambda j: j if j["state"] in FINAL else None)(job(c, jid)),
                       timeout, interval=0.2)


def wait_all_final(c, ids, timeout):
    ids = set(ids)

    def ok():
        jobs = {j["id"]: j for j in c.all_jobs(timeout="10s") if j["id"] in ids}
        return jobs if len(jobs) == len(ids) and all(j["state"] in FINAL for j in jobs.values()) else None
    return cl.wait_for("jobs %s to end" % sorted(ids), ok, timeout, interval=0.25)


def stage_dir(c, node, jid, attempt, index, name):
    return os.path.join(c.data_dir(node), "work", "job-%d-a%d" % (jid, attempt), "out", "%d-%s" % (index, name))


def read_pid(path):
    """The host pid of the stage process that wrote its `$$` into `path`.

    In the sandbox the stage has its own PID namespace: `$$` is its pid
    there, so the host process is the one whose innermost NSpid is that
    number and whose command line, or an ancestor's (bwrap's carries the
    stage's argv), names the file's directory ({out}).  Without a sandbox
    the two are the same."""
    try:
        with open(path) as f:
            s = f.read().strip()
        inner = int(s) if s else None
    except (OSError, ValueError):
        return None
    if inner is None:
        return None
    marker = os.path.dirname(path).encode()

    def status(pid):
        with open("/proc/%s/status" % pid) as f:
            return {l.split(":")[0]: l.split(":", 1)[1].split() for l in f if ":" in l}

    def names_marker(pid, depth):
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                if marker in f.read():
                    return True
            ppid = status(pid).get("PPid", ["0"])[0]
        except OSError:
            return False
        return depth > 0 and ppid not in ("0", "1") and names_marker(ppid, depth - 1)

    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            ns = status(d).get("NSpid")
        except OSError:
            continue
        if ns and int(ns[-1]) == inner and names_marker(d, 3):
            return int(d)
    return None


def proc_alive(pid):
    """True while /proc/<pid> exists and is not a zombie."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            st = f.read()
    except OSError:
        return False
    state = st.rsplit(")", 1)[1].split()[0]
    return state not in ("Z", "X")


def proc_exists(pid):
    return os.path.exists("/proc/%d" % pid)


def check_no_used_slots(t, c, what):
    def ok():
        nl = node_list(c)
        return nl if all(nl[n]["used_slots"] == 0 for n in nl if c.running(n)) else None
    try:
        nl = cl.wait_for("used_slots 0 everywhere", ok, 10, interval=0.3)
        t.check("%s: no slot left in use on any node (node.list used_slots == 0)" % what, True)
    except cl.TestFailure as e:
        t.check("%s: no slot left in use on any node (node.list used_slots == 0)" % what, False, str(e))
        nl = None
    return nl


def target_outputs(c, name):
    tg = c.ctl_json("target", "get", name, timeout="10s")
    # The stdout file is an output of its own (reported after the declared ones).
    return [(s["name"], list(s.get("outputs") or []) + ([s["stdout"]] if s.get("stdout") else []))
            for s in tg["stages"]]


def check_succeeded(t, c, jid, label, outs):
    j = job(c, jid)
    ok = j["state"] == "succeeded"
    t.check("%s (job %d): succeeded" % (label, jid), ok,
            "" if ok else "state %s error %r stages %s" % (j["state"], j["error"], json.dumps(j["stages"])[:600]))
    st = j["stages"]
    t.check("%s (job %d): %d stages, all done with exit 0" % (label, jid, len(outs)),
            len(st) == len(outs) and all(s["state"] == "done" and s["exit_code"] == 0 for s in st),
            json.dumps([(s["index"], s["state"], s["exit_code"]) for s in st]))
    missing = []
    for i, (sname, want) in enumerate(outs):
        got = {f["path"]: f["size"] for f in (st[i]["outputs"] if i < len(st) else [])}
        for w in want:
            if got.get(w, 0) <= 0:
                missing.append("%s:%s (got %r)" % (sname, w, got.get(w)))
    t.check("%s (job %d): every declared output present with size > 0" % (label, jid), not missing,
            "; ".join(missing) + " | " + json.dumps([s["outputs"] for s in st])[:400])
    return j


def watch(c, jid, timeout=60):
    return c.ctl("job", "watch", jid, timeout="20s", proc_timeout=timeout)


# ---- 1. the example targets -------------------------------------------------
def examples_end_to_end(t, c):
    nvcc = next((d for d in STAGE_PATH if os.access(os.path.join(d, "nvcc"), os.X_OK)), None)
    names = ["x86_64-avx2", "aarch64-neon", "x86_64-verify"]
    if nvcc:
        names.append("cuda-sm90")
        t.log("nvcc found in %s: cuda-sm90 is tested" % nvcc)
    else:
        t.log("SKIP cuda-sm90: nvcc is not on the stages' default PATH %s" % ":".join(STAGE_PATH))
    for name in names:
        r = c.ctl_json("target", "apply", os.path.join(TARGETS, name + ".yaml"), timeout="10s")
        t.check("target %s applied" % name, r.get("name") == name, repr(r))

    def e(k, *fs):
        return [os.path.join(EX, k, f) for f in fs]
    jobs = [  # (label, target, files)
        ("avx2 fir", "x86_64-avx2", e("fir", "fir.c", "fir.h")),
        ("avx2 fft", "x86_64-avx2", e("fft", "fft.c", "fft.h")),
        ("avx2 mixer", "x86_64-avx2", e("mixer", "mixer.c", "mixer.h")),
        ("neon fir", "aarch64-neon", e("fir", "fir.c", "fir.h")),
        ("neon fft", "aarch64-neon", e("fft", "fft.c", "fft.h")),
        ("neon mixer", "aarch64-neon", e("mixer", "mixer.c", "mixer.h")),
    ]
    for k in ("fir", "fft", "mixer"):
        jobs.append(("verify %s" % k, "x86_64-verify",
                     e(k, k + ".c", "harness.c", k + ".h", "ref_in.txt", "ref_out.txt")))
    if nvcc:
        jobs.append(("cuda fir", "cuda-sm90", e("fir", "fir.cu", "fir_cuda.h")))
    t0 = cl.now()
    ids = {}
    for label, tgt, files in jobs:
        ids[label] = (submit(c, tgt, files), tgt)
    wrong = submit(c, "x86_64-verify", e("fir", "fir_wrong.c", "harness.c", "fir.h", "ref_in.txt", "ref_out.txt"))
    t.log("submitted %d example jobs and the wrong FIR" % len(ids))
    w = watch(c, ids["avx2 fir"][0])
    t.check("job watch of a succeeding job exits 0 and prints its events",
            w.rc == 0 and "succeeded" in w.out, "rc=%d out=%r err=%r" % (w.rc, w.out[-300:], w.err[-300:]))
    final = wait_all_final(c, [i for i, _ in ids.values()] + [wrong], 180)
    t.log("all example jobs ended %.1f s after the first submit" % (cl.now() - t0))
    outs = {name: target_outputs(c, name) for name in names}
    nodes_used = set()
    for label, (jid, tgt) in ids.items():
        j = check_succeeded(t, c, jid, label, outs[tgt])
        nodes_used.add(j["node"])
        ev = events(c, jid)
        t.check("%s (job %d): exactly one succeeded event, attempt 1" % (label, jid),
                [x["kind"] for x in ev].count("succeeded") == 1 and j["attempt"] == 1,
                "attempt %d kinds %s" % (j["attempt"], [x["kind"] for x in ev]))
        durs = ["%s=%dms" % (s["index"], s["duration_ms"]) for s in j["stages"]]
        t.log("%s: node %s, stages %s" % (label, j["node"], " ".join(durs)))
    t.log("example jobs ran on nodes %s" % sorted(n for n in nodes_used if n))
    j = job(c, wrong)
    t.check("verify with fir_wrong.c (job %d) ends failed" % wrong, final[wrong]["state"] == "failed" and
            j["state"] == "failed", "state %s" % j["state"])
    t.check("its error names the stage (verify)", "verify" in j["error"], "error %r" % j["error"])
    t.check("its verify stage failed with exit code 1 (the harness's FAIL)",
            len(j["stages"]) == 1 and j["stages"][0]["state"] == "failed" and j["stages"][0]["exit_code"] == 1,
            json.dumps(j["stages"])[:300])
    t.log("wrong FIR error: %r" % j["error"])
    w = watch(c, wrong)
    t.check("job watch of the failed job exits 1 naming the failure",
            w.rc == 1 and "failed" in w.err, "rc=%d err=%r" % (w.rc, w.err[-300:]))


# ---- 2. cancel --------------------------------------------------------------
CANCEL_TARGET = """name: t-cancel
stages:
  - name: wait
    argv: [sh, -c, 'echo $$ > "$1/pid"; exec sleep 30', wait, "{out}"]
    timeout: 60s
    outputs: [pid]
"""


def cancel_running(t, c):
    apply_yaml(c, "t-cancel", CANCEL_TARGET)
    src = c.write_file("src/c.txt", "cancel me\n")
    jid = submit(c, "t-cancel", [src])
    j = cl.wait_for("job %d running" % jid, lambda: (lambda j: j if j["state"] == "running" else None)(job(c, jid)),
                    20, interval=0.1)
    pidf = os.path.join(stage_dir(c, j["node"], jid, j["attempt"], 0, "wait"), "pid")
    pid = cl.wait_for("the stage's pid file %s" % pidf, lambda: read_pid(pidf), 10, interval=0.05)
    alive = cl.wait_for("pid %d to be sleep" % pid, lambda: proc_alive(pid) and
                        open("/proc/%d/cmdline" % pid, "rb").read().split(b"\0")[0].endswith(b"sleep"), 5)
    t.check("running job %d: its stage (pid %d, sleep) runs on node %d" % (jid, pid, j["node"]), alive)
    t0 = cl.now()
    r = c.ctl_json("job", "cancel", jid, "--reason", "test cancel", timeout="10s")
    t.log("job cancel answered %r after %.3f s" % (r, cl.now() - t0))
    jf = wait_final(c, jid, 15)
    dt = cl.now() - t0
    t.check("cancelled running job ends cancelled within 5 s", jf["state"] == "cancelled" and dt < 5,
            "state %s after %.2f s" % (jf["state"], dt))
    # docs/cli.md: "--reason R is recorded in the job's error" (also for a
    # running job, whose end is the worker's finish report).
    t.check("its error carries the --reason", "test cancel" in jf["error"], "error %r" % jf["error"])
    ev = events(c, jid)
    t.check("the cancel_requested event carries the reason",
            any(e["kind"] == "cancel_requested" and "test cancel" in e["message"] for e in ev),
            str([(e["kind"], e["message"]) for e in ev]))
    gone = None
    try:
        gone = cl.wait_for("pid %d gone" % pid, lambda: not proc_alive(pid), 5, interval=0.05)
    except cl.TestFailure:
        pass
    t.check("the stage's process (pid %d) is gone" % pid, bool(gone),
            "still exists: %s" % (open("/proc/%d/stat" % pid).read() if proc_exists(pid) else "no"))
    t.log("CANCEL: cancelled in %.2f s; /proc/%d %s" % (dt, pid, "gone" if not proc_exists(pid) else "zombie"))
    kinds = [e["kind"] for e in ev]
    t.check("events: cancel_requested then cancelled, once each",
            kinds.count("cancel_requested") == 1 and kinds.count("cancelled") == 1 and
            kinds.index("cancel_requested") < kinds.index("cancelled"), str(kinds))
    return jid


# ---- 3. no node can run it ----------------------------------------------------
NOWHERE_TARGET = """name: t-nowhere
capabilities: [no-such-tool]
stages:
  - name: s
    argv: [no-such-tool, "{source}"]
    timeout: 10s
"""


def unrunnable(t, c):
    apply_yaml(c, "t-nowhere", NOWHERE_TARGET)
    src = c.write_file("src/n.txt", "nowhere\n")
    jid = submit(c, "t-nowhere", [src])
    time.sleep(2.0)
    j = job(c, jid)
    t.check("job %d for [no-such-tool] stays queued" % jid, j["state"] == "queued" and j["attempt"] == 0,
            "state %s attempt %d" % (j["state"], j["attempt"]))
    w = j.get("waiting")
    t.check("job get shows a waiting reason naming the missing capability", isinstance(w, str) and "capab" in w
            and "no-such-tool" in w, "waiting %r" % (w,))
    t.log("waiting reason (linearizable, via every endpoint): %r" % (w,))
    per = {}
    for n in cl.NODES:
        per[n] = job(c, jid, nodes=[n]).get("waiting")
    t.check("the same waiting reason through every node (linearizable reads)",
            all(v == w for v in per.values()), repr(per))
    # A queued job cancelled ends at once.
    t0 = cl.now()
    r = c.ctl_json("job", "cancel", jid, timeout="10s")
    t.check("cancel of a queued job: cancelled at once", r.get("state") == "cancelled" and
            job(c, jid)["state"] == "cancelled", "%r after %.2f s" % (r, cl.now() - t0))


def main(t):
    c = t.cluster(overrides=EXEC_OVERRIDES)
    nl = wait_registered(c)
    t.log("nodes registered: %s" % {n: (m["slots"], m["capabilities"]) for n, m in nl.items()})
    examples_end_to_end(t, c)
    cancel_running(t, c)
    unrunnable(t, c)
    check_no_used_slots(t, c, "after every job ended")
    # No node restarted here: a worker must never report an attempt that
    # just ended normally as "lost in a restart" (its own apply lagging).
    spurious = [ln for n in cl.NODES for ln in c.log(n).splitlines() if "attempt lost in a restart" in ln]
    t.check("no spurious 'attempt lost in a restart' report without a restart", not spurious,
            "\n".join(spurious[:3]))


if __name__ == "__main__":
    cl.run_tests(main)
