/*
 * stage.c - one stage of a job as a child process group (see stage.h).
 *
 * Happy path: stage_start resolves argv[0] on the PATH of the stage's own
 * environment, creates one pipe whose write end becomes the child's stdout
 * AND stderr (so the log interleaves exactly as written; with stdout_path,
 * stdout is that file instead, opened by the daemon), and starts the
 * child through worker_spawn (node/worker/spawn.h: a vfork-style clone, no
 * copy of the daemon's page tables, a pidfd watched by a uv_poll_t for its
 * exit): it calls setsid, so pid == pgid == sid and kill(-pid) reaches
 * every descendant that did not setsid itself, and it sets the stage's
 * resource limits on itself before the exec (a failure there ends it
 * before the command runs: spawn_failed).  Output is
 * read into a log that grows up to the cap; the rest is only counted.  The
 * run ends when the child has exited AND the pipe reached EOF; then any
 * straggler left in the group is SIGKILLed, done is called, and the handles
 * are closed; the last close callback frees the run.
 *
 * In a sandbox (spec.sandbox, node/worker/sandbox.h) the child is started
 * by sandbox_spawn instead: the sandbox applies the limits,
 * every "signal the group" below signals the whole sandbox, an exit
 * status 128+N is a death by signal N, and when the stage failed,
 * sandbox_explain names the limit that ended it (res.limit_why).
 *
 * Handles: exitw (uv_poll_t on the pidfd; proc, a uv_process_t, in a
 * sandbox), out (read end of the pipe), timer.  One
 * timer serves every deadline, as they never overlap:
 *   TIMER_DEFER    0 ms: report a spawn failure outside stage_start;
 *   TIMER_TIMEOUT  timeout_ms after the start: SIGTERM the group;
 *   TIMER_KILL     grace after a SIGTERM (timeout or cancel): SIGKILL it;
 *   TIMER_DRAIN    grace after the child exited with the pipe still open
 *                  (a backgrounded grandchild holds it): SIGKILL the group,
 *                  close the pipe by force, and finish.
 *
 * Invariants:
 *   - done runs at most once (`finished`), never from stage_start, and
 *     never after stage_abandon;
 *   - the timer is closed only by finish (after done) or by an abandon /
 *     failed start, so `pending_closes` cannot reach 0 before done ran;
 *     the run is freed when it does reach 0 with `finished` set;
 *   - the group is signalled only while it is known to exist: before the
 *     child is reaped, or while the pipe is still open after it (a live
 *     member pins the pgid: Linux does not reuse a pid that is still some
 *     process's pgid).
 *
 * Failure modes:
 *   - program not found / not executable, cwd missing, a limit that cannot
 *     be set, stdout file that cannot be opened, exec failure: spawn_failed,
 *     exit_code 127, the log line says why;
 *   - a child ignoring SIGTERM: SIGKILL after the grace;
 *   - output never reaching EOF (a descendant escaped the group with the
 *     pipe): closed by force one grace after the child exited;
 *   - out of memory while logging: the bytes are counted and dropped, the
 *     log marked truncated;
 *   - a read error on the pipe is treated as EOF.
 *   Residual: the final straggler sweep after the child was reaped could in
 *   theory hit a new process group that reused the pid, when the old group
 *   was already empty; it runs within one loop iteration of the reap.
 */
#include "node/worker/stage.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/log.h"
#include "common/uverr.h"
#include "node/worker/sandbox.h"
#include "node/worker/spawn.h"

#define SCRATCH_BYTES     (64u * 1024u)
#define LOG_INITIAL_BYTES 4096u

enum timer_phase {
	TIMER_IDLE,
	TIMER_DEFER,
	TIMER_TIMEOUT,
	TIMER_KILL,
	TIMER_DRAIN,
};

struct stage_run {
	uv_process_t proc; /* in a sandbox (sandbox_spawn) */
	uv_poll_t exitw;   /* otherwise: the child's pidfd, readable at its exit */
	int pidfd;
	uv_pipe_t out;
	uv_timer_t timer;
	bool proc_open, exitw_open, out_open, timer_open; /* initialised, not closing */
	int pending_closes;

