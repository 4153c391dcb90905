/*
 * test_common.c - common/: UTF-8 checks (str.h) and the data-directory
 * lock (fs.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/fs.h"
#include "common/str.h"
#include "tests/lib/testutil.h"

static void sanitized(const char *in, const char *want, size_t replaced)
{
	char buf[64];
	snprintf(buf, sizeof(buf), "%s", in);
	assert_int_equal(ing_utf8_sanitize(buf), replaced);
	assert_string_equal(buf, want);
	assert_true(ing_utf8_valid(buf, strlen(buf)));
}

static void test_utf8(void **state)
{
	(void)state;
	sanitized("plain ascii\ttab", "plain ascii\ttab", 0);
	sanitized("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
	          "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 0);
	sanitized("a\xffz", "a?z", 1);                          /* never a lead byte */
	sanitized("a\xc3", "a?", 1);                            /* cut short at the end */
	sanitized("a\xe2\x82z", "a??z", 2);                     /* cut short in the middle */
	sanitized("\xc0\xaf", "??", 2);                         /* overlong '/' */
	sanitized("\xe0\x80\xaf", "???", 3);                    /* overlong, 3 bytes */
	sanitized("\xed\xa0\x80", "???", 3);                    /* surrogate U+D800 */
	sanitized("\xf4\x90\x80\x80", "????", 4);               /* past U+10FFFF */
	sanitized("line\nbreak\r\x01\x7f", "line?break???", 4); /* control characters */
	assert_false(ing_utf8_valid("\x80", 1));
	assert_true(ing_utf8_valid("", 0));
}

/* Runs ing_dir_lock(dir) in a child process: its result code. */
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
	char dir[256], path[300], missing[300], text[32] = "";
	struct ing_error e;
	int fd, fd2;
	(void)state;

	tu_tmpdir(dir, sizeof(dir));
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
	tu_rmrf(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_utf8),
	    cmocka_unit_test(test_dir_lock),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
