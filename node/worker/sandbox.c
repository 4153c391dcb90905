/*
 * sandbox.c - the sandbox of one attempt, its stages, and the host that
 * owns the identities (see sandbox.h for the contract).
 *
 * A stage is one uv_spawn of this chain, every link exec'ing the next in
 * the same process:
 *
 *   [/bin/sh gate] -> [prlimit rlimits --] -> bwrap <view> -- command
 *
 *   - uv_spawn switches to the sandbox's uid/gid (UV_PROCESS_SETUID/GID,
 *     which also drops supplementary groups) when the daemon may; the
 *     chain runs with a fixed, minimal environment (the command's own is
 *     handed to bwrap as --clearenv/--setenv, so nothing the job declares,
 *     LD_PRELOAD included, acts outside the box);
 *   - the gate exists only with cgroups: the shell waits on fd 5 until the
 *     daemon has written the pid into the sandbox's cgroup, so the whole
 *     tree is born inside it; "go" lets it continue, EOF makes it exit 125
 *     (sandbox_explain then tells why);
 *   - prlimit sets the rlimits the cgroup does not cover;
 *   - bwrap builds the namespaces and the mount view and stays as the
 *     parent of the command (pid 1 of the new PID namespace reaps; killing
 *     the first process kills pid 1 through --die-with-parent, and the
 *     kernel then kills everything else in the namespace).
 *
 * The view: / is an empty tmpfs remounted read-only at the end; /usr and
 * the top-level /bin /sbin /lib* (symlinks kept as symlinks) read-only;
 * the few /etc files toolchains read (ld.so cache and config,
 * alternatives, nsswitch.conf, localtime, hosts, os-release) read-only,
 * plus a passwd/group naming only the sandbox's identity (handed to bwrap
 * as pipes on fds 3 and 4, which it reads and closes); the configured
 * extra paths read-only; /proc of its own PID namespace; bwrap's minimal
 * /dev (null, zero, full, random, urandom, tty, pts) read-only plus the
 * requested device files (each at its own path or the /dev/ path asked for)
 * and a size-limited /dev/shm; a size-limited /tmp;
 * the work directory read-write at its real path (so argv templates keep
 * their absolute paths).  Its own network namespace (loopback only)
 * unless asked for the host's network, which also binds what name
 * resolution and TLS clients read from /etc (resolv.conf, gai.conf,
 * host.conf, services, protocols, ssl/certs, ssl/openssl.cnf).
 *
 * Lifecycle of a sandbox: OPENING (threadpool: work directory, quota
 * file system, cgroup) -> OPEN (spawn/kill/explain, one
 * command at a time) -> CLOSING (waits for a running command's exit, then
 * threadpool: kill what is left, cgroup, unmount, files) -> freed.  The
 * record <state_dir>/<name>.rec is written before any resource exists and
 * removed after the last is gone, so a crash at any point leaves something
 * sandbox_reap_leftovers finds.
 *
 * Invariants: an identity (slot) belongs to at most one sandbox from
 * sandbox_open until its close completed; a slot whose close failed stays
 * taken until the next start (reaping cleans it).  The first process of a
 * command is always a child of this daemon (so libuv reaps it).  Without
 * cgroups the daemon writes its pid (and start time, against pid reuse)
 * into the record before the loop runs again; with them the cgroup is how
 * a restart finds the tree (the record is not rewritten: it costs ~2 ms).
 *
 * Costs per command (measured, bench/sandbox_bench.c): uv_spawn ~1 ms on
 * the loop thread; with cgroup v1 the two cgroup.procs writes ~3 ms (a
 * migration takes the kernel's global cgroup lock), done on the threadpool
 * while the gate shell starts.  A command is "attaching" from uv_spawn to
 * the gate's opening: close waits for both the exit and the attach.
 *
 * Failure modes: a bwrap that cannot set up (a path vanished, namespaces
 * refused) exits 1 with its message on the command's stderr; a command
 * not found makes bwrap exit 1 likewise; the gate failing exits 125.
 * Cleanup failures are logged and reported to the close callback.
 */
#include "node/worker/sandbox.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/close_range.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/fs.h"
#include "common/log.h"
#include "node/worker/sandbox_internal.h"
#include "common/uverr.h"

#define GATE_SCRIPT        "read -r go <&5; exec 5<&-; [ \"$go\" = go ] || exit 125; exec \"$@\""
#define CHAIN_ENV_PATH     "PATH=/usr/sbin:/usr/bin:/sbin:/bin"
#define CLOSE_WAIT_MS      5000u
#define REAP_WAIT_MS       2000u
#define TRIAL_ERR_BYTES    1024
#define SANDBOX_HOSTNAME   "ingot-sandbox"
#define SHM_BYTES          (64ull << 20)
#define CAP_BIT(n)         (1ull << (n))
#define CAPS_TO_SWITCH_UID (CAP_BIT(0) | CAP_BIT(6) | CAP_BIT(7)) /* CHOWN, SETGID, SETUID */

/* Top-level directories that may be symlinks into /usr (merged /usr). */
static const char *const TOP_DIRS[] = {"/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"};
/* The /etc a toolchain reads; bound when present. */
static const char *const ETC_FILES[] = {
    "/etc/ld.so.cache",   "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/alternatives",
    "/etc/nsswitch.conf", "/etc/localtime",  "/etc/hosts",        "/etc/os-release",
};
/* What name resolution and TLS clients read; bound only with the host's
 * network (without it there is nothing to resolve or reach). */
static const char *const NET_ETC_FILES[] = {
    "/etc/resolv.conf", "/etc/gai.conf",  "/etc/host.conf",       "/etc/services",
    "/etc/protocols",   "/etc/ssl/certs", "/etc/ssl/openssl.cnf", "/etc/ca-certificates.conf",
};

enum sb_state { SB_OPENING, SB_OPEN, SB_CLOSING };

struct sandbox_host {
	uv_loop_t *loop;
	char state_dir[SBX_PATH_MAX];
	char bwrap[SBX_PATH_MAX];
	uint32_t uid_base, uid_count;
	char **ro_paths; /* owned, NULL-terminated */
	bool switch_uid;
	bool quota;
	struct sbx_cgroups cg;
	char mechanisms[SANDBOX_MECHANISMS_MAX];
	uint8_t *slot_used; /* 0 free, 1 taken, 2 taken until restart (dirty) */
	struct sandbox *list;
	unsigned nopen;
	struct sandbox_host *next_host;
};

struct sandbox {
	struct sandbox_host *h;
	struct sandbox *next;
	enum sb_state state;
	char name[SANDBOX_NAME_MAX + 1];
	char tenant[SANDBOX_NAME_MAX + 1];
	char work_dir[SBX_PATH_MAX];
	char record[SBX_PATH_MAX + 80];
	char image[SBX_PATH_MAX + 80]; /* "" when no quota */
	uint32_t slot, uid;
	uint64_t disk_bytes, tmp_bytes;
	bool network;
	char **devices; /* owned: host path, path inside, ..., NULL */

	uv_work_t work;
	int work_status;
	struct ing_error work_err;
	sandbox_open_cb open_cb;
	sandbox_close_cb close_cb;
	void *data;
	bool close_requested, close_queued;

	uv_work_t attach; /* the gate: cgroup attach on the threadpool */
	bool attaching;
	int gate_fd, attach_status;
	char attach_msg[ING_ERROR_MSG_MAX];

	uv_process_t *proc; /* the caller's, while running */
	uv_exit_cb user_exit;
	bool running;
	int pid;
	struct sandbox_limits limits;
	struct sbx_cg_events ev0;
	char setup_why[ING_ERROR_MSG_MAX];
};

/* Every host of the process (usually one), so that a command's exit can
 * be traced back to its sandbox: the handle's data field is the caller's. */
static struct sandbox_host *all_hosts;

/* ---- small helpers (shared through sandbox_internal.h) ----------------- */

