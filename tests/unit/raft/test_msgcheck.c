/*
 * test_msgcheck.c - raft/msgcheck.c, the checks on what a peer sends before
 * libraft 0.15 reads it: streams of real-format messages (tests/lib/
 * raftwire.h) are forwarded byte for byte whatever the chunking; a message
 * is forwarded only once its header is checked, a configuration entry only
 * once it is whole and checked; and every refusal of msgcheck.h is provoked
 * and named.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <raft.h>

#include "common/mp.h"
#include "raft/msgcheck.h"
#include "tests/lib/raftwire.h"

#define PEER 2

static uint64_t term_five(void *data)
{
	(void)data;
	return 5;
}

/* A stream of every message type, valid. */
static void good_stream(struct mp_out *o, size_t *change_end)
{
	uint8_t cmd[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
	uint8_t barrier[8] = {0};
	uint64_t ids[] = {1, 2, 3};
	struct mp_out conf;
	mp_out_init(&conf);
	rw_configuration(&conf, ids, 3);

	rw_request_vote(o, 6, PEER, 10, 5, 2);
	rw_append_entries_result(o, 6, 0, 10);
	struct rw_entry e[] = {{5, RAFT_COMMAND, 16, cmd}, {6, RAFT_BARRIER, 8, barrier}};
	rw_append_entries(o, 6, 10, 5, 9, e, 2);
	rw_append_entries(o, 6, 12, 6, 12, NULL, 0); /* heartbeat */
	struct rw_entry c[] = {{6, RAFT_COMMAND, 16, cmd},
	                       {6, RAFT_CHANGE, (uint32_t)conf.len, conf.data}};
	rw_append_entries(o, 6, 12, 6, 12, c, 2);
	if (change_end != NULL)
		*change_end = o->len;
	rw_install_snapshot(o, 7, 100, 6, conf.data, conf.len, 300);
	uint8_t tn[24] = {7, 0, 0, 0, 0, 0, 0, 0, 100, 0, 0, 0, 0, 0, 0, 0, 6};
	rw_raw(o, 6, tn, sizeof(tn));
	mp_out_free(&conf);
}

static void feed_in_chunks(const struct mp_out *in, size_t chunk, struct mp_out *out,
                           uint64_t *messages)
{
	struct cons_msgcheck m;
	cons_msgcheck_init(&m, PEER, term_five, NULL);
	for (size_t pos = 0; pos < in->len; pos += chunk) {
		size_t n = in->len - pos < chunk ? in->len - pos : chunk;
		int rv = cons_msgcheck_feed(&m, (const uint8_t *)in->data + pos, n, out);
		if (rv != 0)
			fail_msg("refused at %zu (chunk %zu): %s", pos, chunk, m.error);
	}
	*messages = m.messages;
	cons_msgcheck_free(&m);
}

static void test_good_stream_passes_unchanged(void **state)
{
	(void)state;
	struct mp_out in, out;
	uint64_t messages;
	mp_out_init(&in);
	mp_out_init(&out);
	good_stream(&in, NULL);
	static const size_t chunks[] = {1, 3, 7, 16, 17, 64, 1000, 1u << 20};
	for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
		mp_out_reset(&out);
		feed_in_chunks(&in, chunks[i], &out, &messages);
		assert_int_equal(out.len, in.len);
		assert_memory_equal(out.data, in.data, in.len);
		assert_int_equal(messages, 7);
	}
	mp_out_free(&in);
	mp_out_free(&out);
}

/* Nothing of a message goes on before its header is checked; a
 * configuration entry not before its last byte. */
