/*
 * test_snapshot.c - snapshot export and import: a snapshot installed into a
 * fresh store makes it identical to the source (mdb_dump), older or equal
 * snapshots and garbage change nothing, buffers work like files, and the
 * batch is flushed into the export.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/log.h"
#include "storage/artifact.h"
#include "storage/store.h"
#include "tests/lib/testutil.h"

struct fx {
	char dir_a[256], dir_b[256], tmp[256];
	struct store *a, *b;
};

static const struct store_options fast = {.sync = STORE_SYNC_NONE};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct ing_error e;
	tu_tmpdir(f->dir_a, sizeof(f->dir_a));
	tu_tmpdir(f->dir_b, sizeof(f->dir_b));
	tu_tmpdir(f->tmp, sizeof(f->tmp));
	assert_int_equal(store_open(f->dir_a, &fast, &f->a, &e), 0);
	assert_int_equal(store_open(f->dir_b, &fast, &f->b, &e), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	store_close(f->a);
	store_close(f->b);
	tu_rmrf(f->dir_a);
	tu_rmrf(f->dir_b);
	tu_rmrf(f->tmp);
	free(f);
	return 0;
}

/* Writes n jobs starting at `first` and sets the applied index to `index`. */
static void fill(struct store *s, uint64_t first, uint64_t n, uint64_t index)
{
	struct store_txn *t;
	uint8_t key[8], sha[32];
	char val[64];
	assert_int_equal(store_write_begin(s, &t), 0);
	for (uint64_t i = first; i < first + n; i++) {
		uint64_t id;
		store_be64(key, i);
		snprintf(val, sizeof(val), "job-%llu", (unsigned long long)i);
		assert_int_equal(
		    store_put(t, STORE_JOBS, (struct ing_str){(char *)key, 8}, ing_str_c(val)), 0);
		assert_int_equal(store_next_id(t, "next_job_id", &id), 0);
	}
	assert_int_equal(store_artifact_put(t, "source text", 11, sha), 0);
	assert_int_equal(store_put(t, STORE_TARGETS, ing_str_c("cc-x86"), ing_str_c("t")), 0);
	assert_int_equal(store_set_applied_index(t, index), 0);
	assert_int_equal(store_commit(t), 0);
}

static uint64_t applied(struct store *s)
{
	struct store_txn *t;
	uint64_t v;
	assert_int_equal(store_read_begin(s, &t), 0);
	assert_int_equal(store_applied_index(t, &v), 0);
	store_abort(t);
	return v;
}

static bool exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

/* Only the LMDB file and its lock file: no temporary file left behind. */
static void expect_only_store_files(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;
	assert_non_null(d);
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (strcmp(de->d_name, "state.mdb") != 0 &&
		    strcmp(de->d_name, "state.mdb-lock") != 0)
			fail_msg("unexpected file %s in %s", de->d_name, dir);
		n++;
	}
	closedir(d);
	assert_int_equal(n, 2);
}

static void test_export_import_identical(void **state)
{
	struct fx *f = *state;
	char snap[300];
	uint64_t idx;
	bool replaced = false;
	struct ing_error e;

	fill(f->a, 1, 500, 77);
	snprintf(snap, sizeof(snap), "%s/snap.mdb", f->tmp);
	assert_int_equal(store_snapshot_export(f->a, snap, &idx), 0);
	assert_int_equal(idx, 77);
	/* The export goes to a new file only. */
	uint64_t idx2;
	assert_int_equal(store_snapshot_export(f->a, snap, &idx2), ING_EEXIST);
	assert_int_equal(store_failed(f->a), 0);

	assert_int_equal(store_snapshot_import(f->b, snap, &replaced, &e), 0);
	assert_true(replaced);
	assert_false(exists(snap)); /* consumed */
	assert_int_equal(applied(f->b), 77);

	char *da = tu_mdb_dump(store_path(f->a));
	char *db = tu_mdb_dump(store_path(f->b));
	assert_string_equal(da, db);
	free(da);
	free(db);

	/* The imported store is fully usable, and identical after the same
	 * further writes. */
	fill(f->a, 1000, 10, 80);
	fill(f->b, 1000, 10, 80);
	da = tu_mdb_dump(store_path(f->a));
	db = tu_mdb_dump(store_path(f->b));
	assert_string_equal(da, db);
	free(da);
	free(db);

	/* And it survives a reopen. */
	store_close(f->b);
	assert_int_equal(store_open(f->dir_b, &fast, &f->b, &e), 0);
	assert_int_equal(applied(f->b), 80);
}

