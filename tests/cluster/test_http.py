#!/usr/bin/env python3
"""The HTTP API on a real 3-node cluster (docs/api.md "HTTP API", docs/openapi.json).

Every node serves HTTP on http_address (760N).  The test checks:
  - the contract: /v1/openapi.json is docs/openapi.json; every documented
    path and method answers, with a documented status code and a body of
    the documented schema (a small JSON-schema checker below: type, enum,
    required, properties, additionalProperties false, items, pattern, $ref),
    both for a good request and for an error (unknown id, bad parameter);
  - completeness: every operation of the msgpack API (the op tables of
    docs/api.md) has an HTTP counterpart, a REST route (x-ingot-op) or
    POST /v1/ops/{op}, and /v1/ops knows every one of them;
  - semantics: writes through followers (forwarded), Idempotency-Key
    retries through another node return the first result, errors carry
    the stable names with the mapped status, a watch streams JSON lines and
    server-sent events, a stage log and an artifact come back as bytes;
  - /metrics on every node: every family of docs/operations.md, all
    accepted by `promtool check metrics` (skipped with a message without
    promtool), and the counters moving with the traffic;
  - /healthz and /readyz: 200 on a healthy cluster; with two nodes
    stopped, the survivor is healthy (200) but not ready (503, naming the
    leader check);
  - the log level set at run time through PUT /v1/log-level.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clusterlib as cl  # noqa: E402

OPENAPI = os.path.join(cl.SOURCE_DIR, "docs", "openapi.json")
API_MD = os.path.join(cl.SOURCE_DIR, "docs", "api.md")

FAMILIES = [
    "ingot_raft_term", "ingot_raft_commit_index", "ingot_raft_applied_index", "ingot_raft_is_leader",
    "ingot_raft_leader_changes_total", "ingot_raft_append_duration_seconds",
    "ingot_raft_snapshots_total", "ingot_raft_snapshot_duration_seconds",
    "ingot_api_requests_total", "ingot_api_request_duration_seconds", "ingot_api_connections",
    "ingot_api_received_bytes_total", "ingot_api_sent_bytes_total", "ingot_api_refused_total",
    "ingot_api_auth_refusals_total",
    "ingot_jobs", "ingot_jobs_submitted_total", "ingot_jobs_finished_total",
    "ingot_job_queue_duration_seconds", "ingot_job_stage_duration_seconds",
    "ingot_scheduler_assignments_total", "ingot_scheduler_placement_duration_seconds",
    "ingot_scheduler_unplaceable_jobs", "ingot_worker_slots", "ingot_worker_slots_busy",
    "ingot_worker_attempts_waiting",
    "ingot_worker_attempts_lost_total", "ingot_storage_map_used_bytes",
    "ingot_storage_map_size_bytes", "ingot_storage_commits_total",
    "ingot_storage_commit_duration_seconds", "ingot_members", "ingot_members_alive",
    "ingot_http_connections", "ingot_tls_not_after_seconds",
]


class Resp:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return "HTTP %d %r" % (self.status, self.body[:300])


def req(node, method, path, body=None, headers=None, timeout=15, token=cl.DEFAULT):
    """token: cl.call's (the admin token by default, as "Authorization:
    Bearer"; None sends none)."""
    conn = cl.http_connection(node, timeout=timeout)
    try:
        data = None
        h = dict(headers or {})
        if token is cl.DEFAULT:
            token = cl.default_token()
        if token is not None:
            h.setdefault("Authorization", "Bearer " + token)
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        conn.request(method, path, body=data, headers=h)
        r = conn.getresponse()
        return Resp(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
    finally:
        conn.close()


# ---- a small JSON-schema checker (the subset docs/openapi.json uses) --------
class Schema:
    def __init__(self, doc):
        self.doc = doc

    def resolve(self, s):
        while "$ref" in s:
            ref = s["$ref"]
            node = self.doc
            for part in ref[2:].split("/"):
                node = node[part]
            s = node
        return s

    def check(self, s, v, where="$"):
        """Returns a list of problems (empty: v matches s)."""
        s = self.resolve(s)
        problems = []
        types = s.get("type")
        if types is not None:
            types = types if isinstance(types, list) else [types]
            if not any(self.is_type(t, v) for t in types):
                return ["%s: %r is not %s" % (where, v if not isinstance(v, (dict, list)) else type(v).__name__, types)]
        if "enum" in s and v not in s["enum"]:
            problems.append("%s: %r not in %s" % (where, v, s["enum"]))
        if isinstance(v, str) and "pattern" in s and v is not None and not re.search(s["pattern"], v):
            problems.append("%s: %r does not match %s" % (where, v, s["pattern"]))
        if isinstance(v, int) and not isinstance(v, bool):
            if "minimum" in s and v < s["minimum"]:
                problems.append("%s: %d < %d" % (where, v, s["minimum"]))
            if "maximum" in s and v > s["maximum"]:
                problems.append("%s: %d > %d" % (where, v, s["maximum"]))
        if isinstance(v, dict):
            props = s.get("properties", {})
            for k in s.get("required", []):
                if k not in v:
                    problems.append("%s: required key %r missing" % (where, k))
            for k, x in v.items():
                if k in props:
                    problems += self.check(props[k], x, "%s.%s" % (where, k))
                elif s.get("additionalProperties") is False:
                    problems.append("%s: key %r not documented" % (where, k))
                elif isinstance(s.get("additionalProperties"), dict):
                    problems += self.check(s["additionalProperties"], x, "%s.%s" % (where, k))
        if isinstance(v, list) and "items" in s:
            for i, x in enumerate(v):
                problems += self.check(s["items"], x, "%s[%d]" % (where, i))
        return problems

    @staticmethod
    def is_type(t, v):
        return {"object": isinstance(v, dict), "array": isinstance(v, list),
                "string": isinstance(v, str), "boolean": isinstance(v, bool),
                "integer": isinstance(v, int) and not isinstance(v, bool),
                "number": isinstance(v, (int, float)) and not isinstance(v, bool),
                "null": v is None}[t]


def api_md_ops():
    """Every op name in the op tables of docs/api.md."""
    ops = []
    for line in open(API_MD):
        m = re.match(r"\| `([a-z_]+(\.[a-z_]+)?)` \| (read|write|local|leader) \|", line)
        if m:
            ops.append(m.group(1))
    return ops


def check_response(t, schema, doc, method, path, r, label):
    op = doc["paths"][path][method]
    documented = op["responses"]
    code = str(r.status)
    if not t.check("%s: status %d is documented" % (label, r.status), code in documented,
                   "documented %s; %r" % (sorted(documented), r)):
        return False
    spec = schema.resolve(documented[code])
    content = spec.get("content", {})
    ctype = r.headers.get("content-type", "").split(";")[0].strip()
    if "application/json" in content and ctype == "application/json":
        try:
            body = r.json()
        except ValueError as e:
            return t.check("%s: JSON body" % label, False, "%s: %r" % (e, r.body[:200]))
        problems = schema.check(content["application/json"]["schema"], body)
        return t.check("%s: body matches the documented schema" % label, not problems,
                       "; ".join(problems[:5]))
    return t.check("%s: content type %s is documented" % (label, ctype), ctype in content,
                   "documented %s" % sorted(content))


def promtool_ok(text):
    if shutil.which("promtool") is None:
        return None
    p = subprocess.run(["promtool", "check", "metrics"], input=text.encode(), capture_output=True,
                       timeout=30)
    return p.returncode == 0, (p.stdout + p.stderr).decode()[-500:]


def metric_value(text, name, labels=""):
    for line in text.splitlines():
        if line.startswith(name + labels + " ") or (not labels and line.startswith(name + " ")):
            return float(line.rsplit(" ", 1)[1])
    return None


def main(t):
    c = t.cluster(overrides={"slots": "1"})
    lead = c.wait_leader()
    followers = [n for n in cl.NODES if n != lead]
    f1 = followers[0]
    doc = json.load(open(OPENAPI))
    schema = Schema(doc)
    # A node that registers and never heartbeats: declared down once the
    # leader's grace period ends (node_down_after_ms), then forgotten below.
    # Registration is a member node's call (its certificate; never over
    # HTTP): node 9's, over the msgpack protocol.
    if c.tls:
        c.pki("issue", "node", "--id", 9, "--address", cl.HOST, "--days", "20")
    r = c.call("node.register", {"id": 9, "slots": 0}, via=f1, as_node=9)
    t.require("node 9 registered (never to heartbeat)", r.ok, repr(r))

    # ---- the document served is the one in docs/ ------------------------
    r = req(f1, "GET", "/v1/openapi.json")
    t.check("GET /v1/openapi.json is docs/openapi.json", r.status == 200 and r.json() == doc, repr(r)[:100])

    # ---- completeness: every msgpack op has an HTTP counterpart ----------
    ops = api_md_ops()
    rest = {o.get("x-ingot-op") for p in doc["paths"].values() for o in p.values()}
    generic = set(doc["paths"]["/v1/ops/{op}"]["post"]["x-ingot-ops"])
    missing = [o for o in ops if o not in rest and o not in generic]
    t.check("every op of docs/api.md (%d) has an HTTP counterpart" % len(ops), ops and not missing,
            "missing %s" % missing)
    # An argument no operation takes: each refuses it by name (and does
    # nothing), where an unknown operation would say so.
    unknown = []
    node_only = ("node.register", "node.heartbeat", "worker.report")
    for o in sorted(generic):
        if o in ("job.watch", "cluster.snapshot"):
            continue
        r = req(f1, "POST", "/v1/ops/" + o, {"no_such_argument": 1})
        text = r.body.decode()
        if o in node_only:
            # Only member nodes may call these, never through HTTP: the
            # admin's token is refused, naming the operation.
            if r.status != 403 or "member nodes only" not in text or o not in text:
                unknown.append("%s: %r" % (o, r))
        elif r.status != 400 or "unknown operation" in text or "no_such_argument" not in text:
            unknown.append("%s: %r" % (o, r))
    t.check("POST /v1/ops/{op} knows every listed op (each refuses an unknown argument)",
            not unknown, "; ".join(unknown[:3]))

    # ---- fixtures: a target and jobs -------------------------------------
    target = {"description": "http test", "stages": [
        {"name": "build", "argv": ["sh", "-c", "echo built-by-stage; cat in.txt >/dev/null || true"]}]}
    r = req(f1, "PUT", "/v1/targets/t-http", target)
    t.require("PUT /v1/targets/t-http through follower %d" % f1, r.status == 200, repr(r))
    src = [{"path": "in.txt", "data": "aGVsbG8K"}]
    r = req(f1, "POST", "/v1/jobs", {"target": "t-http", "sources": src},
            headers={"Idempotency-Key": "http-test-1"})
    t.require("POST /v1/jobs through a follower: 201", r.status == 201, repr(r))
    jid = r.json()["id"]
    t.check("Location names the job", r.headers.get("location") == "/v1/jobs/%d" % jid, str(r.headers))
    r2 = req(followers[1] if len(followers) > 1 else lead, "POST", "/v1/jobs",
             {"target": "t-http", "sources": src}, headers={"Idempotency-Key": "http-test-1"})
    t.check("the same Idempotency-Key through another node returns the first job",
            r2.status == 201 and r2.json()["id"] == jid, repr(r2))

    # watch it to the end: JSON lines
    r = req(lead, "GET", "/v1/jobs/%d/watch" % jid, timeout=60)
    lines = [json.loads(x) for x in r.body.decode().splitlines() if x.strip()]
    kinds = [x["event"]["kind"] for x in lines if "event" in x]
    t.check("watch (JSON lines): events then the final job",
            r.status == 200 and r.headers.get("content-type") == "application/x-ndjson" and
            kinds[:1] == ["submitted"] and lines and "job" in lines[-1] and
            lines[-1]["job"]["state"] == "succeeded", "%r %s" % (r.status, lines[-2:]))
    t.check("watch events match the Event schema",
            all(not schema.check({"$ref": "#/components/schemas/Event"}, x["event"]) for x in lines if "event" in x))
    r = req(f1, "GET", "/v1/jobs/%d/watch?format=sse" % jid, timeout=60)
    body = r.body.decode()
    t.check("watch (server-sent events): event/data pairs ending with the job",
            r.status == 200 and r.headers.get("content-type") == "text/event-stream" and
            body.startswith("event: event\ndata: {") and "event: job\ndata: {" in body, body[:200])
    job = req(f1, "GET", "/v1/jobs/%d" % jid).json()
    # A job no node can run (a capability nobody has) stays queued: it is
    # cancelled, then retried, through the documented routes.
    r = req(f1, "PUT", "/v1/targets/t-never", dict(target, capabilities=["no-such-capability"]))
    t.require("PUT /v1/targets/t-never", r.status == 200, repr(r))
    r = req(f1, "POST", "/v1/jobs", {"target": "t-never", "sources": src})
    t.require("POST /v1/jobs (t-never)", r.status == 201, repr(r))
    jid2 = r.json()["id"]
    log_sha = job["stages"][0]["log_sha256"] if job.get("stages") else None

    cl.wait_for("node 9 declared down",
                lambda: any(x["id"] == 9 and x["down"] for x in req(lead, "GET", "/v1/nodes").json()),
                30, interval=0.3)

    # ---- the contract: every documented path and method ------------------
    # ---- credentials ------------------------------------------------------
    r = req(f1, "GET", "/v1/jobs", token=None)
    t.check("no Authorization: 401 unauthenticated, saying a credential is needed",
            r.status == 401 and r.json()["error"]["code"] == "unauthenticated" and
            "credential" in r.json()["error"]["message"], repr(r))
    check_response(t, schema, doc, "get", "/v1/jobs", r, "GET /v1/jobs (no credential)")
    r = req(f1, "GET", "/v1/jobs", token="ingot_1_" + "0" * 64)
    t.check("a wrong token: 401 unauthenticated", r.status == 401, repr(r))
    r = req(f1, "POST", "/v1/tokens", {"role": "viewer", "name": "http-viewer"})
    t.require("POST /v1/tokens: a viewer token", r.status == 200 and r.json()["token"].startswith("ingot_"),
              repr(r))
    viewer = r.json()
    check_response(t, schema, doc, "post", "/v1/tokens", r, "POST /v1/tokens")
    r = req(f1, "GET", "/v1/targets", token=viewer["token"])
    t.check("the viewer token reads", r.status == 200, repr(r))
    r = req(f1, "PUT", "/v1/targets/t-viewer", target, token=viewer["token"])
    t.check("the viewer token may not put a target: 403 permission_denied",
            r.status == 403 and r.json()["error"]["code"] == "permission_denied", repr(r))
    check_response(t, schema, doc, "put", "/v1/targets/{name}", r, "PUT /v1/targets/{name} (viewer)")
    r = req(f1, "GET", "/metrics", token=None)
    t.check("/metrics needs no credential", r.status == 200, repr(r)[:100])

    good = {  # a path that must succeed, per documented path and method
        ("/v1/status", "get"): ("/v1/status", None),
        ("/v1/node", "get"): ("/v1/node", None),
        ("/v1/members", "get"): ("/v1/members", None),
        ("/v1/cluster/events", "get"): ("/v1/cluster/events?limit=5", None),
        ("/v1/log-level", "get"): ("/v1/log-level", None),
        ("/v1/log-level", "put"): ("/v1/log-level", {"level": "info"}),
        ("/v1/targets", "get"): ("/v1/targets", None),
        ("/v1/targets/{name}", "get"): ("/v1/targets/t-http", None),
        ("/v1/targets/{name}", "put"): ("/v1/targets/t-http2", target),
        ("/v1/targets/{name}", "delete"): ("/v1/targets/t-http2", None),
        ("/v1/jobs", "post"): ("/v1/jobs", {"target": "t-http", "sources": src, "priority": 10}),
        ("/v1/jobs", "get"): ("/v1/jobs?limit=2&stale=true", None),
        ("/v1/jobs/{id}", "get"): ("/v1/jobs/%d" % jid, None),
        ("/v1/jobs/{id}/events", "get"): ("/v1/jobs/%d/events" % jid, None),
        ("/v1/jobs/{id}/watch", "get"): ("/v1/jobs/%d/watch" % jid, None),
        ("/v1/jobs/{id}/retry", "post"): ("/v1/jobs/%d/retry" % jid2, None),
        ("/v1/jobs/{id}/cancel", "post"): ("/v1/jobs/%d/cancel" % jid2, {"reason": "test"}),
        ("/v1/jobs/{id}/stages/{stage}/log", "get"): ("/v1/jobs/%d/stages/0/log" % jid, None),
        ("/v1/artifacts/{sha256}", "get"): ("/v1/artifacts/%s" % log_sha, None),
        ("/v1/nodes", "get"): ("/v1/nodes", None),
        ("/v1/nodes/{id}/drain", "post"): ("/v1/nodes/%d/drain" % f1, {}),
        ("/v1/nodes/{id}/undrain", "post"): ("/v1/nodes/%d/undrain" % f1, None),
        ("/v1/nodes/{id}/forget", "post"): ("/v1/nodes/9/forget", None),
        ("/v1/snapshot", "get"): ("/v1/snapshot", None),
        ("/v1/ops/{op}", "post"): ("/v1/ops/node.info", {}),
        ("/v1/tokens", "post"): ("/v1/tokens", {"role": "submitter", "tenant": "t-x", "ttl_ms": 60000}),
        ("/v1/tokens", "get"): ("/v1/tokens", None),
        ("/v1/tokens/{id}", "delete"): ("/v1/tokens/%d" % viewer["id"], None),
        ("/v1/audit", "get"): ("/v1/audit?limit=3", None),
        ("/healthz", "get"): ("/healthz", None),
        ("/readyz", "get"): ("/readyz", None),
        ("/metrics", "get"): ("/metrics", None),
        ("/v1/openapi.json", "get"): ("/v1/openapi.json", None),
    }
    bad = {  # a request that must fail with a documented error
        ("/v1/targets/{name}", "get"): ("/v1/targets/no-such-target", None, 404, "not_found"),
        ("/v1/targets/{name}", "put"): ("/v1/targets/tx", {"stages": "nope"}, 400, "invalid"),
        ("/v1/targets/{name}", "delete"): ("/v1/targets/no-such-target", None, 404, "not_found"),
        ("/v1/jobs", "post"): ("/v1/jobs", {"target": "t-http", "sources": [{"path": "a", "data": "!!"}]}, 400, "invalid"),
        ("/v1/jobs", "get"): ("/v1/jobs?limit=abc", None, 400, "invalid"),
        ("/v1/jobs/{id}", "get"): ("/v1/jobs/999999", None, 404, "not_found"),
        ("/v1/jobs/{id}/events", "get"): ("/v1/jobs/999999/events", None, 404, "not_found"),
        ("/v1/jobs/{id}/cancel", "post"): ("/v1/jobs/999999/cancel", {}, 404, "not_found"),
        ("/v1/jobs/{id}/retry", "post"): ("/v1/jobs/999999/retry", None, 404, "not_found"),
        ("/v1/jobs/{id}/stages/{stage}/log", "get"): ("/v1/jobs/%d/stages/9/log" % jid, None, 404, "not_found"),
        ("/v1/artifacts/{sha256}", "get"): ("/v1/artifacts/" + "0" * 64, None, 404, "not_found"),
        ("/v1/nodes/{id}/drain", "post"): ("/v1/nodes/99/drain", {}, 404, "not_found"),
        ("/v1/nodes/{id}/forget", "post"): ("/v1/nodes/%d/forget" % f1, None, 409, "conflict"),
        ("/v1/cluster/events", "get"): ("/v1/cluster/events?limit=0", None, 400, "invalid"),
        ("/v1/log-level", "put"): ("/v1/log-level", {"level": "loud"}, 400, "invalid"),
        ("/v1/ops/{op}", "post"): ("/v1/ops/no.such", {}, 400, "invalid"),
        ("/v1/tokens", "post"): ("/v1/tokens", {"role": "root"}, 400, "invalid"),
        ("/v1/tokens/{id}", "delete"): ("/v1/tokens/999999", None, 404, "not_found"),
        ("/v1/audit", "get"): ("/v1/audit?after=nonsense", None, 400, "invalid"),
        ("/v1/jobs/{id}/watch", "get"): ("/v1/jobs/abc/watch", None, 400, "invalid"),
    }
    for path, methods in sorted(doc["paths"].items()):
        order = ["put", "post", "get", "delete"]
        for method in sorted(methods, key=order.index):
            key = (path, method)
            if not t.check("a request for %s %s is in the test" % (method.upper(), path), key in good):
                continue
            url, body = good[key]
            r = req(f1, method.upper(), url, body, timeout=60)
            ok = r.status < 300
            t.check("%s %s answers %d" % (method.upper(), url, r.status), ok, repr(r))
            check_response(t, schema, doc, method, path, r, "%s %s" % (method.upper(), path))
            if key in bad:
                burl, bbody, bstatus, bcode = bad[key]
                r = req(f1, method.upper(), burl, bbody)
                good_err = r.status == bstatus and r.headers.get("content-type") == "application/json" \
                    and r.json().get("error", {}).get("code") == bcode
                t.check("%s %s: %d %s" % (method.upper(), burl, bstatus, bcode), good_err, repr(r))
                check_response(t, schema, doc, method, path, r, "%s %s (error)" % (method.upper(), path))

    r = req(f1, "GET", "/v1/jobs/%d/stages/0/log" % jid)
    t.check("stage log as text", r.status == 200 and b"built-by-stage" in r.body, repr(r))
    r = req(f1, "GET", "/v1/artifacts/%s?job=%d" % (job["sources"][0]["sha256"], jid))
    t.check("artifact bytes (the source, kept with its job)", r.status == 200 and r.body == b"hello\n",
            repr(r))
    r = req(f1, "GET", "/v1/artifacts/%s" % job["sources"][0]["sha256"])
    t.check("a small source is not an artifact of its own: 404 without its job",
            r.status == 404 and r.json()["error"]["code"] == "not_found", repr(r))
    r = req(f1, "GET", "/nowhere")
    t.check("unknown path: 404 not_found", r.status == 404 and r.json()["error"]["code"] == "not_found", repr(r))
    r = req(f1, "DELETE", "/v1/jobs")
    t.check("wrong method: 405 with Allow", r.status == 405 and "POST" in r.headers.get("allow", ""), repr(r))
    r = req(f1, "POST", "/v1/jobs", b"{not json", headers={"Content-Type": "application/json"})
    t.check("bad JSON: 400 malformed", r.status == 400 and r.json()["error"]["code"] == "malformed", repr(r))
    r = req(f1, "PUT", "/v1/targets/t-a", dict(target, name="t-b"))
    t.check("a name in the body that differs from the path: 400", r.status == 400, repr(r))

    # ---- log level at run time --------------------------------------------
    r = req(f1, "PUT", "/v1/log-level", {"level": "debug"})
    t.check("PUT /v1/log-level debug", r.status == 200 and r.json() == {"level": "debug"}, repr(r))
    t.check("the node logs at debug now",
            cl.wait_for("debug lines", lambda: " DEBUG " in c.log(f1), 10) is not None)
    req(f1, "PUT", "/v1/log-level", {"level": "info"})

    # ---- metrics on every node --------------------------------------------
    for n in cl.NODES:
        r = req(n, "GET", "/metrics")
        text = r.body.decode()
        t.check("node %d: /metrics is Prometheus text" % n, r.status == 200 and
                r.headers.get("content-type", "").startswith("text/plain; version=0.0.4"), repr(r)[:100])
        absent = [f for f in FAMILIES if "# TYPE %s " % f not in text]
        t.check("node %d: every metric family present" % n, not absent, "absent: %s" % absent)
        res = promtool_ok(text)
        if res is None:
            t.log("promtool not installed (Debian package prometheus): promtool check skipped")
        else:
            t.check("node %d: promtool check metrics accepts the text" % n, res[0], res[1])
        cert_end = metric_value(text, "ingot_tls_not_after_seconds", '{cert="node"}') or 0
        ca_end = metric_value(text, "ingot_tls_not_after_seconds", '{cert="ca"}') or 0
        t.check("node %d: certificate and CA end dates in the future, the CA's last" % n,
                time.time() < cert_end <= ca_end, "node %s ca %s" % (cert_end, ca_end))
        t.check("node %d: jobs counted (succeeded >= 1)" % n,
                (metric_value(text, "ingot_jobs", '{state="succeeded"}') or 0) >= 1)
        # The assignment that starts stage 0 (queued -> running) is an
        # assignment too: its queued time is observed on every node.
        t.check("node %d: queued time of the assigned jobs observed" % n,
                (metric_value(text, "ingot_job_queue_duration_seconds_count") or 0) >= 1,
                "count %s" % metric_value(text, "ingot_job_queue_duration_seconds_count"))
    now_lead = c.wait_leader()
    if now_lead != lead:
        t.log("the leader moved from %d to %d during the test" % (lead, now_lead))
    text = req(now_lead, "GET", "/metrics").body.decode()
    # The missing credential is refused on f1; the wrong token is one f1
    # does not know, which goes to the leader (it may be newer than f1).
    refusals = [metric_value(req(n, "GET", "/metrics").body.decode(), "ingot_api_auth_refusals_total",
                             '{reason="unauthenticated"}') or 0 for n in cl.NODES]
    t.check("the refusals of the credential checks counted (%s)" % refusals,
            refusals[cl.NODES.index(f1)] >= 1 and sum(refusals) >= 2)
    t.check("leader: is_leader 1, submits counted",
            metric_value(text, "ingot_raft_is_leader") == 1 and
            (metric_value(text, "ingot_api_requests_total", '{op="job.submit",code="ok"}') or 0) >= 1,
            "is_leader %s job.submit %s" % (metric_value(text, "ingot_raft_is_leader"),
                                            metric_value(text, "ingot_api_requests_total",
                                                         '{op="job.submit",code="ok"}')))

    # ---- health and readiness ---------------------------------------------
    for n in cl.NODES:
        h, rd = req(n, "GET", "/healthz"), req(n, "GET", "/readyz")
        t.check("node %d: healthz 200, readyz 200" % n, h.status == 200 and rd.status == 200,
                "%r %r" % (h, rd))
    survivor = f1
    for n in cl.NODES:
        if n != survivor:
            c.stop(n)
    t.check("survivor %d: readyz 503 without a leader" % survivor,
            cl.wait_for("readyz 503", lambda: req(survivor, "GET", "/readyz").status == 503, 15) is not None)
    rd = req(survivor, "GET", "/readyz")
    t.check("readyz names the failed leader check", not rd.json()["checks"]["leader"]["ok"] and
            not rd.json()["ready"], repr(rd))
    check_response(t, schema, doc, "get", "/readyz", rd, "GET /readyz (not ready)")
    h = req(survivor, "GET", "/healthz")
    t.check("survivor: still healthy (200)", h.status == 200, repr(h))
    r = req(survivor, "POST", "/v1/jobs", {"target": "t-http", "sources": src}, timeout=30)
    t.check("a write without quorum: 503 unavailable with Retry-After",
            r.status == 503 and r.json()["error"]["code"] == "unavailable" and
            r.headers.get("retry-after") == "1", repr(r))


if __name__ == "__main__":
    cl.run_tests(main)
