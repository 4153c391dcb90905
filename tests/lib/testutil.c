/*
 * testutil.c - shared unit-test helpers (see testutil.h).
 *
 * tu_mdb_dump runs mdb_dump as a child (fork/execvp) with its stdout on a
 * pipe, so the test binary never shares LMDB state with it: mdb_dump opens
 * the file read-only through the lock file like any other process.
 */
#include "tests/lib/testutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

void tu_tmpdir(char *out, size_t cap)
{
	const char *base = getenv("TMPDIR");
	char tmpl[512];

	if (base == NULL || base[0] == '\0')
		base = "/tmp";
	if (snprintf(tmpl, sizeof(tmpl), "%s/ingot-test-XXXXXX", base) >= (int)sizeof(tmpl))
		fail_msg("tu_tmpdir: TMPDIR too long");
	if (mkdtemp(tmpl) == NULL)
		fail_msg("tu_tmpdir: mkdtemp(%s): %s", tmpl, strerror(errno));
	if (strlen(tmpl) + 1 > cap)
		fail_msg("tu_tmpdir: buffer of %zu bytes too small", cap);
	memcpy(out, tmpl, strlen(tmpl) + 1);
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

void tu_rmrf(const char *path)
{
	nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

char *tu_mdb_dump(const char *lmdb_file)
{
	int fds[2], status;
	char *buf = NULL;
	size_t len = 0, cap = 0;
	pid_t pid;

	if (pipe(fds) != 0)
		fail_msg("tu_mdb_dump: pipe: %s", strerror(errno));
	pid = fork();
	if (pid < 0)
		fail_msg("tu_mdb_dump: fork: %s", strerror(errno));
	if (pid == 0) {
		char *argv[] = {(char *)"mdb_dump", (char *)"-a", (char *)"-n", (char *)lmdb_file,
		                NULL};
		dup2(fds[1], STDOUT_FILENO);
		close(fds[0]);
		close(fds[1]);
		execvp(argv[0], argv);
		_exit(127);
	}
	close(fds[1]);
	for (;;) {
		if (cap - len < 4096) {
			cap = cap == 0 ? 65536 : cap * 2;
			buf = realloc(buf, cap);
			if (buf == NULL)
				fail_msg("tu_mdb_dump: out of memory");
		}
		ssize_t n = read(fds[0], buf + len, cap - len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	close(fds[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		fail_msg("tu_mdb_dump: mdb_dump -a -n %s failed (status %d)", lmdb_file, status);
	buf[len] = '\0';
	return buf;
}

int tu_read_file(const char *path, void **buf, size_t *len)
{
	struct stat st;
	char *p;
	size_t off = 0;
	int fd = open(path, O_RDONLY);

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) != 0) {
		int err = errno;
		close(fd);
		return -err;
	}
	p = malloc((size_t)st.st_size + 1);
	if (p == NULL) {
		close(fd);
		return -ENOMEM;
	}
	while (off < (size_t)st.st_size) {
		ssize_t n = read(fd, p + off, (size_t)st.st_size - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int err = n < 0 ? errno : EIO;
			free(p);
			close(fd);
			return -err;
		}
		off += (size_t)n;
	}
	close(fd);
	p[off] = '\0';
	*buf = p;
	*len = off;
	return 0;
}

int tu_count_fds(void)
{
	int n = 0;
	DIR *d = opendir("/proc/self/fd");
	assert_non_null(d);
	while (readdir(d) != NULL)
		n++;
	closedir(d);
	return n;
}
