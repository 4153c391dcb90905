/*
 * test_placement.c - the leader's choice of node and GPUs for one job
 * (node/leader/placement.c): capabilities, labels and liveness first; a
 * job needing GPUs only where that many are free, with a free slot too;
 * the lowest free GPUs; best fit for GPU jobs, most free slots for the
 * others; what a round has given out is no longer free; and every reason
 * a job waits, word for word.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "common/err.h"
#include "node/leader/placement.h"

#define S(lit) ((struct ing_str){(lit), sizeof(lit) - 1})

static struct ing_str cap_nvcc = S("nvcc");
static struct ing_str cap_cc = S("cc");
static struct rec_kv label_x86 = {S("arch"), S("x86_64")};

#define WORLD_MAX 12

struct world {
	struct rec_node rec[WORLD_MAX];
	struct rec_gpu gpus[WORLD_MAX][ING_MAX_GPUS];
	struct rec_gpu_hold held[WORLD_MAX][ING_MAX_GPUS];
	struct place_node pn[WORLD_MAX];
	unsigned n;
};

/* Adds node `id` with `slots` (used `used`), capability nvcc and label
 * arch=x86_64, offering the GPUs of mask `offered` and holding those of
 * `held` (for job 99). */
static void add(struct world *w, uint64_t id, uint32_t slots, uint32_t used, uint64_t offered,
                uint64_t held)
{
	struct rec_node *r = &w->rec[w->n];
	assert_true(w->n < WORLD_MAX);
	memset(r, 0, sizeof(*r));
	r->id = id;
	r->ncaps = 1;
	r->caps = &cap_nvcc;
	r->nlabels = 1;
	r->labels = &label_x86;
	r->slots = slots;
	r->used_slots = used;
	r->gpus = w->gpus[w->n];
	r->held = w->held[w->n];
	for (uint32_t g = 0; g <= ING_GPU_INDEX_MAX; g++) {
		if (offered & (1ull << g))
			r->gpus[r->ngpus++] = (struct rec_gpu){g, S(""), 0};
		if (held & (1ull << g))
			r->held[r->nheld++] = (struct rec_gpu_hold){g, 99};
	}
	w->n++;
}

static void init(struct world *w)
{
	for (unsigned i = 0; i < w->n; i++)
		place_node_init(&w->pn[i], &w->rec[i], 0);
}

static struct rec_stage_def stage1[1];

/* A target "t" needing `gpus` GPUs, with capability nvcc. */
static struct rec_target target(uint32_t gpus)
{
	struct rec_target t;
	memset(&t, 0, sizeof(t));
	memset(stage1, 0, sizeof(stage1));
	stage1[0].name = S("run");
	t.name = S("t");
	t.ncaps = 1;
	t.caps = &cap_nvcc;
	t.gpus = gpus;
	t.nstages = 1;
	t.stages = stage1;
	return t;
}

/* Picks for t; expects node `id` and the GPUs `want` ("0,2"). */
static void expect_pick(struct world *w, const struct rec_target *t, uint64_t id, const char *want)
{
	struct place_choice c;
	char reason[160], got[64] = "";
	size_t len = 0;

	if (place_pick(t, w->pn, w->n, false, &c, reason, sizeof(reason)) != 0)
		fail_msg("no pick: %s", reason);
	assert_int_equal(w->rec[c.node].id, id);
	for (uint32_t i = 0; i < c.ngpus; i++)
		len +=
		    (size_t)snprintf(got + len, sizeof(got) - len, "%s%u", i ? "," : "", c.gpus[i]);
	assert_string_equal(got, want);
	place_take(w->pn, &c);
}

/* The category a reason belongs to (the metric's label), by its wording. */
static enum place_wait category_of(const char *reason)
{
	if (strncmp(reason, "no live, non-draining node (", 28) == 0)
		return PLACE_WAIT_NO_LIVE_NODE;
	if (strstr(reason, " are busy") != NULL)
		return PLACE_WAIT_BUSY;
	if (strstr(reason, "free on node") != NULL)
		return PLACE_WAIT_GPUS_BUSY;
	return PLACE_WAIT_NO_MATCH;
}

static void expect_wait(struct world *w, const struct rec_target *t, const char *want)
{
	struct place_choice c;
	char reason[160];

	assert_int_equal(place_pick(t, w->pn, w->n, false, &c, reason, sizeof(reason)),
	                 ING_ENOTFOUND);
	assert_string_equal(reason, want);
	assert_string_equal(place_wait_name(c.wait), place_wait_name(category_of(want)));
}

/*
 * Places ahead of a free slot: a free slot anywhere comes first; with none,
 * a job that may wait goes to the fitting node with the most places ahead
 * (slots + ahead - max(used, slots)), and a round's picks and ends move
 * them; a GPU job, a job that may not wait, a node over its places, or
 * one with no slot get none.
 */
