/*
 * files.c - the local files ingotctl reads: target YAML files, job
 * sources (and the path a source is sent under), token files.
 *
 * Every failure here is the user's to fix before anything is sent, so all
 * are ING_EINVAL naming the file (the caller exits 2).  Files are read
 * whole, bounded, and must be regular files (a directory or a FIFO given
 * by mistake is named, not read forever).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"

int cli_read_file(const char *path, size_t max_bytes, char **data, size_t *len, struct ing_error *e)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return ing_error_set(e, ING_EINVAL, "cannot open '%s': %s", path, strerror(errno));
	int rv = 0;
	char *buf = NULL;
	struct stat st;
	if (fstat(fd, &st) != 0) {
		rv = ing_error_set(e, ING_EINVAL, "cannot read '%s': %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rv = ing_error_set(e, ING_EINVAL, "'%s' is not a regular file", path);
		goto out;
	}
	if ((uint64_t)st.st_size > max_bytes) {
		rv = ing_error_set(e, ING_EINVAL, "'%s' is too large (%lld bytes; at most %zu)",
		                   path, (long long)st.st_size, max_bytes);
		goto out;
	}
	size_t cap = (size_t)st.st_size;
	buf = malloc(cap + 1);
	if (buf == NULL) {
		rv = ing_error_set(e, ING_ENOMEM, "out of memory reading '%s'", path);
		goto out;
	}
	size_t n = 0;
	while (n < cap) {
		ssize_t got = read(fd, buf + n, cap - n);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			rv = ing_error_set(e, ING_EINVAL, "cannot read '%s': %s", path,
			                   strerror(errno));
			goto out;
		}
		if (got == 0)
			break; /* shrank while we read: take what is there */
		n += (size_t)got;
	}
	buf[n] = '\0';
	*data = buf;
	*len = n;
	buf = NULL;
out:
	free(buf);
	close(fd);
	return rv;
}

/* True when `path` has a ".." component. */
static bool has_dotdot(const char *path)
{
	const char *p = path;
	while (*p != '\0') {
		const char *slash = strchr(p, '/');
		size_t len = slash != NULL ? (size_t)(slash - p) : strlen(p);
		if (len == 2 && p[0] == '.' && p[1] == '.')
			return true;
		if (slash == NULL)
			break;
		p = slash + 1;
	}
	return false;
}

int cli_source_path(const char *path, char *buf, size_t cap, struct ing_error *e)
{
	const char *p = path;
	if (p[0] == '/' || has_dotdot(p)) {
		const char *end = p + strlen(p);
		while (end > p && end[-1] == '/')
			end--;
		const char *base = end;
		while (base > p && base[-1] != '/')
			base--;
		if (end == base || (end - base == 2 && base[0] == '.' && base[1] == '.') ||
		    (end - base == 1 && base[0] == '.'))
			return ing_error_set(e, ING_EINVAL, "'%s': cannot name a source after it",
			                     path);
		if ((size_t)(end - base) >= cap)
			return ing_error_set(e, ING_EINVAL, "'%s': name too long", path);
		memcpy(buf, base, (size_t)(end - base));
		buf[end - base] = '\0';
		return 0;
	}
	/* Relative, no "..": keep it, without "./" prefixes or doubled slashes. */
	size_t n = 0;
	while (*p != '\0') {
		while (*p == '/')
			p++;
		if (p[0] == '.' && (p[1] == '/' || p[1] == '\0')) {
			p++;
			continue;
		}
		const char *slash = strchr(p, '/');
		size_t len = slash != NULL ? (size_t)(slash - p) : strlen(p);
		if (len == 0)
			break;
		if (n + len + 2 > cap)
			return ing_error_set(e, ING_EINVAL, "'%s': name too long", path);
		if (n > 0)
			buf[n++] = '/';
		memcpy(buf + n, p, len);
		n += len;
		p += len;
	}
	if (n == 0)
		return ing_error_set(e, ING_EINVAL, "'%s': cannot name a source after it", path);
	buf[n] = '\0';
	return 0;
}

int cli_resolve_token(struct cli_cmd *cmd, char *buf, size_t cap, struct ing_error *e)
{
	char *data = NULL;
	size_t len = 0;
	if (cmd->token != NULL || cmd->token_file == NULL)
		return 0;
	int rv = cli_read_file(cmd->token_file, 64 * 1024, &data, &len, e);
	if (rv != 0) {
		char why[ING_ERROR_MSG_MAX];
		snprintf(why, sizeof(why), "%s", e->msg);
		return ing_error_set(e, ING_EINVAL, "%s: %s", cmd->token_file_source, why);
	}
	char *p = data;
	while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
		p++;
	size_t n = strcspn(p, "\r\n");
	while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
		n--;
	if (n == 0 || n > CLI_TOKEN_MAX || n >= cap) {
		rv = ing_error_set(e, ING_EINVAL, "%s %s: %s", cmd->token_file_source,
		                   cmd->token_file,
		                   n == 0 ? "holds no token" : "the token is over 4096 bytes");
	} else {
		memcpy(buf, p, n);
		buf[n] = '\0';
		cmd->token = buf;
	}
	memset(data, 0, len);
	free(data);
	return rv;
}
