/*
 * test_sandbox.c - the stage sandbox (node/worker/sandbox.c) with real
 * bubblewrap processes, real cgroups, real loop-mounted quotas.
 *
 * The feature list: the probe and its refusals; the identity (never root,
 * never the daemon's, one per live sandbox, files left readable by the
 * daemon); a real C compile and run inside; the hostile-job suite - read
 * data.mdb of a node directory (with the store open in this process),
 * read another running attempt's directory, read config and token files,
 * connect to a TCP port opened on 127.0.0.1 by the test (and succeed with
 * network allowed), reach another address, fork-bomb (cgroup and rlimit),
 * allocate past the memory limit, fill the disk quota, burn CPU, write a
 * file past its size limit, kill -9 its parent and the test process, write
 * outside its directory, plant symlink/FIFO outputs; kill of the whole
 * tree; leftovers of a crashed "daemon" found and cleaned; the cgroup v2
 * code path on the unified hierarchy where it is mounted.
 *
 * Needs root, bubblewrap and user namespaces: where they are missing every
 * test is skipped with the reason.  Every test runs its own loop, is
 * bounded by alarm(), closes every sandbox and checks that the loop closes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <lmdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include "common/fs.h"
#include "node/worker/sandbox.h"
#include "node/worker/sandbox_internal.h"
#include "tests/lib/testutil.h"

#define TEST_ALARM_S 60
#define QUOTA_BYTES  (32ull << 20)

static const char *const ENV[] = {"PATH=/usr/bin:/bin", "LC_ALL=C", NULL};

static char skip_reason[512];

struct fx {
	uv_loop_t loop;
	char base[256];
	char state[300];
	char cgparent[64];
	struct sandbox_config cfg;
	struct sandbox_host *h;
};

struct run {
	bool done;
	int64_t status;
	int signal;
	char out[16384];
};

static struct fx *F;

static void config_defaults(struct fx *f)
{
	memset(&f->cfg, 0, sizeof(f->cfg));
	f->cfg.state_dir = f->state;
	f->cfg.cgroup_parent = f->cgparent;
	/* A range of our own: other test runs may be going on. */
	f->cfg.uid_base = 500000u + (uint32_t)(getpid() % 20000) * 16u;
	f->cfg.uid_count = 8;
}

static int setup(void **state)
{
	static struct fx fx;
	memset(&fx, 0, sizeof(fx));
	tu_tmpdir(fx.base, sizeof(fx.base));
	/* The sandbox's uid must be able to pass through to its work dir. */
	chmod(fx.base, 0711);
	snprintf(fx.state, sizeof(fx.state), "%s/state", fx.base);
	snprintf(fx.cgparent, sizeof(fx.cgparent), "ingot-test-%d", (int)getpid());
	config_defaults(&fx);
	assert_int_equal(uv_loop_init(&fx.loop), 0);
	F = &fx;
	*state = &fx;
	alarm(TEST_ALARM_S);
	return 0;
}

static void remove_cgroup_parent(const char *root, const char *parent)
{
	char path[512];
	const char *ctl[] = {"memory", "pids"};
	for (int i = 0; i < 2; i++) {
		snprintf(path, sizeof(path), "%s/%s/%s", root, ctl[i], parent);
		rmdir(path);
	}
	snprintf(path, sizeof(path), "%s/%s", root, parent);
	rmdir(path);
}

static int teardown(void **state)
{
	struct fx *f = *state;
	unsigned found = 0;
	if (f->h != NULL)
		sandbox_host_free(f->h);
	f->h = NULL;
	sandbox_reap_leftovers(&f->cfg, &found, NULL);
	remove_cgroup_parent(SANDBOX_CGROUP_ROOT, f->cgparent);
	remove_cgroup_parent(SANDBOX_CGROUP_ROOT "/unified", f->cgparent);
	uv_run(&f->loop, UV_RUN_DEFAULT);
	int rv = uv_loop_close(&f->loop);
	tu_rmrf(f->base);
	alarm(0);
	assert_int_equal(rv, 0);
	return 0;
}

static void need_sandbox(void)
{
	if (skip_reason[0] != '\0') {
		print_message("skipped: %s\n", skip_reason);
		skip();
	}
}

static void host(struct fx *f)
{
	struct ing_error e = {0};
	int rv = sandbox_host_new(&f->loop, &f->cfg, &f->h, &e);
	if (rv != 0)
		fail_msg("sandbox_host_new: %s", e.msg);
}

/* ---- open / run / close, synchronously --------------------------------- */

struct opened {
	bool done;
	int status;
	struct sandbox *sb;
	char msg[256];
};

static void on_open(struct sandbox *sb, int status, const struct ing_error *e, void *data)
{
	struct opened *o = data;
	o->done = true;
	o->status = status;
	o->sb = sb;
	if (e != NULL)
		snprintf(o->msg, sizeof(o->msg), "%s", e->msg);
}

static void spin(struct fx *f, bool *flag)
{
	while (!*flag)
		uv_run(&f->loop, UV_RUN_ONCE);
}

static struct sandbox *open_req(struct fx *f, struct sandbox_request *req)
{
	struct opened o = {0};
	struct ing_error e = {0};
	int rv = sandbox_open(f->h, req, on_open, &o, &e);
	if (rv != 0)
		fail_msg("sandbox_open: %s", e.msg);
	assert_false(o.done); /* never inside the call */
	spin(f, &o.done);
	if (o.status != 0)
		fail_msg("sandbox open callback: %s", o.msg);
	return o.sb;
}

static struct sandbox *open_named(struct fx *f, const char *name, uint64_t disk, bool network)
{
	char dir[512], parent[512];
	snprintf(parent, sizeof(parent), "%s/work", f->base);
	mkdir(parent, 0711); /* the sandbox's uid passes through (o+x) */
	snprintf(dir, sizeof(dir), "%s/work/%s", f->base, name);
	struct sandbox_request req = {.name = name,
	                              .tenant = "tenant-a",
	                              .work_dir = dir,
	                              .disk_bytes = disk,
	                              .network = network};
	return open_req(f, &req);
}

struct closed {
	bool done;
	int status;
};

static void on_closed(void *data, int status, const struct ing_error *e)
{
	struct closed *c = data;
	(void)e;
	c->done = true;
	c->status = status;
}

static void close_sb(struct fx *f, struct sandbox *sb)
{
	struct closed c = {0};
	sandbox_close(sb, on_closed, &c);
	spin(f, &c.done);
	assert_int_equal(c.status, 0);
}

struct proc {
	uv_process_t p;
	struct run *r;
	int out_fd;
	char out_path[512];
};

static void on_proc_exit(uv_process_t *p, int64_t status, int sig)
{
	struct proc *pr = p->data;
	pr->r->status = status;
	pr->r->signal = sig;
	pr->r->done = true;
	uv_close((uv_handle_t *)p, NULL);
}

