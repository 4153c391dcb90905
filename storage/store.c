/*
 * store.c - the LMDB environment, its tables, transactions, raw get/put/del,
 * iteration, meta values, id counters and the batching of applies.
 *
 * Layout: one environment in the single file <dir>/state.mdb (MDB_NOSUBDIR,
 * lock file <dir>/state.mdb-lock) with one named database per table of
 * enum store_table, all opened once at open in one write txn.  Meta values
 * that are numbers are 8-byte big-endian u64s.
 *
 * Transactions: any number of read txns (MDB_NOTLS, so one thread may hold
 * several) and at most one write txn, which is either a caller's
 * (store_write_begin) or the batch (store_batch_txn).  The batch collects
 * many applies; it commits when batch_max applies were noted or on
 * store_batch_flush.  The state machine writes the applied index into the
 * batch itself, so the index always commits together with its applies.
 *
 * Failure modes: every LMDB code is translated in store_err_from_mdb.  A
 * failed put, del (other than not-found) or commit, a corrupt value and any
 * corruption reported by LMDB make the store fail for good (store_fail):
 * the code is logged once at error level and returned by every later call,
 * including the commit of the txn whose put failed.  Not-found, bad
 * arguments (key length outside 1..511, writes in a read txn) and a second
 * write txn (ING_ECONFLICT) are ordinary, non-sticky returns.
 */
#include "storage/store_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>

#include "common/log.h"

struct store_iter {
	struct store_txn *t;
	MDB_cursor *cur; /* NULL once the txn ended */
	enum store_table tbl;
	bool started;
	struct store_iter *next; /* in t->iters */
	uint32_t start_len;
	char start[]; /* copy of the start key */
};

static const char *const table_names[STORE_TABLE_COUNT] = {
    [STORE_META] = "meta",
    [STORE_MEMBERS] = "members",
    [STORE_NODES] = "nodes",
    [STORE_TARGETS] = "targets",
    [STORE_JOBS] = "jobs",
    [STORE_QUEUE] = "queue",
    [STORE_ASSIGNMENTS] = "assignments",
    [STORE_EVENTS] = "events",
    [STORE_ARTIFACTS] = "artifacts",
    [STORE_CHUNKS] = "chunks",
    [STORE_DEDUPE] = "dedupe",
    [STORE_TOKENS] = "tokens",
    [STORE_SOURCES] = "sources",
    [STORE_FINISHED] = "finished",
    [STORE_DEDUPE_ALT] = "dedupe_alt",
};

/* The schema that introduced each table (absent: 1). */
static const unsigned table_since[STORE_TABLE_COUNT] = {
    [STORE_SOURCES] = 7,
    [STORE_FINISHED] = 7,
    [STORE_DEDUPE_ALT] = 7,
};

/* LMDB's default maximum key size (MDB_MAXKEYSIZE). */
#define STORE_KEY_MAX 511u

const char *store_table_name(enum store_table t)
{
	if ((unsigned)t >= STORE_TABLE_COUNT)
		return "unknown";
	return table_names[t];
}

unsigned store_table_since(enum store_table t)
{
	if ((unsigned)t >= STORE_TABLE_COUNT || table_since[t] == 0)
		return 1;
	return table_since[t];
}

int store_err_from_mdb(int rc)
{
	switch (rc) {
	case MDB_SUCCESS: return 0;
	case MDB_NOTFOUND: return ING_ENOTFOUND;
	case MDB_KEYEXIST: return ING_EEXIST;
	case MDB_MAP_FULL: return ING_ENOSPACE;
	case MDB_CORRUPTED:
	case MDB_PAGE_NOTFOUND:
	case MDB_INVALID:
	case MDB_VERSION_MISMATCH: return ING_ECORRUPT;
	case MDB_BAD_VALSIZE: return ING_EINVAL;
	case ENOMEM: return ING_ENOMEM;
	case ENOSPC: return ING_ENOSPACE;
	case EEXIST: return ING_EEXIST;
	default: return ING_EIO;
	}
}

int store_fail(struct store *s, int code, const char *op)
{
	if (s->failed == 0) {
		s->failed = code;
		ING_LOG_ERROR("store failed op=%s code=%s path=%s", op, ing_err_name(code),
		              s->path);
	}
	return s->failed;
}

