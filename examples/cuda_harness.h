/*
 * cuda_harness.h - what the CUDA harnesses (examples/<kernel>/harness.cu)
 * share: reading the reference vectors, comparing with the same tolerance
 * as the C harnesses, checking CUDA calls, timing a kernel with CUDA
 * events, and writing the metrics file.
 *
 * Header-only (static functions, CUDA C++ for nvcc) so a verify job needs
 * nothing but its submitted files: submit this header with the harness;
 * the CUDA verify targets put the directory of every submitted header on
 * the include path.
 *
 * Every harness runs as `verify REF_IN REF_OUT [METRICS.json]` and exits
 *   0  PASS: the kernel matches the reference vectors (metrics written)
 *   1  FAIL: "FAIL: index i got x want y (what)" on stdout
 *   2  a missing or malformed file, or a bad command line
 *   3  no usable CUDA device, or a CUDA call failed: "harness: ..." on stderr
 *
 * The metrics come from a larger signal than the reference vectors (those
 * are too short to time): the kernel alone, launched CH_RUNS times after
 * CH_WARMUP launches, each timed with a pair of CUDA events; the median
 * time gives samples per second, and the bytes the kernel must read and
 * write in device memory (counted from the algorithm, see each harness)
 * divided by it the achieved memory bandwidth.
 */
#ifndef INGOT_EXAMPLES_CUDA_HARNESS_H
#define INGOT_EXAMPLES_CUDA_HARNESS_H

#include <cuda_runtime.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CH_RTOL     1e-4
#define CH_PEAK_TOL 1e-5
#define CH_WARMUP   3
#define CH_RUNS     20

/* Exits 3 with the CUDA error and the call that returned it. */
#define CH_CUDA(call) ch_cuda_check((int)(call), #call, __FILE__, __LINE__)

static inline void ch_cuda_check(int err, const char *call, const char *file, int line)
{
	if (err == (int)cudaSuccess)
		return;
	fprintf(stderr, "harness: CUDA error %s (%s) from %s at %s:%d\n",
	        cudaGetErrorName((cudaError_t)err), cudaGetErrorString((cudaError_t)err), call,
	        file, line);
	exit(3);
}

/* The device the harness runs on: the first one CUDA shows it, i.e. the
 * first of the attempt's CUDA_VISIBLE_DEVICES. */
struct ch_gpu {
	char name[256];
	char arch[16];
	double memory_gib;
};

/* Exits 3, saying why, when there is no usable device. */
static inline void ch_gpu_open(struct ch_gpu *g)
{
	int count = 0;
	cudaError_t err = cudaGetDeviceCount(&count);
	cudaDeviceProp p;

	if (err != cudaSuccess || count == 0) {
		fprintf(stderr, "harness: no CUDA device: %s\n",
		        err != cudaSuccess ? cudaGetErrorString(err) : "none visible");
		exit(3);
	}
	CH_CUDA(cudaGetDeviceProperties(&p, 0));
	CH_CUDA(cudaSetDevice(0));
	snprintf(g->name, sizeof(g->name), "%s", p.name);
	snprintf(g->arch, sizeof(g->arch), "sm_%d%d", p.major, p.minor);
	g->memory_gib = (double)p.totalGlobalMem / (1024.0 * 1024.0 * 1024.0);
	fprintf(stderr, "harness: GPU 0 of %d: %s (%s, %.1f GiB)\n", count, g->name, g->arch,
	        g->memory_gib);
}

/* The reference files: numbers separated by white space, '#' lines are
 * comments.  Each reader returns 0 or -1 after saying what was wrong. */
static inline int ch_read_num(FILE *f, const char *path, double *v)
{
	int c;

	for (;;) {
		c = getc(f);
		if (c == '#') {
			while (c != '\n' && c != EOF)
				c = getc(f);
		} else if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
			break;
		}
	}
	if (c == EOF) {
		fprintf(stderr, "harness: %s: unexpected end of file\n", path);
		return -1;
	}
	ungetc(c, f);
	if (fscanf(f, "%lf", v) != 1) {
		fprintf(stderr, "harness: %s: not a number\n", path);
		return -1;
	}
	return 0;
}

static inline int ch_read_count(FILE *f, const char *path, size_t *n)
{
	double v;

	if (ch_read_num(f, path, &v) != 0)
		return -1;
	if (!(v >= 0 && v <= 1e8) || v != (double)(size_t)v) {
		fprintf(stderr, "harness: %s: bad count %g\n", path, v);
		return -1;
	}
	*n = (size_t)v;
	return 0;
}

