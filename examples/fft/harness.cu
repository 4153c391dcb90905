/*
 * harness.cu - checks the CUDA FFT (fft_cuda.h: fft.cu) on the GPU against
 * the reference vectors, then times it.
 *
 *   verify REF_IN REF_OUT [METRICS.json]
 *
 * The checks are harness.c's: the forward transform against REF_OUT, the
 * inverse of that giving n times the input back, and n = 3 and n = 0
 * refused; the max abs error in the metrics is the forward transform's.
 * The timed run is a forward transform of 2^22 random points,
 * device to device; its bytes are 16 per point (8 read, 8 written) for
 * each of the fft_c32_cuda_passes() passes over device memory.  Output,
 * exit codes and tolerance: cuda_harness.h.
 */
#include "cuda_harness.h"
#include "fft_cuda.h"

#define BENCH_N ((size_t)1 << 22)

struct bench {
	const float *din;
	float *dout;
	size_t n;
};

static int bench_launch(void *ctx)
{
	struct bench *b = (struct bench *)ctx;
	return fft_c32_cuda_launch(b->din, b->dout, b->n, 0);
}

/* fft_c32_cuda, with -1 (refused) as a failure of the kernel. */
static int transform(float *d, size_t n, int inverse)
{
	int rv = fft_c32_cuda(d, n, inverse);

	if (rv == -1) {
		printf("FAIL: fft_c32_cuda refused n = %zu%s\n", n, inverse ? " (inverse)" : "");
		return 1;
	}
	CH_CUDA(rv);
	return 0;
}

int main(int argc, char **argv)
{
	FILE *fi, *fo;
	const char *metrics;
	size_t n, nout;
	double *x, *want, maxerr = 0.0;
	float *d, dummy[6] = {0};
	struct ch_gpu g;
	struct bench b;
	struct ch_metrics m;
	char extra[64];
	int bad;

	metrics = ch_args(argc, argv, &fi, &fo);
	if (ch_read_count(fi, argv[1], &n) != 0 || (x = ch_read_vec(fi, argv[1], 2 * n)) == NULL ||
	    ch_read_count(fo, argv[2], &nout) != 0)
		return 2;
	if (nout != n) {
		fprintf(stderr, "harness: %s has %zu points, %s %zu\n", argv[2], nout, argv[1], n);
		return 2;
	}
	if ((want = ch_read_vec(fo, argv[2], 2 * n)) == NULL)
		return 2;
	d = (float *)ch_alloc(2 * n * sizeof(*d));
	for (size_t i = 0; i < 2 * n; i++)
		d[i] = (float)x[i];

	ch_gpu_open(&g);
	bad = transform(d, n, 0);
	if (!bad)
		bad = ch_compare("fft", "forward", d, want, 1.0, n, 2, &maxerr);
	if (!bad)
		bad = transform(d, n, 1);
	if (!bad)
		bad = ch_compare("fft", "inverse(forward) = n x", d, x, (double)n, n, 2, NULL);
	if (!bad && (fft_c32_cuda(dummy, 3, 0) != -1 || fft_c32_cuda(dummy, 0, 0) != -1)) {
		printf("FAIL: fft_c32_cuda accepted n = 3 or n = 0\n");
		bad = 1;
	}
	if (bad)
		return 1;
	printf("PASS\n");

	/* Timing: a forward transform of BENCH_N random points. */
	{
		float *din = ch_device_random(2 * BENCH_N, 2), *dout;

		CH_CUDA(cudaMalloc((void **)&dout, 2 * BENCH_N * sizeof(float)));
		b.din = din;
		b.dout = dout;
		b.n = BENCH_N;
		memset(&m, 0, sizeof(m));
		ch_time(bench_launch, &b, &m.kernel_ms, &m.kernel_ms_min);
		snprintf(extra, sizeof(extra), "\"passes\": %u", fft_c32_cuda_passes(BENCH_N));
		m.kernel = "fft";
		m.unit = "points";
		m.n = BENCH_N;
		m.bytes = 16.0 * (double)BENCH_N * fft_c32_cuda_passes(BENCH_N);
		m.max_abs_error = maxerr;
		m.extra = extra;
		ch_metrics_write(metrics, &m, &g);
		CH_CUDA(cudaFree(din));
		CH_CUDA(cudaFree(dout));
	}
	free(x), free(want), free(d);
	fclose(fi), fclose(fo);
	return 0;
}
