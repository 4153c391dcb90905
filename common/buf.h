/*
 * buf.h - growable byte buffers.
 *
 * ing_grow is the one growth policy (doubling from a minimum) of every
 * growable buffer in ingot: mp_out, the HTTP server's request bodies and
 * stream output, and ing_buf below.
 *
 * struct ing_buf is a text/bytes builder.  Its data is always followed by a
 * NUL byte (not counted in len) once anything was appended, so text can be
 * used as a C string.  An allocation failure is sticky: later appends do
 * nothing and ing_buf_failed() says ING_ENOMEM, so a renderer can append
 * freely and check once at the end.
 */
#ifndef INGOT_COMMON_BUF_H
#define INGOT_COMMON_BUF_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Makes *data (realloc'd, may be NULL) hold at least `need` bytes: *cap
 * doubles from max(*cap, min_cap) until it does.  0, or ING_ENOMEM with
 * *data and *cap unchanged.
 */
int ing_grow(char **data, size_t *cap, size_t need, size_t min_cap);

struct ing_buf {
	char *data; /* NULL until the first append */
	size_t len;
	size_t cap;
	bool oom;
};

#define ING_BUF_INIT              \
	{                         \
		NULL, 0, 0, false \
	}

void ing_buf_free(struct ing_buf *b);
/* Empties the buffer, keeps its memory, clears the failure. */
void ing_buf_reset(struct ing_buf *b);
/* Appends n bytes.  0 or ING_ENOMEM (sticky). */
int ing_buf_append(struct ing_buf *b, const void *p, size_t n);
int ing_buf_puts(struct ing_buf *b, const char *s);
int ing_buf_printf(struct ing_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Drops the first n bytes (n <= len). */
void ing_buf_consume(struct ing_buf *b, size_t n);
/* ING_ENOMEM if an append failed since the last reset, else 0. */
int ing_buf_failed(const struct ing_buf *b);

#endif