static void test_ahead(void **state)
{
	(void)state;
	struct world w = {0};
	struct rec_target t = target(0), tg = target(1);
	struct place_choice c;
	char reason[160];

	add(&w, 1, 2, 2, 0, 0); /* full, 2 places ahead free */
	add(&w, 2, 2, 1, 0, 0); /* one free slot */
	add(&w, 3, 2, 3, 1, 0); /* full, 1 place ahead free, a GPU */
	add(&w, 4, 0, 0, 0, 0); /* no slot: no place ahead either */
	for (unsigned i = 0; i < w.n; i++)
		place_node_init(&w.pn[i], &w.rec[i], 2);
	assert_int_equal(w.pn[0].free_ahead, 2);
	assert_int_equal(w.pn[1].free_slots, 1);
	assert_int_equal(w.pn[1].free_ahead, 2);
	assert_int_equal(w.pn[2].free_ahead, 1);
	assert_int_equal(w.pn[3].free_ahead, 0);
	assert_int_equal(place_room(&t, w.pn, w.n, false), 1);
	assert_int_equal(place_room(&t, w.pn, w.n, true), 6);
	/* node 3's GPU is free, but a GPU job takes no place ahead */
	assert_int_equal(place_room(&tg, w.pn, w.n, true), 0);

	/* the free slot first, even for a job that may wait */
	assert_int_equal(place_pick(&t, w.pn, w.n, true, &c, reason, sizeof(reason)), 0);
	assert_int_equal(w.rec[c.node].id, 2);
	assert_false(c.ahead);
	place_take(w.pn, &c);
	assert_int_equal(w.pn[1].free_slots, 0);
	assert_int_equal(w.pn[1].free_ahead, 2);

	/* no free slot left: only a job that may wait goes, to the most places */
	assert_int_equal(place_pick(&t, w.pn, w.n, false, &c, reason, sizeof(reason)),
	                 ING_ENOTFOUND);
	assert_string_equal(reason, "all 4 nodes that can run target 't' are busy");
	assert_int_equal(place_pick(&t, w.pn, w.n, true, &c, reason, sizeof(reason)), 0);
	assert_int_equal(w.rec[c.node].id, 1);
	assert_true(c.ahead);
	place_take(w.pn, &c);
	assert_int_equal(w.pn[0].free_ahead, 1);
	assert_int_equal(w.pn[0].used, 3);

	/* nor does place_pick give it one */
	assert_int_equal(place_pick(&tg, w.pn, w.n, true, &c, reason, sizeof(reason)),
	                 ING_ENOTFOUND);

	/* an end being proposed on a node over its slots frees a place ahead,
	 * not a slot; on one at its slots, a slot */
	place_node_adjust(&w.pn[2], -1);
	assert_int_equal(w.pn[2].free_slots, 0);
	assert_int_equal(w.pn[2].free_ahead, 2);
	place_node_adjust(&w.pn[2], -1);
	assert_int_equal(w.pn[2].free_slots, 1);
	assert_int_equal(w.pn[2].free_ahead, 2);

	/* a node holding more than slots + ahead (its ahead lowered) has none */
	w.rec[0].used_slots = 7;
	place_node_init(&w.pn[0], &w.rec[0], 2);
	assert_int_equal(w.pn[0].free_slots, 0);
	assert_int_equal(w.pn[0].free_ahead, 0);
	/* a silent node has none */
	place_node_silence(&w.pn[1]);
	assert_int_equal(w.pn[1].free_ahead, 0);
}

static void test_wait_names(void **state)
{
	(void)state;
	assert_string_equal(place_wait_name(PLACE_WAIT_BACKOFF), "retry_backoff");
	assert_string_equal(place_wait_name(PLACE_WAIT_NO_LIVE_NODE), "no_live_node");
	assert_string_equal(place_wait_name(PLACE_WAIT_NO_MATCH), "no_matching_node");
	assert_string_equal(place_wait_name(PLACE_WAIT_GPUS_BUSY), "gpus_busy");
	assert_string_equal(place_wait_name(PLACE_WAIT_BUSY), "busy");
	assert_string_equal(place_wait_name(PLACE_WAIT_COUNT), "unknown");
	assert_string_equal(place_wait_name(-1), "unknown");
}

