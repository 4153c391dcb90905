/*
 * test_log.c - the log writer (common/log): the text line, the JSON line
 * (each read back with jansson), the level changed at run time, and the
 * log file opened, moved away as logrotate does, and reopened.
 */
#include <jansson.h>
#include <regex.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/log.h"
#include "tests/lib/testutil.h"

struct dir {
	char path[256];
	char file[300];
};

static void dir_make(struct dir *d)
{
	tu_tmpdir(d->path, sizeof(d->path));
	snprintf(d->file, sizeof(d->file), "%s/ingotd.log", d->path);
}

static char *slurp(const char *path)
{
	void *buf;
	size_t len;
	if (tu_read_file(path, &buf, &len) != 0)
		return NULL;
	return buf;
}

/* The n-th line (0-based) of text, copied into out. */
static void nth_line(const char *text, int n, char *out, size_t cap)
{
	const char *p = text;
	for (int i = 0; i < n && p != NULL; i++) {
		p = strchr(p, '\n');
		if (p != NULL)
			p++;
	}
	assert_non_null(p);
	const char *e = strchr(p, '\n');
	assert_non_null(e);
	size_t len = (size_t)(e - p) < cap - 1 ? (size_t)(e - p) : cap - 1;
	memcpy(out, p, len);
	out[len] = '\0';
}

static void test_text_line_and_levels(void **state)
{
	(void)state;
	struct dir d;
	dir_make(&d);
	struct ing_error e;
	assert_int_equal(ing_log_open(d.file, &e), 0);
	ing_log_set_format(ING_LOG_FORMAT_TEXT);
	ing_log_set_level(ING_LOG_LEVEL_INFO);
	ing_log_set_node(3);
	ing_log_set_term(7);
	ING_LOG_INFO("job assigned job=%d node=%d", 5, 2);
	ING_LOG_DEBUG("not written");
	ing_log_set_level(ING_LOG_LEVEL_DEBUG); /* at run time */
	ING_LOG_DEBUG("now written x=1");
	ing_log_set_level(ING_LOG_LEVEL_ERROR);
	ING_LOG_WARN("not written either");
	ing_log_close();
	ing_log_set_level(ING_LOG_LEVEL_WARN);

	char *text = slurp(d.file);
	assert_non_null(text);
	char line[1024];
	regex_t re;
	assert_int_equal(
	    regcomp(&re,
	            "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z "
	            "INFO node=3 term=7 job assigned job=5 node=2$",
	            REG_EXTENDED | REG_NOSUB),
	    0);
	nth_line(text, 0, line, sizeof(line));
	assert_int_equal(regexec(&re, line, 0, NULL, 0), 0);
	regfree(&re);
	nth_line(text, 1, line, sizeof(line));
	assert_non_null(strstr(line, " DEBUG node=3 term=7 now written x=1"));
	assert_null(strstr(text, "not written"));
	free(text);

	enum ing_log_level l;
	assert_int_equal(ing_log_parse_level("warn", &l), 0);
	assert_int_equal(l, ING_LOG_LEVEL_WARN);
	assert_int_equal(ing_log_parse_level("loud", &l), ING_EINVAL);
	assert_string_equal(ing_log_level_name(ING_LOG_LEVEL_DEBUG), "debug");
	assert_string_equal(ing_log_level_name(ING_LOG_LEVEL_OFF), "off");
	enum ing_log_format f;
	assert_int_equal(ing_log_parse_format("json", &f), 0);
	assert_int_equal(f, ING_LOG_FORMAT_JSON);
	assert_int_equal(ing_log_parse_format("xml", &f), ING_EINVAL);
	tu_rmrf(d.path);
}

static json_t *json_line(const char *text, int n)
{
	static char line[4096];
	nth_line(text, n, line, sizeof(line));
	json_error_t je;
	json_t *j = json_loads(line, 0, &je);
	if (j == NULL)
		fail_msg("line %d is not JSON (%s): %s", n, je.text, line);
	return j;
}

static const char *field(json_t *j, const char *name)
{
	return json_string_value(json_object_get(json_object_get(j, "fields"), name));
}

