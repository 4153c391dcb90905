/*
 * test_stage.c - the stage runner (node/worker/stage.c) with real commands: exit
 * codes and interleaved stdout/stderr, a real C compile (and a failing
 * one), the environment is only what the spec gives, stdin is /dev/null,
 * timeouts (SIGTERM, and SIGKILL for a child ignoring it), cancel killing
 * grandchildren, a grandchild holding the pipe after exit, stragglers swept
 * at the end, the log cap, resource limits (file size, CPU, all four
 * reaching the child, one the child cannot set: nothing runs), signals
 * and session reset in the child, programs not found or not executable, a missing
 * cwd, abandon, and argument errors.  Every test runs its own loop, is
 * bounded by alarm(), and ends with uv_loop_close() == 0.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "node/worker/stage.h"
#include "tests/lib/testutil.h"

#define TEST_ALARM_S 20

static const char *const ENV[] = {"PATH=/usr/bin:/bin", NULL};

struct outcome {
	int calls;
	bool returned_from_start;
	bool called_inside_start;
	struct stage_result res;
	char *log;
	uint64_t wall_ms;
};

/* Called every 20 ms while the stage runs; returns true when done with it. */
typedef bool (*hook_fn)(struct stage_run *r, void *arg);

struct hook {
	uv_timer_t timer;
	struct stage_run *run;
	struct outcome *o;
	hook_fn fn;
	void *arg;
};

static void on_done(struct stage_run *r, const struct stage_result *res, void *data)
{
	struct outcome *o = data;
	(void)r;
	o->calls++;
	if (!o->returned_from_start)
		o->called_inside_start = true;
	o->res = *res;
	o->log = malloc(res->log_len + 1);
	assert_non_null(o->log);
	memcpy(o->log, res->log, res->log_len);
	o->log[res->log_len] = '\0';
	o->res.log = o->log;
	assert_int_equal(res->log[res->log_len], '\0');
}

static void on_hook_tick(uv_timer_t *t)
{
	struct hook *h = t->data;
	if (h->o->calls > 0 || h->fn(h->run, h->arg))
		uv_close((uv_handle_t *)t, NULL);
}

static uint64_t now_ms(void)
{
	return uv_hrtime() / 1000000u;
}

/* Runs `spec` to its end on a fresh loop; `fn` (may be NULL) is polled. */
static void run_hooked(const struct stage_spec *spec, struct outcome *o, hook_fn fn, void *arg)
{
	uv_loop_t loop;
	struct stage_run *r = NULL;
	struct ing_error e = {0};
	memset(o, 0, sizeof(*o));
	assert_int_equal(uv_loop_init(&loop), 0);
	uint64_t t0 = now_ms();
	int rv = stage_start(&loop, spec, on_done, o, &r, &e);
	assert_int_equal(rv, 0);
	o->returned_from_start = true;
	assert_non_null(r);
	struct hook h = {.run = r, .o = o, .fn = fn, .arg = arg};
	if (fn != NULL) {
		uv_timer_init(&loop, &h.timer);
		h.timer.data = &h;
		uv_timer_start(&h.timer, on_hook_tick, 20, 20);
	}
	uv_run(&loop, UV_RUN_DEFAULT);
	o->wall_ms = now_ms() - t0;
	assert_false(o->called_inside_start);
	assert_int_equal(uv_loop_close(&loop), 0);
}

static void run(const struct stage_spec *spec, struct outcome *o)
{
	run_hooked(spec, o, NULL, NULL);
}

static struct stage_spec spec_of(const char *cwd, const char *const *argv)
{
	struct stage_spec s = {
	    .cwd = cwd, .argv = argv, .env = ENV, .timeout_ms = 10000, .kill_grace_ms = 300};
	return s;
}

