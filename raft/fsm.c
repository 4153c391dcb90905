/*
 * fsm.c - the struct raft_fsm glue between libraft 0.15 and cons_callbacks.
 *
 * Happy path: libraft calls apply for each committed RAFT_COMMAND entry in
 * log order; the glue computes the entry's index as raft_last_applied + 1
 * (libraft sets last_applied only after apply returns), calls cb.apply,
 * then either hands the result to `claim` (a local proposer waits at that
 * index) or frees it with cb.free_result (entries proposed by other nodes,
 * or by a proposer already failed).  libraft's own result is always NULL.
 *
 * Snapshots: with the libuv backend the fsm is version 3: snapshot() runs
 * cb.snapshot_prepare on the loop (the node commits its apply batch), then
 * libraft runs snapshot_async() on a pool thread, which asks cb.snapshot
 * for one malloc'd buffer and lends it to libraft, so the loop never waits
 * for the copy.  Under raft_fixture (no async work) it is version 2 and the
 * copy happens in snapshot() on the loop.  snapshot_finalize() frees the
 * buffer once libraft has written it (or failed to).
 * restore() hands libraft's buffer to cb.restore and frees it on success.
 * With cb.snapshot_sync (reference mode, raft/snapref.c) snapshot() syncs
 * the state on the loop and returns a 16-byte reference instead of a copy,
 * and restore() of a reference only checks that the state holds its index
 * (cb.state_index); a full copy installed from a leader is restored as
 * above.
 *
 * Invariants:
 *  - indexes given to cb.apply strictly increase between restores;
 *  - a result is either taken by `claim` or freed here, never both, never
 *    leaked;
 *  - after the first fatal failure, cb.apply and cb.restore are never called
 *    again, and the failure is reported exactly once.
 *
 * Failure modes:
 *  - cb.apply returns non-zero: fatal.  The error goes back to libraft,
 *    which never advances last_applied past the entry: on a follower 0.15
 *    then turns the node RAFT_UNAVAILABLE (recv error path); on a leader it
 *    stalls applying.  Either way the node must be stopped; apply callbacks
 *    must record a bad command's error as its result instead.
 *  - cb.restore returns non-zero: fatal (the state may be half replaced);
 *    libraft keeps ownership of the buffer and frees it.
 *  - cb.snapshot returns non-zero: logged, and RAFT_BUSY is returned so
 *    libraft retries at a later apply instead of stopping the node.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <time.h>

#include "common/log.h"
#include "raft/cons_internal.h"
#include "raft/fsm.h"

static void fsm_fail(struct cons_fsm *f, int code, const char *message)
{
	if (f->failed) {
		return;
	}
	f->failed = true;
	f->fatal_code = code;
	ING_LOG_ERROR("raft fsm failed raft_node=%" PRIu64 " code=%s msg=\"%s\"", f->node_id,
	              ing_err_name(code), message);
	if (f->on_fatal != NULL) {
		f->on_fatal(f->owner, code, message);
	} else if (f->cb.fatal != NULL) {
		f->cb.fatal(f->cb.data, code, message);
	}
}

static void fsm_free_result(struct cons_fsm *f, void *result)
{
	if (result == NULL) {
		return;
	}
	if (f->cb.free_result != NULL) {
		f->cb.free_result(f->cb.data, result);
	} else {
		free(result);
	}
}

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* After each snapshot: the threshold stays raised for snap_interval_ms. */
static void pace_snapshots(struct cons_fsm *f)
{
	if (f->snap_interval_ms <= 0 || f->raft == NULL)
		return;
	raft_set_snapshot_threshold(f->raft, f->snap_cap);
	f->snap_held_until_ms = now_ms() + f->snap_interval_ms;
}

