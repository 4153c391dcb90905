#!/usr/bin/env python3
"""Transport security with real processes (3 ingotd nodes on 127.0.0.1, TLS
as in cluster-configs/local-3, certificates from `ingotctl pki`).

The API: a plaintext ingotctl, one trusting another CA, one without a client
certificate, one with a client certificate of another CA: each refused with
the reason on stderr (exit 3) and a line in the node's log.  HTTP (HTTPS
with the node's certificate): the same four refused, the cluster's client
certificate served.

The raft port, played by hand (Python's ssl module; libraft 0.15's wire
format): a plaintext peer sending libraft's handshake and the AppendEntries
with an entry of type 0 that crashes 0.15, a peer with another CA's node
certificate, a peer holding node 2's real certificate and key but claiming
raft id 3 (each refused at the handshake: nothing reaches libraft); then a
peer proved by its own certificate (node 9, issued by the cluster's CA)
sending the entry of type 0, a RequestVote at term 2^64-1 and a vote for
another candidate: each connection closed by the transport's checks.

Rogue processes: an ingotd holding node 2's certificate but configured as
node 4 stops at start (exit 2); an ingotd with certificates of another CA
asking to join (`--join`) never gets in.

Afterwards nothing is disturbed: every node up, the same leader and term,
the stores unchanged (mdb_dump, applied index aside) and identical, no
ERROR in the logs, and a write succeeds.  Then SIGHUP: node 1 re-reads a
re-issued certificate (new API and HTTPS connections get it, an HTTPS
keep-alive connection opened before goes on with the old one, writes go
on), and a broken key is refused with the old certificate kept.  Finally a node without `tls`
on a non-loopback address (API, raft or HTTP) refuses to start, saying
how to make certificates.
"""
import http.client
import os
import shutil
import socket
import ssl
import struct
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clusterlib as cl  # noqa: E402

RAFT_COMMAND, RAFT_BARRIER = 1, 2


def u64(v):
    return struct.pack("<Q", v)


def handshake(raft_id, address="127.0.0.1:9999"):
    a = address.encode() + b"\0"
    a += b"\0" * ((8 - len(a) % 8) % 8)
    return u64(1) + u64(raft_id) + u64(len(a)) + a


def append_entries(term, entries):
    """entries: [(term, type, payload)]; header as 0.15 writes it."""
    h = u64(term) + u64(0) + u64(0) + u64(0) + u64(len(entries))
    for t, ty, data in entries:
        h += u64(t) + bytes([ty, 0, 0, 0]) + struct.pack("<I", len(data))
    h += b"\0" * 8
    return u64(1) + u64(len(h)) + h + b"".join(e[2] for e in entries)


def request_vote(term, candidate, last_index=0, last_term=0):
    h = u64(term) + u64(candidate) + u64(last_index) + u64(last_term) + u64(0)
    return u64(3) + u64(len(h)) + h


def raft_peer(port, payload, ctx, wait=3.0):
    """Connects to a raft port (TLS with ctx, or plaintext when ctx is
    None), sends payload, and returns how it ended: "handshake refused",
    "closed" (the node dropped the connection) or "open"."""
    s = socket.create_connection((cl.HOST, port), timeout=wait)
    try:
        if ctx is not None:
            try:
                s = ctx.wrap_socket(s, server_hostname=cl.HOST)
            except (ssl.SSLError, OSError):
                return "handshake refused"
        try:
            s.sendall(payload)
        except (ssl.SSLError, OSError):
            return "closed"
        s.settimeout(wait)
        try:
            data = s.recv(4096)
        except socket.timeout:
            return "open"
        except (ssl.SSLError, OSError):
            return "closed"
        return "closed" if not data else "open (it sent %r)" % data[:40]
    finally:
        s.close()


def log_has(c, n, text, start=1):
    return text in c.log_since(n, start)


