#!/usr/bin/env python3
"""Randomized faults under load (real 3-node cluster; issue 11, item 15).

In the spirit of etcd's functional tester and Jepsen: two submitters send
jobs with request ids (retried unchanged until acknowledged) while a seeded
nemesis injects one fault at a time, so never more than a minority of the
three nodes is affected:

  kill         kill -9 a node, restart it 0-2.5 s later;
  stage-kill   kill -9 the node whose worker has just started a stage (the
               instant the stage appends to the ledger), restart it 0-1.5 s
               later;
  pause        SIGSTOP a node for 0.3-3 s, then SIGCONT;
  isolate      cut one node off from the two others for 0.5-4 s;
  cut          cut the link between two nodes for 0.5-4 s (each still
               reaches the third).

Every job runs a target of two stages, each of which appends
"<job> <attempt> <stage> <its directory>" to a ledger file outside the
attempt directory (its path is the job parameter LEDGER), so the nodes run
with `sandbox: off`: a sandboxed stage sees only its own directory.  The network: each node runs in a network namespace
of its own (`ip netns exec`), on a bridge, at 10.A.B.<node>; a cut is a pair
of blackhole routes inside the two namespaces.  Without the privilege to
make namespaces (not root), the nodes run on 127.0.0.1 and the nemesis
skips the network faults, saying so.

After the faults: every node runs and is reachable, the submitters stop
and the checks run:
  - every acknowledged job is on every node exactly once, nothing else, and
    no request id got two job ids (the Load checks);
  - every job ends (succeeded, failed or cancelled), with exactly one final
    event;
  - every (job, attempt, stage) ran at most once by the ledger, and started
    at most once by the events (issue 11 item 1);
  - no job was assigned by a leader to a node that the leader could not
    have heard from during its whole leadership (dead, paused or cut off
    from it since before it became leader; item 4);
  - byte-identical stores (`mdb_dump`) once the nodes converge;
  - no node died unless the nemesis killed it, every node stops cleanly on
    SIGTERM (exit 0), and no log holds a sanitizer report.

Usage: test_nemesis.py BUILD_DIR [--seed N] [--duration SECONDS]
(defaults: a random seed, printed first, and 25 s: the short run of
scripts/test).  A long run by hand:
    INGOT_CLUSTER_PORT_OFFSET=7000 python3 tests/cluster/test_nemesis.py build/test --duration 600
Replay a failure with its seed; the schedule is the same, the timing of
the cluster around it is not.
"""
import argparse
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clusterlib as cl  # noqa: E402

FINAL = ("succeeded", "failed", "cancelled")
# sandbox off: the stages append to a ledger outside their attempt's
# directory, which a sandboxed stage cannot reach (its own mount view).
# assign_ahead_max_ms above an attempt's 0.5 s: the leader assigns ahead of
# a free slot, so the faults also meet attempts parked on their node.
OVERRIDES = {"slots": "2", "node_down_after_ms": "1500", "heartbeat_interval_ms": "200",
             "sandbox": "off", "assign_ahead_max_ms": "2000"}
TARGET = """name: nemesis
stages:
  - name: one
    argv: [/bin/sh, -c, 'echo "{job} {attempt} one {out}" >> "{param:LEDGER}"; sleep 0.3']
    timeout: 30s
    env: {PATH: /usr/bin:/bin}
  - name: two
    argv: [/bin/sh, -c, 'echo "{job} {attempt} two {out}" >> "{param:LEDGER}"; sleep 0.2']
    timeout: 30s
    env: {PATH: /usr/bin:/bin}
"""
LEDGER_LINE = re.compile(r"^(\d+) (\d+) (\w+) \S*/node(\d+)/data/\S*$")


def now_ms():
    return time.time() * 1000.0


