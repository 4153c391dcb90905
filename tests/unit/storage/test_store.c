/*
 * test_store.c - the LMDB store: open/close, transactions, get/put/del,
 * iteration, counts, meta values, batching and sticky failures, on real
 * LMDB files in temporary directories.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/log.h"
#include "storage/store.h"
#include "tests/lib/testutil.h"

struct fx {
	char dir[256];
	struct store *s;
};

static const struct store_options fast = {.sync = STORE_SYNC_NONE};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct ing_error e;
	tu_tmpdir(f->dir, sizeof(f->dir));
	assert_int_equal(store_open(f->dir, &fast, &f->s, &e), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	store_close(f->s);
	tu_rmrf(f->dir);
	free(f);
	return 0;
}

static struct ing_str S(const char *c) {
	return ing_str_c(c);
}

static void
put1(struct store *s, enum store_table tbl, const char *k, const char *v)
{
	struct store_txn *t;
	assert_int_equal(store_write_begin(s, &t), 0);
	assert_int_equal(store_put(t, tbl, S(k), S(v)), 0);
	assert_int_equal(store_commit(t), 0);
}

/* Asserts key k of tbl holds v (v NULL: absent) in a fresh read txn. */
static void expect(struct store *s, enum store_table tbl, const char *k, const char *v)
{
	struct store_txn *t;
	struct ing_str got;
	assert_int_equal(store_read_begin(s, &t), 0);
	int rv = store_get(t, tbl, S(k), &got);
	if (v == NULL) {
		assert_int_equal(rv, ING_ENOTFOUND);
	} else {
		assert_int_equal(rv, 0);
		assert_true(ing_str_eq_c(got, v));
	}
	store_abort(t);
}

static void test_open_reopen_keeps_data(void **state)
{
	struct fx *f = *state;
	struct ing_error e;
	char path[300];

	snprintf(path, sizeof(path), "%s/state.mdb", f->dir);
	assert_string_equal(store_path(f->s), path);
	assert_int_equal(store_failed(f->s), 0);
	for (int i = 0; i < STORE_TABLE_COUNT; i++)
		put1(f->s, (enum store_table)i, "k", store_table_name((enum store_table)i));
	store_close(f->s);
	f->s = NULL;
	assert_int_equal(store_open(f->dir, &fast, &f->s, &e), 0);
	for (int i = 0; i < STORE_TABLE_COUNT; i++)
		expect(f->s, (enum store_table)i, "k", store_table_name((enum store_table)i));

	struct store_txn *t;
	uint64_t v;
	assert_int_equal(store_read_begin(f->s, &t), 0);
	assert_int_equal(store_meta_get_u64(t, "schema_version", &v), 0);
	assert_int_equal(v, STORE_SCHEMA_VERSION);
	store_abort(t);

	/* The tables carry their exact names in the file. */
	char *dump = tu_mdb_dump(path);
	const char *names[] = {"meta",      "members", "nodes",       "targets",
	                       "jobs",      "queue",   "assignments", "events",
	                       "artifacts", "chunks",  "dedupe",      "tokens"};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		char line[64];
		snprintf(line, sizeof(line), "database=%s\n", names[i]);
		assert_non_null(strstr(dump, line));
		assert_string_equal(store_table_name((enum store_table)i), names[i]);
	}
	free(dump);
}

