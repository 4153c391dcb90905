/*
 * fs.h - small file-system helpers shared by every layer.
 */
#ifndef INGOT_COMMON_FS_H
#define INGOT_COMMON_FS_H

#include "common/err.h"

/*
 * mkdir -p: creates `path` and its missing parents with `mode`.  Existing
 * directories are fine; an existing non-directory is an error.  0, or
 * ING_EIO / ING_EINVAL (path too long) with a message in e (may be NULL)
 * naming the directory that could not be created.
 */
int ing_mkdirs(const char *path, unsigned mode, struct ing_error *e);

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
