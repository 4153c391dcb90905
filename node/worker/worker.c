/*
 * worker.c - runs the attempts the state machine assigns to this node.
 *
 * After every flush that applied entries, the worker reads the assignments
 * to this node (table assignments, prefix = this node's id) and the jobs
 * they name:
 *   - an assignment it is not running yet starts an attempt: a fresh
 *     directory data_dir/work/job-<id>-a<attempt>/ with src/ (the job's
 *     sources, read from the local store: they are replicated, the small
 *     ones in the job's sources record, the others as artifacts) and one
 *     out/<stage>/ per stage.  With the sandbox on (worker_set_sandbox),
 *     the attempt first opens its sandbox (node/worker/sandbox.h: own uid,
 *     the directory on its own quota file system, a cgroup), then writes
 *     the sources and hands them to the sandbox's uid; every stage runs in
 *     it, the daemon creates stage directories and stdout files and reads
 *     outputs only through it (no symlink followed: the stages own the
 *     directory), and the sandbox is closed before the directory goes;
 *   - without the sandbox, an attempt takes a spare directory when there is
 *     one: the directory of an attempt that ended, emptied down to src/
 *     with its plain files, out/ and the directories right under out/
 *     (nothing else of it stays: other files, links, other directories,
 *     the recorded process group), renamed work/spare-<n> and, for the next
 *     attempt, renamed to its name with only its own stages' directories
 *     left under out/ and only the files of src/ that its sources overwrite
 *     in place (no src/ without sources): what a fresh directory would
 *     hold, without creating and deleting directories for every attempt
 *     (on ext4 without a journal the inode allocator's scan for recently
 *     deleted inodes was a third of a trivial job's CPU: issue 16).  The
 *     worker remembers what each spare holds (struct spare), so the next
 *     attempt removes by name what it does not use, without reading the
 *     directories again.  At most SPARES_MAX spares; the rest,
 *     and any directory that cannot be emptied, is removed.  A plain
 *     stage's process group is recorded as the extended attribute
 *     user.ingot.pgid of the attempt directory (the file pgid in it where
 *     the file system has none), for worker_reap;
 *   - an attempt whose job moved on (another attempt, requeued, final) is
 *     fenced: its process group is killed and nothing more is reported;
 *   - an attempt whose job has a cancel requested is stopped (SIGTERM to
 *     the group) and reported cancelled.
 *
 * An attempt runs at most once on a node, whatever the node's store says:
 * before its first report, the worker records it on disk, in the journal
 * of started attempts (node/worker/markers.h: data_dir/work/
 * started.journal; the attempts one poll starts share one append and one
 * fdatasync).  An assignment that finds its marker already there (or whose
 * job has stages started other than the stage 0 its assignment started)
 * was started by an earlier run of this daemon, killed since: it is
 * reported lost (requeued by the state machine with the next attempt),
 * never run again under the same attempt.  The local store alone cannot
 * tell: an assignment that starts stage 0 looks the same whether or not the
 * stage was spawned, and the store may not have applied a report the
 * leader already acknowledged when the daemon died.  The store commits its
 * applies in batches and a kill -9 loses the last ones, so a marker is
 * removed only once the assignment's absence is committed in the store
 * (else the attempt, run to its end, would look assigned again after a
 * restart) and the store has caught up with the raft log as it was at the
 * first poll (else an assignment the earlier run started could be missing
 * only until the replay brings it back): markers_collect.  Then a marker
 * is removed at the first poll that sees its assignment gone from the
 * local store (the attempt can never come back: attempt numbers only
 * grow).
 *
 * An attempt is a chain, one step in flight at a time:
 *   stage 0 runs as soon as the assignment is applied here (the scheduler's
 *   job_assign starts it, version 3; an older assignment that did not is
 *   first reported as stage_start) -> run the stage (node/worker/stage.c,
 *   with the stage's limits, and its stdout into out/<stage>/<stdout> when
 *   the target names a stdout file) -> report stage_finish (exit status,
 *   duration, log, declared outputs, then the stdout file) together with
 *   what follows: the next stage's start (`then: next`), or the job's end
 *   (`then: finish`, succeeded after the last stage, failed after one that
 *   failed) -> run the next stage ...  So an attempt of N stages costs N
 *   commits after its assignment (one command per report, job_stage_finish
 *   version 2), and the
 *   state machine answers a `then: next` with the job's end instead when a
 *   cancel is pending.  A cancel seen between stages, or a stage killed by
 *   one, is reported as finish (cancelled).
 * Reports go to this node's own API (`worker.report`), which forwards them
 * to the leader like any write, with a request id derived from (node, this
 * run of the worker, job, attempt, step): a report retried after a lost
 * reply applies once, and the same report from another run is a new request
 * that the state machine judges on its own (a second stage start is
 * refused), never one the dedupe table answers with the first run's
 * success.  A report refused as stale or conflicting means the attempt was
 * fenced: it stops.  A report that can never be delivered (too large for a
 * frame, refused as invalid) ends the attempt: a stage report becomes the
 * attempt's failure naming why, a final one `lost`.  Other failures (no
 * leader) are retried every second.
 *
 * One stage_finish report carries the stage's log and every output in one
 * frame of max_frame_bytes: the log gives way first (its end is kept);
 * outputs that cannot fit, or an output over ING_SOURCE_MAX_BYTES, fail the
 * stage naming the size and the limit.  An output that is a symbolic link,
 * or lies under one, is refused: what it points to lies outside the stage's
 * directory.
 *
 * Limits: each of the target's (the stage's limits, the target's disk_bytes)
 * applies within the node's ceiling for it (stage_*, work_quota_bytes): the
 * lower of the two, either alone when the other is 0 (none).  A stage ended
 * by one says in the job's error which of the two applied (limit_origin).
 * The sandbox shares the host's network only for a target with `network`
 * set (the API allowed it: node/api/targets.c).
 *
 * Argv templates (template.h): a {param:NAME} the job does not have fails
 * the stage before anything is spawned.  No shell is involved unless the
 * target's argv runs one.  The environment is the stage's `env` plus PATH
 * when the target sets none.  On a node that offers GPUs, and for any
 * attempt that holds some, CUDA_VISIBLE_DEVICES names the GPUs the stage
 * sees (the first rec_stage_gpus of those the attempt holds; none: "") and
 * CUDA_DEVICE_ORDER=PCI_BUS_ID makes CUDA number them as NVML does; both
 * replace what the target's env says.
 *
 * GPUs in the sandbox: an attempt gets exactly its GPUs.  When the node
 * knows each held GPU's uuid and device file (discovered: node_gpu_pinned),
 * its sandbox gets the driver's control files and /dev/nvidia<minor> of
 * those GPUs only, and CUDA_VISIBLE_DEVICES names them by uuid (CUDA would
 * renumber indexes in a /dev without the other GPUs' files).  Otherwise
 * (GPUs declared by the config) it gets every /dev/nvidia* file and
 * indexes, as the start log warns.  An attempt without GPUs gets no
 * NVIDIA file (the config refuses /dev/nvidia* in sandbox_devices).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <glob.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "common/fs.h"
#include "common/log.h"
#include "node/request.h"
#include "node/worker/worker.h"
#include "node/worker/gpu.h"
#include "node/worker/markers.h"
#include "node/worker/sandbox.h"
#include "node/worker/stage.h"
#include "node/worker/template.h"
#include "storage/artifact.h"

#define REPORT_RETRY_MS   1000
#define REPORT_TIMEOUT_MS 30000 /* one report, its retries included */
#define MAX_ARGS          256
#define GPU_DEVICES_MAX   64 /* /dev/nvidia* files bound for a GPU attempt */
/* Bytes a stage_finish report needs besides its log and outputs (the
 * frame, the request envelope, the other fields), and per output. */
#define REPORT_OVERHEAD      1024
#define REPORT_ITEM_OVERHEAD 32

enum step { STEP_IDLE, STEP_REPORTING, STEP_RUNNING, STEP_WAIT_RETRY };

#define ENDED_MAX 64
/* Emptied attempt directories kept for reuse: more than a node holds at
 * once with assign_ahead. */
#define SPARES_MAX 64
#define PGID_XATTR "user.ingot.pgid"

/*
 * A spare directory: work/spare-<id>, and what its skeleton holds as
 * skeleton_only left it (the names of the plain files of src/ and of the
 * directories under out/), so the next attempt takes it without reading it
 * again.  `known` is false when the names did not fit in `names`: that
 * attempt reads the directories instead.
 */
#define SPARE_NAMES_BYTES 512

struct spare {
	unsigned id;
	bool known, has_src;
	uint8_t nsrc, nout;            /* how many names of each, src's first */
	uint16_t used;                 /* bytes of names used */
	char names[SPARE_NAMES_BYTES]; /* NUL-terminated, one after the other */
};

struct worker {
	struct node *n;
	struct node_attempt *attempts;
	bool dirty; /* applied entries since the worker last looked */
	struct {
		uint64_t job;
		uint32_t attempt;
	} ended[ENDED_MAX]; /* attempts that ended here lately (ring) */
	unsigned nended;
	struct sandbox_host *sandbox;    /* owned; NULL: stages run unsandboxed */
	uint64_t run;                    /* this run of the worker (in report request ids) */
	struct worker_markers *markers;  /* owned; NULL until the first poll opens it */
	struct spare spares[SPARES_MAX]; /* work/spare-<n> directories, a stack */
	unsigned nspares, spare_next;
	/* No marker is dropped before the store has applied the raft log as
	 * of this run's first poll (store_caught_up). */
	uint64_t catch_up_index;
	bool catch_up_known, caught_up;
	/* Slots: attempts that hold one (from their first stage to their last
	 * report), and a count of the attempts made, which orders the ones
	 * parked waiting for a slot (oldest first). */
	unsigned busy;
	uint64_t seq;
	bool starting; /* start_parked is running: no nested call */
};

struct node_attempt {
	struct worker *w;
	uint64_t job;
	uint32_t attempt;
	char dir[512];
	msgpack_zone *zone; /* target and source views */
	struct rec_target target;
	struct rec_file *sources;
	uint32_t nsources;
	struct rec_kv *params; /* the job's parameters, copied into zone */
	uint32_t nparams;
	uint32_t ngpus; /* the GPUs the attempt holds (job_assign), NVML indexes */
	uint32_t gpus[ING_MAX_GPUS];
	uint32_t stage; /* current stage */
	enum step step;
	struct stage_run *run;
	struct node_request req;
	struct mp_out report; /* the report in flight (kept for retries) */
	char report_id[RPC_REQUEST_ID_MAX + 1];
	const char *report_kind;
	uv_timer_t retry;
	bool finishing;            /* the report in flight is the final one */
	bool failed;               /* a stage failed: keep the directory if configured */
	char why[ING_MESSAGE_MAX]; /* why it failed, for the finish report */
	bool cancel;               /* cancel requested */
	bool started;              /* its assignment started stage 0 (job_assign v3) */
	bool fenced;               /* the job moved on: stop, report nothing */
	bool pgid_unrecorded;      /* the pgid file could not be written: stopped */
	bool seen;                 /* still assigned (poll bookkeeping) */
	bool slot;                 /* holds one of the node's slots */
	bool parked;               /* ready to run, waiting for a slot */
	uint64_t seq;              /* the worker's count when it was made */
	/* The sandbox (w->sandbox set): opened before the sources are written,
	 * closed before the directory is removed. */
	struct sandbox *sb;
	bool sb_opening, sb_closing;
	struct ing_str *src_data; /* the sources, held while the sandbox opens */
	char tenant[ING_NAME_MAX + 1];
	struct node_attempt *next;
};

