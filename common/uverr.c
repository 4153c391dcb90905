/*
 * uverr.c - see uverr.h.  Only libuv's constants are used here.
 */
#include "common/uverr.h"

#include <uv.h>

#include "common/err.h"

int ing_err_from_uv(int uv_err)
{
	switch (uv_err) {
	case 0: return 0;
	case UV_ENOMEM:
	case UV_ENOBUFS: return ING_ENOMEM;
	case UV_EINVAL:
	case UV_EAFNOSUPPORT: return ING_EINVAL;
	case UV_EACCES:
	case UV_EPERM: return ING_EDENIED;
	case UV_ETIMEDOUT: return ING_ETIMEOUT;
	case UV_EADDRINUSE:
	case UV_EADDRNOTAVAIL:
	case UV_ECONNREFUSED:
	case UV_ECONNRESET:
	case UV_ECONNABORTED:
	case UV_ENETUNREACH:
	case UV_ENETDOWN:
	case UV_EHOSTUNREACH:
	case UV_EPIPE:
	case UV_ENOTCONN:
	case UV_ECANCELED:
	case UV_EOF:
	case UV_EMFILE:
	case UV_ENFILE:
	case UV_EAI_AGAIN: return ING_EUNAVAILABLE;
	default: return ING_EIO;
	}
}
