/*
 * fsm.h - private to raft/ (and its tests): the struct raft_fsm that libraft
 * 0.15 calls, glued to the cons_callbacks of the layer above.
 *
 * The glue works with any struct raft, whether driven by the libuv backend
 * (consensus.c) or by raft_fixture in tests: the owner embeds a cons_fsm,
 * calls cons_fsm_init, passes &fsm.fsm to raft_init (or raft_fixture_grow),
 * and sets fsm.raft right after, before raft_start.
 *
 * What it adds to the raw callbacks:
 *  - the index of each applied entry, raft_last_applied(r) + 1 (0.15 does
 *    not pass it);
 *  - result routing: a result goes to `claim`, which takes it when a local
 *    proposer waits at that index; otherwise it is released with
 *    cb.free_result at once.  libraft's raft_apply callbacks always get
 *    NULL: 0.15 calls a multi-entry raft_apply back once, with the result
 *    of its first entry only;
 *  - fatal failures (apply or restore returning non-zero) reported once,
 *    through `on_fatal` when set (consensus.c defers it to the loop), else
 *    straight to cb.fatal;
 *  - snapshots in version 2 (synchronous, with snapshot_finalize): the
 *    malloc'd buffer from cb.snapshot is handed to libraft without a copy and
 *    freed with free() in snapshot_finalize; restore hands libraft's buffer
 *    to cb.restore and releases it with raft_free on success (libraft frees
 *    it itself when restore fails);
 *  - reference snapshots when cb.snapshot_sync is set (raft/snapref.c):
 *    only with an io whose snapshot_get turns a reference into a copy
 *    (cons_snapref_wrap, which consensus.c installs on the uv backend);
 *    under raft_fixture, leave snapshot_sync NULL.
 */
#ifndef INGOT_RAFT_FSM_H
#define INGOT_RAFT_FSM_H

#include <stdbool.h>
#include <stdint.h>

#include <raft.h>

#include "raft/consensus.h"

struct cons_fsm {
	struct raft_fsm fsm; /* handed to libraft; fsm.data points to this struct */
	struct raft *raft;   /* set by the owner after raft_init, before raft_start */
	struct cons_callbacks cb;
	uint64_t node_id; /* for logs */

	/* Offers the result of the entry at index to a local proposer: true
	 * when one waits for it and took the result (libraft then gets NULL),
	 * false to have it released with cb.free_result.  NULL: never. */
	bool (*claim)(void *owner, uint64_t index, void *result);
	/* First fatal failure; NULL: cb.fatal is called directly. */
	void (*on_fatal)(void *owner, int code, const char *message);
	void *owner;

	/* State, read-only for owners. */
	bool failed;                /* apply or restore failed: every later apply fails */
	int fatal_code;             /* ING_E* of the first failure, 0 if none */
	uint64_t last_index;        /* index of the last successful apply, 0: none */
	bool async;                 /* version 3: the copy runs on a pool thread */
	bool refs;                  /* reference snapshots (cb.snapshot_sync set) */
	uint64_t n_ref_restored;    /* references checked at restore */
	uint64_t ref_restored;      /* highest index a checked reference named, 0: none */
	bool after_restore;         /* the next index follows a snapshot, not last_index */
	uint64_t n_applied;         /* entries applied */
	uint64_t n_restored;        /* snapshots restored */
	uint64_t n_snapshots;       /* snapshots taken */
	double snapshot_started_ms; /* the snapshot in progress began (monotonic), 0: none */

	/* Snapshot pacing, set by the owner (snap_interval_ms 0: none): each
	 * snapshot raises libraft's threshold from snap_threshold to snap_cap
	 * entries for snap_interval_ms, so that under a stream of writes a
	 * node takes at most one snapshot per interval unless snap_cap entries
	 * pile up first.  Every snapshot closes libraft's open log segment and
	 * writes, syncs and deletes files while appends wait for the same disk
	 * (docs/performance.md). */
	unsigned snap_threshold;
	unsigned snap_cap;
	double snap_interval_ms;
	double snap_held_until_ms; /* monotonic; 0: the threshold is not raised */
};

/* Fills f for cb (copied); claim/on_fatal/owner/raft are left NULL. */
/* async: the io supports async work (libuv backend): fsm version 3, the
 * state copied on a pool thread.  Otherwise version 2, on the loop. */
void cons_fsm_init(struct cons_fsm *f, uint64_t node_id, const struct cons_callbacks *cb,
                   bool async);

#endif
