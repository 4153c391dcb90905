/*
 * store.h - the replicated state in LMDB.
 *
 * One LMDB environment per node: a single file `<dir>/state.mdb` holding the
 * named tables below (docs/formats.md describes every key and value).  The
 * store knows nothing of Raft or the network; it offers transactions over
 * raw keys and values, the meta helpers (schema version, applied index, id
 * counters), batching of many applies into one write transaction, and
 * snapshot export/import.
 *
 * Failure: a failed commit, a failed sync, a full map or a corrupt record
 * means the state on disk can no longer be trusted.  Such failures are
 * sticky: the store enters the failed state, every later call returns the
 * same error, and the daemon stops (it never serves from such state).
 * Not-found and similar conditions are ordinary returns and not sticky.
 *
 * Threading: one thread (the node's loop) uses a store.  Only one write
 * transaction may be open at a time (LMDB's rule).
 */
#ifndef INGOT_STORAGE_STORE_H
#define INGOT_STORAGE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/str.h"

/* The schema version this binary writes.  See storage/migrate.c. */
#define STORE_SCHEMA_VERSION 7

/* Meta u64 values: the jobs in the store in each state, this prefix + the
 * state's name (rec_job_state_name: "jobs_queued" ... "jobs_cancelled");
 * kept by the state machine's apply, set by the 6 -> 7 migration. */
#define STORE_META_JOBS_PREFIX "jobs_"

enum store_table {
	STORE_META = 0,    /* name -> u64 or bytes (schema, applied index, counters, cluster id) */
	STORE_MEMBERS,     /* member id (u64 BE) -> member record */
	STORE_NODES,       /* node id (u64 BE) -> node record */
	STORE_TARGETS,     /* target name -> target record */
	STORE_JOBS,        /* job id (u64 BE) -> job record */
	STORE_QUEUE,       /* (target, 0x00, 100 - priority u8, tenant, 0x00, job id u64 BE)
	                    * -> (attempt u32 BE, lost u32 BE, queued_at_ms u64 BE) */
	STORE_ASSIGNMENTS, /* (node id u64 BE, job id u64 BE) -> attempt (u32 BE) */
	STORE_EVENTS,      /* (job id u64 BE, seq u32 BE) -> event record */
	STORE_ARTIFACTS,   /* sha256 (32 bytes) -> artifact manifest */
	STORE_CHUNKS,      /* sha256 (32 bytes) -> chunk record */
	STORE_DEDUPE,      /* client request id -> dedupe record */
	STORE_TOKENS,      /* sha256 of token (32 bytes) -> token record */
	/* since schema 7: */
	STORE_SOURCES,    /* job id (u64 BE) -> the job's inline sources record */
	STORE_FINISHED,   /* (finished_at_ms u64 BE, job id u64 BE) -> empty */
	STORE_DEDUPE_ALT, /* client request id -> dedupe record (the other generation) */
	STORE_TABLE_COUNT
};

/* LMDB name of a table ("jobs"). */
const char *store_table_name(enum store_table t);
/* The schema version that introduced table t (1 for the first tables). */
unsigned store_table_since(enum store_table t);

enum store_sync {
	STORE_SYNC_FULL = 0, /* fsync data and meta on every commit */
	STORE_SYNC_NOMETA,   /* MDB_NOMETASYNC: a crash may undo the last commit */
	STORE_SYNC_NONE,     /* MDB_NOSYNC: tests and benchmarks only */
};

struct store_options {
	uint64_t map_size_bytes; /* initial LMDB map; 0: default 1 GiB */
	uint64_t map_max_bytes;  /* ceiling the map grows to; 0: default 64 GiB */
	/* store_space_low() turns true when the pages in use come within
	 * this of the ceiling; 0: default ceiling / 8, at least 16 MiB */
	uint64_t reserve_bytes;
	enum store_sync sync;
	unsigned batch_max; /* applies per batched transaction; 0: default 1024 */
};

struct store;
struct store_txn;

/*
 * Opens (creating if needed) the store in directory `dir`, which must exist.
 * A fresh store is stamped with STORE_SCHEMA_VERSION; an older one is
 * migrated forward in one transaction; a newer one is refused.
 * `opts` may be NULL for defaults.  On success *out is owned by the caller.
 * Errors: ING_ENEWER, ING_ECORRUPT, ING_EIO, ING_ENOSPACE, ING_ENOMEM,
 * ING_EVERSION (schema older than any known migration), each with a message
 * in e naming the file.
 */
