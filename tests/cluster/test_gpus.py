#!/usr/bin/env python3
"""GPUs as a resource on a real 3-node cluster without a GPU: the GPUs are
declared in the configs (node 1 `gpus: 0`, node 2 `gpus: 1`, node 3
`gpus: [2]`), slots 2 per node, heartbeat 200 ms, a node down after 1.5 s.

1. Discovery without NVML (none on this machine): every node logs "gpu
   discovery gpus=0" and registers no capability cuda and no gpu_* label;
   node.list shows node 2 offering GPU 0 and node 3 GPU 2, both free,
   node 1 none.
2. Placement and holding: three jobs of a target with `gpus: 1` whose
   stage writes CUDA_VISIBLE_DEVICES to an output and sleeps: two run at
   once, one on node 2 (CUDA_VISIBLE_DEVICES=0) and one on node 3 (=2),
   never on node 1 although it has free slots; node.list shows each GPU
   held by its job and job.get the job's GPUs; the third waits with "needs
   1 GPU, none free on nodes 2, 3" and runs as soon as one ends.  A stage
   of a target without GPUs on a GPU node sees CUDA_VISIBLE_DEVICES=""; on
   node 1 (no GPUs) it is not set.  A target needing 2 GPUs waits with
   "needs 2 GPUs: the nodes that can run target 'gpu-two' offer at most 1".
3. Release however the attempt ends: success (above), failure (exit 1),
   timeout (1 s stage timeout on a 30 s sleep), cancel (the stage process
   gone), node loss (kill -9 of node 3 while its GPU is held: declared
   down, its GPU free again in node.list, the job requeued and run again
   on node 3 as attempt 2 once it restarts, holding GPU 2 again).  After
   each, the GPU is free and a next GPU job can run on that node.
4. Bad `gpus` in a config (a repeated index, 17, -1): ingotd exits 2
   naming the key, nothing written.
Finally no GPU is held and no slot used anywhere.
"""
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clusterlib as cl  # noqa: E402
from test_execution import (apply_yaml, job, node_list, proc_alive, read_pid, stage_dir,  # noqa: E402
                            submit, wait_final, wait_registered)

OVERRIDES = {"slots": "2", "node_down_after_ms": "1500", "heartbeat_interval_ms": "200",
             "retry_backoff_ms": "0"}
NODE_OVERRIDES = {1: {"gpus": "0", "labels": "{box: n1}"},
                  2: {"gpus": "1", "labels": "{box: n2}"},
                  3: {"gpus": "[2]", "labels": "{box: n3}"}}

# The stage writes what CUDA_VISIBLE_DEVICES is ("unset" when it is not
# set), its pid, then sleeps {param:T} seconds (or fails when T is "fail").
SHOW = """  - name: show
    argv:
      - sh
      - -c
      - |
        if env | grep -q '^CUDA_VISIBLE_DEVICES='; then printf '[%s]' "$CUDA_VISIBLE_DEVICES" > "$1/cvd"; else echo unset > "$1/cvd"; fi
        echo $$ > "$1/pid"
        if [ "$2" = fail ]; then exit 1; fi
        exec sleep "$2"
      - show
      - "{out}"
      - "{param:T}"
    timeout: TIMEOUT
    outputs: [cvd, pid]
"""


def target_yaml(name, gpus, timeout="60s", labels=None):
    head = "name: %s\n" % name
    if gpus is not None:
        head += "gpus: %d\n" % gpus
    if labels:
        head += "labels: {%s}\n" % labels
    return head + "stages:\n" + SHOW.replace("TIMEOUT", timeout)


def gpu_holders(c):
    """{node: {gpu index: holding job or None}} from node.list."""
    return {n: {g["index"]: g["job"] for g in nd["gpus"] if g["offered"]}
            for n, nd in node_list(c).items()}


def cvd(c, jid, tmp):
    d = os.path.join(tmp, "fetch-%d" % jid)
    c.ctl_json("job", "fetch", jid, d, timeout="10s")
    with open(os.path.join(d, "0-cvd")) as f:
        return f.read().strip()


