/*
 * transfer.c - member.transfer: the leader hands its leadership to another
 * voter (or any, id 0).  libraft's transfer can fail silently, so the
 * result is read from the Raft status afterwards, and the transfer retried
 * up to TRANSFER_ATTEMPTS times.  Also the first half of removing the
 * leader itself: once another node leads, the member.remove is dispatched
 * again on this node, which now forwards it.  libraft may call back when
 * this node has stepped down but has not heard of the new leader yet (its
 * first append is on the way): the transfer then settles, re-checked on the
 * member tick for up to two election timeouts, before it counts as
 * failed.
 */
#include <inttypes.h>
#include <stdlib.h>

#include "common/log.h"
#include "common/mp.h"
#include "node/api/api.h"
#include "node/api/args.h"
#include "node/api/view.h"
#include "node/member/member_internal.h"
#include "rpc/args.h"

#define TRANSFER_ATTEMPTS 3

struct member_transfer {
	struct node *n;
	struct rpc_call *call;
	uint64_t target, previous;
	unsigned attempts;
	uint64_t started_ms;
	bool then_forward; /* member.remove of this leader: forward it after */
	/* libraft called back, this node no longer leads but does not know the
	 * new leader yet: re-checked by the member tick until then. */
	bool settling;
	uint64_t settle_deadline_ms;
	struct cons_transfer t;
};

static void transfer_reply(struct member_transfer *t, uint64_t leader)
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
 * leaves t settling. */
static void transfer_settle(struct member_transfer *t)
{
	struct node *n = t->n;
	struct member *mb = node_member(n);
	struct cons_status st;
	int rv;

	if (node_cons(n) == NULL) { /* raft closed: the node stops */
		mb->transfer = NULL;
		rpc_reply_error(t->call, ING_EUNAVAILABLE, "node %" PRIu64 " is shutting down",
		                node_id(n));
		free(t);
		return;
	}
	cons_status(node_cons(n), &st);
	bool led = st.role == CONS_LEADER || st.role == CONS_LEADER_READY;
	if (!led && st.leader_id == 0 && !node_stopping(n)) {
		/* Stepped down, the new leader not heard yet: neither a success
		 * nor a failure so far. */
		uint64_t now = node_now_ms();
		if (!t->settling) {
			t->settling = true;
			t->settle_deadline_ms = now + 2ull * node_cfg(n)->election_timeout_ms;
		}
		if (now < t->settle_deadline_ms)
			return;
	}
	t->settling = false;
	bool moved = !led && st.leader_id != 0 && st.leader_id != node_id(n);
	bool to_target = moved && (t->target == 0 || st.leader_id == t->target);
	if (to_target || (moved && t->then_forward)) {
		ING_LOG_INFO("leadership transferred from=%" PRIu64 " to=%" PRIu64 " attempts=%u",
		             t->previous, st.leader_id, t->attempts);
		mb->transfer = NULL;
		if (t->then_forward) {
			/* This node is a follower now: the remove goes to the new
			 * leader (parked until it is ready). */
			node_note_leader(n, st.leader_id);
			api_dispatch(node_api(n), t->call);
		} else {
			transfer_reply(t, st.leader_id);
		}
		free(t);
		return;
	}
	if (moved) {
		/* Another node won: that is the cluster's choice, not ours. */
		mb->transfer = NULL;
		rpc_reply_error(t->call, ING_ECONFLICT,
		                "leadership moved to node %" PRIu64 " instead of %" PRIu64
		                ": ask that leader again",
		                st.leader_id, t->target);
		free(t);
		return;
	}
	if (t->attempts < TRANSFER_ATTEMPTS && !node_stopping(n)) {
		t->attempts++;
		ING_LOG_WARN("leadership transfer did not happen, retrying target=%" PRIu64
		             " attempt=%u",
		             t->target, t->attempts);
		rv = cons_transfer(node_cons(n), &t->t, t->target);
		if (rv == 0)
			return;
	}
	mb->transfer = NULL;
	rpc_reply_error(t->call, ING_ETIMEOUT,
	                "leadership stayed with node %" PRIu64
	                " after %u attempt%s to transfer it%s",
	                node_id(n), t->attempts, t->attempts == 1 ? "" : "s",
	                t->target != 0 ? "; is the target caught up and reachable?" : "");
	free(t);
}

static void on_transferred(struct cons_transfer *ct)
{
	transfer_settle(ct->data);
}

bool member_transfer_tick(struct member *mb)
{
	struct member_transfer *t = mb->transfer;
	if (t == NULL || !t->settling)
		return false;
	transfer_settle(t);
	return true;
}

void member_transfer_stop(struct member *mb)
{
	struct member_transfer *t = mb->transfer;
	/* cons_close completes a transfer in flight (its callback replies);
	 * one whose callback came already is answered here. */
	if (t == NULL || !t->settling)
		return;
	mb->transfer = NULL;
	rpc_reply_error(t->call, ING_EUNAVAILABLE,
	                "node %" PRIu64 " is shutting down during the transfer", node_id(t->n));
	free(t);
}

int member_start_transfer(struct node *n, struct rpc_call *call, uint64_t target, bool then_forward)
{
	struct member_transfer *t = calloc(1, sizeof(*t));
	int rv;

	if (t == NULL) {
		rpc_reply_error(call, ING_ENOMEM, "out of memory");
		return ING_ENOMEM;
	}
	t->n = n;
	t->call = call;
	t->target = target;
	t->previous = node_id(n);
	t->attempts = 1;
	t->started_ms = node_now_ms();
	t->then_forward = then_forward;
	t->t.data = t;
	t->t.cb = on_transferred;
	rv = cons_transfer(node_cons(n), &t->t, target);
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
	node_member(n)->transfer = t;
	return 0;
}

void member_op_transfer(struct node *n, struct rpc_call *call)
{
	static const char *const known[] = {"id", NULL};
	struct ing_error e;
	uint64_t id = 0;

	if (api_check_known(call, known) != 0)
		return;
	if (rpc_arg_u64(rpc_call_args(call), "id", UINT64_MAX, false, &id, &e) != 0) {
		rpc_reply_error(call, e.code, "%s", e.msg);
		return;
	}
	if (id == node_id(n)) {
		struct member_transfer t = {
		    .previous = id, .attempts = 0, .started_ms = node_now_ms(), .call = call};
		transfer_reply(&t, id); /* already the leader */
		return;
	}
	if (member_busy(node_member(n))) {
		member_refuse_busy(n, call);
		return;
	}
	member_start_transfer(n, call, id, false);
}
