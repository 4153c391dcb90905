/*
 * test_text.c - UTF-8 cleaning and checks and JSON string literals (common/text),
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

static void sanitized(const char *in, const char *want, size_t replaced)
{
	char buf[64];
	snprintf(buf, sizeof(buf), "%s", in);
	assert_int_equal(ing_utf8_sanitize(buf), replaced);
	assert_string_equal(buf, want);
	assert_true(ing_utf8_valid(buf, strlen(buf)));
}

static void test_utf8_sanitize(void **state)
{
	(void)state;
	sanitized("plain ascii\ttab", "plain ascii\ttab", 0);
	sanitized("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
	          "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 0);
	sanitized("a\xffz", "a?z", 1);                          /* never a lead byte */
	sanitized("a\xc3", "a?", 1);                            /* cut short at the end */
	sanitized("a\xe2\x82z", "a??z", 2);                     /* cut short in the middle */
	sanitized("\xc0\xaf", "??", 2);                         /* overlong '/' */
	sanitized("\xe0\x80\xaf", "???", 3);                    /* overlong, 3 bytes */
	sanitized("\xed\xa0\x80", "???", 3);                    /* surrogate U+D800 */
	sanitized("\xf4\x90\x80\x80", "????", 4);               /* past U+10FFFF */
	sanitized("line\nbreak\r\x01\x7f", "line?break???", 4); /* control characters */
	assert_false(ing_utf8_valid("\x80", 1));
	assert_true(ing_utf8_valid("", 0));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_utf8_clean),
	    cmocka_unit_test(test_json_str),
	    cmocka_unit_test(test_utf8_sanitize),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