def wait_state(c, jid, state, timeout=20):
    return cl.wait_for("job %d %s" % (jid, state),
                       lambda: (lambda j: j if j["state"] == state else None)(job(c, jid)),
                       timeout, interval=0.1)


def wait_free(c, t, what, timeout=10):
    try:
        cl.wait_for("every GPU free", lambda: all(
            j is None for h in gpu_holders(c).values() for j in h.values()), timeout, interval=0.2)
        t.check("%s: every GPU free again" % what, True)
    except cl.TestFailure:
        t.check("%s: every GPU free again" % what, False, json.dumps(gpu_holders(c)))


def discovery_and_registration(t, c):
    for n in cl.NODES:
        log = c.log(n)
        t.check("node %d: discovery without NVML finds no GPU and says why" % n,
                "gpu discovery gpus=0 library=libnvidia-ml.so.1" in log, "")
    nl = node_list(c)
    for n in cl.NODES:
        caps, labels = nl[n]["capabilities"], nl[n]["labels"]
        t.check("node %d: no capability cuda, no gpu_* label" % n,
                "cuda" not in caps and not any(k.startswith("gpu_") for k in labels),
                "caps %s labels %s" % (caps, labels))
    want = {1: {}, 2: {0: None}, 3: {2: None}}
    t.check("node.list: node 2 offers GPU 0, node 3 GPU 2, node 1 none, all free",
            gpu_holders(c) == want, json.dumps(gpu_holders(c)))
    t.check("node.list: used_gpus 0 everywhere", all(nl[n]["used_gpus"] == 0 for n in cl.NODES),
            json.dumps({n: nl[n]["used_gpus"] for n in cl.NODES}))
    r = c.ctl("node", "list", json_out=False, timeout="10s")
    t.check("node list (table) has a GPUS column: 0/1 on nodes 2 and 3, - on node 1",
            r.rc == 0 and "GPUS" in r.out and
            any(ln.split()[:3] == ["2", "0/2", "0/1"] for ln in r.out.splitlines()) and
            any(ln.split()[:3] == ["1", "0/2", "-"] for ln in r.out.splitlines()), r.out)


