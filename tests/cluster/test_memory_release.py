#!/usr/bin/env python3
"""A node gives back its memory once it is quiet (node/node.c,
release_if_due; docs/operations.md, `snapshot_threshold`).

One node, log level debug, so each release logs `memory released applied=N`.
Jobs of a target no node can run stay queued: the only entries applied are
the submits, far fewer than a snapshot threshold, so no snapshot (the other
path to a release) is taken.  After a burst of submits the node releases
within the interval (5 s) and a tick, naming an applied index that covers
the submits; then, with nothing applied, it releases no more.
"""
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clusterlib as cl  # noqa: E402

TARGET = ("name: t-idle\n"
          "capabilities: [no-such-tool]\n"
          "stages:\n"
          "  - name: run\n"
          "    argv: [\"true\"]\n")


def releases(c):
    return [int(m) for m in re.findall(r"memory released applied=(\d+)", c.log(1))]


def applied(c):
    members = c.ctl_json("status", nodes=[1])["members"]
    return [m for m in members if m["id"] == 1][0]["applied_index"]


def main(t):
    c = t.cluster(nodes=(1,), overrides={"log_level": "debug"})
    c.ctl_json("target", "apply", c.write_file("targets/idle.yaml", TARGET), nodes=[1])
    src = c.write_file("src/idle.c", "int idle;\n")
    before = len(releases(c))
    for _ in range(20):
        c.ctl_json("job", "submit", "--target", "t-idle", src, nodes=[1])
    index = applied(c)
    cl.wait_for("a release covering the submits",
                lambda: any(r >= index for r in releases(c)[before:]), 12)
    t.check("no snapshot was taken (the release came from the tick)",
            "raft snapshot taken" not in c.log(1))
    quiet = len(releases(c))
    time.sleep(7)
    t.check("no release while nothing is applied", len(releases(c)) == quiet,
            "%d releases, then %d" % (quiet, len(releases(c))))


if __name__ == "__main__":
    cl.run_tests(main)
