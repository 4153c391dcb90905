/*
 * events.c - cluster.events: the cluster's own history (docs/api.md
 * "Cluster events"), paged by sequence number.
 */
#include "node/api/api_internal.h"
#include "rpc/args.h"

/* Cluster events: job id 0 in the events table (node/sm/sm_node.c). */
void api_op_cluster_events(struct node *n, struct rpc_call *call)
{
	static const char *const known[] = {"after", "limit", "stale", NULL};
	const msgpack_object *args = rpc_call_args(call);
	struct store_txn *t;
	struct store_iter *it;
	struct ing_error e;
	struct mp_out o;
	msgpack_zone z;
	struct ing_str k, v;
	uint64_t after = 0, limit = 100;
	uint8_t start[12];
	uint32_t count = 0, last = 0;
	bool more = false;
	int rv;

	if (api_check_known(call, known) != 0)
		return;
	rv = rpc_arg_u64(args, "after", UINT32_MAX, false, &after, &e);
	if (rv == 0)
		rv = rpc_arg_u64(args, "limit", 1000, false, &limit, &e);
	if (rv == 0 && limit == 0)
		rv = ing_error_set(&e, ING_EINVAL, "argument 'limit': must be 1..1000");
	if (rv == 0 && rpc_arg_find(args, "limit") == NULL)
		limit = 100;
	if (rv != 0) {
		api_reply_err(call, &e);
		return;
	}
	if (api_read_begin(n, call, &t) != 0)
		return;
	msgpack_zone_init(&z, 4096);
	mp_out_init(&o);
	/* Counted first so the array header is right: at most limit + 1. */
	store_be64(start, 0);
	store_be32(start + 8, rpc_arg_find(args, "after") != NULL ? (uint32_t)after + 1 : 0);
	struct ing_str from = {(const char *)start, 12};
	rv = store_iter_open(t, STORE_EVENTS, from, &it);
	while (rv == 0 && (rv = store_iter_next(it, &k, &v)) == 0) {
		if (k.len != 12 || store_get_be64(k.ptr) != 0)
			break;
		if (count == limit) {
			more = true;
			break;
		}
		count++;
	}
	if (rv == 0 || rv == ING_ENOTFOUND)
		store_iter_close(it);
	msgpack_pack_map(&o.pk, 2);
	view_key(&o.pk, "events");
	msgpack_pack_array(&o.pk, count);
	uint32_t packed = 0;
	rv = store_iter_open(t, STORE_EVENTS, from, &it);
	while (rv == 0 && packed < count && (rv = store_iter_next(it, &k, &v)) == 0) {
		struct rec_event ev;
		if (k.len != 12 || store_get_be64(k.ptr) != 0 ||
		    rec_event_decode(v, &z, &ev, NULL) != 0)
			break;
		last = store_get_be32(k.ptr + 8);
		msgpack_pack_map(&o.pk, 5);
		view_key(&o.pk, "seq");
		msgpack_pack_uint32(&o.pk, last);
		view_key(&o.pk, "time_ms");
		msgpack_pack_uint64(&o.pk, ev.time_ms);
		view_key(&o.pk, "kind");
		mp_pack_cstr(&o.pk, rec_event_kind_name(ev.kind));
		view_key(&o.pk, "member");
		view_opt_u64(&o.pk, ev.node_id);
		view_key(&o.pk, "message");
		mp_pack_str(&o.pk, ev.message);
		packed++;
	}
	if (rv == 0 || rv == ING_ENOTFOUND)
		store_iter_close(it);
	if (packed != count) {
		mp_out_free(&o);
		api_corrupt_reply(n, call, "cluster event history");
	} else {
		view_key(&o.pk, "next");
		if (more)
			msgpack_pack_uint32(&o.pk, last);
		else
			msgpack_pack_nil(&o.pk);
		api_reply_out(call, &o);
	}
	msgpack_zone_destroy(&z);
	store_abort(t);
}