def main(t):
    c = t.cluster()
    lead = c.wait_leader()
    c.apply_target("t-sec", via=1)
    src = c.write_file("src/k.c", "int k(void) { return 1; }\n")
    r = c.ctl("job", "submit", "--target", "t-sec", src)
    t.require("a job submitted over TLS", r.rc == 0, repr(r))
    c.wait_converged()
    before_status = {n: c.status(n) for n in cl.NODES}
    before = {n: cl.mask_applied_index(d) for n, d in c.dumps().items()}
    term = before_status[lead]["term"]
    t.log("leader %d, term %d" % (lead, term))

    # A second, foreign PKI: what an outsider could make for themselves.
    foreign = c.path("foreign")
    for args in (["init"], ["issue", "node", "--id", "2", "--address", cl.HOST],
                 ["issue", "node", "--id", "4", "--address", cl.HOST],
                 ["issue", "client", "--name", "operator"]):
        subprocess.run([c.ingotctl, "pki"] + args + ["--dir", foreign], check=True, capture_output=True)
    # A node certificate the cluster's own CA issued for a node that is not
    # a member: a proved, but rogue, peer.
    c.pki("issue", "node", "--id", "9", "--address", cl.HOST, "--days", "10")
    both = c.path("both-ca.crt")
    with open(both, "wb") as out:
        for f in (c.path("pki", "ca.crt"), os.path.join(foreign, "ca.crt")):
            with open(f, "rb") as i:
                out.write(i.read())

    # ---- the API ----------------------------------------------------------
    victim = [n for n in cl.NODES if n != lead][0]
    ep = cl.api_ep(victim)

    def raw_ctl(*args):
        p = subprocess.run([c.ingotctl, "--endpoints", ep, "--timeout", "3s"] + list(args) + ["status"],
                           capture_output=True, timeout=30)
        return p.returncode, p.stderr.decode()

    rc, err = raw_ctl()
    t.check("API: plaintext ingotctl refused: exit 3, 'this endpoint requires TLS'",
            rc == 3 and "this endpoint requires TLS" in err, "rc=%d %s" % (rc, err))
    t.check("API: the node logged the plaintext client",
            cl.wait_for("log", lambda: log_has(c, victim, "rpc refusing a plaintext client on a TLS port"), 5))
    rc, err = raw_ctl("--cacert", os.path.join(foreign, "ca.crt"))
    t.check("API: a client trusting another CA refuses the node: exit 3, 'not trusted'",
            rc == 3 and "the server's certificate is not trusted" in err, "rc=%d %s" % (rc, err))
    rc, err = raw_ctl("--cacert", c.path("pki", "ca.crt"))
    t.check("API: no client certificate where one is required: exit 3",
            rc == 3 and "requires a client certificate" in err, "rc=%d %s" % (rc, err))
    rc, err = raw_ctl("--cacert", both, "--cert", os.path.join(foreign, "client-operator.crt"),
                      "--key", os.path.join(foreign, "client-operator.key"))
    t.check("API: a client certificate of another CA refused: exit 3",
            rc == 3 and "refused this side's certificate" in err, "rc=%d %s" % (rc, err))
    t.check("API: the node logged the foreign client certificate",
            cl.wait_for("log", lambda: log_has(c, victim, "the client's certificate is not trusted"), 5))

    # ---- HTTP (the node's certificate, GnuTLS) ------------------------------
    def http_get(ctx, path="/healthz"):
        conn = cl.http_connection(victim, timeout=5, tls=ctx)
        try:
            conn.request("GET", path)
            r = conn.getresponse()
            return "HTTP %d" % r.status
        except (ssl.SSLError, OSError, http.client.HTTPException) as e:
            return "refused (%s)" % e.__class__.__name__
        finally:
            conn.close()

    how = http_get(False)
    t.check("HTTP: a plaintext request on the HTTPS port gets no answer (%s)" % how,
            how.startswith("refused"), how)
    how = http_get(cl.client_tls_context(os.path.join(foreign, "ca.crt")))
    t.check("HTTP: a client trusting another CA refuses the node (%s)" % how, how.startswith("refused"), how)
    how = http_get(cl.client_tls_context(c.path("pki", "ca.crt")))
    t.check("HTTP: no client certificate where one is required: refused (%s)" % how,
            how.startswith("refused") or how == "HTTP 403", how)
    how = http_get(cl.client_tls_context(both, os.path.join(foreign, "client-operator.crt"),
                                         os.path.join(foreign, "client-operator.key")))
    t.check("HTTP: a client certificate of another CA: refused (%s)" % how,
            how.startswith("refused") or how == "HTTP 403", how)
    how = http_get(None)
    t.check("HTTP: the cluster's client certificate gets /healthz (%s)" % how, how == "HTTP 200", how)

    # ---- the raft port ------------------------------------------------------
    deadly = append_entries(term, [(term, 0, b"\0" * 8)])  # type 0: NULL dereference in 0.15

    def ctx_with(cert_dir, name, ca=None):
        return cl.client_tls_context(ca or c.path("pki", "ca.crt"), os.path.join(cert_dir, name + ".crt"),
                                     os.path.join(cert_dir, name + ".key"))

    for target in (victim, lead):
        port = cl.raft_port(target)
        how = raft_peer(port, handshake(3) + deadly, None)
        t.check("raft %d: plaintext peer with the type-0 entry: dropped (%s)" % (target, how),
                how in ("closed", "handshake refused"), how)
        how = raft_peer(port, handshake(2) + deadly, ctx_with(foreign, "node-2", ca=both))
        t.check("raft %d: another CA's node certificate: refused (%s)" % (target, how),
                how in ("handshake refused", "closed"), how)
        how = raft_peer(port, handshake(3) + deadly, ctx_with(c.path("pki"), "node-2"))
        t.check("raft %d: node 2's certificate claiming raft id 3: refused (%s)" % (target, how),
                how == "closed", how)
        for what, msg in (("an entry of type 0", deadly),
                          ("a RequestVote at term 2^64-1", request_vote(2 ** 64 - 1, 9)),
                          ("a vote for another candidate", request_vote(term + 1, 3, 10 ** 6, term))):
            how = raft_peer(port, handshake(9) + msg, ctx_with(c.path("pki"), "node-9"))
            t.check("raft %d: proved peer 9 sending %s: dropped by the checks (%s)" % (target, what, how),
                    how == "closed", how)
    for n in (victim, lead):
        t.check("raft %d: the refusals are logged (handshake, id, checks)" % n,
                log_has(c, n, "does not speak TLS 1.3")
                and log_has(c, n, "claims raft id 3 with the certificate of node 2")
                and log_has(c, n, "message refused: AppendEntries: entry 0 has type 0")
                and log_has(c, n, "RequestVote: term 18446744073709551615 is absurd")
                and log_has(c, n, "RequestVote: candidate 3 sent by node 9"),
                "\n".join(ln for ln in c.log(n).splitlines() if "raft transport refused" in ln)[-1500:])

    # ---- rogue processes ------------------------------------------------------
    rogue = c.path("rogue")
    os.makedirs(os.path.join(rogue, "tls"))
    for f in ("ca.crt", "node-2.crt", "node-2.key"):
        shutil.copy(c.path("pki", f), os.path.join(rogue, "tls", f))
    cfg = os.path.join(rogue, "config.yaml")
    with open(cfg, "w") as f:
        f.write("id: 4\ndata_dir: data\nraft_address: %s\napi_address: %s\n"
                "tls: {ca: tls/ca.crt, cert: tls/node-2.crt, key: tls/node-2.key}\n"
                % (cl.raft_ep(4), cl.api_ep(4)))
    p = subprocess.run([c.ingotd, "--config", cfg, "--join", cl.api_ep(1)], capture_output=True,
                       timeout=30, cwd=rogue)
    t.check("an ingotd with node 2's certificate as node 4: exit 2 at start, naming it",
            p.returncode == 2 and b"is that of node 2, not of node 4" in p.stderr, repr(p))
    t.check("... and it wrote nothing", not os.path.exists(os.path.join(rogue, "data")))

    outsider = c.path("outsider")
    os.makedirs(os.path.join(outsider, "tls"))
    for f in ("ca.crt", "node-4.crt", "node-4.key"):
        shutil.copy(os.path.join(foreign, f), os.path.join(outsider, "tls", f))
    cfg = os.path.join(outsider, "config.yaml")
    with open(cfg, "w") as f:
        f.write("id: 4\ndata_dir: data\nraft_address: %s\napi_address: %s\nslots: 0\n"
                "tls: {ca: tls/ca.crt, cert: tls/node-4.crt, key: tls/node-4.key}\n"
                % (cl.raft_ep(4), cl.api_ep(4)))
    log = open(os.path.join(outsider, "ingotd.log"), "wb")
    p = subprocess.Popen([c.ingotd, "--config", cfg, "--join", ",".join(cl.api_ep(n) for n in cl.NODES)],
                         stdout=log, stderr=subprocess.STDOUT, cwd=outsider)
    with cl._live_lock:
        cl._live[p.pid] = p
    try:
        cl.time.sleep(4)
        members = sorted(m["id"] for m in c.status(lead)["members"])
        t.check("an ingotd of another CA asking to join does not get in (members %s)" % members,
                members == [1, 2, 3])
    finally:
        if p.poll() is None:
            p.kill()
        p.wait(timeout=10)
        with cl._live_lock:
            cl._live.pop(p.pid, None)
        log.close()
    t.check("the nodes logged the outsider's refused handshakes",
            any(log_has(c, n, "rpc tls handshake or record refused") for n in cl.NODES))

    # ---- nothing disturbed ---------------------------------------------------
    for n in cl.NODES:
        t.check("node %d still running" % n, c.running(n))
    after_status = {n: c.status(n) for n in cl.NODES}
    t.check("same leader and term everywhere (leader %d, term %d)" % (lead, term),
            all(s["leader"] == lead and s["term"] == term for s in after_status.values()),
            str({n: (s["leader"], s["term"]) for n, s in after_status.items()}))
    after = {n: cl.mask_applied_index(d) for n, d in c.dumps().items()}
    t.check("no attack changed a store (mdb_dump, applied index aside)", after == before,
            cl.dump_diff({n: after[n] for n in after}) if after != before else "")
    t.check("the nodes agree byte for byte", cl.dumps_identical(after))
    errors = [(n, ln) for n in cl.NODES for ln in c.log(n).splitlines() if " ERROR " in ln]
    t.check("no ERROR lines in the node logs", not errors, str(errors[:5]))
    r = c.ctl("job", "submit", "--target", "t-sec", src)
    t.check("a write succeeds after all of it", r.rc == 0, repr(r))

    # ---- SIGHUP: certificates re-read without a restart -----------------------
    with open(os.path.join(c.node_dir(1), "tls", "node-1.crt")) as f:
        old_der = ssl.PEM_cert_to_DER_cert(f.read())
    kept = cl.http_connection(1, timeout=5)  # HTTPS keep-alive, open across the reload
    kept.request("GET", "/healthz")
    r1 = kept.getresponse()
    r1.read()
    t.check("HTTPS before SIGHUP: the first certificate, /healthz answered",
            kept.sock.getpeercert(binary_form=True) == old_der and r1.status == 200)
    c.pki("issue", "node", "--id", "1", "--address", cl.HOST, "--days", "10", "--force")
    for f in ("node-1.crt", "node-1.key"):
        shutil.copy(c.path("pki", f), os.path.join(c.node_dir(1), "tls", f))
    with open(c.path("pki", "node-1.crt")) as f:
        new_der = ssl.PEM_cert_to_DER_cert(f.read())
    os.kill(c.pid(1), cl.signal.SIGHUP)
    t.check("SIGHUP: node 1 logs the reload",
            cl.wait_for("reload", lambda: log_has(c, 1, "tls reloaded: new connections use"), 5))
    s = cl.connect_api(cl.api_port(1))
    got = s.getpeercert(binary_form=True)
    s.close()
    t.check("SIGHUP: a new connection gets the re-issued certificate", got == new_der)
    t.check("SIGHUP: node 1 warns that its new 10-day certificate ends soon",
            cl.wait_for("expiry warning", lambda: any(
                log_has(c, 1, "node-1.crt days_left=%d " % d) for d in (9, 10)), 5),
            "\n".join(ln for ln in c.log(1).splitlines() if "ends soon" in ln))
    t.check("SIGHUP: node 1 logs the HTTPS reload",
            cl.wait_for("http reload", lambda: log_has(c, 1, "http tls reloaded"), 5))

    def https_cert():
        conn = cl.http_connection(1, timeout=5)
        try:
            conn.request("GET", "/healthz")
            resp = conn.getresponse()
            resp.read()
            return conn.sock.getpeercert(binary_form=True), resp.status
        finally:
            conn.close()

    der, status = https_cert()
    t.check("SIGHUP: a new HTTPS connection gets the re-issued certificate",
            der == new_der and status == 200, "status %d, same as before: %s" % (status, der == old_der))
    kept.request("GET", "/healthz")
    r1 = kept.getresponse()
    r1.read()
    t.check("SIGHUP: the HTTPS connection opened before goes on with its certificate",
            kept.sock.getpeercert(binary_form=True) == old_der and r1.status == 200)
    kept.close()
    r = c.ctl("job", "submit", "--target", "t-sec", src, nodes=[1])
    t.check("SIGHUP: writes through node 1 go on", r.rc == 0, repr(r))
    with open(os.path.join(c.node_dir(1), "tls", "node-1.key"), "w") as f:
        f.write("not a key\n")
    os.kill(c.pid(1), cl.signal.SIGHUP)
    t.check("SIGHUP with a broken key: refused, the old certificate kept (logged)",
            cl.wait_for("reload failure", lambda: log_has(c, 1, "tls reload failed, keeping the current "
                                                                 "certificates"), 5))
    s = cl.connect_api(cl.api_port(1))
    got = s.getpeercert(binary_form=True)
    s.close()
    t.check("... and new connections still get the good certificate", got == new_der)
    der, status = https_cert()
    t.check("... HTTPS too", der == new_der and status == 200, "status %d" % status)
    t.check("node 1 still running", c.running(1))

    # ---- plaintext off loopback ------------------------------------------------
    plain = c.path("plain")
    os.makedirs(plain)
    cfg = os.path.join(plain, "config.yaml")
    with open(cfg, "w") as f:
        f.write("id: 1\ndata_dir: data\nraft_address: 0.0.0.0:%d\napi_address: 127.0.0.1:%d\n"
                % (cl.raft_port(5), cl.api_port(5)))
    p = subprocess.run([c.ingotd, "--config", cfg], capture_output=True, timeout=30, cwd=plain)
    t.check("no tls and a non-loopback address: exit 2, saying how to make certificates",
            p.returncode == 2 and b"not a loopback address" in p.stderr and b"ingotctl pki" in p.stderr,
            repr(p))
    t.check("... and it wrote nothing", not os.path.exists(os.path.join(plain, "data")))
    with open(cfg, "w") as f:
        f.write("id: 1\ndata_dir: data\nraft_address: 127.0.0.1:%d\napi_address: 127.0.0.1:%d\n"
                "http_address: 0.0.0.0:%d\n" % (cl.raft_port(5), cl.api_port(5), cl.http_port(5)))
    p = subprocess.run([c.ingotd, "--config", cfg], capture_output=True, timeout=30, cwd=plain)
    t.check("no tls and a non-loopback http_address: exit 2, naming it",
            p.returncode == 2 and b"key 'http_address'" in p.stderr and b"ingotctl pki" in p.stderr,
            repr(p))


cl.run_tests(main, nodes=cl.ALL_NODES)
