/*
 * fir.c - real-valued FIR filter, direct form.
 *
 * The ramp-up (i < ntaps - 1, where the window reaches before x[0]) is
 * done separately.  The steady state runs tap-outer, sample-inner over
 * blocks of outputs: the inner loop is an independent multiply-add per
 * output (no floating-point reduction to reassociate), so the compiler
 * vectorizes it at -O3 (AVX2 / NEON) without -ffast-math, and a block of
 * y stays in L1 while every tap passes over it.
 */
#include "fir.h"

#define FIR_BLOCK 256

void fir_f32(const float *restrict h, size_t ntaps, const float *restrict x, size_t n,
             float *restrict y)
{
	size_t head;

	if (ntaps == 0) {
		for (size_t i = 0; i < n; i++)
			y[i] = 0.0f;
		return;
	}
	head = ntaps - 1 < n ? ntaps - 1 : n;
	for (size_t i = 0; i < head; i++) {
		float acc = 0.0f;
		for (size_t k = 0; k <= i; k++)
			acc += h[k] * x[i - k];
		y[i] = acc;
	}
	for (size_t i0 = head; i0 < n; i0 += FIR_BLOCK) {
		size_t m = n - i0 < FIR_BLOCK ? n - i0 : FIR_BLOCK;
		float *restrict yb = y + i0;
		const float h0 = h[0];
		const float *xs = x + i0;

		for (size_t j = 0; j < m; j++)
			yb[j] = h0 * xs[j];
		for (size_t k = 1; k < ntaps; k++) {
			const float hk = h[k];
			xs = x + (i0 - k);
			for (size_t j = 0; j < m; j++)
				yb[j] += hk * xs[j];
		}
	}
}
