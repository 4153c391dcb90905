/*
 * forward.c - requests this node cannot serve itself: forwarded to the
 * leader, or parked until there is one.
 *
 * Forwarding relays the request as it came (op, args, request id) over the
 * kept-open connection to the current leader's API address
 * (node/request.h: one per member), and relays the reply.  When the leader
 * changes, requests already sent to the previous one stay on its
 * connection until they are answered: a leadership transfer or a
 * membership change that the old leader completes must be answered by it,
 * not sent again to the new leader, which would answer a different
 * question (a dead old leader's connection fails them at once, a paused
 * one's time out).  The request id travels with it, so the leader's
 * dedupe makes a retry after a lost reply safe.  When the forward fails at
 * the connection level, or the leader answers unavailable/not_leader, the
 * request is parked: it waits for the next role change (or the park
 * timer, every 50 ms) and is dispatched again, until request_timeout_ms
 * after it first waited, when it fails with `unavailable`.  One request
 * failing leaves the connection to the leader open for the others in
 * flight on it.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/mp.h"
#include "node/api/api_internal.h"
#include "node/request.h"

#define PARK_TICK_MS 50

struct forward {
	struct node_request q;
	struct api *a;
	struct rpc_call *call;
	uint64_t leader; /* the leader it was sent to */
	uint64_t deadline_ms;
	char request_id[RPC_REQUEST_ID_MAX + 1];
	char op[64];
};

static void on_park_tick(uv_timer_t *t)
{
	api_unpark(t->data);
}

void api_park(struct api *a, struct rpc_call *call)
{
	struct api_parked *p;
	if (node_stopping(a->n)) {
		rpc_reply_error(call, ING_EUNAVAILABLE, "node %" PRIu64 " is shutting down",
		                node_id(a->n));
		return;
	}
	if (!api_op_parkable(rpc_call_op(call))) {
		rpc_reply_error(call, ING_EUNAVAILABLE,
		                "no leader can take '%.*s' now (node %" PRIu64
		                " does not keep it for a later one: it would be stale)",
		                ING_STR_FMT(rpc_call_op(call)), node_id(a->n));
		return;
	}
	p = malloc(sizeof(*p));
	if (p == NULL) {
		rpc_reply_error(call, ING_ENOMEM, "out of memory");
		return;
	}
	p->call = call;
	p->deadline_ms = a->unpark_deadline_ms != 0
	                     ? a->unpark_deadline_ms
	                     : node_now_ms() + node_cfg(a->n)->request_timeout_ms;
	p->next = a->parked;
	a->parked = p;
	if (a->park_timer_open && !uv_is_active((uv_handle_t *)&a->park_timer))
		uv_timer_start(&a->park_timer, on_park_tick, PARK_TICK_MS, PARK_TICK_MS);
}

void api_unpark(struct api *a)
{
	struct api_parked *list = a->parked;
	uint64_t now = node_now_ms();

	a->parked = NULL;
	while (list != NULL) {
		struct api_parked *p = list;
		list = p->next;
		if (now >= p->deadline_ms) {
			rpc_reply_error(
			    p->call, ING_EUNAVAILABLE,
			    "no leader could serve the request within %u ms (node %" PRIu64
			    " sees leader %" PRIu64 "); is a majority of the cluster up?",
			    node_cfg(a->n)->request_timeout_ms, node_id(a->n),
			    node_leader_id(a->n));
		} else {
			a->unpark_deadline_ms = p->deadline_ms;
			api_dispatch(a, p->call);
			a->unpark_deadline_ms = 0;
		}
		free(p);
	}
	if (a->parked == NULL && a->park_timer_open)
		uv_timer_stop(&a->park_timer);
}

static void relay(struct forward *f, int status, const struct ing_error *err,
                  const msgpack_object *result)
{
	struct api *a = f->a;
	if (status == 0) {
		struct mp_out o;
		mp_out_init(&o);
		msgpack_pack_object(&o.pk, *result);
		if (mp_out_failed(&o) != 0)
			rpc_reply_error(f->call, ING_ENOMEM, "out of memory relaying the reply");
		else
			rpc_reply(f->call, o.data, o.len);
		mp_out_free(&o);
		return;
	}
	if (status == ING_EUNAVAILABLE || status == ING_ENOTLEADER || status == ING_ETIMEOUT) {
		/* The leader went away or is not ready: wait for the next one. */
		ING_LOG_DEBUG("forward failed op=%s error=%s msg=\"%s\"", f->op,
		              ing_err_name(status), err != NULL ? err->msg : "");
		if (status != ING_ETIMEOUT && !node_stopping(a->n)) {
			/* The connection stays: other requests in flight on it
			 * (a leadership transfer's reply, say) still arrive; a
			 * broken one is made again by the next call. */
			a->unpark_deadline_ms = f->deadline_ms;
			api_park(a, f->call);
			a->unpark_deadline_ms = 0;
			return;
		}
	}
	rpc_reply_error(f->call, status, "%s", err != NULL ? err->msg : ing_err_msg(status));
}

static void on_forwarded(struct node_request *q, int status, const struct ing_error *err,
                         const msgpack_object *result)
{
	struct forward *f = q->data;
	relay(f, status, err, result);
	free(f);
}

void api_forward(struct api *a, struct rpc_call *call)
{
	struct node *n = a->n;
	uint64_t leader = node_leader_id(n);
	struct mp_out args;
	struct forward *f;
	struct ing_str op = rpc_call_op(call), rid = rpc_call_request_id(call);
	int rv;

	f = calloc(1, sizeof(*f));
	if (f == NULL || op.len >= sizeof(f->op)) {
		free(f);
		rpc_reply_error(call, f == NULL ? ING_ENOMEM : ING_EINVAL, "cannot forward");
		return;
	}
	f->a = a;
	f->call = call;
	f->leader = leader;
	f->deadline_ms = a->unpark_deadline_ms != 0
	                     ? a->unpark_deadline_ms
	                     : node_now_ms() + node_cfg(n)->request_timeout_ms;
	memcpy(f->op, op.ptr, op.len);
	f->q.data = f;
	f->q.cb = on_forwarded;
	if (rid.len > 0 && rid.len <= RPC_REQUEST_ID_MAX) {
		memcpy(f->request_id, rid.ptr, rid.len);
		f->q.request_id = f->request_id;
	}
	mp_out_init(&args);
	msgpack_pack_object(&args.pk, *rpc_call_args(call));
	rv = mp_out_failed(&args);
	if (rv == 0)
		rv = node_request_member(node_requests(n), &f->q, leader, f->op, args.data,
		                         args.len, RPC_NO_RETRY, api_call_timeout_ms(a, op));
	mp_out_free(&args);
	if (rv == ING_ENOTFOUND) {
		ING_LOG_WARN("leader api address unknown leader=%" PRIu64, leader);
		free(f);
		api_park(a, call);
		return;
	}
	if (rv != 0) {
		free(f);
		rpc_reply_error(call, rv, "cannot forward to the leader: %s", ing_err_msg(rv));
	}
}
