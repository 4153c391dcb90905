/*
 * ops.c - the operations every node serves (docs/api.md): the op table and
 * dispatch.
 *
 * Each operation has a kind:
 *   local  served by the receiving node at once (node.info, status, watch);
 *   read   linearizable by default: served by the ready leader after a
 *          barrier, forwarded by followers; with stale=true served locally;
 *   write  served by the ready leader, which turns the arguments into a
 *          command, proposes it and replies with the apply result;
 *          forwarded by followers;
 *   leader served by the ready leader from its memory (heartbeats),
 *          forwarded by followers.
 * Requests that need a leader while there is none (or while a new leader's
 * barrier is pending) are parked (forward.c) and retried, bounded by
 * request_timeout_ms.  Argument checking happens where the request is
 * served; a bad argument gets `invalid` naming it and changes nothing.
 *
 * Before anything else, where the request arrives: who asks (auth.c), and
 * whether they may (api_op_permit, from the table's `need` and `nodes`
 * columns: the least client role, or a member node; whether a member node
 * may call it too, or only about itself).  A refusal changes nothing and
 * the connection stays open.  A follower forwards only what it permitted,
 * with the client's credential, and the leader checks again.  Tenant
 * scoping (a tenant's jobs do not exist for another tenant) is the
 * handlers' (jobs.c, artifacts.c, watch.c), the node a worker report may
 * be about reports.c's.
 */
#include <inttypes.h>
#include <stdlib.h>

#include "node/api/api_internal.h"
#include "node/backup/backup.h"
#include "node/http/metrics.h"
#include "node/member/member.h"
#include "rpc/args.h"

enum op_kind { OP_LOCAL, OP_READ, OP_WRITE, OP_LEADER /* leader's memory, not the log */ };

/* Who may call an operation: the least client role (each role holds the
 * rights of those below it), or only member nodes. */
enum op_need { NEED_VIEWER, NEED_SUBMITTER, NEED_OPERATOR, NEED_ADMIN, NEED_NODE };
/* Whether a member node may call it as well: no, yes, or only about
 * itself (argument `id` its own raft id, when its id is proven). */
enum op_nodes { NODES_NO, NODES_YES, NODES_SELF };

struct op {
	const char *name;
	enum op_kind kind;
	void (*fn)(struct node *n, struct rpc_call *call);
	enum op_need need;
	enum op_nodes nodes;
	bool unscoped; /* the whole cluster's: not for a tenant's principal */
	bool slow;     /* waits for a membership change: member_catchup_timeout_ms */
	bool now_only; /* never parked: answered unavailable when no leader can take it */
};

