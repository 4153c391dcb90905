/*
 * forward.c - requests this node cannot serve itself: forwarded to the
 * leader, or parked until there is one.
 *
 * Forwarding relays the request as it came (op, args, request id) over one
 * kept-open connection to the current leader's API address, and relays the
 * reply.  When the leader changes, requests already sent to the previous
 * one stay on their connection until they are answered (that connection is
 * closed after the last): a leadership transfer or a membership change
 * that the old leader completes must be answered by it, not sent again to
 * the new leader, which would answer a different question.  The request id travels with it, so the
 * leader's dedupe makes a retry after a lost reply safe.  When the forward fails at the connection
 * level, or the leader answers unavailable/not_leader, the request is
 * parked: it waits for the next role change (or the park timer, every
 * 50 ms) and is dispatched again, until request_timeout_ms after it first
 * waited, when it fails with `unavailable`.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "node/node_internal.h"

#define PARK_TICK_MS 50

struct forward {
	struct rpc_request r;
	struct node *n;
	struct rpc_client *via; /* the connection it went out on */
	struct rpc_call *call;
	uint64_t deadline_ms;
	char request_id[RPC_REQUEST_ID_MAX + 1];
	char op[64];
};

static void on_park_tick(uv_timer_t *t)
{
	node_unpark(t->data);
}

void node_park(struct node *n, struct rpc_call *call)
{
	struct node_parked *p = malloc(sizeof(*p));
	if (p == NULL) {
		rpc_reply_error(call, ING_ENOMEM, "out of memory");
		return;
	}
	p->call = call;
	p->deadline_ms = n->unpark_deadline_ms != 0 ? n->unpark_deadline_ms
	                                            : node_now_ms() + n->cfg.request_timeout_ms;
	p->next = n->parked;
	n->parked = p;
	if (!uv_is_active((uv_handle_t *)&n->park_timer))
		uv_timer_start(&n->park_timer, on_park_tick, PARK_TICK_MS, PARK_TICK_MS);
}

void node_unpark(struct node *n)
{
	struct node_parked *list = n->parked;
	uint64_t now = node_now_ms();

	n->parked = NULL;
	while (list != NULL) {
		struct node_parked *p = list;
		list = p->next;
		if (now >= p->deadline_ms) {
			rpc_reply_error(
			    p->call, ING_EUNAVAILABLE,
			    "no leader could serve the request within %u ms (node %" PRIu64
			    " sees leader %" PRIu64 "); is a majority of the cluster up?",
			    n->cfg.request_timeout_ms, n->cfg.id, n->leader_id);
		} else {
			n->unpark_deadline_ms = p->deadline_ms;
			node_api_dispatch(n, p->call);
			n->unpark_deadline_ms = 0;
		}
		free(p);
	}
	if (n->parked == NULL && !n->stopping)
		uv_timer_stop(&n->park_timer);
}

static void fwd_client_closed(void *data)
{
	node_release(data);
}

static void close_client(struct node *n, struct rpc_client *c)
{
	node_hold(n);
	rpc_client_close(c, fwd_client_closed, n);
}

/* Drops the connection to the current leader (its requests fail). */
static void drop_client(struct node *n)
{
	struct rpc_client *c = n->fwd;
	if (c == NULL)
		return;
	n->fwd = NULL;
	n->fwd_leader = 0;
	n->fwd_inflight = 0;
	close_client(n, c);
}

/* The leader changed: the current connection retires, and closes once the
 * requests on it are answered. */
static void retire_client(struct node *n)
{
	struct rpc_client *oldest = n->fwd_old;
	n->fwd_old = n->fwd;
	n->fwd_old_inflight = n->fwd_inflight;
	n->fwd = NULL;
	n->fwd_leader = 0;
	n->fwd_inflight = 0;
	if (oldest != NULL) /* a third leader meanwhile: give up on the oldest */
		close_client(n, oldest);
	if (n->fwd_old != NULL && n->fwd_old_inflight == 0) {
		struct rpc_client *c = n->fwd_old;
		n->fwd_old = NULL;
		close_client(n, c);
	}
}

void node_forward_close(struct node *n)
{
	drop_client(n);
	if (n->fwd_old != NULL) {
		struct rpc_client *c = n->fwd_old;
		n->fwd_old = NULL;
		close_client(n, c);
	}
}

