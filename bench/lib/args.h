/*
 * args.h - command-line values shared by the benches.
 */
#ifndef INGOT_BENCH_ARGS_H
#define INGOT_BENCH_ARGS_H

/*
 * The decimal integer `s` given to option `opt`, which must lie in lo..hi;
 * anything else ends the program with exit 2 and a line naming `prog`, the
 * option, the range and what was given.
 */
unsigned long long bench_num(const char *prog, const char *opt, const char *s,
                             unsigned long long lo, unsigned long long hi);

#endif
