/*
 * test_gpu.c - GPU discovery (node/worker/gpu.c) without a GPU: no NVML
 * library (the real case on machines without the NVIDIA driver), a real
 * library that is not NVML, and the stand-in NVML of tests/nvml/ with its
 * canned answers: two H100s, init failing, a lost GPU, more GPUs than are
 * kept, odd text and an out-of-range compute capability.  Every NVML init
 * must be matched by a shutdown.  Then what a node offers (probe_config with
 * config `gpus`): all discovered, a count, a list, none, declared GPUs
 * discovery did not find, and the capability cuda and gpu_* labels only
 * for offered GPUs that were discovered.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"
#include "node/config.h"
#include "node/worker/probe.h"
#include "node/worker/gpu.h"

#ifndef FAKE_NVML_PATH
#error "FAKE_NVML_PATH: the path of libingot_fake_nvml.so, set by CMake"
#endif

/* Held open for the whole test, so the stand-in's counters outlive each
 * discovery's dlclose. */
static void *fake;
static int (*open_count)(void);

static int setup(void **state)
{
	void *p;

	(void)state;
	fake = dlopen(FAKE_NVML_PATH, RTLD_NOW | RTLD_LOCAL);
	if (fake == NULL)
		return -1;
	p = dlsym(fake, "fake_nvml_open_count");
	memcpy(&open_count, &p, sizeof(p));
	return open_count == NULL ? -1 : 0;
}

static int teardown(void **state)
{
	(void)state;
	dlclose(fake);
	return 0;
}

static void discover_fake(const char *mode, struct gpu_inventory *inv)
{
	setenv("INGOT_FAKE_NVML", mode, 1);
	gpu_discover(FAKE_NVML_PATH, inv);
	unsetenv("INGOT_FAKE_NVML");
	assert_int_equal(open_count(), 0); /* shut down again */
}

static void test_no_library(void **state)
{
	struct gpu_inventory inv;

	(void)state;
	memset(&inv, 0xa5, sizeof(inv));
	gpu_discover("/nonexistent/libnvidia-ml.so.1", &inv);
	assert_int_equal(inv.count, 0);
	assert_string_equal(inv.driver_version, "");
	assert_string_equal(inv.cuda_version, "");
	assert_string_equal(inv.library, "/nonexistent/libnvidia-ml.so.1");
	assert_non_null(strstr(inv.note, "/nonexistent/libnvidia-ml.so.1"));
}

/* The default library on this machine: with no NVIDIA driver installed
 * (CI, the development machines) it is not found and discovery gives
 * zero GPUs; where a driver is, whatever it finds is well formed. */
static void test_default_library(void **state)
{
	struct gpu_inventory inv;

	(void)state;
	unsetenv(GPU_NVML_ENV);
	assert_string_equal(gpu_nvml_library(), GPU_NVML_DEFAULT);
	gpu_discover(NULL, &inv);
	assert_string_equal(inv.library, GPU_NVML_DEFAULT);
	if (inv.count == 0)
		assert_true(inv.note[0] != '\0');
	for (unsigned i = 0; i < inv.count; i++)
		assert_int_equal(strncmp(inv.devices[i].arch, "sm_", 3), 0);

	setenv(GPU_NVML_ENV, "/nonexistent/nvml.so", 1);
	assert_string_equal(gpu_nvml_library(), "/nonexistent/nvml.so");
	gpu_discover(NULL, &inv);
	assert_int_equal(inv.count, 0);
	assert_string_equal(inv.library, "/nonexistent/nvml.so");
	setenv(GPU_NVML_ENV, "", 1);
	assert_string_equal(gpu_nvml_library(), GPU_NVML_DEFAULT);
	unsetenv(GPU_NVML_ENV);
}

/* A real shared library without NVML's entry points. */
static void test_not_nvml(void **state)
{
	struct gpu_inventory inv;

	(void)state;
	gpu_discover("libm.so.6", &inv);
	assert_int_equal(inv.count, 0);
	assert_non_null(strstr(inv.note, "no entry point nvmlInit_v2"));
}

static void test_two_gpus(void **state)
{
	struct gpu_inventory inv;

	(void)state;
	discover_fake("", &inv);
	assert_int_equal(inv.count, 2);
	assert_string_equal(inv.note, "");
	assert_string_equal(inv.driver_version, "580.159.04");
	assert_string_equal(inv.cuda_version, "13.0");
	for (unsigned i = 0; i < 2; i++) {
		const struct gpu_device *d = &inv.devices[i];

		assert_int_equal(d->index, i);
		assert_string_equal(d->model, "NVIDIA H100 80GB HBM3");
		assert_int_equal(d->cc_major, 9);
		assert_int_equal(d->cc_minor, 0);
		assert_string_equal(d->arch, "sm_90");
		assert_int_equal(d->memory_bytes, 81559ull << 20);
	}
	assert_string_equal(inv.devices[1].uuid, "GPU-00000000-fake-4000-8000-000000000001");
	/* The stand-in's device files are swapped: the minor is NVML's answer,
	 * not the index. */
	assert_int_equal(inv.devices[0].minor, 1);
	assert_int_equal(inv.devices[1].minor, 0);
}

