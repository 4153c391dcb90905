/*
 * sandbox_node.c - the node's side of the stage sandbox: its configuration
 * (node/config.h `sandbox*`, `stage_*`, `work_quota_bytes`) turned into a
 * sandbox host at start, what a crashed run left reaped first, the data
 * directory's permissions, and the "sandbox" label that `node list` shows.
 *
 * At start, in this order:
 *   1. sandbox: off - the label says "off", a warning says that stages run
 *      as the daemon's own user with its whole view; nothing else.
 *   2. leftovers: sandbox_reap_leftovers on <data_dir>/sandbox and this
 *      node's cgroup (before the worker removes old attempt directories,
 *      which may still be mount points);
 *   3. the host (probe + trial run).  When it cannot be made, the node
 *      says so at error level, advertises 0 slots (it takes no work) and
 *      the label "unavailable: <why>"; `sandbox: off` is the way out.
 *   4. with identities of their own, the sandbox's uid must pass through
 *      data_dir and data_dir/work to reach its directory: both become
 *      0711 (search, no listing), and every other entry of data_dir loses
 *      its group and other bits, so that passing through reads nothing.
 *
 * The node's cgroup is ingot/n<id>-<8 hex digits of a hash of data_dir>:
 * unique per data directory, so nodes (and test clusters) sharing a
 * machine never reap each other's sandboxes.  The uid range defaults to
 * SANDBOX_DEFAULT_UID_BASE + ((id - 1) mod 1024) * count, so nodes of one
 * cluster on one machine get disjoint ranges.
 */
#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "node/worker/sandbox.h"
#include "node/worker/sandbox_node.h"

#define LABEL_KEY "sandbox"

static void set_label(struct node_config *c, const char *value)
{
	unsigned i = 0;
	while (i < c->nlabels && strcmp(c->label_keys[i], LABEL_KEY) != 0)
		i++;
	if (i == c->nlabels) {
		if (c->nlabels == ING_MAX_LABELS) {
			ING_LOG_WARN("no room for the sandbox label (%d labels already)",
			             ING_MAX_LABELS);
			return;
		}
		c->nlabels++;
	}
	snprintf(c->label_keys[i], ING_NAME_MAX + 1, "%s", LABEL_KEY);
	snprintf(c->label_values[i], ING_LABEL_VALUE_MAX + 1, "%s", value);
}

static uint32_t fnv1a(const char *s)
{
	uint32_t h = 2166136261u;
	for (; *s != '\0'; s++)
		h = (h ^ (uint8_t)*s) * 16777619u;
	return h;
}

/* data_dir and data_dir/work: 0711; every other entry of data_dir: no
 * group or other permissions. */
static void open_the_way(const char *data_dir)
{
	char work[700];
	snprintf(work, sizeof(work), "%s/work", data_dir);
	mkdir(work, 0711);
	DIR *d = opendir(data_dir);
	struct dirent *de;
	while (d != NULL && (de = readdir(d)) != NULL) {
		struct stat st;
		char path[1024];
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0 ||
		    strcmp(de->d_name, "work") == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", data_dir, de->d_name);
		if (lstat(path, &st) == 0 && !S_ISLNK(st.st_mode) && (st.st_mode & 077) != 0)
			chmod(path, st.st_mode & 07700);
	}
	if (d != NULL)
		closedir(d);
	if (chmod(data_dir, 0711) != 0 || chmod(work, 0711) != 0)
		ING_LOG_WARN("sandbox: cannot open the data directory to the sandbox uids: %s",
		             data_dir);
}

struct sandbox_host *sandbox_node_prepare(uv_loop_t *loop, struct node_config *c)
{
	struct sandbox_host *h = NULL;
	if (!c->sandbox) {
		set_label(c, "off");
		ING_LOG_WARN("sandbox off: stages run as the daemon's own user and see what it "
		             "sees (config sandbox: off)");
		return NULL;
	}
	char state[700], parent[64];
	const char *paths[NODE_SANDBOX_PATHS_MAX + 1];
	snprintf(state, sizeof(state), "%s/sandbox", c->data_dir);
	snprintf(parent, sizeof(parent), "ingot/n%" PRIu64 "-%08x", c->id, fnv1a(c->data_dir));
	for (unsigned i = 0; i < c->nsandbox_paths; i++)
		paths[i] = c->sandbox_paths[i];
	paths[c->nsandbox_paths] = NULL;
	uint32_t count =
	    c->sandbox_uid_count != 0 ? c->sandbox_uid_count : SANDBOX_DEFAULT_UID_COUNT;
	uint32_t base = c->sandbox_uid_base != 0
	                    ? c->sandbox_uid_base
	                    : SANDBOX_DEFAULT_UID_BASE + (uint32_t)((c->id - 1) % 1024) * count;
	struct sandbox_config sc = {
	    .state_dir = state,
	    .cgroup_parent = parent,
	    .uid_base = base,
	    .uid_count = count,
	    .ro_paths = paths,
	    .allow_daemon_uid = c->sandbox_allow_daemon_uid,
	};
	struct ing_error e = {0};
	unsigned found = 0;
	if (sandbox_reap_leftovers(&sc, &found, &e) != 0)
		ING_LOG_ERROR("sandbox leftovers not all cleaned err=\"%s\"", e.msg);
	else if (found > 0)
		ING_LOG_WARN("sandbox leftovers of a previous run cleaned count=%u", found);
	if (sandbox_host_new(loop, &sc, &h, &e) != 0) {
		char label[ING_LABEL_VALUE_MAX + 1];
		snprintf(label, sizeof(label), "unavailable: %s", e.msg);
		set_label(c, label);
		ING_LOG_ERROR("SANDBOX UNAVAILABLE, this node runs no work (slots 0) until it is "
		              "fixed or the config says sandbox: off: %s",
		              e.msg);
		c->slots = 0;
		return NULL;
	}
	if (sandbox_host_switches_uid(h)) {
		if (sandbox_dir_reachable(c->data_dir, &e) != 0) {
			char label[ING_LABEL_VALUE_MAX + 1];
			snprintf(label, sizeof(label), "unavailable: %s", e.msg);
			set_label(c, label);
			ING_LOG_ERROR("SANDBOX UNAVAILABLE, this node runs no work (slots 0): %s",
			              e.msg);
			c->slots = 0;
			sandbox_host_free(h);
			return NULL;
		}
		open_the_way(c->data_dir);
	}
	set_label(c, sandbox_host_mechanisms(h));
	return h;
}
