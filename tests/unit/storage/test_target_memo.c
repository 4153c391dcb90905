/*
 * test_target_memo.c - the decoded-target memo (storage/target_memo.c):
 * equal bytes hit, any other bytes (a replaced target, a changed count, a
 * rollback to older bytes) decode again and give what rec_target_decode
 * gives; records returned in the current epoch are never refilled;
 * encode_active keeps the memo in step with what its caller stores; large
 * records and broken ones go around it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "storage/target_memo.h"

#define S(lit) ((struct ing_str){lit, sizeof(lit) - 1})

static const struct ing_str argv1[] = {{"make", 4}, {"all", 3}};

static struct rec_stage_def stage = {
    .name = {"build", 5},
    .nargv = 2,
    .argv = (struct ing_str *)argv1,
    .timeout_ms = 1000,
    .stdout_path = {"", 0},
};

static struct rec_target target(const char *name, uint64_t revision, uint32_t active)
{
	struct rec_target t = {0};
	t.name = ing_str_c(name);
	t.description = S("memo test");
	t.nstages = 1;
	t.stages = &stage;
	t.revision = revision;
	t.active_jobs = active;
	t.created_at_ms = 5;
	t.updated_at_ms = 6 + revision;
	return t;
}

/* Encodes t into a fresh buffer (the caller frees it). */
static struct ing_str encoded(const struct rec_target *t)
{
	struct mp_out o;
	mp_out_init(&o);
	assert_int_equal(rec_target_encode(t, &o), 0);
	char *p = malloc(o.len);
	assert_non_null(p);
	memcpy(p, o.data, o.len);
	struct ing_str s = {p, (uint32_t)o.len};
	mp_out_free(&o);
	return s;
}

static void counts(struct rec_target_memo *m, uint64_t hits, uint64_t decodes)
{
	uint64_t h, d;
	rec_target_memo_stats(m, &h, &d);
	assert_int_equal(h, hits);
	assert_int_equal(d, decodes);
}

static void test_hit_and_change(void **state)
{
	(void)state;
	struct rec_target_memo *m;
	msgpack_zone *z = msgpack_zone_new(1024);
	struct rec_target a = target("alpha", 1, 0), b = target("alpha", 2, 0), out;
	struct ing_str ba = encoded(&a), bb = encoded(&b);

	assert_int_equal(rec_target_memo_new(&m), 0);
	assert_int_equal(rec_target_memo_decode(m, 1, ba, z, &out, NULL), 0);
	counts(m, 0, 1);
	assert_int_equal(rec_target_memo_decode(m, 2, ba, z, &out, NULL), 0);
	counts(m, 1, 1);
	assert_int_equal(out.revision, 1);
	assert_true(ing_str_eq(out.name, S("alpha")));
	assert_int_equal(out.nstages, 1);
	assert_true(ing_str_eq(out.stages[0].argv[1], S("all")));
	/* The target replaced: other bytes, decoded again, the new record. */
	assert_int_equal(rec_target_memo_decode(m, 3, bb, z, &out, NULL), 0);
	counts(m, 1, 2);
	assert_int_equal(out.revision, 2);
	/* Back to the old bytes (a rolled back batch, a snapshot): the old
	 * record, never the newer one kept. */
	assert_int_equal(rec_target_memo_decode(m, 4, ba, z, &out, NULL), 0);
	assert_int_equal(out.revision, 1);
	/* Memo results do not point into the caller's buffer. */
	memset((char *)ba.ptr, 0, ba.len);
	assert_true(ing_str_eq(out.name, S("alpha")));
	free((char *)ba.ptr);
	free((char *)bb.ptr);
	rec_target_memo_free(m);
	msgpack_zone_free(z);
}

