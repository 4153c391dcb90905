/*
 * testutil.h - helpers shared by the cmocka unit tests: temporary
 * directories, file reading, and mdb_dump of an LMDB file (lmdb-utils) so
 * tests can compare stores by content.  Functions that "fail the test" call
 * cmocka's fail_msg and never return on error.
 */
#ifndef INGOT_TESTS_LIB_TESTUTIL_H
#define INGOT_TESTS_LIB_TESTUTIL_H

#include <stddef.h>

/* Creates a fresh temporary directory (mkdtemp under $TMPDIR or /tmp), path
 * copied into out (cap >= 256).  Fails the test on error. */
void tu_tmpdir(char *out, size_t cap);
/* Removes a directory tree (nftw, not following symlinks).  Missing: no-op. */
void tu_rmrf(const char *path);
/* Runs `mdb_dump -a -n <lmdb file>` and returns its stdout as a malloc'd
 * NUL-terminated string (caller frees).  Fails the test if mdb_dump fails. */
char *tu_mdb_dump(const char *lmdb_file);
/* Reads a whole file into a malloc'd buffer (caller frees *buf; a NUL byte
 * follows the data but is not counted in *len).  0, or a negative errno. */
int tu_read_file(const char *path, void **buf, size_t *len);
/* How many file descriptors this process has open (entries of /proc/self/fd,
 * the directory's own one included), to check that a test closed all it
 * opened.  Fails the test if /proc is unreadable. */
int tu_count_fds(void);

#endif
