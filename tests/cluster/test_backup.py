#!/usr/bin/env python3
"""Backups: snapshot save under load, restore into a new 3-node cluster.

A 3-node cluster takes submits from two background writers (request ids,
retries).  While they write, `ingotctl snapshot save` (through a follower)
and GET /v1/snapshot (HTTP, through the other follower) each take a copy.
The old cluster is stopped; three fresh data directories are seeded with
`ingotd restore --from FILE` and started as a new cluster.  Checks:
  - every job acknowledged before the save began is on every node of the
    new cluster (read with --stale from each node's own state), with its
    request id still deduplicated (a retry returns the same id);
  - the new cluster's stores are byte-identical (mdb_dump), and it has a
    cluster id of its own;
  - the HTTP download is a valid snapshot file too (restores, same jobs);
  - refusals, nothing written: a non-empty data directory (exit 2), a file
    with one byte flipped (exit 1, "checksum mismatch"), a truncated file
    (exit 1), a file that is not a snapshot (exit 1);
  - progress and the summary line of `snapshot save`.
"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clusterlib as cl  # noqa: E402


def http_get_to_file(node, path, out):
    conn = cl.http_connection(node, timeout=60)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        data = r.read()
        with open(out, "wb") as f:
            f.write(data)
        return r.status, {k.lower(): v for k, v in r.getheaders()}, len(data)
    finally:
        conn.close()


def restore(c, n, snap, data_dir=None):
    argv = [c.ingotd, "restore", "--from", snap, "--config", c.config(n),
            "--data-dir", data_dir or c.data_dir(n)]
    p = subprocess.run(argv, capture_output=True, timeout=120, cwd=c.node_dir(n))
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def main(t):
    c = t.cluster("backup-old")
    lead = c.wait_leader()
    followers = [n for n in cl.NODES if n != lead]
    c.apply_target("t-bk", via=lead)
    src = c.write_file("src/a.c", "int a(void) { return 1; }\n")
    load = cl.Load(c, "t-bk", src, "bk", threads=2).start()
    load.wait_count(40, timeout=60)

    with load.lock:
        before = dict(load.acked)
    t.log("%d submits acknowledged before the save" % len(before))
    snap = c.path("cluster.snap")
    r = c.ctl("snapshot", "save", snap, nodes=[followers[0]], timeout="60s", json_out=False)
    t.require("ingotctl snapshot save through follower %d (under load)" % followers[0],
              r.rc == 0 and os.path.getsize(snap) > 128, repr(r))
    t.check("snapshot save prints a summary", r.out.startswith("saved %s: " % snap) and "sha256" in r.out,
            r.out)
    snap_http = c.path("http.snap")
    status, headers, size = http_get_to_file(followers[-1], "/v1/snapshot", snap_http)
    t.check("GET /v1/snapshot through follower %d (under load)" % followers[-1],
            status == 200 and size == int(headers.get("x-ingot-snapshot-size", "-1")), str(headers))
    load.wait_count(len(before) + 10, timeout=60)
    t.check("load writer stopped", load.stop())
    load.check(t, "load")
    old_id = c.call("node.info", via=lead).result.get("cluster_id")
    for n in cl.NODES:
        c.stop(n)

    # ---- refusals: nothing written ---------------------------------------
    c2 = t.cluster("backup-new", start=False)
    bad = c.path("bad.snap")
    data = bytearray(open(snap, "rb").read())
    data[len(data) // 2] ^= 0x55
    open(bad, "wb").write(bytes(data))
    rc, out, err = restore(c2, 1, bad)
    t.check("a flipped byte: exit 1, checksum mismatch, nothing written",
            rc == 1 and "checksum mismatch" in err and not os.path.exists(c2.data_dir(1)), err)
    open(bad, "wb").write(bytes(data[: len(data) - 100]))
    rc, out, err = restore(c2, 1, bad)
    t.check("a truncated file: exit 1, nothing written",
            rc == 1 and "truncated" in err and not os.path.exists(c2.data_dir(1)), err)
    rc, out, err = restore(c2, 1, src)
    t.check("not a snapshot: exit 1", rc == 1 and "not an ingot snapshot" in err, err)

    # ---- restore and start the new cluster -------------------------------
    for n in cl.NODES:
        rc, out, err = restore(c2, n, snap)
        t.require("ingotd restore node %d" % n, rc == 0 and "restored" in out, out + err)
    rc, out, err = restore(c2, 1, snap)
    t.check("restore into a non-empty data directory: exit 2", rc == 2 and "not empty" in err, err)
    lead2 = c2.start_all()
    t.log("restored cluster up, leader %d" % lead2)
    cl.check_jobs_everywhere(t, c2, [j for j in before.values()], cl.NODES,
                             "restored cluster", exact=False)
    jobs = c2.all_jobs(lead2)
    t.check("the restored cluster holds no more jobs than were acknowledged in all",
            len(jobs) <= len(load.acked), "%d jobs, %d acknowledged" % (len(jobs), len(load.acked)))
    rid, jid = sorted(before.items())[0]
    r = c2.ctl("job", "submit", "--target", "t-bk", "--request-id", rid, src)
    t.check("a request id acknowledged before the save is still deduplicated",
            r.rc == 0 and r.json()["id"] == jid, repr(r))
    new_id = c2.call("node.info", via=lead2).result.get("cluster_id")
    t.check("the new cluster named itself (a new cluster id)",
            new_id is not None and new_id != old_id, "%s -> %s" % (old_id, new_id))
    c2.wait_converged(timeout=30)
    dumps = c2.dumps()
    t.check("the restored nodes' stores are byte-identical", cl.dumps_identical(dumps),
            cl.dump_diff(dumps))
    r = c2.ctl("job", "submit", "--target", "t-bk", src)
    t.check("the restored cluster takes new writes", r.rc == 0, repr(r))

    # The HTTP download restores too.
    extra = c2.path("http-restore")
    rc, out, err = restore(c2, 1, snap_http, data_dir=extra)
    t.check("the HTTP download is a valid snapshot file", rc == 0 and "restored" in out, out + err)


if __name__ == "__main__":
    cl.run_tests(main)
