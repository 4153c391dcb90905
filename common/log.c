/*
 * log.c - the log line writer.  Single-threaded by design (one loop per
 * node); a line is formatted into a stack buffer and written with one fwrite
 * so lines from several processes sharing a file do not interleave.
 */
#include "common/log.h"

#include <inttypes.h>
#include <stdarg.h>
#include <string.h>
#include <time.h>

#include "common/err.h"

enum ing_log_level ing_log_threshold = ING_LOG_LEVEL_INFO;

static FILE *log_file;
static uint64_t log_node_id;
static uint64_t log_term;

static const char *const level_names[] = {"DEBUG", "INFO", "WARN", "ERROR"};

void ing_log_set_level(enum ing_log_level level)
{
	ing_log_threshold = level;
}

int ing_log_parse_level(const char *s, enum ing_log_level *out)
{
	static const char *const names[] = {"debug", "info", "warn", "error", "off"};
	for (int i = 0; i < 5; i++) {
		if (strcmp(s, names[i]) == 0) {
			*out = (enum ing_log_level)i;
			return 0;
		}
	}
	return ING_EINVAL;
}

void ing_log_set_file(FILE *f)
{
	log_file = f;
}

void ing_log_set_node(uint64_t node_id)
{
	log_node_id = node_id;
}

void ing_log_set_term(uint64_t term)
{
	log_term = term;
}

void ing_log_write(enum ing_log_level level, const char *fmt, ...)
{
	char line[1024];
	struct timespec ts;
	struct tm tm;
	size_t n;
	int k;
	va_list ap;

	if (level >= ING_LOG_LEVEL_OFF)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
	k = snprintf(line + n, sizeof(line) - n, ".%03ldZ %s node=%" PRIu64 " term=%" PRIu64 " ",
	             ts.tv_nsec / 1000000, level_names[level], log_node_id, log_term);
	if (k > 0)
		n += (size_t)k;
	va_start(ap, fmt);
	k = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	va_end(ap);
	if (k > 0)
		n += (size_t)k;
	if (n > sizeof(line) - 2)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	fwrite(line, 1, n, log_file != NULL ? log_file : stderr);
	fflush(log_file != NULL ? log_file : stderr);
}
