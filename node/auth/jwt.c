/*
 * jwt.c - offline verification of identity-provider JWTs (jwt.h).
 *
 * Loading: the key file is read once, as JSON (a JWKS `{"keys": [...]}` or
 * one JWK) when jansson can parse it, else as PEM public keys.  Each key is
 * checked to be public and asymmetric (RSA, or EC on P-256/384/521) and
 * kept as a cjose JWK with its kid ("" for PEM keys).
 *
 * Verifying, in this order, each failure ending the check with
 * ING_EUNAUTHENTICATED and a message: size and shape; the protected header's
 * alg (never none/HS*); the key (kid); the alg against the key's type and
 * curve; the signature (cjose); then the claims from the verified payload
 * (jansson): exp, nbf, iss, aud, subject, role, tenant.  Claims are read
 * only after the signature holds, so an unsigned token learns nothing.
 */
#include "node/auth/jwt.h"

#include <cjose/cjose.h>
#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_KEYS 32
#define KID_MAX  128

struct key {
	char kid[KID_MAX + 1];
	cjose_jwk_t *jwk;
	cjose_jwk_kty_t kty;
	cjose_jwk_ec_curve crv; /* EC only */
};

struct auth_jwt {
	char issuer[512];
	char audience[512];
	char role_claim[128];
	char tenant_claim[128];
	char subject_claim[128];
	unsigned leeway_s;
	struct auth_jwt_role_map role_map[AUTH_JWT_MAX_ROLE_MAP];
	unsigned nrole_map;
	struct key keys[MAX_KEYS];
	unsigned nkeys;
};

/* ---- loading ------------------------------------------------------------ */

static int add_key(struct auth_jwt *v, cjose_jwk_t *jwk, const char *kid, const char *path,
                   struct ing_error *e)
{
	cjose_err cerr;
	if (v->nkeys == MAX_KEYS) {
		cjose_jwk_release(jwk);
		return ing_error_set(e, ING_EINVAL, "%s: more than %d keys", path, MAX_KEYS);
	}
	struct key *k = &v->keys[v->nkeys];
	k->kty = cjose_jwk_get_kty(jwk, &cerr);
	if (k->kty != CJOSE_JWK_KTY_RSA && k->kty != CJOSE_JWK_KTY_EC) {
		cjose_jwk_release(jwk);
		return ing_error_set(e, ING_EINVAL,
		                     "%s: key %u is not an RSA or EC public key (symmetric keys "
		                     "are refused)",
		                     path, v->nkeys + 1);
	}
	k->crv =
	    k->kty == CJOSE_JWK_KTY_EC ? cjose_jwk_EC_get_curve(jwk, &cerr) : CJOSE_JWK_EC_INVALID;
	snprintf(k->kid, sizeof(k->kid), "%s", kid != NULL ? kid : "");
	k->jwk = jwk;
	v->nkeys++;
	return 0;
}

static int load_jwk_object(struct auth_jwt *v, json_t *o, const char *path, struct ing_error *e)
{
	cjose_err cerr;
	if (!json_is_object(o))
		return ing_error_set(e, ING_EINVAL, "%s: a key is not a JSON object", path);
	if (json_object_get(o, "d") != NULL || json_object_get(o, "k") != NULL)
		return ing_error_set(e, ING_EINVAL,
		                     "%s: holds a private or symmetric key; copy only the "
		                     "provider's public keys",
		                     path);
	const char *use = json_string_value(json_object_get(o, "use"));
	if (use != NULL && strcmp(use, "sig") != 0)
		return 0; /* an encryption key of the provider: not ours to use */
	const char *kid = json_string_value(json_object_get(o, "kid"));
	if (kid != NULL && strlen(kid) > KID_MAX)
		return ing_error_set(e, ING_EINVAL, "%s: a kid is over %d bytes", path, KID_MAX);
	char *text = json_dumps(o, JSON_COMPACT);
	if (text == NULL)
		return ing_error_set(e, ING_ENOMEM, "out of memory");
	cjose_jwk_t *jwk = cjose_jwk_import(text, strlen(text), &cerr);
	free(text);
	if (jwk == NULL)
		return ing_error_set(e, ING_EINVAL, "%s: unusable key (%s)", path,
		                     cerr.message != NULL ? cerr.message : "cjose refused it");
	return add_key(v, jwk, kid, path, e);
}

