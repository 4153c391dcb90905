/*
 * change.c - membership changes (change.h): the plans, the refusals, and
 * the runner that carries a plan out on the ready leader, one change at a
 * time, each step asynchronous:
 *
 *   record    member_put through the log (the address book every node reads)
 *   add       cons_add: the node enters the configuration as a spare
 *   assign    cons_assign: a new role (libraft catches a new voter up first)
 *   catch up  wait until the leader's replication reaches the log index it
 *             had when waiting started (bounded by member_catchup_timeout_ms;
 *             on timeout an added node is removed again: the plan is replaced
 *             by a rollback and the reply is `timeout`)
 *   remove    cons_remove
 *   unrecord  member_remove through the log
 *   event     cluster_event through the log (self-healing decisions)
 *   confirm   (first, in an operator's change that depends on who is live)
 *             wait until the leader has led for one election timeout and
 *             enough voters of the new configuration have answered since
 *             the request arrived, at most two election timeouts more; else
 *             refused (conflict)
 *
 * add voter = record, add, assign standby, catch up, assign voter, record.
 * The new node only becomes a voter once it holds the log, so an add can
 * never leave the cluster waiting on a node that is not there.
 *
 * Refusals happen before the first step, against the configuration as it
 * is: another change running (here or in libraft), a change that leaves
 * fewer live voters than a quorum of the new configuration, the last voter,
 * demoting the leader.  "Live" is the leader's view: a reply over Raft
 * within two election timeouts (voters, standbys), or for a spare, which
 * gets no Raft traffic, a heartbeat within three heartbeat intervals.
 * Those at once use the permissive view (mc_member_alive: a member not
 * heard yet counts from the start of the leadership), which only refuses
 * what is certainly impossible; whether a change is safe is decided by
 * the confirm step, and self-healing's choices by mc_member_heard, both
 * counting only replies this leader received: a voter that died a moment
 * before the request, or with the previous leader, is not counted.
 *
 * A change that fails after an add is rolled back (the member is removed
 * again), and one that fails after changing an existing member's role
 * puts the old role back, so a failed change leaves the configuration as
 * it was.
 */
#include "node/member/change.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/mp.h"
#include "node/api/view.h"
#include "node/leader/liveness.h"
#include "node/member/member_internal.h"
#include "node/propose.h"
#include "storage/records.h"
#include "storage/store.h"

#define MC_STEP_TEXT 200

/* Raft's member roles and the members table's are one list (rec_role_name
 * names both). */
_Static_assert(CONS_VOTER == (int)REC_ROLE_VOTER && CONS_STANDBY == (int)REC_ROLE_STANDBY &&
                   CONS_SPARE == (int)REC_ROLE_SPARE,
               "raft roles and record roles agree");

/* ---- plans ------------------------------------------------------------------ */

void mc_plan_step(struct mc_plan *p, enum mc_step_kind kind, uint64_t id,
                  enum cons_member_role role)
{
	if (p->n < MC_MAX_STEPS)
		p->steps[p->n++] = (struct mc_step){kind, id, role};
}

void mc_plan_promotion(struct mc_plan *p, uint64_t id, enum cons_member_role from,
                       enum cons_member_role to)
{
	if (from == CONS_SPARE && to != CONS_SPARE)
		mc_plan_step(p, MC_ASSIGN, id, CONS_STANDBY);
	if (to != CONS_SPARE)
		mc_plan_step(p, MC_CATCHUP, id, to);
	if (to == CONS_VOTER)
		mc_plan_step(p, MC_ASSIGN, id, CONS_VOTER);
	mc_plan_step(p, MC_RECORD, id, to);
}

void mc_plan_add(struct mc_plan *p, uint64_t id, enum cons_member_role role)
{
	mc_plan_step(p, MC_RECORD, id, CONS_SPARE);
	mc_plan_step(p, MC_ADD, id, CONS_SPARE);
	mc_plan_promotion(p, id, CONS_SPARE, role);
}

