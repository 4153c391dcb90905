/*
 * test_fs.c - common/fs.h on a real file system (a temporary directory):
 * mkdir -p and of a file's parent, writing a file plain and atomically
 * (replacing, mode, nothing left behind on failure), refusing to follow a
 * symbolic link, errors that name the path, and the data-directory lock
 * (one holder, in this process or another, named by pid in the refusal).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/fs.h"
#include "tests/lib/testutil.h"

static int setup(void **state)
{
	char *dir = malloc(256);
	tu_tmpdir(dir, 256);
	*state = dir;
	return 0;
}

static int teardown(void **state)
{
	tu_rmrf(*state);
	free(*state);
	return 0;
}

static void expect_file(const char *path, const char *text)
{
	void *buf;
	size_t len;
	assert_int_equal(tu_read_file(path, &buf, &len), 0);
	assert_int_equal(len, strlen(text));
	assert_memory_equal(buf, text, len);
	free(buf);
}

static void test_mkdirs(void **state)
{
	const char *dir = *state;
	char path[512], file[512];
	struct stat st;
	struct ing_error e;

	snprintf(path, sizeof(path), "%s/a/b/c", dir);
	assert_int_equal(ing_mkdirs(path, 0700, &e), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(ing_mkdirs(path, 0700, &e), 0); /* exists: fine */
	snprintf(file, sizeof(file), "%s/x/y/file.txt", dir);
	assert_int_equal(ing_mkdirs_parent(file, 0700, &e), 0);
	snprintf(path, sizeof(path), "%s/x/y", dir);
	assert_int_equal(stat(path, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(ing_mkdirs_parent("file-without-dir", 0700, &e), 0);
	/* A file where a directory should be. */
	assert_int_equal(ing_write_file(file, "x", 1, 0600, 0, &e), 0);
	snprintf(path, sizeof(path), "%s/x/y/file.txt/z", dir);
	assert_int_equal(ing_mkdirs(path, 0700, &e), ING_EIO);
	assert_non_null(strstr(e.msg, "file.txt"));
}

static void test_write_plain_and_atomic(void **state)
{
	const char *dir = *state;
	char path[512], tmp[600];
	struct stat st;
	struct ing_error e;

	snprintf(path, sizeof(path), "%s/out.bin", dir);
	assert_int_equal(ing_write_file(path, "hello", 5, 0600, 0, &e), 0);
	expect_file(path, "hello");
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	/* Truncated when shorter. */
	assert_int_equal(ing_write_file(path, "hi", 2, 0600, 0, &e), 0);
	expect_file(path, "hi");
	/* Atomic: replaced whole, no temporary left. */
	assert_int_equal(ing_write_file(path, "replaced", 8, 0644, ING_WRITE_ATOMIC, &e), 0);
	expect_file(path, "replaced");
	snprintf(tmp, sizeof(tmp), "%s.ingot-tmp", path);
	assert_int_not_equal(access(tmp, F_OK), 0);
	/* Empty data is a valid, empty file. */
	assert_int_equal(ing_write_file(path, "", 0, 0600, ING_WRITE_ATOMIC, &e), 0);
	expect_file(path, "");
	/* Synced and atomic (the bootstrap admin token's way), and synced in
	 * place; a bare name syncs the current directory. */
	assert_int_equal(
	    ing_write_file(path, "secret", 6, 0600, ING_WRITE_ATOMIC | ING_WRITE_SYNC, &e), 0);
	expect_file(path, "secret");
	assert_int_not_equal(access(tmp, F_OK), 0);
	assert_int_equal(ing_write_file(path, "s2", 2, 0600, ING_WRITE_SYNC, &e), 0);
	expect_file(path, "s2");
}

/* ING_WRITE_IN_PLACE: an existing file keeps its inode and ends up holding
 * exactly the new bytes, shorter or longer than before; a missing one is
 * created; a symbolic link is still refused. */
static void test_write_in_place(void **state)
{
	const char *dir = *state;
	char path[512], link[512];
	struct stat before, after;
	struct ing_error e;

	snprintf(path, sizeof(path), "%s/in-place.c", dir);
	assert_int_equal(
	    ing_write_file(path, "int a_long_name;\n", 17, 0600, ING_WRITE_IN_PLACE, &e), 0);
	expect_file(path, "int a_long_name;\n");
	assert_int_equal(stat(path, &before), 0);
	assert_int_equal(ing_write_file(path, "int x;\n", 7, 0600, ING_WRITE_IN_PLACE, &e), 0);
	expect_file(path, "int x;\n");
	assert_int_equal(
	    ing_write_file(path, "int longer_again;\n", 18, 0600, ING_WRITE_IN_PLACE, &e), 0);
	expect_file(path, "int longer_again;\n");
	assert_int_equal(stat(path, &after), 0);
	assert_int_equal(before.st_ino, after.st_ino);
	snprintf(link, sizeof(link), "%s/in-place-link", dir);
	assert_int_equal(symlink(path, link), 0);
	assert_int_equal(ing_write_file(link, "x", 1, 0600, ING_WRITE_IN_PLACE, &e), ING_EIO);
	expect_file(path, "int longer_again;\n");
}

static void test_write_refusals(void **state)
{
	const char *dir = *state;
	char path[512], target[512], tmp[600];
	struct ing_error e;

	/* No directory: an error naming the file. */
	snprintf(path, sizeof(path), "%s/missing/out.txt", dir);
	assert_int_equal(ing_write_file(path, "x", 1, 0600, 0, &e), ING_EIO);
	assert_non_null(strstr(e.msg, "missing/out.txt"));
	assert_int_equal(ing_write_file(path, "x", 1, 0600, ING_WRITE_ATOMIC, &e), ING_EIO);
	/* A symbolic link at the path is not followed. */
	snprintf(target, sizeof(target), "%s/target.txt", dir);
	assert_int_equal(ing_write_file(target, "kept", 4, 0600, 0, &e), 0);
	snprintf(path, sizeof(path), "%s/link.txt", dir);
	assert_int_equal(symlink(target, path), 0);
	assert_int_equal(ing_write_file(path, "evil", 4, 0600, 0, &e), ING_EIO);
	expect_file(target, "kept");
	/* Atomic: the link itself is replaced, its target untouched. */
	assert_int_equal(ing_write_file(path, "new", 3, 0600, ING_WRITE_ATOMIC, &e), 0);
	expect_file(target, "kept");
	expect_file(path, "new");
	/* The temporary name is a directory: refused, nothing else changed. */
	snprintf(path, sizeof(path), "%s/busy.txt", dir);
	snprintf(tmp, sizeof(tmp), "%s.ingot-tmp", path);
	assert_int_equal(mkdir(tmp, 0700), 0);
	assert_int_equal(ing_write_file(path, "x", 1, 0600, ING_WRITE_ATOMIC, &e), ING_EIO);
	assert_int_not_equal(access(path, F_OK), 0);
}

/* Runs ing_dir_lock(dir) in a child process: 1 when refused as in use. */
static int lock_in_child(const char *dir)
{
	pid_t pid = fork();
	if (pid == 0) {
		int fd;
		struct ing_error e;
		_exit(ing_dir_lock(dir, &fd, &e) == ING_ECONFLICT ? 1 : 0);
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return WEXITSTATUS(status);
}

static void test_dir_lock(void **state)
{
	const char *dir = *state;
	char path[512], missing[512], text[32] = "";
	struct ing_error e;
	int fd, fd2;

	assert_int_equal(ing_dir_lock(dir, &fd, &e), 0);
	/* The file holds our pid. */
	snprintf(path, sizeof(path), "%s/%s", dir, ING_DIR_LOCK_FILE);
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	assert_non_null(fgets(text, sizeof(text), f));
	fclose(f);
	assert_int_equal(atol(text), (long)getpid());
	/* A second taker, in this process or another, is refused naming us. */
	assert_int_equal(ing_dir_lock(dir, &fd2, &e), ING_ECONFLICT);
	snprintf(text, sizeof(text), "process %ld", (long)getpid());
	assert_non_null(strstr(e.msg, text));
	assert_non_null(strstr(e.msg, path));
	assert_int_equal(lock_in_child(dir), 1);
	/* Released: free for the next one. */
	ing_dir_unlock(fd);
	assert_int_equal(lock_in_child(dir), 0);
	assert_int_equal(ing_dir_lock(dir, &fd, &e), 0);
	ing_dir_unlock(fd);
	/* A directory that does not exist: an error naming the lock file. */
	snprintf(missing, sizeof(missing), "%s/nope", dir);
	assert_int_equal(ing_dir_lock(missing, &fd, &e), ING_EIO);
	assert_non_null(strstr(e.msg, missing));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_mkdirs, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_write_in_place, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_write_plain_and_atomic, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_write_refusals, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_dir_lock, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
