/*
 * probe.h - what this machine can run, found at start (probe.c).
 */
#ifndef INGOT_NODE_WORKER_PROBE_H
#define INGOT_NODE_WORKER_PROBE_H

#include "node/config.h"

/* Adds the toolchains on the stages' PATH (cc, gcc, clang, nvcc, nm,
 * objdump) and CPU features (avx2, avx512f, fma) to c's capabilities, the
 * architecture as label `arch` unless the configuration has one, and
 * discovered NVIDIA GPUs as capability `cuda` with labels gpu_model,
 * gpu_arch, gpu_driver and gpu_cuda.  Never removes anything; the probing
 * of toolchains and CPU is off when c->probe is false.  Also sets the GPUs
 * the node offers (c->gpus) from discovery and config `gpus`. */
void probe_config(struct node_config *c);

#endif
