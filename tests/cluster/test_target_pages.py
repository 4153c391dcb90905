#!/usr/bin/env python3
"""target.list in pages (real 3-node cluster on 127.0.0.1,
max_frame_bytes 4 MiB: the default, 17 MiB, would take seventeen such
targets to need a second page).

Five targets of about 1 MiB each (16 stages of 64 arguments of 1,000 bytes)
would make one target.list reply larger than a frame.  The node pages it:
each page stays under half a frame, `after` continues after a name,
`limit` bounds the count, an empty page is the end, and a bad `limit` or
`after` is `invalid`.  `ingotctl target list` follows the pages and lists
all five (table and JSON), on every node.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clusterlib as cl  # noqa: E402

NAMES = ["big-%d" % i for i in range(5)]


def big_target(c, name):
    arg = "a" * 1000
    stages = "".join("  - name: s%d\n    argv: [%s]\n" % (i, ", ".join([arg] * 64)) for i in range(16))
    f = c.write_file("targets/%s.yaml" % name, "name: %s\nstages:\n%s" % (name, stages))
    return c.ctl_json("target", "apply", f, timeout="20s")


def main(t):
    c = t.cluster(overrides={"max_frame_bytes": 4 << 20})
    c.wait_leader()
    for name in NAMES:
        big_target(c, name)
    ep = cl.api_ep(1)
    pages, after = [], None
    for _ in range(10):
        args = {"after": after} if after else {}
        r = cl.call(ep, "target.list", args, timeout=20)
        if r.code is not None:
            t.check("target.list page answered", False, repr(r))
            return
        if not r.result:
            break
        pages.append([tg["name"] for tg in r.result])
        after = r.result[-1]["name"]
    t.log("pages: %s" % pages)
    t.check("five 1 MiB targets come in several pages (%d)" % len(pages), len(pages) >= 2, repr(pages))
    t.check("the pages hold every target once, in name order",
            [n for p in pages for n in p] == NAMES, repr(pages))
    r = cl.call(ep, "target.list", {"limit": 1, "after": "big-2"})
    t.check("limit 1 after big-2: big-3 alone", r.code is None and [x["name"] for x in r.result] == ["big-3"],
            repr(r))
    r = cl.call(ep, "target.list", {"limit": 0})
    t.check("limit 0: invalid", r.code == "invalid", repr(r))
    r = cl.call(ep, "target.list", {"after": 7})
    t.check("after of the wrong type: invalid naming it",
            r.code == "invalid" and "after" in r.message, repr(r))
    for n in cl.NODES:
        names = [x["name"] for x in c.ctl_json("target", "list", "--stale", nodes=[n], timeout="20s")]
        t.check("ingotctl target list (json) on node %d lists all five" % n, names == NAMES, repr(names))
    r = c.ctl("target", "list", json_out=False, timeout="20s")
    t.check("ingotctl target list (table) lists all five",
            r.rc == 0 and all(name in r.out for name in NAMES), repr(r))


cl.run_tests(main)
