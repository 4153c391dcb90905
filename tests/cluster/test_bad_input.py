#!/usr/bin/env python3
"""Bad input against running ingotd nodes, and bad configurations for ingotd
(real 3-node cluster on 127.0.0.1).

Raw TCP (frames built by hand, docs/protocol.md): garbage, an HTTP request
(an HTTP 400 answer), a TLS ClientHello (closed), a length prefix of 0, a length prefix of 1 GiB, invalid msgpack, a valid msgpack value that
is not a request, a reply sent to the server, request id 0, nesting deeper
than 16, a frame cut short by the client, an unknown op and an unknown
argument.  Each gets the documented error and (for stream errors) a closed
connection; after each the node still answers a request on a new connection
and ingotctl works through it.  Nothing changes the state (mdb_dump before
== after).  Then ingotctl against the cluster: unknown job id, unknown
target, and local usage errors.  Finally bad configurations: each is exit 2
with a message naming the key and the file, and no data directory created.
"""
import os
import re
import socket
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clusterlib as cl  # noqa: E402
from clusterlib import frame, mp_pack, read_frames  # noqa: E402

VICTIM = 2  # the node the raw bytes go to


def connect(n, tls=None):
    """A connection to node n's API: TLS like the cluster (tls=False: a
    plaintext one, whatever the cluster speaks)."""
    return cl.connect_api(cl.api_port(n), timeout=5, tls=tls)


def raw_job_get(n, jid):
    """A well-formed job.get on a fresh connection; returns the reply."""
    s = connect(n)
    try:
        s.sendall(frame(mp_pack([0, 1, "job.get", {"id": jid, "stale": True}, cl.default_token(), None])))
        s.settimeout(5)
        buf = b""
        while True:
            if len(buf) >= 4 and len(buf) >= 4 + int.from_bytes(buf[:4], "big"):
                n_ = int.from_bytes(buf[:4], "big")
                return cl.mp_unpack(buf[4:4 + n_])[0]
            chunk = s.recv(65536)
            if not chunk:
                return None
            buf += chunk
    finally:
        s.close()


def still_serving(t, c, what, jid):
    rep = raw_job_get(VICTIM, jid)
    ok_raw = (isinstance(rep, list) and len(rep) == 4 and rep[0] == 1 and rep[1] == 1 and rep[2] is None
              and isinstance(rep[3], dict) and rep[3].get("id") == jid)
    r = c.ctl("job", "get", jid, nodes=[VICTIM])
    t.check("after %s: node %d still serves (raw job.get and ingotctl job get)" % (what, VICTIM),
            ok_raw and r.rc == 0 and r.json().get("id") == jid, "raw reply %r; %r" % (rep, r) if not ok_raw or r.rc else "")


def send_and_read(payload, close_write=False, timeout=5.0):
    s = connect(VICTIM)
    try:
        s.sendall(payload)
        if close_write:
            s.shutdown(socket.SHUT_WR)
        return read_frames(s, timeout=timeout)
    finally:
        s.close()


def error_of(vals):
    """(reply id, code, message) of the first reply, or None."""
    for v in vals:
        if isinstance(v, list) and len(v) == 4 and v[0] == 1 and isinstance(v[2], list) and len(v[2]) == 2:
            return v[1], v[2][0], v[2][1]
    return None