static int fsm_apply(struct raft_fsm *fsm, const struct raft_buffer *buf, void **result)
{
	struct cons_fsm *f = fsm->data;
	uint64_t index = (uint64_t)raft_last_applied(f->raft) + 1;
	void *res = NULL;
	int rv;

	*result = NULL;
	if (f->failed) {
		return RAFT_IOERR;
	}
	/* libraft checks its threshold after applying what committed. */
	if (f->snap_held_until_ms > 0 && now_ms() >= f->snap_held_until_ms) {
		raft_set_snapshot_threshold(f->raft, f->snap_threshold);
		f->snap_held_until_ms = 0;
	}
	if (!f->after_restore && f->last_index != 0 && index <= f->last_index) {
		/* libraft re-applying or skipping back: worth a loud line, the
		 * store's own last-applied index protects the state. */
		ING_LOG_ERROR("raft apply index went back raft_node=%" PRIu64 " index=%" PRIu64
		              " last=%" PRIu64,
		              f->node_id, index, f->last_index);
	}
	rv = f->cb.apply(f->cb.data, index, buf->base, buf->len, &res);
	if (rv != 0) {
		char msg[96];
		fsm_free_result(f, res);
		snprintf(msg, sizeof(msg), "apply failed at index %" PRIu64, index);
		fsm_fail(f, rv, msg);
		return RAFT_IOERR;
	}
	f->last_index = index;
	f->after_restore = false;
	f->n_applied++;
	if (f->claim == NULL || !f->claim(f->owner, index, res))
		fsm_free_result(f, res);
	return 0;
}

/* Copies the state (cb.snapshot) into bufs: on the loop (version 2) or on
 * a pool thread (version 3, fsm_snapshot_async). */
static int copy_state(struct cons_fsm *f, struct raft_buffer *bufs[], unsigned *n_bufs,
                      const char *where)
{
	struct raft_buffer *b;
	void *data = NULL;
	size_t len = 0;
	double t0 = now_ms();
	int rv = f->cb.snapshot(f->cb.data, &data, &len);
	if (rv != 0) {
		ING_LOG_WARN("raft snapshot export failed raft_node=%" PRIu64 " code=%s",
		             f->node_id, ing_err_name(rv));
		return RAFT_BUSY;
	}
	b = malloc(sizeof(*b));
	if (b == NULL) {
		free(data);
		return RAFT_BUSY;
	}
	b->base = data;
	b->len = len;
	*bufs = b;
	*n_bufs = 1;
	f->n_snapshots++;
	ING_LOG_INFO("raft snapshot taken raft_node=%" PRIu64 " bytes=%zu copy_ms=%.2f on=%s",
	             f->node_id, len, now_ms() - t0, where);
	return 0;
}

/* Reference mode: make the state durable and hand libraft a reference. */
static int take_reference(struct cons_fsm *f, struct raft_buffer *bufs[], unsigned *n_bufs)
{
	struct raft_buffer *b;
	uint64_t index = 0;
	double t0 = now_ms();
	int rv = f->cb.snapshot_sync(f->cb.data, &index);

	if (rv != 0) {
		ING_LOG_WARN("raft snapshot sync failed raft_node=%" PRIu64 " code=%s", f->node_id,
		             ing_err_name(rv));
		return RAFT_BUSY;
	}
	b = malloc(sizeof(*b));
	if (b == NULL || cons_snapref_encode(index, b) != 0) {
		free(b);
		return RAFT_BUSY;
	}
	*bufs = b;
	*n_bufs = 1;
	f->n_snapshots++;
	double ms = now_ms() - t0;
	cons_metrics_snapshot(ms / 1e3); /* a reference is done once synced */
	ING_LOG_INFO("raft snapshot taken raft_node=%" PRIu64 " reference=%" PRIu64 " sync_ms=%.2f",
	             f->node_id, index, ms);
	return 0;
}

static int fsm_snapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n_bufs)
{
	struct cons_fsm *f = fsm->data;

	if (f->failed)
		return RAFT_BUSY;
	if (f->refs) {
		int rv = take_reference(f, bufs, n_bufs);
		if (rv == 0)
			pace_snapshots(f);
		return rv;
	}
	if (f->cb.snapshot_prepare != NULL && f->cb.snapshot_prepare(f->cb.data) != 0)
		return RAFT_BUSY;
	f->snapshot_started_ms = now_ms();
	pace_snapshots(f);
	if (f->async) {
		/* The copy happens in fsm_snapshot_async, off the loop. */
		*bufs = NULL;
		*n_bufs = 0;
		return 0;
	}
	return copy_state(f, bufs, n_bufs, "loop");
}

