/*
 * mixer.cu - the complex mixer of mixer.c for NVIDIA GPUs (CUDA, sm_90
 * and others); API: mixer_cuda.h.
 *
 * One thread per sample (a grid-stride loop past 2^20 blocks).  Sample i's
 * phase is phase + freq * i, formed in double precision and reduced to
 * [-1/2, 1/2] cycle there (two double operations per sample), so it stays
 * exact however far into the signal i is; only then is it rounded to
 * float for sincospif (within 1 ulp), which keeps the oscillator's error
 * near 2e-7 rad, and the complex product is float.  Memory-bound: 8 bytes
 * read and 8 written per sample.
 *
 * mixer_sample is __host__ __device__, so it can be run and checked on a
 * CPU too.
 */
#include <cuda_runtime.h>
#include <math.h>
#include <stddef.h>

#include "mixer_cuda.h"

#define MIXER_CUDA_THREADS    256u
#define MIXER_CUDA_MAX_BLOCKS (1u << 20)

__host__ __device__ static inline float2 mixer_sample(float2 x, double freq, double phase, size_t i)
{
	double p = fma(freq, (double)i, phase);
	float s, c;

	p -= rint(p);
	sincospif((float)(2.0 * p), &s, &c);
	return make_float2(x.x * c - x.y * s, x.x * s + x.y * c);
}

/* y may equal x: each sample is read, then written, by the same thread. */
__global__ void mixer_c32_kernel(const float2 *x, float2 *y, size_t n, double freq, double phase)
{
	const size_t stride = (size_t)gridDim.x * blockDim.x;

	for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
		y[i] = mixer_sample(x[i], freq, phase, i);
}

extern "C" void mixer_cuda_init(struct mixer_cuda_nco *nco, double freq, double phase)
{
	nco->freq = freq;
	nco->phase = phase - rint(phase);
}

extern "C" void mixer_cuda_advance(struct mixer_cuda_nco *nco, size_t n)
{
	double t = nco->freq * (double)n;

	t -= rint(t);
	nco->phase += t;
	nco->phase -= rint(nco->phase);
}

extern "C" int mixer_c32_cuda_launch(const struct mixer_cuda_nco *nco, const float *dx, float *dy,
                                     size_t n)
{
	size_t blocks = (n + MIXER_CUDA_THREADS - 1) / MIXER_CUDA_THREADS;

	if (n == 0)
		return 0;
	if (blocks > MIXER_CUDA_MAX_BLOCKS)
		blocks = MIXER_CUDA_MAX_BLOCKS;
	mixer_c32_kernel<<<(unsigned)blocks, MIXER_CUDA_THREADS>>>((const float2 *)dx, (float2 *)dy,
	                                                           n, nco->freq, nco->phase);
	return (int)cudaGetLastError();
}

extern "C" int mixer_c32_cuda(struct mixer_cuda_nco *nco, const float *x, float *y, size_t n)
{
	float *d = NULL;
	cudaError_t err;

	if (n == 0)
		return 0;
	err = cudaMalloc((void **)&d, n * sizeof(float2));
	if (err == cudaSuccess)
		err = cudaMemcpy(d, x, n * sizeof(float2), cudaMemcpyHostToDevice);
	if (err == cudaSuccess)
		err = (cudaError_t)mixer_c32_cuda_launch(nco, d, d, n);
	if (err == cudaSuccess)
		err = cudaMemcpy(y, d, n * sizeof(float2), cudaMemcpyDeviceToHost);
	cudaFree(d);
	if (err == cudaSuccess)
		mixer_cuda_advance(nco, n);
	return (int)err;
}
