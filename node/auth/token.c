/*
 * token.c - bearer token format, generation and check (token.h).
 *
 * The secret never lives anywhere but in the reply that creates it and in
 * the client's hands: the log and the store get its SHA-256 only (of the
 * secret alone: the id is not known when the hash goes into the log).  Parsing
 * is strict (exact length, digits, hex) so that a malformed token is told
 * apart from an unknown one, and error messages never repeat the secret.
 */
#include "node/auth/token.h"

#include <inttypes.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>

#include "common/encode.h"

static int hash_of(const char *tok, size_t len, uint8_t hash[AUTH_TOKEN_HASH_BYTES])
{
	_Static_assert(AUTH_TOKEN_HASH_BYTES == 32, "a token's hash is a SHA-256");
	ing_sha256(tok, len, hash);
	return 0;
}

int auth_token_new_secret(char secret[AUTH_TOKEN_SECRET_HEX + 1],
                          uint8_t hash[AUTH_TOKEN_HASH_BYTES])
{
	uint8_t raw[AUTH_TOKEN_SECRET_HEX / 2];
	char hex[AUTH_TOKEN_SECRET_HEX + 1];
	uint8_t h[AUTH_TOKEN_HASH_BYTES];
	int rv = ING_EINTERNAL;

	if (RAND_bytes(raw, (int)sizeof(raw)) != 1)
		return ING_EINTERNAL;
	ing_hex_encode(raw, sizeof(raw), hex);
	if (hash_of(hex, AUTH_TOKEN_SECRET_HEX, h) == 0) {
		memcpy(secret, hex, sizeof(hex));
		memcpy(hash, h, sizeof(h));
		rv = 0;
	}
	OPENSSL_cleanse(raw, sizeof(raw));
	OPENSSL_cleanse(hex, sizeof(hex));
	return rv;
}

void auth_token_format(uint64_t id, const char *secret, char out[AUTH_TOKEN_MAX])
{
	snprintf(out, AUTH_TOKEN_MAX, AUTH_TOKEN_PREFIX "%" PRIu64 "_%.*s", id,
	         AUTH_TOKEN_SECRET_HEX, secret);
}

bool auth_token_looks_like(const char *tok, size_t len)
{
	size_t p = sizeof(AUTH_TOKEN_PREFIX) - 1;
	return len >= p && memcmp(tok, AUTH_TOKEN_PREFIX, p) == 0;
}

int auth_token_parse(const char *tok, size_t len, uint64_t *id, uint8_t hash[AUTH_TOKEN_HASH_BYTES],
                     struct ing_error *e)
{
	size_t p = sizeof(AUTH_TOKEN_PREFIX) - 1;
	uint64_t v = 0;
	size_t i;

	if (!auth_token_looks_like(tok, len))
		return ing_error_set(e, ING_EINVAL, "token does not start with '%s'",
		                     AUTH_TOKEN_PREFIX);
	for (i = p; i < len && tok[i] != '_'; i++) {
		if (tok[i] < '0' || tok[i] > '9' || i - p >= 20)
			return ing_error_set(e, ING_EINVAL, "token id is not a decimal number");
		uint64_t d = (uint64_t)(tok[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return ing_error_set(e, ING_EINVAL, "token id is out of range");
		v = v * 10 + d;
	}
	if (i == p || v == 0 || (i - p > 1 && tok[p] == '0'))
		return ing_error_set(e, ING_EINVAL, "token id is missing or not canonical");
	if (i >= len || len - i - 1 != AUTH_TOKEN_SECRET_HEX)
		return ing_error_set(e, ING_EINVAL, "token secret is not %d hex digits",
		                     AUTH_TOKEN_SECRET_HEX);
	for (size_t j = i + 1; j < len; j++)
		if (!((tok[j] >= '0' && tok[j] <= '9') || (tok[j] >= 'a' && tok[j] <= 'f')))
			return ing_error_set(e, ING_EINVAL,
			                     "token secret is not lower-case hex digits");
	if (hash_of(tok + i + 1, AUTH_TOKEN_SECRET_HEX, hash) != 0)
		return ing_error_set(e, ING_EINTERNAL, "cannot hash the token");
	*id = v;
	return 0;
}

bool auth_token_hash_equal(const uint8_t a[AUTH_TOKEN_HASH_BYTES],
                           const uint8_t b[AUTH_TOKEN_HASH_BYTES])
{
	return CRYPTO_memcmp(a, b, AUTH_TOKEN_HASH_BYTES) == 0;
}
