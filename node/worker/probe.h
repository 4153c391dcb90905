/*
 * probe.h - what this machine can run, found at start (probe.c).
 */
#ifndef INGOT_NODE_WORKER_PROBE_H
#define INGOT_NODE_WORKER_PROBE_H

#include "node/config.h"

/* Adds the toolchains on the stages' PATH (cc, gcc, clang, nvcc, nm,
 * objdump) and CPU features (avx2, avx512f, fma) to c's capabilities, and
 * the architecture as label `arch` unless the configuration has one.
 * Never removes anything; does nothing when c->probe is false. */
void probe_config(struct node_config *c);

#endif
