/*
 * fuzz_msgcheck.c - libFuzzer driver for the peer message checker
 * (raft/msgcheck.c), the code that reads what a raft peer sends before
 * libraft does.
 *
 * The input's first byte picks a chunk size (1..256); the rest is fed in
 * chunks of that size, as a network would cut it.  Whatever the bytes, the
 * checker must not crash, and what it forwards must be an exact prefix of
 * what it was given (it holds bytes back, it never changes them); and fed
 * again in one piece it must forward the same prefix and reach the same
 * verdict, having forwarded the same bytes (chunking changes nothing).  A violation aborts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "raft/msgcheck.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t term_seven(void *data)
{
	(void)data;
	return 7;
}

static int run(const uint8_t *p, size_t n, size_t chunk, struct mp_out *out)
{
	struct cons_msgcheck m;
	int rv = 0;
	cons_msgcheck_init(&m, 2, term_seven, NULL);
	for (size_t pos = 0; pos < n && rv == 0; pos += chunk)
		rv = cons_msgcheck_feed(&m, p + pos, n - pos < chunk ? n - pos : chunk, out);
	cons_msgcheck_free(&m);
	return rv;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	size_t chunk = (size_t)data[0] + 1;
	const uint8_t *p = data + 1;
	size_t n = size - 1;
	struct mp_out a, b;
	mp_out_init(&a);
	mp_out_init(&b);
	int ra = run(p, n, chunk, &a);
	int rb = run(p, n, n > 0 ? n : 1, &b);
	if (a.len > n || (a.len > 0 && memcmp(a.data, p, a.len) != 0))
		abort();
	if (ra != rb || a.len != b.len || (a.len > 0 && memcmp(a.data, b.data, a.len) != 0))
		abort();
	mp_out_free(&a);
	mp_out_free(&b);
	return 0;
}
