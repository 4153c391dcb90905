#!/usr/bin/env python3
"""Attempt directories reused (sandbox off; real 3-node cluster, slots 2).

A worker keeps the directory of an attempt that ended as a spare
(DATA_DIR/work/spare-<n>, emptied down to src/, out/ and out's stage
directories) and gives it to its next attempt, so a trivial job creates no
directory (issue 16).  Six jobs of a target whose stage leaves files
everywhere (in the attempt directory, in a nested directory, in src/, in
its out/ directory, a symbolic link to /etc, an extra directory under
out/) end; spares are there; then six jobs of another target list their
whole attempt directory: each sees exactly what a fresh directory holds
(its own source under src/, out/ and its own stage's directory), nothing
of the earlier jobs.  Every job succeeds; no slot is left in use.
"""
import glob
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clusterlib as cl  # noqa: E402
from test_execution import check_no_used_slots, submit, wait_all_final, wait_registered  # noqa: E402

OVERRIDES = {"slots": "2", "node_down_after_ms": "1500", "heartbeat_interval_ms": "200",
             "sandbox": "off"}
DIRTY = """name: dirty
stages:
  - name: mess
    argv: [/bin/sh, -c, 'echo secret > top.txt && mkdir -p deep/er src/sub "$0/nested" out/extra &&
           echo s > deep/er/f && echo s > src/sub/g && echo o > "$0/o" && echo n > "$0/nested/n" &&
           ln -s /etc link && ln -s /etc "$0/etc"', "{out}"]
    timeout: 20s
"""
LOOK = """name: look
stages:
  - name: look
    argv: [/bin/sh, -c, 'find . | LC_ALL=C sort']
    timeout: 20s
"""


def listing(c, jid):
    out = c.ctl("job", "logs", jid, timeout="10s")
    logs = [json.loads(ln).get("log") or "" for ln in out.out.splitlines() if ln.strip()]
    # Where the file system has no extended attributes, the process group
    # is recorded in the file pgid instead: not the job's.
    return [p for p in "".join(logs).split() if p != "./pgid"]


def main(t):
    c = t.cluster(overrides=OVERRIDES)
    wait_registered(c)
    c.ctl_json("target", "apply", c.write_file("targets/dirty.yaml", DIRTY))
    c.ctl_json("target", "apply", c.write_file("targets/look.yaml", LOOK))
    src = c.write_file("src/in.c", "int x;\n")
    dirty = [submit(c, "dirty", [src]) for _ in range(6)]
    ends = wait_all_final(c, dirty, 60)
    t.check("the dirty jobs succeed", all(j["state"] == "succeeded" for j in ends.values()), repr(ends))
    spares = [p for n in cl.NODES for p in glob.glob(os.path.join(c.data_dir(n), "work", "spare-*"))]
    t.check("ended attempts left spare directories", len(spares) > 0, repr(spares))
    look = [submit(c, "look", [src]) for _ in range(6)]
    ends = wait_all_final(c, look, 60)
    t.check("the look jobs succeed", all(j["state"] == "succeeded" for j in ends.values()), repr(ends))
    want = [".", "./out", "./out/0-look", "./src", "./src/in.c"]
    for jid in look:
        got = listing(c, jid)
        t.check("job %d sees a clean attempt directory" % jid, got == want, "%r != %r" % (got, want))
    check_no_used_slots(t, c, "after every job ended")


if __name__ == "__main__":
    cl.run_tests(main)
