/*
 * gpu.c - GPU discovery through NVML, loaded at run time.
 *
 * The happy path: dlopen the library, look up the ten entry points used
 * below (and nvmlErrorString, optional), nvmlInit_v2, read the driver's and
 * CUDA's versions, count the devices, and for each one take its handle,
 * model, UUID, compute capability, memory and minor number (its device
 * file, /dev/nvidia<minor>); nvmlShutdown, dlclose.  nvmlDeviceGetMinorNumber
 * is optional: a library without it, or a device that does not answer it,
 * leaves the minor unknown (the worker then cannot give an attempt that GPU's
 * device file alone).
 *
 * The NVML types are declared here, as NVML's header does (nvmlReturn_t is
 * an int-sized enum, a device handle an opaque pointer, the memory record
 * three unsigned long longs), so nothing from the driver is needed to
 * build.
 *
 * Failure modes, none fatal (the node then has fewer GPUs, and the note
 * says why): no library or no driver (the normal case on a machine without
 * a GPU), a library without an entry point (too old, or not NVML), init
 * failing (driver not loaded, no permission), a device that does not
 * answer (fallen off the bus, "GPU is lost"): it is left out rather than
 * offered to jobs that would then fail on it.  Everything NVML returns is
 * treated as untrusted text: cut to its buffer, control characters
 * replaced, the compute capability range-checked.
 */
#include <dlfcn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "node/worker/gpu.h"

typedef int nvml_return;                    /* nvmlReturn_t; 0 is NVML_SUCCESS */
typedef struct nvml_device_st *nvml_device; /* nvmlDevice_t */
struct nvml_memory {                        /* nvmlMemory_t */
	unsigned long long total, free, used;
};

struct nvml {
	void *lib;
	nvml_return (*init)(void);
	nvml_return (*shutdown)(void);
	const char *(*error_string)(nvml_return);
	nvml_return (*driver_version)(char *, unsigned);
	nvml_return (*cuda_version)(int *);
	nvml_return (*count)(unsigned *);
	nvml_return (*handle)(unsigned, nvml_device *);
	nvml_return (*name)(nvml_device, char *, unsigned);
	nvml_return (*uuid)(nvml_device, char *, unsigned);
	nvml_return (*capability)(nvml_device, int *, int *);
	nvml_return (*memory)(nvml_device, struct nvml_memory *);
	nvml_return (*minor)(nvml_device, unsigned *); /* optional */
};

const char *gpu_nvml_library(void)
{
	const char *env = getenv(GPU_NVML_ENV);
	return env != NULL && env[0] != '\0' ? env : GPU_NVML_DEFAULT;
}

const char *gpu_dev_dir(void)
{
	const char *env = getenv(GPU_DEV_DIR_ENV);
	return env != NULL && env[0] != '\0' ? env : GPU_DEV_DIR;
}

int gpu_arch_name(unsigned major, unsigned minor, char *out, size_t cap)
{
	if (major < 1 || major > 99 || minor > 9)
		return ING_EINVAL;
	snprintf(out, cap, "sm_%u%u", major, minor);
	return 0;
}

