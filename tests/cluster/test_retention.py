#!/usr/bin/env python3
"""Retention frees a full store, nothing acknowledged is lost (real 3-node
cluster on 127.0.0.1).

Every node runs work (2 slots) with a deliberately small store
(store_map_max_bytes 8 MiB, store_reserve_bytes 4 MiB) and the default
retention (7 days).  Jobs of a
one-stage target that succeeds at once (`true`), each with a 32 KiB source
(an artifact) and a 100-byte one (kept inline), are submitted until the
cluster answers no_space.  Then: every acknowledged job ran and succeeded
(nothing lost), every node refuses a new submit (asked at once: the jobs'
ends free pages that may bring the store back under its reserve), and
`ingotctl settings` shows the defaults.  `ingotctl settings set
job-retention 1s`: the leader's retention removes the finished jobs (job get answers not_found, their
artifacts' chunks are freed), and submits are accepted again.  The stores
of the three nodes are identical (mdb_dump).  Finally the dedupe window:
with `dedupe-window 1s`, a submit retried with its request id at once gets
the first job's id, and the same request id two windows later is a new
request (a new job).
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clusterlib as cl  # noqa: E402

MAX_SUBMITS = 400


def apply_true_target(c, name):
    y = ("name: %s\n"
         "stages:\n"
         "  - name: run\n"
         "    argv: [true]\n"
         "    timeout: 60s\n" % name)
    return c.ctl_json("target", "apply", c.write_file("targets/%s.yaml" % name, y))


def submit(c, i, node, request_id=None):
    big = c.write_file("src/big%d.c" % i, "/* %d */\n" % i + "x" * (32 << 10) + "\n")
    small = c.write_file("src/small%d.h" % i, "/* small %d */\n" % i + "y" * 80 + "\n")
    argv = ["job", "submit", "--target", "t-true", big, small]
    if request_id is not None:
        argv += ["--request-id", request_id]
    return c.ctl(*argv, nodes=[node])


def chunks(dump):
    """Entries of table chunks in an `mdb_dump -a -n` text."""
    n, inside, header = 0, False, False
    for ln in dump.decode(errors="replace").splitlines():
        if ln.startswith("database="):
            inside, header = ln == "database=chunks", True
        elif ln == "HEADER=END":
            header = False
        elif ln == "DATA=END":
            inside = False
        elif inside and not header and ln.startswith(" "):
            n += 1
    return n // 2  # a key line and a value line per entry


def main(t):
    c = t.cluster(overrides={"store_map_max_bytes": 8 << 20, "store_reserve_bytes": 4 << 20,
                             "slots": "2", "heartbeat_interval_ms": "200",
                             "node_down_after_ms": "1500"})
    c.wait_leader()
    apply_true_target(c, "t-true")
    r = c.ctl_json("settings", "get")
    t.check("settings get shows the defaults (7 days, 1 day)",
            r == {"job_retention_ms": 7 * 86400000, "dedupe_window_ms": 86400000}, repr(r))

    acked, refusal = [], None
    for i in range(MAX_SUBMITS):
        r = submit(c, i, 1 + i % 3)
        if r.rc == 0:
            acked.append(r.json()["id"])
            continue
        refusal = r
        break
    t.log("%d jobs accepted before the first refusal" % len(acked))
    t.check("submits are refused before the store fills (after %d accepted)" % len(acked),
            refusal is not None and len(acked) > 10, repr(refusal))
    t.check("the refusal is no_space", refusal is not None and refusal.rc == 1
            and "no_space" in refusal.err, repr(refusal))

    # Every node refuses too.  Checked now, not after the jobs end: their
    # ends free pages (queue and assignment rows), which may legitimately
    # bring the store back under its reserve.  A submit a node still
    # accepts takes another 32 KiB, so the refusal comes within a few.
    for n in cl.NODES:
        r = None
        for k in range(20):
            r = submit(c, 1000 + 100 * n + k, n)
            if r.rc != 0:
                break
            acked.append(r.json()["id"])
        t.check("node %d refuses a new job while the store is full" % n,
                r.rc == 1 and "no_space" in r.err, repr(r))

    def all_ended():
        jobs = {j["id"]: j for j in c.all_jobs()}
        return jobs if all(jobs.get(a, {}).get("state") in ("succeeded", "failed") for a in acked) else None
    jobs = cl.wait_for("every acknowledged job ended", all_ended, 120, 0.5)
    t.check("nothing acknowledged was lost: all %d jobs ran and succeeded" % len(acked),
            all(jobs[a]["state"] == "succeeded" for a in acked),
            repr([(a, jobs[a]["state"]) for a in acked if jobs[a]["state"] != "succeeded"][:5]))

    before = chunks(c.dump(1))
    t.check("every acknowledged job's 32 KiB source is a chunk (%d)" % before, before >= len(acked),
            "%d chunks, %d jobs" % (before, len(acked)))
    r = c.ctl("settings", "set", "job-retention", "1s", json_out=False)
    t.check("settings set job-retention 1s", r.rc == 0 and r.out == "", repr(r))
    r = c.ctl_json("settings", "get", nodes=[2])
    t.check("every node sees it", r["job_retention_ms"] == 1000, repr(r))

    def removed():
        left = {j["id"] for j in c.all_jobs()} & set(acked)
        return True if not left else None
    cl.wait_for("retention removed the finished jobs", removed, 60, 0.5)
    r = c.ctl("job", "get", str(acked[0]))
    t.check("a removed job is not_found", r.rc == 1 and "not_found" in r.err, repr(r))
    c.wait_converged()
    after = chunks(c.dump(1))
    t.check("their artifacts' chunks are freed (%d -> %d)" % (before, after),
            after <= before - len(acked), "%d chunks left" % after)

    accepted = None
    deadline = time.time() + 30
    while accepted is None and time.time() < deadline:
        r = submit(c, 2000, 1)
        if r.rc == 0:
            accepted = r.json()["id"]
        else:
            time.sleep(0.5)
    t.check("submits are accepted again once retention freed the store", accepted is not None,
            repr(r))
    cl.wait_for("the new job ended",
                lambda: c.ctl_json("job", "get", str(accepted))["state"] == "succeeded" or None,
                60, 0.3)

    # The dedupe window: a retry within it returns the first id; after two
    # windows (and a retention run) the same id is a new request.
    c.ctl("settings", "set", "job-retention", "forever", json_out=False)
    r = c.ctl("settings", "set", "dedupe-window", "1s", json_out=False)
    t.check("settings set dedupe-window 1s", r.rc == 0, repr(r))
    time.sleep(1.5)  # the generation turns once with the new window
    first = submit(c, 3000, 2, request_id="retention-test-1")
    again = submit(c, 3001, 3, request_id="retention-test-1")
    t.check("a retry within the dedupe window returns the first job",
            first.rc == 0 and again.rc == 0 and first.json()["id"] == again.json()["id"],
            "%r %r" % (first, again))
    later, deadline = None, time.time() + 30
    while time.time() < deadline:
        time.sleep(1)
        later = submit(c, 3002, 1, request_id="retention-test-1")
        if later.rc != 0 or later.json()["id"] != first.json()["id"]:
            break
    t.check("after the window the same request id is a new request",
            later is not None and later.rc == 0 and first.rc == 0
            and later.json()["id"] != first.json()["id"], "%r %r" % (first, later))

    c.wait_converged()
    dumps = c.dumps()
    t.check("stores identical on all three nodes", cl.dumps_identical(dumps), cl.dump_diff(dumps))
    errs = [ln for n in cl.NODES for ln in c.log(n).splitlines() if "store failed" in ln or " fatal " in ln]
    t.check("no node's store failed", not errs, "; ".join(errs[:3]))
    removed_log = [ln for n in cl.NODES for ln in c.log(n).splitlines() if "retention removed=" in ln]
    t.check("retention ran on every node (logged)", len(removed_log) >= 3, "%d lines" % len(removed_log))
    for n in cl.NODES:
        rc = c.stop(n)
        t.check("node %d stops cleanly (exit 0)" % n, rc == 0, "exit code %s" % rc)


cl.run_tests(main)
