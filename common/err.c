/*
 * err.c - names and messages of the error table in err.h.
 */
#include "common/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"

const char *ing_err_name(int code)
{
	switch (code) {
	case ING_OK: return "ok";
#define ING_ERR_NAME(sym, val, name, msg) \
	case sym: return name;
		ING_ERRORS(ING_ERR_NAME)
#undef ING_ERR_NAME
	default: return "unknown";
	}
}

const char *ing_err_msg(int code)
{
	switch (code) {
	case ING_OK: return "success";
#define ING_ERR_MSG(sym, val, name, msg) \
	case sym: return msg;
		ING_ERRORS(ING_ERR_MSG)
#undef ING_ERR_MSG
	default: return "unknown error";
	}
}

int ing_err_from_name(const char *name)
{
#define ING_ERR_LOOKUP(sym, val, str, msg) \
	if (strcmp(name, str) == 0)        \
		return sym;
	ING_ERRORS(ING_ERR_LOOKUP)
#undef ING_ERR_LOOKUP
	return 0;
}

int ing_error_set(struct ing_error *e, int code, const char *fmt, ...)
{
	if (e != NULL) {
		va_list ap;
		e->code = code;
		va_start(ap, fmt);
		vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
		va_end(ap);
	}
	return code;
}

void ing_error_clear(struct ing_error *e)
{
	e->code = ING_OK;
	e->msg[0] = '\0';
}

int ing_corrupt_at(const char *file, int line, const char *what)
{
	ING_LOG_ERROR("corruption detected what=\"%s\" at=%s:%d", what, file, line);
	return ING_ECORRUPT;
}