/* Translates rc of a failed LMDB write-path call and makes it sticky. */
static int fail_mdb(struct store *s, int rc, const char *op, enum store_table tbl)
{
	int code = store_err_from_mdb(rc);
	if (s->failed == 0)
		ING_LOG_ERROR("lmdb call failed op=%s table=%s mdb_rc=%d mdb_msg=\"%s\"", op,
		              store_table_name(tbl), rc, mdb_strerror(rc));
	return store_fail(s, code, op);
}

/* Read-path errors: corruption and I/O are sticky, the rest is returned. */
static int read_err(struct store *s, int rc, const char *op, enum store_table tbl)
{
	int code = store_err_from_mdb(rc);
	if (code == ING_ECORRUPT || code == ING_EIO)
		return fail_mdb(s, rc, op, tbl);
	return code;
}

static bool key_ok(struct ing_str key)
{
	return key.len >= 1 && key.len <= STORE_KEY_MAX;
}

static MDB_val mval(struct ing_str s)
{
	MDB_val v = {s.len, (void *)s.ptr};
	return v;
}

/* ---- environment ------------------------------------------------------ */

static void txn_release(struct store_txn *t);

/*
 * A file shorter than the pages its newest meta page says are in use: LMDB
 * maps the file and would die of SIGBUS touching a page past its end (a
 * truncated copy, a full disk during a copy).  mdb_env_open reads the two
 * meta pages with pread and maps nothing yet, so checking here, before any
 * transaction, is safe.
 */
static int check_file_size(MDB_env *env, const char *path, struct ing_error *e)
{
	MDB_envinfo info;
	MDB_stat st;
	struct stat fs;
	int fd, rc;

	rc = mdb_env_info(env, &info);
	if (rc == 0)
		rc = mdb_env_stat(env, &st);
	if (rc == 0)
		rc = mdb_env_get_fd(env, &fd);
	if (rc != 0)
		return ing_error_set(e, store_err_from_mdb(rc), "store %s: %s", path,
		                     mdb_strerror(rc));
	if (fstat(fd, &fs) != 0)
		return ing_error_set(e, ING_EIO, "store %s: fstat: %s", path, strerror(errno));
	uint64_t need = ((uint64_t)info.me_last_pgno + 1) * st.ms_psize;
	if ((uint64_t)fs.st_size < need)
		return ing_error_set(e, ING_CORRUPT("store file truncated"),
		                     "store %s is truncated: %" PRIu64 " bytes, but its pages "
		                     "in use need %" PRIu64,
		                     path, (uint64_t)fs.st_size, need);
	return 0;
}

int store_file_meta(MDB_env *env, const char *path, bool need_tables, bool *has_schema,
                    uint64_t *schema, uint64_t *applied, struct ing_error *e)
{
	MDB_txn *txn = NULL;
	MDB_dbi dbi;
	MDB_val k, v;
	uint64_t vals[2] = {0, 0};
	bool has[2] = {false, false};
	static const char *const names[2] = {STORE_META_SCHEMA, STORE_META_APPLIED};
	int rc, rv = 0;

	rv = check_file_size(env, path, e);
	if (rv != 0)
		return rv;
	rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn);
	if (rc != 0) {
		rv = ing_error_set(e, store_err_from_mdb(rc), "store %s: cannot read: %s", path,
		                   mdb_strerror(rc));
		goto out;
	}
	rc = mdb_dbi_open(txn, table_names[STORE_META], 0, &dbi);
	if (rc == MDB_NOTFOUND && !need_tables)
		goto done;
	if (rc != 0) {
		rv = ing_error_set(e, ING_CORRUPT("store meta table unreadable"),
		                   "store %s: meta table: %s", path, mdb_strerror(rc));
		goto out;
	}
	for (unsigned i = 0; i < 2; i++) {
		k.mv_data = (void *)names[i];
		k.mv_size = strlen(names[i]);
		rc = mdb_get(txn, dbi, &k, &v);
		if (rc == MDB_NOTFOUND)
			continue;
		if (rc != 0) {
			rv = ing_error_set(e, store_err_from_mdb(rc), "store %s: meta %s: %s", path,
			                   names[i], mdb_strerror(rc));
			goto out;
		}
		if (v.mv_size != 8) {
			rv = ing_error_set(e, ING_CORRUPT("meta value is not a u64"),
			                   "store %s: meta %s has %zu bytes, expected 8", path,
			                   names[i], v.mv_size);
			goto out;
		}
		has[i] = true;
		vals[i] = store_get_be64(v.mv_data);
	}
	/* A store holds the tables of its own schema: an older snapshot lacks
	 * the later ones, which opening it as the store creates. */
	for (unsigned i = 0; need_tables && i < STORE_TABLE_COUNT; i++) {
		if (has[0] && store_table_since((enum store_table)i) > vals[0])
			continue;
		rc = mdb_dbi_open(txn, table_names[i], 0, &dbi);
		if (rc != 0) {
			rv = ing_error_set(e, ING_CORRUPT("store table missing"),
			                   "%s is not an ingot store: table %s: %s", path,
			                   table_names[i], mdb_strerror(rc));
			goto out;
		}
	}
