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

#endif
