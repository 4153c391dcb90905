/*
 * sandbox_cgroup.c - a cgroup per sandbox: memory and process limits for
 * the whole tree, the list of its processes (to kill them all), and the
 * counters that say which limit ended a command.
 *
 * Layout, with P the node's parent (config cgroup_parent) and N the
 * sandbox's name:
 *   v1 (one hierarchy per controller):  <root>/memory/P/N, <root>/pids/P/N;
 *      the processes are listed by pids (else memory);
 *   v2 (one hierarchy):                 <root>/P/N, memory and pids enabled
 *      in P's cgroup.subtree_control (P must hold no process itself).
 * v2 is recognised by <root>/cgroup.controllers; v1 by <root>/<ctl>/
 * cgroup.procs.  A machine with neither (or where P cannot be created, as
 * for a daemon without root and without a delegated subtree) has none:
 * the caller then falls back to rlimits.
 *
 * Processes are put into the cgroup by the daemon (sbx_cg_attach writes
 * the pid while the sandbox's first process waits at its gate, see
 * sandbox.c), so the sandbox's identity never needs write access to any
 * cgroup file.
 *
 * Failure modes: writes to cgroup files fail with EINVAL/EBUSY when a
 * limit is below the current usage or a controller is missing; they are
 * reported (ING_EIO) with the file and errno.  Destroy waits for the
 * processes to die (they are SIGKILLed every 10 ms) and gives up after
 * wait_ms: a cgroup that cannot be removed is left and reported.
 */
#include "node/worker/sandbox_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/fs.h"
#include "common/log.h"

#define PROCS_BUF_BYTES (64u * 1024u)

enum ctl { CTL_MEMORY, CTL_PIDS, CTL_COUNT };
static const char *const CTL_NAME[CTL_COUNT] = {"memory", "pids"};

static bool file_exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

/* Directory of the sandbox `name` (NULL: of the parent) for controller
 * `c` (ignored in v2).  false when it does not fit. */
static bool cg_dir(const struct sbx_cgroups *cg, enum ctl c, const char *name, char *out,
                   size_t cap)
{
	int k;
	if (cg->version == 2)
		k = snprintf(out, cap, "%s/%s%s%s", cg->root, cg->parent, name ? "/" : "",
		             name ? name : "");
	else
		k = snprintf(out, cap, "%s/%s/%s%s%s", cg->root, CTL_NAME[c], cg->parent,
		             name ? "/" : "", name ? name : "");
	return k > 0 && (size_t)k < cap;
}

static bool has_ctl(const struct sbx_cgroups *cg, enum ctl c)
{
	return c == CTL_MEMORY ? cg->memory : cg->pids;
}

/* The controller whose directory lists the processes (v1). */
static enum ctl list_ctl(const struct sbx_cgroups *cg)
{
	return cg->pids ? CTL_PIDS : CTL_MEMORY;
}

static int write_str(const char *path, const char *value)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	size_t len = strlen(value);
	ssize_t n = write(fd, value, len);
	int rv = n == (ssize_t)len ? 0 : (n < 0 ? -errno : -EIO);
	close(fd);
	return rv;
}

static int write_at(const struct sbx_cgroups *cg, enum ctl c, const char *name, const char *file,
                    const char *value, struct ing_error *e)
{
	char dir[SBX_PATH_MAX], path[SBX_PATH_MAX + 64];
	if (!cg_dir(cg, c, name, dir, sizeof(dir)))
		return ing_error_set(e, ING_EIO, "cgroup path too long");
	snprintf(path, sizeof(path), "%s/%s", dir, file);
	int rv = write_str(path, value);
	if (rv != 0)
		return ing_error_set(e, ING_EIO, "cannot write '%s' to %s: %s", value, path,
		                     strerror(-rv));
	return 0;
}

