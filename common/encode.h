/*
 * encode.h - bytes as text: lowercase hexadecimal and base64.
 *
 * Hex is how ingot shows hashes (SHA-256 as 64 digits), ids (the cluster
 * id, generated request ids) and compares them; base64 (RFC 4648, the
 * standard alphabet with padding, or the URL-safe one without it) is how
 * `-o json` shows bytes and how JWTs carry their parts.  Base64 goes
 * through OpenSSL (EVP_EncodeBlock / EVP_DecodeBlock), which is why
 * common/ links libcrypto; so does SHA-256, the hash of artifacts, inline
 * sources and token secrets.
 */
#ifndef INGOT_COMMON_ENCODE_H
#define INGOT_COMMON_ENCODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

/* Writes the 2n lowercase hex digits of p[0..n) and a NUL to out (2n + 1
 * bytes). */
void ing_hex_encode(const void *p, size_t n, char *out);
/* Reads exactly 2n lowercase hex digits from hex[0..len) into out[0..n).
 * ING_EINVAL (wrong length, or a character that is not 0-9 a-f; out is
 * then unspecified). */
int ing_hex_decode(const char *hex, size_t len, void *out, size_t n);

/* Characters ing_base64_encode writes for n bytes, NUL excluded. */
size_t ing_base64_len(size_t n, bool url);
/* base64 of p[0..n) into out (ing_base64_len + 1 bytes), NUL-terminated.
 * url: the URL-safe alphabet ('-' '_') without padding. */
void ing_base64_encode(const void *p, size_t n, bool url, char *out);
/* The bytes of base64 text b64[0..len) into out (at least len / 4 * 3 + 3
 * bytes); *n their count.  Padding is optional; url: the URL-safe
 * alphabet.  ING_EINVAL (a character outside the alphabet, a misplaced
 * '=', a length that cannot be base64), ING_ENOMEM. */
int ing_base64_decode(const char *b64, size_t len, bool url, void *out, size_t *n);

/* SHA-256 of p[0..n) into out.  OpenSSL 3's SHA256() and EVP_sha256()
 * look the algorithm up in the provider store and make a context on every
 * call (most of the cost of hashing a few hundred bytes); this fetches it
 * once per process and keeps a context per thread.  Thread-safe. */
void ing_sha256(const void *p, size_t n, uint8_t out[32]);

#endif
