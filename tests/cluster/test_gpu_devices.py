#!/usr/bin/env python3
"""A GPU attempt's sandbox holds exactly its GPUs' device files, on one
real node without a GPU: the stand-in NVML (tests/nvml/, two GPUs whose
minor numbers are swapped: GPU 0 is /dev/nvidia1, GPU 1 /dev/nvidia0) and
scratch character devices (copies of /dev/null made with mknod) in a
directory that stands in for /dev (INGOT_NVIDIA_DEV_DIR, a testing aid):
nvidia0, nvidia1, nvidia2 (a GPU the node does not offer), nvidiactl,
nvidia-uvm, nvidia-uvm-tools, nvidia-modeset, nvidia-caps/nvidia-cap1.

0. `ingotd gpus` shows each GPU's device file (GPU 0: /dev/nvidia1).
1. Discovered GPUs: two 1-GPU jobs run at once; each stage lists the
   nvidia files of its /dev: the control files, nvidia-caps and the device
   file of its own GPU by minor number (GPU 0: nvidia1; GPU 1: nvidia0),
   never the other job's GPU nor nvidia2; CUDA_VISIBLE_DEVICES is the GPU's
   uuid.  A 2-GPU job gets both files and both uuids; a job without GPUs no
   nvidia file at all and CUDA_VISIBLE_DEVICES "".  No "GPU ISOLATION
   WEAKER" in the log.
2. A GPU declared by the config (`gpus: [0, 5]`: 5 is not discovered): the
   start log warns "GPU ISOLATION WEAKER gpus=5"; a job holding GPUs 0 and 5
   gets every nvidia file and CUDA_VISIBLE_DEVICES by index ("0,5"), while a
   job holding only GPU 0 is still kept to nvidia1 and its uuid.
3. `sandbox_devices: [/dev/nvidia0]` (or `/dev/./nvidia-uvm`) is refused (exit 2, naming the key):
   the worker alone gives NVIDIA files, to the attempts holding GPUs.
"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clusterlib as cl  # noqa: E402
from test_execution import (apply_yaml, node_list, submit, wait_final,  # noqa: E402
                            wait_registered)

UUID = "GPU-00000000-fake-4000-8000-%012d"
CONTROL = ["nvidia-caps", "nvidia-caps/nvidia-cap1", "nvidia-modeset", "nvidia-uvm",
           "nvidia-uvm-tools", "nvidiactl"]

# Lists the nvidia files of the stage's /dev and its CUDA_VISIBLE_DEVICES,
# then sleeps {param:T} s (so that two jobs overlap).
TARGET = """name: NAME
GPUS
stages:
  - name: show
    argv:
      - sh
      - -c
      - |
        cd /dev && find . -name 'nvidia*' | sed 's|^./||' | sort > "$1/devs"
        printf '[%s]' "${CUDA_VISIBLE_DEVICES-unset}" > "$1/cvd"
        exec sleep "$2"
      - show
      - "{out}"
      - "{param:T}"
    timeout: 30s
    outputs: [devs, cvd]
"""


def target(c, name, gpus):
    apply_yaml(c, name, TARGET.replace("NAME", name)
               .replace("GPUS", "gpus: %d" % gpus if gpus else ""))


def make_dev_dir(path):
    os.makedirs(os.path.join(path, "nvidia-caps"))
    for name in ["nvidia0", "nvidia1", "nvidia2"] + [n for n in CONTROL if n != "nvidia-caps"]:
        p = os.path.join(path, name)
        os.mknod(p, 0o666 | 0o020000, os.makedev(1, 3))  # S_IFCHR: a /dev/null copy
        os.chmod(p, 0o666)


def seen(c, jid, tmp):
    """(nvidia files, CUDA_VISIBLE_DEVICES) the job's stage saw."""
    d = os.path.join(tmp, "fetch-%d" % jid)
    c.ctl_json("job", "fetch", jid, d, timeout="10s")
    with open(os.path.join(d, "0-devs")) as f:
        devs = f.read().split()
    with open(os.path.join(d, "0-cvd")) as f:
        return devs, f.read().strip()


def run_jobs(t, c, tmp, specs):
    """Submits (target, T) jobs, waits for them; returns their ids and
    job records, checking each succeeded."""
    src = c.write_file("src/k.txt", "kernel\n")
    ids = [submit(c, name, [src], "--param", "T=%s" % secs) for name, secs in specs]
    out = []
    for jid in ids:
        jf = wait_final(c, jid, 30)
        t.check("job %d succeeded" % jid, jf["state"] == "succeeded", str(jf["error"]))
        out.append(jf)
    return ids, out


