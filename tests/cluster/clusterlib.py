"""clusterlib.py - shared helper of the cluster tests (Python 3 standard library only).

Starts the 3 nodes of cluster-configs/local-3 as real `ingotd` processes on
127.0.0.1 in a fresh temporary directory, kills/stops/restarts them by PID
(never by name), runs `ingotctl -o json ...`, compares the nodes' LMDB files
with `mdb_dump -a -n`, and cleans up every process it started (try/finally in
`run_tests` and atexit).  On a failed test the temporary directory is kept and
the tail of every node's log is printed.

Usage from a test file:

    import clusterlib as cl
    def main(t):                     # t: cl.Checks
        c = t.cluster()              # 3 nodes started, leader elected
        ...
        t.check("name", cond, "detail")
    cl.run_tests(main)

Every wait has a deadline; all traffic goes to 127.0.0.1.  The fixed ports
(API 7401-7403, raft 7501-7503) must be free: the runner waits up to
INGOT_CLUSTER_PORT_WAIT seconds (60) for them.  INGOT_CLUSTER_PORT_OFFSET=N
shifts every port by N (a development aid when someone else holds them).
INGOT_CLUSTER_KEEP=1 keeps the temporary directories of a passing run too.
Run one by hand: python3 tests/cluster/test_failover.py build/test

Membership tests use nodes beyond the initial ones: `t.cluster(extra=(4, 5))`
writes configs for nodes 4 and 5 (API 740N, raft 750N) that are not in the
initial `peers` (empty data directory, no peers: they wait to be added, or
join with `join:`/`--join`), and `run_tests(main, nodes=ALL_NODES)` checks
their ports too.  `t.cluster(nodes=(1,))` is a one-node cluster.  `call()`
sends one raw request (any op, msgpack framing of docs/protocol.md);
`Cluster.member()`/`events()` run the membership operations, and `Load`
is a background submitter with request ids and retries.  A test that puts
nodes elsewhere than 127.0.0.1 (network namespaces: test_nemesis.py) sets
`NODE_HOSTS[n]` before creating the cluster and `Cluster.launch[n]` (an
argv prefix such as `ip netns exec NS`) before starting node n.

TLS: a cluster runs with TLS 1.3 by default (`t.cluster(tls=False)` for
plaintext), as cluster-configs/local-3 does: `Cluster` makes an offline CA
and one certificate per node with `ingotctl pki` in DIR/pki, puts each
node's files in DIR/nodeN/tls/ (local-3's `tls:` paths), and a client
certificate "operator" that `ctl()` passes with --cacert/--cert/--key.
`connect_api()` and `call()` open TLS connections (Python's ssl module)
while a TLS cluster is the current one.
"""
import atexit
import http.client
import json
import os
import re
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time

SOURCE_DIR = os.environ.get("INGOT_SOURCE_DIR") or os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIG_DIR = os.path.join(SOURCE_DIR, "cluster-configs", "local-3")
NODES = (1, 2, 3)
ALL_NODES = (1, 2, 3, 4, 5)  # every node a test may start (ports 7401-7405, 7501-7505)
HOST = "127.0.0.1"
PORT_WAIT = int(os.environ.get("INGOT_CLUSTER_PORT_WAIT", "60"))
# Development aid only: shift every port of the copied configs (e.g. 1000 ->
# API 8401-8403, raft 8501-8503) when someone else holds the fixed ones.
PORT_OFFSET = int(os.environ.get("INGOT_CLUSTER_PORT_OFFSET", "0"))


# Where node n listens: 127.0.0.1, unless a test gives its nodes network
# namespaces of their own (test_nemesis.py: NODE_HOSTS[n] = "10.a.b.n").
NODE_HOSTS = {}


def host(n):
    return NODE_HOSTS.get(n, HOST)


def api_port(n):
    return 7400 + PORT_OFFSET + n


def raft_port(n):
    return 7500 + PORT_OFFSET + n


def api_ep(n):
    return "%s:%d" % (host(n), api_port(n))


def http_port(n):
    return 7600 + PORT_OFFSET + n


def http_ep(n):
    return "%s:%d" % (HOST, http_port(n))


def raft_ep(n):
    return "%s:%d" % (host(n), raft_port(n))


ALL_EPS = ",".join(api_ep(n) for n in NODES)

# The client TLS context of the current TLS cluster (None: plaintext);
# set by Cluster, used by connect_api() and call().
TLS_CONTEXT = None


def client_tls_context(ca, cert=None, key=None):
    """A TLS 1.3 client context trusting `ca`, presenting (cert, key) when
    given; the server's certificate must name the IP dialled."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_verify_locations(ca)
    if cert:
        ctx.load_cert_chain(cert, key)
    return ctx


def http_connection(node, timeout=15.0, tls=None):
    """An http.client connection to node's http_address: HTTPS with the
    current cluster's client context (or `tls`), plain HTTP without one
    (tls=False: plain)."""
    ctx = TLS_CONTEXT if tls is None else tls
    if ctx:
        return http.client.HTTPSConnection(HOST, http_port(node), timeout=timeout, context=ctx)
    return http.client.HTTPConnection(HOST, http_port(node), timeout=timeout)


def connect_api(port, timeout=5.0, tls=None):
    """A connection to 127.0.0.1:`port`, TLS when `tls` (an SSLContext) or
    the current cluster's context is set (tls=False: plaintext)."""
    s = socket.create_connection((HOST, port), timeout=timeout)
    ctx = TLS_CONTEXT if tls is None else tls
    if ctx:
        try:
            s = ctx.wrap_socket(s, server_hostname=HOST)
        except (OSError, ssl.SSLError):
            s.close()
            raise
    return s

# Every process this module started, by pid, so that atexit can kill them.
_live = {}
_live_lock = threading.Lock()


