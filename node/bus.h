/*
 * bus.h - who is told what, and in which order: the node's notifications.
 *
 * node.c raises each event below at one place (heard: the node.heartbeat
 * handler, node/api/nodes.c); bus.c tells the modules, in
 * the order written here, by plain calls (no registration, no flags left
 * for someone to find).  A module told of an event only updates its own
 * state or starts its own asynchronous work; none of them raises an event.
 *
 * applied      one entry applied by the state machine (inside raft's apply
 *              callback, in log order; the batch is not committed yet), a
 *              rejected one included; an entry skipped as already applied is
 *              not announced:
 *                1. scheduler   (applied without error) a submit makes its
 *                               job a candidate of the next round; a change
 *                               of capacity or eligibility (an attempt that
 *                               ended included) asks for a full pass
 *                2. deadlines   (ready leader) a job queued with a deadline
 *                               is tracked
 *                3. worker      its assignments may have changed
 *                4. metrics     the jobs' state changes, submits, finishes,
 *                               queue and stage durations (sm_result's job
 *                               changes)
 *
 * restored     a snapshot from the leader replaced the store (raft's restore
 *              callback; the store holds the new state):
 *                1. metrics     counts the jobs by state again
 *
 * committed    the store committed its batch of applied entries on the
 *              commit timer (store_commit_interval_ms), outside a flush:
 *                1. worker      looks again at its next flush (a marker
 *                               is dropped only in a committed store)
 *
 * flushed      once per loop iteration, before the loop blocks, after the
 *              batch of applied entries was committed if it was due
 *              (store_commit_interval_ms; reads see an open batch anyway,
 *              store_read_begin), also when there was nothing to commit;
 *              never once the node is stopping:
 *                1. api         watches push new events, finished ones end
 *                2. worker      starts and stops attempts, when entries were
 *                               applied since it last looked
 *                3. scheduler   a round when one is due (ready leader)
 *
 * role changed raft reported a role, leader or term (node.c records it
 *              first, so node_role() already says the new role):
 *                1. member      remembers the previous leader
 *              only when this node just became the ready leader (its barrier
 *              committed), then:
 *                2. liveness    every node gets a fresh grace period
 *                3. deadlines   the tracked deadlines are rebuilt on the
 *                               next tick
 *                4. scheduler   a full pass over the queue is due
 *                   (the batch is flushed here, so what follows reads it)
 *                5. member      names the cluster if nobody did, reconciles
 *                               the members table, records the leader change
 *              and always, last:
 *                6. api         parked requests are dispatched again
 *
 * heartbeat tick  every heartbeat_interval_ms (first one 50 ms after start):
 *                1. heartbeat   registers this node, or heartbeats the leader
 *              on the ready leader only:
 *                2. liveness    declares silent nodes down and heard ones up,
 *                               requeues work past a drain deadline
 *                3. deadlines   expires the jobs whose deadline passed
 *                4. retention   proposes a retention_run when one is due
 *
 * heard        the ready leader received node `id`'s heartbeat:
 *                1. liveness    records when
 *                2. scheduler   (the first from that node since this node
 *                               became leader, or the first after a silence
 *                               of node_down_after_ms) a full pass is due:
 *                               the node may take work now
 *
 * member tick  every MEMBER_TICK_MS:
 *              first, on any node: member (a leadership transfer waiting to
 *              learn the new leader is looked at again; if it still waits,
 *              nothing else runs on this tick);
 *              on the ready leader: member (a running change plan is polled:
 *              catch-up, next step), or when none runs, self-healing;
 *              on every other node: member (the removal check)
 *
 * stopping     node_stop, once (nothing is announced after it):
 *                1. api         watches and parked requests are answered
 *                               `unavailable`
 *                   (the batch is flushed)
 *                2. worker      attempts are abandoned (their process groups
 *                               killed)
 *                3. member      a running change is answered, its retry
 *                               timer closed
 *                4. api         its park timer is closed
 *                5. backup      the snapshot files held for download are
 *                               dropped
 *                6. http        the HTTP server closes (requests in flight
 *                               are abandoned; it holds the node until
 *                               closed)
 *              then node.c closes every client of node/request.h (pending
 *              requests end `unavailable`: reports, heartbeats, forwards,
 *              membership requests), the API server, raft and its own
 *              handles.
 */
#ifndef INGOT_NODE_BUS_H
#define INGOT_NODE_BUS_H

#include <stdbool.h>
#include <stdint.h>

#include "node/core.h"

struct sm_result;

/* What an applied entry did, for the `applied` event. */
struct bus_applied {
	uint32_t cmd_type;              /* the command's type (node/sm/cmd.h) */
	int code;                       /* 0: applied; else the rejection's code */
	uint64_t submitted_job;         /* a successful job_submit: the new job's id */
	uint64_t job;                   /* job_submit / job_retry: the job it queued */
	uint64_t deadline_at_ms;        /* ... and that job's deadline (0: none) */
	const struct sm_result *result; /* the whole result (its job changes) */
	bool released;                  /* a live attempt ended: its slot is free */
};

void bus_applied(struct node *n, const struct bus_applied *a);
void bus_restored(struct node *n);
void bus_committed(struct node *n);
void bus_flushed(struct node *n);
/* `previous_leader`: the leader node.c knew before this report (0: none);
 * `became_ready`: the role is CONS_LEADER_READY and was not before. */
void bus_role_changed(struct node *n, uint64_t previous_leader, bool became_ready);
void bus_heartbeat_tick(struct node *n);
void bus_heard(struct node *n, uint64_t id);
void bus_member_tick(struct node *n);
void bus_stopping(struct node *n);

#endif
