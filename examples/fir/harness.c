/*
 * harness.c - checks fir_f32 against reference vectors.
 *
 *   harness REF_IN REF_OUT     (e.g. harness ref_in.txt ref_out.txt)
 *
 * REF_IN: ntaps, the taps, n, the samples; REF_OUT: n, the expected
 * outputs ('#' lines are comments).  The signal is filtered in one call
 * and again in pieces that restart the filter on overlapping history, both
 * compared with a tolerance of 1e-4 relative (plus 1e-5 of the peak, for
 * values near zero).  Prints PASS and exits 0, or prints
 * "FAIL: index i got x want y" for the first mismatch and exits 1; exit 2
 * for a bad or missing file.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "fir.h"

#define RTOL     1e-4
#define PEAK_TOL 1e-5

static int read_num(FILE *f, const char *path, double *v)
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

static int read_count(FILE *f, const char *path, size_t *n)
{
	double v;

	if (read_num(f, path, &v) != 0)
		return -1;
	if (!(v >= 0 && v <= 1e8) || v != (double)(size_t)v) {
		fprintf(stderr, "harness: %s: bad count %g\n", path, v);
		return -1;
	}
	*n = (size_t)v;
	return 0;
}

static float *read_vec(FILE *f, const char *path, size_t n)
{
	float *p = malloc((n ? n : 1) * sizeof(*p));
	double v;

	if (p == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if (read_num(f, path, &v) != 0) {
			free(p);
			return NULL;
		}
		p[i] = (float)v;
	}
	return p;
}

static int compare(const char *what, const float *got, const double *want, size_t n)
{
	double peak = 0.0, maxerr = 0.0;

	for (size_t i = 0; i < n; i++)
		if (fabs(want[i]) > peak)
			peak = fabs(want[i]);
	for (size_t i = 0; i < n; i++) {
		double err = fabs((double)got[i] - want[i]);

		if (!(err <= RTOL * fabs(want[i]) + PEAK_TOL * peak)) {
			printf("FAIL: index %zu got %.9g want %.9g (%s)\n", i, (double)got[i],
			       want[i], what);
			return 1;
		}
		if (err > maxerr)
			maxerr = err;
	}
	fprintf(stderr, "fir %s: %zu samples, max abs error %.3g (peak %.3g)\n", what, n, maxerr,
	        peak);
	return 0;
}

int main(int argc, char **argv)
{
	FILE *fi, *fo;
	size_t ntaps, n, nout;
	float *h, *x, *y;
	double *want;
	int bad;

	if (argc != 3) {
		fprintf(stderr, "usage: %s REF_IN REF_OUT\n", argv[0]);
		return 2;
	}
	fi = fopen(argv[1], "r");
	fo = fopen(argv[2], "r");
	if (fi == NULL || fo == NULL) {
		perror(fi == NULL ? argv[1] : argv[2]);
		return 2;
	}
	if (read_count(fi, argv[1], &ntaps) != 0 || (h = read_vec(fi, argv[1], ntaps)) == NULL ||
	    read_count(fi, argv[1], &n) != 0 || (x = read_vec(fi, argv[1], n)) == NULL ||
	    read_count(fo, argv[2], &nout) != 0)
		return 2;
	if (ntaps == 0) {
		fprintf(stderr, "harness: %s: no taps\n", argv[1]);
		return 2;
	}
	if (nout != n) {
		fprintf(stderr, "harness: %s has %zu samples, %s %zu\n", argv[2], nout, argv[1], n);
		return 2;
	}
	want = malloc((n ? n : 1) * sizeof(*want));
	y = malloc((n ? n : 1) * sizeof(*y));
	if (want == NULL || y == NULL)
		return 2;
	for (size_t i = 0; i < n; i++)
		if (read_num(fo, argv[2], &want[i]) != 0)
			return 2;

	/* Whole signal in one call. */
	fir_f32(h, ntaps, x, n, y);
	bad = compare("one call", y, want, n);

	/*
	 * In pieces: outputs [a, b) need inputs from a - (ntaps - 1) on; the
	 * piece restarts from rest there and its first ntaps - 1 outputs
	 * (the ramp-up) are dropped.
	 */
	if (!bad) {
		static const size_t piece[] = {1, 7, 64, 300, 5, 1000};
		float *tmp = malloc((n + ntaps) * sizeof(*tmp));
		size_t a = 0;

		if (tmp == NULL)
			return 2;
		for (unsigned p = 0; a < n; p = (p + 1) % (sizeof(piece) / sizeof(piece[0]))) {
			size_t b = a + piece[p] < n ? a + piece[p] : n;
			size_t from = a >= ntaps - 1 ? a - (ntaps - 1) : 0;

			fir_f32(h, ntaps, x + from, b - from, tmp);
			for (size_t i = a; i < b; i++)
				y[i] = tmp[i - from];
			a = b;
		}
		bad = compare("in pieces", y, want, n);
		free(tmp);
	}
	if (!bad)
		printf("PASS\n");
	free(h), free(x), free(y), free(want);
	fclose(fi), fclose(fo);
	return bad ? 1 : 0;
}