/* ---- helpers ------------------------------------------------------------ */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void rm_rf(const char *path)
{
	nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Writes a file of the attempt (its sources, its pgid), creating the
 * directories above it.  0, or ING_EIO / ING_EINVAL (logged, naming the
 * file and the cause). */
static int write_attempt_file(const char *path, const void *data, size_t len)
{
	struct ing_error e;
	int rv = ing_mkdirs_parent(path, 0700, &e);
	if (rv == 0)
		rv = ing_write_file(path, data, len, 0600, ING_WRITE_IN_PLACE, &e);
	if (rv != 0)
		ING_LOG_ERROR("worker cannot write a file error=%s msg=\"%s\"", ing_err_name(rv),
		              e.msg);
	return rv;
}

/* Reads the output `name` of the stage directory `dir` (both as the target
 * gave them) into z.  0; ING_ENOTFOUND (missing, or not a regular file),
 * ING_ETOOBIG (over ING_SOURCE_MAX_BYTES: its size in *size), ING_EDENIED
 * (the path leads through a symbolic link, in its last component or above
 * it, so what would be uploaded lies outside the stage's directory),
 * ING_ENOMEM, ING_EIO (a read failed or came short). */
static int read_output(const char *dir, struct ing_str name, msgpack_zone *z, struct ing_str *out,
                       uint64_t *size)
{
	char path[900], real_dir[PATH_MAX], real_path[PATH_MAX], want[PATH_MAX + 300];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%.*s", dir, ING_STR_FMT(name));
	if (lstat(path, &st) != 0)
		return errno == ENOENT || errno == ENOTDIR ? ING_ENOTFOUND : ING_EIO;
	if (realpath(dir, real_dir) == NULL || realpath(path, real_path) == NULL)
		return S_ISLNK(st.st_mode) ? ING_EDENIED : ING_ENOTFOUND;
	snprintf(want, sizeof(want), "%s/%.*s", real_dir, ING_STR_FMT(name));
	if (S_ISLNK(st.st_mode) || strcmp(want, real_path) != 0)
		return ING_EDENIED;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return errno == ELOOP ? ING_EDENIED : errno == ENOENT ? ING_ENOTFOUND : ING_EIO;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return ING_ENOTFOUND;
	}
	if ((uint64_t)st.st_size > ING_SOURCE_MAX_BYTES) {
		close(fd);
		*size = (uint64_t)st.st_size;
		return ING_ETOOBIG;
	}
	char *buf = msgpack_zone_malloc(z, (size_t)st.st_size + 1);
	size_t got = 0;
	while (buf != NULL && got < (size_t)st.st_size) {
		ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	close(fd);
	if (buf == NULL)
		return ING_ENOMEM;
	if (got != (size_t)st.st_size)
		return ING_EIO;
	*out = (struct ing_str){buf, (uint32_t)got};
	return 0;
}

/* The output `name` of the stage directory `dir` of a sandboxed stage:
 * read through the sandbox (no symlink followed, nothing outside the
 * directory), copied into the zone.  0, or sandbox_read_output's error
 * (ING_ENOTFOUND, ING_ETOOBIG, ING_EDENIED, ...) with oe saying which. */
static int read_sandboxed_output(struct node_attempt *a, const char *dir, struct ing_str name,
                                 struct ing_str *out, struct ing_error *oe)
{
	char path[900];
	char *buf = NULL;
	size_t len = 0;
	snprintf(path, sizeof(path), "%s/%.*s", dir + strlen(a->dir) + 1, ING_STR_FMT(name));
	int rv = sandbox_read_output(a->sb, path, ING_SOURCE_MAX_BYTES, &buf, &len, oe);
	if (rv != 0)
		return rv;
	char *copy = msgpack_zone_malloc(a->zone, len + 1);
	if (copy != NULL)
		memcpy(copy, buf, len);
	free(buf);
	if (copy == NULL)
		return ing_error_set(oe, ING_ENOMEM, "out of memory reading an output");
	*out = (struct ing_str){copy, (uint32_t)len};
	return 0;
}

/* Why output `name` is not reported: the end of "stage 's': declared output
 * 'x' ..." (size: ING_ETOOBIG's, 0 when unknown). */
static void output_problem(int rv, uint64_t size, char *out, size_t cap)
{
	switch (rv) {
	case ING_ENOTFOUND: snprintf(out, cap, "was not produced"); break;
	case ING_ETOOBIG:
		if (size > 0)
			snprintf(out, cap,
			         "is %" PRIu64 " bytes, over the limit of %u bytes per output",
			         size, (unsigned)ING_SOURCE_MAX_BYTES);
		else
			snprintf(out, cap, "is over the limit of %u bytes per output",
			         (unsigned)ING_SOURCE_MAX_BYTES);
		break;
	case ING_EDENIED:
		snprintf(out, cap,
		         "is a symbolic link, lies under one or is not a regular file: outputs "
		         "must be regular files in the stage's directory");
		break;
	case ING_ENOMEM:
		snprintf(out, cap, "could not be read: out of memory on the worker");
		break;
	default: snprintf(out, cap, "could not be read: input/output error on the worker");
	}
}

static void stage_dir(const struct node_attempt *a, uint32_t stage, char *out, size_t cap)
{
	snprintf(out, cap, "%s/out/%u-%.*s", a->dir, stage,
	         ING_STR_FMT(a->target.stages[stage].name));
}

/* ---- recycled attempt directories -------------------------------------- */

/*
 * The entries of the directory open as `fd`, read with getdents64 straight
 * from the descriptor, which the walk reads from its current offset (open
 * it for the walk) and leaves open.  Not a DIR stream: fdopendir would
 * cost a dup, an fstat, two fcntls, a close and a 32 KiB buffer for each
 * directory, and a trivial job's recycled directory has four (issue 16).
 */
struct dir_walk {
	int fd;
	long len, pos;
	char buf[4096] __attribute__((aligned(8)));
};

static void walk_open(struct dir_walk *w, int fd)
{
	w->fd = fd;
	w->len = 0;
	w->pos = 0;
}

/* The next entry but "." and "..", or NULL at the end or on an error. */
static const struct dirent64 *walk_next(struct dir_walk *w)
{
	for (;;) {
		if (w->pos >= w->len) {
			ssize_t n = getdents64(w->fd, w->buf, sizeof(w->buf));
			if (n <= 0)
				return NULL;
			w->len = n;
			w->pos = 0;
		}
		const struct dirent64 *de = (const struct dirent64 *)(w->buf + w->pos);
		w->pos += de->d_reclen;
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			return de;
	}
}

static int rm_under(int dfd);

/* Removes the entry `name` under dfd (`type`: its d_type, or DT_UNKNOWN),
 * a directory with everything under it, not following symbolic links.
 * 0, or -1. */
static int remove_entry(int dfd, const char *name, unsigned char type)
{
	struct stat st;
	bool dir = type == DT_DIR ||
	           (type == DT_UNKNOWN && fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	            S_ISDIR(st.st_mode));
	if (!dir)
		return unlinkat(dfd, name, 0) == 0 ? 0 : -1;
	int sub = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	int rv = sub >= 0 && rm_under(sub) == 0 ? 0 : -1;
	if (sub >= 0)
		close(sub);
	return unlinkat(dfd, name, AT_REMOVEDIR) == 0 ? rv : -1;
}

/* Removes every entry under the directory open as `dfd` (not following
 * symbolic links).  0, or -1 when one could not be removed. */
static int rm_under(int dfd)
{
	/* On the heap: a job may nest directories deeply, one call each. */
	struct dir_walk *d = malloc(sizeof(*d));
	const struct dirent64 *de;
	int rv = 0;
	if (d == NULL)
		return -1;
	walk_open(d, dfd);
	while ((de = walk_next(d)) != NULL)
		if (remove_entry(dfd, de->d_name, de->d_type) != 0)
			rv = -1;
	free(d);
	return rv;
}

/* Gives the file open as fd the mode `mode` (permission bits), writing
 * the inode only when it has another.  0, or -1. */
static int mode_is(int fd, mode_t mode)
{
	struct stat st;
	if (fstat(fd, &st) == 0 && (st.st_mode & 07777) == mode)
		return 0;
	return fchmod(fd, mode) == 0 ? 0 : -1;
}

/* Adds `name` to the spare's names (nothing, and known false, when it
 * does not fit). */
static void spare_note(struct spare *sp, const char *name, uint8_t *count)
{
	size_t len = strlen(name) + 1;
	if (!sp->known || *count == UINT8_MAX || sp->used + len > sizeof(sp->names)) {
		sp->known = false;
		return;
	}
	memcpy(sp->names + sp->used, name, len);
	sp->used += (uint16_t)len;
	(*count)++;
}

/*
 * src/ of an ended attempt, open as `dfd`: its plain files stay, mode 0600,
 * for the next attempt to write its sources over in place (a new file
 * costs an inode: issue 16); everything else goes (directories, links,
 * special files, a file with another link to it or of another owner);
 * the names kept are added to *sp.  0, or -1.
 */
static int keep_plain_files(int dfd, struct spare *sp)
{
	struct dir_walk d;
	const struct dirent64 *de;
	const uid_t self = geteuid();
	int rv = 0;
	walk_open(&d, dfd);
	while (rv == 0 && (de = walk_next(&d)) != NULL) {
		struct stat st;
		/* One system call for a file as the attempt left it; one that
		 * needs its mode back is opened (no link followed) to fix it. */
		bool keep = fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		            S_ISREG(st.st_mode) && st.st_nlink == 1 && st.st_uid == self &&
		            (st.st_mode & 07777) == 0600;
		int fd =
		    keep ? -1
		         : openat(dfd, de->d_name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
		if (fd >= 0)
			keep = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_nlink == 1 &&
			       st.st_uid == self &&
			       ((st.st_mode & 07777) == 0600 || fchmod(fd, 0600) == 0);
		if (fd >= 0)
			close(fd);
		if (!keep)
			rv = remove_entry(dfd, de->d_name, de->d_type);
		else
			spare_note(sp, de->d_name, &sp->nsrc);
	}
	return rv;
}

/* The real directory `name` under dfd, opened (-1 if it is anything else). */
static int open_subdir(int dfd, const char *name)
{
	return openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
}

/*
 * Empties the attempt directory open as `dfd` down to its skeleton: src/
 * (with its plain files: keep_plain_files) and out/ and the directories
 * right under out/ (emptied) stay, mode 0700, everything else goes, the
 * recorded process group included; *sp records what stayed (every name of
 * src/ first, then of out/).  0, or -1 (the caller removes the whole
 * directory instead).
 */
static int skeleton_only(int dfd, struct spare *sp)
{
	struct dir_walk d, o;
	const struct dirent64 *de, *se;
	int rv = 0;
	*sp = (struct spare){.known = true};
	/* src/ first, so its names come first whatever the directory's order. */
	int sfd = open_subdir(dfd, "src");
	if (sfd >= 0) {
		sp->has_src = true;
		rv = keep_plain_files(sfd, sp);
		if (rv == 0 && mode_is(sfd, 0700) != 0)
			rv = -1;
		close(sfd);
	}
	walk_open(&d, dfd);
	while (rv == 0 && (de = walk_next(&d)) != NULL) {
		bool out = strcmp(de->d_name, "out") == 0;
		if (strcmp(de->d_name, "src") == 0 && sp->has_src)
			continue;
		int cfd = out ? open_subdir(dfd, de->d_name) : -1;
		if (cfd < 0) {
			rv = remove_entry(dfd, de->d_name, de->d_type);
			continue;
		}
		/* out/: its stage directories stay, emptied. */
		walk_open(&o, cfd);
		while (rv == 0 && (se = walk_next(&o)) != NULL) {
			int stfd = open_subdir(cfd, se->d_name);
			if (stfd < 0) {
				rv = unlinkat(cfd, se->d_name, 0) == 0 ? 0 : -1;
				continue;
			}
			rv = rm_under(stfd) == 0 && mode_is(stfd, 0700) == 0 ? 0 : -1;
			close(stfd);
			spare_note(sp, se->d_name, &sp->nout);
		}
		if (rv == 0 && mode_is(cfd, 0700) != 0)
			rv = -1;
		close(cfd);
	}
	if (rv == 0 && mode_is(dfd, 0700) != 0)
		rv = -1;
	if (rv == 0 && fremovexattr(dfd, PGID_XATTR) != 0 && errno != ENODATA && errno != ENOTSUP)
		rv = -1;
	return rv;
}

/* The directory of an attempt that ended: kept as a spare (emptied to its
 * skeleton, renamed work/spare-<n>) for the next attempt, which then
 * creates no directory (every created and deleted inode costs: issue 16),
 * or removed when the spares are full or it cannot be emptied. */
static void recycle_dir(struct worker *w, const char *dir)
{
	if (w->nspares == SPARES_MAX) {
		rm_rf(dir);
		return;
	}
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd < 0) {
		rm_rf(dir);
		return;
	}
	struct spare *sp = &w->spares[w->nspares];
	char path[700];
	int rv = skeleton_only(dfd, sp);
	close(dfd);
	sp->id = w->spare_next++;
	snprintf(path, sizeof(path), "%s/work/spare-%u", node_cfg(w->n)->data_dir, sp->id);
	if (rv != 0 || rename(dir, path) != 0) {
		rm_rf(dir);
		return;
	}
	w->nspares++;
}

/* Whether `name` is the top-level path of one of the attempt's sources. */
static bool is_source(const struct node_attempt *a, const char *name)
{
	for (uint32_t i = 0; i < a->nsources; i++)
		if (ing_str_eq_c(a->sources[i].path, name))
			return true;
	return false;
}

/* Whether `name` is the directory under out/ of one of the target's stages. */
static bool is_stage_dir(const struct node_attempt *a, const char *name)
{
	char want[ING_NAME_MAX + 16];
	for (uint32_t i = 0; i < a->target.nstages; i++) {
		snprintf(want, sizeof(want), "%u-%.*s", i, ING_STR_FMT(a->target.stages[i].name));
		if (strcmp(want, name) == 0)
			return true;
	}
	return false;
}

/* Leaves in src/ (open as `sfd`) only the files the attempt writes its
 * sources over: those named as one of its sources (a top-level path). */
static void prune_sources(const struct node_attempt *a, int sfd)
{
	struct dir_walk d;
	const struct dirent64 *de;
	walk_open(&d, sfd);
	while ((de = walk_next(&d)) != NULL)
		if (!is_source(a, de->d_name))
			remove_entry(sfd, de->d_name, de->d_type);
}

/* reuse_spare for a spare whose skeleton is known: removes what the
 * attempt does not use by name, reading no directory. */
static void prune_known(const struct node_attempt *a, const struct spare *sp)
{
	char path[900];
	const char *name = sp->names;
	for (unsigned i = 0; i < sp->nsrc; i++, name += strlen(name) + 1) {
		if (is_source(a, name))
			continue;
		snprintf(path, sizeof(path), "%s/src/%s", a->dir, name);
		unlink(path);
	}
	if (sp->has_src && a->nsources == 0) {
		snprintf(path, sizeof(path), "%s/src", a->dir);
		rmdir(path);
	}
	for (unsigned i = 0; i < sp->nout; i++, name += strlen(name) + 1) {
		if (is_stage_dir(a, name))
			continue;
		snprintf(path, sizeof(path), "%s/out/%s", a->dir, name);
		rmdir(path);
	}
}

/* Gives the attempt a spare directory as its own (renamed to a->dir), its
 * out/ holding only the directories of the target's stages, src/ only when
 * the job has sources and then only files the attempt's sources overwrite.
 * Nothing when there is no spare (run_stage and attempt_begin create what
 * is missing). */
static void reuse_spare(struct node_attempt *a)
{
	struct worker *w = a->w;
	char path[700];
	if (w->nspares == 0)
		return;
	const struct spare *sp = &w->spares[--w->nspares];
	snprintf(path, sizeof(path), "%s/work/spare-%u", node_cfg(w->n)->data_dir, sp->id);
	if (rename(path, a->dir) != 0) {
		rm_rf(path); /* and no other: a->dir may be in the way */
	} else if (sp->known) {
		prune_known(a, sp);
		return;
	}
	int dfd = open(a->dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd < 0)
		return;
	int sfd = open_subdir(dfd, "src");
	if (sfd >= 0) {
		if (a->nsources == 0) {
			close(sfd);
			remove_entry(dfd, "src", DT_DIR);
		} else {
			prune_sources(a, sfd);
			close(sfd);
		}
	}
	int ofd = open_subdir(dfd, "out");
	struct dir_walk o;
	const struct dirent64 *se;
	walk_open(&o, ofd);
	while (ofd >= 0 && (se = walk_next(&o)) != NULL)
		if (!is_stage_dir(a, se->d_name))
			unlinkat(ofd, se->d_name, AT_REMOVEDIR);
	if (ofd >= 0)
		close(ofd);
	close(dfd);
}

/* Records the process group of a plain stage for worker_reap: an extended
 * attribute of the attempt directory (no file to create), or the file
 * `pgid` in it where the file system has none.  0, or -1. */
static int record_pgid(const char *dir, int pgid)
{
	char text[24], path[600];
	int k = snprintf(text, sizeof(text), "%d\n", pgid);
	if (setxattr(dir, PGID_XATTR, text, (size_t)k, 0) == 0)
		return 0;
	if (errno != ENOTSUP)
		return -1;
	snprintf(path, sizeof(path), "%s/pgid", dir);
	return write_attempt_file(path, text, (size_t)k) == 0 ? 0 : -1;
}

/* The process group recorded in the attempt directory `dir`, 0 if none. */
static int recorded_pgid(const char *dir)
{
	char text[24], path[600];
	int pgid = 0;
	ssize_t n = getxattr(dir, PGID_XATTR, text, sizeof(text) - 1);
	if (n > 0) {
		text[n] = '\0';
		return atoi(text);
	}
	snprintf(path, sizeof(path), "%s/pgid", dir);
	FILE *f = fopen(path, "r");
	if (f != NULL) {
		if (fscanf(f, "%d", &pgid) != 1)
			pgid = 0;
		fclose(f);
	}
	return pgid;
}

/* ---- started markers ---------------------------------------------------- */

/* The journal of started attempts (node/worker/markers.h), opened at the
 * first poll that needs it; NULL while it cannot be (logged). */
static struct worker_markers *markers_of(struct worker *w)
{
	if (w->markers == NULL) {
		char dir[700];
		struct ing_error e;
		snprintf(dir, sizeof(dir), "%s/work", node_cfg(w->n)->data_dir);
		if (worker_markers_open(dir, &w->markers, &e) != 0) {
			w->markers = NULL;
			ING_LOG_ERROR("attempt journal cannot be opened error=%s msg=\"%s\"",
			              ing_err_name(e.code), e.msg);
		}
	}
	return w->markers;
}

/* Whether (job, attempt) is among the `count` assigned ones. */
static bool assigned_in(const uint64_t *jobs, const uint32_t *attempts, unsigned count,
                        uint64_t job, uint32_t attempt)
{
	for (unsigned i = 0; i < count; i++)
		if (jobs[i] == job && attempts[i] == attempt)
			return true;
	return false;
}

/*
 * Whether the store holds every entry an earlier run of this daemon could
 * have applied.  Until then the worker drops no marker: the store commits
 * its applies in batches (store_commit_interval_ms), so after a kill -9 it
 * may be behind what that run saw, and the raft log replays the rest only
 * later: an assignment that run started may be missing for a while, and its
 * marker must outlive that.  libraft applies only entries it has stored, and
 * never loses a committed one, so everything that run applied is in the
 * log up to its last index at this run's first poll, or below the log's
 * last index now when entries past the commit were replaced since (or in a
 * snapshot the store already holds): once the store has applied that far,
 * what it says is at least as new as anything the earlier run saw.
 */
static bool store_caught_up(struct worker *w)
{
	struct cons *c = node_cons(w->n);
	struct cons_status st;
	if (w->caught_up)
		return true;
	if (c == NULL)
		return false;
	cons_status(c, &st);
	if (!w->catch_up_known) {
		w->catch_up_index = st.last_index;
		w->catch_up_known = true;
	}
	uint64_t need = st.last_index < w->catch_up_index ? st.last_index : w->catch_up_index;
	w->caught_up = st.last_applied >= need;
	if (w->caught_up && w->catch_up_index > 0)
		ING_LOG_INFO("worker caught up with the log applied=%" PRIu64 " needed=%" PRIu64,
		             st.last_applied, need);
	return w->caught_up;
}

/*
 * Removes the markers of attempts no longer assigned here (attempt numbers
 * only grow: such an attempt can never come back), given the complete list
 * of those assigned, when that absence is durable and final: the store has
 * committed every apply it holds (an apply still in its open batch is lost
 * with a kill -9, and the assignment would look live again after the
 * restart, its marker gone) and has caught up with the log
 * (store_caught_up: an assignment missing from a store that is behind may
 * come back with the replay).  Markers kept longer cost nothing but their
 * record.
 */
static void markers_collect(struct worker *w, const uint64_t *jobs, const uint32_t *attempts,
                            unsigned count, bool complete)
{
	if (!complete || w->markers == NULL)
		return; /* a partial list proves nothing about what is not in it */
	if (store_batch_pending(node_store(w->n)) > 0 || !store_caught_up(w))
		return; /* a later poll: after the commit (worker_note_committed) */
	for (size_t i = worker_markers_count(w->markers); i-- > 0;) {
		uint64_t job;
		uint32_t attempt;
		worker_markers_at(w->markers, i, &job, &attempt);
		if (!assigned_in(jobs, attempts, count, job, attempt))
			worker_markers_remove(w->markers, job, attempt);
	}
}

/* ---- lifecycle ---------------------------------------------------------- */

static void attempt_unlink(struct node_attempt *a)
{
	for (struct node_attempt **pp = &a->w->attempts; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == a) {
			*pp = a->next;
			return;
		}
	}
}