static int load_json(struct auth_jwt *v, json_t *root, const char *path, struct ing_error *e)
{
	json_t *keys = json_object_get(root, "keys");
	int rv;
	if (keys == NULL)
		return load_jwk_object(v, root, path, e);
	if (!json_is_array(keys))
		return ing_error_set(e, ING_EINVAL, "%s: \"keys\" is not an array", path);
	size_t i;
	json_t *k;
	json_array_foreach(keys, i, k)
	{
		if ((rv = load_jwk_object(v, k, path, e)) != 0)
			return rv;
	}
	if (v->nkeys > 1)
		for (unsigned j = 0; j < v->nkeys; j++)
			if (v->keys[j].kid[0] == '\0')
				return ing_error_set(e, ING_EINVAL,
				                     "%s: a key set of several keys needs a kid on "
				                     "each",
				                     path);
	return 0;
}

static int bn_bytes(const EVP_PKEY *pk, const char *param, size_t pad, uint8_t **out, size_t *len)
{
	BIGNUM *bn = NULL;
	if (EVP_PKEY_get_bn_param(pk, param, &bn) != 1)
		return ING_EINVAL;
	size_t n = pad != 0 ? pad : (size_t)BN_num_bytes(bn);
	*out = malloc(n > 0 ? n : 1);
	if (*out == NULL) {
		BN_free(bn);
		return ING_ENOMEM;
	}
	if (BN_bn2binpad(bn, *out, (int)n) < 0) {
		free(*out);
		BN_free(bn);
		return ING_EINVAL;
	}
	*len = n;
	BN_free(bn);
	return 0;
}

static cjose_jwk_t *jwk_from_pkey(EVP_PKEY *pk)
{
	cjose_err cerr;
	cjose_jwk_t *jwk = NULL;

	if (EVP_PKEY_is_a(pk, "RSA")) {
		cjose_jwk_rsa_keyspec s;
		memset(&s, 0, sizeof(s));
		if (bn_bytes(pk, OSSL_PKEY_PARAM_RSA_N, 0, &s.n, &s.nlen) == 0 &&
		    bn_bytes(pk, OSSL_PKEY_PARAM_RSA_E, 0, &s.e, &s.elen) == 0)
			jwk = cjose_jwk_create_RSA_spec(&s, &cerr);
		free(s.n);
		free(s.e);
	} else if (EVP_PKEY_is_a(pk, "EC")) {
		char group[64];
		size_t glen = 0;
		cjose_jwk_ec_keyspec s;
		memset(&s, 0, sizeof(s));
		if (EVP_PKEY_get_utf8_string_param(pk, OSSL_PKEY_PARAM_GROUP_NAME, group,
		                                   sizeof(group), &glen) != 1)
			return NULL;
		int nid = OBJ_sn2nid(group);
		if (nid == NID_undef)
			nid = EC_curve_nist2nid(group);
		size_t field = 0;
		if (nid == NID_X9_62_prime256v1)
			field = 32;
		else if (nid == NID_secp384r1)
			field = 48;
		else if (nid == NID_secp521r1)
			field = 66;
		else
			return NULL;
		s.crv = (cjose_jwk_ec_curve)nid;
		if (bn_bytes(pk, OSSL_PKEY_PARAM_EC_PUB_X, field, &s.x, &s.xlen) == 0 &&
		    bn_bytes(pk, OSSL_PKEY_PARAM_EC_PUB_Y, field, &s.y, &s.ylen) == 0)
			jwk = cjose_jwk_create_EC_spec(&s, &cerr);
		free(s.x);
		free(s.y);
	}
	return jwk;
}

static int load_pem(struct auth_jwt *v, const char *path, struct ing_error *e)
{
	BIO *b = BIO_new_file(path, "r");
	int rv = 0;
	if (b == NULL)
		return ing_error_set(e, ING_EIO, "%s: cannot be read", path);
	for (;;) {
		EVP_PKEY *pk = PEM_read_bio_PUBKEY(b, NULL, NULL, NULL);
		if (pk == NULL)
			break;
		cjose_jwk_t *jwk = jwk_from_pkey(pk);
		EVP_PKEY_free(pk);
		if (jwk == NULL) {
			rv = ing_error_set(
			    e, ING_EINVAL,
			    "%s: key %u is not an RSA or EC (P-256/384/521) public key", path,
			    v->nkeys + 1);
			break;
		}
		if ((rv = add_key(v, jwk, "", path, e)) != 0)
			break;
	}
	BIO_free(b);
	if (rv == 0 && v->nkeys == 0)
		rv = ing_error_set(e, ING_EINVAL,
		                   "%s: holds neither a JWKS nor a PEM public key (\"-----BEGIN "
		                   "PUBLIC KEY-----\")",
		                   path);
	return rv;
}

