/*
 * test_markers.c - the journal of started attempts (node/worker/markers.h)
 * on a real file system: markers survive a crash once synced (a daemon
 * killed between the append and the spawn finds them: it reports those
 * attempts lost), markers added but not synced do not; a torn record at
 * the end is cut off and appends after it stay aligned; removing every
 * marker empties the file; a long run of start/end compacts it; a damaged
 * record or header is refused; markers of the old layout (a file per
 * attempt in started/) are taken in and their directory removed.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "node/worker/markers.h"

struct fx {
	char dir[64];
	char path[128];
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/ingot-markers-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/%s", f->dir, WORKER_MARKERS_FILE);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

static long file_size(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

static struct worker_markers *open_ok(struct fx *f)
{
	struct worker_markers *m = NULL;
	struct ing_error e = {0};
	int rv = worker_markers_open(f->dir, &m, &e);
	if (rv != 0)
		fail_msg("open: %s", e.msg);
	return m;
}

static void append_bytes(const char *path, const void *p, size_t n)
{
	int fd = open(path, O_WRONLY | O_APPEND);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, p, n), (ssize_t)n);
	close(fd);
}

/* Synced markers survive the process (closed without removing them: what
 * a kill between the append and the spawn leaves); unsynced ones do not. */
static void test_crash_after_append(void **state)
{
	struct fx *f = *state;
	struct worker_markers *m = open_ok(f);
	assert_int_equal(file_size(f->path), 8);
	assert_int_equal(worker_markers_add(m, 7, 1), 0);
	assert_int_equal(worker_markers_add(m, 9, 3), 0);
	assert_int_equal(worker_markers_add(m, 7, 1), 1); /* already marked */
	assert_true(worker_markers_has(m, 7, 1));
	assert_int_equal(worker_markers_sync(m, NULL), 0);
	assert_int_equal(file_size(f->path), 8 + 2 * WORKER_MARKERS_RECORD);
	assert_int_equal(worker_markers_add(m, 11, 1), 0); /* never synced */
	worker_markers_close(m);

	m = open_ok(f);
	assert_true(worker_markers_has(m, 7, 1));
	assert_true(worker_markers_has(m, 9, 3));
	assert_false(worker_markers_has(m, 9, 4));
	assert_false(worker_markers_has(m, 11, 1));
	assert_int_equal(worker_markers_count(m), 2);
	/* The restarted worker finds them: an add says "marked already". */
	assert_int_equal(worker_markers_add(m, 9, 3), 1);
	worker_markers_close(m);
}

/* A crash in the middle of an append leaves a part of a record: cut off at
 * open, and what is appended afterwards reads back whole. */
static void test_torn_tail(void **state)
{
	struct fx *f = *state;
	struct worker_markers *m = open_ok(f);
	assert_int_equal(worker_markers_add(m, 1, 1), 0);
	assert_int_equal(worker_markers_sync(m, NULL), 0);
	worker_markers_close(m);
	append_bytes(f->path, "\x05\x00\x00\x00\x00\x00\x00", 7);

	m = open_ok(f);
	assert_int_equal(file_size(f->path), 8 + WORKER_MARKERS_RECORD);
	assert_int_equal(worker_markers_count(m), 1);
	assert_int_equal(worker_markers_add(m, 2, 5), 0);
	assert_int_equal(worker_markers_sync(m, NULL), 0);
	worker_markers_close(m);
	m = open_ok(f);
	assert_true(worker_markers_has(m, 1, 1));
	assert_true(worker_markers_has(m, 2, 5));
	assert_int_equal(worker_markers_records(m), 2);
	worker_markers_close(m);
}

/* Removing the last live marker empties the journal; a record of a
 * removed marker is not seen again once emptied. */
static void test_remove_empties(void **state)
{
	struct fx *f = *state;
	struct worker_markers *m = open_ok(f);
	for (uint64_t j = 1; j <= 3; j++)
		assert_int_equal(worker_markers_add(m, j, 1), 0);
	assert_int_equal(worker_markers_sync(m, NULL), 0);
	worker_markers_remove(m, 2, 1);
	worker_markers_remove(m, 2, 1); /* twice: harmless */
	assert_false(worker_markers_has(m, 2, 1));
	assert_int_equal(worker_markers_count(m), 2);
	assert_int_equal(file_size(f->path), 8 + 3 * WORKER_MARKERS_RECORD);
	worker_markers_remove(m, 1, 1);
	worker_markers_remove(m, 3, 1);
	assert_int_equal(worker_markers_count(m), 0);
	assert_int_equal(file_size(f->path), 8);
	worker_markers_close(m);
	m = open_ok(f);
	assert_int_equal(worker_markers_count(m), 0);
	worker_markers_close(m);
}

