/*
 * log.c - the log line writer (see log.h).
 *
 * A line is formatted whole, then written with one fwrite and flushed, so
 * lines from several processes sharing a file do not interleave.  The text
 * line is built in a stack buffer (messages are cut at about 1 KiB); the
 * JSON line is built from the formatted message in a buffer kept between
 * calls (it only allocates when a longer line than ever before comes).
 *
 * The log file: ing_log_open remembers its path; ing_log_reopen opens that
 * path anew and only then closes the old stream, so a failed reopen (the
 * directory gone, the disk full) keeps logging to the old file.
 */
#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/text.h"

#define LINE_MAX_BYTES 1024
#define MAX_FIELDS     32
#define PATH_MAX_BYTES 4096

enum ing_log_level ing_log_threshold = ING_LOG_LEVEL_INFO;

static enum ing_log_format log_format = ING_LOG_FORMAT_TEXT;
static FILE *log_file;
static FILE *log_opened; /* the stream ing_log_open made (== log_file) */
static char log_path[PATH_MAX_BYTES];
static uint64_t log_node_id;
static uint64_t log_term;
static struct ing_buf json_line = ING_BUF_INIT;
static struct ing_buf json_value = ING_BUF_INIT;

static const char *const level_upper[] = {"DEBUG", "INFO", "WARN", "ERROR"};
static const char *const level_lower[] = {"debug", "info", "warn", "error", "off"};

void ing_log_set_level(enum ing_log_level level)
{
	ing_log_threshold = level;
}

int ing_log_parse_level(const char *s, enum ing_log_level *out)
{
	for (int i = 0; i < 5; i++) {
		if (strcmp(s, level_lower[i]) == 0) {
			*out = (enum ing_log_level)i;
			return 0;
		}
	}
	return ING_EINVAL;
}

const char *ing_log_level_name(enum ing_log_level level)
{
	return level <= ING_LOG_LEVEL_OFF ? level_lower[level] : "?";
}

void ing_log_set_format(enum ing_log_format format)
{
	log_format = format;
}

int ing_log_parse_format(const char *s, enum ing_log_format *out)
{
	if (strcmp(s, "text") == 0)
		*out = ING_LOG_FORMAT_TEXT;
	else if (strcmp(s, "json") == 0)
		*out = ING_LOG_FORMAT_JSON;
	else
		return ING_EINVAL;
	return 0;
}

void ing_log_set_file(FILE *f)
{
	log_file = f;
	log_opened = NULL;
	log_path[0] = '\0';
}

void ing_log_set_node(uint64_t node_id)
{
	log_node_id = node_id;
}

void ing_log_set_term(uint64_t term)
{
	log_term = term;
}

/* ---- the log file ------------------------------------------------------ */

static int open_append(const char *path, FILE **out, struct ing_error *e)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	if (fd < 0) {
		int err = errno;
		return ing_error_set(e, err == EACCES || err == EPERM ? ING_EDENIED : ING_EIO,
		                     "cannot open log file %s: %s", path, strerror(err));
	}
	FILE *f = fdopen(fd, "a");
	if (f == NULL) {
		int err = errno;
		close(fd);
		return ing_error_set(e, ING_EIO, "cannot open log file %s: %s", path,
		                     strerror(err));
	}
	*out = f;
	return 0;
}

int ing_log_open(const char *path, struct ing_error *e)
{
	if (strlen(path) >= sizeof(log_path))
		return ing_error_set(e, ING_EINVAL, "log file path too long");
	FILE *f;
	int rv = open_append(path, &f, e);
	if (rv != 0)
		return rv;
	if (log_opened != NULL)
		fclose(log_opened);
	log_file = log_opened = f;
	snprintf(log_path, sizeof(log_path), "%s", path);
	return 0;
}

int ing_log_reopen(struct ing_error *e)
{
	if (log_opened == NULL)
		return 0;
	FILE *f;
	int rv = open_append(log_path, &f, e);
	if (rv != 0)
		return rv;
	fclose(log_opened);
	log_file = log_opened = f;
	return 0;
}

void ing_log_close(void)
{
	if (log_opened != NULL)
		fclose(log_opened);
	log_file = log_opened = NULL;
	log_path[0] = '\0';
}

/* ---- JSON lines -------------------------------------------------------- */