def _kill_all_started():
    with _live_lock:
        procs = list(_live.values())
    for p in procs:
        if p.poll() is None:
            try:
                os.kill(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass


atexit.register(_kill_all_started)


class TestFailure(Exception):
    pass


class NodeDied(TestFailure):
    pass


def now():
    return time.monotonic()


def wait_for(what, fn, timeout, interval=0.1):
    """Calls fn() until it returns a true value, or raises TestFailure after
    `timeout` seconds.  Returns that value."""
    deadline = now() + timeout
    last = None
    while True:
        try:
            v = fn()
            if v:
                return v
            last = v
        except NodeDied:
            raise
        except Exception as e:  # noqa: BLE001 - reported below
            last = "%s: %s" % (type(e).__name__, e)
        if now() >= deadline:
            raise TestFailure("timed out after %.1f s waiting for %s (last: %r)" % (timeout, what, last))
        time.sleep(interval)


def ports_free(nodes=NODES):
    """Returns the list of ports of `nodes` that are already bound."""
    busy = []
    for n in nodes:
        for port in (api_port(n), raft_port(n), http_port(n)):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((HOST, port))
            except OSError:
                busy.append(port)
            finally:
                s.close()
    return busy


class CtlResult:
    def __init__(self, argv, rc, out, err, secs):
        self.argv, self.rc, self.out, self.err, self.secs = argv, rc, out, err, secs

    def json(self):
        return json.loads(self.out)

    def __repr__(self):
        return "ingotctl %s -> rc=%d out=%r err=%r" % (" ".join(self.argv), self.rc,
                                                       self.out[:300], self.err[:300])


def yaml_value(v):
    """A config value as flow YAML: lists as [a, b], strings in lists quoted."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join('"%s"' % x if isinstance(x, str) else yaml_value(x) for x in v) + "]"
    return str(v)


class Cluster:
    """A cluster of real nodes in a temporary directory: by default the
    local-3 cluster (configs copied from cluster-configs/local-3).

    overrides: dict of config keys to set on every node (replacing the key
    in the config when present, appended otherwise; None removes the key),
    e.g. {"snapshot_threshold": 64, "snapshot_trailing": 16}.
    nodes: the initial voters (their `peers`); other than (1, 2, 3), every
    config is generated like local-3's (API 740N, raft 750N).
    extra: more nodes, configured without `peers` (empty data directory:
    they start as nobody's member until added or joined).
    node_overrides: {node: {key: value}} applied after `overrides`.
    """

    def __init__(self, build_dir, name="cluster", overrides=None, nodes=NODES, extra=(),
                 node_overrides=None, tls=True):
        self.build_dir = os.path.abspath(build_dir)
        self.ingotd = os.path.join(self.build_dir, "ingotd")
        self.ingotctl = os.path.join(self.build_dir, "ingotctl")
        for b in (self.ingotd, self.ingotctl):
            if not os.access(b, os.X_OK):
                raise TestFailure("no executable %s (build the ingotd and ingotctl targets)" % b)
        self.initial = tuple(nodes)
        self.extra = tuple(extra)
        self.nodes = self.initial + self.extra
        if len(set(self.nodes)) != len(self.nodes) or not set(self.nodes) <= set(ALL_NODES):
            raise TestFailure("bad node set %r (ids 1-5, each once)" % (self.nodes,))
        self.dir = tempfile.mkdtemp(prefix="ingot-%s-" % name)
        # The stage sandbox's uids pass through to data_dir/work (o+x, no listing).
        os.chmod(self.dir, 0o711)
        self.procs = {}
        self.launch = {}  # node -> argv prefix for ingotd (e.g. ip netns exec NS)
        self.starts = {n: 0 for n in self.nodes}
        self.exit_codes = []  # (node, signal sent or None, exit code) of every stopped process
        self.expect_exit = set()  # nodes that may exit by themselves (e.g. being removed)
        self.removed = set()      # nodes no longer members: left out of the default node sets
        # These tests are about replication, not execution: by default
        # no node runs work (slots: 0), so jobs stay queued and the
        # state depends only on the commands the tests send.
        self.overrides = {"slots": "0"}
        self.overrides.update(overrides or {})
        self.node_overrides = {n: dict((node_overrides or {}).get(n, {})) for n in self.nodes}
        self.tls = tls
        global TLS_CONTEXT
        if tls:
            self._make_pki()
            self.ssl_ctx = self.tls_context()
        else:
            self.overrides["tls"] = None
            self.ssl_ctx = None
        TLS_CONTEXT = self.ssl_ctx
        for n in self.nodes:
            os.makedirs(self.node_dir(n), exist_ok=True)
            self._write_config(n)

    # ---- TLS -----------------------------------------------------------
    def pki(self, *args):
        """Runs `ingotctl pki ARGS --dir DIR/pki`; raises on failure."""
        p = subprocess.run([self.ingotctl, "pki"] + [str(a) for a in args] + ["--dir", self.path("pki")],
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
        if p.returncode != 0:
            raise TestFailure("ingotctl pki %s: %s" % (" ".join(map(str, args)), p.stderr.decode()))

    def _make_pki(self):
        self.pki("init", "--days", "30")  # leaves: 20 days, within the CA's 30
        self.pki("issue", "client", "--name", "operator", "--days", "20")
        for n in self.nodes:
            addresses = ["--address", HOST]
            if host(n) != HOST:  # a node in its own network namespace
                addresses += ["--address", host(n)]
            self.pki("issue", "node", "--id", n, *addresses, "--days", "20")
            d = os.path.join(self.node_dir(n), "tls")
            os.makedirs(d, mode=0o700)
            for f in ("ca.crt", "node-%d.crt" % n, "node-%d.key" % n):
                shutil.copy(self.path("pki", f), os.path.join(d, f))

    def tls_args(self):
        if not self.tls:
            return []
        return ["--cacert", self.path("pki", "ca.crt"), "--cert", self.path("pki", "client-operator.crt"),
                "--key", self.path("pki", "client-operator.key")]

    def tls_context(self, client="operator"):
        """A client context of this cluster's CA with client certificate
        `client` (None: none)."""
        cert = key = None
        if client:
            cert, key = self.path("pki", "client-%s.crt" % client), self.path("pki", "client-%s.key" % client)
        return client_tls_context(self.path("pki", "ca.crt"), cert, key)

    # ---- paths ---------------------------------------------------------
    def node_dir(self, n):
        return os.path.join(self.dir, "node%d" % n)

    def config(self, n):
        return os.path.join(self.node_dir(n), "config.yaml")

    def data_dir(self, n):
        return os.path.join(self.node_dir(n), "data")

    def state_file(self, n):
        return os.path.join(self.data_dir(n), "state.mdb")

    def log_path(self, n):
        return os.path.join(self.node_dir(n), "ingotd.log")

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def _base_config(self, n):
        """The config of node n before overrides: local-3's file for the
        default cluster, else generated the same way."""
        if self.initial == NODES and n in NODES:
            with open(os.path.join(CONFIG_DIR, "node%d.yaml" % n)) as f:
                lines = f.read().splitlines()
            if PORT_OFFSET or NODE_HOSTS:
                # 740N and 750N belong to node N.
                lines = [re.sub(r"127\.0\.0\.1:(\d+)",
                                lambda m: "%s:%d" % (host(int(m.group(1)) % 100),
                                                     int(m.group(1)) + PORT_OFFSET), ln)
                         for ln in lines]
            return lines
        lines = ["# Node %d, generated by clusterlib.py (%s)" %
                 (n, "initial voter" if n in self.initial else "not in the initial peers"),
                 "id: %d" % n,
                 "data_dir: ingot-data/node%d" % n,
                 "raft_address: %s" % raft_ep(n),
                 "api_address: %s" % api_ep(n),
                 "http_address: %s" % http_ep(n)]
        if n in self.initial:
            lines.append("peers:")
            lines += ["  - {id: %d, raft_address: %s, api_address: %s}" % (p, raft_ep(p), api_ep(p))
                      for p in self.initial]
        lines += ["election_timeout_ms: 300", "heartbeat_timeout_ms: 30", "connect_retry_ms: 50",
                  "tls:", "  ca: tls/ca.crt", "  cert: tls/node-%d.crt" % n, "  key: tls/node-%d.key" % n,
                  "  client_certs: required"]
        return lines

    def _write_config(self, n):
        overrides = dict(self.overrides)
        overrides.update(self.node_overrides[n])
        # Blocks: a top-level "key:" line and the indented lines under it.
        blocks = []
        for line in self._base_config(n):
            key = line.split(":", 1)[0].strip() if (line and not line[0].isspace() and ":" in line
                                                   and not line.startswith("#")) else None
            if key is None and blocks and line[:1].isspace():
                blocks[-1][1].append(line)
            else:
                blocks.append((key, [line]))
        out, seen = [], set()
        for key, lines in blocks:
            if key in overrides:
                seen.add(key)
                if overrides[key] is not None:
                    out.append("%s: %s" % (key, yaml_value(overrides[key])))
            else:
                out.extend(lines)
        for k, v in overrides.items():
            if k not in seen and v is not None:
                out.append("%s: %s" % (k, yaml_value(v)))
        with open(self.config(n), "w") as f:
            f.write("\n".join(out) + "\n")

    def configure(self, n, **keys):
        """Sets (None: removes) config keys of node n for its next start."""
        self.node_overrides[n].update(keys)
        self._write_config(n)


    # ---- processes -----------------------------------------------------
    def start(self, n, args=()):
        """Starts node n (extra command-line arguments in `args`, e.g.
        ("--join", "127.0.0.1:7401"))."""
        p = self.procs.get(n)
        if p is not None and p.poll() is None:
            raise TestFailure("node %d already running (pid %d)" % (n, p.pid))
        self.starts[n] += 1
        log = open(self.log_path(n), "ab")
        log.write(("---- test: start #%d of node %d at %s%s ----\n" %
                   (self.starts[n], n, time.strftime("%H:%M:%S"),
                    (" with " + " ".join(args)) if args else "")).encode())
        log.flush()
        p = subprocess.Popen(list(self.launch.get(n, ())) +
                             [self.ingotd, "--config", self.config(n), "--data-dir", self.data_dir(n)]
                             + list(args),
                             stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                             cwd=self.node_dir(n))
        log.close()
        self.procs[n] = p
        with _live_lock:
            _live[p.pid] = p
        return p

    def start_all(self, wait=True, timeout=30):
        """Starts the initial nodes (not the extra ones)."""
        for n in self.initial:
            self.start(n)
        if wait:
            return self.wait_leader(timeout=timeout)
        return None

    def running(self, n):
        p = self.procs.get(n)
        return p is not None and p.poll() is None

    def pid(self, n):
        return self.procs[n].pid

    def _signal_and_wait(self, n, sig, timeout):
        p = self.procs.get(n)
        if p is None or p.poll() is not None:
            raise TestFailure("node %d is not running" % n)
        os.kill(p.pid, sig)
        try:
            rc = p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.kill(p.pid, signal.SIGKILL)
            rc = p.wait(timeout=10)
            self.exit_codes.append((n, sig, rc))
            with _live_lock:
                _live.pop(p.pid, None)
            raise TestFailure("node %d (pid %d) did not exit within %.0f s of signal %d; killed"
                              % (n, p.pid, timeout, sig))
        self.exit_codes.append((n, sig, rc))
        with _live_lock:
            _live.pop(p.pid, None)
        return rc

    def kill(self, n):
        """kill -9 node n (by pid) and wait for it to be gone."""
        return self._signal_and_wait(n, signal.SIGKILL, 10)

    def stop(self, n, timeout=20):
        """SIGTERM node n (by pid) and wait for it to exit; returns its exit code."""
        return self._signal_and_wait(n, signal.SIGTERM, timeout)

    def restart(self, n, args=()):
        return self.start(n, args)

    def wait_exit(self, n, timeout):
        """Waits up to `timeout` s for node n to exit by itself; returns
        its exit code, or None (still running) after the timeout."""
        p = self.procs.get(n)
        if p is None:
            raise TestFailure("node %d was never started" % n)
        try:
            rc = p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        self.exit_codes.append((n, None, rc))
        with _live_lock:
            _live.pop(p.pid, None)
        return rc

    def active(self):
        """The running nodes that are not known to be removed."""
        return [n for n in self.nodes if self.running(n) and n not in self.removed]

    def cleanup(self, keep):
        for n, p in list(self.procs.items()):
            if p.poll() is None:
                try:
                    os.kill(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    pass
            with _live_lock:
                _live.pop(p.pid, None)
        self._release_sandboxes()
        if not keep:
            shutil.rmtree(self.dir, ignore_errors=True)

    def _release_sandboxes(self):
        """What the stage sandboxes of nodes killed above hold outside their
        directories: quota file systems loop-mounted on attempt directories,
        and cgroups (ingot/n<id>-<FNV-1a of the data directory>, as
        node/worker/sandbox_node.c names them).  A restarted node would reap
        them itself; a test's last kill leaves them to us."""
        root = os.path.realpath(self.dir) + "/"
        try:
            with open("/proc/self/mountinfo") as f:
                mps = [ln.split()[4].replace("\\040", " ") for ln in f]
        except OSError:
            mps = []
        for mp in sorted((m for m in mps if m.startswith(root)), reverse=True):
            subprocess.run(["umount", "-l", mp], capture_output=True)
        for n in self.nodes:
            h = 2166136261
            for b in os.path.realpath(self.data_dir(n)).encode():
                h = ((h ^ b) * 16777619) & 0xFFFFFFFF
            name = "ingot/n%d-%08x" % (n, h)
            for ctl in ("memory/", "pids/", ""):
                base = os.path.join("/sys/fs/cgroup", ctl + name)
                if not os.path.isdir(base):
                    continue
                for sub in os.listdir(base):
                    if os.path.isdir(os.path.join(base, sub)):
                        try:
                            os.rmdir(os.path.join(base, sub))
                        except OSError:
                            pass
                try:
                    os.rmdir(base)
                except OSError:
                    pass

    def snapshot_file_sizes(self, n):
        """Sizes of the snapshot data files in node n's raft/ directory."""
        d = os.path.join(self.data_dir(n), "raft")
        return sorted(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d)
                      if f.startswith("snapshot-") and not f.endswith(".meta"))

    def log(self, n):
        try:
            with open(self.log_path(n), "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def log_since(self, n, start):
        """Node n's log from its start number `start` (1-based) on."""
        text = self.log(n)
        i = text.find("---- test: start #%d of node %d " % (start, n))
        return text[i:] if i >= 0 else ""

    def log_tails(self, lines=40):
        out = []
        for n in self.nodes:
            if not os.path.exists(self.log_path(n)):
                continue
            text = self.log(n).splitlines()
            out.append("==== node %d log (%s), last %d lines ====" % (n, self.log_path(n), lines))
            out.extend(text[-lines:])
        return "\n".join(out)

    # ---- ingotctl ------------------------------------------------------
    def ctl(self, *args, nodes=None, eps=None, timeout="5s", json_out=True, proc_timeout=60):
        """Runs ingotctl; returns a CtlResult (never raises on a non-zero exit)."""
        if eps is None:
            eps = ",".join(api_ep(n) for n in (nodes or self.default_nodes()))
        argv = self.tls_args() + ["--endpoints", eps, "--timeout", timeout]
        if json_out:
            argv += ["-o", "json"]
        argv += [str(a) for a in args]
        t0 = now()
        try:
            p = subprocess.run([self.ingotctl] + argv, stdin=subprocess.DEVNULL, capture_output=True,
                               timeout=proc_timeout, cwd=self.dir)
        except subprocess.TimeoutExpired:
            return CtlResult(argv, -999, "", "ingotctl did not return within %d s" % proc_timeout,
                             now() - t0)
        return CtlResult(argv, p.returncode, p.stdout.decode("utf-8", "replace"),
                         p.stderr.decode("utf-8", "replace"), now() - t0)

    def default_nodes(self):
        """The nodes requests go to by default: every node started at
        least once and not known to be removed (the initial ones before
        any start)."""
        ns = [n for n in self.nodes if self.starts[n] > 0 and n not in self.removed]
        return ns or list(self.initial)

    def ctl_json(self, *args, **kw):
        r = self.ctl(*args, **kw)
        if r.rc != 0:
            raise TestFailure("failed: %r" % r)
        try:
            return r.json()
        except ValueError as e:
            raise TestFailure("not JSON (%s): %r" % (e, r))

    def status(self, n, stale=True, timeout="3s"):
        """`status` as node n sees it (stale by default: no barrier, so no
        log entry is added by asking)."""
        args = ["status"] + (["--stale"] if stale else [])
        return self.ctl_json(*args, nodes=[n], timeout=timeout)

    def leader(self, nodes=None):
        """The leader id if every running node (of `nodes`) agrees on one
        that is running, else None."""
        nodes = [n for n in (nodes or self.active()) if self.running(n)]
        seen = set()
        for n in nodes:
            try:
                s = self.status(n)
            except TestFailure:
                return None
            seen.add(s.get("leader"))
        if len(seen) == 1:
            lead = seen.pop()
            if lead is not None and self.running(lead):
                return lead
        return None

    def check_alive(self):
        """Raises TestFailure when a node this cluster started has exited
        without being told to (e.g. it could not bind its ports)."""
        for n, p in self.procs.items():
            if n in self.expect_exit:
                continue
            if p.poll() is not None and not any(e[0] == n and e[2] == p.returncode for e in self.exit_codes):
                tail = "\n".join(self.log(n).splitlines()[-15:])
                raise NodeDied("node %d (pid %d) exited by itself with code %s; log tail:\n%s"
                                  % (n, p.pid, p.returncode, tail))

    def wait_leader(self, timeout=30, nodes=None):
        """Waits until the running nodes agree on a live leader that serves
        writes-path reads (a linearizable `job list` succeeds); returns its id."""
        def ready():
            self.check_alive()
            lead = self.leader(nodes)
            if lead is None:
                return None
            r = self.ctl("job", "list", "--limit", "1", nodes=[lead], timeout="2s")
            return lead if r.rc == 0 else None
        return wait_for("a leader", ready, timeout, interval=0.1)

    def applied(self, via=None):
        """{node: applied_index} of every member, as node `via` (default:
        any running node) sees them (None for a member that did not answer)."""
        vias = [via] if via else self.active()
        last = None
        for v in vias:
            try:
                s = self.status(v)
                return {m["id"]: (m["applied_index"] if m.get("alive") else None) for m in s["members"]}
            except TestFailure as e:
                last = e
        raise last or TestFailure("no node running")

    def wait_converged(self, nodes=None, timeout=30, stable_for=0.6):
        """Waits until every node of `nodes` (default: the running ones)
        reports the same applied index, unchanged for `stable_for` seconds.
        Returns (index, seconds waited)."""
        nodes = nodes or self.active()
        t0 = now()
        state = {"idx": None, "since": None}

        def ok():
            self.check_alive()
            a = self.applied()
            vals = [a.get(n) for n in nodes]
            if any(v is None for v in vals) or len(set(vals)) != 1:
                state["idx"] = None
                return None
            if vals[0] != state["idx"]:
                state["idx"], state["since"] = vals[0], now()
                return None
            if now() - state["since"] >= stable_for:
                return vals[0]
            return None
        idx = wait_for("equal and stable applied indexes on nodes %s" % (nodes,), ok, timeout, interval=0.15)
        return idx, now() - t0

    def dump(self, n):
        p = subprocess.run(["mdb_dump", "-a", "-n", self.state_file(n)], capture_output=True, timeout=60)
        if p.returncode != 0:
            raise TestFailure("mdb_dump of node %d failed: %s" % (n, p.stderr.decode(errors="replace")))
        return p.stdout

    def dumps(self, nodes=None):
        """mdb_dump of `nodes` (default: the initial nodes and every other
        started one that is not known to be removed)."""
        if nodes is None:
            nodes = [n for n in self.nodes if n not in self.removed and (n in self.initial or self.starts[n])]
        return {n: self.dump(n) for n in nodes}

    # ---- raw requests and membership ----------------------------------
    def call(self, op, args=None, via=None, timeout=10.0):
        """call() on node `via`, or on the default nodes in order until one
        answers (a node that cannot be reached is skipped)."""
        nodes = [via] if via else self.default_nodes()
        last = None
        for n in nodes:
            try:
                return call(api_ep(n), op, args, timeout=timeout, tls=self.ssl_ctx or False)
            except RpcError as e:
                last = e
        raise TestFailure("no node of %s answered %s: %s" % (nodes, op, last))


    def member(self, verb, id=None, via=None, timeout=40.0, raw=False, **args):
        """Runs the membership operation member.<verb> (add, promote,
        demote, remove, transfer, check) for member `id` with `args`
        (raft_address=, api_address=, role=) on node `via` (default: the
        default nodes in order; followers forward) and returns a Reply.
        Through `ingotctl member ...` (so the CLI is exercised too), or
        with `raw` (and for `check`, which has no command) over the
        protocol directly."""
        if raw or verb == "check":
            if id is not None:
                args["id"] = id
            return self.call("member." + verb, args, via=via, timeout=timeout)
        argv = ["member", "transfer-leadership" if verb == "transfer" else verb]
        if id is not None:
            argv.append(id)
        for k in ("raft_address", "api_address", "role"):
            if k in args:
                argv += ["--" + k.replace("_", "-"), args.pop(k)]
        if args:
            raise TestFailure("member %s: no ingotctl option for %s" % (verb, sorted(args)))
        return self.ctl_reply("member." + verb, *argv, via=via, timeout=timeout)

    def ctl_reply(self, op, *argv, via=None, timeout=10.0):
        """Runs `ingotctl -o json ARGV` and returns its outcome as a Reply:
        the JSON document on exit 0, else the code and message of its
        "ingotctl: <code>: <message>" line (code "exit N" when there is
        none)."""
        r = self.ctl(*argv, nodes=[via] if via else None, timeout="%dms" % int(timeout * 1000),
                     proc_timeout=timeout + 15)
        ep = api_ep(via) if via else "ingotctl"
        if r.rc == 0:
            try:
                return Reply(op, ep, None, r.json(), r.secs)
            except ValueError as e:
                return Reply(op, ep, ["not_json", "%s: %r" % (e, r)], None, r.secs)
        m = re.search(r"^ingotctl: ([a-z_]+): (.*)$", r.err, re.M)
        if m:
            return Reply(op, ep, [m.group(1), m.group(2)], None, r.secs)
        return Reply(op, ep, ["exit %d" % r.rc, r.err.strip()[:400]], None, r.secs)

    def add_args(self, n, role=None):
        """member.add arguments for node n's own addresses."""
        a = {"raft_address": raft_ep(n), "api_address": api_ep(n)}
        if role:
            a["role"] = role
        return a

    def config_of(self, via, stale=True):
        """{member id: role} as node `via` sees it (`status`, stale by default)."""
        r = self.call("status", {"stale": True} if stale else {}, via=via, timeout=5)
        if not r.ok:
            raise TestFailure("status via node %s: %r" % (via, r))
        return {m["id"]: m["role"] for m in r.result["members"]}


    def members(self, via, stale=True):
        """The member maps of `status` as node `via` sees them, by id."""
        r = self.call("status", {"stale": True} if stale else {}, via=via, timeout=5)
        if not r.ok:
            raise TestFailure("status via node %s: %r" % (via, r))
        return {m["id"]: m for m in r.result["members"]}


    def events(self, via=None, after=None, stale=False, timeout=10.0):
        """Every cluster event after `after` (`ingotctl events`, all pages)."""
        out = []
        while True:
            argv = ["events", "--limit", 1000] + (["--after", after] if after is not None else [])
            r = self.ctl_reply("cluster.events", *(argv + (["--stale"] if stale else [])), via=via,
                               timeout=timeout)
            if not r.ok:
                raise TestFailure("ingotctl events: %r" % r)
            out += r.result["events"]
            if r.result.get("next") is None:
                return out
            after = r.result["next"]

    def wait_config(self, want, nodes=None, timeout=30):
        """Waits until every node of `nodes` (default: the active ones) sees
        the configuration `want` ({id: role}) in its stale `status`."""
        def ok():
            self.check_alive()
            got = {n: self.config_of(n) for n in (nodes or self.active())}
            return got if all(g == want for g in got.values()) else None
        return wait_for("configuration %s on nodes %s" % (want, nodes or self.active()), ok, timeout, 0.15)

    # ---- convenience ---------------------------------------------------
    def write_file(self, rel, data):
        path = self.path(rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data if isinstance(data, bytes) else data.encode())
        return path

    def apply_target(self, name="t-cc", via=1):
        y = ("name: %s\n"
             "capabilities: [cc]\n"
             "stages:\n"
             "  - name: compile\n"
             "    argv: [cc, -O2, -c, \"{source}\", -o, kernel.o]\n"
             "    timeout: 60s\n"
             "    outputs: [kernel.o]\n" % name)
        f = self.write_file("targets/%s.yaml" % name, y)
        return self.ctl_json("target", "apply", f, nodes=[via])

    def all_jobs(self, n=None, stale=False, timeout="10s"):
        args = ["job", "list", "--all"] + (["--stale"] if stale else [])
        r = self.ctl_json(*args, nodes=[n] if n else None, timeout=timeout)
        return r["jobs"]


def dumps_identical(dumps):
    vals = list(dumps.values())
    return all(v == vals[0] for v in vals[1:])


APPLIED_INDEX_KEY = b" " + b"applied_index".hex().encode()


def mask_applied_index(dump):
    """The dump with the value of meta's applied_index key blanked."""
    lines = dump.split(b"\n")
    for i, ln in enumerate(lines[:-1]):
        if ln == APPLIED_INDEX_KEY:
            lines[i + 1] = b" <applied_index>"
    return b"\n".join(lines)


def dump_tables(dump):
    """An `mdb_dump -a` output as {database name: {key hex: value hex}}
    (the unnamed main database under "")."""
    tables, name, rows, key, in_data = {}, "", None, None, False
    for ln in dump.decode().splitlines():
        if not in_data:
            if ln.startswith("database="):
                name = ln[len("database="):]
            elif ln == "HEADER=END":
                rows, key, in_data = {}, None, True
            continue
        if ln == "DATA=END":
            tables[name], name, in_data = rows, "", False
        elif key is None:
            key = ln.strip()
        else:
            rows[key], key = ln.strip(), None
    return tables


CLUSTER_EVENT_PREFIX = "00" * 8  # events under job id 0 (docs/formats.md)


def changes_besides_cluster_events(before, after):
    """What differs between two dumps of one store other than cluster
    events added (a new leader after a restart records leader_changed) and
    the meta counters those move (applied_index, cluster_events): a list
    of descriptions, empty when nothing else changed.  Also returns the
    added cluster events' keys."""
    b, a = dump_tables(before), dump_tables(after)
    out, added = [], []
    for name in sorted(set(b) | set(a)):
        rb, ra = b.get(name, {}), a.get(name, {})
        for k in sorted(set(rb) | set(ra)):
            if rb.get(k) == ra.get(k):
                continue
            if name == "meta" and k in (b"applied_index".hex(), b"cluster_events".hex()):
                continue
            if name == "events" and k not in rb and k.startswith(CLUSTER_EVENT_PREFIX):
                added.append(k)
                continue
            out.append("%s %s: %s -> %s" % (name or "<main>", k, rb.get(k, "<none>")[:60],
                                            ra.get(k, "<none>")[:60]))
    return out, added


def dump_diff(dumps, limit=10):
    """A short description of how the dumps differ (first differing lines)."""
    items = sorted(dumps.items())
    base_n, base = items[0]
    bl = base.decode(errors="replace").splitlines()
    out = []
    for n, d in items[1:]:
        if d == base:
            continue
        dl = d.decode(errors="replace").splitlines()
        out.append("node %d: %d lines vs node %d: %d lines" % (n, len(dl), base_n, len(bl)))
        cnt = 0
        for i in range(max(len(bl), len(dl))):
            a = bl[i] if i < len(bl) else "<none>"
            b = dl[i] if i < len(dl) else "<none>"
            if a != b:
                out.append("  line %d: node %d %r | node %d %r" % (i + 1, base_n, a[:120], n, b[:120]))
                cnt += 1
                if cnt >= limit:
                    break
    return "\n".join(out)


# ---- tiny msgpack (for the raw-frame tests only) -------------------------
def mp_pack(v):
    if v is None:
        return b"\xc0"
    if v is True:
        return b"\xc3"
    if v is False:
        return b"\xc2"
    if isinstance(v, int):
        if 0 <= v < 128:
            return bytes([v])
        if 0 <= v < 1 << 32:
            return b"\xce" + struct.pack(">I", v)
        if 0 <= v < 1 << 64:
            return b"\xcf" + struct.pack(">Q", v)
        if -32 <= v < 0:
            return struct.pack(">b", v)
        return b"\xd3" + struct.pack(">q", v)
    if isinstance(v, str):
        b = v.encode()
        if len(b) < 32:
            return bytes([0xa0 | len(b)]) + b
        return b"\xd9" + bytes([len(b)]) + b if len(b) < 256 else b"\xda" + struct.pack(">H", len(b)) + b
    if isinstance(v, bytes):
        return b"\xc4" + bytes([len(v)]) + v if len(v) < 256 else b"\xc6" + struct.pack(">I", len(v)) + v
    if isinstance(v, (list, tuple)):
        assert len(v) < 16
        return bytes([0x90 | len(v)]) + b"".join(mp_pack(x) for x in v)
    if isinstance(v, dict):
        assert len(v) < 16
        return bytes([0x80 | len(v)]) + b"".join(mp_pack(k) + mp_pack(x) for k, x in v.items())
    raise TypeError(type(v))


def mp_unpack(b, i=0):
    """Decodes one msgpack value at b[i:]; returns (value, next index)."""
    c = b[i]
    i += 1
    if c < 0x80:
        return c, i
    if c >= 0xe0:
        return c - 256, i
    if 0xa0 <= c <= 0xbf:
        n = c & 0x1f
        return b[i:i + n].decode("utf-8", "replace"), i + n
    if 0x90 <= c <= 0x9f or c in (0xdc, 0xdd):
        if c == 0xdc:
            n = struct.unpack(">H", b[i:i + 2])[0]
            i += 2
        elif c == 0xdd:
            n = struct.unpack(">I", b[i:i + 4])[0]
            i += 4
        else:
            n = c & 0x0f
        out = []
        for _ in range(n):
            v, i = mp_unpack(b, i)
            out.append(v)
        return out, i
    if 0x80 <= c <= 0x8f or c in (0xde, 0xdf):
        if c == 0xde:
            n = struct.unpack(">H", b[i:i + 2])[0]
            i += 2
        elif c == 0xdf:
            n = struct.unpack(">I", b[i:i + 4])[0]
            i += 4
        else:
            n = c & 0x0f
        out = {}
        for _ in range(n):
            k, i = mp_unpack(b, i)
            v, i = mp_unpack(b, i)
            out[k] = v
        return out, i
    if c == 0xc0:
        return None, i
    if c == 0xc2:
        return False, i
    if c == 0xc3:
        return True, i
    fixed = {0xcc: ">B", 0xcd: ">H", 0xce: ">I", 0xcf: ">Q", 0xd0: ">b", 0xd1: ">h", 0xd2: ">i",
             0xd3: ">q", 0xca: ">f", 0xcb: ">d"}
    if c in fixed:
        sz = struct.calcsize(fixed[c])
        return struct.unpack(fixed[c], b[i:i + sz])[0], i + sz
    if c in (0xd9, 0xda, 0xdb, 0xc4, 0xc5, 0xc6):
        w = {0xd9: 1, 0xc4: 1, 0xda: 2, 0xc5: 2, 0xdb: 4, 0xc6: 4}[c]
        n = int.from_bytes(b[i:i + w], "big")
        i += w
        raw = b[i:i + n]
        return (raw.decode("utf-8", "replace") if c in (0xd9, 0xda, 0xdb) else bytes(raw)), i + n
    raise ValueError("msgpack byte 0x%02x not supported by this tiny decoder" % c)


def frame(payload):
    return struct.pack(">I", len(payload)) + payload


def read_frames(sock, timeout=5.0):
    """Reads frames until the peer closes or `timeout` passes.  Returns
    (list of decoded values, closed_by_peer)."""
    sock.settimeout(0.2)
    buf = b""
    closed = False
    deadline = now() + timeout
    while now() < deadline:
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            continue
        except (ConnectionResetError, BrokenPipeError):
            closed = True
            break
        if not chunk:
            closed = True
            break
        buf += chunk
    vals = []
    while len(buf) >= 4:
        n = struct.unpack(">I", buf[:4])[0]
        if len(buf) < 4 + n:
            break
        vals.append(mp_unpack(buf[4:4 + n])[0])
        buf = buf[4 + n:]
    return vals, closed


# ---- one raw request (any operation; docs/protocol.md) --------------------
class RpcError(Exception):
    """No reply: the node could not be reached, closed the connection or
    did not answer in time."""


class Reply:
    """A reply: `code` is None on success (then `result` is the value),
    else the error's code name and `message`."""

    def __init__(self, op, ep, error, result, secs):
        self.op, self.ep, self.result, self.secs = op, ep, result, secs
        self.code = error[0] if error else None
        self.message = error[1] if error and len(error) > 1 else ""

    @property
    def ok(self):
        return self.code is None

    def __repr__(self):
        if self.ok:
            return "%s via %s -> ok in %.2f s: %s" % (self.op, self.ep, self.secs, str(self.result)[:400])
        return "%s via %s -> %s in %.2f s: %s" % (self.op, self.ep, self.code, self.secs, self.message[:400])


def call(ep, op, args=None, timeout=10.0, request_id=None, token=None, tls=None):
    """Sends `op` with `args` to endpoint `ep` ("a.b.c.d:port") on a fresh
    connection (TLS as connect_api decides) and returns its Reply (events
    pushed before it are skipped).  Raises RpcError when there is no reply
    within `timeout` seconds."""
    host, port = ep.rsplit(":", 1)
    t0 = now()
    deadline = t0 + timeout
    try:
        sock = connect_api(int(port), timeout=max(0.1, min(timeout, 5.0)), tls=tls)
    except OSError as e:
        raise RpcError("%s: cannot connect to %s: %s" % (op, ep, e))
    try:
        sock.sendall(frame(mp_pack([0, 1, op, args or {}, token, request_id])))
        buf = b""
        while True:
            left = deadline - now()
            if left <= 0:
                raise RpcError("%s: no reply from %s within %.1f s" % (op, ep, timeout))
            sock.settimeout(left)
            try:
                chunk = sock.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                raise RpcError("%s: %s closed the connection before replying" % (op, ep))
            buf += chunk
            while len(buf) >= 4:
                n = struct.unpack(">I", buf[:4])[0]
                if len(buf) < 4 + n:
                    break
                msg = mp_unpack(buf[4:4 + n])[0]
                buf = buf[4 + n:]
                if isinstance(msg, list) and len(msg) == 4 and msg[0] == 1 and msg[1] in (0, 1):
                    return Reply(op, ep, msg[2], msg[3], now() - t0)
    except OSError as e:
        raise RpcError("%s: connection to %s failed: %s" % (op, ep, e))
    finally:
        sock.close()


# ---- background load --------------------------------------------------------
class Load:
    """Submitters in background threads: each submits jobs one after
    another with `ingotctl job submit --request-id`, one fixed request id
    per job retried unchanged while ingotctl reports the cluster
    unreachable or without a leader (exit 3) until it is acknowledged (or
    `rid_deadline` seconds pass: then it counts as unacknowledged, which is
    an error).  Any other failure (the cluster refused the write: exit 1)
    is recorded in `errors` and not retried.
    Thread i tries the endpoints of `nodes` (a list, or a callable giving
    one) starting from the i-th, so some submits go through followers.
    Every attempt is recorded: (rid, start, end, exit code, stderr)."""

    def __init__(self, c, target, src, prefix, threads=2, nodes=None, rid_deadline=30.0,
                 ctl_timeout="5s", pause=0.0, extra=()):
        self.c, self.target, self.src, self.prefix = c, target, src, prefix
        self.extra = list(extra)  # more `job submit` arguments, e.g. ("--param", "K=V")
        self.nodes = nodes or (lambda: c.default_nodes())
        self.rid_deadline, self.ctl_timeout, self.pause = rid_deadline, ctl_timeout, pause
        self.lock = threading.Lock()
        self.acked = {}      # request id -> job id
        self.ack_times = []  # end of every acknowledged attempt
        self.attempts = []   # (rid, start, end, rc, stderr)
        self.unacked = []    # (rid, last result) of ids that hit their deadline
        self.errors = []     # (rid, result) of refusals (not retried)
        self.dups = []       # request id acknowledged with two different job ids
        self.halt = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)]

    def start(self):
        self.t_start = now()
        for th in self.threads:
            th.start()
        return self

    def _eps(self, i):
        nodes = list(self.nodes() if callable(self.nodes) else self.nodes)
        order = [nodes[(i + j) % len(nodes)] for j in range(len(nodes))]
        return ",".join(api_ep(n) for n in order)

    def _run(self, i):
        k = 0
        while not self.halt.is_set():
            rid = "%s-%d-%d" % (self.prefix, i, k)
            k += 1
            deadline = now() + self.rid_deadline
            while True:
                t0 = now()
                r = self.c.ctl("job", "submit", "--target", self.target, "--request-id", rid,
                               *(self.extra + [self.src]),
                               eps=self._eps(i), timeout=self.ctl_timeout, proc_timeout=30)
                t1 = now()
                with self.lock:
                    self.attempts.append((rid, t0, t1, r.rc, r.err.strip()))
                if r.rc == 0:
                    try:
                        jid = r.json()["id"]
                    except (ValueError, KeyError):
                        jid = None
                    with self.lock:
                        if rid in self.acked and self.acked[rid] != jid:
                            self.dups.append((rid, self.acked[rid], jid))
                        self.acked[rid] = jid
                        self.ack_times.append(t1)
                    break
                if r.rc not in (3, -999):
                    with self.lock:
                        self.errors.append((rid, repr(r)))
                    break
                if now() > deadline:
                    with self.lock:
                        self.unacked.append((rid, repr(r)))
                    break
                time.sleep(0.05)
            if self.pause:
                self.halt.wait(self.pause)

    def count(self):
        with self.lock:
            return len(self.acked)

    def wait_count(self, n, timeout):
        wait_for("%d acknowledged submits (load %s)" % (n, self.prefix), lambda: self.count() >= n, timeout)

    def stop(self):
        """Stops the threads (each finishes its current request id);
        returns True when all of them ended in time."""
        self.halt.set()
        for th in self.threads:
            th.join(timeout=self.rid_deadline + 40)
        self.t_stop = now()
        return not any(th.is_alive() for th in self.threads)

    def failed_attempts(self):
        with self.lock:
            return [a for a in self.attempts if a[3] != 0]

    def max_gap(self, since=None, until=None):
        """(longest time between two consecutive acknowledgements, time
        the gap began) within [since, until]; the window's ends count as
        acknowledgements, so a stall at either end is seen."""
        with self.lock:
            ts = sorted(self.ack_times)
        lo = since if since is not None else self.t_start
        hi = until if until is not None else getattr(self, "t_stop", now())
        pts = [lo] + [x for x in ts if lo <= x <= hi] + [hi]
        best = (0.0, lo)
        for a, b in zip(pts, pts[1:]):
            if b - a > best[0]:
                best = (b - a, a)
        return best

    def check(self, t, label):
        """The load generator's own checks: every request id acknowledged,
        none with two job ids, distinct ids for distinct request ids."""
        failed = self.failed_attempts()
        t.log("%s: %d submits acknowledged, %d attempts failed and were retried%s"
              % (label, len(self.acked), len(failed),
                 (" (e.g. %r)" % (failed[0][4][:160],)) if failed else ""))
        t.check("%s: threads finished" % label, not any(th.is_alive() for th in self.threads))
        t.check("%s: no write refused (exit 1 or 2)" % label, not self.errors,
                "; ".join("%s: %s" % u for u in self.errors[:3]))
        t.check("%s: every request id acknowledged (retries allowed, none given up)" % label,
                not self.unacked, "; ".join("%s: %s" % u for u in self.unacked[:3]))
        t.check("%s: no request id acknowledged with two job ids" % label, not self.dups, str(self.dups[:5]))
        ids = list(self.acked.values())
        t.check("%s: distinct request ids got distinct job ids (%d)" % (label, len(ids)),
                len(set(ids)) == len(ids) and None not in ids)


