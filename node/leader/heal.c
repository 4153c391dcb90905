/*
 * heal.c - self-healing (the ready leader, on the membership tick, when
 * `voters` > 0 and no other change runs): a voter silent for
 * voter_replace_after_ms is replaced by the most caught-up live standby
 * (else spare): promote it, demote the dead voter to spare, record a
 * voter_replaced event.  Fewer voters than `voters`, or fewer standbys than
 * `standbys`, are made up from live standbys and spares.  Every decision is
 * a change plan of node/member/change.c.
 */
#include <inttypes.h>
#include <stdlib.h>

#include "common/log.h"
#include "node/member/member_internal.h"

/* The most caught-up live member of role `role` (0: none). */
static uint64_t best_candidate(struct node *n, const struct cons_member *ms, unsigned nm,
                               enum cons_member_role role, enum cons_member_role *from)
{
	uint64_t best = 0, best_match = 0;
	for (unsigned i = 0; i < nm; i++) {
		if (ms[i].role != role || !member_alive(n, &ms[i]))
			continue;
		if (best == 0 || ms[i].match_index > best_match) {
			best = ms[i].id;
			best_match = ms[i].match_index;
			*from = role;
		}
	}
	return best;
}

void heal_tick(struct node *n)
{
	struct cons_member *ms = NULL;
	unsigned nm = 0, voters = 0, standbys = 0;
	enum cons_member_role from = CONS_STANDBY;
	uint64_t dead = 0, silent = 0, cand;

	if (n->cfg.voters == 0 || n->mchange != NULL || n->mtransfer != NULL ||
	    cons_config_pending(n->cons) || cons_members(n->cons, &ms, &nm) != 0)
		return;
	for (unsigned i = 0; i < nm; i++) {
		voters += ms[i].role == CONS_VOTER;
		standbys += ms[i].role == CONS_STANDBY;
		if (ms[i].role == CONS_VOTER && ms[i].id != n->cfg.id && dead == 0 &&
		    ms[i].contact_ago_ms >= n->cfg.voter_replace_after_ms &&
		    !member_alive(n, &ms[i])) {
			dead = ms[i].id;
			silent = ms[i].contact_ago_ms;
		}
	}
	cand = best_candidate(n, ms, nm, CONS_STANDBY, &from);
	if (cand == 0)
		cand = best_candidate(n, ms, nm, CONS_SPARE, &from);
	struct node_mchange *m = NULL;
	if (dead != 0 && cand != 0) {
		ING_LOG_WARN("self-healing: voter %" PRIu64 " unreachable for %" PRIu64
		             " ms: promoting %s %" PRIu64 " and demoting it",
		             dead, silent, member_role_name(from), cand);
		m = mc_new(n, NULL, cand, "replacing unreachable voter %" PRIu64 " by %" PRIu64,
		           dead, cand);
		if (m != NULL) {
			m->heal_dead = dead;
			m->heal_silent_ms = silent;
			mc_plan_promotion(m, cand, from, CONS_VOTER);
			m->plan[m->nplan++] = (struct step){S_ASSIGN, dead, CONS_SPARE};
			m->plan[m->nplan++] = (struct step){S_RECORD, dead, CONS_SPARE};
			m->plan[m->nplan++] = (struct step){S_EVENT, dead, CONS_SPARE};
		}
	} else if (dead == 0 && voters < n->cfg.voters && cand != 0) {
		ING_LOG_INFO("self-healing: %u voters of %u wanted: promoting %s %" PRIu64, voters,
		             n->cfg.voters, member_role_name(from), cand);
		m = mc_new(n, NULL, cand, "promoting %" PRIu64 " to keep %u voters", cand,
		           n->cfg.voters);
		if (m != NULL)
			mc_plan_promotion(m, cand, from, CONS_VOTER);
	} else if (dead == 0 && standbys < n->cfg.standbys &&
	           (cand = best_candidate(n, ms, nm, CONS_SPARE, &from)) != 0) {
		ING_LOG_INFO("self-healing: %u standbys of %u wanted: spare %" PRIu64
		             " becomes a standby",
		             standbys, n->cfg.standbys, cand);
		m = mc_new(n, NULL, cand, "making spare %" PRIu64 " a standby", cand);
		if (m != NULL)
			mc_plan_promotion(m, cand, CONS_SPARE, CONS_STANDBY);
	}
	free(ms);
	if (m != NULL)
		mc_start(m);
}