static void test_encode_active(void **state)
{
	(void)state;
	struct rec_target_memo *m;
	msgpack_zone *z = msgpack_zone_new(1024);
	struct rec_target a = target("alpha", 1, 7), out, back, other = target("alpha", 1, 7);
	struct ing_str ba = encoded(&a);
	struct mp_out o;
	mp_out_init(&o);

	assert_int_equal(rec_target_memo_new(&m), 0);
	assert_int_equal(rec_target_memo_decode(m, 1, ba, z, &out, NULL), 0);
	out.active_jobs = 8;
	assert_int_equal(rec_target_memo_encode_active(m, 1, &out, &o), 0);
	/* What it encoded is what rec_target_encode gives... */
	struct ing_str want = encoded(&out);
	assert_int_equal(o.len, want.len);
	assert_memory_equal(o.data, want.ptr, want.len);
	/* ...and reading it back hits, with the new count. */
	assert_int_equal(rec_target_memo_decode(m, 2, want, z, &back, NULL), 0);
	counts(m, 1, 1);
	assert_int_equal(back.active_jobs, 8);
	assert_int_equal(back.revision, 1);
	/* The old bytes are no longer kept: decoded, count 7. */
	assert_int_equal(rec_target_memo_decode(m, 3, ba, z, &back, NULL), 0);
	counts(m, 1, 2);
	assert_int_equal(back.active_jobs, 7);
	/* A record the memo did not return, or one of another epoch: not
	 * kept, the caller encodes it. */
	mp_out_reset(&o);
	assert_int_equal(rec_target_memo_encode_active(m, 3, &other, &o), ING_ENOTFOUND);
	assert_int_equal(rec_target_memo_encode_active(m, 4, &back, &o), ING_ENOTFOUND);
	assert_int_equal(o.len, 0);
	mp_out_free(&o);
	free((char *)ba.ptr);
	free((char *)want.ptr);
	rec_target_memo_free(m);
	msgpack_zone_free(z);
}

/* Counts moved one by one across every length of their encoding: each
 * save gives the bytes rec_target_encode gives, and reads back as a hit. */
static void test_encode_active_steps(void **state)
{
	(void)state;
	static const uint32_t from[] = {0, 125, 250, 65530, UINT32_MAX - 7};
	struct rec_target_memo *m;
	msgpack_zone *z = msgpack_zone_new(1024);
	struct mp_out o;
	uint64_t epoch = 0;
	mp_out_init(&o);
	assert_int_equal(rec_target_memo_new(&m), 0);
	for (unsigned f = 0; f < sizeof(from) / sizeof(from[0]); f++) {
		struct rec_target a = target("steps", 3, from[f]), cur;
		a.created_at_ms = f == 4 ? UINT64_MAX : 200 * f;
		a.updated_at_ms = f == 4 ? 1ull << 40 : 70000;
		struct ing_str bytes = encoded(&a);
		for (int i = 0; i < 12; i++) {
			struct ing_str want;
			epoch++;
			assert_int_equal(rec_target_memo_decode(m, epoch, bytes, z, &cur, NULL), 0);
			if (i > 0)
				assert_int_equal(cur.active_jobs, from[f] + (i < 7 ? i : 13 - i));
			cur.active_jobs = from[f] + (i < 6 ? i + 1 : 12 - i);
			mp_out_reset(&o);
			assert_int_equal(rec_target_memo_encode_active(m, epoch, &cur, &o), 0);
			want = encoded(&cur);
			assert_int_equal(o.len, want.len);
			assert_memory_equal(o.data, want.ptr, want.len);
			free((char *)bytes.ptr);
			bytes = want;
		}
		free((char *)bytes.ptr);
	}
	uint64_t hits, decodes;
	rec_target_memo_stats(m, &hits, &decodes);
	assert_int_equal(decodes, 5);
	assert_int_equal(hits, 5 * 11);
	mp_out_free(&o);
	rec_target_memo_free(m);
	msgpack_zone_free(z);
}

/* Every slot returned in one epoch: the next record goes around the memo
 * (into the zone) and the ones returned stay intact. */