static int copy_opt(char *dst, size_t cap, const char *src, const char *dflt, const char *what,
                    struct ing_error *e)
{
	const char *s = src != NULL && src[0] != '\0' ? src : dflt;
	if (s == NULL)
		return ing_error_set(e, ING_EINVAL, "auth.jwt: %s is required", what);
	if (strlen(s) >= cap)
		return ing_error_set(e, ING_EINVAL, "auth.jwt: %s is over %zu bytes", what,
		                     cap - 1);
	snprintf(dst, cap, "%s", s);
	return 0;
}

int auth_jwt_new(const struct auth_jwt_options *o, struct auth_jwt **out, struct ing_error *e)
{
	struct auth_jwt *v = calloc(1, sizeof(*v));
	int rv;
	if (v == NULL)
		return ing_error_set(e, ING_ENOMEM, "out of memory");
	if ((rv = copy_opt(v->issuer, sizeof(v->issuer), o->issuer, NULL, "issuer", e)) != 0 ||
	    (rv = copy_opt(v->audience, sizeof(v->audience), o->audience, NULL, "audience", e)) !=
	        0 ||
	    (rv = copy_opt(v->role_claim, sizeof(v->role_claim), o->role_claim, "ingot_role",
	                   "role_claim", e)) != 0 ||
	    (rv = copy_opt(v->tenant_claim, sizeof(v->tenant_claim), o->tenant_claim,
	                   "ingot_tenant", "tenant_claim", e)) != 0 ||
	    (rv = copy_opt(v->subject_claim, sizeof(v->subject_claim), o->subject_claim, "sub",
	                   "subject_claim", e)) != 0)
		goto fail;
	if (o->keys_path == NULL || o->keys_path[0] == '\0') {
		rv =
		    ing_error_set(e, ING_EINVAL, "auth.jwt: keys (a JWKS or PEM file) is required");
		goto fail;
	}
	if (o->nrole_map > AUTH_JWT_MAX_ROLE_MAP) {
		rv = ing_error_set(e, ING_EINVAL, "auth.jwt: role_map has over %d entries",
		                   AUTH_JWT_MAX_ROLE_MAP);
		goto fail;
	}
	for (unsigned i = 0; i < o->nrole_map; i++)
		v->role_map[i] = o->role_map[i];
	v->nrole_map = o->nrole_map;
	v->leeway_s = o->leeway_s;

	json_error_t jerr;
	json_t *root = json_load_file(o->keys_path, JSON_REJECT_DUPLICATES, &jerr);
	if (root != NULL) {
		rv = load_json(v, root, o->keys_path, e);
		json_decref(root);
		if (rv == 0 && v->nkeys == 0)
			rv = ing_error_set(e, ING_EINVAL, "%s: the key set holds no signing key",
			                   o->keys_path);
	} else {
		rv = load_pem(v, o->keys_path, e);
	}
	if (rv != 0)
		goto fail;
	*out = v;
	return 0;
fail:
	auth_jwt_free(v);
	return rv;
}

void auth_jwt_free(struct auth_jwt *v)
{
	if (v == NULL)
		return;
	for (unsigned i = 0; i < v->nkeys; i++)
		cjose_jwk_release(v->keys[i].jwk);
	free(v);
}

unsigned auth_jwt_nkeys(const struct auth_jwt *v)
{
	return v->nkeys;
}

/* ---- verifying ---------------------------------------------------------- */

int auth_jwt_looks_like(const char *tok, size_t len)
{
	unsigned dots = 0;
	for (size_t i = 0; i < len; i++)
		if (tok[i] == '.')
			dots++;
	return dots == 2;
}

static bool alg_fits(const struct key *k, const char *alg)
{
	if (k->kty == CJOSE_JWK_KTY_RSA)
		return strcmp(alg, "RS256") == 0 || strcmp(alg, "RS384") == 0 ||
		       strcmp(alg, "RS512") == 0 || strcmp(alg, "PS256") == 0 ||
		       strcmp(alg, "PS384") == 0 || strcmp(alg, "PS512") == 0;
	if (k->kty == CJOSE_JWK_KTY_EC)
		return (strcmp(alg, "ES256") == 0 && k->crv == CJOSE_JWK_EC_P_256) ||
		       (strcmp(alg, "ES384") == 0 && k->crv == CJOSE_JWK_EC_P_384) ||
		       (strcmp(alg, "ES512") == 0 && k->crv == CJOSE_JWK_EC_P_521);
	return false;
}

