/*
 * harness.cu - checks the CUDA complex mixer (mixer_cuda.h: mixer.cu) on
 * the GPU against the reference vectors, then times it.
 *
 *   verify REF_IN REF_OUT [METRICS.json]
 *
 * The checks are harness.c's: the signal mixed in one call, then in pieces
 * of uneven sizes (the oscillator's state must carry over), then in place.
 * The timed run mixes 2^24 random samples, device to device, in place;
 * its bytes are 16 per sample (8 read, 8 written).  Output, exit codes and
 * tolerance: cuda_harness.h.
 */
#include "cuda_harness.h"
#include "mixer_cuda.h"

#define BENCH_N ((size_t)1 << 24)

struct bench {
	struct mixer_cuda_nco nco;
	float *d;
	size_t n;
};

static int bench_launch(void *ctx)
{
	struct bench *b = (struct bench *)ctx;
	return mixer_c32_cuda_launch(&b->nco, b->d, b->d, b->n);
}

int main(int argc, char **argv)
{
	static const size_t piece[] = {1, 7, 8, 9, 100, 513, 3};
	FILE *fi, *fo;
	const char *metrics;
	size_t n, nout;
	double freq, phase, *xd, *want, maxerr = 0.0;
	float *x, *y;
	struct mixer_cuda_nco nco;
	struct ch_gpu g;
	struct bench b;
	struct ch_metrics m;
	char extra[96];
	int bad;

	metrics = ch_args(argc, argv, &fi, &fo);
	if (ch_read_num(fi, argv[1], &freq) != 0 || ch_read_num(fi, argv[1], &phase) != 0 ||
	    ch_read_count(fi, argv[1], &n) != 0 || (xd = ch_read_vec(fi, argv[1], 2 * n)) == NULL ||
	    ch_read_count(fo, argv[2], &nout) != 0)
		return 2;
	if (nout != n) {
		fprintf(stderr, "harness: %s has %zu samples, %s %zu\n", argv[2], nout, argv[1], n);
		return 2;
	}
	if ((want = ch_read_vec(fo, argv[2], 2 * n)) == NULL)
		return 2;
	x = (float *)ch_alloc(2 * n * sizeof(*x));
	y = (float *)ch_alloc(2 * n * sizeof(*y));
	for (size_t i = 0; i < 2 * n; i++)
		x[i] = (float)xd[i];

	ch_gpu_open(&g);
	mixer_cuda_init(&nco, freq, phase);
	CH_CUDA(mixer_c32_cuda(&nco, x, y, n));
	bad = ch_compare("mixer", "one call", y, want, 1.0, n, 2, &maxerr);
	if (!bad) {
		mixer_cuda_init(&nco, freq, phase);
		for (size_t a = 0, p = 0; a < n; p = (p + 1) % (sizeof(piece) / sizeof(piece[0]))) {
			size_t k = piece[p] < n - a ? piece[p] : n - a;

			CH_CUDA(mixer_c32_cuda(&nco, x + 2 * a, y + 2 * a, k));
			a += k;
		}
		bad = ch_compare("mixer", "in pieces", y, want, 1.0, n, 2, &maxerr);
	}
	if (!bad) {
		mixer_cuda_init(&nco, freq, phase);
		CH_CUDA(mixer_c32_cuda(&nco, x, x, n));
		bad = ch_compare("mixer", "in place", x, want, 1.0, n, 2, &maxerr);
	}
	if (bad)
		return 1;
	printf("PASS\n");

	/* Timing: BENCH_N random samples mixed in place on the device. */
	{
		b.d = ch_device_random(2 * BENCH_N, 3);
		mixer_cuda_init(&b.nco, freq, phase);
		b.n = BENCH_N;
		memset(&m, 0, sizeof(m));
		ch_time(bench_launch, &b, &m.kernel_ms, &m.kernel_ms_min);
		snprintf(extra, sizeof(extra), "\"freq\": %.10g", freq);
		m.kernel = "mixer";
		m.unit = "samples";
		m.n = BENCH_N;
		m.bytes = 16.0 * (double)BENCH_N;
		m.max_abs_error = maxerr;
		m.extra = extra;
		ch_metrics_write(metrics, &m, &g);
		CH_CUDA(cudaFree(b.d));
	}
	free(xd), free(want), free(x), free(y);
	fclose(fi), fclose(fo);
	return 0;
}