void sbx_cg_detect(const char *root, const char *parent, struct sbx_cgroups *cg, char *why,
                   size_t why_len)
{
	char path[SBX_PATH_MAX + 64];
	memset(cg, 0, sizeof(*cg));
	snprintf(cg->root, sizeof(cg->root), "%s", root);
	snprintf(cg->parent, sizeof(cg->parent), "%s", parent);
	why[0] = '\0';

	snprintf(path, sizeof(path), "%s/cgroup.controllers", root);
	if (file_exists(path)) {
		cg->version = 2;
		if (!cg_dir(cg, CTL_MEMORY, NULL, path, sizeof(path)) ||
		    ing_mkdirs(path, 0755, NULL) != 0) {
			snprintf(why, why_len, "cannot create cgroup %s: %s", path,
			         strerror(errno));
			cg->version = 0;
			return;
		}
		/* Enable memory and pids on the way down to the parent. */
		char walk[SBX_PATH_MAX];
		snprintf(walk, sizeof(walk), "%s", cg->root);
		const char *p = cg->parent;
		for (;;) {
			char ctl[SBX_PATH_MAX + 32];
			snprintf(ctl, sizeof(ctl), "%s/cgroup.subtree_control", walk);
			write_str(ctl, "+memory");
			write_str(ctl, "+pids");
			if (*p == '\0')
				break;
			const char *slash = strchr(p, '/');
			size_t n = slash ? (size_t)(slash - p) : strlen(p);
			size_t wl = strlen(walk);
			if (wl + 1 + n >= sizeof(walk))
				break;
			walk[wl] = '/';
			memcpy(walk + wl + 1, p, n);
			walk[wl + 1 + n] = '\0';
			p += n + (slash ? 1 : 0);
		}
		char enabled[256] = "";
		snprintf(path, sizeof(path), "%s/%s/cgroup.subtree_control", cg->root, cg->parent);
		sbx_read_small(path, enabled, sizeof(enabled));
		cg->memory = strstr(enabled, "memory") != NULL;
		cg->pids = strstr(enabled, "pids") != NULL;
		if (!cg->memory || !cg->pids)
			snprintf(why, why_len,
			         "cgroup v2 at %s without the %s%s%s controller: delegate them",
			         cg->root, cg->memory ? "" : "memory",
			         !cg->memory && !cg->pids ? " and " : "", cg->pids ? "" : "pids");
		return;
	}

	cg->version = 1;
	for (int c = 0; c < CTL_COUNT; c++) {
		snprintf(path, sizeof(path), "%s/%s/cgroup.procs", root, CTL_NAME[c]);
		if (!file_exists(path))
			continue;
		char dir[SBX_PATH_MAX];
		if (!cg_dir(cg, (enum ctl)c, NULL, dir, sizeof(dir)) ||
		    ing_mkdirs(dir, 0755, NULL) != 0) {
			snprintf(why, why_len, "cannot create cgroup %s: %s", dir, strerror(errno));
			continue;
		}
		if (c == CTL_MEMORY)
			cg->memory = true;
		else
			cg->pids = true;
	}
	if (!cg->memory && !cg->pids) {
		if (why[0] == '\0')
			snprintf(why, why_len, "no cgroup v1 memory or pids hierarchy under %s",
			         root);
		cg->version = 0;
	}
}

int sbx_cg_create(const struct sbx_cgroups *cg, const char *name, struct ing_error *e)
{
	for (int c = 0; c < CTL_COUNT; c++) {
		if (cg->version == 2 && c > 0)
			break;
		if (cg->version == 1 && !has_ctl(cg, (enum ctl)c))
			continue;
		char dir[SBX_PATH_MAX];
		if (!cg_dir(cg, (enum ctl)c, name, dir, sizeof(dir)))
			return ing_error_set(e, ING_EIO, "cgroup path too long");
		if (mkdir(dir, 0755) != 0 && errno != EEXIST)
			return ing_error_set(e, ING_EIO, "cannot create cgroup %s: %s", dir,
			                     strerror(errno));
	}
	return 0;
}

