/*
 * fft_cuda.h - the radix-2 complex FFT of fft.h on an NVIDIA GPU (fft.cu).
 *
 * Same transform and layout as fft_c32: n complex floats interleaved
 * (re, im), forward exp(-2 pi i jk/n), inverse exp(+2 pi i jk/n) NOT divided
 * by n, n a power of two up to 2^FFT_CUDA_MAX_LOG2N.  Functions return 0,
 * -1 when n is not a power of two (0 included) or too large (nothing
 * touched), or a CUDA error code (cudaError_t, positive).
 */
#ifndef INGOT_EXAMPLES_FFT_CUDA_H
#define INGOT_EXAMPLES_FFT_CUDA_H

#include <stddef.h>

#define FFT_CUDA_MAX_LOG2N 32
/* One block transforms 2^FFT_CUDA_LOCAL_LOG2 points in shared memory. */
#define FFT_CUDA_LOCAL_LOG2 11

#ifdef __cplusplus
extern "C" {
#endif

/* fft_c32 on the GPU: host pointer, in place; copies in and out. */
int fft_c32_cuda(float *data, size_t n, int inverse);

/* The transform of din into dout, device pointers (cudaMalloc'd or 8-byte
 * aligned), din left as it was, dout must not overlap din; asynchronous,
 * on the default stream. */
int fft_c32_cuda_launch(const float *din, float *dout, size_t n, int inverse);

/* How many times fft_c32_cuda_launch reads and writes all n points of
 * device memory (for bandwidth figures); 0 for a bad n. */
unsigned fft_c32_cuda_passes(size_t n);

#ifdef __cplusplus
}
#endif

#endif
