/*
 * sandbox.h - the box every stage of a job runs in.
 *
 * A node has one `struct sandbox_host` (made at start: it probes what the
 * machine allows and owns the identity range).  Each attempt opens one
 * `struct sandbox`: its own identity (uid = gid = uid_base + slot, never
 * the daemon's, never root, never shared by two live attempts), a work
 * directory that is a file system of its own when the disk quota is
 * available, a cgroup when cgroups are available, and a record in the
 * state directory that lets the next start find and kill what a crashed
 * daemon left.  Every stage of the attempt is then one sandbox_spawn: a
 * bubblewrap process tree (user, PID, mount, IPC, UTS, network namespaces)
 * whose whole view is the toolchain paths read-only, the work directory
 * read-write, a private /tmp, its own /proc and a minimal /dev.
 *
 * What enforces each limit depends on the machine; sandbox_host_mechanisms
 * says which, in one line for `node list`:
 *   memory      cgroup (v1 memory.limit_in_bytes / v2 memory.max), else
 *               RLIMIT_AS;
 *   processes   cgroup pids.max, else RLIMIT_NPROC (per uid: the uid is the
 *               attempt's own);
 *   cpu time    RLIMIT_CPU on every process (SIGXCPU, SIGKILL 1 s later);
 *   file size   RLIMIT_FSIZE;  open files  RLIMIT_NOFILE;
 *   disk        an ext4 file system in a sparse image, loop-mounted on the
 *               work directory (needs root or CAP_SYS_ADMIN), else none.
 *
 * Threading: everything runs on the host's loop thread; open and close do
 * their file-system work (mkfs, mount, unmount) on the libuv threadpool.
 */
#ifndef INGOT_NODE_WORKER_SANDBOX_H
#define INGOT_NODE_WORKER_SANDBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common/err.h"

#define SANDBOX_BWRAP_PATH        "/usr/bin/bwrap"
#define SANDBOX_MKE2FS_PATH       "/sbin/mke2fs"
#define SANDBOX_PRLIMIT_PATH      "/usr/bin/prlimit"
#define SANDBOX_SH_PATH           "/bin/sh"
#define SANDBOX_CGROUP_ROOT       "/sys/fs/cgroup"
#define SANDBOX_DEFAULT_UID_BASE  400000u
#define SANDBOX_DEFAULT_UID_COUNT 256u
#define SANDBOX_DEFAULT_TMP_BYTES (256ull << 20)
#define SANDBOX_MIN_DISK_BYTES    (16ull << 20)
#define SANDBOX_NAME_MAX          64
#define SANDBOX_MECHANISMS_MAX    256

/* 0 means: no limit of that kind. */
struct sandbox_limits {
	uint64_t memory_bytes;    /* whole tree (cgroup), else per process (RLIMIT_AS) */
	uint64_t cpu_seconds;     /* per process: RLIMIT_CPU */
	uint64_t processes;       /* whole tree: pids.max, else RLIMIT_NPROC */
	uint64_t file_size_bytes; /* any one file written: RLIMIT_FSIZE */
	uint64_t open_files;      /* RLIMIT_NOFILE */
};

struct sandbox_config {
	/* Required.  Daemon-private directory (created 0700): records of live
	 * sandboxes, their passwd/group files and disk images.  Never visible
	 * inside a sandbox; must not be below a work directory. */
	const char *state_dir;
	/* Required.  Name of this node's cgroup below each controller's root
	 * ("ingot/node-1"): [A-Za-z0-9._-/], relative.  Two nodes on one
	 * machine need different names. */
	const char *cgroup_parent;
	/* NULL: SANDBOX_CGROUP_ROOT.  The cgroup file systems' mount point. */
	const char *cgroup_root;
	/* NULL: SANDBOX_BWRAP_PATH. */
	const char *bwrap_path;
	/* Identities uid_base .. uid_base+uid_count-1 (uid == gid); 0/0 means
	 * the defaults.  Nothing else on the machine may use them; nodes
	 * sharing a machine need disjoint ranges. */
	uint32_t uid_base, uid_count;
	/* Extra read-only paths (toolchains such as /usr/local/cuda, /opt/x),
	 * absolute, NULL-terminated; NULL: none.  Each must exist. */
	const char *const *ro_paths;
	/* Without root (or CAP_SETUID+CAP_SETGID+CAP_CHOWN) the uid cannot be
	 * switched: stages then run under the daemon's uid inside their user
	 * namespace.  Refused unless this is true. */
	bool allow_daemon_uid;
	/* Ignore cgroups even where they are usable (rlimits only). */
	bool no_cgroups;
	/* Ignore the disk quota even where it is usable. */
	bool no_quota;
};

