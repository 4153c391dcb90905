/*
 * heal.c - self-healing (the ready leader, on the membership tick, when
 * `voters` > 0 and no other change runs): a voter silent for
 * voter_replace_after_ms is replaced by the most caught-up live standby
 * (else spare): promote it, demote the dead voter to spare, record a
 * voter_replaced event.  Fewer voters than `voters`, or fewer standbys than
 * `standbys`, are made up from live standbys and spares.  Every decision is
 * a change plan of node/member/change.h; one that fails after changing the
 * candidate's role puts its old role back.  Decisions wait until this
 * node has led for an election timeout, and count as live only members it
 * heard itself (mc_member_heard): right after a leader's death, the dead
 * one is not promoted, nor made a standby and waited for.
 */
#include "node/leader/heal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "node/member/member.h"

/* The most caught-up live member of role `role` (0: none). */
static uint64_t best_candidate(const struct cons_member *ms, unsigned nm, mc_alive_fn alive,
                               void *data, enum cons_member_role role, enum cons_member_role *from)
{
	uint64_t best = 0, best_match = 0;
	for (unsigned i = 0; i < nm; i++) {
		if (ms[i].role != role || !alive(data, &ms[i]))
			continue;
		if (best == 0 || ms[i].match_index > best_match) {
			best = ms[i].id;
			best_match = ms[i].match_index;
			*from = role;
		}
	}
	return best;
}

bool heal_decide(const struct cons_member *ms, unsigned nm, uint64_t self, mc_alive_fn alive,
                 void *data, const struct heal_goal *goal, struct mc_request *out)
{
	unsigned voters = 0, standbys = 0;
	enum cons_member_role from = CONS_STANDBY;
	uint64_t dead = 0, silent = 0, cand;

	if (goal->voters == 0)
		return false;
	for (unsigned i = 0; i < nm; i++) {
		voters += ms[i].role == CONS_VOTER;
		standbys += ms[i].role == CONS_STANDBY;
		if (ms[i].role == CONS_VOTER && ms[i].id != self && dead == 0 &&
		    ms[i].contact_ago_ms >= goal->voter_replace_after_ms && !alive(data, &ms[i])) {
			dead = ms[i].id;
			silent = ms[i].contact_ago_ms;
		}
	}
	cand = best_candidate(ms, nm, alive, data, CONS_STANDBY, &from);
	if (cand == 0)
		cand = best_candidate(ms, nm, alive, data, CONS_SPARE, &from);
	memset(out, 0, sizeof(*out));
	if (dead != 0 && cand != 0) {
		ING_LOG_WARN("self-healing: voter %" PRIu64 " unreachable for %" PRIu64
		             " ms: promoting %s %" PRIu64 " and demoting it",
		             dead, silent, mc_role_name(from), cand);
		snprintf(out->what, sizeof(out->what),
		         "replacing unreachable voter %" PRIu64 " by %" PRIu64, dead, cand);
		out->dead_silent_ms = silent;
		out->restore_role = true;
		out->old_role = from;
		mc_plan_replace_voter(&out->plan, cand, from, dead);
	} else if (dead == 0 && voters < goal->voters && cand != 0) {
		ING_LOG_INFO("self-healing: %u voters of %u wanted: promoting %s %" PRIu64, voters,
		             goal->voters, mc_role_name(from), cand);
		snprintf(out->what, sizeof(out->what), "promoting %" PRIu64 " to keep %u voters",
		         cand, goal->voters);
		out->restore_role = true;
		out->old_role = from;
		mc_plan_promotion(&out->plan, cand, from, CONS_VOTER);
	} else if (dead == 0 && standbys < goal->standbys &&
	           (cand = best_candidate(ms, nm, alive, data, CONS_SPARE, &from)) != 0) {
		ING_LOG_INFO("self-healing: %u standbys of %u wanted: spare %" PRIu64
		             " becomes a standby",
		             standbys, goal->standbys, cand);
		snprintf(out->what, sizeof(out->what), "making spare %" PRIu64 " a standby", cand);
		out->restore_role = true;
		out->old_role = CONS_SPARE;
		mc_plan_promotion(&out->plan, cand, CONS_SPARE, CONS_STANDBY);
	} else {
		return false;
	}
	out->id = cand;
	return true;
}

void heal_tick(struct node *n)
{
	const struct node_config *cfg = node_cfg(n);
	struct heal_goal goal = {cfg->voters, cfg->standbys, cfg->voter_replace_after_ms};
	struct cons_member *ms = NULL;
	unsigned nm = 0;
	struct mc_request req;

	/* A leader younger than an election timeout has not heard everyone
	 * yet: what it would decide rests on too little. */
	if (cfg->voters == 0 || member_busy(node_member(n)) ||
	    node_now_ms() - member_leading_since_ms(node_member(n)) < cfg->election_timeout_ms ||
	    cons_config_pending(node_cons(n)) || cons_members(node_cons(n), &ms, &nm) != 0)
		return;
	/* Only members this leader heard count as live: one that died with
	 * the previous leader is not made a standby (and waited for). */
	bool act = heal_decide(ms, nm, node_id(n), mc_member_heard, n, &goal, &req);
	free(ms);
	if (act)
		mc_start(n, &req);
}
