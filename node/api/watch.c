/*
 * watch.c - `job.watch`: a job's events pushed as this node applies them.
 *
 * A watch remembers the next event sequence number to send.  After every
 * flush of the apply batch (once per loop iteration with new entries, see
 * node.c) each watch reads its job: new events are pushed in order, and
 * once the job is final and every event is out, the final reply carries
 * the job.  A job that does not exist yet here is waited for up to
 * request_timeout_ms (it may have been submitted through another node and
 * not applied here yet), then the watch fails with not_found.  A client
 * that goes away ends its watch (rpc_call_on_abandon).
 */
#include <inttypes.h>
#include <stdlib.h>

#include "common/mp.h"
#include "node/api/api_internal.h"
#include "node/leader/scheduler.h"

struct api_watch {
	struct api *a;
	struct rpc_call *call;
	uint64_t job;
	uint32_t next_seq;
	uint64_t started_ms;
	bool done;
	struct api_watch *next;
};

static void unlink_watch(struct api *a, struct api_watch *w)
{
	for (struct api_watch **pp = &a->watches; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == w) {
			*pp = w->next;
			return;
		}
	}
}

static void on_abandon(struct rpc_call *call, void *data)
{
	struct api_watch *w = data;
	unlink_watch(w->a, w);
	rpc_reply_error(call, ING_EUNAVAILABLE, "client went away");
	free(w);
}

/* Pushes new events; replies and returns true when the watch is over. */
static bool poll_one(struct api *a, struct api_watch *w, struct store_txn *t, msgpack_zone *z)
{
	uint8_t k[12];
	struct ing_str val;
	struct rec_job j;
	struct mp_out o;

	store_be64(k, w->job);
	int rv = store_get(t, STORE_JOBS, (struct ing_str){(const char *)k, 8}, &val);
	if (rv == ING_ENOTFOUND) {
		if (node_now_ms() - w->started_ms < node_cfg(a->n)->request_timeout_ms)
			return false;
		rpc_reply_error(w->call, ING_ENOTFOUND, "job %" PRIu64 " does not exist", w->job);
		return true;
	}
	if (rv != 0 || rec_job_decode(val, z, &j, NULL) != 0) {
		rpc_reply_error(w->call, rv != 0 ? rv : ING_ECORRUPT, "cannot read job %" PRIu64,
		                w->job);
		return true;
	}
	mp_out_init(&o);
	while (w->next_seq < j.nevents) {
		struct rec_event ev;
		store_be32(k + 8, w->next_seq);
		if (store_get(t, STORE_EVENTS, (struct ing_str){(const char *)k, 12}, &val) != 0 ||
		    rec_event_decode(val, z, &ev, NULL) != 0) {
			mp_out_free(&o);
			rpc_reply_error(w->call, ING_ECORRUPT,
			                "cannot read the events of job %" PRIu64, w->job);
			return true;
		}
		mp_out_reset(&o);
		view_event(&o.pk, w->next_seq, &ev);
		if (rpc_push(w->call, o.data, o.len) != 0)
			break; /* connection gone: on_abandon ends the watch */
		w->next_seq++;
	}
	if (w->next_seq == j.nevents && rec_job_state_final(j.state)) {
		mp_out_reset(&o);
		view_job(&o.pk, &j, true, sched_reason(node_sched(a->n), j.id, j.target));
		rpc_reply(w->call, o.data, o.len);
		mp_out_free(&o);
		return true;
	}
	mp_out_free(&o);
	return false;
}

void api_watch_poll(struct api *a)
{
	struct store_txn *t;
	msgpack_zone z;

	if (a->watches == NULL || store_read_begin(node_store(a->n), &t) != 0)
		return;
	msgpack_zone_init(&z, 4096);
	for (struct api_watch **pp = &a->watches; *pp != NULL;) {
		struct api_watch *w = *pp;
		if (poll_one(a, w, t, &z)) {
			*pp = w->next;
			free(w);
		} else {
			pp = &w->next;
		}
		msgpack_zone_clear(&z);
	}
	msgpack_zone_destroy(&z);
	store_abort(t);
}

void api_watch_start(struct api *a, struct rpc_call *call, uint64_t job)
{
	struct api_watch *w = calloc(1, sizeof(*w));
	if (w == NULL) {
		rpc_reply_error(call, ING_ENOMEM, "out of memory");
		return;
	}
	w->a = a;
	w->call = call;
	w->job = job;
	w->started_ms = node_now_ms();
	if (rpc_call_on_abandon(call, on_abandon, w) != 0) {
		rpc_reply_error(call, ING_EUNAVAILABLE, "client went away");
		free(w);
		return;
	}
	w->next = a->watches;
	a->watches = w;
	if (store_batch_pending(node_store(a->n)) == 0)
		api_watch_poll(a);
}

void api_watch_close_all(struct api *a)
{
	while (a->watches != NULL) {
		struct api_watch *w = a->watches;
		a->watches = w->next;
		rpc_reply_error(w->call, ING_EUNAVAILABLE, "node %" PRIu64 " is shutting down",
		                node_id(a->n));
		free(w);
	}
}
