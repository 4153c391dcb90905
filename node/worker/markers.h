/*
 * markers.h - the worker's record of the attempts this node started, on
 * disk, so that an attempt runs at most once on a node whatever its store
 * says after a crash (node/worker/worker.c explains why the store alone
 * cannot tell).
 *
 * One journal file (data_dir/work/started.journal, docs/formats.md) of
 * fixed-size records appended behind a header: an attempt is recorded by
 * worker_markers_add (in memory) and made durable by worker_markers_sync,
 * which writes every record added since the last sync with one write and
 * one fdatasync (the attempts a poll starts share one).  Removing a marker
 * changes only the set in memory: a record of a removed marker that comes
 * back after a crash names an attempt no longer assigned here, which the
 * first poll after the start removes again.  The file is emptied (back to
 * its header) when no marker is live, and compacted (the live records
 * written to a temporary file, synced, renamed over the journal) when it
 * holds WORKER_MARKERS_COMPACT_AT records no longer live.
 *
 * A torn record at the end (a crash in the middle of an append: never
 * synced, so never acted on) is cut off when the journal is opened; a
 * record whose check does not match, or a header that is not ours, makes
 * the open fail (the node must not guess which attempts it started).
 * Markers of the layout before the journal (an empty file per attempt in
 * data_dir/work/started/<job>-a<attempt>) are taken into the journal when
 * it is opened, then removed.
 *
 * Single-threaded: the loop thread of the node.
 */
#ifndef INGOT_NODE_WORKER_MARKERS_H
#define INGOT_NODE_WORKER_MARKERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define WORKER_MARKERS_FILE       "started.journal"
#define WORKER_MARKERS_LEGACY_DIR "started"
#define WORKER_MARKERS_HEADER     "INGMRK1\n" /* 8 bytes */
#define WORKER_MARKERS_RECORD     16u         /* job u64, attempt u32, check u32; LE */
#define WORKER_MARKERS_COMPACT_AT 256u

struct worker_markers;

/* Opens (creating it and `work_dir` if needed) the journal of `work_dir`
 * and loads its markers, the legacy ones included.  0; ING_EIO (a file
 * cannot be read, written or synced), ING_EMALFORMED (a bad header or
 * record: e names the file and the offset) or ING_ENOMEM, with e (may be
 * NULL) saying which. */
int worker_markers_open(const char *work_dir, struct worker_markers **out, struct ing_error *e);

/* Closes the journal and frees the set; markers not synced are dropped. */
void worker_markers_close(struct worker_markers *m);

/* Whether (job, attempt) is marked (synced or not). */
bool worker_markers_has(const struct worker_markers *m, uint64_t job, uint32_t attempt);

/* Marks (job, attempt), in memory until the next worker_markers_sync:
 * 0, 1 when it was marked already, or ING_ENOMEM. */
int worker_markers_add(struct worker_markers *m, uint64_t job, uint32_t attempt);

/* Makes every marker added since the last sync durable: one write, one
 * fdatasync.  0 (also when there was nothing to write), or ING_EIO: then
 * none of those markers is kept (the caller must not run their attempts),
 * and the journal is cut back to its length before the write. */
int worker_markers_sync(struct worker_markers *m, struct ing_error *e);

/* Removes the marker of (job, attempt) if there is one; may compact the
 * journal (a failure there is logged; the journal stays valid). */
void worker_markers_remove(struct worker_markers *m, uint64_t job, uint32_t attempt);

/* The live markers, for a sweep: count, and the i-th (0 <= i < count).
 * Removing one moves the last into its place. */
size_t worker_markers_count(const struct worker_markers *m);
void worker_markers_at(const struct worker_markers *m, size_t i, uint64_t *job, uint32_t *attempt);

/* Records in the journal file, live or not (tests, logs). */
size_t worker_markers_records(const struct worker_markers *m);

#endif
