/*
 * mixer.c - complex mixer with a phasor-recurrence NCO.
 *
 * The oscillator advances MIXER_LANES samples at a time: within a block
 * the values are base * rot[j] (independent products, vectorizable), and
 * base moves on by rot[MIXER_LANES].  base is renormalized to unit
 * magnitude after every step (first-order Newton step, no sqrt), so its
 * magnitude cannot drift; the phase error grows by ~1e-16 rad per block.
 */
#include <stdint.h>

#include "mixer.h"

#define TWO_PI 6.283185307179586476925286766559

/* Taylor series of sin and cos on [-pi/4, pi/4]: error < 1e-18. */
static void sincos_kernel(double x, double *c, double *s)
{
	const double x2 = x * x;
	double sn = 1.0, cs = 1.0;

	/* Horner from the highest terms: x^17/17! and x^18/18!. */
	for (int k = 17; k >= 3; k -= 2)
		sn = 1.0 - sn * x2 / ((double)k * (double)(k - 1));
	for (int k = 18; k >= 2; k -= 2)
		cs = 1.0 - cs * x2 / ((double)k * (double)(k - 1));
	*s = x * sn;
	*c = cs;
}

void mixer_sincos_cycles(double cycles, double *c, double *s)
{
	double p = cycles, ci, si;
	int q;

	if (!(p - p == 0.0)) { /* NaN or infinite: no phase */
		*c = *s = p - p;
		return;
	}
	/* Keep the fractional part: p in (-1, 1), then [-1/2, 1/2]. */
	if (p >= 4611686018427387904.0 || p <= -4611686018427387904.0)
		p = 0.0; /* |p| >= 2^62 is an integer number of cycles */
	else
		p -= (double)(int64_t)p;
	if (p > 0.5)
		p -= 1.0;
	else if (p < -0.5)
		p += 1.0;
	/* Nearest quarter cycle q, remainder within [-1/8, 1/8] cycle. */
	q = (int)(p * 4.0 + (p >= 0 ? 0.5 : -0.5));
	sincos_kernel(TWO_PI * (p - 0.25 * q), &ci, &si);
	switch (q & 3) {
	case 0:
		*c = ci;
		*s = si;
		break;
	case 1:
		*c = -si;
		*s = ci;
		break;
	case 2:
		*c = -ci;
		*s = -si;
		break;
	default:
		*c = si;
		*s = -ci;
		break;
	}
}

void mixer_init(struct mixer_nco *nco, double freq, double phase)
{
	mixer_sincos_cycles(phase, &nco->re, &nco->im);
	nco->rot_re[0] = 1.0;
	nco->rot_im[0] = 0.0;
	for (int j = 1; j <= MIXER_LANES; j++) {
		/* Direct evaluation rather than a recurrence: exact to 1 ulp. */
		mixer_sincos_cycles(freq * j, &nco->rot_re[j], &nco->rot_im[j]);
	}
}

static void advance(struct mixer_nco *nco, size_t j)
{
	double re = nco->re * nco->rot_re[j] - nco->im * nco->rot_im[j];
	double im = nco->re * nco->rot_im[j] + nco->im * nco->rot_re[j];
	double g = 0.5 * (3.0 - (re * re + im * im));

	nco->re = re * g;
	nco->im = im * g;
}

void mixer_c32(struct mixer_nco *nco, const float *x, float *y, size_t n)
{
	size_t i = 0;

	for (; i + MIXER_LANES <= n; i += MIXER_LANES) {
		const double br = nco->re, bi = nco->im;

		for (size_t j = 0; j < MIXER_LANES; j++) {
			double orr = br * nco->rot_re[j] - bi * nco->rot_im[j];
			double oi = br * nco->rot_im[j] + bi * nco->rot_re[j];
			double xr = (double)x[2 * (i + j)], xi = (double)x[2 * (i + j) + 1];

			y[2 * (i + j)] = (float)(xr * orr - xi * oi);
			y[2 * (i + j) + 1] = (float)(xr * oi + xi * orr);
		}
		advance(nco, MIXER_LANES);
	}
	if (i < n) {
		const double br = nco->re, bi = nco->im;
		const size_t rest = n - i;

		for (size_t j = 0; j < rest; j++) {
			double orr = br * nco->rot_re[j] - bi * nco->rot_im[j];
			double oi = br * nco->rot_im[j] + bi * nco->rot_re[j];
			double xr = (double)x[2 * (i + j)], xi = (double)x[2 * (i + j) + 1];

			y[2 * (i + j)] = (float)(xr * orr - xi * oi);
			y[2 * (i + j) + 1] = (float)(xr * oi + xi * orr);
		}
		advance(nco, rest);
	}
}
