/*
 * fs.c - see fs.h.
 */
#include "common/fs.h"

#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>

int ing_mkdirs(const char *path, unsigned mode, struct ing_error *e)
{
	char buf[PATH_MAX];
	size_t len = strlen(path);
	struct stat st;

	if (len == 0 || len >= sizeof(buf))
		return ing_error_set(e, ING_EINVAL, "directory path '%s' is empty or too long",
		                     path);
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
