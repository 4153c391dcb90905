/*
 * fake_nvml.c - a stand-in for libnvidia-ml.so.1, for testing GPU
 * discovery (node/worker/gpu.c) on machines without an NVIDIA GPU.  Built
 * by CMake as a shared library (libingot_fake_nvml.so) and loaded through
 * INGOT_NVML_LIBRARY; never part of ingotd.  It exports only the NVML
 * entry points discovery uses, with canned answers: two "NVIDIA H100 80GB
 * HBM3" (compute capability 9.0, 81559 MiB), driver 580.159.04, CUDA 13.0,
 * whose minor numbers (device files) are swapped: GPU 0 is /dev/nvidia1 and
 * GPU 1 /dev/nvidia0, so that a mix-up of index and minor shows (any other
 * GPU's minor is its index).
 *
 * INGOT_FAKE_NVML picks other answers:
 *   init_fails  nvmlInit_v2 returns NVML_ERROR_DRIVER_NOT_LOADED (9)
 *   lost        GPU 1's memory query returns NVML_ERROR_GPU_IS_LOST (15)
 *   many        40 GPUs
 *   odd         one GPU, compute capability 12.0, a model name with a
 *               control character that fills the whole buffer unterminated
 *   bad_cc      one GPU whose compute capability is 1000.0
 *   no_minor    nvmlDeviceGetMinorNumber returns NVML_ERROR_NOT_SUPPORTED (3)
 *               for GPU 1 (as under WSL)
 * fake_nvml_open_count() (not NVML) tells a test whether every
 * nvmlInit_v2 was matched by an nvmlShutdown.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NVML_SUCCESS                 0
#define NVML_ERROR_UNINITIALIZED     1
#define NVML_ERROR_INVALID_ARGUMENT  2
#define NVML_ERROR_NOT_SUPPORTED     3
#define NVML_ERROR_DRIVER_NOT_LOADED 9
#define NVML_ERROR_GPU_IS_LOST       15

typedef int nvmlReturn_t;
typedef struct fake_device *nvmlDevice_t;
typedef struct {
	unsigned long long total, free, used;
} nvmlMemory_t;

struct fake_device {
	unsigned index;
};

static struct fake_device devices[64];
static int opened;

static const char *mode(void)
{
	const char *m = getenv("INGOT_FAKE_NVML");
	return m != NULL ? m : "";
}

static int is(const char *m)
{
	return strcmp(mode(), m) == 0;
}

static unsigned fake_count(void)
{
	if (is("many"))
		return 40;
	if (is("odd") || is("bad_cc"))
		return 1;
	return 2;
}

static nvmlReturn_t device_ok(nvmlDevice_t d)
{
	if (opened <= 0)
		return NVML_ERROR_UNINITIALIZED;
	if (d == NULL || d < devices || d >= devices + fake_count())
		return NVML_ERROR_INVALID_ARGUMENT;
	return NVML_SUCCESS;
}

int fake_nvml_open_count(void);
int fake_nvml_open_count(void)
{
	return opened;
}

nvmlReturn_t nvmlInit_v2(void);
nvmlReturn_t nvmlInit_v2(void)
{
	if (is("init_fails"))
		return NVML_ERROR_DRIVER_NOT_LOADED;
	opened++;
	return NVML_SUCCESS;
}

nvmlReturn_t nvmlShutdown(void);
nvmlReturn_t nvmlShutdown(void)
{
	if (opened <= 0)
		return NVML_ERROR_UNINITIALIZED;
	opened--;
	return NVML_SUCCESS;
}

const char *nvmlErrorString(nvmlReturn_t rv);
const char *nvmlErrorString(nvmlReturn_t rv)
{
	switch (rv) {
	case NVML_ERROR_DRIVER_NOT_LOADED: return "Driver Not Loaded";
	case NVML_ERROR_GPU_IS_LOST: return "GPU is lost";
	case NVML_ERROR_NOT_SUPPORTED: return "Not Supported";
	default: return "Unknown Error";
	}
}

nvmlReturn_t nvmlSystemGetDriverVersion(char *version, unsigned length);
nvmlReturn_t nvmlSystemGetDriverVersion(char *version, unsigned length)
{
	if (opened <= 0)
		return NVML_ERROR_UNINITIALIZED;
	snprintf(version, length, "580.159.04");
	return NVML_SUCCESS;
}

nvmlReturn_t nvmlSystemGetCudaDriverVersion_v2(int *version);
nvmlReturn_t nvmlSystemGetCudaDriverVersion_v2(int *version)
{
	*version = 13000;
	return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetCount_v2(unsigned *count);
nvmlReturn_t nvmlDeviceGetCount_v2(unsigned *count)
{
	if (opened <= 0)
		return NVML_ERROR_UNINITIALIZED;
	*count = fake_count();
	return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned index, nvmlDevice_t *device);
nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned index, nvmlDevice_t *device)
{
	if (opened <= 0)
		return NVML_ERROR_UNINITIALIZED;
	if (index >= fake_count())
		return NVML_ERROR_INVALID_ARGUMENT;
	devices[index].index = index;
	*device = &devices[index];
	return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t d, char *name, unsigned length);
nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t d, char *name, unsigned length)
{
	nvmlReturn_t rv = device_ok(d);

	if (rv != NVML_SUCCESS)
		return rv;
	if (is("odd"))
		memset(name, 'x', length), name[3] = '\n'; /* no NUL anywhere */
	else
		snprintf(name, length, "NVIDIA H100 80GB HBM3");
	return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t d, char *uuid, unsigned length);
nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t d, char *uuid, unsigned length)
{
	nvmlReturn_t rv = device_ok(d);

	if (rv != NVML_SUCCESS)
		return rv;
	snprintf(uuid, length, "GPU-00000000-fake-4000-8000-%012u", d->index);
	return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetCudaComputeCapability(nvmlDevice_t d, int *major, int *minor);
nvmlReturn_t nvmlDeviceGetCudaComputeCapability(nvmlDevice_t d, int *major, int *minor)
{
	nvmlReturn_t rv = device_ok(d);

	if (rv != NVML_SUCCESS)
		return rv;
	*major = is("odd") ? 12 : is("bad_cc") ? 1000 : 9;
	*minor = 0;
	return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t d, nvmlMemory_t *memory);
nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t d, nvmlMemory_t *memory)
{
	nvmlReturn_t rv = device_ok(d);

	if (rv != NVML_SUCCESS)
		return rv;
	if (is("lost") && d->index == 1)
		return NVML_ERROR_GPU_IS_LOST;
	memory->total = 81559ull << 20;
	memory->used = 0;
	memory->free = memory->total;
	return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetMinorNumber(nvmlDevice_t d, unsigned *minor);
nvmlReturn_t nvmlDeviceGetMinorNumber(nvmlDevice_t d, unsigned *minor)
{
	nvmlReturn_t rv = device_ok(d);

	if (rv != NVML_SUCCESS)
		return rv;
	if (is("no_minor") && d->index == 1)
		return NVML_ERROR_NOT_SUPPORTED;
	*minor = d->index == 0 ? 1 : d->index == 1 ? 0 : d->index;
	return NVML_SUCCESS;
}