static void test_holds_back(void **state)
{
	(void)state;
	struct mp_out in, out;
	struct cons_msgcheck m;
	size_t change_end;
	mp_out_init(&in);
	mp_out_init(&out);
	good_stream(&in, &change_end);
	cons_msgcheck_init(&m, PEER, NULL, NULL);
	/* RequestVote: 56 bytes; its first 55 give nothing. */
	assert_int_equal(cons_msgcheck_feed(&m, (const uint8_t *)in.data, 55, &out), 0);
	assert_int_equal(out.len, 0);
	assert_int_equal(cons_msgcheck_feed(&m, (const uint8_t *)in.data + 55, 1, &out), 0);
	assert_int_equal(out.len, 56);
	/* Up to one byte before the end of the configuration entry: every byte
	 * but the configuration's. */
	uint64_t ids[] = {1, 2, 3};
	struct mp_out conf;
	mp_out_init(&conf);
	rw_configuration(&conf, ids, 3);
	assert_int_equal(
	    cons_msgcheck_feed(&m, (const uint8_t *)in.data + 56, change_end - 1 - 56, &out), 0);
	assert_int_equal(out.len, change_end - conf.len);
	assert_int_equal(cons_msgcheck_feed(&m, (const uint8_t *)in.data + change_end - 1, 1, &out),
	                 0);
	assert_int_equal(out.len, change_end);
	assert_memory_equal(out.data, in.data, change_end);
	cons_msgcheck_free(&m);
	mp_out_free(&conf);
	mp_out_free(&in);
	mp_out_free(&out);
}

struct bad_case {
	const char *name;
	void (*make)(struct mp_out *o);
	const char *error;
	bool header_level; /* nothing at all may have been forwarded */
};

