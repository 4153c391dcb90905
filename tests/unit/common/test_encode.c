/*
 * test_encode.c - common/encode.h: hex both ways (lowercase only, exact
 * length), base64 both ways against RFC 4648's test vectors, the URL-safe
 * alphabet without padding, every refusal of the decoder, and a random
 * round trip over lengths 0..300; common/uverr.h: libuv's errors become
 * ours.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <uv.h>

#include "common/encode.h"
#include "common/uverr.h"

static void test_hex(void **state)
{
	const uint8_t bytes[] = {0x00, 0x01, 0x7f, 0x80, 0xab, 0xff};
	uint8_t back[sizeof(bytes)];
	char hex[2 * sizeof(bytes) + 1];
	(void)state;

	ing_hex_encode(bytes, sizeof(bytes), hex);
	assert_string_equal(hex, "00017f80abff");
	assert_int_equal(ing_hex_decode(hex, strlen(hex), back, sizeof(back)), 0);
	assert_memory_equal(back, bytes, sizeof(bytes));
	ing_hex_encode(bytes, 0, hex);
	assert_string_equal(hex, "");
	assert_int_equal(ing_hex_decode("", 0, back, 0), 0);
	/* Refused: uppercase, non-hex, odd or other lengths. */
	assert_int_equal(ing_hex_decode("00017F80abff", 12, back, 6), ING_EINVAL);
	assert_int_equal(ing_hex_decode("00017g80abff", 12, back, 6), ING_EINVAL);
	assert_int_equal(ing_hex_decode("00017f80abf", 11, back, 6), ING_EINVAL);
	assert_int_equal(ing_hex_decode("00017f80ab", 10, back, 6), ING_EINVAL);
	assert_int_equal(ing_hex_decode("0x", 2, back, 1), ING_EINVAL);
}

/* RFC 4648, section 10. */
static const char *const plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
static const char *const std[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
static const char *const url[] = {"", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy"};

static void test_base64_vectors(void **state)
{
	char out[64];
	uint8_t back[64];
	size_t n;
	(void)state;

	for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++) {
		size_t len = strlen(plain[i]);
		assert_int_equal(ing_base64_len(len, false), strlen(std[i]));
		assert_int_equal(ing_base64_len(len, true), strlen(url[i]));
		ing_base64_encode(plain[i], len, false, out);
		assert_string_equal(out, std[i]);
		ing_base64_encode(plain[i], len, true, out);
		assert_string_equal(out, url[i]);
		assert_int_equal(ing_base64_decode(std[i], strlen(std[i]), false, back, &n), 0);
		assert_int_equal(n, len);
		assert_memory_equal(back, plain[i], len);
		assert_int_equal(ing_base64_decode(url[i], strlen(url[i]), true, back, &n), 0);
		assert_int_equal(n, len);
		assert_memory_equal(back, plain[i], len);
		/* Padding is optional in both alphabets. */
		assert_int_equal(ing_base64_decode(url[i], strlen(url[i]), false, back, &n), 0);
		assert_int_equal(n, len);
		assert_int_equal(ing_base64_decode(std[i], strlen(std[i]), true, back, &n), 0);
		assert_int_equal(n, len);
	}
}

static void test_base64_alphabets(void **state)
{
	const uint8_t bytes[] = {0xfb, 0xff, 0xbf}; /* "+/+/" and "-_-_" */
	char out[16];
	uint8_t back[16];
	size_t n;
	(void)state;

	ing_base64_encode(bytes, sizeof(bytes), false, out);
	assert_string_equal(out, "+/+/");
	ing_base64_encode(bytes, sizeof(bytes), true, out);
	assert_string_equal(out, "-_-_");
	assert_int_equal(ing_base64_decode("+/+/", 4, false, back, &n), 0);
	assert_int_equal(n, 3);
	assert_memory_equal(back, bytes, 3);
	assert_int_equal(ing_base64_decode("-_-_", 4, true, back, &n), 0);
	assert_memory_equal(back, bytes, 3);
	/* Each alphabet refuses the other's two characters. */
	assert_int_equal(ing_base64_decode("-_-_", 4, false, back, &n), ING_EINVAL);
	assert_int_equal(ing_base64_decode("+/+/", 4, true, back, &n), ING_EINVAL);
}

static void test_base64_refusals(void **state)
{
	static const char *const bad[] = {
	    "Z",       /* a length no base64 has */
	    "Zm9vY",   /* 5 characters */
	    "Zg=",     /* padding that does not complete a group */
	    "Zg===",   /* three '=' */
	    "Z=g=",    /* '=' inside */
	    "=Zg=",    /* '=' first */
	    "Zm9v\n",  /* a blank */
	    " Zm9v",   /* a leading blank, which EVP_DecodeBlock would skip */
	    "Zm9v!",   /* outside the alphabet */
	    "Zm\x80v", /* a high byte */
	};
	uint8_t back[16];
	size_t n = 12345;
	(void)state;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(ing_base64_decode(bad[i], strlen(bad[i]), false, back, &n),
		                 ING_EINVAL);
		assert_int_equal(n, 12345); /* nothing written on failure */
	}
}

