"""A synchronous client of the ingot HTTP API (docs/api.md "HTTP API").

    from ingot import Client
    c = Client(["127.0.0.1:7601", "127.0.0.2:7601"])
    jid = c.submit("x86_64-avx2", {"fir.c": open("fir.c", "rb").read()})
    for item in c.watch(jid):
        print(item)

Any node serves any request, so the client talks to the first endpoint
that answers and moves on to the next one when a node cannot be reached or
answers `unavailable` / `not_leader` (no leader yet, or the node is
stopping), with a backoff from 50 ms doubling to 1 s, until `timeout`
seconds after the call began.  Every write carries an Idempotency-Key (one
per call, the same on every retry, or the caller's `request_id`), so a
retry after a lost answer applies the write at most once: the cluster
returns the first result.  Errors raise the exception of their stable name
(ingot.errors).

Standard library only (http.client, json, base64).  Not thread-safe: use
one Client per thread.
"""
import base64
import hashlib
import http.client
import json
import os
import ssl
import time
import urllib.parse
import uuid
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

from .errors import IngotError, Unreachable, error_for
from .types import ClusterEvent, Event, Job, JobPage, Member, Node, Snapshot, Status, Target

RETRYABLE = ("unavailable", "not_leader")
Sources = Union[Mapping[str, bytes], Sequence[Tuple[str, bytes]]]


class _Response:
    def __init__(self, status: int, headers: Dict[str, str], body: bytes):
        self.status, self.headers, self.body = status, headers, body


