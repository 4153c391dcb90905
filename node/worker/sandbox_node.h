/*
 * sandbox_node.h - the node's stage sandbox made from its configuration
 * (sandbox_node.c tells how and in which order).
 */
#ifndef INGOT_NODE_WORKER_SANDBOX_NODE_H
#define INGOT_NODE_WORKER_SANDBOX_NODE_H

#include <uv.h>

#include "node/config.h"

struct sandbox_host;

/*
 * At start, once data_dir exists and before the worker reaps old attempt
 * directories: cleans what a previous run's sandboxes left, then makes the
 * sandbox host the worker will own (worker_set_sandbox).  NULL when
 * `sandbox: off` or when it cannot be made; then it says why at error
 * level, sets c->slots to 0 (the node takes no work) unless the sandbox is
 * off.  Sets the "sandbox" label of `c` in every case.  Never fails the
 * start.
 */
struct sandbox_host *sandbox_node_prepare(uv_loop_t *loop, struct node_config *c);

#endif
