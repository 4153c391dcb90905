#!/usr/bin/env python3
"""test_auth.py - identity and permission on a real 3-node cluster
(docs/api.md "Authentication", docs/operations.md "Tokens", "JWT").

1. Bootstrap: the first leader wrote one admin token, 0600, in its data
   directory, and logged where; `token create` makes one token per role
   (and tenant-scoped ones); `token list` shows them, never a secret.
2. The full matrix: every operation of the op table against every kind of
   caller (no credential (a loopback caller: dev mode takes it for a member
   node), a malformed and an unknown token, viewer, submitter, operator,
   admin, a tenant's viewer and submitter, a JWT of the identity provider),
   through a follower and through the leader.  A caller without the right
   gets unauthenticated or permission_denied with what is missing, sent with
   arguments that would change the state if it were let through; one with
   the right gets past the check (an unknown argument then stops it).  The
   mdb_dump of every node is the same before and after all of it: no
   refusal changed anything.
3. Tenants: another tenant's job does not exist (get, list, events, watch,
   log, artifact, cancel, retry: not_found worded as for a missing job); a
   tenant's submitter submits into its own tenant only.
4. Revocation takes effect on open connections, on every node; so does
   a token's expiry, on a connection that used it request after request.
5. JWTs signed here (ES256, python3-cryptography): valid ones work and their
   writes name `jwt:<sub>` in the audit trail; expired, not yet valid,
   forged, alg none, HS256, unknown kid, wrong issuer or audience: refused.
6. A flood from one token hits rate_limited (with retry_after_ms) while
   another tenant's submitter still submits.
7. The audit trail (`ingotctl audit`) names who did what, settings changes
   included (an operator's `settings set` is refused and changes nothing).
8. With TLS (the first run): client certificates grant what
   auth.certificates says (cert:ops an operator, cert:teamcert team-a's
   submitter, the unnamed operator certificate nothing), node
   certificates are member nodes that may speak only for themselves (node
   3 about id 3, not about another node's attempt), and a follower
   forwards a certificate principal's writes to the leader on its behalf
   (the audit names cert:ops); on_behalf is refused from anyone but a
   node.

Everything runs twice: on a TLS cluster (as in production), then on a
plaintext one (dev mode: a loopback caller without a credential is taken
for a member node of unknown id).
"""
import base64
import json
import os
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clusterlib as cl  # noqa: E402

from cryptography.hazmat.primitives import hashes, hmac, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature  # noqa: E402

ISSUER = "https://idp.example.test/"
AUDIENCE = "ingot"
TARGET = {"name": "t-auth", "stages": [{"name": "build", "argv": ["sh", "-c", "echo built; cat \"$0\"", "{source}"]}]}


# ---- JWTs ---------------------------------------------------------------
def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def jwt_sign(key, claims, alg="ES256", kid="k1", header=None):
    h = {"alg": alg, "typ": "JWT"}
    if kid is not None:
        h["kid"] = kid
    h.update(header or {})
    signing = (b64u(json.dumps(h).encode()) + "." + b64u(json.dumps(claims).encode())).encode()
    if alg == "ES256":
        r, s = decode_dss_signature(key.sign(signing, ec.ECDSA(hashes.SHA256())))
        sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    elif alg == "HS256":
        m = hmac.HMAC(key, hashes.SHA256())
        m.update(signing)
        sig = m.finalize()
    else:  # none
        sig = b""
    return signing.decode() + "." + b64u(sig)


def claims(sub, groups, tenant=None, exp_in=600, **extra):
    now = int(time.time())
    c = {"iss": ISSUER, "aud": AUDIENCE, "sub": sub, "groups": groups, "exp": now + exp_in, "iat": now}
    if tenant is not None:
        c["ingot_tenant"] = tenant
    c.update(extra)
    return c


# ---- raw calls on one connection (revocation mid-connection) -------------
class Conn:
    def __init__(self, n, tls=None):
        self.s = cl.connect_api(cl.api_port(n), timeout=10, tls=tls)
        self.next = 1
        self.buf = b""

    def call(self, op, args, token, on_behalf=None):
        rid = self.next
        self.next += 1
        msg = [0, rid, op, args, token, None] + ([on_behalf] if on_behalf else [])
        self.s.sendall(cl.frame(cl.mp_pack(msg)))
        while True:
            while len(self.buf) >= 4:
                n = struct.unpack(">I", self.buf[:4])[0]
                if len(self.buf) < 4 + n:
                    break
                msg = cl.mp_unpack(self.buf[4:4 + n])[0]
                self.buf = self.buf[4 + n:]
                if msg[0] == 1 and msg[1] == rid:
                    return msg[2], msg[3]
            chunk = self.s.recv(65536)
            if not chunk:
                raise cl.TestFailure("connection closed")
            self.buf += chunk

    def close(self):
        self.s.close()


def code(r):
    return r.code if not r.ok else "ok"


