/*
 * gen_vectors.c - writes the reference vectors of the example kernels.
 *
 *   cc -O2 -o gen_vectors gen_vectors.c -lm && ./gen_vectors [DIR]
 *
 * writes DIR/fir/ref_{in,out}.txt, DIR/fft/ref_{in,out}.txt and
 * DIR/mixer/ref_{in,out}.txt (DIR defaults to the current directory,
 * i.e. run it from examples/).  The expected outputs come from plain,
 * direct double-precision reference implementations (convolution sum,
 * O(n^2) DFT, libm cos/sin of the exact phase), not from the kernels.
 * Inputs are rounded to float before use and printed with 9 significant
 * digits, so the kernels read exactly the values the reference used.
 * Deterministic: a fixed-seed xorshift generator, no time or randomness.
 *
 * File format (every harness reads it): numbers separated by white space,
 * one value or one "re im" pair per line; lines starting with '#' are
 * comments.  See examples/README.md for each kernel's layout.
 */
#define _POSIX_C_SOURCE 200809L /* mkdir */

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define PI 3.14159265358979323846

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

/* Uniform in [-1, 1). */
static double urand(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (double)(rng_state >> 11) * (2.0 / 9007199254740992.0) - 1.0;
}

static double f32(double v)
{
	return (double)(float)v;
}

static FILE *open_out(const char *dir, const char *kernel, const char *name)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, kernel);
	if (mkdir(path, 0777) != 0 && errno != EEXIST) {
		fprintf(stderr, "gen_vectors: mkdir %s: %s\n", path, strerror(errno));
		exit(1);
	}
	snprintf(path, sizeof(path), "%s/%s/%s", dir, kernel, name);
	f = fopen(path, "w");
	if (f == NULL) {
		fprintf(stderr, "gen_vectors: %s: %s\n", path, strerror(errno));
		exit(1);
	}
	return f;
}

static void close_out(FILE *f)
{
	if (ferror(f) || fclose(f) != 0) {
		fprintf(stderr, "gen_vectors: write error\n");
		exit(1);
	}
}

/*
 * FIR: a 33-tap Hamming-windowed sinc low-pass (cutoff 0.2 fs) with a
 * fractional delay of 16.3 samples, so the taps are NOT symmetric (a tap
 * order bug changes the output); input two tones plus noise.
 */
static void gen_fir(const char *dir)
{
	enum { NTAPS = 33, N = 1000 };
	static double h[NTAPS], x[N];
	const double fc = 0.2, delay = 16.3;
	FILE *in = open_out(dir, "fir", "ref_in.txt");
	FILE *out = open_out(dir, "fir", "ref_out.txt");

	for (int k = 0; k < NTAPS; k++) {
		double t = k - delay;
		double sinc = fabs(t) < 1e-12 ? 2.0 * fc : sin(2.0 * PI * fc * t) / (PI * t);
		double w = 0.54 - 0.46 * cos(2.0 * PI * (k + 0.5) / NTAPS);
		h[k] = f32(sinc * w);
	}
	for (int i = 0; i < N; i++)
		x[i] = f32(0.6 * sin(2.0 * PI * 0.031 * i) + 0.3 * cos(2.0 * PI * 0.27 * i + 0.5) +
		           0.1 * urand());

	fprintf(in, "# fir ref_in: ntaps, then ntaps taps h[k]; n, then n samples x[i]\n");
	fprintf(in, "%d\n", NTAPS);
	for (int k = 0; k < NTAPS; k++)
		fprintf(in, "%.9g\n", h[k]);
	fprintf(in, "%d\n", N);
	for (int i = 0; i < N; i++)
		fprintf(in, "%.9g\n", x[i]);

	fprintf(out, "# fir ref_out: n, then y[i] = sum_k h[k] x[i-k] (x[j<0] = 0)\n");
	fprintf(out, "%d\n", N);
	for (int i = 0; i < N; i++) {
		double acc = 0.0;
		for (int k = 0; k < NTAPS && k <= i; k++)
			acc += h[k] * x[i - k];
		fprintf(out, "%.12g\n", acc);
	}
	close_out(in);
	close_out(out);
}

