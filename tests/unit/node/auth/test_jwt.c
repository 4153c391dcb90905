/*
 * test_jwt.c - offline JWT verification (node/auth/jwt.c) against tokens
 * signed here with real keys (OpenSSL-generated EC and RSA keys, signed by
 * cjose), written to real JWKS and PEM files.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <cjose/cjose.h>
#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "node/auth/jwt.h"
#include "tests/lib/testutil.h"

#define NOW 1800000000ull

struct fx {
	char dir[256];
	char jwks[300];
	char pem[300];
	cjose_jwk_t *ec;       /* private, kid "ec1" */
	cjose_jwk_t *rsa;      /* private, kid "rsa1" */
	cjose_jwk_t *ec2;      /* private, in the PEM file only (no kid) */
	cjose_jwk_t *stranger; /* private, nowhere configured, kid "ec1" */
};

static void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

static cjose_jwk_t *ec_key(const char *kid, EVP_PKEY **pkey_out)
{
	EVP_PKEY *pk = EVP_EC_gen("P-256");
	BIGNUM *x = NULL, *y = NULL, *d = NULL;
	uint8_t xb[32], yb[32], db[32];
	cjose_err err;

	assert_non_null(pk);
	assert_int_equal(EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_EC_PUB_X, &x), 1);
	assert_int_equal(EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_EC_PUB_Y, &y), 1);
	assert_int_equal(EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_PRIV_KEY, &d), 1);
	BN_bn2binpad(x, xb, 32);
	BN_bn2binpad(y, yb, 32);
	BN_bn2binpad(d, db, 32);
	cjose_jwk_ec_keyspec s = {.crv = CJOSE_JWK_EC_P_256,
	                          .d = db,
	                          .dlen = 32,
	                          .x = xb,
	                          .xlen = 32,
	                          .y = yb,
	                          .ylen = 32};
	cjose_jwk_t *jwk = cjose_jwk_create_EC_spec(&s, &err);
	assert_non_null(jwk);
	if (kid != NULL)
		assert_true(cjose_jwk_set_kid(jwk, kid, strlen(kid), &err));
	BN_free(x);
	BN_free(y);
	BN_free(d);
	if (pkey_out != NULL)
		*pkey_out = pk;
	else
		EVP_PKEY_free(pk);
	return jwk;
}

/* The public JSON of a private JWK, as an object. */
static json_t *public_json(cjose_jwk_t *k)
{
	cjose_err err;
	char *s = cjose_jwk_to_json(k, false, &err);
	assert_non_null(s);
	json_t *o = json_loads(s, 0, NULL);
	free(s);
	assert_non_null(o);
	return o;
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	cjose_err err;
	EVP_PKEY *pk2 = NULL;
	static const uint8_t e65537[] = {1, 0, 1};

	tu_tmpdir(f->dir, sizeof(f->dir));
	snprintf(f->jwks, sizeof(f->jwks), "%s/jwks.json", f->dir);
	snprintf(f->pem, sizeof(f->pem), "%s/key.pem", f->dir);
	f->ec = ec_key("ec1", NULL);
	f->stranger = ec_key("ec1", NULL);
	f->ec2 = ec_key(NULL, &pk2);
	f->rsa = cjose_jwk_create_RSA_random(2048, e65537, sizeof(e65537), &err);
	assert_non_null(f->rsa);
	assert_true(cjose_jwk_set_kid(f->rsa, "rsa1", 4, &err));

	json_t *keys = json_array();
	json_array_append_new(keys, public_json(f->ec));
	json_array_append_new(keys, public_json(f->rsa));
	json_t *root = json_object();
	json_object_set_new(root, "keys", keys);
	assert_int_equal(json_dump_file(root, f->jwks, 0), 0);
	json_decref(root);

	BIO *b = BIO_new_file(f->pem, "w");
	assert_non_null(b);
	assert_int_equal(PEM_write_bio_PUBKEY(b, pk2), 1);
	BIO_free(b);
	EVP_PKEY_free(pk2);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	cjose_jwk_release(f->ec);
	cjose_jwk_release(f->ec2);
	cjose_jwk_release(f->rsa);
	cjose_jwk_release(f->stranger);
	tu_rmrf(f->dir);
	free(f);
	return 0;
}