def check_jobs_everywhere(t, c, acked_ids, nodes, label, exact=True):
    """Every acknowledged job id is on every node of `nodes` (read with
    --stale from each node's own state); with `exact`, nothing else is."""
    want = set(acked_ids)
    for n in nodes:
        jids = [j["id"] for j in c.all_jobs(n, stale=True, timeout="10s")]
        missing = sorted(want - set(jids))
        extra = sorted(set(jids) - want)
        t.check("%s: node %d holds every acknowledged job (%d)%s" % (label, n, len(want),
                                                                     ", nothing else" if exact else ""),
                not missing and len(set(jids)) == len(jids) and (not exact or not extra),
                "missing %s extra %s (%d listed)" % (missing[:10], extra[:10], len(jids)))


# ---- checks and the test runner ---------------------------------------------
class Checks:
    def __init__(self, build_dir, name):
        self.build_dir = build_dir
        self.name = name
        self.passed = 0
        self.failed = 0
        self.xfailed = 0
        self.clusters = []
        self.t0 = now()

    def log(self, msg):
        print("[%6.1fs] %s" % (now() - self.t0, msg), flush=True)

    def check(self, name, cond, detail=""):
        if cond:
            self.passed += 1
            print("[%6.1fs] PASS %s%s" % (now() - self.t0, name, (": " + detail) if detail else ""), flush=True)
        else:
            self.failed += 1
            print("[%6.1fs] FAIL %s%s" % (now() - self.t0, name, (": " + detail) if detail else ""), flush=True)
        return cond

    def xfail(self, name, cond, detail, why):
        """A check known to fail because of a reported bug: counted apart,
        does not fail the run (an unexpected pass is reported loudly)."""
        if cond:
            self.passed += 1
            print("[%6.1fs] XPASS %s (expected failure no longer fails: %s)%s"
                  % (now() - self.t0, name, why, (": " + detail) if detail else ""), flush=True)
        else:
            self.xfailed += 1
            print("[%6.1fs] XFAIL %s (known bug: %s)%s" % (now() - self.t0, name, why,
                                                           (": " + detail) if detail else ""), flush=True)
        return cond

    def require(self, name, cond, detail=""):
        if not self.check(name, cond, detail):
            raise TestFailure("required check failed: %s" % name)

    def cluster(self, name=None, overrides=None, start=True, nodes=NODES, extra=(), node_overrides=None,
                tls=True):
        c = Cluster(self.build_dir, name or self.name, overrides, nodes=nodes, extra=extra,
                    node_overrides=node_overrides, tls=tls)
        self.clusters.append(c)
        self.log("cluster directory %s" % c.dir)
        if start:
            t0 = now()
            lead = c.start_all()
            self.log("cluster up: leader is node %d (%.2f s)" % (lead, now() - t0))
        return c


