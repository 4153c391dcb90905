/*
 * harness.c - checks the mixer against reference vectors.
 *
 *   harness REF_IN REF_OUT     (e.g. harness ref_in.txt ref_out.txt)
 *
 * REF_IN: freq (cycles/sample), phase (cycles), n, then n "re im" lines;
 * REF_OUT: n, then the n expected "re im" lines ('#' lines are comments).
 * Mixes the signal in one call, then again in pieces of uneven sizes
 * (the oscillator state must carry over), then in place.  Tolerance: 1e-4
 * relative to each value plus 1e-5 of the largest magnitude.  Prints PASS
 * and exits 0, or "FAIL: index i got x want y" for the first mismatch and
 * exits 1; exit 2 for a bad or missing file.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "mixer.h"

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

static int compare(const char *what, const float *got, const double *want, size_t n)
{
	double peak = 0.0, maxerr = 0.0;

	for (size_t i = 0; i < n; i++)
		peak = fmax(peak, hypot(want[2 * i], want[2 * i + 1]));
	for (size_t i = 0; i < n; i++) {
		double wr = want[2 * i], wi = want[2 * i + 1];
		double err = hypot(got[2 * i] - wr, got[2 * i + 1] - wi);

		if (!(err <= RTOL * hypot(wr, wi) + PEAK_TOL * peak)) {
			printf("FAIL: index %zu got %.9g%+.9gi want %.9g%+.9gi (%s)\n", i,
			       (double)got[2 * i], (double)got[2 * i + 1], wr, wi, what);
			return 1;
		}
		maxerr = fmax(maxerr, err);
	}
	fprintf(stderr, "mixer %s: %zu samples, max abs error %.3g (peak %.3g)\n", what, n, maxerr,
	        peak);
	return 0;
}

int main(int argc, char **argv)
{
	static const size_t piece[] = {1, 7, 8, 9, 100, 513, 3};
	FILE *fi, *fo;
	size_t n, nout;
	double freq, phase, *xd, *want;
	float *x, *y;
	struct mixer_nco nco;
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
	if (read_num(fi, argv[1], &freq) != 0 || read_num(fi, argv[1], &phase) != 0 ||
	    read_count(fi, argv[1], &n) != 0 || (xd = read_pairs(fi, argv[1], n)) == NULL ||
	    read_count(fo, argv[2], &nout) != 0)
		return 2;
	if (nout != n) {
		fprintf(stderr, "harness: %s has %zu samples, %s %zu\n", argv[2], nout, argv[1], n);
		return 2;
	}
	if ((want = read_pairs(fo, argv[2], n)) == NULL)
		return 2;
	x = malloc((n ? 2 * n : 1) * sizeof(*x));
	y = malloc((n ? 2 * n : 1) * sizeof(*y));
	if (x == NULL || y == NULL)
		return 2;
	for (size_t i = 0; i < 2 * n; i++)
		x[i] = (float)xd[i];

	mixer_init(&nco, freq, phase);
	mixer_c32(&nco, x, y, n);
	bad = compare("one call", y, want, n);

	if (!bad) {
		mixer_init(&nco, freq, phase);
		for (size_t a = 0, p = 0; a < n; p = (p + 1) % (sizeof(piece) / sizeof(piece[0]))) {
			size_t m = piece[p] < n - a ? piece[p] : n - a;

			mixer_c32(&nco, x + 2 * a, y + 2 * a, m);
			a += m;
		}
		bad = compare("in pieces", y, want, n);
	}
	if (!bad) {
		mixer_init(&nco, freq, phase);
		mixer_c32(&nco, x, x, n);
		bad = compare("in place", x, want, n);
	}
	if (!bad)
		printf("PASS\n");
	free(xd), free(want), free(x), free(y);
	fclose(fi), fclose(fo);
	return bad ? 1 : 0;
}