def raw_checks(t, c, jid):
    cases = [
        # (name, bytes, expected code, expect reply id, closes)
        ("garbage bytes", b"\xfe\xed\xfa\xce garbage", "too_large", 0, True),
        ("length prefix 0", b"\x00\x00\x00\x00", "malformed", 0, True),
        ("length prefix of 1 GiB", b"\x40\x00\x00\x00" + b"\x00" * 64, "too_large", 0, True),
        ("invalid msgpack (0xc1)", frame(b"\xc1\xc1\xc1"), "malformed", 0, True),
        ("msgpack with trailing bytes", frame(mp_pack([0, 1, "job.get", {"id": 1}, None, None]) + b"\x00"),
         "malformed", 0, True),
        ("a declared length beyond the frame", frame(b"\xdb\x00\x00\x10\x00abc"), "malformed", 0, True),
        ("valid msgpack, not a request (a map)", frame(mp_pack({"op": "job.get", "id": 1})), "malformed", 0, True),
        ("valid msgpack, not a request (a string)", frame(mp_pack("hello")), "malformed", 0, True),
        ("a reply sent to the server", frame(mp_pack([1, 5, None, None])), "malformed", 5, True),
        ("request id 0", frame(mp_pack([0, 0, "job.get", {"id": 1}, None, None])), "malformed", 0, True),
        ("op not a string", frame(mp_pack([0, 3, 7, {"id": 1}, None, None])), "malformed", 3, True),
        ("nesting deeper than 16", frame(b"\x91" * 20 + b"\xc0"), "too_large", 0, True),
    ]
    for name, payload, code, rid, closes in cases:
        vals, closed = send_and_read(payload, timeout=3.0)
        err = error_of(vals)
        t.check("raw %s: reply [1, %d, [%s, ...]] and the connection is closed" % (name, rid, code),
                err is not None and err[0] == rid and err[1] == code and closed == closes,
                "got %r, closed=%s" % (vals, closed))
        still_serving(t, c, name, jid)

    # Not an ingot client (plaintext, whatever the port speaks): an HTTP
    # request gets an HTTP answer saying what the port is.
    s = connect(VICTIM, tls=False)
    try:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        s.settimeout(3)
        answer = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            answer += chunk
    finally:
        s.close()
    t.check("raw HTTP request: answered HTTP/1.1 400 saying it is an ingot port, then closed",
            answer.startswith(b"HTTP/1.1 400 Bad Request\r\n") and b"this is an ingot API port" in answer,
            "got %r" % answer[:200])
    still_serving(t, c, "an HTTP request", jid)
    if c.tls:
        # A plaintext ingot client on the TLS port: told, then closed.
        s = connect(VICTIM, tls=False)
        try:
            s.sendall(frame(mp_pack([0, 1, "job.get", {"id": jid}, None, None])))
            vals, closed = read_frames(s, timeout=3.0)
        finally:
            s.close()
        err = error_of(vals)
        t.check("raw plaintext request on the TLS port: [1, 0, [permission_denied, 'this endpoint "
                "requires TLS ...']], closed", err is not None and err[0] == 0 and err[1] == "permission_denied"
                and "requires TLS" in err[2] and closed, "got %r, closed=%s" % (vals, closed))
        still_serving(t, c, "a plaintext request on the TLS port", jid)
    else:
        vals, closed = send_and_read(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 32,
                                     timeout=3.0)
        t.check("raw TLS ClientHello on the plaintext port: closed without a reply", closed and vals == [],
                "got %r, closed=%s" % (vals, closed))
        still_serving(t, c, "a TLS ClientHello", jid)

    # A frame cut short: the client half-closes inside a frame.
    vals, closed = send_and_read(b"\x00\x00\x00\x64" + b"\x96\x00", close_write=True, timeout=3.0)
    t.check("raw frame cut short by the client: the server closes the connection", closed, "got %r" % vals)
    still_serving(t, c, "a frame cut short", jid)

    # A client that vanishes without a word, mid-frame, many times over.
    for _ in range(50):
        s = connect(VICTIM)
        s.sendall(b"\x00\x00\x10\x00" + b"\x90" * 10)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # RST on close
        s.close()
    still_serving(t, c, "50 connections reset mid-frame", jid)

    # Per-request errors keep the connection open.
    s = connect(VICTIM)
    try:
        tok = cl.default_token()
        s.sendall(frame(mp_pack([0, 1, "no.such.op", {}, tok, None])) +
                  frame(mp_pack([0, 2, "job.get", {"id": jid, "bogus": 1}, tok, None])) +
                  frame(mp_pack([0, 3, "job.get", {"id": "seven"}, tok, None])) +
                  frame(mp_pack([0, 4, "job.get", {"id": 999999}, tok, None])) +
                  frame(mp_pack([0, 5, "job.submit", {"target": "t-bad", "sources": []}, tok, "bad id"])) +
                  frame(mp_pack([0, 6, "job.get", {"id": jid, "stale": True}, tok, None])))
        s.settimeout(0.2)
        buf, vals = b"", {}
        deadline = cl.now() + 5
        while len(vals) < 6 and cl.now() < deadline:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                break
            buf += chunk
            while len(buf) >= 4 and len(buf) >= 4 + int.from_bytes(buf[:4], "big"):
                n = int.from_bytes(buf[:4], "big")
                v = cl.mp_unpack(buf[4:4 + n])[0]
                buf = buf[4 + n:]
                vals[v[1]] = v
    finally:
        s.close()

    def code(i):
        v = vals.get(i)
        return v[2][0] if v and isinstance(v[2], list) else None
    t.check("raw unknown op: invalid, connection kept", code(1) == "invalid", repr(vals.get(1)))
    t.check("raw unknown argument: invalid naming it",
            code(2) == "invalid" and "bogus" in str(vals.get(2)), repr(vals.get(2)))
    t.check("raw argument of the wrong type: invalid", code(3) == "invalid", repr(vals.get(3)))
    t.check("raw unknown job id: not_found", code(4) == "not_found", repr(vals.get(4)))
    t.check("raw request id with a space: invalid", code(5) == "invalid", repr(vals.get(5)))
    v6 = vals.get(6)
    t.check("raw: a good request on the same connection after 5 refused ones is answered",
            v6 is not None and v6[2] is None and v6[3].get("id") == jid, repr(v6))


