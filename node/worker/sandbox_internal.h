/*
 * sandbox_internal.h - what the sandbox's files share: the cgroup side
 * (sandbox_cgroup.c), the disk quota (sandbox_quota.c) and small file
 * helpers.  Not for use outside node/worker/sandbox*.c.
 */
#ifndef INGOT_NODE_WORKER_SANDBOX_INTERNAL_H
#define INGOT_NODE_WORKER_SANDBOX_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "node/worker/sandbox.h"

#define SBX_PATH_MAX 512

/* ---- cgroups ----------------------------------------------------------- */

/* What the host found.  version 0: none usable. */
struct sbx_cgroups {
	int version;               /* 0, 1 or 2 */
	bool memory, pids;         /* controllers that limit */
	char root[SBX_PATH_MAX];   /* mount point of the hierarchies */
	char parent[SBX_PATH_MAX]; /* the node's cgroup, relative */
};

/* Counters a limit leaves behind, read before and after a command. */
struct sbx_cg_events {
	uint64_t oom_kills;
	uint64_t pids_refused;
};

/* Finds cgroups under `root`, creates `parent` below each controller used
 * (v2: and enables memory/pids for its children).  Never fails: a machine
 * without usable cgroups gives version 0 and `why` says so. */
void sbx_cg_detect(const char *root, const char *parent, struct sbx_cgroups *cg, char *why,
                   size_t why_len);
/* Creates the sandbox's cgroup(s).  0 or ING_EIO. */
int sbx_cg_create(const struct sbx_cgroups *cg, const char *name, struct ing_error *e);
/* Writes memory and pids limits (0: unlimited).  0 or ING_EIO. */
int sbx_cg_set_limits(const struct sbx_cgroups *cg, const char *name,
                      const struct sandbox_limits *l, struct ing_error *e);
/* Moves process `pid` into the sandbox's cgroup(s).  0 or ING_EIO. */
int sbx_cg_attach(const struct sbx_cgroups *cg, const char *name, int pid, struct ing_error *e);
/* Signals every process in the cgroup; returns how many were found. */
unsigned sbx_cg_kill(const struct sbx_cgroups *cg, const char *name, int sig);
/* Reads the counters (zeros where a controller is missing). */
void sbx_cg_events(const struct sbx_cgroups *cg, const char *name, struct sbx_cg_events *ev);
/* SIGKILLs until empty (at most wait_ms), then removes the cgroup(s).
 * 0, or ING_EIO (still populated, or rmdir failed). */
int sbx_cg_destroy(const struct sbx_cgroups *cg, const char *name, unsigned wait_ms,
                   struct ing_error *e);
/* Removes the node's parent cgroup(s) when empty (at the host's end). */
void sbx_cg_remove_parent(const struct sbx_cgroups *cg);
/* Calls fn for every sandbox cgroup found below the parent. */
void sbx_cg_each(const struct sbx_cgroups *cg, void (*fn)(const char *name, void *arg), void *arg);

/* ---- disk quota -------------------------------------------------------- */

/* Whether loop-mounted images can be made here; why not in `why`. */
bool sbx_quota_usable(char *why, size_t why_len);
/* Makes a sparse image of `bytes`, an ext4 file system in it whose root
 * belongs to uid:uid, and mounts it (nosuid,nodev) on `dir`, which must
 * exist.  0, or ING_EIO with e naming the step that failed (everything
 * done so far undone). */
int sbx_quota_create(const char *image, uint64_t bytes, const char *dir, uint32_t uid,
                     struct ing_error *e);
/* Unmounts `dir` if it is mounted (lazily when busy) and deletes the
 * image.  0 or ING_EIO. */
int sbx_quota_remove(const char *image, const char *dir, struct ing_error *e);
/* True when the file system on `dir` has (almost) no room left. */
bool sbx_quota_full(const char *dir);
/* True when `dir` is a mount point (per /proc/self/mountinfo). */
bool sbx_is_mount_point(const char *dir);

/* ---- files ------------------------------------------------------------- */

/* Reads at most cap-1 bytes of `path` into buf, NUL-terminated; returns
 * the length or -errno. */
long sbx_read_small(const char *path, char *buf, size_t cap);
/* True for a name of [A-Za-z0-9._-], 1..max bytes, not "." or "..". */
bool sbx_name_ok(const char *s, size_t max);

#endif