int store_open(const char *dir, const struct store_options *opts, struct store **out,
               struct ing_error *e);
/* Aborts any open batch and closes.  NULL is allowed. */
void store_close(struct store *s);

/* Reports this store's map size and use in the process's metrics (the
 * node's own store; docs/operations.md "Metrics") until it is closed. */
void store_metrics_attach(struct store *s);

/* Path of the LMDB file (borrowed, lives as long as s). */
const char *store_path(const struct store *s);
/* The sticky failure, 0 when healthy. */
int store_failed(const struct store *s);

/* LMDB's version, "0.9.24": as the library reports it at run time
 * (mdb_version) and as the header this build was compiled against says.
 * Each buffer holds at least `cap` bytes. */
void store_lmdb_version(char *running, char *built, size_t cap);

/* ---- transactions ----------------------------------------------------- */

/*
 * A read-only view of every applied entry.  With no batch open, a snapshot
 * of the committed state (an LMDB read txn); with the batch open, a view
 * of the batch itself (its uncommitted applies included), so a read never
 * needs a commit first.  A view must be ended (store_abort/store_commit)
 * before the next apply or batch commit on this thread; the batch refuses
 * to commit while one is open (ING_ECONFLICT).  Release with store_abort.
 */
int store_read_begin(struct store *s, struct store_txn **out);
/* The single write transaction.  ING_ECONFLICT if one is already open. */
int store_write_begin(struct store *s, struct store_txn **out);
/* Commits a write txn (or ends a read txn) and frees t.  A failed commit of
 * a write txn is sticky. */
int store_commit(struct store_txn *t);
/* Discards t.  NULL is allowed. */
void store_abort(struct store_txn *t);
struct store *store_txn_store(struct store_txn *t);

/*
 * Reads key in table.  *val is a view into LMDB's memory, valid until the
 * next put/del in this transaction or its end: copy it before writing.
 * ING_ENOTFOUND when absent.
 */
int store_get(struct store_txn *t, enum store_table tbl, struct ing_str key, struct ing_str *val);
int store_put(struct store_txn *t, enum store_table tbl, struct ing_str key, struct ing_str val);
/* ING_ENOTFOUND when absent (not sticky). */
int store_del(struct store_txn *t, enum store_table tbl, struct ing_str key);

/* Deletes every entry of a table (LMDB mdb_drop, keeping the table): as
 * one write, so a batch sees the table empty at once.  Errors as store_put. */
int store_clear(struct store_txn *t, enum store_table tbl);

/* Iteration in key order from the first key >= start (start.len 0: first). */
struct store_iter;
int store_iter_open(struct store_txn *t, enum store_table tbl, struct ing_str start,
                    struct store_iter **out);
/* 0 and views valid until the next call, or ING_ENOTFOUND at the end. */
int store_iter_next(struct store_iter *it, struct ing_str *key, struct ing_str *val);
void store_iter_close(struct store_iter *it);
/* Number of entries in a table. */
int store_count(struct store_txn *t, enum store_table tbl, uint64_t *out);

/* ---- meta ------------------------------------------------------------- */

int store_meta_get_u64(struct store_txn *t, const char *name, uint64_t *out); /* absent: 0 */
int store_meta_put_u64(struct store_txn *t, const char *name, uint64_t v);
int store_applied_index(struct store_txn *t, uint64_t *out);
int store_set_applied_index(struct store_txn *t, uint64_t index);
/* Increments counter `name` (e.g. "next_job_id") and returns the new value
 * (first call: 1).  Deterministic: counters live in the state. */
int store_next_id(struct store_txn *t, const char *name, uint64_t *out);

/* ---- batching --------------------------------------------------------- */

/*
 * Many applies share one write transaction.  store_batch_txn() returns the
 * open batch transaction, beginning one if needed; store_batch_note() counts
 * one apply and commits when the batch is full; store_batch_flush() commits
 * whatever is open (the node calls it when the batch is due: see
 * `store_commit_interval_ms` in docs/operations.md).  Never call
 * store_commit/store_abort on the batch transaction directly.
 */
int store_batch_txn(struct store *s, struct store_txn **out);
int store_batch_note(struct store *s);
int store_batch_flush(struct store *s);
/* Applies counted in the open batch (0 when none is open). */
unsigned store_batch_pending(const struct store *s);

