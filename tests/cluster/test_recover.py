#!/usr/bin/env python3
"""Quorum loss and `ingotd recover` (real 3-node cluster on 127.0.0.1).

1. Jobs are submitted through every node and acknowledged; the nodes
   converge.  `ingotd recover` on a running node's directory is refused
   (exit 2, the data directory's lock) and changes nothing.
2. Quorum loss: nodes 2 and 3 are killed (kill -9) and node 3's data
   directory is destroyed.  Node 1 alone cannot write.  It is stopped.
3. Offline, on node 1: the dry run prints the members, the new
   configuration and the log's term and last index, exits 1 and changes no
   table; bad --members (an unknown id, a list without this node, an empty
   list), a bad configuration and a data directory with no state are
   refused (exit 2 / 2 / 2 / 2 / 1) naming what is wrong.
4. `--yes` rewrites the configuration (exit 0).  Node 1 started alone
   elects itself, every acknowledged job is there, a new job gets the next
   id, and writes go on across a restart.  Node 2 started again with its
   old data (the mistake the procedure warns against) neither becomes
   leader nor disturbs node 1, which keeps its term and takes writes; it
   learns that it was removed, stops by itself (exit 0) leaving the
   `removed` marker in its data directory, and a later start on that
   directory is refused (exit 2) naming it.
5. Two fresh nodes are added back, as the procedure says: node 2 with an
   empty data directory and no `peers`, then `ingotctl member add`; node 3
   the same way but started with `--join` (node 1's API address).  The
   cluster ends with 3 live voters (`member list`, `status` on every
   node), every job acknowledged before the loss is on all three (read
   locally, `--stale`), the three stores are byte-identical (`mdb_dump`),
   the cluster events tell the story (members 2 and 3 removed by the
   recovered leader, then added), and a new write through each new node
   succeeds.

Times printed: recover's dry run and apply, first write after the start,
the removed node's self-stop, each add (member add, --join) and the
convergence of the new nodes.
"""
import os
import re
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clusterlib as cl  # noqa: E402


class Run:
    def __init__(self, rc, out, err, secs):
        self.rc, self.out, self.err, self.secs = rc, out, err, secs

    def __repr__(self):
        return "rc=%d out=%r err=%r" % (self.rc, self.out[-600:], self.err[-600:])


def recover(c, n, *args, config=None, data_dir=True):
    argv = [c.ingotd, "recover", "--config", config or c.config(n)]
    if data_dir:
        argv += ["--data-dir", c.data_dir(n)]
    argv += list(args)
    t0 = cl.now()
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=60, cwd=c.node_dir(n))
    return Run(p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace"),
               cl.now() - t0)


def job_ids(c, n):
    return sorted(j["id"] for j in c.all_jobs(n))