static void retry_closed(uv_handle_t *h)
{
	struct node_attempt *a = h->data;
	struct node *n = a->w->n;
	mp_out_free(&a->report);
	msgpack_zone_free(a->zone);
	free(a);
	node_release(n);
}

/* Attempts that ended here recently: their assignment may still be in the
 * local store for a moment (this node applies the final report after the
 * leader does), and must not look like an attempt interrupted by a restart. */
static void remember_ended(struct worker *w, uint64_t job, uint32_t attempt)
{
	unsigned i = w->nended % ENDED_MAX;
	w->ended[i].job = job;
	w->ended[i].attempt = attempt;
	w->nended++;
}

static bool ended_recently(const struct worker *w, uint64_t job, uint32_t attempt)
{
	for (unsigned i = 0; i < ENDED_MAX && i < w->nended; i++)
		if (w->ended[i].job == job && w->ended[i].attempt == attempt)
			return true;
	return false;
}

static void attempt_end(struct node_attempt *a);
static void start_parked(struct worker *w);

/* ---- slots ------------------------------------------------------------- */

/* How many attempts run here at once: the node's slots (at least one, so
 * that attempts still assigned to a node whose slots went to 0 end). */
static unsigned slot_limit(const struct worker *w)
{
	unsigned slots = node_cfg(w->n)->slots;
	return slots > 0 ? slots : 1;
}

