/*
 * metrics.h - the node's own metrics (docs/operations.md "Metrics"): the
 * API by operation, jobs, the scheduler and the worker.  raft/, storage/
 * and rpc/ register theirs themselves; all live in the process registry
 * (common/metrics.h) that GET /metrics renders.
 *
 * The modules that own the numbers call these small functions as things
 * happen (they do nothing before node_metrics_start), and the collect
 * callback reads the rest through their getters at scrape time.
 */
#ifndef INGOT_NODE_HTTP_METRICS_H
#define INGOT_NODE_HTTP_METRICS_H

#include <stdint.h>

#include "common/str.h"

struct node;
struct sm_result;
struct rpc_call;

/* Registers the families (every series at zero) and counts the jobs in the
 * store by state once.  ING_ENOMEM. */
int node_metrics_start(struct node *n);
void node_metrics_stop(struct node *n);

/* node.c, apply path: the job changes and stage durations of one apply. */
void node_metrics_applied(struct node *n, const struct sm_result *res);
/* node.c: the store was replaced by a snapshot: count the jobs again. */
void node_metrics_recount(struct node *n);
/* api.c: counts the call by operation and outcome when it is replied to. */
void node_metrics_observe_call(struct rpc_call *call);
/* scheduler.c: an assignment was proposed for a job queued since queued_ms. */
void node_metrics_assigned(struct node *n, uint64_t queued_ms);

#endif
