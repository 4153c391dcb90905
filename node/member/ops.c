/*
 * ops.c - the membership operations (docs/api.md "Membership"):
 * member.add, member.promote, member.demote, member.remove and member.check.
 * Each checks its arguments and the refusals (change.c) against the
 * configuration as it is, then starts a change plan, which begins by
 * confirming who is live when the change depends on it (MC_CONFIRM); removing the leader
 * itself transfers its leadership first (transfer.c) and forwards the
 * request to the new leader, which removes it.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/mp.h"
#include "node/api/args.h"
#include "node/api/view.h"
#include "node/member/member_internal.h"
#include "rpc/args.h"
#include "storage/records.h"

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

/* The raft configuration (*ms the caller's to free); replies and returns
 * non-zero when it cannot be read. */
static int members_or_reply(struct node *n, struct rpc_call *call, struct cons_member **ms,
                            unsigned *nm)
{
	if (cons_members(node_cons(n), ms, nm) != 0) {
		rpc_reply_error(call, ING_ENOMEM, "out of memory");
		return -1;
	}
	return 0;
}

/* Checks the argument names, reads `id` and the configuration; replies and
 * returns non-zero on failure.  *ms is the caller's to free. */
static int id_and_members(struct node *n, struct rpc_call *call, const char *const known[],
                          bool required, uint64_t *id, struct cons_member **ms, unsigned *nm)
{
	struct ing_error e;

	if (api_check_known(call, known) != 0)
		return -1;
	*id = 0;
	if (rpc_arg_u64(rpc_call_args(call), "id", UINT64_MAX, required, id, &e) != 0) {
		rpc_reply_error(call, e.code, "%s", e.msg);
		return -1;
	}
	return members_or_reply(n, call, ms, nm);
}

/* The plan starts by confirming who is live (change.h, MC_CONFIRM): the
 * refusals at once use the permissive view; this one decides. */
static void plan_confirm(struct mc_request *req, uint64_t id, bool removed,
                         enum cons_member_role to, bool assume_alive)
{
	req->confirm_removed = removed;
	req->confirm_assume = assume_alive;
	mc_plan_step(&req->plan, MC_CONFIRM, id, to);
}