def main(t):
    c = t.cluster()
    src = c.write_file("src/r.c", "int recover_me;\n")
    c.apply_target("t-rec")
    acked = []
    for i in range(30):
        acked.append(c.ctl_json("job", "submit", "--target", "t-rec", src, nodes=[1 + i % 3])["id"])
    idx, _ = c.wait_converged()
    t.log("%d jobs acknowledged, every node at applied index %d" % (len(acked), idx))

    # 1. Refused on a running node.
    before = c.dump(1)
    r = recover(c, 1, "--members", "1", "--yes")
    t.check("recover on a running node: refused, exit 2", r.rc == 2, repr(r))
    t.check("... naming the running daemon's pid", ("process %d" % c.pid(1)) in r.err, r.err.strip())
    t.check("... and the node still serves writes",
            c.ctl("job", "submit", "--target", "t-rec", src, nodes=[1]).rc == 0)
    acked.append(max(acked) + 1)
    c.wait_converged()

    # 2. Quorum loss.
    c.kill(2)
    c.kill(3)
    shutil.rmtree(c.data_dir(3))
    r = c.ctl("job", "submit", "--target", "t-rec", src, nodes=[1], timeout="1s")
    t.check("without quorum a write fails (exit 3)", r.rc == 3, repr(r))
    rc = c.stop(1)
    t.check("node 1 stops cleanly (exit 0)", rc == 0, "exit %s" % rc)
    before = c.dump(1)

    # 3. Dry run and bad input: nothing written.
    r = recover(c, 1, "--members", "1")
    t.log("dry run (%.2f s):\n%s" % (r.secs, r.out))
    m = re.search(r"raft log:  term (\d+)", r.out)
    old_term = int(m.group(1)) if m else -1
    t.check("dry run: exit 1, asks for --yes", r.rc == 1 and "Re-run with --yes" in r.out,
            "" if r.rc == 1 else repr(r))
    t.check("dry run: prints the log's term and last index", "raft log:  term" in r.out
            and "last index" in r.out)
    t.check("dry run: lists the members, dead ones marked dropped", r.out.count("<- dropped") == 2)
    t.check("dry run: the new configuration is node 1 alone",
            "new configuration (1 voter)" in r.out and "127.0.0.1:%d" % cl.raft_port(1) in r.out)
    for members, needle in (("1,9", "node 9 is not in the members table"),
                            ("2", "this node (id 1) must be among"),
                            ("", "at least one node id"),
                            ("1,1", "appears twice"),
                            ("1,x", "separated by commas")):
        r = recover(c, 1, "--members", members, "--yes")
        t.check("--members '%s': exit 2 naming it" % members, r.rc == 2 and needle in r.err, repr(r))
    bad = c.write_file("bad.yaml", "id: 1\ndata_dir: x\nraft_address: 127.0.0.1\napi_address: 127.0.0.1:1\n")
    r = recover(c, 1, "--members", "1", "--yes", config=bad, data_dir=False)
    t.check("bad configuration: exit 2 naming the key", r.rc == 2 and "raft_address" in r.err, repr(r))
    r = recover(c, 1, "--members", "1", "--yes", data_dir=False)  # config's own data_dir: empty
    t.check("no store in data_dir: exit 1", r.rc == 1 and "no store at" in r.err, repr(r))
    r = recover(c, 3, "--members", "3", "--yes")
    t.check("destroyed node 3: exit 1, nothing created", r.rc == 1 and not os.path.exists(c.data_dir(3)),
            repr(r))
    t.check("nothing written by the dry run and the refusals (mdb_dump)", c.dump(1) == before)

    # 4. Recover node 1 alone.
    r = recover(c, 1, "--members", "1", "--yes")
    t.log("recover --yes (%.2f s):\n%s" % (r.secs, r.out[r.out.find("recovered"):]))
    t.check("recover --yes: exit 0", r.rc == 0 and "the configuration entry at index" in r.out,
            "" if r.rc == 0 else repr(r))
    t.check("recover leaves the store alone (mdb_dump)", c.dump(1) == before)
    t0 = cl.now()
    c.start(1)
    lead = c.wait_leader(nodes=[1], timeout=20)
    t.log("node 1 alone: leader %s, serving after %.2f s" % (lead, cl.now() - t0))
    t.check("node 1 alone becomes leader", lead == 1)
    term = c.status(1).get("term")
    t.check("... in the raised term (%d -> %s)" % (old_term, term), term == old_term + 1)
    got = job_ids(c, 1)
    t.check("every acknowledged job is there (%d)" % len(acked), set(acked) <= set(got),
            "missing %s" % sorted(set(acked) - set(got)))
    since = []  # jobs acknowledged after the recovery
    r = c.ctl("job", "submit", "--target", "t-rec", src, nodes=[1])
    t.check("a new job gets the next id", r.rc == 0 and r.json()["id"] == max(got) + 1, repr(r))
    since += [r.json()["id"]] if r.rc == 0 else []
    members = c.ctl_json("member", "list", nodes=[1])
    t.log("member list after recovery: %s" % members)
    c.stop(1)
    c.start(1)
    c.wait_leader(nodes=[1], timeout=20)
    r = c.ctl("job", "submit", "--target", "t-rec", src, nodes=[1])
    t.check("after a restart: still a cluster of one that takes writes", r.rc == 0, repr(r))
    since += [r.json()["id"]] if r.rc == 0 else []

    # A dead member back with its old data: alone it cannot win an election
    # (the recovered leader refuses votes) and receives nothing; it asks
    # whether it is still a member, learns it is not, and stops.
    s1 = c.status(1)
    t0 = cl.now()
    c.start(2)
    time.sleep(1.0)
    s1b = c.status(1)
    r2 = c.ctl("status", "--stale", nodes=[2], timeout="2s")
    s2 = r2.json() if r2.rc == 0 else {}  # {} when it already stopped (below)
    t.log("node 2 restarted with its old data: node 2 sees leader %s term %s; node 1 leader %s term %s -> %s"
          % (s2.get("leader"), s2.get("term"), s1b.get("leader"), s1.get("term"), s1b.get("term")))
    t.check("an old member back with its old data does not disturb the recovered leader",
            s1b.get("leader") == 1 and s1b.get("term") == s1.get("term"))
    t.check("... and is not leader itself", s2.get("leader") in (None, 0))
    r = c.ctl("job", "submit", "--target", "t-rec", src, nodes=[1])
    t.check("... while the recovered node takes writes", r.rc == 0, repr(r))
    since += [r.json()["id"]] if r.rc == 0 else []
    rc = wait_exit(c, 2, 20)
    t.log("node 2 stopped by itself %.2f s after its start (exit %s)" % (cl.now() - t0, rc))
    t.check("... it learns it was removed and stops by itself (exit 0)", rc == 0, "exit %s" % rc)
    t.check("... logging why", "removed from the cluster" in c.log(2))
    marker = os.path.join(c.data_dir(2), "removed")
    t.check("... leaving the `removed` marker in its data directory", os.path.exists(marker))
    c.start(2)
    rc = wait_exit(c, 2, 20)
    tail = c.log(2)[-2000:]
    t.check("a start on the removed node's data directory is refused (exit 2) naming the marker",
            rc == 2 and "was removed from its cluster" in tail and marker in tail,
            "exit %s, log tail %r" % (rc, tail[-400:]))
    t.check("node 1 is still leader in the same term",
            c.status(1).get("leader") == 1 and c.status(1).get("term") == s1.get("term"))

    # 5. Add two fresh nodes back: wiped data directories, no `peers`.
    shutil.rmtree(c.data_dir(2))
    for n in (2, 3):
        without_peers(c, n)
    r = c.ctl("member", "add", "2", nodes=[1])
    t.check("`member add` without addresses: exit 2 before any traffic",
            r.rc == 2 and "--raft-address" in r.err, repr(r))

    # Node 2: started empty, then added by the operator.
    c.start(2)
    wait_for_api(c, 2)
    t0 = cl.now()
    r = c.ctl("member", "add", "2", "--raft-address", "127.0.0.1:%d" % cl.raft_port(2),
              "--api-address", cl.api_ep(2), nodes=[1], timeout="60s")
    secs = cl.now() - t0
    ok = r.rc == 0
    change = r.json() if ok else {}
    t.log("member add 2 (%.2f s): %s" % (secs, change))
    t.check("`member add 2` to the running empty node: exit 0, voter", ok and change.get("role") == "voter",
            repr(r))
    t.check("... its steps say it caught up before becoming a voter",
            any("caught up" in x for x in change.get("steps", [])), str(change.get("steps")))
    r = c.ctl("member", "add", "2", "--raft-address", "127.0.0.1:%d" % cl.raft_port(2),
              "--api-address", cl.api_ep(2), nodes=[1], timeout="30s")
    t.check("... repeating it succeeds and changes nothing", r.rc == 0 and r.json().get("role") == "voter",
            repr(r))

    # Node 3: started empty with --join.
    t0 = cl.now()
    start_joining(c, 3, cl.api_ep(1))
    lst = cl.wait_for("3 live voters in `member list`", lambda: three_live_voters(c), 60, interval=0.3)
    t.log("node 3 joined with --join: %.2f s from its start to 3 live voters" % (cl.now() - t0))
    t.log("member list: %s" % lst)
    t.check("`member list`: exactly 3 members, all voters, every one alive",
            sorted((m["id"], m["role"], m["alive"]) for m in lst) == [(1, "voter", True), (2, "voter", True),
                                                                       (3, "voter", True)], str(lst))
    t.check("node 3's log says it joined", "joined the cluster as voter" in c.log(3))
    for n in (1, 2, 3):
        st = c.status(n)
        t.check("node %d's status: leader 1, 3 voters" % n,
                st.get("leader") == 1 and sorted(m["id"] for m in st["members"] if m.get("role") == "voter")
                == [1, 2, 3], str(st))

    # Every acknowledged job on every node, identical stores.
    t0 = cl.now()
    idx, _ = c.wait_converged(timeout=30)
    t.log("the three nodes converged at applied index %d in %.2f s" % (idx, cl.now() - t0))
    for n in (1, 2, 3):
        got = set(j["id"] for j in c.all_jobs(n, stale=True))
        t.check("node %d holds every job acknowledged before the loss (%d) and since (%d)"
                % (n, len(acked), len(since)),
                set(acked) <= got and set(since) <= got,
                "missing %s" % sorted((set(acked) | set(since)) - got))
    dumps = c.dumps()
    t.check("the three stores are byte-identical (mdb_dump)", cl.dumps_identical(dumps), cl.dump_diff(dumps))

    events = c.ctl_json("events", "--limit", "1000", nodes=[1])["events"]
    story = [(e["kind"], e.get("member")) for e in events]
    t.log("cluster events: %s" % story)
    t.check("cluster events: members 2 and 3 removed by the recovered leader, then added again",
            follows(story, ("member_removed", 2), ("member_added", 2))
            and follows(story, ("member_removed", 3), ("member_added", 3)), str(story))

    # New writes through the new nodes.
    for n in (2, 3):
        r = c.ctl("job", "submit", "--target", "t-rec", src, nodes=[n])
        t.check("a new job submitted through node %d is acknowledged" % n, r.rc == 0, repr(r))
        if r.rc == 0:
            since.append(r.json()["id"])
    c.wait_converged(timeout=30)
    dumps = c.dumps()
    t.check("... and every node has it: stores byte-identical again", cl.dumps_identical(dumps),
            cl.dump_diff(dumps))
    for n in (1, 2, 3):
        rc = c.stop(n)
        t.check("node %d stops cleanly (exit 0)" % n, rc == 0, "exit %s" % rc)


