/*
 * member_internal.h - what the files of node/member/ share: the module's
 * state (member.h says what it owns) and the helpers of more than one file.
 */
#ifndef INGOT_NODE_MEMBER_MEMBER_INTERNAL_H
#define INGOT_NODE_MEMBER_MEMBER_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "node/member/change.h"
#include "node/member/member.h"

struct mc;
struct member_transfer;

struct member {
	struct node *n;
	struct mc *change;                /* leader: the change running (change.c) */
	struct member_transfer *transfer; /* leader: the transfer running (transfer.c) */
	uint64_t previous_leader;         /* the last other leader this node knew */
	uint64_t leading_since_ms;        /* became the ready leader then (0: is not) */
	/* self.c */
	uv_timer_t retry; /* join and leave retries */
	bool retry_open;
	bool joining; /* --join: not admitted yet */
	uint64_t join_deadline_ms;
	bool removal_checking;
	uint64_t leaderless_since_ms; /* campaigning or no leader known since */
	uint64_t removal_checked_ms;
	bool leaving;
	uint64_t leave_deadline_ms;
};

/* change.c: the common refusals (a change running here, a transfer, an
 * uncommitted configuration in libraft); replies `conflict` and returns
 * non-zero when refused. */
int member_refuse_busy(struct node *n, struct rpc_call *call);
/* change.c: the node stops: a running change's request is answered; the
 * change is freed now, or by its step's callback when one is under way. */
void mc_stop(struct member *m);

/* transfer.c: hands leadership to `target` (0: any voter); then_forward:
 * dispatch call again once another node leads (removing the leader).
 * Replies itself on failure. */
int member_start_transfer(struct node *n, struct rpc_call *call, uint64_t target,
                          bool then_forward);
/* transfer.c: the node stops: a settling transfer is answered. */
void member_transfer_stop(struct member *m);

/* reconcile.c: (ready leader, no change running) brings the members table
 * in line with the raft configuration. */
void member_reconcile(struct node *n);

#endif