/*
 * Commits the open batch, if any, forces everything committed to disk
 * (whatever the sync mode) and sets *applied to the applied index the store
 * now holds on disk.  No caller's write txn may be open (ING_ECONFLICT).
 * A failed commit or sync is sticky.
 */
int store_sync(struct store *s, uint64_t *applied);

/* ---- space ------------------------------------------------------------ */

/*
 * The map grows by itself: after every batch commit (and at open), when
 * less than max(half the map, 64 MiB) is left above the file's high-water
 * mark, the map doubles (at least to the mark plus that margin), never past
 * map_max_bytes.  Growth
 * waits while a read txn is open or a copy (store_snapshot_copy_buf) runs.
 * A write that finds the map full still fails the store for good
 * (ING_ENOSPACE): the node must stop taking new work before that, using
 * store_space_low().
 */
struct store_space {
	uint64_t map_bytes;  /* the map now */
	uint64_t max_bytes;  /* its ceiling */
	uint64_t file_bytes; /* high-water mark of the file (pages ever used) */
	uint64_t free_bytes; /* pages below the mark on LMDB's free list */
	uint64_t used_bytes; /* file_bytes - free_bytes */
};
/* Measures now (walks LMDB's free list in a read txn). */
int store_space(struct store *s, struct store_space *out);
/*
 * True when used_bytes + reserve_bytes >= max_bytes, as of the last batch
 * commit (or open): the node should refuse work that adds state
 * (no_space) and keep serving reads and finishing running work; it turns
 * false again when deletions free pages.  Cheap: no I/O.
 */
bool store_space_low(const struct store *s);

/* ---- snapshots -------------------------------------------------------- */

/*
 * Writes a consistent compacted copy of the committed state to `path` (a new
 * file) and returns the applied index it contains.  The open batch, if any,
 * is flushed first so that the copy holds every applied entry.
 */
int store_snapshot_export(struct store *s, const char *path, uint64_t *index);
/* Same, into a malloc'd buffer owned by the caller. */
int store_snapshot_export_buf(struct store *s, void **buf, size_t *len, uint64_t *index);

/*
 * Copies the committed state into a malloc'd buffer, like
 * store_snapshot_export_buf, but touching nothing of the store except its
 * LMDB environment, so it may run on another thread while the store's own
 * thread goes on applying and committing.  It does not flush the batch:
 * flush first (on the store's thread) so the copy holds at least every
 * entry applied so far; it may hold more (whatever committed meanwhile),
 * and its applied index says exactly what.  ING_EIO, ING_ENOMEM.
 */
int store_snapshot_copy_buf(struct store *s, void **buf, size_t *len);

/*
 * Replaces the state with the snapshot file at `path` when its applied
 * index is greater than the store's; otherwise leaves both unchanged and
 * sets *replaced to false.  The snapshot is checked first (opens as LMDB,
 * has a known schema version); on success the file at `path` is consumed
 * (renamed into place).  No transaction may be open.  ING_ECORRUPT,
 * ING_ENEWER, ING_EIO.
 */
int store_snapshot_import(struct store *s, const char *path, bool *replaced, struct ing_error *e);
/* Same from a buffer (written to a temporary file in the store's dir). */
int store_snapshot_import_buf(struct store *s, const void *buf, size_t len, bool *replaced,
                              struct ing_error *e);
/*
 * The highest applied index of any snapshot that store_snapshot_import*
 * found valid since the store was opened, replaced or not (0: none).  A
 * snapshot's content may be newer than the Raft index it was taken at (the
 * copy runs while applies go on), so a node restored from one holds
 * entries its Raft log may not hold yet: this says how far a snapshot,
 * rather than the log, accounts for the store.
 */
uint64_t store_snapshot_seen_index(const struct store *s);

/* ---- keys ------------------------------------------------------------- */

/* Big-endian u64/u32 keys so that LMDB's byte order is numeric order. */
void store_be64(uint8_t out[8], uint64_t v);
uint64_t store_get_be64(const void *p);
void store_be32(uint8_t out[4], uint32_t v);
uint32_t store_get_be32(const void *p);

/*
 * Drops this process's mapping of the store file's pages (MADV_DONTNEED on
 * LMDB's read-only map): the pages stay in the kernel's page cache and the
 * next read maps them again (a minor fault).  Lowers the node's resident
 * set after a burst of writes; changes nothing in the store.  Safe with
 * transactions open (writes do not go through the map).  0, or ING_EIO
 * when /proc/self/maps or a madvise failed (nothing lost either way).
 */
int store_release_pages(struct store *s);

#endif
