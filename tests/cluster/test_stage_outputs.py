#!/usr/bin/env python3
"""What a stage leaves behind, on real workers with `max_frame_bytes: 4096`
(issue 11, items 6, 7 and 14).

A worker reports a finished stage in one request (its log and every
output), and a request must fit in one frame.  With frames of 4 KiB:
1. a stage whose declared output is 10 KB: the report could never be
   delivered.  The job must end failed (it used to stay `running` for
   ever, the report lost without a log line), its error naming the
   outputs' size and max_frame_bytes.
2. a stage that prints 10 KB to its log and declares no output: the log
   is cut to fit (its end kept) and the job succeeds.
3. an output of 5 MiB: failed, naming the output, its size and the limit
   of 4 MiB per output.
4. an output that is a symbolic link (to a file outside the stage's
   directory), and one under a symlinked directory: failed, naming the
   output; nothing of what they point to is uploaded.
5. every stage of a finished job has a final state (item 7): failed at
   stage 0 -> stages `failed` (exit 3), `skipped`; cancelled while stage 0
   runs -> `killed`, `skipped` (exit status and duration nil), in JSON and
   in `job get`'s table; succeeded -> `done`, `done`.  No slot left in use.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clusterlib as cl  # noqa: E402
from test_execution import apply_yaml, job, submit, wait_final, wait_registered  # noqa: E402

OVERRIDES = {"slots": "2", "max_frame_bytes": "4096"}


def target(name, script, outputs=()):
    return ("name: %s\nstages:\n  - name: %s\n    argv: [/bin/sh, -c, '%s', s, \"{out}\"]\n"
            "    timeout: 30s\n%s" % (name, name, script,
                                      ("    outputs: [%s]\n" % ", ".join(outputs)) if outputs else ""))


def failed_with(t, c, label, tname, src, *words):
    jid = submit(c, tname, [src])
    j = wait_final(c, jid, 30)
    err = j.get("error") or ""
    t.check("%s: job %d failed naming %s" % (label, jid, ", ".join(words)),
            j["state"] == "failed" and all(w in err for w in words), "%s %r" % (j["state"], err))
    return j


def main(t):
    c = t.cluster(overrides=OVERRIDES)
    wait_registered(c)
    src = c.write_file("src/s.txt", "s\n")

    apply_yaml(c, "big", target("big", 'head -c 10000 /dev/zero > "$1/out.bin"', ["out.bin"]))
    failed_with(t, c, "a 10 KB output with 4 KiB frames", "big", src, "outputs total",
                "max_frame_bytes 4096")

    apply_yaml(c, "chatty", target("chatty", 'i=0; while [ $i -lt 2000 ]; do echo line$i; i=$((i+1)); done'))
    jid = submit(c, "chatty", [src])
    j = wait_final(c, jid, 30)
    t.check("a 10 KB log with 4 KiB frames: the log is cut, the job succeeds", j["state"] == "succeeded",
            "%s %r" % (j["state"], j.get("error")))

    apply_yaml(c, "huge", target("huge", 'head -c 5242880 /dev/zero > "$1/h.bin"', ["h.bin"]))
    failed_with(t, c, "a 5 MiB output", "huge", src, "'h.bin'", "5242880 bytes", "4194304")

    secret = c.write_file("secret.txt", "not for upload\n")
    apply_yaml(c, "link", target("link", 'ln -s %s "$1/l.txt"' % secret, ["l.txt"]))
    failed_with(t, c, "an output that is a symlink", "link", src, "'l.txt'", "symbolic link")
    apply_yaml(c, "linkdir", target("linkdir", 'ln -s %s "$1/d"' % os.path.dirname(secret),
                                    ["d/secret.txt"]))
    failed_with(t, c, "an output under a symlinked directory", "linkdir", src, "'d/secret.txt'",
                "symbolic link")

    two = ("name: two\nstages:\n  - name: a\n    argv: [/bin/sh, -c, '%s']\n    timeout: 30s\n"
           "  - name: b\n    argv: [/bin/sh, -c, 'true']\n    timeout: 30s\n")
    apply_yaml(c, "two", two.replace("%s", "exit 3"))
    jid = submit(c, "two", [src])
    j = wait_final(c, jid, 30)
    states = [(x["state"], x["exit_code"]) for x in j["stages"]]
    t.check("a job failed at stage 0: stages failed (exit 3) then skipped (issue 11 item 7)",
            j["state"] == "failed" and states == [("failed", 3), ("skipped", None)], str(states))

    apply_yaml(c, "two", two.replace("%s", "sleep 20"))
    jid = submit(c, "two", [src])
    cl.wait_for("job %d running" % jid, lambda: job(c, jid)["state"] == "running", 20)
    r = c.ctl("job", "cancel", str(jid), timeout="10s")
    j = wait_final(c, jid, 20)
    t.check("a running job is cancelled", r.rc == 0 and j["state"] == "cancelled", "%s %r" % (j["state"], r))
    states = [(x["state"], x["exit_code"], x["duration_ms"]) for x in j["stages"]]
    t.check("the cancelled job's stages: killed then skipped, none running",
            states == [("killed", None, None), ("skipped", None, None)], str(states))
    table = c.ctl("job", "get", str(jid), timeout="10s", json_out=False)
    t.check("job get shows them (table)", "killed" in table.out and "skipped" in table.out and
            " running " not in table.out.split("STAGE")[-1], table.out[-300:])

    apply_yaml(c, "two", two.replace("%s", "true"))
    jid = submit(c, "two", [src])
    j = wait_final(c, jid, 30)
    t.check("a job that succeeded: every stage done, exit 0",
            [(x["state"], x["exit_code"]) for x in j["stages"]] == [("done", 0), ("done", 0)],
            str(j["stages"])[:300])
    used = [n for n in c.ctl_json("node", "list") if n.get("used_slots")]
    t.check("no slot left in use", not used, str(used))


if __name__ == "__main__":
    cl.run_tests(main)