static bool slot_take(struct node_attempt *a)
{
	struct worker *w = a->w;
	if (a->slot)
		return true;
	if (w->busy >= slot_limit(w))
		return false;
	a->slot = true;
	w->busy++;
	return true;
}

/* The attempt's process is done (its last report is being made) or it
 * ended: its slot goes to the oldest parked attempt (start_parked, called
 * where no attempt is half-way through a step). */
static void slot_release(struct node_attempt *a)
{
	if (!a->slot)
		return;
	a->slot = false;
	a->w->busy--;
}

static void on_sandbox_closed(void *data, int status, const struct ing_error *e)
{
	struct node_attempt *a = data;
	if (status != 0)
		ING_LOG_ERROR("attempt sandbox not cleaned job=%" PRIu64 " attempt=%" PRIu32
		              " err=\"%s\"",
		              a->job, a->attempt, e != NULL ? e->msg : "");
	a->sb = NULL;
	a->sb_closing = false;
	attempt_end(a);
}

/* Ends an attempt once nothing of it is in flight (its sandbox first). */
static void attempt_end(struct node_attempt *a)
{
	a->parked = false;
	if (a->step == STEP_RUNNING || a->step == STEP_REPORTING || a->sb_opening || a->sb_closing)
		return;
	if (a->slot) {
		slot_release(a);
		start_parked(a->w);
	}
	if (a->sb != NULL) {
		if (a->failed && node_cfg(a->w->n)->keep_failed_workdirs)
			ING_LOG_WARN("attempt directory not kept: it is the sandbox's own file "
			             "system job=%" PRIu64 " attempt=%" PRIu32,
			             a->job, a->attempt);
		a->sb_closing = true;
		sandbox_close(a->sb, on_sandbox_closed, a);
		return;
	}
	remember_ended(a->w, a->job, a->attempt);
	attempt_unlink(a);
	if (a->failed && node_cfg(a->w->n)->keep_failed_workdirs)
		ING_LOG_INFO("attempt directory kept dir=%s", a->dir);
	else if (a->w->sandbox == NULL)
		recycle_dir(a->w, a->dir);
	else
		rm_rf(a->dir);
	uv_close((uv_handle_t *)&a->retry, retry_closed);
}

static void report_send(struct node_attempt *a);

static void on_retry(uv_timer_t *t)
{
	struct node_attempt *a = t->data;
	if (a->fenced || node_stopping(a->w->n)) {
		a->step = STEP_IDLE;
		attempt_end(a);
		return;
	}
	report_send(a);
}

static void step_next(struct node_attempt *a, const msgpack_object *result);
static void report_finish(struct node_attempt *a, const char *outcome, const char *message);
static msgpack_packer *report_begin(struct node_attempt *a, const char *kind, unsigned nfields,
                                    bool final);

/* Errors that the same report would meet again: retrying cannot help. */
static bool permanent(int status)
{
	return status == ING_EINVAL || status == ING_ETOOBIG || status == ING_EMALFORMED ||
	       status == ING_EVERSION;
}

/* A report that can never be delivered must not strand the attempt (the
 * job would stay running, a cancel pending, for ever): a stage report is
 * replaced by the attempt's failure naming why; a final report that fails
 * so is replaced by `lost` (requeued); if even that fails, the attempt
 * ends here and the leader's liveness or deadline is the last resort. */
static void undeliverable(struct node_attempt *a, int status, const char *msg)
{
	char why[ING_MESSAGE_MAX];
	ING_LOG_ERROR("report cannot be delivered job=%" PRIu64 " attempt=%" PRIu32
	              " report=%s bytes=%zu error=%s msg=\"%s\"",
	              a->job, a->attempt, a->report_kind, a->report.len, ing_err_name(status), msg);
	snprintf(why, sizeof(why), "the worker's %s report of %zu bytes could not be delivered: %s",
	         a->report_kind, a->report.len, msg);
	a->failed = true;
	if (!a->finishing) {
		report_finish(a, "failed", why);
	} else if (strcmp(a->report_kind, "lost") != 0) {
		msgpack_packer *pk = report_begin(a, "lost", 1, true);
		mp_pack_cstr(pk, "message");
		mp_pack_cstr(pk, why);
		report_send(a);
	} else {
		a->step = STEP_IDLE;
		attempt_end(a);
	}
}

static void on_reported(struct node_request *q, int status, const struct ing_error *err,
                        const msgpack_object *result)
{
	struct node_attempt *a = q->data;
	a->step = STEP_IDLE;
	if (a->fenced || node_stopping(a->w->n)) {
		attempt_end(a);
		return;
	}
	if (status == ING_ESTALE || status == ING_ECONFLICT || status == ING_ENOTFOUND) {
		ING_LOG_WARN("attempt fenced job=%" PRIu64 " attempt=%" PRIu32
		             " report=%s msg=\"%s\"",
		             a->job, a->attempt, a->report_kind, err != NULL ? err->msg : "");
		a->fenced = true;
		attempt_end(a);
		return;
	}
	if (permanent(status)) {
		undeliverable(a, status, err != NULL ? err->msg : ing_err_msg(status));
		return;
	}
	if (status != 0) {
		ING_LOG_DEBUG("report retried job=%" PRIu64 " report=%s error=%s", a->job,
		              a->report_kind, ing_err_name(status));
		a->step = STEP_WAIT_RETRY;
		uv_timer_start(&a->retry, on_retry, REPORT_RETRY_MS, 0);
		return;
	}
	if (a->finishing) {
		attempt_end(a);
		return;
	}
	step_next(a, result);
}

static void report_send(struct node_attempt *a)
{
	a->step = STEP_REPORTING;
	memset(&a->req, 0, sizeof(a->req));
	a->req.data = a;
	a->req.cb = on_reported;
	a->req.request_id = a->report_id;
	int rv = node_request_self(node_requests(a->w->n), &a->req, "worker.report", a->report.data,
	                           a->report.len, RPC_WRITE, REPORT_TIMEOUT_MS);
	if (permanent(rv)) {
		a->step = STEP_IDLE;
		undeliverable(a, rv, ing_err_msg(rv));
	} else if (rv != 0) {
		a->step = STEP_WAIT_RETRY;
		uv_timer_start(&a->retry, on_retry, REPORT_RETRY_MS, 0);
	}
	start_parked(a->w); /* a last report frees its slot */
}

/* Starts building a report map of `nfields` fields after kind/job/attempt. */
static msgpack_packer *report_begin(struct node_attempt *a, const char *kind, unsigned nfields,
                                    bool final)
{
	a->report_kind = kind;
	a->finishing = final;
	if (final)
		slot_release(a); /* nothing of it runs any more */
	if (a->w->run == 0)
		a->w->run = node_now_ms();
	snprintf(a->report_id, sizeof(a->report_id),
	         "w%" PRIu64 "-r%" PRIx64 "-j%" PRIu64 "-a%" PRIu32 "-%s%u", node_id(a->w->n),
	         a->w->run, a->job, a->attempt, kind, a->stage);
	mp_out_reset(&a->report);
	msgpack_pack_map(&a->report.pk, 3 + nfields);
	mp_pack_cstr(&a->report.pk, "kind");
	mp_pack_cstr(&a->report.pk, kind);
	mp_pack_cstr(&a->report.pk, "job");
	msgpack_pack_uint64(&a->report.pk, a->job);
	mp_pack_cstr(&a->report.pk, "attempt");
	msgpack_pack_uint32(&a->report.pk, a->attempt);
	return &a->report.pk;
}

static void report_finish(struct node_attempt *a, const char *outcome, const char *message)
{
	msgpack_packer *pk = report_begin(a, "finish", 2, true);
	mp_pack_cstr(pk, "outcome");
	mp_pack_cstr(pk, outcome);
	mp_pack_cstr(pk, "message");
	mp_pack_cstr(pk, message);
	ING_LOG_INFO("attempt finished job=%" PRIu64 " attempt=%" PRIu32 " outcome=%s msg=\"%s\"",
	             a->job, a->attempt, outcome, message);
	report_send(a);
}

/* ---- stages ------------------------------------------------------------- */

/* A target's limit within the node's ceiling (0: none). */
static uint64_t within(uint64_t target, uint64_t ceiling)
{
	if (target == 0)
		return ceiling;
	return ceiling != 0 && ceiling < target ? ceiling : target;
}

/* One limit of the current stage: the target's value, the node's ceiling,
 * their names, and whether they are bytes. */
struct limit_pair {
	uint64_t target, ceiling;
	const char *target_key, *node_key;
	bool bytes;
};