struct sandbox_host;
struct sandbox;

/*
 * Probes the machine and makes the host: bwrap present, user namespaces
 * allowed and working (a real trial sandbox runs /bin/true), whether the
 * uid can be switched, cgroups (v1 memory+pids or v2), the disk quota.
 * `cfg` is copied.  Blocks for the trial (a few ms).
 *
 * Errors: ING_EINVAL (config: missing state_dir/cgroup_parent, bad names,
 * uid range reaching 2^32 or covering 0 or the daemon's uid, a relative or
 * missing ro path), ING_EUNAVAILABLE (no bwrap, user namespaces disabled,
 * the trial failed, uid cannot be switched and allow_daemon_uid is false:
 * e says which, loudly enough for the log), ING_EIO (state_dir), ING_ENOMEM.
 */
int sandbox_host_new(uv_loop_t *loop, const struct sandbox_config *cfg, struct sandbox_host **out,
                     struct ing_error *e);

/* One line naming what isolates and limits, e.g. "bwrap identity=uid
 * 400000+256 ns=user,pid,mount,ipc,uts,net memory=cgroup1 processes=cgroup1
 * cpu=rlimit fsize=rlimit disk=ext4-loop".  Borrowed, lives with the host. */
const char *sandbox_host_mechanisms(const struct sandbox_host *h);

/* Number of sandboxes open (opening, open or closing). */
unsigned sandbox_host_open_count(const struct sandbox_host *h);

/* Frees the host.  Every sandbox must have been closed (its close callback
 * ran); ING_ECONFLICT otherwise, and nothing is freed. */
int sandbox_host_free(struct sandbox_host *h);

/*
 * At start, before any sandbox is opened: finds what a crashed daemon left
 * (records in state_dir, cgroups below cgroup_parent), SIGKILLs every
 * process of it, unmounts and deletes the disk images, removes the cgroups
 * and records.  Synchronous (waits up to about 2 s per leftover for its
 * processes to die).  *found (may be NULL): how many leftovers there were.
 * 0, or ING_EIO naming the first thing that could not be cleaned (the
 * rest is still tried), ING_EINVAL (cfg).
 */
int sandbox_reap_leftovers(const struct sandbox_config *cfg, unsigned *found, struct ing_error *e);

/* A device file bound into a sandbox. */
struct sandbox_device {
	const char *path; /* absolute path of a character device on the host */
	/* Where it appears inside: NULL for `path` itself, else an absolute
	 * path below /dev/ without ".." (a device looked up elsewhere, such as
	 * a test's stand-in for /dev, still appears as /dev/NAME). */
	const char *at;
};

struct sandbox_request {
	/* Unique among this node's sandboxes, [A-Za-z0-9._-], at most
	 * SANDBOX_NAME_MAX bytes ("job-12-a1"). */
	const char *name;
	/* For the logs and the record only. */
	const char *tenant;
	/* Absolute path of the attempt's directory; created (0700) if missing,
	 * must be empty.  The sandbox's only writable place but /tmp. */
	const char *work_dir;
	/* Size of the work directory's file system (>= SANDBOX_MIN_DISK_BYTES;
	 * 0: no quota).  Ignored where the quota is unavailable. */
	uint64_t disk_bytes;
	/* Size of the private /tmp (memory-backed); 0: SANDBOX_DEFAULT_TMP_BYTES. */
	uint64_t tmp_bytes;
	/* false: own network namespace, loopback only. */
	bool network;
	/* Extra device files bound in (/dev/nvidia0 ...), ndevices of them;
	 * NULL/0: none. */
	const struct sandbox_device *devices;
	size_t ndevices;
};