/* FFT: 1024 points, three complex tones (one off-bin) plus noise. */
static void gen_fft(const char *dir)
{
	enum { N = 1024 };
	static double xr[N], xi[N];
	FILE *in = open_out(dir, "fft", "ref_in.txt");
	FILE *out = open_out(dir, "fft", "ref_out.txt");

	for (int j = 0; j < N; j++) {
		double a1 = 2.0 * PI * 37.0 * j / N, a2 = -2.0 * PI * 200.0 * j / N;
		double a3 = 2.0 * PI * 411.5 * j / N;
		xr[j] = f32(cos(a1) + 0.5 * cos(a2) + 0.25 * cos(a3) + 0.05 * urand());
		xi[j] = f32(sin(a1) + 0.5 * sin(a2) + 0.25 * sin(a3) + 0.05 * urand());
	}
	fprintf(in, "# fft ref_in: n (a power of two), then n lines: re im\n");
	fprintf(in, "%d\n", N);
	for (int j = 0; j < N; j++)
		fprintf(in, "%.9g %.9g\n", xr[j], xi[j]);

	fprintf(out, "# fft ref_out: n, then n lines: re im of X[k] = sum_j x[j] "
	             "exp(-2 pi i j k / n)\n");
	fprintf(out, "%d\n", N);
	for (int k = 0; k < N; k++) {
		double sr = 0.0, si = 0.0;
		for (int j = 0; j < N; j++) {
			/* j*k mod N keeps the angle exact. */
			double a = -2.0 * PI * (double)(((long)j * k) % N) / N;
			sr += xr[j] * cos(a) - xi[j] * sin(a);
			si += xr[j] * sin(a) + xi[j] * cos(a);
		}
		fprintf(out, "%.12g %.12g\n", sr, si);
	}
	close_out(in);
	close_out(out);
}

/*
 * Mixer: shift a complex signal by freq = -0.0123456789 cycles/sample,
 * starting phase 0.3 cycles; n odd so the harness's pieces have tails.
 */
static void gen_mixer(const char *dir)
{
	enum { N = 4099 };
	const double freq = -0.0123456789, phase = 0.3;
	FILE *in = open_out(dir, "mixer", "ref_in.txt");
	FILE *out = open_out(dir, "mixer", "ref_out.txt");
	static double xr[N], xi[N];

	for (int i = 0; i < N; i++) {
		double a = 2.0 * PI * 0.05 * i;
		xr[i] = f32(0.8 * cos(a) + 0.1 * urand());
		xi[i] = f32(0.8 * sin(a) + 0.1 * urand());
	}
	fprintf(in,
	        "# mixer ref_in: freq (cycles/sample), phase (cycles), n, then n lines: re im\n");
	fprintf(in, "%.17g\n%.17g\n%d\n", freq, phase, N);
	for (int i = 0; i < N; i++)
		fprintf(in, "%.9g %.9g\n", xr[i], xi[i]);

	fprintf(out, "# mixer ref_out: n, then n lines: re im of x[i] * exp(2 pi i (phase + "
	             "freq i))\n");
	fprintf(out, "%d\n", N);
	for (int i = 0; i < N; i++) {
		double p = phase + freq * i;
		double a = 2.0 * PI * (p - floor(p));
		double c = cos(a), s = sin(a);
		fprintf(out, "%.12g %.12g\n", xr[i] * c - xi[i] * s, xr[i] * s + xi[i] * c);
	}
	close_out(in);
	close_out(out);
}

int main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : ".";

	if (argc > 2) {
		fprintf(stderr, "usage: gen_vectors [DIR]\n");
		return 2;
	}
	gen_fir(dir);
	gen_fft(dir);
	gen_mixer(dir);
	return 0;
}
