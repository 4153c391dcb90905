/*
 * str.c - UTF-8 checks for text that goes back to clients (str.h).
 *
 * The decoder follows RFC 3629: a lead byte gives the length (2-4), each
 * continuation byte is 10xxxxxx, and the code point must use the shortest
 * form, lie outside the surrogates U+D800-DFFF and at most at U+10FFFF.
 */
#include "common/str.h"

/* Length of the valid sequence at s[0..left), 0 when invalid. */
static size_t sequence(const unsigned char *s, size_t left)
{
	uint32_t cp;
	size_t n;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		n = 2;
		cp = s[0] & 0x1f;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		n = 3;
		cp = s[0] & 0x0f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		n = 4;
		cp = s[0] & 0x07;
	} else {
		return 0;
	}
	if (n > left)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10ffff ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

bool ing_utf8_valid(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	for (size_t i = 0; i < len;) {
		size_t n = sequence(p + i, len - i);
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
		size_t n = sequence(p + i, len - i);
		if (n == 0 || (n == 1 && p[i] < 0x20 && p[i] != '\t') || p[i] == 0x7f) {
			p[i++] = '?';
			replaced++;
			continue;
		}
		i += n;
	}
	return replaced;
}