static void test_node_init(void **state)
{
	struct world w = {.n = 0};
	(void)state;
	add(&w, 1, 4, 1, 0x0f, 0x05);
	add(&w, 2, 4, 4, 0x03, 0);
	add(&w, 3, 4, 0, 0x03, 0);
	w.rec[2].draining = true;
	init(&w);
	assert_int_equal(w.pn[0].free_slots, 3);
	assert_int_equal(w.pn[0].offered_gpus, 0x0f);
	assert_int_equal(w.pn[0].free_gpus, 0x0a);
	assert_int_equal(w.pn[1].free_slots, 0);
	assert_int_equal(w.pn[1].free_gpus, 0x03);
	assert_int_equal(w.pn[2].free_slots, 0); /* draining: nothing free */
	assert_int_equal(w.pn[2].free_gpus, 0);
	assert_int_equal(w.pn[2].offered_gpus, 0x03);
}

/* GPUs are held with the slot, lowest first, and a round's choices count. */
static void test_gpus_free_and_lowest(void **state)
{
	struct world w = {.n = 0};
	struct rec_target t1 = target(1), t2 = target(2);
	(void)state;
	add(&w, 2, 8, 0, 0x0d, 0x01); /* GPUs 0, 2, 3; 0 held */
	init(&w);
	expect_pick(&w, &t1, 2, "2");
	expect_pick(&w, &t1, 2, "3");
	expect_wait(&w, &t1, "needs 1 GPU, none free on node 2");
	expect_wait(&w, &t2, "needs 2 GPUs, fewer than 2 free on node 2");
	/* A job without GPUs still fits (slots are free). */
	struct rec_target t0 = target(0);
	expect_pick(&w, &t0, 2, "");
}

/* The most any stage sees, not only the target's own. */
static void test_stage_gpus_count(void **state)
{
	struct world w = {.n = 0};
	struct rec_target t = target(0);
	(void)state;
	add(&w, 1, 2, 0, 0x01, 0);
	add(&w, 2, 2, 0, 0x07, 0);
	init(&w);
	stage1[0].gpus = 3;
	expect_pick(&w, &t, 2, "0,1,2");
}

/* A GPU job goes where the fewest GPUs are free (best fit); a job without
 * GPUs where the most slots are free, then the fewest GPUs. */
static void test_best_fit(void **state)
{
	struct world w = {.n = 0};
	struct rec_target t1 = target(1), t0 = target(0);
	(void)state;
	add(&w, 1, 4, 0, 0xff, 0); /* 8 GPUs */
	add(&w, 2, 4, 0, 0x03, 0); /* 2 GPUs */
	add(&w, 3, 8, 0, 0, 0);    /* none, more slots */
	add(&w, 4, 4, 0, 0x01, 0); /* 1 GPU */
	init(&w);
	expect_pick(&w, &t1, 4, "0");
	expect_pick(&w, &t1, 2, "0");
	expect_pick(&w, &t1, 2, "1");
	expect_pick(&w, &t1, 1, "0");
	expect_pick(&w, &t0, 3, "");
	/* Equal slots: the node without GPUs. */
	struct world v = {.n = 0};
	add(&v, 5, 2, 0, 0x0f, 0);
	add(&v, 6, 2, 0, 0, 0);
	init(&v);
	expect_pick(&v, &t0, 6, "");
	expect_pick(&v, &t0, 5, "");
}

/* GPUs free but no slot: busy. */
static void test_gpus_need_a_slot(void **state)
{
	struct world w = {.n = 0};
	struct rec_target t1 = target(1);
	(void)state;
	add(&w, 2, 1, 1, 0x01, 0);
	add(&w, 3, 2, 2, 0x03, 0);
	init(&w);
	expect_wait(&w, &t1, "all 2 nodes that can run target 't' are busy");
	w.rec[1].used_slots = 1;
	init(&w);
	expect_pick(&w, &t1, 3, "0");
}

