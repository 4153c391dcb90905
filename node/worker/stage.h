/*
 * stage.h - runs ONE stage of a job (a real toolchain command) as a child
 * process group on a libuv loop: own session and process group, stdin from
 * /dev/null, stdout and stderr interleaved into one capped log (or stdout
 * into a file, stderr to the log), resource limits applied in the child, a
 * timeout (SIGTERM, then SIGKILL), cancel.
 *
 * The caller owns nothing of a run: it frees itself after its `done`
 * callback returns (or, after stage_abandon, on its own).  Everything the
 * spec points to is copied by stage_start; the spec may go away after it.
 */
#ifndef INGOT_NODE_WORKER_STAGE_H
#define INGOT_NODE_WORKER_STAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common/err.h"
#include "node/worker/sandbox.h"

/* Applied in the child (soft limit; hard limit of CPU is one second more so
 * the child gets SIGXCPU before SIGKILL).  0 means: no limit, inherited. */
struct stage_limits {
	uint64_t cpu_seconds;     /* RLIMIT_CPU */
	uint64_t memory_bytes;    /* RLIMIT_AS */
	uint64_t open_files;      /* RLIMIT_NOFILE */
	uint64_t file_size_bytes; /* RLIMIT_FSIZE */
};

#define STAGE_DEFAULT_KILL_GRACE_MS 2000u
#define STAGE_DEFAULT_LOG_CAP_BYTES (1024u * 1024u)
#define STAGE_DEFAULT_PATH          "/usr/local/bin:/usr/bin:/bin"

struct stage_spec {
	/* Working directory of the child (must exist). */
	const char *cwd;
	/* NULL-terminated, argv[0] non-empty.  argv[0] containing a '/' is a
	 * path (relative ones to cwd); otherwise it is looked up on the PATH
	 * found in env (STAGE_DEFAULT_PATH when env has none). */
	const char *const *argv;
	/* NULL-terminated KEY=VALUE: the child's whole environment; nothing is
	 * inherited from the daemon.  NULL means an empty environment. */
	const char *const *env;
	/* SIGTERM to the whole group when it passes, SIGKILL kill_grace_ms
	 * later.  0: no timeout. */
	uint64_t timeout_ms;
	/* 0: STAGE_DEFAULT_KILL_GRACE_MS.  Also how long output pipes may stay
	 * open after the child exited (a backgrounded grandchild holding them)
	 * before the group is SIGKILLed and the pipe closed. */
	uint64_t kill_grace_ms;
	struct stage_limits limits;
	/* stdout+stderr, interleaved as written, kept up to this many bytes;
	 * the rest is counted and dropped.  0: STAGE_DEFAULT_LOG_CAP_BYTES. */
	size_t log_cap_bytes;
	/* NULL: stdout goes to the log.  Otherwise the child's stdout is this
	 * file (relative paths to cwd), created or truncated with mode 0600;
	 * stderr still goes to the log.  Its size is bounded only by
	 * limits.file_size_bytes.  Failing to open it is a spawn failure. */
	const char *stdout_path;
	/* With use_stdout_fd, the child's stdout is stdout_fd instead
	 * (stdout_path is then ignored); stage_start takes the descriptor over
	 * (closes it) in every case, errors included. */
	bool use_stdout_fd;
	int stdout_fd;
	/* NULL: a plain child process group.  Otherwise the stage runs in this
	 * sandbox (node/worker/sandbox.h; it must be open and idle), with
	 * `limits` enforced by it, plus `processes` (0: none); cancel and the
	 * timeout signal the whole sandbox, and an exit status 128+N of the
	 * command is reported as killed by signal N (bubblewrap cannot tell). */
	struct sandbox *sandbox;
	uint64_t processes;
};

struct stage_result {
	/* Exit status 0-255, or -N when killed by signal N.  127 when
	 * spawn_failed. */
	int64_t exit_code;
	bool timed_out;       /* the timeout fired (the group was signalled) */
	bool cancelled;       /* stage_cancel was called */
	bool spawn_failed;    /* could not start (program not found, bad cwd...):
	                         the log says why */
	uint64_t duration_ms; /* from stage_start to the end of the run */
	/* Borrowed, valid during the callback only; NUL-terminated after
	 * log_len bytes (the output itself may contain NULs). */
	const char *log;
	size_t log_len;
	bool log_truncated;       /* output went past the cap */
	uint64_t log_total_bytes; /* all output bytes, kept or dropped */
	/* In a sandbox, the limit that ended the stage ("memory limit of 1 GiB
	 * reached: ...", "work directory over its 2 GiB quota"), else "".
	 * Valid during the callback only. */
	const char *limit_why;
	/* Which limit that was (SANDBOX_HIT_NONE when limit_why is ""). */
	enum sandbox_limit_hit limit_hit;
};

struct stage_run;

/* Runs exactly once per run not abandoned: never inside stage_start; after
 * the child exited AND its output pipe closed (or was closed by force after
 * the grace).  `res` and its log are valid during the call only.  The run is
 * freed after the callback returns: do not use `r` afterwards, and do not
 * call stage_cancel/stage_abandon on it from inside the callback (they are
 * no-ops there). */
typedef void (*stage_done_cb)(struct stage_run *r, const struct stage_result *res, void *data);

/*
 * Starts the child described by `spec` on `loop`; `done(r, res, data)`
 * reports its end.  `*out` (may be NULL) is set on success only and stays
 * valid until done has returned.
 *
 * A command that cannot be started (argv[0] not found or not executable,
 * cwd missing, a limit the child cannot set on itself, stdout_path that
 * cannot be opened, exec failure) is not an error here: stage_start returns 0 and done reports
 * spawn_failed.
 *
 * Errors (done is then never called; handles already opened are being
 * closed, so the loop must still run for the memory to be released):
 * ING_EINVAL (NULL loop/spec/done/cwd, empty argv), ING_ENOMEM, or the
 * translation (ing_err_from_uv) of a libuv failure to create the output
 * pipe (ING_EUNAVAILABLE when out of file descriptors, ING_EIO...).
 */
int stage_start(uv_loop_t *loop, const struct stage_spec *spec, stage_done_cb done, void *data,
                struct stage_run **out, struct ing_error *e);

/* Process id of the child, which is also its process group id (0 when the
 * spawn failed). */
int stage_pid(const struct stage_run *r);

/*
 * Kills the whole process group now: SIGTERM, then SIGKILL kill_grace_ms
 * later.  done still runs (once the group is gone) and reports cancelled.
 * Valid until done has run; calling it twice is harmless.
 */
void stage_cancel(struct stage_run *r);

/*
 * For a run still alive when the daemon stops: SIGKILLs the group and
 * closes the run's handles; done is never called, the run frees itself in
 * its last close callback (so the loop must still be run).  The killed
 * child is not reaped by libuv afterwards; use stage_cancel during normal
 * operation.  Valid until done has run.
 */
void stage_abandon(struct stage_run *r);

#endif
