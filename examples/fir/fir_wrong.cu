/*
 * fir_wrong.cu - the API of fir_cuda.h with a deliberate bug, for showing
 * that the CUDA verify targets fail a job whose kernel is wrong (submit it
 * instead of fir.cu).
 *
 * BUG (on purpose), the same as fir_wrong.c's: the taps are applied in
 * reverse order (h[ntaps-1-k] instead of h[k]), a correlation instead of a
 * convolution.  The reference filter is asymmetric, so this fails.  It is
 * also the plainest possible kernel (one thread per output, every sample
 * read from global memory): it is here to be wrong, not fast.
 */
#include <cuda_runtime.h>
#include <stddef.h>

#include "fir_cuda.h"

__constant__ float fir_wrong_taps[FIR_CUDA_MAX_TAPS];

extern "C" __global__ void fir_wrong_kernel(const float *x, int n, int ntaps, float *y)
{
	const int i = blockIdx.x * blockDim.x + threadIdx.x;
	float acc = 0.0f;

	if (i >= n)
		return;
	for (int k = 0; k < ntaps && k <= i; k++)
		acc = fmaf(fir_wrong_taps[ntaps - 1 - k], x[i - k], acc);
	y[i] = acc;
}

extern "C" int fir_f32_cuda_set_taps(const float *h, size_t ntaps)
{
	if (ntaps == 0 || ntaps > FIR_CUDA_MAX_TAPS)
		return (int)cudaErrorInvalidValue;
	return (int)cudaMemcpyToSymbol(fir_wrong_taps, h, ntaps * sizeof(float));
}

extern "C" int fir_f32_cuda_launch(const float *dx, size_t n, size_t ntaps, float *dy)
{
	if (ntaps == 0 || ntaps > FIR_CUDA_MAX_TAPS || n > 0x7fffffff)
		return (int)cudaErrorInvalidValue;
	if (n == 0)
		return 0;
	fir_wrong_kernel<<<(unsigned)((n + 255) / 256), 256>>>(dx, (int)n, (int)ntaps, dy);
	return (int)cudaGetLastError();
}

extern "C" int fir_f32_cuda(const float *h, size_t ntaps, const float *x, size_t n, float *y)
{
	float *dx = NULL, *dy = NULL;
	int err = fir_f32_cuda_set_taps(h, ntaps);

	if (err != 0 || n == 0)
		return err;
	if ((err = (int)cudaMalloc((void **)&dx, n * sizeof(float))) == 0 &&
	    (err = (int)cudaMalloc((void **)&dy, n * sizeof(float))) == 0 &&
	    (err = (int)cudaMemcpy(dx, x, n * sizeof(float), cudaMemcpyHostToDevice)) == 0 &&
	    (err = fir_f32_cuda_launch(dx, n, ntaps, dy)) == 0)
		err = (int)cudaMemcpy(y, dy, n * sizeof(float), cudaMemcpyDeviceToHost);
	cudaFree(dx);
	cudaFree(dy);
	return err;
}