def tls_context(ca: str, cert: Optional[str] = None, key: Optional[str] = None) -> ssl.SSLContext:
    """A TLS 1.3 client context for a cluster with `tls:`: trusts the
    cluster CA `ca` (the server's certificate must name the address
    dialled) and shows (cert, key) when given, as the nodes ask for with
    client_certs: required (ingotctl pki issue client)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_verify_locations(ca)
    if cert:
        ctx.load_cert_chain(cert, key)
    return ctx


class Client:
    def __init__(self, endpoints: Union[str, Sequence[str]] = "127.0.0.1:7601", timeout: float = 10.0,
                 token: Optional[str] = None, watch_timeout: float = 3600.0,
                 ssl_context: Optional[ssl.SSLContext] = None):
        """endpoints: "host:port" of nodes' http_address (a list, or one
        string with commas).  timeout: seconds a call may take, retries
        included.  token: sent as "Authorization: Bearer TOKEN".
        ssl_context: HTTPS with it (a cluster with `tls:` serves only
        HTTPS), e.g. ingot.tls_context("ca.crt", "client-NAME.crt",
        "client-NAME.key"); None: plain HTTP (loopback clusters)."""
        if isinstance(endpoints, str):
            endpoints = [e for e in endpoints.split(",") if e]
        if not endpoints:
            raise ValueError("no endpoints")
        self.endpoints: List[str] = list(endpoints)
        self.timeout = timeout
        self.token = token
        self.watch_timeout = watch_timeout
        self.ssl_context = ssl_context
        self._current = 0

    # ---- transport ---------------------------------------------------------
    def _connect(self, endpoint: str, timeout: float) -> http.client.HTTPConnection:
        host, _, port = endpoint.rpartition(":")
        if self.ssl_context is not None:
            return http.client.HTTPSConnection(host, int(port), timeout=timeout,
                                               context=self.ssl_context)
        return http.client.HTTPConnection(host, int(port), timeout=timeout)

    def _headers(self, request_id: Optional[str], body: bool) -> Dict[str, str]:
        h = {"Accept": "application/json"}
        if body:
            h["Content-Type"] = "application/json"
        if request_id:
            h["Idempotency-Key"] = request_id
        if self.token:
            h["Authorization"] = "Bearer " + self.token
        return h

    def _request(self, method: str, path: str, body: Any = None, request_id: Optional[str] = None,
                 query: Optional[Mapping[str, Any]] = None) -> _Response:
        """One call with retries across the endpoints (see the module doc)."""
        if query:
            q = {k: ("true" if v is True else "false" if v is False else v)
                 for k, v in query.items() if v is not None}
            if q:
                path += "?" + urllib.parse.urlencode(q)
        data = json.dumps(body).encode() if body is not None else None
        deadline = time.monotonic() + self.timeout
        backoff = 0.05
        last = "no attempt"
        while True:
            endpoint = self.endpoints[self._current % len(self.endpoints)]
            left = deadline - time.monotonic()
            try:
                conn = self._connect(endpoint, max(left, 0.1))
                try:
                    conn.request(method, path, body=data, headers=self._headers(request_id, data is not None))
                    r = conn.getresponse()
                    resp = _Response(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
                finally:
                    conn.close()
            except (OSError, http.client.HTTPException) as e:
                last = "%s: %s" % (endpoint, e)
                self._current += 1
            else:
                if resp.status < 400:
                    return resp
                code, message = self._error_of(resp)
                if code not in RETRYABLE:
                    raise error_for(code, message, resp.status)
                last = "%s: %s: %s" % (endpoint, code, message)
                self._current += 1
            if time.monotonic() + backoff > deadline:
                raise Unreachable("no node answered within %.1f s (last: %s)" % (self.timeout, last))
            time.sleep(backoff)
            backoff = min(backoff * 2, 1.0)

    @staticmethod
    def _error_of(resp: _Response) -> Tuple[str, str]:
        try:
            e = json.loads(resp.body)["error"]
            return e["code"], e["message"]
        except (ValueError, KeyError, TypeError):
            return "internal", "HTTP %d: %r" % (resp.status, resp.body[:200])

    def _json(self, method: str, path: str, body: Any = None, write: bool = False,
              request_id: Optional[str] = None, **query: Any) -> Any:
        if write and request_id is None:
            request_id = "py-" + uuid.uuid4().hex
        r = self._request(method, path, body, request_id, query)
        return json.loads(r.body) if r.body else None

    # ---- cluster -------------------------------------------------------------
    def status(self, stale: bool = False) -> Status:
        return Status.from_dict(self._json("GET", "/v1/status", stale=stale or None))

    def members(self, stale: bool = False) -> List[Member]:
        return [Member.from_dict(m) for m in self._json("GET", "/v1/members", stale=stale or None)]

    def node_info(self) -> Dict[str, Any]:
        return self._json("GET", "/v1/node")

    def cluster_events(self, after: Optional[int] = None, limit: Optional[int] = None,
                       stale: bool = False) -> Tuple[List[ClusterEvent], Optional[int]]:
        page = self._json("GET", "/v1/cluster/events", after=after, limit=limit, stale=stale or None)
        return [ClusterEvent.from_dict(e) for e in page["events"]], page.get("next")

    def log_level(self, level: Optional[str] = None) -> str:
        """The answering node's log level; sets it first when `level` is given."""
        if level is None:
            return self._json("GET", "/v1/log-level")["level"]
        return self._json("PUT", "/v1/log-level", {"level": level})["level"]

    def call(self, op: str, args: Optional[Dict[str, Any]] = None, write: bool = False,
             request_id: Optional[str] = None) -> Any:
        """Any operation by name (POST /v1/ops/{op}); bin values as base64."""
        return self._json("POST", "/v1/ops/" + urllib.parse.quote(op), args or {}, write, request_id)

    # ---- targets ---------------------------------------------------------------
    def targets(self, stale: bool = False) -> List[Target]:
        """Every target, by name (following target.list's pages)."""
        out: List[Target] = []
        while True:
            page = self._json("GET", "/v1/targets", stale=stale or None,
                              after=out[-1].name if out else None)
            if not page:
                return out
            out.extend(Target.from_dict(t) for t in page)

    def target(self, name: str, stale: bool = False) -> Target:
        return Target.from_dict(self._json("GET", "/v1/targets/" + _seg(name), stale=stale or None))

    def put_target(self, name: str, stages: List[Dict[str, Any]], description: Optional[str] = None,
                   capabilities: Optional[List[str]] = None, labels: Optional[Dict[str, str]] = None,
                   request_id: Optional[str] = None, gpus: Optional[int] = None,
                   network: Optional[bool] = None, disk_bytes: Optional[int] = None) -> int:
        """Creates or updates a target; returns its new revision.  gpus: the
        GPUs every stage sees (a stage spec may ask more with its own "gpus").
        network: the stages get the host's network (needs the permission);
        disk_bytes: the work directory's disk space within the node's
        ceiling."""
        body: Dict[str, Any] = {"stages": stages}
        if description is not None:
            body["description"] = description
        if capabilities is not None:
            body["capabilities"] = capabilities
        if labels is not None:
            body["labels"] = labels
        if gpus is not None:
            body["gpus"] = gpus
        if network is not None:
            body["network"] = network
        if disk_bytes is not None:
            body["disk_bytes"] = disk_bytes
        return self._json("PUT", "/v1/targets/" + _seg(name), body, True, request_id)["revision"]

    def delete_target(self, name: str, request_id: Optional[str] = None) -> None:
        self._json("DELETE", "/v1/targets/" + _seg(name), None, True, request_id)

    # ---- jobs ------------------------------------------------------------------
    def submit(self, target: str, sources: Sources, priority: Optional[int] = None,
               max_attempts: Optional[int] = None, deadline_ms: Optional[int] = None,
               tenant: Optional[str] = None, params: Optional[Dict[str, str]] = None,
               request_id: Optional[str] = None) -> int:
        """Submits a job; returns its id.  sources: {path: bytes} or
        [(path, bytes)].  With the same request_id, a retry (through any
        node) returns the first job's id."""
        items = sources.items() if isinstance(sources, Mapping) else sources
        body: Dict[str, Any] = {"target": target, "sources": [
            {"path": p, "data": base64.b64encode(d).decode()} for p, d in items]}
        for k, v in (("priority", priority), ("max_attempts", max_attempts),
                     ("deadline_ms", deadline_ms), ("tenant", tenant), ("params", params)):
            if v is not None:
                body[k] = v
        return self._json("POST", "/v1/jobs", body, True, request_id)["id"]

    def job(self, id: int, stale: bool = False) -> Job:
        return Job.from_dict(self._json("GET", "/v1/jobs/%d" % id, stale=stale or None))

    def jobs(self, state: Optional[str] = None, target: Optional[str] = None, after: Optional[int] = None,
             limit: Optional[int] = None, stale: bool = False) -> JobPage:
        """One page (sources, params and stages left out: use job())."""
        return JobPage.from_dict(self._json("GET", "/v1/jobs", state=state, target=target, after=after,
                                            limit=limit, stale=stale or None))

    def iter_jobs(self, state: Optional[str] = None, target: Optional[str] = None,
                  stale: bool = False, page_size: int = 100) -> Iterator[Job]:
        """Every job, page after page."""
        after = None
        while True:
            page = self.jobs(state, target, after, page_size, stale)
            yield from page.jobs
            if page.next is None:
                return
            after = page.next

    def cancel(self, id: int, reason: Optional[str] = None, request_id: Optional[str] = None) -> str:
        body = {"reason": reason} if reason is not None else {}
        return self._json("POST", "/v1/jobs/%d/cancel" % id, body, True, request_id)["state"]

    def retry(self, id: int, request_id: Optional[str] = None) -> str:
        return self._json("POST", "/v1/jobs/%d/retry" % id, {}, True, request_id)["state"]

    def events(self, id: int, stale: bool = False) -> List[Event]:
        return [Event.from_dict(e) for e in self._json("GET", "/v1/jobs/%d/events" % id, stale=stale or None)]

    def log(self, id: int, stage: int, stale: bool = False) -> bytes:
        """The log of stage `stage` of the job's current attempt."""
        path = "/v1/jobs/%d/stages/%d/log" % (id, stage)
        return self._request("GET", path, query={"stale": True if stale else None}).body

    def artifact(self, sha256: str, stale: bool = False, job: Optional[int] = None) -> bytes:
        """An artifact's bytes, checked against its SHA-256.  A job's source
        of at most 16 KiB is kept with the job, not as an artifact: pass
        the job's id to read it."""
        data = self._request("GET", "/v1/artifacts/" + sha256,
                             query={"stale": True if stale else None, "job": job}).body
        if hashlib.sha256(data).hexdigest() != sha256:
            raise IngotError("artifact %s: the bytes received do not match" % sha256, code="corrupt")
        return data

    def watch(self, id: int) -> Iterator[Union[Event, Job]]:
        """Follows a job: yields each Event (from the first), then the final
        Job, then stops.  A lost connection is resumed on the next node
        (events already seen are skipped) until watch_timeout."""
        seen = -1
        deadline = time.monotonic() + self.watch_timeout
        backoff = 0.05
        last = "no attempt"
        while time.monotonic() < deadline:
            endpoint = self.endpoints[self._current % len(self.endpoints)]
            try:
                conn = self._connect(endpoint, self.timeout * 3)
                try:
                    conn.request("GET", "/v1/jobs/%d/watch" % id, headers=self._headers(None, False))
                    r = conn.getresponse()
                    if r.status >= 400:
                        resp = _Response(r.status, {}, r.read())
                        code, message = self._error_of(resp)
                        if code not in RETRYABLE:
                            raise error_for(code, message, r.status)
                        raise OSError("%s: %s" % (code, message))
                    while True:
                        line = r.readline()
                        if not line:
                            raise OSError("the stream ended before the job")
                        if not line.strip():
                            continue  # heartbeat
                        item = json.loads(line)
                        if "event" in item:
                            ev = Event.from_dict(item["event"])
                            if ev.seq > seen:
                                seen = ev.seq
                                yield ev
                        elif "job" in item:
                            yield Job.from_dict(item["job"])
                            return
                        elif "error" in item:
                            e = item["error"]
                            if e["code"] not in RETRYABLE:
                                raise error_for(e["code"], e["message"])
                            raise OSError("%s: %s" % (e["code"], e["message"]))
                finally:
                    conn.close()
            except (OSError, http.client.HTTPException, ValueError) as e:
                last = "%s: %s" % (endpoint, e)
                self._current += 1
                time.sleep(backoff)
                backoff = min(backoff * 2, 1.0)
        raise Unreachable("watch of job %d: no node within %.0f s (last: %s)" % (id, self.watch_timeout, last))

    # ---- nodes -------------------------------------------------------------------
    def nodes(self, stale: bool = False) -> List[Node]:
        return [Node.from_dict(n) for n in self._json("GET", "/v1/nodes", stale=stale or None)]

    def drain(self, id: int, deadline_ms: Optional[int] = None, request_id: Optional[str] = None) -> None:
        body = {"deadline_ms": deadline_ms} if deadline_ms is not None else {}
        self._json("POST", "/v1/nodes/%d/drain" % id, body, True, request_id)

    def undrain(self, id: int, request_id: Optional[str] = None) -> None:
        self._json("POST", "/v1/nodes/%d/undrain" % id, {}, True, request_id)

    def forget(self, id: int, request_id: Optional[str] = None) -> None:
        """Drops a node that is down and runs nothing from the nodes table
        (node.forget); any other node raises Conflict."""
        self._json("POST", "/v1/nodes/%d/forget" % id, {}, True, request_id)

    # ---- backups -----------------------------------------------------------------
    def save_snapshot(self, path: str) -> Snapshot:
        """Downloads a consistent copy of the cluster's state (GET
        /v1/snapshot, docs/formats.md "Snapshot file") to `path`, streamed
        through path + ".partial" and renamed once its size and SHA-256
        match what the leader announced.  Raises Corrupt otherwise."""
        partial = path + ".partial"
        deadline = time.monotonic() + self.timeout
        last = "no attempt"
        while time.monotonic() < deadline:
            endpoint = self.endpoints[self._current % len(self.endpoints)]
            try:
                conn = self._connect(endpoint, self.timeout)
                try:
                    conn.request("GET", "/v1/snapshot", headers=self._headers(None, False))
                    r = conn.getresponse()
                    if r.status >= 400:
                        code, message = self._error_of(_Response(r.status, {}, r.read()))
                        if code not in RETRYABLE:
                            raise error_for(code, message, r.status)
                        raise OSError("%s: %s" % (code, message))
                    size = int(r.getheader("X-Ingot-Snapshot-Size", "-1"))
                    sha = r.getheader("X-Ingot-Snapshot-Sha256", "")
                    digest = hashlib.sha256()
                    got = 0
                    with open(partial, "wb") as f:
                        while True:
                            piece = r.read(1 << 20)
                            if not piece:
                                break
                            digest.update(piece)
                            f.write(piece)
                            got += len(piece)
                finally:
                    conn.close()
            except (OSError, http.client.HTTPException) as e:
                last = "%s: %s" % (endpoint, e)
                self._current += 1
                time.sleep(0.1)
                continue
            if got != size or digest.hexdigest() != sha:
                os.unlink(partial)
                raise error_for("corrupt", "snapshot download: %d bytes with SHA-256 %s, announced "
                                "%d and %s" % (got, digest.hexdigest(), size, sha))
            os.replace(partial, path)
            return Snapshot(path, size, sha)
        raise Unreachable("snapshot: no node within %.1f s (last: %s)" % (self.timeout, last))


def _seg(s: str) -> str:
    return urllib.parse.quote(s, safe="")
