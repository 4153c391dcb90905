/*
 * mixer_cuda.h - the complex mixer of mixer.h on an NVIDIA GPU (mixer.cu):
 * y[i] = x[i] * exp(2*pi*i*(phase + freq*i)), complex floats interleaved
 * (re, im), the oscillator's state carried from one call to the next.
 *
 * The state is the oscillator's phase at the next sample, in cycles,
 * rather than mixer.h's phasor: every GPU thread computes the phase of its
 * own sample from it, so samples need no sequential recurrence.
 * Functions return 0 or a CUDA error code (cudaError_t, positive).
 */
#ifndef INGOT_EXAMPLES_MIXER_CUDA_H
#define INGOT_EXAMPLES_MIXER_CUDA_H

#include <stddef.h>

struct mixer_cuda_nco {
	double freq;  /* cycles per sample */
	double phase; /* cycles, at the next sample, in [-1/2, 1/2] */
};

#ifdef __cplusplus
extern "C" {
#endif

/* freq in cycles per sample, phase in cycles at the first sample. */
void mixer_cuda_init(struct mixer_cuda_nco *nco, double freq, double phase);

/* Mixes n samples of x into y (host pointers; y may equal x) and moves
 * the oscillator on by n samples (only when it succeeded). */
int mixer_c32_cuda(struct mixer_cuda_nco *nco, const float *x, float *y, size_t n);

/* The mix alone on device pointers (cudaMalloc'd or 8-byte aligned; dy
 * may equal dx), asynchronous on the default stream; nco is not moved on:
 * call mixer_cuda_advance. */
int mixer_c32_cuda_launch(const struct mixer_cuda_nco *nco, const float *dx, float *dy, size_t n);

/* Moves the oscillator on by n samples. */
void mixer_cuda_advance(struct mixer_cuda_nco *nco, size_t n);

#ifdef __cplusplus
}
#endif

#endif