long sbx_read_small(const char *path, char *buf, size_t cap)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		buf[0] = '\0';
		return -errno;
	}
	size_t got = 0;
	while (got < cap - 1) {
		ssize_t n = read(fd, buf + got, cap - 1 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	buf[got] = '\0';
	return (long)got;
}

void sandbox_format_bytes(uint64_t bytes, char *out, size_t cap)
{
	static const char *const unit[] = {"KiB", "MiB", "GiB", "TiB"};
	int u = -1;
	uint64_t v = bytes;
	while (v >= 1024 && v % 1024 == 0 && u < 3) {
		v /= 1024;
		u++;
	}
	if (u < 0)
		snprintf(out, cap, "%" PRIu64 " bytes", bytes);
	else
		snprintf(out, cap, "%" PRIu64 " %s", v, unit[u]);
}

bool sbx_name_ok(const char *s, size_t max)
{
	size_t n = strlen(s);
	if (n == 0 || n > max || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return false;
	}
	return true;
}

static void free_strv(char **v)
{
	for (size_t i = 0; v != NULL && v[i] != NULL; i++)
		free(v[i]);
	free(v);
}

static char **copy_strv(const char *const *v)
{
	size_t n = 0;
	while (v != NULL && v[n] != NULL)
		n++;
	char **c = calloc(n + 1, sizeof(*c));
	for (size_t i = 0; c != NULL && i < n; i++) {
		c[i] = strdup(v[i]);
		if (c[i] == NULL) {
			free_strv(c);
			return NULL;
		}
	}
	return c;
}

/* The devices as pairs (host path, path inside), NULL-terminated. */
static char **copy_devices(const struct sandbox_device *d, size_t n)
{
	char **c = calloc(2 * n + 1, sizeof(*c));
	for (size_t i = 0; c != NULL && i < n; i++) {
		c[2 * i] = strdup(d[i].path);
		c[2 * i + 1] =
		    c[2 * i] != NULL ? strdup(d[i].at != NULL ? d[i].at : d[i].path) : NULL;
		if (c[2 * i + 1] == NULL) {
			free_strv(c);
			return NULL;
		}
	}
	return c;
}

/* `path` is `dir` or below it (plain prefix on a '/' boundary, no ".."). */
static bool path_within(const char *path, const char *dir)
{
	size_t dl = strlen(dir);
	if (strncmp(path, dir, dl) != 0 || (path[dl] != '\0' && path[dl] != '/'))
		return false;
	for (const char *p = path + dl; *p != '\0'; p++)
		if (p[0] == '/' && p[1] == '.' && p[2] == '.' && (p[3] == '/' || p[3] == '\0'))
			return false;
	return true;
}

/* ---- argument vectors -------------------------------------------------- */

struct argv_buf {
	char **v;
	size_t n, cap;
	bool oom;
};

static void arg(struct argv_buf *a, const char *s)
{
	if (a->oom)
		return;
	if (a->n + 2 > a->cap) {
		size_t cap = a->cap == 0 ? 128 : a->cap * 2;
		char **g = realloc(a->v, cap * sizeof(*g));
		if (g == NULL) {
			a->oom = true;
			return;
		}
		a->v = g;
		a->cap = cap;
	}
	a->v[a->n] = strdup(s);
	if (a->v[a->n] == NULL) {
		a->oom = true;
		return;
	}
	a->v[++a->n] = NULL;
}

static void arg2(struct argv_buf *a, const char *x, const char *y)
{
	arg(a, x);
	arg(a, y);
}

static void arg3(struct argv_buf *a, const char *x, const char *y, const char *z)
{
	arg(a, x);
	arg(a, y);
	arg(a, z);
}

static void argv_free(struct argv_buf *a)
{
	for (size_t i = 0; i < a->n; i++)
		free(a->v[i]);
	free(a->v);
	memset(a, 0, sizeof(*a));
}

/* What one bwrap invocation needs (a sandbox's, or the probe's trial). */
struct view {
	uint32_t uid;
	bool network;
	bool identity_files;  /* /etc/passwd and /etc/group from fds 3 and 4 */
	const char *work_dir; /* NULL: none (the trial) */
	const char *cwd;
	uint64_t tmp_bytes;
	char *const *ro_paths;
	char *const *devices; /* pairs: host path, path inside; NULL-terminated */
};

static void add_view(struct argv_buf *a, const struct sandbox_host *h, const struct view *v)
{
	char num[32];
	arg(a, h->bwrap);
	arg2(a, "--unshare-user", "--unshare-pid");
	arg2(a, "--unshare-ipc", "--unshare-uts");
	arg(a, "--unshare-cgroup-try");
	if (!v->network)
		arg(a, "--unshare-net");
	snprintf(num, sizeof(num), "%" PRIu32, v->uid);
	arg2(a, "--uid", num);
	arg2(a, "--gid", num);
	arg2(a, "--hostname", SANDBOX_HOSTNAME);
	arg(a, "--disable-userns");
	arg2(a, "--die-with-parent", "--new-session");
	arg2(a, "--cap-drop", "ALL");
	arg3(a, "--ro-bind", "/usr", "/usr");
	for (size_t i = 0; i < sizeof(TOP_DIRS) / sizeof(TOP_DIRS[0]); i++) {
		struct stat st;
		char target[SBX_PATH_MAX];
		if (lstat(TOP_DIRS[i], &st) != 0)
			continue;
		if (S_ISLNK(st.st_mode)) {
			ssize_t n = readlink(TOP_DIRS[i], target, sizeof(target) - 1);
			if (n <= 0)
				continue;
			target[n] = '\0';
			arg3(a, "--symlink", target, TOP_DIRS[i]);
		} else if (S_ISDIR(st.st_mode)) {
			arg3(a, "--ro-bind", TOP_DIRS[i], TOP_DIRS[i]);
		}
	}
	for (size_t i = 0; i < sizeof(ETC_FILES) / sizeof(ETC_FILES[0]); i++)
		arg3(a, "--ro-bind-try", ETC_FILES[i], ETC_FILES[i]);
	for (size_t i = 0; v->network && i < sizeof(NET_ETC_FILES) / sizeof(NET_ETC_FILES[0]); i++)
		arg3(a, "--ro-bind-try", NET_ETC_FILES[i], NET_ETC_FILES[i]);
	if (v->identity_files) {
		arg2(a, "--perms", "0644");
		arg3(a, "--ro-bind-data", "3", "/etc/passwd");
		arg2(a, "--perms", "0644");
		arg3(a, "--ro-bind-data", "4", "/etc/group");
	}
	for (size_t i = 0; v->ro_paths != NULL && v->ro_paths[i] != NULL; i++)
		arg3(a, "--ro-bind", v->ro_paths[i], v->ro_paths[i]);
	arg2(a, "--proc", "/proc");
	arg2(a, "--dev", "/dev");
	for (size_t i = 0; v->devices != NULL && v->devices[i] != NULL; i += 2)
		arg3(a, "--dev-bind", v->devices[i], v->devices[i + 1]);
	snprintf(num, sizeof(num), "%llu", SHM_BYTES);
	arg2(a, "--size", num);
	arg2(a, "--tmpfs", "/dev/shm");
	arg2(a, "--remount-ro", "/dev");
	snprintf(num, sizeof(num), "%" PRIu64,
	         v->tmp_bytes != 0 ? v->tmp_bytes : (uint64_t)SANDBOX_DEFAULT_TMP_BYTES);
	arg2(a, "--size", num);
	arg2(a, "--tmpfs", "/tmp");
	if (v->work_dir != NULL)
		arg3(a, "--bind", v->work_dir, v->work_dir);
	arg2(a, "--remount-ro", "/");
	arg2(a, "--chdir", v->cwd != NULL ? v->cwd : "/");
}

/* Marks every descriptor of the daemon from 3 up close-on-exec, so that
 * nothing it holds (the store's files, sockets) can be inherited by a
 * sandbox: neither uv_spawn nor bwrap closes what is not so marked.  The
 * descriptors a command is meant to get are dup2'ed into place by libuv,
 * which clears the flag on the copies only. */
static void cloexec_all(void)
{
	if (close_range(3, ~0u, CLOSE_RANGE_CLOEXEC) == 0)
		return;
	DIR *d = opendir("/proc/self/fd");
	if (d == NULL)
		return;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		int fd = atoi(de->d_name);
		if (fd > 2 && fd != dirfd(d)) {
			int fl = fcntl(fd, F_GETFD);
			if (fl >= 0 && !(fl & FD_CLOEXEC))
				fcntl(fd, F_SETFD, fl | FD_CLOEXEC);
		}
	}
	closedir(d);
}

/* ---- the host ---------------------------------------------------------- */

/* CapEff of this process. */
static uint64_t effective_caps(void)
{
	char buf[4096];
	if (sbx_read_small("/proc/self/status", buf, sizeof(buf)) <= 0)
		return 0;
	const char *p = strstr(buf, "\nCapEff:");
	return p != NULL ? strtoull(p + 8, NULL, 16) : 0;
}