def follows(seq, first, then):
    """True when `then` occurs in seq after an occurrence of `first`."""
    return first in seq and then in seq[seq.index(first) + 1:]


def wait_exit(c, n, timeout):
    """Waits for node n to exit by itself; returns its exit code, None if it
    still runs after `timeout` s.  Recorded as an expected exit."""
    p = c.procs[n]
    try:
        rc = p.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return None
    c.exit_codes.append((n, None, rc))
    with cl._live_lock:
        cl._live.pop(p.pid, None)
    return rc


def without_peers(c, n):
    """Rewrites node n's config without its `peers` list: a node that
    enters an existing cluster instead of bootstrapping one."""
    with open(c.config(n)) as f:
        lines = f.read().splitlines()
    out, in_peers = [], False
    for ln in lines:
        if ln.startswith("peers:"):
            in_peers = True
            continue
        if in_peers and ln.startswith((" ", "-")):
            continue
        in_peers = False
        out.append(ln)
    with open(c.config(n), "w") as f:
        f.write("\n".join(out) + "\n")


def start_joining(c, n, via):
    """c.start(n) with `--join via`."""
    log = open(c.log_path(n), "ab")
    log.write(("---- test: start of node %d with --join %s ----\n" % (n, via)).encode())
    log.flush()
    p = subprocess.Popen([c.ingotd, "--config", c.config(n), "--data-dir", c.data_dir(n), "--join", via],
                         stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=c.node_dir(n))
    log.close()
    c.procs[n] = p
    with cl._live_lock:
        cl._live[p.pid] = p
    return p


def wait_for_api(c, n):
    """Waits until node n answers `status --stale` (its API is up)."""
    def up():
        c.check_alive()
        return c.ctl("status", "--stale", nodes=[n], timeout="1s").rc == 0
    cl.wait_for("node %d's API" % n, up, 20, interval=0.1)


def three_live_voters(c):
    """`member list` (through node 1) when it shows members 1, 2 and 3 as
    live voters, else None."""
    r = c.ctl("member", "list", nodes=[1], timeout="3s")
    if r.rc != 0:
        return None
    lst = r.json()
    voters = sorted(m["id"] for m in lst if m.get("role") == "voter" and m.get("alive"))
    return lst if voters == [1, 2, 3] else None


if __name__ == "__main__":
    cl.run_tests(main)