void mc_plan_demotion(struct mc_plan *p, uint64_t id, enum cons_member_role to)
{
	mc_plan_step(p, MC_ASSIGN, id, to);
	mc_plan_step(p, MC_RECORD, id, to);
}

void mc_plan_removal(struct mc_plan *p, uint64_t id)
{
	mc_plan_step(p, MC_REMOVE, id, CONS_SPARE);
	mc_plan_step(p, MC_UNRECORD, id, CONS_SPARE);
}

void mc_plan_replace_voter(struct mc_plan *p, uint64_t cand, enum cons_member_role from,
                           uint64_t dead)
{
	mc_plan_promotion(p, cand, from, CONS_VOTER);
	mc_plan_step(p, MC_ASSIGN, dead, CONS_SPARE);
	mc_plan_step(p, MC_RECORD, dead, CONS_SPARE);
	mc_plan_step(p, MC_EVENT, dead, CONS_SPARE);
}

bool mc_plan_rollback(const struct mc_plan *p, unsigned done, uint64_t id, struct mc_plan *out)
{
	bool added = false;
	for (unsigned i = 0; i < done && i < p->n; i++)
		added |= p->steps[i].kind == MC_ADD && p->steps[i].id == id;
	if (!added)
		return false;
	out->n = 0;
	mc_plan_removal(out, id);
	return true;
}

bool mc_plan_restore_role(const struct mc_plan *p, unsigned done, uint64_t id,
                          enum cons_member_role old, struct mc_plan *out)
{
	bool changed = false;
	for (unsigned i = 0; i < done && i < p->n; i++)
		changed |= p->steps[i].kind == MC_ASSIGN && p->steps[i].id == id &&
		           p->steps[i].role != old;
	if (!changed)
		return false;
	out->n = 0;
	mc_plan_step(out, MC_ASSIGN, id, old);
	mc_plan_step(out, MC_RECORD, id, old);
	return true;
}

int mc_check_quorum(const struct cons_member *ms, unsigned nm, mc_alive_fn alive, void *data,
                    uint64_t id, bool to_removed, enum cons_member_role to, bool assume_alive,
                    struct ing_error *e)
{
	unsigned voters = 0, live = 0;
	bool seen = false;

	for (unsigned i = 0; i < nm; i++) {
		bool voter = ms[i].role == CONS_VOTER;
		bool up = alive(data, &ms[i]);
		if (ms[i].id == id) {
			seen = true;
			voter = !to_removed && to == CONS_VOTER;
			up = up || assume_alive;
		}
		voters += voter;
		live += voter && up;
	}
	if (!seen && !to_removed && to == CONS_VOTER) {
		voters++;
		live += assume_alive;
	}
	if (voters == 0)
		return ing_error_set(e, ING_ECONFLICT,
		                     "member %" PRIu64 " is the last voter: a cluster needs one",
		                     id);
	unsigned quorum = voters / 2 + 1;
	if (live < quorum)
		return ing_error_set(
		    e, ING_ECONFLICT,
		    "refused: the new configuration would have %u voter%s of which "
		    "%u %s live, and a quorum of %u voters needs %u; bring the "
		    "down voters back (or replace them) first",
		    voters, voters == 1 ? "" : "s", live, live == 1 ? "is" : "are", voters, quorum);
	return 0;
}

/* ---- the node's view -------------------------------------------------------- */

const char *mc_role_name(enum cons_member_role r)
{
	return rec_role_name((uint8_t)r);
}

const struct cons_member *mc_find(const struct cons_member *ms, unsigned n, uint64_t id)
{
	for (unsigned i = 0; i < n; i++)
		if (ms[i].id == id)
			return &ms[i];
	return NULL;
}

/* Heard within window_ms (0: two election timeouts over raft, three
 * heartbeat intervals for a spare); `maybe`: contact_ago_ms (a member not
 * heard yet counts from the start of the leadership), else
 * confirmed_ago_ms. */