def discovered(t, c, tmp):
    ids, jobs = run_jobs(t, c, tmp, [("gpu-one", 3), ("gpu-one", 3)])
    t.check("two 1-GPU jobs held GPUs 0 and 1 at once",
            sorted(j["gpus"][0] for j in jobs) == [0, 1], str([j["gpus"] for j in jobs]))
    for jid, j in zip(ids, jobs):
        gpu = j["gpus"][0]
        devs, cvd = seen(c, jid, tmp)
        own = "nvidia%d" % (1 - gpu)  # the stand-in swaps the minors
        t.check("GPU %d: only the control files and %s (its minor) in /dev" % (gpu, own),
                devs == sorted(CONTROL + [own]), " ".join(devs))
        t.check("GPU %d: CUDA_VISIBLE_DEVICES is its uuid" % gpu,
                cvd == "[%s]" % (UUID % gpu), cvd)
    ids, jobs = run_jobs(t, c, tmp, [("gpu-two", 0), ("plain", 0)])
    devs, cvd = seen(c, ids[0], tmp)
    t.check("2 GPUs: both device files, both uuids",
            devs == sorted(CONTROL + ["nvidia0", "nvidia1"]) and
            cvd == "[%s,%s]" % (UUID % 0, UUID % 1), "%s %s" % (" ".join(devs), cvd))
    devs, cvd = seen(c, ids[1], tmp)
    t.check("no GPU: no nvidia file at all, CUDA_VISIBLE_DEVICES empty",
            devs == [] and cvd == "[]", "%s %s" % (" ".join(devs), cvd))
    t.check("no weaker-isolation warning with discovered GPUs",
            "GPU ISOLATION WEAKER" not in c.log(1))


def declared(t, c, tmp):
    c.stop(1)
    c.configure(1, gpus="[0, 5]")
    c.restart(1)
    cl.wait_for("node 1 offers GPUs 0 and 5", lambda: sorted(
        g["index"] for g in node_list(c).get(1, {}).get("gpus", [])
        if g["offered"]) == [0, 5], 30, interval=0.2)
    t.check("the start log warns: GPU 5 declared, weaker isolation",
            "GPU ISOLATION WEAKER gpus=5 " in c.log(1), "")
    ids, jobs = run_jobs(t, c, tmp, [("gpu-two", 0), ("gpu-one", 0)])
    devs, cvd = seen(c, ids[0], tmp)
    t.check("GPUs 0 and 5 (5 declared): every nvidia file, indexes",
            jobs[0]["gpus"] == [0, 5] and
            devs == sorted(CONTROL + ["nvidia0", "nvidia1", "nvidia2"]) and cvd == "[0,5]",
            "%s %s %s" % (jobs[0]["gpus"], " ".join(devs), cvd))
    devs, cvd = seen(c, ids[1], tmp)
    t.check("GPU 0 alone (discovered) on that node: still only nvidia1 and its uuid",
            jobs[1]["gpus"] == [0] and devs == sorted(CONTROL + ["nvidia1"]) and
            cvd == "[%s]" % (UUID % 0), "%s %s %s" % (jobs[1]["gpus"], " ".join(devs), cvd))


def refused_config(t, c):
    for dev in ("/dev/nvidia0", "/dev/./nvidia-uvm"):
        cfg = c.write_file("bad-devices.yaml", "id: 9\ndata_dir: %s\nraft_address: 127.0.0.1:1\n"
                           "api_address: 127.0.0.1:2\npeers:\n  - {id: 9, raft_address: "
                           "127.0.0.1:1, api_address: 127.0.0.1:2}\nsandbox_devices: [%s]\n"
                           % (c.path("bad-data"), dev))
        p = subprocess.run([c.ingotd, "--config", cfg], capture_output=True, text=True, timeout=30)
        t.check("sandbox_devices: [%s] is refused (exit 2) naming the key" % dev,
                p.returncode == 2 and "key 'sandbox_devices'" in p.stderr and
                dev in p.stderr and not os.path.exists(c.path("bad-data")),
                "rc=%d %s" % (p.returncode, p.stderr))


def ingotd_gpus(t, c):
    p = subprocess.run([c.ingotd, "gpus"], capture_output=True, text=True, timeout=30)
    rows = {ln.split()[0]: ln.split()[4] for ln in p.stdout.splitlines()[2:]}
    t.check("ingotd gpus shows each GPU's device file (GPU 0: /dev/nvidia1)",
            p.returncode == 0 and "DEVICE" in p.stdout and
            rows == {"0": "/dev/nvidia1", "1": "/dev/nvidia0"}, p.stdout + p.stderr)


def main(t):
    fake = os.path.join(t.build_dir, "libingot_fake_nvml.so")
    c = t.cluster(nodes=(1,), start=False, overrides={"slots": "3"})
    dev = c.path("fake-dev")
    make_dev_dir(dev)
    os.environ["INGOT_NVML_LIBRARY"] = fake
    os.environ["INGOT_NVIDIA_DEV_DIR"] = dev
    os.environ.pop("INGOT_FAKE_NVML", None)
    ingotd_gpus(t, c)
    c.start_all()
    wait_registered(c, nodes=(1,))
    tmp = c.path("fetched")
    target(c, "gpu-one", 1)
    target(c, "gpu-two", 2)
    target(c, "plain", 0)
    discovered(t, c, tmp)
    declared(t, c, tmp)
    refused_config(t, c)
    jobs_left = [j for j in c.all_jobs() if j["state"] != "succeeded"]
    t.check("finally: every job succeeded", jobs_left == [], str(jobs_left))


cl.run_tests(main)
