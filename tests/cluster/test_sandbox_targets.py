#!/usr/bin/env python3
"""A target's own sandbox settings on a real 3-node cluster, sandbox on (the
default): slots 2 per node, work_quota_bytes 32 MiB, stage_processes 64.

1. Without the permission (allow_network_targets unset on every node):
   target.put with `network: true` is refused (permission_denied naming
   the rule and the config key), through the leader and through a
   follower, by ingotctl (exit 1) and by a raw call; the target does not
   exist afterwards and every node's store is unchanged (mdb_dump before
   and after, applied_index included: nothing was proposed).
2. Every node restarted with `allow_network_targets: true`: `target apply`
   of a file with `network: true` is accepted and `target get` shows it.
   The test listens on a TCP port of 127.0.0.1 (ephemeral: no fixed port to
   collide with another worktree). A stage of that target connects to it
   through the host's network and the job succeeds: the test receives the
   line the stage sent. The same stage in a target without `network` fails
   ("Connection refused" in its log: only its own loopback is there), and
   the test receives nothing from it.
3. Per-target limits within the node's ceilings, each one hit, the job's
   error naming the limit and which of the two applied:
   - limits.processes 16 (< 64): "process limit of 16 reached" and "the
     target's limit (limits.processes 16, within this node's
     stage_processes 64)";
   - limits.processes 1000 (> 64): "process limit of 64 reached" and "this
     node's ceiling (stage_processes 64; the target asks for
     limits.processes 1000)";
   - disk 16 MiB (< 32 MiB): "work directory over its 16 MiB quota" and
     "the target's limit (disk_bytes 16 MiB, within this node's
     work_quota_bytes 32 MiB)";
   - disk 1 GiB (> 32 MiB): "work directory over its 32 MiB quota" and
     "this node's ceiling (work_quota_bytes 32 MiB; the target asks for
     disk_bytes 1 GiB)".
4. Afterwards a put without `network` replaces the network target (no
   permission needed to take it away) and the stores converge.
"""
import os
import socket
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clusterlib as cl  # noqa: E402
from test_execution import apply_yaml, raw_call, submit, wait_final, wait_registered  # noqa: E402

OVERRIDES = {"slots": "2", "work_quota_bytes": str(32 << 20), "stage_processes": "64"}


