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

static void test_base64(void **state)
{
	(void)state;
	static const char *const plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
	static const char *const coded[] = {"",         "Zg==",     "Zm8=",    "Zm9v",
	                                    "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
	for (int i = 0; i < 7; i++) {
		struct ing_buf b = ING_BUF_INIT;
		ing_base64_encode(&b, plain[i], strlen(plain[i]));
		assert_int_equal(b.len, strlen(coded[i]));
		assert_memory_equal(b.data, coded[i], b.len);
		ing_buf_reset(&b);
		assert_int_equal(ing_base64_decode(&b, coded[i], strlen(coded[i])), 0);
		assert_int_equal(b.len, strlen(plain[i]));
		assert_memory_equal(b.data != NULL ? b.data : "", plain[i], b.len);
		ing_buf_free(&b);
	}
	struct ing_buf b = ING_BUF_INIT;
	assert_int_equal(ing_base64_decode(&b, "Zm9vYmE", 7), 0); /* padding optional */
	assert_int_equal(b.len, 5);
	unsigned char all[256];
	for (int i = 0; i < 256; i++)
		all[i] = (unsigned char)i;
	ing_buf_reset(&b);
	ing_base64_encode(&b, all, sizeof(all));
	struct ing_buf back = ING_BUF_INIT;
	assert_int_equal(ing_base64_decode(&back, b.data, b.len), 0);
	assert_int_equal(back.len, 256);
	assert_memory_equal(back.data, all, 256);
	ing_buf_reset(&back);
	assert_int_equal(ing_base64_decode(&back, "Zm 9v", 5), ING_EMALFORMED);
	assert_int_equal(ing_base64_decode(&back, "Zm9=v", 5), ING_EMALFORMED);
	assert_int_equal(ing_base64_decode(&back, "Z", 1), ING_EMALFORMED);
	assert_int_equal(back.len, 0);
	ing_buf_free(&b);
	ing_buf_free(&back);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_utf8_clean),
	    cmocka_unit_test(test_json_str),
	    cmocka_unit_test(test_base64),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
