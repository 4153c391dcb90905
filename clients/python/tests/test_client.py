"""The Python client against a real 3-node cluster (tests/cluster/clusterlib.py
starts the ingotd processes on 127.0.0.1; the build directory comes from
INGOT_BUILD_DIR).  Run by ctest as python/client (scripts/test)."""
import os
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, os.path.join(HERE, "..", "..", "..", "tests", "cluster"))
import clusterlib as cl  # noqa: E402

import ingot  # noqa: E402
from ingot import errors  # noqa: E402

TARGET_STAGES = [{"name": "build", "argv": ["sh", "-c", "echo log-of-build; wc -c < \"$0\"", "{source}"]}]


@pytest.fixture(scope="module")
def cluster():
    build = os.environ.get("INGOT_BUILD_DIR")
    if not build:
        pytest.fail("set INGOT_BUILD_DIR to the build directory (ingotd, ingotctl)")
    deadline = time.monotonic() + cl.PORT_WAIT
    while cl.ports_free() and time.monotonic() < deadline:
        time.sleep(1)
    c = cl.Cluster(build, "pyclient", {"slots": "1"})
    ok = False
    try:
        c.start_all()
        yield c
        ok = True
    finally:
        if not ok:
            print(c.log_tails())
        c.cleanup(keep=not ok)


@pytest.fixture()
def client(cluster):
    return ingot.Client([cl.http_ep(n) for n in cl.NODES], timeout=15, ssl_context=cl.TLS_CONTEXT or None)


def test_status_and_members(client):
    st = client.status()
    assert isinstance(st, ingot.Status) and st.leader in cl.NODES
    assert sorted(m.id for m in client.members()) == list(cl.NODES)
    assert all(isinstance(m, ingot.Member) for m in st.members)


def test_submit_watch_log_artifact(client):
    assert client.put_target("t-py", TARGET_STAGES, description="python client") >= 1
    jid = client.submit("t-py", {"in.txt": b"0123456789"}, priority=70, params={"x": "1"})
    items = list(client.watch(jid))
    events, final = items[:-1], items[-1]
    assert isinstance(final, ingot.Job) and final.state == "succeeded" and final.final
    assert [e.kind for e in events][0] == "submitted" and events[-1].kind == "succeeded"
    assert [e.seq for e in events] == list(range(len(events)))
    assert b"log-of-build" in client.log(jid, 0)
    job = client.job(jid)
    assert job.priority == 70 and job.params == {"x": "1"} and job.sources[0].size == 10
    assert client.artifact(job.sources[0].sha256, job=jid) == b"0123456789"
    assert client.artifact(job.stages[0].log_sha256).startswith(b"log-of-build")


def test_errors_are_typed(client):
    with pytest.raises(errors.NotFound) as e:
        client.job(987654)
    assert e.value.code == "not_found" and e.value.status == 404 and "987654" in e.value.message
    with pytest.raises(errors.Invalid):
        client.submit("t-py", {}, priority=70)
    with pytest.raises(errors.NotFound):
        client.submit("no-such-target", {"a": b"x"})
    with pytest.raises(errors.Invalid):
        client.log_level("loud")
    assert issubclass(errors.Unreachable, errors.IngotError)
    assert errors.error_for("new_name", "m").code == "new_name"


def test_idempotent_retry_through_other_nodes(client):
    client.put_target("t-py", TARGET_STAGES)
    ids = set()
    for n in cl.NODES:
        one = ingot.Client([cl.http_ep(n)], timeout=15, ssl_context=cl.TLS_CONTEXT or None)
        ids.add(one.submit("t-py", {"in.txt": b"x"}, request_id="py-same-key"))
    assert len(ids) == 1


def test_paging(client):
    client.put_target("t-py", TARGET_STAGES)
    made = [client.submit("t-py", {"in.txt": b"y"}) for _ in range(5)]
    page = client.jobs(limit=2)
    assert len(page.jobs) == 2 and page.next is not None
    every = [j.id for j in client.iter_jobs(page_size=2)]
    assert every == sorted(every) and set(made) <= set(every)
    assert all(isinstance(j, ingot.Job) for j in client.jobs(target="t-py").jobs)


def test_cancel_retry_nodes_drain(client, cluster):
    client.put_target("t-never", TARGET_STAGES, capabilities=["no-such-capability"])
    jid = client.submit("t-never", {"in.txt": b"z"})
    assert client.cancel(jid, reason="py test") == "cancelled"
    assert client.retry(jid) == "queued"
    client.cancel(jid)
    nodes = client.nodes()
    assert sorted(n.id for n in nodes) == list(cl.NODES)
    client.drain(nodes[0].id)
    assert client.nodes()[0].draining
    client.undrain(nodes[0].id)
    assert not client.nodes()[0].draining
    # Only a node that is down and runs nothing can be forgotten.
    with pytest.raises(errors.Conflict):
        client.forget(nodes[0].id)
    with pytest.raises(errors.NotFound):
        client.forget(99)


def test_snapshot_and_log_level(client, cluster, tmp_path):
    snap = client.save_snapshot(str(tmp_path / "c.snap"))
    assert snap.size == os.path.getsize(snap.path) and open(snap.path, "rb").read(8) == b"INGOTSNP"
    assert client.log_level("warn") == "warn"
    assert client.log_level() == "warn"
    client.log_level("info")
    assert client.call("node.info")["id"] in cl.NODES


def test_fails_over_to_a_live_node(client, cluster):
    """With the first endpoint's node stopped, every call goes to the next
    one; writes through it are forwarded to whatever leader there is."""
    first = cl.NODES[0]
    cluster.stop(first)
    try:
        c = ingot.Client([cl.http_ep(n) for n in cl.NODES], timeout=20, ssl_context=cl.TLS_CONTEXT or None)
        jid = c.submit("t-py", {"in.txt": b"failover"}, request_id="py-failover")
        assert c.job(jid).id == jid
        assert c.submit("t-py", {"in.txt": b"failover"}, request_id="py-failover") == jid
        with pytest.raises(errors.Unreachable):
            ingot.Client([cl.http_ep(first)], timeout=1, ssl_context=cl.TLS_CONTEXT or None).status()
    finally:
        cluster.start(first)
        cluster.wait_leader()
