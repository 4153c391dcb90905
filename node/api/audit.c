/*
 * audit.c - audit.list: who did what and when (docs/api.md "Audit"; admin
 * only, ops.c).
 *
 * The audit trail is the events that name a principal: the job events a
 * client's write made (submitted, cancel_requested, cancelled, retried)
 * and the cluster events of targets, drains, tokens, settings and
 * membership changes.  They live in the events table with everything else; only
 * events written as record version 2 carry a principal, so a scan reads
 * one byte of each event to skip the others before decoding anything.
 *
 * Order: by time, then job id (0 for cluster events), then sequence.  A
 * page holds the first `limit` events after the cursor `after` (the
 * `next` of the previous page, "TIME.JOB.SEQ"), kept (as positions) in a
 * sorted array of at most limit + 1 entries while the whole table is
 * scanned, then read again by key to make the page: a page costs one pass
 * over the events table, whatever its position, and memory for one page.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/mp.h"
#include "node/api/api_internal.h"
#include "rpc/args.h"

#define LIMIT_MAX     1000
#define LIMIT_DEFAULT 100

struct pos {
	uint64_t time_ms, job;
	uint32_t seq;
};

static int pos_cmp(const struct pos *a, const struct pos *b)
{
	if (a->time_ms != b->time_ms)
		return a->time_ms < b->time_ms ? -1 : 1;
	if (a->job != b->job)
		return a->job < b->job ? -1 : 1;
	return a->seq < b->seq ? -1 : a->seq > b->seq;
}

/* "TIME.JOB.SEQ" */
static int parse_cursor(struct ing_str s, struct pos *out)
{
	char buf[80];
	unsigned long long t, j;
	unsigned long q;
	char end;
	if (s.len == 0 || s.len >= sizeof(buf))
		return ING_EINVAL;
	memcpy(buf, s.ptr, s.len);
	buf[s.len] = '\0';
	if (buf[0] < '0' || buf[0] > '9' || sscanf(buf, "%llu.%llu.%lu%c", &t, &j, &q, &end) != 3 ||
	    q > UINT32_MAX)
		return ING_EINVAL;
	out->time_ms = t;
	out->job = j;
	out->seq = (uint32_t)q;
	return 0;
}

static void view_audit(msgpack_packer *pk, const struct pos *at, const struct rec_event *ev)
{
	bool cluster = at->job == 0;
	msgpack_pack_map(pk, 7);
	view_key(pk, "time_ms");
	msgpack_pack_uint64(pk, ev->time_ms);
	view_key(pk, "principal");
	mp_pack_str(pk, ev->principal);
	view_key(pk, "kind");
	mp_pack_cstr(pk, rec_event_kind_name(ev->kind));
	view_key(pk, "job");
	if (cluster)
		msgpack_pack_nil(pk);
	else
		msgpack_pack_uint64(pk, at->job);
	view_key(pk, "seq");
	msgpack_pack_uint32(pk, at->seq);
	view_key(pk, "node");
	if (ev->node_id == 0)
		msgpack_pack_nil(pk);
	else
		msgpack_pack_uint64(pk, ev->node_id);
	view_key(pk, "message");
	mp_pack_str(pk, ev->message);
}