/* n numbers into a malloc'd array of doubles (NULL after a message). */
static inline double *ch_read_vec(FILE *f, const char *path, size_t n)
{
	double *d = (double *)malloc((n ? n : 1) * sizeof(*d));

	if (d == NULL) {
		fprintf(stderr, "harness: out of memory\n");
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		if (ch_read_num(f, path, &d[i]) != 0) {
			free(d);
			return NULL;
		}
	}
	return d;
}

/* Opens a file for reading or exits 2. */
static inline FILE *ch_open(const char *path)
{
	FILE *f = fopen(path, "r");

	if (f == NULL) {
		perror(path);
		exit(2);
	}
	return f;
}

/* Checks the command line (REF_IN REF_OUT [METRICS.json]) and opens both
 * vector files, or exits 2.  Returns the metrics path or NULL. */
static inline const char *ch_args(int argc, char **argv, FILE **fi, FILE **fo)
{
	if (argc != 3 && argc != 4) {
		fprintf(stderr, "usage: %s REF_IN REF_OUT [METRICS.json]\n", argv[0]);
		exit(2);
	}
	*fi = ch_open(argv[1]);
	*fo = ch_open(argv[2]);
	return argc == 4 ? argv[3] : NULL;
}

/* malloc or exit 2. */
static inline void *ch_alloc(size_t bytes)
{
	void *p = malloc(bytes ? bytes : 1);

	if (p == NULL) {
		fprintf(stderr, "harness: out of memory (%zu bytes)\n", bytes);
		exit(2);
	}
	return p;
}

/*
 * Compares n values (ncomp = 1: real, 2: interleaved complex) of got with
 * want * scale: each error (the magnitude, for complex values) must be at
 * most CH_RTOL of the wanted value's magnitude plus CH_PEAK_TOL of the
 * largest one.  Returns 0, or 1 after printing the FAIL line for the first
 * mismatch.  *maxerr (when maxerr is not NULL) grows to the largest error
 * seen.
 */
static inline int ch_compare(const char *kernel, const char *what, const float *got,
                             const double *want, double scale, size_t n, int ncomp, double *maxerr)
{
	double peak = 0.0, worst = 0.0;

	for (size_t i = 0; i < n; i++) {
		double m = ncomp == 2 ? hypot(want[2 * i], want[2 * i + 1]) : fabs(want[i]);
		peak = fmax(peak, m * scale);
	}
	for (size_t i = 0; i < n; i++) {
		double err, mag;

		if (ncomp == 2) {
			double wr = want[2 * i] * scale, wi = want[2 * i + 1] * scale;

			err = hypot(got[2 * i] - wr, got[2 * i + 1] - wi);
			mag = hypot(wr, wi);
			if (!(err <= CH_RTOL * mag + CH_PEAK_TOL * peak)) {
				printf("FAIL: index %zu got %.9g%+.9gi want %.9g%+.9gi (%s)\n", i,
				       (double)got[2 * i], (double)got[2 * i + 1], wr, wi, what);
				return 1;
			}
		} else {
			double w = want[i] * scale;

			err = fabs((double)got[i] - w);
			mag = fabs(w);
			if (!(err <= CH_RTOL * mag + CH_PEAK_TOL * peak)) {
				printf("FAIL: index %zu got %.9g want %.9g (%s)\n", i,
				       (double)got[i], w, what);
				return 1;
			}
		}
		worst = fmax(worst, err);
	}
	if (maxerr != NULL)
		*maxerr = fmax(*maxerr, worst);
	fprintf(stderr, "%s %s: %zu values, max abs error %.3g (peak %.3g)\n", kernel, what, n,
	        worst, peak);
	return 0;
}

/* A kernel launch to time: returns 0 or a CUDA error code. */
typedef int (*ch_launch_fn)(void *ctx);

static inline int ch_cmp_float(const void *a, const void *b)
{
	float x = *(const float *)a, y = *(const float *)b;
	return x < y ? -1 : x > y;
}

/* Times `launch`: CH_WARMUP untimed runs, then CH_RUNS each between two
 * events.  Writes the median and the fastest time in milliseconds. */
