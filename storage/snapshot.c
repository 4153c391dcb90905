/*
 * snapshot.c - export and import of the whole store as one LMDB file.
 *
 * Export: the open batch is flushed (so every applied entry is in the
 * copy), the applied index is read, then LMDB writes a compacted copy of
 * the committed state (mdb_env_copy2/copyfd2 with MDB_CP_COMPACT, which
 * runs in a read txn of its own while writers may go on).  Single-threaded
 * use means nothing commits between reading the index and the copy, so the
 * index returned is the one in the copy.  A failed export is not sticky:
 * the store itself is untouched.
 *
 * Import: the candidate file is opened on its own, read-only and without a
 * lock file, and checked: every table present, a schema version in
 * 1..STORE_SCHEMA_VERSION (ING_ECORRUPT / ING_ENEWER otherwise).  When its
 * applied index is not greater than the store's, nothing changes.
 * Otherwise the store's env is closed, the candidate is fsync'd and renamed
 * over state.mdb, the directory is fsync'd and the env is reopened in place
 * (same struct store; an older schema is migrated at that reopen).
 *
 * Failure modes of import: before the rename, any failure leaves the store
 * as it was (the env is reopened on the old file if the rename fails).
 * After the rename, a failed directory fsync or reopen means the state on
 * disk is in doubt: the store fails stickily and stays closed.
 */
#include "storage/store_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"

/* Flushes the batch and reads the committed applied index. */
static int committed_index(struct store *s, uint64_t *index)
{
	struct store_txn *t;
	int rv = store_batch_flush(s);
	if (rv != 0)
		return rv;
	rv = store_read_begin(s, &t);
	if (rv != 0)
		return rv;
	rv = store_applied_index(t, index);
	store_abort(t);
	return rv;
}

int store_snapshot_export(struct store *s, const char *path, uint64_t *index)
{
	uint64_t idx;
	int rc, rv;

	if (s->failed)
		return s->failed;
	rv = committed_index(s, &idx);
	if (rv != 0)
		return rv;
	rc = mdb_env_copy2(s->env, path, MDB_CP_COMPACT);
	if (rc != 0) {
		ING_LOG_ERROR("snapshot export failed path=%s mdb_msg=\"%s\"", path,
		              mdb_strerror(rc));
		if (rc != EEXIST)
			unlink(path);
		return store_err_from_mdb(rc);
	}
	*index = idx;
	return 0;
}

/* Reads the whole of fd from offset 0 into a malloc'd buffer. */
static int read_fd(int fd, void **buf, size_t *len)
{
	struct stat st;
	char *p;
	size_t n, off = 0;

	if (fstat(fd, &st) != 0)
		return ING_EIO;
	n = (size_t)st.st_size;
	p = malloc(n > 0 ? n : 1);
	if (p == NULL)
		return ING_ENOMEM;
	while (off < n) {
		ssize_t r = pread(fd, p + off, n - off, (off_t)off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			free(p);
			return ING_EIO;
		}
		off += (size_t)r;
	}
	*buf = p;
	*len = n;
	return 0;
}

int store_snapshot_export_buf(struct store *s, void **buf, size_t *len, uint64_t *index)
{
	char tmp[PATH_MAX];
	uint64_t idx;
	int fd = -1, rc, rv;

	if (s->failed)
		return s->failed;
	rv = committed_index(s, &idx);
	if (rv != 0)
		goto out;
	if (snprintf(tmp, sizeof(tmp), "%s/.snapshot-export-XXXXXX", s->dir) >= (int)sizeof(tmp)) {
		rv = ING_EINVAL;
		goto out;
	}
	fd = mkstemp(tmp);
	if (fd < 0) {
		ING_LOG_ERROR("snapshot export: cannot create temp file dir=%s errno=%d", s->dir,
		              errno);
		rv = ING_EIO;
		goto out;
	}
	unlink(tmp); /* anonymous from now on: closing fd frees it */
	rc = mdb_env_copyfd2(s->env, fd, MDB_CP_COMPACT);
	if (rc != 0) {
		ING_LOG_ERROR("snapshot export failed dir=%s mdb_msg=\"%s\"", s->dir,
		              mdb_strerror(rc));
		rv = store_err_from_mdb(rc);
		goto out;
	}
	rv = read_fd(fd, buf, len);
	if (rv == 0)
		*index = idx;
out:
	if (fd >= 0)
		close(fd);
	return rv;
}

