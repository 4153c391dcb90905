/*
 * test_token.c - token format, generation and check (node/auth/token.c),
 * role names and the permission predicates (principal.c), and the rate
 * limiter's buckets (ratelimit.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "node/auth/principal.h"
#include "node/auth/ratelimit.h"
#include "node/auth/token.h"

static void test_generate_and_parse(void **state)
{
	(void)state;
	char t1[AUTH_TOKEN_MAX], t2[AUTH_TOKEN_MAX];
	uint8_t h1[AUTH_TOKEN_HASH_BYTES], h2[AUTH_TOKEN_HASH_BYTES], hp[AUTH_TOKEN_HASH_BYTES];
	uint64_t id = 0;

	char s1[AUTH_TOKEN_SECRET_HEX + 1], s2[AUTH_TOKEN_SECRET_HEX + 1];
	assert_int_equal(auth_token_new_secret(s1, h1), 0);
	assert_int_equal(auth_token_new_secret(s2, h2), 0);
	assert_int_equal(strlen(s1), AUTH_TOKEN_SECRET_HEX);
	auth_token_format(42, s1, t1);
	auth_token_format(42, s2, t2);
	assert_string_not_equal(t1, t2); /* random secrets */
	assert_false(auth_token_hash_equal(h1, h2));
	assert_int_equal(strncmp(t1, "ingot_42_", 9), 0);
	assert_int_equal(strlen(t1), 9 + AUTH_TOKEN_SECRET_HEX);
	assert_true(auth_token_looks_like(t1, strlen(t1)));

	assert_int_equal(auth_token_parse(t1, strlen(t1), &id, hp, NULL), 0);
	assert_int_equal(id, 42);
	assert_true(auth_token_hash_equal(h1, hp));
	assert_false(auth_token_hash_equal(h2, hp));
	/* the id is not in the hash: the same secret under another id hashes
	 * the same, and the row's id is what tells them apart */
	auth_token_format(43, s1, t2);
	assert_int_equal(auth_token_parse(t2, strlen(t2), &id, hp, NULL), 0);
	assert_int_equal(id, 43);
	assert_true(auth_token_hash_equal(h1, hp));
}

static void test_malformed(void **state)
{
	(void)state;
	char good[AUTH_TOKEN_MAX], bad[AUTH_TOKEN_MAX + 8];
	uint8_t h[AUTH_TOKEN_HASH_BYTES];
	uint64_t id = 7;
	struct ing_error e;
	const char *secret;

	char sec[AUTH_TOKEN_SECRET_HEX + 1];
	assert_int_equal(auth_token_new_secret(sec, h), 0);
	auth_token_format(3, sec, good);
	secret = strchr(good + 6, '_') + 1;

	const char *cases[] = {
	    "", "ingot", "ingot_", "ingot__abc", "token_3_abc", "ingot_3", "ingot_3_", "ingot_x_00",
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		ing_error_clear(&e);
		assert_int_equal(auth_token_parse(cases[i], strlen(cases[i]), &id, h, &e),
		                 ING_EINVAL);
		assert_true(e.msg[0] != '\0');
		assert_int_equal(id, 7); /* untouched on failure */
	}
	/* id 0, a leading zero, and an id over 2^64-1 */
	snprintf(bad, sizeof(bad), "ingot_0_%s", secret);
	assert_int_equal(auth_token_parse(bad, strlen(bad), &id, h, NULL), ING_EINVAL);
	snprintf(bad, sizeof(bad), "ingot_03_%s", secret);
	assert_int_equal(auth_token_parse(bad, strlen(bad), &id, h, NULL), ING_EINVAL);
	snprintf(bad, sizeof(bad), "ingot_18446744073709551616_%s", secret);
	assert_int_equal(auth_token_parse(bad, strlen(bad), &id, h, NULL), ING_EINVAL);
	/* a short, a long, an upper-case secret */
	snprintf(bad, sizeof(bad), "ingot_3_%.63s", secret);
	assert_int_equal(auth_token_parse(bad, strlen(bad), &id, h, NULL), ING_EINVAL);
	snprintf(bad, sizeof(bad), "ingot_3_%s0", secret);
	assert_int_equal(auth_token_parse(bad, strlen(bad), &id, h, NULL), ING_EINVAL);
	snprintf(bad, sizeof(bad), "ingot_3_%s", secret);
	for (char *c = bad + 8; *c != '\0'; c++)
		if (*c >= 'a' && *c <= 'f')
			*c = (char)(*c - 'a' + 'A');
	if (strcmp(bad + 8, secret) != 0) {
		ing_error_clear(&e);
		assert_int_equal(auth_token_parse(bad, strlen(bad), &id, h, &e), ING_EINVAL);
		/* the message never repeats the secret */
		assert_null(strstr(e.msg, bad + 8));
	}
	assert_int_equal(id, 7);
}

