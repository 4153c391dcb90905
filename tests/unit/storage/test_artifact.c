/*
 * test_artifact.c - content-addressed chunked artifacts: round trips at the
 * chunk boundaries, deduplication of whole artifacts and of shared chunks,
 * reference counting down to an empty store, and detection of a corrupt
 * chunk.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <msgpack.h>

#include "common/log.h"
#include "storage/artifact.h"
#include "storage/limits.h"
#include "storage/store.h"
#include "tests/lib/testutil.h"

struct fx {
	char dir[256];
	struct store *s;
	struct store_txn *t; /* an open write txn */
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct store_options o = {.sync = STORE_SYNC_NONE};
	struct ing_error e;
	tu_tmpdir(f->dir, sizeof(f->dir));
	assert_int_equal(store_open(f->dir, &o, &f->s, &e), 0);
	assert_int_equal(store_write_begin(f->s, &f->t), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	store_abort(f->t);
	store_close(f->s);
	tu_rmrf(f->dir);
	free(f);
	return 0;
}

/* Deterministic bytes that differ from chunk to chunk. */
static uint8_t *pattern(size_t len, uint32_t seed)
{
	uint8_t *p = malloc(len > 0 ? len : 1);
	uint32_t x = seed * 2654435761u + 1;
	for (size_t i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		p[i] = (uint8_t)x;
	}
	return p;
}

static uint64_t count(struct store_txn *t, enum store_table tbl)
{
	uint64_t n;
	assert_int_equal(store_count(t, tbl, &n), 0);
	return n;
}

static void expect_read(struct store_txn *t, const uint8_t sha[32], const void *data, size_t len)
{
	void *buf;
	size_t n;
	assert_int_equal(store_artifact_read(t, sha, &buf, &n), 0);
	assert_int_equal(n, len);
	if (len > 0)
		assert_memory_equal(buf, data, len);
	free(buf);
}

static void test_sha256(void **state)
{
	(void)state;
	uint8_t h[32];
	/* SHA-256("abc") */
	static const uint8_t want[32] = {0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea,
	                                 0x41, 0x41, 0x40, 0xde, 0x5d, 0xae, 0x22, 0x23,
	                                 0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17, 0x7a, 0x9c,
	                                 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad};
	store_sha256("abc", 3, h);
	assert_memory_equal(h, want, 32);
}

static void test_round_trips(void **state)
{
	struct fx *f = *state;
	const size_t sizes[] = {0, 1, 65535, 65536, 65537, 300000};
	/* Artifacts of at most one chunk are their chunk (the empty one too). */
	const uint64_t chunks[] = {1, 1, 1, 1, 2, 5};
	uint64_t total = 0;

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		uint8_t sha[32], want[32];
		uint64_t size, refs;
		uint8_t *d = pattern(sizes[i], (uint32_t)i + 1);
		assert_int_equal(store_artifact_put(f->t, d, sizes[i], sha), 0);
		store_sha256(d, sizes[i], want);
		assert_memory_equal(sha, want, 32);
		assert_int_equal(store_artifact_stat(f->t, sha, &size, &refs), 0);
		assert_int_equal(size, sizes[i]);
		assert_int_equal(refs, 1);
		total += chunks[i];
		assert_int_equal(count(f->t, STORE_CHUNKS), total);
		expect_read(f->t, sha, d, sizes[i]);
		free(d);
	}
	assert_int_equal(count(f->t, STORE_ARTIFACTS), 2); /* manifests: multi-chunk only */

	/* Readable after commit, in a read txn. */
	assert_int_equal(store_commit(f->t), 0);
	f->t = NULL;
	struct store_txn *r;
	uint8_t *d = pattern(300000, 6);
	uint8_t sha[32];
	store_sha256(d, 300000, sha);
	assert_int_equal(store_read_begin(f->s, &r), 0);
	expect_read(r, sha, d, 300000);
	store_abort(r);
	free(d);
}

static void test_too_big_and_absent(void **state)
{
	struct fx *f = *state;
	uint8_t sha[32] = {0};
	uint64_t size, refs;
	void *buf;
	size_t len;
	assert_int_equal(store_artifact_put(f->t, "", (size_t)ING_SOURCE_MAX_BYTES + 1, sha),
	                 ING_ETOOBIG);
	assert_int_equal(store_artifact_stat(f->t, sha, &size, &refs), ING_ENOTFOUND);
	assert_int_equal(store_artifact_ref(f->t, sha), ING_ENOTFOUND);
	assert_int_equal(store_artifact_unref(f->t, sha), ING_ENOTFOUND);
	assert_int_equal(store_artifact_read(f->t, sha, &buf, &len), ING_ENOTFOUND);
	assert_int_equal(store_failed(f->s), 0);
}