static bool alive_view(struct node *n, const struct cons_member *m, uint64_t window_ms, bool maybe)
{
	const struct node_config *cfg = node_cfg(n);
	uint64_t raft_window = window_ms != 0 ? window_ms : 2ull * cfg->election_timeout_ms;
	if (m->id == node_id(n))
		return true;
	if ((maybe ? m->contact_ago_ms : m->confirmed_ago_ms) < raft_window)
		return true;
	if (m->role != CONS_SPARE)
		return false; /* voters and standbys get Raft traffic: that decides */
	uint64_t last = liveness_last_ms(node_liveness(n), m->id);
	uint64_t hb_window = window_ms != 0 ? window_ms : 3ull * cfg->heartbeat_interval_ms;
	return last != 0 && node_now_ms() - last < hb_window;
}

bool mc_member_alive(void *node, const struct cons_member *m)
{
	return alive_view(node, m, 0, true);
}

bool mc_member_heard(void *node, const struct cons_member *m)
{
	return alive_view(node, m, 0, false);
}

/* The confirm step's view: heard by this leader within `window_ms`. */
struct heard_within {
	struct node *n;
	uint64_t window_ms;
};

static bool heard_within(void *data, const struct cons_member *m)
{
	const struct heard_within *h = data;
	return alive_view(h->n, m, h->window_ms, false);
}

/* ---- the runner ----------------------------------------------------------- */

/* The change running (struct member's `change`). */
struct mc {
	struct node *n;
	struct mc_request req; /* what it is about, and its plan */
	unsigned pc;           /* the step carried out next */
	bool busy;             /* a step is under way (a callback will come) */
	bool rolling_back, rollback_failed;
	bool restoring_role; /* the rollback puts the member's old role back */
	int fail_code;       /* set: the plan stops (after a rollback, if any) */
	char fail_msg[ING_ERROR_MSG_MAX];
	uint64_t started_ms;
	uint64_t catchup_target, catchup_start_ms, catchup_deadline_ms;
	struct cons_change ch;
	char steps[MC_MAX_STEPS + 4][MC_STEP_TEXT];
	unsigned nsteps;
};

static void mc_run(struct mc *m);

