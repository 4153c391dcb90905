/*
 * test_text.c - UTF-8 cleaning and JSON string literals (common/text),
 * checked against jansson, which must read back exactly the cleaned text.
 */
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "common/err.h"
#include "common/text.h"

static void test_utf8_clean(void **state)
{
	(void)state;
	char out[64];
	ing_utf8_clean("plain", out, sizeof(out));
	assert_string_equal(out, "plain");
	ing_utf8_clean("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", out, sizeof(out));
	assert_string_equal(out, "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
	ing_utf8_clean("a\xff"
	               "b\xc3",
	               out, sizeof(out)); /* stray byte, cut sequence */
	assert_string_equal(out, "a?b?");
	ing_utf8_clean("\xc0\xaf|\xed\xa0\x80|\xf4\x90\x80\x80", out, sizeof(out));
	assert_string_equal(out, "??|???|????");  /* overlong, surrogate, > U+10FFFF */
	ing_utf8_clean("ab\xe2\x82\xac", out, 5); /* no room for the whole euro sign */
	assert_string_equal(out, "ab");
	ing_utf8_clean("abcdef", out, 1);
	assert_string_equal(out, "");
}

static void check_json(const char *in, size_t n, const char *literal, const char *decoded)
{
	struct ing_buf b = ING_BUF_INIT;
	ing_buf_json_str(&b, in, n);
	assert_string_equal(b.data, literal);
	char doc[512];
	snprintf(doc, sizeof(doc), "[%s]", b.data);
	json_error_t je;
	json_t *j = json_loads(doc, 0, &je);
	assert_non_null(j);
	assert_string_equal(json_string_value(json_array_get(j, 0)), decoded);
	json_decref(j);
	ing_buf_free(&b);
}

static void test_json_str(void **state)
{
	(void)state;
	check_json("", 0, "\"\"", "");
	check_json("job assigned", 12, "\"job assigned\"", "job assigned");
	check_json("q\"b\\s/", 6, "\"q\\\"b\\\\s/\"", "q\"b\\s/");
	check_json("l1\nl2\r\t\x01", 8, "\"l1\\nl2\\r\\t\\u0001\"", "l1\nl2\r\t\x01");
	check_json("caf\xc3\xa9\xff!", 7, "\"caf\xc3\xa9?!\"", "caf\xc3\xa9?!");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_utf8_clean),
	    cmocka_unit_test(test_json_str),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