static void note(struct gpu_inventory *inv, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Appends one reason to inv->note ("; " between reasons). */
static void note(struct gpu_inventory *inv, const char *fmt, ...)
{
	size_t len = strlen(inv->note);
	va_list ap;

	if (len > 0 && len + 2 < sizeof(inv->note)) {
		memcpy(inv->note + len, "; ", 3);
		len += 2;
	}
	va_start(ap, fmt);
	vsnprintf(inv->note + len, sizeof(inv->note) - len, fmt, ap);
	va_end(ap);
}

static const char *nvml_error(const struct nvml *m, nvml_return rv)
{
	static char buf[32];
	const char *s = m->error_string != NULL ? m->error_string(rv) : NULL;

	if (s != NULL)
		return s;
	snprintf(buf, sizeof(buf), "NVML error %d", rv);
	return buf;
}

/* Makes NVML's text safe to log and to register: NUL-terminated inside
 * its buffer, no control characters, no empty string. */
static void clean_text(char *s, size_t cap)
{
	s[cap - 1] = '\0';
	for (char *p = s; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	if (s[0] == '\0')
		snprintf(s, cap, "unknown");
}

/* Looks up every entry point; ING_ENOTFOUND naming the first missing one. */
static int load_symbols(struct nvml *m, struct gpu_inventory *inv)
{
	static const struct {
		const char *name;
		size_t offset;
	} syms[] = {
	    {"nvmlInit_v2", offsetof(struct nvml, init)},
	    {"nvmlShutdown", offsetof(struct nvml, shutdown)},
	    {"nvmlSystemGetDriverVersion", offsetof(struct nvml, driver_version)},
	    {"nvmlSystemGetCudaDriverVersion_v2", offsetof(struct nvml, cuda_version)},
	    {"nvmlDeviceGetCount_v2", offsetof(struct nvml, count)},
	    {"nvmlDeviceGetHandleByIndex_v2", offsetof(struct nvml, handle)},
	    {"nvmlDeviceGetName", offsetof(struct nvml, name)},
	    {"nvmlDeviceGetUUID", offsetof(struct nvml, uuid)},
	    {"nvmlDeviceGetCudaComputeCapability", offsetof(struct nvml, capability)},
	    {"nvmlDeviceGetMemoryInfo", offsetof(struct nvml, memory)},
	};

	for (size_t i = 0; i < sizeof(syms) / sizeof(syms[0]); i++) {
		void *p = dlsym(m->lib, syms[i].name);

		if (p == NULL) {
			note(inv, "%s: no entry point %s (not NVML, or too old a driver)",
			     inv->library, syms[i].name);
			return ING_ENOTFOUND;
		}
		/* POSIX guarantees a data pointer from dlsym converts to a
		 * function pointer; each slot is a function pointer. */
		memcpy((char *)m + syms[i].offset, &p, sizeof(p));
	}
	{
		void *p = dlsym(m->lib, "nvmlErrorString"); /* optional */
		memcpy(&m->error_string, &p, sizeof(p));
		p = dlsym(m->lib, "nvmlDeviceGetMinorNumber"); /* optional */
		memcpy(&m->minor, &p, sizeof(p));
	}
	return 0;
}

/* Reads device i into *d; false (and a note) when it does not answer. */
static bool read_device(const struct nvml *m, unsigned i, struct gpu_device *d,
                        struct gpu_inventory *inv)
{
	nvml_device h = NULL;
	struct nvml_memory mem = {0, 0, 0};
	int major = -1, minor = -1;
	unsigned dev_minor = 0;
	const char *what;
	nvml_return rv;

	memset(d, 0, sizeof(*d));
	d->index = i;
	if ((rv = m->handle(i, &h)) != 0)
		what = "nvmlDeviceGetHandleByIndex_v2";
	else if ((rv = m->name(h, d->model, sizeof(d->model))) != 0)
		what = "nvmlDeviceGetName";
	else if ((rv = m->uuid(h, d->uuid, sizeof(d->uuid))) != 0)
		what = "nvmlDeviceGetUUID";
	else if ((rv = m->capability(h, &major, &minor)) != 0)
		what = "nvmlDeviceGetCudaComputeCapability";
	else if ((rv = m->memory(h, &mem)) != 0)
		what = "nvmlDeviceGetMemoryInfo";
	else
		what = NULL;
	if (what != NULL) {
		note(inv, "GPU %u: %s: %s; not counted", i, what, nvml_error(m, rv));
		return false;
	}
	if (major < 0 || minor < 0 ||
	    gpu_arch_name((unsigned)major, (unsigned)minor, d->arch, sizeof(d->arch)) != 0) {
		note(inv, "GPU %u: compute capability %d.%d out of range; not counted", i, major,
		     minor);
		return false;
	}
	d->minor = GPU_MINOR_NONE;
	if (m->minor == NULL) {
		note(inv, "GPU %u: no nvmlDeviceGetMinorNumber; its device file is unknown", i);
	} else if ((rv = m->minor(h, &dev_minor)) != 0) {
		note(inv, "GPU %u: nvmlDeviceGetMinorNumber: %s; its device file is unknown", i,
		     nvml_error(m, rv));
	} else if (dev_minor > GPU_MINOR_MAX) {
		note(inv, "GPU %u: minor number %u out of range; its device file is unknown", i,
		     dev_minor);
	} else {
		d->minor = (int)dev_minor;
	}
	d->cc_major = (unsigned)major;
	d->cc_minor = (unsigned)minor;
	d->memory_bytes = mem.total;
	clean_text(d->model, sizeof(d->model));
	clean_text(d->uuid, sizeof(d->uuid));
	return true;
}

static void read_versions(const struct nvml *m, struct gpu_inventory *inv)
{
	char buf[GPU_TEXT_MAX] = "";
	int cuda = 0;

	if (m->driver_version(buf, sizeof(buf)) == 0) {
		clean_text(buf, sizeof(buf));
		snprintf(inv->driver_version, sizeof(inv->driver_version), "%s", buf);
	}
	/* 13000 -> "13.0", 12080 -> "12.8" */
	if (m->cuda_version(&cuda) == 0 && cuda > 0 && cuda < 1000000)
		snprintf(inv->cuda_version, sizeof(inv->cuda_version), "%d.%d", cuda / 1000,
		         cuda % 1000 / 10);
}

void gpu_discover(const char *library, struct gpu_inventory *inv)
{
	struct nvml m;
	unsigned n = 0;
	nvml_return rv;

	memset(inv, 0, sizeof(*inv));
	memset(&m, 0, sizeof(m));
	snprintf(inv->library, sizeof(inv->library), "%s",
	         library != NULL ? library : gpu_nvml_library());
	m.lib = dlopen(inv->library, RTLD_NOW | RTLD_LOCAL);
	if (m.lib == NULL) {
		const char *why = dlerror();
		note(inv, "%s", why != NULL ? why : inv->library);
		return;
	}
	if (load_symbols(&m, inv) != 0)
		goto out;
	if ((rv = m.init()) != 0) {
		note(inv, "nvmlInit_v2: %s", nvml_error(&m, rv));
		goto out;
	}
	read_versions(&m, inv);
	if ((rv = m.count(&n)) != 0) {
		note(inv, "nvmlDeviceGetCount_v2: %s", nvml_error(&m, rv));
		n = 0;
	}
	if (n == 0 && inv->note[0] == '\0')
		note(inv, "NVML lists no GPUs");
	for (unsigned i = 0; i < n; i++) {
		if (inv->count == GPU_MAX_DEVICES) {
			note(inv, "NVML lists %u GPUs; only the first %d usable ones are counted",
			     n, GPU_MAX_DEVICES);
			break;
		}
		if (read_device(&m, i, &inv->devices[inv->count], inv))
			inv->count++;
	}
	m.shutdown();
out:
	dlclose(m.lib);
}
