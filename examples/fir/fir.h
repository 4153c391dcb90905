/*
 * fir.h - real-valued FIR filter (direct form, float).
 *
 * y[i] = sum_{k=0}^{ntaps-1} h[k] * x[i-k], with x[j] = 0 for j < 0
 * (the filter starts from rest).  Freestanding C11: no libc.
 */
#ifndef INGOT_EXAMPLES_FIR_H
#define INGOT_EXAMPLES_FIR_H

#include <stddef.h>

/* Filters n samples of x into y (y must not overlap x or h). */
void fir_f32(const float *h, size_t ntaps, const float *x, size_t n, float *y);

#endif