/* Runs exactly once, never inside sandbox_open.  status 0: `sb` is ready
 * (the work directory exists, is empty, belongs to the sandbox's uid, and
 * is on its own file system when a quota was asked for and is available).
 * Otherwise status and e say why (ING_EIO: mkfs/mount/cgroup; ING_EEXIST:
 * the work directory is not empty) and `sb` is already gone (NULL). */
typedef void (*sandbox_open_cb)(struct sandbox *sb, int status, const struct ing_error *e,
                                void *data);

/*
 * Opens a sandbox for one attempt.  Copies what `req` points to.
 * Errors (cb is then never called): ING_EINVAL (bad name, relative
 * work_dir, disk_bytes below the minimum, a device that is not a character
 * device or whose `at` is not below /dev/), ING_EEXIST (a sandbox of that name is open),
 * ING_EUNAVAILABLE (every identity of the range is in use), ING_ENOMEM.
 */
int sandbox_open(struct sandbox_host *h, const struct sandbox_request *req, sandbox_open_cb cb,
                 void *data, struct ing_error *e);

/* uid (== gid) the sandbox's processes run as, as the kernel sees it. */
uint32_t sandbox_uid(const struct sandbox *sb);

/* Absolute work directory (borrowed). */
const char *sandbox_work_dir(const struct sandbox *sb);

/*
 * Gives the sandbox's identity ownership of `path` (inside the work
 * directory) and everything below it, not following symlinks: for files
 * the daemon wrote there (the job's sources) before a stage runs.  No-op
 * when the daemon's uid is the sandbox's.  0, ING_EINVAL (path outside the
 * work directory), ING_EIO.
 */
int sandbox_hand_over(const struct sandbox *sb, const char *path, struct ing_error *e);

struct sandbox_command {
	/* NULL-terminated, argv[0] non-empty: found on the PATH of env inside
	 * the sandbox when it has no '/'. */
	const char *const *argv;
	/* The whole environment (NULL: empty). */
	const char *const *env;
	/* Working directory inside: the work directory or below (NULL: the
	 * work directory). */
	const char *cwd;
	struct sandbox_limits limits;
	/* As for uv_spawn, at most 3 (stdin, stdout, stderr); fewer: the rest
	 * is /dev/null. */
	uv_stdio_container_t *stdio;
	int stdio_count;
	/* The caller's exit callback for `proc`.  The exit status is the
	 * command's; 128+N when it was killed by signal N (bubblewrap's
	 * convention); 125 when it never started because the sandbox could
	 * not be set up (sandbox_explain says why); term_signal is set only
	 * when the sandbox's own first process was killed (sandbox_kill). */
	uv_exit_cb exit_cb;
	/* Out: set by sandbox_spawn when it called uv_spawn (the handle is
	 * then initialised, even on failure, and the caller must close it). */
	bool handle_initialised;
};

/*
 * Starts `cmd` in the sandbox with uv_spawn.  `proc` is the caller's and
 * is initialised on success: the caller uv_closes it (normally in its
 * exit callback); its data field is the caller's too.  One command at a
 * time per sandbox.  Errors: ING_EINVAL (empty argv, cwd outside the work
 * directory, more than 3 stdio), ING_ECONFLICT (a command is running, or
 * the sandbox is closing), ING_ENOMEM - proc untouched; or the
 * translation of a uv_spawn failure (ING_EUNAVAILABLE when out of
 * processes or fds...) - then, as after uv_spawn itself, proc is
 * initialised and the caller must uv_close it (cmd->handle_initialised
 * says which case it is).
 *
 * With cgroups the command is held at a gate until its first process is
 * in the sandbox's cgroup, which happens on the threadpool: the loop must
 * run for it to start.  The daemon must ignore SIGPIPE (the gate is a
 * pipe).
 */
int sandbox_spawn(struct sandbox *sb, uv_process_t *proc, struct sandbox_command *cmd,
                  struct ing_error *e);

/* True while a spawned command's first process has not exited. */
bool sandbox_running(const struct sandbox *sb);

/*
 * Signals every process of the sandbox with `sig` (the first process and,
 * through the cgroup, every descendant; without cgroups the descendants
 * die with the first process, whose PID namespace they are in).  Harmless
 * when nothing runs.
 */
void sandbox_kill(struct sandbox *sb, int sig);