def placement(t, c, tmp):
    apply_yaml(c, "gpu-one", target_yaml("gpu-one", 1))
    apply_yaml(c, "gpu-two", target_yaml("gpu-two", 2))
    apply_yaml(c, "plain-n1", target_yaml("plain-n1", None, labels="box: n1"))
    apply_yaml(c, "plain-n2", target_yaml("plain-n2", None, labels="box: n2"))
    src = c.write_file("src/k.txt", "kernel\n")
    a = submit(c, "gpu-one", [src], "--param", "T=4")
    b = submit(c, "gpu-one", [src], "--param", "T=4")
    ja, jb = wait_state(c, a, "running"), wait_state(c, b, "running")
    third = submit(c, "gpu-one", [src], "--param", "T=0")
    t.check("two GPU jobs run at once, on nodes 2 and 3",
            sorted([ja["node"], jb["node"]]) == [2, 3], "nodes %s %s" % (ja["node"], jb["node"]))
    want_gpu = {2: 0, 3: 2}
    t.check("job.get shows each job's GPU (node 2: [0], node 3: [2])",
            ja["gpus"] == [want_gpu[ja["node"]]] and jb["gpus"] == [want_gpu[jb["node"]]],
            "%s %s" % (ja["gpus"], jb["gpus"]))
    h = gpu_holders(c)
    t.check("node.list shows each GPU held by its job",
            h[ja["node"]][want_gpu[ja["node"]]] == a and h[jb["node"]][want_gpu[jb["node"]]] == b,
            json.dumps(h))
    r = c.ctl("job", "get", a, json_out=False, timeout="10s")
    t.check("job get (table) shows the held GPU",
            "gpus:      %d (held)" % want_gpu[ja["node"]] in r.out, r.out)
    time.sleep(0.6)
    j3 = job(c, third)
    t.check("the third GPU job waits: 'needs 1 GPU, none free on nodes 2, 3'",
            j3["state"] == "queued" and j3.get("waiting") == "needs 1 GPU, none free on nodes 2, 3",
            "state %s waiting %r" % (j3["state"], j3.get("waiting")))
    two = submit(c, "gpu-two", [src], "--param", "T=0")
    time.sleep(0.6)
    w2 = job(c, two).get("waiting")
    t.check("a job needing 2 GPUs waits: no node offers that many",
            w2 == "needs 2 GPUs: the nodes that can run target 'gpu-two' offer at most 1 "
                  "(nodes 1, 2, 3)", repr(w2))
    c.ctl_json("job", "cancel", two, timeout="10s")
    p1 = submit(c, "plain-n1", [src], "--param", "T=0")
    p2 = submit(c, "plain-n2", [src], "--param", "T=0")
    for jid in (a, b):
        jf = wait_final(c, jid, 20)
        t.check("job %d succeeded" % jid, jf["state"] == "succeeded", jf["error"])
    got = {ja["node"]: cvd(c, a, tmp), jb["node"]: cvd(c, b, tmp)}
    t.check("their stages saw CUDA_VISIBLE_DEVICES=0 on node 2 and =2 on node 3",
            got == {2: "[0]", 3: "[2]"}, repr(got))
    j3 = wait_final(c, third, 20)
    t.check("the third ran once a GPU was free, and succeeded",
            j3["state"] == "succeeded" and j3["node"] in (2, 3), "%s on %s" % (j3["state"], j3["node"]))
    for jid, node, want in ((p1, 1, "unset"), (p2, 2, "[]")):
        jf = wait_final(c, jid, 20)
        got = cvd(c, jid, tmp) if jf["state"] == "succeeded" else jf["error"]
        t.check("a target without GPUs on node %d: CUDA_VISIBLE_DEVICES %s" % (node, want),
                jf["node"] == node and got == want and jf["gpus"] == [], "%s on %s: %r" %
                (jf["state"], jf["node"], got))
    wait_free(c, t, "after success")