void api_op_audit_list(struct node *n, struct rpc_call *call)
{
	static const char *const known[] = {"since_ms", "principal", "limit",
	                                    "after",    "stale",     NULL};
	const msgpack_object *args = rpc_call_args(call);
	struct ing_str principal = {"", 0}, after_s = {"", 0}, k, v;
	uint64_t since = 0, limit = LIMIT_DEFAULT;
	struct pos after = {0, 0, 0};
	bool have_after = false, more = false;
	struct ing_error e;
	struct store_txn *t;
	struct store_iter *it;
	struct mp_out o;
	struct pos *hits = NULL;
	size_t nhits = 0;
	msgpack_zone z;
	int rv;

	if (api_check_known(call, known) != 0)
		return;
	rv = rpc_arg_u64(args, "since_ms", UINT64_MAX, false, &since, &e);
	if (rv == 0)
		rv = rpc_arg_str(args, "principal", ING_PRINCIPAL_MAX, false, &principal, &e);
	if (rv == 0)
		rv = rpc_arg_u64(args, "limit", LIMIT_MAX, false, &limit, &e);
	if (rv == 0 && limit == 0)
		rv = ing_error_set(&e, ING_EINVAL, "argument 'limit': must be 1..%d", LIMIT_MAX);
	if (rv == 0)
		rv = rpc_arg_str(args, "after", 80, false, &after_s, &e);
	if (rv == 0 && after_s.len > 0) {
		if (parse_cursor(after_s, &after) != 0)
			rv = ing_error_set(&e, ING_EINVAL,
			                   "argument 'after': not a cursor of audit.list (the "
			                   "`next` of a page: TIME.JOB.SEQ)");
		have_after = true;
	}
	if (rv != 0) {
		api_reply_err(call, &e);
		return;
	}
	if (api_read_begin(n, call, &t) != 0)
		return;
	hits = calloc(limit + 1, sizeof(*hits));
	if (hits == NULL) {
		store_abort(t);
		rpc_reply_error(call, ING_ENOMEM, "out of memory");
		return;
	}
	msgpack_zone_init(&z, 2048);
	rv = store_iter_open(t, STORE_EVENTS, (struct ing_str){"", 0}, &it);
	bool opened = rv == 0;
	while (rv == 0 && (rv = store_iter_next(it, &k, &v)) == 0) {
		struct rec_event ev;
		/* [fixarray, version, ...]: only version 2 names a principal */
		if (k.len != 12 || v.len < 2 || (uint8_t)v.ptr[1] != 2)
			continue;
		if (rec_event_decode(v, &z, &ev, NULL) != 0) {
			rv = ING_ECORRUPT;
			break;
		}
		struct pos at = {ev.time_ms, store_get_be64(k.ptr), store_get_be32(k.ptr + 8)};
		if (ev.time_ms < since ||
		    (principal.len > 0 && !ing_str_eq(principal, ev.principal)) ||
		    (have_after && pos_cmp(&at, &after) <= 0) ||
		    (nhits == limit + 1 && pos_cmp(&at, &hits[limit]) >= 0)) {
			msgpack_zone_clear(&z);
			continue;
		}
		/* Insert in order; the last one falls out when full. */
		size_t lo = 0, hi = nhits;
		while (lo < hi) {
			size_t mid = (lo + hi) / 2;
			if (pos_cmp(&hits[mid], &at) < 0)
				lo = mid + 1;
			else
				hi = mid;
		}
		if (nhits == limit + 1)
			nhits--;
		memmove(&hits[lo + 1], &hits[lo], (nhits - lo) * sizeof(*hits));
		hits[lo] = at;
		nhits++;
		msgpack_zone_clear(&z);
	}
	if (opened)
		store_iter_close(it);
	if (nhits > limit) {
		more = true;
		nhits = limit;
	}
	mp_out_init(&o);
	msgpack_pack_map(&o.pk, 2);
	view_key(&o.pk, "events");
	msgpack_pack_array(&o.pk, (uint32_t)nhits);
	for (size_t i = 0; rv == ING_ENOTFOUND && i < nhits; i++) {
		uint8_t key[12];
		struct rec_event ev;
		store_be64(key, hits[i].job);
		store_be32(key + 8, hits[i].seq);
		if (store_get(t, STORE_EVENTS, (struct ing_str){(const char *)key, 12}, &v) != 0 ||
		    rec_event_decode(v, &z, &ev, NULL) != 0)
			rv = ING_ECORRUPT;
		else
			view_audit(&o.pk, &hits[i], &ev);
		msgpack_zone_clear(&z);
	}
	store_abort(t);
	msgpack_zone_destroy(&z);
	if (rv != ING_ENOTFOUND) {
		free(hits);
		mp_out_free(&o);
		if (rv == ING_ECORRUPT)
			api_corrupt_reply(n, call, "event record");
		else
			rpc_reply_error(call, rv, "cannot read the events: %s", ing_err_msg(rv));
		return;
	}
	view_key(&o.pk, "next");
	if (more && nhits > 0) {
		char next[80];
		const struct pos *last = &hits[nhits - 1];
		snprintf(next, sizeof(next), "%" PRIu64 ".%" PRIu64 ".%" PRIu32, last->time_ms,
		         last->job, last->seq);
		mp_pack_cstr(&o.pk, next);
	} else {
		msgpack_pack_nil(&o.pk);
	}
	free(hits);
	api_reply_out(call, &o);
}