static void test_epoch_keeps_records(void **state)
{
	(void)state;
	struct rec_target_memo *m;
	msgpack_zone *z = msgpack_zone_new(1024);
	struct rec_target out[REC_TARGET_MEMO_SLOTS + 1];
	struct ing_str b[REC_TARGET_MEMO_SLOTS + 1];
	char name[16];

	assert_int_equal(rec_target_memo_new(&m), 0);
	for (int i = 0; i <= REC_TARGET_MEMO_SLOTS; i++) {
		snprintf(name, sizeof(name), "t%d", i);
		struct rec_target t = target(name, (uint64_t)i + 1, 0);
		b[i] = encoded(&t);
		assert_int_equal(rec_target_memo_decode(m, 9, b[i], z, &out[i], NULL), 0);
	}
	for (int i = 0; i <= REC_TARGET_MEMO_SLOTS; i++) {
		snprintf(name, sizeof(name), "t%d", i);
		assert_true(ing_str_eq_c(out[i].name, name));
		assert_int_equal(out[i].revision, (uint64_t)i + 1);
	}
	/* The last one was not kept: decoding it again decodes. */
	counts(m, 0, REC_TARGET_MEMO_SLOTS + 1);
	assert_int_equal(rec_target_memo_decode(m, 10, b[REC_TARGET_MEMO_SLOTS], z, &out[0], NULL),
	                 0);
	counts(m, 0, REC_TARGET_MEMO_SLOTS + 2);
	/* In a new epoch the least recently used slot (t0's) was refilled;
	 * t1 is still kept. */
	assert_int_equal(rec_target_memo_decode(m, 10, b[1], z, &out[1], NULL), 0);
	counts(m, 1, REC_TARGET_MEMO_SLOTS + 2);
	for (int i = 0; i <= REC_TARGET_MEMO_SLOTS; i++)
		free((char *)b[i].ptr);
	rec_target_memo_free(m);
	msgpack_zone_free(z);
}

static void test_broken_and_large(void **state)
{
	(void)state;
	struct rec_target_memo *m;
	msgpack_zone *z = msgpack_zone_new(1024);
	struct rec_target a = target("alpha", 1, 0), out;
	struct ing_str ba = encoded(&a);
	struct ing_error e;

	assert_int_equal(rec_target_memo_new(&m), 0);
	/* A truncated record fails as rec_target_decode fails, every time. */
	struct ing_str cut = {ba.ptr, ba.len - 1};
	assert_int_equal(rec_target_memo_decode(m, 1, cut, z, &out, &e),
	                 rec_target_decode(cut, z, &out, NULL));
	assert_int_not_equal(rec_target_memo_decode(m, 2, cut, z, &out, &e), 0);
	counts(m, 0, 2);
	/* A record over the memo's size (64 argv of 1 KiB, two stages) is
	 * decoded each time, and right. */
	static char arg[ING_ARG_MAX];
	static struct ing_str args[ING_MAX_ARGV];
	struct rec_stage_def st[2] = {stage, stage};
	memset(arg, 'a', sizeof(arg));
	for (int i = 0; i < ING_MAX_ARGV; i++)
		args[i] = (struct ing_str){arg, ING_ARG_MAX};
	st[0].nargv = st[1].nargv = ING_MAX_ARGV;
	st[0].argv = st[1].argv = args;
	st[1].name = S("test");
	a.nstages = 2;
	a.stages = st;
	struct ing_str big = encoded(&a);
	assert_true(big.len > REC_TARGET_MEMO_MAX_BYTES);
	assert_int_equal(rec_target_memo_decode(m, 3, big, z, &out, &e), 0);
	assert_int_equal(rec_target_memo_decode(m, 4, big, z, &out, &e), 0);
	counts(m, 0, 4);
	assert_int_equal(out.nstages, 2);
	assert_int_equal(out.stages[1].argv[63].len, ING_ARG_MAX);
	free((char *)big.ptr);
	free((char *)ba.ptr);
	rec_target_memo_free(m);
	msgpack_zone_free(z);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_hit_and_change),      cmocka_unit_test(test_encode_active),
	    cmocka_unit_test(test_encode_active_steps), cmocka_unit_test(test_epoch_keeps_records),
	    cmocka_unit_test(test_broken_and_large),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