/* Runs bwrap once, synchronously: 0, or the reason in why. */
static int trial(const struct sandbox_host *h, char *why, size_t why_len)
{
	struct argv_buf a = {0};
	struct view v = {.uid = h->uid_base, .ro_paths = h->ro_paths, .tmp_bytes = 1 << 20};
	add_view(&a, h, &v);
	arg2(&a, "--", "/bin/true");
	if (a.oom) {
		argv_free(&a);
		snprintf(why, why_len, "out of memory");
		return ING_ENOMEM;
	}
	int errp[2];
	if (pipe2(errp, O_CLOEXEC) != 0) {
		argv_free(&a);
		snprintf(why, why_len, "cannot create a pipe: %s", strerror(errno));
		return ING_EIO;
	}
	char *env[] = {(char *)CHAIN_ENV_PATH, NULL};
	cloexec_all();
	pid_t pid = fork();
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR);
		dup2(null, 0);
		dup2(null, 1);
		dup2(errp[1], 2);
		if (h->switch_uid && (setgroups(0, NULL) != 0 || setgid(h->uid_base) != 0 ||
		                      setuid(h->uid_base) != 0))
			_exit(126);
		execve(a.v[0], a.v, env);
		_exit(127);
	}
	int fork_err = errno;
	close(errp[1]);
	argv_free(&a);
	if (pid < 0) {
		close(errp[0]);
		snprintf(why, why_len, "cannot fork: %s", strerror(fork_err));
		return ING_EIO;
	}
	char err[TRIAL_ERR_BYTES];
	size_t got = 0;
	ssize_t n;
	while ((n = read(errp[0], err + got, sizeof(err) - 1 - got)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 || (got += (size_t)n) >= sizeof(err) - 1)
			break;
	}
	close(errp[0]);
	err[got] = '\0';
	while (got > 0 && err[got - 1] == '\n')
		err[--got] = '\0';
	int status = 0;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	snprintf(why, why_len, "a trial sandbox failed (%s %d)%s%s",
	         WIFEXITED(status) ? "exit status" : "signal",
	         WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), got ? ": " : "", err);
	return ING_EUNAVAILABLE;
}

static int check_config(const struct sandbox_config *cfg, struct ing_error *e)
{
	if (cfg == NULL || cfg->state_dir == NULL || cfg->state_dir[0] != '/' ||
	    strlen(cfg->state_dir) >= SBX_PATH_MAX - 100)
		return ing_error_set(e, ING_EINVAL, "sandbox: state_dir must be an absolute path");
	const char *p = cfg->cgroup_parent;
	if (p == NULL || p[0] == '\0' || p[0] == '/' || strlen(p) >= SBX_PATH_MAX - 100 ||
	    strstr(p, "..") != NULL ||
	    strspn(p, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUV"
	              "WXYZ0123456789._-/") != strlen(p))
		return ing_error_set(e, ING_EINVAL,
		                     "sandbox: cgroup_parent must be a relative name of "
		                     "[A-Za-z0-9._-/] without '..'");
	uint64_t base = cfg->uid_base != 0 ? cfg->uid_base : SANDBOX_DEFAULT_UID_BASE;
	uint64_t count = cfg->uid_count != 0 ? cfg->uid_count : SANDBOX_DEFAULT_UID_COUNT;
	uint64_t self = geteuid();
	if (base + count >= UINT32_MAX - 1 || (self >= base && self < base + count) ||
	    (65534 >= base && 65534 < base + count))
		return ing_error_set(e, ING_EINVAL,
		                     "sandbox: uid range %" PRIu64 "+%" PRIu64
		                     " must be above 0, below 2^32-2, and hold neither the "
		                     "daemon's uid %" PRIu64 " nor nobody (65534)",
		                     base, count, self);
	for (size_t i = 0; cfg->ro_paths != NULL && cfg->ro_paths[i] != NULL; i++) {
		struct stat st;
		const char *rp = cfg->ro_paths[i];
		if (rp[0] != '/' || strlen(rp) >= SBX_PATH_MAX || stat(rp, &st) != 0)
			return ing_error_set(e, ING_EINVAL,
			                     "sandbox: toolchain path '%s' is not an existing "
			                     "absolute path",
			                     rp);
	}
	return 0;
}

static void describe(struct sandbox_host *h)
{
	const char *cg = h->cg.version == 2 ? "cgroup2" : "cgroup1";
	char ident[64];
	if (h->switch_uid)
		snprintf(ident, sizeof(ident), "uid:%" PRIu32 "+%" PRIu32, h->uid_base,
		         h->uid_count);
	else
		snprintf(ident, sizeof(ident), "daemon-uid");
	snprintf(h->mechanisms, sizeof(h->mechanisms),
	         "bwrap identity=%s ns=user,pid,mount,ipc,uts,net memory=%s processes=%s "
	         "cpu=rlimit fsize=rlimit nofile=rlimit disk=%s",
	         ident, h->cg.memory ? cg : "rlimit-as", h->cg.pids ? cg : "rlimit-nproc",
	         h->quota ? "ext4-loop" : "none");
}

int sandbox_host_new(uv_loop_t *loop, const struct sandbox_config *cfg, struct sandbox_host **out,
                     struct ing_error *e)
{
	int rv = check_config(cfg, e);
	if (rv != 0)
		return rv;
	if (loop == NULL || out == NULL)
		return ing_error_set(e, ING_EINVAL, "sandbox: loop and out are required");
	const char *bwrap = cfg->bwrap_path != NULL ? cfg->bwrap_path : SANDBOX_BWRAP_PATH;
	if (access(bwrap, X_OK) != 0)
		return ing_error_set(e, ING_EUNAVAILABLE,
		                     "sandbox unavailable: %s is missing (install bubblewrap) or "
		                     "set sandbox: off",
		                     bwrap);
	char buf[64];
	if (sbx_read_small("/proc/sys/user/max_user_namespaces", buf, sizeof(buf)) > 0 &&
	    strtoull(buf, NULL, 10) == 0)
		return ing_error_set(e, ING_EUNAVAILABLE,
		                     "sandbox unavailable: user namespaces are disabled "
		                     "(user.max_user_namespaces = 0); enable them or set "
		                     "sandbox: off");
	if (sbx_read_small("/proc/sys/kernel/unprivileged_userns_clone", buf, sizeof(buf)) > 0 &&
	    buf[0] == '0')
		return ing_error_set(e, ING_EUNAVAILABLE,
		                     "sandbox unavailable: unprivileged user namespaces are "
		                     "disabled (kernel.unprivileged_userns_clone = 0); enable "
		                     "them or set sandbox: off");

	struct sandbox_host *h = calloc(1, sizeof(*h));
	if (h == NULL)
		return ing_error_set(e, ING_ENOMEM, "sandbox: out of memory");
	h->loop = loop;
	snprintf(h->state_dir, sizeof(h->state_dir), "%s", cfg->state_dir);
	snprintf(h->bwrap, sizeof(h->bwrap), "%s", bwrap);
	h->uid_base = cfg->uid_base != 0 ? cfg->uid_base : SANDBOX_DEFAULT_UID_BASE;
	h->uid_count = cfg->uid_count != 0 ? cfg->uid_count : SANDBOX_DEFAULT_UID_COUNT;
	h->ro_paths = copy_strv(cfg->ro_paths);
	h->slot_used = calloc(h->uid_count, 1);
	if (h->ro_paths == NULL || h->slot_used == NULL) {
		rv = ing_error_set(e, ING_ENOMEM, "sandbox: out of memory");
		goto fail;
	}
	h->switch_uid = (effective_caps() & CAPS_TO_SWITCH_UID) == CAPS_TO_SWITCH_UID;
	if (!h->switch_uid && !cfg->allow_daemon_uid) {
		rv = ing_error_set(e, ING_EUNAVAILABLE,
		                   "sandbox unavailable: the daemon cannot switch to the sandbox "
		                   "uids (needs root or CAP_SETUID, CAP_SETGID, CAP_CHOWN); run "
		                   "as root, grant them, or allow stages under the daemon's uid");
		goto fail;
	}
	rv = ing_mkdirs(h->state_dir, 0700, e);
	if (rv != 0)
		goto fail;
	char why[TRIAL_ERR_BYTES + 64];
	rv = trial(h, why, sizeof(why));
	if (rv != 0) {
		rv = ing_error_set(e, rv, "sandbox unavailable: %s; fix it or set sandbox: off",
		                   why);
		goto fail;
	}
	if (!cfg->no_cgroups && h->switch_uid) {
		sbx_cg_detect(cfg->cgroup_root != NULL ? cfg->cgroup_root : SANDBOX_CGROUP_ROOT,
		              cfg->cgroup_parent, &h->cg, why, sizeof(why));
		if (why[0] != '\0')
			ING_LOG_WARN("sandbox cgroups limited reason=\"%s\"", why);
	}
	if (!cfg->no_quota) {
		h->quota = sbx_quota_usable(why, sizeof(why));
		if (!h->quota)
			ING_LOG_WARN("sandbox disk quota unavailable reason=\"%s\"", why);
	}
	describe(h);
	h->next_host = all_hosts;
	all_hosts = h;
	ING_LOG_INFO("sandbox ready mechanisms=\"%s\"", h->mechanisms);
	*out = h;
	return 0;
fail:
	free_strv(h->ro_paths);
	free(h->slot_used);
	free(h);
	return rv;
}

