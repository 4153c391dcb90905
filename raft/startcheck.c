/*
 * startcheck.c - what libraft 0.15 would hang on or silently get wrong at
 * start, checked before libraft opens the directory.
 *
 * libraft loads the newest snapshot of its directory at start (newest by
 * term, then index, then timestamp, among the `snapshot-T-I-TS.meta` files
 * whose data file `snapshot-T-I-TS` exists and is not empty) and, when the
 * data file is an LZ4 frame (libraft compresses snapshots by default),
 * decompresses it in a loop that never ends once the input runs out: a
 * snapshot file cut short (a full disk, a copy interrupted, a bad block)
 * makes the start spin at full CPU for ever.  This file finds that snapshot
 * the same way and walks its LZ4 frame structure (header, block sizes, end
 * mark, content checksum) without decompressing anything: a frame that is
 * incomplete, or that claims a block longer than the file or than its own
 * block size limit, or that does not end exactly at the end of the file,
 * is corrupt.  Damage inside complete blocks is left to libraft, whose
 * decompressor reports it (the frame carries a content checksum).
 *
 * An uncompressed snapshot (an ingot store file) is not checked here: its
 * restore checks it (storage/).
 *
 * The metadata: libraft keeps the current term and vote in `metadata1` and
 * `metadata2` (32 bytes each, little-endian u64s: disk format 1, version,
 * term, vote; it uses the valid one with the higher version).  At init it
 * deletes one shorter than 32 bytes (a crash while writing it), and when
 * neither is valid it takes the directory for a new one: raft_bootstrap
 * then writes a first configuration next to the existing log, and the node
 * starts in term 0 with no vote, free to vote twice in a term it already
 * voted in.  So a directory holding segments or snapshots but no valid
 * metadata file is corrupt, and this is checked before libraft sees it.
 *
 * Failure modes: ING_ECORRUPT naming the file and the byte where the frame
 * breaks; ING_EIO when the directory or the file cannot be read.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "raft/cons_internal.h"

#define LZ4_FRAME_MAGIC 0x184D2204u

struct snap_name {
	unsigned long long term, index, timestamp;
	char name[128]; /* the data file's name */
};

/* Reads exactly n bytes at off; false when the file ends before. */
static bool read_at(int fd, uint64_t off, void *buf, size_t n)
{
	size_t got = 0;
	while (got < n) {
		ssize_t r = pread(fd, (char *)buf + got, n - got, (off_t)(off + got));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return false;
		got += (size_t)r;
	}
	return true;
}

static uint32_t le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Walks the LZ4 frame in fd (size bytes); 0 or ING_ECORRUPT with the
 * reason in e. */
static int walk_lz4(int fd, uint64_t size, const char *path, struct ing_error *e)
{
	static const uint32_t block_max[8] = {0,         0,          0,        0,
	                                      64u << 10, 256u << 10, 1u << 20, 4u << 20};
	unsigned char h[4 + 2 + 8 + 4 + 1];
	uint64_t off;
	unsigned flg, bd;
	bool block_sum, content_sum;
	uint32_t max;

	if (!read_at(fd, 0, h, 7))
		goto short_header;
	flg = h[4];
	bd = h[5];
	max = block_max[(bd >> 4) & 7];
	if ((flg >> 6) != 1 || (flg & 0x02) != 0 || max == 0)
		return ing_error_set(e, ING_ECORRUPT,
		                     "raft snapshot %s: LZ4 frame header is damaged (flags 0x%02x, "
		                     "block size 0x%02x)",
		                     path, flg, bd);
	block_sum = (flg & 0x10) != 0;
	content_sum = (flg & 0x04) != 0;
	off = 4 + 2 + ((flg & 0x08) ? 8 : 0) + ((flg & 0x01) ? 4 : 0) + 1;
	if (off > size)
		goto short_header;
	for (;;) {
		unsigned char b[4];
		uint32_t len;
		if (!read_at(fd, off, b, 4))
			return ing_error_set(
			    e, ING_ECORRUPT,
			    "raft snapshot %s is truncated: it ends at byte %" PRIu64
			    " inside its LZ4 frame (no end mark)",
			    path, size);
		off += 4;
		len = le32(b) & 0x7fffffffu;
		if (le32(b) == 0)
			break;
		if (len > max)
			return ing_error_set(
			    e, ING_ECORRUPT,
			    "raft snapshot %s is damaged: an LZ4 block at byte %" PRIu64
			    " claims %" PRIu32 " bytes, over the frame's limit of "
			    "%" PRIu32,
			    path, off - 4, len, max);
		off += len + (block_sum ? 4 : 0);
		if (off > size)
			return ing_error_set(
			    e, ING_ECORRUPT,
			    "raft snapshot %s is truncated: an LZ4 block needs %" PRIu64
			    " bytes, the file has %" PRIu64,
			    path, off, size);
	}
	off += content_sum ? 4 : 0;
	if (off != size)
		return ing_error_set(
		    e, ING_ECORRUPT,
		    "raft snapshot %s is damaged: its LZ4 frame ends at byte %" PRIu64
		    " of %" PRIu64,
		    path, off, size);
	return 0;
short_header:
	return ing_error_set(e, ING_ECORRUPT,
	                     "raft snapshot %s is truncated: %" PRIu64
	                     " bytes, shorter than its LZ4 frame header",
	                     path, size);
}

