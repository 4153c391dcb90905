/*
 * fft.cu - the radix-2 decimation-in-time FFT of fft.c for NVIDIA GPUs
 * (CUDA, sm_90 and others); API: fft_cuda.h.
 *
 * Out of place, din -> dout, in three kinds of pass:
 *   1. local: each block (2^(FFT_CUDA_LOCAL_LOG2 - 1) threads) gathers its
 *      2^FFT_CUDA_LOCAL_LOG2 points from din in bit-reversed order into
 *      shared memory, runs the first (up to 11) butterfly stages there
 *      (their spans stay inside the block), and writes them to dout;
 *   2. radix-4: one thread takes four points and does two more stages in
 *      registers (half of the device-memory traffic of two radix-2 passes);
 *   3. radix-2: the last stage, when an odd number remain.
 * The twiddle of butterfly j in a stage of half-span h is
 * exp(-+ i pi j / h), from sincospif (within 1 ulp; no table, no
 * recurrence: every thread computes its own, so no error builds up along
 * a stage).  Arithmetic is float, like fft.c's butterflies.
 *
 * The per-thread steps are __host__ __device__ functions, so the index
 * arithmetic can be run and checked on a CPU too.
 */
#include <cuda_runtime.h>
#include <stddef.h>

#include "fft_cuda.h"

#define FFT_CUDA_THREADS 256u

__host__ __device__ static inline float2 fft_cmul(float2 a, float2 b)
{
	return make_float2(a.x * b.x - a.y * b.y, a.x * b.y + a.y * b.x);
}

/* exp(sign * i * pi * j / half); sign -1: forward, +1: inverse. */
__host__ __device__ static inline float2 fft_twiddle(size_t j, size_t half, float sign)
{
	float s, c;

	sincospif(sign * ((float)j / (float)half), &s, &c);
	return make_float2(c, s);
}

/* Reverses the low `bits` bits of i (1 <= bits <= 64). */
__host__ __device__ static inline size_t fft_bitrev(size_t i, unsigned bits)
{
#ifdef __CUDA_ARCH__
	return (size_t)(__brevll((unsigned long long)i) >> (64 - bits));
#else
	size_t r = 0;

	for (unsigned b = 0; b < bits; b++)
		r = (r << 1) | ((i >> b) & 1);
	return r;
#endif
}

/* Butterfly t (of n/2) of stage s (half-span 2^s) on d, in place. */
__host__ __device__ static inline void fft_radix2(float2 *d, size_t t, unsigned s, float sign)
{
	const size_t half = (size_t)1 << s;
	const size_t j = t & (half - 1);
	const size_t k = ((t >> s) << (s + 1)) | j;
	const float2 a = d[k], b = fft_cmul(d[k + half], fft_twiddle(j, half, sign));

	d[k] = make_float2(a.x + b.x, a.y + b.y);
	d[k + half] = make_float2(a.x - b.x, a.y - b.y);
}

/* Group t (of n/4) of stages s and s + 1 on d, in place: the four points
 * k, k + h, k + 2h, k + 3h (h = 2^s) go through both stages in registers. */
__host__ __device__ static inline void fft_radix4(float2 *d, size_t t, unsigned s, float sign)
{
	const size_t h = (size_t)1 << s;
	const size_t j = t & (h - 1);
	const size_t k = ((t >> s) << (s + 2)) | j;
	float2 x0 = d[k], x1 = d[k + h], x2 = d[k + 2 * h], x3 = d[k + 3 * h], b, w;

	/* stage s: (x0, x1) and (x2, x3), both with twiddle j of half-span h */
	w = fft_twiddle(j, h, sign);
	b = fft_cmul(x1, w);
	x1 = make_float2(x0.x - b.x, x0.y - b.y);
	x0 = make_float2(x0.x + b.x, x0.y + b.y);
	b = fft_cmul(x3, w);
	x3 = make_float2(x2.x - b.x, x2.y - b.y);
	x2 = make_float2(x2.x + b.x, x2.y + b.y);
	/* stage s + 1 (half-span 2h): (x0, x2) twiddle j, (x1, x3) twiddle j + h */
	b = fft_cmul(x2, fft_twiddle(j, 2 * h, sign));
	x2 = make_float2(x0.x - b.x, x0.y - b.y);
	x0 = make_float2(x0.x + b.x, x0.y + b.y);
	b = fft_cmul(x3, fft_twiddle(j + h, 2 * h, sign));
	x3 = make_float2(x1.x - b.x, x1.y - b.y);
	x1 = make_float2(x1.x + b.x, x1.y + b.y);
	d[k] = x0;
	d[k + h] = x1;
	d[k + 2 * h] = x2;
	d[k + 3 * h] = x3;
}

/* Thread t of a local block at point `base` (m = 2^log2m points, m/2
 * threads): gathers its two points in bit-reversed order of all log2n bits. */
