/*
 * propose.h - the one way a command enters the replicated log from this
 * node: the API's writes (node/api/propose.c) and every duty of the leader
 * (scheduler, liveness, deadlines, membership, self-healing).
 *
 * The command is stamped (its type's current version, the proposer's clock
 * as time_ms: apply never reads a clock), encoded by the strict codec,
 * padded and proposed.  The apply callback of whichever node applies it
 * hands its result to the proposal on this node (node.c).
 */
#ifndef INGOT_NODE_PROPOSE_H
#define INGOT_NODE_PROPOSE_H

#include <stddef.h>

#include "common/err.h"
#include "node/core.h"
#include "node/sm/cmd.h"

/* The result of one apply, handed from the apply callback to the proposer. */
struct node_result {
	int code; /* 0: applied; else the state machine's rejection */
	char message[ING_ERROR_MSG_MAX];
	size_t len;
	char value[]; /* msgpack value, len bytes (node/sm/sm.h lists them) */
};

/* status 0: the entry was applied here and r holds its result (borrowed,
 * valid during the call; r->code may be a rejection).  ING_EUNAVAILABLE:
 * leadership was lost (or the node closed) before the entry was confirmed:
 * it may still be applied, so only a request id makes a retry safe; r is
 * NULL. */
typedef void (*node_proposed_cb)(void *data, int status, const struct node_result *r);

/*
 * Proposes c (read during the call only; version and time_ms are filled in
 * on a copy).  0: done (may be NULL) runs exactly once, later.  Errors, done
 * never runs, e (may be NULL) says why: the codec's refusal (ING_EINVAL,
 * ING_ETOOBIG... naming the field), ING_ENOTLEADER (this node is not the
 * leader, or a leadership transfer is under way), ING_EUNAVAILABLE (raft
 * closing or failed), ING_ENOMEM.
 */
int node_propose(struct node *n, const struct cmd *c, node_proposed_cb done, void *data,
                 struct ing_error *e);

#endif
