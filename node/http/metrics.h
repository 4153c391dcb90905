/*
 * metrics.h - the node's own metrics (docs/operations.md "Metrics"): the
 * API by operation, jobs, the scheduler and the worker.  raft/, storage/
 * and rpc/ register theirs themselves; all live in the process registry
 * (common/metrics.h) that GET /metrics renders.
 *
 * Owns: the node's metric families and series, and the count of jobs by
 * state.  Told of what happens by the modules that own the numbers, through
 * the small functions below (node/bus.h: applied, restored; the API for
 * each call; the scheduler for each assignment it proposed); at scrape time
 * it reads the rest through their getters (worker_busy, sched_unplaceable,
 * http_connections).  Every function accepts m == NULL (no metrics: they
 * could not be registered) and then does nothing.
 */
#ifndef INGOT_NODE_HTTP_METRICS_H
#define INGOT_NODE_HTTP_METRICS_H

#include <stdint.h>

#include "node/core.h"

struct sm_result;
struct rpc_call;

/* Registers the families (every series at zero) in the process registry
 * and counts the jobs in the store by state once.  ING_ENOMEM (logged). */
int metrics_new(struct node *n, struct metrics **out);
/* Removes the scrape-time callback; the series stay in the registry. */
void metrics_free(struct metrics *m);

/* node/bus.h, applied: the job changes and stage durations of one entry. */
void metrics_applied(struct metrics *m, const struct sm_result *res);
/* node/bus.h, restored: the store was replaced: count the jobs again. */
void metrics_recount(struct metrics *m);
/* api_handle: counts the call by operation and outcome when it is replied
 * to, with its latency. */
void metrics_observe_call(struct metrics *m, struct rpc_call *call);
/* The scheduler proposed an assignment, at now_ms, of a job queued since
 * queued_ms. */
void metrics_assigned(struct metrics *m, uint64_t queued_ms, uint64_t now_ms);

#endif