/* Starts argv in sb with stdout+stderr into a file outside the sandbox. */
static void start(struct fx *f, struct sandbox *sb, const char *const *argv,
                  const struct sandbox_limits *lim, struct proc *pr, struct run *r)
{
	static int seq;
	memset(r, 0, sizeof(*r));
	memset(pr, 0, sizeof(*pr));
	pr->r = r;
	snprintf(pr->out_path, sizeof(pr->out_path), "%s/out-%d.txt", f->base, seq++);
	pr->out_fd = open(pr->out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(pr->out_fd >= 0);
	uv_stdio_container_t stdio[3];
	stdio[0].flags = UV_IGNORE;
	stdio[1].flags = UV_INHERIT_FD;
	stdio[1].data.fd = pr->out_fd;
	stdio[2].flags = UV_INHERIT_FD;
	stdio[2].data.fd = pr->out_fd;
	struct sandbox_command cmd = {
	    .argv = argv, .env = ENV, .stdio = stdio, .stdio_count = 3, .exit_cb = on_proc_exit};
	if (lim != NULL)
		cmd.limits = *lim;
	struct ing_error e = {0};
	int rv = sandbox_spawn(sb, &pr->p, &cmd, &e);
	if (rv != 0)
		fail_msg("sandbox_spawn: %s", e.msg);
	pr->p.data = pr;
}

static void finish(struct fx *f, struct proc *pr)
{
	spin(f, &pr->r->done);
	close(pr->out_fd);
	int fd = open(pr->out_path, O_RDONLY | O_CLOEXEC);
	ssize_t n = read(fd, pr->r->out, sizeof(pr->r->out) - 1);
	close(fd);
	pr->r->out[n > 0 ? n : 0] = '\0';
}

static void run_in(struct fx *f, struct sandbox *sb, const char *const *argv,
                   const struct sandbox_limits *lim, struct run *r)
{
	struct proc pr;
	start(f, sb, argv, lim, &pr, r);
	finish(f, &pr);
}

/* Shell one-liner in the sandbox. */
static void sh_in(struct fx *f, struct sandbox *sb, const char *script,
                  const struct sandbox_limits *lim, struct run *r)
{
	const char *argv[] = {"/bin/sh", "-c", script, NULL};
	run_in(f, sb, argv, lim, r);
}

static bool contains(const char *hay, const char *needle)
{
	return strstr(hay, needle) != NULL;
}

static void expect_explained(struct sandbox *sb, const struct run *r, const char *want,
                             enum sandbox_limit_hit want_hit)
{
	char why[256] = "";
	enum sandbox_limit_hit hit = sandbox_explain(sb, r->status, r->signal, why, sizeof(why));
	if (hit == SANDBOX_HIT_NONE)
		fail_msg("no explanation for status %lld signal %d (want \"%s\"); output: %s",
		         (long long)r->status, r->signal, want, r->out);
	if (!contains(why, want))
		fail_msg("explained \"%s\", want \"%s\"", why, want);
	if (hit != want_hit)
		fail_msg("explained \"%s\" as limit %d, want %d", why, (int)hit, (int)want_hit);
}

/* Number of live (not zombie) processes whose real uid is `uid`.  Zombies
 * are dead: the orphaned bwrap pid 1 may wait a moment for init to reap it. */
static unsigned procs_of_uid(uint32_t uid)
{
	DIR *d = opendir("/proc");
	unsigned n = 0;
	struct dirent *de;
	while (d != NULL && (de = readdir(d)) != NULL) {
		char path[300], buf[4096];
		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/status", de->d_name);
		if (sbx_read_small(path, buf, sizeof(buf)) <= 0)
			continue;
		const char *u = strstr(buf, "\nUid:");
		const char *st = strstr(buf, "\nState:");
		if (u != NULL && strtoul(u + 5, NULL, 10) == uid &&
		    (st == NULL || strchr(st + 7, 'Z') == NULL ||
		     strchr(st + 7, 'Z') > strchr(st + 1, '\n')))
			n++;
	}
	if (d != NULL)
		closedir(d);
	return n;
}

/* Lets the loop run for about `ms` (a command starts only once the loop
 * has opened its gate). */
static void pause_ms(struct fx *f, unsigned ms)
{
	uv_run(&f->loop, UV_RUN_NOWAIT);
	usleep(ms * 1000u);
	uv_run(&f->loop, UV_RUN_NOWAIT);
}

/* Waits (at most 2 s) until no live process of `uid` remains: a process
 * already out of its cgroup may still be finishing its exit. */
static unsigned procs_left(uint32_t uid)
{
	for (int i = 0; i < 200 && procs_of_uid(uid) != 0; i++)
		usleep(10000);
	return procs_of_uid(uid);
}

/* ---- the probe --------------------------------------------------------- */

static void probe_reports_mechanisms(void **state)
{
	struct fx *f = *state;
	need_sandbox();
	host(f);
	const char *m = sandbox_host_mechanisms(f->h);
	print_message("mechanisms: %s\n", m);
	assert_true(contains(m, "bwrap"));
	assert_true(contains(m, "identity=uid:"));
	assert_true(contains(m, "ns=user,pid,mount,ipc,uts,net"));
	/* This kind of machine: cgroup v1 memory and pids, loop mounts. */
	if (access(SANDBOX_CGROUP_ROOT "/memory/cgroup.procs", F_OK) == 0)
		assert_true(contains(m, "memory=cgroup1"));
	if (access(SANDBOX_CGROUP_ROOT "/pids/cgroup.procs", F_OK) == 0)
		assert_true(contains(m, "processes=cgroup1"));
	assert_true(contains(m, "disk=ext4-loop"));
}

static void probe_refusals(void **state)
{
	struct fx *f = *state;
	struct ing_error e = {0};
	struct sandbox_host *h = NULL;
	need_sandbox();

	f->cfg.bwrap_path = "/nonexistent/bwrap";
	assert_int_equal(sandbox_host_new(&f->loop, &f->cfg, &h, &e), ING_EUNAVAILABLE);
	assert_true(contains(e.msg, "bubblewrap"));
	assert_true(contains(e.msg, "sandbox: off"));
	config_defaults(f);

	f->cfg.uid_base = 0;
	f->cfg.uid_count = 0;
	f->cfg.uid_base = 65000;
	f->cfg.uid_count = 1000; /* holds nobody */
	assert_int_equal(sandbox_host_new(&f->loop, &f->cfg, &h, &e), ING_EINVAL);
	assert_true(contains(e.msg, "uid range"));
	config_defaults(f);

	const char *ro[] = {"relative/path", NULL};
	f->cfg.ro_paths = ro;
	assert_int_equal(sandbox_host_new(&f->loop, &f->cfg, &h, &e), ING_EINVAL);
	assert_true(contains(e.msg, "relative/path"));
	config_defaults(f);

	f->cfg.cgroup_parent = "../escape";
	assert_int_equal(sandbox_host_new(&f->loop, &f->cfg, &h, &e), ING_EINVAL);
	config_defaults(f);
	f->cfg.state_dir = NULL;
	assert_int_equal(sandbox_host_new(&f->loop, &f->cfg, &h, &e), ING_EINVAL);
	config_defaults(f);
	assert_null(h);
}

static void open_refusals(void **state)
{
	struct fx *f = *state;
	struct ing_error e = {0};
	struct opened o = {0};
	need_sandbox();
	host(f);
	char dir[512];
	snprintf(dir, sizeof(dir), "%s/work/x", f->base);
	struct sandbox_request req = {.name = "bad/name", .work_dir = dir};
	assert_int_equal(sandbox_open(f->h, &req, on_open, &o, &e), ING_EINVAL);
	req.name = "ok";
	req.work_dir = "relative";
	assert_int_equal(sandbox_open(f->h, &req, on_open, &o, &e), ING_EINVAL);
	req.work_dir = dir;
	req.disk_bytes = 4096;
	assert_int_equal(sandbox_open(f->h, &req, on_open, &o, &e), ING_EINVAL);
	assert_true(contains(e.msg, "minimum"));
	req.disk_bytes = 0;
	const struct sandbox_device dev[] = {{.path = "/etc/passwd"}};
	req.devices = dev;
	req.ndevices = 1;
	assert_int_equal(sandbox_open(f->h, &req, on_open, &o, &e), ING_EINVAL);
	assert_true(contains(e.msg, "character device"));
	const struct sandbox_device outside[] = {{.path = "/dev/null", .at = "/etc/null"},
	                                         {.path = "/dev/null", .at = "/dev/../x"},
	                                         {.path = "/dev/null", .at = "/dev/"}};
	for (size_t i = 0; i < 3; i++) {
		req.devices = &outside[i];
		assert_int_equal(sandbox_open(f->h, &req, on_open, &o, &e), ING_EINVAL);
		assert_true(contains(e.msg, "must appear below /dev/"));
	}
	req.devices = NULL;
	req.ndevices = 0;
	req.work_dir = f->state; /* the state directory itself */
	assert_int_equal(sandbox_open(f->h, &req, on_open, &o, &e), ING_EINVAL);
	/* A work directory that is not empty. */
	char full[512];
	snprintf(full, sizeof(full), "%s/full", f->base);
	mkdir(full, 0700);
	char junk[600];
	snprintf(junk, sizeof(junk), "%s/junk", full);
	ing_write_file(junk, "x", 1, 0600, 0, NULL);
	req.work_dir = full;
	assert_int_equal(sandbox_open(f->h, &req, on_open, &o, &e), 0);
	spin(f, &o.done);
	assert_int_equal(o.status, ING_EEXIST);
	assert_null(o.sb);
	assert_true(contains(o.msg, "not empty"));
	assert_int_equal(sandbox_host_open_count(f->h), 0);
	/* A work directory whose parent keeps other users out. */
	char closed_dir[512];
	snprintf(closed_dir, sizeof(closed_dir), "%s/closed", f->base);
	mkdir(closed_dir, 0700);
	snprintf(dir, sizeof(dir), "%s/closed/w", f->base);
	req.work_dir = dir;
	memset(&o, 0, sizeof(o));
	assert_int_equal(sandbox_open(f->h, &req, on_open, &o, &e), 0);
	spin(f, &o.done);
	assert_int_equal(o.status, ING_EDENIED);
	assert_true(contains(o.msg, "o+x"));
}

/* ---- identity and a real toolchain ------------------------------------- */

static void identity_is_own_and_files_stay_readable(void **state)
{
	struct fx *f = *state;
	struct run r;
	need_sandbox();
	host(f);
	struct sandbox *a = open_named(f, "job-1-a1", QUOTA_BYTES, false);
	struct sandbox *b = open_named(f, "job-2-a1", 0, false);
	assert_int_not_equal(sandbox_uid(a), sandbox_uid(b));
	assert_int_not_equal(sandbox_uid(a), 0);
	assert_int_not_equal(sandbox_uid(a), geteuid());
	assert_int_equal(sandbox_uid(a), f->cfg.uid_base);

	sh_in(f, a, "id -u; id -g; id -G; id -un; umask 077; mkdir -p d; echo secret > d/f", NULL,
	      &r);
	assert_int_equal(r.status, 0);
	char want[64];
	snprintf(want, sizeof(want), "%u\n%u\n%u\ningot\n", sandbox_uid(a), sandbox_uid(a),
	         sandbox_uid(a));
	assert_string_equal(r.out, want);
	/* The daemon reads what the stage left, even 0600 in a 0700 dir. */
	char path[600];
	snprintf(path, sizeof(path), "%s/d/f", sandbox_work_dir(a));
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_uid, sandbox_uid(a));
	char *buf = NULL;
	size_t len = 0;
	struct ing_error e = {0};
	assert_int_equal(sandbox_read_output(a, "d/f", 1024, &buf, &len, &e), 0);
	assert_string_equal(buf, "secret\n");
	free(buf);

	/* Files the daemon writes are handed over. */
	snprintf(path, sizeof(path), "%s/src", sandbox_work_dir(b));
	mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/src/main.c", sandbox_work_dir(b));
	ing_write_file(path, "int main(void){return 0;}\n", 26, 0600, 0, NULL);
	snprintf(path, sizeof(path), "%s/src", sandbox_work_dir(b));
	assert_int_equal(sandbox_hand_over(b, path, &e), 0);
	assert_int_equal(sandbox_hand_over(b, "/etc", &e), ING_EINVAL);
	sh_in(f, b, "cat src/main.c && echo more >> src/main.c", NULL, &r);
	assert_int_equal(r.status, 0);

	close_sb(f, a);
	close_sb(f, b);
	/* Identities come back once closed, and the work dir is empty. */
	struct sandbox *c = open_named(f, "job-3-a1", 0, false);
	assert_int_equal(sandbox_uid(c), f->cfg.uid_base);
	close_sb(f, c);
}