done:
	*has_schema = has[0];
	*schema = vals[0];
	*applied = vals[1];
out:
	if (txn != NULL)
		mdb_txn_abort(txn);
	return rv;
}

static unsigned sync_flags(enum store_sync sync)
{
	switch (sync) {
	case STORE_SYNC_NOMETA: return MDB_NOMETASYNC;
	case STORE_SYNC_NONE: return MDB_NOSYNC;
	case STORE_SYNC_FULL:
	default: return 0;
	}
}

/* Opens every table, creating those of a fresh store (one without a
 * schema) and those of the store's schema that are missing.  A table that
 * a later schema introduced is left unopened in an older store
 * (s->dbi_missing): the migration's own write txn creates it
 * (store_open_missing_tables), so a refused migration leaves the file as
 * it was. */
static int open_tables(struct store *s, bool has_schema, uint64_t schema, struct ing_error *e)
{
	MDB_txn *txn = NULL;
	int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
	if (rc != 0)
		goto fail;
	for (unsigned i = 0; i < STORE_TABLE_COUNT; i++) {
		bool later = has_schema && store_table_since((enum store_table)i) > schema;
		rc = mdb_dbi_open(txn, table_names[i], later ? 0 : MDB_CREATE, &s->dbi[i]);
		s->dbi_missing[i] = later && rc == MDB_NOTFOUND;
		if (s->dbi_missing[i])
			rc = 0;
		if (rc != 0) {
			mdb_txn_abort(txn);
			goto fail;
		}
	}
	rc = mdb_txn_commit(txn);
	if (rc != 0)
		goto fail;
	return 0;
fail:
	return ing_error_set(e, store_err_from_mdb(rc), "store %s: cannot open tables: %s", s->path,
	                     mdb_strerror(rc));
}

int store_env_open(struct store *s, struct ing_error *e)
{
	bool has_schema;
	uint64_t schema, applied;
	int rc, rv;

	rc = mdb_env_create(&s->env);
	if (rc != 0) {
		s->env = NULL;
		return ing_error_set(e, store_err_from_mdb(rc), "store %s: %s", s->path,
		                     mdb_strerror(rc));
	}
	rc = mdb_env_set_maxdbs(s->env, STORE_TABLE_COUNT);
	if (rc == 0)
		rc = mdb_env_set_mapsize(s->env, (size_t)s->opts.map_size_bytes);
	if (rc == 0)
		rc = mdb_env_open(s->env, s->path,
		                  MDB_NOSUBDIR | MDB_NOTLS | sync_flags(s->opts.sync),
		                  0600); /* private: data_dir may be 0711 (sandbox) */
	if (rc != 0) {
		rv = ing_error_set(e, store_err_from_mdb(rc), "store %s: cannot open: %s", s->path,
		                   mdb_strerror(rc));
		goto out;
	}
	/* Refuse a newer store before writing anything to it. */
	rv = store_file_meta(s->env, s->path, false, &has_schema, &schema, &applied, e);
	if (rv == 0 && has_schema)
		rv = store_schema_refuse_newer(s->path, schema, e);
	if (rv == 0)
		rv = open_tables(s, has_schema, schema, e);
	if (rv == 0)
		rv = store_schema_open(s, e);
out:
	if (rv != 0) {
		mdb_env_close(s->env);
		s->env = NULL;
	}
	return rv;
}

int store_open_missing_tables(struct store_txn *t)
{
	struct store *s = t->s;
	for (unsigned i = 0; i < STORE_TABLE_COUNT; i++) {
		if (!s->dbi_missing[i])
			continue;
		int rc = mdb_dbi_open(t->txn, table_names[i], MDB_CREATE, &s->dbi[i]);
		if (rc != 0)
			return fail_mdb(s, rc, "create table", (enum store_table)i);
		s->dbi_missing[i] = false;
	}
	return 0;
}