def run_tests(main, name=None, nodes=NODES):
    """Runs main(t) once the ports of `nodes` are free (ALL_NODES for a
    test that starts nodes 4 and 5)."""
    if len(sys.argv) != 2:
        print("usage: %s BUILD_DIR" % sys.argv[0], file=sys.stderr)
        sys.exit(2)
    name = name or os.path.splitext(os.path.basename(sys.argv[0]))[0]
    t = Checks(sys.argv[1], name)
    busy = ports_free(nodes)
    if busy:
        # Someone else (a benchmark, a manual cluster) may hold the fixed
        # ports for a while: wait a bounded time rather than collide.
        print("ports %s busy on 127.0.0.1; waiting up to %d s for them to be free"
              % (busy, PORT_WAIT), flush=True)
        deadline = now() + PORT_WAIT
        while busy and now() < deadline:
            time.sleep(1)
            busy = ports_free(nodes)
    if busy:
        print("FAIL ports already in use on 127.0.0.1: %s (another cluster running? check `ss -ltnp`)"
              % busy, flush=True)
        print("0 passed, 1 failed")
        sys.exit(1)
    error = None
    try:
        main(t)
    except TestFailure as e:
        error = str(e)
    except Exception:  # noqa: BLE001
        import traceback
        error = traceback.format_exc()
    finally:
        bad = error is not None or t.failed > 0
        for c in t.clusters:
            # Sanitizer reports on a clean stop (SIGTERM) show up as a
            # non-zero exit code; check them after every process is gone.
            keep = bad or os.environ.get("INGOT_CLUSTER_KEEP") == "1"
            if bad:
                print(c.log_tails(), flush=True)
            if keep:
                print("(kept %s for inspection)" % c.dir, flush=True)
            c.cleanup(keep=keep)
        _kill_all_started()
    if error is not None:
        t.failed += 1
        print("[%6.1fs] FAIL aborted: %s" % (now() - t.t0, error), flush=True)
    tail = " (%d expected failures)" % t.xfailed if t.xfailed else ""
    print("%d passed, %d failed%s (%.1f s)" % (t.passed, t.failed, tail, now() - t.t0), flush=True)
    sys.exit(1 if t.failed else 0)
