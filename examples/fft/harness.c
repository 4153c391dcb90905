/*
 * harness.c - checks fft_c32 against reference vectors.
 *
 *   harness REF_IN REF_OUT     (e.g. harness ref_in.txt ref_out.txt)
 *
 * REF_IN: n, then n "re im" lines; REF_OUT: n, then the n expected "re im"
 * lines of the forward transform ('#' lines are comments).  Checks the
 * forward transform against REF_OUT, then that the inverse transform of it
 * gives n times the input back, and that a size that is not a power of
 * two is refused.  Tolerance: 1e-4 relative to each value plus 1e-5 of the
 * largest magnitude (values near zero).  Prints PASS and exits 0, or
 * "FAIL: index i got x want y" for the first mismatch and exits 1; exit 2
 * for a bad or missing file.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "fft.h"

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

/* Reads n "re im" pairs into d[2n] (doubles). */
static double *read_pairs(FILE *f, const char *path, size_t n)
{
	double *d = malloc((n ? 2 * n : 1) * sizeof(*d));

	if (d == NULL)
		return NULL;
	for (size_t i = 0; i < 2 * n; i++) {
		if (read_num(f, path, &d[i]) != 0) {
			free(d);
			return NULL;
		}
	}
	return d;
}

static int compare(const char *what, const float *got, const double *want, double scale, size_t n)
{
	double peak = 0.0, maxerr = 0.0;

	for (size_t i = 0; i < n; i++)
		peak = fmax(peak, hypot(want[2 * i], want[2 * i + 1]) * scale);
	for (size_t i = 0; i < n; i++) {
		double wr = want[2 * i] * scale, wi = want[2 * i + 1] * scale;
		double err = hypot(got[2 * i] - wr, got[2 * i + 1] - wi);

		if (!(err <= RTOL * hypot(wr, wi) + PEAK_TOL * peak)) {
			printf("FAIL: index %zu got %.9g%+.9gi want %.9g%+.9gi (%s)\n", i,
			       (double)got[2 * i], (double)got[2 * i + 1], wr, wi, what);
			return 1;
		}
		maxerr = fmax(maxerr, err);
	}
	fprintf(stderr, "fft %s: %zu points, max abs error %.3g (peak %.3g)\n", what, n, maxerr,
	        peak);
	return 0;
}

int main(int argc, char **argv)
{
	FILE *fi, *fo;
	size_t n, nout;
	double *x, *want;
	float *d, dummy[6] = {0};
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
	if (read_count(fi, argv[1], &n) != 0 || (x = read_pairs(fi, argv[1], n)) == NULL ||
	    read_count(fo, argv[2], &nout) != 0)
		return 2;
	if (nout != n) {
		fprintf(stderr, "harness: %s has %zu points, %s %zu\n", argv[2], nout, argv[1], n);
		return 2;
	}
	if ((want = read_pairs(fo, argv[2], n)) == NULL)
		return 2;
	d = malloc((n ? 2 * n : 1) * sizeof(*d));
	if (d == NULL)
		return 2;

	for (size_t i = 0; i < 2 * n; i++)
		d[i] = (float)x[i];
	if (fft_c32(d, n, 0) != 0) {
		printf("FAIL: fft_c32 refused n = %zu\n", n);
		return 1;
	}
	bad = compare("forward", d, want, 1.0, n);
	if (!bad) {
		if (fft_c32(d, n, 1) != 0) {
			printf("FAIL: fft_c32 refused n = %zu (inverse)\n", n);
			return 1;
		}
		bad = compare("inverse(forward) = n x", d, x, (double)n, n);
	}
	if (!bad && (fft_c32(dummy, 3, 0) != -1 || fft_c32(dummy, 0, 0) != -1)) {
		printf("FAIL: fft_c32 accepted n = 3 or n = 0\n");
		bad = 1;
	}
	if (!bad)
		printf("PASS\n");
	free(x), free(want), free(d);
	fclose(fi), fclose(fo);
	return bad ? 1 : 0;
}
