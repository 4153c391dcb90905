/*
 * text.h - text that goes out in structured formats: UTF-8 cleaning and
 * JSON string literals (for the JSON log lines and the HTTP error bodies)
 * and Prometheus label values.  Writers only; parsing stays with jansson.
 */
#ifndef INGOT_COMMON_TEXT_H
#define INGOT_COMMON_TEXT_H

#include <stdbool.h>
#include <stddef.h>

#include "common/buf.h"

/*
 * Copies the NUL-terminated s into out (cap > 0, always NUL-terminated),
 * replacing each byte that is not part of a valid UTF-8 sequence (overlong
 * forms and surrogates included) by '?', and cutting at a character
 * boundary when out is too small.
 */
void ing_utf8_clean(const char *s, char *out, size_t cap);

/* Length (1-4) of the valid UTF-8 sequence at p (n > 0 bytes left), or 0
 * when the bytes there are not one (overlong, surrogate, cut short...). */
size_t ing_utf8_seq(const unsigned char *p, size_t n);

/* True when s[0..len) is valid UTF-8 (NUL bytes count as valid). */
bool ing_utf8_valid(const char *s, size_t len);

/*
 * Makes the NUL-terminated `s` valid, single-line UTF-8 in place: every
 * byte of an invalid or cut-short sequence, and every control character but
 * tab, becomes '?'.  For text that echoes what a client sent (error
 * messages: msgpack strings must be UTF-8, and many decoders reject them
 * otherwise) and that a formatter may have cut in the middle of a
 * character.  Returns the number of bytes replaced.
 */
size_t ing_utf8_sanitize(char *s);

/*
 * Appends s[0..n) as a JSON string literal, quotes included: '"', '\\' and
 * control characters escaped, invalid UTF-8 bytes replaced by '?'.
 */
void ing_buf_json_str(struct ing_buf *b, const char *s, size_t n);

#endif