static void mk_type0(struct mp_out *o)
{
	uint8_t h[24] = {0};
	rw_raw(o, 0, h, sizeof(h));
}
static void mk_type7(struct mp_out *o)
{
	uint8_t h[24] = {0};
	rw_raw(o, 7, h, sizeof(h));
}
static void mk_rv_short(struct mp_out *o)
{
	uint8_t h[8] = {6};
	rw_raw(o, 3, h, sizeof(h));
}
static void mk_rv_huge_term(struct mp_out *o)
{
	rw_request_vote(o, UINT64_MAX, PEER, 10, 5, 0);
}
static void mk_rv_jump(struct mp_out *o)
{
	rw_request_vote(o, 5 + CONS_TERM_JUMP_MAX + 1, PEER, 10, 5, 0);
}
static void mk_rv_term0(struct mp_out *o)
{
	rw_request_vote(o, 0, PEER, 10, 0, 0);
}
static void mk_rv_other_candidate(struct mp_out *o)
{
	rw_request_vote(o, 6, 3, 10, 5, 0);
}
static void mk_rv_last_term(struct mp_out *o)
{
	rw_request_vote(o, 6, PEER, 10, 7, 0);
}
static void mk_ae_type(struct mp_out *o, uint8_t type)
{
	uint8_t cmd[8] = {0};
	struct rw_entry e[] = {{5, type, 8, cmd}};
	rw_append_entries(o, 6, 10, 5, 9, e, 1);
}
static void mk_ae_type0(struct mp_out *o)
{
	mk_ae_type(o, 0);
}
static void mk_ae_type4(struct mp_out *o)
{
	mk_ae_type(o, 4);
}
static void mk_ae_entry_term0(struct mp_out *o)
{
	struct rw_entry e[] = {{0, RAFT_COMMAND, 8, NULL}};
	rw_append_entries(o, 6, 10, 5, 9, e, 1);
}
static void mk_ae_entry_term_above(struct mp_out *o)
{
	struct rw_entry e[] = {{7, RAFT_COMMAND, 8, NULL}};
	rw_append_entries(o, 6, 10, 5, 9, e, 1);
}
static void mk_ae_odd_len(struct mp_out *o)
{
	struct rw_entry e[] = {{5, RAFT_COMMAND, 12, NULL}};
	rw_append_entries(o, 6, 10, 5, 9, e, 1);
}
static void mk_ae_zero_len(struct mp_out *o)
{
	struct rw_entry e[] = {{5, RAFT_COMMAND, 0, NULL}};
	rw_append_entries(o, 6, 10, 5, 9, e, 1);
}
static void mk_ae_prev_term(struct mp_out *o)
{
	rw_append_entries(o, 6, 10, 9, 9, NULL, 0);
}
static void mk_ae_count_mismatch(struct mp_out *o)
{
	/* n says 2, the header has room for 1 */
	struct mp_out h;
	mp_out_init(&h);
	rw_u64(&h, 6);
	rw_u64(&h, 10);
	rw_u64(&h, 5);
	rw_u64(&h, 9);
	rw_u64(&h, 2);
	rw_u64(&h, 5);
	rw_u64(&h, (uint64_t)8 << 32 | RAFT_COMMAND);
	rw_u64(&h, 0);
	rw_raw(o, 1, h.data, h.len);
	mp_out_free(&h);
}
static void mk_ae_too_many(struct mp_out *o)
{
	rw_u64(o, 1);
	rw_u64(o, 48 + 16 * ((uint64_t)CONS_MSG_MAX_ENTRIES + 1));
}
static void mk_change(struct mp_out *o, const void *conf, size_t len)
{
	struct rw_entry e[] = {{5, RAFT_COMMAND, 8, NULL}, {5, RAFT_CHANGE, (uint32_t)len, conf}};
	rw_append_entries(o, 6, 10, 5, 9, e, 2);
}
static void mk_conf_format(struct mp_out *o)
{
	uint64_t ids[] = {1};
	struct mp_out c;
	mp_out_init(&c);
	rw_configuration(&c, ids, 1);
	c.data[0] = 2;
	mk_change(o, c.data, c.len);
	mp_out_free(&c);
}
static void mk_conf_id0(struct mp_out *o)
{
	uint64_t ids[] = {1, 0};
	struct mp_out c;
	mp_out_init(&c);
	rw_configuration(&c, ids, 2);
	mk_change(o, c.data, c.len);
	mp_out_free(&c);
}
static void mk_conf_dup(struct mp_out *o)
{
	uint64_t ids[] = {1, 2, 1};
	struct mp_out c;
	mp_out_init(&c);
	rw_configuration(&c, ids, 3);
	mk_change(o, c.data, c.len);
	mp_out_free(&c);
}
static void mk_conf_count(struct mp_out *o)
{
	uint64_t ids[] = {1, 2};
	struct mp_out c;
	mp_out_init(&c);
	rw_configuration(&c, ids, 2);
	c.data[1] = 200; /* 200 servers claimed, 2 present */
	mk_change(o, c.data, c.len);
	mp_out_free(&c);
}
static void mk_conf_unterminated(struct mp_out *o)
{
	uint64_t ids[] = {1};
	struct mp_out c;
	mp_out_init(&c);
	rw_configuration(&c, ids, 1);
	/* "127.0.0.1:9000\0" + role: overwrite the NUL and everything after. */
	memset(c.data + 9 + 8, 'x', c.len - 9 - 8);
	mk_change(o, c.data, c.len);
	mp_out_free(&c);
}
static void mk_conf_role(struct mp_out *o)
{
	uint64_t ids[] = {1};
	struct mp_out c;
	mp_out_init(&c);
	rw_configuration(&c, ids, 1);
	c.data[9 + 8 + strlen("127.0.0.1:9000") + 1] = 7;
	mk_change(o, c.data, c.len);
	mp_out_free(&c);
}
static void mk_conf_trailing(struct mp_out *o)
{
	uint64_t ids[] = {1};
	struct mp_out c;
	mp_out_init(&c);
	rw_configuration(&c, ids, 1);
	rw_u64(&c, 0);
	mk_change(o, c.data, c.len);
	mp_out_free(&c);
}
static void mk_is(struct mp_out *o, uint64_t term, uint64_t last_term, size_t data_len)
{
	uint64_t ids[] = {1, 2};
	struct mp_out c;
	mp_out_init(&c);
	rw_configuration(&c, ids, 2);
	rw_install_snapshot(o, term, 100, last_term, c.data, c.len, data_len);
	mp_out_free(&c);
}
static void mk_is_empty(struct mp_out *o)
{
	mk_is(o, 6, 5, 0);
}
static void mk_is_last_term(struct mp_out *o)
{
	mk_is(o, 6, 7, 16);
}
static void mk_is_conf_len(struct mp_out *o)
{
	size_t start = o->len;
	mk_is(o, 6, 5, 16);
	o->data[start + 16 + 32] += 8; /* conf_len no longer matches the header */
}
static void mk_tn_term0(struct mp_out *o)
{
	uint8_t h[24] = {0};
	rw_raw(o, 6, h, sizeof(h));
}