def settled_dumps(c):
    """mdb_dump of every node once their applied indexes are equal and
    stable (so each has committed what it applied), applied index masked."""
    c.wait_converged(stable_for=0.3)
    return {n: cl.mask_applied_index(d) for n, d in c.dumps().items()}


def main(t):
    key = ec.generate_private_key(ec.SECP256R1())
    other = ec.generate_private_key(ec.SECP256R1())
    # The provider's public keys as the operator copies them in: a JWKS
    # (kid k1), as IdPs publish them.
    tmp_keys = os.path.join(os.environ.get("TMPDIR", "/tmp"), "ingot-auth-jwks-%d.json" % os.getpid())
    pub = key.public_key().public_numbers()
    with open(tmp_keys, "w") as f:
        json.dump({"keys": [{"kty": "EC", "crv": "P-256", "kid": "k1", "use": "sig", "alg": "ES256",
                             "x": b64u(pub.x.to_bytes(32, "big")), "y": b64u(pub.y.to_bytes(32, "big"))}]}, f)
    auth_cfg = ("{jwt: {issuer: \"%s\", audience: %s, keys: %s, role_claim: groups, leeway_s: 5, "
                "role_map: {ingot-viewers: viewer, ingot-builders: submitter, ingot-admins: admin}}, "
                "rate_limits: {submitter: {rate_per_s: 20, burst: 60}, "
                "unauthenticated: {rate_per_s: 100, burst: 150}}, "
                "certificates: {ops: {role: operator}, teamcert: {role: submitter, tenant: team-a}}}"
                % (ISSUER, AUDIENCE, tmp_keys))
    try:
        c = run(t, key, other, auth_cfg, tls=True)
        for n in cl.NODES:
            c.stop(n)
        t.log("---- again on a plaintext cluster (dev mode) ----")
        run(t, key, other, auth_cfg, tls=False)
    finally:
        os.unlink(tmp_keys)


class Prefixed:
    """The checks of t, each name prefixed (which run it is)."""
    def __init__(self, t, prefix):
        self.t, self.prefix = t, prefix

    def check(self, name, cond, detail=""):
        return self.t.check(self.prefix + name, cond, detail)

    def require(self, name, cond, detail=""):
        return self.t.require(self.prefix + name, cond, detail)

    def __getattr__(self, name):
        return getattr(self.t, name)