static bool limit_pair_of(const struct node_attempt *a, enum sandbox_limit_hit hit,
                          struct limit_pair *p)
{
	const struct rec_stage_limits *l = &a->target.stages[a->stage].limits;
	const struct node_config *c = node_cfg(a->w->n);
	switch (hit) {
	case SANDBOX_HIT_DISK:
		*p = (struct limit_pair){a->target.disk_bytes, c->work_quota_bytes, "disk_bytes",
		                         "work_quota_bytes", true};
		return true;
	case SANDBOX_HIT_MEMORY:
		*p = (struct limit_pair){l->memory_bytes, c->stage_memory_bytes,
		                         "limits.memory_bytes", "stage_memory_bytes", true};
		return true;
	case SANDBOX_HIT_PROCESSES:
		*p = (struct limit_pair){l->processes, c->stage_processes, "limits.processes",
		                         "stage_processes", false};
		return true;
	case SANDBOX_HIT_CPU:
		*p = (struct limit_pair){l->cpu_seconds, c->stage_cpu_seconds, "limits.cpu_seconds",
		                         "stage_cpu_seconds", false};
		return true;
	case SANDBOX_HIT_FILE_SIZE:
		*p = (struct limit_pair){l->output_bytes, c->stage_output_bytes,
		                         "limits.output_bytes", "stage_output_bytes", true};
		return true;
	default: return false;
	}
}

static void limit_amount(const struct limit_pair *p, uint64_t v, char *out, size_t cap)
{
	if (p->bytes)
		sandbox_format_bytes(v, out, cap);
	else
		snprintf(out, cap, "%" PRIu64, v);
}

/*
 * For a stage ended by one of its limits: which of the target's limit and
 * the node's ceiling applied (within() took the lower), as a suffix for the
 * job's error, e.g. "; the target's limit (limits.processes 16, within this
 * node's stage_processes 64)" or "; this node's ceiling (work_quota_bytes 32
 * MiB; the target asks for disk_bytes 1 GiB)".  "" for anything else, and
 * when neither sets the limit (then it cannot have been hit).
 */
static void limit_origin(const struct node_attempt *a, enum sandbox_limit_hit hit, char *out,
                         size_t cap)
{
	struct limit_pair p;
	char tv[48], cv[48];
	out[0] = '\0';
	if (!limit_pair_of(a, hit, &p) || (p.target == 0 && p.ceiling == 0))
		return;
	limit_amount(&p, p.target, tv, sizeof(tv));
	limit_amount(&p, p.ceiling, cv, sizeof(cv));
	if (p.target != 0 && p.ceiling == 0)
		snprintf(out, cap, "; the target's limit (%s %s; this node sets no %s)",
		         p.target_key, tv, p.node_key);
	else if (p.target != 0 && p.target <= p.ceiling)
		snprintf(out, cap, "; the target's limit (%s %s, within this node's %s %s)",
		         p.target_key, tv, p.node_key, cv);
	else if (p.target != 0)
		snprintf(out, cap, "; this node's ceiling (%s %s; the target asks for %s %s)",
		         p.node_key, cv, p.target_key, tv);
	else
		snprintf(out, cap, "; this node's ceiling (%s %s; the target sets no %s)",
		         p.node_key, cv, p.target_key);
}

static void on_stage_done(struct stage_run *r, const struct stage_result *res, void *data)
{
	struct node_attempt *a = data;
	const struct rec_stage_def *def = &a->target.stages[a->stage];
	struct ing_str *outs = NULL, *names = NULL;
	char out_dir[600], why[ING_MESSAGE_MAX] = "";
	uint32_t nouts = 0;
	(void)r;

	a->run = NULL;
	a->step = STEP_IDLE;
	if (a->fenced || node_stopping(a->w->n)) {
		attempt_end(a);
		return;
	}
	ING_LOG_DEBUG("stage finished job=%" PRIu64 " attempt=%" PRIu32 " stage=%u exit=%" PRId64
	              " duration_ms=%" PRIu64 "%s",
	              a->job, a->attempt, a->stage, res->exit_code, res->duration_ms,
	              res->timed_out ? " timed_out=yes" : "");
	if (res->cancelled && a->pgid_unrecorded) {
		report_finish(a, "failed", a->why);
		return;
	}
	if (res->cancelled) {
		report_finish(a, "cancelled", "cancelled while running");
		return;
	}
	stage_dir(a, a->stage, out_dir, sizeof(out_dir));
	/* The declared outputs, then the stdout file when there is one. */
	uint32_t nwant = def->noutputs + (def->stdout_path.len > 0 ? 1 : 0);
	if (res->exit_code == 0 && nwant > 0) {
		outs = msgpack_zone_malloc(a->zone, nwant * sizeof(*outs));
		names = msgpack_zone_malloc(a->zone, nwant * sizeof(*names));
		for (uint32_t i = 0; outs != NULL && names != NULL && i < nwant; i++) {
			struct ing_str name =
			    i < def->noutputs ? def->outputs[i] : def->stdout_path;
			uint64_t size = 0;
			struct ing_error oe = {0};
			int rv = a->sb != NULL
			             ? read_sandboxed_output(a, out_dir, name, &outs[nouts], &oe)
			             : read_output(out_dir, name, a->zone, &outs[nouts], &size);
			if (rv != 0) {
				char detail[200];
				output_problem(rv, size, detail, sizeof(detail));
				/* The sandbox says exactly what it met (the file's
				 * size, the link on the way). */
				snprintf(why, sizeof(why), "stage '%.*s': %s '%.*s' %s%s%s%s",
				         ING_STR_FMT(def->name),
				         i < def->noutputs ? "declared output" : "stdout file",
				         ING_STR_FMT(name), detail,
				         rv != ING_ENOTFOUND && oe.msg[0] != '\0' ? " (" : "",
				         rv != ING_ENOTFOUND ? oe.msg : "",
				         rv != ING_ENOTFOUND && oe.msg[0] != '\0' ? ")" : "");
				break;
			}
			names[nouts++] = name;
		}
		if (outs == NULL || names == NULL)
			snprintf(why, sizeof(why), "stage '%.*s': out of memory reading outputs",
			         ING_STR_FMT(def->name));
	}
	/* One report carries the log and every output, in one frame of
	 * max_frame_bytes: the log gives way first (its end is kept), then,
	 * if the outputs alone do not fit, the stage fails saying so. */
	size_t loglen = res->log_len < ING_SOURCE_MAX_BYTES ? res->log_len : ING_SOURCE_MAX_BYTES;
	const char *log = res->log;
	uint64_t out_bytes = 0;
	const unsigned frame = node_cfg(a->w->n)->max_frame_bytes;
	for (uint32_t i = 0; why[0] == '\0' && i < nouts; i++)
		out_bytes += outs[i].len + names[i].len + REPORT_ITEM_OVERHEAD;
	uint64_t room = frame > REPORT_OVERHEAD ? frame - REPORT_OVERHEAD : 0;
	if (why[0] == '\0' && res->exit_code == 0 && out_bytes > room)
		snprintf(why, sizeof(why),
		         "stage '%.*s': its outputs total %" PRIu64 " bytes, more than one report "
		         "can carry (max_frame_bytes %u)",
		         ING_STR_FMT(def->name), out_bytes, frame);
	uint64_t used = why[0] == '\0' ? out_bytes : 0;
	if (used + loglen > room) {
		size_t keep = room > used ? (size_t)(room - used) : 0;
		ING_LOG_INFO("stage log cut to fit one report job=%" PRIu64 " attempt=%" PRIu32
		             " stage=%u log_bytes=%zu kept=%zu",
		             a->job, a->attempt, a->stage, loglen, keep);
		log += loglen - keep;
		loglen = keep;
	}
	if (res->exit_code != 0)
		snprintf(why, sizeof(why), "stage '%.*s' %s %" PRId64, ING_STR_FMT(def->name),
		         res->timed_out       ? "timed out; killed by signal"
		         : res->exit_code < 0 ? "was killed by signal"
		                              : "exited with status",
		         res->exit_code < 0 ? -res->exit_code : res->exit_code);
	if (res->exit_code != 0 && !res->timed_out && res->limit_why != NULL &&
	    res->limit_why[0] != '\0') {
		char origin[300];
		limit_origin(a, res->limit_hit, origin, sizeof(origin));
		snprintf(why, sizeof(why), "stage '%.*s': %s (%s %" PRId64 ")%s",
		         ING_STR_FMT(def->name), res->limit_why,
		         res->exit_code < 0 ? "killed by signal" : "exit status",
		         res->exit_code < 0 ? -res->exit_code : res->exit_code, origin);
	}
	if (why[0] != '\0')
		a->failed = true;
	if (a->failed)
		snprintf(a->why, sizeof(a->why), "%s", why);

	/* What follows the stage goes in the same report: the job's end after
	 * a failed or the last stage, else the next stage's start. */
	bool last = a->failed || a->stage + 1 >= a->target.nstages;
	msgpack_packer *pk = report_begin(a, "stage_finish", last ? 8 : 6, last);
	mp_pack_cstr(pk, "stage");
	msgpack_pack_uint32(pk, a->stage);
	mp_pack_cstr(pk, "exit_code");
	msgpack_pack_int64(pk, res->exit_code == 0 && a->failed ? 1 : res->exit_code);
	mp_pack_cstr(pk, "duration_ms");
	msgpack_pack_uint64(pk, res->duration_ms);
	mp_pack_cstr(pk, "log");
	mp_pack_bin(pk, log, loglen);
	mp_pack_cstr(pk, "outputs");
	msgpack_pack_array(pk, a->failed ? 0 : nouts);
	for (uint32_t i = 0; !a->failed && i < nouts; i++) {
		msgpack_pack_map(pk, 2);
		mp_pack_cstr(pk, "path");
		mp_pack_str(pk, names[i]);
		mp_pack_cstr(pk, "data");
		mp_pack_bin(pk, outs[i].ptr, outs[i].len);
	}
	mp_pack_cstr(pk, "then");
	mp_pack_cstr(pk, last ? "finish" : "next");
	if (last) {
		mp_pack_cstr(pk, "outcome");
		mp_pack_cstr(pk, a->failed ? "failed" : "succeeded");
		mp_pack_cstr(pk, "message");
		mp_pack_cstr(pk, a->failed ? a->why : "");
		ING_LOG_INFO("attempt finished job=%" PRIu64 " attempt=%" PRIu32
		             " outcome=%s msg=\"%s\"",
		             a->job, a->attempt, a->failed ? "failed" : "succeeded",
		             a->failed ? a->why : "");
	}
	report_send(a);
}

/* The node's GPU of that index; NULL when it no longer offers it. */
static const struct node_gpu *gpu_of(const struct node_config *c, uint32_t index)
{
	for (unsigned i = 0; i < c->ngpus; i++)
		if (c->gpus[i].index == index)
			return &c->gpus[i];
	return NULL;
}

/* Whether the attempt can be kept to its GPUs: it holds some, and the
 * node knows the uuid and the device file of each (node_gpu_pinned). */
static bool attempt_gpus_pinned(const struct node_attempt *a)
{
	const struct node_config *c = node_cfg(a->w->n);
	for (uint32_t i = 0; i < a->ngpus; i++) {
		const struct node_gpu *g = gpu_of(c, a->gpus[i]);
		if (g == NULL || !node_gpu_pinned(g))
			return false;
	}
	return a->ngpus > 0;
}