void store_env_close(struct store *s)
{
	struct store_txn *t = s->batch;
	if (t != NULL) {
		txn_release(t);
		mdb_txn_abort(t->txn);
		free(t);
	}
	if (s->env != NULL) {
		mdb_env_close(s->env);
		s->env = NULL;
	}
}

int store_open(const char *dir, const struct store_options *opts, struct store **out,
               struct ing_error *e)
{
	struct store *s;
	int rv;

	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return ing_error_set(e, ING_ENOMEM, "store %s: out of memory", dir);
	if (snprintf(s->dir, sizeof(s->dir), "%s", dir) >= (int)sizeof(s->dir) ||
	    snprintf(s->path, sizeof(s->path), "%s/%s", dir, STORE_FILE_NAME) >=
	        (int)sizeof(s->path)) {
		rv = ing_error_set(e, ING_EINVAL, "store directory path too long: %s", dir);
		goto out;
	}
	if (opts != NULL)
		s->opts = *opts;
	if (s->opts.map_max_bytes == 0)
		s->opts.map_max_bytes = STORE_DEFAULT_MAX_BYTES;
	if (s->opts.map_size_bytes == 0)
		s->opts.map_size_bytes = STORE_DEFAULT_MAP_BYTES;
	if (s->opts.map_size_bytes > s->opts.map_max_bytes)
		s->opts.map_size_bytes = s->opts.map_max_bytes;
	if (s->opts.reserve_bytes == 0) {
		s->opts.reserve_bytes = s->opts.map_max_bytes / 8;
		if (s->opts.reserve_bytes < STORE_MIN_RESERVE_BYTES)
			s->opts.reserve_bytes = STORE_MIN_RESERVE_BYTES;
	}
	pthread_mutex_init(&s->copy_lock, NULL);
	if (s->opts.batch_max == 0)
		s->opts.batch_max = STORE_DEFAULT_BATCH_MAX;
	rv = store_env_open(s, e);
	if (rv == 0)
		store_space_check(s);
out:
	if (rv != 0) {
		free(s);
		return rv;
	}
	*out = s;
	return 0;
}

void store_close(struct store *s)
{
	if (s == NULL)
		return;
	store_metrics_detach(s);
	store_env_close(s);
	pthread_mutex_destroy(&s->copy_lock);
	free(s);
}

void store_lmdb_version(char *running, char *built, size_t cap)
{
	int major, minor, patch;
	mdb_version(&major, &minor, &patch);
	snprintf(running, cap, "%d.%d.%d", major, minor, patch);
	snprintf(built, cap, "%d.%d.%d", MDB_VERSION_MAJOR, MDB_VERSION_MINOR, MDB_VERSION_PATCH);
}

const char *store_path(const struct store *s)
{
	return s->path;
}

int store_failed(const struct store *s)
{
	return s->failed;
}

/* ---- transactions ----------------------------------------------------- */

static int txn_begin(struct store *s, bool write, struct store_txn **out)
{
	struct store_txn *t;
	int rc;

	if (s->failed)
		return s->failed;
	if (write && s->write_txn != NULL)
		return ING_ECONFLICT;
	t = calloc(1, sizeof(*t));
	if (t == NULL)
		return ING_ENOMEM;
	rc = mdb_txn_begin(s->env, NULL, write ? 0 : MDB_RDONLY, &t->txn);
	if (rc != 0) {
		free(t);
		return read_err(s, rc, write ? "write_begin" : "read_begin", STORE_META);
	}
	t->s = s;
	t->is_write = write;
	if (write)
		s->write_txn = t;
	else
		s->nread++;
	*out = t;
	return 0;
}

int store_read_begin(struct store *s, struct store_txn **out)
{
	struct store_txn *t;

	if (s->failed || s->batch == NULL)
		return txn_begin(s, false, out);
	/* A view of the open batch: sees every applied entry without a
	 * commit.  Readers run between applies on the store's one thread. */
	t = calloc(1, sizeof(*t));
	if (t == NULL)
		return ING_ENOMEM;
	t->s = s;
	t->txn = s->batch->txn;
	t->is_view = true;
	s->nread++;
	s->nviews++;
	*out = t;
	return 0;
}

int store_write_begin(struct store *s, struct store_txn **out)
{
	return txn_begin(s, true, out);
}