static void compiles_and_runs_real_c(void **state)
{
	struct fx *f = *state;
	struct run r;
	need_sandbox();
	host(f);
	struct sandbox *sb = open_named(f, "job-cc-a1", QUOTA_BYTES, false);
	char path[600];
	snprintf(path, sizeof(path), "%s/hello.c", sandbox_work_dir(sb));
	const char *src = "#include <stdio.h>\nint main(void){puts(\"hello from the box\");"
	                  "return 0;}\n";
	ing_write_file(path, src, strlen(src), 0600, 0, NULL);
	assert_int_equal(sandbox_hand_over(sb, path, NULL), 0);
	sh_in(f, sb, "cc -O2 -o hello hello.c && ./hello", NULL, &r);
	if (r.status != 0)
		fail_msg("compile in the sandbox failed (%lld): %s", (long long)r.status, r.out);
	assert_true(contains(r.out, "hello from the box"));
	close_sb(f, sb);
}

/* ---- the hostile-job suite --------------------------------------------- */

static void cannot_see_the_node_store_or_its_files(void **state)
{
	struct fx *f = *state;
	struct run r;
	need_sandbox();
	host(f);
	/* A node directory with a real, open LMDB store, a config, a token. */
	char node[400], path[600];
	snprintf(node, sizeof(node), "%s/node", f->base);
	mkdir(node, 0755);
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_open(env, node, 0, 0644), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, NULL, 0, &dbi), 0);
	MDB_val k = {3, (void *)"key"}, v = {17, (void *)"TENANT-B-SOURCES!"};
	assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
	snprintf(path, sizeof(path), "%s/config.yaml", node);
	ing_write_file(path, "token: CONFIG-SECRET\n", 21, 0600, 0, NULL);
	chmod(path, 0644); /* even world-readable */
	snprintf(path, sizeof(path), "%s/admin.token", node);
	ing_write_file(path, "TOKEN-SECRET\n", 13, 0600, 0, NULL);
	chmod(path, 0644);

	struct sandbox *sb = open_named(f, "job-5-a1", 0, false);
	char script[2048];
	snprintf(script, sizeof(script),
	         "cat %s/data.mdb; cat %s/config.yaml; cat %s/admin.token; ls %s; ls -a %s; "
	         "ls /home /root /run /var /etc/shadow; ls /proc/self/fd; ls /; "
	         "cat /proc/1/cmdline | tr '\\0' ' '; echo; echo end",
	         node, node, node, node, f->base);
	sh_in(f, sb, script, NULL, &r);
	assert_true(contains(r.out, "end"));
	assert_false(contains(r.out, "TENANT-B-SOURCES"));
	assert_false(contains(r.out, "CONFIG-SECRET"));
	assert_false(contains(r.out, "TOKEN-SECRET"));
	assert_true(contains(r.out, "data.mdb: No such file or directory"));
	assert_true(contains(r.out, "/home': No such file or directory"));
	assert_true(contains(r.out, "/root': No such file or directory"));
	/* Only stdio and ls's own directory: no fd of the daemon leaked (the
	 * store's fds are open in this process right now). */
	if (!contains(r.out, "\n0\n1\n2\n3\nbin\n"))
		fail_msg("unexpected fds or root listing: %s", r.out);
	assert_false(contains(r.out, "\n4\n"));
	/* pid 1 is bwrap, in its own PID namespace. */
	assert_true(contains(r.out, "bwrap"));
	close_sb(f, sb);
	mdb_env_close(env);
}

