/*
 * store_internal.h - the store's private state, shared by the files of
 * storage/ only (store.c, migrate.c, snapshot.c, artifact.c).  Never include
 * it from outside storage/.
 *
 * Invariants of struct store:
 *  - env is open and dbi[] holds every table, except transiently inside
 *    store_snapshot_import while the file is being replaced (env == NULL
 *    there, and again if reopening failed, in which case failed != 0).
 *  - write_txn is the one open write transaction (a caller's or the batch),
 *    batch is either NULL or equal to write_txn.
 *  - a read txn begun while the batch is open is a view of the batch (same
 *    MDB txn, never ended by itself); the batch does not commit while a
 *    view is open (nviews > 0).
 *  - failed, once non-zero, never goes back to 0: every entry point checks
 *    it first and returns it.
 */
#ifndef INGOT_STORAGE_STORE_INTERNAL_H
#define INGOT_STORAGE_STORE_INTERNAL_H

#include <limits.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"
#include "storage/store.h"

#define STORE_FILE_NAME         "state.mdb"
#define STORE_DEFAULT_MAP_BYTES (1ull << 30)
#define STORE_DEFAULT_MAX_BYTES (64ull << 30)
#define STORE_MIN_RESERVE_BYTES (16ull << 20)
/* The map grows once less than max(half the map, this) is left above the
 * file's high-water mark: more than any one batch transaction writes. */
#define STORE_GROW_MARGIN_BYTES (64ull << 20)
#define STORE_DEFAULT_BATCH_MAX 1024u
#define STORE_META_SCHEMA       "schema_version"
#define STORE_META_APPLIED      "applied_index"

struct store {
	char dir[PATH_MAX];
	char path[PATH_MAX];       /* <dir>/state.mdb */
	struct store_options opts; /* defaults resolved */
	MDB_env *env;
	MDB_dbi dbi[STORE_TABLE_COUNT];
	/* Tables of a later schema than the store's, not created yet (only
	 * between open and the migration's commit). */
	bool dbi_missing[STORE_TABLE_COUNT];
	int failed;                  /* sticky ING_E* code, 0 when healthy */
	struct store_txn *write_txn; /* the open write txn, caller's or batch */
	struct store_txn *batch;     /* open batch txn or NULL */
	unsigned batch_count;        /* applies noted in the open batch */
	unsigned nread;              /* open read txns, views included */
	unsigned nviews;             /* open views of the batch (store_read_begin) */
	bool space_low;              /* store_space_low(), as of the last check */
	uint64_t space_checked_ns;   /* when the free list was last walked */
	uint64_t space_checked_file; /* the file's high-water mark then */
	/* Held by store_snapshot_copy_buf (any thread) for its whole copy;
	 * map growth only try-locks it, so it never remaps under a copy. */
	pthread_mutex_t copy_lock;
	bool metrics_attached;  /* metrics.c reports this store's map */
	uint64_t snapshot_seen; /* highest applied index of a snapshot import checked */
};

struct store_txn {
	struct store *s;
	MDB_txn *txn;
	bool is_write;
	bool is_batch;
	bool is_view;             /* a read view of the open batch: txn is the batch's */
	struct store_iter *iters; /* open iterators, closed at txn end */
};

/* metrics.c: one commit took elapsed_ns; removing the collect callback. */
void store_metrics_commit(uint64_t elapsed_ns);
void store_metrics_detach(struct store *s);

/* The one translation of LMDB return codes into ING_E* codes. */
int store_err_from_mdb(int rc);

/*
 * Enters the sticky failed state with `code` (first failure wins), logging
 * op and the file at error level.  Returns the store's failure code.
 */
int store_fail(struct store *s, int code, const char *op);

/* Corruption found at this place: logs file:line and makes it sticky. */
#define STORE_CORRUPT(s, what) \
	store_fail((s), ing_corrupt_at(__FILE__, __LINE__, (what)), "corrupt")

/*
 * Facts read from an LMDB file's meta table with a private read txn of env
 * (first checking that the file holds every page its meta page counts: a
 * truncated file is ING_ECORRUPT, never a SIGBUS):
 * *has_schema tells whether "schema_version" exists.  When need_tables is
 * true, the meta table and every table of the file's schema
 * (store_table_since) must exist (else ING_ECORRUPT); otherwise a missing meta table reads as "no
 * schema, index 0".  Errors: ING_ECORRUPT (with e naming path), ING_EIO,
 * ING_ENOMEM.
 */
int store_file_meta(MDB_env *env, const char *path, bool need_tables, bool *has_schema,
                    uint64_t *schema, uint64_t *applied, struct ing_error *e);

/*
 * Opens s->env on s->path with s->opts, opens every table, and brings the
 * schema to STORE_SCHEMA_VERSION (storage/migrate.c).  On failure env is
 * closed again (s->env == NULL).  Used by store_open and by snapshot import
 * to reopen in place.
 */
int store_env_open(struct store *s, struct ing_error *e);
/* Aborts the batch and closes the environment (no-op when closed). */
void store_env_close(struct store *s);
/* Creates, in the migration's write txn t, the tables that open left
 * missing (a later schema's); the txn's abort closes them again.  0 or a
 * sticky store error. */
int store_open_missing_tables(struct store_txn *t);
/* After a commit or at open, no txn open: grows the map if due and updates
 * space_low (store.c).  Never fails: a map that cannot grow now is retried
 * at the next commit. */
void store_space_check(struct store *s);

/* ---- migrate.c -------------------------------------------------------- */

/*
 * ING_ENEWER with a message naming path and both versions when schema is
 * newer than STORE_SCHEMA_VERSION, else 0.
 */
int store_schema_refuse_newer(const char *path, uint64_t schema, struct ing_error *e);

/*
 * Called once by store_env_open with every table open: stamps a fresh store,
 * migrates an older one forward in one write txn, refuses a newer one.
 * Errors: ING_ENEWER, ING_ECORRUPT, ING_EVERSION, and store errors.
 */
int store_schema_open(struct store *s, struct ing_error *e);

#endif