static void test_base64_round_trip(void **state)
{
	uint8_t in[300], back[300 + 3];
	char text[500];
	size_t n;
	(void)state;

	srand(7);
	for (size_t len = 0; len <= sizeof(in); len++) {
		for (size_t i = 0; i < len; i++)
			in[i] = (uint8_t)rand();
		for (int u = 0; u < 2; u++) {
			ing_base64_encode(in, len, u, text);
			assert_int_equal(strlen(text), ing_base64_len(len, u));
			assert_int_equal(ing_base64_decode(text, strlen(text), u, back, &n), 0);
			assert_int_equal(n, len);
			assert_memory_equal(back, in, len);
		}
	}
}

static void test_uv_errors(void **state)
{
	(void)state;
	assert_int_equal(ing_err_from_uv(0), 0);
	assert_int_equal(ing_err_from_uv(UV_ENOMEM), ING_ENOMEM);
	assert_int_equal(ing_err_from_uv(UV_EINVAL), ING_EINVAL);
	assert_int_equal(ing_err_from_uv(UV_EACCES), ING_EDENIED);
	assert_int_equal(ing_err_from_uv(UV_ETIMEDOUT), ING_ETIMEOUT);
	assert_int_equal(ing_err_from_uv(UV_ECONNREFUSED), ING_EUNAVAILABLE);
	assert_int_equal(ing_err_from_uv(UV_EADDRINUSE), ING_EUNAVAILABLE);
	assert_int_equal(ing_err_from_uv(UV_EOF), ING_EUNAVAILABLE);
	assert_int_equal(ing_err_from_uv(UV_EMFILE), ING_EUNAVAILABLE);
	assert_int_equal(ing_err_from_uv(UV_EIO), ING_EIO);
	assert_int_equal(ing_err_from_uv(UV_ENOSPC), ING_EIO);
}

/* Hashes "abc" on a thread of its own (its context is freed when it ends:
 * the leak checker sees that). */
static void *sha256_thread(void *arg)
{
	uint8_t *h = arg;
	ing_sha256("abc", 3, h);
	ing_sha256("abc", 3, h);
	return NULL;
}

/* ing_sha256 against FIPS 180-2's vectors and OpenSSL's SHA256(), again
 * and again with one context, and on another thread. */
static void test_sha256(void **state)
{
	(void)state;
	uint8_t h[32], want[32];
	char hex[65];
	ing_sha256("", 0, h);
	ing_hex_encode(h, 32, hex);
	assert_string_equal(hex,
	                    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	ing_sha256("abc", 3, h);
	ing_hex_encode(h, 32, hex);
	assert_string_equal(hex,
	                    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	size_t n = 1 << 20;
	unsigned char *big = malloc(n);
	assert_non_null(big);
	for (size_t i = 0; i < n; i++)
		big[i] = (unsigned char)(i * 131 + (i >> 8));
	ing_sha256(big, n, h);
	SHA256(big, n, want);
	assert_memory_equal(h, want, 32);
	for (size_t len = 0; len < 300; len += 7) {
		ing_sha256(big, len, h);
		SHA256(big, len, want);
		assert_memory_equal(h, want, 32);
	}
	free(big);
	pthread_t th;
	uint8_t th_h[32];
	assert_int_equal(pthread_create(&th, NULL, sha256_thread, th_h), 0);
	assert_int_equal(pthread_join(th, NULL), 0);
	ing_hex_encode(th_h, 32, hex);
	assert_string_equal(hex,
	                    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_hex),
	    cmocka_unit_test(test_sha256),
	    cmocka_unit_test(test_base64_vectors),
	    cmocka_unit_test(test_base64_alphabets),
	    cmocka_unit_test(test_base64_refusals),
	    cmocka_unit_test(test_base64_round_trip),
	    cmocka_unit_test(test_uv_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