/* Attempts starting and ending one after another while one stays: the
 * file is compacted, never grows past the threshold, keeps the live one. */
static void test_compaction(void **state)
{
	struct fx *f = *state;
	struct worker_markers *m = open_ok(f);
	assert_int_equal(worker_markers_add(m, 1000000, 2), 0);
	assert_int_equal(worker_markers_sync(m, NULL), 0);
	long largest = 0;
	for (uint64_t j = 1; j <= 3 * WORKER_MARKERS_COMPACT_AT; j++) {
		assert_int_equal(worker_markers_add(m, j, 1), 0);
		assert_int_equal(worker_markers_sync(m, NULL), 0);
		worker_markers_remove(m, j, 1);
		long s = file_size(f->path);
		if (s > largest)
			largest = s;
	}
	assert_true(largest <= (long)(8 + (WORKER_MARKERS_COMPACT_AT + 1) * WORKER_MARKERS_RECORD));
	assert_true(worker_markers_records(m) < WORKER_MARKERS_COMPACT_AT);
	char tmp[160];
	snprintf(tmp, sizeof(tmp), "%s.tmp", f->path);
	assert_int_equal(access(tmp, F_OK), -1); /* renamed, not left behind */
	worker_markers_close(m);
	m = open_ok(f);
	assert_int_equal(worker_markers_count(m), 1);
	assert_true(worker_markers_has(m, 1000000, 2));
	/* Appends after a compaction land in the new file. */
	assert_int_equal(worker_markers_add(m, 5, 5), 0);
	assert_int_equal(worker_markers_sync(m, NULL), 0);
	worker_markers_close(m);
	m = open_ok(f);
	assert_true(worker_markers_has(m, 5, 5));
	assert_true(worker_markers_has(m, 1000000, 2));
	worker_markers_close(m);
}

/* A damaged record or a foreign header: the open fails, saying where. */
static void test_damaged(void **state)
{
	struct fx *f = *state;
	struct worker_markers *m = open_ok(f);
	assert_int_equal(worker_markers_add(m, 1, 1), 0);
	assert_int_equal(worker_markers_sync(m, NULL), 0);
	worker_markers_close(m);
	uint8_t rec[WORKER_MARKERS_RECORD] = {1, 2, 3};
	append_bytes(f->path, rec, sizeof(rec));
	struct ing_error e = {0};
	assert_int_equal(worker_markers_open(f->dir, &m, &e), ING_EMALFORMED);
	assert_non_null(strstr(e.msg, "offset 24"));

	FILE *fp = fopen(f->path, "w");
	assert_non_null(fp);
	fputs("something else\n", fp);
	fclose(fp);
	assert_int_equal(worker_markers_open(f->dir, &m, &e), ING_EMALFORMED);
	assert_non_null(strstr(e.msg, "bad header"));
}

/* Markers of the old layout are taken in, then their directory goes. */
static void test_legacy_import(void **state)
{
	struct fx *f = *state;
	char p[256];
	snprintf(p, sizeof(p), "%s/%s", f->dir, WORKER_MARKERS_LEGACY_DIR);
	assert_int_equal(mkdir(p, 0700), 0);
	const char *names[] = {"5-a2", "17-a1", "not-a-marker"};
	for (int i = 0; i < 3; i++) {
		char q[300];
		snprintf(q, sizeof(q), "%s/%s", p, names[i]);
		FILE *fp = fopen(q, "w");
		assert_non_null(fp);
		fclose(fp);
	}
	struct worker_markers *m = open_ok(f);
	assert_true(worker_markers_has(m, 5, 2));
	assert_true(worker_markers_has(m, 17, 1));
	assert_int_equal(worker_markers_count(m), 2);
	assert_int_equal(access(p, F_OK), -1);
	worker_markers_close(m);
	m = open_ok(f);
	assert_true(worker_markers_has(m, 5, 2));
	assert_true(worker_markers_has(m, 17, 1));
	worker_markers_close(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_crash_after_append, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_torn_tail, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_remove_empties, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_compaction, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_damaged, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_legacy_import, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