def ctl_checks(t, c, src):
    r = c.ctl("job", "get", "999999")
    t.check("ingotctl job get of an unknown id: exit 1, not_found on stderr",
            r.rc == 1 and "not_found" in r.err and r.out == "", repr(r))
    r = c.ctl("job", "submit", "--target", "no-such-target", src)
    t.check("ingotctl job submit to an unknown target: exit 1 naming the target",
            r.rc == 1 and "no-such-target" in r.err, repr(r))
    r = c.ctl("job", "cancel", "999999")
    t.check("ingotctl job cancel of an unknown id: exit 1", r.rc == 1 and "not_found" in r.err, repr(r))
    r = c.ctl("target", "delete", "no-such-target")
    t.check("ingotctl target delete of an unknown target: exit 1", r.rc == 1 and "not_found" in r.err, repr(r))
    bad_yaml = c.write_file("targets/bad.yaml", "name: bad\nstages:\n  - name: s\n    argv: [cc]\n    timout: 5s\n")
    r = c.ctl("target", "apply", bad_yaml)
    t.check("ingotctl target apply of a file with an unknown key: exit 2 naming file and key",
            r.rc == 2 and "bad.yaml" in r.err and "timout" in r.err, repr(r))
    r = c.ctl("job", "list", "--limit", "5", "--limit", "6")
    t.check("ingotctl option with a value given twice: exit 2", r.rc == 2, repr(r))
    r = c.ctl("job", "get", "1", "--stale", "--stale")
    t.check("ingotctl flag repeated: same as once (no usage error)", r.rc in (0, 1) and "twice" not in r.err, repr(r))
    r = c.ctl("job", "submit", "--target", "t-bad", "--stale", src)
    t.check("ingotctl --stale on a write: exit 2", r.rc == 2, repr(r))
    r = c.ctl("job", "submit", "--target", "t-bad", "--request-id", "has space", src)
    t.check("ingotctl --request-id with a space: exit 2", r.rc == 2, repr(r))
    r = c.ctl("job", "list", "--state", "bogus")
    t.check("ingotctl job list --state bogus: exit 2", r.rc == 2, repr(r))
    r = c.ctl("status", eps="127.0.0.1:1", timeout="2s")
    t.check("ingotctl against a closed port: exit 3, unavailable", r.rc == 3 and "unavailable" in r.err, repr(r))