const char *sandbox_host_mechanisms(const struct sandbox_host *h)
{
	return h->mechanisms;
}

unsigned sandbox_host_open_count(const struct sandbox_host *h)
{
	return h->nopen;
}

int sandbox_host_free(struct sandbox_host *h)
{
	if (h == NULL)
		return 0;
	if (h->nopen != 0)
		return ING_ECONFLICT;
	for (struct sandbox_host **p = &all_hosts; *p != NULL; p = &(*p)->next_host)
		if (*p == h) {
			*p = h->next_host;
			break;
		}
	sbx_cg_remove_parent(&h->cg);
	free_strv(h->ro_paths);
	free(h->slot_used);
	free(h);
	return 0;
}

/* ---- records ----------------------------------------------------------- */

/* Field 22 of /proc/<pid>/stat: when the process started (clock ticks). */
static uint64_t start_time(int pid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	if (sbx_read_small(path, buf, sizeof(buf)) <= 0)
		return 0;
	char *p = strrchr(buf, ')'); /* the command name may hold spaces */
	for (int field = 2; p != NULL && field < 22; field++)
		p = strchr(p + 1, ' ');
	return p != NULL ? strtoull(p + 1, NULL, 10) : 0;
}

static void write_record(const struct sandbox *sb)
{
	char text[4 * SBX_PATH_MAX];
	int k = snprintf(text, sizeof(text),
	                 "name=%s\ntenant=%s\nuid=%" PRIu32 "\nwork_dir=%s\nimage=%s\npid=%d\n"
	                 "start=%" PRIu64 "\n",
	                 sb->name, sb->tenant, sb->uid, sb->work_dir, sb->image, sb->pid,
	                 sb->pid > 0 ? start_time(sb->pid) : 0);
	struct ing_error e;
	if (ing_write_file(sb->record, text, (size_t)k, 0600, ING_WRITE_ATOMIC, &e) != 0)
		ING_LOG_WARN("sandbox record not written name=%s err=\"%s\"", sb->name, e.msg);
}

/* ---- open -------------------------------------------------------------- */

static bool dir_empty(const char *path)
{
	DIR *d = opendir(path);
	if (d == NULL)
		return false;
	struct dirent *de;
	bool empty = true;
	while (empty && (de = readdir(d)) != NULL)
		empty = strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0;
	closedir(d);
	return empty;
}

static void list_remove(struct sandbox *sb)
{
	for (struct sandbox **p = &sb->h->list; *p != NULL; p = &(*p)->next)
		if (*p == sb) {
			*p = sb->next;
			break;
		}
	sb->h->nopen--;
}

static void sandbox_free(struct sandbox *sb)
{
	free_strv(sb->devices);
	free(sb);
}

/* Undoes what open did, in reverse; on the threadpool.  0 or ING_EIO. */
static int teardown(struct sandbox *sb, struct ing_error *e)
{
	struct sandbox_host *h = sb->h;
	struct ing_error e2;
	int rv = 0;
	if (h->cg.version != 0 && sbx_cg_destroy(&h->cg, sb->name, CLOSE_WAIT_MS, &e2) != 0)
		rv = ing_error_set(e, ING_EIO, "%s", e2.msg);
	if (sb->image[0] != '\0' && sbx_quota_remove(sb->image, sb->work_dir, &e2) != 0 && rv == 0)
		rv = ing_error_set(e, ING_EIO, "%s", e2.msg);
	if (rv == 0)
		unlink(sb->record);
	return rv;
}

/* Every directory above `dir` lets others pass (o+x): bwrap, running as
 * the sandbox's uid, must reach the work directory to bind it.  0, or
 * ING_EDENIED naming the first one that does not. */
int sandbox_dir_reachable(const char *dir, struct ing_error *e)
{
	char path[SBX_PATH_MAX];
	snprintf(path, sizeof(path), "%s", dir);
	for (char *slash = strrchr(path, '/'); slash != NULL; slash = strrchr(path, '/')) {
		*slash = '\0';
		const char *p = path[0] != '\0' ? path : "/";
		struct stat st;
		if (stat(p, &st) != 0 || !(st.st_mode & S_IXOTH))
			return ing_error_set(e, ING_EDENIED,
			                     "directory %s above the work directory does not let "
			                     "other users pass (chmod o+x): the sandbox's uid must "
			                     "reach %s",
			                     p, dir);
		if (p[1] == '\0')
			break;
	}
	return 0;
}

static void open_work(uv_work_t *w)
{
	struct sandbox *sb = w->data;
	struct sandbox_host *h = sb->h;
	struct ing_error *e = &sb->work_err;
	sb->work_status = ing_mkdirs(sb->work_dir, 0700, e);
	if (sb->work_status == 0 && h->switch_uid)
		sb->work_status = sandbox_dir_reachable(sb->work_dir, e);
	if (sb->work_status != 0)
		goto fail;
	if (!dir_empty(sb->work_dir)) {
		sb->work_status =
		    ing_error_set(e, ING_EEXIST, "sandbox %s: work directory %s is not empty",
		                  sb->name, sb->work_dir);
		goto fail;
	}
	if (sb->image[0] != '\0') {
		sb->work_status = sbx_quota_create(sb->image, sb->disk_bytes, sb->work_dir,
		                                   h->switch_uid ? sb->uid : geteuid(), e);
		if (sb->work_status != 0) {
			sb->image[0] = '\0';
			goto fail;
		}
	} else if (h->switch_uid && chown(sb->work_dir, sb->uid, sb->uid) != 0) {
		sb->work_status = ing_error_set(e, ING_EIO, "sandbox %s: cannot chown %s: %s",
		                                sb->name, sb->work_dir, strerror(errno));
		goto fail;
	}
	if (h->cg.version != 0) {
		sb->work_status = sbx_cg_create(&h->cg, sb->name, e);
		if (sb->work_status != 0)
			goto fail;
	}
	return;
fail:
	teardown(sb, NULL);
}

static void open_done(uv_work_t *w, int status)
{
	struct sandbox *sb = w->data;
	(void)status;
	if (sb->work_status != 0) {
		ING_LOG_WARN("sandbox open failed name=%s err=\"%s\"", sb->name, sb->work_err.msg);
		sb->h->slot_used[sb->slot] = 0;
		list_remove(sb);
		sb->open_cb(NULL, sb->work_status, &sb->work_err, sb->data);
		sandbox_free(sb);
		return;
	}
	sb->state = SB_OPEN;
	ING_LOG_INFO("sandbox opened name=%s tenant=%s uid=%" PRIu32 " work_dir=%s quota=%" PRIu64
	             " network=%d",
	             sb->name, sb->tenant, sb->uid, sb->work_dir,
	             sb->image[0] != '\0' ? sb->disk_bytes : 0, sb->network);
	sb->open_cb(sb, 0, NULL, sb->data);
}

