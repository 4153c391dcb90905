/*
 * token.h - bearer tokens: their format, generation and check.
 *
 * A token is the string "ingot_<id>_<secret>", where <id> is the token's
 * decimal id in the replicated tokens table and <secret> is 64 lower-case
 * hex digits (32 bytes from the OS's random source, through OpenSSL's
 * RAND_bytes).  The cluster stores only SHA-256 of the secret, as the key of
 * the token's row; the id (known only once the creating command is applied)
 * is checked against the row's.  The secret is random, so a plain hash is as
 * strong as a slow one here: nothing to brute-force (docs/formats.md
 * "tokens").
 *
 * The code holds no state: the table and its records belong to the state
 * machine (node/sm) and the checks to node/api.
 */
#ifndef INGOT_NODE_AUTH_TOKEN_H
#define INGOT_NODE_AUTH_TOKEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define AUTH_TOKEN_PREFIX     "ingot_"
#define AUTH_TOKEN_SECRET_HEX 64
#define AUTH_TOKEN_HASH_BYTES 32
/* "ingot_" + up to 20 digits + "_" + 64 hex + NUL */
#define AUTH_TOKEN_MAX (6 + 20 + 1 + AUTH_TOKEN_SECRET_HEX + 1)

/*
 * Makes a new secret: 64 hex digits and NUL into `secret`, its hash into
 * `hash`.  Errors: ING_EINTERNAL when the random source fails (nothing
 * written).
 */
int auth_token_new_secret(char secret[AUTH_TOKEN_SECRET_HEX + 1],
                          uint8_t hash[AUTH_TOKEN_HASH_BYTES]);

/* The token string of `id` and `secret` (NUL-terminated). */
void auth_token_format(uint64_t id, const char *secret, char out[AUTH_TOKEN_MAX]);

/*
 * Reads the id of a presented token and hashes its secret.  `tok` is borrowed and
 * need not be NUL-terminated.  Errors: ING_EINVAL when it does not have the
 * token format (e names what is off, never echoing the secret).
 */
int auth_token_parse(const char *tok, size_t len, uint64_t *id, uint8_t hash[AUTH_TOKEN_HASH_BYTES],
                     struct ing_error *e);

/* Constant-time comparison of two token hashes. */
bool auth_token_hash_equal(const uint8_t a[AUTH_TOKEN_HASH_BYTES],
                           const uint8_t b[AUTH_TOKEN_HASH_BYTES]);

/* Whether `tok` looks like one of our tokens (prefix only): a client may
 * pass a token or a JWT in the same field. */
bool auth_token_looks_like(const char *tok, size_t len);

#endif
