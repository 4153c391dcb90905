/*
 * fir_wrong.c - fir_f32 with a deliberate bug, for showing that the
 * x86_64-verify target fails a job whose kernel is wrong.
 *
 * BUG (on purpose): the taps are applied in reverse order (h[ntaps-1-k]
 * instead of h[k]), i.e. this computes a correlation, not a convolution.
 * With symmetric (linear-phase) taps the two agree, so the reference
 * vectors use an asymmetric filter, and this file fails verification.
 */
#include "fir.h"

void fir_f32(const float *restrict h, size_t ntaps, const float *restrict x, size_t n,
             float *restrict y)
{
	for (size_t i = 0; i < n; i++) {
		float acc = 0.0f;
		for (size_t k = 0; k < ntaps && k <= i; k++)
			acc += h[ntaps - 1 - k] * x[i - k];
		y[i] = acc;
	}
}