static void test_get_put_del_iter_count(void **state)
{
	struct fx *f = *state;
	struct store_txn *t;
	struct store_iter *it;
	struct ing_str k, v;
	uint64_t n;

	assert_int_equal(store_write_begin(f->s, &t), 0);
	assert_int_equal(store_put(t, STORE_JOBS, S("b"), S("2")), 0);
	assert_int_equal(store_put(t, STORE_JOBS, S("a"), S("1")), 0);
	assert_int_equal(store_put(t, STORE_JOBS, S("c"), S("3")), 0);
	assert_int_equal(store_put(t, STORE_TARGETS, S("a"), S("other")), 0);
	assert_int_equal(store_put(t, STORE_JOBS, S("b"), S("22")), 0); /* overwrite */
	assert_int_equal(store_count(t, STORE_JOBS, &n), 0);
	assert_int_equal(n, 3);
	assert_int_equal(store_count(t, STORE_TARGETS, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(store_get(t, STORE_JOBS, S("b"), &v), 0);
	assert_true(ing_str_eq_c(v, "22"));
	assert_int_equal(store_get(t, STORE_JOBS, S("zz"), &v), ING_ENOTFOUND);
	assert_int_equal(store_del(t, STORE_JOBS, S("zz")), ING_ENOTFOUND);
	assert_int_equal(store_del(t, STORE_JOBS, S("c")), 0);
	/* Bad keys are refused without failing the store. */
	assert_int_equal(store_put(t, STORE_JOBS, S(""), S("x")), ING_EINVAL);
	assert_int_equal(store_commit(t), 0);
	assert_int_equal(store_failed(f->s), 0);

	assert_int_equal(store_read_begin(f->s, &t), 0);
	assert_int_equal(store_put(t, STORE_JOBS, S("x"), S("y")), ING_EINVAL); /* read txn */
	assert_int_equal(store_iter_open(t, STORE_JOBS, (struct ing_str){NULL, 0}, &it), 0);
	assert_int_equal(store_iter_next(it, &k, &v), 0);
	assert_true(ing_str_eq_c(k, "a") && ing_str_eq_c(v, "1"));
	assert_int_equal(store_iter_next(it, &k, &v), 0);
	assert_true(ing_str_eq_c(k, "b") && ing_str_eq_c(v, "22"));
	assert_int_equal(store_iter_next(it, &k, &v), ING_ENOTFOUND);
	store_iter_close(it);
	/* Start in the middle: first key >= "aa" is "b". */
	assert_int_equal(store_iter_open(t, STORE_JOBS, S("aa"), &it), 0);
	assert_int_equal(store_iter_next(it, &k, &v), 0);
	assert_true(ing_str_eq_c(k, "b"));
	store_iter_close(it);
	/* Start past the end. */
	assert_int_equal(store_iter_open(t, STORE_JOBS, S("z"), &it), 0);
	assert_int_equal(store_iter_next(it, &k, &v), ING_ENOTFOUND);
	store_iter_close(it);
	/* Empty table. */
	assert_int_equal(store_iter_open(t, STORE_TOKENS, (struct ing_str){NULL, 0}, &it), 0);
	assert_int_equal(store_iter_next(it, &k, &v), ING_ENOTFOUND);
	/* An iterator left open when its txn ends is closed with it. */
	assert_int_equal(store_commit(t), 0);
	assert_int_equal(store_iter_next(it, &k, &v), ING_EINVAL);
	store_iter_close(it);
	expect(f->s, STORE_TARGETS, "a", "other");
}

static void test_abort_discards(void **state)
{
	struct fx *f = *state;
	struct store_txn *t;
	assert_int_equal(store_write_begin(f->s, &t), 0);
	assert_int_equal(store_put(t, STORE_NODES, S("n"), S("v")), 0);
	store_abort(t);
	expect(f->s, STORE_NODES, "n", NULL);
	store_abort(NULL);
}

static void test_one_write_txn(void **state)
{
	struct fx *f = *state;
	struct store_txn *w, *w2, *r1, *r2, *b;

	assert_int_equal(store_write_begin(f->s, &w), 0);
	assert_ptr_equal(store_txn_store(w), f->s);
	assert_int_equal(store_write_begin(f->s, &w2), ING_ECONFLICT);
	assert_int_equal(store_batch_txn(f->s, &b), ING_ECONFLICT);
	/* Readers coexist with the writer and with each other. */
	assert_int_equal(store_read_begin(f->s, &r1), 0);
	assert_int_equal(store_read_begin(f->s, &r2), 0);
	assert_int_equal(store_put(w, STORE_JOBS, S("k"), S("v")), 0);
	assert_int_equal(store_commit(w), 0);
	/* Old readers keep their snapshot. */
	struct ing_str v;
	assert_int_equal(store_get(r1, STORE_JOBS, S("k"), &v), ING_ENOTFOUND);
	assert_int_equal(store_commit(r1), 0);
	store_abort(r2);
	/* The batch is the one write txn too. */
	assert_int_equal(store_batch_txn(f->s, &b), 0);
	assert_int_equal(store_write_begin(f->s, &w2), ING_ECONFLICT);
	assert_int_equal(store_commit(b), ING_EINVAL); /* never commit the batch directly */
	assert_int_equal(store_batch_flush(f->s), 0);
	assert_int_equal(store_write_begin(f->s, &w2), 0);
	store_abort(w2);
}

static void test_batching(void **state)
{
	struct fx *f = *state;
	struct store_options o = {.sync = STORE_SYNC_NONE, .batch_max = 3};
	struct ing_error e;
	struct store_txn *b, *b2;
	char key[16];

	store_close(f->s);
	assert_int_equal(store_open(f->dir, &o, &f->s, &e), 0);
	assert_int_equal(store_batch_pending(f->s), 0);
	assert_int_equal(store_batch_flush(f->s), 0); /* no-op when none is open */
	assert_int_equal(store_batch_note(f->s), ING_EINVAL);

	for (int i = 1; i <= 7; i++) {
		assert_int_equal(store_batch_txn(f->s, &b), 0);
		assert_int_equal(store_batch_txn(f->s, &b2), 0);
		assert_ptr_equal(b, b2);
		snprintf(key, sizeof(key), "k%d", i);
		assert_int_equal(store_put(b, STORE_JOBS, S(key), S("v")), 0);
		assert_int_equal(store_set_applied_index(b, (uint64_t)i), 0);
		/* Readers see the open batch (a view of it), before any commit. */
		expect(f->s, STORE_JOBS, key, "v");
		assert_int_equal(store_batch_note(f->s), 0);
		assert_int_equal(store_batch_pending(f->s), (unsigned)(i % 3));
	}
	expect(f->s, STORE_JOBS, "k6", "v");
	expect(f->s, STORE_JOBS, "k7", "v");

	struct store_txn *r;
	uint64_t idx;
	assert_int_equal(store_read_begin(f->s, &r), 0);
	assert_int_equal(store_applied_index(r, &idx), 0);
	assert_int_equal(idx, 7);
	/* The batch does not commit under an open view. */
	assert_int_equal(store_batch_flush(f->s), ING_ECONFLICT);
	assert_int_equal(store_failed(f->s), 0);
	store_abort(r);

	assert_int_equal(store_batch_flush(f->s), 0);
	assert_int_equal(store_batch_pending(f->s), 0);
	expect(f->s, STORE_JOBS, "k7", "v");
	assert_int_equal(store_read_begin(f->s, &r), 0);
	assert_int_equal(store_applied_index(r, &idx), 0);
	assert_int_equal(idx, 7);
	store_abort(r);

	/* Closing with an open batch discards it; what the third notes and the
	 * flush committed stays. */
	assert_int_equal(store_batch_txn(f->s, &b), 0);
	assert_int_equal(store_put(b, STORE_JOBS, S("lost"), S("v")), 0);
	assert_int_equal(store_batch_note(f->s), 0);
	expect(f->s, STORE_JOBS, "lost", "v");
	store_close(f->s);
	assert_int_equal(store_open(f->dir, &o, &f->s, &e), 0);
	expect(f->s, STORE_JOBS, "lost", NULL);
	expect(f->s, STORE_JOBS, "k6", "v");
	expect(f->s, STORE_JOBS, "k7", "v");
}

static void test_meta_and_ids(void **state)
{
	struct fx *f = *state;
	struct store_txn *t;
	uint64_t v;
	struct ing_str raw;

	assert_int_equal(store_write_begin(f->s, &t), 0);
	assert_int_equal(store_meta_get_u64(t, "absent", &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(store_meta_put_u64(t, "x", 0x0102030405060708ull), 0);
	assert_int_equal(store_get(t, STORE_META, S("x"), &raw), 0);
	assert_int_equal(raw.len, 8);
	assert_memory_equal(raw.ptr, "\x01\x02\x03\x04\x05\x06\x07\x08", 8);
	assert_int_equal(store_meta_get_u64(t, "x", &v), 0);
	assert_int_equal(v, 0x0102030405060708ull);
	for (uint64_t i = 1; i <= 3; i++) {
		assert_int_equal(store_next_id(t, "next_job_id", &v), 0);
		assert_int_equal(v, i);
	}
	assert_int_equal(store_next_id(t, "next_node_id", &v), 0);
	assert_int_equal(v, 1);
	assert_int_equal(store_applied_index(t, &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(store_set_applied_index(t, 12345), 0);
	assert_int_equal(store_commit(t), 0);

	struct ing_error e;
	store_close(f->s);
	assert_int_equal(store_open(f->dir, &fast, &f->s, &e), 0);
	assert_int_equal(store_write_begin(f->s, &t), 0);
	assert_int_equal(store_applied_index(t, &v), 0);
	assert_int_equal(v, 12345);
	assert_int_equal(store_next_id(t, "next_job_id", &v), 0);
	assert_int_equal(v, 4);
	assert_int_equal(store_commit(t), 0);
}

static void test_keys(void **state)
{
	(void)state;
	uint8_t b[8];
	store_be64(b, 0x1122334455667788ull);
	assert_memory_equal(b, "\x11\x22\x33\x44\x55\x66\x77\x88", 8);
	assert_int_equal(store_get_be64(b), 0x1122334455667788ull);
	store_be32(b, 0xa1b2c3d4u);
	assert_memory_equal(b, "\xa1\xb2\xc3\xd4", 4);
	assert_int_equal(store_get_be32(b), 0xa1b2c3d4u);
}

static void test_corrupt_meta_is_sticky(void **state)
{
	struct fx *f = *state;
	struct store_txn *t;
	uint64_t v;

	put1(f->s, STORE_META, "applied_index", "short");
	assert_int_equal(store_read_begin(f->s, &t), 0);
	assert_int_equal(store_applied_index(t, &v), ING_ECORRUPT);
	assert_int_equal(store_failed(f->s), ING_ECORRUPT);
	struct ing_str val;
	assert_int_equal(store_get(t, STORE_JOBS, S("k"), &val), ING_ECORRUPT);
	assert_int_equal(store_commit(t), ING_ECORRUPT);
	assert_int_equal(store_write_begin(f->s, &t), ING_ECORRUPT);
	assert_int_equal(store_read_begin(f->s, &t), ING_ECORRUPT);
}

static void test_map_full_is_sticky(void **state)
{
	struct fx *f = *state;
	struct store_options o = {
	    .map_size_bytes = 1u << 20, .map_max_bytes = 1u << 20, .sync = STORE_SYNC_NONE};
	struct ing_error e;
	struct store_txn *t, *t2;
	static char big[1000];
	char key[32];
	int rv = 0;

	store_close(f->s);
	tu_rmrf(f->dir);
	tu_tmpdir(f->dir, sizeof(f->dir));
	assert_int_equal(store_open(f->dir, &o, &f->s, &e), 0);
	memset(big, 'x', sizeof(big));
	assert_int_equal(store_write_begin(f->s, &t), 0);
	for (int i = 0; i < 10000 && rv == 0; i++) {
		snprintf(key, sizeof(key), "key-%06d", i);
		rv = store_put(t, STORE_EVENTS, S(key), (struct ing_str){big, sizeof(big)});
	}
	assert_int_equal(rv, ING_ENOSPACE);
	assert_int_equal(store_failed(f->s), ING_ENOSPACE);
	/* The txn whose put failed cannot be committed, and nothing works. */
	assert_int_equal(store_put(t, STORE_EVENTS, S("a"), S("b")), ING_ENOSPACE);
	assert_int_equal(store_commit(t), ING_ENOSPACE);
	assert_int_equal(store_write_begin(f->s, &t2), ING_ENOSPACE);
	assert_int_equal(store_read_begin(f->s, &t2), ING_ENOSPACE);
	assert_int_equal(store_batch_txn(f->s, &t2), ING_ENOSPACE);
	assert_int_equal(store_batch_flush(f->s), ING_ENOSPACE);
	assert_int_equal(store_failed(f->s), ING_ENOSPACE);

	/* Nothing of the failed txn reached the file. */
	store_close(f->s);
	assert_int_equal(store_open(f->dir, &o, &f->s, &e), 0);
	expect(f->s, STORE_EVENTS, "key-000000", NULL);
}

/* Puts n values of 1000 bytes, keys from first on, one batch per 50. */
static void fill(struct store *s, int first, int n)
{
	static char big[1000];
	struct store_txn *t;
	char key[32];
	memset(big, 'x', sizeof(big));
	for (int i = first; i < first + n; i++) {
		snprintf(key, sizeof(key), "key-%06d", i);
		assert_int_equal(store_batch_txn(s, &t), 0);
		assert_int_equal(
		    store_put(t, STORE_EVENTS, S(key), (struct ing_str){big, sizeof(big)}), 0);
		if (i % 50 == 49)
			assert_int_equal(store_batch_flush(s), 0);
	}
	assert_int_equal(store_batch_flush(s), 0);
}

/* The map grows ahead of the data up to its ceiling; store_space_low turns
 * true before the ceiling, and false again once deletions free pages. */
static void test_map_grows_and_space_low(void **state)
{
	struct fx *f = *state;
	struct store_options o = {.map_size_bytes = 256u << 10,
	                          .map_max_bytes = 4u << 20,
	                          .reserve_bytes = 1u << 20,
	                          .sync = STORE_SYNC_NONE};
	struct store_space sp;
	struct store_txn *t;
	struct ing_error e;
	char key[32];
	int n = 0;

	store_close(f->s);
	tu_rmrf(f->dir);
	tu_tmpdir(f->dir, sizeof(f->dir));
	assert_int_equal(store_open(f->dir, &o, &f->s, &e), 0);
	assert_int_equal(store_space(f->s, &sp), 0);
	/* Grown at open: less than the 64 MiB margin was left. */
	assert_int_equal(sp.map_bytes, 4u << 20);
	assert_int_equal(sp.max_bytes, 4u << 20);
	assert_false(store_space_low(f->s));

	/* Well past the first map, nothing failed. */
	fill(f->s, 0, 500);
	n = 500;
	assert_false(store_space_low(f->s));

	/* Up to the reserve: low before the ceiling, and the store healthy. */
	while (!store_space_low(f->s)) {
		fill(f->s, n, 50);
		n += 50;
		assert_true(n < 4000);
	}
	assert_int_equal(store_failed(f->s), 0);
	assert_int_equal(store_space(f->s, &sp), 0);
	assert_int_equal(sp.map_bytes, 4u << 20);
	assert_true(sp.used_bytes + (1u << 20) >= sp.max_bytes);
	assert_true(sp.used_bytes < sp.max_bytes);
	print_message("low at %d values: used %llu of %llu\n", n, (unsigned long long)sp.used_bytes,
	              (unsigned long long)sp.max_bytes);

	/* Deleting most of it frees pages: no longer low (checked at most ten
	 * times a second), and the freed pages are reused by new puts. */
	assert_int_equal(store_write_begin(f->s, &t), 0);
	for (int i = 0; i < n * 3 / 4; i++) {
		snprintf(key, sizeof(key), "key-%06d", i);
		assert_int_equal(store_del(t, STORE_EVENTS, S(key)), 0);
	}
	assert_int_equal(store_commit(t), 0);
	usleep(150000);
	fill(f->s, n, 10); /* a commit: the check runs */
	assert_false(store_space_low(f->s));
	assert_int_equal(store_space(f->s, &sp), 0);
	uint64_t file_before = sp.file_bytes;
	fill(f->s, n + 10, 200);
	assert_int_equal(store_space(f->s, &sp), 0);
	assert_true(sp.file_bytes <= file_before + (64u << 10));
	assert_int_equal(store_failed(f->s), 0);

	/* A reopen keeps the grown map. */
	store_close(f->s);
	assert_int_equal(store_open(f->dir, &o, &f->s, &e), 0);
	assert_int_equal(store_space(f->s, &sp), 0);
	assert_true(sp.map_bytes >= sp.file_bytes);
}

/* RssFile of this process, in KiB (/proc/self/status). */
static long rss_file_kb(void)
{
	char line[128];
	long kb = -1;
	FILE *fp = fopen("/proc/self/status", "r");
	assert_non_null(fp);
	while (fgets(line, sizeof(line), fp) != NULL)
		if (sscanf(line, "RssFile: %ld kB", &kb) == 1)
			break;
	fclose(fp);
	return kb;
}

/* 16 MiB of records read through the map are resident; store_release_pages
 * drops them (RssFile falls by most of it), and every record reads back the
 * same afterwards, with a write batch open across the release too. */
static void test_release_pages(void **state)
{
	struct fx *f = *state;
	enum { N = 4000, SIZE = 4000 };
	static char val[SIZE];
	struct store_txn *t;
	struct ing_str got;
	char key[16];

	assert_int_equal(store_write_begin(f->s, &t), 0);
	for (int i = 0; i < N; i++) {
		snprintf(key, sizeof(key), "k%06d", i);
		memset(val, 'a' + i % 26, sizeof(val));
		assert_int_equal(
		    store_put(t, STORE_CHUNKS, ing_str_c(key), (struct ing_str){val, SIZE}), 0);
	}
	assert_int_equal(store_commit(t), 0);
	long sum = 0;
	assert_int_equal(store_read_begin(f->s, &t), 0);
	for (int i = 0; i < N; i++) {
		snprintf(key, sizeof(key), "k%06d", i);
		assert_int_equal(store_get(t, STORE_CHUNKS, ing_str_c(key), &got), 0);
		sum += got.ptr[SIZE - 1];
	}
	store_abort(t);
	long before = rss_file_kb();
	assert_int_equal(store_write_begin(f->s, &t), 0); /* open across the release */
	assert_int_equal(store_put(t, STORE_META, ing_str_c("x"), ing_str_c("y")), 0);
	assert_int_equal(store_release_pages(f->s), 0);
	long after = rss_file_kb();
	assert_int_equal(store_commit(t), 0);
	if (after > before - 8 * 1024)
		fail_msg("RssFile %ld kB before the release, %ld kB after", before, after);
	assert_int_equal(store_read_begin(f->s, &t), 0);
	for (int i = 0; i < N; i++) {
		snprintf(key, sizeof(key), "k%06d", i);
		memset(val, 'a' + i % 26, sizeof(val));
		assert_int_equal(store_get(t, STORE_CHUNKS, ing_str_c(key), &got), 0);
		assert_int_equal(got.len, SIZE);
		assert_memory_equal(got.ptr, val, SIZE);
		sum -= got.ptr[SIZE - 1];
	}
	store_abort(t);
	assert_int_equal(sum, 0);
	expect(f->s, STORE_META, "x", "y");
}

static void test_open_errors(void **state)
{
	(void)state;
	struct store *s = NULL;
	struct ing_error e;
	assert_int_not_equal(store_open("/nonexistent/dir/for/ingot", &fast, &s, &e), 0);
	assert_null(s);
	assert_non_null(strstr(e.msg, "/nonexistent/dir/for/ingot"));
	store_close(NULL);
}

int main(void)
{
	ing_log_set_level(ING_LOG_LEVEL_OFF);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_open_reopen_keeps_data, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_get_put_del_iter_count, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_abort_discards, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_one_write_txn, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_batching, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_meta_and_ids, setup, teardown),
	    cmocka_unit_test(test_keys),
	    cmocka_unit_test_setup_teardown(test_corrupt_meta_is_sticky, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_map_full_is_sticky, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_release_pages, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_map_grows_and_space_low, setup, teardown),
	    cmocka_unit_test(test_open_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
