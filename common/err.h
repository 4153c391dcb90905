/*
 * err.h - the one error table of ingot.
 *
 * Every function that can fail returns 0 or one of the negative codes below
 * and writes its results through out-parameters only on success.  Each code
 * has a stable name (used on the wire and in the CLI: clients may switch on
 * it) and a default message for people.  Where a caller needs to know *what*
 * was wrong (which field, which job), functions take a `struct ing_error *`
 * and fill it with ing_error_set(); the code in it is the same one returned.
 *
 * Library errors become ours in exactly one place per library:
 * store_err_from_mdb() in storage/, ing_err_from_uv() in common/uverr.h
 * (shared by rpc/ and node/), the libraft and OpenSSL translators in raft/
 * and rpc/.
 */
#ifndef INGOT_COMMON_ERR_H
#define INGOT_COMMON_ERR_H

#include <stddef.h>

/* X(symbol, value, stable name, default message) */
#define ING_ERRORS(X)                                                                   \
	X(ING_ENOMEM, -1, "no_memory", "out of memory")                                 \
	X(ING_EINVAL, -2, "invalid", "invalid argument")                                \
	X(ING_ENOTFOUND, -3, "not_found", "not found")                                  \
	X(ING_EEXIST, -4, "already_exists", "already exists")                           \
	X(ING_ECONFLICT, -5, "conflict", "not allowed in the current state")            \
	X(ING_EMALFORMED, -6, "malformed", "malformed encoding")                        \
	X(ING_EVERSION, -7, "unsupported_version", "unsupported format version")        \
	X(ING_ETOOBIG, -8, "too_large", "exceeds a size limit")                         \
	X(ING_ESTALE, -9, "stale_attempt", "report for an attempt that is not current") \
	X(ING_ECORRUPT, -10, "corrupt", "stored data is corrupt")                       \
	X(ING_EIO, -11, "io_error", "input/output error")                               \
	X(ING_ENOSPACE, -12, "no_space", "storage is full")                             \
	X(ING_ENEWER, -13, "store_too_new", "store was written by a newer ingot")       \
	X(ING_EUNAVAILABLE, -14, "unavailable", "service unavailable")                  \
	X(ING_ENOTLEADER, -15, "not_leader", "this node is not the leader")             \
	X(ING_ETIMEOUT, -16, "timeout", "operation timed out")                          \
	X(ING_EDENIED, -17, "permission_denied", "permission denied")                   \
	X(ING_EINTERNAL, -18, "internal", "internal error")

enum {
	ING_OK = 0,
#define ING_ERR_ENUM(sym, val, name, msg) sym = (val),
	ING_ERRORS(ING_ERR_ENUM)
#undef ING_ERR_ENUM
};

/* Stable name of a code ("not_found"); "unknown" for codes not in the table. */
const char *ing_err_name(int code);
/* Default human message of a code. */
const char *ing_err_msg(int code);
/* Code for a stable name, or 0 when the name is unknown. */
int ing_err_from_name(const char *name);

#define ING_ERROR_MSG_MAX 256

/* A code plus a message naming what was wrong.  Plain value, no resources. */
struct ing_error {
	int code;
	char msg[ING_ERROR_MSG_MAX];
};

/*
 * Records `code` and a printf-style message in `e` (which may be NULL) and
 * returns `code`, so callers can write `return ing_error_set(e, ...)`.
 */
int ing_error_set(struct ing_error *e, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Clears `e` to ING_OK with an empty message. */
void ing_error_clear(struct ing_error *e);

/*
 * Corruption is reported with the place that found it (SQLite's
 * SQLITE_CORRUPT_BKPT): logs at error level and evaluates to ING_ECORRUPT.
 */
int ing_corrupt_at(const char *file, int line, const char *what);
#define ING_CORRUPT(what) ing_corrupt_at(__FILE__, __LINE__, (what))

#endif
