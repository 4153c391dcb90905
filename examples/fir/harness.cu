/*
 * harness.cu - checks the CUDA FIR filter (fir_cuda.h: fir.cu, or
 * fir_wrong.cu to see a failure) on the GPU against the reference vectors,
 * then times it.
 *
 *   verify REF_IN REF_OUT [METRICS.json]
 *
 * The checks are harness.c's: the signal filtered in one call, then in
 * pieces that restart the filter on overlapping history.  The timed run
 * filters 2^24 random samples with the reference taps, device to device;
 * its bytes are the compulsory traffic, 4 read + 4 written per sample.
 * Output, exit codes and tolerance: cuda_harness.h.
 */
#include "cuda_harness.h"
#include "fir_cuda.h"

#define BENCH_N ((size_t)1 << 24)

struct bench {
	const float *dx;
	float *dy;
	size_t n, ntaps;
};

static int bench_launch(void *ctx)
{
	struct bench *b = (struct bench *)ctx;
	return fir_f32_cuda_launch(b->dx, b->n, b->ntaps, b->dy);
}

int main(int argc, char **argv)
{
	static const size_t piece[] = {1, 7, 64, 300, 5, 1000};
	FILE *fi, *fo;
	const char *metrics;
	size_t ntaps, n, nout;
	double *hd, *xd, *want, maxerr = 0.0;
	float *h, *x, *y, *tmp;
	struct ch_gpu g;
	struct bench b;
	struct ch_metrics m;
	char extra[64];
	int bad;

	metrics = ch_args(argc, argv, &fi, &fo);
	if (ch_read_count(fi, argv[1], &ntaps) != 0 ||
	    (hd = ch_read_vec(fi, argv[1], ntaps)) == NULL || ch_read_count(fi, argv[1], &n) != 0 ||
	    (xd = ch_read_vec(fi, argv[1], n)) == NULL || ch_read_count(fo, argv[2], &nout) != 0)
		return 2;
	if (ntaps == 0 || ntaps > FIR_CUDA_MAX_TAPS) {
		fprintf(stderr, "harness: %s: %zu taps (1 to %d)\n", argv[1], ntaps,
		        FIR_CUDA_MAX_TAPS);
		return 2;
	}
	if (nout != n) {
		fprintf(stderr, "harness: %s has %zu samples, %s %zu\n", argv[2], nout, argv[1], n);
		return 2;
	}
	if ((want = ch_read_vec(fo, argv[2], n)) == NULL)
		return 2;
	h = (float *)ch_alloc(ntaps * sizeof(*h));
	x = (float *)ch_alloc(n * sizeof(*x));
	y = (float *)ch_alloc(n * sizeof(*y));
	tmp = (float *)ch_alloc((n + ntaps) * sizeof(*tmp));
	for (size_t k = 0; k < ntaps; k++)
		h[k] = (float)hd[k];
	for (size_t i = 0; i < n; i++)
		x[i] = (float)xd[i];

	ch_gpu_open(&g);
	CH_CUDA(fir_f32_cuda(h, ntaps, x, n, y));
	bad = ch_compare("fir", "one call", y, want, 1.0, n, 1, &maxerr);
	/* In pieces: outputs [a, b) need inputs from a - (ntaps - 1) on. */
	for (size_t a = 0, p = 0; !bad && a < n; p = (p + 1) % (sizeof(piece) / sizeof(piece[0]))) {
		size_t e = a + piece[p] < n ? a + piece[p] : n;
		size_t from = a >= ntaps - 1 ? a - (ntaps - 1) : 0;

		CH_CUDA(fir_f32_cuda(h, ntaps, x + from, e - from, tmp));
		for (size_t i = a; i < e; i++)
			y[i] = tmp[i - from];
		a = e;
		if (a == n)
			bad = ch_compare("fir", "in pieces", y, want, 1.0, n, 1, &maxerr);
	}
	if (bad)
		return 1;
	printf("PASS\n");

	/* Timing: BENCH_N random samples, device to device. */
	{
		float *dx = ch_device_random(BENCH_N, 1), *dy;

		CH_CUDA(cudaMalloc((void **)&dy, BENCH_N * sizeof(float)));
		CH_CUDA(fir_f32_cuda_set_taps(h, ntaps));
		b.dx = dx;
		b.dy = dy;
		b.n = BENCH_N;
		b.ntaps = ntaps;
		memset(&m, 0, sizeof(m));
		ch_time(bench_launch, &b, &m.kernel_ms, &m.kernel_ms_min);
		snprintf(extra, sizeof(extra), "\"taps\": %zu", ntaps);
		m.kernel = "fir";
		m.unit = "samples";
		m.n = BENCH_N;
		m.bytes = 8.0 * (double)BENCH_N;
		m.max_abs_error = maxerr;
		m.extra = extra;
		ch_metrics_write(metrics, &m, &g);
		CH_CUDA(cudaFree(dx));
		CH_CUDA(cudaFree(dy));
	}
	free(hd), free(xd), free(want), free(h), free(x), free(y), free(tmp);
	fclose(fi), fclose(fo);
	return 0;
}