int sandbox_open(struct sandbox_host *h, const struct sandbox_request *req, sandbox_open_cb cb,
                 void *data, struct ing_error *e)
{
	if (h == NULL || req == NULL || cb == NULL)
		return ing_error_set(e, ING_EINVAL,
		                     "sandbox: host, request and callback are required");
	if (req->name == NULL || !sbx_name_ok(req->name, SANDBOX_NAME_MAX))
		return ing_error_set(e, ING_EINVAL,
		                     "sandbox: name must be 1-%d bytes of [A-Za-z0-9._-]",
		                     SANDBOX_NAME_MAX);
	if (req->work_dir == NULL || req->work_dir[0] != '/' ||
	    strlen(req->work_dir) >= SBX_PATH_MAX || strstr(req->work_dir, "/..") != NULL ||
	    strcmp(req->work_dir, "/") == 0)
		return ing_error_set(e, ING_EINVAL,
		                     "sandbox %s: work_dir must be an absolute path without '..'",
		                     req->name);
	if (path_within(h->state_dir, req->work_dir) || path_within(req->work_dir, h->state_dir))
		return ing_error_set(e, ING_EINVAL,
		                     "sandbox %s: work_dir and the state directory must not "
		                     "contain each other",
		                     req->name);
	if (req->disk_bytes != 0 && req->disk_bytes < SANDBOX_MIN_DISK_BYTES)
		return ing_error_set(e, ING_EINVAL,
		                     "sandbox %s: disk quota %" PRIu64 " is below the minimum of "
		                     "%llu bytes",
		                     req->name, req->disk_bytes, SANDBOX_MIN_DISK_BYTES);
	for (size_t i = 0; req->devices != NULL && i < req->ndevices; i++) {
		const struct sandbox_device *d = &req->devices[i];
		struct stat st;
		if (d->path == NULL || d->path[0] != '/' || stat(d->path, &st) != 0 ||
		    !S_ISCHR(st.st_mode))
			return ing_error_set(e, ING_EINVAL,
			                     "sandbox %s: device '%s' is not a character device",
			                     req->name, d->path != NULL ? d->path : "(null)");
		if (d->at != NULL && (strncmp(d->at, "/dev/", 5) != 0 || d->at[5] == '\0' ||
		                      strstr(d->at, "..") != NULL || strlen(d->at) >= SBX_PATH_MAX))
			return ing_error_set(e, ING_EINVAL,
			                     "sandbox %s: device '%s' must appear below /dev/, "
			                     "not at '%s'",
			                     req->name, d->path, d->at);
	}
	for (struct sandbox *o = h->list; o != NULL; o = o->next)
		if (strcmp(o->name, req->name) == 0)
			return ing_error_set(e, ING_EEXIST, "sandbox %s is already open",
			                     req->name);
	uint32_t slot = 0;
	while (slot < h->uid_count && h->slot_used[slot] != 0)
		slot++;
	if (slot == h->uid_count)
		return ing_error_set(e, ING_EUNAVAILABLE,
		                     "sandbox %s: all %" PRIu32 " sandbox identities are in use",
		                     req->name, h->uid_count);

	struct sandbox *sb = calloc(1, sizeof(*sb));
	if (sb == NULL)
		return ing_error_set(e, ING_ENOMEM, "sandbox: out of memory");
	sb->devices = copy_devices(req->devices, req->devices != NULL ? req->ndevices : 0);
	if (sb->devices == NULL) {
		free(sb);
		return ing_error_set(e, ING_ENOMEM, "sandbox: out of memory");
	}
	sb->h = h;
	sb->state = SB_OPENING;
	snprintf(sb->name, sizeof(sb->name), "%s", req->name);
	snprintf(sb->tenant, sizeof(sb->tenant), "%s", req->tenant != NULL ? req->tenant : "");
	snprintf(sb->work_dir, sizeof(sb->work_dir), "%s", req->work_dir);
	size_t wl = strlen(sb->work_dir);
	while (wl > 1 && sb->work_dir[wl - 1] == '/')
		sb->work_dir[--wl] = '\0';
	snprintf(sb->record, sizeof(sb->record), "%s/%s.rec", h->state_dir, sb->name);
	if (h->quota && req->disk_bytes != 0)
		snprintf(sb->image, sizeof(sb->image), "%s/%s.img", h->state_dir, sb->name);
	sb->slot = slot;
	sb->uid = h->uid_base + slot;
	sb->disk_bytes = req->disk_bytes;
	sb->tmp_bytes = req->tmp_bytes != 0 ? req->tmp_bytes : SANDBOX_DEFAULT_TMP_BYTES;
	sb->network = req->network;
	sb->open_cb = cb;
	sb->data = data;
	sb->work.data = sb;
	sb->attach.data = sb;
	sb->gate_fd = -1;
	/* The record first: a crash from here on leaves something to find. */
	write_record(sb);
	int rv = uv_queue_work(h->loop, &sb->work, open_work, open_done);
	if (rv != 0) {
		unlink(sb->record);
		sandbox_free(sb);
		return ing_error_set(e, ing_err_from_uv(rv), "sandbox: cannot queue work: %s",
		                     uv_strerror(rv));
	}
	h->slot_used[slot] = 1;
	sb->next = h->list;
	h->list = sb;
	h->nopen++;
	return 0;
}

uint32_t sandbox_uid(const struct sandbox *sb)
{
	return sb->h->switch_uid ? sb->uid : (uint32_t)geteuid();
}

const char *sandbox_work_dir(const struct sandbox *sb)
{
	return sb->work_dir;
}

/* ---- hand over --------------------------------------------------------- */