	stage_done_cb done;
	void *data;

	/* owned copies */
	char *cwd;
	char **argv; /* what is exec'd: the program resolved, its args */
	char **env;

	uint64_t timeout_ms;
	uint64_t grace_ms;
	uint64_t start_ns;
	int pid;
	struct sandbox *sandbox; /* borrowed; NULL: a plain process group */
	int term_signal;         /* as libuv reported it (sandbox_explain) */
	int64_t raw_status;
	char limit_why[ING_ERROR_MSG_MAX];
	enum timer_phase phase;
	bool exited, eof, finished, in_done;
	struct stage_result res;

	char *log;
	size_t log_len, log_alloc, log_cap;
	char scratch[SCRATCH_BYTES];
};

/* ---- memory ------------------------------------------------------------ */

static void free_strv(char **v)
{
	if (v == NULL)
		return;
	for (char **p = v; *p != NULL; p++)
		free(*p);
	free(v);
}

static void run_free(struct stage_run *r)
{
	free(r->cwd);
	free_strv(r->argv);
	free_strv(r->env);
	free(r->log);
	if (r->pidfd >= 0)
		close(r->pidfd);
	free(r);
}

/* A NULL-terminated copy of `prefix` (n strings) followed by `v` (NULL-
 * terminated, may be NULL); NULL when out of memory. */
static char **strv_concat(const char *const *prefix, size_t n, const char *const *v)
{
	size_t m = 0;
	while (v != NULL && v[m] != NULL)
		m++;
	char **c = calloc(n + m + 1, sizeof(*c));
	if (c == NULL)
		return NULL;
	for (size_t i = 0; i < n + m; i++) {
		c[i] = strdup(i < n ? prefix[i] : v[i - n]);
		if (c[i] == NULL) {
			free_strv(c);
			return NULL;
		}
	}
	return c;
}

/* ---- the log ----------------------------------------------------------- */

static void log_append(struct stage_run *r, const char *p, size_t n)
{
	r->res.log_total_bytes += n;
	size_t room = r->log_cap - r->log_len;
	size_t keep = n < room ? n : room;
	if (keep < n)
		r->res.log_truncated = true;
	if (keep == 0)
		return;
	if (r->log_len + keep + 1 > r->log_alloc) {
		size_t want = r->log_alloc == 0 ? LOG_INITIAL_BYTES : r->log_alloc;
		while (want < r->log_len + keep + 1)
			want *= 2;
		if (want > r->log_cap + 1)
			want = r->log_cap + 1;
		char *g = realloc(r->log, want);
		if (g == NULL) {
			r->res.log_truncated = true;
			return;
		}
		r->log = g;
		r->log_alloc = want;
	}
	memcpy(r->log + r->log_len, p, keep);
	r->log_len += keep;
	r->log[r->log_len] = '\0';
}

/* A line of our own in the log ("stage: ..."), so that whoever reads the
 * log sees why the stage ended the way it did. */