/* Detaches t from its store and iterators; the MDB txn is ended by the caller. */
static void txn_release(struct store_txn *t)
{
	struct store *s = t->s;
	for (struct store_iter *it = t->iters; it != NULL; it = it->next) {
		if (it->cur != NULL)
			mdb_cursor_close(it->cur);
		it->cur = NULL;
		it->t = NULL;
	}
	t->iters = NULL;
	if (t->is_write) {
		s->write_txn = NULL;
		if (s->batch == t) {
			s->batch = NULL;
			s->batch_count = 0;
		}
	} else {
		s->nread--;
		if (t->is_view)
			s->nviews--;
	}
}

/* Commits or ends t whatever it is (batch included) and frees it. */
static int txn_end(struct store_txn *t)
{
	struct store *s = t->s;
	int rc, rv = 0;

	txn_release(t);
	if (!t->is_write) {
		if (!t->is_view)
			mdb_txn_abort(t->txn);
		rv = s->failed;
		goto out;
	}
	if (s->failed) {
		mdb_txn_abort(t->txn);
		rv = s->failed;
		goto out;
	}
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	rc = mdb_txn_commit(t->txn);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (rc != 0)
		rv = fail_mdb(s, rc, "commit", STORE_META);
	else
		store_metrics_commit((uint64_t)(t1.tv_sec - t0.tv_sec) * 1000000000u +
		                     (uint64_t)(t1.tv_nsec - t0.tv_nsec));
out:
	free(t);
	return rv;
}

int store_commit(struct store_txn *t)
{
	if (t->is_batch) {
		ING_LOG_ERROR("store_commit called on the batch txn path=%s", t->s->path);
		return ING_EINVAL;
	}
	return txn_end(t);
}

void store_abort(struct store_txn *t)
{
	if (t == NULL)
		return;
	if (t->is_batch) {
		ING_LOG_ERROR("store_abort called on the batch txn path=%s", t->s->path);
		return;
	}
	txn_release(t);
	if (!t->is_view)
		mdb_txn_abort(t->txn);
	free(t);
}

struct store *store_txn_store(struct store_txn *t)
{
	return t->s;
}

/* ---- get / put / del -------------------------------------------------- */

static bool table_ok(enum store_table tbl)
{
	return (unsigned)tbl < STORE_TABLE_COUNT;
}

int store_get(struct store_txn *t, enum store_table tbl, struct ing_str key, struct ing_str *val)
{
	struct store *s = t->s;
	MDB_val k = mval(key), v;
	int rc;

	if (s->failed)
		return s->failed;
	if (!table_ok(tbl) || !key_ok(key))
		return ING_EINVAL;
	rc = mdb_get(t->txn, s->dbi[tbl], &k, &v);
	if (rc != 0)
		return read_err(s, rc, "get", tbl);
	if (v.mv_size > UINT32_MAX)
		return STORE_CORRUPT(s, "value larger than 4 GiB");
	val->ptr = v.mv_data;
	val->len = (uint32_t)v.mv_size;
	return 0;
}

int store_put(struct store_txn *t, enum store_table tbl, struct ing_str key, struct ing_str val)
{
	struct store *s = t->s;
	MDB_val k = mval(key), v = mval(val);
	int rc;

	if (s->failed)
		return s->failed;
	if (!t->is_write || !table_ok(tbl) || !key_ok(key))
		return ING_EINVAL;
	rc = mdb_put(t->txn, s->dbi[tbl], &k, &v, 0);
	if (rc != 0)
		return fail_mdb(s, rc, "put", tbl);
	return 0;
}

int store_del(struct store_txn *t, enum store_table tbl, struct ing_str key)
{
	struct store *s = t->s;
	MDB_val k = mval(key);
	int rc;

	if (s->failed)
		return s->failed;
	if (!t->is_write || !table_ok(tbl) || !key_ok(key))
		return ING_EINVAL;
	rc = mdb_del(t->txn, s->dbi[tbl], &k, NULL);
	if (rc == MDB_NOTFOUND)
		return ING_ENOTFOUND;
	if (rc != 0)
		return fail_mdb(s, rc, "del", tbl);
	return 0;
}

int store_clear(struct store_txn *t, enum store_table tbl)
{
	struct store *s = t->s;
	int rc;

	if (s->failed)
		return s->failed;
	if (!t->is_write || !table_ok(tbl))
		return ING_EINVAL;
	rc = mdb_drop(t->txn, s->dbi[tbl], 0);
	if (rc != 0)
		return fail_mdb(s, rc, "clear", tbl);
	return 0;
}

