/*
 * change.h - membership changes: the plan of steps, the refusals, and the
 * runner that carries a plan out on the ready leader (change.c).
 *
 * A plan is pure data: the builders below say which steps make an add, a
 * promotion, a demotion, a removal or the replacement of a dead voter, and
 * mc_plan_rollback what undoes a failed add.  The quorum check is pure as
 * well (who is alive is the caller's callback).  So all of it runs alone in
 * tests; the runner is what touches raft and the log.
 *
 * The runner owns one change at a time (the member module keeps a pointer
 * to it while it runs; member_change_running says so): its plan, where it
 * is, its steps' texts for the reply, and the request it answers.  Each
 * step is asynchronous; the membership tick polls a catch-up.  The change
 * answers its request exactly once, when the plan ends, fails, or the node
 * stops.
 */
#ifndef INGOT_NODE_MEMBER_CHANGE_H
#define INGOT_NODE_MEMBER_CHANGE_H

#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"
#include "node/config.h"
#include "node/core.h"
#include "raft/consensus.h"
#include "rpc/server.h"

#define MC_MAX_STEPS 12

enum mc_step_kind {
	/* An operator's change that depends on who is live: wait until the
	 * leader has led for one election timeout and enough voters of the new
	 * configuration answered since the request arrived (the request's
	 * confirm_* fields: mc_check_quorum's arguments), at most two election
	 * timeouts more, else refused (conflict). */
	MC_CONFIRM,
	MC_RECORD,   /* member_put through the log (the address book every node reads) */
	MC_ADD,      /* cons_add: the node enters the configuration as a spare */
	MC_ASSIGN,   /* cons_assign: a new role (libraft catches a new voter up first) */
	MC_CATCHUP,  /* wait until it holds the log index the leader had then */
	MC_REMOVE,   /* cons_remove */
	MC_UNRECORD, /* member_remove through the log */
	MC_EVENT,    /* cluster_event voter_replaced through the log */
};

struct mc_step {
	enum mc_step_kind kind;
	uint64_t id;
	enum cons_member_role role;
};

struct mc_plan {
	struct mc_step steps[MC_MAX_STEPS];
	unsigned n;
};

/* ---- plans (pure) -------------------------------------------------------- */

/* Appends one step (ignored when the plan is full: plans are at most 9). */
void mc_plan_step(struct mc_plan *p, enum mc_step_kind kind, uint64_t id,
                  enum cons_member_role role);
/* Existing member `id` from role `from` to role `to` (to not below from): a
 * spare becomes a standby first; any new role but spare waits for the
 * catch-up; a voter is assigned last; then the table records the role. */
void mc_plan_promotion(struct mc_plan *p, uint64_t id, enum cons_member_role from,
                       enum cons_member_role to);
/* A new member `id` in role `role`: record it as a spare (so every node
 * knows its addresses), add it, then promote it. */
void mc_plan_add(struct mc_plan *p, uint64_t id, enum cons_member_role role);
/* Member `id` down to `to` (standby or spare): assign, record. */
void mc_plan_demotion(struct mc_plan *p, uint64_t id, enum cons_member_role to);
/* Member `id` out: remove from the configuration, then from the table. */
void mc_plan_removal(struct mc_plan *p, uint64_t id);
/* Self-healing: `cand` (from `from`) becomes a voter, the dead voter `dead`
 * a spare, and a voter_replaced event records it. */
void mc_plan_replace_voter(struct mc_plan *p, uint64_t cand, enum cons_member_role from,
                           uint64_t dead);
/* After a failure once `done` steps of p were carried out: when one of them
 * added member `id` to the configuration, *out is the plan that takes it
 * out again (remove, unrecord) and true is returned; otherwise false (the
 * change simply stops where it is). */
bool mc_plan_rollback(const struct mc_plan *p, unsigned done, uint64_t id, struct mc_plan *out);
/* After a failure once `done` steps of p were carried out, for a member
 * `id` that was in the configuration as `old` before: when one of them
 * assigned it another role, *out is the plan that puts `old` back (assign,
 * record) and true is returned; otherwise false. */
bool mc_plan_restore_role(const struct mc_plan *p, unsigned done, uint64_t id,
                          enum cons_member_role old, struct mc_plan *out);

/* Whether member m is alive, as the caller sees it. */
typedef bool (*mc_alive_fn)(void *data, const struct cons_member *m);
/* Refuses a configuration whose live voters would be fewer than its
 * quorum: ms with member `id` taking role `to` (removed when to_removed;
 * added when not in ms); `assume_alive`: that member will be caught up
 * before it votes.  ING_ECONFLICT naming the counts, or naming `id` when it
 * would leave no voter at all. */
int mc_check_quorum(const struct cons_member *ms, unsigned nm, mc_alive_fn alive, void *data,
                    uint64_t id, bool to_removed, enum cons_member_role to, bool assume_alive,
                    struct ing_error *e);

/* ---- the node's view ------------------------------------------------------ */

/* The ready leader's view of whether member m may be alive, for refusing
 * at once what is certainly impossible: itself; a reply over raft within
 * two election timeouts, a member not heard from yet counting as heard
 * when this leadership began (cons_member.contact_ago_ms); or, for a
 * spare (which gets no raft traffic), a heartbeat within three heartbeat
 * intervals.  Never for deciding that a change is safe.  An mc_alive_fn
 * with data = the node. */
bool mc_member_alive(void *node, const struct cons_member *m);
/* The same windows, counting only what this leader certainly heard
 * (cons_member.confirmed_ago_ms): a member it has not heard from since it
 * became leader is not alive.  For the decisions of self-healing. */
bool mc_member_heard(void *node, const struct cons_member *m);
/* The name of a raft role ("voter", "standby", "spare"). */
const char *mc_role_name(enum cons_member_role r);
/* Member `id` in ms, or NULL. */
const struct cons_member *mc_find(const struct cons_member *ms, unsigned n, uint64_t id);

/* ---- the runner ------------------------------------------------------------ */

/* What a change is about. */
struct mc_request {
	struct rpc_call *call; /* answered at the end; NULL: the leader's own decision */
	uint64_t id;           /* the member the reply is about */
	/* A new member's addresses (an add); empty: read from the members table
	 * and the configuration when recorded. */
	char raft_address[NODE_ADDRESS_MAX];
	char api_address[NODE_ADDRESS_MAX];
	/* Self-healing: how long the voter replaced was silent (for the
	 * voter_replaced event, whose step names it). */
	uint64_t dead_silent_ms;
	/* MC_CONFIRM: the quorum check to pass (member `id` takes the step's
	 * role, or is removed; assume_alive as in mc_check_quorum). */
	bool confirm_removed, confirm_assume;
	/* Member `id` was in the configuration as old_role: a failure after
	 * its role changed puts old_role back (mc_plan_restore_role). */
	bool restore_role;
	enum cons_member_role old_role;
	char what[96]; /* "adding member 4 as voter": logs and conflicts */
	struct mc_plan plan;
};

/* Makes req (copied) the running change and starts its first step.  The
 * caller has checked the refusals (member_refuse_busy).  ING_ENOMEM
 * (req->call answered). */
int mc_start(struct node *n, const struct mc_request *req);
/* Answers call for a change that has nothing to do: {id, role, steps:
 * [note], elapsed_ms: 0}. */
void mc_reply_nothing(struct rpc_call *call, uint64_t id, enum cons_member_role role,
                      const char *note);

#endif