void member_op_add(struct node *n, struct rpc_call *call)
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

	if (api_check_known(call, known) != 0)
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
	if (members_or_reply(n, call, &ms, &nm) != 0)
		return;
	char raft_c[NODE_ADDRESS_MAX], api_c[NODE_ADDRESS_MAX];
	snprintf(raft_c, sizeof(raft_c), "%.*s", ING_STR_FMT(raft));
	snprintf(api_c, sizeof(api_c), "%.*s", ING_STR_FMT(api));
	for (unsigned i = 0; i < nm; i++) {
		char other_api[NODE_ADDRESS_MAX];
		member_api_address(n, ms[i].id, other_api);
		if (ms[i].id == id) {
			if (strcmp(ms[i].address, raft_c) == 0 && strcmp(other_api, api_c) == 0 &&
			    ms[i].role == role) {
				char note[160];
				snprintf(note, sizeof(note),
				         "member %" PRIu64
				         " is already a %s at raft %s: nothing to do",
				         id, mc_role_name(role), raft_c);
				mc_reply_nothing(call, id, role, note);
			} else {
				rpc_reply_error(
				    call, ING_EEXIST,
				    "member %" PRIu64 " already exists as a %s (raft %s, "
				    "api %s); use member promote/demote, or remove it first",
				    id, mc_role_name(ms[i].role), ms[i].address,
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
	if (member_refuse_busy(n, call) != 0)
		goto out;
	if (role == CONS_VOTER &&
	    mc_check_quorum(ms, nm, mc_member_alive, n, id, false, CONS_VOTER, true, &e) != 0) {
		rpc_reply_error(call, e.code, "%s", e.msg);
		goto out;
	}
	struct mc_request req = {.call = call, .id = id};
	snprintf(req.what, sizeof(req.what), "adding member %" PRIu64 " as %s", id,
	         mc_role_name(role));
	snprintf(req.raft_address, sizeof(req.raft_address), "%s", raft_c);
	snprintf(req.api_address, sizeof(req.api_address), "%s", api_c);
	if (role == CONS_VOTER)
		plan_confirm(&req, id, false, CONS_VOTER, true);
	mc_plan_add(&req.plan, id, role);
	mc_start(n, &req);
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

	if (api_check_known(call, promote ? promote_known : demote_known) != 0)
		return;
	rv = rpc_arg_u64(args, "id", UINT64_MAX, true, &id, &e);
	if (rv == 0 && !promote)
		rv = role_arg(args, "role", false, CONS_STANDBY, &to, &e);
	if (rv != 0) {
		rpc_reply_error(call, e.code, "%s", e.msg);
		return;
	}
	if (members_or_reply(n, call, &ms, &nm) != 0)
		return;
	const struct cons_member *me = mc_find(ms, nm, id);
	if (me == NULL) {
		rpc_reply_error(call, ING_ENOTFOUND,
		                "member %" PRIu64 " is not in the configuration", id);
		goto out;
	}
	if (me->role == to) {
		char note[160];
		snprintf(note, sizeof(note), "member %" PRIu64 " is already a %s: nothing to do",
		         id, mc_role_name(to));
		mc_reply_nothing(call, id, to, note);
		goto out;
	}
	if (!promote && id == node_id(n)) {
		rpc_reply_error(call, ING_ECONFLICT,
		                "member %" PRIu64 " is the leader: transfer leadership first "
		                "(ingotctl member transfer-leadership), then demote it",
		                id);
		goto out;
	}
	if (member_refuse_busy(n, call) != 0)
		goto out;
	if ((me->role == CONS_VOTER || to == CONS_VOTER) &&
	    mc_check_quorum(ms, nm, mc_member_alive, n, id, false, to, promote, &e) != 0) {
		rpc_reply_error(call, e.code, "%s", e.msg);
		goto out;
	}
	struct mc_request req = {.call = call, .id = id};
	snprintf(req.what, sizeof(req.what), "%s member %" PRIu64 " to %s",
	         promote ? "promoting" : "demoting", id, mc_role_name(to));
	req.restore_role = true;
	req.old_role = me->role;
	if (me->role == CONS_VOTER || to == CONS_VOTER)
		plan_confirm(&req, id, false, to, promote);
	if (promote)
		mc_plan_promotion(&req.plan, id, me->role, CONS_VOTER);
	else
		mc_plan_demotion(&req.plan, id, to);
	mc_start(n, &req);
out:
	free(ms);
}

void member_op_promote(struct node *n, struct rpc_call *call)
{
	role_change(n, call, true);
}

void member_op_demote(struct node *n, struct rpc_call *call)
{
	role_change(n, call, false);
}

void member_op_remove(struct node *n, struct rpc_call *call)
{
	static const char *const known[] = {"id", NULL};
	struct cons_member *ms = NULL;
	unsigned nm = 0;
	struct ing_error e;
	uint64_t id;

	if (id_and_members(n, call, known, true, &id, &ms, &nm) != 0)
		return;
	const struct cons_member *me = mc_find(ms, nm, id);
	if (me == NULL) {
		rpc_reply_error(call, ING_ENOTFOUND,
		                "member %" PRIu64 " is not in the configuration", id);
		goto out;
	}
	if (member_refuse_busy(n, call) != 0)
		goto out;
	if (mc_check_quorum(ms, nm, mc_member_alive, n, id, true, CONS_SPARE, false, &e) != 0) {
		rpc_reply_error(call, e.code, "%s", e.msg);
		goto out;
	}
	if (id == node_id(n)) {
		/* The leader goes last: hand leadership over, then let the new
		 * leader remove this node (the request is forwarded to it). */
		ING_LOG_INFO(
		    "membership: removing the leader itself: transferring leadership first");
		member_start_transfer(n, call, 0, true);
		goto out;
	}
	struct mc_request req = {.call = call, .id = id};
	snprintf(req.what, sizeof(req.what), "removing member %" PRIu64, id);
	plan_confirm(&req, id, true, CONS_SPARE, false);
	mc_plan_removal(&req.plan, id);
	mc_start(n, &req);
out:
	free(ms);
}

void member_op_check(struct node *n, struct rpc_call *call)
{
	static const char *const known[] = {"id", NULL};
	struct cons_member *ms = NULL;
	unsigned nm = 0;
	struct mp_out o;
	char cluster[CMD_CLUSTER_ID_LEN + 1];
	uint64_t id;

	if (id_and_members(n, call, known, true, &id, &ms, &nm) != 0)
		return;
	const struct cons_member *me = mc_find(ms, nm, id);
	/* An uncommitted configuration may still be undone: count the node
	 * as a member until it is final. */
	bool member = me != NULL || cons_config_pending(node_cons(n));
	member_cluster_id(n, cluster);
	mp_out_init(&o);
	msgpack_pack_map(&o.pk, 3);
	view_key(&o.pk, "member");
	mp_pack_bool(&o.pk, member);
	view_key(&o.pk, "role");
	if (me != NULL)
		mp_pack_cstr(&o.pk, mc_role_name(me->role));
	else
		msgpack_pack_nil(&o.pk);
	view_key(&o.pk, "cluster_id");
	mp_pack_cstr(&o.pk, cluster);
	rpc_reply(call, o.data, o.len);
	mp_out_free(&o);
	free(ms);
}