/* ---- iteration -------------------------------------------------------- */

int store_iter_open(struct store_txn *t, enum store_table tbl, struct ing_str start,
                    struct store_iter **out)
{
	struct store *s = t->s;
	struct store_iter *it;
	int rc;

	if (s->failed)
		return s->failed;
	if (!table_ok(tbl) || start.len > STORE_KEY_MAX)
		return ING_EINVAL;
	it = calloc(1, sizeof(*it) + start.len);
	if (it == NULL)
		return ING_ENOMEM;
	rc = mdb_cursor_open(t->txn, s->dbi[tbl], &it->cur);
	if (rc != 0) {
		free(it);
		return read_err(s, rc, "cursor_open", tbl);
	}
	it->t = t;
	it->tbl = tbl;
	it->start_len = start.len;
	if (start.len > 0)
		memcpy(it->start, start.ptr, start.len);
	it->next = t->iters;
	t->iters = it;
	*out = it;
	return 0;
}

int store_iter_next(struct store_iter *it, struct ing_str *key, struct ing_str *val)
{
	MDB_val k = {0, NULL}, v = {0, NULL};
	MDB_cursor_op op = MDB_NEXT;
	struct store *s;
	int rc;

	if (it->cur == NULL)
		return ING_EINVAL; /* its txn ended */
	s = it->t->s;
	if (s->failed)
		return s->failed;
	if (!it->started) {
		op = MDB_FIRST;
		if (it->start_len > 0) {
			op = MDB_SET_RANGE;
			k.mv_size = it->start_len;
			k.mv_data = it->start;
		}
	}
	rc = mdb_cursor_get(it->cur, &k, &v, op);
	if (rc != 0)
		return read_err(s, rc, "cursor_get", it->tbl);
	it->started = true;
	if (v.mv_size > UINT32_MAX)
		return STORE_CORRUPT(s, "value larger than 4 GiB");
	key->ptr = k.mv_data;
	key->len = (uint32_t)k.mv_size;
	val->ptr = v.mv_data;
	val->len = (uint32_t)v.mv_size;
	return 0;
}

void store_iter_close(struct store_iter *it)
{
	if (it == NULL)
		return;
	if (it->t != NULL) {
		struct store_iter **p = &it->t->iters;
		while (*p != it)
			p = &(*p)->next;
		*p = it->next;
		mdb_cursor_close(it->cur);
	}
	free(it);
}

int store_count(struct store_txn *t, enum store_table tbl, uint64_t *out)
{
	struct store *s = t->s;
	MDB_stat st;
	int rc;

	if (s->failed)
		return s->failed;
	if (!table_ok(tbl))
		return ING_EINVAL;
	rc = mdb_stat(t->txn, s->dbi[tbl], &st);
	if (rc != 0)
		return read_err(s, rc, "stat", tbl);
	*out = st.ms_entries;
	return 0;
}

/* ---- meta ------------------------------------------------------------- */

int store_meta_get_u64(struct store_txn *t, const char *name, uint64_t *out)
{
	struct ing_str v;
	int rv = store_get(t, STORE_META, ing_str_c(name), &v);
	if (rv == ING_ENOTFOUND) {
		*out = 0;
		return 0;
	}
	if (rv != 0)
		return rv;
	if (v.len != 8) {
		ING_LOG_ERROR("meta value has wrong length name=%s len=%u path=%s", name, v.len,
		              t->s->path);
		return STORE_CORRUPT(t->s, "meta value is not a u64");
	}
	*out = store_get_be64(v.ptr);
	return 0;
}

int store_meta_put_u64(struct store_txn *t, const char *name, uint64_t v)
{
	uint8_t buf[8];
	struct ing_str val = {(const char *)buf, sizeof(buf)};
	store_be64(buf, v);
	return store_put(t, STORE_META, ing_str_c(name), val);
}

int store_applied_index(struct store_txn *t, uint64_t *out)
{
	return store_meta_get_u64(t, STORE_META_APPLIED, out);
}

int store_set_applied_index(struct store_txn *t, uint64_t index)
{
	return store_meta_put_u64(t, STORE_META_APPLIED, index);
}

int store_next_id(struct store_txn *t, const char *name, uint64_t *out)
{
	uint64_t v;
	int rv = store_meta_get_u64(t, name, &v);
	if (rv != 0)
		return rv;
	if (v == UINT64_MAX)
		return STORE_CORRUPT(t->s, "id counter exhausted");
	rv = store_meta_put_u64(t, name, v + 1);
	if (rv != 0)
		return rv;
	*out = v + 1;
	return 0;
}

