/*
 * log.h - structured, grep-able logs.
 *
 * One line per event: `<time> <LEVEL> node=<id> term=<term> <message>`, where
 * the message is an event name followed by key=value fields, e.g.
 *   ING_LOG_INFO("job assigned job=%" PRIu64 " node=%" PRIu64, id, node);
 * The level is checked before any formatting happens.  Node id and term are
 * process-wide context set by the daemon (0 until known).  Logs go to stderr
 * unless ing_log_set_file() names another stream.
 */
#ifndef INGOT_COMMON_LOG_H
#define INGOT_COMMON_LOG_H

#include <stdint.h>
#include <stdio.h>

enum ing_log_level {
	ING_LOG_LEVEL_DEBUG = 0,
	ING_LOG_LEVEL_INFO = 1,
	ING_LOG_LEVEL_WARN = 2,
	ING_LOG_LEVEL_ERROR = 3,
	ING_LOG_LEVEL_OFF = 4,
};

extern enum ing_log_level ing_log_threshold;

void ing_log_set_level(enum ing_log_level level);
/* Parses "debug", "info", "warn", "error", "off"; returns 0 or ING_EINVAL. */
int ing_log_parse_level(const char *s, enum ing_log_level *out);
/* Borrowed stream; NULL means stderr. */
void ing_log_set_file(FILE *f);
void ing_log_set_node(uint64_t node_id);
void ing_log_set_term(uint64_t term);

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
