/*
 * fs.h - small file-system helpers shared by every layer.
 */
#ifndef INGOT_COMMON_FS_H
#define INGOT_COMMON_FS_H

#include <stddef.h>

#include "common/err.h"

/*
 * mkdir -p: creates `path` and its missing parents with `mode`.  Existing
 * directories are fine; an existing non-directory is an error.  0, or
 * ING_EIO / ING_EINVAL (path too long) with a message in e (may be NULL)
 * naming the directory that could not be created.
 */
int ing_mkdirs(const char *path, unsigned mode, struct ing_error *e);

/* ing_mkdirs of the directory that holds the file `path` (nothing when
 * path has no '/').  Errors as for ing_mkdirs. */
int ing_mkdirs_parent(const char *path, unsigned mode, struct ing_error *e);

enum ing_write_flags {
	/* Write `path`.ingot-tmp beside it, then rename it over `path`: a
	 * reader sees the old file or the whole new one, never a part. */
	ING_WRITE_ATOMIC = 1,
};

/*
 * Writes data[0..len) to the file `path`, created with `mode` (before the
 * umask) or truncated; short writes and EINTR are retried; a symbolic link
 * at `path` is refused, not followed.  The directory must exist
 * (ing_mkdirs_parent).  0, or ING_EIO with e (may be NULL) naming the file
 * and the system's reason (also when closing fails: the data may not have
 * reached the disk), ING_EINVAL when the path is too long.  On failure no
 * temporary file is left behind.
 */
int ing_write_file(const char *path, const void *data, size_t len, unsigned mode, unsigned flags,
                   struct ing_error *e);

#endif