/* clang-format off */
static const struct op ops[] = {
    {"status",          OP_LOCAL,  api_op_status,          NEED_VIEWER,    NODES_NO,   false, false},
    {"node.info",       OP_LOCAL,  api_op_node_info,       NEED_VIEWER,    NODES_YES,  false, false},
    {"target.put",      OP_WRITE,  api_op_target_put,      NEED_OPERATOR,  NODES_NO,   false, false},
    {"target.get",      OP_READ,   api_op_target_get,      NEED_VIEWER,    NODES_NO,   false, false},
    {"target.list",     OP_READ,   api_op_target_list,     NEED_VIEWER,    NODES_NO,   false, false},
    {"target.delete",   OP_WRITE,  api_op_target_delete,   NEED_OPERATOR,  NODES_NO,   false, false},
    {"job.submit",      OP_WRITE,  api_op_job_submit,      NEED_SUBMITTER, NODES_NO,   false, false},
    {"job.get",         OP_READ,   api_op_job_get,         NEED_VIEWER,    NODES_NO,   false, false},
    {"job.list",        OP_READ,   api_op_job_list,        NEED_VIEWER,    NODES_NO,   false, false},
    {"job.cancel",      OP_WRITE,  api_op_job_cancel,      NEED_SUBMITTER, NODES_NO,   false, false},
    {"job.retry",       OP_WRITE,  api_op_job_retry,       NEED_SUBMITTER, NODES_NO,   false, false},
    {"job.events",      OP_READ,   api_op_job_events,      NEED_VIEWER,    NODES_NO,   false, false},
    {"job.watch",       OP_LOCAL,  api_op_job_watch,       NEED_VIEWER,    NODES_NO,   false, false},
    {"node.list",       OP_READ,   api_op_node_list,       NEED_VIEWER,    NODES_NO,   false, false},
    {"node.drain",      OP_WRITE,  api_op_node_drain,      NEED_OPERATOR,  NODES_NO,   false, false},
    {"node.undrain",    OP_WRITE,  api_op_node_undrain,    NEED_OPERATOR,  NODES_NO,   false, false},
    {"node.forget",     OP_WRITE,  api_op_node_forget,     NEED_OPERATOR,  NODES_NO,   false, false},
    {"artifact.get",    OP_READ,   api_op_artifact_get,    NEED_VIEWER,    NODES_NO,   false, false},
    {"node.register",   OP_WRITE,  api_op_node_register,   NEED_NODE,      NODES_SELF, false, false},
    {"node.heartbeat",  OP_LEADER, api_op_node_heartbeat,  NEED_NODE,      NODES_SELF, false, false, true},
    {"worker.report",   OP_WRITE,  api_op_worker_report,   NEED_NODE,      NODES_YES,  false, false},
    {"member.add",      OP_LEADER, member_op_add,          NEED_ADMIN,     NODES_SELF, false, true},
    {"member.promote",  OP_LEADER, member_op_promote,      NEED_ADMIN,     NODES_NO,   false, true},
    {"member.demote",   OP_LEADER, member_op_demote,       NEED_ADMIN,     NODES_NO,   false, true},
    {"member.remove",   OP_LEADER, member_op_remove,       NEED_ADMIN,     NODES_SELF, false, true},
    {"member.transfer", OP_LEADER, member_op_transfer,     NEED_ADMIN,     NODES_NO,   false, true},
    {"member.check",    OP_LEADER, member_op_check,        NEED_ADMIN,     NODES_SELF, false, false},
    {"cluster.events",  OP_READ,   api_op_cluster_events,  NEED_VIEWER,    NODES_NO,   true,  false},
    {"settings.get",    OP_READ,   api_op_settings_get,    NEED_VIEWER,    NODES_NO,   false, false},
    {"settings.set",    OP_WRITE,  api_op_settings_set,    NEED_ADMIN,     NODES_NO,   false, false},
    {"job.log",         OP_READ,   api_op_job_log,         NEED_VIEWER,    NODES_NO,   false, false},
    {"node.log_level",  OP_LOCAL,  api_op_node_log_level,  NEED_ADMIN,     NODES_NO,   false, false},
    {"cluster.snapshot", OP_READ,  backup_op_snapshot,     NEED_ADMIN,     NODES_NO,   false, false},
    {"cluster.snapshot_read", OP_LEADER, backup_op_snapshot_read, NEED_ADMIN, NODES_NO, false, false},
    {"token.create",    OP_WRITE,  api_op_token_create,    NEED_ADMIN,     NODES_NO,   false, false},
    {"token.list",      OP_READ,   api_op_token_list,      NEED_ADMIN,     NODES_NO,   false, false},
    {"token.revoke",    OP_WRITE,  api_op_token_revoke,    NEED_ADMIN,     NODES_NO,   false, false},
    {"audit.list",      OP_READ,   api_op_audit_list,      NEED_ADMIN,     NODES_NO,   false, false},
};
/* clang-format on */

#define NOPS (sizeof(ops) / sizeof(ops[0]))

const char *api_op_name(unsigned i)
{
	return i < NOPS ? ops[i].name : NULL;
}

int api_op_index(struct ing_str op)
{
	for (size_t i = 0; i < NOPS; i++)
		if (ing_str_eq_c(op, ops[i].name))
			return (int)i;
	return -1;
}

static const struct op *find_op(struct ing_str name)
{
	int i = api_op_index(name);
	return i >= 0 ? &ops[i] : NULL;
}

static const char *const need_names[] = {"viewer", "submitter", "operator", "admin", "node"};

/* The `id` argument when it is an unsigned integer, else 0. */
static uint64_t arg_id(const msgpack_object *args)
{
	const msgpack_object *v = args != NULL ? rpc_arg_find(args, "id") : NULL;
	return v != NULL && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER ? v->via.u64 : 0;
}

int api_op_permit(const struct auth_principal *p, struct ing_str name, const msgpack_object *args,
                  struct ing_error *e)
{
	const struct op *op = find_op(name);
	const char *who = p->name;