static void test_refusals(void **state)
{
	(void)state;
	static const struct bad_case cases[] = {
	    {"type 0", mk_type0, "message type 0 is unknown", true},
	    {"type 7", mk_type7, "message type 7 is unknown", true},
	    {"short RequestVote", mk_rv_short, "RequestVote: header of 8 bytes", true},
	    {"term 2^64-1", mk_rv_huge_term, "term 18446744073709551615 is absurd", true},
	    {"term jump", mk_rv_jump, "more than 16777216 above the local term 5", true},
	    {"term 0", mk_rv_term0, "RequestVote: term 0", true},
	    {"other candidate", mk_rv_other_candidate, "candidate 3 sent by node 2", true},
	    {"last log term", mk_rv_last_term, "last log term 7 above the term 6", true},
	    {"entry type 0", mk_ae_type0, "entry 0 has type 0", true},
	    {"entry type 4", mk_ae_type4, "entry 0 has type 4", true},
	    {"entry term 0", mk_ae_entry_term0, "entry 0 has term 0", true},
	    {"entry term above", mk_ae_entry_term_above, "entry 0 has term 7 (message term 6)",
	     true},
	    {"entry of 12 bytes", mk_ae_odd_len, "entry 0 has 12 bytes", true},
	    {"entry of 0 bytes", mk_ae_zero_len, "entry 0 has 0 bytes", true},
	    {"previous term", mk_ae_prev_term, "previous term 9 above the term 6", true},
	    {"entry count", mk_ae_count_mismatch, "2 entries in a header for 1", true},
	    {"too many entries", mk_ae_too_many, "AppendEntries: header of", true},
	    {"configuration format", mk_conf_format, "configuration: unknown format", false},
	    {"configuration id 0", mk_conf_id0, "server 1: id 0", false},
	    {"configuration duplicate", mk_conf_dup, "server id 1 twice", false},
	    {"configuration count", mk_conf_count, "200 servers in", false},
	    {"configuration address", mk_conf_unterminated, "bad address", false},
	    {"configuration role", mk_conf_role, "role 7", false},
	    {"configuration trailing", mk_conf_trailing, "bytes after the last server", false},
	    {"empty snapshot", mk_is_empty, "snapshot of 0 bytes", true},
	    {"snapshot term", mk_is_last_term, "last term 7 (message term 6)", true},
	    {"snapshot configuration length", mk_is_conf_len, "configuration of", true},
	    {"TimeoutNow term 0", mk_tn_term0, "TimeoutNow: term 0", true},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct mp_out bad, out;
		struct cons_msgcheck m;
		mp_out_init(&bad);
		mp_out_init(&out);
		/* A good message first: it goes through, the bad one does not. */
		rw_append_entries_result(&bad, 6, 0, 10);
		size_t good_len = bad.len;
		cases[i].make(&bad);
		cons_msgcheck_init(&m, PEER, term_five, NULL);
		int rv = cons_msgcheck_feed(&m, (const uint8_t *)bad.data, bad.len, &out);
		if (rv != ING_EMALFORMED || strstr(m.error, cases[i].error) == NULL)
			fail_msg("%s: rv %d, error '%s', expected '%s'", cases[i].name, rv, m.error,
			         cases[i].error);
		assert_int_equal(m.messages, 1);
		if (cases[i].header_level)
			assert_int_equal(out.len, good_len);
		else
			assert_true(out.len < bad.len);
		/* Sticky. */
		assert_int_equal(cons_msgcheck_feed(&m, (const uint8_t *)bad.data, 1, &out),
		                 ING_EMALFORMED);
		cons_msgcheck_free(&m);
		mp_out_free(&bad);
		mp_out_free(&out);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_good_stream_passes_unchanged),
	    cmocka_unit_test(test_holds_back),
	    cmocka_unit_test(test_refusals),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