static void test_older_or_equal_is_ignored(void **state)
{
	struct fx *f = *state;
	char snap[300];
	uint64_t idx;
	bool replaced = true;
	struct ing_error e;

	fill(f->a, 1, 5, 10);
	fill(f->b, 100, 5, 10);
	snprintf(snap, sizeof(snap), "%s/snap.mdb", f->tmp);
	assert_int_equal(store_snapshot_export(f->a, snap, &idx), 0);
	assert_int_equal(idx, 10);

	/* Equal index. */
	char *before = tu_mdb_dump(store_path(f->b));
	assert_int_equal(store_snapshot_import(f->b, snap, &replaced, &e), 0);
	assert_false(replaced);
	assert_true(exists(snap)); /* not consumed */
	char *after = tu_mdb_dump(store_path(f->b));
	assert_string_equal(before, after);
	free(before);
	free(after);

	/* Older index. */
	fill(f->b, 200, 1, 11);
	before = tu_mdb_dump(store_path(f->b));
	replaced = true;
	assert_int_equal(store_snapshot_import(f->b, snap, &replaced, &e), 0);
	assert_false(replaced);
	after = tu_mdb_dump(store_path(f->b));
	assert_string_equal(before, after);
	free(before);
	free(after);
	assert_int_equal(applied(f->b), 11);
}

static void test_buffers(void **state)
{
	struct fx *f = *state;
	void *buf;
	size_t len;
	uint64_t idx;
	bool replaced = false;
	struct ing_error e;
	struct store_txn *b;

	fill(f->a, 1, 50, 5);
	/* Applies in the open batch are flushed into the export. */
	assert_int_equal(store_batch_txn(f->a, &b), 0);
	assert_int_equal(store_put(b, STORE_NODES, ing_str_c("n1"), ing_str_c("node")), 0);
	assert_int_equal(store_set_applied_index(b, 6), 0);
	assert_int_equal(store_batch_note(f->a), 0);
	assert_int_equal(store_snapshot_export_buf(f->a, &buf, &len, &idx), 0);
	assert_int_equal(idx, 6);
	assert_int_equal(store_batch_pending(f->a), 0);
	assert_true(len > 0);

	assert_int_equal(store_snapshot_import_buf(f->b, buf, len, &replaced, &e), 0);
	assert_true(replaced);
	assert_int_equal(applied(f->b), 6);
	char *da = tu_mdb_dump(store_path(f->a));
	char *db = tu_mdb_dump(store_path(f->b));
	assert_string_equal(da, db);
	free(da);
	free(db);

	/* The same buffer again: not newer, nothing changes, no temp file left. */
	replaced = true;
	assert_int_equal(store_snapshot_import_buf(f->b, buf, len, &replaced, &e), 0);
	assert_false(replaced);
	free(buf);
	expect_only_store_files(f->dir_a);
	expect_only_store_files(f->dir_b);
}

