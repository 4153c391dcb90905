/*
 * spawn.h - starts a stage's process without copying the daemon: a
 * vfork-style clone (the child borrows the daemon's memory until it execs,
 * the daemon's thread waits meanwhile) that returns a pidfd to watch the
 * child with.  libuv's uv_spawn forks, which copies the page tables of the
 * whole daemon for every stage (docs/performance.md, issue 16 phase 3).
 *
 * In the child, before the exec: every signal back to its default action
 * and none blocked, its own session and process group (setsid: pid ==
 * pgid == sid), the resource limits, stdin from /dev/null, stdout and
 * stderr from the descriptors given, the working directory.  Any step
 * that fails ends the child before the exec (status 127) and the call
 * reports which step and why: a command never runs without its limits.
 * A file the kernel cannot exec (ENOEXEC: a script without "#!") is run by
 * /bin/sh, as execvp (and so uv_spawn) did.
 */
#ifndef INGOT_NODE_WORKER_SPAWN_H
#define INGOT_NODE_WORKER_SPAWN_H

#include <stddef.h>
#include <sys/resource.h>

#include "common/err.h"

#define WORKER_SPAWN_LIMITS_MAX 8

struct worker_spawn_limit {
	int resource; /* RLIMIT_* */
	struct rlimit value;
};

struct worker_spawn {
	const char *file;         /* the program, a path (not searched) */
	char *const *argv;        /* NULL-terminated */
	char *const *env;         /* NULL-terminated; the child's whole environment */
	const char *cwd;          /* the child's working directory */
	int stdout_fd, stderr_fd; /* the daemon's descriptors, kept open by it */
	const struct worker_spawn_limit *limits;
	size_t nlimits; /* at most WORKER_SPAWN_LIMITS_MAX */
};

/*
 * Starts the child: 0 with *pid and *pidfd (close-on-exec; readable once
 * the child exited; the caller reaps it with waitpid and closes the pidfd).
 * Errors (nothing left running, nothing to reap): ING_EINVAL (a NULL or
 * empty field, too many limits), ING_ENOTFOUND (the program or the working
 * directory does not exist), ING_EDENIED (not allowed: exec, a limit above
 * the hard one), ING_EUNAVAILABLE (out of processes or descriptors), ING_EIO
 * (anything else); e says which step failed and the system's reason.
 */
int worker_spawn(const struct worker_spawn *s, int *pid, int *pidfd, struct ing_error *e);

#endif
