/*
 * worker.h - runs the attempts the state machine assigns to this node
 * (worker.c tells how).
 *
 * Owns: the attempts running here (each with its directory under
 * data_dir/work/, its stage run, its report in flight and its retry timer),
 * whether entries were applied since it last looked, and the attempts that
 * ended here lately.  Each attempt holds the node (node_hold) until its
 * last handle is closed.
 *
 * Reports go to this node's own API (node/request.h), which forwards them
 * to the leader like any write.  Errors are not returned: what goes wrong
 * with an attempt is reported as its failure (`finish` failed, naming the
 * stage and the cause) and logged.
 */
#ifndef INGOT_NODE_WORKER_WORKER_H
#define INGOT_NODE_WORKER_WORKER_H

#include "node/core.h"

struct worker;

/* ING_ENOMEM, or 0 and *out.  The first flush looks at the assignments. */
int worker_new(struct node *n, struct worker **out);
/* After worker_stop_all, once every attempt has ended. */
void worker_free(struct worker *w);

struct sandbox_host;
/* Every attempt from now on runs in a sandbox of `h` (node/worker/
 * sandbox.h), which the worker now owns and frees with itself. */
void worker_set_sandbox(struct worker *w, struct sandbox_host *h);

/* An entry was applied (node/bus.h): the assignments may have changed. */
void worker_note_applied(struct worker *w);
/* The store committed its batch on the commit timer (node/bus.h): the
 * next flush looks again (markers of ended attempts go then). */
void worker_note_committed(struct worker *w);
/* After a flush: when entries were applied since the last look, starts the
 * attempts assigned to this node and stops fenced or cancelled ones. */
void worker_flushed(struct worker *w);
/* The node stops: every attempt is abandoned (its process group killed,
 * nothing more reported); each ends once its report in flight, if any,
 * has completed. */
void worker_stop_all(struct worker *w);

/* Attempts holding one of this node's slots now: from their first stage
 * to their last report (metrics). */
unsigned worker_busy(const struct worker *w);
/* Attempts ready to run, waiting for a slot: assigned ahead of a free
 * one (job_assign's `ahead`), or over the node's slots (metrics). */
unsigned worker_waiting(const struct worker *w);

/* At start, before anything runs: kills the process groups left by a
 * previous run of this node (data_dir/work/job-N-aM/pgid; only processes
 * whose working directory is under that attempt's directory) and removes
 * their directories. */
void worker_reap(const char *data_dir);

#endif
