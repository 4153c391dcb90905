#!/usr/bin/env python3
"""Hostile jobs on a real 3-node cluster with the stage sandbox on (the
default): slots 2 per node, work_quota_bytes 32 MiB, stage_processes 64,
stage_memory_bytes 256 MiB.

1. `node list` shows every node's sandbox label: uid identities, the
   namespaces, cgroup limits, the ext4-loop quota (or what this machine
   allows).
2. A bystander job runs `sleep 6` between two writes while the hostile jobs
   run; it must succeed with both lines in its output.
3. Hostile jobs, one stage each, every one of them failing with an error
   that says why, and its log showing the refusal where the command prints
   one:
   - read state.mdb (the store), the config file and a token file of every node, list
     every node's data/work directory (the bystander's among them): "No such
     file or directory";
   - connect to every node's API and raft port on 127.0.0.1: "Connection
     refused"; reach 10.255.255.1: "Network is unreachable";
   - fork-bomb: "process limit of 64 reached";
   - allocate 1 GiB: "memory limit of 256 MiB reached";
   - write 200 MiB: "work directory over its 32 MiB quota";
   - write to /usr, /etc and a path outside: "Read-only file system" / no
     such directory, nothing created on the host;
   - plant a symlink output to /etc/passwd: refused, not followed;
   - kill -9 its parent, pid 1 and every process it can see, then exit 0:
     it succeeds, having killed nothing outside.
4. Afterwards: every node still runs, the bystander succeeded, no process
   of any sandbox uid is left, the stores converge to identical dumps, and
   a plain job still succeeds.
5. Node 3 restarted with a sandbox path that does not exist: it registers
   0 slots, its label reads "unavailable: ..." naming the path and its log
   "SANDBOX UNAVAILABLE"; restarted with `sandbox: off`, it has its 2 slots
   again and the label "off".
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clusterlib as cl  # noqa: E402
from test_execution import (apply_yaml, job, node_list, submit, wait_final,  # noqa: E402
                            wait_registered)

OVERRIDES = {"slots": "2", "work_quota_bytes": str(32 << 20), "stage_processes": "64",
             "stage_memory_bytes": str(256 << 20)}
UID_FLOOR = 400000  # SANDBOX_DEFAULT_UID_BASE


def target(name, script, outputs=None, timeout="60s"):
    text = ("name: %s\nstages:\n  - name: %s\n    argv: [sh, -c, %s, x, \"{out}\"]\n"
            "    timeout: %s\n" % (name, name, _q(script), timeout))
    if outputs:
        text += "    outputs: [%s]\n" % ", ".join(outputs)
    return text


def _q(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def logs(c, jid):
    r = c.ctl("job", "logs", str(jid), timeout="10s", json_out=False)
    return r.out


def sandbox_procs():
    """Live processes whose uid is in the sandbox ranges."""
    found = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/status" % d) as f:
                st = {ln.split(":")[0]: ln.split(":", 1)[1].split() for ln in f if ":" in ln}
        except OSError:
            continue
        if int(st["Uid"][0]) >= UID_FLOOR and st["State"][0] not in ("Z", "X"):
            found.append(int(d))
    return found


def main(t):
    if os.geteuid() != 0:
        t.log("skipped: the sandbox with its own identities needs root")
        return
    c = t.cluster(overrides=OVERRIDES)
    nl = wait_registered(c)
    for n in cl.NODES:
        label = (nl[n].get("labels") or {}).get("sandbox", "")
        t.check("node %d's sandbox label names identities, namespaces and limits" % n,
                "identity=uid:" in label and "ns=user,pid,mount,ipc,uts,net" in label, label)
    t.log("node 1 sandbox: %s" % (nl[1].get("labels") or {}).get("sandbox"))
    src = c.write_file("src/in.txt", "x\n")

    data = [c.data_dir(n) for n in cl.NODES]
    configs = [c.config(n) for n in cl.NODES]
    token = c.write_file("admin.token", "TOKEN-SECRET\n")
    os.chmod(token, 0o644)
    ports = [cl.api_port(n) for n in cl.NODES] + [cl.raft_port(n) for n in cl.NODES]
    outside = c.path("written-from-a-sandbox")
    hostile = {
        "read-store": ("for d in %s; do cat $d/state.mdb; cat $d/work/*/out/*/a.txt; ls $d/work; "
                       "done; cat %s %s; exit 1" % (" ".join(data), " ".join(configs), token),
                       None, ["No such file or directory"], "exited with status 1"),
        "connect": ("for p in %s; do bash -c \"echo x > /dev/tcp/127.0.0.1/$p\" && exit 0; done; "
                    "bash -c 'echo x > /dev/tcp/10.255.255.1/80' && exit 0; exit 1"
                    % " ".join(str(p) for p in ports),
                    None, ["Connection refused", "Network is unreachable"], "exited with status 1"),
        "fork-bomb": ("i=0; while [ $i -lt 1000 ]; do sleep 30 & i=$((i+1)); done; wait",
                      None, [], "process limit of 64 reached"),
        "memory": ("python3 -c \"b = b'x' * (1 << 30); print(len(b))\"", None, [],
                   "memory limit of 256 MiB reached"),
        "disk": ("head -c 200M /dev/zero > \"$1/big\"", None, ["No space left on device"],
                 "work directory over its 32 MiB quota"),
        "write-outside": ("touch /usr/x /etc/x %s; exit 1" % outside, None,
                          ["Read-only file system"], "exited with status 1"),
        "symlink": ("ln -s /etc/passwd \"$1/leak.txt\"", ["leak.txt"], [],
                    "is a symbolic link; refused"),
    }
    # ---- 2. the bystander ----------------------------------------------------
    apply_yaml(c, "bystander", target("bystander", "echo one > \"$1/a.txt\"; sleep 6; "
                                      "echo two >> \"$1/a.txt\"", ["a.txt"]))
    by = submit(c, "bystander", [src])
    cl.wait_for("bystander running", lambda: job(c, by)["state"] == "running", 20, interval=0.1)

    # ---- 3. hostile jobs ------------------------------------------------------
    ids = {}
    for name, (script, outs, _, _) in hostile.items():
        apply_yaml(c, name, target(name, script, outs))
        ids[name] = submit(c, name, [src])
    apply_yaml(c, "killer", target("killer", "kill -9 $PPID; kill -9 1; kill -9 -1; "
                                   "echo survived > \"$1/k.txt\"", ["k.txt"]))
    killer = submit(c, "killer", [src])
    for name, (script, outs, in_log, in_error) in hostile.items():
        j = wait_final(c, ids[name], 90)
        err = j.get("error") or ""
        t.check("hostile '%s' (job %d) fails" % (name, ids[name]), j["state"] == "failed",
                "%s %r" % (j["state"], err))
        t.check("hostile '%s': the error says why (%s)" % (name, in_error), in_error in err, err)
        if in_log:
            log = logs(c, ids[name])
            for want in in_log:
                t.check("hostile '%s': the log shows '%s'" % (name, want), want in log, log[-600:])
            for secret in ("TOKEN-SECRET", "one\n"):
                t.check("hostile '%s': nothing secret in its log" % name, secret not in log,
                        log[-600:])
    jk = wait_final(c, killer, 60)
    t.check("the job that kill -9's its parent, pid 1 and -1 ends succeeded (it killed nothing "
            "outside)", jk["state"] == "succeeded", "%s %r" % (jk["state"], jk.get("error")))
    t.check("nothing was written outside by a sandbox", not os.path.exists(outside)
            and not os.path.exists("/usr/x") and not os.path.exists("/etc/x"))

    # ---- 4. the cluster goes on ----------------------------------------------
    jb = wait_final(c, by, 60)
    t.check("the bystander succeeded while the hostile jobs ran", jb["state"] == "succeeded",
            "%s %r" % (jb["state"], jb.get("error")))
    outs = {f["path"]: f["size"] for f in (jb["stages"][0]["outputs"] if jb["stages"] else [])}
    t.check("the bystander's output has both lines", outs.get("a.txt") == 8, repr(outs))
    t.check("every node still runs", all(c.running(n) for n in cl.NODES))
    left = cl.wait_for("no sandbox process left", lambda: not sandbox_procs() or None, 10,
                       interval=0.2) if sandbox_procs() else True
    t.check("no process of a sandbox uid is left", bool(left), repr(sandbox_procs()))
    apply_yaml(c, "plain", target("plain", "echo fine > \"$1/p.txt\"", ["p.txt"]))
    jp = wait_final(c, submit(c, "plain", [src]), 60)
    t.check("a plain job still succeeds", jp["state"] == "succeeded", repr(jp.get("error")))
    c.wait_converged()
    dumps = c.dumps()
    t.check("the stores converge to identical dumps", len(set(dumps.values())) == 1)

    # ---- 5. a node whose sandbox cannot be built takes no work ----------------
    c.configure(3, sandbox_paths=["/nonexistent-toolchain"])
    c.stop(3)
    c.start(3)

    def label3(want_slots):
        m = node_list(c).get(3)
        return m if m and m["slots"] == want_slots and not m["down"] else None
    m = cl.wait_for("node 3 registered with 0 slots", lambda: label3(0), 20, interval=0.2)
    lab = (m.get("labels") or {}).get("sandbox", "")
    t.check("node 3's label says the sandbox is unavailable and why",
            lab.startswith("unavailable:") and "/nonexistent-toolchain" in lab, lab)
    t.check("node 3's log says so at error level", "SANDBOX UNAVAILABLE" in c.log(3))
    c.configure(3, sandbox_paths=None, sandbox="off")
    c.stop(3)
    c.start(3)
    m = cl.wait_for("node 3 registered with 2 slots", lambda: label3(2), 20, interval=0.2)
    t.check("with sandbox: off node 3 runs work again and its label says off",
            (m.get("labels") or {}).get("sandbox") == "off", repr(m.get("labels")))


if __name__ == "__main__":
    cl.run_tests(main)