/* A forward over `via` is answered. */
static void forward_done(struct node *n, struct rpc_client *via)
{
	if (via == n->fwd && n->fwd_inflight > 0) {
		n->fwd_inflight--;
	} else if (via == n->fwd_old && n->fwd_old_inflight > 0 && --n->fwd_old_inflight == 0) {
		n->fwd_old = NULL;
		close_client(n, via);
	}
}

static void relay(struct forward *f, int status, const struct ing_error *err,
                  const msgpack_object *result)
{
	struct node *n = f->n;
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
		if (status != ING_ETIMEOUT && !n->stopping) {
			/* Reconnect for what comes next, but let the other
			 * requests on this connection finish: one may be a
			 * transfer the old leader is completing. */
			if (f->via == n->fwd)
				retire_client(n);
			n->unpark_deadline_ms = f->deadline_ms;
			node_park(n, f->call);
			n->unpark_deadline_ms = 0;
			return;
		}
	}
	rpc_reply_error(f->call, status, "%s", err != NULL ? err->msg : ing_err_msg(status));
}

static void on_forwarded(struct rpc_request *r, int status, const struct ing_error *err,
                         const msgpack_object *result)
{
	struct forward *f = r->data;
	struct node *n = f->n;
	struct rpc_client *via = f->via;
	/* Counted off first: relay may drop or replace the connection. */
	if (!n->stopping)
		forward_done(n, via);
	relay(f, status, err, result);
	free(f);
}

void node_forward(struct node *n, struct rpc_call *call)
{
	char addr[NODE_ADDRESS_MAX];
	struct ing_error e;
	struct mp_out args;
	struct forward *f;
	struct ing_str op = rpc_call_op(call), rid = rpc_call_request_id(call);
	int rv;

	if (n->fwd != NULL && n->fwd_leader != n->leader_id)
		retire_client(n);
	if (n->fwd == NULL) {
		node_member_api_address(n, n->leader_id, addr);
		if (addr[0] == '\0') {
			ING_LOG_WARN("leader api address unknown leader=%" PRIu64, n->leader_id);
			node_park(n, call);
			return;
		}
		const char *eps[] = {addr};
		struct rpc_client_options o = {
		    .endpoints = eps,
		    .nendpoints = 1,
		    .max_frame_bytes = n->cfg.max_frame_bytes,
		    .timeout_ms = n->cfg.request_timeout_ms,
		    .connect_timeout_ms = 500,
		};
		if (rpc_client_new(n->loop, &o, &n->fwd, &e) != 0) {
			rpc_reply_error(call, e.code, "cannot reach the leader: %s", e.msg);
			return;
		}
		n->fwd_leader = n->leader_id;
	}
	f = calloc(1, sizeof(*f));
	if (f == NULL || op.len >= sizeof(f->op)) {
		free(f);
		rpc_reply_error(call, f == NULL ? ING_ENOMEM : ING_EINVAL, "cannot forward");
		return;
	}
	f->n = n;
	f->via = n->fwd;
	f->call = call;
	f->deadline_ms = n->unpark_deadline_ms != 0 ? n->unpark_deadline_ms
	                                            : node_now_ms() + n->cfg.request_timeout_ms;
	memcpy(f->op, op.ptr, op.len);
	f->r.data = f;
	f->r.cb = on_forwarded;
	if (rid.len > 0 && rid.len <= RPC_REQUEST_ID_MAX) {
		memcpy(f->request_id, rid.ptr, rid.len);
		f->r.request_id = f->request_id;
	}
	mp_out_init(&args);
	msgpack_pack_object(&args.pk, *rpc_call_args(call));
	rv = mp_out_failed(&args);
	if (rv == 0)
		rv = rpc_client_call_within(n->fwd, &f->r, f->op, args.data, args.len, RPC_NO_RETRY,
		                            node_api_call_timeout_ms(n, op));
	mp_out_free(&args);
	if (rv != 0) {
		free(f);
		rpc_reply_error(call, rv, "cannot forward to the leader: %s", ing_err_msg(rv));
		return;
	}
	n->fwd_inflight++;
}
