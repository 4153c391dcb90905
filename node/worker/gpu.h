/*
 * gpu.h - the NVIDIA GPUs of this machine, found through NVML.
 *
 * NVML (the driver's management library) is loaded at run time with
 * dlopen, so ingotd has no build or package dependency on the NVIDIA
 * driver, and a machine without one (no library, or a library whose driver
 * is not loaded) simply has no GPUs: discovery never fails the node.
 *
 * The library loaded is `libnvidia-ml.so.1` (found by the dynamic linker
 * as usual), or the file named by the environment variable
 * INGOT_NVML_LIBRARY: a testing aid that lets a test load a stand-in
 * library with canned answers (docs/testing.md), or point at a driver
 * installed outside the linker's path.
 *
 * Each GPU's device file is /dev/nvidia<minor> (NVML's minor number), which
 * the worker binds into the sandbox of the attempt that holds it (and no
 * other).  The directory those files are looked up in is /dev, or the one
 * named by the environment variable INGOT_NVIDIA_DEV_DIR: a testing aid,
 * like INGOT_NVML_LIBRARY, that lets a test stand scratch character
 * devices in for the driver's (docs/testing.md).
 */
#ifndef INGOT_NODE_WORKER_GPU_H
#define INGOT_NODE_WORKER_GPU_H

#include <stddef.h>
#include <stdint.h>

#define GPU_MAX_DEVICES  16
#define GPU_TEXT_MAX     96 /* NVML's buffer size for names and UUIDs (v2) */
#define GPU_ARCH_MAX     16
#define GPU_VERSION_MAX  32
#define GPU_NOTE_MAX     256
#define GPU_NVML_DEFAULT "libnvidia-ml.so.1"
#define GPU_NVML_ENV     "INGOT_NVML_LIBRARY"
#define GPU_DEV_DIR      "/dev"
#define GPU_DEV_DIR_ENV  "INGOT_NVIDIA_DEV_DIR"
#define GPU_MINOR_NONE   (-1) /* the device file is not known */
#define GPU_MINOR_MAX    255  /* /dev/nvidia0 .. /dev/nvidia255 */

struct gpu_device {
	unsigned index;              /* NVML's index (PCI bus order) */
	char uuid[GPU_TEXT_MAX];     /* "GPU-4a3b...", usable in CUDA_VISIBLE_DEVICES */
	char model[GPU_TEXT_MAX];    /* "NVIDIA H100 80GB HBM3" */
	unsigned cc_major, cc_minor; /* CUDA compute capability, 9.0 */
	char arch[GPU_ARCH_MAX];     /* nvcc's name for it: "sm_90" */
	uint64_t memory_bytes;       /* total device memory */
	int minor;                   /* its device file is /dev/nvidia<minor> (0-255);
	                              * GPU_MINOR_NONE when NVML did not say */
};

struct gpu_inventory {
	unsigned count; /* usable devices in devices[] */
	struct gpu_device devices[GPU_MAX_DEVICES];
	char driver_version[GPU_VERSION_MAX]; /* "580.159.04"; "" when NVML did not say */
	char cuda_version[GPU_VERSION_MAX];   /* newest CUDA the driver runs: "13.0"; or "" */
	char library[GPU_NOTE_MAX];           /* the library asked for */
	/* Why there are no GPUs, or fewer than NVML listed ("" when nothing was
	 * left out): "libnvidia-ml.so.1: cannot open shared object file...",
	 * "nvmlInit_v2: Driver Not Loaded", "GPU 1: nvmlDeviceGetMemoryInfo:
	 * GPU is lost; not counted". */
	char note[GPU_NOTE_MAX];
};

/*
 * The directory the NVIDIA device files are in: $INGOT_NVIDIA_DEV_DIR when
 * set and not empty, else GPU_DEV_DIR.  Borrowed (environment or static).
 */
const char *gpu_dev_dir(void);

/*
 * The library discovery loads: $INGOT_NVML_LIBRARY when set and not empty,
 * else GPU_NVML_DEFAULT.  The string is borrowed (environment or static).
 */
const char *gpu_nvml_library(void);

/*
 * Asks NVML (the library `library`, or gpu_nvml_library() when NULL) for
 * the driver's and CUDA's versions and every device's index, UUID, model,
 * compute capability, memory and minor number, and writes them to *inv.  Cannot fail: a
 * library that cannot be loaded or lacks an entry point, an NVML that does
 * not initialize, gives zero GPUs; a device that does not answer one of the
 * queries is left out (but one whose minor number NVML does not give, as
 * under WSL, is kept with minor GPU_MINOR_NONE and a note); at most GPU_MAX_DEVICES are kept.
 * inv->note says why in each case.  Text from NVML is cut to its buffer and control characters in
 * it become '?'.  The library is unloaded before returning. Call it at start, outside the event
 * loop's busy path: NVML may take a second to initialize on a machine with many GPUs.
 */
void gpu_discover(const char *library, struct gpu_inventory *inv);

/*
 * nvcc's architecture name of a compute capability: 9.0 -> "sm_90",
 * 12.0 -> "sm_120".  ING_EINVAL for a capability outside 1.0 .. 99.9 (out
 * untouched).
 */
int gpu_arch_name(unsigned major, unsigned minor, char *out, size_t cap);

#endif
