/*
 * retention.c - the leader proposes retention_run (retention.h).
 *
 * The ready leader looks on every heartbeat tick (heartbeat_interval_ms):
 * one read of the meta settings and of the first key of the finished
 * index, so a tick costs the same whatever the state's size.  One command
 * is in flight at a time; one that removed a full batch is followed at
 * once by the next, so a backlog of expired jobs is worked off at
 * RETENTION_BATCH per commit, and the apply of each stays short.  A leader
 * change loses nothing: the next leader finds the same rows due.
 */
#include "node/leader/retention.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "node/propose.h"
#include "node/sm/cmd.h"
#include "node/sm/sm.h"

struct retention {
	bool inflight; /* a retention_run proposed, not yet applied */
	struct node *n;
};

int retention_new(struct retention **out)
{
	struct retention *r = calloc(1, sizeof(*r));
	if (r == NULL)
		return ING_ENOMEM;
	*out = r;
	return 0;
}

void retention_free(struct retention *r)
{
	free(r);
}

int retention_due(struct store_txn *t, uint64_t now_ms, bool *due)
{
	uint64_t window, rotated, retention;
	struct store_iter *it;
	struct ing_str k, v;
	int rv = sm_setting(t, CMD_SETTING_DEDUPE_WINDOW, &window);
	if (rv == 0)
		rv = store_meta_get_u64(t, SM_META_DEDUPE_ROTATED, &rotated);
	if (rv == 0)
		rv = sm_setting(t, CMD_SETTING_JOB_RETENTION, &retention);
	if (rv != 0)
		return rv;
	*due = window != 0 && now_ms >= rotated && now_ms - rotated >= window;
	if (*due || retention == 0 || now_ms < retention)
		return 0;
	rv = store_iter_open(t, STORE_FINISHED, (struct ing_str){"", 0}, &it);
	if (rv != 0)
		return rv;
	rv = store_iter_next(it, &k, &v);
	if (rv == 0 && k.len == 16)
		*due = store_get_be64(k.ptr) <= now_ms - retention;
	store_iter_close(it);
	return rv == ING_ENOTFOUND ? 0 : rv;
}

static void propose(struct retention *r);

static void on_applied(void *data, int status, const struct node_result *res)
{
	struct retention *r = data;
	bool more = false;
	r->inflight = false;
	if (status == 0 && res != NULL && res->code == 0 && res->len > 0) {
		msgpack_zone z;
		msgpack_object o;
		size_t off = 0;
		msgpack_zone_init(&z, 64);
		if (msgpack_unpack(res->value, res->len, &off, &z, &o) == MSGPACK_UNPACK_SUCCESS &&
		    o.type == MSGPACK_OBJECT_ARRAY && o.via.array.size == 3 &&
		    o.via.array.ptr[1].type == MSGPACK_OBJECT_BOOLEAN)
			more = o.via.array.ptr[1].via.boolean;
		msgpack_zone_destroy(&z);
	} else if (status == 0 && res != NULL && res->code != 0) {
		ING_LOG_WARN("retention run refused error=%s msg=\"%s\"", ing_err_name(res->code),
		             res->message);
	}
	if (more && node_is_ready_leader(r->n) && !node_stopping(r->n))
		propose(r);
}

static void propose(struct retention *r)
{
	struct ing_error e;
	struct cmd c;
	memset(&c, 0, sizeof(c));
	c.type = CMD_RETENTION_RUN;
	c.request_id = ing_str_c("");
	c.u.retention_run.max_jobs = RETENTION_BATCH;
	int rv = node_propose(r->n, &c, on_applied, r, &e);
	if (rv != 0) {
		ING_LOG_DEBUG("retention run not proposed error=%s msg=\"%s\"", ing_err_name(rv),
		              e.msg);
		return;
	}
	r->inflight = true;
}

void retention_tick(struct retention *r, struct node *n)
{
	struct store_txn *t;
	bool due = false;

	r->n = n;
	if (r->inflight || !node_is_ready_leader(n) || node_stopping(n))
		return;
	if (store_read_begin(node_store(n), &t) != 0)
		return;
	int rv = retention_due(t, node_now_ms(), &due);
	store_abort(t);
	if (rv == 0 && due)
		propose(r);
}