__host__ __device__ static inline void fft_local_load(const float2 *in, float2 *sh, size_t base,
                                                      unsigned t, unsigned log2m, unsigned log2n)
{
	const size_t mh = (size_t)1 << (log2m - 1);

	sh[t] = in[fft_bitrev(base + t, log2n)];
	sh[t + mh] = in[fft_bitrev(base + t + mh, log2n)];
}

/* One block: 2^log2m points (log2m >= 1), 2^(log2m - 1) threads, as many
 * float2 of dynamic shared memory as points. */
__global__ void fft_local_kernel(const float2 *__restrict__ in, float2 *__restrict__ out,
                                 unsigned log2n, unsigned log2m, float sign)
{
	extern __shared__ float2 sh[];
	const size_t mh = (size_t)1 << (log2m - 1);
	const size_t base = (size_t)blockIdx.x << log2m;
	const unsigned t = threadIdx.x;

	fft_local_load(in, sh, base, t, log2m, log2n);
	__syncthreads();
	for (unsigned s = 0; s < log2m; s++) {
		fft_radix2(sh, t, s, sign);
		__syncthreads();
	}
	out[base + t] = sh[t];
	out[base + t + mh] = sh[t + mh];
}

__global__ void fft_radix4_kernel(float2 *d, size_t groups, unsigned s, float sign)
{
	const size_t t = (size_t)blockIdx.x * blockDim.x + threadIdx.x;

	if (t < groups)
		fft_radix4(d, t, s, sign);
}

__global__ void fft_radix2_kernel(float2 *d, size_t butterflies, unsigned s, float sign)
{
	const size_t t = (size_t)blockIdx.x * blockDim.x + threadIdx.x;

	if (t < butterflies)
		fft_radix2(d, t, s, sign);
}

/* log2 of n, or -1 when n is not a power of two or too large. */
static int fft_log2(size_t n)
{
	int l = 0;

	if (n == 0 || (n & (n - 1)) != 0)
		return -1;
	while (((size_t)1 << l) < n)
		l++;
	return l > FFT_CUDA_MAX_LOG2N ? -1 : l;
}

extern "C" unsigned fft_c32_cuda_passes(size_t n)
{
	int l = fft_log2(n);
	int rest;

	if (l < 0)
		return 0;
	if (l == 0)
		return 1; /* a copy */
	rest = l > FFT_CUDA_LOCAL_LOG2 ? l - FFT_CUDA_LOCAL_LOG2 : 0;
	return 1u + (unsigned)(rest + 1) / 2u;
}

static unsigned fft_blocks(size_t threads)
{
	return (unsigned)((threads + FFT_CUDA_THREADS - 1) / FFT_CUDA_THREADS);
}

extern "C" int fft_c32_cuda_launch(const float *din, float *dout, size_t n, int inverse)
{
	const int l = fft_log2(n);
	const float sign = inverse ? 1.0f : -1.0f;
	const float2 *in = (const float2 *)din;
	float2 *out = (float2 *)dout;
	unsigned log2m, s;

	if (l < 0)
		return -1;
	if (n == 1)
		return (int)cudaMemcpyAsync(dout, din, sizeof(float2), cudaMemcpyDeviceToDevice);
	log2m = l < FFT_CUDA_LOCAL_LOG2 ? (unsigned)l : FFT_CUDA_LOCAL_LOG2;
	fft_local_kernel<<<(unsigned)(n >> log2m), 1u << (log2m - 1),
	                   ((size_t)1 << log2m) * sizeof(float2)>>>(in, out, (unsigned)l, log2m,
	                                                            sign);
	for (s = log2m; s + 1 < (unsigned)l; s += 2)
		fft_radix4_kernel<<<fft_blocks(n / 4), FFT_CUDA_THREADS>>>(out, n / 4, s, sign);
	if (s < (unsigned)l)
		fft_radix2_kernel<<<fft_blocks(n / 2), FFT_CUDA_THREADS>>>(out, n / 2, s, sign);
	return (int)cudaGetLastError();
}

extern "C" int fft_c32_cuda(float *data, size_t n, int inverse)
{
	float *din = NULL, *dout = NULL;
	cudaError_t err;

	if (fft_log2(n) < 0)
		return -1;
	err = cudaMalloc((void **)&din, n * sizeof(float2));
	if (err == cudaSuccess)
		err = cudaMalloc((void **)&dout, n * sizeof(float2));
	if (err == cudaSuccess)
		err = cudaMemcpy(din, data, n * sizeof(float2), cudaMemcpyHostToDevice);
	if (err == cudaSuccess)
		err = (cudaError_t)fft_c32_cuda_launch(din, dout, n, inverse);
	if (err == cudaSuccess)
		err = cudaMemcpy(data, dout, n * sizeof(float2), cudaMemcpyDeviceToHost);
	cudaFree(din);
	cudaFree(dout);
	return (int)err;
}