/* Version 3: on a libuv pool thread while the loop goes on. */
static int fsm_snapshot_async(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n_bufs)
{
	return copy_state(fsm->data, bufs, n_bufs, "thread");
}

/* Version 2: libraft is done with what fsm_snapshot lent it. */
static int fsm_snapshot_finalize(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n_bufs)
{
	struct cons_fsm *f = fsm->data;
	unsigned i;
	if (f->snapshot_started_ms > 0) {
		cons_metrics_snapshot((now_ms() - f->snapshot_started_ms) / 1e3);
		f->snapshot_started_ms = 0;
	}
	if (*bufs != NULL) {
		for (i = 0; i < *n_bufs; i++) {
			free((*bufs)[i].base);
		}
		free(*bufs);
	}
	*bufs = NULL;
	*n_bufs = 0;
	return 0;
}

/* A reference names state the store must already hold: nothing to load. */
static int restore_reference(struct cons_fsm *f, struct raft_buffer *buf, uint64_t ref)
{
	char msg[256];
	uint64_t held = 0;
	int rv = f->refs ? f->cb.state_index(f->cb.data, &held) : 0;

	if (rv != 0 || !f->refs || held < ref) {
		if (rv == 0 && !f->refs)
			snprintf(msg, sizeof(msg),
			         "snapshot is a reference to index %" PRIu64
			         " but this state machine keeps no durable state",
			         ref);
		else if (rv == 0)
			snprintf(msg, sizeof(msg),
			         "the state holds index %" PRIu64 ", behind the snapshot's %" PRIu64
			         ": its files were lost or rolled back; remove this node's data "
			         "directory and add it to the cluster again",
			         held, ref);
		else
			snprintf(msg, sizeof(msg), "cannot read the state's index: %s",
			         ing_err_name(rv));
		fsm_fail(f, rv != 0 ? rv : ING_ECORRUPT, msg);
		return RAFT_IOERR; /* libraft frees buf->base */
	}
	raft_free(buf->base);
	f->after_restore = true;
	f->n_ref_restored++;
	if (ref > f->ref_restored)
		f->ref_restored = ref;
	ING_LOG_INFO("raft snapshot reference checked raft_node=%" PRIu64 " reference=%" PRIu64
	             " state=%" PRIu64,
	             f->node_id, ref, held);
	return 0;
}

static int fsm_restore(struct raft_fsm *fsm, struct raft_buffer *buf)
{
	struct cons_fsm *f = fsm->data;
	uint64_t ref;
	int rv;

	if (f->failed) {
		return RAFT_IOERR;
	}
	if (cons_snapref_decode(buf->base, buf->len, &ref)) {
		return restore_reference(f, buf, ref);
	}
	rv = f->cb.restore(f->cb.data, buf->base, buf->len);
	if (rv != 0) {
		fsm_fail(f, rv, "snapshot restore failed");
		return RAFT_IOERR; /* libraft frees buf->base */
	}
	raft_free(buf->base);
	f->after_restore = true;
	f->n_restored++;
	ING_LOG_INFO("raft snapshot restored raft_node=%" PRIu64 " bytes=%zu", f->node_id,
	             buf->len);
	return 0;
}

void cons_fsm_init(struct cons_fsm *f, uint64_t node_id, const struct cons_callbacks *cb,
                   bool async)
{
	*f = (struct cons_fsm){0};
	f->refs = cb->snapshot_sync != NULL && cb->state_index != NULL;
	f->async = async && !f->refs; /* references are taken on the loop */
	f->fsm.version = f->async ? 3 : 2;
	if (f->async)
		f->fsm.snapshot_async = fsm_snapshot_async;
	f->fsm.data = f;
	f->fsm.apply = fsm_apply;
	f->fsm.snapshot = fsm_snapshot;
	f->fsm.restore = fsm_restore;
	f->fsm.snapshot_finalize = fsm_snapshot_finalize;
	f->cb = *cb;
	f->node_id = node_id;
}