/* libraft's order: term, then index, then timestamp. */
static bool newer(const struct snap_name *a, const struct snap_name *b)
{
	if (a->term != b->term)
		return a->term > b->term;
	if (a->index != b->index)
		return a->index > b->index;
	return a->timestamp > b->timestamp;
}

/* Whether name is a libraft segment (closed or open) or snapshot file. */
static bool is_log_file(const char *name)
{
	unsigned long long a, b;
	int consumed = 0;
	size_t len = strlen(name);

	if (sscanf(name, "%llu-%llu%n", &a, &b, &consumed) == 2 && (size_t)consumed == len)
		return true;
	if (sscanf(name, "open-%llu%n", &a, &consumed) == 1 && (size_t)consumed == len)
		return true;
	return strncmp(name, "snapshot-", 9) == 0;
}

/* Whether dir/name is a metadata file libraft 0.15 accepts. */
static bool metadata_valid(const char *dir, const char *name)
{
	char path[PATH_MAX];
	unsigned char buf[32];
	struct stat st;
	bool ok = false;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	if (fstat(fd, &st) == 0 && st.st_size == (off_t)sizeof(buf) &&
	    read_at(fd, 0, buf, sizeof(buf)))
		ok = le32(buf) == 1 && le32(buf + 4) == 0 && (le32(buf + 8) | le32(buf + 12)) != 0;
	close(fd);
	return ok;
}

/* The snapshot libraft will load from dir (*found false when none), and
 * whether dir holds a log (segments or snapshots). */
static int scan_dir(const char *dir, struct snap_name *out, bool *found, bool *has_log,
                    struct ing_error *e)
{
	DIR *d = opendir(dir);
	struct dirent *de;

	*found = false;
	*has_log = false;
	if (d == NULL) {
		if (errno == ENOENT)
			return 0;
		return ing_error_set(e, ING_EIO, "consensus: cannot list %s: %s", dir,
		                     strerror(errno));
	}
	while ((de = readdir(d)) != NULL) {
		struct snap_name s;
		char path[PATH_MAX];
		struct stat st;
		int consumed = 0;
		size_t len = strlen(de->d_name);

		if (is_log_file(de->d_name))
			*has_log = true;
		if (len >= sizeof(s.name) + 5 ||
		    sscanf(de->d_name, "snapshot-%llu-%llu-%llu.meta%n", &s.term, &s.index,
		           &s.timestamp, &consumed) != 3 ||
		    (size_t)consumed != len)
			continue;
		snprintf(s.name, sizeof(s.name), "%.*s", (int)(len - 5), de->d_name);
		/* libraft skips a snapshot whose data file is missing or empty. */
		if (snprintf(path, sizeof(path), "%s/%s", dir, s.name) >= (int)sizeof(path) ||
		    stat(path, &st) != 0 || st.st_size == 0)
			continue;
		if (!*found || newer(&s, out)) {
			*out = s;
			*found = true;
		}
	}
	closedir(d);
	return 0;
}

int cons_check_dir(const char *dir, char *name, size_t cap, struct ing_error *e)
{
	struct snap_name s;
	char path[PATH_MAX];
	unsigned char magic[4];
	struct stat st;
	bool found, has_log;
	int fd, rv;

	if (cap > 0)
		name[0] = '\0';
	rv = scan_dir(dir, &s, &found, &has_log, e);
	if (rv != 0)
		return rv;
	if (has_log && !metadata_valid(dir, "metadata1") && !metadata_valid(dir, "metadata2"))
		return ing_error_set(e, ING_ECORRUPT,
		                     "raft directory %s holds a log but neither metadata1 nor "
		                     "metadata2 is valid: its term and vote are lost",
		                     dir);
	if (!found)
		return 0;
	snprintf(name, cap, "%s", s.name);
	snprintf(path, sizeof(path), "%s/%s", dir, s.name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) != 0) {
		rv = ing_error_set(e, ING_EIO, "consensus: cannot read raft snapshot %s: %s", path,
		                   strerror(errno));
		goto out;
	}
	if (read_at(fd, 0, magic, 4) && le32(magic) == LZ4_FRAME_MAGIC)
		rv = walk_lz4(fd, (uint64_t)st.st_size, path, e);
out:
	if (fd >= 0)
		close(fd);
	return rv;
}
