/*
 * str.h - borrowed byte strings.
 *
 * A `struct ing_str` is a view: it owns nothing and is not NUL-terminated.
 * Decoders hand out views into the buffer they decoded; the view lives as
 * long as that buffer.  Print with "%.*s", ING_STR_FMT(s).
 */
#ifndef INGOT_COMMON_STR_H
#define INGOT_COMMON_STR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct ing_str {
	const char *ptr;
	uint32_t len;
};

#define ING_STR_FMT(s) (int)(s).len, (s).ptr

static inline struct ing_str ing_str_c(const char *c)
{
	struct ing_str s = {c, (uint32_t)strlen(c)};
	return s;
}

static inline bool ing_str_eq(struct ing_str a, struct ing_str b)
{
	return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

static inline bool ing_str_eq_c(struct ing_str a, const char *c)
{
	return ing_str_eq(a, ing_str_c(c));
}

/* Three-way byte comparison, shorter first on a common prefix. */
static inline int ing_str_cmp(struct ing_str a, struct ing_str b)
{
	uint32_t n = a.len < b.len ? a.len : b.len;
	int c = n == 0 ? 0 : memcmp(a.ptr, b.ptr, n);
	if (c != 0)
		return c;
	return a.len < b.len ? -1 : (a.len > b.len ? 1 : 0);
}

/* Copies s into out as a C string, cut to cap - 1 bytes (cap > 0): what
 * snprintf(out, cap, "%.*s", ING_STR_FMT(s)) gives for a string without
 * NUL bytes, without the formatting. */
static inline void ing_str_to_c(struct ing_str s, char *out, size_t cap)
{
	size_t n = s.len < cap - 1 ? s.len : cap - 1;
	if (n > 0)
		memcpy(out, s.ptr, n);
	out[n] = '\0';
}

#endif
