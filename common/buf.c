/*
 * buf.c - growable byte buffers (see buf.h).
 */
#include "common/buf.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"

int ing_grow(char **data, size_t *cap, size_t need, size_t min_cap)
{
	if (need <= *cap && *data != NULL)
		return 0;
	size_t n = *cap > min_cap ? *cap : min_cap;
	while (n < need) {
		if (n > SIZE_MAX / 2)
			return ING_ENOMEM;
		n *= 2;
	}
	char *p = realloc(*data, n);
	if (p == NULL)
		return ING_ENOMEM;
	*data = p;
	*cap = n;
	return 0;
}

void ing_buf_free(struct ing_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
	b->oom = false;
}

void ing_buf_reset(struct ing_buf *b)
{
	b->len = 0;
	b->oom = false;
	if (b->data != NULL)
		b->data[0] = '\0';
}

int ing_buf_append(struct ing_buf *b, const void *p, size_t n)
{
	if (b->oom)
		return ING_ENOMEM;
	if (ing_grow(&b->data, &b->cap, b->len + n + 1, 256) != 0) {
		b->oom = true;
		return ING_ENOMEM;
	}
	if (n > 0)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

int ing_buf_puts(struct ing_buf *b, const char *s)
{
	return ing_buf_append(b, s, strlen(s));
}

int ing_buf_printf(struct ing_buf *b, const char *fmt, ...)
{
	if (b->oom)
		return ING_ENOMEM;
	va_list ap;
	va_start(ap, fmt);
	size_t room = b->cap > b->len ? b->cap - b->len : 0;
	int n = vsnprintf(room > 0 ? b->data + b->len : NULL, room, fmt, ap);
	va_end(ap);
	if (n < 0)
		return ING_EINVAL;
	if ((size_t)n >= room) {
		if (ing_grow(&b->data, &b->cap, b->len + (size_t)n + 1, 256) != 0) {
			b->oom = true;
			if (b->data != NULL && b->cap > b->len)
				b->data[b->len] = '\0';
			return ING_ENOMEM;
		}
		va_start(ap, fmt);
		vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
	}
	b->len += (size_t)n;
	return 0;
}

void ing_buf_consume(struct ing_buf *b, size_t n)
{
	if (n >= b->len) {
		ing_buf_reset(b);
		return;
	}
	memmove(b->data, b->data + n, b->len - n + 1);
	b->len -= n;
}

int ing_buf_failed(const struct ing_buf *b)
{
	return b->oom ? ING_ENOMEM : 0;
}