static void write_file(const char *dir, const char *name, const char *text)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static long file_size(const char *dir, const char *name)
{
	char path[512];
	struct stat st;
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

/* Pid written by the stage into dir/pid, or 0 when not there yet. */
static int read_pid(const char *dir)
{
	char path[512];
	int pid = 0;
	snprintf(path, sizeof(path), "%s/pid", dir);
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return 0;
	if (fscanf(f, "%d", &pid) != 1)
		pid = 0;
	fclose(f);
	return pid;
}

/* True when `pid` is gone or a zombie (it may wait for init to reap it). */
static bool process_dead(int pid)
{
	for (int i = 0; i < 200; i++) {
		if (kill(pid, 0) != 0 && errno == ESRCH)
			return true;
		char path[64], buf[512];
		snprintf(path, sizeof(path), "/proc/%d/stat", pid);
		FILE *f = fopen(path, "r");
		if (f != NULL) {
			size_t n = fread(buf, 1, sizeof(buf) - 1, f);
			fclose(f);
			buf[n] = '\0';
			char *p = strrchr(buf, ')');
			if (p != NULL && (p[2] == 'Z' || p[2] == 'X'))
				return true;
		}
		struct timespec ts = {0, 10 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	return false;
}

static int setup(void **state)
{
	static char dir[256];
	tu_tmpdir(dir, sizeof(dir));
	*state = dir;
	alarm(TEST_ALARM_S);
	return 0;
}

static int teardown(void **state)
{
	alarm(0);
	tu_rmrf(*state);
	return 0;
}

static void done_with(struct outcome *o)
{
	free(o->log);
	o->log = NULL;
}

/* ---- tests ------------------------------------------------------------- */

static void exit_code_and_interleaved_output(void **state)
{
	const char *argv[] = {"sh", "-c", "echo out; echo err >&2; echo out2; exit 3", NULL};
	struct stage_spec s = spec_of(*state, argv);
	struct outcome o;
	run(&s, &o);
	done_with(&o);
	/* libuv keeps a process-wide signal pipe from the first run on; after
	 * that, a run leaves no descriptor behind */
	int fds = tu_count_fds();
	run(&s, &o);
	assert_int_equal(tu_count_fds(), fds);
	assert_int_equal(o.calls, 1);
	assert_int_equal(o.res.exit_code, 3);
	assert_string_equal(o.log, "out\nerr\nout2\n");
	assert_false(o.res.timed_out || o.res.cancelled || o.res.spawn_failed);
	assert_false(o.res.log_truncated);
	assert_int_equal(o.res.log_total_bytes, 13);
	done_with(&o);
}

static const char KERNEL_C[] =
    "void fir(const float *x, const float *h, float *y, int n, int taps)\n"
    "{\n"
    "\tfor (int i = 0; i < n; i++) {\n"
    "\t\tfloat acc = 0;\n"
    "\t\tfor (int k = 0; k < taps; k++)\n"
    "\t\t\tacc += h[k] * x[i + k];\n"
    "\t\ty[i] = acc;\n"
    "\t}\n"
    "}\n";

static void compiles_real_c(void **state)
{
	write_file(*state, "k.c", KERNEL_C);
	const char *argv[] = {"cc", "-O2", "-c", "k.c", "-o", "k.o", NULL};
	struct stage_spec s = spec_of(*state, argv);
	struct outcome o;
	run(&s, &o);
	assert_int_equal(o.calls, 1);
	if (o.res.exit_code != 0)
		fail_msg("cc failed: %s", o.log);
	assert_true(file_size(*state, "k.o") > 0);
	done_with(&o);
}

static void compile_error_in_log(void **state)
{
	write_file(*state, "bad.c", "int f(void) { return 1 +; }\n");
	const char *argv[] = {"cc", "-c", "bad.c", "-o", "bad.o", NULL};
	struct stage_spec s = spec_of(*state, argv);
	struct outcome o;
	run(&s, &o);
	assert_int_equal(o.calls, 1);
	assert_true(o.res.exit_code > 0);
	assert_non_null(strstr(o.log, "bad.c:1"));
	assert_non_null(strstr(o.log, "error"));
	assert_int_equal(file_size(*state, "bad.o"), -1);
	done_with(&o);
}

static void environment_is_only_the_spec(void **state)
{
	const char *env[] = {"PATH=/usr/bin:/bin", "FOO=bar", NULL};
	const char *argv[] = {"sh", "-c", "echo $FOO; echo ${HOME:-unset}; echo ${USER:-unset}",
	                      NULL};
	struct stage_spec s = spec_of(*state, argv);
	s.env = env;
	setenv("USER", "leaked", 0);
	struct outcome o;
	run(&s, &o);
	assert_int_equal(o.res.exit_code, 0);
	assert_string_equal(o.log, "bar\nunset\nunset\n");
	done_with(&o);
}

static void no_env_uses_default_path(void **state)
{
	const char *argv[] = {"sh", "-c", "echo ${PATH:-nopath}", NULL};
	struct stage_spec s = spec_of(*state, argv);
	s.env = NULL; /* sh is found on the default PATH; the child gets none */
	struct outcome o;
	run(&s, &o);
	assert_int_equal(o.res.exit_code, 0);
	assert_false(o.res.spawn_failed);
	done_with(&o);
}

static void stdin_is_dev_null(void **state)
{
	const char *argv[] = {"cat", NULL};
	struct stage_spec s = spec_of(*state, argv);
	struct outcome o;
	run(&s, &o);
	assert_int_equal(o.res.exit_code, 0);
	assert_int_equal(o.res.log_len, 0);
	done_with(&o);
}

static void timeout_sends_sigterm(void **state)
{
	const char *argv[] = {"sleep", "30", NULL};
	struct stage_spec s = spec_of(*state, argv);
	s.timeout_ms = 200;
	struct outcome o;
	run(&s, &o);
	assert_true(o.res.timed_out);
	assert_false(o.res.cancelled);
	assert_int_equal(o.res.exit_code, -SIGTERM);
	assert_true(o.res.duration_ms >= 200);
	assert_true(o.wall_ms < 5000);
	assert_non_null(strstr(o.log, "timed out after 200 ms"));
	done_with(&o);
}

static void timeout_sigkill_when_term_ignored(void **state)
{
	const char *argv[] = {"sh", "-c", "trap '' TERM; sleep 30", NULL};
	struct stage_spec s = spec_of(*state, argv);
	s.timeout_ms = 200;
	s.kill_grace_ms = 300;
	struct outcome o;
	run(&s, &o);
	assert_true(o.res.timed_out);
	assert_int_equal(o.res.exit_code, -SIGKILL);
	assert_true(o.res.duration_ms >= 500);
	assert_true(o.wall_ms < 5000);
	done_with(&o);
}

struct cancel_arg {
	const char *dir;
	int grandchild;
};

static bool cancel_when_pid_written(struct stage_run *r, void *arg)
{
	struct cancel_arg *a = arg;
	a->grandchild = read_pid(a->dir);
	if (a->grandchild == 0)
		return false;
	stage_cancel(r);
	stage_cancel(r); /* twice is harmless */
	return true;
}

static void cancel_kills_the_whole_group(void **state)
{
	const char *argv[] = {"sh", "-c", "sleep 30 & echo $! > pid; sleep 30; wait", NULL};
	struct stage_spec s = spec_of(*state, argv);
	struct cancel_arg a = {.dir = *state};
	struct outcome o;
	run_hooked(&s, &o, cancel_when_pid_written, &a);
	assert_int_equal(o.calls, 1);
	assert_true(o.res.cancelled);
	assert_false(o.res.timed_out);
	assert_int_equal(o.res.exit_code, -SIGTERM);
	assert_true(o.wall_ms < 5000);
	assert_true(a.grandchild > 0);
	assert_true(process_dead(a.grandchild));
	assert_non_null(strstr(o.log, "stage: cancelled"));
	done_with(&o);
}

static void grandchild_holding_pipe_is_killed(void **state)
{
	const char *argv[] = {"sh", "-c", "sleep 30 & echo $! > pid; echo bye; exit 0", NULL};
	struct stage_spec s = spec_of(*state, argv);
	s.kill_grace_ms = 300;
	struct outcome o;
	run(&s, &o);
	assert_int_equal(o.res.exit_code, 0);
	assert_false(o.res.timed_out);
	assert_true(o.wall_ms < 3000);
	assert_non_null(strstr(o.log, "bye\n"));
	assert_non_null(strstr(o.log, "output still open"));
	int pid = read_pid(*state);
	assert_true(pid > 0);
	assert_true(process_dead(pid));
	done_with(&o);
}

static void stragglers_are_swept(void **state)
{
	const char *argv[] = {"sh", "-c", "sleep 30 >/dev/null 2>&1 & echo $! > pid", NULL};
	struct stage_spec s = spec_of(*state, argv);
	struct outcome o;
	run(&s, &o);
	assert_int_equal(o.res.exit_code, 0);
	assert_true(o.wall_ms < 2000);
	int pid = read_pid(*state);
	assert_true(pid > 0);
	assert_true(process_dead(pid));
	done_with(&o);
}

static void log_is_capped(void **state)
{
	const char *argv[] = {"head", "-c", "3000000", "/dev/zero", NULL};
	struct stage_spec s = spec_of(*state, argv);
	s.log_cap_bytes = 1024 * 1024;
	struct outcome o;
	run(&s, &o);
	assert_int_equal(o.res.exit_code, 0);
	assert_int_equal(o.res.log_len, 1024 * 1024);
	assert_true(o.res.log_truncated);
	assert_int_equal(o.res.log_total_bytes, 3000000);
	done_with(&o);
}

static void file_size_limit(void **state)
{
	const char *argv[] = {"sh", "-c", "head -c 5000 /dev/zero > f", NULL};
	struct stage_spec s = spec_of(*state, argv);
	s.limits.file_size_bytes = 1000;
	struct outcome o;
	run(&s, &o);
	assert_int_not_equal(o.res.exit_code, 0);
	long size = file_size(*state, "f");
	assert_true(size >= 0 && size <= 1000);
	done_with(&o);
}

/* stdout_path: stdout into the file (truncated, 0600), stderr still in the log. */
static void stdout_to_file(void **state)
{
	const char *argv[] = {"sh", "-c", "echo out; echo err >&2; echo out2", NULL};
	struct stage_spec s = spec_of(*state, argv);
	char path[512], buf[64] = "";
	struct stat st;
	write_file(*state, "stdout.txt", "old content that must go away\n");
	s.stdout_path = "stdout.txt"; /* relative to cwd */
	struct outcome o;
	int fds = tu_count_fds();
	run(&s, &o);
	assert_int_equal(tu_count_fds(), fds);
	assert_int_equal(o.res.exit_code, 0);
	assert_string_equal(o.log, "err\n");
	snprintf(path, sizeof(path), "%s/stdout.txt", (const char *)*state);
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	assert_string_equal(buf, "out\nout2\n");
	done_with(&o);

	/* An absolute path; a file it creates is 0600. */
	snprintf(path, sizeof(path), "%s/fresh.txt", (const char *)*state);
	s.stdout_path = path;
	run(&s, &o);
	assert_int_equal(o.res.exit_code, 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(file_size(*state, "fresh.txt"), 9);
	done_with(&o);

	/* A file that cannot be opened is a spawn failure, with the reason. */
	s.stdout_path = "no-such-dir/out.txt";
	run(&s, &o);
	assert_true(o.res.spawn_failed);
	assert_int_equal(o.res.exit_code, 127);
	assert_non_null(strstr(o.log, "cannot open stdout file"));
	done_with(&o);
}

static void cpu_limit(void **state)
{
	const char *argv[] = {"sh", "-c", "while :; do :; done", NULL};
	struct stage_spec s = spec_of(*state, argv);
	s.limits.cpu_seconds = 1;
	struct outcome o;
	run(&s, &o);
	assert_false(o.res.timed_out);
	assert_true(o.res.exit_code == -SIGXCPU || o.res.exit_code == -SIGKILL);
	assert_true(o.wall_ms < 5000);
	done_with(&o);
}

static void all_limits_reach_the_child(void **state)
{
	const char *argv[] = {"sh", "-c", "ulimit -v; ulimit -n; ulimit -t; ulimit -f", NULL};
	struct stage_spec s = spec_of(*state, argv);
	s.limits.memory_bytes = 512u * 1024 * 1024;
	s.limits.open_files = 64;
	s.limits.cpu_seconds = 7;
	s.limits.file_size_bytes = 1024 * 1024;
	struct outcome o;
	run(&s, &o);
	assert_int_equal(o.res.exit_code, 0);
	/* ulimit -v is in KiB, -f in 512-byte blocks */
	assert_string_equal(o.log, "524288\n64\n7\n2048\n");
	done_with(&o);
}

/* A limit the child cannot set on itself (RLIMIT_NOFILE above the
 * kernel's nr_open, refused even to root): the command never runs, the
 * stage fails to start naming the step. */
static void limit_not_set_means_no_run(void **state)
{
	const char *argv[] = {"sh", "-c", "echo ran > ran.txt", NULL};
	struct stage_spec s = spec_of(*state, argv);
	s.limits.open_files = (uint64_t)1 << 40;
	struct outcome o;
	run(&s, &o);
	assert_true(o.res.spawn_failed);
	assert_int_equal(o.res.exit_code, 127);
	assert_non_null(strstr(o.log, "setrlimit failed"));
	assert_int_equal(file_size(*state, "ran.txt"), -1);
	done_with(&o);
}

/* The child starts clean whatever the daemon did with its signals (a
 * handler, an ignored signal, a blocked one), in its own session. */
static void child_signals_and_session_reset(void **state)
{
	struct sigaction ign = {.sa_handler = SIG_IGN}, old_int;
	sigset_t usr1, old_mask;
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	assert_int_equal(sigaction(SIGINT, &ign, &old_int), 0);
	assert_int_equal(sigprocmask(SIG_BLOCK, &usr1, &old_mask), 0);
	const char *argv[] = {"sh", "-c",
	                      "grep -E '^Sig(Blk|Ign)' /proc/self/status; "
	                      "set -- $(cat /proc/$$/stat); test \"$6\" -eq $$ && echo own-session",
	                      NULL};
	struct stage_spec s = spec_of(*state, argv);
	struct outcome o;
	run(&s, &o);
	sigaction(SIGINT, &old_int, NULL);
	sigprocmask(SIG_SETMASK, &old_mask, NULL);
	assert_int_equal(o.res.exit_code, 0);
	assert_string_equal(o.log, "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n"
	                           "own-session\n");
	done_with(&o);
}

static void missing_program(void **state)
{
	const char *argv[] = {"nvcc-not-here", "-o", "x", NULL};
	struct stage_spec s = spec_of(*state, argv);
	struct outcome o;
	run(&s, &o);
	assert_int_equal(o.calls, 1);
	assert_true(o.res.spawn_failed);
	assert_int_equal(o.res.exit_code, 127);
	assert_non_null(strstr(o.log, "stage: 'nvcc-not-here' not found on PATH=/usr/bin:/bin"));
	done_with(&o);

	/* also with limits set: the lookup comes before the spawn */
	s.limits.cpu_seconds = 5;
	run(&s, &o);
	assert_true(o.res.spawn_failed);
	assert_non_null(strstr(o.log, "not found on PATH"));
	done_with(&o);
}

static void relative_program_path(void **state)
{
	write_file(*state, "run.sh", "#!/bin/sh\necho ran \"$1\"\n");
	write_file(*state, "noexec.sh", "#!/bin/sh\necho no\n");
	char path[512];
	snprintf(path, sizeof(path), "%s/run.sh", (char *)*state);
	assert_int_equal(chmod(path, 0755), 0);

	const char *argv[] = {"./run.sh", "arg", NULL};
	struct stage_spec s = spec_of(*state, argv);
	struct outcome o;
	run(&s, &o);
	assert_int_equal(o.res.exit_code, 0);
	assert_string_equal(o.log, "ran arg\n");
	done_with(&o);

	/* Without "#!": the shell runs it, as execvp does. */
	write_file(*state, "plain.sh", "echo plain \"$1\"\n");
	snprintf(path, sizeof(path), "%s/plain.sh", (char *)*state);
	assert_int_equal(chmod(path, 0755), 0);
	const char *argv3[] = {"./plain.sh", "x", NULL};
	s.argv = argv3;
	run(&s, &o);
	assert_int_equal(o.res.exit_code, 0);
	assert_string_equal(o.log, "plain x\n");
	done_with(&o);

	const char *argv2[] = {"./noexec.sh", NULL};
	s.argv = argv2;
	run(&s, &o);
	assert_true(o.res.spawn_failed);
	assert_non_null(strstr(o.log, "'./noexec.sh' is not an executable file"));
	done_with(&o);
}

static void missing_cwd(void **state)
{
	(void)state;
	const char *argv[] = {"true", NULL};
	struct stage_spec s = spec_of("/nonexistent/ingot-stage-test", argv);
	struct outcome o;
	run(&s, &o);
	assert_int_equal(o.calls, 1);
	assert_true(o.res.spawn_failed);
	assert_int_equal(o.res.exit_code, 127);
	assert_non_null(strstr(o.log, "cannot start 'true'"));
	done_with(&o);
}

static bool abandon_now(struct stage_run *r, void *arg)
{
	*(int *)arg = stage_pid(r);
	stage_abandon(r);
	return true;
}

static void abandon_kills_without_callback(void **state)
{
	const char *argv[] = {"sleep", "30", NULL};
	struct stage_spec s = spec_of(*state, argv);
	int pid = 0;
	struct outcome o;
	int fds = tu_count_fds();
	run_hooked(&s, &o, abandon_now, &pid);
	assert_int_equal(tu_count_fds(), fds);
	assert_int_equal(o.calls, 0);
	assert_true(pid > 0);
	assert_true(o.wall_ms < 2000);
	assert_true(process_dead(pid));
}

static void invalid_arguments(void **state)
{
	uv_loop_t loop;
	struct stage_run *r = NULL;
	struct ing_error e = {0};
	struct outcome o = {0};
	const char *empty[] = {NULL};
	struct stage_spec s = spec_of(*state, empty);
	assert_int_equal(uv_loop_init(&loop), 0);
	assert_int_equal(stage_start(&loop, &s, on_done, &o, &r, &e), ING_EINVAL);
	assert_null(r);
	assert_int_equal(e.code, ING_EINVAL);
	s.argv = NULL;
	assert_int_equal(stage_start(&loop, &s, on_done, &o, &r, &e), ING_EINVAL);
	assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(o.calls, 0);
	assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(exit_code_and_interleaved_output, setup, teardown),
	    cmocka_unit_test_setup_teardown(compiles_real_c, setup, teardown),
	    cmocka_unit_test_setup_teardown(compile_error_in_log, setup, teardown),
	    cmocka_unit_test_setup_teardown(environment_is_only_the_spec, setup, teardown),
	    cmocka_unit_test_setup_teardown(no_env_uses_default_path, setup, teardown),
	    cmocka_unit_test_setup_teardown(stdin_is_dev_null, setup, teardown),
	    cmocka_unit_test_setup_teardown(timeout_sends_sigterm, setup, teardown),
	    cmocka_unit_test_setup_teardown(timeout_sigkill_when_term_ignored, setup, teardown),
	    cmocka_unit_test_setup_teardown(cancel_kills_the_whole_group, setup, teardown),
	    cmocka_unit_test_setup_teardown(grandchild_holding_pipe_is_killed, setup, teardown),
	    cmocka_unit_test_setup_teardown(stragglers_are_swept, setup, teardown),
	    cmocka_unit_test_setup_teardown(log_is_capped, setup, teardown),
	    cmocka_unit_test_setup_teardown(file_size_limit, setup, teardown),
	    cmocka_unit_test_setup_teardown(cpu_limit, setup, teardown),
	    cmocka_unit_test_setup_teardown(stdout_to_file, setup, teardown),
	    cmocka_unit_test_setup_teardown(all_limits_reach_the_child, setup, teardown),
	    cmocka_unit_test_setup_teardown(limit_not_set_means_no_run, setup, teardown),
	    cmocka_unit_test_setup_teardown(child_signals_and_session_reset, setup, teardown),
	    cmocka_unit_test_setup_teardown(missing_program, setup, teardown),
	    cmocka_unit_test_setup_teardown(relative_program_path, setup, teardown),
	    cmocka_unit_test_setup_teardown(missing_cwd, setup, teardown),
	    cmocka_unit_test_setup_teardown(abandon_kills_without_callback, setup, teardown),
	    cmocka_unit_test_setup_teardown(invalid_arguments, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
