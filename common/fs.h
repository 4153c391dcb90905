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
	/* fsync the file before closing it (and renaming it, with ATOMIC),
	 * then the directory that holds it: once the call returns, the file
	 * survives a crash. */
	ING_WRITE_SYNC = 2,
	/* An existing file is written over from its start and then cut to
	 * len, instead of being truncated to nothing first: ext4 writes out a
	 * file truncated to zero when it is closed (auto_da_alloc), a cost
	 * a file rewritten for every job pays each time.  Not with ATOMIC. */
	ING_WRITE_IN_PLACE = 4,
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

/* The lock file of a data directory (docs/formats.md). */
#define ING_DIR_LOCK_FILE "ingot.lock"

/*
 * Takes the exclusive lock of the data directory `dir` (which must exist):
 * an open-file-description lock (F_OFD_SETLK) on `dir`/ingot.lock, created
 * if absent, which then holds this process's pid as text for the next
 * comer's message.  Every program that opens a data directory (ingotd,
 * `ingotd recover`, offline tools) takes it before touching anything else
 * there: libraft 0.15 takes no lock of its own, and two processes on one
 * raft directory corrupt it.
 *
 * The lock lasts until ing_dir_unlock(*fd) or the end of the process
 * (kill -9 included: the kernel drops it); the descriptor is close-on-exec,
 * so programs this process starts never hold it.  A second attempt fails
 * even from the same process.  Non-blocking.
 *
 * 0 and *fd set; ING_ECONFLICT when another holder has it, with a message
 * naming the directory, the holder's pid (as it wrote it) and the lock
 * file; ING_EIO / ING_EINVAL with a message naming the file otherwise.
 * e may be NULL.  *fd is written on success only.
 */
int ing_dir_lock(const char *dir, int *fd, struct ing_error *e);

/* Releases a lock taken by ing_dir_lock (fd < 0: nothing). */
void ing_dir_unlock(int fd);

#endif