static void run_stage(struct node_attempt *a)
{
	const struct rec_stage_def *def = &a->target.stages[a->stage];
	char *argv[MAX_ARGS];
	char *env[ING_MAX_ENV + 4];
	unsigned argc = 0, envc = 0;
	bool has_path = false;
	const bool gpu_env = node_cfg(a->w->n)->ngpus > 0 || a->ngpus > 0;
	char out_dir[600];
	struct stage_spec spec;
	struct ing_error e;

	stage_dir(a, a->stage, out_dir, sizeof(out_dir));
	/* In a sandbox, a stage owns the directory: the daemon creates what it
	 * needs there without following what a stage may have planted. */
	const char *out_rel = out_dir + strlen(a->dir) + 1;
	int no_fd;
	if (a->sb != NULL) {
		if (sandbox_create(a->sb, out_rel, true, &no_fd, &e) != 0) {
			a->failed = true;
			report_finish(a, "failed", e.msg);
			return;
		}
	} else if (ing_mkdirs(out_dir, 0700, NULL) != 0) {
		a->failed = true;
		report_finish(a, "failed", "cannot create the stage's output directory");
		return;
	}
	char prev[600];
	if (a->stage > 0)
		stage_dir(a, a->stage - 1, prev, sizeof(prev));
	else
		snprintf(prev, sizeof(prev), "%s/src", a->dir);
	struct template_ctx tc = {
	    .dir = a->dir,
	    .sources = a->sources,
	    .nsources = a->nsources,
	    .params = a->params,
	    .nparams = a->nparams,
	    .job = a->job,
	    .attempt = a->attempt,
	    .out = out_dir,
	    .prev = prev,
	    .stage = def->name,
	};
	for (uint32_t i = 0; i < def->nargv; i++) {
		char why[ING_MESSAGE_MAX];
		int rv = template_expand(&tc, def->argv[i], a->zone, argv, &argc, MAX_ARGS, why,
		                         sizeof(why));
		if (rv != 0) {
			a->failed = true;
			if (rv == ING_ENOTFOUND)
				ING_LOG_WARN("stage argv uses a missing parameter job=%" PRIu64
				             " attempt=%" PRIu32 " why=\"%s\"",
				             a->job, a->attempt, why);
			report_finish(a, "failed",
			              rv == ING_ENOTFOUND ? why
			              : rv == ING_ENOMEM
			                  ? "out of memory on the worker"
			                  : "argv too long after expanding placeholders");
			return;
		}
	}
	argv[argc] = NULL;
	for (uint32_t i = 0; i < def->nenv; i++) {
		char kv[ING_NAME_MAX + ING_ARG_MAX + 2];
		if (gpu_env && (ing_str_eq_c(def->env[i].key, "CUDA_VISIBLE_DEVICES") ||
		                ing_str_eq_c(def->env[i].key, "CUDA_DEVICE_ORDER")))
			continue; /* the worker's, below */
		int k = snprintf(kv, sizeof(kv), "%.*s=%.*s", ING_STR_FMT(def->env[i].key),
		                 ING_STR_FMT(def->env[i].value));
		template_append(env, &envc, ING_MAX_ENV + 4, a->zone, kv, (size_t)k);
		if (ing_str_eq_c(def->env[i].key, "PATH"))
			has_path = true;
	}
	if (!has_path)
		template_append(env, &envc, ING_MAX_ENV + 4, a->zone, "PATH=" STAGE_DEFAULT_PATH,
		                strlen("PATH=" STAGE_DEFAULT_PATH));
	if (gpu_env) {
		char kv[64 + (ING_GPU_UUID_MAX + 1) * ING_MAX_GPUS];
		uint32_t sees = rec_stage_gpus(&a->target, a->stage);
		const bool by_uuid = attempt_gpus_pinned(a);
		int k = snprintf(kv, sizeof(kv), "CUDA_VISIBLE_DEVICES=");
		for (uint32_t i = 0; i < sees && i < a->ngpus; i++)
			if (by_uuid)
				k += snprintf(kv + k, sizeof(kv) - (size_t)k, "%s%s", i ? "," : "",
				              gpu_of(node_cfg(a->w->n), a->gpus[i])->uuid);
			else
				k += snprintf(kv + k, sizeof(kv) - (size_t)k, "%s%" PRIu32,
				              i ? "," : "", a->gpus[i]);
		template_append(env, &envc, ING_MAX_ENV + 4, a->zone, kv, (size_t)k);
		template_append(env, &envc, ING_MAX_ENV + 4, a->zone,
		                "CUDA_DEVICE_ORDER=PCI_BUS_ID",
		                strlen("CUDA_DEVICE_ORDER=PCI_BUS_ID"));
	}
	env[envc] = NULL;

	memset(&spec, 0, sizeof(spec));
	spec.cwd = a->dir;
	spec.argv = (const char *const *)argv;
	spec.env = (const char *const *)env;
	spec.timeout_ms = def->timeout_ms;
	spec.log_cap_bytes = 1u << 20;
	/* The target's limits within the node's ceilings. */
	const struct node_config *c = node_cfg(a->w->n);
	spec.limits.cpu_seconds = within(def->limits.cpu_seconds, c->stage_cpu_seconds);
	spec.limits.memory_bytes = within(def->limits.memory_bytes, c->stage_memory_bytes);
	spec.limits.open_files = within(def->limits.open_files, c->stage_open_files);
	spec.limits.file_size_bytes = within(def->limits.output_bytes, c->stage_output_bytes);
	spec.sandbox = a->sb;
	spec.processes = within(def->limits.processes, c->stage_processes);
	char stdout_path[900];
	if (def->stdout_path.len > 0 && a->sb != NULL) {
		snprintf(stdout_path, sizeof(stdout_path), "%s/%.*s", out_rel,
		         ING_STR_FMT(def->stdout_path));
		if (sandbox_create(a->sb, stdout_path, false, &spec.stdout_fd, &e) != 0) {
			a->failed = true;
			report_finish(a, "failed", e.msg);
			return;
		}
		spec.use_stdout_fd = true;
	} else if (def->stdout_path.len > 0) {
		snprintf(stdout_path, sizeof(stdout_path), "%s/%.*s", out_dir,
		         ING_STR_FMT(def->stdout_path));
		if (ing_mkdirs_parent(stdout_path, 0700, NULL) != 0) {
			a->failed = true;
			report_finish(a, "failed", "cannot create the stage's stdout directory");
			return;
		}
		spec.stdout_path = stdout_path;
	}
	ING_LOG_DEBUG("stage starting job=%" PRIu64 " attempt=%" PRIu32
	              " stage=%u name=%.*s argv0=%s",
	              a->job, a->attempt, a->stage, ING_STR_FMT(def->name), argv[0]);
	if (stage_start(node_loop(a->w->n), &spec, on_stage_done, a, &a->run, &e) != 0) {
		a->failed = true;
		report_finish(a, "failed", e.msg);
		return;
	}
	a->step = STEP_RUNNING;
	/* A sandbox keeps its own record (outside the directory the stage
	 * could rewrite); a plain process group is remembered here: if this
	 * daemon dies, the next start kills what is left of it (worker_reap). */
	if (a->sb != NULL)
		return;
	if (record_pgid(a->dir, stage_pid(a->run)) != 0) {
		/* Without it a crash of this daemon would leave the stage
		 * running unseen: stop it now and fail the attempt. */
		a->failed = true;
		a->pgid_unrecorded = true;
		snprintf(a->why, sizeof(a->why),
		         "stage '%.*s': the worker cannot record the stage's process group "
		         "(in %s); it was stopped",
		         ING_STR_FMT(def->name), a->dir);
		stage_cancel(a->run);
	}
}

/* The job's state in a worker.report result ({id, state}), "" if none. */
static struct ing_str result_state(const msgpack_object *result)
{
	if (result != NULL && result->type == MSGPACK_OBJECT_MAP) {
		for (uint32_t i = 0; i < result->via.map.size; i++) {
			const msgpack_object_kv *kv = &result->via.map.ptr[i];
			if (kv->key.type == MSGPACK_OBJECT_STR && kv->key.via.str.size == 5 &&
			    memcmp(kv->key.via.str.ptr, "state", 5) == 0 &&
			    kv->val.type == MSGPACK_OBJECT_STR)
				return (struct ing_str){kv->val.via.str.ptr, kv->val.via.str.size};
		}
	}
	return (struct ing_str){"", 0};
}

/* After a successful report that is not the attempt's last: the next thing
 * to do.  A stage_finish with `then: next` started the next stage, unless
 * the state machine ended the job instead (a cancel was pending). */
static void step_next(struct node_attempt *a, const msgpack_object *result)
{
	bool finished_stage = strcmp(a->report_kind, "stage_finish") == 0;
	uint8_t state;
	if (finished_stage && rec_job_state_parse(result_state(result), &state) == 0 &&
	    rec_job_state_final(state)) {
		ING_LOG_INFO("attempt ended by the cluster job=%" PRIu64 " attempt=%" PRIu32
		             " state=%s",
		             a->job, a->attempt, rec_job_state_name(state));
		attempt_end(a);
		return;
	}
	if (finished_stage)
		a->stage++;
	if (a->cancel) {
		report_finish(a, "cancelled", "cancelled");
		return;
	}
	run_stage(a);
}

/* ---- attempts ----------------------------------------------------------- */

static struct node_attempt *find(struct worker *w, uint64_t job, uint32_t attempt)
{
	for (struct node_attempt *a = w->attempts; a != NULL; a = a->next)
		if (a->job == job && a->attempt == attempt)
			return a;
	return NULL;
}

static void attempt_open_sandbox(struct node_attempt *a);

/* Runs stage 0 of a ready attempt once it has a slot; until then it is
 * parked (start_parked runs it when a slot is free).  With the sandbox on,
 * the sandbox is opened only then (attempt_begin comes back here), so a
 * node holds no more sandboxes (identities, quota file systems) than its
 * slots.  A cancelled one needs no slot to report so. */
static void attempt_run(struct node_attempt *a)
{
	if (a->cancel) {
		report_finish(a, "cancelled", "cancelled");
		return;
	}
	if (!slot_take(a)) {
		a->parked = true;
		ING_LOG_DEBUG("attempt waits for a slot job=%" PRIu64 " attempt=%" PRIu32, a->job,
		              a->attempt);
		return;
	}
	if (a->w->sandbox != NULL && a->sb == NULL && !a->sb_opening) {
		attempt_open_sandbox(a);
		return;
	}
	if (a->started) {
		run_stage(a); /* the assignment was its start */
		return;
	}
	msgpack_packer *pk = report_begin(a, "stage_start", 1, false);
	mp_pack_cstr(pk, "stage");
	msgpack_pack_uint32(pk, 0);
	report_send(a);
}

/* Gives the free slots to the parked attempts, oldest first. */
static void start_parked(struct worker *w)
{
	if (w->starting)
		return; /* the loop below goes on */
	w->starting = true;
	while (w->busy < slot_limit(w)) {
		struct node_attempt *next = NULL;
		for (struct node_attempt *a = w->attempts; a != NULL; a = a->next)
			if (a->parked && !a->fenced && (next == NULL || a->seq < next->seq))
				next = a;
		if (next == NULL)
			break;
		next->parked = false;
		attempt_run(next);
	}
	w->starting = false;
}