static void cannot_see_another_running_attempt(void **state)
{
	struct fx *f = *state;
	struct run r, rb;
	struct proc pb;
	need_sandbox();
	host(f);
	struct sandbox *b = open_named(f, "job-6-a1", QUOTA_BYTES, false);
	struct sandbox *a = open_named(f, "job-7-a1", QUOTA_BYTES, false);
	/* B is running and has a secret in its directory. */
	const char *argv_b[] = {"/bin/sh", "-c", "echo B-SECRET > secret; sleep 30", NULL};
	start(f, b, argv_b, NULL, &pb, &rb);
	char secret[600];
	snprintf(secret, sizeof(secret), "%s/secret", sandbox_work_dir(b));
	for (int i = 0; i < 200 && access(secret, F_OK) != 0; i++)
		pause_ms(f, 10);
	char script[1200];
	snprintf(script, sizeof(script),
	         "ls %s; cat %s; ls %s/work; ps ax | grep -c sleep; kill -9 -1; echo end",
	         sandbox_work_dir(b), secret, f->base);
	sh_in(f, a, script, NULL, &r);
	assert_true(contains(r.out, "end"));
	assert_false(contains(r.out, "B-SECRET"));
	assert_true(contains(r.out, "No such file or directory"));
	/* B's sleep still runs: A's kill -1 reached nothing outside A. */
	assert_false(rb.done);
	assert_true(sandbox_running(b));
	sandbox_kill(b, SIGKILL);
	finish(f, &pb);
	close_sb(f, a);
	close_sb(f, b);
}

/* A listening socket on 127.0.0.1 (ephemeral port, so no collision with
 * other worktrees), non-blocking. */
static int listen_loopback(int *port)
{
	int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof(a);
	assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(s, 8), 0);
	assert_int_equal(getsockname(s, (struct sockaddr *)&a, &al), 0);
	*port = ntohs(a.sin_port);
	return s;
}

static void no_network_unless_allowed(void **state)
{
	struct fx *f = *state;
	struct run r;
	need_sandbox();
	host(f);
	int port;
	int s = listen_loopback(&port);
	char script[512];
	snprintf(script, sizeof(script),
	         "bash -c 'echo hi > /dev/tcp/127.0.0.1/%d' && echo CONNECTED; "
	         "bash -c 'echo hi > /dev/tcp/10.1.2.3/80' && echo REACHED; "
	         "bash -c 'echo hi > /dev/tcp/1.1.1.1/53' && echo REACHED; "
	         "ls /sys/class/net 2>/dev/null; cat /proc/net/dev | tail -n +3 | cut -d: -f1; "
	         "test -r /etc/resolv.conf && echo RESOLVER; echo end",
	         port);
	/* Name resolution's files come with the host's network only. */
	bool host_resolver = access("/etc/resolv.conf", R_OK) == 0;
	struct sandbox *sb = open_named(f, "job-8-a1", 0, false);
	sh_in(f, sb, script, NULL, &r);
	assert_true(contains(r.out, "end"));
	assert_false(contains(r.out, "CONNECTED"));
	assert_false(contains(r.out, "REACHED"));
	assert_true(contains(r.out, "Connection refused"));
	assert_true(contains(r.out, "Network is unreachable"));
	assert_false(contains(r.out, "RESOLVER"));
	/* Nothing reached the test's port. */
	assert_int_equal(accept(s, NULL, NULL), -1);
	assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
	close_sb(f, sb);

	/* The same job with network allowed does connect: the check can fail. */
	sb = open_named(f, "job-9-a1", 0, true);
	sh_in(f, sb, script, NULL, &r);
	assert_true(contains(r.out, "CONNECTED"));
	assert_int_equal(contains(r.out, "RESOLVER"), host_resolver);
	int c = accept(s, NULL, NULL);
	assert_true(c >= 0);
	close(c);
	close_sb(f, sb);
	close(s);
}

static void fork_bomb_is_bounded(void **state)
{
	struct fx *f = *state;
	struct run r;
	need_sandbox();
	host(f);
	struct sandbox_limits lim = {.processes = 32};
	struct sandbox *sb = open_named(f, "job-10-a1", 0, false);
	sh_in(f, sb, "i=0; while [ $i -lt 200 ]; do sleep 20 & i=$((i+1)); done; wait", &lim, &r);
	assert_int_not_equal(r.status, 0);
	assert_true(contains(r.out, "fork") || contains(r.out, "Resource temporarily"));
	expect_explained(sb, &r, "process limit of 32 reached", SANDBOX_HIT_PROCESSES);
	/* The tree died with the stage; this process can still fork. */
	assert_int_equal(system("true"), 0);
	close_sb(f, sb);
	assert_int_equal(procs_left(f->cfg.uid_base), 0);
}