	if (op == NULL)
		return ing_error_set(e, ING_EINVAL,
		                     "unknown operation '%.*s' (see docs/api.md for the list)",
		                     ING_STR_FMT(name));
	if (p->kind == AUTH_KIND_NODE) {
		uint64_t id = arg_id(args);
		if (op->need == NEED_NODE || op->nodes == NODES_YES)
			goto node_self;
		if (op->nodes == NODES_SELF && (p->node_id == 0 || id == p->node_id))
			return 0;
		if (p->node_id == 0) /* dev mode: no credential at all */
			return ing_error_set(
			    e, ING_EUNAUTHENTICATED,
			    "%s needs a credential (the %s role): pass --token, "
			    "--token-file or INGOT_TOKEN (a new cluster's admin token "
			    "is in <data_dir>/admin.token)",
			    op->name, need_names[op->need]);
		return ing_error_set(e, ING_EDENIED,
		                     "%s (a member node) may not call %s: it needs the %s role",
		                     who, op->name, need_names[op->need]);
	node_self:
		if (op->nodes == NODES_SELF && p->node_id != 0 && id != p->node_id)
			return ing_error_set(e, ING_EDENIED,
			                     "%s may call %s only about itself (id %" PRIu64 ")",
			                     who, op->name, p->node_id);
		return 0;
	}
	if (p->kind == AUTH_KIND_CERT && p->role == AUTH_ROLE_NONE)
		return ing_error_set(e, ING_EUNAUTHENTICATED,
		                     "%s needs a credential: the client certificate %s grants no "
		                     "role here (auth.certificates does not name it); pass a "
		                     "token too (--token, --token-file, INGOT_TOKEN)",
		                     op->name, who + 5);
	if (p->kind == AUTH_KIND_NONE)
		return ing_error_set(e, ING_EUNAUTHENTICATED,
		                     "%s needs a credential: pass --token, --token-file or "
		                     "INGOT_TOKEN (a new cluster's admin token is in "
		                     "<data_dir>/admin.token)",
		                     op->name);
	if (op->need == NEED_NODE)
		return ing_error_set(e, ING_EDENIED,
		                     "%s is for member nodes only (%s is role %s): nodes prove "
		                     "themselves by their certificates",
		                     op->name, who, auth_role_name(p->role));
	if (!auth_has_role(p, (enum auth_role)(op->need + 1)))
		return ing_error_set(e, ING_EDENIED,
		                     "%s (role %s) may not call %s: it needs the %s role", who,
		                     auth_role_name(p->role), op->name, need_names[op->need]);
	if (op->unscoped && p->tenant[0] != '\0')
		return ing_error_set(e, ING_EDENIED,
		                     "%s is scoped to tenant %s: %s shows the whole cluster", who,
		                     p->tenant, op->name);
	return 0;
}

bool api_op_parkable(struct ing_str op)
{
	const struct op *o = find_op(op);
	return o == NULL || !o->now_only;
}

unsigned api_call_timeout_ms(const struct api *a, struct ing_str op)
{
	const struct op *o = find_op(op);
	const struct node_config *cfg = node_cfg(a->n);
	if (o != NULL && o->slow)
		return cfg->request_timeout_ms + cfg->member_catchup_timeout_ms + 5000;
	return cfg->request_timeout_ms;
}

struct read_barrier {
	struct cons_barrier b;
	struct api *a;
	struct rpc_call *call;
	const struct op *op;
};

static void on_read_barrier(struct cons_barrier *b, int status)
{
	struct read_barrier *rb = b->data;
	if (status == 0)
		rb->op->fn(rb->a->n, rb->call);
	else
		api_park(rb->a, rb->call);
	free(rb);
}

/* The optional `stale` argument of a read: true, false, nil or absent;
 * anything else is refused like every other mistyped argument. */
static int wants_stale(struct rpc_call *call, bool *stale, struct ing_error *e)
{
	*stale = false;
	return rpc_arg_bool(rpc_call_args(call), "stale", false, stale, e);
}

