/*
 * test_buf.c - growable buffers (common/buf): the growth policy, appends,
 * printf past the capacity, consume, and the NUL after the data.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/buf.h"
#include "common/err.h"

static void test_grow(void **state)
{
	(void)state;
	char *p = NULL;
	size_t cap = 0;
	assert_int_equal(ing_grow(&p, &cap, 0, 64), 0);
	assert_non_null(p);
	assert_int_equal(cap, 64);
	assert_int_equal(ing_grow(&p, &cap, 64, 64), 0);
	assert_int_equal(cap, 64);
	assert_int_equal(ing_grow(&p, &cap, 65, 64), 0);
	assert_int_equal(cap, 128);
	assert_int_equal(ing_grow(&p, &cap, 1000, 64), 0);
	assert_int_equal(cap, 1024);
	char *before = p;
	assert_int_equal(ing_grow(&p, &cap, SIZE_MAX, 64), ING_ENOMEM);
	assert_ptr_equal(p, before); /* unchanged on failure */
	assert_int_equal(cap, 1024);
	free(p);
}

static void test_append_printf_consume(void **state)
{
	(void)state;
	struct ing_buf b = ING_BUF_INIT;
	assert_int_equal(ing_buf_failed(&b), 0);
	assert_int_equal(ing_buf_puts(&b, "abc"), 0);
	assert_string_equal(b.data, "abc");
	for (int i = 0; i < 200; i++)
		assert_int_equal(ing_buf_printf(&b, " %d", i), 0);
	assert_int_equal(b.len, strlen(b.data));
	assert_memory_equal(b.data + b.len - 8, " 198 199", 8);
	char big[1000];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	size_t len = b.len;
	assert_int_equal(ing_buf_printf(&b, "[%s]", big), 0); /* longer than the room left */
	assert_int_equal(b.len, len + 1001);
	assert_int_equal(b.data[b.len - 1], ']');
	assert_int_equal(b.data[b.len], '\0');
	ing_buf_consume(&b, 3);
	assert_int_equal(b.data[0], ' ');
	assert_int_equal(b.len, len + 1001 - 3);
	ing_buf_consume(&b, b.len);
	assert_int_equal(b.len, 0);
	assert_string_equal(b.data, "");
	assert_int_equal(ing_buf_append(&b, "\0z", 2), 0); /* bytes, not only text */
	assert_int_equal(b.len, 2);
	ing_buf_reset(&b);
	assert_int_equal(b.len, 0);
	ing_buf_free(&b);
	assert_null(b.data);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_grow),
	    cmocka_unit_test(test_append_printf_consume),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