/* Writes the sources (into the sandbox's fresh file system when there is
 * one, handing them to its identity) and asks to start stage 0. */
static void attempt_begin(struct node_attempt *a)
{
	char path[900];
	for (uint32_t i = 0; i < a->nsources; i++) {
		snprintf(path, sizeof(path), "%s/src/%.*s", a->dir,
		         ING_STR_FMT(a->sources[i].path));
		if (write_attempt_file(path, a->src_data[i].ptr, a->src_data[i].len) != 0) {
			a->failed = true;
			report_finish(a, "failed", "cannot write the job's sources on the worker");
			return;
		}
	}
	if (a->sb != NULL && a->nsources > 0) {
		struct ing_error e;
		snprintf(path, sizeof(path), "%s/src", a->dir);
		if (sandbox_hand_over(a->sb, path, &e) != 0) {
			a->failed = true;
			report_finish(a, "failed", e.msg);
			return;
		}
	}
	ING_LOG_INFO("attempt starting job=%" PRIu64 " attempt=%" PRIu32
	             " stages=%u gpus=%u dir=%s sandbox=%s",
	             a->job, a->attempt, a->target.nstages, a->ngpus, a->dir,
	             a->sb != NULL ? "on" : "off");
	a->stage = 0;
	attempt_run(a);
}

static void on_sandbox_open(struct sandbox *sb, int status, const struct ing_error *e, void *data)
{
	struct node_attempt *a = data;
	a->sb_opening = false;
	a->sb = sb;
	if (a->fenced || node_stopping(a->w->n)) {
		attempt_end(a);
		return;
	}
	if (status != 0) {
		char why[ING_MESSAGE_MAX];
		snprintf(why, sizeof(why), "the worker cannot set up the stage sandbox: %s",
		         e != NULL ? e->msg : ing_err_msg(status));
		a->failed = true;
		report_finish(a, "failed", why);
		return;
	}
	attempt_begin(a);
}

/* The device files a sandbox gets: the config's sandbox_devices, then the
 * NVIDIA ones of a GPU attempt (host path in dir, at /dev/NAME inside). */
struct dev_list {
	struct sandbox_device d[NODE_SANDBOX_PATHS_MAX + GPU_DEVICES_MAX];
	char path[GPU_DEVICES_MAX][2][NODE_PATH_MAX];
	size_t n, ngpu;
};

/* Adds dir/name at /dev/name when it is a character device (the driver
 * creates only the files its features need: a missing one is skipped). */
static void add_gpu_device(struct dev_list *l, const char *dir, const char *name)
{
	struct stat st;
	if (l->ngpu == GPU_DEVICES_MAX)
		return;
	char *src = l->path[l->ngpu][0], *at = l->path[l->ngpu][1];
	if (snprintf(src, NODE_PATH_MAX, "%s/%s", dir, name) >= NODE_PATH_MAX ||
	    snprintf(at, NODE_PATH_MAX, "/dev/%s", name) >= NODE_PATH_MAX || stat(src, &st) != 0 ||
	    !S_ISCHR(st.st_mode))
		return;
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->d[i].path, src) == 0)
			return;
	l->d[l->n++] = (struct sandbox_device){.path = src, .at = at};
	l->ngpu++;
}

/* Adds every character device dir/PATTERN (PATTERN relative to dir). */
static void add_gpu_devices(struct dev_list *l, const char *dir, const char *pattern)
{
	char pat[NODE_PATH_MAX];
	glob_t g;
	memset(&g, 0, sizeof(g));
	if (snprintf(pat, sizeof(pat), "%s/%s", dir, pattern) >= (int)sizeof(pat) ||
	    glob(pat, 0, NULL, &g) != 0)
		return;
	for (size_t i = 0; i < g.gl_pathc; i++)
		add_gpu_device(l, dir, g.gl_pathv[i] + strlen(dir) + 1);
	globfree(&g);
}

/*
 * The NVIDIA device files of an attempt that holds GPUs: the driver's
 * control files that exist (nvidiactl, nvidia-uvm, nvidia-uvm-tools,
 * nvidia-modeset, nvidia-caps/ *) and /dev/nvidia<minor> of each GPU it
 * holds, no other; or, when one of its GPUs is not pinned (declared by the
 * config, device file unknown), every /dev/nvidia* file (weaker: the start
 * log says so).  None for an attempt without GPUs.
 */
static void attempt_gpu_devices(const struct node_attempt *a, struct dev_list *l)
{
	static const char *const control[] = {"nvidiactl", "nvidia-uvm", "nvidia-uvm-tools",
	                                      "nvidia-modeset"};
	const struct node_config *c = node_cfg(a->w->n);
	const char *dir = gpu_dev_dir();

	if (a->ngpus == 0)
		return;
	if (!attempt_gpus_pinned(a)) {
		add_gpu_devices(l, dir, "nvidia*");
		add_gpu_devices(l, dir, "nvidia-caps/*");
		return;
	}
	/* The GPUs' own files first: the control files never crowd them out. */
	for (uint32_t i = 0; i < a->ngpus; i++) {
		char name[32];
		size_t before = l->n;
		snprintf(name, sizeof(name), "nvidia%d", gpu_of(c, a->gpus[i])->minor);
		add_gpu_device(l, dir, name);
		if (l->n == before)
			ING_LOG_WARN("gpu device file missing job=%" PRIu64 " attempt=%" PRIu32
			             " gpu=%" PRIu32 " file=%s/%s",
			             a->job, a->attempt, a->gpus[i], dir, name);
	}
	for (size_t i = 0; i < sizeof(control) / sizeof(control[0]); i++)
		add_gpu_device(l, dir, control[i]);
	add_gpu_devices(l, dir, "nvidia-caps/*");
}

static void attempt_open_sandbox(struct node_attempt *a)
{
	const struct node_config *c = node_cfg(a->w->n);
	struct dev_list *devs = calloc(1, sizeof(*devs));
	char name[64];
	struct ing_error e;
	int rv;

	if (devs == NULL) {
		a->failed = true;
		report_finish(a, "failed", "out of memory on the worker");
		return;
	}
	for (unsigned i = 0; i < c->nsandbox_devices; i++)
		devs->d[devs->n++] = (struct sandbox_device){.path = c->sandbox_devices[i]};
	attempt_gpu_devices(a, devs);
	snprintf(name, sizeof(name), "job-%" PRIu64 "-a%" PRIu32, a->job, a->attempt);
	struct sandbox_request req = {
	    .name = name,
	    .tenant = a->tenant,
	    .work_dir = a->dir,
	    .disk_bytes = within(a->target.disk_bytes, c->work_quota_bytes),
	    .tmp_bytes = c->stage_tmp_bytes,
	    .network = a->target.network,
	    .devices = devs->d,
	    .ndevices = devs->n,
	};
	a->sb_opening = true;
	rv = sandbox_open(a->w->sandbox, &req, on_sandbox_open, a, &e); /* copies req */
	free(devs);
	if (rv != 0) {
		a->sb_opening = false;
		a->failed = true;
		char why[ING_MESSAGE_MAX];
		snprintf(why, sizeof(why), "the worker cannot set up the stage sandbox: %s", e.msg);
		report_finish(a, "failed", why);
	}
}

/* Starts the attempt of job j assigned here; `marked` says what the journal
 * said of it: 0 recorded now (and synced), 1 recorded by an earlier run,
 * negative when it could not be recorded. */
static void start_attempt(struct worker *w, struct store_txn *t, const struct rec_job *j,
                          int marked)
{
	struct node *n = w->n;
	struct node_attempt *a = calloc(1, sizeof(*a));
	struct ing_str val;

	if (a == NULL)
		return;
	a->w = w;
	a->job = j->id;
	a->attempt = j->attempt;
	a->seen = true;
	a->seq = ++w->seq;
	a->zone = msgpack_zone_new(MSGPACK_ZONE_CHUNK_SIZE);
	mp_out_init(&a->report);
	uv_timer_init(node_loop(n), &a->retry);
	a->retry.data = a;
	node_hold(n);
	a->next = w->attempts;
	w->attempts = a;
	snprintf(a->dir, sizeof(a->dir), "%s/work/job-%" PRIu64 "-a%" PRIu32, node_cfg(n)->data_dir,
	         a->job, a->attempt);

	/* Stage 0 running and nothing else: started by the assignment itself
	 * (job_assign v3).  Any other stage recorded means an earlier run of
	 * this daemon reported it. */
	a->started = j->nstages == 1 && j->stages[0].state == REC_STAGE_RUNNING;
	a->cancel = j->cancel_requested;
	if (marked != 0 || (j->nstages > 0 && !a->started)) {
		/* Started before a restart of this node (that run is gone), or
		 * cannot be recorded: never run it without the record. */
		msgpack_packer *pk = report_begin(a, "lost", 1, true);
		mp_pack_cstr(pk, "message");
		mp_pack_cstr(pk, marked < 0 ? "the node cannot record the attempt on its disk"
		                            : "the node restarted while the attempt ran");
		if (marked < 0)
			ING_LOG_ERROR("attempt lost: cannot record it on disk job=%" PRIu64
			              " attempt=%" PRIu32 " journal=%s/work/" WORKER_MARKERS_FILE,
			              a->job, a->attempt, node_cfg(n)->data_dir);
		else
			ING_LOG_WARN("attempt lost in a restart job=%" PRIu64 " attempt=%" PRIu32,
			             a->job, a->attempt);
		report_send(a);
		return;
	}
	if (a->zone == NULL || store_get(t, STORE_TARGETS, j->target, &val) != 0 ||
	    rec_target_decode(val, a->zone, &a->target, NULL) != 0 || a->target.nstages == 0) {
		a->failed = true;
		report_finish(a, "failed", "target of the job is missing on the worker");
		return;
	}
	rm_rf(a->dir);
	a->params = msgpack_zone_malloc(a->zone, (j->nparams + 1) * sizeof(*a->params));
	if (a->params == NULL) {
		a->failed = true;
		report_finish(a, "failed", "out of memory on the worker");
		return;
	}
	for (uint32_t i = 0; i < j->nparams; i++) {
		char *k = msgpack_zone_malloc(a->zone, j->params[i].key.len + 1);
		char *v = msgpack_zone_malloc(a->zone, j->params[i].value.len + 1);
		if (k == NULL || v == NULL) {
			a->failed = true;
			report_finish(a, "failed", "out of memory on the worker");
			return;
		}
		memcpy(k, j->params[i].key.ptr, j->params[i].key.len);
		memcpy(v, j->params[i].value.ptr, j->params[i].value.len);
		a->params[i].key = (struct ing_str){k, j->params[i].key.len};
		a->params[i].value = (struct ing_str){v, j->params[i].value.len};
	}
	a->nparams = j->nparams;
	a->ngpus = j->ngpus < ING_MAX_GPUS ? j->ngpus : ING_MAX_GPUS;
	if (a->ngpus > 0)
		memcpy(a->gpus, j->gpus, a->ngpus * sizeof(a->gpus[0]));
	a->nsources = j->nsources;
	a->sources = msgpack_zone_malloc(a->zone, (j->nsources + 1) * sizeof(*a->sources));
	a->src_data = msgpack_zone_malloc(a->zone, (j->nsources + 1) * sizeof(*a->src_data));
	if (a->sources == NULL || a->src_data == NULL) {
		a->failed = true;
		report_finish(a, "failed", "out of memory on the worker");
		return;
	}
	struct rec_sources inl = {0};
	uint32_t ninline = 0, used = 0;
	for (uint32_t i = 0; i < j->nsources; i++)
		ninline += j->sources[i].stored_inline;
	if (ninline > 0) {
		uint8_t k[8];
		store_be64(k, j->id);
		if (store_get(t, STORE_SOURCES, (struct ing_str){(const char *)k, 8}, &val) != 0 ||
		    rec_sources_decode(val, a->zone, &inl, NULL) != 0 || inl.n != ninline) {
			a->failed = true;
			report_finish(a, "failed", "the job's sources are missing on the worker");
			return;
		}
	}
	for (uint32_t i = 0; i < j->nsources; i++) {
		void *data;
		size_t len;
		char *p = msgpack_zone_malloc(a->zone, j->sources[i].path.len + 1);
		if (p == NULL) {
			a->failed = true;
			report_finish(a, "failed", "out of memory on the worker");
			return;
		}
		memcpy(p, j->sources[i].path.ptr, j->sources[i].path.len);
		a->sources[i] = j->sources[i];
		a->sources[i].path = (struct ing_str){p, j->sources[i].path.len};
		if (j->sources[i].stored_inline) {
			a->src_data[i] = inl.data[used++]; /* already in a->zone */
			continue;
		}
		if (store_artifact_read(t, j->sources[i].sha256, &data, &len) != 0) {
			a->failed = true;
			report_finish(a, "failed", "cannot read the job's sources on the worker");
			return;
		}
		char *copy = msgpack_zone_malloc(a->zone, len + 1);
		if (copy != NULL)
			memcpy(copy, data, len);
		free(data);
		if (copy == NULL) {
			a->failed = true;
			report_finish(a, "failed", "out of memory on the worker");
			return;
		}
		a->src_data[i] = (struct ing_str){copy, (uint32_t)len};
	}
	snprintf(a->tenant, sizeof(a->tenant), "%.*s", ING_STR_FMT(j->tenant));
	if (w->sandbox != NULL) {
		attempt_run(a); /* opens the sandbox once it has a slot */
		return;
	}
	reuse_spare(a);
	attempt_begin(a);
}