static void test_json_lines(void **state)
{
	(void)state;
	struct dir d;
	dir_make(&d);
	struct ing_error e;
	assert_int_equal(ing_log_open(d.file, &e), 0);
	ing_log_set_format(ING_LOG_FORMAT_JSON);
	ing_log_set_level(ING_LOG_LEVEL_INFO);
	ing_log_set_node(3);
	ing_log_set_term(7);
	ING_LOG_INFO("job assigned job=%d node=%d", 5, 2);
	ING_LOG_WARN("forward failed op=%s error=%s msg=\"%s\"", "job.submit", "timeout",
	             "no answer in \\\"5\\\" s");
	ING_LOG_ERROR("cannot name the cluster: getrandom failed: %s", "No such device");
	ING_LOG_INFO("attempt directory kept dir=%s", "/var/lib/ingot/a b c");
	ING_LOG_INFO("odd bytes \xff here k=v\xfe\x01 k=again");
	ING_LOG_INFO("%s", "");
	ing_log_close();
	ing_log_set_format(ING_LOG_FORMAT_TEXT);
	ing_log_set_level(ING_LOG_LEVEL_WARN);

	char *text = slurp(d.file);
	assert_non_null(text);
	json_t *j = json_line(text, 0);
	assert_string_equal(json_string_value(json_object_get(j, "level")), "info");
	assert_int_equal(json_integer_value(json_object_get(j, "node")), 3);
	assert_int_equal(json_integer_value(json_object_get(j, "term")), 7);
	assert_int_equal(strlen(json_string_value(json_object_get(j, "time"))), 24);
	assert_string_equal(json_string_value(json_object_get(j, "event")), "job assigned");
	assert_string_equal(field(j, "job"), "5");
	assert_string_equal(field(j, "node"), "2"); /* no clash with the node context */
	json_decref(j);

	j = json_line(text, 1);
	assert_string_equal(json_string_value(json_object_get(j, "level")), "warn");
	assert_string_equal(json_string_value(json_object_get(j, "event")), "forward failed");
	assert_string_equal(field(j, "op"), "job.submit");
	assert_string_equal(field(j, "msg"), "no answer in \"5\" s");
	json_decref(j);

	j = json_line(text, 2);
	assert_string_equal(json_string_value(json_object_get(j, "event")),
	                    "cannot name the cluster: getrandom failed: No such device");
	assert_int_equal(json_object_size(json_object_get(j, "fields")), 0);
	json_decref(j);

	j = json_line(text, 3);
	assert_string_equal(field(j, "dir"), "/var/lib/ingot/a b c");
	json_decref(j);

	j = json_line(text, 4);
	assert_string_equal(json_string_value(json_object_get(j, "event")), "odd bytes ? here");
	assert_string_equal(field(j, "k"), "v?\x01");
	assert_string_equal(field(j, "k_2"), "again");
	json_decref(j);

	j = json_line(text, 5);
	assert_string_equal(json_string_value(json_object_get(j, "event")), "");
	json_decref(j);
	free(text);
	tu_rmrf(d.path);
}

static void test_reopen_after_rotation(void **state)
{
	(void)state;
	struct dir d;
	dir_make(&d);
	struct ing_error e;
	char rotated[400];
	snprintf(rotated, sizeof(rotated), "%s.1", d.file);

	assert_int_equal(ing_log_reopen(&e), 0); /* stderr: nothing to reopen */
	assert_int_equal(ing_log_open(d.file, &e), 0);
	ING_LOG_WARN("before rotation n=1");
	assert_int_equal(rename(d.file, rotated), 0); /* logrotate moves the file */
	ING_LOG_WARN("still the old file n=2");
	assert_int_equal(ing_log_reopen(&e), 0); /* SIGHUP */
	ING_LOG_WARN("after reopen n=3");

	char *old = slurp(rotated), *cur = slurp(d.file);
	assert_non_null(strstr(old, "before rotation n=1"));
	assert_non_null(strstr(old, "still the old file n=2"));
	assert_null(strstr(old, "after reopen"));
	assert_non_null(strstr(cur, "after reopen n=3"));
	assert_null(strstr(cur, "before rotation"));
	free(old);
	free(cur);

	/* A reopen that fails (its directory is gone) keeps the old stream. */
	char moved[400];
	snprintf(moved, sizeof(moved), "%s-moved.log", d.path);
	assert_int_equal(rename(d.file, moved), 0);
	assert_int_equal(unlink(rotated), 0);
	assert_int_equal(rmdir(d.path), 0);
	assert_int_equal(ing_log_reopen(&e), ING_EIO);
	assert_non_null(strstr(e.msg, d.file));
	ING_LOG_WARN("kept n=4");
	ing_log_close();
	cur = slurp(moved);
	assert_non_null(strstr(cur, "kept n=4"));
	free(cur);
	unlink(moved);

	assert_int_equal(ing_log_open("/nonexistent-dir/x.log", &e), ING_EIO);
	assert_non_null(strstr(e.msg, "/nonexistent-dir/x.log"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_text_line_and_levels),
	    cmocka_unit_test(test_json_lines),
	    cmocka_unit_test(test_reopen_after_rotation),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
