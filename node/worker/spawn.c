/*
 * spawn.c - a stage's process started by a vfork-style clone (spawn.h).
 *
 * clone(CLONE_VM | CLONE_VFORK | CLONE_PIDFD): the child runs on a stack
 * of its own inside the daemon's memory, and the calling thread is
 * suspended until the child execs or exits, so nothing it reads changes
 * under it and what it writes into `struct child` (the failed step and
 * errno) is there when clone returns.  No page table is copied: the cost
 * no longer grows with the daemon's memory (uv_spawn's fork did).
 *
 * What the child may do: only system calls through libc wrappers that
 * touch no lock or heap (no malloc, no stdio, no logging): a lock held by
 * another thread of the daemon at the clone would never be released in
 * the child.  Everything it needs is prepared by the parent.
 *
 * Signals: the parent blocks every signal around the clone, so no handler
 * of the daemon runs on the child's borrowed memory; the child (which has
 * its own copy of the handler table: no CLONE_SIGHAND) resets every
 * disposition to the default, then unblocks everything just before the
 * exec, as uv_spawn's child did.
 *
 * Descriptors: the child inherits the daemon's, all close-on-exec but the
 * three it dup2s into 0, 1, 2; a source below 3 is duplicated above 2
 * first by the parent, so no dup2 overwrites another source.
 *
 * Kept between calls (worker_spawn runs on the event loop only): the
 * child's stack, which is free again once clone returns (the child has
 * exec'd or exited by then), and the descriptor of /dev/null its stdin
 * comes from.  Four system calls fewer for every stage (issue 16).
 */
#include "node/worker/spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define CHILD_STACK_BYTES (64u * 1024u)
#define SPAWN_SHELL       "/bin/sh"

#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif

struct child {
	const struct worker_spawn *s;
	char **sh_argv;   /* /bin/sh, the file, its arguments: for ENOEXEC */
	int in, out, err; /* dup2'd into 0, 1, 2 */
	/* Written by the child when a step fails. */
	const char *step;
	int errnum;
};

#if defined(__clang__) || __GNUC__ >= 8
#define NO_SANITIZE __attribute__((no_sanitize("address", "undefined")))
#else
#define NO_SANITIZE
#endif

NO_SANITIZE static int child_main(void *arg)
{
	struct child *c = arg;
	const struct worker_spawn *s = c->s;
	struct sigaction dfl;
	sigset_t none;

	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	for (int sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			(void)sigaction(sig, &dfl, NULL); /* libc's own signals refuse: fine */
	c->step = "setsid";
	if (setsid() < 0)
		goto fail;
	c->step = "setrlimit";
	for (size_t i = 0; i < s->nlimits; i++)
		if (setrlimit((__rlimit_resource_t)s->limits[i].resource, &s->limits[i].value) != 0)
			goto fail;
	c->step = "dup2";
	if (dup2(c->in, 0) < 0 || dup2(c->out, 1) < 0 || dup2(c->err, 2) < 0)
		goto fail;
	c->step = "chdir";
	if (chdir(s->cwd) != 0)
		goto fail;
	sigemptyset(&none);
	c->step = "sigprocmask";
	if (sigprocmask(SIG_SETMASK, &none, NULL) != 0)
		goto fail;
	c->step = "exec";
	execve(s->file, s->argv, s->env);
	if (errno == ENOEXEC) /* a script without "#!": the shell runs it, as execvp does */
		execve(SPAWN_SHELL, c->sh_argv, s->env);
fail:
	c->errnum = errno != 0 ? errno : EIO;
	_exit(127);
}

static void *child_stack = MAP_FAILED;
static int dev_null = -1;

static int err_of(int errnum)
{
	switch (errnum) {
	case ENOENT:
	case ENOTDIR: return ING_ENOTFOUND;
	case EACCES:
	case EPERM: return ING_EDENIED;
	case EAGAIN:
	case EMFILE:
	case ENFILE:
	case ENOMEM: return ING_EUNAVAILABLE;
	default: return ING_EIO;
	}
}

/* A descriptor of the daemon above 2 (a copy, *copy set, when it was not). */
static int above_stdio(int fd, int *copy)
{
	*copy = -1;
	if (fd > 2)
		return fd;
	*copy = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	return *copy;
}

int worker_spawn(const struct worker_spawn *s, int *pid, int *pidfd, struct ing_error *e)
{
	if (s == NULL || s->file == NULL || s->argv == NULL || s->argv[0] == NULL ||
	    s->env == NULL || s->cwd == NULL || s->stdout_fd < 0 || s->stderr_fd < 0 ||
	    s->nlimits > WORKER_SPAWN_LIMITS_MAX || (s->nlimits > 0 && s->limits == NULL))
		return ing_error_set(e, ING_EINVAL,
		                     "spawn: program, argv, env, cwd and stdio are "
		                     "required");
	struct child c = {.s = s, .in = -1, .out = -1, .err = -1};
	int copies[3] = {-1, -1, -1};
	int rv = 0;
	size_t argc = 0;
	while (s->argv[argc] != NULL)
		argc++;
	c.sh_argv = calloc(argc + 2, sizeof(*c.sh_argv));
	if (c.sh_argv == NULL)
		return ing_error_set(e, ING_EUNAVAILABLE, "spawn: out of memory");
	c.sh_argv[0] = (char *)SPAWN_SHELL;
	c.sh_argv[1] = (char *)s->file;
	for (size_t i = 1; i < argc; i++)
		c.sh_argv[i + 1] = s->argv[i];
	if (dev_null < 0)
		dev_null = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (dev_null < 0) {
		free(c.sh_argv);
		return ing_error_set(e, err_of(errno), "spawn: cannot open /dev/null: %s",
		                     strerror(errno));
	}
	c.in = above_stdio(dev_null, &copies[0]);
	c.out = above_stdio(s->stdout_fd, &copies[1]);
	c.err = above_stdio(s->stderr_fd, &copies[2]);
	if (c.in < 0 || c.out < 0 || c.err < 0) {
		rv = ing_error_set(e, err_of(errno), "spawn: cannot duplicate a descriptor: %s",
		                   strerror(errno));
		goto out;
	}
	if (child_stack == MAP_FAILED)
		child_stack = mmap(NULL, CHILD_STACK_BYTES, PROT_READ | PROT_WRITE,
		                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
	if (child_stack == MAP_FAILED) {
		rv = ing_error_set(e, ING_EUNAVAILABLE, "spawn: cannot map a stack: %s",
		                   strerror(errno));
		goto out;
	}
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int fd = -1;
	int p = clone(child_main, (char *)child_stack + CHILD_STACK_BYTES,
	              CLONE_VM | CLONE_VFORK | CLONE_PIDFD | SIGCHLD, &c, &fd);
	int clone_errno = errno;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (p < 0) {
		rv = ing_error_set(e, err_of(clone_errno), "spawn: clone failed: %s",
		                   strerror(clone_errno));
		goto out;
	}
	if (c.errnum != 0) {
		/* The child ended before its exec: reap it here. */
		int status;
		while (waitpid(p, &status, 0) < 0 && errno == EINTR)
			;
		close(fd);
		rv =
		    ing_error_set(e, err_of(c.errnum), "%s failed: %s", c.step, strerror(c.errnum));
		goto out;
	}
	*pid = p;
	*pidfd = fd;
out:
	for (int i = 0; i < 3; i++)
		if (copies[i] >= 0)
			close(copies[i]);
	free(c.sh_argv);
	return rv;
}