def release_on_every_end(t, c, tmp):
    src = c.write_file("src/r.txt", "release\n")
    apply_yaml(c, "gpu-short", target_yaml("gpu-short", 1, timeout="1s"))
    apply_yaml(c, "gpu-n3", target_yaml("gpu-n3", 1, labels="box: n3"))

    # failure
    f = submit(c, "gpu-one", [src], "--param", "T=fail", "--max-attempts", "1")
    jf = wait_final(c, f, 20)
    t.check("failure: the job failed (exit 1)", jf["state"] == "failed" and jf["gpus"] != [],
            "%s %r gpus %s" % (jf["state"], jf["error"], jf["gpus"]))
    wait_free(c, t, "after a failure")

    # timeout
    to = submit(c, "gpu-short", [src], "--param", "T=30", "--max-attempts", "1")
    jf = wait_final(c, to, 20)
    t.check("timeout: the job failed on its 1 s stage timeout",
            jf["state"] == "failed" and jf["stages"] and jf["stages"][0]["exit_code"] != 0,
            "%s %r" % (jf["state"], jf["error"]))
    wait_free(c, t, "after a timeout")

    # cancel
    cj = submit(c, "gpu-one", [src], "--param", "T=30")
    j = wait_state(c, cj, "running")
    pidf = os.path.join(stage_dir(c, j["node"], cj, j["attempt"], 0, "show"), "pid")
    pid = cl.wait_for("the stage's pid", lambda: read_pid(pidf), 10, interval=0.05)
    t.check("cancel: the GPU is held while it runs",
            gpu_holders(c)[j["node"]].get(j["gpus"][0]) == cj, json.dumps(gpu_holders(c)))
    c.ctl_json("job", "cancel", cj, timeout="10s")
    jf = wait_final(c, cj, 15)
    t.check("cancel: the job ended cancelled", jf["state"] == "cancelled", jf["state"])
    gone = cl.wait_for("pid %d gone" % pid, lambda: not proc_alive(pid), 5, interval=0.05)
    t.check("cancel: its stage process is gone", bool(gone))
    wait_free(c, t, "after a cancel")

    # node loss: kill -9 node 3 while job holds its GPU 2
    nl = submit(c, "gpu-n3", [src], "--param", "T=6", "--max-attempts", "3")
    j = wait_state(c, nl, "running")
    t.check("node loss: the job runs on node 3 holding GPU 2",
            j["node"] == 3 and j["gpus"] == [2] and gpu_holders(c)[3] == {2: nl},
            "%s %s %s" % (j["node"], j["gpus"], json.dumps(gpu_holders(c))))
    c.kill(3)
    t0 = cl.now()

    def requeued():
        jj = job(c, nl)
        return jj if jj["state"] == "queued" and jj["attempt"] == 1 else None
    jq = cl.wait_for("job %d requeued after node 3 is declared down" % nl, requeued, 15,
                     interval=0.2)
    nodes = node_list(c)
    t.check("node loss: node 3 down, its GPU 2 released (%.1f s after the kill)" % (cl.now() - t0),
            nodes[3]["down"] and gpu_holders(c)[3] == {2: None} and nodes[3]["used_gpus"] == 0,
            json.dumps({"down": nodes[3]["down"], "gpus": nodes[3]["gpus"]}))
    t.check("node loss: the requeued job holds no GPU", jq["gpus"] == [] and jq["node"] is None,
            json.dumps({"gpus": jq["gpus"], "node": jq["node"]}))
    c.restart(3)
    jr = wait_state(c, nl, "running", timeout=30)
    t.check("node loss: node 3 back, attempt 2 runs there holding GPU 2 again",
            jr["attempt"] == 2 and jr["node"] == 3 and jr["gpus"] == [2],
            "%s %s %s" % (jr["attempt"], jr["node"], jr["gpus"]))
    jf = wait_final(c, nl, 30)
    t.check("node loss: attempt 2 succeeded", jf["state"] == "succeeded", jf["error"])
    wait_free(c, t, "after a node loss")


def bad_configs(t, c):
    for bad, needle in (("[1, 1]", "GPU 1 listed twice"), ("17", "'17' is not an integer"),
                        ("-1", "expected an integer"), ("{a: 1}", "expected a count or a list")):
        cfg = c.write_file("bad-gpus.yaml", "id: 9\ndata_dir: %s\nraft_address: 127.0.0.1:1\n"
                           "api_address: 127.0.0.1:2\npeers:\n  - {id: 9, raft_address: "
                           "127.0.0.1:1, api_address: 127.0.0.1:2}\ngpus: %s\n"
                           % (c.path("bad-data"), bad))
        p = subprocess.run([c.ingotd, "--config", cfg], capture_output=True, text=True, timeout=30)
        t.check("config gpus: %s is refused (exit 2) naming the key" % bad,
                p.returncode == 2 and "key 'gpus'" in p.stderr and needle in p.stderr and
                not os.path.exists(c.path("bad-data")), "rc=%d %s" % (p.returncode, p.stderr))


def main(t):
    c = t.cluster(overrides=OVERRIDES, node_overrides=NODE_OVERRIDES)
    wait_registered(c)
    tmp = c.path("fetched")
    discovery_and_registration(t, c)
    placement(t, c, tmp)
    release_on_every_end(t, c, tmp)
    bad_configs(t, c)
    nodes = node_list(c)
    t.check("finally: no GPU held, no slot used",
            all(nodes[n]["used_gpus"] == 0 and nodes[n]["used_slots"] == 0 for n in cl.NODES),
            json.dumps({n: (nodes[n]["used_gpus"], nodes[n]["used_slots"]) for n in cl.NODES}))


cl.run_tests(main)