/* Length of "key" when p..end starts with key=, else 0. */
static size_t key_len(const char *p, const char *end)
{
	size_t n = 0;
	if (p >= end || !((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_'))
		return 0;
	while (p + n < end && ((p[n] >= 'a' && p[n] <= 'z') || (p[n] >= 'A' && p[n] <= 'Z') ||
	                       (p[n] >= '0' && p[n] <= '9') || p[n] == '_' || p[n] == '.'))
		n++;
	return p + n < end && p[n] == '=' ? n : 0;
}

static const char *skip_spaces(const char *p, const char *end)
{
	while (p < end && *p == ' ')
		p++;
	return p;
}

static const char *word_end(const char *p, const char *end)
{
	while (p < end && *p != ' ')
		p++;
	return p;
}

/* Reads the value at p into json_value; returns where it ends. */
static const char *read_value(const char *p, const char *end)
{
	if (p < end && *p == '"') {
		p++;
		while (p < end && *p != '"') {
			if (*p == '\\' && p + 1 < end && (p[1] == '"' || p[1] == '\\'))
				p++;
			ing_buf_append(&json_value, p, 1);
			p++;
		}
		return p < end ? p + 1 : p;
	}
	const char *w = word_end(p, end);
	ing_buf_append(&json_value, p, (size_t)(w - p));
	return w;
}

static void put_fields(struct ing_buf *b, const char *p, const char *end)
{
	const char *keys[MAX_FIELDS];
	size_t klens[MAX_FIELDS];
	unsigned nkeys = 0;
	bool first = true;
	ing_buf_puts(b, ",\"fields\":{");
	while (p < end) {
		size_t kl = key_len(p, end);
		const char *key = p;
		ing_buf_reset(&json_value);
		p = read_value(p + kl + 1, end);
		/* Words up to the next key=value belong to this value. */
		for (;;) {
			const char *w = skip_spaces(p, end);
			if (w >= end || key_len(w, end) > 0) {
				p = w;
				break;
			}
			ing_buf_append(&json_value, " ", 1);
			p = word_end(w, end);
			ing_buf_append(&json_value, w, (size_t)(p - w));
		}
		unsigned dup = 1;
		for (unsigned i = 0; i < nkeys; i++)
			if (klens[i] == kl && memcmp(keys[i], key, kl) == 0)
				dup++;
		if (nkeys < MAX_FIELDS) {
			keys[nkeys] = key;
			klens[nkeys++] = kl;
		}
		if (!first)
			ing_buf_append(b, ",", 1);
		first = false;
		if (dup == 1) {
			ing_buf_json_str(b, key, kl);
		} else {
			char k[96];
			int n =
			    snprintf(k, sizeof(k), "%.*s_%u", (int)(kl < 64 ? kl : 64), key, dup);
			ing_buf_json_str(b, k, (size_t)n);
		}
		ing_buf_append(b, ":", 1);
		ing_buf_json_str(b, json_value.data != NULL ? json_value.data : "", json_value.len);
	}
	ing_buf_append(b, "}", 1);
}

static void format_json(struct ing_buf *b, const char *time, enum ing_log_level level,
                        const char *msg, size_t n)
{
	const char *end = msg + n;
	const char *w = skip_spaces(msg, end);
	while (w < end && key_len(w, end) == 0)
		w = skip_spaces(word_end(w, end), end);
	const char *ev_end = w;
	while (ev_end > msg && ev_end[-1] == ' ')
		ev_end--;
	ing_buf_reset(b);
	ing_buf_printf(b,
	               "{\"time\":\"%s\",\"level\":\"%s\",\"node\":%" PRIu64 ",\"term\":%" PRIu64
	               ",\"event\":",
	               time, level_lower[level], log_node_id, log_term);
	ing_buf_json_str(b, msg, (size_t)(ev_end - msg));
	put_fields(b, w, end);
	ing_buf_puts(b, "}\n");
}

/* ---- writing ----------------------------------------------------------- */

void ing_log_write(enum ing_log_level level, const char *fmt, ...)
{
	char line[LINE_MAX_BYTES];
	char time[40];
	struct timespec ts;
	struct tm tm;
	size_t n;
	int k;
	va_list ap;
	FILE *out = log_file != NULL ? log_file : stderr;

	if (level >= ING_LOG_LEVEL_OFF)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(time, sizeof(time), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(time + n, sizeof(time) - n, ".%03ldZ", ts.tv_nsec / 1000000);

	if (log_format == ING_LOG_FORMAT_JSON) {
		va_start(ap, fmt);
		k = vsnprintf(line, sizeof(line), fmt, ap);
		va_end(ap);
		n = k < 0 ? 0 : ((size_t)k < sizeof(line) ? (size_t)k : sizeof(line) - 1);
		format_json(&json_line, time, level, line, n);
		if (ing_buf_failed(&json_line) == 0) {
			fwrite(json_line.data, 1, json_line.len, out);
			fflush(out);
			return;
		}
		ing_buf_free(&json_line); /* out of memory: this line goes out as text */
	}
	k = snprintf(line, sizeof(line), "%s %s node=%" PRIu64 " term=%" PRIu64 " ", time,
	             level_upper[level], log_node_id, log_term);
	n = k > 0 ? (size_t)k : 0;
	va_start(ap, fmt);
	k = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	va_end(ap);
	if (k > 0)
		n += (size_t)k;
	if (n > sizeof(line) - 2)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	fwrite(line, 1, n, out);
	fflush(out);
}