/* Signs `claims` (JSON text) with `k` under `alg`; caller frees. */
static char *sign(cjose_jwk_t *k, const char *alg, const char *kid, const char *claims)
{
	cjose_err err;
	cjose_header_t *h = cjose_header_new(&err);
	const char *out = NULL;
	assert_true(cjose_header_set(h, CJOSE_HDR_ALG, alg, &err));
	if (kid != NULL)
		assert_true(cjose_header_set(h, CJOSE_HDR_KID, kid, &err));
	cjose_jws_t *jws = cjose_jws_sign(k, h, (const uint8_t *)claims, strlen(claims), &err);
	assert_non_null(jws);
	assert_true(cjose_jws_export(jws, &out, &err));
	char *copy = strdup(out);
	cjose_jws_release(jws);
	cjose_header_release(h);
	return copy;
}

static char *claims(const char *extra, uint64_t exp)
{
	char *s = malloc(1024);
	snprintf(s, 1024,
	         "{\"iss\":\"https://idp.example\",\"aud\":\"ingot\",\"sub\":\"alice\","
	         "\"exp\":%llu%s%s}",
	         (unsigned long long)exp, extra[0] != '\0' ? "," : "", extra);
	return s;
}

static struct auth_jwt *verifier(const char *keys, const struct auth_jwt_role_map *map,
                                 unsigned nmap)
{
	struct auth_jwt_options o = {.issuer = "https://idp.example",
	                             .audience = "ingot",
	                             .keys_path = keys,
	                             .leeway_s = 30,
	                             .role_map = map,
	                             .nrole_map = nmap};
	struct auth_jwt *v = NULL;
	struct ing_error e;
	int rv = auth_jwt_new(&o, &v, &e);
	if (rv != 0)
		fail_msg("auth_jwt_new: %s", e.msg);
	return v;
}

/* Verifies and returns the code; the message goes to msg (cap 256). */
static int verify(struct auth_jwt *v, const char *tok, uint64_t now, struct auth_principal *p,
                  char *msg)
{
	struct ing_error e;
	ing_error_clear(&e);
	int rv = auth_jwt_verify(v, tok, strlen(tok), now, p, &e);
	if (msg != NULL)
		snprintf(msg, 256, "%s", e.msg);
	return rv;
}

static void test_valid_es256_and_rs256(void **state)
{
	struct fx *f = *state;
	struct auth_jwt *v = verifier(f->jwks, NULL, 0);
	struct auth_principal p;
	char *c = claims("\"ingot_role\":\"submitter\",\"ingot_tenant\":\"radar\"", NOW + 600);
	char *t = sign(f->ec, "ES256", "ec1", c);

	assert_int_equal(auth_jwt_nkeys(v), 2);
	assert_int_equal(verify(v, t, NOW, &p, NULL), 0);
	assert_int_equal(p.kind, AUTH_KIND_JWT);
	assert_int_equal(p.role, AUTH_ROLE_SUBMITTER);
	assert_string_equal(p.name, "jwt:alice");
	assert_string_equal(p.tenant, "radar");
	free(t);

	t = sign(f->rsa, "RS256", "rsa1", c);
	assert_int_equal(verify(v, t, NOW, &p, NULL), 0);
	free(t);
	t = sign(f->rsa, "PS384", "rsa1", c);
	assert_int_equal(verify(v, t, NOW, &p, NULL), 0);
	free(t);
	free(c);
	auth_jwt_free(v);
}

