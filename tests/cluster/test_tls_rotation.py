#!/usr/bin/env python3
"""A planned CA rotation without downtime, done as docs/operations.md
("Renewing and rotating") tells an operator, with 3 real nodes (TLS as in
local-3, certificates from `ingotctl pki`) and SIGHUP only.

A second CA is made with its own node and client certificates.  Step 1:
every node's and the client's CA file becomes the bundle of both CAs,
SIGHUP.  Step 2: every node gets its certificate of the new CA, SIGHUP; a
new API connection and a new HTTPS connection to each node show the new
certificate, and a follower restarted (so its raft connections are made
again, with the new certificates on both ends) catches up.  Step 3: the old
CA leaves every CA file, SIGHUP, and the client moves to its new-CA
certificate; a client certificate of the old CA is now refused, another
node restarted catches up, and writes go on.  After each step a write
succeeds; at the end the stores are identical and no node logged an ERROR.
"""
import os
import shutil
import ssl
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clusterlib as cl  # noqa: E402


def main(t):
    c = t.cluster()
    lead = c.wait_leader()
    new = c.path("newca")

    def new_pki(*args):
        p = subprocess.run([c.ingotctl, "pki"] + [str(a) for a in args] + ["--dir", new],
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
        if p.returncode != 0:
            raise cl.TestFailure("ingotctl pki %s: %s" % (" ".join(map(str, args)), p.stderr.decode()))

    new_pki("init", "--days", "60")
    new_pki("issue", "client", "--name", "operator", "--days", "50")
    for n in cl.NODES:
        new_pki("issue", "node", "--id", n, "--address", cl.HOST, "--days", "50")
    with open(c.path("pki", "ca.crt")) as f:
        old_ca = f.read()
    with open(os.path.join(new, "ca.crt")) as f:
        new_ca = f.read()
    old_client = c.path("old-client")
    os.makedirs(old_client)
    for f in ("client-operator.crt", "client-operator.key"):
        shutil.copy(c.path("pki", f), os.path.join(old_client, f))

    def write_ca(text, client_too=True):
        for n in cl.NODES:
            with open(os.path.join(c.node_dir(n), "tls", "ca.crt"), "w") as f:
                f.write(text)
        if client_too:
            with open(c.path("pki", "ca.crt"), "w") as f:
                f.write(text)
        cl.TLS_CONTEXT = c.tls_context()

    def hup_all(what):
        before = {n: c.log(n).count("tls reloaded: new connections use") for n in cl.NODES}
        for n in cl.NODES:
            os.kill(c.pid(n), cl.signal.SIGHUP)
        ok = cl.wait_for("reloads", lambda: all(
            c.log(n).count("tls reloaded: new connections use") > before[n] for n in cl.NODES), 10)
        t.check("%s: every node reloaded on SIGHUP" % what, ok is not None)

    writes = [0]

    def write_ok(what, via=None):
        writes[0] += 1
        r = c.ctl("job", "submit", "--target", "t-rot", src, nodes=[via] if via else None)
        t.check("%s: a write succeeds" % what, r.rc == 0, repr(r))

    def der(path):
        with open(path) as f:
            return ssl.PEM_cert_to_DER_cert(f.read())

    c.apply_target("t-rot", via=lead)
    src = c.write_file("src/k.c", "int k(void) { return 1; }\n")  # noqa: F841 (write_ok)
    write_ok("before")

    # ---- 1. both CAs everywhere ---------------------------------------------
    write_ca(old_ca + new_ca)
    hup_all("step 1 (CA bundle)")
    write_ok("step 1")

    # ---- 2. node certificates of the new CA -----------------------------------
    for n in cl.NODES:
        for f in ("node-%d.crt" % n, "node-%d.key" % n):
            shutil.copy(os.path.join(new, f), os.path.join(c.node_dir(n), "tls", f))
    hup_all("step 2 (new node certificates)")
    for n in cl.NODES:
        want = der(os.path.join(new, "node-%d.crt" % n))
        s = cl.connect_api(cl.api_port(n))
        got = s.getpeercert(binary_form=True)
        s.close()
        t.check("step 2: node %d's API shows its new-CA certificate" % n, got == want)
        conn = cl.http_connection(n, timeout=5)
        conn.request("GET", "/healthz")
        resp = conn.getresponse()
        resp.read()
        got = conn.sock.getpeercert(binary_form=True)
        conn.close()
        t.check("step 2: node %d's HTTPS shows its new-CA certificate (%d)" % (n, resp.status),
                got == want and resp.status == 200)
    lead = c.wait_leader()
    follower = [n for n in cl.NODES if n != lead][0]
    c.stop(follower)
    write_ok("step 2, node %d stopped" % follower)
    c.start(follower)
    idx, secs = c.wait_converged(timeout=30)
    t.check("step 2: node %d, restarted, caught up over new raft connections (index %d, %.1f s)"
            % (follower, idx, secs), True)
    write_ok("step 2")

    # ---- 3. the old CA goes ------------------------------------------------------
    write_ca(new_ca)
    for f in ("client-operator.crt", "client-operator.key"):
        shutil.copy(os.path.join(new, f), c.path("pki", f))
    cl.TLS_CONTEXT = c.tls_context()
    hup_all("step 3 (old CA dropped)")
    write_ok("step 3")
    # The old client trusts both CAs (so its own certificate passes its own
    # check); the nodes no longer trust the one that issued it.
    with open(os.path.join(old_client, "ca.crt"), "w") as f:
        f.write(old_ca + new_ca)
    p = subprocess.run([c.ingotctl, "--cacert", os.path.join(old_client, "ca.crt"), "--cert",
                        os.path.join(old_client, "client-operator.crt"), "--key",
                        os.path.join(old_client, "client-operator.key"), "--endpoints", cl.api_ep(lead),
                        "--timeout", "5s", "status"], stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=60)
    t.check("step 3: a client certificate of the old CA is refused (exit 3)",
            p.returncode == 3 and b"refused this side's certificate" in p.stderr, repr(p))
    lead = c.wait_leader()
    other = [n for n in cl.NODES if n not in (lead, follower)][0]
    c.stop(other)
    write_ok("step 3, node %d stopped" % other)
    c.start(other)
    idx, secs = c.wait_converged(timeout=30)
    t.check("step 3: node %d, restarted, caught up with the new CA only (index %d, %.1f s)"
            % (other, idx, secs), True)
    write_ok("step 3, all up")

    idx, secs = c.wait_converged(timeout=30)
    dumps = c.dumps()
    t.check("the stores are identical at applied index %d (mdb_dump)" % idx, cl.dumps_identical(dumps),
            cl.dump_diff(dumps))
    jobs = c.all_jobs()
    t.check("every write is there (%d jobs)" % writes[0], len(jobs) == writes[0], "%d jobs" % len(jobs))
    errors = [(n, ln) for n in cl.NODES for ln in c.log(n).splitlines() if " ERROR " in ln]
    t.check("no ERROR lines in the node logs", not errors, str(errors[:5]))


cl.run_tests(main)
