/*
 * probe.h - the loop-pause probe shared by the two prototypes (the same as
 * bench/http_bench.c's): a 1 ms repeating timer records the gaps between
 * its callbacks; at SIGINT/SIGTERM the prototype prints the p99, p99.9 and
 * longest gap and exits.
 */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <uv.h>

#define PROBE_MAX_GAPS (1u << 22)

static uv_timer_t probe_timer;
static uv_signal_t probe_sigint, probe_sigterm;
static uint64_t probe_last_ns, *probe_gaps_us;
static size_t probe_ngaps;

static void probe_tick(uv_timer_t *t)
{
	(void)t;
	uint64_t now = uv_hrtime();
	if (probe_last_ns != 0 && probe_ngaps < PROBE_MAX_GAPS)
		probe_gaps_us[probe_ngaps++] = (now - probe_last_ns) / 1000;
	probe_last_ns = now;
}

static int probe_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : (x > y ? 1 : 0);
}

static void probe_report(uv_signal_t *s, int signum)
{
	(void)s;
	(void)signum;
	size_t n = probe_ngaps;
	qsort(probe_gaps_us, n, sizeof(*probe_gaps_us), probe_cmp);
	if (n > 0)
		printf("1 ms probe: %zu ticks, gap p99 %.2f ms, p99.9 %.2f ms, max %.2f ms\n", n,
		       probe_gaps_us[n * 99 / 100] / 1e3, probe_gaps_us[n * 999 / 1000] / 1e3,
		       probe_gaps_us[n - 1] / 1e3);
	fflush(stdout);
	exit(0);
}

static void probe_start(uv_loop_t *loop)
{
	probe_gaps_us = malloc(PROBE_MAX_GAPS * sizeof(*probe_gaps_us));
	uv_timer_init(loop, &probe_timer);
	uv_timer_start(&probe_timer, probe_tick, 1, 1);
	uv_signal_init(loop, &probe_sigint);
	uv_signal_start(&probe_sigint, probe_report, SIGINT);
	uv_signal_init(loop, &probe_sigterm);
	uv_signal_start(&probe_sigterm, probe_report, SIGTERM);
}
