/*
 * log.h - structured, grep-able logs.
 *
 * One line per event.  The text format (the default):
 *   <time> <LEVEL> node=<id> term=<term> <message>
 * where the message is an event name followed by key=value fields, e.g.
 *   ING_LOG_INFO("job assigned job=%" PRIu64 " node=%" PRIu64, id, node);
 * (a value with spaces is written quoted: msg="no such target").
 *
 * The JSON format (log_format: json) writes the same line as one JSON
 * object: {"time":..., "level":"info", "node":N, "term":T, "event":"job
 * assigned", "fields":{"job":"5","node":"2"}}.  The event is the message up
 * to its first key=value word; field values are strings (quotes removed,
 * \" and \\ unescaped); a word that is not key=value belongs to the value
 * before it; a repeated key gets a suffix (_2, _3...).  Bytes that are not
 * UTF-8 become '?'.
 *
 * The level is checked before any formatting happens and may change at any
 * time.  Node id and term are process-wide context set by the daemon (0
 * until known).  Logs go to stderr unless a file is opened (ing_log_open),
 * which ing_log_reopen opens again by name (logrotate: on SIGHUP).
 * Single-threaded by design, like the rest of a node.
 */
#ifndef INGOT_COMMON_LOG_H
#define INGOT_COMMON_LOG_H

#include <stdint.h>
#include <stdio.h>

#include "common/err.h"

enum ing_log_level {
	ING_LOG_LEVEL_DEBUG = 0,
	ING_LOG_LEVEL_INFO = 1,
	ING_LOG_LEVEL_WARN = 2,
	ING_LOG_LEVEL_ERROR = 3,
	ING_LOG_LEVEL_OFF = 4,
};

enum ing_log_format {
	ING_LOG_FORMAT_TEXT = 0,
	ING_LOG_FORMAT_JSON = 1,
};

extern enum ing_log_level ing_log_threshold;

void ing_log_set_level(enum ing_log_level level);
/* Parses "debug", "info", "warn", "error", "off"; returns 0 or ING_EINVAL. */
int ing_log_parse_level(const char *s, enum ing_log_level *out);
/* "debug", "info", "warn", "error", "off". */
const char *ing_log_level_name(enum ing_log_level level);
void ing_log_set_format(enum ing_log_format format);
/* Parses "text", "json"; returns 0 or ING_EINVAL. */
int ing_log_parse_format(const char *s, enum ing_log_format *out);
/* Borrowed stream; NULL means stderr.  Forgets a file from ing_log_open
 * (without closing it). */
void ing_log_set_file(FILE *f);
void ing_log_set_node(uint64_t node_id);
void ing_log_set_term(uint64_t term);

/*
 * Opens `path` for appending (created with mode 0640) and logs to it from
 * now on; a file opened here before is closed.  On error nothing changes.
 * Errors: ING_EIO, ING_EDENIED, ING_EINVAL (path too long), with a message
 * naming the path.
 */
int ing_log_open(const char *path, struct ing_error *e);
/*
 * Opens the file of ing_log_open again by its name (after logrotate moved
 * it away) and switches to the new stream; the old one is closed.  On error
 * the old stream stays in use.  0 when no file is open (stderr).  Errors as
 * ing_log_open.
 */
int ing_log_reopen(struct ing_error *e);
/* Closes the file of ing_log_open, if any, and goes back to stderr. */
void ing_log_close(void);

void ing_log_write(enum ing_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define ING_LOG(level, ...)                                  \
	do {                                                 \
		if ((level) >= ing_log_threshold)            \
			ing_log_write((level), __VA_ARGS__); \
	} while (0)

#define ING_LOG_DEBUG(...) ING_LOG(ING_LOG_LEVEL_DEBUG, __VA_ARGS__)
#define ING_LOG_INFO(...)  ING_LOG(ING_LOG_LEVEL_INFO, __VA_ARGS__)
#define ING_LOG_WARN(...)  ING_LOG(ING_LOG_LEVEL_WARN, __VA_ARGS__)
#define ING_LOG_ERROR(...) ING_LOG(ING_LOG_LEVEL_ERROR, __VA_ARGS__)

#endif
