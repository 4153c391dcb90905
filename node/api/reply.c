/*
 * reply.c - what every handler of node/api/ replies with: encoded replies,
 * errors, reads on flushed state, and a corrupt record (which stops the
 * node: it never serves from state it cannot trust).
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "common/mp.h"
#include "node/api/api_internal.h"
#include "node/config.h"
#include "rpc/args.h"
#include "storage/records.h"

void api_reply_out(struct rpc_call *call, struct mp_out *o)
{
	if (mp_out_failed(o) != 0)
		rpc_reply_error(call, ING_ENOMEM, "out of memory encoding the reply");
	else
		rpc_reply(call, o->data, o->len);
	mp_out_free(o);
}

void api_reply_err(struct rpc_call *call, const struct ing_error *e)
{
	rpc_reply_error(call, e->code, "%s", e->msg);
}

/* Opens a read view of every applied entry (the open batch included, see
 * store_read_begin), or replies an error. */
int api_read_begin(struct node *n, struct rpc_call *call, struct store_txn **t)
{
	int rv = store_read_begin(node_store(n), t);
	if (rv != 0)
		rpc_reply_error(call, rv, "cannot read the state: %s", ing_err_msg(rv));
	return rv;
}

int api_corrupt_reply(struct node *n, struct rpc_call *call, const char *what)
{
	rpc_reply_error(call, ING_ECORRUPT, "%s does not decode", what);
	node_fatal(n, ING_CORRUPT(what), what);
	return ING_ECORRUPT;
}

int api_load_job(struct node *n, struct rpc_call *call, struct store_txn *t, uint64_t id,
                 msgpack_zone *z, struct rec_job *j)
{
	uint8_t k[8];
	struct ing_str val;
	store_be64(k, id);
	int rv = store_get(t, STORE_JOBS, (struct ing_str){(const char *)k, 8}, &val);
	if (rv == ING_ENOTFOUND) {
		rpc_reply_error(call, rv, "job %" PRIu64 " does not exist", id);
		return rv;
	}
	if (rv != 0) {
		rpc_reply_error(call, rv, "cannot read job: %s", ing_err_msg(rv));
		return rv;
	}
	if (rec_job_decode(val, z, j, NULL) != 0)
		return api_corrupt_reply(n, call, "job record");
	return 0;
}

/* Replies with every record of `tbl` as an array, in key order. */
/* Lists records of tbl with keys greater than `after` (all: len 0), at
 * most `limit`, and while the body stays under `budget` bytes (at least one
 * record). */
static void list_table(struct node *n, struct rpc_call *call, enum store_table tbl,
                       api_view_record_fn view, const char *what, struct ing_str after,
                       uint64_t limit, size_t budget)
{
	struct store_txn *t;
	struct store_iter *it;
	struct ing_str k, v;
	struct mp_out body, o;
	msgpack_zone z;
	uint32_t count = 0;
	int rv;

	if (api_read_begin(n, call, &t) != 0)
		return;
	mp_out_init(&body);
	msgpack_zone_init(&z, 4096);
	rv = store_iter_open(t, tbl, after, &it);
	bool opened = rv == 0;
	while (rv == 0 && count < limit && (rv = store_iter_next(it, &k, &v)) == 0) {
		size_t before = body.len;
		if (after.len > 0 && k.len == after.len && memcmp(k.ptr, after.ptr, k.len) == 0)
			continue; /* the cursor itself: names greater than it */
		if (view(&body.pk, v, &z) != 0) {
			rv = ING_ECORRUPT;
			break;
		}
		msgpack_zone_clear(&z);
		if (count > 0 && body.len > budget) {
			body.len = before; /* the next page starts with it */
			break;
		}
		count++;
	}
	if (rv == 0)
		rv = ING_ENOTFOUND; /* a full page ends like the table's end */
	if (opened)
		store_iter_close(it);
	store_abort(t);
	msgpack_zone_destroy(&z);
	if (rv != ING_ENOTFOUND) {
		mp_out_free(&body);
		if (rv == ING_ECORRUPT)
			api_corrupt_reply(n, call, what);
		else
			rpc_reply_error(call, rv, "cannot list: %s", ing_err_msg(rv));
		return;
	}
	mp_out_init(&o);
	msgpack_pack_array(&o.pk, count);
	mp_out_raw(&o, body.data, body.len);
	mp_out_free(&body);
	api_reply_out(call, &o);
}

void api_list_table(struct node *n, struct rpc_call *call, enum store_table tbl,
                    api_view_record_fn view, const char *what)
{
	static const char *const known[] = {"stale", NULL};
	if (api_check_known(call, known) == 0)
		list_table(n, call, tbl, view, what, (struct ing_str){"", 0}, UINT64_MAX, SIZE_MAX);
}

void api_list_table_paged(struct node *n, struct rpc_call *call, enum store_table tbl,
                          api_view_record_fn view, const char *what)
{
	static const char *const known[] = {"stale", "after", "limit", NULL};
	const msgpack_object *args = rpc_call_args(call);
	struct ing_str after = {"", 0};
	uint64_t limit = 1000;
	struct ing_error e;
	int rv;

	if (api_check_known(call, known) != 0)
		return;
	rv = rpc_arg_str(args, "after", ING_NAME_MAX, false, &after, &e);
	if (rv == 0)
		rv = rpc_arg_u64(args, "limit", 1000, false, &limit, &e);
	if (rv == 0 && limit == 0)
		rv = ing_error_set(&e, ING_EINVAL, "argument 'limit': at least 1");
	if (rv != 0) {
		api_reply_err(call, &e);
		return;
	}
	list_table(n, call, tbl, view, what, after, limit, node_cfg(n)->max_frame_bytes / 2);
}