static void test_roles_and_tenants(void **state)
{
	(void)state;
	enum auth_role r;
	struct ing_error e;
	struct auth_principal p = {.kind = AUTH_KIND_TOKEN, .role = AUTH_ROLE_SUBMITTER};

	assert_int_equal(auth_role_parse(ing_str_c("operator"), &r, NULL), 0);
	assert_int_equal(r, AUTH_ROLE_OPERATOR);
	assert_int_equal(auth_role_parse(ing_str_c("root"), &r, &e), ING_EINVAL);
	assert_non_null(strstr(e.msg, "root"));
	assert_string_equal(auth_role_name(AUTH_ROLE_ADMIN), "admin");

	assert_true(auth_has_role(&p, AUTH_ROLE_VIEWER));
	assert_true(auth_has_role(&p, AUTH_ROLE_SUBMITTER));
	assert_false(auth_has_role(&p, AUTH_ROLE_OPERATOR));
	assert_true(auth_sees_tenant(&p, ing_str_c("any")));
	snprintf(p.tenant, sizeof(p.tenant), "radar");
	assert_true(auth_sees_tenant(&p, ing_str_c("radar")));
	assert_false(auth_sees_tenant(&p, ing_str_c("sonar")));
	assert_false(auth_sees_tenant(&p, ing_str_c("rada")));

	/* nodes and nobody hold no client role */
	struct auth_principal node = {.kind = AUTH_KIND_NODE, .role = AUTH_ROLE_ADMIN};
	struct auth_principal none = {.kind = AUTH_KIND_NONE, .role = AUTH_ROLE_ADMIN};
	assert_false(auth_has_role(&node, AUTH_ROLE_VIEWER));
	assert_false(auth_has_role(&none, AUTH_ROLE_VIEWER));
}

static void test_rate_limiter(void **state)
{
	(void)state;
	struct auth_limiter *l = NULL;
	uint64_t retry = 0;

	assert_int_equal(auth_limiter_new(0, &l), ING_EINVAL);
	assert_int_equal(auth_limiter_new(64, &l), 0);
	/* burst 3, 10/s */
	for (int i = 0; i < 3; i++)
		assert_int_equal(auth_limiter_take(l, "a", 1, 10, 3, 1000, &retry), 0);
	assert_int_equal(auth_limiter_take(l, "a", 1, 10, 3, 1000, &retry), ING_ERATELIMITED);
	assert_int_equal(retry, 100);
	/* another key is not affected */
	assert_int_equal(auth_limiter_take(l, "b", 1, 10, 3, 1000, &retry), 0);
	/* 50 ms later: half a token, still refused, 50 ms to wait */
	assert_int_equal(auth_limiter_take(l, "a", 1, 10, 3, 1050, &retry), ING_ERATELIMITED);
	assert_int_equal(retry, 50);
	assert_int_equal(auth_limiter_take(l, "a", 1, 10, 3, 1100, &retry), 0);
	/* a clock step back refills nothing */
	assert_int_equal(auth_limiter_take(l, "a", 1, 10, 3, 500, &retry), ING_ERATELIMITED);
	/* long idle: back to the burst, not beyond */
	for (int i = 0; i < 3; i++)
		assert_int_equal(auth_limiter_take(l, "a", 1, 10, 3, 100000, &retry), 0);
	assert_int_equal(auth_limiter_take(l, "a", 1, 10, 3, 100000, &retry), ING_ERATELIMITED);
	/* rate 0: no limit */
	for (int i = 0; i < 100; i++)
		assert_int_equal(auth_limiter_take(l, "c", 1, 0, 0, 1, &retry), 0);
	auth_limiter_free(l);

	/* a full table evicts the least recently used key, which comes back full */
	assert_int_equal(auth_limiter_new(8, &l), 0);
	char key[16];
	for (int i = 0; i < 64; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		assert_int_equal(
		    auth_limiter_take(l, key, strlen(key), 1, 1, 10 + (uint64_t)i, &retry), 0);
	}
	assert_int_equal(auth_limiter_take(l, "k63", 3, 1, 1, 80, &retry), ING_ERATELIMITED);
	auth_limiter_free(l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_generate_and_parse),
	    cmocka_unit_test(test_malformed),
	    cmocka_unit_test(test_roles_and_tenants),
	    cmocka_unit_test(test_rate_limiter),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