int sbx_cg_set_limits(const struct sbx_cgroups *cg, const char *name,
                      const struct sandbox_limits *l, struct ing_error *e)
{
	char v[32];
	int rv = 0;
	if (cg->memory) {
		if (l->memory_bytes != 0)
			snprintf(v, sizeof(v), "%" PRIu64, l->memory_bytes);
		else
			snprintf(v, sizeof(v), "%s", cg->version == 2 ? "max" : "-1");
		if (cg->version == 2) {
			rv = write_at(cg, CTL_MEMORY, name, "memory.max", v, e);
			/* No swap: the limit is the limit (absent without swap). */
			if (rv == 0)
				write_at(cg, CTL_MEMORY, name, "memory.swap.max", "0", NULL);
		} else {
			/* memsw must stay >= the limit: open it, set, then close it. */
			char dir[SBX_PATH_MAX], memsw[SBX_PATH_MAX + 40];
			cg_dir(cg, CTL_MEMORY, name, dir, sizeof(dir));
			snprintf(memsw, sizeof(memsw), "%s/memory.memsw.limit_in_bytes", dir);
			bool has_memsw = file_exists(memsw);
			if (has_memsw)
				write_str(memsw, "-1");
			rv = write_at(cg, CTL_MEMORY, name, "memory.limit_in_bytes", v, e);
			if (rv == 0 && has_memsw)
				rv = write_at(cg, CTL_MEMORY, name, "memory.memsw.limit_in_bytes",
				              v, e);
		}
		if (rv != 0)
			return rv;
	}
	if (cg->pids) {
		if (l->processes != 0)
			snprintf(v, sizeof(v), "%" PRIu64, l->processes);
		else
			snprintf(v, sizeof(v), "max");
		rv = write_at(cg, CTL_PIDS, name, "pids.max", v, e);
	}
	return rv;
}

int sbx_cg_attach(const struct sbx_cgroups *cg, const char *name, int pid, struct ing_error *e)
{
	char v[24];
	snprintf(v, sizeof(v), "%d", pid);
	for (int c = 0; c < CTL_COUNT; c++) {
		if (cg->version == 2 && c > 0)
			break;
		if (cg->version == 1 && !has_ctl(cg, (enum ctl)c))
			continue;
		int rv = write_at(cg, (enum ctl)c, name, "cgroup.procs", v, e);
		if (rv != 0)
			return rv;
	}
	return 0;
}

/* Reads the pids listed in the sandbox's cgroup.procs into `pids` (at most
 * cap); returns how many. */
static unsigned read_procs(const struct sbx_cgroups *cg, const char *name, int *pids, unsigned cap)
{
	char dir[SBX_PATH_MAX], path[SBX_PATH_MAX + 16];
	if (!cg_dir(cg, list_ctl(cg), name, dir, sizeof(dir)))
		return 0;
	snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
	char *buf = malloc(PROCS_BUF_BYTES);
	if (buf == NULL)
		return 0;
	long len = sbx_read_small(path, buf, PROCS_BUF_BYTES);
	unsigned n = 0;
	for (char *p = buf; len > 0 && *p != '\0' && n < cap;) {
		char *end;
		long v = strtol(p, &end, 10);
		if (end == p)
			break;
		if (v > 0)
			pids[n++] = (int)v;
		p = end;
		while (*p == '\n')
			p++;
	}
	free(buf);
	return n;
}

unsigned sbx_cg_kill(const struct sbx_cgroups *cg, const char *name, int sig)
{
	if (cg->version == 0)
		return 0;
	if (cg->version == 2 && sig == SIGKILL)
		write_at(cg, CTL_MEMORY, name, "cgroup.kill", "1", NULL);
	int pids[1024];
	unsigned n = read_procs(cg, name, pids, sizeof(pids) / sizeof(pids[0]));
	for (unsigned i = 0; i < n; i++)
		kill(pids[i], sig);
	return n;
}

/* The number after `key` in a "key value" file; 0 when absent. */
static uint64_t read_counter(const struct sbx_cgroups *cg, enum ctl c, const char *name,
                             const char *file, const char *key)
{
	char dir[SBX_PATH_MAX], path[SBX_PATH_MAX + 32], buf[1024];
	if (!cg_dir(cg, c, name, dir, sizeof(dir)))
		return 0;
	snprintf(path, sizeof(path), "%s/%s", dir, file);
	if (sbx_read_small(path, buf, sizeof(buf)) <= 0)
		return 0;
	size_t kl = strlen(key);
	for (char *line = buf; line != NULL && *line != '\0';) {
		if (strncmp(line, key, kl) == 0 && line[kl] == ' ')
			return strtoull(line + kl + 1, NULL, 10);
		line = strchr(line, '\n');
		if (line != NULL)
			line++;
	}
	return 0;
}

