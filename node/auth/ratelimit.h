/*
 * ratelimit.h - token buckets keyed by principal or source address.
 *
 * Each key has a bucket of `burst` tokens refilled at `rate_per_s`; a
 * request takes one.  The table has a fixed number of entries (no
 * allocation after creation): when a new key finds its probe window full,
 * it takes the slot of the entry touched longest ago.  An evicted key comes
 * back with a full bucket, so the table must hold more keys than are active
 * at once (it is sized from config; 4096 by default).
 *
 * Not thread-safe: one table per loop.
 */
#ifndef INGOT_NODE_AUTH_RATELIMIT_H
#define INGOT_NODE_AUTH_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

struct auth_limiter;

/* Errors: ING_ENOMEM, ING_EINVAL (entries 0). */
int auth_limiter_new(unsigned entries, struct auth_limiter **out);
void auth_limiter_free(struct auth_limiter *l);

/*
 * Takes one token from `key`'s bucket at time now_ms.  Returns 0 when the
 * request may go on; ING_ERATELIMITED when the bucket is empty, with
 * *retry_after_ms (at least 1) set to when one token will be back.
 * rate_per_s 0 means no limit (always 0).  key is borrowed.
 */
int auth_limiter_take(struct auth_limiter *l, const char *key, size_t key_len, double rate_per_s,
                      double burst, uint64_t now_ms, uint64_t *retry_after_ms);

#endif