/* ---- batching --------------------------------------------------------- */

int store_batch_txn(struct store *s, struct store_txn **out)
{
	struct store_txn *t;
	int rv;

	if (s->failed)
		return s->failed;
	if (s->batch == NULL) {
		rv = txn_begin(s, true, &t);
		if (rv != 0)
			return rv;
		t->is_batch = true;
		s->batch = t;
		s->batch_count = 0;
	}
	*out = s->batch;
	return 0;
}

int store_batch_note(struct store *s)
{
	if (s->failed)
		return s->failed;
	if (s->batch == NULL)
		return ING_EINVAL;
	s->batch_count++;
	if (s->batch_count >= s->opts.batch_max)
		return store_batch_flush(s);
	return 0;
}

int store_batch_flush(struct store *s)
{
	int rv;
	if (s->failed)
		return s->failed;
	if (s->batch == NULL)
		return 0;
	if (s->nviews > 0) {
		ING_LOG_ERROR("batch commit with a view of it open path=%s", s->path);
		return ING_ECONFLICT;
	}
	rv = txn_end(s->batch);
	if (rv == 0)
		store_space_check(s);
	return rv;
}

unsigned store_batch_pending(const struct store *s)
{
	return s->batch != NULL ? s->batch_count : 0;
}

int store_sync(struct store *s, uint64_t *applied)
{
	struct store_txn *t;
	uint64_t index;
	int rc, rv;

	if (s->write_txn != NULL && s->write_txn != s->batch)
		return ING_ECONFLICT;
	rv = store_batch_flush(s);
	if (rv != 0)
		return rv;
	rc = mdb_env_sync(s->env, 1);
	if (rc != 0)
		return fail_mdb(s, rc, "sync", STORE_META);
	rv = store_read_begin(s, &t);
	if (rv != 0)
		return rv;
	rv = store_applied_index(t, &index);
	store_abort(t);
	if (rv == 0)
		*applied = index;
	return rv;
}

/* ---- resident pages ---------------------------------------------------- */

int store_release_pages(struct store *s)
{
	/* LMDB does not say where its map is (me_mapaddr is set only with
	 * MDB_FIXEDMAP): the process's mappings of the file are found in
	 * /proc/self/maps by device and inode.  The map is read-only (no
	 * MDB_WRITEMAP: writes go through the file), so its pages are clean
	 * copies of the page cache's: dropping them loses nothing. */
	struct stat st;
	char line[512];
	int rv = 0;
	if (stat(s->path, &st) != 0)
		return ING_EIO;
	FILE *maps = fopen("/proc/self/maps", "r");
	if (maps == NULL)
		return ING_EIO;
	while (fgets(line, sizeof(line), maps) != NULL) {
		uintptr_t start, end;
		unsigned maj, min;
		unsigned long long ino;
		if (sscanf(line, "%" SCNxPTR "-%" SCNxPTR " %*s %*s %x:%x %llu", &start, &end, &maj,
		           &min, &ino) != 5 ||
		    ino != (unsigned long long)st.st_ino || maj != major(st.st_dev) ||
		    min != minor(st.st_dev))
			continue;
		if (madvise((void *)start, end - start, MADV_DONTNEED) != 0)
			rv = ING_EIO;
	}
	fclose(maps);
	return rv;
}

/* ---- space ------------------------------------------------------------ */

/* Map size and the file's high-water mark. */
static int env_usage(struct store *s, uint64_t *map, uint64_t *file, uint64_t *psize)
{
	MDB_envinfo info;
	MDB_stat st;
	int rc = mdb_env_info(s->env, &info);
	if (rc == 0)
		rc = mdb_env_stat(s->env, &st);
	if (rc != 0)
		return store_err_from_mdb(rc);
	*map = info.me_mapsize;
	*file = ((uint64_t)info.me_last_pgno + 1) * st.ms_psize;
	*psize = st.ms_psize;
	return 0;
}

/* Pages on LMDB's free list (as mdb_stat -f counts them: table 0 holds, per
 * freeing txn, a list whose first word is its length). */
