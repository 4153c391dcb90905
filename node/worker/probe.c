/*
 * probe.c - what this machine can run, found at start: the toolchains on
 * the stages' PATH become capabilities, the CPU architecture a label, a
 * few CPU features capabilities, and NVIDIA GPUs (node/worker/gpu.c) the
 * capability `cuda` with labels gpu_model, gpu_arch, gpu_driver and
 * gpu_cuda.  Added to what the configuration declares, never replacing it
 * (config `probe: false` turns this off).  Also which GPUs the node offers
 * (cfg->gpus): the discovered ones, or those config `gpus` names.
 */
#include "node/worker/probe.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "common/log.h"
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

/* The distinct values of one field of the offered, discovered devices
 * (used[i]), joined by ','. */
static void gpu_values(const struct gpu_inventory *inv, const bool *used, size_t offset, char *out,
                       size_t cap)
{
	size_t len = 0;

	out[0] = '\0';
	for (unsigned i = 0; i < inv->count; i++) {
		const char *v = (const char *)&inv->devices[i] + offset;
		bool seen = !used[i];

		for (unsigned j = 0; j < i && !seen; j++)
			seen = used[j] && strcmp(v, (const char *)&inv->devices[j] + offset) == 0;
		if (!seen && len < cap)
			len +=
			    (size_t)snprintf(out + len, cap - len, "%s%s", len > 0 ? "," : "", v);
	}
}

/* Offers GPU `index`: with discovery's details when it found it. */
static void offer(struct node_config *c, const struct gpu_inventory *inv, bool *used,
                  unsigned index)
{
	struct node_gpu *g = &c->gpus[c->ngpus++];

	memset(g, 0, sizeof(*g));
	g->index = index;
	g->minor = GPU_MINOR_NONE;
	for (unsigned i = 0; i < inv->count; i++) {
		if (inv->devices[i].index != index)
			continue;
		used[i] = true;
		snprintf(g->uuid, sizeof(g->uuid), "%s", inv->devices[i].uuid);
		g->memory_bytes = inv->devices[i].memory_bytes;
		g->minor = inv->devices[i].minor;
		return;
	}
	if (inv->count > 0)
		ING_LOG_WARN("gpu configured but not found by discovery index=%u (offered anyway)",
		             index);
}

/* Says loudly which offered GPUs an attempt cannot be kept to: without
 * a discovered uuid and device file (declared by config, or NVML gave no
 * minor number), an attempt holding one gets every /dev/nvidia* file and
 * CUDA_VISIBLE_DEVICES by index (node/worker/worker.c). */
static void warn_weak_isolation(const struct node_config *c)
{
	char list[ING_MAX_GPUS * 4 + 1] = "";
	size_t len = 0;

	for (unsigned i = 0; i < c->ngpus; i++)
		if (!node_gpu_pinned(&c->gpus[i]) && len < sizeof(list))
			len += (size_t)snprintf(list + len, sizeof(list) - len, "%s%u",
			                        len > 0 ? "," : "", c->gpus[i].index);
	if (len > 0)
		ING_LOG_WARN("GPU ISOLATION WEAKER gpus=%s why=\"declared without discovery, or "
		             "no device minor known: an attempt holding one gets every "
		             "/dev/nvidia* file in its sandbox and CUDA_VISIBLE_DEVICES by index, "
		             "so it can reach every GPU of the node\"",
		             list);
}

/*
 * The GPUs this node offers: those discovery found (inv), or the ones the
 * configuration names (`gpus: N` or a list), found or not, so that a node
 * can declare GPUs discovery cannot see, or keep some back.  When offered
 * GPUs were discovered, the capability cuda and the gpu_* labels describe
 * them.
 */
static void offer_gpus(struct node_config *c, const struct gpu_inventory *inv)
{
	bool used[GPU_MAX_DEVICES] = {false};
	char model[ING_LABEL_VALUE_MAX + 1], arch[ING_LABEL_VALUE_MAX + 1];
	unsigned found = 0;

	c->ngpus = 0;
	switch (c->gpus_mode) {
	case NODE_GPUS_DISCOVERED:
		for (unsigned i = 0; i < inv->count && c->ngpus < ING_MAX_GPUS; i++) {
			if (inv->devices[i].index > ING_GPU_INDEX_MAX) {
				ING_LOG_WARN(
				    "gpu index beyond what a node may offer index=%u max=%d "
				    "(not offered)",
				    inv->devices[i].index, ING_GPU_INDEX_MAX);
				continue;
			}
			offer(c, inv, used, inv->devices[i].index);
		}
		break;
	case NODE_GPUS_COUNT:
		for (unsigned i = 0; i < c->gpus_count; i++)
			offer(c, inv, used, i);
		break;
	case NODE_GPUS_LIST:
		for (unsigned i = 0; i < c->ngpu_list; i++)
			offer(c, inv, used, c->gpu_list[i]);
		break;
	}
	for (unsigned i = 0; i < inv->count; i++)
		found += used[i];
	if (c->ngpus > 0 || inv->count > 0)
		ING_LOG_INFO("gpus offered gpus=%u discovered=%u of_them_offered=%u", c->ngpus,
		             inv->count, found);
	warn_weak_isolation(c);
	if (found == 0)
		return;
	gpu_values(inv, used, offsetof(struct gpu_device, model), model, sizeof(model));
	gpu_values(inv, used, offsetof(struct gpu_device, arch), arch, sizeof(arch));
	add_cap(c, "cuda");
	add_label(c, "gpu_model", model);
	add_label(c, "gpu_arch", arch);
	if (inv->driver_version[0] != '\0')
		add_label(c, "gpu_driver", inv->driver_version);
	if (inv->cuda_version[0] != '\0')
		add_label(c, "gpu_cuda", inv->cuda_version);
}

static void discover_gpus(struct gpu_inventory *inv)
{
	gpu_discover(NULL, inv);
	if (inv->count == 0)
		ING_LOG_INFO("gpu discovery gpus=0 library=%s why=\"%s\"", inv->library, inv->note);
	else
		ING_LOG_INFO("gpu discovery gpus=%u first_model=\"%s\" first_arch=%s driver=%s "
		             "cuda=%s%s%s",
		             inv->count, inv->devices[0].model, inv->devices[0].arch,
		             inv->driver_version, inv->cuda_version,
		             inv->note[0] != '\0' ? " note=" : "", inv->note);
}

void probe_config(struct node_config *c)
{
	static const char *const tools[] = {"cc", "gcc", "clang", "nvcc", "nm", "objdump", NULL};
	static const char *const flags[] = {"avx2", "avx512f", "fma", NULL};
	struct gpu_inventory inv;
	struct utsname u;

	memset(&inv, 0, sizeof(inv));
	if (c->probe) {
		for (int i = 0; tools[i] != NULL; i++)
			if (on_path(tools[i]))
				add_cap(c, tools[i]);
		for (int i = 0; flags[i] != NULL; i++)
			if (cpu_flag(flags[i]))
				add_cap(c, flags[i]);
		if (uname(&u) == 0)
			add_label(c, "arch", u.machine);
		discover_gpus(&inv);
	}
	offer_gpus(c, &inv);
}
