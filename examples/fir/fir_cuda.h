/*
 * fir_cuda.h - the FIR filter of fir.h on an NVIDIA GPU (fir.cu).
 *
 * y[i] = sum_{k=0}^{ntaps-1} h[k] * x[i-k], x[j] = 0 for j < 0, as fir_f32.
 * Functions return 0, or a CUDA error code (cudaError_t, positive):
 * cudaErrorInvalidValue when ntaps is 0 or over FIR_CUDA_MAX_TAPS, or n
 * over 2^31 - 1.
 */
#ifndef INGOT_EXAMPLES_FIR_CUDA_H
#define INGOT_EXAMPLES_FIR_CUDA_H

#include <stddef.h>

#define FIR_CUDA_MAX_TAPS 4096

#ifdef __cplusplus
extern "C" {
#endif

/* fir_f32 on the GPU: host pointers; copies in, filters, copies out. */
int fir_f32_cuda(const float *h, size_t ntaps, const float *x, size_t n, float *y);

/* The two steps of fir_f32_cuda on data already on the device: load the
 * taps (synchronous), then launch on device pointers dx, dy (asynchronous,
 * on the default stream; dy must not overlap dx). */
int fir_f32_cuda_set_taps(const float *h, size_t ntaps);
int fir_f32_cuda_launch(const float *dx, size_t n, size_t ntaps, float *dy);

#ifdef __cplusplus
}
#endif

#endif
