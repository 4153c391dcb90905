/*
 * token.c - see token.h.
 */
#include "token.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *bench_token(const char *prog, const char *flag, char *buf, size_t cap)
{
	if (flag != NULL)
		return flag;
	const char *t = getenv("INGOT_TOKEN");
	if (t != NULL && *t != '\0')
		return t;
	const char *tf = getenv("INGOT_TOKEN_FILE");
	if (tf == NULL || *tf == '\0')
		return NULL;
	FILE *f = fopen(tf, "r");
	if (f == NULL || fgets(buf, (int)cap, f) == NULL) {
		fprintf(stderr, "%s: INGOT_TOKEN_FILE %s: cannot read a token\n", prog, tf);
		exit(2);
	}
	fclose(f);
	size_t skip = strspn(buf, " \t");
	memmove(buf, buf + skip, strlen(buf + skip) + 1);
	buf[strcspn(buf, " \t\r\n")] = '\0';
	return buf;
}