static void fork_bomb_is_bounded_by_rlimit_without_cgroups(void **state)
{
	struct fx *f = *state;
	struct run r;
	need_sandbox();
	f->cfg.no_cgroups = true;
	host(f);
	assert_true(contains(sandbox_host_mechanisms(f->h), "processes=rlimit-nproc"));
	struct sandbox_limits lim = {.processes = 32};
	struct sandbox *sb = open_named(f, "job-11-a1", 0, false);
	sh_in(f, sb, "i=0; while [ $i -lt 200 ]; do sleep 20 & i=$((i+1)); done; wait", &lim, &r);
	assert_int_not_equal(r.status, 0);
	assert_true(contains(r.out, "fork") || contains(r.out, "Resource temporarily"));
	close_sb(f, sb);
	assert_int_equal(procs_left(f->cfg.uid_base), 0);
}

static void memory_limit_kills(void **state)
{
	struct fx *f = *state;
	struct run r;
	need_sandbox();
	host(f);
	if (!contains(sandbox_host_mechanisms(f->h), "memory=cgroup")) {
		print_message("skipped: no memory cgroup\n");
		skip();
	}
	struct sandbox_limits lim = {.memory_bytes = 64ull << 20};
	struct sandbox *sb = open_named(f, "job-12-a1", 0, false);
	const char *argv[] = {"python3", "-c", "b = b'x' * (512 << 20); print('survived')", NULL};
	run_in(f, sb, argv, &lim, &r);
	assert_false(contains(r.out, "survived"));
	assert_int_equal(r.status, 128 + SIGKILL);
	expect_explained(sb, &r, "memory limit of 64 MiB reached", SANDBOX_HIT_MEMORY);
	/* Within the limit the same sandbox works. */
	const char *small[] = {"python3", "-c", "b = b'x' * (8 << 20); print('ok')", NULL};
	run_in(f, sb, small, &lim, &r);
	assert_int_equal(r.status, 0);
	close_sb(f, sb);
}

static void disk_quota_stops_the_writer(void **state)
{
	struct fx *f = *state;
	struct run r;
	need_sandbox();
	host(f);
	struct sandbox *sb = open_named(f, "job-13-a1", QUOTA_BYTES, false);
	sh_in(f, sb, "head -c 200M /dev/zero > big; echo rc=$?; ls -l big | cut -d' ' -f5", NULL,
	      &r);
	assert_true(contains(r.out, "No space left on device"));
	expect_explained(sb, &r, "work directory over its 32 MiB quota", SANDBOX_HIT_DISK);
	/* The node's file system gave the stage no more than the image's
	 * size: the blocks the image holds. */
	char img[512];
	snprintf(img, sizeof(img), "%s/job-13-a1.img", f->state);
	struct stat st;
	assert_int_equal(stat(img, &st), 0);
	assert_true((uint64_t)st.st_blocks * 512u <= QUOTA_BYTES);
	/* /tmp is bounded too (memory-backed, its own size). */
	sh_in(f, sb, "head -c 300M /dev/zero > /tmp/big; echo rc=$?", NULL, &r);
	assert_true(contains(r.out, "No space left on device"));
	close_sb(f, sb);
	/* The mount and the image are gone, the directory is empty. */
	char dir[512];
	snprintf(dir, sizeof(dir), "%s/work/job-13-a1", f->base);
	assert_false(sbx_is_mount_point(dir));
	assert_int_equal(access(img, F_OK), -1);
}

static void cpu_and_file_size_limits(void **state)
{
	struct fx *f = *state;
	struct run r;
	need_sandbox();
	host(f);
	struct sandbox *sb = open_named(f, "job-14-a1", 0, false);
	struct sandbox_limits cpu = {.cpu_seconds = 1};
	sh_in(f, sb, "while :; do :; done", &cpu, &r);
	assert_int_equal(r.status, 128 + SIGXCPU);
	expect_explained(sb, &r, "CPU time limit of 1 s reached", SANDBOX_HIT_CPU);
	struct sandbox_limits fsz = {.file_size_bytes = 1u << 20};
	const char *argv[] = {"head", "-c", "4M", "/dev/zero", NULL};
	struct proc pr;
	start(f, sb, argv, &fsz, &pr, &r);
	finish(f, &pr);
	/* head's stdout is the test's file: the limit applies to it as well. */
	struct stat st;
	assert_int_equal(stat(pr.out_path, &st), 0);
	assert_true(st.st_size <= (1 << 20));
	expect_explained(sb, &r, "file size limit of 1 MiB reached", SANDBOX_HIT_FILE_SIZE);
	close_sb(f, sb);
}

static void killing_parent_or_daemon_fails(void **state)
{
	struct fx *f = *state;
	struct run r;
	need_sandbox();
	host(f);
	struct sandbox *sb = open_named(f, "job-15-a1", 0, false);
	char script[512];
	snprintf(script, sizeof(script),
	         "kill -9 $PPID; echo ppid=$PPID; kill -9 1; kill -9 %d; kill -9 -1; "
	         "echo still-here",
	         (int)getpid());
	sh_in(f, sb, script, NULL, &r);
	assert_true(contains(r.out, "still-here"));
	assert_true(contains(r.out, "ppid=1"));
	assert_true(contains(r.out, "No such process"));
	/* This process (the "daemon") is alive, and the sandbox still works. */
	sh_in(f, sb, "echo again", NULL, &r);
	assert_int_equal(r.status, 0);
	close_sb(f, sb);
}

static void cannot_write_outside(void **state)
{
	struct fx *f = *state;
	struct run r;
	need_sandbox();
	host(f);
	struct sandbox *sb = open_named(f, "job-16-a1", 0, false);
	char outside[512], script[2048];
	snprintf(outside, sizeof(outside), "%s/outside", f->base);
	snprintf(script, sizeof(script),
	         "touch /usr/x /x /etc/x /dev/x /proc/x %s %s/../escape /tmp/inside; "
	         "echo hi > /dev/null && echo devnull-ok; ls /tmp; mknod dev c 1 3; echo end",
	         outside, sandbox_work_dir(sb));
	sh_in(f, sb, script, NULL, &r);
	assert_true(contains(r.out, "end"));
	assert_true(contains(r.out, "devnull-ok"));
	assert_true(contains(r.out, "Read-only file system"));
	assert_int_equal(access(outside, F_OK), -1);
	assert_int_equal(access("/usr/x", F_OK), -1);
	assert_int_equal(access("/x", F_OK), -1);
	assert_int_equal(access("/tmp/inside", F_OK), -1);
	snprintf(outside, sizeof(outside), "%s/work/escape", f->base);
	assert_int_equal(access(outside, F_OK), -1);
	close_sb(f, sb);
}

