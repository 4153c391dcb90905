/*
 * fir.cu - the FIR filter of fir.c for NVIDIA GPUs (CUDA, sm_90 and others).
 *
 * y[i] = sum_{k=0}^{ntaps-1} h[k] * x[i-k], x[j] = 0 for j < 0: the same
 * definition as fir_f32 in fir.c, so the same reference vectors apply.
 *
 * One thread per output.  Each block stages its stretch of x plus the
 * ntaps - 1 samples of history before it in shared memory (one coalesced
 * load per sample instead of ntaps global loads); the taps sit in constant
 * memory, where every thread of a warp reads the same h[k] at once (a
 * broadcast).  The target cuda-sm90 compiles it to PTX and to a cubin;
 * cuda-sm90-verify runs it with harness.cu (API: fir_cuda.h).
 */
#include <cuda_runtime.h>
#include <stddef.h>

#include "fir_cuda.h"

#define FIR_CUDA_THREADS 256

__constant__ float fir_taps[FIR_CUDA_MAX_TAPS];

/*
 * x, y: device pointers to n floats.  Launch with FIR_CUDA_THREADS
 * threads per block, ceil(n / FIR_CUDA_THREADS) blocks and
 * (blockDim.x + ntaps - 1) * sizeof(float) bytes of dynamic shared memory;
 * the taps must be in fir_taps first.
 */
extern "C" __global__ void fir_f32_kernel(const float *__restrict__ x, int n, int ntaps,
                                          float *__restrict__ y)
{
	extern __shared__ float tile[]; /* blockDim.x + ntaps - 1 samples */
	const int halo = ntaps - 1;
	const int base = blockIdx.x * blockDim.x;
	const int i = base + threadIdx.x;

	for (int t = threadIdx.x; t < (int)blockDim.x + halo; t += blockDim.x) {
		const int src = base - halo + t;
		tile[t] = (src >= 0 && src < n) ? x[src] : 0.0f;
	}
	__syncthreads();

	if (i < n) {
		const float *w = tile + threadIdx.x + halo; /* w[-k] == x[i - k] */
		float acc = 0.0f;

#pragma unroll 8
		for (int k = 0; k < ntaps; k++)
			acc = fmaf(fir_taps[k], w[-k], acc);
		y[i] = acc;
	}
}

extern "C" int fir_f32_cuda_set_taps(const float *h, size_t ntaps)
{
	if (ntaps == 0 || ntaps > FIR_CUDA_MAX_TAPS)
		return (int)cudaErrorInvalidValue;
	return (int)cudaMemcpyToSymbol(fir_taps, h, ntaps * sizeof(float));
}

extern "C" int fir_f32_cuda_launch(const float *dx, size_t n, size_t ntaps, float *dy)
{
	size_t shared = (FIR_CUDA_THREADS + ntaps - 1) * sizeof(float);
	unsigned blocks = (unsigned)((n + FIR_CUDA_THREADS - 1) / FIR_CUDA_THREADS);
	cudaError_t err = cudaSuccess;

	if (ntaps == 0 || ntaps > FIR_CUDA_MAX_TAPS || n > 0x7fffffff)
		return (int)cudaErrorInvalidValue;
	if (n == 0)
		return 0;
	if (shared > 48 * 1024)
		err = cudaFuncSetAttribute(
		    fir_f32_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)shared);
	if (err != cudaSuccess)
		return (int)err;
	fir_f32_kernel<<<blocks, FIR_CUDA_THREADS, shared>>>(dx, (int)n, (int)ntaps, dy);
	return (int)cudaGetLastError();
}

extern "C" int fir_f32_cuda(const float *h, size_t ntaps, const float *x, size_t n, float *y)
{
	float *dx = NULL, *dy = NULL;
	cudaError_t err;

	if (ntaps == 0 || ntaps > FIR_CUDA_MAX_TAPS || n > 0x7fffffff)
		return (int)cudaErrorInvalidValue;
	if (n == 0)
		return 0;
	err = (cudaError_t)fir_f32_cuda_set_taps(h, ntaps);
	if (err == cudaSuccess)
		err = cudaMalloc((void **)&dx, n * sizeof(float));
	if (err == cudaSuccess)
		err = cudaMalloc((void **)&dy, n * sizeof(float));
	if (err == cudaSuccess)
		err = cudaMemcpy(dx, x, n * sizeof(float), cudaMemcpyHostToDevice);
	if (err == cudaSuccess)
		err = (cudaError_t)fir_f32_cuda_launch(dx, n, ntaps, dy);
	if (err == cudaSuccess)
		err = cudaMemcpy(y, dy, n * sizeof(float), cudaMemcpyDeviceToHost);
	cudaFree(dx);
	cudaFree(dy);
	return (int)err;
}