static void test_same_content_twice(void **state)
{
	struct fx *f = *state;
	uint8_t a[32], b[32];
	uint64_t size, refs;
	uint8_t *d = pattern(150000, 9);

	assert_int_equal(store_artifact_put(f->t, d, 150000, a), 0);
	assert_int_equal(store_artifact_put(f->t, d, 150000, b), 0);
	assert_memory_equal(a, b, 32);
	assert_int_equal(store_artifact_stat(f->t, a, &size, &refs), 0);
	assert_int_equal(refs, 2);
	assert_int_equal(count(f->t, STORE_ARTIFACTS), 1);
	assert_int_equal(count(f->t, STORE_CHUNKS), 3);
	assert_int_equal(store_artifact_ref(f->t, a), 0);
	assert_int_equal(store_artifact_stat(f->t, a, &size, &refs), 0);
	assert_int_equal(refs, 3);
	for (int i = 0; i < 2; i++)
		assert_int_equal(store_artifact_unref(f->t, a), 0);
	assert_int_equal(count(f->t, STORE_CHUNKS), 3);
	expect_read(f->t, a, d, 150000);
	assert_int_equal(store_artifact_unref(f->t, a), 0);
	assert_int_equal(count(f->t, STORE_ARTIFACTS), 0);
	assert_int_equal(count(f->t, STORE_CHUNKS), 0);
	assert_int_equal(store_artifact_unref(f->t, a), ING_ENOTFOUND);

	/* The empty artifact too. */
	assert_int_equal(store_artifact_put(f->t, "", 0, a), 0);
	assert_int_equal(store_artifact_put(f->t, "", 0, a), 0);
	assert_int_equal(store_artifact_stat(f->t, a, &size, &refs), 0);
	assert_int_equal(size, 0);
	assert_int_equal(refs, 2);
	assert_int_equal(store_artifact_unref(f->t, a), 0);
	assert_int_equal(store_artifact_unref(f->t, a), 0);
	assert_int_equal(count(f->t, STORE_ARTIFACTS), 0);
	assert_int_equal(count(f->t, STORE_CHUNKS), 0);
	free(d);
}

/* A small artifact whose bytes are a chunk of a big one shares that chunk:
 * each keeps it alive for the other. */
static void test_single_chunk_artifact_is_its_chunk(void **state)
{
	struct fx *f = *state;
	const size_t C = STORE_CHUNK_BYTES;
	uint8_t *big = pattern(2 * C, 4);
	uint8_t sbig[32], sx[32];
	uint64_t size, refs;

	assert_int_equal(store_artifact_put(f->t, big, 2 * C, sbig), 0);
	assert_int_equal(store_artifact_put(f->t, big, C, sx), 0); /* its first chunk */
	assert_int_equal(count(f->t, STORE_CHUNKS), 2);
	assert_int_equal(count(f->t, STORE_ARTIFACTS), 1);
	assert_int_equal(store_artifact_stat(f->t, sx, &size, &refs), 0);
	assert_int_equal(size, C);
	assert_int_equal(refs, 2); /* once in the manifest, once as an artifact */
	assert_int_equal(store_artifact_unref(f->t, sbig), 0);
	assert_int_equal(count(f->t, STORE_CHUNKS), 1);
	expect_read(f->t, sx, big, C);
	assert_int_equal(store_artifact_unref(f->t, sx), 0);
	assert_int_equal(count(f->t, STORE_CHUNKS), 0);
	assert_int_equal(store_artifact_stat(f->t, sx, &size, &refs), ING_ENOTFOUND);
	free(big);
}

