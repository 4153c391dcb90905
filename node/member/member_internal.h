/*
 * member_internal.h - what the membership files share (node/member/ and
 * the self-healing of node/leader/heal.c): the change plan and its runner,
 * the refusals, the leadership transfer.
 */
#ifndef INGOT_NODE_MEMBER_MEMBER_INTERNAL_H
#define INGOT_NODE_MEMBER_MEMBER_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "node/node_internal.h"

#define MC_MAX_STEPS 12
#define MC_STEP_TEXT 200

enum step_kind { S_RECORD, S_ADD, S_ASSIGN, S_CATCHUP, S_REMOVE, S_UNRECORD, S_EVENT };

struct step {
	enum step_kind kind;
	uint64_t id;
	enum cons_member_role role;
};

/* One membership change: a plan of steps run in order (change.c). */
struct node_mchange {
	struct node *n;
	struct rpc_call *call; /* NULL: the leader's own decision */
	char what[96];         /* "adding member 4", for conflicts and logs */
	uint64_t id;           /* the member the reply is about */
	char raft_address[NODE_ADDRESS_MAX];
	char api_address[NODE_ADDRESS_MAX];
	struct step plan[MC_MAX_STEPS];
	unsigned nplan, pc;
	bool busy; /* a step is under way (a callback will come) */
	bool rolling_back, rollback_failed;
	int fail_code; /* set: the plan stops (after a rollback, if any) */
	char fail_msg[ING_ERROR_MSG_MAX];
	uint64_t started_ms;
	uint64_t catchup_target, catchup_start_ms, catchup_deadline_ms;
	uint64_t heal_dead; /* self-healing: the voter replaced */
	uint64_t heal_silent_ms;
	struct cons_change ch;
	char steps[MC_MAX_STEPS + 4][MC_STEP_TEXT];
	unsigned nsteps;
};

/* change.c */
const char *member_role_name(enum cons_member_role r);
const struct cons_member *member_find(const struct cons_member *ms, unsigned n, uint64_t id);
/* The leader's view of whether member `m` is alive. */
bool member_alive(struct node *n, const struct cons_member *m);
/* Refuses a configuration whose live voters would be fewer than its
 * quorum.  `id` takes role `to` (removed when to_removed); `assume_alive`:
 * the member will be caught up before it votes.  ING_ECONFLICT naming the
 * counts. */
int member_check_quorum(struct node *n, const struct cons_member *ms, unsigned nm, uint64_t id,
                        bool to_removed, enum cons_member_role to, bool assume_alive,
                        struct ing_error *e);
/* The common refusals (another change here or in libraft, a transfer);
 * replies and returns non-zero when refused. */
int member_refuse_busy(struct node *n, struct rpc_call *call);
/* A new change about member `id` for call (NULL: the leader's own); NULL
 * when out of memory (call answered). */
struct node_mchange *mc_new(struct node *n, struct rpc_call *call, uint64_t id, const char *fmt,
                            ...) __attribute__((format(printf, 4, 5)));
/* Appends the steps that take existing member `id` from role `from` to
 * `to`: a spare becomes a standby first, then catches up. */
void mc_plan_promotion(struct node_mchange *m, uint64_t id, enum cons_member_role from,
                       enum cons_member_role to);
/* Makes m the running change and runs its first steps. */
void mc_start(struct node_mchange *m);
/* Runs the steps until one is under way or the plan is over (then replies,
 * frees m and reconciles the members table). */
void mc_run(struct node_mchange *m);
/* Appends a line to the steps of the reply (and logs it). */
void mc_step_note(struct node_mchange *m, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Replies {id, role, steps, elapsed_ms} (role nil when removed). */
void mc_reply(struct node_mchange *m, bool removed, enum cons_member_role role);

/* transfer.c: hands leadership to `target` (0: any voter); then_forward:
 * dispatch call again once another node leads (removing the leader). */
int member_start_transfer(struct node *n, struct rpc_call *call, uint64_t target,
                          bool then_forward);

/* leader/heal.c: one round of self-healing (ready leader, no change running). */
void heal_tick(struct node *n);

#endif