static int free_pages(struct store *s, uint64_t *out)
{
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k, v;
	uint64_t n = 0;
	int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
	if (rc != 0)
		return read_err(s, rc, "free_list", STORE_META);
	rc = mdb_cursor_open(txn, 0, &cur);
	if (rc == 0) {
		while ((rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
			if (v.mv_size < sizeof(size_t)) {
				rc = MDB_CORRUPTED;
				break;
			}
			size_t len;
			memcpy(&len, v.mv_data, sizeof(len));
			n += len;
		}
		mdb_cursor_close(cur);
	}
	mdb_txn_abort(txn);
	if (rc != MDB_NOTFOUND)
		return read_err(s, rc, "free_list", STORE_META);
	*out = n;
	return 0;
}

int store_space(struct store *s, struct store_space *out)
{
	uint64_t map, file, psize, nfree;
	int rv;
	if (s->failed)
		return s->failed;
	rv = env_usage(s, &map, &file, &psize);
	if (rv == 0)
		rv = free_pages(s, &nfree);
	if (rv != 0)
		return rv;
	out->map_bytes = map;
	out->max_bytes = s->opts.map_max_bytes;
	out->file_bytes = file;
	out->free_bytes = nfree * psize > file ? file : nfree * psize;
	out->used_bytes = file - out->free_bytes;
	return 0;
}

bool store_space_low(const struct store *s)
{
	return s->space_low;
}

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void maybe_grow(struct store *s, uint64_t map, uint64_t file)
{
	uint64_t max = s->opts.map_max_bytes, next;
	int rc;

	uint64_t margin = map / 2 > STORE_GROW_MARGIN_BYTES ? map / 2 : STORE_GROW_MARGIN_BYTES;

	if (file + margin <= map || map >= max || s->nread > 0)
		return;
	if (pthread_mutex_trylock(&s->copy_lock) != 0)
		return; /* a copy is reading the map: next commit */
	next = map * 2;
	if (next < file + margin)
		next = file + margin;
	if (next > max)
		next = max;
	rc = mdb_env_set_mapsize(s->env, (size_t)next);
	pthread_mutex_unlock(&s->copy_lock);
	if (rc != 0) {
		ING_LOG_WARN("store map not grown path=%s map=%" PRIu64 " to=%" PRIu64
		             " mdb_msg=\"%s\"",
		             s->path, map, next, mdb_strerror(rc));
		return;
	}
	s->opts.map_size_bytes = next; /* a reopen (snapshot import) keeps it */
	ING_LOG_INFO("store map grown path=%s from=%" PRIu64 " to=%" PRIu64 " file=%" PRIu64
	             " max=%" PRIu64,
	             s->path, map, next, file, max);
}

void store_space_check(struct store *s)
{
	uint64_t map, file, psize, nfree, max = s->opts.map_max_bytes, now;

	if (s->failed || s->env == NULL || s->write_txn != NULL ||
	    env_usage(s, &map, &file, &psize) != 0)
		return;
	maybe_grow(s, map, file);
	if (file + s->opts.reserve_bytes < max) {
		s->space_low = false; /* even with nothing free */
		return;
	}
	/* Near the ceiling: count the free pages whenever the file grew, and
	 * otherwise (pages freed or reused below the mark) at most 10 times a
	 * second: the walk is proportional to the free list. */
	now = mono_ns();
	if (file == s->space_checked_file && now - s->space_checked_ns < 100000000u)
		return;
	s->space_checked_ns = now;
	s->space_checked_file = file;
	if (free_pages(s, &nfree) != 0)
		return;
	if (nfree * psize > file)
		nfree = file / psize;
	s->space_low = file - nfree * psize + s->opts.reserve_bytes >= max;
}

/* ---- keys ------------------------------------------------------------- */

void store_be64(uint8_t out[8], uint64_t v)
{
	for (int i = 7; i >= 0; i--) {
		out[i] = (uint8_t)v;
		v >>= 8;
	}
}

uint64_t store_get_be64(const void *p)
{
	const uint8_t *b = p;
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = (v << 8) | b[i];
	return v;
}

void store_be32(uint8_t out[4], uint32_t v)
{
	out[0] = (uint8_t)(v >> 24);
	out[1] = (uint8_t)(v >> 16);
	out[2] = (uint8_t)(v >> 8);
	out[3] = (uint8_t)v;
}

uint32_t store_get_be32(const void *p)
{
	const uint8_t *b = p;
	return ((uint32_t)b[0] << 24) | ((uint32_t)b[1] << 16) | ((uint32_t)b[2] << 8) |
	       (uint32_t)b[3];
}