static void test_shared_chunks(void **state)
{
	struct fx *f = *state;
	const size_t C = STORE_CHUNK_BYTES;
	uint8_t *x = pattern(C, 1), *y = pattern(1000, 2), *z = pattern(C + 5, 3);
	uint8_t *a = malloc(2 * C + 5), *b = malloc(2 * C + 5), *c = malloc(2 * C);
	uint8_t sa[32], sb[32], sc[32];

	/* A = X+Y, B = X+Z, C = X+X (a chunk repeated within one artifact). */
	memcpy(a, x, C);
	memcpy(a + C, y, 1000);
	memcpy(b, x, C);
	memcpy(b + C, z, C + 5);
	memcpy(c, x, C);
	memcpy(c + C, x, C);
	assert_int_equal(store_artifact_put(f->t, a, C + 1000, sa), 0);
	assert_int_equal(count(f->t, STORE_CHUNKS), 2);
	assert_int_equal(store_artifact_put(f->t, b, 2 * C + 5, sb), 0);
	assert_int_equal(count(f->t, STORE_CHUNKS), 2 + 2); /* X shared; Z is 2 chunks */
	assert_int_equal(store_artifact_put(f->t, c, 2 * C, sc), 0);
	assert_int_equal(count(f->t, STORE_CHUNKS), 4);
	assert_int_equal(count(f->t, STORE_ARTIFACTS), 3);
	expect_read(f->t, sa, a, C + 1000);
	expect_read(f->t, sb, b, 2 * C + 5);
	expect_read(f->t, sc, c, 2 * C);

	/* Dropping A frees only Y; X stays for B and C. */
	assert_int_equal(store_artifact_unref(f->t, sa), 0);
	assert_int_equal(count(f->t, STORE_ARTIFACTS), 2);
	assert_int_equal(count(f->t, STORE_CHUNKS), 3);
	expect_read(f->t, sb, b, 2 * C + 5);
	/* Dropping C keeps X for B. */
	assert_int_equal(store_artifact_unref(f->t, sc), 0);
	assert_int_equal(count(f->t, STORE_CHUNKS), 3);
	expect_read(f->t, sb, b, 2 * C + 5);
	assert_int_equal(store_artifact_unref(f->t, sb), 0);
	assert_int_equal(count(f->t, STORE_ARTIFACTS), 0);
	assert_int_equal(count(f->t, STORE_CHUNKS), 0);

	/* The counts survive a commit and reopen. */
	assert_int_equal(store_artifact_put(f->t, a, C + 1000, sa), 0);
	assert_int_equal(store_artifact_put(f->t, b, 2 * C + 5, sb), 0);
	assert_int_equal(store_commit(f->t), 0);
	f->t = NULL;
	struct ing_error e;
	store_close(f->s);
	assert_int_equal(store_open(f->dir, NULL, &f->s, &e), 0);
	assert_int_equal(store_write_begin(f->s, &f->t), 0);
	assert_int_equal(store_artifact_unref(f->t, sb), 0);
	assert_int_equal(count(f->t, STORE_CHUNKS), 2);
	expect_read(f->t, sa, a, C + 1000);
	assert_int_equal(store_artifact_unref(f->t, sa), 0);
	assert_int_equal(count(f->t, STORE_CHUNKS), 0);
	free(x);
	free(y);
	free(z);
	free(a);
	free(b);
	free(c);
}

/* Overwrites the record of the first chunk of the artifact with `rec`. */
static void corrupt_chunk(struct fx *f, const uint8_t *chunk_data, size_t chunk_len,
                          const char *rec, uint32_t rec_len)
{
	uint8_t h[32];
	store_sha256(chunk_data, chunk_len, h);
	assert_int_equal(store_put(f->t, STORE_CHUNKS, (struct ing_str){(char *)h, 32},
	                           (struct ing_str){rec, rec_len}),
	                 0);
}

static void test_corrupt_chunk(void **state)
{
	struct fx *f = *state;
	uint8_t *d = pattern(70000, 4);
	uint8_t sha[32];
	void *buf = NULL;
	size_t len;

	assert_int_equal(store_artifact_put(f->t, d, 70000, sha), 0);
	/* A well-formed chunk record [1, 1, bin] whose bytes are wrong. */
	size_t n = 70000 - STORE_CHUNK_BYTES;
	uint8_t *bad = malloc(n);
	msgpack_sbuffer sb;
	msgpack_packer pk;
	memcpy(bad, d + STORE_CHUNK_BYTES, n);
	bad[100] ^= 1;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_array(&pk, 3);
	msgpack_pack_uint64(&pk, 1);
	msgpack_pack_uint64(&pk, 1);
	msgpack_pack_bin(&pk, n);
	msgpack_pack_bin_body(&pk, bad, n);
	corrupt_chunk(f, d + STORE_CHUNK_BYTES, n, sb.data, (uint32_t)sb.size);
	msgpack_sbuffer_destroy(&sb);
	free(bad);
	assert_int_equal(store_artifact_read(f->t, sha, &buf, &len), ING_ECORRUPT);
	assert_null(buf);
	assert_int_equal(store_failed(f->s), ING_ECORRUPT);
	free(d);
}

static void test_undecodable_chunk(void **state)
{
	struct fx *f = *state;
	uint8_t *d = pattern(10, 5);
	uint8_t sha[32];
	void *buf = NULL;
	size_t len;

	assert_int_equal(store_artifact_put(f->t, d, 10, sha), 0);
	corrupt_chunk(f, d, 10, "garbage", 7);
	assert_int_equal(store_artifact_read(f->t, sha, &buf, &len), ING_ECORRUPT);
	assert_int_equal(store_failed(f->s), ING_ECORRUPT);
	free(d);
}

int main(void)
{
	ing_log_set_level(ING_LOG_LEVEL_OFF);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_sha256),
	    cmocka_unit_test_setup_teardown(test_round_trips, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_too_big_and_absent, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_same_content_twice, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_single_chunk_artifact_is_its_chunk, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_shared_chunks, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_corrupt_chunk, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_undecodable_chunk, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