static inline void ch_time(ch_launch_fn launch, void *ctx, double *median_ms, double *min_ms)
{
	cudaEvent_t start[CH_RUNS], stop[CH_RUNS];
	float ms[CH_RUNS];

	for (int i = 0; i < CH_WARMUP; i++)
		CH_CUDA(launch(ctx));
	CH_CUDA(cudaDeviceSynchronize());
	for (int i = 0; i < CH_RUNS; i++) {
		CH_CUDA(cudaEventCreate(&start[i]));
		CH_CUDA(cudaEventCreate(&stop[i]));
	}
	for (int i = 0; i < CH_RUNS; i++) {
		CH_CUDA(cudaEventRecord(start[i]));
		CH_CUDA(launch(ctx));
		CH_CUDA(cudaEventRecord(stop[i]));
	}
	CH_CUDA(cudaDeviceSynchronize());
	for (int i = 0; i < CH_RUNS; i++) {
		CH_CUDA(cudaEventElapsedTime(&ms[i], start[i], stop[i]));
		CH_CUDA(cudaEventDestroy(start[i]));
		CH_CUDA(cudaEventDestroy(stop[i]));
	}
	qsort(ms, CH_RUNS, sizeof(ms[0]), ch_cmp_float);
	*median_ms = (ms[(CH_RUNS - 1) / 2] + ms[CH_RUNS / 2]) / 2.0;
	*min_ms = ms[0];
}

/* What one verify run measured. */
struct ch_metrics {
	const char *kernel;   /* "fir" */
	const char *unit;     /* what n counts: "samples", "points" */
	size_t n;             /* size of the timed signal */
	double kernel_ms;     /* median */
	double kernel_ms_min; /* fastest */
	double bytes;         /* device memory the kernel reads and writes, per run */
	double max_abs_error; /* against the reference vectors */
	const char *extra;    /* more JSON members ("\"taps\": 33"), or NULL */
};

/*
 * Prints a summary line to stdout and, when path is not NULL, writes the
 * metrics as one JSON object to it (exits 2 when it cannot).
 */
static inline void ch_metrics_write(const char *path, const struct ch_metrics *m,
                                    const struct ch_gpu *g)
{
	double per_s = (double)m->n / (m->kernel_ms * 1e-3);
	double gb_s = m->bytes / (m->kernel_ms * 1e-3) / 1e9;
	FILE *f;

	printf("metrics: %s on %s (%s): %zu %s, kernel %.4f ms (min %.4f), %.4g %s/s, "
	       "%.1f GB/s\n",
	       m->kernel, g->name, g->arch, m->n, m->unit, m->kernel_ms, m->kernel_ms_min, per_s,
	       m->unit, gb_s);
	if (path == NULL)
		return;
	f = fopen(path, "w");
	if (f == NULL) {
		perror(path);
		exit(2);
	}
	fprintf(f,
	        "{\n  \"kernel\": \"%s\",\n  \"gpu\": \"%s\",\n  \"arch\": \"%s\",\n"
	        "  \"n\": %zu,\n  \"unit\": \"%s\",\n  \"runs\": %d,\n"
	        "  \"kernel_ms\": %.6f,\n  \"kernel_ms_min\": %.6f,\n"
	        "  \"%s_per_s\": %.6g,\n  \"bytes_per_run\": %.0f,\n"
	        "  \"bandwidth_gb_s\": %.2f,\n  \"max_abs_error\": %.3g%s%s\n}\n",
	        m->kernel, g->name, g->arch, m->n, m->unit, CH_RUNS, m->kernel_ms, m->kernel_ms_min,
	        m->unit, per_s, m->bytes, gb_s, m->max_abs_error, m->extra != NULL ? ",\n  " : "",
	        m->extra != NULL ? m->extra : "");
	if (fclose(f) != 0) {
		perror(path);
		exit(2);
	}
}

/* A device buffer of n floats holding deterministic pseudo-random values
 * in [-1, 1), for the timed signal; exits 3 when CUDA fails.  Free it with
 * cudaFree. */
static inline float *ch_device_random(size_t n, unsigned seed)
{
	unsigned long long s = 0x9e3779b97f4a7c15ull ^ seed;
	float *x = (float *)ch_alloc(n * sizeof(*x)), *d = NULL;

	for (size_t i = 0; i < n; i++) {
		s = s * 6364136223846793005ull + 1442695040888963407ull;
		x[i] = (float)((double)(s >> 40) / (double)(1ull << 23) - 1.0);
	}
	CH_CUDA(cudaMalloc((void **)&d, n * sizeof(float)));
	CH_CUDA(cudaMemcpy(d, x, n * sizeof(float), cudaMemcpyHostToDevice));
	free(x);
	return d;
}

#endif