static void test_reasons(void **state)
{
	struct world w = {.n = 0};
	struct rec_target t1 = target(1), t4 = target(4);
	(void)state;
	/* No GPU anywhere among the nodes that fit. */
	add(&w, 1, 2, 0, 0, 0);
	add(&w, 3, 2, 0, 0, 0);
	init(&w);
	expect_wait(
	    &w, &t1,
	    "needs 1 GPU: none of the nodes that can run target 't' (nodes 1, 3) has a GPU");
	/* Not enough GPUs on any one node. */
	w.n = 0;
	add(&w, 1, 2, 0, 0x03, 0);
	add(&w, 3, 2, 0, 0x01, 0);
	init(&w);
	expect_wait(&w, &t4,
	            "needs 4 GPUs: the nodes that can run target 't' offer at most 2 (nodes 1, 3)");
	/* Enough, but held. */
	w.n = 0;
	add(&w, 2, 2, 1, 0x01, 0x01);
	add(&w, 3, 2, 1, 0x01, 0x01);
	add(&w, 4, 2, 0, 0, 0); /* no GPU: not listed */
	init(&w);
	expect_wait(&w, &t1, "needs 1 GPU, none free on nodes 2, 3");
	/* A node down or draining does not count, and a GPU node that lacks
	 * the capability does not either. */
	w.n = 0;
	add(&w, 2, 2, 0, 0x01, 0);
	w.rec[0].down = true;
	add(&w, 3, 2, 0, 0x01, 0);
	w.rec[1].draining = true;
	add(&w, 4, 2, 0, 0x01, 0);
	w.rec[2].ncaps = 1;
	w.rec[2].caps = &cap_cc;
	add(&w, 5, 2, 0, 0, 0);
	init(&w);
	expect_wait(&w, &t1,
	            "needs 1 GPU: none of the nodes that can run target 't' (node 5) has a GPU");
	/* The reasons from before GPUs, unchanged. */
	w.n = 0;
	add(&w, 1, 2, 0, 0, 0);
	w.rec[0].down = true;
	init(&w);
	expect_wait(&w, &t1, "no live, non-draining node (1 registered: 1 down, 0 draining)");
	w.rec[0].down = false;
	w.rec[0].ncaps = 1;
	w.rec[0].caps = &cap_cc;
	init(&w);
	expect_wait(&w, &t1, "no live, non-draining node has capability 'nvcc' (target 't')");
	w.rec[0].caps = &cap_nvcc;
	t1.nlabels = 1;
	struct rec_kv arm = {S("arch"), S("aarch64")};
	t1.labels = &arm;
	init(&w);
	expect_wait(&w, &t1, "no live, non-draining node has label arch=aarch64 (target 't')");
	/* Many nodes: eight listed, then "...". */
	struct rec_target t2 = target(1);
	w.n = 0;
	for (uint64_t id = 1; id <= 8; id++)
		add(&w, id, 1, 1, 0x01, 0x01);
	init(&w);
	expect_wait(&w, &t2, "needs 1 GPU, none free on nodes 1, 2, 3, 4, 5, 6, 7, 8");
	add(&w, 9, 1, 1, 0x01, 0x01);
	init(&w);
	expect_wait(&w, &t2, "needs 1 GPU, none free on nodes 1, 2, 3, 4, 5, 6, 7, 8, ...");
}

/* A node this leader has not heard from lately is not live, whatever its
 * record says (issue 11 item 4: work went to a leader killed a moment
 * before). */
static void test_silent(void **state)
{
	struct world w = {.n = 0};
	struct rec_target t0 = target(0), t1 = target(1);
	(void)state;
	add(&w, 1, 4, 0, 0x01, 0);
	add(&w, 2, 1, 0, 0, 0);
	init(&w);
	place_node_silence(&w.pn[0]);
	assert_true(w.pn[0].silent);
	assert_int_equal(w.pn[0].free_slots, 0);
	assert_int_equal(w.pn[0].free_gpus, 0);
	/* The silent node has the most free slots and the only GPU: it gets
	 * neither kind of job. */
	expect_pick(&w, &t0, 2, "");
	expect_wait(&w, &t0, "all 1 nodes that can run target 't' are busy");
	expect_wait(&w, &t1,
	            "needs 1 GPU: none of the nodes that can run target 't' (node 2) has a GPU");
	/* Every node silent (or down): the reason counts them apart. */
	place_node_silence(&w.pn[1]);
	expect_wait(&w, &t0,
	            "no live, non-draining node (2 registered: 0 down, 0 draining, 2 not heard "
	            "from by this leader lately)");
	w.rec[1].down = true;
	init(&w);
	place_node_silence(&w.pn[0]);
	place_node_silence(&w.pn[1]);
	expect_wait(&w, &t0,
	            "no live, non-draining node (2 registered: 1 down, 0 draining, 1 not heard "
	            "from by this leader lately)");
}

/* A hold on a GPU the node no longer offers frees nothing; GPU 63 works. */
static void test_held_not_offered_and_high_index(void **state)
{
	struct world w = {.n = 0};
	struct rec_target t1 = target(1);
	(void)state;
	add(&w, 2, 4, 1, 1ull << 63, 1ull << 5);
	init(&w);
	assert_int_equal(w.pn[0].free_gpus, 1ull << 63);
	expect_pick(&w, &t1, 2, "63");
	expect_wait(&w, &t1, "needs 1 GPU, none free on node 2");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_node_init),
	    cmocka_unit_test(test_gpus_free_and_lowest),
	    cmocka_unit_test(test_stage_gpus_count),
	    cmocka_unit_test(test_best_fit),
	    cmocka_unit_test(test_gpus_need_a_slot),
	    cmocka_unit_test(test_reasons),
	    cmocka_unit_test(test_silent),
	    cmocka_unit_test(test_held_not_offered_and_high_index),
	    cmocka_unit_test(test_wait_names),
	    cmocka_unit_test(test_ahead),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
