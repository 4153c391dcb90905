/*
 * ratelimit.c - fixed-size table of token buckets (ratelimit.h).
 *
 * Keys are hashed (FNV-1a, 64 bits) and probed linearly over a window of
 * PROBE slots; an entry stores the full hash and a copy of the key (up to
 * KEY_MAX bytes, longer keys are compared by hash and prefix, which only
 * makes two such keys share a bucket: never more permissive than the key).
 * Time only moves forward for a bucket: a clock step back refills nothing.
 */
#include "node/auth/ratelimit.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"

#define PROBE   8
#define KEY_MAX 64

struct bucket {
	bool used;
	uint64_t hash;
	uint8_t key_len;
	char key[KEY_MAX];
	double tokens;
	uint64_t last_ms;
};

struct auth_limiter {
	unsigned n;
	struct bucket b[];
};

int auth_limiter_new(unsigned entries, struct auth_limiter **out)
{
	if (entries == 0)
		return ING_EINVAL;
	if (entries < PROBE)
		entries = PROBE;
	struct auth_limiter *l = calloc(1, sizeof(*l) + (size_t)entries * sizeof(struct bucket));
	if (l == NULL)
		return ING_ENOMEM;
	l->n = entries;
	*out = l;
	return 0;
}

void auth_limiter_free(struct auth_limiter *l)
{
	free(l);
}

static uint64_t fnv1a(const char *s, size_t n)
{
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < n; i++) {
		h ^= (uint8_t)s[i];
		h *= 1099511628211ull;
	}
	return h;
}

static bool same(const struct bucket *b, uint64_t h, const char *key, size_t len)
{
	size_t kl = len < KEY_MAX ? len : KEY_MAX;
	return b->used && b->hash == h && b->key_len == kl && memcmp(b->key, key, kl) == 0;
}

static struct bucket *find_or_take(struct auth_limiter *l, const char *key, size_t len,
                                   double burst, uint64_t now_ms)
{
	uint64_t h = fnv1a(key, len);
	unsigned start = (unsigned)(h % l->n);
	struct bucket *victim = NULL;

	for (unsigned i = 0; i < PROBE; i++) {
		struct bucket *b = &l->b[(start + i) % l->n];
		if (same(b, h, key, len))
			return b;
		if (!b->used) {
			if (victim == NULL || victim->used)
				victim = b;
		} else if (victim == NULL || (victim->used && b->last_ms < victim->last_ms)) {
			victim = b;
		}
	}
	size_t kl = len < KEY_MAX ? len : KEY_MAX;
	victim->used = true;
	victim->hash = h;
	victim->key_len = (uint8_t)kl;
	memcpy(victim->key, key, kl);
	victim->tokens = burst;
	victim->last_ms = now_ms;
	return victim;
}

int auth_limiter_take(struct auth_limiter *l, const char *key, size_t key_len, double rate_per_s,
                      double burst, uint64_t now_ms, uint64_t *retry_after_ms)
{
	if (rate_per_s <= 0)
		return 0;
	if (burst < 1)
		burst = 1;
	struct bucket *b = find_or_take(l, key, key_len, burst, now_ms);
	if (now_ms > b->last_ms) {
		b->tokens += (double)(now_ms - b->last_ms) * rate_per_s / 1000.0;
		if (b->tokens > burst)
			b->tokens = burst;
		b->last_ms = now_ms;
	}
	if (b->tokens >= 1.0) {
		b->tokens -= 1.0;
		return 0;
	}
	double wait_ms = (1.0 - b->tokens) * 1000.0 / rate_per_s;
	uint64_t w = (uint64_t)wait_ms;
	if ((double)w < wait_ms)
		w++;
	*retry_after_ms = w > 0 ? w : 1;
	return ING_ERATELIMITED;
}