static const struct key *pick_key(const struct auth_jwt *v, const char *kid)
{
	if (kid != NULL) {
		for (unsigned i = 0; i < v->nkeys; i++)
			if (strcmp(v->keys[i].kid, kid) == 0)
				return &v->keys[i];
		/* A lone PEM key has no kid to compare with: it is the key. */
		if (v->nkeys == 1 && v->keys[0].kid[0] == '\0')
			return &v->keys[0];
		return NULL;
	}
	return v->nkeys == 1 ? &v->keys[0] : NULL;
}

static bool get_time(json_t *claims, const char *name, uint64_t *out)
{
	json_t *t = json_object_get(claims, name);
	if (t == NULL || !json_is_number(t))
		return false;
	double d = json_number_value(t);
	if (!(d >= 0 && d < 1e15))
		return false;
	*out = (uint64_t)d;
	return true;
}

static bool audience_ok(json_t *aud, const char *want)
{
	if (json_is_string(aud))
		return strcmp(json_string_value(aud), want) == 0;
	if (json_is_array(aud)) {
		size_t i;
		json_t *a;
		json_array_foreach(aud, i, a)
		{
			if (json_is_string(a) && strcmp(json_string_value(a), want) == 0)
				return true;
		}
	}
	return false;
}

static enum auth_role role_of_value(const struct auth_jwt *v, const char *s)
{
	if (v->nrole_map > 0) {
		for (unsigned i = 0; i < v->nrole_map; i++)
			if (strcmp(v->role_map[i].claim_value, s) == 0)
				return v->role_map[i].role;
		return AUTH_ROLE_NONE;
	}
	enum auth_role r;
	return auth_role_parse(ing_str_c(s), &r, NULL) == 0 ? r : AUTH_ROLE_NONE;
}

static enum auth_role role_of(const struct auth_jwt *v, json_t *claim)
{
	enum auth_role best = AUTH_ROLE_NONE;
	if (json_is_string(claim))
		return role_of_value(v, json_string_value(claim));
	if (json_is_array(claim)) {
		size_t i;
		json_t *c;
		json_array_foreach(claim, i, c)
		{
			if (json_is_string(c)) {
				enum auth_role r = role_of_value(v, json_string_value(c));
				if (r > best)
					best = r;
			}
		}
	}
	return best;
}

static bool name_ok(const char *s, size_t max)
{
	size_t n = strlen(s);
	if (n == 0 || n > max)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return false;
	return true;
}

static int check_claims(const struct auth_jwt *v, json_t *c, uint64_t now_s,
                        struct auth_principal *p, struct ing_error *e)
{
	uint64_t exp, nbf;
	if (!json_is_object(c))
		return ing_error_set(e, ING_EUNAUTHENTICATED, "JWT payload is not a JSON object");
	if (!get_time(c, "exp", &exp))
		return ing_error_set(e, ING_EUNAUTHENTICATED, "JWT has no numeric exp claim");
	if (exp + v->leeway_s <= now_s)
		return ing_error_set(e, ING_EUNAUTHENTICATED, "JWT expired %llu s ago",
		                     (unsigned long long)(now_s - exp));
	if (json_object_get(c, "nbf") != NULL) {
		if (!get_time(c, "nbf", &nbf))
			return ing_error_set(e, ING_EUNAUTHENTICATED, "JWT nbf is not a number");
		if (nbf > now_s + v->leeway_s)
			return ing_error_set(e, ING_EUNAUTHENTICATED,
			                     "JWT is not valid before %llu (now %llu)",
			                     (unsigned long long)nbf, (unsigned long long)now_s);
	}
	const char *iss = json_string_value(json_object_get(c, "iss"));
	if (iss == NULL || strcmp(iss, v->issuer) != 0)
		return ing_error_set(e, ING_EUNAUTHENTICATED,
		                     "JWT issuer is not the configured one (%s)", v->issuer);
	if (!audience_ok(json_object_get(c, "aud"), v->audience))
		return ing_error_set(e, ING_EUNAUTHENTICATED, "JWT audience does not include '%s'",
		                     v->audience);
	const char *sub = json_string_value(json_object_get(c, v->subject_claim));
	if (sub == NULL || !name_ok(sub, AUTH_NAME_MAX - 4))
		return ing_error_set(e, ING_EUNAUTHENTICATED,
		                     "JWT has no usable '%s' claim (a string of 1 to %d "
		                     "printable bytes)",
		                     v->subject_claim, AUTH_NAME_MAX - 4);
	enum auth_role role = role_of(v, json_object_get(c, v->role_claim));
	if (role == AUTH_ROLE_NONE)
		return ing_error_set(e, ING_EUNAUTHENTICATED,
		                     "JWT claim '%s' gives no ingot role%s", v->role_claim,
		                     v->nrole_map > 0 ? " through auth.jwt.role_map"
		                                      : " (viewer, submitter, operator, admin)");
	json_t *ten = json_object_get(c, v->tenant_claim);
	const char *tenant = "";
	if (ten != NULL && !json_is_null(ten)) {
		tenant = json_string_value(ten);
		if (tenant == NULL || !name_ok(tenant, ING_NAME_MAX))
			return ing_error_set(e, ING_EUNAUTHENTICATED,
			                     "JWT claim '%s' is not a tenant name (1 to %d bytes)",
			                     v->tenant_claim, ING_NAME_MAX);
	}
	memset(p, 0, sizeof(*p));
	p->kind = AUTH_KIND_JWT;
	p->role = role;
	snprintf(p->name, sizeof(p->name), "jwt:%s", sub);
	/* Operators and admins are never tenant-scoped (principal.h). */
	if (role < AUTH_ROLE_OPERATOR)
		snprintf(p->tenant, sizeof(p->tenant), "%s", tenant);
	return 0;
}