static void log_note(struct stage_run *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void log_note(struct stage_run *r, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	size_t len = (size_t)n < sizeof(line) - 2 ? (size_t)n : sizeof(line) - 2;
	line[len++] = '\n';
	log_append(r, line, len);
}

/* ---- program lookup ---------------------------------------------------- */

static bool is_executable_file(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

/* dir/name, with a relative dir taken relative to cwd; NULL on ENOMEM. */
static char *join_path(const char *cwd, const char *dir, size_t dir_len, const char *name)
{
	size_t cl = strlen(cwd), nl = strlen(name);
	char *p = malloc(cl + dir_len + nl + 3);
	if (p == NULL)
		return NULL;
	size_t k = 0;
	if (dir_len == 0 || dir[0] != '/') {
		memcpy(p, cwd, cl);
		k = cl;
		p[k++] = '/';
	}
	memcpy(p + k, dir, dir_len);
	k += dir_len;
	if (dir_len > 0)
		p[k++] = '/';
	memcpy(p + k, name, nl);
	p[k + nl] = '\0';
	return p;
}

static const char *env_path(const char *const *env)
{
	for (size_t i = 0; env != NULL && env[i] != NULL; i++)
		if (strncmp(env[i], "PATH=", 5) == 0)
			return env[i] + 5;
	return STAGE_DEFAULT_PATH;
}

/* The file to exec for `name`: *out (owned) and 0, ING_ENOTFOUND with a
 * line for the log in `why`, or ING_ENOMEM.  An empty PATH entry means the
 * working directory, as for execvp. */
static int resolve_program(const char *name, const char *cwd, const char *path, char **out,
                           char *why, size_t why_len)
{
	if (strchr(name, '/') != NULL) {
		char *p = name[0] == '/' ? strdup(name) : join_path(cwd, "", 0, name);
		if (p == NULL)
			return ING_ENOMEM;
		if (!is_executable_file(p)) {
			snprintf(why, why_len, "stage: '%s' is not an executable file (%s)", name,
			         strerror(errno == 0 ? ENOENT : errno));
			free(p);
			return ING_ENOTFOUND;
		}
		*out = p;
		return 0;
	}
	for (const char *d = path;;) {
		const char *colon = strchr(d, ':');
		size_t len = colon != NULL ? (size_t)(colon - d) : strlen(d);
		char *p = join_path(cwd, d, len, name);
		if (p == NULL)
			return ING_ENOMEM;
		if (is_executable_file(p)) {
			*out = p;
			return 0;
		}
		free(p);
		if (colon == NULL)
			break;
		d = colon + 1;
	}
	snprintf(why, why_len, "stage: '%s' not found on PATH=%s", name, path);
	return ING_ENOTFOUND;
}

/* Opens the stdout file (relative to cwd unless absolute): created or
 * truncated, 0600, close-on-exec in the daemon.  -1 with `why` on failure. */
static int open_stdout(const char *cwd, const char *path, char *why, size_t why_len)
{
	char full[4096];
	int k = path[0] == '/' ? snprintf(full, sizeof(full), "%s", path)
	                       : snprintf(full, sizeof(full), "%s/%s", cwd, path);
	if (k < 0 || (size_t)k >= sizeof(full)) {
		snprintf(why, why_len, "stage: stdout path '%s' is too long", path);
		return -1;
	}
	int fd = open(full, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOCTTY, 0600);
	if (fd < 0)
		snprintf(why, why_len, "stage: cannot open stdout file %s: %s", full,
		         strerror(errno));
	return fd;
}

/* r->argv: the program resolved, then the arguments.  ING_ENOTFOUND (with
 * `why`) or ING_ENOMEM. */
static int build_argv(struct stage_run *r, const struct stage_spec *spec, char *why, size_t why_len)
{
	char *program = NULL;
	int rv =
	    resolve_program(spec->argv[0], r->cwd, env_path(spec->env), &program, why, why_len);
	if (rv != 0)
		return rv;

	const char *prefix[1];
	size_t n = 0;
	prefix[n++] = program;
	r->argv = strv_concat(prefix, n, spec->argv + 1);
	free(program);
	return r->argv == NULL ? ING_ENOMEM : 0;
}

/* ---- handles ----------------------------------------------------------- */

static void on_close(uv_handle_t *h)
{
	struct stage_run *r = h->data;
	if (--r->pending_closes == 0 && r->finished)
		run_free(r);
}

static void close_handle(struct stage_run *r, uv_handle_t *h, bool *open)
{
	if (!*open)
		return;
	*open = false;
	r->pending_closes++;
	uv_close(h, on_close);
}

static void close_all(struct stage_run *r)
{
	close_handle(r, (uv_handle_t *)&r->proc, &r->proc_open);
	close_handle(r, (uv_handle_t *)&r->exitw, &r->exitw_open);
	close_handle(r, (uv_handle_t *)&r->out, &r->out_open);
	close_handle(r, (uv_handle_t *)&r->timer, &r->timer_open);
}

static void signal_group(struct stage_run *r, int sig)
{
	if (r->sandbox != NULL) {
		if (r->pid > 0)
			sandbox_kill(r->sandbox, sig);
		return;
	}
	if (r->pid > 0 && kill(-r->pid, sig) != 0 && errno != ESRCH)
		ING_LOG_WARN("stage cannot signal group pgid=%d sig=%d err=\"%s\"", r->pid, sig,
		             strerror(errno));
}

static void arm_timer(struct stage_run *r, enum timer_phase phase, uint64_t ms);

/* The end of a run: child gone and pipe closed (or given up on). */
static void finish(struct stage_run *r)
{
	if (r->finished)
		return;
	r->finished = true;
	r->phase = TIMER_IDLE;
	uv_timer_stop(&r->timer);
	if (r->pid > 0)
		signal_group(r, SIGKILL); /* stragglers that let go of the pipe */
	r->res.duration_ms = (uv_hrtime() - r->start_ns) / 1000000u;
	r->res.log = r->log != NULL ? r->log : "";
	r->res.log_len = r->log_len;
	r->res.limit_hit = SANDBOX_HIT_NONE;
	if (r->sandbox != NULL && r->pid > 0 && r->res.exit_code != 0 && !r->res.cancelled)
		r->res.limit_hit = sandbox_explain(r->sandbox, r->raw_status, r->term_signal,
		                                   r->limit_why, sizeof(r->limit_why));
	if (r->res.limit_hit == SANDBOX_HIT_NONE)
		r->limit_why[0] = '\0';
	r->res.limit_why = r->limit_why;
	ING_LOG_DEBUG("stage done pid=%d exit=%" PRId64 " timed_out=%d cancelled=%d "
	              "spawn_failed=%d duration_ms=%" PRIu64 " log_bytes=%" PRIu64,
	              r->pid, r->res.exit_code, r->res.timed_out, r->res.cancelled,
	              r->res.spawn_failed, r->res.duration_ms, r->res.log_total_bytes);
	r->in_done = true;
	r->done(r, &r->res, r->data);
	r->in_done = false;
	close_all(r);
}

static void stop_reading(struct stage_run *r)
{
	r->eof = true;
	if (r->out_open)
		uv_read_stop((uv_stream_t *)&r->out);
	close_handle(r, (uv_handle_t *)&r->out, &r->out_open);
}

static void on_timer(uv_timer_t *t)
{
	struct stage_run *r = t->data;
	enum timer_phase phase = r->phase;
	r->phase = TIMER_IDLE;
	switch (phase) {
	case TIMER_DEFER: finish(r); break;
	case TIMER_TIMEOUT:
		r->res.timed_out = true;
		ING_LOG_INFO("stage timeout pid=%d timeout_ms=%" PRIu64, r->pid, r->timeout_ms);
		log_note(r, "stage: timed out after %" PRIu64 " ms, sending SIGTERM",
		         r->timeout_ms);
		signal_group(r, SIGTERM);
		arm_timer(r, TIMER_KILL, r->grace_ms);
		break;
	case TIMER_KILL:
		log_note(r, "stage: still running %" PRIu64 " ms after SIGTERM, sending SIGKILL",
		         r->grace_ms);
		signal_group(r, SIGKILL);
		break;
	case TIMER_DRAIN:
		log_note(r,
		         "stage: output still open %" PRIu64 " ms after exit, killing the "
		         "process group",
		         r->grace_ms);
		signal_group(r, SIGKILL);
		stop_reading(r);
		finish(r);
		break;
	case TIMER_IDLE: break;
	}
}

static void arm_timer(struct stage_run *r, enum timer_phase phase, uint64_t ms)
{
	r->phase = phase;
	uv_timer_start(&r->timer, on_timer, ms, 0);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct stage_run *r = h->data;
	(void)suggested;
	*buf = uv_buf_init(r->scratch, sizeof(r->scratch));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct stage_run *r = s->data;
	if (nread > 0) {
		log_append(r, buf->base, (size_t)nread);
		return;
	}
	if (nread == 0)
		return;
	if (nread != UV_EOF)
		ING_LOG_WARN("stage output read failed pid=%d err=\"%s\"", r->pid,
		             uv_strerror((int)nread));
	stop_reading(r);
	if (r->exited)
		finish(r);
}

static void child_exited(struct stage_run *r, int64_t exit_status, int term_signal)
{
	r->exited = true;
	r->raw_status = exit_status;
	r->term_signal = term_signal;
	r->res.exit_code = term_signal != 0 ? -(int64_t)term_signal : exit_status;
	/* bwrap reports a command killed by signal N as 128+N. */
	if (r->sandbox != NULL && term_signal == 0 && exit_status > 128 && exit_status <= 128 + 64)
		r->res.exit_code = -(exit_status - 128);
	close_handle(r, (uv_handle_t *)&r->proc, &r->proc_open);
	close_handle(r, (uv_handle_t *)&r->exitw, &r->exitw_open);
	if (r->eof) {
		finish(r);
		return;
	}
	/* Something in (or escaped from) the group still holds the pipe. */
	arm_timer(r, TIMER_DRAIN, r->grace_ms);
}

static void on_child_exit(uv_process_t *p, int64_t exit_status, int term_signal)
{
	child_exited(p->data, exit_status, term_signal);
}

/* The pidfd of a plain stage is readable: the child exited; reap it. */
static void on_pidfd(uv_poll_t *h, int status, int events)
{
	struct stage_run *r = h->data;
	int ws = 0;
	(void)status;
	(void)events;
	pid_t got = waitpid(r->pid, &ws, WNOHANG);
	if (got == 0 || (got < 0 && errno == EINTR))
		return; /* not yet: the poll fires again */
	uv_poll_stop(h);
	if (got < 0) {
		ING_LOG_WARN("stage cannot reap its child pid=%d err=\"%s\"", r->pid,
		             strerror(errno));
		child_exited(r, 127, 0);
		return;
	}
	child_exited(r, WIFEXITED(ws) ? WEXITSTATUS(ws) : 0, WIFSIGNALED(ws) ? WTERMSIG(ws) : 0);
}

/* Starts a plain stage (no sandbox): worker_spawn with the stage's limits,
 * its exit watched through its pidfd.  0, or the error with `why` set. */
static int spawn_plain(uv_loop_t *loop, struct stage_run *r, const struct stage_spec *spec,
                       int stdout_fd, int stderr_fd, char *why, size_t why_len)
{
	const struct stage_limits *l = &spec->limits;
	struct worker_spawn_limit lim[4];
	size_t n = 0;
	/* CPU: hard one second above soft, so SIGXCPU comes before SIGKILL. */
	if (l->cpu_seconds != 0)
		lim[n++] =
		    (struct worker_spawn_limit){RLIMIT_CPU, {l->cpu_seconds, l->cpu_seconds + 1}};
	if (l->memory_bytes != 0)
		lim[n++] =
		    (struct worker_spawn_limit){RLIMIT_AS, {l->memory_bytes, l->memory_bytes}};
	if (l->open_files != 0)
		lim[n++] =
		    (struct worker_spawn_limit){RLIMIT_NOFILE, {l->open_files, l->open_files}};
	if (l->file_size_bytes != 0)
		lim[n++] = (struct worker_spawn_limit){RLIMIT_FSIZE,
		                                       {l->file_size_bytes, l->file_size_bytes}};
	struct worker_spawn ws = {
	    .file = r->argv[0],
	    .argv = r->argv,
	    .env = r->env,
	    .cwd = r->cwd,
	    .stdout_fd = stdout_fd,
	    .stderr_fd = stderr_fd,
	    .limits = lim,
	    .nlimits = n,
	};
	struct ing_error se;
	int pid = 0, pidfd = -1;
	int rv = worker_spawn(&ws, &pid, &pidfd, &se);
	if (rv != 0) {
		snprintf(why, why_len, "stage: cannot start '%s' in %s: %s", spec->argv[0], r->cwd,
		         se.msg);
		return rv;
	}
	r->pid = pid;
	r->pidfd = pidfd;
	rv = uv_poll_init(loop, &r->exitw, pidfd);
	if (rv == 0) {
		r->exitw.data = r;
		r->exitw_open = true;
		rv = uv_poll_start(&r->exitw, UV_READABLE, on_pidfd);
	}
	if (rv != 0) {
		/* Cannot watch it: it must not run unseen. */
		kill(-pid, SIGKILL);
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
		r->pid = 0;
		snprintf(why, why_len, "stage: cannot watch '%s': %s", spec->argv[0],
		         uv_strerror(rv));
		return ing_err_from_uv(rv);
	}
	return 0;
}

/* A start that failed after the checks: reported by done, from the loop. */
static void spawn_failed(struct stage_run *r, const char *why)
{
	ING_LOG_INFO("stage spawn failed reason=\"%s\"", why);
	log_note(r, "%s", why);
	r->res.spawn_failed = true;
	r->res.exit_code = 127;
	r->exited = true;
	stop_reading(r);
	arm_timer(r, TIMER_DEFER, 0);
}

/* ---- public ------------------------------------------------------------ */

static int start(uv_loop_t *loop, const struct stage_spec *spec, stage_done_cb done, void *data,
                 struct stage_run **out, struct ing_error *e);

int stage_start(uv_loop_t *loop, const struct stage_spec *spec, stage_done_cb done, void *data,
                struct stage_run **out, struct ing_error *e)
{
	int rv = start(loop, spec, done, data, out, e);
	/* Every error return of start() comes before it takes the stdout
	 * descriptor over: it is still ours to close. */
	if (rv != 0 && spec != NULL && spec->use_stdout_fd && spec->stdout_fd >= 0)
		close(spec->stdout_fd);
	return rv;
}

static int start(uv_loop_t *loop, const struct stage_spec *spec, stage_done_cb done, void *data,
                 struct stage_run **out, struct ing_error *e)
{
	if (loop == NULL || spec == NULL || done == NULL || spec->cwd == NULL ||
	    spec->argv == NULL || spec->argv[0] == NULL || spec->argv[0][0] == '\0')
		return ing_error_set(e, ING_EINVAL,
		                     "stage: cwd, argv[0] and a callback are required");

	struct stage_run *r = calloc(1, sizeof(*r));
	if (r == NULL)
		return ing_error_set(e, ING_ENOMEM, "stage: out of memory");
	r->done = done;
	r->data = data;
	r->pidfd = -1;
	r->start_ns = uv_hrtime();
	r->timeout_ms = spec->timeout_ms;
	r->grace_ms = spec->kill_grace_ms != 0 ? spec->kill_grace_ms : STAGE_DEFAULT_KILL_GRACE_MS;
	r->log_cap = spec->log_cap_bytes != 0 ? spec->log_cap_bytes : STAGE_DEFAULT_LOG_CAP_BYTES;
	r->cwd = strdup(spec->cwd);
	r->env = strv_concat(NULL, 0, spec->env);
	if (r->cwd == NULL || r->env == NULL) {
		run_free(r);
		return ing_error_set(e, ING_ENOMEM, "stage: out of memory");
	}

	char why[512] = "";
	int rv = build_argv(r, spec, why, sizeof(why));
	if (rv == ING_ENOMEM) {
		run_free(r);
		return ing_error_set(e, ING_ENOMEM, "stage: out of memory");
	}
	bool resolved = rv == 0;

	uv_file fds[2] = {-1, -1};
	rv = uv_pipe(fds, UV_NONBLOCK_PIPE, 0);
	if (rv != 0) {
		run_free(r);
		return ing_error_set(e, ing_err_from_uv(rv), "stage: cannot create a pipe: %s",
		                     uv_strerror(rv));
	}
	uv_timer_init(loop, &r->timer);
	r->timer.data = r;
	r->timer_open = true;
	uv_pipe_init(loop, &r->out, 0);
	r->out.data = r;
	r->out_open = true;
	rv = uv_pipe_open(&r->out, fds[0]);
	if (rv != 0) {
		close(fds[0]);
		close(fds[1]);
		r->finished = true; /* no callback: freed by the last close */
		close_all(r);
		return ing_error_set(e, ing_err_from_uv(rv), "stage: cannot open a pipe: %s",
		                     uv_strerror(rv));
	}

	int stdout_fd = spec->use_stdout_fd ? spec->stdout_fd : -1;
	if (resolved && stdout_fd < 0 && spec->stdout_path != NULL) {
		stdout_fd = open_stdout(r->cwd, spec->stdout_path, why, sizeof(why));
		resolved = stdout_fd >= 0;
	}
	if (!resolved) {
		close(fds[1]);
		if (stdout_fd >= 0)
			close(stdout_fd);
		spawn_failed(r, why);
		goto started;
	}

	uv_stdio_container_t stdio[3];
	stdio[0].flags = UV_IGNORE; /* libuv opens /dev/null */
	stdio[1].flags = UV_INHERIT_FD;
	stdio[1].data.fd = stdout_fd >= 0 ? stdout_fd : fds[1];
	stdio[2].flags = UV_INHERIT_FD;
	stdio[2].data.fd = fds[1];
	r->sandbox = spec->sandbox;
	if (r->sandbox != NULL) {
		struct sandbox_command cmd = {
		    .argv = (const char *const *)r->argv,
		    .env = (const char *const *)r->env,
		    .cwd = r->cwd,
		    .limits = {.memory_bytes = spec->limits.memory_bytes,
		               .cpu_seconds = spec->limits.cpu_seconds,
		               .processes = spec->processes,
		               .file_size_bytes = spec->limits.file_size_bytes,
		               .open_files = spec->limits.open_files},
		    .stdio = stdio,
		    .stdio_count = 3,
		    .exit_cb = on_child_exit,
		};
		struct ing_error se;
		rv = sandbox_spawn(r->sandbox, &r->proc, &cmd, &se);
		if (rv != 0 && !cmd.handle_initialised) {
			/* Refused before uv_spawn: the handle is untouched. */
			r->sandbox = NULL;
			close(fds[1]);
			if (stdout_fd >= 0)
				close(stdout_fd);
			snprintf(why, sizeof(why), "stage: cannot start in the sandbox: %s",
			         se.msg);
			spawn_failed(r, why);
			goto started;
		}
		if (rv != 0)
			snprintf(why, sizeof(why), "stage: cannot start in the sandbox: %s",
			         se.msg);
		r->proc.data = r;
		r->proc_open = true; /* initialised even when uv_spawn fails */
		if (rv == 0)
			r->pid = r->proc.pid;
	} else {
		rv = spawn_plain(loop, r, spec, stdout_fd >= 0 ? stdout_fd : fds[1], fds[1], why,
		                 sizeof(why));
	}
	close(fds[1]); /* the child has its copies */
	if (stdout_fd >= 0)
		close(stdout_fd);
	if (rv != 0) {
		close_handle(r, (uv_handle_t *)&r->proc, &r->proc_open);
		close_handle(r, (uv_handle_t *)&r->exitw, &r->exitw_open);
		spawn_failed(r, why);
		goto started;
	}
	uv_read_start((uv_stream_t *)&r->out, on_alloc, on_read);
	if (r->timeout_ms != 0) {
		/* From now, not from the loop's cached time (older than
		 * start_ns): the stage gets its whole timeout. */
		uv_update_time(loop);
		arm_timer(r, TIMER_TIMEOUT, r->timeout_ms);
	}
	ING_LOG_DEBUG("stage started pid=%d program=%s cwd=%s", r->pid, spec->argv[0], r->cwd);

started:
	if (out != NULL)
		*out = r;
	return 0;
}

int stage_pid(const struct stage_run *r)
{
	return r->pid;
}

void stage_cancel(struct stage_run *r)
{
	if (r->finished || r->in_done)
		return;
	bool first = !r->res.cancelled;
	r->res.cancelled = true;
	if (r->exited && r->pid <= 0)
		return; /* spawn failure: nothing to kill, done is already due */
	if (first)
		log_note(r, "stage: cancelled, sending SIGTERM");
	signal_group(r, SIGTERM);
	/* Before exit the kill deadline applies; after exit the drain timer
	 * (armed by on_child_exit) already bounds the wait. */
	if (!r->exited && r->phase != TIMER_KILL)
		arm_timer(r, TIMER_KILL, r->grace_ms);
}

void stage_abandon(struct stage_run *r)
{
	if (r->finished || r->in_done)
		return;
	r->finished = true;
	uv_timer_stop(&r->timer);
	signal_group(r, SIGKILL);
	ING_LOG_INFO("stage abandoned pid=%d", r->pid);
	close_all(r);
	if (r->sandbox != NULL && r->pid > 0)
		sandbox_abandon_command(r->sandbox);
}