def run_ingotd(c, cfg_path, data_dir):
    try:
        p = subprocess.Popen([c.ingotd, "--config", cfg_path, "--data-dir", data_dir], stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=c.dir)
        with cl._live_lock:
            cl._live[p.pid] = p
        out, err = p.communicate(timeout=15)
        return p.returncode, (out + err).decode(errors="replace")
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        return None, "ingotd did not exit within 15 s (killed)"
    finally:
        with cl._live_lock:
            cl._live.pop(p.pid, None)


def config_checks(t, c):
    with open(os.path.join(cl.CONFIG_DIR, "node1.yaml")) as f:
        base = f.read()
    if cl.PORT_OFFSET:
        base = re.sub(r"127\.0\.0\.1:(\d+)", lambda m: "127.0.0.1:%d" % (int(m.group(1)) + cl.PORT_OFFSET), base)
    p1 = "{id: 1, raft_address: 127.0.0.1:%d, api_address: 127.0.0.1:%d}" % (cl.raft_port(1), cl.api_port(1))
    p2 = "{id: 2, raft_address: 127.0.0.1:%d, api_address: 127.0.0.1:%d}" % (cl.raft_port(2), cl.api_port(2))
    cases = [
        ("unknown key", base + "snapshot_treshold: 64\n", ["snapshot_treshold"]),
        ("wrong type", re.sub(r"election_timeout_ms: \d+", "election_timeout_ms: fast", base),
         ["election_timeout_ms"]),
        ("wrong kind (a list for a number)", base.replace("connect_retry_ms: 50", "connect_retry_ms: [50]"),
         ["connect_retry_ms"]),
        ("value out of range", re.sub(r"heartbeat_timeout_ms: \d+", "heartbeat_timeout_ms: 0", base),
         ["heartbeat_timeout_ms"]),
        ("key given twice", base + "election_timeout_ms: 400\n", ["election_timeout_ms"]),
        ("duplicate peer ids", base.replace("  - {id: 2,", "  - {id: 1,"), ["peers"]),
        ("api_address not local", base.replace("api_address: 127.0.0.1:%d" % cl.api_port(1),
                                               "api_address: 10.255.255.1:%d" % cl.api_port(1)),
         ["api_address", "10.255.255.1"]),
        ("missing id", "\n".join(ln for ln in base.splitlines() if not ln.startswith("id:")) + "\n", ["id"]),
        ("id not among the peers", base.replace("\nid: 1\n", "\nid: 9\n"), ["9"]),
        ("peers not a list", base.split("peers:")[0] + "peers: %s\n" % p1, ["peers"]),
        ("address not IPv4", base.replace("raft_address: 127.0.0.1:%d\n" % cl.raft_port(1),
                                          "raft_address: localhost:%d\n" % cl.raft_port(1)), ["raft_address"]),
        ("not YAML", "id: [1\n", []),
        ("peer without api_address", base.replace(p2, "{id: 2, raft_address: 127.0.0.1:%d}" % cl.raft_port(2)),
         ["peers"]),
        ("tls without a key", base.replace("  key: tls/node-1.key\n", ""), ["tls", "needs ca, cert and key"]),
        ("tls with an unknown key", base.replace("  client_certs: required\n", "  cipher: aes\n"),
         ["cipher", "unknown key in tls"]),
        ("tls client_certs not required/optional", base.replace("client_certs: required", "client_certs: maybe"),
         ["tls.client_certs"]),
        ("tls files that do not exist (relative to the file)", base, ["TLS CA file", "badcfg/tls/ca.crt"]),
        ("max_connections of 0", base + "max_connections: 0\n", ["max_connections"]),
        ("auth.certificates with an unknown role", base + "auth:\n  certificates:\n    ops: {role: root}\n",
         ["auth.certificates", "root"]),
        ("auth.certificates: a tenant for an operator",
         base + "auth:\n  certificates:\n    ops: {role: operator, tenant: team-a}\n", ["auth.certificates", "tenant"]),
        ("auth.certificates: not a client name", base + "auth:\n  certificates:\n    -ops: {role: viewer}\n",
         ["auth.certificates", "-ops"]),
        ("auth.certificates without a role", base + "auth:\n  certificates:\n    ops: {tenant: team-a}\n",
         ["auth.certificates", "role is required"]),
        ("allow_network_targets (gone: network targets are an admin's)", base + "allow_network_targets: true\n",
         ["allow_network_targets", "admin"]),
        ("auth.jwt without keys", base + "auth:\n  jwt: {issuer: x, audience: y}\n", ["auth.jwt", "keys"]),
        ("auth.rate_limits of an unknown role", base + "auth:\n  rate_limits:\n    root: {rate_per_s: 1}\n",
         ["auth.rate_limits", "root"]),
        ("idle_timeout_ms not a number", base + "idle_timeout_ms: soon\n", ["idle_timeout_ms"]),
        ("assign_ahead over 1024", base + "assign_ahead: 1025\n", ["assign_ahead"]),
        ("assign_ahead_max_ms not a number", base + "assign_ahead_max_ms: short\n",
         ["assign_ahead_max_ms"]),
    ]
    for i, (name, text, words) in enumerate(cases):
        cfg = c.write_file("badcfg/%02d.yaml" % i, text)
        data = c.path("badcfg", "data-%02d" % i)
        rc, out = run_ingotd(c, cfg, data)
        named = all(w in out for w in words) and cfg in out
        t.check("bad config (%s): exit 2, message names %s and the file; no data dir" % (name, words or "the file"),
                rc == 2 and named and not os.path.exists(data),
                "rc=%s exists=%s out=%r" % (rc, os.path.exists(data), out.strip()[:300]))
    rc, out = run_ingotd(c, c.path("badcfg", "missing.yaml"), c.path("badcfg", "data-missing"))
    t.check("missing config file: exit 2 naming it", rc == 2 and "missing.yaml" in out, "rc=%s out=%r" % (rc, out[:200]))


