#!/usr/bin/env python3
"""One data directory, one program (real `ingotd` on 127.0.0.1; issue 11, item 5).

While node 1 runs, a second `ingotd` on its data directory (other ports),
`ingotd recover` and `ingot-statedemo` on it each exit 2 naming node 1's
pid and the lock file `ingot.lock`; node 1's store is unchanged
(`mdb_dump`), no raft file was renamed `corrupt-*` or added, and node 1
takes a write afterwards.  Once node 1 is stopped (even by kill -9), the
directory is free again: a new start succeeds.  A data_dir under a regular
file exits 1 naming the key and the file.
"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clusterlib as cl  # noqa: E402


def run(argv, cwd, timeout=20):
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, cwd=cwd)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate(timeout=10)
        return None, (out + err).decode("utf-8", "replace")
    return p.returncode, (out + err).decode("utf-8", "replace")


def raft_files(d):
    return sorted(os.listdir(os.path.join(d, "raft")))


def one_directory(t, c):
    pid = c.pid(1)
    # Applied entries reach state.mdb in batches (store_commit_interval_ms):
    # wait until the file holds them all before taking the reference dump.
    c.wait_converged(nodes=[1])
    before = c.dump(1)
    files_before = raft_files(c.data_dir(1))
    lock = os.path.join(c.data_dir(1), "ingot.lock")
    other = c.write_file("node1/other-ports.yaml",
                         "id: 1\ndata_dir: %s\nraft_address: %s\napi_address: %s\n"
                         "peers:\n  - {id: 1, raft_address: %s, api_address: %s}\n"
                         % (c.data_dir(1), cl.raft_ep(2), cl.api_ep(2), cl.raft_ep(2), cl.api_ep(2)))
    second = [c.ingotd, "--config", other]
    rc, out = run(second, c.node_dir(1), timeout=10)
    t.check("a second ingotd on the same data directory exits 2 naming the holder's pid and the lock",
            rc == 2 and ("process %d" % pid) in out and lock in out, "rc=%s: %s" % (rc, out[-400:]))
    rc, out = run([c.ingotd, "recover", "--config", c.config(1), "--data-dir", c.data_dir(1),
                   "--members", "1", "--yes"], c.node_dir(1))
    t.check("ingotd recover on it exits 2 naming the holder's pid",
            rc == 2 and ("process %d" % pid) in out, "rc=%s: %s" % (rc, out[-400:]))
    demo = os.path.join(c.build_dir, "ingot-statedemo")
    rc, out = run([demo, c.data_dir(1)], c.node_dir(1))
    t.check("ingot-statedemo on it exits 2 naming the holder's pid",
            rc == 2 and ("process %d" % pid) in out, "rc=%s: %s" % (rc, out[-400:]))
    files_after = raft_files(c.data_dir(1))
    t.check("node 1 untouched: store unchanged, no raft file renamed or added",
            c.running(1) and c.dump(1) == before and files_after == files_before
            and not any(f.startswith("corrupt") for f in files_after),
            "raft files %s -> %s" % (files_before, files_after))
    r = c.ctl("target", "apply", c.write_file("targets/after.yaml",
                                              "name: after\nstages:\n  - name: s\n    argv: [\"true\"]\n"),
              nodes=[1])
    t.check("node 1 takes a write afterwards", r.rc == 0, repr(r))


def under_a_file(t, c):
    """A data_dir whose parent is a regular file: exit 1 naming the key and
    the file (issue 11 item 14)."""
    f = c.write_file("plain-file", "x")
    rc, out = run([c.ingotd, "--config", c.config(1), "--data-dir", os.path.join(f, "data")], c.dir)
    t.check("data_dir under a regular file: exit 1 naming key 'data_dir' and the file",
            rc == 1 and "key 'data_dir'" in out and ("'%s' is not a directory" % f) in out,
            "rc=%s: %s" % (rc, out[-300:]))


def main(t):
    c = t.cluster(nodes=(1,), start=False)
    under_a_file(t, c)
    c.start_all()
    c.apply_target("before")
    one_directory(t, c)
    c.kill(1)
    c.start(1)
    c.wait_leader(nodes=[1])
    t.check("after kill -9 the directory is free: node 1 starts again and serves",
            c.ctl("target", "list", nodes=[1]).rc == 0)


if __name__ == "__main__":
    cl.run_tests(main)
