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
 */
#include <inttypes.h>
#include <stdlib.h>

#include "node/api/api_internal.h"
#include "node/backup/backup.h"
#include "node/http/metrics.h"
#include "node/member/member.h"
#include "rpc/args.h"

enum op_kind { OP_LOCAL, OP_READ, OP_WRITE, OP_LEADER /* leader's memory, not the log */ };

struct op {
	const char *name;
	enum op_kind kind;
	void (*fn)(struct node *n, struct rpc_call *call);
	bool slow;     /* waits for a membership change: member_catchup_timeout_ms */
	bool now_only; /* never parked: answered unavailable when no leader can take it */
};

static const struct op ops[] = {
    {"status", OP_LOCAL, api_op_status},
    {"node.info", OP_LOCAL, api_op_node_info},
    {"target.put", OP_WRITE, api_op_target_put},
    {"target.get", OP_READ, api_op_target_get},
    {"target.list", OP_READ, api_op_target_list},
    {"target.delete", OP_WRITE, api_op_target_delete},
    {"job.submit", OP_WRITE, api_op_job_submit},
    {"job.get", OP_READ, api_op_job_get},
    {"job.list", OP_READ, api_op_job_list},
    {"job.cancel", OP_WRITE, api_op_job_cancel},
    {"job.retry", OP_WRITE, api_op_job_retry},
    {"job.events", OP_READ, api_op_job_events},
    {"job.watch", OP_LOCAL, api_op_job_watch},
    {"node.list", OP_READ, api_op_node_list},
    {"node.drain", OP_WRITE, api_op_node_drain},
    {"node.undrain", OP_WRITE, api_op_node_undrain},
    {"node.forget", OP_WRITE, api_op_node_forget},
    {"artifact.get", OP_READ, api_op_artifact_get},
    {"node.register", OP_WRITE, api_op_node_register},
    {"node.heartbeat", OP_LEADER, api_op_node_heartbeat, false, true},
    {"worker.report", OP_WRITE, api_op_worker_report},
    {"member.add", OP_LEADER, member_op_add, true},
    {"member.promote", OP_LEADER, member_op_promote, true},
    {"member.demote", OP_LEADER, member_op_demote, true},
    {"member.remove", OP_LEADER, member_op_remove, true},
    {"member.transfer", OP_LEADER, member_op_transfer, true},
    {"member.check", OP_LEADER, member_op_check},
    {"cluster.events", OP_READ, api_op_cluster_events},
    {"settings.get", OP_READ, api_op_settings_get},
    {"settings.set", OP_WRITE, api_op_settings_set},
    {"job.log", OP_READ, api_op_job_log},
    {"node.log_level", OP_LOCAL, api_op_node_log_level},
    {"cluster.snapshot", OP_READ, backup_op_snapshot},
    {"cluster.snapshot_read", OP_LEADER, backup_op_snapshot_read},
};

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

	if (op == NULL) {
		rpc_reply_error(call, ING_EINVAL,
		                "unknown operation '%.*s' (see docs/api.md for the list)",
		                ING_STR_FMT(rpc_call_op(call)));
		return;
	}
	if (node_stopping(n)) {
		rpc_reply_error(call, ING_EUNAVAILABLE, "node %" PRIu64 " is shutting down",
		                node_id(n));
		return;
	}
	bool stale = false;
	struct ing_error e;
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

int api_new(struct node *n, struct api **out)
{
	struct api *a = calloc(1, sizeof(*a));
	if (a == NULL)
		return ING_ENOMEM;
	a->n = n;
	uv_timer_init(node_loop(n), &a->park_timer);
	a->park_timer.data = a;
	a->park_timer_open = true;
	node_hold(n);
	*out = a;
	return 0;
}

void api_free(struct api *a)
{
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