def run(t, key, other, auth_cfg, tls):
    mode = "tls" if tls else "plain"
    t = Prefixed(t, "[%s] " % mode)
    c = t.cluster(name="test_auth-" + mode, tls=tls,
                  overrides={"slots": "1", "auth": auth_cfg, "request_timeout_ms": "2000"})
    if tls:
        c.pki("issue", "client", "--name", "ops", "--days", "20")
        c.pki("issue", "client", "--name", "teamcert", "--days", "20")
    lead = c.wait_leader()
    fol = [n for n in cl.NODES if n != lead]
    admin = c.admin_token()

    # ---- 1. bootstrap and tokens ------------------------------------------
    files = [n for n in cl.NODES if c.read_admin_token(n)]
    t.check("exactly one node wrote admin.token", len(files) == 1, str(files))
    path = os.path.join(c.data_dir(files[0]), "admin.token")
    t.check("admin.token is mode 0600", (os.stat(path).st_mode & 0o777) == 0o600, oct(os.stat(path).st_mode))
    t.check("its node logged where it is", "bootstrap admin token created id=1 path=%s" % path in c.log(files[0]))
    r = c.ctl("token", "list")
    t.require("token list as admin", r.rc == 0, repr(r))
    lst = r.json()
    t.check("one token: bootstrap-admin, admin, id 1",
            len(lst) == 1 and lst[0]["name"] == "bootstrap-admin" and lst[0]["role"] == "admin", str(lst))

    def make(role, tenant=None, name=None, via=None):
        argv = ["token", "create", "--role", role] + (["--tenant", tenant] if tenant else []) + \
               (["--name", name] if name else [])
        r = c.ctl(*argv, json_out=False, nodes=[via] if via else None)
        t.require("token create --role %s%s" % (role, " --tenant " + tenant if tenant else ""),
                  r.rc == 0 and r.out.startswith("ingot_"), repr(r))
        return r.out.strip()

    tok = {
        "viewer": make("viewer", name="v"),
        "submitter": make("submitter", name="s", via=fol[0]),
        "operator": make("operator"),
        "admin2": make("admin"),
        "a-viewer": make("viewer", "team-a"),
        "a-submitter": make("submitter", "team-a"),
        "b-submitter": make("submitter", "team-b"),
    }
    r = c.ctl("token", "create", "--role", "operator", "--tenant", "team-a")
    t.check("an operator token with a tenant is refused (invalid)", r.rc == 1 and "invalid" in r.err, repr(r))
    r = c.ctl("-o", "json", "token", "list", json_out=False)
    listed = r.json() if r.rc == 0 else []
    t.check("token list: 8 tokens, no secret in the output",
            len(listed) == 8 and not any(x.split("_")[2] in r.out for x in tok.values()), r.out[:300])
    # Wait until every node applied the last token (stale reads below).
    cl.wait_for("every node knows the tokens", lambda: all(
        cl.call(cl.api_ep(n), "token.list", {"stale": True}, token=admin).ok and
        len(cl.call(cl.api_ep(n), "token.list", {"stale": True}, token=admin).result) == 8
        for n in cl.NODES), 10)

    node3_ctx = ops_ctx = team_ctx = None
    if tls:
        ca = c.path("pki", "ca.crt")
        node3_ctx = cl.client_tls_context(ca, c.path("pki", "node-3.crt"), c.path("pki", "node-3.key"))
        ops_ctx = c.tls_context("ops")
        team_ctx = c.tls_context("teamcert")

    jwts = {
        "jwt-viewer": jwt_sign(key, claims("alice", ["ingot-viewers", "other"])),
        "jwt-submitter": jwt_sign(key, claims("bob", ["ingot-builders"], tenant="team-a")),
    }

    # A target, and jobs of two tenants.
    r = c.call("target.put", TARGET)
    t.require("target.put as admin", r.ok, repr(r))
    src_a = {"path": "in.txt", "data": b"source of team a\n"}
    src_b = {"path": "in.txt", "data": b"source of team b\n"}
    ra = c.call("job.submit", {"target": "t-auth", "sources": [src_a]}, token=tok["a-submitter"], via=fol[0])
    rb = c.call("job.submit", {"target": "t-auth", "sources": [src_b]}, token=tok["b-submitter"], via=lead)
    t.require("submits of team-a and team-b", ra.ok and rb.ok, "%r %r" % (ra, rb))
    ja, jb = ra.result["id"], rb.result["id"]
    cl.wait_for("both jobs succeeded", lambda: all(
        c.call("job.get", {"id": j}).result["state"] == "succeeded" for j in (ja, jb)), 60)
    job_a = c.call("job.get", {"id": ja}).result
    job_b = c.call("job.get", {"id": jb}).result
    t.check("the tenant's submitter's job is its tenant's (tenant defaults to it)",
            job_a["tenant"] == "team-a" and job_b["tenant"] == "team-b", "%s %s" % (job_a["tenant"], job_b["tenant"]))

    # ---- 2. the full matrix ------------------------------------------------
    # What each kind of caller may do; '.' allowed, 'U' unauthenticated,
    # 'D' permission_denied.  Columns: no token (dev mode: a loopback
    # caller without a credential is taken for a member node), malformed,
    # unknown, viewer, submitter, operator, admin, team-a viewer, team-a
    # submitter, JWT viewer (alice), JWT team-a submitter (bob).
    callers = [("none", None, None), ("malformed", "ingot_notatoken", None),
               ("unknown", "ingot_99_" + "ab" * 32, None),
               ("viewer", tok["viewer"], None), ("submitter", tok["submitter"], None),
               ("operator", tok["operator"], None), ("admin", admin, None),
               ("a-viewer", tok["a-viewer"], None), ("a-submitter", tok["a-submitter"], None),
               ("jwt-viewer", jwts["jwt-viewer"], None), ("jwt-submitter", jwts["jwt-submitter"], None)]
    if tls:
        # "none" is then the cluster's operator certificate, which
        # auth.certificates does not name: it grants nothing.
        callers += [("node 3's certificate", None, node3_ctx), ("cert:ops", None, ops_ctx),
                    ("cert:teamcert", None, team_ctx)]
    j_any = jb
    valid = {  # arguments that change the state when let through
        "status": {}, "node.info": {},
        "target.put": {"name": "t-evil", "stages": [{"name": "s", "argv": ["true"]}]},
        "target.get": {"name": "t-auth"}, "target.list": {},
        "target.delete": {"name": "t-auth"},
        "job.submit": {"target": "t-auth", "sources": [src_a]},
        "job.get": {"id": j_any}, "job.list": {},
        "job.cancel": {"id": j_any}, "job.retry": {"id": j_any},
        "job.events": {"id": j_any}, "job.watch": {"id": j_any},
        "job.log": {"id": j_any, "stage": 0},
        "node.list": {}, "node.drain": {"id": 1}, "node.undrain": {"id": 1},
        "node.forget": {"id": 1},  # up: conflict when let through
        "artifact.get": {"sha256": job_b["sources"][0]["sha256"]},
        "node.register": {"id": 3, "slots": 9},
        "node.heartbeat": {"id": 3},
        "worker.report": {"kind": "finish", "job": j_any, "attempt": 1, "outcome": "failed"},
        "member.add": {"id": 4, "raft_address": cl.raft_ep(4), "api_address": cl.api_ep(4)},
        "member.promote": {"id": 3}, "member.demote": {"id": 3}, "member.remove": {"id": 3},
        "member.transfer": {}, "member.check": {"id": 1},
        "cluster.events": {}, "node.log_level": {"level": "debug"},
        "settings.get": {}, "settings.set": {"name": "job_retention_ms", "value": 60000},
        "cluster.snapshot": {}, "cluster.snapshot_read": {"handle": 1, "offset": 0},
        "token.create": {"role": "admin"}, "token.list": {}, "token.revoke": {"id": 1},
        "audit.list": {},
    }
    U4 = "UUUDDD.DDDD"  # admin only
    matrix = {
        # columns:              n  m u v s o a av as jv js
        "status":               "UUU........",
        "node.info":            ".UU........",
        "target.put":           "UUUDD..DDDD",
        "target.get":           "UUU........",
        "target.list":          "UUU........",
        "target.delete":        "UUUDD..DDDD",
        "job.submit":           "UUUD...D.D.",
        "job.get":              "UUU........",
        "job.list":             "UUU........",
        "job.cancel":           "UUUD...D.D.",
        "job.retry":            "UUUD...D.D.",
        "job.events":           "UUU........",
        "job.watch":            "UUU........",
        "job.log":              "UUU........",
        "node.list":            "UUU........",
        "node.drain":           "UUUDD..DDDD",
        "node.undrain":         "UUUDD..DDDD",
        "node.forget":          "UUUDD..DDDD",
        "artifact.get":         "UUU........",
        "node.register":        ".UUDDDDDDDD",
        "node.heartbeat":       ".UUDDDDDDDD",
        "worker.report":        ".UUDDDDDDDD",
        "member.add":           ".UUDDD.DDDD",
        "member.promote":       U4,
        "member.demote":        U4,
        "member.remove":        ".UUDDD.DDDD",
        "member.transfer":      U4,
        "member.check":         ".UUDDD.DDDD",
        "cluster.events":       "UUU....DD.D",
        "node.log_level":       U4,
        "settings.get":         "UUU........",
        "settings.set":         U4,
        "cluster.snapshot":     U4,
        "cluster.snapshot_read": U4,
        "token.create":         U4,
        "token.list":           U4,
        "token.revoke":         U4,
        "audit.list":           U4,
    }
    node3 = {  # node 3's certificate: node-internal calls, about itself only
        "node.info": ".", "node.register": ".", "node.heartbeat": ".", "worker.report": ".",
        "member.remove": ".",  # {id: 3}; member.add {id: 4} and member.check {id: 1}: D
    }
    if tls:
        matrix = {op: "U" + cells[1:] + node3.get(op, "D") + cells[5] + cells[8]
                  for op, cells in matrix.items()}
    t.check("the matrix covers every caller kind", all(len(v) == len(callers) for v in matrix.values()),
            str({k: len(v) for k, v in matrix.items() if len(v) != len(callers)}))
    # Every operation of docs/api.md is in it.
    ops_doc = []
    for line in open(os.path.join(cl.SOURCE_DIR, "docs", "api.md")):
        if line.startswith("| `") and "` | " in line:
            name = line[3:line.index("`", 3)]
            if "." in name and " " not in name and name not in ops_doc and \
                    line.split("|")[2].strip() in ("read", "write", "local", "leader"):
                ops_doc.append(name)
    missing = [o for o in ops_doc if o not in matrix]
    t.check("every operation of docs/api.md (%d) is in the matrix" % len(ops_doc),
            len(ops_doc) >= 34 and not missing, "missing %s" % missing)

    before = settled_dumps(c)
    wrong, refused, allowed = [], 0, 0
    conns = {}
    for op, cells in sorted(matrix.items()):
        for (who, token, ctx), want in zip(callers, cells):
            via = fol[(refused + allowed) % len(fol)] if (refused + allowed) % 3 else lead
            args = dict(valid[op]) if want != "." else {"no_such_argument": 1}
            if want == "." and ctx is node3_ctx and "id" in valid[op]:
                args["id"] = 3
            ck = (who, via)  # one connection per caller and node (TLS handshakes cost)
            try:
                if ck not in conns:
                    conns[ck] = Conn(via, tls=ctx)
                err, _ = conns[ck].call(op, args, token)
            except (OSError, cl.TestFailure) as e:
                wrong.append("%s by %s via %d: %s" % (op, who, via, e))
                continue
            got, msg = (err[0], err[1]) if err else ("ok", "")
            if want == "U":
                refused += 1
                ok = got == "unauthenticated" and len(msg) > 15
            elif want == "D":
                refused += 1
                ok = got == "permission_denied" and op in msg
            else:
                allowed += 1
                ok = got not in ("unauthenticated", "permission_denied", "rate_limited")
            if not ok:
                wrong.append("%s by %s via %d: %s %s (wanted %s)" % (op, who, via, got, msg[:120], want))
    for conn in conns.values():
        conn.close()
    t.check("matrix: %d refusals and %d calls let through, each as expected" % (refused, allowed),
            not wrong and refused > (200 if tls else 150), "; ".join(wrong[:6]))
    after = settled_dumps(c)
    changed = [n for n in before if before[n] != after[n]]
    t.check("matrix: the mdb_dump of every node is unchanged (nothing any refused call asked for happened)",
            not changed, "changed on nodes %s" % changed)
    for n in cl.NODES:  # node.log_level was let through for admins
        cl.call(cl.api_ep(n), "node.log_level", {"level": "info"}, token=admin)

    # ---- 3. tenants ---------------------------------------------------------
    av = tok["a-viewer"]
    r_missing = c.call("job.get", {"id": 999999}, token=av)
    for op, args in (("job.get", {"id": jb}), ("job.events", {"id": jb}), ("job.log", {"id": jb, "stage": 0})):
        for via in cl.NODES:
            r = c.call(op, dict(args), token=av, via=via)
            t.check("team-a's viewer: %s of team-b's job via %d is not_found, as a missing job" % (op, via),
                    code(r) == "not_found" and r.message == "job %d does not exist" % jb and
                    code(r_missing) == "not_found", repr(r))
    r = c.call("job.watch", {"id": jb}, token=av, via=fol[1])
    t.check("team-a's viewer: job.watch of team-b's job: not_found", code(r) == "not_found", repr(r))
    r = c.call("job.get", {"id": ja}, token=av)
    t.check("team-a's viewer reads team-a's job", r.ok and r.result["id"] == ja, repr(r))
    r = c.call("job.list", {}, token=av)
    ids = [j["id"] for j in r.result["jobs"]] if r.ok else []
    t.check("team-a's viewer: job.list shows team-a's jobs only", ja in ids and jb not in ids and
            all(j["tenant"] == "team-a" for j in r.result["jobs"]), str(ids))
    r = c.call("job.list", {}, token=tok["viewer"])
    ids = [j["id"] for j in r.result["jobs"]] if r.ok else []
    t.check("an unscoped viewer lists both tenants", ja in ids and jb in ids, str(ids))
    sha_b = job_b["sources"][0]["sha256"]
    log_b = job_b["stages"][0]["log_sha256"]
    r = c.call("artifact.get", {"sha256": sha_b}, token=av)
    t.check("team-a's viewer: artifact.get without the job: invalid (job required)",
            code(r) == "invalid" and "job" in r.message, repr(r))
    for what, sha in (("source", sha_b), ("stage log", log_b)):
        r = c.call("artifact.get", {"sha256": sha, "job": jb}, token=av)
        t.check("team-a's viewer: team-b's %s artifact with its job: not_found" % what,
                code(r) == "not_found" and r.message == "job %d does not exist" % jb, repr(r))
        r = c.call("artifact.get", {"sha256": sha, "job": ja}, token=av)
        t.check("team-a's viewer: team-b's %s artifact named with team-a's job: not_found" % what,
                code(r) == "not_found", repr(r))
    r = c.call("artifact.get", {"sha256": job_a["sources"][0]["sha256"], "job": ja}, token=av)
    t.check("team-a's viewer reads its job's source", r.ok and r.result == src_a["data"], repr(r)[:200])
    r = c.call("job.log", {"id": ja, "stage": 0}, token=av)
    t.check("team-a's viewer reads its job's log", r.ok, repr(r)[:200])
    before = settled_dumps(c)
    asub = tok["a-submitter"]
    r = c.call("job.submit", {"target": "t-auth", "tenant": "team-b", "sources": [src_a]}, token=asub)
    t.check("team-a's submitter may not submit into team-b: permission_denied naming the tenant",
            code(r) == "permission_denied" and "team-a" in r.message, repr(r))
    for op in ("job.cancel", "job.retry"):
        r = c.call(op, {"id": jb}, token=asub, via=fol[0])
        t.check("team-a's submitter: %s of team-b's job: not_found" % op,
                code(r) == "not_found" and r.message == "job %d does not exist" % jb, repr(r))
    t.check("tenants: nothing changed", settled_dumps(c) == before)
    r = c.call("job.retry", {"id": ja}, token=asub)
    t.check("team-a's submitter retries... its own (succeeded) job: conflict, not a refusal",
            code(r) == "conflict", repr(r))

    # ---- 4. revocation on open connections, on every node ----------------
    victim = tok["viewer"]
    conns = {n: Conn(n) for n in cl.NODES}
    try:
        first = {n: conns[n].call("job.list", {"stale": True}, victim) for n in cl.NODES}
        t.check("before revocation: the viewer token serves on every node's connection",
                all(e is None for e, _ in first.values()), str(first))
        vid = [x["id"] for x in listed if x["name"] == "v"][0]
        r = c.ctl("token", "revoke", vid, nodes=[fol[1]])
        t.check("token revoke through a follower", r.rc == 0, repr(r))
        applied = c.applied(lead).get(lead)

        def refused_everywhere():
            res = {n: conns[n].call("job.list", {"stale": True}, victim) for n in cl.NODES}
            return res if all(e is not None and e[0] == "unauthenticated" and "revoked" in e[1]
                              for e, _ in res.values()) else None
        res = cl.wait_for("the revoked token refused on every open connection", refused_everywhere, 5)
        t.check("after revocation: refused on the same connections (unauthenticated, revoked), "
                "each node once it applied index %s" % applied, res is not None, str(res))
        e, _ = conns[lead].call("job.list", {"stale": True}, admin)
        t.check("the same connection still serves another token", e is None, str(e))
        # A token that expires, used again and again on one connection (a
        # node keeps what it found of a connection's token): refused once
        # its time is up, on the same connection.
        r = c.call("token.create", {"role": "viewer", "name": "short", "ttl_ms": 2500})
        t.require("token.create with ttl_ms 2500", r.ok, repr(r))
        short = r.result["token"]
        cl.wait_for("the short token known on the leader",
                    lambda: conns[lead].call("job.list", {"stale": True}, short)[0] is None, 5)
        again = [conns[lead].call("job.list", {"stale": True}, short)[0] for _ in range(3)]
        t.check("the short-lived token serves request after request on one connection",
                again == [None, None, None], str(again))
        time.sleep(max(0.0, r.result["expires_at"] / 1000.0 - time.time()) + 0.3)
        e, _ = conns[lead].call("job.list", {"stale": True}, short)
        t.check("after its expiry: refused on the same connection (unauthenticated, expired)",
                e is not None and e[0] == "unauthenticated" and "expired" in e[1], str(e))
    finally:
        for s in conns.values():
            s.close()

    # ---- 5. JWTs -------------------------------------------------------------
    r = c.call("job.list", {}, token=jwts["jwt-viewer"], via=fol[0])
    t.check("a valid JWT (role through role_map) reads", r.ok, repr(r))
    r = c.call("job.submit", {"target": "t-auth", "sources": [src_a]}, token=jwts["jwt-submitter"], via=fol[1])
    t.check("a team-a submitter JWT submits", r.ok, repr(r))
    jwt_job = r.result["id"] if r.ok else None
    now = int(time.time())
    bad_jwts = [
        ("expired", jwt_sign(key, claims("alice", ["ingot-viewers"], exp_in=-60)), "expired"),
        ("not yet valid", jwt_sign(key, claims("alice", ["ingot-viewers"], nbf=now + 600)), "not valid before"),
        ("forged (another key)", jwt_sign(other, claims("mallory", ["ingot-admins"])), "signature"),
        ("alg none", jwt_sign(None, claims("mallory", ["ingot-admins"]), alg="none"), "JWT"),
        ("HS256 with the public key as secret",
         jwt_sign(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                serialization.PublicFormat.SubjectPublicKeyInfo),
                  claims("mallory", ["ingot-admins"]), alg="HS256"), "HS256"),
        ("unknown kid", jwt_sign(key, claims("alice", ["ingot-viewers"]), kid="k9"), "k9"),
        ("wrong issuer", jwt_sign(key, claims("alice", ["ingot-viewers"], iss="https://evil/")), "issuer"),
        ("wrong audience", jwt_sign(key, claims("alice", ["ingot-viewers"], aud="other")), "audience"),
        ("no role", jwt_sign(key, claims("alice", ["nothing"])), "role"),
        ("tampered payload", jwts["jwt-viewer"].split(".")[0] + "." +
         b64u(json.dumps(claims("alice", ["ingot-admins"])).encode()) + "." +
         jwts["jwt-viewer"].split(".")[2], "signature"),
    ]
    before = settled_dumps(c)
    for what, jwt, needle in bad_jwts:
        r = c.call("token.create", {"role": "admin"}, token=jwt, via=fol[0])
        t.check("JWT %s: unauthenticated, saying so" % what,
                code(r) == "unauthenticated" and needle in r.message, repr(r))
    r = c.call("token.create", {"role": "admin"}, token=jwts["jwt-viewer"])
    t.check("a viewer JWT may not create tokens: permission_denied", code(r) == "permission_denied", repr(r))
    t.check("JWT refusals: nothing changed", settled_dumps(c) == before)

    # ---- 6. a flood from one token hits its rate limit; others go on --------
    flood = {"ok": 0, "limited": 0, "retry_ok": True, "other": []}
    bsub = tok["b-submitter"]

    def flooder():
        conn = Conn(fol[0])
        try:
            for _ in range(150):
                e, _ = conn.call("job.list", {"stale": True, "limit": 1}, asub)
                if e is None:
                    flood["ok"] += 1
                elif e[0] == "rate_limited":
                    flood["limited"] += 1
                    flood["retry_ok"] = flood["retry_ok"] and "retry_after_ms=" in e[1]
                else:
                    flood["other"].append(e)
        finally:
            conn.close()
    th = threading.Thread(target=flooder)
    th.start()
    submitted = []
    for i in range(5):
        r = c.call("job.submit", {"target": "t-auth", "sources": [src_b]}, token=bsub, via=fol[0])
        submitted.append(code(r))
        time.sleep(0.1)
    th.join(60)
    t.check("the flood (150 requests at once, limit 20/s burst 60) hits rate_limited with retry_after_ms",
            flood["limited"] >= 40 and flood["ok"] >= 40 and flood["retry_ok"] and not flood["other"], str(flood))
    t.check("meanwhile team-b's submitter submits through the same node (5 of 5)",
            submitted == ["ok"] * 5, str(submitted))
    # Without a valid credential: the source address's bucket.
    conn = Conn(lead)
    codes = []
    try:
        for _ in range(300):
            e, _ = conn.call("job.list", {"stale": True}, "ingot_1_" + "0" * 64)
            codes.append(e[0] if e else "ok")
    finally:
        conn.close()
    t.check("300 requests with a wrong token from one address: unauthenticated, then rate_limited",
            codes[0] == "unauthenticated" and codes.count("rate_limited") >= 50 and "ok" not in codes,
            "%d unauthenticated, %d rate_limited" % (codes.count("unauthenticated"), codes.count("rate_limited")))
    log = c.log(fol[0])
    t.check("the refusals are logged (rate-limited lines)",
            "request refused error=rate_limited" in log and "principal=token:" in log)

    # ---- 7. the audit trail --------------------------------------------------
    # A settings change (issue 12 item 10): an operator's is refused and
    # changes nothing; an admin's is a setting_changed event naming it.
    before = settled_dumps(c)
    r = c.ctl("settings", "set", "job-retention", "3d", token=tok["operator"], json_out=False, nodes=[fol[0]])
    t.check("settings set by an operator: permission_denied (exit 1)",
            r.rc == 1 and "permission_denied" in r.err and "settings.set" in r.err, repr(r))
    t.check("the refused settings set changed nothing", settled_dumps(c) == before)
    r = c.ctl("settings", "set", "job-retention", "7d", json_out=False, nodes=[fol[1]])
    t.check("settings set job-retention 7d by the admin, through a follower", r.rc == 0, repr(r))
    r = c.ctl("audit")
    t.require("ingotctl audit as admin", r.rc == 0, repr(r))
    evs = r.json()["events"]
    kinds = [(e["principal"], e["kind"], e["job"]) for e in evs]
    aid = [x["id"] for x in listed if x["tenant"] == "team-a" and x["role"] == "submitter"][0]
    t.check("audit: team-a's submit by its token", ("token:%d" % aid, "submitted", ja) in kinds, str(kinds[:20]))
    t.check("audit: the JWT's submit by jwt:bob", ("jwt:bob", "submitted", jwt_job) in kinds, str(kinds[-10:]))
    t.check("audit: tokens created and revoked by token:1",
            ("token:1", "token_created", None) in kinds and ("token:1", "token_revoked", None) in kinds)
    t.check("audit: the target put by token:1", ("token:1", "target_put", None) in kinds)
    sets = [(e["principal"], e["message"], e["node"]) for e in evs if e["kind"] == "setting_changed"]
    t.check("audit: the admin's settings set, once, by token:1 (the operator's refused one is not there)",
            sets == [("token:1", "setting job_retention_ms set to 604800000 ms", None)], str(sets))
    ce = c.call("cluster.events", {"limit": 1000}, via=fol[0]).result or {"events": []}
    t.check("cluster.events: setting_changed with its principal",
            [(e["principal"], e["member"]) for e in ce["events"] if e["kind"] == "setting_changed"] ==
            [("token:1", None)], str(ce["events"][-3:]))
    t.check("audit: oldest first", [e["time_ms"] for e in evs] == sorted(e["time_ms"] for e in evs))
    r = c.ctl("audit", "--principal", "jwt:bob")
    t.check("audit --principal jwt:bob: only its events",
            r.rc == 0 and r.json()["events"] and all(e["principal"] == "jwt:bob" for e in r.json()["events"]), repr(r))
    r = c.ctl("audit", "--since", "1s")
    t.check("audit --since 1s: none older", r.rc == 0 and all(
        e["time_ms"] >= (time.time() - 3) * 1000 for e in r.json()["events"]), repr(r))
    r = c.ctl("audit", token=tok["operator"])
    t.check("audit as an operator: permission_denied (exit 1)", r.rc == 1 and "permission_denied" in r.err, repr(r))
    ev = c.call("job.events", {"id": ja}).result
    t.check("the job's own events name the principal of its submit",
            ev[0]["kind"] == "submitted" and ev[0]["principal"] == "token:%d" % aid and
            ev[1]["principal"] is None, str(ev[:2]))
    if tls:
        tls_checks(t, c, lead, fol, admin, tok, ops_ctx, team_ctx, jb, src_a)
    t.check("every node holds the same tables", cl.dumps_identical(c.dumps()) or
            cl.wait_for("converged", lambda: cl.dumps_identical(c.dumps()), 10))
    return c


