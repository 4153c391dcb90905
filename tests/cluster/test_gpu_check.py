#!/usr/bin/env python3
"""scripts/gpu-check on a machine without an NVIDIA GPU (CI, development).

1. A bad argument is exit 2; without a GPU (no NVML here) gpu-check says
   "no NVIDIA GPU found" with NVML's reason and exits 1, starting nothing.
2. --bundle DIR copies ingotd, ingotctl, every shared library they load
   except glibc's (ldd with DIR/lib on LD_LIBRARY_PATH then resolves each
   of them inside DIR/lib), the CUDA examples and both target files; the
   bundle's own gpu-check runs from there (bundle mode) and says the same.
3. With the stand-in NVML (INGOT_NVML_LIBRARY, tests/nvml/) and the nvcc
   installed here, the whole cluster path runs: one real ingotd registers
   the cuda capability from discovery, the targets are applied, four jobs
   are submitted, watched, their logs read and outputs fetched.  Every
   job's build stage succeeds (real nvcc, sm_90) and its run stage fails
   with the harness's "no CUDA device": four FAIL lines saying so, exit 1,
   the node stopped and its port free again.  Skipped without nvcc.
On a machine with a real GPU, parts 1 and 3 are skipped (gpu-check is then
meant to pass there: docs/performance.md).
"""
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clusterlib as cl  # noqa: E402

GPU_CHECK = os.path.join(cl.SOURCE_DIR, "scripts", "gpu-check")
GLIBC = ("ld-linux", "libc.so", "libm.so", "libpthread.so", "libdl.so", "librt.so", "libresolv.so",
         "libutil.so", "libmvec.so", "linux-vdso")


def run(argv, env=None, timeout=240):
    e = dict(os.environ)
    e.pop("INGOT_NVML_LIBRARY", None)
    e.update(env or {})
    p = subprocess.run(argv, capture_output=True, text=True, env=e, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def have_real_gpu():
    return shutil.which("nvidia-smi") is not None and \
        subprocess.run(["nvidia-smi", "-L"], capture_output=True).returncode == 0


def main(t):
    build = os.path.abspath(t.build_dir)
    tmp = tempfile.mkdtemp(prefix="test_gpu_check.")
    try:
        # ---- 1. usage, no GPU --------------------------------------------------
        rc, out, err = run([GPU_CHECK, "--no-such-option"])
        t.check("unknown option: exit 2", rc == 2 and "unknown argument" in err, err)
        rc, out, err = run([GPU_CHECK, "--build", os.path.join(tmp, "nope")])
        t.check("--build of a missing directory: exit 2", rc == 2 and "--build" in err, err)
        real_gpu = have_real_gpu()
        if real_gpu:
            t.log("a real NVIDIA GPU is here: the no-GPU and stand-in parts are skipped")
        else:
            rc, out, err = run([GPU_CHECK, "--build", build])
            t.check("no GPU: exit 1", rc == 1, "rc=%d" % rc)
            t.check("no GPU: says so with NVML's reason",
                    "gpu-check: no NVIDIA GPU found (libnvidia-ml.so.1" in err, err)
            t.check("no GPU: one FAIL line", out.strip() == "FAIL  no NVIDIA GPU found", out)

        # ---- 2. the bundle ------------------------------------------------------
        bdir = os.path.join(tmp, "bundle")
        rc, out, err = run([GPU_CHECK, "--build", build, "--bundle", bdir])
        t.require("--bundle: exit 0", rc == 0, err + out)
        for f in ("gpu-check", "bin/ingotd", "bin/ingotctl", "examples/cuda_harness.h",
                  "examples/fir/fir_wrong.cu", "examples/mixer/ref_out.txt",
                  "cluster-configs/targets/cuda-sm90-verify.yaml",
                  "cluster-configs/targets/cuda-verify.yaml"):
            t.check("bundle has " + f, os.path.isfile(os.path.join(bdir, f)))
        libs = sorted(os.listdir(os.path.join(bdir, "lib")))
        for want in ("libraft.so", "libuv.so", "liblmdb.so", "libmsgpackc.so", "libyaml-0.so",
                     "libjansson.so", "liblz4.so"):
            ok = any(lib.startswith(want) for lib in libs)
            t.check("bundle has " + want, ok, "" if ok else str(libs))
        ok = not any(lib.startswith(GLIBC) for lib in libs)
        t.check("bundle has no glibc library", ok, "" if ok else str(libs))
        rc, out, err = run(["ldd", os.path.join(bdir, "bin", "ingotd"),
                            os.path.join(bdir, "bin", "ingotctl")],
                           env={"LD_LIBRARY_PATH": os.path.join(bdir, "lib")})
        outside = [ln.strip() for ln in out.splitlines() if "=>" in ln and
                   not ln.strip().startswith(GLIBC) and os.path.join(bdir, "lib") not in ln]
        t.check("ldd: every non-glibc library resolves inside the bundle",
                rc == 0 and not outside, "\n".join(outside) or err)
        if not real_gpu:
            rc, out, err = run([os.path.join(bdir, "gpu-check")])
            t.check("bundle's gpu-check runs and finds no GPU",
                    rc == 1 and "no NVIDIA GPU found" in err, "rc=%d %s" % (rc, err))

        # ---- 3. the cluster path with the stand-in NVML ---------------------------
        fake = os.path.join(build, "libingot_fake_nvml.so")
        if real_gpu:
            return
        if shutil.which("nvcc", path="/usr/local/bin:/usr/bin:/bin:/usr/local/cuda/bin") is None:
            t.log("SKIP stand-in run: nvcc not installed")
            return
        outdir = os.path.join(tmp, "out")
        rc, out, err = run([GPU_CHECK, "--build", build, "--out", outdir],
                           env={"INGOT_NVML_LIBRARY": fake})
        t.log("gpu-check output:\n" + out + err)
        t.check("stand-in: exit 1", rc == 1, "rc=%d" % rc)
        t.check("stand-in: the node came up with cuda, target cuda-sm90-verify",
                "target --target cuda-sm90-verify" in out, out)
        lines = [ln for ln in out.splitlines() if ln.startswith(("PASS", "FAIL"))]
        t.check("stand-in: four FAIL lines", len(lines) == 4 and
                all(ln.startswith("FAIL") for ln in lines), "\n".join(lines))
        t.check("stand-in: each names the harness's no CUDA device",
                all("harness: no CUDA device" in ln for ln in lines), "\n".join(lines))
        for name in ("fir", "fft", "mixer", "fir_wrong"):
            with open(os.path.join(outdir, name + ".log"), errors="replace") as f:
                log = f.read()
            t.check("stand-in: %s built by nvcc, then the run stage exited 3" % name,
                    "nvcc -arch=sm_90" in log and "== stage 0 (exit 0" in log and
                    "== stage 1 (exit 3" in log, log[-400:])
        with open(os.path.join(outdir, "summary.txt")) as f:
            t.check("stand-in: summary.txt holds the four lines", f.read().splitlines() == lines)
        t.check("stand-in: the node's log was kept",
                os.path.isfile(os.path.join(outdir, "ingotd.log")))
        t.check("stand-in: the node is stopped (its ports are free)", not cl.ports_free((9,)))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


cl.run_tests(main, nodes=(9,))
