/*
 * fs.c - see fs.h.
 *
 * The data-directory lock uses an open-file-description lock rather than a
 * classic POSIX record lock: a POSIX lock does not conflict within one
 * process and is dropped when *any* descriptor of the file is closed there,
 * so a program (or test) that opened the directory twice would silently
 * share it.  OFD locks report no pid (F_OFD_GETLK gives -1), so the holder
 * writes its pid into the file after it has the lock; a reader that finds
 * the file still empty (the holder is between the two steps) names no pid.
 */
#include "common/fs.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TMP_SUFFIX ".ingot-tmp"

int ing_mkdirs(const char *path, unsigned mode, struct ing_error *e)
{
	char buf[PATH_MAX];
	size_t len = strlen(path);
	struct stat st;

	if (len == 0 || len >= sizeof(buf))
		return ing_error_set(e, ING_EINVAL, "directory path '%s' is empty or too long",
		                     path);
	/* Fast path: the directory is there, or only its last component is
	 * missing (one or two calls instead of two per component). */
	if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
		return 0;
	if (mkdir(path, (mode_t)mode) == 0)
		return 0;
	memcpy(buf, path, len + 1);
	for (size_t i = 1; i <= len; i++) {
		if (i < len && buf[i] != '/')
			continue;
		buf[i] = '\0';
		if (mkdir(buf, (mode_t)mode) != 0 && errno != EEXIST)
			return ing_error_set(e, ING_EIO, "cannot create directory '%s': %s", buf,
			                     strerror(errno));
		if (stat(buf, &st) != 0 || !S_ISDIR(st.st_mode))
			return ing_error_set(e, ING_EIO, "'%s' is not a directory", buf);
		if (i < len)
			buf[i] = '/';
	}
	return 0;
}

int ing_mkdirs_parent(const char *path, unsigned mode, struct ing_error *e)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	size_t len;

	if (slash == NULL || slash == path)
		return 0;
	len = (size_t)(slash - path);
	if (len >= sizeof(dir))
		return ing_error_set(e, ING_EINVAL, "path '%s' is too long", path);
	memcpy(dir, path, len);
	dir[len] = '\0';
	return ing_mkdirs(dir, mode, e);
}

/* Writes all of data to fd.  0, or the errno of the failure. */
static int write_all(int fd, const char *data, size_t len)
{
	while (len > 0) {
		ssize_t w = write(fd, data, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return errno;
		if (w == 0)
			return EIO;
		data += w;
		len -= (size_t)w;
	}
	return 0;
}

/* fsync of the directory holding `path`, so a new name in it is durable. */
static int sync_parent(const char *path, struct ing_error *e)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	int fd, rv = 0;

	if (slash == NULL)
		snprintf(dir, sizeof(dir), ".");
	else if ((size_t)(slash - path) >= sizeof(dir))
		return ing_error_set(e, ING_EINVAL, "path '%s' is too long", path);
	else
		snprintf(dir, sizeof(dir), "%.*s", slash == path ? 1 : (int)(slash - path), path);
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) != 0)
		rv = ing_error_set(e, ING_EIO, "cannot sync directory '%s': %s", dir,
		                   strerror(errno));
	if (fd >= 0)
		close(fd);
	return rv;
}

int ing_write_file(const char *path, const void *data, size_t len, unsigned mode, unsigned flags,
                   struct ing_error *e)
{
	char tmp[PATH_MAX];
	const char *target = path;
	int fd, err;

	if (flags & ING_WRITE_ATOMIC) {
		if ((size_t)snprintf(tmp, sizeof(tmp), "%s" TMP_SUFFIX, path) >= sizeof(tmp))
			return ing_error_set(e, ING_EINVAL, "path '%s' is too long", path);
		target = tmp;
	}
	bool in_place = (flags & ING_WRITE_IN_PLACE) && target == path;
	fd = open(target, O_WRONLY | O_CREAT | (in_place ? 0 : O_TRUNC) | O_CLOEXEC | O_NOFOLLOW,
	          (mode_t)mode);
	if (fd < 0)
		return ing_error_set(e, ING_EIO, "cannot create '%s': %s", target, strerror(errno));
	err = write_all(fd, data, len);
	if (err == 0 && in_place && ftruncate(fd, (off_t)len) != 0)
		err = errno;
	if (err == 0 && (flags & ING_WRITE_SYNC) && fsync(fd) != 0)
		err = errno;
	if (err != 0) {
		close(fd);
		if (target != path)
			unlink(target);
		return ing_error_set(e, ING_EIO, "cannot write '%s': %s", target, strerror(err));
	}
	if (close(fd) != 0 || (target != path && rename(target, path) != 0)) {
		err = errno;
		if (target != path)
			unlink(target);
		return ing_error_set(e, ING_EIO, "cannot write '%s': %s", path, strerror(err));
	}
	if (flags & ING_WRITE_SYNC)
		return sync_parent(path, e);
	return 0;
}

/* The pid the holder wrote into the lock file, 0 when none is there yet. */
static long holder_pid(int fd)
{
	char buf[32];
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
	char *end;
	long pid;

	if (n <= 0)
		return 0;
	buf[n] = '\0';
	pid = strtol(buf, &end, 10);
	return end != buf && pid > 0 ? pid : 0;
}

int ing_dir_lock(const char *dir, int *fd_out, struct ing_error *e)
{
	char path[PATH_MAX], text[32];
	struct flock fl;
	int fd, len;

	if (snprintf(path, sizeof(path), "%s/%s", dir, ING_DIR_LOCK_FILE) >= (int)sizeof(path))
		return ing_error_set(e, ING_EINVAL, "data directory path '%s' is too long", dir);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return ing_error_set(e, ING_EIO, "cannot open the lock file %s: %s", path,
		                     strerror(errno));
	memset(&fl, 0, sizeof(fl));
	fl.l_type = F_WRLCK;
	fl.l_whence = SEEK_SET; /* l_start 0, l_len 0: the whole file */
	if (fcntl(fd, F_OFD_SETLK, &fl) != 0) {
		int err = errno;
		long pid = holder_pid(fd);
		close(fd);
		if (err != EAGAIN && err != EACCES)
			return ing_error_set(e, ING_EIO, "cannot lock %s: %s", path, strerror(err));
		if (pid > 0)
			return ing_error_set(e, ING_ECONFLICT,
			                     "data directory %s is in use by process %ld (it holds "
			                     "the lock %s); stop that process first",
			                     dir, pid, path);
		return ing_error_set(e, ING_ECONFLICT,
		                     "data directory %s is in use by another process (it holds "
		                     "the lock %s); stop that process first",
		                     dir, path);
	}
	len = snprintf(text, sizeof(text), "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) != 0 || pwrite(fd, text, (size_t)len, 0) != len) {
		int err = errno;
		close(fd);
		return ing_error_set(e, ING_EIO, "cannot write the lock file %s: %s", path,
		                     strerror(err));
	}
	*fd_out = fd;
	return 0;
}

void ing_dir_unlock(int fd)
{
	if (fd >= 0)
		close(fd);
}