static void test_garbage_is_refused(void **state)
{
	struct fx *f = *state;
	char junk[20000];
	bool replaced = false;
	struct ing_error e;

	fill(f->b, 1, 3, 4);
	char *before = tu_mdb_dump(store_path(f->b));
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (char)(i * 7 + 3);
	int rv = store_snapshot_import_buf(f->b, junk, sizeof(junk), &replaced, &e);
	assert_int_equal(rv, ING_ECORRUPT);
	assert_int_equal(e.code, ING_ECORRUPT);
	rv = store_snapshot_import_buf(f->b, junk, 10, &replaced, &e);
	assert_true(rv == ING_ECORRUPT || rv == ING_EIO);
	assert_int_equal(store_failed(f->b), 0);
	char *after = tu_mdb_dump(store_path(f->b));
	assert_string_equal(before, after);
	free(before);
	free(after);
	/* Still usable. */
	fill(f->b, 10, 1, 5);
	assert_int_equal(applied(f->b), 5);
	expect_only_store_files(f->dir_b);

	/* A valid LMDB file that is not an ingot store. */
	char path[300];
	snprintf(path, sizeof(path), "%s/other.mdb", f->tmp);
	{
		struct store *o;
		/* An ingot store whose applied index is high, then its meta table
		 * emptied of the schema: not a valid store. */
		assert_int_equal(store_open(f->tmp, &fast, &o, &e), 0);
		struct store_txn *t;
		assert_int_equal(store_write_begin(o, &t), 0);
		assert_int_equal(store_set_applied_index(t, 1000), 0);
		assert_int_equal(store_del(t, STORE_META, ing_str_c("schema_version")), 0);
		assert_int_equal(store_commit(t), 0);
		uint64_t idx;
		assert_int_equal(store_snapshot_export(o, path, &idx), 0);
		store_close(o);
	}
	assert_int_equal(store_snapshot_import(f->b, path, &replaced, &e), ING_ECORRUPT);
	assert_true(exists(path));
	assert_int_equal(applied(f->b), 5);
	assert_int_equal(store_failed(f->b), 0);
}

static void test_newer_snapshot_is_refused(void **state)
{
	struct fx *f = *state;
	char path[300];
	struct store_txn *t;
	uint64_t idx;
	bool replaced = false;
	struct ing_error e;

	assert_int_equal(store_write_begin(f->a, &t), 0);
	assert_int_equal(store_set_applied_index(t, 1000), 0);
	assert_int_equal(store_meta_put_u64(t, "schema_version", STORE_SCHEMA_VERSION + 1), 0);
	assert_int_equal(store_commit(t), 0);
	snprintf(path, sizeof(path), "%s/snap.mdb", f->tmp);
	assert_int_equal(store_snapshot_export(f->a, path, &idx), 0);
	assert_int_equal(store_snapshot_import(f->b, path, &replaced, &e), ING_ENEWER);
	assert_non_null(strstr(e.msg, "upgrade ingot"));
	assert_int_equal(applied(f->b), 0);
}

static void test_import_refused_with_open_txn(void **state)
{
	struct fx *f = *state;
	char path[300];
	struct store_txn *t;
	uint64_t idx;
	bool replaced = false;
	struct ing_error e;

	fill(f->a, 1, 2, 3);
	snprintf(path, sizeof(path), "%s/snap.mdb", f->tmp);
	assert_int_equal(store_snapshot_export(f->a, path, &idx), 0);
	assert_int_equal(store_read_begin(f->b, &t), 0);
	assert_int_equal(store_snapshot_import(f->b, path, &replaced, &e), ING_ECONFLICT);
	store_abort(t);
	assert_int_equal(store_write_begin(f->b, &t), 0);
	assert_int_equal(store_snapshot_import(f->b, path, &replaced, &e), ING_ECONFLICT);
	store_abort(t);
	assert_int_equal(store_snapshot_import(f->b, path, &replaced, &e), 0);
	assert_true(replaced);
	assert_int_equal(applied(f->b), 3);
}

int main(void)
{
	ing_log_set_level(ING_LOG_LEVEL_OFF);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_export_import_identical, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_older_or_equal_is_ignored, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_buffers, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_garbage_is_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_newer_snapshot_is_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_import_refused_with_open_txn, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
