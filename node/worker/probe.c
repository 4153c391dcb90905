/*
 * probe.c - what this machine can run, found at start: the toolchains on
 * the stages' PATH become capabilities, the CPU architecture a label, a
 * few CPU features capabilities, and NVIDIA GPUs (node/worker/gpu.c) the
 * capability `cuda` with labels gpu_model, gpu_arch, gpu_driver and
 * gpu_cuda.  Added to what the configuration declares, never replacing it
 * (config `probe: false` turns this off).
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "common/log.h"
#include "node/node_internal.h"
#include "node/worker/gpu.h"

#define STAGE_PATH "/usr/local/bin:/usr/bin:/bin"

static bool on_path(const char *tool)
{
	char dir[] = STAGE_PATH;
	char path[512];
	for (char *save = NULL, *d = strtok_r(dir, ":", &save); d != NULL;
	     d = strtok_r(NULL, ":", &save)) {
		snprintf(path, sizeof(path), "%s/%s", d, tool);
		if (access(path, X_OK) == 0)
			return true;
	}
	return false;
}

static void add_cap(struct node_config *c, const char *cap)
{
	for (unsigned i = 0; i < c->ncaps; i++)
		if (strcmp(c->caps[i], cap) == 0)
			return;
	if (c->ncaps < ING_MAX_CAPS)
		snprintf(c->caps[c->ncaps++], ING_NAME_MAX + 1, "%s", cap);
}

static void add_label(struct node_config *c, const char *key, const char *value)
{
	for (unsigned i = 0; i < c->nlabels; i++)
		if (strcmp(c->label_keys[i], key) == 0)
			return; /* the configuration wins */
	if (c->nlabels < ING_MAX_LABELS) {
		snprintf(c->label_keys[c->nlabels], ING_NAME_MAX + 1, "%s", key);
		snprintf(c->label_values[c->nlabels], ING_LABEL_VALUE_MAX + 1, "%s", value);
		c->nlabels++;
	}
}

static bool cpu_flag(const char *flag)
{
	char line[8192];
	bool found = false;
	FILE *f = fopen("/proc/cpuinfo", "r");
	if (f == NULL)
		return false;
	while (!found && fgets(line, sizeof(line), f) != NULL) {
		if (strncmp(line, "flags", 5) != 0)
			continue;
		for (char *save = NULL, *w = strtok_r(line, " \t\n", &save); w != NULL;
		     w = strtok_r(NULL, " \t\n", &save))
			if (strcmp(w, flag) == 0)
				found = true;
		break;
	}
	fclose(f);
	return found;
}

/* The distinct values of one device field, joined by ','. */
static void gpu_values(const struct gpu_inventory *inv, size_t offset, char *out, size_t cap)
{
	size_t len = 0;

	out[0] = '\0';
	for (unsigned i = 0; i < inv->count; i++) {
		const char *v = (const char *)&inv->devices[i] + offset;
		bool seen = false;

		for (unsigned j = 0; j < i && !seen; j++)
			seen = strcmp(v, (const char *)&inv->devices[j] + offset) == 0;
		if (!seen && len < cap)
			len +=
			    (size_t)snprintf(out + len, cap - len, "%s%s", len > 0 ? "," : "", v);
	}
}

static void probe_gpus(struct node_config *c)
{
	struct gpu_inventory inv;
	char model[ING_LABEL_VALUE_MAX + 1], arch[ING_LABEL_VALUE_MAX + 1];

	gpu_discover(NULL, &inv);
	if (inv.count == 0) {
		ING_LOG_INFO("gpu discovery gpus=0 library=%s why=\"%s\"", inv.library, inv.note);
		return;
	}
	gpu_values(&inv, offsetof(struct gpu_device, model), model, sizeof(model));
	gpu_values(&inv, offsetof(struct gpu_device, arch), arch, sizeof(arch));
	ING_LOG_INFO("gpu discovery gpus=%u model=\"%s\" arch=%s driver=%s cuda=%s%s%s", inv.count,
	             model, arch, inv.driver_version, inv.cuda_version,
	             inv.note[0] != '\0' ? " note=" : "", inv.note);
	add_cap(c, "cuda");
	add_label(c, "gpu_model", model);
	add_label(c, "gpu_arch", arch);
	if (inv.driver_version[0] != '\0')
		add_label(c, "gpu_driver", inv.driver_version);
	if (inv.cuda_version[0] != '\0')
		add_label(c, "gpu_cuda", inv.cuda_version);
}

void node_probe(struct node_config *c)
{
	static const char *const tools[] = {"cc", "gcc", "clang", "nvcc", "nm", "objdump", NULL};
	static const char *const flags[] = {"avx2", "avx512f", "fma", NULL};
	struct utsname u;

	if (!c->probe)
		return;
	for (int i = 0; tools[i] != NULL; i++)
		if (on_path(tools[i]))
			add_cap(c, tools[i]);
	for (int i = 0; flags[i] != NULL; i++)
		if (cpu_flag(flags[i]))
			add_cap(c, flags[i]);
	if (uname(&u) == 0)
		add_label(c, "arch", u.machine);
	probe_gpus(c);
}