static void test_time_claims(void **state)
{
	struct fx *f = *state;
	struct auth_jwt *v = verifier(f->jwks, NULL, 0);
	struct auth_principal p;
	char msg[256];

	char *c = claims("\"ingot_role\":\"viewer\"", NOW - 31);
	char *t = sign(f->ec, "ES256", "ec1", c);
	assert_int_equal(verify(v, t, NOW, &p, msg), ING_EUNAUTHENTICATED);
	assert_non_null(strstr(msg, "expired"));
	/* within the leeway it is still good */
	assert_int_equal(verify(v, t, NOW - 5, &p, NULL), 0);
	free(t);
	free(c);

	c = claims("\"ingot_role\":\"viewer\",\"nbf\":1800000100", NOW + 600);
	t = sign(f->ec, "ES256", "ec1", c);
	assert_int_equal(verify(v, t, NOW, &p, msg), ING_EUNAUTHENTICATED);
	assert_non_null(strstr(msg, "not valid before"));
	assert_int_equal(verify(v, t, NOW + 100, &p, NULL), 0);
	free(t);
	free(c);

	/* no exp at all */
	t = sign(f->ec, "ES256", "ec1",
	         "{\"iss\":\"https://idp.example\",\"aud\":\"ingot\",\"sub\":\"a\","
	         "\"ingot_role\":\"viewer\"}");
	assert_int_equal(verify(v, t, NOW, &p, msg), ING_EUNAUTHENTICATED);
	assert_non_null(strstr(msg, "exp"));
	free(t);
	auth_jwt_free(v);
}

static void test_issuer_audience_subject(void **state)
{
	struct fx *f = *state;
	struct auth_jwt *v = verifier(f->jwks, NULL, 0);
	struct auth_principal p;
	char msg[256];
	char c[512];

	snprintf(c, sizeof(c),
	         "{\"iss\":\"https://evil.example\",\"aud\":\"ingot\",\"sub\":\"a\","
	         "\"exp\":%llu,\"ingot_role\":\"admin\"}",
	         NOW + 60);
	char *t = sign(f->ec, "ES256", "ec1", c);
	assert_int_equal(verify(v, t, NOW, &p, msg), ING_EUNAUTHENTICATED);
	assert_non_null(strstr(msg, "issuer"));
	free(t);

	snprintf(c, sizeof(c),
	         "{\"iss\":\"https://idp.example\",\"aud\":[\"other\",\"ingot\"],\"sub\":\"a\","
	         "\"exp\":%llu,\"ingot_role\":\"admin\",\"ingot_tenant\":\"radar\"}",
	         NOW + 60);
	t = sign(f->ec, "ES256", "ec1", c);
	assert_int_equal(verify(v, t, NOW, &p, NULL), 0);
	assert_int_equal(p.role, AUTH_ROLE_ADMIN);
	assert_string_equal(p.tenant, ""); /* admins are never tenant-scoped */
	free(t);

	snprintf(c, sizeof(c),
	         "{\"iss\":\"https://idp.example\",\"aud\":\"other\",\"sub\":\"a\","
	         "\"exp\":%llu,\"ingot_role\":\"admin\"}",
	         NOW + 60);
	t = sign(f->ec, "ES256", "ec1", c);
	assert_int_equal(verify(v, t, NOW, &p, msg), ING_EUNAUTHENTICATED);
	assert_non_null(strstr(msg, "audience"));
	free(t);

	snprintf(c, sizeof(c),
	         "{\"iss\":\"https://idp.example\",\"aud\":\"ingot\",\"exp\":%llu,"
	         "\"ingot_role\":\"admin\"}",
	         NOW + 60);
	t = sign(f->ec, "ES256", "ec1", c);
	assert_int_equal(verify(v, t, NOW, &p, msg), ING_EUNAUTHENTICATED);
	assert_non_null(strstr(msg, "'sub'"));
	free(t);

	snprintf(c, sizeof(c),
	         "{\"iss\":\"https://idp.example\",\"aud\":\"ingot\",\"sub\":\"a\",\"exp\":%llu,"
	         "\"ingot_role\":\"superuser\"}",
	         NOW + 60);
	t = sign(f->ec, "ES256", "ec1", c);
	assert_int_equal(verify(v, t, NOW, &p, msg), ING_EUNAUTHENTICATED);
	assert_non_null(strstr(msg, "role"));
	free(t);
	auth_jwt_free(v);
}

