#!/usr/bin/env python3
"""Attempt directories reused (sandbox off; real 3-node cluster, slots 2).

A worker keeps the directory of an attempt that ended as a spare
(DATA_DIR/work/spare-<n>, emptied down to src/ with its plain files, out/
and out's stage directories) and gives it to its next attempt, which
writes its sources over the files of src/ in place, so a trivial job
creates no directory and no file (issue 16).  Six jobs of a target whose
stage leaves files everywhere (in the attempt directory, in a nested
directory, in src/, in its out/ directory, a symbolic link to /etc, an
extra directory under out/) and tampers with its two sources (appends to
one and makes it mode 000, hard-links the other) end; spares are there;
then six jobs of another target, with one of those sources, list their
whole attempt directory and print that source and its mode: each sees
exactly what a fresh directory holds (its own source under src/, with its
content and mode 600, out/ and its own stage's directory), nothing of the
earlier jobs.  Half of the first jobs are of a third target that leaves
forty plain files in src/, more names than a worker remembers of a spare
(so their spares are read again when taken, the others are not).  Last,
six jobs of a fourth target with another source take the spares the
listing jobs left (their src/in.c must go, by name): each sees only its
own source.  Every job succeeds; no slot is left in use.
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
           ln -s /etc link && ln -s /etc "$0/etc" && echo tampered >> src/in.c &&
           chmod 000 src/in.c && ln src/other.c hard', "{out}"]
    timeout: 20s
"""
MANY = """name: many
stages:
  - name: litter
    argv: [/bin/sh, -c, 'for i in $(seq 40); do echo x > src/a-long-name-for-a-source-file-$i.c; done']
    timeout: 20s
"""
BARE = """name: bare
stages:
  - name: bare
    argv: [/bin/sh, -c, 'find . | LC_ALL=C sort']
    timeout: 20s
"""
LOOK = """name: look
stages:
  - name: look
    argv: [/bin/sh, -c, 'find . | LC_ALL=C sort && cat src/in.c && stat -c %a src/in.c']
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
    c.ctl_json("target", "apply", c.write_file("targets/many.yaml", MANY))
    c.ctl_json("target", "apply", c.write_file("targets/bare.yaml", BARE))
    src = c.write_file("src/in.c", "int x;\n")
    other = c.write_file("src/other.c", "int y;\n")
    dirty = [submit(c, "dirty" if i % 2 == 0 else "many", [src, other]) for i in range(6)]
    ends = wait_all_final(c, dirty, 60)
    t.check("the dirty jobs succeed", all(j["state"] == "succeeded" for j in ends.values()), repr(ends))
    spares = [p for n in cl.NODES for p in glob.glob(os.path.join(c.data_dir(n), "work", "spare-*"))]
    t.check("ended attempts left spare directories", len(spares) > 0, repr(spares))
    look = [submit(c, "look", [src]) for _ in range(6)]
    ends = wait_all_final(c, look, 60)
    t.check("the look jobs succeed", all(j["state"] == "succeeded" for j in ends.values()), repr(ends))
    want = [".", "./out", "./out/0-look", "./src", "./src/in.c", "int", "x;", "600"]
    for jid in look:
        got = listing(c, jid)
        t.check("job %d sees a clean attempt directory" % jid, got == want, "%r != %r" % (got, want))
    bare = [submit(c, "bare", [other]) for _ in range(6)]
    ends = wait_all_final(c, bare, 60)
    t.check("the jobs of another source succeed", all(j["state"] == "succeeded" for j in ends.values()),
            repr(ends))
    for jid in bare:
        got = listing(c, jid)
        want = [".", "./out", "./out/0-bare", "./src", "./src/other.c"]
        t.check("job %d sees only its own source" % jid, got == want, "%r != %r" % (got, want))
    check_no_used_slots(t, c, "after every job ended")


if __name__ == "__main__":
    cl.run_tests(main)
