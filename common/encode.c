/*
 * encode.c - see encode.h.
 *
 * base64 through OpenSSL: EVP_EncodeBlock writes the standard alphabet
 * with padding; the URL-safe form is that with '+' '/' mapped to '-' '_'
 * and the padding dropped.  EVP_DecodeBlock wants padded standard input
 * and counts the padding as zero bytes, so the input is first normalised
 * (alphabet mapped back, padding restored) in a scratch copy, checked
 * strictly (EVP_DecodeBlock itself skips leading and trailing blanks), and
 * the padding subtracted from the count.
 */
#include "common/encode.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/sha.h>
#include <pthread.h>

void ing_hex_encode(const void *p, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	const unsigned char *u = p;
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[u[i] >> 4];
		out[2 * i + 1] = digits[u[i] & 15];
	}
	out[2 * n] = '\0';
}

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int ing_hex_decode(const char *hex, size_t len, void *out, size_t n)
{
	unsigned char *u = out;
	if (len != 2 * n)
		return ING_EINVAL;
	for (size_t i = 0; i < n; i++) {
		int hi = hex_digit(hex[2 * i]), lo = hex_digit(hex[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return ING_EINVAL;
		u[i] = (unsigned char)(hi << 4 | lo);
	}
	return 0;
}

size_t ing_base64_len(size_t n, bool url)
{
	if (!url)
		return (n + 2) / 3 * 4;
	return n / 3 * 4 + (n % 3 == 0 ? 0 : n % 3 + 1);
}

void ing_base64_encode(const void *p, size_t n, bool url, char *out)
{
	/* EVP_EncodeBlock takes an int length: encode in bounded pieces of a
	 * multiple of 3 bytes, so the pieces join without padding between. */
	const unsigned char *u = p;
	size_t o = 0;
	while (n > 0) {
		size_t piece = n > (size_t)3 << 20 ? (size_t)3 << 20 : n;
		o += (size_t)EVP_EncodeBlock((unsigned char *)out + o, u, (int)piece);
		u += piece;
		n -= piece;
	}
	out[o] = '\0';
	if (!url)
		return;
	while (o > 0 && out[o - 1] == '=')
		out[--o] = '\0';
	for (size_t i = 0; i < o; i++)
		out[i] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
}

static bool b64_char(char c, bool url)
{
	if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
		return true;
	return url ? (c == '-' || c == '_') : (c == '+' || c == '/');
}

int ing_base64_decode(const char *b64, size_t len, bool url, void *out, size_t *n)
{
	size_t body = len, pad;
	while (body > 0 && len - body < 2 && b64[body - 1] == '=')
		body--;
	for (size_t i = 0; i < body; i++)
		if (!b64_char(b64[i], url))
			return ING_EINVAL;
	if (body % 4 == 1 || (len != body && len % 4 != 0))
		return ING_EINVAL; /* no such length; or padding that does not complete a group */
	pad = (4 - body % 4) % 4;
	if (body + pad > (size_t)INT32_MAX)
		return ING_EINVAL;
	char *norm = malloc(body + pad + 1);
	if (norm == NULL)
		return ING_ENOMEM;
	for (size_t i = 0; i < body; i++)
		norm[i] = b64[i] == '-' ? '+' : b64[i] == '_' ? '/' : b64[i];
	memset(norm + body, '=', pad);
	norm[body + pad] = '\0';
	int got = body + pad == 0
	              ? 0
	              : EVP_DecodeBlock(out, (const unsigned char *)norm, (int)(body + pad));
	free(norm);
	if (got < 0)
		return ING_EINVAL;
	*n = (size_t)got - pad;
	return 0;
}

/* The algorithm, fetched once; and one digest context per thread, made on
 * its first hash and freed when the thread ends (EVP_Digest makes and
 * frees a context on every call). */
static EVP_MD *sha256_md; /* never freed: lives as long as the process */
static pthread_key_t sha256_ctx_key;
static bool sha256_key_ok;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void sha256_ctx_free(void *ctx)
{
	EVP_MD_CTX_free(ctx);
}

static void sha256_fetch(void)
{
	sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
	sha256_key_ok = pthread_key_create(&sha256_ctx_key, sha256_ctx_free) == 0;
}

static EVP_MD_CTX *sha256_ctx(void)
{
	if (!sha256_key_ok)
		return NULL;
	EVP_MD_CTX *ctx = pthread_getspecific(sha256_ctx_key);
	if (ctx == NULL && (ctx = EVP_MD_CTX_new()) != NULL &&
	    pthread_setspecific(sha256_ctx_key, ctx) != 0) {
		EVP_MD_CTX_free(ctx);
		ctx = NULL;
	}
	return ctx;
}

void ing_sha256(const void *p, size_t n, uint8_t out[32])
{
	unsigned int len = 0;
	pthread_once(&sha256_once, sha256_fetch);
	EVP_MD_CTX *ctx = sha256_md != NULL ? sha256_ctx() : NULL;
	if (ctx != NULL && EVP_DigestInit_ex(ctx, sha256_md, NULL) == 1 &&
	    EVP_DigestUpdate(ctx, p, n) == 1 && EVP_DigestFinal_ex(ctx, out, &len) == 1 &&
	    len == 32)
		return;
	SHA256(p, n, out); /* the slow lookup, which cannot fail here either */
}