int store_snapshot_copy_buf(struct store *s, void **buf, size_t *len)
{
	/* Anonymous memory: the copy never touches the disk. */
	int fd = memfd_create("ingot-snapshot", MFD_CLOEXEC);
	int rc, rv;

	if (fd < 0) {
		ING_LOG_ERROR("snapshot copy: memfd_create failed errno=%d", errno);
		return errno == ENOMEM ? ING_ENOMEM : ING_EIO;
	}
	pthread_mutex_lock(&s->copy_lock); /* no map growth under the copy */
	rc = mdb_env_copyfd2(s->env, fd, MDB_CP_COMPACT);
	pthread_mutex_unlock(&s->copy_lock);
	if (rc != 0) {
		ING_LOG_ERROR("snapshot copy failed mdb_msg=\"%s\"", mdb_strerror(rc));
		rv = rc == ENOMEM ? ING_ENOMEM : ING_EIO;
	} else {
		rv = read_fd(fd, buf, len);
	}
	close(fd);
	return rv;
}

/*
 * Checks that `path` is an ingot store this binary can use and returns its
 * applied index and schema.  ING_ECORRUPT, ING_ENEWER, ING_EIO, ING_ENOMEM.
 */
static int inspect(const char *path, uint64_t *schema, uint64_t *applied, struct ing_error *e)
{
	MDB_env *env = NULL;
	bool has_schema;
	int rc, rv;

	rc = mdb_env_create(&env);
	if (rc != 0)
		return ing_error_set(e, store_err_from_mdb(rc), "snapshot %s: %s", path,
		                     mdb_strerror(rc));
	rc = mdb_env_set_maxdbs(env, STORE_TABLE_COUNT);
	if (rc == 0)
		rc = mdb_env_open(env, path, MDB_NOSUBDIR | MDB_RDONLY | MDB_NOLOCK, 0);
	if (rc == ENOENT || rc == EACCES || rc == ENOMEM) {
		rv = ing_error_set(e, rc == ENOMEM ? ING_ENOMEM : ING_EIO,
		                   "snapshot %s: cannot open: %s", path, mdb_strerror(rc));
		goto out;
	}
	if (rc != 0) {
		rv = ing_error_set(e, ING_CORRUPT("snapshot is not an LMDB file"),
		                   "snapshot %s is not a valid ingot store: %s", path,
		                   mdb_strerror(rc));
		goto out;
	}
	rv = store_file_meta(env, path, true, &has_schema, schema, applied, e);
	if (rv != 0)
		goto out;
	if (!has_schema || *schema == 0) {
		rv = ing_error_set(e, ING_CORRUPT("snapshot has no schema version"),
		                   "snapshot %s is not a valid ingot store: no schema version",
		                   path);
		goto out;
	}
	rv = store_schema_refuse_newer(path, *schema, e);
out:
	mdb_env_close(env);
	return rv;
}

/* fsync of a file or directory by path. */
static int fsync_path(const char *path, bool dir)
{
	int fd = open(path, O_RDONLY | (dir ? O_DIRECTORY : 0));
	if (fd < 0)
		return ING_EIO;
	int rv = fsync(fd) == 0 ? 0 : ING_EIO;
	close(fd);
	return rv;
}

