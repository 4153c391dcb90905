/*
 * probe.c - what this machine can run, found at start: the toolchains on
 * the stages' PATH become capabilities, the CPU architecture a label, and
 * a few CPU features capabilities.  Added to what the configuration
 * declares, never replacing it (config `probe: false` turns this off).
 */
#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "node/node_internal.h"

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
}
