/*
 * heartbeat.h - this node tells the leader it is alive and what it can run.
 *
 * Owns: whether this node's registration (capabilities, labels, slots) is
 * in the replicated state as configured.  Registration and heartbeats go
 * through this node's own API (node/request.h), so a follower forwards
 * them to the leader, or, while this node knows no leader (a spare never
 * learns it), through the other members' APIs; heartbeats do not go
 * through the log.
 *
 * Errors are not returned: a registration that fails is sent again on the
 * next tick, a heartbeat that fails is simply the next one's job.
 */
#ifndef INGOT_NODE_WORKER_HEARTBEAT_H
#define INGOT_NODE_WORKER_HEARTBEAT_H

#include "node/core.h"

struct heartbeat;

/* ING_ENOMEM, or 0 and *out. */
int heartbeat_new(struct node *n, struct heartbeat **out);
void heartbeat_free(struct heartbeat *hb);

/* The heartbeat tick (node/bus.h): registers this node until the
 * replicated state holds its registration as configured (a restart that
 * finds it there adds nothing to the log), then sends node.heartbeat. */
void heartbeat_tick(struct heartbeat *hb);

#endif
