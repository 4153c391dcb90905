/*
 * member.c - membership administration (docs/api.md "Membership",
 * docs/operations.md).
 *
 * The leader runs at most one change at a time, as a plan of steps executed
 * in order, each asynchronous:
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
 *
 * add voter = record, add, assign standby, catch up, assign voter, record.
 * The new node only becomes a voter once it holds the log, so an add can
 * never leave the cluster waiting on a node that is not there.
 *
 * Refusals happen before anything changes, against the configuration as
 * it is: another change running (here or in libraft), a change that leaves
 * fewer live voters than a quorum of the new configuration, the last voter,
 * demoting the leader.  "Live" is the leader's view, and only what it has
 * seen: a reply over Raft that this leader certainly received within two
 * election timeouts (cons_member.confirmed_ago_ms; voters, standbys), or
 * for a spare, which gets no Raft traffic, a heartbeat this leader received
 * within three heartbeat intervals.  Never a grace period: a new leader
 * that has not heard from a member yet does not count it live.
 *
 * A change asked for by an operator that depends on who is live (adding or
 * promoting a voter, demoting a voter, removing anyone) starts with a
 * confirm step: it waits until the leader has led for one election timeout
 * and until enough voters of the new configuration have answered since the
 * request arrived (so a voter that died a moment before the request, still
 * "heard lately", is not counted), for at most two election timeouts, and
 * is refused (conflict) if they do not.
 *
 * A change that fails after changing a role puts the role back (an added
 * member is removed again), so a failed change leaves the configuration
 * as it was.
 *
 * Removing the leader itself: it transfers its leadership first and then
 * forwards the request to the new leader, which removes it.
 *
 * Self-healing (the leader, every MEMBER_TICK_MS, when `voters` > 0, once
 * it has led for one election timeout): a voter silent for
 * voter_replace_after_ms is replaced by the most caught-up live standby
 * (else spare): promote it, demote the dead voter to spare, record a
 * voter_replaced event.  Fewer voters than `voters`, or fewer standbys than
 * `standbys`, are made up from live standbys and spares.
 *
 * Every node: the members table follows the Raft configuration (the leader
 * reconciles after each change and when it becomes ready); a node that no
 * leader reached for REMOVED_CHECK_AFTER election timeouts, or that has
 * been campaigning that long (libraft tells a removed node nothing: it
 * stops hearing from the leader, and a removed voter campaigns) asks the
 * members whether it still belongs (member.check), and a node that was
 * removed stops, leaving a `removed` marker that refuses later starts.
 * Joining (--join) and leaving (leave_on_shutdown) go through the same
 * member.add / member.remove operations as an operator would.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "common/log.h"
#include "node/node_internal.h"
#include "rpc/args.h"

#define MEMBER_TICK_MS      100
#define MC_MAX_STEPS        12
#define MC_STEP_TEXT        200
#define TRANSFER_ATTEMPTS   3
#define REMOVED_CHECK_AFTER 5    /* election timeouts without a leader */
#define REMOVED_CHECK_EVERY 1000 /* ms between two checks */
#define JOIN_RETRY_MS       1000
#define LEAVE_TIMEOUT_MS    15000
#define REMOVED_MARKER      "removed"

enum step_kind { S_CONFIRM, S_RECORD, S_ADD, S_ASSIGN, S_CATCHUP, S_REMOVE, S_UNRECORD, S_EVENT };

struct step {
	enum step_kind kind;
	uint64_t id;
	enum cons_member_role role;
};

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
	/* S_CONFIRM: the quorum check to pass with members heard since
	 * started_ms (check_quorum's arguments). */
	bool confirm_removed, confirm_assume;
	enum cons_member_role confirm_to;
	/* The role m->id had before the change (rollback), and whether a
	 * step changed it. */
	bool had_role, role_changed;
	enum cons_member_role old_role;
	struct cons_change ch;
	char steps[MC_MAX_STEPS + 4][MC_STEP_TEXT];
	unsigned nsteps;
};

struct node_mtransfer {
	struct node *n;
	struct rpc_call *call;
	uint64_t target, previous;
	unsigned attempts;
	uint64_t started_ms;
	bool then_forward; /* member.remove of this leader: forward it after */
	/* libraft called back, this node no longer leads but does not know
	 * the new leader yet: re-checked by the member timer until then. */
	bool settling;
	uint64_t settle_deadline_ms;
	struct cons_transfer t;
};

static void mc_run(struct node_mchange *m);

/* ---- small helpers ------------------------------------------------------- */

static const char *cons_role_name(enum cons_member_role r)
{
	return rec_role_name((uint8_t)r);
}

static int role_arg(const msgpack_object *args, const char *name, bool allow_voter,
                    enum cons_member_role def, enum cons_member_role *out, struct ing_error *e)
{
	struct ing_str s = {"", 0}; /* an absent optional argument leaves it as is */
	int rv = rpc_arg_str(args, name, 16, false, &s, e);
	if (rv != 0)
		return rv;
	*out = def;
	const msgpack_object *v = rpc_arg_find(args, name);
	if (v == NULL || v->type == MSGPACK_OBJECT_NIL)
		return 0;
	for (uint8_t r = allow_voter ? 0 : 1; r < REC_ROLE_COUNT; r++) {
		if (ing_str_eq_c(s, rec_role_name(r))) {
			*out = (enum cons_member_role)r;
			return 0;
		}
	}
	return ing_error_set(e, ING_EINVAL, "argument '%s': '%.*s' is not %s", name, ING_STR_FMT(s),
	                     allow_voter ? "voter, standby or spare" : "standby or spare");
}

static int check_known(struct rpc_call *call, const char *const names[])
{
	struct ing_error e;
	if (rpc_args_check_known(rpc_call_args(call), names, &e) != 0) {
		rpc_reply_error(call, e.code, "%s", e.msg);
		return -1;
	}
	return 0;
}

static const struct cons_member *find(const struct cons_member *ms, unsigned n, uint64_t id)
{
	for (unsigned i = 0; i < n; i++)
		if (ms[i].id == id)
			return &ms[i];
	return NULL;
}

/* Checks the argument names, reads `id` and the configuration; replies and
 * returns non-zero on failure.  *ms is the caller's to free. */
static int id_and_members(struct node *n, struct rpc_call *call, const char *const known[],
                          bool required, uint64_t *id, struct cons_member **ms, unsigned *nm)
{
	struct ing_error e;

	if (check_known(call, known) != 0)
		return -1;
	*id = 0;
	if (rpc_arg_u64(rpc_call_args(call), "id", UINT64_MAX, required, id, &e) != 0) {
		rpc_reply_error(call, e.code, "%s", e.msg);
		return -1;
	}
	if (cons_members(n->cons, ms, nm) != 0) {
		rpc_reply_error(call, ING_ENOMEM, "out of memory");
		return -1;
	}
	return 0;
}

/* The leader's view of whether member `m` is alive: heard by this leader
 * within `window_ms` (0: the usual windows, two election timeouts over
 * Raft or three heartbeat intervals for a spare).  `maybe`: count a member
 * as heard at the start of the leadership until it has been silent for
 * the window (cons_member.contact_ago_ms): only for refusing at once what
 * is certainly impossible, never for deciding that a change is safe. */
static bool alive_view(struct node *n, const struct cons_member *m, uint64_t window_ms, bool maybe)
{
	uint64_t raft_window = window_ms != 0 ? window_ms : 2ull * n->cfg.election_timeout_ms;
	if (m->id == n->cfg.id)
		return true;
	if ((maybe ? m->contact_ago_ms : m->confirmed_ago_ms) < raft_window)
		return true;
	if (m->role != CONS_SPARE)
		return false; /* voters and standbys get Raft traffic: that decides */
	uint64_t last = node_liveness_last_ms(n, m->id);
	uint64_t hb_window = window_ms != 0 ? window_ms : 3ull * n->cfg.heartbeat_interval_ms;
	return last != 0 && node_now_ms() - last < hb_window;
}

static bool member_alive(struct node *n, const struct cons_member *m)
{
	return alive_view(n, m, 0, false);
}

/* Refuses a configuration whose live voters would be fewer than its
 * quorum.  `id` takes role `to` (removed when to_removed); `assume_alive`:
 * the member will be caught up before it votes.  Live: heard within
 * window_ms (0: member_alive's windows); with `maybe`, the permissive view
 * (alive_view), for the refusals made at once. */