/* A GPU whose minor number NVML does not give stays offered, its device
 * file unknown (GPU_MINOR_NONE), and the note says so. */
static void test_no_minor(void **state)
{
	struct gpu_inventory inv;

	(void)state;
	discover_fake("no_minor", &inv);
	assert_int_equal(inv.count, 2);
	assert_int_equal(inv.devices[0].minor, 1);
	assert_int_equal(inv.devices[1].minor, GPU_MINOR_NONE);
	assert_string_equal(inv.note, "GPU 1: nvmlDeviceGetMinorNumber: Not Supported; its device "
	                              "file is unknown");
}

static void test_dev_dir(void **state)
{
	(void)state;
	unsetenv(GPU_DEV_DIR_ENV);
	assert_string_equal(gpu_dev_dir(), "/dev");
	setenv(GPU_DEV_DIR_ENV, "/tmp/fake-dev", 1);
	assert_string_equal(gpu_dev_dir(), "/tmp/fake-dev");
	setenv(GPU_DEV_DIR_ENV, "", 1);
	assert_string_equal(gpu_dev_dir(), "/dev");
	unsetenv(GPU_DEV_DIR_ENV);
}

static void test_init_fails(void **state)
{
	struct gpu_inventory inv;

	(void)state;
	discover_fake("init_fails", &inv);
	assert_int_equal(inv.count, 0);
	assert_string_equal(inv.note, "nvmlInit_v2: Driver Not Loaded");
	assert_string_equal(inv.driver_version, "");
}

static void test_lost_gpu(void **state)
{
	struct gpu_inventory inv;

	(void)state;
	discover_fake("lost", &inv);
	assert_int_equal(inv.count, 1);
	assert_int_equal(inv.devices[0].index, 0);
	assert_string_equal(inv.note, "GPU 1: nvmlDeviceGetMemoryInfo: GPU is lost; not counted");
}

static void test_many_gpus(void **state)
{
	struct gpu_inventory inv;

	(void)state;
	discover_fake("many", &inv);
	assert_int_equal(inv.count, GPU_MAX_DEVICES);
	assert_int_equal(inv.devices[GPU_MAX_DEVICES - 1].index, GPU_MAX_DEVICES - 1);
	assert_int_equal(inv.devices[GPU_MAX_DEVICES - 1].minor, GPU_MAX_DEVICES - 1);
	assert_non_null(strstr(inv.note, "NVML lists 40 GPUs; only the first 16"));
}

static void test_odd_text(void **state)
{
	struct gpu_inventory inv;

	(void)state;
	discover_fake("odd", &inv);
	assert_int_equal(inv.count, 1);
	assert_string_equal(inv.devices[0].arch, "sm_120");
	assert_int_equal(strlen(inv.devices[0].model), GPU_TEXT_MAX - 1);
	assert_int_equal(strncmp(inv.devices[0].model, "xxx?xxx", 7), 0);
}

static void test_bad_capability(void **state)
{
	struct gpu_inventory inv;

	(void)state;
	discover_fake("bad_cc", &inv);
	assert_int_equal(inv.count, 0);
	assert_string_equal(inv.note, "GPU 0: compute capability 1000.0 out of range; not counted");
}

static void test_arch_name(void **state)
{
	char out[GPU_ARCH_MAX] = "unchanged";

	(void)state;
	assert_int_equal(gpu_arch_name(9, 0, out, sizeof(out)), 0);
	assert_string_equal(out, "sm_90");
	assert_int_equal(gpu_arch_name(8, 6, out, sizeof(out)), 0);
	assert_string_equal(out, "sm_86");
	assert_int_equal(gpu_arch_name(10, 0, out, sizeof(out)), 0);
	assert_string_equal(out, "sm_100");
	assert_int_equal(gpu_arch_name(0, 0, out, sizeof(out)), ING_EINVAL);
	assert_int_equal(gpu_arch_name(9, 10, out, sizeof(out)), ING_EINVAL);
	assert_int_equal(gpu_arch_name(100, 0, out, sizeof(out)), ING_EINVAL);
	assert_string_equal(out, "sm_100");
}

