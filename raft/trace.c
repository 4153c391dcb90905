/*
 * trace.c - libraft's diagnostics into ours: its tracer, its error codes.
 *
 * libraft 0.15 as Debian builds it has no assertions, so its internal
 * failures show only as traces and return codes.  Traces (both the core's,
 * r->tracer, and the uv backend's, raft_uv_set_tracer) become debug lines
 * tagged with the raft node id; the tracer is enabled only while the log
 * threshold is debug, so libraft formats nothing otherwise (its Tracef
 * checks `enabled` before snprintf).  The exception is cons_start: while
 * libraft loads the directory, the tracer is on whatever the level, because
 * 0.15 reports some damage to the log only as a trace (an open segment
 * truncated at a corrupt batch, a non-contiguous segment discarded, a
 * leftover `corrupt-*` file ignored): those lines go out at warn.  Failures reported through return
 * codes are logged at warn level by the caller via cons_raft_failed, and
 * translated by cons_err_from_raft, the one translation point from libraft
 * codes to ING_E*.
 *
 * No state beyond the tracer struct in struct cons; nothing here fails.
 */
#include <inttypes.h>
#include <string.h>

#include "common/log.h"
#include "raft/cons_internal.h"

int cons_err_from_raft(int rv)
{
	switch (rv) {
	case 0: return 0;
	case RAFT_NOMEM: return ING_ENOMEM;
	case RAFT_BADID: return ING_ENOTFOUND;
	case RAFT_DUPLICATEID:
	case RAFT_DUPLICATEADDRESS: return ING_EEXIST;
	case RAFT_BADROLE:
	case RAFT_INVALID:
	case RAFT_NAMETOOLONG: return ING_EINVAL;
	case RAFT_MALFORMED: return ING_EMALFORMED;
	case RAFT_NOTLEADER: return ING_ENOTLEADER;
	case RAFT_LEADERSHIPLOST:
	case RAFT_SHUTDOWN:
	case RAFT_CANCELED:
	case RAFT_NOCONNECTION:
	case RAFT_BUSY: return ING_EUNAVAILABLE;
	case RAFT_CANTBOOTSTRAP: return ING_EEXIST;
	case RAFT_CANTCHANGE: return ING_ECONFLICT;
	case RAFT_CORRUPT: return ING_ECORRUPT;
	case RAFT_TOOBIG:
	case RAFT_TOOMANY: return ING_ETOOBIG;
	case RAFT_IOERR: return ING_EIO;
	case RAFT_NOTFOUND: return ING_ENOTFOUND;
	case RAFT_UNAUTHORIZED: return ING_EDENIED;
	case RAFT_NOSPACE: return ING_ENOSPACE;
	default: return ING_EINTERNAL;
	}
}

int cons_raft_failed(const struct cons *c, const char *what, int rv, const char *detail)
{
	int code = cons_err_from_raft(rv);
	ING_LOG_WARN("raft call failed raft_node=%" PRIu64 " call=%s rc=%d err=\"%s\" code=%s "
	             "detail=\"%s\"",
	             c->id, what, rv, raft_strerror(rv), ing_err_name(code),
	             detail != NULL ? detail : "");
	return code;
}

/* Traces of libraft 0.15's loader that mean the log on disk is damaged. */
static bool reports_damage(const char *message)
{
	static const char *const words[] = {"corrupt",     "non-zero trail", "discarding",
	                                    "unsupported", "checksum",       "configuration data"};
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		if (strstr(message, words[i]) != NULL)
			return true;
	return false;
}

static void trace_emit(struct raft_tracer *t, const char *file, int line, const char *message)
{
	const struct cons *c = t->impl;
	const char *base = strrchr(file, '/');
	if (c->starting && reports_damage(message)) {
		ING_LOG_WARN("raft log damage found at start raft_node=%" PRIu64 " dir=%s at=%s:%d "
		             "msg=\"%s\"",
		             c->id, c->dir, base != NULL ? base + 1 : file, line, message);
		return;
	}
	ING_LOG_DEBUG("raft trace raft_node=%" PRIu64 " at=%s:%d %s", c->id,
	              base != NULL ? base + 1 : file, line, message);
}

void cons_trace_init(struct cons *c)
{
	c->tracer.impl = c;
	c->tracer.emit = trace_emit;
	cons_trace_refresh(c);
}

void cons_trace_refresh(struct cons *c)
{
	c->tracer.enabled = c->starting || ing_log_threshold <= ING_LOG_LEVEL_DEBUG;
}
