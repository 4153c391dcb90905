/*
 * test_json.c - JSON <-> msgpack (rpc/json.h): every type both ways, bin
 * paths decoded from base64 at the right places only, errors naming the
 * place, and a round trip msgpack -> JSON -> msgpack of an API-shaped value.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/mp.h"
#include "rpc/json.h"

/* JSON text -> msgpack -> JSON text (compact, keys sorted). */
static char *through(const char *json, const char *const *bins, int *rv, struct ing_error *e)
{
	json_error_t je;
	json_t *j = json_loads(json, 0, &je);
	assert_non_null(j);
	struct mp_out o;
	mp_out_init(&o);
	*rv = rpc_json_to_mp(j, bins, &o.pk, e);
	json_decref(j);
	if (*rv != 0) {
		mp_out_free(&o);
		return NULL;
	}
	msgpack_zone z;
	msgpack_zone_init(&z, 1024);
	msgpack_object obj;
	size_t used;
	assert_int_equal(mp_parse(o.data, o.len, &z, &obj, &used, NULL), 0);
	assert_int_equal(used, o.len);
	json_t *back = rpc_mp_to_json(&obj);
	assert_non_null(back);
	char *text = json_dumps(back, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(back);
	msgpack_zone_destroy(&z);
	mp_out_free(&o);
	return text;
}

static void test_types_round_trip(void **state)
{
	(void)state;
	struct ing_error e;
	int rv;
	char *t = through("{\"a\":1,\"b\":-2,\"c\":1.5,\"d\":\"x\",\"e\":[true,false,null],"
	                  "\"f\":{\"g\":[]}}",
	                  NULL, &rv, &e);
	assert_string_equal(t, "{\"a\":1,\"b\":-2,\"c\":1.5,\"d\":\"x\",\"e\":[true,false,null],"
	                       "\"f\":{\"g\":[]}}");
	free(t);
}

static void test_bin_paths(void **state)
{
	(void)state;
	static const char *const bins[] = {"sources[].data", "log", NULL};
	struct ing_error e;
	int rv;
	/* "aGk=" is "hi": as bin it comes back as base64, as str unchanged. */
	char *t = through("{\"log\":\"aGk=\",\"sources\":[{\"path\":\"a\",\"data\":\"aGk\"}],"
	                  "\"data\":\"aGk=\",\"x\":{\"log\":\"aGk=\"}}",
	                  bins, &rv, &e);
	assert_int_equal(rv, 0);
	assert_string_equal(t,
	                    "{\"data\":\"aGk=\",\"log\":\"aGk=\",\"sources\":[{\"data\":\"aGk=\","
	                    "\"path\":\"a\"}],\"x\":{\"log\":\"aGk=\"}}");
	free(t);

	/* The bin really is bin: a msgpack BIN of 2 bytes. */
	json_t *j = json_pack("{s:s}", "log", "aGk=");
	struct mp_out o;
	mp_out_init(&o);
	assert_int_equal(rpc_json_to_mp(j, bins, &o.pk, &e), 0);
	const char want[] = {(char)0x81, (char)0xa3, 'l', 'o', 'g', (char)0xc4, 2, 'h', 'i'};
	assert_int_equal(o.len, sizeof(want));
	assert_memory_equal(o.data, want, sizeof(want));
	mp_out_free(&o);
	json_decref(j);

	assert_null(through("{\"sources\":[{\"data\":\"aGk=\"},{\"data\":\"not base64!\"}]}", bins,
	                    &rv, &e));
	assert_int_equal(rv, ING_EINVAL);
	assert_string_equal(e.msg, "sources[1].data: not base64");
	assert_null(through("{\"log\":7}", bins, &rv, &e));
	assert_int_equal(rv, ING_EINVAL);
	assert_string_equal(e.msg, "log: expected a base64 string");
}

static void test_depth_and_text(void **state)
{
	(void)state;
	char deep[200] = "";
	for (int i = 0; i < 40; i++)
		strcat(deep, "[");
	for (int i = 0; i < 40; i++)
		strcat(deep, "]");
	struct ing_error e;
	int rv;
	assert_null(through(deep, NULL, &rv, &e));
	assert_int_equal(rv, ING_ETOOBIG);

	json_t *s = rpc_json_text("a\xff", 2);
	assert_string_equal(json_string_value(s), "a\xef\xbf\xbd");
	json_decref(s);
	/* A map key that is not a string becomes its text. */
	const char m[] = {(char)0x81, 0x07, (char)0xc3};
	msgpack_zone z;
	msgpack_zone_init(&z, 256);
	msgpack_object obj;
	size_t used;
	assert_int_equal(mp_parse(m, sizeof(m), &z, &obj, &used, NULL), 0);
	json_t *j = rpc_mp_to_json(&obj);
	assert_true(json_is_true(json_object_get(j, "7")));
	json_decref(j);
	msgpack_zone_destroy(&z);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_types_round_trip),
	    cmocka_unit_test(test_bin_paths),
	    cmocka_unit_test(test_depth_and_text),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