/* A device bound in appears at the /dev/ path asked for, wherever it is on
 * the host (a scratch directory standing in for /dev), usable, and only in
 * the sandbox it was asked for. */
static void devices_appear_where_asked(void **state)
{
	struct fx *f = *state;
	struct run r;
	need_sandbox();
	host(f);
	char devdir[512], nv[600], ctl[600], parent[512], dir[600];
	snprintf(devdir, sizeof(devdir), "%s/fake-dev", f->base);
	assert_int_equal(mkdir(devdir, 0755), 0);
	snprintf(nv, sizeof(nv), "%s/nvidia7", devdir);
	snprintf(ctl, sizeof(ctl), "%s/nvidiactl", devdir);
	/* Copies of /dev/null: any character device stands in for a GPU's. */
	assert_int_equal(mknod(nv, S_IFCHR | 0666, makedev(1, 3)), 0);
	assert_int_equal(mknod(ctl, S_IFCHR | 0666, makedev(1, 3)), 0);
	assert_int_equal(chmod(nv, 0666), 0); /* past the umask */
	const struct sandbox_device dev[] = {{.path = nv, .at = "/dev/nvidia7"},
	                                     {.path = ctl, .at = "/dev/nvidiactl"}};
	snprintf(parent, sizeof(parent), "%s/work", f->base);
	mkdir(parent, 0711);
	snprintf(dir, sizeof(dir), "%s/job-30-a1", parent);
	struct sandbox_request req = {
	    .name = "job-30-a1", .work_dir = dir, .devices = dev, .ndevices = 2};
	struct sandbox *sb = open_req(f, &req);
	struct sandbox *plain = open_named(f, "job-31-a1", 0, false);
	const char *script = "ls /dev | grep nvidia | tr '\\n' ' '; echo x > /dev/nvidia7 && "
	                     "echo write-ok; ls -d /dev/fake-dev "
	                     "2>/dev/null; echo end";
	sh_in(f, sb, script, NULL, &r);
	if (!contains(r.out, "nvidia7 nvidiactl write-ok\nend"))
		fail_msg("in the sandbox: %s", r.out);
	sh_in(f, plain, "ls /dev | grep -c nvidia; echo end", NULL, &r);
	assert_true(contains(r.out, "0\nend"));
	close_sb(f, plain);
	close_sb(f, sb);
}

static void symlink_outputs_are_refused(void **state)
{
	struct fx *f = *state;
	struct run r;
	need_sandbox();
	host(f);
	struct sandbox *sb = open_named(f, "job-17-a1", QUOTA_BYTES, false);
	sh_in(f, sb,
	      "ln -s /etc/passwd out.txt; mkdir -p out; ln -s /etc out/etc; ln -s .. up; "
	      "mkfifo fifo; echo fine > good.txt; echo end",
	      NULL, &r);
	assert_true(contains(r.out, "end"));
	char *buf = NULL;
	size_t len = 0;
	struct ing_error e = {0};
	assert_int_equal(sandbox_read_output(sb, "out.txt", 1 << 20, &buf, &len, &e), ING_EDENIED);
	assert_true(contains(e.msg, "symbolic link"));
	assert_int_equal(sandbox_read_output(sb, "out/etc/passwd", 1 << 20, &buf, &len, &e),
	                 ING_EDENIED);
	assert_int_equal(sandbox_read_output(sb, "up/job-17-a1/good.txt", 1 << 20, &buf, &len, &e),
	                 ING_EDENIED);
	assert_int_equal(sandbox_read_output(sb, "../job-17-a1/good.txt", 1 << 20, &buf, &len, &e),
	                 ING_EDENIED);
	assert_int_equal(sandbox_read_output(sb, "/etc/passwd", 1 << 20, &buf, &len, &e),
	                 ING_EDENIED);
	assert_int_equal(sandbox_read_output(sb, "fifo", 1 << 20, &buf, &len, &e), ING_EDENIED);
	assert_true(contains(e.msg, "not a regular file"));
	assert_int_equal(sandbox_read_output(sb, "missing", 1 << 20, &buf, &len, &e),
	                 ING_ENOTFOUND);
	assert_int_equal(sandbox_read_output(sb, "good.txt", 2, &buf, &len, &e), ING_ETOOBIG);
	assert_int_equal(sandbox_read_output(sb, "good.txt", 1 << 20, &buf, &len, &e), 0);
	assert_string_equal(buf, "fine\n");
	free(buf);
	close_sb(f, sb);
}

/* The daemon creates stage directories and stdout files in a directory
 * the stages own: a planted symlink must never redirect its writes. */
static void daemon_writes_never_follow_planted_symlinks(void **state)
{
	struct fx *f = *state;
	struct run r;
	need_sandbox();
	host(f);
	struct sandbox *sb = open_named(f, "job-23-a1", QUOTA_BYTES, false);
	char victim[512], script[1024];
	snprintf(victim, sizeof(victim), "%s/victim", f->base);
	mkdir(victim, 0700);
	snprintf(script, sizeof(script),
	         "mkdir -p out; ln -s %s out/1-next; ln -s %s/file out/stdout.txt; echo end",
	         victim, victim);
	sh_in(f, sb, script, NULL, &r);
	assert_true(contains(r.out, "end"));
	int fd = -1;
	struct ing_error e = {0};
	assert_int_equal(sandbox_create(sb, "out/1-next", true, &fd, &e), ING_EDENIED);
	assert_int_equal(sandbox_create(sb, "out/1-next/stdout.txt", false, &fd, &e), ING_EDENIED);
	assert_int_equal(sandbox_create(sb, "out/stdout.txt", false, &fd, &e), ING_EDENIED);
	assert_true(contains(e.msg, "symbolic link"));
	assert_int_equal(sandbox_create(sb, "../escape", false, &fd, &e), ING_EDENIED);
	assert_int_equal(sandbox_create(sb, "/etc/x", false, &fd, &e), ING_EDENIED);
	/* Nothing appeared in the victim directory. */
	char probe[600];
	snprintf(probe, sizeof(probe), "%s/file", victim);
	assert_int_equal(access(probe, F_OK), -1);
	snprintf(probe, sizeof(probe), "%s/stdout.txt", victim);
	assert_int_equal(access(probe, F_OK), -1);
	/* The normal case: directories and a file, given to the sandbox. */
	assert_int_equal(sandbox_create(sb, "out/2-ok/sub", true, &fd, &e), 0);
	assert_int_equal(fd, -1);
	assert_int_equal(sandbox_create(sb, "out/2-ok/sub/stdout.txt", false, &fd, &e), 0);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "hi\n", 3), 3);
	struct stat st;
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(st.st_uid, sandbox_uid(sb));
	close(fd);
	sh_in(f, sb, "cat out/2-ok/sub/stdout.txt && echo more >> out/2-ok/sub/stdout.txt", NULL,
	      &r);
	assert_int_equal(r.status, 0);
	assert_true(contains(r.out, "hi"));
	close_sb(f, sb);
}