static int check_quorum(struct node *n, const struct cons_member *ms, unsigned nm, uint64_t id,
                        bool to_removed, enum cons_member_role to, bool assume_alive,
                        uint64_t window_ms, bool maybe, struct ing_error *e)
{
	unsigned voters = 0, live = 0;
	bool seen = false;

	for (unsigned i = 0; i < nm; i++) {
		bool voter = ms[i].role == CONS_VOTER;
		bool alive = alive_view(n, &ms[i], window_ms, maybe);
		if (ms[i].id == id) {
			seen = true;
			voter = !to_removed && to == CONS_VOTER;
			alive = alive || assume_alive;
		}
		voters += voter;
		live += voter && alive;
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

static void mc_step_note(struct node_mchange *m, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void mc_step_note(struct node_mchange *m, const char *fmt, ...)
{
	va_list ap;
	if (m->nsteps == sizeof(m->steps) / sizeof(m->steps[0]))
		return;
	va_start(ap, fmt);
	vsnprintf(m->steps[m->nsteps], MC_STEP_TEXT, fmt, ap);
	va_end(ap);
	ING_LOG_INFO("membership change=\"%s\" step=\"%s\"", m->what, m->steps[m->nsteps]);
	m->nsteps++;
}

static void mc_fail(struct node_mchange *m, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void mc_fail(struct node_mchange *m, int code, const char *fmt, ...)
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

/* Addresses of an existing member: the members table, else the config. */
static void member_addresses(struct node *n, uint64_t id, const char *raft_address,
                             char raft_out[NODE_ADDRESS_MAX], char api_out[NODE_ADDRESS_MAX])
{
	snprintf(raft_out, NODE_ADDRESS_MAX, "%s", raft_address);
	node_member_api_address(n, id, api_out);
}

/* ---- the change runner ---------------------------------------------------- */

static void mc_reply(struct node_mchange *m, bool removed, enum cons_member_role role)
{
	struct mp_out o;

	if (m->call == NULL)
		return;
	mp_out_init(&o);
	msgpack_pack_map(&o.pk, 4);
	view_key(&o.pk, "id");
	msgpack_pack_uint64(&o.pk, m->id);
	view_key(&o.pk, "role");
	if (removed)
		msgpack_pack_nil(&o.pk);
	else
		mp_pack_cstr(&o.pk, cons_role_name(role));
	view_key(&o.pk, "steps");
	msgpack_pack_array(&o.pk, m->nsteps);
	for (unsigned i = 0; i < m->nsteps; i++)
		mp_pack_cstr(&o.pk, m->steps[i]);
	view_key(&o.pk, "elapsed_ms");
	msgpack_pack_uint64(&o.pk, node_now_ms() - m->started_ms);
	if (mp_out_failed(&o) != 0)
		rpc_reply_error(m->call, ING_ENOMEM, "out of memory encoding the reply");
	else
		rpc_reply(m->call, o.data, o.len);
	mp_out_free(&o);
	m->call = NULL;
}

static void mc_finish(struct node_mchange *m)
{
	struct node *n = m->n;
	struct cons_member *ms = NULL;
	unsigned nm = 0;

	if (m->fail_code != 0) {
		ING_LOG_WARN("membership change failed change=\"%s\" error=%s msg=\"%s\"", m->what,
		             ing_err_name(m->fail_code), m->fail_msg);
		if (m->call != NULL) {
			bool rolled_back = m->rolling_back && !m->rollback_failed;
			rpc_reply_error(m->call, m->fail_code, "%s%s", m->fail_msg,
			                rolled_back
			                    ? "; it was removed again: the configuration is "
			                      "as before"
			                    : "");
			m->call = NULL;
		}
	} else {
		const struct cons_member *me = NULL;
		if (n->cons != NULL && cons_members(n->cons, &ms, &nm) == 0)
			me = find(ms, nm, m->id);
		mc_reply(m, me == NULL, me != NULL ? me->role : CONS_SPARE);
		ING_LOG_INFO("membership change done change=\"%s\" elapsed_ms=%" PRIu64, m->what,
		             node_now_ms() - m->started_ms);
	}
	free(ms);
	if (n->mchange == m)
		n->mchange = NULL;
	free(m);
	if (!n->stopping && n->role == CONS_LEADER_READY)
		node_member_reconcile(n);
}

static void on_change(struct cons_change *ch, int status)
{
	struct node_mchange *m = ch->data;
	const struct step *s = &m->plan[m->pc];

	m->busy = false;
	if (status != 0) {
		mc_fail(m, status == ING_EUNAVAILABLE ? ING_EUNAVAILABLE : status,
		        "%s of member %" PRIu64 " failed: %s",
		        s->kind == S_ADD      ? "adding"
		        : s->kind == S_REMOVE ? "removing"
		                              : "changing the role",
		        s->id, ing_err_msg(status));
	} else {
		switch (s->kind) {
		case S_ADD: mc_step_note(m, "added %" PRIu64 " as spare", s->id); break;
		case S_ASSIGN:
			mc_step_note(m, "assigned %" PRIu64 " the %s role", s->id,
			             cons_role_name(s->role));
			if (s->id == m->id)
				m->role_changed = s->role != m->old_role;
			break;
		case S_REMOVE:
			mc_step_note(m, "removed %" PRIu64 " from the configuration", s->id);
			break;
		default: break;
		}
		m->pc++;
	}
	mc_run(m);
}

static void on_logged(struct node *n, int status, const struct node_result *r, void *data)
{
	struct node_mchange *m = data;
	const struct step *s = &m->plan[m->pc];
	(void)n;

	m->busy = false;
	if (status != 0 || (r != NULL && r->code != 0 && r->code != ING_ENOTFOUND)) {
		mc_fail(m, status != 0 ? status : r->code,
		        "recording member %" PRIu64 " failed: %s", s->id,
		        status != 0 ? ing_err_msg(status) : r->message);
	} else {
		if (s->kind == S_RECORD && s->id == m->id && m->pc == 0)
			mc_step_note(m, "recorded member %" PRIu64 " (raft %s, api %s)", s->id,
			             m->raft_address, m->api_address);
		m->pc++;
	}
	mc_run(m);
}

static int mc_log(struct node_mchange *m, const struct cmd *c)
{
	int rv = node_propose_internal(m->n, c, on_logged, m);
	if (rv == 0)
		m->busy = true;
	return rv;
}

static int step_record(struct node_mchange *m, const struct step *s)
{
	struct node *n = m->n;
	struct cons_member *ms = NULL;
	unsigned nm = 0;
	char raft[NODE_ADDRESS_MAX], api[NODE_ADDRESS_MAX];
	struct cmd c;
	int rv;

	if (s->id == m->id && m->raft_address[0] != '\0') {
		snprintf(raft, sizeof(raft), "%s", m->raft_address);
		snprintf(api, sizeof(api), "%s", m->api_address);
	} else {
		rv = cons_members(n->cons, &ms, &nm);
		if (rv != 0)
			return rv;
		const struct cons_member *me = find(ms, nm, s->id);
		member_addresses(n, s->id, me != NULL ? me->address : "", raft, api);
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

/* Catch-up: true when done (or failed); re-polled by the member timer. */
static bool step_catchup(struct node_mchange *m, const struct step *s)
{
	struct node *n = m->n;
	struct cons_member *ms = NULL;
	unsigned nm = 0;
	struct cons_status st;
	uint64_t now = node_now_ms();

	cons_status(n->cons, &st);
	if (m->catchup_start_ms == 0) {
		m->catchup_start_ms = now;
		m->catchup_target = st.last_index;
		m->catchup_deadline_ms = now + n->cfg.member_catchup_timeout_ms;
	}
	if (cons_members(n->cons, &ms, &nm) != 0)
		return false;
	const struct cons_member *me = find(ms, nm, s->id);
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
	        s->id, n->cfg.member_catchup_timeout_ms, match, m->catchup_target,
	        m->raft_address[0] ? m->raft_address : "its raft address");
	m->catchup_start_ms = 0;
	return true;
}

/* Confirm: true when done (passed, or failed); re-polled by the member
 * timer.  Waits for the leader to have led one election timeout, then for
 * the quorum check to pass counting only members heard since the request
 * arrived; refused when that has not happened two election timeouts later. */
static bool step_confirm(struct node_mchange *m, const struct step *s)
{
	struct node *n = m->n;
	uint64_t now = node_now_ms(), et = n->cfg.election_timeout_ms;
	uint64_t from = m->started_ms;
	struct cons_member *ms = NULL;
	unsigned nm = 0, voters = 0;
	struct ing_error e;

	if (n->leader_since_ms + et > from)
		from = n->leader_since_ms + et;
	if (now < from)
		return false;
	if (cons_members(n->cons, &ms, &nm) != 0)
		return false;
	/* Heard since the request arrived: within (now - arrival). */
	uint64_t window = now - m->started_ms + 1;
	int rv = check_quorum(n, ms, nm, s->id, m->confirm_removed, m->confirm_to,
	                      m->confirm_assume, window, false, &e);
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

/* The plan starts by confirming who is live (operator changes). */
static void plan_confirm(struct node_mchange *m, bool removed, enum cons_member_role to,
                         bool assume_alive)
{
	m->confirm_removed = removed;
	m->confirm_to = to;
	m->confirm_assume = assume_alive;
	m->plan[m->nplan++] = (struct step){S_CONFIRM, m->id, to};
}

/* After a failure: an added member that never got its role goes out again
 * (remove + unrecord), and a member whose role changed gets its old role
 * back, so the configuration is as before. */
static bool mc_rollback(struct node_mchange *m)
{
	bool added = false;
	for (unsigned i = 0; i < m->pc; i++)
		added |= m->plan[i].kind == S_ADD;
	if (!added && !(m->had_role && m->role_changed))
		return false;
	m->rolling_back = true;
	m->nplan = 0;
	m->pc = 0;
	if (added) {
		m->plan[m->nplan++] = (struct step){S_REMOVE, m->id, CONS_SPARE};
		m->plan[m->nplan++] = (struct step){S_UNRECORD, m->id, CONS_SPARE};
		mc_step_note(m, "rolling back: removing %" PRIu64 " again", m->id);
	} else {
		m->plan[m->nplan++] = (struct step){S_ASSIGN, m->id, m->old_role};
		m->plan[m->nplan++] = (struct step){S_RECORD, m->id, m->old_role};
		mc_step_note(m, "rolling back: %" PRIu64 " becomes a %s again", m->id,
		             cons_role_name(m->old_role));
	}
	return true;
}

static void mc_run(struct node_mchange *m)
{
	struct node *n = m->n;
	int rv = 0;

	while (!m->busy) {
		/* Failed: an added member goes out again (once); a failure
		 * during that rollback ends the change. */
		if (m->fail_code != 0 && !m->rolling_back &&
		    (n->stopping || n->role != CONS_LEADER_READY || !mc_rollback(m))) {
			mc_finish(m);
			return;
		}
		if (m->rollback_failed) {
			mc_finish(m);
			return;
		}
		if (m->pc >= m->nplan) {
			mc_finish(m);
			return;
		}
		if (n->stopping || n->role != CONS_LEADER_READY) {
			mc_fail(m, ING_EUNAVAILABLE,
			        "leadership lost during the change: check the configuration "
			        "with `ingotctl member list` and repeat it if needed");
			mc_finish(m);
			return;
		}
		const struct step *s = &m->plan[m->pc];
		m->ch.data = m;
		m->ch.cb = on_change;
		switch (s->kind) {
		case S_RECORD: rv = step_record(m, s); break;
		case S_ADD:
			rv = cons_add(n->cons, &m->ch, s->id, m->raft_address);
			m->busy = rv == 0;
			break;
		case S_ASSIGN:
			rv = cons_assign(n->cons, &m->ch, s->id, s->role);
			m->busy = rv == 0;
			break;
		case S_REMOVE:
			rv = cons_remove(n->cons, &m->ch, s->id);
			m->busy = rv == 0;
			if (rv == ING_ENOTFOUND) { /* gone already */
				rv = 0;
				m->pc++;
			}
			break;
		case S_CATCHUP:
			if (!step_catchup(m, s))
				return; /* polled again by the member timer */
			break;
		case S_CONFIRM:
			if (!step_confirm(m, s))
				return; /* polled again by the member timer */
			break;
		case S_UNRECORD: {
			struct cmd c;
			memset(&c, 0, sizeof(c));
			c.type = CMD_MEMBER_REMOVE;
			c.request_id = ing_str_c("");
			c.u.member_remove.id = s->id;
			rv = mc_log(m, &c);
			break;
		}
		case S_EVENT: {
			struct cmd c;
			char text[ING_MESSAGE_MAX];
			snprintf(text, sizeof(text),
			         "voter %" PRIu64 " unreachable for %" PRIu64
			         " ms: replaced by %" PRIu64 ", which is now a voter; %" PRIu64
			         " demoted to spare",
			         m->heal_dead, m->heal_silent_ms, m->id, m->heal_dead);
			memset(&c, 0, sizeof(c));
			c.type = CMD_CLUSTER_EVENT;
			c.request_id = ing_str_c("");
			c.u.cluster_event.kind = REC_EV_VOTER_REPLACED;
			c.u.cluster_event.member = m->heal_dead;
			c.u.cluster_event.message = ing_str_c(text);
			rv = mc_log(m, &c);
			break;
		}
		}
		if (rv != 0)
			mc_fail(m, rv, "%s: %s", m->what, ing_err_msg(rv));
	}
}

static struct node_mchange *mc_new(struct node *n, struct rpc_call *call, uint64_t id,
                                   const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static struct node_mchange *mc_new(struct node *n, struct rpc_call *call, uint64_t id,
                                   const char *fmt, ...)
{
	va_list ap;
	struct node_mchange *m = calloc(1, sizeof(*m));
	if (m == NULL) {
		if (call != NULL)
			rpc_reply_error(call, ING_ENOMEM, "out of memory");
		return NULL;
	}
	m->n = n;
	m->call = call;
	m->id = id;
	m->started_ms = node_now_ms();
	va_start(ap, fmt);
	vsnprintf(m->what, sizeof(m->what), fmt, ap);
	va_end(ap);
	return m;
}

static void mc_start(struct node_mchange *m)
{
	m->n->mchange = m;
	ING_LOG_INFO("membership change started change=\"%s\"", m->what);
	mc_run(m);
}

/* The common refusals; replies and returns non-zero when refused. */
static int refuse_busy(struct node *n, struct rpc_call *call)
{
	if (n->mchange != NULL) {
		rpc_reply_error(call, ING_ECONFLICT,
		                "another membership change is in progress (%s); try again when it "
		                "is done",
		                n->mchange->what);
		return -1;
	}
	if (n->mtransfer != NULL) {
		rpc_reply_error(call, ING_ECONFLICT, "a leadership transfer is in progress");
		return -1;
	}
	if (cons_config_pending(n->cons)) {
		rpc_reply_error(call, ING_ECONFLICT,
		                "the last configuration change is not committed yet; try again");
		return -1;
	}
	return 0;
}

/* Appends the steps that take existing member `id` from role `from` to
 * voter: a spare becomes a standby first, then catches up. */
static void plan_promotion(struct node_mchange *m, uint64_t id, enum cons_member_role from,
                           enum cons_member_role to)
{
	if (from == CONS_SPARE && to != CONS_SPARE)
		m->plan[m->nplan++] = (struct step){S_ASSIGN, id, CONS_STANDBY};
	if (to != CONS_SPARE)
		m->plan[m->nplan++] = (struct step){S_CATCHUP, id, to};
	if (to == CONS_VOTER)
		m->plan[m->nplan++] = (struct step){S_ASSIGN, id, CONS_VOTER};
	m->plan[m->nplan++] = (struct step){S_RECORD, id, to};
}

/* ---- operations ------------------------------------------------------------ */

void node_op_member_add(struct node *n, struct rpc_call *call)
{
	static const char *const known[] = {"id", "raft_address", "api_address", "role", NULL};
	const msgpack_object *args = rpc_call_args(call);
	struct ing_str raft, api;
	struct cons_member *ms = NULL;
	unsigned nm = 0;
	enum cons_member_role role;
	struct ing_error e;
	uint64_t id;
	int rv;

	if (check_known(call, known) != 0)
		return;
	rv = rpc_arg_u64(args, "id", UINT64_MAX, true, &id, &e);
	if (rv == 0 && id == 0)
		rv = ing_error_set(&e, ING_EINVAL, "argument 'id': must be > 0");
	if (rv == 0)
		rv = rpc_arg_str(args, "raft_address", NODE_ADDRESS_MAX - 1, true, &raft, &e);
	if (rv == 0)
		rv = rpc_arg_str(args, "api_address", NODE_ADDRESS_MAX - 1, true, &api, &e);
	if (rv == 0 && !cmd_address_valid(raft))
		rv = ing_error_set(&e, ING_EINVAL,
		                   "argument 'raft_address': '%.*s' is not a.b.c.d:port",
		                   ING_STR_FMT(raft));
	if (rv == 0 && !cmd_address_valid(api))
		rv = ing_error_set(&e, ING_EINVAL,
		                   "argument 'api_address': '%.*s' is not a.b.c.d:port",
		                   ING_STR_FMT(api));
	if (rv == 0 && ing_str_eq(raft, api))
		rv = ing_error_set(&e, ING_EINVAL, "raft_address and api_address must differ");
	if (rv == 0)
		rv = role_arg(args, "role", true, CONS_VOTER, &role, &e);
	if (rv != 0) {
		rpc_reply_error(call, e.code, "%s", e.msg);
		return;
	}
	if (cons_members(n->cons, &ms, &nm) != 0) {
		rpc_reply_error(call, ING_ENOMEM, "out of memory");
		return;
	}
	char raft_c[NODE_ADDRESS_MAX], api_c[NODE_ADDRESS_MAX];
	snprintf(raft_c, sizeof(raft_c), "%.*s", ING_STR_FMT(raft));
	snprintf(api_c, sizeof(api_c), "%.*s", ING_STR_FMT(api));
	for (unsigned i = 0; i < nm; i++) {
		char other_api[NODE_ADDRESS_MAX];
		node_member_api_address(n, ms[i].id, other_api);
		if (ms[i].id == id) {
			if (strcmp(ms[i].address, raft_c) == 0 && strcmp(other_api, api_c) == 0 &&
			    ms[i].role == role) {
				struct node_mchange *m =
				    mc_new(n, call, id, "adding member %" PRIu64, id);
				if (m != NULL) {
					mc_step_note(m,
					             "member %" PRIu64
					             " is already a %s at raft %s: "
					             "nothing to do",
					             id, cons_role_name(role), raft_c);
					mc_reply(m, false, role);
					free(m);
				}
			} else {
				rpc_reply_error(
				    call, ING_EEXIST,
				    "member %" PRIu64 " already exists as a %s (raft %s, "
				    "api %s); use member promote/demote, or remove it first",
				    id, cons_role_name(ms[i].role), ms[i].address,
				    other_api[0] ? other_api : "unknown");
			}
			goto out;
		}
		if (strcmp(ms[i].address, raft_c) == 0 || strcmp(other_api, api_c) == 0) {
			rpc_reply_error(
			    call, ING_EEXIST, "member %" PRIu64 " already uses %s %s", ms[i].id,
			    strcmp(ms[i].address, raft_c) == 0 ? "raft address" : "API address",
			    strcmp(ms[i].address, raft_c) == 0 ? raft_c : api_c);
			goto out;
		}
	}
	if (refuse_busy(n, call) != 0)
		goto out;
	if (role == CONS_VOTER &&
	    check_quorum(n, ms, nm, id, false, CONS_VOTER, true, 0, true, &e) != 0) {
		rpc_reply_error(call, e.code, "%s", e.msg);
		goto out;
	}
	struct node_mchange *m =
	    mc_new(n, call, id, "adding member %" PRIu64 " as %s", id, cons_role_name(role));
	if (m == NULL)
		goto out;
	snprintf(m->raft_address, sizeof(m->raft_address), "%s", raft_c);
	snprintf(m->api_address, sizeof(m->api_address), "%s", api_c);
	if (role == CONS_VOTER)
		plan_confirm(m, false, CONS_VOTER, true);
	m->plan[m->nplan++] = (struct step){S_RECORD, id, CONS_SPARE};
	m->plan[m->nplan++] = (struct step){S_ADD, id, CONS_SPARE};
	plan_promotion(m, id, CONS_SPARE, role);
	mc_start(m);
out:
	free(ms);
}

/* promote / demote: reads id (and role), checks, runs. */
static void role_change(struct node *n, struct rpc_call *call, bool promote)
{
	static const char *const promote_known[] = {"id", NULL};
	static const char *const demote_known[] = {"id", "role", NULL};
	const msgpack_object *args = rpc_call_args(call);
	struct cons_member *ms = NULL;
	unsigned nm = 0;
	enum cons_member_role to = CONS_VOTER;
	struct ing_error e;
	uint64_t id;
	int rv;

	if (check_known(call, promote ? promote_known : demote_known) != 0)
		return;
	rv = rpc_arg_u64(args, "id", UINT64_MAX, true, &id, &e);
	if (rv == 0 && !promote)
		rv = role_arg(args, "role", false, CONS_STANDBY, &to, &e);
	if (rv != 0) {
		rpc_reply_error(call, e.code, "%s", e.msg);
		return;
	}
	if (cons_members(n->cons, &ms, &nm) != 0) {
		rpc_reply_error(call, ING_ENOMEM, "out of memory");
		return;
	}
	const struct cons_member *me = find(ms, nm, id);
	if (me == NULL) {
		rpc_reply_error(call, ING_ENOTFOUND,
		                "member %" PRIu64 " is not in the configuration", id);
		goto out;
	}
	if (me->role == to) {
		struct node_mchange *m = mc_new(n, call, id, "member %" PRIu64, id);
		if (m != NULL) {
			mc_step_note(m, "member %" PRIu64 " is already a %s: nothing to do", id,
			             cons_role_name(to));
			mc_reply(m, false, to);
			free(m);
		}
		goto out;
	}
	if (!promote && id == n->cfg.id) {
		rpc_reply_error(call, ING_ECONFLICT,
		                "member %" PRIu64 " is the leader: transfer leadership first "
		                "(ingotctl member transfer-leadership), then demote it",
		                id);
		goto out;
	}
	if (refuse_busy(n, call) != 0)
		goto out;
	if ((me->role == CONS_VOTER || to == CONS_VOTER) &&
	    check_quorum(n, ms, nm, id, false, to, promote, 0, true, &e) != 0) {
		rpc_reply_error(call, e.code, "%s", e.msg);
		goto out;
	}
	struct node_mchange *m = mc_new(n, call, id, "%s member %" PRIu64 " to %s",
	                                promote ? "promoting" : "demoting", id, cons_role_name(to));
	if (m == NULL)
		goto out;
	m->had_role = true;
	m->old_role = me->role;
	if (me->role == CONS_VOTER || to == CONS_VOTER)
		plan_confirm(m, false, to, promote);
	if (promote) {
		plan_promotion(m, id, me->role, CONS_VOTER);
	} else {
		m->plan[m->nplan++] = (struct step){S_ASSIGN, id, to};
		m->plan[m->nplan++] = (struct step){S_RECORD, id, to};
	}
	mc_start(m);
out:
	free(ms);
}

void node_op_member_promote(struct node *n, struct rpc_call *call)
{
	role_change(n, call, true);
}

void node_op_member_demote(struct node *n, struct rpc_call *call)
{
	role_change(n, call, false);
}

static int start_transfer(struct node *n, struct rpc_call *call, uint64_t target,
                          bool then_forward);

void node_op_member_remove(struct node *n, struct rpc_call *call)
{
	static const char *const known[] = {"id", NULL};
	struct cons_member *ms = NULL;
	unsigned nm = 0;
	struct ing_error e;
	uint64_t id;

	if (id_and_members(n, call, known, true, &id, &ms, &nm) != 0)
		return;
	const struct cons_member *me = find(ms, nm, id);
	if (me == NULL) {
		rpc_reply_error(call, ING_ENOTFOUND,
		                "member %" PRIu64 " is not in the configuration", id);
		goto out;
	}
	if (refuse_busy(n, call) != 0)
		goto out;
	if (check_quorum(n, ms, nm, id, true, CONS_SPARE, false, 0, true, &e) != 0) {
		rpc_reply_error(call, e.code, "%s", e.msg);
		goto out;
	}
	if (id == n->cfg.id) {
		/* The leader goes last: hand leadership over, then let the new
		 * leader remove this node (the request is forwarded to it). */
		ING_LOG_INFO(
		    "membership: removing the leader itself: transferring leadership first");
		start_transfer(n, call, 0, true);
		goto out;
	}
	struct node_mchange *m = mc_new(n, call, id, "removing member %" PRIu64, id);
	if (m == NULL)
		goto out;
	plan_confirm(m, true, CONS_SPARE, false);
	m->plan[m->nplan++] = (struct step){S_REMOVE, id, CONS_SPARE};
	m->plan[m->nplan++] = (struct step){S_UNRECORD, id, CONS_SPARE};
	mc_start(m);
out:
	free(ms);
}

void node_op_member_check(struct node *n, struct rpc_call *call)
{
	static const char *const known[] = {"id", NULL};
	struct cons_member *ms = NULL;
	unsigned nm = 0;
	struct mp_out o;
	char cluster[CMD_CLUSTER_ID_LEN + 1];
	uint64_t id;

	if (id_and_members(n, call, known, true, &id, &ms, &nm) != 0)
		return;
	const struct cons_member *me = find(ms, nm, id);
	/* An uncommitted configuration may still be undone: count the node
	 * as a member until it is final. */
	bool member = me != NULL || cons_config_pending(n->cons);
	node_cluster_id(n, cluster);
	mp_out_init(&o);
	msgpack_pack_map(&o.pk, 3);
	view_key(&o.pk, "member");
	mp_pack_bool(&o.pk, member);
	view_key(&o.pk, "role");
	if (me != NULL)
		mp_pack_cstr(&o.pk, cons_role_name(me->role));
	else
		msgpack_pack_nil(&o.pk);
	view_key(&o.pk, "cluster_id");
	mp_pack_cstr(&o.pk, cluster);
	rpc_reply(call, o.data, o.len);
	mp_out_free(&o);
	free(ms);
}

/* ---- leadership transfer ----------------------------------------------------- */

static void transfer_reply(struct node_mtransfer *t, uint64_t leader)
{
	struct mp_out o;
	mp_out_init(&o);
	msgpack_pack_map(&o.pk, 4);
	view_key(&o.pk, "leader");
	msgpack_pack_uint64(&o.pk, leader);
	view_key(&o.pk, "previous");
	msgpack_pack_uint64(&o.pk, t->previous);
	view_key(&o.pk, "attempts");
	msgpack_pack_uint64(&o.pk, t->attempts);
	view_key(&o.pk, "elapsed_ms");
	msgpack_pack_uint64(&o.pk, node_now_ms() - t->started_ms);
	rpc_reply(t->call, o.data, o.len);
	mp_out_free(&o);
}

/* What came of a transfer: replies (or forwards) and frees t, retries, or
 * leaves t settling (re-checked by the member timer). */
static void transfer_settle(struct node_mtransfer *t)
{
	struct node *n = t->n;
	struct cons_status st;
	int rv;

	cons_status(n->cons, &st);
	bool led = st.role == CONS_LEADER || st.role == CONS_LEADER_READY;
	if (!led && st.leader_id == 0 && !n->stopping) {
		/* Stepped down, new leader not heard yet (its first append is
		 * on the way): neither a success nor a failure so far. */
		uint64_t now = node_now_ms();
		if (!t->settling) {
			t->settling = true;
			t->settle_deadline_ms = now + 2ull * n->cfg.election_timeout_ms;
		}
		if (now < t->settle_deadline_ms)
			return;
	}
	t->settling = false;
	bool moved = !led && st.leader_id != 0 && st.leader_id != n->cfg.id;
	bool to_target = moved && (t->target == 0 || st.leader_id == t->target);
	if (to_target || (moved && t->then_forward)) {
		ING_LOG_INFO("leadership transferred from=%" PRIu64 " to=%" PRIu64 " attempts=%u",
		             t->previous, st.leader_id, t->attempts);
		n->mtransfer = NULL;
		if (t->then_forward) {
			/* This node is a follower now: the remove goes to the new
			 * leader (parked until it is ready). */
			n->leader_id = st.leader_id;
			node_api_dispatch(n, t->call);
		} else {
			transfer_reply(t, st.leader_id);
		}
		free(t);
		return;
	}
	if (moved) {
		/* Another node won: that is the cluster's choice, not ours. */
		n->mtransfer = NULL;
		rpc_reply_error(t->call, ING_ECONFLICT,
		                "leadership moved to node %" PRIu64 " instead of %" PRIu64
		                ": ask that leader again",
		                st.leader_id, t->target);
		free(t);
		return;
	}
	if (t->attempts < TRANSFER_ATTEMPTS && !n->stopping) {
		t->attempts++;
		ING_LOG_WARN("leadership transfer did not happen, retrying target=%" PRIu64
		             " attempt=%u",
		             t->target, t->attempts);
		rv = cons_transfer(n->cons, &t->t, t->target);
		if (rv == 0)
			return;
	}
	n->mtransfer = NULL;
	rpc_reply_error(t->call, ING_ETIMEOUT,
	                "leadership stayed with node %" PRIu64
	                " after %u attempt%s to transfer it%s",
	                n->cfg.id, t->attempts, t->attempts == 1 ? "" : "s",
	                t->target != 0 ? "; is the target caught up and reachable?" : "");
	free(t);
}

static void on_transferred(struct cons_transfer *ct)
{
	transfer_settle(ct->data);
}

static int start_transfer(struct node *n, struct rpc_call *call, uint64_t target, bool then_forward)
{
	struct node_mtransfer *t = calloc(1, sizeof(*t));
	int rv;

	if (t == NULL) {
		rpc_reply_error(call, ING_ENOMEM, "out of memory");
		return ING_ENOMEM;
	}
	t->n = n;
	t->call = call;
	t->target = target;
	t->previous = n->cfg.id;
	t->attempts = 1;
	t->started_ms = node_now_ms();
	t->then_forward = then_forward;
	t->t.data = t;
	t->t.cb = on_transferred;
	rv = cons_transfer(n->cons, &t->t, target);
	if (rv != 0) {
		rpc_reply_error(call, rv,
		                rv == ING_ENOTFOUND
		                    ? "cannot transfer leadership to %" PRIu64
		                      ": it must be another voter of the configuration"
		                    : "cannot transfer leadership to %" PRIu64 ": %s",
		                target, ing_err_msg(rv));
		free(t);
		return rv;
	}
	n->mtransfer = t;
	return 0;
}

void node_op_member_transfer(struct node *n, struct rpc_call *call)
{
	static const char *const known[] = {"id", NULL};
	struct ing_error e;
	uint64_t id = 0;

	if (check_known(call, known) != 0)
		return;
	if (rpc_arg_u64(rpc_call_args(call), "id", UINT64_MAX, false, &id, &e) != 0) {
		rpc_reply_error(call, e.code, "%s", e.msg);
		return;
	}
	if (id == n->cfg.id) {
		struct node_mtransfer t = {
		    .previous = id, .attempts = 0, .started_ms = node_now_ms(), .call = call};
		transfer_reply(&t, id); /* already the leader */
		return;
	}
	if (n->mchange != NULL || n->mtransfer != NULL) {
		refuse_busy(n, call);
		return;
	}
	start_transfer(n, call, id, false);
}

/* ---- reconciling the members table ------------------------------------------ */

void node_member_reconcile(struct node *n)
{
	struct cons_member *ms = NULL;
	unsigned nm = 0;
	struct store_txn *t;
	struct store_iter *it;
	struct ing_str k, v;
	uint64_t stale[64];
	unsigned nstale = 0;
	int rv;

	if (n->role != CONS_LEADER_READY || n->mchange != NULL || cons_config_pending(n->cons) ||
	    cons_members(n->cons, &ms, &nm) != 0)
		return;
	if (store_read_begin(n->store, &t) != 0) {
		free(ms);
		return;
	}
	/* Records whose member left the configuration. */
	rv = store_iter_open(t, STORE_MEMBERS, (struct ing_str){"", 0}, &it);
	while (rv == 0 && (rv = store_iter_next(it, &k, &v)) == 0) {
		if (k.len == 8 && find(ms, nm, store_get_be64(k.ptr)) == NULL && nstale < 64)
			stale[nstale++] = store_get_be64(k.ptr);
	}
	if (rv == 0 || rv == ING_ENOTFOUND)
		store_iter_close(it);
	/* Members whose record is missing or differs. */
	for (unsigned i = 0; i < nm; i++) {
		uint8_t key[8];
		struct ing_str val;
		char api[NODE_ADDRESS_MAX] = "";
		bool same = false;
		msgpack_zone z;
		struct rec_member r;

		store_be64(key, ms[i].id);
		msgpack_zone_init(&z, 256);
		if (store_get(t, STORE_MEMBERS, (struct ing_str){(const char *)key, 8}, &val) ==
		        0 &&
		    rec_member_decode(val, &z, &r, NULL) == 0) {
			snprintf(api, sizeof(api), "%.*s", ING_STR_FMT(r.api_address));
			same = r.role == (uint8_t)ms[i].role &&
			       ing_str_eq_c(r.raft_address, ms[i].address);
		}
		msgpack_zone_destroy(&z);
		if (same)
			continue;
		if (api[0] == '\0')
			for (unsigned j = 0; j < n->cfg.npeers; j++)
				if (n->cfg.peers[j].id == ms[i].id)
					snprintf(api, sizeof(api), "%s",
					         n->cfg.peers[j].api_address);
		if (api[0] == '\0') {
			ING_LOG_WARN("member %" PRIu64 " has no known API address: not recorded",
			             ms[i].id);
			continue;
		}
		struct cmd c;
		memset(&c, 0, sizeof(c));
		c.type = CMD_MEMBER_PUT;
		c.request_id = ing_str_c("");
		c.u.member_put.member.id = ms[i].id;
		c.u.member_put.member.raft_address = ing_str_c(ms[i].address);
		c.u.member_put.member.api_address = ing_str_c(api);
		c.u.member_put.member.role = (uint8_t)ms[i].role;
		node_propose_internal(n, &c, NULL, NULL);
	}
	store_abort(t);
	for (unsigned i = 0; i < nstale; i++) {
		struct cmd c;
		memset(&c, 0, sizeof(c));
		c.type = CMD_MEMBER_REMOVE;
		c.request_id = ing_str_c("");
		c.u.member_remove.id = stale[i];
		ING_LOG_INFO("members table: %" PRIu64 " is no longer in the configuration",
		             stale[i]);
		node_propose_internal(n, &c, NULL, NULL);
	}
	free(ms);
}

/* ---- cluster id -------------------------------------------------------------- */

void node_cluster_id(struct node *n, char out[CMD_CLUSTER_ID_LEN + 1])
{
	struct store_txn *t;
	struct ing_str v;
	out[0] = '\0';
	if (store_read_begin(n->store, &t) != 0)
		return;
	if (store_get(t, STORE_META, ing_str_c(SM_META_CLUSTER_ID), &v) == 0 &&
	    v.len == CMD_CLUSTER_ID_LEN)
		snprintf(out, CMD_CLUSTER_ID_LEN + 1, "%.*s", ING_STR_FMT(v));
	store_abort(t);
}

/* The first ready leader names the cluster. */
static void maybe_name_cluster(struct node *n)
{
	char id[CMD_CLUSTER_ID_LEN + 1];
	uint8_t raw[CMD_CLUSTER_ID_LEN / 2];
	struct cmd c;

	node_cluster_id(n, id);
	if (id[0] != '\0')
		return;
	if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw)) {
		ING_LOG_WARN("cannot name the cluster: getrandom failed: %s", strerror(errno));
		return;
	}
	for (size_t i = 0; i < sizeof(raw); i++)
		snprintf(id + 2 * i, 3, "%02x", raw[i]);
	memset(&c, 0, sizeof(c));
	c.type = CMD_CLUSTER_INIT;
	c.request_id = ing_str_c("");
	c.u.cluster_init.cluster_id = ing_str_c(id);
	node_propose_internal(n, &c, NULL, NULL);
}

/* ---- leader: becoming ready, leader changes ------------------------------------ */

void node_member_leader(struct node *n, uint64_t previous)
{
	struct cmd c;
	char text[160];

	maybe_name_cluster(n);
	node_member_reconcile(n);
	if (previous == 0 || previous == n->cfg.id)
		return;
	snprintf(text, sizeof(text),
	         "node %" PRIu64 " became leader in term %" PRIu64
	         " (previous leader: node %" PRIu64 ")",
	         n->cfg.id, n->term, previous);
	memset(&c, 0, sizeof(c));
	c.type = CMD_CLUSTER_EVENT;
	c.request_id = ing_str_c("");
	c.u.cluster_event.kind = REC_EV_LEADER_CHANGED;
	c.u.cluster_event.member = n->cfg.id;
	c.u.cluster_event.message = ing_str_c(text);
	node_propose_internal(n, &c, NULL, NULL);
}

/* ---- self-healing ------------------------------------------------------------ */

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

static void heal(struct node *n)
{
	struct cons_member *ms = NULL;
	unsigned nm = 0, voters = 0, standbys = 0;
	enum cons_member_role from = CONS_STANDBY;
	uint64_t dead = 0, silent = 0, cand;

	/* A leader younger than an election timeout has not heard everyone
	 * yet: what it would decide rests on too little. */
	if (n->cfg.voters == 0 || n->mchange != NULL || n->mtransfer != NULL ||
	    node_now_ms() - n->leader_since_ms < n->cfg.election_timeout_ms ||
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
		             dead, silent, cons_role_name(from), cand);
		m = mc_new(n, NULL, cand, "replacing unreachable voter %" PRIu64 " by %" PRIu64,
		           dead, cand);
		if (m != NULL) {
			m->heal_dead = dead;
			m->heal_silent_ms = silent;
			m->had_role = true;
			m->old_role = from;
			plan_promotion(m, cand, from, CONS_VOTER);
			m->plan[m->nplan++] = (struct step){S_ASSIGN, dead, CONS_SPARE};
			m->plan[m->nplan++] = (struct step){S_RECORD, dead, CONS_SPARE};
			m->plan[m->nplan++] = (struct step){S_EVENT, dead, CONS_SPARE};
		}
	} else if (dead == 0 && voters < n->cfg.voters && cand != 0) {
		ING_LOG_INFO("self-healing: %u voters of %u wanted: promoting %s %" PRIu64, voters,
		             n->cfg.voters, cons_role_name(from), cand);
		m = mc_new(n, NULL, cand, "promoting %" PRIu64 " to keep %u voters", cand,
		           n->cfg.voters);
		if (m != NULL) {
			m->had_role = true;
			m->old_role = from;
			plan_promotion(m, cand, from, CONS_VOTER);
		}
	} else if (dead == 0 && standbys < n->cfg.standbys &&
	           (cand = best_candidate(n, ms, nm, CONS_SPARE, &from)) != 0) {
		ING_LOG_INFO("self-healing: %u standbys of %u wanted: spare %" PRIu64
		             " becomes a standby",
		             standbys, n->cfg.standbys, cand);
		m = mc_new(n, NULL, cand, "making spare %" PRIu64 " a standby", cand);
		if (m != NULL) {
			m->had_role = true;
			m->old_role = CONS_SPARE;
			plan_promotion(m, cand, CONS_SPARE, CONS_STANDBY);
		}
	}
	free(ms);
	if (m != NULL)
		mc_start(m);
}

/* ---- removal, joining, leaving ------------------------------------------------ */

static void marker_path(struct node *n, char *out, size_t len)
{
	snprintf(out, len, "%s/%s", n->cfg.data_dir, REMOVED_MARKER);
}

int node_member_check_marker(const char *data_dir, uint64_t id, struct ing_error *e)
{
	char path[600];
	snprintf(path, sizeof(path), "%s/%s", data_dir, REMOVED_MARKER);
	if (access(path, F_OK) != 0)
		return 0;
	return ing_error_set(e, ING_EINVAL,
	                     "node %" PRIu64 " was removed from its cluster (see %s); to become "
	                     "a member again, empty its data directory and start it with --join",
	                     id, path);
}

/* This node is not a member any more: leave a marker and stop (status 0). */
static void removed(struct node *n, const char *how)
{
	char path[600];
	marker_path(n, path, sizeof(path));
	FILE *f = fopen(path, "w");
	if (f != NULL) {
		char cluster[CMD_CLUSTER_ID_LEN + 1];
		node_cluster_id(n, cluster);
		fprintf(f, "removed at %" PRIu64 " ms (%s), cluster %s\n", node_now_ms(), how,
		        cluster[0] ? cluster : "unknown");
		fclose(f);
	}
	ING_LOG_WARN("removed from the cluster (%s): stopping", how);
	node_stop(n);
}

/* An outgoing request of this node (check, join, leave, cluster id check)
 * over its own client.  Each holds the node (node_hold) until freed, and
 * node_member_stop closes their clients, so none outlives the node. */
struct mreq {
	struct rpc_request r;
	struct node *n;
	struct rpc_client *client;
};

static void client_closed(void *data)
{
	node_release(data);
}

static struct mreq *mreq_new(struct node *n)
{
	struct mreq *q;
	unsigned i;

	for (i = 0; i < NODE_MAX_MREQS && n->mreqs[i] != NULL; i++)
		;
	if (i == NODE_MAX_MREQS || (q = calloc(1, sizeof(*q))) == NULL)
		return NULL;
	q->n = n;
	q->r.data = q;
	n->mreqs[i] = q;
	node_hold(n);
	return q;
}

/* Last thing a callback does: may release the node's last hold. */
static void mreq_free(struct mreq *q)
{
	struct node *n = q->n;
	for (unsigned i = 0; i < NODE_MAX_MREQS; i++)
		if (n->mreqs[i] == q)
			n->mreqs[i] = NULL;
	if (q->client != NULL) {
		node_hold(n);
		rpc_client_close(q->client, client_closed, n);
	}
	free(q);
	node_release(n);
}

/* A client to `addrs`; NULL on failure (logged). */
static struct rpc_client *client_to(struct node *n, const char *const *addrs, unsigned naddrs,
                                    unsigned timeout_ms)
{
	struct rpc_client *c;
	struct ing_error e;
	struct rpc_client_options o = {
	    .endpoints = addrs,
	    .nendpoints = naddrs,
	    .timeout_ms = timeout_ms,
	    .connect_timeout_ms = 500,
	};
	if (naddrs == 0 || rpc_client_new(n->loop, &o, &c, &e) != 0)
		return NULL;
	return c;
}

static void on_check(struct rpc_request *r, int status, const struct ing_error *err,
                     const msgpack_object *result)
{
	struct mreq *q = r->data;
	struct node *n = q->n;
	(void)err;
	n->removal_checking = false;
	if (status == 0 && !n->stopping && n->cons != NULL) {
		const msgpack_object *m = rpc_arg_find(result, "member");
		if (m != NULL && m->type == MSGPACK_OBJECT_BOOLEAN && !m->via.boolean)
			removed(n, "the leader's configuration does not include this node");
	}
	mreq_free(q); /* last: may release the node */
}

/* A node that hears from no leader asks whether it still belongs. */
static void removal_check(struct node *n)
{
	const char *addrs[NODE_MAX_PEERS];
	char buf[NODE_MAX_PEERS][NODE_ADDRESS_MAX];
	unsigned na = 0;
	struct cons_member *ms = NULL;
	unsigned nm = 0;
	uint64_t now = node_now_ms();

	struct cons_status st;

	uint64_t after = (uint64_t)REMOVED_CHECK_AFTER * n->cfg.election_timeout_ms;

	/* Campaigning (a removed voter does, forever) or knowing no leader
	 * since some time; or a follower the leader stopped reaching. */
	cons_status(n->cons, &st);
	if (st.role == CONS_CANDIDATE || st.leader_id == 0) {
		if (n->leaderless_since_ms == 0)
			n->leaderless_since_ms = now;
	} else {
		n->leaderless_since_ms = 0;
	}
	bool suspect = (n->leaderless_since_ms != 0 && now - n->leaderless_since_ms >= after) ||
	               (st.role == CONS_FOLLOWER && st.leader_contact_ago_ms >= after);
	if (!suspect || n->joining || n->removal_checking ||
	    now - n->removal_checked_ms < REMOVED_CHECK_EVERY)
		return;
	n->removal_checked_ms = now;
	if (cons_members(n->cons, &ms, &nm) != 0 || nm == 0) {
		free(ms);
		return;
	}
	for (unsigned i = 0; i < nm && na < NODE_MAX_PEERS; i++) {
		if (ms[i].id == n->cfg.id)
			continue;
		node_member_api_address(n, ms[i].id, buf[na]);
		if (buf[na][0] != '\0') {
			addrs[na] = buf[na];
			na++;
		}
	}
	free(ms);
	struct mreq *q = mreq_new(n);
	struct mp_out o;
	if (q == NULL)
		return;
	q->client = client_to(n, addrs, na, 2000);
	if (q->client == NULL) {
		mreq_free(q);
		return;
	}
	q->r.cb = on_check;
	mp_out_init(&o);
	msgpack_pack_map(&o.pk, 1);
	view_key(&o.pk, "id");
	msgpack_pack_uint64(&o.pk, n->cfg.id);
	if (mp_out_failed(&o) == 0 &&
	    rpc_client_call(q->client, &q->r, "member.check", o.data, o.len, RPC_NO_RETRY) == 0)
		n->removal_checking = true;
	else
		mreq_free(q);
	mp_out_free(&o);
}

static void join_send(struct node *n);

static void on_join_retry(uv_timer_t *h)
{
	struct node *n = h->data;
	if (!n->stopping && n->joining)
		join_send(n);
}

static void join_answered(struct node *n, int status, const struct ing_error *err,
                          const msgpack_object *result)
{
	(void)result;
	if (n->stopping)
		return;
	if (status == 0) {
		n->joining = false;
		ING_LOG_INFO("joined the cluster as %s", rec_role_name(n->cfg.join_role));
		return;
	}
	bool transient = status == ING_ECONFLICT || status == ING_EUNAVAILABLE ||
	                 status == ING_ETIMEOUT || status == ING_ENOTLEADER;
	if (transient && node_now_ms() < n->join_deadline_ms) {
		ING_LOG_WARN("join not done yet, retrying error=%s msg=\"%s\"",
		             ing_err_name(status), err != NULL ? err->msg : "");
		uv_timer_start(&n->member_retry, on_join_retry, JOIN_RETRY_MS, 0);
		return;
	}
	ING_LOG_ERROR("cannot join the cluster error=%s msg=\"%s\"", ing_err_name(status),
	              err != NULL ? err->msg : "");
	node_fatal(n, transient ? ING_EUNAVAILABLE : ING_EINVAL,
	           "the cluster refused to add this node");
}

static void on_joined(struct rpc_request *r, int status, const struct ing_error *err,
                      const msgpack_object *result)
{
	struct mreq *q = r->data;
	join_answered(q->n, status, err, result);
	mreq_free(q); /* last: may release the node */
}

static void join_send(struct node *n)
{
	const char *addrs[NODE_MAX_PEERS];
	struct mreq *q = mreq_new(n);
	struct mp_out o;

	if (q == NULL) {
		node_fatal(n, ING_ENOMEM, "cannot ask to join");
		return;
	}
	for (unsigned i = 0; i < n->cfg.njoin; i++)
		addrs[i] = n->cfg.join[i];
	q->client = client_to(n, addrs, n->cfg.njoin, n->cfg.member_catchup_timeout_ms + 10000);
	if (q->client == NULL) {
		mreq_free(q);
		node_fatal(n, ING_EINVAL, "bad join addresses");
		return;
	}
	q->r.data = q;
	q->r.cb = on_joined;
	mp_out_init(&o);
	msgpack_pack_map(&o.pk, 4);
	view_key(&o.pk, "id");
	msgpack_pack_uint64(&o.pk, n->cfg.id);
	view_key(&o.pk, "raft_address");
	mp_pack_cstr(&o.pk, n->cfg.raft_address);
	view_key(&o.pk, "api_address");
	mp_pack_cstr(&o.pk, n->cfg.api_address);
	view_key(&o.pk, "role");
	mp_pack_cstr(&o.pk, rec_role_name(n->cfg.join_role));
	if (mp_out_failed(&o) != 0 ||
	    rpc_client_call(q->client, &q->r, "member.add", o.data, o.len, 0) != 0)
		mreq_free(q);
	mp_out_free(&o);
}

static void cluster_checked(struct node *n, int status, const struct ing_error *err,
                            const msgpack_object *result)
{
	char mine[CMD_CLUSTER_ID_LEN + 1];
	struct ing_str theirs = {"", 0};
	struct ing_error e;

	if (n->stopping)
		return;
	if (status != 0) {
		ING_LOG_WARN(
		    "cannot compare cluster ids with the join addresses error=%s msg=\"%s\"",
		    ing_err_name(status), err != NULL ? err->msg : "");
		return;
	}
	rpc_arg_str(result, "cluster_id", CMD_CLUSTER_ID_LEN, false, &theirs, &e);
	node_cluster_id(n, mine);
	if (mine[0] == '\0' || theirs.len == 0 || ing_str_eq_c(theirs, mine)) {
		ING_LOG_INFO("already a member of cluster %s: --join ignored",
		             mine[0] ? mine : "(not named yet)");
		return;
	}
	ING_LOG_ERROR("this data directory belongs to cluster %s, but the members at %s are "
	              "cluster %.*s: refusing to run (use an empty data directory to join)",
	              mine, n->cfg.join[0], ING_STR_FMT(theirs));
	node_fatal(n, ING_EINVAL, "data directory belongs to another cluster");
}

static void on_cluster_checked(struct rpc_request *r, int status, const struct ing_error *err,
                               const msgpack_object *result)
{
	struct mreq *q = r->data;
	cluster_checked(q->n, status, err, result);
	mreq_free(q); /* last: may release the node */
}

/* A node with data asked to join: it must be the same cluster. */
static void join_check_cluster(struct node *n)
{
	const char *addrs[NODE_MAX_PEERS];
	struct mreq *q = mreq_new(n);
	if (q == NULL)
		return;
	for (unsigned i = 0; i < n->cfg.njoin; i++)
		addrs[i] = n->cfg.join[i];
	q->client = client_to(n, addrs, n->cfg.njoin, 5000);
	if (q->client == NULL) {
		mreq_free(q);
		return;
	}
	q->r.cb = on_cluster_checked;
	if (rpc_client_call(q->client, &q->r, "node.info", NULL, 0, 0) != 0)
		mreq_free(q);
}

static void on_member_tick(uv_timer_t *h)
{
	struct node *n = h->data;
	if (n->stopping || n->cons == NULL)
		return;
	if (n->mtransfer != NULL && n->mtransfer->settling) {
		transfer_settle(n->mtransfer);
		return;
	}
	if (n->role == CONS_LEADER_READY) {
		if (n->mchange != NULL && !n->mchange->busy)
			mc_run(n->mchange);
		else if (n->mchange == NULL)
			heal(n);
	} else {
		removal_check(n);
	}
}

int node_member_start(struct node *n)
{
	struct cons_member *ms = NULL;
	unsigned nm = 0;
	int rv;

	uv_timer_init(n->loop, &n->member_timer);
	n->member_timer.data = n;
	uv_timer_init(n->loop, &n->member_retry);
	n->member_retry.data = n;
	n->open_handles += 2;
	rv = uv_timer_start(&n->member_timer, on_member_tick, MEMBER_TICK_MS, MEMBER_TICK_MS);
	if (rv != 0)
		return ING_EINTERNAL;
	if (n->cfg.njoin == 0)
		return 0;
	rv = cons_members(n->cons, &ms, &nm);
	free(ms);
	if (rv != 0)
		return rv;
	if (nm > 0) {
		ING_LOG_INFO("--join given but this node already holds a configuration of %u "
		             "members: checking the cluster id, not joining",
		             nm);
		join_check_cluster(n);
		return 0;
	}
	n->joining = true;
	n->join_deadline_ms = node_now_ms() + 2ull * n->cfg.member_catchup_timeout_ms + 60000;
	ING_LOG_INFO("joining the cluster via %s%s as %s", n->cfg.join[0],
	             n->cfg.njoin > 1 ? " (and others)" : "", rec_role_name(n->cfg.join_role));
	join_send(n);
	return 0;
}

static void timer_closed(uv_handle_t *h)
{
	node_release(h->data);
}

void node_member_stop(struct node *n)
{
	if (n->mchange != NULL) {
		struct node_mchange *m = n->mchange;
		if (m->call != NULL) {
			rpc_reply_error(m->call, ING_EUNAVAILABLE,
			                "node %" PRIu64 " is shutting down during the change",
			                n->cfg.id);
			m->call = NULL;
		}
		if (!m->busy) {
			n->mchange = NULL;
			free(m);
		}
		/* else: freed by mc_finish when its callback comes (the node
		 * stays until cons is closed, which delivers it). */
	}
	/* cons_close completes a transfer's callback, which replies; one
	 * whose callback came already and that waits to learn the new leader
	 * is answered here. */
	if (n->mtransfer != NULL && n->mtransfer->settling) {
		struct node_mtransfer *t = n->mtransfer;
		n->mtransfer = NULL;
		rpc_reply_error(t->call, ING_EUNAVAILABLE,
		                "node %" PRIu64 " is shutting down during the transfer", n->cfg.id);
		free(t);
	}
	for (unsigned i = 0; i < NODE_MAX_MREQS; i++) {
		struct mreq *q = n->mreqs[i];
		if (q != NULL && q->client != NULL) {
			/* its callback runs with ING_EUNAVAILABLE and frees it */
			node_hold(n);
			rpc_client_close(q->client, client_closed, n);
			q->client = NULL;
		}
	}
	/* node_start may fail before node_member_start initialised them. */
	if (n->member_timer.type == UV_TIMER) {
		uv_close((uv_handle_t *)&n->member_timer, timer_closed);
		uv_close((uv_handle_t *)&n->member_retry, timer_closed);
	}
}

static void leave_send(struct node *n);

static void on_leave_retry(uv_timer_t *h)
{
	leave_send(h->data);
}

static void left_answered(struct node *n, int status, const struct ing_error *err,
                          const msgpack_object *result)
{
	(void)result;
	if (n->stopping)
		return;
	if (status == 0) {
		removed(n, "left on shutdown");
		return;
	}
	if (status == ING_ECONFLICT && node_now_ms() < n->leave_deadline_ms) {
		/* another change first (another node leaving too): wait a turn */
		uv_timer_start(&n->member_retry, on_leave_retry, 200, 0);
		return;
	}
	ING_LOG_WARN("could not leave the cluster on shutdown error=%s msg=\"%s\": stopping as "
	             "a member",
	             ing_err_name(status), err != NULL ? err->msg : "");
	node_stop(n);
}

static void on_left(struct rpc_request *r, int status, const struct ing_error *err,
                    const msgpack_object *result)
{
	struct mreq *q = r->data;
	left_answered(q->n, status, err, result);
	mreq_free(q); /* last: may release the node */
}

void node_shutdown(struct node *n)
{
	struct cons_member *ms = NULL;
	unsigned nm = 0, voters = 0;
	bool member = false;

	if (n->stopping || n->leaving || !n->cfg.leave_on_shutdown || n->cons == NULL ||
	    cons_members(n->cons, &ms, &nm) != 0) {
		free(ms);
		node_stop(n);
		return;
	}
	for (unsigned i = 0; i < nm; i++) {
		voters += ms[i].role == CONS_VOTER;
		member |= ms[i].id == n->cfg.id;
	}
	free(ms);
	if (!member || (voters <= 1 && nm <= 1)) {
		ING_LOG_INFO("leave_on_shutdown: %s: stopping",
		             member ? "the only member stays" : "not a member");
		node_stop(n);
		return;
	}
	n->leaving = true;
	n->leave_deadline_ms = node_now_ms() + LEAVE_TIMEOUT_MS;
	ING_LOG_INFO("leave_on_shutdown: asking the cluster to remove this node");
	leave_send(n);
}

static void leave_send(struct node *n)
{
	const char *self[] = {n->cfg.api_address};
	uint64_t left =
	    n->leave_deadline_ms > node_now_ms() ? n->leave_deadline_ms - node_now_ms() : 1;
	struct mreq *q = mreq_new(n);
	struct mp_out o;

	if (q == NULL || (q->client = client_to(n, self, 1, (unsigned)left)) == NULL) {
		if (q != NULL)
			mreq_free(q);
		node_stop(n);
		return;
	}
	q->r.cb = on_left;
	mp_out_init(&o);
	msgpack_pack_map(&o.pk, 1);
	view_key(&o.pk, "id");
	msgpack_pack_uint64(&o.pk, n->cfg.id);
	if (mp_out_failed(&o) != 0 ||
	    rpc_client_call(q->client, &q->r, "member.remove", o.data, o.len, 0) != 0) {
		mreq_free(q);
		node_stop(n);
	}
	mp_out_free(&o);
}
