/*
 * args.c - see args.h.
 */
#include "args.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

unsigned long long bench_num(const char *prog, const char *opt, const char *s,
                             unsigned long long lo, unsigned long long hi)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (*s == '\0' || *end != '\0' || errno != 0 || v < lo || v > hi) {
		fprintf(stderr, "%s: %s: expected an integer in %llu..%llu, got '%s'\n", prog, opt,
		        lo, hi, s);
		exit(2);
	}
	return v;
}
