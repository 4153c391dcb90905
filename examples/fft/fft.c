/*
 * fft.c - iterative radix-2 decimation-in-time FFT.
 *
 * Bit-reversal permutation, then log2(n) butterfly passes.  For the pass
 * whose butterflies span 2*half points the twiddles are w^j, j < half,
 * with w = exp(-+i*pi/half).  cos/sin(pi/2^s) come from the table below,
 * and w^j is formed by repeated complex multiplication in double
 * precision (error ~ j * 1e-16, far below float resolution), so the
 * kernel needs no libm and cross-compiles freestanding.
 */
#include "fft.h"

/* cos(pi / 2^s), sin(pi / 2^s) for s = 0 .. FFT_MAX_LOG2N - 1. */
static const double fft_rot[FFT_MAX_LOG2N][2] = {
    {-1.0, 0.0},
    {0.0, 1.0},
    {0.70710678118654757, 0.70710678118654757},
    {0.92387953251128674, 0.38268343236508978},
    {0.98078528040323043, 0.19509032201612828},
    {0.99518472667219693, 0.098017140329560604},
    {0.99879545620517241, 0.049067674327418015},
    {0.99969881869620425, 0.024541228522912288},
    {0.9999247018391445, 0.012271538285719925},
    {0.99998117528260111, 0.0061358846491544753},
    {0.99999529380957619, 0.0030679567629659761},
    {0.99999882345170188, 0.0015339801862847657},
    {0.99999970586288223, 0.00076699031874270449},
    {0.99999992646571789, 0.00038349518757139556},
    {0.99999998161642933, 0.00019174759731070332},
    {0.99999999540410733, 9.5873799095977345e-05},
    {0.99999999885102686, 4.7936899603066881e-05},
    {0.99999999971275666, 2.3968449808418219e-05},
    {0.99999999992818922, 1.1984224905069707e-05},
    {0.99999999998204725, 5.9921124526424275e-06},
    {0.99999999999551181, 2.9960562263346608e-06},
    {0.99999999999887801, 1.4980281131690111e-06},
    {0.99999999999971945, 7.4901405658471574e-07},
    {0.99999999999992983, 3.7450702829238413e-07},
    {0.99999999999998246, 1.8725351414619535e-07},
    {0.99999999999999567, 9.3626757073098084e-08},
    {0.99999999999999889, 4.6813378536549095e-08},
    {0.99999999999999978, 2.3406689268274554e-08},
    {0.99999999999999989, 1.1703344634137277e-08},
    {1.0, 5.8516723170686385e-09},
    {1.0, 2.9258361585343192e-09},
    {1.0, 1.4629180792671596e-09},
};

static void bit_reverse(float *restrict d, size_t n)
{
	for (size_t i = 1, j = 0; i < n; i++) {
		size_t bit = n >> 1;

		for (; j & bit; bit >>= 1)
			j ^= bit;
		j |= bit;
		if (i < j) {
			float tr = d[2 * i], ti = d[2 * i + 1];

			d[2 * i] = d[2 * j];
			d[2 * i + 1] = d[2 * j + 1];
			d[2 * j] = tr;
			d[2 * j + 1] = ti;
		}
	}
}

int fft_c32(float *data, size_t n, int inverse)
{
	unsigned log2n = 0;

	if (n == 0 || (n & (n - 1)) != 0)
		return -1;
	while (((size_t)1 << log2n) < n)
		log2n++;
	if (log2n > FFT_MAX_LOG2N)
		return -1;
	bit_reverse(data, n);

	for (unsigned s = 0; s < log2n; s++) {
		const size_t half = (size_t)1 << s, span = half << 1;
		const double step_re = fft_rot[s][0];
		const double step_im = inverse ? fft_rot[s][1] : -fft_rot[s][1];
		double w_re = 1.0, w_im = 0.0;

		for (size_t j = 0; j < half; j++) {
			const float wr = (float)w_re, wi = (float)w_im;
			double t;

			for (size_t k = j; k < n; k += span) {
				float *a = data + 2 * k, *b = data + 2 * (k + half);
				float br = b[0] * wr - b[1] * wi;
				float bi = b[0] * wi + b[1] * wr;

				b[0] = a[0] - br;
				b[1] = a[1] - bi;
				a[0] += br;
				a[1] += bi;
			}
			t = w_re * step_re - w_im * step_im;
			w_im = w_re * step_im + w_im * step_re;
			w_re = t;
		}
	}
	return 0;
}
