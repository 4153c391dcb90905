/*
 * jwt.h - JWTs from the customer's identity provider, verified offline.
 *
 * The operator copies the provider's public keys in (a JWKS file, or a PEM
 * file of one or more public keys) and names the issuer, the audience and
 * the claims that carry the role and the tenant.  A token is accepted when:
 *   - it is a compact JWS whose `alg` is an asymmetric one that fits the key
 *     (RS256/384/512 and PS256/384/512 for RSA keys, ES256/384/512 for EC
 *     keys on the matching curve); `none` and HMAC algorithms are refused;
 *   - its `kid` names one of the keys (a token without `kid` is accepted only
 *     when exactly one key is configured); an unknown `kid` is refused;
 *   - the signature verifies;
 *   - `exp` is present and in the future, `nbf` (if present) in the past, both
 *     with the configured leeway; `iss` equals the issuer; `aud` equals the
 *     audience or is an array holding it;
 *   - the role claim maps to a role (directly by name, or through role_map)
 *     and the subject claim is a non-empty string.
 * Signature checking and base64url are cjose's (Debian libcjose-dev, built
 * on OpenSSL and jansson); claims are read with jansson.  Nothing here
 * touches the network or the clock: the caller passes the time.
 */
#ifndef INGOT_NODE_AUTH_JWT_H
#define INGOT_NODE_AUTH_JWT_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "node/auth/principal.h"

#define AUTH_JWT_MAX_BYTES    16384
#define AUTH_JWT_MAX_ROLE_MAP 32

struct auth_jwt_role_map {
	char claim_value[AUTH_NAME_MAX + 1];
	enum auth_role role;
};

struct auth_jwt_options {
	const char *issuer;        /* required */
	const char *audience;      /* required */
	const char *keys_path;     /* required: JWKS (JSON) or PEM public key(s) */
	const char *role_claim;    /* NULL: "ingot_role" */
	const char *tenant_claim;  /* NULL: "ingot_tenant"; absent claim: no tenant */
	const char *subject_claim; /* NULL: "sub" */
	unsigned leeway_s;         /* clock skew allowed on exp/nbf */
	/* Optional: claim values (e.g. group names) to roles.  With entries,
	 * only mapped values count; without, the claim must be a role name.
	 * A claim that is an array takes the highest role among its values. */
	const struct auth_jwt_role_map *role_map;
	unsigned nrole_map;
};

struct auth_jwt;

/*
 * Loads the keys and copies the options.  Errors: ING_EINVAL (a missing
 * option, a key file that holds no usable public key, a private or
 * symmetric key, a JWK without kid in a set of several), ING_EIO (the file
 * cannot be read), ING_ENOMEM; e names the file and what is wrong.
 */
int auth_jwt_new(const struct auth_jwt_options *o, struct auth_jwt **out, struct ing_error *e);
void auth_jwt_free(struct auth_jwt *v);
/* Number of keys loaded. */
unsigned auth_jwt_nkeys(const struct auth_jwt *v);

/*
 * Verifies `tok` (borrowed, need not be NUL-terminated) at `now_s` (Unix
 * seconds) and fills *out with kind AUTH_KIND_JWT, the role, "jwt:<sub>"
 * as name and the tenant.  Errors: ING_EUNAUTHENTICATED with a message
 * saying what failed (malformed, algorithm, unknown key, bad signature,
 * expired, not yet valid, issuer, audience, missing claim) — never a
 * partial principal.
 */
int auth_jwt_verify(const struct auth_jwt *v, const char *tok, size_t len, uint64_t now_s,
                    struct auth_principal *out, struct ing_error *e);

/* Whether `tok` has the shape of a compact JWS (three dot-separated parts). */
int auth_jwt_looks_like(const char *tok, size_t len);

#endif
