/*
 * uverr.h - the one translation of libuv errors into ING_E* codes, for
 * every layer that runs on libuv (rpc/, node/).
 *
 * It lives in common/ so that rpc/ and node/ share it without node/
 * reaching into rpc/'s private headers.  uverr.c reads libuv's error
 * constants from <uv.h> at compile time and calls nothing of libuv, so
 * common/ does not link libuv.
 */
#ifndef INGOT_COMMON_UVERR_H
#define INGOT_COMMON_UVERR_H

/*
 * ING_E* for a libuv error (a negative UV_E* value; 0 gives 0):
 * ING_ENOMEM (ENOMEM, ENOBUFS), ING_EINVAL (EINVAL, EAFNOSUPPORT),
 * ING_EDENIED (EACCES, EPERM), ING_ETIMEOUT (ETIMEDOUT), ING_EUNAVAILABLE
 * (address in use or not available, connection refused/reset/aborted,
 * network or host unreachable or down, broken pipe, not connected,
 * cancelled, end of file, out of file descriptors, temporary DNS failure),
 * ING_EIO for anything else.
 */
int ing_err_from_uv(int uv_err);

#endif