def tls_checks(t, c, lead, fol, admin, tok, ops_ctx, team_ctx, jb, src_a):
    """8. Certificates as principals, and on_behalf."""
    ca = c.path("pki", "ca.crt")

    def node_ctx(n):
        return cl.client_tls_context(ca, c.path("pki", "node-%d.crt" % n), c.path("pki", "node-%d.key" % n))

    r = c.call("job.list", {}, token=None)
    t.check("the operator certificate alone (not in auth.certificates): unauthenticated, saying it grants "
            "no role", code(r) == "unauthenticated" and "grants no role" in r.message, repr(r))
    tgt = dict(TARGET, name="t-cert")
    r = cl.call(cl.api_ep(fol[0]), "target.put", tgt, token=None, tls=ops_ctx)
    t.check("cert:ops (operator by auth.certificates) puts a target through a follower", r.ok, repr(r))
    r = cl.call(cl.api_ep(fol[1]), "job.submit", {"target": "t-cert", "sources": [src_a]}, token=None,
                tls=team_ctx)
    t.check("cert:teamcert (team-a's submitter) submits through a follower", r.ok, repr(r))
    jt = r.result["id"] if r.ok else 0
    r = cl.call(cl.api_ep(fol[1]), "job.get", {"id": jt}, token=None, tls=team_ctx)
    t.check("its job is team-a's", r.ok and r.result["tenant"] == "team-a", repr(r))
    r = cl.call(cl.api_ep(fol[0]), "job.get", {"id": jb}, token=None, tls=team_ctx)
    t.check("cert:teamcert: team-b's job does not exist", code(r) == "not_found", repr(r))
    r = cl.call(cl.api_ep(lead), "token.create", {"role": "admin"}, token=None, tls=ops_ctx)
    t.check("cert:ops may not create tokens (permission_denied)", code(r) == "permission_denied", repr(r))
    r = c.ctl("audit", "--principal", "cert:ops")
    t.check("audit: the target put by cert:ops, forwarded on its behalf",
            r.rc == 0 and ("cert:ops", "target_put") in [(e["principal"], e["kind"]) for e in r.json()["events"]],
            repr(r))
    ev = c.call("job.events", {"id": jt}).result or []
    t.check("the submit names cert:teamcert", ev and ev[0]["principal"] == "cert:teamcert", str(ev[:1]))

    # on_behalf: only from a node, never with a token, resolved by the receiver.
    conn = Conn(lead, tls=ops_ctx)
    try:
        e, _ = conn.call("job.list", {}, None, on_behalf="cert:ops")
        t.check("on_behalf from a client certificate: unauthenticated",
                e is not None and e[0] == "unauthenticated" and "member node" in e[1], str(e))
    finally:
        conn.close()
    conn = Conn(lead, tls=node_ctx(fol[0]))
    try:
        e, _ = conn.call("job.list", {}, admin, on_behalf="cert:ops")
        t.check("on_behalf with a token: unauthenticated (not both)",
                e is not None and e[0] == "unauthenticated" and "not both" in e[1], str(e))
        e, res = conn.call("job.list", {}, None, on_behalf="cert:teamcert")
        t.check("on_behalf cert:teamcert from a node: served as team-a's submitter (its jobs only)",
                e is None and res["jobs"] and all(j["tenant"] == "team-a" for j in res["jobs"]), str(e))
        e, _ = conn.call("job.list", {}, None, on_behalf="cert:stranger")
        t.check("on_behalf of a certificate auth.certificates does not name: unauthenticated",
                e is not None and e[0] == "unauthenticated" and "grants no role" in e[1], str(e))
        e, _ = conn.call("job.list", {}, None, on_behalf="token:1")
        t.check("on_behalf of a token principal (tokens travel as tokens): unauthenticated",
                e is not None and e[0] == "unauthenticated" and "node:<id>" in e[1], str(e))
    finally:
        conn.close()

    # A node speaks for itself only: a report about another node's attempt.
    c.call("target.put", {"name": "t-sleep", "stages": [{"name": "s", "argv": ["sleep", "30"]}]})
    r = c.call("job.submit", {"target": "t-sleep", "sources": [src_a]})
    t.require("a long job", r.ok, repr(r))
    js = r.result["id"]
    job = cl.wait_for("the long job runs", lambda: (lambda j: j if j["state"] == "running" else None)(
        c.call("job.get", {"id": js}).result), 30)
    other = [n for n in cl.NODES if n != job["node"]][0]
    before = settled_dumps(c)
    r = cl.call(cl.api_ep(lead), "worker.report",
                {"kind": "finish", "job": js, "attempt": job["attempt"], "outcome": "failed"},
                token=None, tls=node_ctx(other))
    t.check("node %d's certificate reporting on node %d's attempt: permission_denied" % (other, job["node"]),
            code(r) == "permission_denied" and "assigned to node %d" % job["node"] in r.message, repr(r))
    r = cl.call(cl.api_ep(fol[0]), "node.heartbeat", {"id": job["node"]}, token=None, tls=node_ctx(other))
    t.check("node %d's certificate: a heartbeat for node %d refused" % (other, job["node"]),
            code(r) == "permission_denied" and "only about itself" in r.message, repr(r))
    t.check("the refused node calls changed nothing", settled_dumps(c) == before)
    r = c.call("job.cancel", {"id": js})
    t.check("the long job cancelled", r.ok, repr(r))


if __name__ == "__main__":
    cl.run_tests(main)