int store_snapshot_import(struct store *s, const char *path, bool *replaced, struct ing_error *e)
{
	uint64_t schema, snap_index, cur_index;
	int rv;

	if (s->failed)
		return ing_error_set(e, s->failed, "store %s has failed: %s", s->path,
		                     ing_err_msg(s->failed));
	if (s->nread > 0 || (s->write_txn != NULL && s->write_txn != s->batch))
		return ing_error_set(e, ING_ECONFLICT,
		                     "store %s: cannot import a snapshot with a transaction open",
		                     s->path);
	rv = inspect(path, &schema, &snap_index, e);
	if (rv != 0)
		return rv;
	if (snap_index > s->snapshot_seen)
		s->snapshot_seen = snap_index;
	rv = committed_index(s, &cur_index);
	if (rv != 0)
		return ing_error_set(e, rv, "store %s: %s", s->path, ing_err_msg(rv));
	if (snap_index <= cur_index) {
		ING_LOG_INFO("snapshot not newer, kept store path=%s snapshot=%s "
		             "snapshot_index=%" PRIu64 " applied_index=%" PRIu64,
		             s->path, path, snap_index, cur_index);
		*replaced = false;
		return 0;
	}
	if (fsync_path(path, false) != 0)
		return ing_error_set(e, ING_EIO, "snapshot %s: fsync failed: %s", path,
		                     strerror(errno));

	store_env_close(s);
	if (rename(path, s->path) != 0) {
		int err = errno;
		rv = store_env_open(s, e);
		if (rv != 0)
			return store_fail(s, rv, "snapshot_reopen");
		return ing_error_set(e, ING_EIO, "snapshot %s: cannot rename to %s: %s", path,
		                     s->path, strerror(err));
	}
	if (fsync_path(s->dir, true) != 0) {
		ing_error_set(e, ING_EIO, "store %s: fsync of directory failed", s->dir);
		return store_fail(s, ING_EIO, "snapshot_dir_fsync");
	}
	rv = store_env_open(s, e);
	if (rv != 0)
		return store_fail(s, rv, "snapshot_reopen");
	ING_LOG_INFO("snapshot installed path=%s schema=%" PRIu64 " applied_index=%" PRIu64
	             " previous_index=%" PRIu64,
	             s->path, schema, snap_index, cur_index);
	*replaced = true;
	return 0;
}

int store_snapshot_import_buf(struct store *s, const void *buf, size_t len, bool *replaced,
                              struct ing_error *e)
{
	char tmp[PATH_MAX];
	const char *p = buf;
	size_t off = 0;
	bool done = false;
	int fd = -1, rv;

	if (s->failed)
		return ing_error_set(e, s->failed, "store %s has failed: %s", s->path,
		                     ing_err_msg(s->failed));
	if (snprintf(tmp, sizeof(tmp), "%s/.snapshot-import-XXXXXX", s->dir) >= (int)sizeof(tmp))
		return ing_error_set(e, ING_EINVAL, "store %s: path too long", s->dir);
	fd = mkstemp(tmp);
	if (fd < 0)
		return ing_error_set(e, ING_EIO, "store %s: cannot create temp file: %s", s->dir,
		                     strerror(errno));
	while (off < len) {
		ssize_t w = write(fd, p + off, len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			rv = ing_error_set(e, errno == ENOSPC ? ING_ENOSPACE : ING_EIO,
			                   "snapshot %s: write failed: %s", tmp, strerror(errno));
			goto out;
		}
		off += (size_t)w;
	}
	if (fsync(fd) != 0) {
		rv = ing_error_set(e, ING_EIO, "snapshot %s: fsync failed: %s", tmp,
		                   strerror(errno));
		goto out;
	}
	close(fd);
	fd = -1;
	rv = store_snapshot_import(s, tmp, &done, e);
	if (rv == 0)
		*replaced = done;
out:
	if (fd >= 0)
		close(fd);
	if (!done)
		unlink(tmp);
	return rv;
}

uint64_t store_snapshot_seen_index(const struct store *s)
{
	return s->snapshot_seen;
}