static int chown_tree(int dirfd, uint32_t uid, int depth)
{
	if (depth > 64)
		return -ELOOP;
	DIR *d = fdopendir(dirfd);
	if (d == NULL) {
		int err = errno;
		close(dirfd);
		return -err;
	}
	int rv = 0;
	struct dirent *de;
	while (rv == 0 && (de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (fchownat(dirfd, de->d_name, uid, uid, AT_SYMLINK_NOFOLLOW) != 0) {
			rv = -errno;
			break;
		}
		struct stat st;
		if (fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISDIR(st.st_mode)) {
			int sub = openat(dirfd, de->d_name,
			                 O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			rv = sub < 0 ? -errno : chown_tree(sub, uid, depth + 1);
		}
	}
	closedir(d);
	return rv;
}

int sandbox_hand_over(const struct sandbox *sb, const char *path, struct ing_error *e)
{
	if (path == NULL || !path_within(path, sb->work_dir))
		return ing_error_set(e, ING_EINVAL, "sandbox %s: '%s' is not in the work directory",
		                     sb->name, path ? path : "(null)");
	if (!sb->h->switch_uid)
		return 0;
	if (lchown(path, sb->uid, sb->uid) != 0)
		return ing_error_set(e, ING_EIO, "sandbox %s: cannot chown %s: %s", sb->name, path,
		                     strerror(errno));
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return 0; /* a file, or a symlink: done */
	int rv = chown_tree(fd, sb->uid, 0);
	if (rv != 0)
		return ing_error_set(e, ING_EIO, "sandbox %s: cannot chown below %s: %s", sb->name,
		                     path, strerror(-rv));
	return 0;
}

/* ---- spawn ------------------------------------------------------------- */

static struct sandbox *find_by_proc(uv_process_t *p)
{
	for (struct sandbox_host *h = all_hosts; h != NULL; h = h->next_host)
		for (struct sandbox *sb = h->list; sb != NULL; sb = sb->next)
			if (sb->running && sb->proc == p)
				return sb;
	return NULL;
}

static void close_start(struct sandbox *sb);

/* libuv's exit callback for every command: keeps the sandbox's books, then
 * the caller's callback. */
static void on_command_exit(uv_process_t *p, int64_t exit_status, int term_signal)
{
	struct sandbox *sb = find_by_proc(p);
	if (sb == NULL)
		return;
	sb->running = false;
	sb->proc = NULL;
	ING_LOG_DEBUG("sandbox command exited name=%s pid=%d status=%" PRId64 " signal=%d",
	              sb->name, sb->pid, exit_status, term_signal);
	if (sb->user_exit != NULL)
		sb->user_exit(p, exit_status, term_signal);
	if (sb->close_requested && !sb->close_queued && !sb->attaching)
		close_start(sb);
}

/* The gate, off the loop thread: a cgroup v1 migration waits for an RCU
 * grace period (~1.5 ms each), while the gate shell is still starting. */
static void attach_work(uv_work_t *w)
{
	struct sandbox *sb = w->data;
	struct ing_error e;
	sb->attach_status = sbx_cg_attach(&sb->h->cg, sb->name, sb->pid, &e);
	if (sb->attach_status != 0)
		snprintf(sb->attach_msg, sizeof(sb->attach_msg), "%s", e.msg);
}

/* Opens the gate ("go") when the process is in the cgroup, else closes it
 * (the shell then exits 125 and sandbox_explain says why). */
static void attach_done(uv_work_t *w, int status)
{
	struct sandbox *sb = w->data;
	(void)status;
	if (sb->attach_status != 0) {
		snprintf(sb->setup_why, sizeof(sb->setup_why),
		         "the sandbox could not be set up: %s", sb->attach_msg);
		ING_LOG_WARN("sandbox gate closed name=%s err=\"%s\"", sb->name, sb->attach_msg);
	} else if (write(sb->gate_fd, "go\n", 3) != 3) {
		snprintf(sb->setup_why, sizeof(sb->setup_why),
		         "the sandbox could not be set up: gate: %s", strerror(errno));
	}
	close(sb->gate_fd);
	sb->gate_fd = -1;
	sb->attaching = false;
	if (sb->close_requested && !sb->running && !sb->close_queued)
		close_start(sb);
}

/* prlimit options for what the cgroup does not cover; false if none. */
static bool add_rlimits(struct argv_buf *a, const struct sandbox *sb,
                        const struct sandbox_limits *l)
{
	const struct sbx_cgroups *cg = &sb->h->cg;
	char opt[64];
	size_t before = a->n;
	arg(a, SANDBOX_PRLIMIT_PATH);
	if (l->cpu_seconds != 0) {
		snprintf(opt, sizeof(opt), "--cpu=%" PRIu64 ":%" PRIu64, l->cpu_seconds,
		         l->cpu_seconds + 1);
		arg(a, opt);
	}
	if (l->memory_bytes != 0 && !cg->memory) {
		snprintf(opt, sizeof(opt), "--as=%" PRIu64, l->memory_bytes);
		arg(a, opt);
	}
	if (l->processes != 0 && !cg->pids) {
		snprintf(opt, sizeof(opt), "--nproc=%" PRIu64, l->processes);
		arg(a, opt);
	}
	if (l->file_size_bytes != 0) {
		snprintf(opt, sizeof(opt), "--fsize=%" PRIu64, l->file_size_bytes);
		arg(a, opt);
	}
	if (l->open_files != 0) {
		snprintf(opt, sizeof(opt), "--nofile=%" PRIu64, l->open_files);
		arg(a, opt);
	}
	if (a->n == before + 1) { /* nothing to set: drop "prlimit" again */
		free(a->v[--a->n]);
		a->v[a->n] = NULL;
		return false;
	}
	arg(a, "--");
	return true;
}

int sandbox_spawn(struct sandbox *sb, uv_process_t *proc, struct sandbox_command *cmd,
                  struct ing_error *e)
{
	if (cmd != NULL)
		cmd->handle_initialised = false;
	struct sandbox_host *h = sb->h;
	if (proc == NULL || cmd == NULL || cmd->argv == NULL || cmd->argv[0] == NULL ||
	    cmd->argv[0][0] == '\0' || cmd->stdio_count < 0 || cmd->stdio_count > 3)
		return ing_error_set(e, ING_EINVAL,
		                     "sandbox %s: a command needs argv[0] and at most 3 stdio",
		                     sb->name);
	if (cmd->cwd != NULL && !path_within(cmd->cwd, sb->work_dir))
		return ing_error_set(e, ING_EINVAL,
		                     "sandbox %s: cwd '%s' is not in the work directory", sb->name,
		                     cmd->cwd);
	if (sb->state != SB_OPEN || sb->close_requested)
		return ing_error_set(e, ING_ECONFLICT, "sandbox %s is %s", sb->name,
		                     sb->state == SB_OPENING ? "still opening" : "closing");
	if (sb->running || sb->attaching)
		return ing_error_set(e, ING_ECONFLICT, "sandbox %s already runs a command",
		                     sb->name);

	bool gate = h->cg.version != 0;
	int rv = 0;
	if (gate) {
		rv = sbx_cg_set_limits(&h->cg, sb->name, &cmd->limits, e);
		if (rv != 0)
			return rv;
		sbx_cg_events(&h->cg, sb->name, &sb->ev0);
	}

	struct argv_buf a = {0};
	if (gate) {
		arg3(&a, SANDBOX_SH_PATH, "-c", GATE_SCRIPT);
		arg(&a, "sandbox-gate");
	}
	add_rlimits(&a, sb, &cmd->limits);
	struct view v = {
	    .uid = sb->uid,
	    .network = sb->network,
	    .identity_files = true,
	    .work_dir = sb->work_dir,
	    .cwd = cmd->cwd != NULL ? cmd->cwd : sb->work_dir,
	    .tmp_bytes = sb->tmp_bytes,
	    .ro_paths = h->ro_paths,
	    .devices = sb->devices,
	};
	add_view(&a, h, &v);
	arg(&a, "--clearenv");
	for (size_t i = 0; cmd->env != NULL && cmd->env[i] != NULL; i++) {
		const char *eq = strchr(cmd->env[i], '=');
		if (eq == NULL || eq == cmd->env[i])
			continue;
		char key[256];
		size_t kl = (size_t)(eq - cmd->env[i]);
		if (kl >= sizeof(key))
			continue;
		memcpy(key, cmd->env[i], kl);
		key[kl] = '\0';
		arg3(&a, "--setenv", key, eq + 1);
	}
	arg(&a, "--");
	for (size_t i = 0; cmd->argv[i] != NULL; i++)
		arg(&a, cmd->argv[i]);
	if (a.oom) {
		argv_free(&a);
		return ing_error_set(e, ING_ENOMEM, "sandbox: out of memory");
	}

	cloexec_all();
	/* fds 3 and 4: passwd and group, read by bwrap; 5: the gate. */
	char text[2][256];
	int tl[2];
	tl[0] = snprintf(text[0], sizeof(text[0]),
	                 "ingot:x:%" PRIu32 ":%" PRIu32 ":ingot sandbox:/tmp:/bin/sh\n"
	                 "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
	                 sandbox_uid(sb), sandbox_uid(sb));
	tl[1] = snprintf(text[1], sizeof(text[1]), "ingot:x:%" PRIu32 ":\nnogroup:x:65534:\n",
	                 sandbox_uid(sb));
	int fds[3][2] = {{-1, -1}, {-1, -1}, {-1, -1}};
	for (int i = 0; i < (gate ? 3 : 2) && rv == 0; i++) {
		if (pipe2(fds[i], O_CLOEXEC) != 0)
			rv = ing_error_set(e, ING_EUNAVAILABLE,
			                   "sandbox %s: cannot create a pipe: %s", sb->name,
			                   strerror(errno));
		else if (i < 2 && write(fds[i][1], text[i], (size_t)tl[i]) != tl[i])
			rv = ing_error_set(e, ING_EIO, "sandbox %s: cannot write a pipe: %s",
			                   sb->name, strerror(errno));
		if (i < 2 && fds[i][1] >= 0) {
			close(fds[i][1]);
			fds[i][1] = -1;
		}
	}
	if (rv != 0) {
		for (int i = 0; i < 3; i++)
			for (int j = 0; j < 2; j++)
				if (fds[i][j] >= 0)
					close(fds[i][j]);
		argv_free(&a);
		return rv;
	}
	uv_stdio_container_t stdio[6];
	for (int i = 0; i < 3; i++) {
		if (i < cmd->stdio_count)
			stdio[i] = cmd->stdio[i];
		else
			stdio[i].flags = UV_IGNORE;
	}
	for (int i = 0; i < 3; i++) {
		stdio[3 + i].flags = UV_INHERIT_FD;
		stdio[3 + i].data.fd = fds[i][0];
	}

	char *env[] = {(char *)CHAIN_ENV_PATH, NULL};
	uv_process_options_t o;
	memset(&o, 0, sizeof(o));
	o.exit_cb = on_command_exit;
	o.file = a.v[0];
	o.args = a.v;
	o.env = env;
	o.cwd = "/";
	o.flags = UV_PROCESS_DETACHED;
	if (h->switch_uid) {
		o.flags |= UV_PROCESS_SETUID | UV_PROCESS_SETGID;
		o.uid = sb->uid;
		o.gid = sb->uid;
	}
	o.stdio_count = gate ? 6 : 5;
	o.stdio = stdio;
	rv = uv_spawn(h->loop, proc, &o);
	cmd->handle_initialised = true;
	argv_free(&a);
	for (int i = 0; i < 3; i++)
		if (fds[i][0] >= 0)
			close(fds[i][0]);
	int gatefd = fds[2][1];
	if (rv != 0) {
		if (gatefd >= 0)
			close(gatefd);
		/* As with uv_spawn itself, the handle is initialised: the
		 * caller closes it. */
		return ing_error_set(e, ing_err_from_uv(rv), "sandbox %s: cannot start: %s",
		                     sb->name, uv_strerror(rv));
	}
	sb->proc = proc;
	sb->user_exit = cmd->exit_cb;
	sb->running = true;
	sb->pid = proc->pid;
	sb->limits = cmd->limits;
	sb->setup_why[0] = '\0';
	if (gate) {
		sb->gate_fd = gatefd;
		sb->attaching = true;
		if (uv_queue_work(h->loop, &sb->attach, attach_work, attach_done) != 0) {
			attach_work(&sb->attach);
			attach_done(&sb->attach, 0);
		}
	}
	/* Without a cgroup, the pid is how a restart finds the tree. */
	if (!gate)
		write_record(sb);
	ING_LOG_DEBUG("sandbox command started name=%s pid=%d argv0=%s", sb->name, sb->pid,
	              cmd->argv[0]);
	return 0;
}

bool sandbox_running(const struct sandbox *sb)
{
	return sb->running;
}

void sandbox_kill(struct sandbox *sb, int sig)
{
	if (sb->h->cg.version != 0)
		sbx_cg_kill(&sb->h->cg, sb->name, sig);
	if (sb->running && sb->pid > 0 && kill(sb->pid, sig) != 0 && errno != ESRCH)
		ING_LOG_WARN("sandbox cannot signal name=%s pid=%d sig=%d err=\"%s\"", sb->name,
		             sb->pid, sig, strerror(errno));
}

enum sandbox_limit_hit sandbox_explain(struct sandbox *sb, int64_t exit_status, int term_signal,
                                       char *why, size_t why_len)
{
	char amount[48];
	const struct sandbox_limits *l = &sb->limits;
	if (sb->setup_why[0] != '\0') {
		snprintf(why, why_len, "%s", sb->setup_why);
		return SANDBOX_HIT_SETUP;
	}
	if (sb->image[0] != '\0' && sbx_quota_full(sb->work_dir)) {
		sandbox_format_bytes(sb->disk_bytes, amount, sizeof(amount));
		snprintf(why, why_len, "work directory over its %s quota", amount);
		return SANDBOX_HIT_DISK;
	}
	struct sbx_cg_events ev;
	sbx_cg_events(&sb->h->cg, sb->name, &ev);
	if (ev.oom_kills > sb->ev0.oom_kills) {
		sandbox_format_bytes(l->memory_bytes, amount, sizeof(amount));
		snprintf(why, why_len, "memory limit of %s reached: the kernel killed a process",
		         amount);
		return SANDBOX_HIT_MEMORY;
	}
	if (ev.pids_refused > sb->ev0.pids_refused) {
		snprintf(why, why_len, "process limit of %" PRIu64 " reached: a fork was refused",
		         l->processes);
		return SANDBOX_HIT_PROCESSES;
	}
	int sig = term_signal != 0 ? term_signal : (exit_status > 128 ? (int)exit_status - 128 : 0);
	if (sig == SIGXCPU) {
		snprintf(why, why_len, "CPU time limit of %" PRIu64 " s reached", l->cpu_seconds);
		return SANDBOX_HIT_CPU;
	}
	if (sig == SIGXFSZ) {
		sandbox_format_bytes(l->file_size_bytes, amount, sizeof(amount));
		snprintf(why, why_len, "file size limit of %s reached", amount);
		return SANDBOX_HIT_FILE_SIZE;
	}
	return SANDBOX_HIT_NONE;
}

/* ---- files below the work directory ------------------------------------ */

/* Walks `rel` from the work directory one component at a time, never
 * following a symlink and never leaving its file system.  Components
 * before the last are directories (created 0700 and given to the
 * sandbox's identity when `create` and missing).  *dirfd: the directory
 * holding the last component, *leaf: the last component (points into
 * buf).  0 or ING_EDENIED / ING_ENOTFOUND / ING_EIO with e. */
static int walk_below(const struct sandbox *sb, const char *rel, bool create, char *buf, size_t cap,
                      int *dirfd, const char **leaf, struct ing_error *e)
{
	if (rel == NULL || rel[0] == '\0' || rel[0] == '/' || strlen(rel) >= cap)
		return ing_error_set(e, ING_EDENIED, "path '%s': not a relative path",
		                     rel ? rel : "(null)");
	snprintf(buf, cap, "%s", rel);
	int dfd = open(sb->work_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd < 0)
		return ing_error_set(e, ING_EIO, "cannot open %s: %s", sb->work_dir,
		                     strerror(errno));
	struct stat root;
	fstat(dfd, &root);
	char *save = NULL;
	char *c = strtok_r(buf, "/", &save);
	while (c != NULL) {
		char *next = strtok_r(NULL, "/", &save);
		if (strcmp(c, ".") == 0 || strcmp(c, "..") == 0) {
			close(dfd);
			return ing_error_set(e, ING_EDENIED, "path '%s': '.' and '..' are refused",
			                     rel);
		}
		if (next == NULL) {
			*dirfd = dfd;
			*leaf = c;
			return 0;
		}
		if (create && mkdirat(dfd, c, 0700) == 0 && sb->h->switch_uid)
			fchownat(dfd, c, sb->uid, sb->uid, AT_SYMLINK_NOFOLLOW);
		int nfd = openat(dfd, c, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		int err = errno;
		struct stat st;
		if (nfd >= 0 && (fstat(nfd, &st) != 0 || st.st_dev != root.st_dev)) {
			close(nfd);
			nfd = -1;
			err = EXDEV;
		}
		if (nfd < 0) {
			close(dfd);
			if (err == ENOENT)
				return ing_error_set(e, ING_ENOTFOUND, "path '%s': '%s' is missing",
				                     rel, c);
			return ing_error_set(
			    e, ING_EDENIED,
			    "path '%s': '%s' is a symbolic link, not a directory or "
			    "on another file system; refused",
			    rel, c);
		}
		close(dfd);
		dfd = nfd;
		c = next;
	}
	close(dfd);
	return ing_error_set(e, ING_EDENIED, "path '%s': empty", rel);
}

int sandbox_create(const struct sandbox *sb, const char *rel, bool want_dir, int *fd,
                   struct ing_error *e)
{
	char buf[SBX_PATH_MAX];
	const char *leaf = NULL;
	int dfd = -1;
	*fd = -1;
	int rv = walk_below(sb, rel, true, buf, sizeof(buf), &dfd, &leaf, e);
	if (rv != 0)
		return rv;
	if (want_dir) {
		if (mkdirat(dfd, leaf, 0700) == 0 && sb->h->switch_uid)
			fchownat(dfd, leaf, sb->uid, sb->uid, AT_SYMLINK_NOFOLLOW);
		int d = openat(dfd, leaf, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		close(dfd);
		if (d < 0)
			return ing_error_set(e, ING_EDENIED,
			                     "path '%s' is not a directory (or a symlink); refused",
			                     rel);
		close(d);
		return 0;
	}
	int f = openat(
	    dfd, leaf,
	    O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY, 0600);
	int err = errno;
	close(dfd);
	struct stat st;
	if (f >= 0 && (fstat(f, &st) != 0 || !S_ISREG(st.st_mode))) {
		close(f);
		return ing_error_set(e, ING_EDENIED, "path '%s' is not a regular file; refused",
		                     rel);
	}
	if (f < 0)
		return ing_error_set(e, err == ELOOP ? ING_EDENIED : ING_EIO,
		                     "cannot create '%s' in %s: %s", rel, sb->work_dir,
		                     err == ELOOP ? "it is a symbolic link" : strerror(err));
	if (sb->h->switch_uid)
		fchown(f, sb->uid, sb->uid);
	/* Blocking again: the daemon's child writes to it like to any file. */
	fcntl(f, F_SETFL, fcntl(f, F_GETFL) & ~O_NONBLOCK);
	*fd = f;
	return 0;
}

void sandbox_abandon_command(struct sandbox *sb)
{
	if (!sb->running)
		return;
	sandbox_kill(sb, SIGKILL);
	sb->running = false;
	sb->proc = NULL;
	if (sb->close_requested && !sb->close_queued && !sb->attaching)
		close_start(sb);
}

bool sandbox_host_switches_uid(const struct sandbox_host *h)
{
	return h->switch_uid;
}

/* ---- outputs ----------------------------------------------------------- */

int sandbox_read_output(const struct sandbox *sb, const char *rel, size_t max_bytes, char **buf,
                        size_t *len, struct ing_error *e)
{
	if (rel == NULL || rel[0] == '\0' || rel[0] == '/' || strlen(rel) >= SBX_PATH_MAX)
		return ing_error_set(e, ING_EDENIED, "output '%s': not a relative path",
		                     rel ? rel : "(null)");
	char path[SBX_PATH_MAX];
	snprintf(path, sizeof(path), "%s", rel);
	int dirfd = open(sb->work_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dirfd < 0)
		return ing_error_set(e, ING_EIO, "output '%s': cannot open %s: %s", rel,
		                     sb->work_dir, strerror(errno));
	struct stat root;
	fstat(dirfd, &root);
	int rv = 0, fd = -1;
	char *save = NULL;
	for (char *c = strtok_r(path, "/", &save); c != NULL;) {
		char *next = strtok_r(NULL, "/", &save);
		if (strcmp(c, ".") == 0 || strcmp(c, "..") == 0) {
			rv = ing_error_set(e, ING_EDENIED, "output '%s': '.' and '..' are refused",
			                   rel);
			break;
		}
		int nfd = openat(dirfd, c,
		                 (next != NULL ? O_RDONLY | O_DIRECTORY : O_RDONLY | O_NONBLOCK) |
		                     O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
		if (nfd < 0) {
			int err = errno;
			struct stat st;
			if (err == ELOOP || (fstatat(dirfd, c, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
			                     S_ISLNK(st.st_mode)))
				rv = ing_error_set(e, ING_EDENIED,
				                   "output '%s': '%s' is a symbolic link; refused",
				                   rel, c);
			else if (err == ENOENT)
				rv = ing_error_set(e, ING_ENOTFOUND, "output '%s' was not produced",
				                   rel);
			else
				rv = ing_error_set(e, err == ENOTDIR ? ING_EDENIED : ING_EIO,
				                   "output '%s': %s: %s", rel, c, strerror(err));
			break;
		}
		struct stat st;
		fstat(nfd, &st);
		if (st.st_dev != root.st_dev) {
			close(nfd);
			rv = ing_error_set(e, ING_EDENIED,
			                   "output '%s': '%s' is on another file system; refused",
			                   rel, c);
			break;
		}
		close(dirfd);
		dirfd = -1;
		if (next == NULL) {
			fd = nfd;
			break;
		}
		dirfd = nfd;
		c = next;
	}
	if (dirfd >= 0)
		close(dirfd);
	if (rv != 0)
		return rv;
	if (fd < 0)
		return ing_error_set(e, ING_EDENIED, "output '%s': not a file", rel);
	struct stat st;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return ing_error_set(e, ING_EDENIED, "output '%s' is not a regular file; refused",
		                     rel);
	}
	if ((uint64_t)st.st_size > max_bytes) {
		close(fd);
		return ing_error_set(e, ING_ETOOBIG,
		                     "output '%s' is %jd bytes, larger than %zu bytes", rel,
		                     (intmax_t)st.st_size, max_bytes);
	}
	char *data = malloc((size_t)st.st_size + 1);
	if (data == NULL) {
		close(fd);
		return ing_error_set(e, ING_ENOMEM, "output '%s': out of memory", rel);
	}
	size_t got = 0;
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, data + got, (size_t)st.st_size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	data[got] = '\0';
	*buf = data;
	*len = got;
	return 0;
}

/* ---- close ------------------------------------------------------------- */

static void close_work(uv_work_t *w)
{
	struct sandbox *sb = w->data;
	sb->work_status = teardown(sb, &sb->work_err);
}

static void close_done(uv_work_t *w, int status)
{
	struct sandbox *sb = w->data;
	struct sandbox_host *h = sb->h;
	(void)status;
	if (sb->work_status != 0) {
		h->slot_used[sb->slot] = 2;
		ING_LOG_ERROR("sandbox not cleaned name=%s uid=%" PRIu32 " err=\"%s\"", sb->name,
		              sb->uid, sb->work_err.msg);
	} else {
		h->slot_used[sb->slot] = 0;
		ING_LOG_INFO("sandbox closed name=%s", sb->name);
	}
	list_remove(sb);
	sandbox_close_cb cb = sb->close_cb;
	void *data = sb->data;
	int rv = sb->work_status;
	struct ing_error e = sb->work_err;
	sandbox_free(sb);
	if (cb != NULL)
		cb(data, rv, rv != 0 ? &e : NULL);
}

static void close_start(struct sandbox *sb)
{
	sb->close_queued = true;
	sb->state = SB_CLOSING;
	ing_error_clear(&sb->work_err);
	int rv = uv_queue_work(sb->h->loop, &sb->work, close_work, close_done);
	if (rv != 0) {
		/* Only with a loop closing under us: clean here, synchronously. */
		close_work(&sb->work);
		close_done(&sb->work, 0);
	}
}

void sandbox_close(struct sandbox *sb, sandbox_close_cb cb, void *data)
{
	if (sb->close_requested)
		return;
	sb->close_requested = true;
	sb->close_cb = cb;
	sb->data = data;
	if (sb->running || sb->attaching) {
		sandbox_kill(sb, SIGKILL); /* on_command_exit or attach_done closes */
		return;
	}
	close_start(sb);
}

/* ---- leftovers --------------------------------------------------------- */

struct reap {
	struct sbx_cgroups cg;
	unsigned found;
	int rv;
	struct ing_error *e;
};

static void reap_cgroup(const char *name, void *arg)
{
	struct reap *r = arg;
	struct ing_error e2;
	r->found++;
	ING_LOG_WARN("sandbox leftover cgroup name=%s: killing", name);
	if (sbx_cg_destroy(&r->cg, name, REAP_WAIT_MS, &e2) != 0 && r->rv == 0)
		r->rv = ing_error_set(r->e, ING_EIO, "%s", e2.msg);
}

static void record_field(const char *text, const char *key, char *out, size_t cap)
{
	size_t kl = strlen(key);
	out[0] = '\0';
	for (const char *line = text; line != NULL && *line != '\0';) {
		const char *end = strchr(line, '\n');
		size_t ll = end != NULL ? (size_t)(end - line) : strlen(line);
		if (ll > kl && strncmp(line, key, kl) == 0 && line[kl] == '=') {
			size_t vl = ll - kl - 1 < cap - 1 ? ll - kl - 1 : cap - 1;
			memcpy(out, line + kl + 1, vl);
			out[vl] = '\0';
			return;
		}
		line = end != NULL ? end + 1 : NULL;
	}
}

static void reap_record(struct reap *r, const char *state_dir, const char *file)
{
	char path[SBX_PATH_MAX + 80], text[4 * SBX_PATH_MAX];
	snprintf(path, sizeof(path), "%s/%s", state_dir, file);
	if (sbx_read_small(path, text, sizeof(text)) < 0)
		return;
	char name[SANDBOX_NAME_MAX + 1], work_dir[SBX_PATH_MAX], image[SBX_PATH_MAX + 80];
	char pid_s[24], start_s[24];
	record_field(text, "name", name, sizeof(name));
	record_field(text, "work_dir", work_dir, sizeof(work_dir));
	record_field(text, "image", image, sizeof(image));
	record_field(text, "pid", pid_s, sizeof(pid_s));
	record_field(text, "start", start_s, sizeof(start_s));
	r->found++;
	ING_LOG_WARN("sandbox leftover name=%s work_dir=%s pid=%s: cleaning", name, work_dir,
	             pid_s);
	int pid = atoi(pid_s);
	uint64_t start = strtoull(start_s, NULL, 10);
	/* The same pid and start time: the same process, not a reuse. */
	if (pid > 0 && start != 0 && start_time(pid) == start)
		kill(pid, SIGKILL);
	struct ing_error e2;
	if (sbx_name_ok(name, SANDBOX_NAME_MAX) && r->cg.version != 0 &&
	    sbx_cg_destroy(&r->cg, name, REAP_WAIT_MS, &e2) != 0 && r->rv == 0)
		r->rv = ing_error_set(r->e, ING_EIO, "%s", e2.msg);
	if (image[0] != '\0' && work_dir[0] == '/' && sbx_quota_remove(image, work_dir, &e2) != 0 &&
	    r->rv == 0)
		r->rv = ing_error_set(r->e, ING_EIO, "%s", e2.msg);
	snprintf(path, sizeof(path), "%s/%s", state_dir, file);
	unlink(path);
}

int sandbox_reap_leftovers(const struct sandbox_config *cfg, unsigned *found, struct ing_error *e)
{
	int rv = check_config(cfg, e);
	if (rv != 0)
		return rv;
	struct reap r = {.e = e};
	char why[256];
	if (!cfg->no_cgroups && geteuid() == 0)
		sbx_cg_detect(cfg->cgroup_root != NULL ? cfg->cgroup_root : SANDBOX_CGROUP_ROOT,
		              cfg->cgroup_parent, &r.cg, why, sizeof(why));
	DIR *d = opendir(cfg->state_dir);
	if (d != NULL) {
		struct dirent *de;
		while ((de = readdir(d)) != NULL) {
			size_t n = strlen(de->d_name);
			if (n > 4 && strcmp(de->d_name + n - 4, ".rec") == 0)
				reap_record(&r, cfg->state_dir, de->d_name);
		}
		closedir(d);
	}
	/* Cgroups without a record (a crash between record removal and ...
	 * cannot happen, but a lost state_dir can). */
	sbx_cg_each(&r.cg, reap_cgroup, &r);
	if (found != NULL)
		*found = r.found;
	return r.rv;
}