/* What ended a command, as sandbox_explain tells it. */
enum sandbox_limit_hit {
	SANDBOX_HIT_NONE = 0,  /* none of the sandbox's limits */
	SANDBOX_HIT_SETUP,     /* the sandbox could not be set up */
	SANDBOX_HIT_DISK,      /* the work directory's file system is full */
	SANDBOX_HIT_MEMORY,    /* limits.memory_bytes (the cgroup's OOM killer) */
	SANDBOX_HIT_PROCESSES, /* limits.processes (the cgroup refused a fork) */
	SANDBOX_HIT_CPU,       /* limits.cpu_seconds (SIGXCPU) */
	SANDBOX_HIT_FILE_SIZE, /* limits.file_size_bytes (SIGXFSZ) */
};

/*
 * After a command ended (its exit callback ran): when one of the
 * sandbox's limits explains the end, writes why into `why` ("work
 * directory over its 2 GiB quota", "memory limit of 256 MiB reached: the
 * kernel killed a process", "process limit of 64 reached: a fork was
 * refused", "CPU time limit of 5 s reached", "file size limit of 1 MiB
 * reached", or why the sandbox could not be set up) and returns which
 * (SANDBOX_HIT_NONE, 0, when none: `why` is then untouched).
 */
enum sandbox_limit_hit sandbox_explain(struct sandbox *sb, int64_t exit_status, int term_signal,
                                       char *why, size_t why_len);

/* Formats a byte count for people: "2 GiB", "300 MiB", "4096 bytes". */
void sandbox_format_bytes(uint64_t bytes, char *out, size_t cap);

/*
 * Reads the regular file `rel` (relative, no "..", no symlink anywhere on
 * the way, no other file system) below the work directory: what a stage
 * left is collected through this only.  *buf (malloc'd, NUL after *len)
 * on success.  Errors: ING_EDENIED (a symlink, a path leaving the work
 * directory, not a regular file: e says which), ING_ENOTFOUND, ING_ETOOBIG
 * (larger than max_bytes), ING_EIO, ING_ENOMEM.
 */
int sandbox_read_output(const struct sandbox *sb, const char *rel, size_t max_bytes, char **buf,
                        size_t *len, struct ing_error *e);

/*
 * Creates (or truncates) the file `rel` below the work directory for the
 * daemon to hand to a command (a stdout file), making missing directories
 * on the way, without following a symlink anywhere and without leaving
 * the work directory's file system: a stage cannot turn the daemon's
 * write into one outside.  What it creates belongs to the sandbox's
 * identity.  With want_dir, makes `rel` a directory (*fd is then -1).
 * Errors: ING_EDENIED (a symlink or a non-directory on the way, "..", an
 * absolute path), ING_EIO, with e naming the path.
 */
int sandbox_create(const struct sandbox *sb, const char *rel, bool want_dir, int *fd,
                   struct ing_error *e);

/* The caller closed the handle of the running command before its exit
 * callback (a daemon stopping): SIGKILLs the sandbox and stops waiting for
 * that exit, so that sandbox_close can finish. */
void sandbox_abandon_command(struct sandbox *sb);

/* 0 when every directory above `dir` lets other users pass (o+x), as the
 * sandbox's identities must to reach a work directory below `dir`;
 * ING_EDENIED naming the first that does not. */
int sandbox_dir_reachable(const char *dir, struct ing_error *e);

/* Whether stages run under the identities of the range (root or the
 * capabilities) rather than under the daemon's uid. */
bool sandbox_host_switches_uid(const struct sandbox_host *h);

typedef void (*sandbox_close_cb)(void *data, int status, const struct ing_error *e);

/*
 * Closes a sandbox: SIGKILLs whatever of it still runs, waits for it to be
 * gone, unmounts the work directory's file system and deletes its image
 * (the work directory is left as an empty directory; remove it yourself),
 * removes the cgroup, the record, and frees the identity.  cb runs once, never
 * inside the call, after `sb` was freed; status ING_EIO when something
 * could not be cleaned (it is logged; the identity is then not reused
 * until a restart).  If a command is running, its exit callback still
 * runs later (the caller's handle is the caller's).
 */
void sandbox_close(struct sandbox *sb, sandbox_close_cb cb, void *data);

#endif
