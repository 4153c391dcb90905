/*
 * test_template.c - argv template expansion (node/worker/template.h):
 * every placeholder alone and inside a word, {sources} as one argument per
 * source when alone, {prev} of the first stage and of a later one,
 * {param:NAME} present and missing (the error names the stage and the
 * parameter), words that only look like placeholders copied as they are,
 * and the bounds (a word too long, argv full).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "node/worker/template.h"

#define CAP 16

struct fx {
	msgpack_zone z;
	struct rec_file sources[2];
	struct rec_kv params[2];
	struct template_ctx c;
	char *argv[CAP];
	unsigned argc;
	char why[256];
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	msgpack_zone_init(&f->z, 4096);
	f->sources[0].path = ing_str_c("main.c");
	f->sources[1].path = ing_str_c("include/fir.h");
	f->params[0] = (struct rec_kv){ing_str_c("GAIN"), ing_str_c("3")};
	f->params[1] = (struct rec_kv){ing_str_c("opt_level"), ing_str_c("-O2 -g")};
	f->c = (struct template_ctx){
	    .dir = "/w/job-7-a2",
	    .sources = f->sources,
	    .nsources = 2,
	    .params = f->params,
	    .nparams = 2,
	    .job = 7,
	    .attempt = 2,
	    .out = "/w/job-7-a2/out/1-link",
	    .prev = "/w/job-7-a2/out/0-compile",
	    .stage = ing_str_c("link"),
	};
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	msgpack_zone_destroy(&f->z);
	free(f);
	return 0;
}

/* Expands one word; returns the code.  The new arguments are argv[0..). */
static int expand(struct fx *f, const char *word)
{
	f->argc = 0;
	f->why[0] = '\0';
	return template_expand(&f->c, ing_str_c(word), &f->z, f->argv, &f->argc, CAP, f->why,
	                       sizeof(f->why));
}

static void expect_one(struct fx *f, const char *word, const char *want)
{
	assert_int_equal(expand(f, word), 0);
	assert_int_equal(f->argc, 1);
	assert_string_equal(f->argv[0], want);
}

static void test_placeholders(void **state)
{
	struct fx *f = *state;
	expect_one(f, "cc", "cc");
	expect_one(f, "{src}", "/w/job-7-a2/src");
	expect_one(f, "{source}", "/w/job-7-a2/src/main.c");
	expect_one(f, "{out}", "/w/job-7-a2/out/1-link");
	expect_one(f, "{prev}", "/w/job-7-a2/out/0-compile");
	expect_one(f, "{job}", "7");
	expect_one(f, "{attempt}", "2");
	expect_one(f, "-o{out}/a.out", "-o/w/job-7-a2/out/1-link/a.out");
	expect_one(f, "{job}-{attempt}:{job}", "7-2:7");
	/* Inside a word, {sources} is every source separated by spaces. */
	expect_one(f, "--files={sources}",
	           "--files=/w/job-7-a2/src/main.c /w/job-7-a2/src/include/fir.h");
	/* Alone, one argument per source. */
	assert_int_equal(expand(f, "{sources}"), 0);
	assert_int_equal(f->argc, 2);
	assert_string_equal(f->argv[0], "/w/job-7-a2/src/main.c");
	assert_string_equal(f->argv[1], "/w/job-7-a2/src/include/fir.h");
	assert_int_equal(expand(f, ""), 0);
	assert_int_equal(f->argc, 1);
	assert_string_equal(f->argv[0], "");
}

static void test_params(void **state)
{
	struct fx *f = *state;
	expect_one(f, "{param:GAIN}", "3");
	expect_one(f, "-DGAIN={param:GAIN}", "-DGAIN=3");
	expect_one(f, "{param:opt_level}", "-O2 -g"); /* one argument, no splitting */
	expect_one(f, "{param:GAIN}{param:GAIN}", "33");
	/* Not placeholders: copied as they are. */
	expect_one(f, "{param:}", "{param:}");
	expect_one(f, "{param:9x}", "{param:9x}");
	expect_one(f, "{param:a-b}", "{param:a-b}");
	expect_one(f, "{param:GAIN", "{param:GAIN");
	expect_one(f, "{PARAM:GAIN}", "{PARAM:GAIN}");
	expect_one(f, "{unknown}", "{unknown}");
	/* A parameter the job does not have. */
	assert_int_equal(expand(f, "-DX={param:MISSING}"), ING_ENOTFOUND);
	assert_string_equal(f->why, "stage 'link': argv uses {param:MISSING} but the job has no "
	                            "parameter MISSING");
}

static void test_bounds(void **state)
{
	struct fx *f = *state;
	char *word = malloc(TEMPLATE_WORD_MAX + 2);

	/* The longest word fits; one byte more does not. */
	memset(word, 'x', TEMPLATE_WORD_MAX);
	word[TEMPLATE_WORD_MAX] = '\0';
	assert_int_equal(expand(f, word), 0);
	assert_int_equal(strlen(f->argv[0]), TEMPLATE_WORD_MAX);
	word[TEMPLATE_WORD_MAX] = 'x';
	word[TEMPLATE_WORD_MAX + 1] = '\0';
	assert_int_equal(expand(f, word), ING_ETOOBIG);
	/* Growing past it through a placeholder. */
	memset(word, 'x', TEMPLATE_WORD_MAX - 12);
	strcpy(word + TEMPLATE_WORD_MAX - 12, "{job}{out}");
	assert_int_equal(expand(f, word), ING_ETOOBIG);
	free(word);
	/* argv keeps room for its terminating NULL. */
	f->argc = 0;
	for (unsigned i = 0; i < CAP - 1; i++)
		assert_int_equal(template_append(f->argv, &f->argc, CAP, &f->z, "a", 1), 0);
	assert_int_equal(f->argc, CAP - 1);
	assert_int_equal(template_append(f->argv, &f->argc, CAP, &f->z, "a", 1), ING_ETOOBIG);
	assert_int_equal(template_expand(&f->c, ing_str_c("{job}"), &f->z, f->argv, &f->argc, CAP,
	                                 f->why, sizeof(f->why)),
	                 ING_ETOOBIG);
	f->argc = CAP - 2;
	assert_int_equal(template_expand(&f->c, ing_str_c("{sources}"), &f->z, f->argv, &f->argc,
	                                 CAP, f->why, sizeof(f->why)),
	                 ING_ETOOBIG);
}

static void test_first_stage_and_no_sources(void **state)
{
	struct fx *f = *state;
	f->c.prev = "/w/job-7-a2/src"; /* what the worker passes for stage 0 */
	expect_one(f, "{prev}/main.c", "/w/job-7-a2/src/main.c");
	f->c.nsources = 0;
	assert_int_equal(expand(f, "{sources}"), 0);
	assert_int_equal(f->argc, 0);
	expect_one(f, "{source}", "/w/job-7-a2/src/");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_placeholders, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_params, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bounds, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_first_stage_and_no_sources, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