int auth_jwt_verify(const struct auth_jwt *v, const char *tok, size_t len, uint64_t now_s,
                    struct auth_principal *out, struct ing_error *e)
{
	cjose_err cerr;
	cjose_jws_t *jws = NULL;
	json_t *claims = NULL;
	uint8_t *plain = NULL;
	size_t plain_len = 0;
	int rv;

	if (len == 0 || len > AUTH_JWT_MAX_BYTES || !auth_jwt_looks_like(tok, len))
		return ing_error_set(e, ING_EUNAUTHENTICATED,
		                     "not a JWT (three base64url parts, at most %d bytes)",
		                     AUTH_JWT_MAX_BYTES);
	jws = cjose_jws_import(tok, len, &cerr);
	if (jws == NULL)
		return ing_error_set(e, ING_EUNAUTHENTICATED, "malformed JWT");
	cjose_header_t *h = cjose_jws_get_protected(jws);
	const char *alg = h != NULL ? cjose_header_get(h, CJOSE_HDR_ALG, &cerr) : NULL;
	if (alg == NULL || strcmp(alg, "none") == 0 || strncmp(alg, "HS", 2) == 0) {
		rv = ing_error_set(e, ING_EUNAUTHENTICATED,
		                   "JWT algorithm '%s' is refused (RS*, PS* or ES* only)",
		                   alg != NULL ? alg : "(none given)");
		goto out;
	}
	const char *kid = cjose_header_get(h, CJOSE_HDR_KID, &cerr);
	const struct key *k = pick_key(v, kid);
	if (k == NULL) {
		rv = ing_error_set(e, ING_EUNAUTHENTICATED, "JWT key id '%.64s' is not configured",
		                   kid != NULL ? kid : "(none given)");
		goto out;
	}
	if (!alg_fits(k, alg)) {
		rv = ing_error_set(e, ING_EUNAUTHENTICATED,
		                   "JWT algorithm '%s' does not fit the configured key", alg);
		goto out;
	}
	if (!cjose_jws_verify(jws, k->jwk, &cerr)) {
		rv = ing_error_set(e, ING_EUNAUTHENTICATED, "JWT signature does not verify");
		goto out;
	}
	if (!cjose_jws_get_plaintext(jws, &plain, &plain_len, &cerr)) {
		rv = ing_error_set(e, ING_EUNAUTHENTICATED, "JWT payload cannot be read");
		goto out;
	}
	json_error_t jerr;
	claims = json_loadb((const char *)plain, plain_len, JSON_REJECT_DUPLICATES, &jerr);
	if (claims == NULL) {
		rv = ing_error_set(e, ING_EUNAUTHENTICATED, "JWT payload is not JSON");
		goto out;
	}
	rv = check_claims(v, claims, now_s, out, e);
out:
	json_decref(claims);
	cjose_jws_release(jws); /* owns `plain` */
	return rv;
}
