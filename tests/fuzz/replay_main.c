/*
 * replay_main.c - runs a libFuzzer driver over a directory of inputs, so
 * that every ordinary test build exercises the seed corpus (and any crash
 * reproducer added to it) without libFuzzer.
 *
 * Usage: fuzz_<name> <dir>.  Calls LLVMFuzzerTestOneInput once per regular
 * file in <dir>, in directory order.  Exits 1 when the directory cannot be
 * read, holds no files, or a file cannot be read; a driver that finds a bug
 * aborts (and the sanitizers report it).
 */
#include <dirent.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Reads the whole file into a malloc'd buffer (at least 1 byte allocated,
 * so an empty input still has a valid pointer). */
static int read_file(const char *path, uint8_t **out, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		return -1;
	size_t cap = 4096, n = 0;
	uint8_t *buf = malloc(cap);
	while (buf != NULL) {
		n += fread(buf + n, 1, cap - n, f);
		if (n < cap)
			break;
		uint8_t *p = realloc(buf, cap * 2);
		if (p == NULL) {
			free(buf);
			buf = NULL;
			break;
		}
		buf = p;
		cap *= 2;
	}
	int failed = buf == NULL || ferror(f);
	fclose(f);
	if (failed) {
		free(buf);
		return -1;
	}
	*out = buf;
	*len = n;
	return 0;
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
		return 1;
	}
	DIR *d = opendir(argv[1]);
	if (d == NULL) {
		fprintf(stderr, "%s: cannot open directory %s\n", argv[0], argv[1]);
		return 1;
	}
	unsigned long count = 0;
	int rc = 0;
	struct dirent *ent;
	while ((ent = readdir(d)) != NULL) {
		char path[4096];
		struct stat st;
		if (snprintf(path, sizeof(path), "%s/%s", argv[1], ent->d_name) >=
		    (int)sizeof(path))
			continue;
		if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
			continue;
		uint8_t *data;
		size_t len;
		if (read_file(path, &data, &len) != 0) {
			fprintf(stderr, "%s: cannot read %s\n", argv[0], path);
			rc = 1;
			break;
		}
		LLVMFuzzerTestOneInput(data, len);
		free(data);
		count++;
	}
	closedir(d);
	if (rc == 0 && count == 0) {
		fprintf(stderr, "%s: no inputs in %s\n", argv[0], argv[1]);
		rc = 1;
	}
	if (rc == 0)
		printf("replayed %lu inputs\n", count);
	return rc;
}
