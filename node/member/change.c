/*
 * change.c - the leader's membership changes (docs/api.md "Membership",
 * docs/operations.md), run one at a time as a plan of steps executed in
 * order, each asynchronous:
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
 * Refusals happen before the first step, against the configuration as it
 * is: another change running (here or in libraft), a change that leaves
 * fewer live voters than a quorum of the new configuration, the last voter,
 * demoting the leader.  "Live" is the leader's view: a reply over Raft
 * within two election timeouts (voters, standbys), or for a spare, which
 * gets no Raft traffic, a heartbeat within three heartbeat intervals.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "node/member/member_internal.h"

const char *member_role_name(enum cons_member_role r)
{
	return rec_role_name((uint8_t)r);
}

const struct cons_member *member_find(const struct cons_member *ms, unsigned n, uint64_t id)
{
	for (unsigned i = 0; i < n; i++)
		if (ms[i].id == id)
			return &ms[i];
	return NULL;
}

/* The leader's view of whether member `m` is alive. */
bool member_alive(struct node *n, const struct cons_member *m)
{
	uint64_t raft_window = 2ull * n->cfg.election_timeout_ms;
	if (m->id == n->cfg.id)
		return true;
	if (m->contact_ago_ms < raft_window)
		return true;
	if (m->role != CONS_SPARE)
		return false; /* voters and standbys get Raft traffic: that decides */
	uint64_t last = node_liveness_last_ms(n, m->id);
	return last != 0 && node_now_ms() - last < 3ull * n->cfg.heartbeat_interval_ms;
}

/* Refuses a configuration whose live voters would be fewer than its
 * quorum.  `id` takes role `to` (removed when to_removed); `assume_alive`:
 * the member will be caught up before it votes. */
int member_check_quorum(struct node *n, const struct cons_member *ms, unsigned nm, uint64_t id,
                        bool to_removed, enum cons_member_role to, bool assume_alive,
                        struct ing_error *e)
{
	unsigned voters = 0, live = 0;
	bool seen = false;

	for (unsigned i = 0; i < nm; i++) {
		bool voter = ms[i].role == CONS_VOTER;
		bool alive = member_alive(n, &ms[i]);
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

void mc_step_note(struct node_mchange *m, const char *fmt, ...)
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

void mc_reply(struct node_mchange *m, bool removed, enum cons_member_role role)
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
		mp_pack_cstr(&o.pk, member_role_name(role));
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
			me = member_find(ms, nm, m->id);
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
			             member_role_name(s->role));
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
		const struct cons_member *me = member_find(ms, nm, s->id);
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
	const struct cons_member *me = member_find(ms, nm, s->id);
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

/* After a failure: an added member that never got its role goes out again
 * (remove + unrecord), so the configuration is as before. */
static bool mc_rollback(struct node_mchange *m)
{
	bool added = false;
	for (unsigned i = 0; i < m->pc; i++)
		added |= m->plan[i].kind == S_ADD;
	if (!added)
		return false;
	m->rolling_back = true;
	m->nplan = 0;
	m->pc = 0;
	m->plan[m->nplan++] = (struct step){S_REMOVE, m->id, CONS_SPARE};
	m->plan[m->nplan++] = (struct step){S_UNRECORD, m->id, CONS_SPARE};
	mc_step_note(m, "rolling back: removing %" PRIu64 " again", m->id);
	return true;
}

void mc_run(struct node_mchange *m)
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

struct node_mchange *mc_new(struct node *n, struct rpc_call *call, uint64_t id, const char *fmt,
                            ...)
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

void mc_start(struct node_mchange *m)
{
	m->n->mchange = m;
	ING_LOG_INFO("membership change started change=\"%s\"", m->what);
	mc_run(m);
}

/* The common refusals; replies and returns non-zero when refused. */
int member_refuse_busy(struct node *n, struct rpc_call *call)
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
void mc_plan_promotion(struct node_mchange *m, uint64_t id, enum cons_member_role from,
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