static void kill_takes_the_whole_tree(void **state)
{
	struct fx *f = *state;
	struct run r;
	struct proc pr;
	need_sandbox();
	host(f);
	struct sandbox *sb = open_named(f, "job-18-a1", 0, false);
	const char *argv[] = {"/bin/sh", "-c",
	                      "(trap '' TERM; sleep 60) & setsid sleep 60 & sleep 60 & wait", NULL};
	start(f, sb, argv, NULL, &pr, &r);
	for (int i = 0; i < 200 && procs_of_uid(sandbox_uid(sb)) < 5; i++)
		pause_ms(f, 10);
	assert_true(procs_of_uid(sandbox_uid(sb)) >= 5);
	uint64_t t0 = uv_hrtime();
	sandbox_kill(sb, SIGKILL);
	finish(f, &pr);
	assert_true((uv_hrtime() - t0) / 1000000u < 2000);
	close_sb(f, sb);
	assert_int_equal(procs_left(f->cfg.uid_base), 0);
}

static void close_while_running_kills_and_reports_exit(void **state)
{
	struct fx *f = *state;
	struct run r;
	struct proc pr;
	need_sandbox();
	host(f);
	struct sandbox *sb = open_named(f, "job-19-a1", QUOTA_BYTES, false);
	const char *argv[] = {"sleep", "60", NULL};
	start(f, sb, argv, NULL, &pr, &r);
	struct closed c = {0};
	sandbox_close(sb, on_closed, &c);
	spin(f, &c.done);
	assert_true(r.done); /* the exit callback ran first */
	assert_int_equal(c.status, 0);
	close(pr.out_fd);
	assert_int_equal(procs_left(f->cfg.uid_base), 0);
}

/* ---- leftovers of a crashed daemon ------------------------------------- */

static void crashed_daemon_leftovers_are_reaped(void **state)
{
	struct fx *f = *state;
	need_sandbox();
	char dir[512];
	snprintf(dir, sizeof(dir), "%s/work", f->base);
	mkdir(dir, 0711);
	int ready[2];
	assert_int_equal(pipe(ready), 0);
	pid_t child = fork();
	if (child == 0) {
		/* The "daemon": opens a sandbox, starts a stage, dies hard. */
		close(ready[0]);
		uv_loop_t loop;
		uv_loop_init(&loop);
		struct sandbox_host *h;
		if (sandbox_host_new(&loop, &f->cfg, &h, NULL) != 0)
			_exit(2);
		snprintf(dir, sizeof(dir), "%s/work/job-20-a1", f->base);
		struct sandbox_request req = {
		    .name = "job-20-a1", .work_dir = dir, .disk_bytes = QUOTA_BYTES};
		struct opened o = {0};
		if (sandbox_open(h, &req, on_open, &o, NULL) != 0)
			_exit(3);
		while (!o.done)
			uv_run(&loop, UV_RUN_ONCE);
		if (o.status != 0)
			_exit(4);
		const char *argv[] = {"sleep", "60", NULL};
		uv_process_t p;
		struct sandbox_command cmd = {.argv = argv, .env = ENV};
		if (sandbox_spawn(o.sb, &p, &cmd, NULL) != 0)
			_exit(5);
		if (write(ready[1], "x", 1) != 1)
			_exit(6);
		pause();
		_exit(0);
	}
	close(ready[1]);
	char c;
	assert_int_equal(read(ready[0], &c, 1), 1);
	close(ready[0]);
	kill(child, SIGKILL);
	int status;
	waitpid(child, &status, 0);

	snprintf(dir, sizeof(dir), "%s/work/job-20-a1", f->base);
	assert_true(sbx_is_mount_point(dir)); /* left behind */
	unsigned found = 0;
	struct ing_error e = {0};
	assert_int_equal(sandbox_reap_leftovers(&f->cfg, &found, &e), 0);
	assert_int_equal(found, 1);
	assert_false(sbx_is_mount_point(dir));
	assert_int_equal(procs_left(f->cfg.uid_base), 0);
	char cg[512];
	snprintf(cg, sizeof(cg), "%s/pids/%s/job-20-a1", SANDBOX_CGROUP_ROOT, f->cgparent);
	assert_int_equal(access(cg, F_OK), -1);
	/* Nothing more the second time. */
	assert_int_equal(sandbox_reap_leftovers(&f->cfg, &found, &e), 0);
	assert_int_equal(found, 0);
}

/* ---- a daemon without root -------------------------------------------- */

struct child_run {
	bool done;
	int64_t status;
};

static void on_child_proc_exit(uv_process_t *p, int64_t status, int sig)
{
	struct child_run *c = p->data;
	(void)sig;
	c->status = status;
	c->done = true;
	uv_close((uv_handle_t *)p, NULL);
}

/* In a child that dropped root: the sandbox refuses without
 * allow_daemon_uid, then runs stages under the daemon's uid in its user
 * namespace, without cgroups or quota.  Returns 0 or a step number. */
static int unprivileged_child(struct fx *f, int out_fd)
{
	uv_loop_t loop;
	struct sandbox_host *h = NULL;
	struct ing_error e = {0};
	if (setgroups(0, NULL) != 0 || setgid(65534) != 0 || setuid(65534) != 0)
		return 1;
	uv_loop_init(&loop);
	if (sandbox_host_new(&loop, &f->cfg, &h, &e) != ING_EUNAVAILABLE ||
	    !contains(e.msg, "cannot switch"))
		return 2;
	f->cfg.allow_daemon_uid = true;
	if (sandbox_host_new(&loop, &f->cfg, &h, &e) != 0) {
		dprintf(2, "host: %s\n", e.msg);
		return 3;
	}
	const char *m = sandbox_host_mechanisms(h);
	dprintf(out_fd, "mechanisms: %s\n", m);
	if (!contains(m, "identity=daemon-uid") || !contains(m, "disk=none") ||
	    !contains(m, "memory=rlimit-as"))
		return 4;
	char dir[512];
	snprintf(dir, sizeof(dir), "%s/uwork/job-22-a1", f->base);
	struct sandbox_request req = {
	    .name = "job-22-a1", .work_dir = dir, .disk_bytes = QUOTA_BYTES};
	struct opened o = {0};
	if (sandbox_open(h, &req, on_open, &o, &e) != 0)
		return 5;
	while (!o.done)
		uv_run(&loop, UV_RUN_ONCE);
	if (o.status != 0) {
		dprintf(2, "open: %s\n", o.msg);
		return 6;
	}
	const char *argv[] = {"/bin/sh", "-c", "id -u; echo x > made && ls /home 2>&1; true", NULL};
	uv_stdio_container_t stdio[3] = {{.flags = UV_IGNORE},
	                                 {.flags = UV_INHERIT_FD, .data.fd = out_fd},
	                                 {.flags = UV_INHERIT_FD, .data.fd = out_fd}};
	struct sandbox_command cmd = {.argv = argv,
	                              .env = ENV,
	                              .stdio = stdio,
	                              .stdio_count = 3,
	                              .exit_cb = on_child_proc_exit};
	uv_process_t p;
	struct child_run c = {0};
	if (sandbox_spawn(o.sb, &p, &cmd, &e) != 0)
		return 7;
	p.data = &c;
	while (!c.done)
		uv_run(&loop, UV_RUN_ONCE);
	if (c.status != 0)
		return 8;
	struct closed cl = {0};
	sandbox_close(o.sb, on_closed, &cl);
	while (!cl.done)
		uv_run(&loop, UV_RUN_ONCE);
	if (cl.status != 0 || sandbox_host_free(h) != 0)
		return 9;
	uv_run(&loop, UV_RUN_DEFAULT);
	return uv_loop_close(&loop) == 0 ? 0 : 10;
}