def main(t):
    c = t.cluster()
    c.apply_target("t-bad")
    src = c.write_file("src/b.c", "int b;\n")
    jid = c.ctl_json("job", "submit", "--target", "t-bad", src)["id"]
    idx, _ = c.wait_converged()
    before = c.dumps()

    raw_checks(t, c, jid)
    ctl_checks(t, c, src)

    idx2, _ = c.wait_converged()
    after = c.dumps()
    # Refused writes go through the log: only meta.applied_index may move.
    mb = {n: cl.mask_applied_index(d) for n, d in before.items()}
    ma = {n: cl.mask_applied_index(d) for n, d in after.items()}
    t.check("bad input changed no table (mdb_dump of every node unchanged but for meta.applied_index %d -> %d)"
            % (idx, idx2), ma == mb, "\n".join(cl.dump_diff({0: mb[n], n: ma[n]}) for n in cl.NODES))
    t.check("the nodes still agree byte for byte", cl.dumps_identical(after), cl.dump_diff(after))
    for n in cl.NODES:
        t.check("node %d still running" % n, c.running(n))
    errs = [ln for n in cl.NODES for ln in c.log(n).splitlines() if " ERROR " in ln]
    t.check("no ERROR lines in the node logs", not errs, "; ".join(errs[:5]))
    for n in cl.NODES:
        rc = c.stop(n)
        t.check("node %d stops cleanly on SIGTERM (exit 0)" % n, rc == 0, "exit code %s" % rc)
    config_checks(t, c)


cl.run_tests(main)