void sbx_cg_events(const struct sbx_cgroups *cg, const char *name, struct sbx_cg_events *ev)
{
	memset(ev, 0, sizeof(*ev));
	if (cg->memory)
		ev->oom_kills =
		    cg->version == 2
		        ? read_counter(cg, CTL_MEMORY, name, "memory.events", "oom_kill")
		        : read_counter(cg, CTL_MEMORY, name, "memory.oom_control", "oom_kill");
	if (cg->pids)
		ev->pids_refused = read_counter(cg, CTL_PIDS, name, "pids.events", "max");
}

int sbx_cg_destroy(const struct sbx_cgroups *cg, const char *name, unsigned wait_ms,
                   struct ing_error *e)
{
	if (cg->version == 0)
		return 0;
	int pids[1];
	for (unsigned waited = 0;; waited += 10) {
		if (read_procs(cg, name, pids, 1) == 0)
			break;
		if (waited >= wait_ms)
			return ing_error_set(e, ING_EIO,
			                     "sandbox %s: processes still alive after %u ms", name,
			                     wait_ms);
		sbx_cg_kill(cg, name, SIGKILL);
		struct timespec ts = {0, 10 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	int rv = 0;
	for (int c = 0; c < CTL_COUNT; c++) {
		if (cg->version == 2 && c > 0)
			break;
		if (cg->version == 1 && !has_ctl(cg, (enum ctl)c))
			continue;
		char dir[SBX_PATH_MAX];
		if (!cg_dir(cg, (enum ctl)c, name, dir, sizeof(dir)))
			continue;
		/* An emptied cgroup can stay busy for a moment (v1 memory). */
		for (int tries = 0; rmdir(dir) != 0 && errno != ENOENT; tries++) {
			if (errno != EBUSY || tries >= 100) {
				rv = ing_error_set(e, ING_EIO, "cannot remove cgroup %s: %s", dir,
				                   strerror(errno));
				break;
			}
			struct timespec ts = {0, 10 * 1000 * 1000};
			nanosleep(&ts, NULL);
		}
	}
	return rv;
}

void sbx_cg_each(const struct sbx_cgroups *cg, void (*fn)(const char *name, void *arg), void *arg)
{
	char dir[SBX_PATH_MAX];
	if (cg->version == 0 || !cg_dir(cg, list_ctl(cg), NULL, dir, sizeof(dir)))
		return;
	DIR *d = opendir(dir);
	if (d == NULL)
		return;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (de->d_type != DT_DIR || !sbx_name_ok(de->d_name, SANDBOX_NAME_MAX))
			continue;
		fn(de->d_name, arg);
	}
	closedir(d);
	/* v1: the same name may exist under the other controller only. */
	if (cg->version == 1 && cg->memory && cg->pids) {
		if (!cg_dir(cg, CTL_MEMORY, NULL, dir, sizeof(dir)))
			return;
		d = opendir(dir);
		if (d == NULL)
			return;
		while ((de = readdir(d)) != NULL) {
			char other[SBX_PATH_MAX + SANDBOX_NAME_MAX + 2];
			if (de->d_type != DT_DIR || !sbx_name_ok(de->d_name, SANDBOX_NAME_MAX))
				continue;
			char pdir[SBX_PATH_MAX];
			cg_dir(cg, CTL_PIDS, NULL, pdir, sizeof(pdir));
			snprintf(other, sizeof(other), "%s/%s", pdir, de->d_name);
			if (!file_exists(other))
				fn(de->d_name, arg);
		}
		closedir(d);
	}
}

void sbx_cg_remove_parent(const struct sbx_cgroups *cg)
{
	for (int c = 0; cg->version != 0 && c < CTL_COUNT; c++) {
		if (cg->version == 2 && c > 0)
			break;
		if (cg->version == 1 && !has_ctl(cg, (enum ctl)c))
			continue;
		char dir[SBX_PATH_MAX];
		if (cg_dir(cg, (enum ctl)c, NULL, dir, sizeof(dir)))
			rmdir(dir); /* fails, harmlessly, while anything is in it */
	}
}