static void test_refused_algorithms_keys_and_forgeries(void **state)
{
	struct fx *f = *state;
	struct auth_jwt *v = verifier(f->jwks, NULL, 0);
	struct auth_principal p;
	char msg[256];
	cjose_err err;
	char *c = claims("\"ingot_role\":\"admin\"", NOW + 600);

	/* alg none: header {"alg":"none"}, no signature */
	char *payload = NULL;
	size_t plen = 0;
	assert_true(cjose_base64url_encode((const uint8_t *)c, strlen(c), &payload, &plen, &err));
	char none[2048];
	snprintf(none, sizeof(none), "eyJhbGciOiJub25lIn0.%s.", payload);
	assert_int_equal(verify(v, none, NOW, &p, msg), ING_EUNAUTHENTICATED);
	free(payload);

	/* HS256 keyed with anything is refused on its algorithm */
	cjose_jwk_t *oct = cjose_jwk_create_oct_random(32, &err);
	char *t = sign(oct, "HS256", "ec1", c);
	assert_int_equal(verify(v, t, NOW, &p, msg), ING_EUNAUTHENTICATED);
	assert_non_null(strstr(msg, "HS256"));
	free(t);
	cjose_jwk_release(oct);

	/* an unknown kid */
	t = sign(f->ec, "ES256", "ec9", c);
	assert_int_equal(verify(v, t, NOW, &p, msg), ING_EUNAUTHENTICATED);
	assert_non_null(strstr(msg, "ec9"));
	free(t);

	/* no kid with two keys configured */
	t = sign(f->ec, "ES256", NULL, c);
	assert_int_equal(verify(v, t, NOW, &p, msg), ING_EUNAUTHENTICATED);
	free(t);

	/* a stranger's key under a known kid: the signature fails */
	t = sign(f->stranger, "ES256", "ec1", c);
	assert_int_equal(verify(v, t, NOW, &p, msg), ING_EUNAUTHENTICATED);
	assert_non_null(strstr(msg, "signature"));
	free(t);

	/* RS256 claimed over the EC key's kid */
	t = sign(f->rsa, "RS256", "ec1", c);
	assert_int_equal(verify(v, t, NOW, &p, msg), ING_EUNAUTHENTICATED);
	assert_non_null(strstr(msg, "does not fit"));
	free(t);

	/* a tampered payload */
	t = sign(f->ec, "ES256", "ec1", c);
	char *dot = strchr(t, '.');
	dot[3] = dot[3] == 'A' ? 'B' : 'A';
	assert_int_equal(verify(v, t, NOW, &p, NULL), ING_EUNAUTHENTICATED);
	free(t);

	/* garbage */
	assert_int_equal(verify(v, "a.b.c", NOW, &p, NULL), ING_EUNAUTHENTICATED);
	assert_int_equal(verify(v, "not a jwt", NOW, &p, NULL), ING_EUNAUTHENTICATED);
	assert_int_equal(verify(v, "..", NOW, &p, NULL), ING_EUNAUTHENTICATED);
	free(c);
	auth_jwt_free(v);
}