class Net:
    """A network namespace per node on one bridge; cuts are blackhole routes."""

    def __init__(self, nodes):
        tag = "ig%d" % os.getpid()  # swept by pid: keep the whole pid
        self.nodes = nodes
        self.prefix = "10.%d.%d" % (200 + (cl.PORT_OFFSET // 1000) % 50, os.getpid() % 250 + 1)
        self.bridge = tag + "br"
        self.ns = {n: "%sn%d" % (tag, n) for n in nodes}
        self.veth = {n: ("%sv%d" % (tag, n), "%sp%d" % (tag, n)) for n in nodes}
        self.made = []  # what to undo, newest last
        self.cuts = set()

    def ip(self, n):
        return "%s.%d" % (self.prefix, n)

    @staticmethod
    def sh(*argv):
        p = subprocess.run(list(argv), capture_output=True, timeout=30)
        if p.returncode != 0:
            raise cl.TestFailure("%s: %s" % (" ".join(argv), p.stderr.decode(errors="replace").strip()))

    @staticmethod
    def sweep():
        """Removes the namespaces and bridges of earlier runs whose process
        is gone (a run killed by ctest's timeout cannot clean up)."""
        p = subprocess.run(["ip", "-o", "link", "show", "type", "bridge"], capture_output=True, timeout=30)
        bridges = re.findall(r"^\d+: (ig(\d+)br)[:@]", p.stdout.decode(errors="replace"), re.M)
        p = subprocess.run(["ip", "netns", "list"], capture_output=True, timeout=30)
        spaces = re.findall(r"^(ig(\d+)n\d+)\b", p.stdout.decode(errors="replace"), re.M)
        for name, pid in bridges + spaces:
            if not os.path.exists("/proc/%s" % pid):
                kind = ["ip", "link", "del"] if name.endswith("br") else ["ip", "netns", "del"]
                subprocess.run(kind + [name], capture_output=True, timeout=30)

    def setup(self):
        self.sweep()
        self.sh("ip", "link", "add", self.bridge, "type", "bridge")
        self.made.append(("ip", "link", "del", self.bridge))
        self.sh("ip", "addr", "add", self.prefix + ".254/24", "dev", self.bridge)
        self.sh("ip", "link", "set", self.bridge, "up")
        for n in self.nodes:
            ns, (vh, vn) = self.ns[n], self.veth[n]
            self.sh("ip", "netns", "add", ns)
            self.made.append(("ip", "netns", "del", ns))
            self.sh("ip", "link", "add", vh, "type", "veth", "peer", "name", vn)
            self.made.append(("ip", "link", "del", vh))
            self.sh("ip", "link", "set", vn, "netns", ns)
            self.sh("ip", "link", "set", vh, "master", self.bridge, "up")
            self.sh("ip", "netns", "exec", ns, "ip", "addr", "add", self.ip(n) + "/24", "dev", vn)
            self.sh("ip", "netns", "exec", ns, "ip", "link", "set", vn, "up")
            self.sh("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")

    def launch(self, n):
        return ["ip", "netns", "exec", self.ns[n]]

    def _route(self, verb, a, b):
        self.sh("ip", "netns", "exec", self.ns[a], "ip", "route", verb, "blackhole", self.ip(b) + "/32")

    def cut(self, a, b):
        self._route("add", a, b)
        self._route("add", b, a)
        self.cuts.add((a, b))

    def heal(self, a, b):
        self._route("del", a, b)
        self._route("del", b, a)
        self.cuts.discard((a, b))

    def teardown(self):
        for a, b in list(self.cuts):
            try:
                self.heal(a, b)
            except cl.TestFailure:
                pass
        for argv in reversed(self.made):
            subprocess.run(list(argv), capture_output=True, timeout=30)
        self.made = []


def can_make_namespaces():
    if os.geteuid() != 0:
        return "not root"
    p = subprocess.run(["ip", "netns", "list"], capture_output=True)
    if p.returncode != 0:
        return "ip netns does not work: %s" % p.stderr.decode(errors="replace").strip()
    return None


class Nemesis:
    """One fault at a time, chosen by a seeded random generator.  Records
    every interval during which a node could not hear another: (t0_ms,
    t1_ms, a, b) with b None for "a heard nobody"."""

    def __init__(self, t, c, net, rng, ledger):
        self.t, self.c, self.net, self.rng, self.ledger = t, c, net, rng, ledger
        self.deaf = []
        self.log = []
        self.counts = {}
        self.kills = set()  # nodes the nemesis killed (their exits are expected)

    def note(self, what):
        self.log.append("%.1f %s" % (cl.now() - self.t0, what))

    def sleep(self, secs):
        end = cl.now() + secs
        while cl.now() < end:
            self.c.check_alive()
            time.sleep(min(0.05, max(0.0, end - cl.now())))

    # The deaf intervals are the ones the fault surely covers: from once
    # it took effect (the node gone, stopped, every route cut) to before
    # it is undone.  Recorded from before the `ip` commands ran, a cut's
    # interval began up to tens of milliseconds before the cut did.
    def kill(self, n, restart_after):
        self.c.kill(n)
        t0 = now_ms()
        self.note("kill -9 node %d, restart in %.2f s" % (n, restart_after))
        self.sleep(restart_after)
        self.deaf.append((t0, now_ms(), n, None))
        self.c.start(n, ())

    def stage_kill(self, restart_after):
        size = os.path.getsize(self.ledger) if os.path.exists(self.ledger) else 0
        deadline = cl.now() + 5.0
        while cl.now() < deadline:
            cur = os.path.getsize(self.ledger) if os.path.exists(self.ledger) else 0
            if cur > size:
                with open(self.ledger) as f:
                    f.seek(size)
                    lines = [ln for ln in f.read().splitlines() if LEDGER_LINE.match(ln)]
                if lines:
                    n = int(LEDGER_LINE.match(lines[-1]).group(4))
                    if self.c.running(n):
                        self.note("stage started on node %d: %s" % (n, lines[-1].split(" /")[0]))
                        self.kill(n, restart_after)
                        return
                size = cur
            time.sleep(0.002)
        self.note("stage-kill: no stage started within 5 s")

    def pause(self, n, secs):
        pid = self.c.pid(n)
        os.kill(pid, signal.SIGSTOP)
        t0 = now_ms()
        self.note("SIGSTOP node %d for %.2f s" % (n, secs))
        try:
            time.sleep(secs)
        finally:
            self.deaf.append((t0, now_ms(), n, None))
            os.kill(pid, signal.SIGCONT)

    def cut(self, pairs, secs, what):
        for a, b in pairs:
            self.net.cut(a, b)
        t0 = now_ms()
        self.note("%s for %.2f s" % (what, secs))
        try:
            self.sleep(secs)
        finally:
            t1 = now_ms()
            for a, b in pairs:
                self.deaf.append((t0, t1, a, b))
            for a, b in pairs:
                self.net.heal(a, b)

    def step(self):
        nodes = list(self.c.initial)
        kinds = ["kill", "stage-kill", "stage-kill", "pause"]
        if self.net is not None:
            kinds += ["isolate", "cut"]
        kind = self.rng.choice(kinds)
        self.counts[kind] = self.counts.get(kind, 0) + 1
        n = self.rng.choice(nodes)
        if kind == "kill":
            self.kill(n, self.rng.uniform(0.0, 2.5))
        elif kind == "stage-kill":
            self.stage_kill(self.rng.uniform(0.0, 1.5))
        elif kind == "pause":
            self.pause(n, self.rng.uniform(0.3, 3.0))
        elif kind == "isolate":
            self.cut([(n, m) for m in nodes if m != n], self.rng.uniform(0.5, 4.0),
                     "isolate node %d" % n)
        else:
            a, b = sorted(self.rng.sample(nodes, 2))
            self.cut([(a, b)], self.rng.uniform(0.5, 4.0), "cut link %d-%d" % (a, b))

    def run(self, duration):
        self.t0 = cl.now()
        while cl.now() - self.t0 < duration:
            self.step()
            self.sleep(self.rng.uniform(0.0, 1.5))


def all_events(c, jid):
    return c.ctl_json("job", "events", jid, "--stale", timeout="10s")


def check_ledger(t, ledger, events_by_job):
    runs = {}
    bad = []
    with open(ledger) as f:
        for ln in f:
            m = LEDGER_LINE.match(ln.strip())
            if not m:
                bad.append(ln.strip())
                continue
            key = (int(m.group(1)), int(m.group(2)), m.group(3))
            runs.setdefault(key, []).append(int(m.group(4)))
    t.check("every ledger line is well formed", not bad, str(bad[:3]))
    twice = {k: v for k, v in runs.items() if len(v) > 1}
    t.log("ledger: %d stage runs of %d jobs" % (len(runs), len({k[0] for k in runs})))
    detail = "; ".join("job %d attempt %d stage %s ran on nodes %s" % (k + (v,))
                       for k, v in sorted(twice.items())[:5])
    t.check("every (job, attempt, stage) ran at most once (ledger)", not twice, detail)
    started = {}
    for jid, evs in events_by_job.items():
        for e in evs:
            if e["kind"] == "stage_started":
                k = (jid, e["attempt"], e["stage"])
                started[k] = started.get(k, 0) + 1
    dup = {k: v for k, v in started.items() if v > 1}
    t.check("every (job, attempt, stage) has at most one stage_started event", not dup, str(dup)[:300])
    return runs


def unreachable_throughout(deaf, nodes, leader, node, t0, t1):
    """Whether `node` could not be heard by `leader` during all of [t0, t1]
    (ms): no path joins them through nodes and links that were up at some
    moment of it.  A node or link counts as down only where one recorded
    interval covers the whole span.  A path through a third node counts:
    a node that knows no leader sends its heartbeats to the other members,
    which forward them to theirs (node/worker/heartbeat.c), so a leader
    hears a node across a cut link by way of the third node."""
    spans = [(x, y) for a0, a1, x, y in deaf if a0 <= t0 and a1 >= t1]

    def node_down(n):
        return (n, None) in spans

    def link_down(a, b):
        return (a, b) in spans or (b, a) in spans

    if node_down(node):
        return True
    seen, todo = {leader}, [leader]
    while todo:
        x = todo.pop()
        for y in nodes:
            if y not in seen and not node_down(y) and not link_down(x, y):
                seen.add(y)
                todo.append(y)
    return node not in seen


def check_assignments(t, c, nem, events_by_job):
    leaders = sorted((e["time_ms"], e["member"]) for e in c.events(stale=True)
                     if e["kind"] == "leader_changed" and e.get("member"))
    bad = []
    for jid, evs in events_by_job.items():
        for e in evs:
            if e["kind"] != "assigned" or e.get("node") is None:
                continue
            at = e["time"]
            lead = [x for x in leaders if x[0] <= at]
            if not lead:
                continue
            since, leader = lead[-1]
            if e["node"] != leader and unreachable_throughout(nem.deaf, c.initial, leader, e["node"], since - 50, at):
                bad.append("job %d attempt %d -> node %d by leader %d (leader since %.0f ms before)"
                           % (jid, e["attempt"], e["node"], leader, at - since))
    t.check("no job assigned by a leader to a node it could not have heard from since it became leader",
            not bad, "; ".join(bad[:4]))


def main(t, args):
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 31)
    t.log("nemesis seed %d, duration %.0f s (replay: --seed %d)" % (seed, args.duration, seed))
    rng = random.Random(seed)
    why = can_make_namespaces()
    net = None
    if why is None:
        net = Net(cl.NODES)
        try:
            net.setup()
        except cl.TestFailure as e:
            net.teardown()
            net, why = None, str(e)
    if net is None:
        t.log("SKIP network faults: cannot make network namespaces (%s); kill and pause only" % why)
    try:
        run(t, args, rng, net)
    finally:
        if net is not None:
            net.teardown()
            cl.NODE_HOSTS.clear()


def run(t, args, rng, net):
    if net is not None:
        for n in cl.NODES:
            cl.NODE_HOSTS[n] = net.ip(n)
    c = t.cluster(overrides=OVERRIDES, start=False)
    if net is not None:
        c.launch = {n: net.launch(n) for n in c.nodes}
        t.log("nodes in network namespaces %s at %s" % (sorted(net.ns.values()),
                                                         [net.ip(n) for n in c.nodes]))
    c.start_all()
    ledger = c.path("ledger.txt")
    target = c.write_file("targets/nemesis.yaml", TARGET)
    c.ctl_json("target", "apply", target)
    src = c.write_file("src/n.c", "int nemesis;\n")
    load = cl.Load(c, "nemesis", src, "nem", threads=2, pause=0.3, rid_deadline=40.0,
                   extra=("--param", "LEDGER=" + ledger)).start()
    nem = Nemesis(t, c, net, rng, ledger)
    try:
        nem.run(args.duration)
    finally:
        t.log("nemesis schedule (%s):\n  %s" % (nem.counts, "\n  ".join(nem.log)))
    load.stop()
    t.log("faults over; %d submits acknowledged" % load.count())
    c.wait_leader(timeout=30)
    load.check(t, "submits")
    acked = sorted(load.acked.values())

    def all_final():
        jobs = {j["id"]: j["state"] for j in c.all_jobs()}
        left = [j for j in acked if jobs.get(j) not in FINAL]
        return None if left else jobs
    t0 = cl.now()
    try:
        cl.wait_for("every acknowledged job to end", all_final, 90, interval=0.5)
        t.check("every acknowledged job ended (%.1f s after the faults)" % (cl.now() - t0), True)
    except cl.TestFailure as e:
        t.check("every acknowledged job ended", False, str(e)[:300])
    c.wait_converged(timeout=60)
    cl.check_jobs_everywhere(t, c, acked, list(c.nodes), "after the faults")
    events_by_job = {j: all_events(c, j) for j in acked}
    twice = {j: [e["kind"] for e in evs if e["kind"] in FINAL] for j, evs in events_by_job.items()}
    twice = {j: k for j, k in twice.items() if len(k) != 1}
    t.check("every job has exactly one final event", not twice, str(sorted(twice.items())[:5]))
    states = {}
    for j in c.all_jobs():
        states[j["state"]] = states.get(j["state"], 0) + 1
    t.log("job states: %s" % states)
    check_ledger(t, ledger, events_by_job)
    check_assignments(t, c, nem, events_by_job)
    dumps = c.dumps()
    t.check("byte-identical stores on the %d nodes" % len(dumps), cl.dumps_identical(dumps),
            cl.dump_diff(dumps))
    codes = {n: c.stop(n, timeout=60) for n in c.nodes}
    t.check("every node stops cleanly on SIGTERM (exit 0)", all(v == 0 for v in codes.values()), str(codes))
    reports = [n for n in c.nodes if re.search(r"AddressSanitizer|runtime error|LeakSanitizer", c.log(n))]
    t.check("no sanitizer report in any node's log", not reports, "nodes %s" % reports)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("build_dir")
    ap.add_argument("--seed", type=int)
    ap.add_argument("--duration", type=float, default=25.0)
    a = ap.parse_args()
    sys.argv = [sys.argv[0], a.build_dir]
    cl.run_tests(lambda t: main(t, a))