void api_dispatch(struct api *a, struct rpc_call *call)
{
	struct node *n = a->n;
	const struct op *op = find_op(rpc_call_op(call));
	enum cons_role role = node_role(n);
	uint64_t leader = node_leader_id(n);
	const struct auth_principal *who;
	struct ing_error e;
	bool unknown;

	if (node_stopping(n)) {
		rpc_reply_error(call, ING_EUNAVAILABLE, "node %" PRIu64 " is shutting down",
		                node_id(n));
		return;
	}
	if ((who = api_authenticate(a, call, &unknown)) == NULL)
		return;
	if (op == NULL) {
		rpc_reply_error(call, ING_EINVAL,
		                "unknown operation '%.*s' (see docs/api.md for the list)",
		                ING_STR_FMT(rpc_call_op(call)));
		return;
	}
	if (unknown) {
		/* A token not applied here yet: the leader decides. */
		bool stale_read = false;
		bool served_here =
		    op->kind == OP_LOCAL ||
		    (op->kind == OP_READ && wants_stale(call, &stale_read, &e) == 0 && stale_read);
		if (served_here || role == CONS_LEADER_READY)
			api_refuse_unknown(a, call);
		else if (role == CONS_FOLLOWER && leader != 0 && leader != node_id(n))
			api_forward(a, call);
		else
			api_park(a, call);
		return;
	}
	if (api_op_permit(who, rpc_call_op(call), rpc_call_args(call), &e) != 0) {
		api_refuse(a, call, &e);
		return;
	}
	bool stale = false;
	if ((op->kind == OP_READ || op->kind == OP_LOCAL) && wants_stale(call, &stale, &e) != 0) {
		rpc_reply_error(call, e.code, "%s", e.msg);
		return;
	}
	if (op->kind == OP_LOCAL || stale) {
		op->fn(n, call);
		return;
	}
	if (role != CONS_LEADER_READY) {
		if (role == CONS_FOLLOWER && leader != 0 && leader != node_id(n))
			api_forward(a, call);
		else
			api_park(a, call);
		return;
	}
	if (op->kind == OP_WRITE || op->kind == OP_LEADER) {
		op->fn(n, call);
		return;
	}
	struct read_barrier *rb = calloc(1, sizeof(*rb));
	if (rb == NULL) {
		rpc_reply_error(call, ING_ENOMEM, "out of memory");
		return;
	}
	rb->a = a;
	rb->call = call;
	rb->op = op;
	rb->b.data = rb;
	rb->b.cb = on_read_barrier;
	if (cons_barrier(node_cons(n), &rb->b) != 0) {
		free(rb);
		api_park(a, call);
	}
}

void api_handle(void *data, struct rpc_call *call)
{
	metrics_observe_call(node_metrics(data), call);
	api_dispatch(node_api(data), call);
}

/* ---- the module's life (api.h) ----------------------------------------- */

int api_new(struct node *n, struct api **out, struct ing_error *e)
{
	struct api *a = calloc(1, sizeof(*a));
	if (a == NULL)
		return ing_error_set(e, ING_ENOMEM, "out of memory");
	int rv = api_auth_new(node_cfg(n), &a->auth, e);
	if (rv == 0 && rec_target_memo_new(&a->targets) != 0) {
		api_auth_free(a->auth);
		rv = ing_error_set(e, ING_ENOMEM, "out of memory");
	}
	if (rv != 0) {
		free(a);
		return rv;
	}
	a->n = n;
	a->submit_zone = msgpack_zone_new(1024); /* NULL: each submit makes its own */
	uv_timer_init(node_loop(n), &a->park_timer);
	a->park_timer.data = a;
	a->park_timer_open = true;
	node_hold(n);
	*out = a;
	return 0;
}

void api_free(struct api *a)
{
	if (a != NULL) {
		api_auth_free(a->auth);
		rec_target_memo_free(a->targets);
		if (a->submit_zone != NULL)
			msgpack_zone_free(a->submit_zone);
	}
	free(a);
}

void api_flushed(struct api *a)
{
	api_watch_poll(a);
}

void api_role_changed(struct api *a)
{
	api_unpark(a);
}

void api_stop(struct api *a)
{
	api_watch_close_all(a);
	/* Parked calls are answered now: the client retries elsewhere. */
	while (a->parked != NULL) {
		struct api_parked *p = a->parked;
		a->parked = p->next;
		rpc_reply_error(p->call, ING_EUNAVAILABLE, "node %" PRIu64 " is shutting down",
		                node_id(a->n));
		free(p);
	}
}

static void park_timer_closed(uv_handle_t *h)
{
	struct api *a = h->data;
	node_release(a->n);
}

void api_close(struct api *a)
{
	if (!a->park_timer_open)
		return;
	a->park_timer_open = false;
	uv_close((uv_handle_t *)&a->park_timer, park_timer_closed);
}