static void mc_step_note(struct mc *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void mc_step_note(struct mc *m, const char *fmt, ...)
{
	va_list ap;
	if (m->nsteps == sizeof(m->steps) / sizeof(m->steps[0]))
		return;
	va_start(ap, fmt);
	vsnprintf(m->steps[m->nsteps], MC_STEP_TEXT, fmt, ap);
	va_end(ap);
	ING_LOG_INFO("membership change=\"%s\" step=\"%s\"", m->req.what, m->steps[m->nsteps]);
	m->nsteps++;
}

static void mc_fail(struct mc *m, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void mc_fail(struct mc *m, int code, const char *fmt, ...)
{
	va_list ap;
	if (m->fail_code != 0) {
		m->rollback_failed |= m->rolling_back;
		return;
	}
	m->fail_code = code;
	va_start(ap, fmt);
	vsnprintf(m->fail_msg, sizeof(m->fail_msg), fmt, ap);
	va_end(ap);
}

/* {id, role (nil: removed), steps, elapsed_ms} */
static void reply_steps(struct rpc_call *call, uint64_t id, bool removed,
                        enum cons_member_role role, char (*steps)[MC_STEP_TEXT], unsigned nsteps,
                        uint64_t elapsed_ms)
{
	struct mp_out o;

	mp_out_init(&o);
	msgpack_pack_map(&o.pk, 4);
	view_key(&o.pk, "id");
	msgpack_pack_uint64(&o.pk, id);
	view_key(&o.pk, "role");
	if (removed)
		msgpack_pack_nil(&o.pk);
	else
		mp_pack_cstr(&o.pk, mc_role_name(role));
	view_key(&o.pk, "steps");
	msgpack_pack_array(&o.pk, nsteps);
	for (unsigned i = 0; i < nsteps; i++)
		mp_pack_cstr(&o.pk, steps[i]);
	view_key(&o.pk, "elapsed_ms");
	msgpack_pack_uint64(&o.pk, elapsed_ms);
	if (mp_out_failed(&o) != 0)
		rpc_reply_error(call, ING_ENOMEM, "out of memory encoding the reply");
	else
		rpc_reply(call, o.data, o.len);
	mp_out_free(&o);
}

void mc_reply_nothing(struct rpc_call *call, uint64_t id, enum cons_member_role role,
                      const char *note)
{
	char steps[1][MC_STEP_TEXT];
	snprintf(steps[0], sizeof(steps[0]), "%s", note);
	ING_LOG_INFO("membership change=\"member %" PRIu64 "\" step=\"%s\"", id, note);
	reply_steps(call, id, false, role, steps, 1, 0);
}

static void mc_finish(struct mc *m)
{
	struct node *n = m->n;
	struct member *mb = node_member(n);
	struct cons_member *ms = NULL;
	unsigned nm = 0;

	if (m->fail_code != 0) {
		ING_LOG_WARN("membership change failed change=\"%s\" error=%s msg=\"%s\"",
		             m->req.what, ing_err_name(m->fail_code), m->fail_msg);
		if (m->req.call != NULL) {
			bool rolled_back = m->rolling_back && !m->rollback_failed;
			rpc_reply_error(m->req.call, m->fail_code, "%s%s", m->fail_msg,
			                !rolled_back        ? ""
			                : m->restoring_role ? "; its role was put back: the "
			                                      "configuration is as before"
			                                    : "; it was removed again: the "
			                                      "configuration is as before");
			m->req.call = NULL;
		}
	} else {
		const struct cons_member *me = NULL;
		if (node_cons(n) != NULL && cons_members(node_cons(n), &ms, &nm) == 0)
			me = mc_find(ms, nm, m->req.id);
		if (m->req.call != NULL)
			reply_steps(m->req.call, m->req.id, me == NULL,
			            me != NULL ? me->role : CONS_SPARE, m->steps, m->nsteps,
			            node_now_ms() - m->started_ms);
		m->req.call = NULL;
		ING_LOG_INFO("membership change done change=\"%s\" elapsed_ms=%" PRIu64,
		             m->req.what, node_now_ms() - m->started_ms);
	}
	free(ms);
	if (mb->change == m)
		mb->change = NULL;
	free(m);
	if (!node_stopping(n) && node_is_ready_leader(n))
		member_reconcile(n);
}

static void on_change(struct cons_change *ch, int status)
{
	struct mc *m = ch->data;
	const struct mc_step *s = &m->req.plan.steps[m->pc];

	m->busy = false;
	if (status != 0) {
		mc_fail(m, status == ING_EUNAVAILABLE ? ING_EUNAVAILABLE : status,
		        "%s of member %" PRIu64 " failed: %s",
		        s->kind == MC_ADD      ? "adding"
		        : s->kind == MC_REMOVE ? "removing"
		                               : "changing the role",
		        s->id, ing_err_msg(status));
	} else {
		switch (s->kind) {
		case MC_ADD: mc_step_note(m, "added %" PRIu64 " as spare", s->id); break;
		case MC_ASSIGN:
			mc_step_note(m, "assigned %" PRIu64 " the %s role", s->id,
			             mc_role_name(s->role));
			break;
		case MC_REMOVE:
			mc_step_note(m, "removed %" PRIu64 " from the configuration", s->id);
			break;
		default: break;
		}
		m->pc++;
	}
	mc_run(m);
}

static void on_logged(void *data, int status, const struct node_result *r)
{
	struct mc *m = data;
	const struct mc_step *s = &m->req.plan.steps[m->pc];

	m->busy = false;
	if (status != 0 || (r != NULL && r->code != 0 && r->code != ING_ENOTFOUND)) {
		mc_fail(m, status != 0 ? status : r->code,
		        "recording member %" PRIu64 " failed: %s", s->id,
		        status != 0 ? ing_err_msg(status) : r->message);
	} else {
		if (s->kind == MC_RECORD && s->id == m->req.id && m->pc == 0)
			mc_step_note(m, "recorded member %" PRIu64 " (raft %s, api %s)", s->id,
			             m->req.raft_address, m->req.api_address);
		m->pc++;
	}
	mc_run(m);
}

static int mc_log(struct mc *m, const struct cmd *c)
{
	struct ing_error e;
	int rv = node_propose(m->n, c, on_logged, m, &e);
	if (rv == 0)
		m->busy = true;
	else
		ING_LOG_WARN("membership change=\"%s\" cannot log %s error=%s msg=\"%s\"",
		             m->req.what, cmd_type_name(c->type), ing_err_name(rv), e.msg);
	return rv;
}

static int step_record(struct mc *m, const struct mc_step *s)
{
	struct node *n = m->n;
	struct cons_member *ms = NULL;
	unsigned nm = 0;
	char raft[NODE_ADDRESS_MAX], api[NODE_ADDRESS_MAX];
	struct cmd c;
	int rv;

	if (s->id == m->req.id && m->req.raft_address[0] != '\0') {
		snprintf(raft, sizeof(raft), "%s", m->req.raft_address);
		snprintf(api, sizeof(api), "%s", m->req.api_address);
	} else {
		/* An existing member: raft's address, the table's (or the
		 * configuration's) API address. */
		rv = cons_members(node_cons(n), &ms, &nm);
		if (rv != 0)
			return rv;
		const struct cons_member *me = mc_find(ms, nm, s->id);
		snprintf(raft, sizeof(raft), "%s", me != NULL ? me->address : "");
		member_api_address(n, s->id, api);
		free(ms);
	}
	if (raft[0] == '\0' || api[0] == '\0') {
		m->pc++; /* no address known to record: the table keeps what it has */
		return 0;
	}
	memset(&c, 0, sizeof(c));
	c.type = CMD_MEMBER_PUT;
	c.request_id = ing_str_c("");
	c.u.member_put.member.id = s->id;
	c.u.member_put.member.raft_address = ing_str_c(raft);
	c.u.member_put.member.api_address = ing_str_c(api);
	c.u.member_put.member.role = (uint8_t)s->role;
	return mc_log(m, &c);
}

/* Catch-up: true when done (or failed); re-polled by the member tick. */
static bool step_catchup(struct mc *m, const struct mc_step *s)
{
	struct node *n = m->n;
	const struct node_config *cfg = node_cfg(n);
	struct cons_member *ms = NULL;
	unsigned nm = 0;
	struct cons_status st;
	uint64_t now = node_now_ms();

	cons_status(node_cons(n), &st);
	if (m->catchup_start_ms == 0) {
		m->catchup_start_ms = now;
		m->catchup_target = st.last_index;
		m->catchup_deadline_ms = now + cfg->member_catchup_timeout_ms;
	}
	if (cons_members(node_cons(n), &ms, &nm) != 0)
		return false;
	const struct cons_member *me = mc_find(ms, nm, s->id);
	uint64_t match = me != NULL ? me->match_index : 0;
	free(ms);
	if (me == NULL) {
		mc_fail(m, ING_ECONFLICT,
		        "member %" PRIu64 " left the configuration while catching up", s->id);
		return true;
	}
	if (match >= m->catchup_target) {
		mc_step_note(m, "%" PRIu64 " caught up: log index %" PRIu64 " in %" PRIu64 " ms",
		             s->id, match, now - m->catchup_start_ms);
		m->catchup_start_ms = 0;
		m->pc++;
		return true;
	}
	if (now < m->catchup_deadline_ms)
		return false;
	/* Not there in time: an added node goes out again. */
	mc_fail(m, ING_ETIMEOUT,
	        "member %" PRIu64 " did not catch up within %u ms (it reached log index %" PRIu64
	        " of %" PRIu64 "; is it running at %s?)",
	        s->id, cfg->member_catchup_timeout_ms, match, m->catchup_target,
	        m->req.raft_address[0] ? m->req.raft_address : "its raft address");
	m->catchup_start_ms = 0;
	return true;
}

/* Confirm: true when done (passed, or failed); re-polled by the member
 * tick.  Waits for the leader to have led one election timeout, then for
 * the quorum check to pass counting only members heard since the request
 * arrived; refused when that has not happened two election timeouts later. */
static bool step_confirm(struct mc *m, const struct mc_step *s)
{
	struct node *n = m->n;
	uint64_t now = node_now_ms(), et = node_cfg(n)->election_timeout_ms;
	uint64_t from = m->started_ms, since = member_leading_since_ms(node_member(n));
	struct cons_member *ms = NULL;
	unsigned nm = 0, voters = 0;
	struct ing_error e;

	if (since + et > from)
		from = since + et;
	if (now < from || cons_members(node_cons(n), &ms, &nm) != 0)
		return false;
	/* Heard since the request arrived: within (now - arrival). */
	struct heard_within h = {n, now - m->started_ms + 1};
	int rv = mc_check_quorum(ms, nm, heard_within, &h, s->id, m->req.confirm_removed, s->role,
	                         m->req.confirm_assume, &e);
	for (unsigned i = 0; i < nm; i++)
		voters += ms[i].role == CONS_VOTER;
	free(ms);
	if (rv == 0) {
		mc_step_note(m, "the live voters answered since the request (%u voters now)",
		             voters);
		m->pc++;
		return true;
	}
	if (now < from + 2 * et)
		return false;
	mc_fail(m, e.code,
	        "%s (counting the voters that answered within %" PRIu64 " ms of the request)",
	        e.msg, now - m->started_ms);
	return true;
}

/* After a failure: an added member that never got its role goes out again
 * (remove + unrecord), and an existing member whose role changed gets its
 * old role back, so the configuration is as before. */
static bool mc_rollback(struct mc *m)
{
	struct mc_plan undo;
	if (mc_plan_rollback(&m->req.plan, m->pc, m->req.id, &undo)) {
		mc_step_note(m, "rolling back: removing %" PRIu64 " again", m->req.id);
	} else if (m->req.restore_role &&
	           mc_plan_restore_role(&m->req.plan, m->pc, m->req.id, m->req.old_role, &undo)) {
		m->restoring_role = true;
		mc_step_note(m, "rolling back: %" PRIu64 " becomes a %s again", m->req.id,
		             mc_role_name(m->req.old_role));
	} else {
		return false;
	}
	m->rolling_back = true;
	m->req.plan = undo;
	m->pc = 0;
	return true;
}

static int step_event(struct mc *m, const struct mc_step *s)
{
	struct cmd c;
	char text[ING_MESSAGE_MAX];
	snprintf(text, sizeof(text),
	         "voter %" PRIu64 " unreachable for %" PRIu64 " ms: replaced by %" PRIu64
	         ", which is now a voter; %" PRIu64 " demoted to spare",
	         s->id, m->req.dead_silent_ms, m->req.id, s->id);
	memset(&c, 0, sizeof(c));
	c.type = CMD_CLUSTER_EVENT;
	c.request_id = ing_str_c("");
	c.u.cluster_event.kind = REC_EV_VOTER_REPLACED;
	c.u.cluster_event.member = s->id;
	c.u.cluster_event.message = ing_str_c(text);
	return mc_log(m, &c);
}

static void mc_run(struct mc *m)
{
	struct node *n = m->n;
	int rv = 0;

	while (!m->busy) {
		bool leading = !node_stopping(n) && node_is_ready_leader(n);
		/* Failed: an added member goes out again (once); a failure
		 * during that rollback ends the change. */
		if (m->fail_code != 0 && !m->rolling_back && (!leading || !mc_rollback(m))) {
			mc_finish(m);
			return;
		}
		if (m->rollback_failed || m->pc >= m->req.plan.n) {
			mc_finish(m);
			return;
		}
		if (!leading) {
			mc_fail(m, ING_EUNAVAILABLE,
			        "leadership lost during the change: check the configuration "
			        "with `ingotctl member list` and repeat it if needed");
			mc_finish(m);
			return;
		}
		const struct mc_step *s = &m->req.plan.steps[m->pc];
		struct cons *cons = node_cons(n);
		m->ch.data = m;
		m->ch.cb = on_change;
		switch (s->kind) {
		case MC_RECORD: rv = step_record(m, s); break;
		case MC_ADD:
			rv = cons_add(cons, &m->ch, s->id, m->req.raft_address);
			m->busy = rv == 0;
			break;
		case MC_ASSIGN:
			rv = cons_assign(cons, &m->ch, s->id, s->role);
			m->busy = rv == 0;
			break;
		case MC_REMOVE:
			rv = cons_remove(cons, &m->ch, s->id);
			m->busy = rv == 0;
			if (rv == ING_ENOTFOUND) { /* gone already */
				rv = 0;
				m->pc++;
			}
			break;
		case MC_CATCHUP:
			if (!step_catchup(m, s))
				return; /* polled again by the member tick */
			break;
		case MC_CONFIRM:
			if (!step_confirm(m, s))
				return; /* polled again by the member tick */
			break;
		case MC_UNRECORD: {
			struct cmd c;
			memset(&c, 0, sizeof(c));
			c.type = CMD_MEMBER_REMOVE;
			c.request_id = ing_str_c("");
			c.u.member_remove.id = s->id;
			rv = mc_log(m, &c);
			break;
		}
		case MC_EVENT: rv = step_event(m, s); break;
		}
		if (rv != 0)
			mc_fail(m, rv, "%s: %s", m->req.what, ing_err_msg(rv));
	}
}

int mc_start(struct node *n, const struct mc_request *req)
{
	struct member *mb = node_member(n);
	struct mc *m = calloc(1, sizeof(*m));
	if (m == NULL) {
		if (req->call != NULL)
			rpc_reply_error(req->call, ING_ENOMEM, "out of memory");
		return ING_ENOMEM;
	}
	m->n = n;
	m->req = *req;
	m->started_ms = node_now_ms();
	mb->change = m;
	ING_LOG_INFO("membership change started change=\"%s\"", m->req.what);
	mc_run(m);
	return 0;
}

bool member_change_tick(struct member *mb)
{
	if (mb->change == NULL)
		return false;
	if (!mb->change->busy)
		mc_run(mb->change); /* may end it */
	return true;
}

void mc_stop(struct member *mb)
{
	struct mc *m = mb->change;
	if (m == NULL)
		return;
	if (m->req.call != NULL) {
		rpc_reply_error(m->req.call, ING_EUNAVAILABLE,
		                "node %" PRIu64 " is shutting down during the change",
		                node_id(m->n));
		m->req.call = NULL;
	}
	if (!m->busy) {
		mb->change = NULL;
		free(m);
	}
	/* else: freed by mc_finish when its callback comes (the node stays
	 * until raft is closed, which delivers it). */
}

int member_refuse_busy(struct node *n, struct rpc_call *call)
{
	struct member *mb = node_member(n);
	if (mb->change != NULL) {
		rpc_reply_error(call, ING_ECONFLICT,
		                "another membership change is in progress (%s); try again when it "
		                "is done",
		                mb->change->req.what);
		return -1;
	}
	if (mb->transfer != NULL) {
		rpc_reply_error(call, ING_ECONFLICT, "a leadership transfer is in progress");
		return -1;
	}
	if (cons_config_pending(node_cons(n))) {
		rpc_reply_error(call, ING_ECONFLICT,
		                "the last configuration change is not committed yet; try again");
		return -1;
	}
	return 0;
}

bool member_busy(const struct member *mb)
{
	return mb->change != NULL || mb->transfer != NULL;
}
