/*
 * text.c - UTF-8 cleaning and JSON string literals (see text.h).
 */
#include "common/text.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "common/err.h"

size_t ing_utf8_seq(const unsigned char *p, size_t n)
{
	size_t len;
	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		len = 2;
	else if ((p[0] & 0xf0) == 0xe0)
		len = 3;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		len = 4;
	else
		return 0;
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++)
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	if (len == 3 && ((p[0] == 0xe0 && p[1] < 0xa0) || (p[0] == 0xed && p[1] >= 0xa0)))
		return 0; /* overlong, surrogate */
	if (len == 4 && ((p[0] == 0xf0 && p[1] < 0x90) || (p[0] == 0xf4 && p[1] >= 0x90)))
		return 0; /* overlong, over U+10FFFF */
	return len;
}

bool ing_utf8_valid(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	for (size_t i = 0; i < len;) {
		size_t n = ing_utf8_seq(p + i, len - i);
		if (n == 0)
			return false;
		i += n;
	}
	return true;
}

size_t ing_utf8_sanitize(char *s)
{
	unsigned char *p = (unsigned char *)s;
	size_t len = strlen(s), replaced = 0;
	for (size_t i = 0; i < len;) {
		size_t n = ing_utf8_seq(p + i, len - i);
		if (n == 0 || (n == 1 && p[i] < 0x20 && p[i] != '\t') || p[i] == 0x7f) {
			p[i++] = '?';
			replaced++;
			continue;
		}
		i += n;
	}
	return replaced;
}

void ing_utf8_clean(const char *s, char *out, size_t cap)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t left = strlen(s), o = 0;
	while (left > 0) {
		size_t n = ing_utf8_seq(p, left);
		size_t w = n == 0 ? 1 : n;
		if (o + w >= cap)
			break;
		if (n == 0)
			out[o] = '?';
		else
			memcpy(out + o, p, n);
		o += w;
		p += w;
		left -= w;
	}
	out[o] = '\0';
}

void ing_buf_json_str(struct ing_buf *b, const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	ing_buf_append(b, "\"", 1);
	while (n > 0) {
		size_t run = 0;
		/* Copy the longest run that needs no escaping in one append. */
		while (run < n && p[run] >= 0x20 && p[run] < 0x80 && p[run] != '"' &&
		       p[run] != '\\')
			run++;
		if (run > 0) {
			ing_buf_append(b, p, run);
			p += run;
			n -= run;
			continue;
		}
		size_t seq = ing_utf8_seq(p, n);
		if (p[0] >= 0x80) {
			if (seq == 0)
				ing_buf_append(b, "?", 1);
			else
				ing_buf_append(b, p, seq);
			p += seq == 0 ? 1 : seq;
			n -= seq == 0 ? 1 : seq;
			continue;
		}
		switch (p[0]) {
		case '"': ing_buf_append(b, "\\\"", 2); break;
		case '\\': ing_buf_append(b, "\\\\", 2); break;
		case '\n': ing_buf_append(b, "\\n", 2); break;
		case '\r': ing_buf_append(b, "\\r", 2); break;
		case '\t': ing_buf_append(b, "\\t", 2); break;
		default: ing_buf_printf(b, "\\u%04x", p[0]); break;
		}
		p++;
		n--;
	}
	ing_buf_append(b, "\"", 1);
}