static void test_pem_key_and_role_map(void **state)
{
	struct fx *f = *state;
	struct auth_jwt_role_map map[2] = {{"dsp-admins", AUTH_ROLE_OPERATOR},
	                                   {"dsp-users", AUTH_ROLE_SUBMITTER}};
	struct auth_jwt_options o = {.issuer = "https://idp.example",
	                             .audience = "ingot",
	                             .keys_path = f->pem,
	                             .role_claim = "groups",
	                             .tenant_claim = "team",
	                             .role_map = map,
	                             .nrole_map = 2};
	struct auth_jwt *v = NULL;
	struct auth_principal p;
	struct ing_error e;

	assert_int_equal(auth_jwt_new(&o, &v, &e), 0);
	assert_int_equal(auth_jwt_nkeys(v), 1);
	char *c = claims("\"groups\":[\"staff\",\"dsp-users\"],\"team\":\"sonar\"", NOW + 60);
	char *t = sign(f->ec2, "ES256", NULL, c);
	assert_int_equal(verify(v, t, NOW, &p, NULL), 0);
	assert_int_equal(p.role, AUTH_ROLE_SUBMITTER);
	assert_string_equal(p.tenant, "sonar");
	free(t);
	/* a lone PEM key matches whatever kid the provider writes */
	t = sign(f->ec2, "ES256", "2024-rotation", c);
	assert_int_equal(verify(v, t, NOW, &p, NULL), 0);
	free(t);
	free(c);
	c = claims("\"groups\":[\"dsp-users\",\"dsp-admins\"]", NOW + 60);
	t = sign(f->ec2, "ES256", NULL, c);
	assert_int_equal(verify(v, t, NOW, &p, NULL), 0);
	assert_int_equal(p.role, AUTH_ROLE_OPERATOR);
	free(t);
	free(c);
	/* an unmapped group gives nothing, even one named like a role */
	c = claims("\"groups\":\"admin\"", NOW + 60);
	t = sign(f->ec2, "ES256", NULL, c);
	assert_int_equal(verify(v, t, NOW, &p, NULL), ING_EUNAUTHENTICATED);
	free(t);
	free(c);
	auth_jwt_free(v);
}

static void test_bad_key_files(void **state)
{
	struct fx *f = *state;
	struct auth_jwt_options o = {
	    .issuer = "https://idp.example", .audience = "ingot", .keys_path = NULL};
	struct auth_jwt *v = NULL;
	struct ing_error e;
	char path[300];
	cjose_err err;

	assert_int_equal(auth_jwt_new(&o, &v, &e), ING_EINVAL);
	assert_non_null(strstr(e.msg, "keys"));

	snprintf(path, sizeof(path), "%s/missing.json", f->dir);
	o.keys_path = path;
	assert_int_not_equal(auth_jwt_new(&o, &v, &e), 0);
	assert_non_null(strstr(e.msg, "missing.json"));

	snprintf(path, sizeof(path), "%s/garbage", f->dir);
	write_text(path, "hello\n");
	assert_int_equal(auth_jwt_new(&o, &v, &e), ING_EINVAL);
	assert_non_null(strstr(e.msg, "neither"));

	/* a private key in the set is refused: it must never be copied around */
	char *priv = cjose_jwk_to_json(f->ec, true, &err);
	snprintf(path, sizeof(path), "%s/private.json", f->dir);
	write_text(path, priv);
	free(priv);
	assert_int_equal(auth_jwt_new(&o, &v, &e), ING_EINVAL);
	assert_non_null(strstr(e.msg, "private"));

	/* a symmetric key */
	snprintf(path, sizeof(path), "%s/oct.json", f->dir);
	write_text(path, "{\"keys\":[{\"kty\":\"oct\",\"kid\":\"h\",\"k\":\"c2VjcmV0\"}]}");
	assert_int_equal(auth_jwt_new(&o, &v, &e), ING_EINVAL);

	/* missing issuer */
	o.keys_path = f->jwks;
	o.issuer = NULL;
	assert_int_equal(auth_jwt_new(&o, &v, &e), ING_EINVAL);
	assert_non_null(strstr(e.msg, "issuer"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_valid_es256_and_rs256, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_time_claims, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_issuer_audience_subject, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_refused_algorithms_keys_and_forgeries, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_pem_key_and_role_map, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_key_files, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