class Listener:
    """Accepts connections on 127.0.0.1 (an ephemeral port) and keeps what
    each one sent."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind((cl.HOST, 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.received = []
        self.lock = threading.Lock()
        self.stopping = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            conn.settimeout(5)
            data = b""
            try:
                while True:
                    b = conn.recv(4096)
                    if not b:
                        break
                    data += b
            except OSError:
                pass
            conn.close()
            with self.lock:
                self.received.append(data)

    def got(self):
        with self.lock:
            return list(self.received)

    def close(self):
        self.stopping = True
        self.thread.join(5)
        self.sock.close()


def target(name, script, extra="", limits=None, outputs=None, shell="sh"):
    """A one-stage target running `script` with {out} as $1.  sh (dash) by
    default: it gives up at the first refused fork, where bash retries for
    seconds; bash for its /dev/tcp."""
    text = "name: %s\n%sstages:\n  - name: %s\n    argv: [%s, -c, %s, x, \"{out}\"]\n" \
           "    timeout: 60s\n" % (name, extra, name, shell, _q(script))
    if limits:
        text += "    limits: {%s}\n" % limits
    if outputs:
        text += "    outputs: [%s]\n" % ", ".join(outputs)
    return text


def _q(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def logs(c, jid):
    return c.ctl("job", "logs", str(jid), timeout="10s", json_out=False).out


def converged_dumps(c):
    c.wait_converged()
    return c.dumps()


def refusals(t, c):
    stage = {"name": "s", "argv": ["true"]}
    before = converged_dumps(c)
    leader = c.leader()
    follower = [n for n in cl.NODES if n != leader][0]
    for via in (leader, follower):
        err, res = raw_call(via, "target.put", {"name": "t-net", "network": True,
                                                "stages": [stage]})
        msg = err[1] if err else ""
        t.check("target.put network: true via node %d is refused" % via,
                err is not None and "only an admin may give a target the host's network" in msg
                and "allow_network_targets" in msg, repr((err, res)))
    f = c.write_file("targets/t-net.yaml", target("t-net", "true", "network: true\n"))
    r = c.ctl("target", "apply", f, timeout="10s", json_out=False)
    t.check("ingotctl target apply of network: true exits 1, permission_denied",
            r.rc == 1 and "permission_denied" in r.err + r.out, "rc=%s %s" % (r.rc, r.err))
    r = c.ctl("target", "get", "t-net", timeout="10s", json_out=False)
    t.check("the refused target does not exist", r.rc == 1 and "does not exist" in r.err,
            "rc=%s %s" % (r.rc, r.err))
    after = converged_dumps(c)
    mb = {n: cl.mask_applied_index(d) for n, d in before.items()}
    ma = {n: cl.mask_applied_index(d) for n, d in after.items()}
    t.check("the refusals changed no table on any node (mdb_dump, but for applied_index)",
            mb == ma, "\n".join(cl.dump_diff({0: mb[n], n: ma[n]}) for n in cl.NODES))
    t.check("nor applied_index: nothing was proposed", before == after)
    t.check("a refusal is logged at warn level",
            any("target.put refused target=t-net" in c.log(n) for n in cl.NODES))


def network(t, c, listener):
    on = target("net-on", "echo from-net-on > /dev/tcp/127.0.0.1/%d && echo sent > \"$1/ok.txt\""
                % listener.port, "network: true\n", outputs=["ok.txt"], shell="bash")
    off = target("net-off", "echo from-net-off > /dev/tcp/127.0.0.1/%d && echo sent > \"$1/ok.txt\""
                 % listener.port, outputs=["ok.txt"], shell="bash")
    r = apply_yaml(c, "net-on", on)
    t.check("target apply of network: true is accepted with the permission",
            r.get("name") == "net-on", repr(r))
    apply_yaml(c, "net-off", off)
    tg = c.ctl_json("target", "get", "net-on", timeout="10s")
    t.check("target get shows network true", tg.get("network") is True, repr(tg.get("network")))
    tg = c.ctl_json("target", "get", "net-off", timeout="10s")
    t.check("a target without it shows network false", tg.get("network") is False,
            repr(tg.get("network")))
    src = c.write_file("src/in.txt", "x\n")
    jon, joff = submit(c, "net-on", [src]), submit(c, "net-off", [src])
    j = wait_final(c, jon, 90)
    t.check("the network target's job succeeded", j["state"] == "succeeded",
            "%s %r %s" % (j["state"], j.get("error"), logs(c, jon)[-400:]))
    got = cl.wait_for("the stage's line to arrive",
                      lambda: [d for d in listener.got() if d] or None, 10, interval=0.1)
    t.check("its stage reached the test's port on 127.0.0.1 through the host network",
            got == [b"from-net-on\n"], repr(got))
    j = wait_final(c, joff, 90)
    log = logs(c, joff)
    t.check("the same stage without network fails", j["state"] == "failed",
            "%s %r" % (j["state"], j.get("error")))
    t.check("its log says the connection was refused (own loopback only)",
            "Connection refused" in log, log[-400:])
    t.check("nothing from it reached the test's port",
            b"from-net-off\n" not in listener.got(), repr(listener.got()))


def limits(t, c):
    bomb = "i=0; while [ $i -lt 300 ]; do sleep 30 & i=$((i+1)); done; wait"
    fill = "head -c 100M /dev/zero > \"$1/big\""
    cases = {
        "procs-target": (bomb, "", "processes: 16",
                         ["process limit of 16 reached",
                          "the target's limit (limits.processes 16, within this node's "
                          "stage_processes 64)"]),
        "procs-node": (bomb, "", "processes: 1000",
                       ["process limit of 64 reached",
                        "this node's ceiling (stage_processes 64; the target asks for "
                        "limits.processes 1000)"]),
        "disk-target": (fill, "disk: 16MiB\n", None,
                        ["work directory over its 16 MiB quota",
                         "the target's limit (disk_bytes 16 MiB, within this node's "
                         "work_quota_bytes 32 MiB)"]),
        "disk-node": (fill, "disk: 1GiB\n", None,
                      ["work directory over its 32 MiB quota",
                       "this node's ceiling (work_quota_bytes 32 MiB; the target asks for "
                       "disk_bytes 1 GiB)"]),
    }
    src = c.write_file("src/in.txt", "x\n")
    ids = {}
    for name, (script, extra, lim, _) in cases.items():
        apply_yaml(c, name, target(name, script, extra, lim))
        ids[name] = submit(c, name, [src])
    tg = c.ctl_json("target", "get", "disk-target", timeout="10s")
    t.check("target get shows disk_bytes", tg.get("disk_bytes") == 16 << 20, repr(tg))
    tg = c.ctl_json("target", "get", "procs-target", timeout="10s")
    t.check("target get shows limits.processes", tg["stages"][0]["limits"]["processes"] == 16,
            repr(tg["stages"][0]["limits"]))
    for name, (_, _, _, want) in cases.items():
        j = wait_final(c, ids[name], 90)
        err = j.get("error") or ""
        t.check("'%s' (job %d) fails" % (name, ids[name]), j["state"] == "failed",
                "%s %r" % (j["state"], err))
        for w in want:
            t.check("'%s': the error says '%s'" % (name, w), w in err, err)


def main(t):
    if os.geteuid() != 0:
        t.log("skipped: the sandbox with its own identities and disk quota needs root")
        return
    c = t.cluster(overrides=OVERRIDES)
    wait_registered(c)

    # ---- 1. no permission: refused, nothing changes --------------------------
    refusals(t, c)

    # ---- 2. with the permission: the host's network ---------------------------
    for n in cl.NODES:
        c.configure(n, allow_network_targets=True)
        c.stop(n)
    c.start_all()
    wait_registered(c)
    listener = Listener()
    try:
        network(t, c, listener)
    finally:
        listener.close()

    # ---- 3. per-target limits within the node's ceilings ----------------------
    limits(t, c)

    # ---- 4. taking the network away needs no permission -----------------------
    for n in cl.NODES:
        c.configure(n, allow_network_targets=None)
        c.stop(n)
    c.start_all()
    wait_registered(c)
    apply_yaml(c, "net-on", target("net-on", "true"))
    tg = c.ctl_json("target", "get", "net-on", timeout="10s")
    t.check("a put without network replaces the network target without the permission",
            tg.get("network") is False and tg.get("revision") == 2, repr(tg))
    c.wait_converged()
    dumps = c.dumps()
    t.check("the stores converge to identical dumps", cl.dumps_identical(dumps),
            cl.dump_diff(dumps))


if __name__ == "__main__":
    cl.run_tests(main)
