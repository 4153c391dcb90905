/*
 * mixer.h - complex mixer: multiplies a complex baseband signal by a
 * numerically controlled oscillator, y[i] = x[i] * exp(2*pi*i*(phase + freq*i)).
 *
 * Samples are interleaved complex floats (re, im).  The oscillator state
 * carries over between calls, so a stream can be mixed in pieces of any
 * size with the same result as in one call.  Freestanding C11: no libc,
 * no libm (the oscillator's sin/cos come from a polynomial at
 * initialization and a double-precision phasor recurrence after that).
 */
#ifndef INGOT_EXAMPLES_MIXER_H
#define INGOT_EXAMPLES_MIXER_H

#include <stddef.h>

#define MIXER_LANES 8

struct mixer_nco {
	double re, im;                  /* oscillator at the next sample */
	double rot_re[MIXER_LANES + 1]; /* exp(2*pi*i*freq*j), j = 0..8 */
	double rot_im[MIXER_LANES + 1];
};

/*
 * freq in cycles per sample (e.g. -0.125 shifts down by fs/8), phase in
 * cycles (the oscillator's phase at the first sample).
 */
void mixer_init(struct mixer_nco *nco, double freq, double phase);

/* y[i] = x[i] * osc[i] for n complex samples; y may equal x (in place). */
void mixer_c32(struct mixer_nco *nco, const float *x, float *y, size_t n);

/* cos and sin of 2*pi*cycles, to double precision, without libm. */
void mixer_sincos_cycles(double cycles, double *c, double *s);

#endif
