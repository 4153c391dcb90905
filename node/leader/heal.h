/*
 * heal.h - self-healing: the ready leader keeps the cluster's fault
 * tolerance without an operator (docs/operations.md "Self-healing").
 *
 * Owns nothing: each tick decides from the raft configuration as it is, and
 * what it decides runs as a membership change (node/member/change.h).  The
 * decision (heal_decide) is pure, so it runs alone in tests.
 */
#ifndef INGOT_NODE_LEADER_HEAL_H
#define INGOT_NODE_LEADER_HEAL_H

#include <stdbool.h>
#include <stdint.h>

#include "node/core.h"
#include "node/member/change.h"

/* What the configuration asks for (node_config's voters, standbys,
 * voter_replace_after_ms). */
struct heal_goal {
	unsigned voters; /* 0: self-healing off */
	unsigned standbys;
	unsigned voter_replace_after_ms;
};

/*
 * One decision over the configuration ms (self: the leader's id), in this
 * order: a voter other than the leader silent for voter_replace_after_ms
 * and not alive is replaced by the most caught-up live standby (else
 * spare), which becomes a voter while the dead one becomes a spare;
 * otherwise fewer voters than wanted are made up from the most caught-up
 * live standby (else spare); otherwise fewer standbys than wanted from the
 * most caught-up live spare.  True and *out filled (call NULL) when there is
 * something to do.
 */
bool heal_decide(const struct cons_member *ms, unsigned nm, uint64_t self, mc_alive_fn alive,
                 void *data, const struct heal_goal *goal, struct mc_request *out);

/* node/bus.h, member tick on the ready leader when no change runs: one
 * decision, started as a change. */
void heal_tick(struct node *n);

#endif
