/*
 * fft.h - radix-2 complex FFT, single precision, in place.
 *
 * data holds n complex values interleaved: data[2*i] = re, data[2*i+1] = im.
 * Forward:  X[k] = sum_j x[j] * exp(-2*pi*i*j*k/n)
 * Inverse:  x[j] = sum_k X[k] * exp(+2*pi*i*j*k/n)   (NOT divided by n)
 * Freestanding C11: no libc, no libm (twiddles come from a constant table
 * and a double-precision rotation recurrence).
 */
#ifndef INGOT_EXAMPLES_FFT_H
#define INGOT_EXAMPLES_FFT_H

#include <stddef.h>

/* Largest supported n: 2^32 points. */
#define FFT_MAX_LOG2N 32

/*
 * Transforms data in place.  Returns 0, or -1 (data untouched) when n is
 * not a power of two (n = 0 included) or exceeds 2^FFT_MAX_LOG2N.
 */
int fft_c32(float *data, size_t n, int inverse);

#endif
