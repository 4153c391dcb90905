#!/usr/bin/env python3
"""Target descriptions, per-stage resource limits and stdout capture on a
real 3-node cluster (slots 2 per node).

1. A target with a description, a stage `[echo, hello]` with `stdout:
   out.txt` and limits: `target get` shows the description, the limits map
   and stdout; the job succeeds and `job get` lists out.txt (6 bytes) among
   the stage's outputs; its content is "hello\\n" (job fetch).
2. A stage `[sh, -c, "head -c 100000 /dev/zero > {out}/big"]` with
   `limits: {output: 4096}` (RLIMIT_FSIZE, set by the stage's process on itself before its exec): the job fails,
   naming the stage.
3. target.put refuses an unknown limits key and out-of-range limits, and a
   stdout that is also a declared output.
4. Job parameters: a stage `[sh, -c, "echo {param:GAIN} > {out}/g.txt"]`;
   submitted with `--param GAIN=42` the job succeeds, `job get` shows the
   params and g.txt holds "42\n" (job fetch); a retry keeps the params;
   submitted without it the submit is refused naming GAIN, nothing stored
   (issue 11 item 8); a bad --param is a
   usage error (exit 2).
5. One 4 MiB source (the per-source limit) fits a default frame: accepted
   and run (issue 11 item 20).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clusterlib as cl  # noqa: E402
from test_execution import apply_yaml, job, raw_call, submit, wait_final, wait_registered  # noqa: E402

OVERRIDES = {"slots": "2"}


def main(t):
    c = t.cluster(overrides=OVERRIDES)
    wait_registered(c)
    src = c.write_file("src/in.txt", "x\n")

    # ---- 1. stdout capture, description, limits shown -----------------------
    r = apply_yaml(c, "t-stdout",
                   "name: t-stdout\n"
                   "description: echo into a file\n"
                   "stages:\n"
                   "  - name: hello\n"
                   "    argv: [echo, hello]\n"
                   "    timeout: 30s\n"
                   "    stdout: out.txt\n"
                   "    limits: {cpu: 10s, memory: 512MiB, open_files: 256, output: 1MiB}\n")
    t.check("t-stdout applied", r.get("name") == "t-stdout", repr(r))
    tg = c.ctl_json("target", "get", "t-stdout", timeout="10s")
    st = tg["stages"][0]
    t.check("target get shows the description", tg.get("description") == "echo into a file", repr(tg))
    t.check("target get shows stdout", st.get("stdout") == "out.txt", repr(st))
    t.check("target get shows the limits",
            st.get("limits") == {"cpu_seconds": 10, "memory_bytes": 512 << 20,
                                 "open_files": 256, "output_bytes": 1 << 20, "processes": 0},
            repr(st.get("limits")))
    jid = submit(c, "t-stdout", [src])
    j = wait_final(c, jid, 60)
    t.check("stdout job succeeded", j["state"] == "succeeded", "%s %r" % (j["state"], j.get("error")))
    outs = {f["path"]: f["size"] for f in (j["stages"][0]["outputs"] if j["stages"] else [])}
    t.check("job get lists out.txt of 6 bytes", outs.get("out.txt") == 6, repr(outs))
    dest = c.path("fetched")
    r = c.ctl("job", "fetch", str(jid), dest, timeout="10s", json_out=False)
    found = None
    try:
        with open(os.path.join(dest, "0-out.txt"), "rb") as f:
            found = f.read()
    except OSError:
        pass
    t.check("fetched out.txt holds the stage's stdout", found == b"hello\n", "%r rc=%s %s" % (found, r.rc, r.err))

    # ---- 2. output limit ----------------------------------------------------
    r = apply_yaml(c, "t-fsize",
                   "name: t-fsize\n"
                   "stages:\n"
                   "  - name: big\n"
                   "    argv: [sh, -c, \"head -c 100000 /dev/zero > {out}/big\"]\n"
                   "    timeout: 30s\n"
                   "    limits: {output: 4096}\n")
    t.check("t-fsize applied", r.get("name") == "t-fsize", repr(r))
    jid = submit(c, "t-fsize", [src])
    j = wait_final(c, jid, 60)
    t.check("a stage writing past its output limit fails the job", j["state"] == "failed",
            "%s %r" % (j["state"], j.get("error")))
    t.check("the error names the stage", "'big'" in (j.get("error") or ""), repr(j.get("error")))

    # ---- 3. refused specs ---------------------------------------------------
    stage = {"name": "s", "argv": ["true"]}
    bad = [
        (dict(stage, limits={"cpu": 1}), "unknown argument 'cpu'"),
        (dict(stage, limits={"open_files": 8}), "open_files 8"),
        (dict(stage, limits={"memory_bytes": 1000}), "memory_bytes 1000"),
        (dict(stage, limits={"cpu_seconds": 86401}), "cpu_seconds 86401"),
        (dict(stage, outputs=["a.txt"], stdout="a.txt"), "also a declared output"),
        (dict(stage, stdout="../x"), "stdout: invalid path"),
    ]
    for spec, want in bad:
        err, _ = raw_call(c.leader(), "target.put", {"name": "t-bad", "stages": [spec]})
        t.check("target.put refuses %r" % (spec,), err is not None and want in err[1], repr(err))

    # ---- 4. job parameters --------------------------------------------------
    r = apply_yaml(c, "t-param",
                   "name: t-param\n"
                   "stages:\n"
                   "  - name: gain\n"
                   "    argv: [sh, -c, \"echo {param:GAIN} > {out}/g.txt\"]\n"
                   "    timeout: 30s\n"
                   "    outputs: [g.txt]\n")
    t.check("t-param applied", r.get("name") == "t-param", repr(r))
    jid = submit(c, "t-param", [src], "--param", "GAIN=42", "--param", "UNUSED=x y")
    j = wait_final(c, jid, 60)
    t.check("job with GAIN succeeded", j["state"] == "succeeded", "%s %r" % (j["state"], j.get("error")))
    t.check("job get shows the params", j.get("params") == {"GAIN": "42", "UNUSED": "x y"},
            repr(j.get("params")))
    outs = {f["path"]: f["size"] for f in (j["stages"][0]["outputs"] if j["stages"] else [])}
    t.check("job get lists g.txt of 3 bytes", outs.get("g.txt") == 3, repr(outs))
    dest = c.path("fetched-param")
    r = c.ctl("job", "fetch", str(jid), dest, timeout="10s", json_out=False)
    found = None
    try:
        with open(os.path.join(dest, "0-g.txt"), "rb") as f:
            found = f.read()
    except OSError:
        pass
    t.check("g.txt holds the parameter's value", found == b"42\n", "%r rc=%s %s" % (found, r.rc, r.err))
    table = c.ctl("job", "get", str(jid), timeout="10s", json_out=False)
    t.check("job get table shows the params", "GAIN=42" in table.out, table.out)

    # Without GAIN: refused at submit, before any stage runs, nothing stored
    # (issue 11 item 8; it used to fail only when the stage started).
    before = len(c.all_jobs())
    r = c.ctl("job", "submit", "--target", "t-param", src, timeout="10s", json_out=False)
    want = "stage 'gain': argv uses {param:GAIN} but the job has no parameter GAIN"
    t.check("a job without GAIN is refused at submit (exit 1) naming the parameter",
            r.rc == 1 and want in r.err and "invalid" in r.err, "rc=%s %s" % (r.rc, r.err))
    t.check("... and nothing is stored", len(c.all_jobs()) == before, "%d -> %d jobs" % (before, len(c.all_jobs())))
    r = c.ctl("job", "submit", "--target", "t-param", "--param", "OTHER=1", src, timeout="10s", json_out=False)
    t.check("a job with other parameters but not GAIN is refused too", r.rc == 1 and "GAIN" in r.err,
            "rc=%s %s" % (r.rc, r.err))

    # A job failing on its own exit code, retried: the retry keeps the params
    # (the stage runs again with them and fails on the exit code, not on a
    # missing parameter).
    r = apply_yaml(c, "t-param-exit",
                   "name: t-param-exit\n"
                   "stages:\n"
                   "  - name: code\n"
                   "    argv: [sh, -c, \"echo {param:GAIN} > {out}/g.txt; exit {param:CODE}\"]\n"
                   "    timeout: 30s\n"
                   "    outputs: [g.txt]\n")
    t.check("t-param-exit applied", r.get("name") == "t-param-exit", repr(r))
    jid = submit(c, "t-param-exit", [src], "--param", "GAIN=9", "--param", "CODE=3")
    j = wait_final(c, jid, 60)
    t.check("job exiting 3 failed", j["state"] == "failed", "%s %r" % (j["state"], j.get("error")))
    r = c.ctl("job", "retry", str(jid), timeout="10s")
    t.check("retry accepted", r.rc == 0, "rc=%s %s" % (r.rc, r.err))
    j = cl.wait_for("retried job %d to end" % jid,
                    lambda: (lambda x: x if x["attempt"] >= 2 and x["state"] in ("succeeded", "failed")
                             else None)(job(c, jid)), 60, interval=0.2)
    t.check("the retry keeps the params", j.get("params") == {"GAIN": "9", "CODE": "3"},
            repr(j.get("params")))
    t.check("the retried attempt ran with them", j["state"] == "failed" and "GAIN" not in (j.get("error") or "")
            and j["stages"] and j["stages"][0].get("exit_code") == 3, repr(j))

    r = c.ctl("job", "submit", "--target", "t-param", "--param", "1X=2", src, timeout="10s", json_out=False)
    t.check("a bad --param name is a usage error", r.rc == 2 and "not a parameter name" in r.err,
            "rc=%s %s" % (r.rc, r.err))
    r = c.ctl("job", "submit", "--target", "t-param", "--param", "GAIN", src, timeout="10s", json_out=False)
    t.check("--param without '=' is a usage error", r.rc == 2 and "NAME=VALUE" in r.err,
            "rc=%s %s" % (r.rc, r.err))

    # ---- 5. the limits agree: a 4 MiB source fits a default frame ---------
    # (issue 11 item 20: formats.md allows 4 MiB per source, and it did not
    # fit in the 4 MiB frames of the time).
    apply_yaml(c, "t-size", "name: t-size\nstages:\n  - name: wc\n    argv: [wc, -c, \"{source}\"]\n"
               "    timeout: 30s\n")
    big = c.path("src-4mib.bin")
    with open(big, "wb") as f:
        f.write(b"\x5a" * (4 << 20))
    jid = submit(c, "t-size", [big])
    j = wait_final(c, jid, 60)
    t.check("a job with one 4 MiB source is accepted and runs", j["state"] == "succeeded",
            "%s %r" % (j["state"], j.get("error")))


if __name__ == "__main__":
    cl.run_tests(main)