static void fence(struct node_attempt *a)
{
	a->fenced = true;
	if (a->run != NULL)
		stage_cancel(a->run);
	else if (a->step == STEP_WAIT_RETRY || a->step == STEP_IDLE) {
		uv_timer_stop(&a->retry);
		a->step = STEP_IDLE;
		attempt_end(a);
	}
}

int worker_new(struct node *n, struct worker **out)
{
	struct worker *w = calloc(1, sizeof(*w));
	if (w == NULL)
		return ING_ENOMEM;
	w->n = n;
	w->dirty = true; /* look at this node's assignments once at start */
	*out = w;
	return 0;
}

void worker_set_sandbox(struct worker *w, struct sandbox_host *h)
{
	w->sandbox = h;
}

void worker_free(struct worker *w)
{
	worker_markers_close(w->markers);
	if (w->sandbox != NULL && sandbox_host_free(w->sandbox) != 0)
		ING_LOG_ERROR("sandbox host freed with sandboxes open: leaked");
	free(w);
}

void worker_note_applied(struct worker *w)
{
	w->dirty = true;
}

void worker_note_committed(struct worker *w)
{
	w->dirty = true; /* markers_collect waits for a committed store */
}

/* Starts the attempts assigned to this node, stops fenced or cancelled ones. */
static void poll_assignments(struct worker *w)
{
	struct node *n = w->n;
	uint64_t self = node_id(n);
	struct store_txn *t;
	struct store_iter *it;
	struct ing_str k, v, val;
	uint8_t prefix[8], jk[8];
	msgpack_zone z;
	/* The (job, attempt) pairs assigned here now, for the markers. */
	uint64_t jobs[256];
	uint32_t attempts[256];
	unsigned count = 0;
	bool complete = true;
	/* The attempts to start, recorded in the journal with one sync. */
	struct {
		uint64_t job;
		int marked;
	} fresh[64];
	unsigned nfresh = 0;

	if (node_stopping(n) || store_read_begin(node_store(n), &t) != 0)
		return;
	msgpack_zone_init(&z, 4096);
	for (struct node_attempt *a = w->attempts; a != NULL; a = a->next)
		a->seen = false;
	store_be64(prefix, self);
	if (store_iter_open(t, STORE_ASSIGNMENTS, (struct ing_str){(const char *)prefix, 8}, &it) ==
	    0) {
		while (store_iter_next(it, &k, &v) == 0) {
			if (k.len != 16 || store_get_be64(k.ptr) != self)
				break;
			uint64_t job = store_get_be64(k.ptr + 8);
			struct rec_job j;
			store_be64(jk, job);
			if (store_get(t, STORE_JOBS, (struct ing_str){(const char *)jk, 8}, &val) !=
			        0 ||
			    rec_job_decode(val, &z, &j, NULL) != 0) {
				complete = false;
				continue;
			}
			if (count < sizeof(jobs) / sizeof(jobs[0])) {
				jobs[count] = job;
				attempts[count++] = j.attempt;
			} else {
				complete = false;
			}
			struct node_attempt *a = find(w, job, j.attempt);
			if (a == NULL && ended_recently(w, job, j.attempt)) {
				msgpack_zone_clear(&z);
				continue;
			}
			if (a == NULL && nfresh == sizeof(fresh) / sizeof(fresh[0])) {
				w->dirty = true; /* the rest at the next poll */
			} else if (a == NULL) {
				struct worker_markers *m = markers_of(w);
				fresh[nfresh].job = job;
				fresh[nfresh++].marked =
				    m == NULL ? -1 : worker_markers_add(m, job, j.attempt);
			} else {
				a->seen = true;
				if (j.cancel_requested && !a->cancel) {
					a->cancel = true;
					if (a->run != NULL)
						stage_cancel(a->run);
					if (a->parked) {
						a->parked = false;
						attempt_run(a); /* reports the cancel */
					}
				}
			}
			msgpack_zone_clear(&z);
		}
		store_iter_close(it);
		struct ing_error e;
		bool synced = w->markers == NULL || worker_markers_sync(w->markers, &e) == 0;
		if (!synced)
			ING_LOG_ERROR("attempt journal cannot be written msg=\"%s\"", e.msg);
		for (unsigned i = 0; i < nfresh; i++) {
			struct rec_job j;
			store_be64(jk, fresh[i].job);
			if (store_get(t, STORE_JOBS, (struct ing_str){(const char *)jk, 8}, &val) !=
			        0 ||
			    rec_job_decode(val, &z, &j, NULL) != 0)
				continue;
			start_attempt(w, t, &j,
			              fresh[i].marked == 0 && !synced ? -1 : fresh[i].marked);
			msgpack_zone_clear(&z);
		}
		markers_collect(w, jobs, attempts, count, complete);
	}
	/* Attempts no longer assigned here were fenced (or just finished). */
	for (struct node_attempt *a = w->attempts, *next; a != NULL; a = next) {
		next = a->next;
		if (!a->seen && !a->fenced && !a->finishing)
			fence(a);
	}
	msgpack_zone_destroy(&z);
	store_abort(t);
}

unsigned worker_busy(const struct worker *w)
{
	return w->busy;
}

unsigned worker_waiting(const struct worker *w)
{
	unsigned waiting = 0;
	for (const struct node_attempt *a = w->attempts; a != NULL; a = a->next)
		waiting += a->parked;
	return waiting;
}

void worker_flushed(struct worker *w)
{
	if (!w->dirty)
		return;
	w->dirty = false;
	poll_assignments(w);
}

void worker_stop_all(struct worker *w)
{
	for (struct node_attempt *a = w->attempts, *next; a != NULL; a = next) {
		next = a->next;
		a->fenced = true;
		if (a->run != NULL) {
			stage_abandon(a->run);
			a->run = NULL;
			a->step = STEP_IDLE;
		}
		uv_timer_stop(&a->retry);
		if (a->step != STEP_REPORTING) {
			a->step = STEP_IDLE;
			attempt_end(a);
		}
	}
}

/* Kills the processes of group `pgid` whose working directory lies under
 * `dir` (so a pid reused by an unrelated process is left alone). */
static void kill_leftovers(int pgid, const char *dir)
{
	char path[64], stat[512], cwd[900];
	struct dirent *d;
	DIR *proc = opendir("/proc");
	size_t dlen = strlen(dir);

	if (proc == NULL)
		return;
	while ((d = readdir(proc)) != NULL) {
		int pid = atoi(d->d_name);
		if (pid <= 1)
			continue;
		snprintf(path, sizeof(path), "/proc/%d/stat", pid);
		FILE *f = fopen(path, "r");
		if (f == NULL)
			continue;
		size_t got = fread(stat, 1, sizeof(stat) - 1, f);
		fclose(f);
		stat[got] = '\0';
		/* pid (comm) state ppid pgrp ...: comm may hold spaces */
		char *rp = strrchr(stat, ')');
		int ppid, pgrp;
		char state;
		if (rp == NULL || sscanf(rp + 1, " %c %d %d", &state, &ppid, &pgrp) != 3 ||
		    pgrp != pgid)
			continue;
		snprintf(path, sizeof(path), "/proc/%d/cwd", pid);
		ssize_t n = readlink(path, cwd, sizeof(cwd) - 1);
		if (n <= 0)
			continue;
		cwd[n] = '\0';
		if (strncmp(cwd, dir, dlen) == 0 && kill(pid, SIGKILL) == 0)
			ING_LOG_WARN("killed a stage process left by a previous run pid=%d dir=%s",
			             pid, dir);
	}
	closedir(proc);
}

void worker_reap(const char *data_dir)
{
	char work[600], path[900];
	struct dirent *d;
	DIR *dir;

	snprintf(work, sizeof(work), "%s/work", data_dir);
	dir = opendir(work);
	if (dir == NULL)
		return;
	while ((d = readdir(dir)) != NULL) {
		bool spare = strncmp(d->d_name, "spare-", 6) == 0;
		if (strncmp(d->d_name, "job-", 4) != 0 && !spare)
			continue;
		snprintf(path, sizeof(path), "%s/%s", work, d->d_name);
		int pgid = spare ? 0 : recorded_pgid(path);
		if (pgid > 1)
			kill_leftovers(pgid, path);
		rm_rf(path);
	}
	closedir(dir);
}