/* probe_config with the stand-in NVML (two H100s) and config `gpus`. */
static void probe(enum node_gpus_mode mode, unsigned count, const unsigned *list, unsigned n,
                  bool probe_on, struct node_config *c)
{
	node_config_defaults(c);
	c->probe = probe_on;
	c->gpus_mode = mode;
	c->gpus_count = count;
	for (unsigned i = 0; i < n; i++)
		c->gpu_list[i] = list[i];
	c->ngpu_list = n;
	setenv(GPU_NVML_ENV, FAKE_NVML_PATH, 1);
	probe_config(c);
	unsetenv(GPU_NVML_ENV);
}

static bool has_cap(const struct node_config *c, const char *cap)
{
	for (unsigned i = 0; i < c->ncaps; i++)
		if (strcmp(c->caps[i], cap) == 0)
			return true;
	return false;
}

static const char *label(const struct node_config *c, const char *key)
{
	for (unsigned i = 0; i < c->nlabels; i++)
		if (strcmp(c->label_keys[i], key) == 0)
			return c->label_values[i];
	return NULL;
}

static void test_offered_gpus(void **state)
{
	static const unsigned one[] = {1}, far[] = {1, 7};
	struct node_config *c = calloc(1, sizeof(*c));

	(void)state;
	/* No `gpus`: every discovered GPU, with its uuid and memory. */
	probe(NODE_GPUS_DISCOVERED, 0, NULL, 0, true, c);
	assert_int_equal(c->ngpus, 2);
	assert_int_equal(c->gpus[1].index, 1);
	assert_string_equal(c->gpus[1].uuid, "GPU-00000000-fake-4000-8000-000000000001");
	assert_int_equal(c->gpus[0].memory_bytes, 81559ull << 20);
	assert_int_equal(c->gpus[0].minor, 1); /* its device file, not its index */
	assert_int_equal(c->gpus[1].minor, 0);
	assert_true(node_gpu_pinned(&c->gpus[0]) && node_gpu_pinned(&c->gpus[1]));
	assert_true(has_cap(c, "cuda"));
	assert_string_equal(label(c, "gpu_model"), "NVIDIA H100 80GB HBM3");
	assert_string_equal(label(c, "gpu_arch"), "sm_90");
	assert_string_equal(label(c, "gpu_driver"), "580.159.04");
	assert_string_equal(label(c, "gpu_cuda"), "13.0");

	/* A list: GPU 1 found, GPU 7 declared but not found. */
	probe(NODE_GPUS_LIST, 0, one, 1, true, c);
	assert_int_equal(c->ngpus, 1);
	assert_int_equal(c->gpus[0].index, 1);
	assert_true(has_cap(c, "cuda"));
	probe(NODE_GPUS_LIST, 0, far, 2, true, c);
	assert_int_equal(c->ngpus, 2);
	assert_int_equal(c->gpus[1].index, 7);
	assert_string_equal(c->gpus[1].uuid, "");
	assert_int_equal(c->gpus[1].memory_bytes, 0);
	assert_int_equal(c->gpus[1].minor, -1); /* declared: no device file known */
	assert_false(node_gpu_pinned(&c->gpus[1]));
	assert_int_equal(c->gpus[0].minor, 0); /* GPU 1 is /dev/nvidia0 */
	assert_true(node_gpu_pinned(&c->gpus[0]));

	/* A count: 0..N-1, found or not; 0 keeps every GPU back (no cuda). */
	probe(NODE_GPUS_COUNT, 3, NULL, 0, true, c);
	assert_int_equal(c->ngpus, 3);
	assert_string_equal(c->gpus[2].uuid, "");
	probe(NODE_GPUS_COUNT, 0, NULL, 0, true, c);
	assert_int_equal(c->ngpus, 0);
	assert_false(has_cap(c, "cuda"));
	assert_null(label(c, "gpu_model"));

	/* probe: false: no discovery; declared GPUs are offered all the same,
	 * without cuda; none by default. */
	probe(NODE_GPUS_COUNT, 2, NULL, 0, false, c);
	assert_int_equal(c->ngpus, 2);
	assert_string_equal(c->gpus[0].uuid, "");
	assert_false(has_cap(c, "cuda"));
	probe(NODE_GPUS_DISCOVERED, 0, NULL, 0, false, c);
	assert_int_equal(c->ngpus, 0);
	free(c);
}

int main(void)
{
	ing_log_set_level(ING_LOG_LEVEL_OFF);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_no_library),     cmocka_unit_test(test_default_library),
	    cmocka_unit_test(test_not_nvml),       cmocka_unit_test(test_two_gpus),
	    cmocka_unit_test(test_init_fails),     cmocka_unit_test(test_lost_gpu),
	    cmocka_unit_test(test_many_gpus),      cmocka_unit_test(test_odd_text),
	    cmocka_unit_test(test_bad_capability), cmocka_unit_test(test_arch_name),
	    cmocka_unit_test(test_offered_gpus),   cmocka_unit_test(test_no_minor),
	    cmocka_unit_test(test_dev_dir),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