static void runs_without_root_under_the_daemon_uid(void **state)
{
	struct fx *f = *state;
	need_sandbox();
	char dir[512], out[512];
	snprintf(dir, sizeof(dir), "%s/uwork", f->base);
	assert_int_equal(mkdir(dir, 0711), 0);
	assert_int_equal(chown(dir, 65534, 65534), 0);
	assert_int_equal(mkdir(f->state, 0700), 0);
	assert_int_equal(chown(f->state, 65534, 65534), 0);
	snprintf(out, sizeof(out), "%s/unpriv.txt", f->base);
	int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
	assert_true(fd >= 0);
	fchown(fd, 65534, 65534);
	pid_t child = fork();
	if (child == 0)
		_exit(unprivileged_child(f, fd));
	close(fd);
	int status = 0;
	assert_int_equal(waitpid(child, &status, 0), child);
	char text[4096];
	sbx_read_small(out, text, sizeof(text));
	print_message("%s", text);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		fail_msg("unprivileged daemon failed at step %d", WEXITSTATUS(status));
	/* Inside: the first uid of the range; outside: the daemon's (nobody). */
	char want[64];
	snprintf(want, sizeof(want), "\n%u\n", f->cfg.uid_base);
	assert_true(contains(text, want));
	assert_true(contains(text, "/home': No such file or directory"));
}

/* ---- cgroup v2 --------------------------------------------------------- */

static void cgroup2_code_path(void **state)
{
	struct fx *f = *state;
	struct run r;
	struct proc pr;
	need_sandbox();
	const char *root = SANDBOX_CGROUP_ROOT "/unified";
	char probe[300];
	snprintf(probe, sizeof(probe), "%s/cgroup.controllers", root);
	if (access(probe, F_OK) != 0) {
		print_message("skipped: no cgroup2 mounted at %s\n", root);
		skip();
	}
	f->cfg.cgroup_root = root;
	host(f);
	print_message("mechanisms (v2 without controllers): %s\n", sandbox_host_mechanisms(f->h));
	struct sandbox *sb = open_named(f, "job-21-a1", 0, false);
	const char *argv[] = {"/bin/sh", "-c", "sleep 60 & sleep 60 & wait", NULL};
	start(f, sb, argv, NULL, &pr, &r);
	char procs[512], buf[4096];
	snprintf(procs, sizeof(procs), "%s/%s/job-21-a1/cgroup.procs", root, f->cgparent);
	for (int i = 0; i < 200; i++) {
		sbx_read_small(procs, buf, sizeof(buf));
		if (strchr(buf, '\n') != NULL && strchr(strchr(buf, '\n') + 1, '\n') != NULL &&
		    procs_of_uid(sandbox_uid(sb)) >= 4)
			break;
		pause_ms(f, 10);
	}
	/* The whole tree is in the cgroup: every process of the uid. */
	unsigned listed = 0;
	for (char *p = buf; *p != '\0'; p++)
		listed += *p == '\n';
	assert_int_equal(listed, procs_of_uid(sandbox_uid(sb)));
	sandbox_kill(sb, SIGKILL);
	finish(f, &pr);
	close_sb(f, sb);
	assert_int_equal(procs_left(f->cfg.uid_base), 0);
}

static void detect_environment(void)
{
	if (geteuid() != 0) {
		snprintf(skip_reason, sizeof(skip_reason), "needs root");
		return;
	}
	if (access(SANDBOX_BWRAP_PATH, X_OK) != 0) {
		snprintf(skip_reason, sizeof(skip_reason), "%s missing (scripts/setup)",
		         SANDBOX_BWRAP_PATH);
		return;
	}
	char buf[32];
	if (sbx_read_small("/proc/sys/user/max_user_namespaces", buf, sizeof(buf)) > 0 &&
	    atoi(buf) == 0)
		snprintf(skip_reason, sizeof(skip_reason), "user namespaces disabled");
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	detect_environment();
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(probe_reports_mechanisms, setup, teardown),
	    cmocka_unit_test_setup_teardown(probe_refusals, setup, teardown),
	    cmocka_unit_test_setup_teardown(open_refusals, setup, teardown),
	    cmocka_unit_test_setup_teardown(identity_is_own_and_files_stay_readable, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(compiles_and_runs_real_c, setup, teardown),
	    cmocka_unit_test_setup_teardown(cannot_see_the_node_store_or_its_files, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(cannot_see_another_running_attempt, setup, teardown),
	    cmocka_unit_test_setup_teardown(no_network_unless_allowed, setup, teardown),
	    cmocka_unit_test_setup_teardown(fork_bomb_is_bounded, setup, teardown),
	    cmocka_unit_test_setup_teardown(fork_bomb_is_bounded_by_rlimit_without_cgroups, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(memory_limit_kills, setup, teardown),
	    cmocka_unit_test_setup_teardown(disk_quota_stops_the_writer, setup, teardown),
	    cmocka_unit_test_setup_teardown(cpu_and_file_size_limits, setup, teardown),
	    cmocka_unit_test_setup_teardown(killing_parent_or_daemon_fails, setup, teardown),
	    cmocka_unit_test_setup_teardown(cannot_write_outside, setup, teardown),
	    cmocka_unit_test_setup_teardown(symlink_outputs_are_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(daemon_writes_never_follow_planted_symlinks, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(kill_takes_the_whole_tree, setup, teardown),
	    cmocka_unit_test_setup_teardown(close_while_running_kills_and_reports_exit, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(crashed_daemon_leftovers_are_reaped, setup, teardown),
	    cmocka_unit_test_setup_teardown(runs_without_root_under_the_daemon_uid, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(cgroup2_code_path, setup, teardown),
	    cmocka_unit_test_setup_teardown(devices_appear_where_asked, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
