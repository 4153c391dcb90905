/*
 * markers.c - the journal of started attempts (see markers.h).
 *
 * In memory: `live` (synced markers) and `pend` (added, not yet synced),
 * two small arrays searched linearly (a node holds its slots' worth).  On
 * disk: the header, then `records` records of WORKER_MARKERS_RECORD bytes;
 * every live marker has a record there, and `records - nlive` records are
 * of markers removed since.
 *
 * Why each step is safe after a crash at any point:
 *   - sync: records are appended then fdatasync'd; an attempt runs only
 *     after its sync returned, so a record lost or torn by a crash belongs
 *     to an attempt that never ran (a torn tail is cut off at open);
 *   - remove: nothing is written; a record coming back names an attempt no
 *     longer assigned (attempt numbers only grow), swept again;
 *   - empty (no marker live): ftruncate to the header, not synced: if the
 *     crash loses it, removed records come back, as above;
 *   - compaction: the live records go to started.journal.tmp, fdatasync'd,
 *     then renamed over the journal: the journal is the old file or the
 *     new one, each holding every live marker.
 */
#include "node/worker/markers.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fs.h"
#include "common/log.h"

#define HEADER_LEN 8u

struct marker {
	uint64_t job;
	uint32_t attempt;
};

struct worker_markers {
	char path[600], tmp[620], legacy[600];
	int fd;
	struct marker *live, *pend;
	size_t nlive, live_cap, npend, pend_cap;
	size_t records;
};

static uint32_t record_check(uint64_t job, uint32_t attempt)
{
	uint64_t h = (job ^ 0x696e676f74ULL) * 0x9E3779B97F4A7C15ULL;
	h ^= (uint64_t)attempt * 0xC2B2AE3D27D4EB4FULL;
	h ^= h >> 29;
	return (uint32_t)h ^ (uint32_t)(h >> 32);
}

static void put_le(uint8_t *p, uint64_t v, unsigned bytes)
{
	for (unsigned i = 0; i < bytes; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, unsigned bytes)
{
	uint64_t v = 0;
	for (unsigned i = 0; i < bytes; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static void encode(uint8_t *p, const struct marker *k)
{
	put_le(p, k->job, 8);
	put_le(p + 8, k->attempt, 4);
	put_le(p + 12, record_check(k->job, k->attempt), 4);
}

static ssize_t find(const struct marker *v, size_t n, uint64_t job, uint32_t attempt)
{
	for (size_t i = 0; i < n; i++)
		if (v[i].job == job && v[i].attempt == attempt)
			return (ssize_t)i;
	return -1;
}

static int push(struct marker **v, size_t *n, size_t *cap, uint64_t job, uint32_t attempt)
{
	if (*n == *cap) {
		size_t c = *cap == 0 ? 16 : *cap * 2;
		struct marker *g = realloc(*v, c * sizeof(*g));
		if (g == NULL)
			return ING_ENOMEM;
		*v = g;
		*cap = c;
	}
	(*v)[(*n)++] = (struct marker){job, attempt};
	return 0;
}

static int write_all(int fd, const uint8_t *p, size_t len)
{
	while (len > 0) {
		ssize_t w = write(fd, p, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

/* Reads the journal into `live` (duplicates once), cutting a torn tail. */
static int load(struct worker_markers *m, struct ing_error *e)
{
	struct stat st;
	if (fstat(m->fd, &st) != 0)
		return ing_error_set(e, ING_EIO, "cannot stat %s: %s", m->path, strerror(errno));
	size_t size = (size_t)st.st_size;
	if (size < HEADER_LEN) {
		/* New (or torn while its header was written: nothing synced). */
		if (ftruncate(m->fd, 0) != 0 ||
		    write_all(m->fd, (const uint8_t *)WORKER_MARKERS_HEADER, HEADER_LEN) != 0 ||
		    fdatasync(m->fd) != 0)
			return ing_error_set(e, ING_EIO, "cannot write %s: %s", m->path,
			                     strerror(errno));
		return 0;
	}
	uint8_t *buf = malloc(size);
	if (buf == NULL)
		return ing_error_set(e, ING_ENOMEM, "out of memory reading %s", m->path);
	size_t got = 0;
	while (got < size) {
		ssize_t r = pread(m->fd, buf + got, size - got, (off_t)got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	int rv = 0;
	if (got != size) {
		rv = ing_error_set(e, ING_EIO, "cannot read %s", m->path);
	} else if (memcmp(buf, WORKER_MARKERS_HEADER, HEADER_LEN) != 0) {
		rv = ing_error_set(e, ING_EMALFORMED, "%s: not an attempt journal (bad header)",
		                   m->path);
	}
	size_t whole =
	    HEADER_LEN + (size - HEADER_LEN) / WORKER_MARKERS_RECORD * WORKER_MARKERS_RECORD;
	for (size_t off = HEADER_LEN; rv == 0 && off < whole; off += WORKER_MARKERS_RECORD) {
		uint64_t job = get_le(buf + off, 8);
		uint32_t attempt = (uint32_t)get_le(buf + off + 8, 4);
		if ((uint32_t)get_le(buf + off + 12, 4) != record_check(job, attempt)) {
			rv = ing_error_set(e, ING_EMALFORMED,
			                   "%s: damaged record at offset %zu (check mismatch)",
			                   m->path, off);
			break;
		}
		m->records++;
		if (find(m->live, m->nlive, job, attempt) < 0 &&
		    push(&m->live, &m->nlive, &m->live_cap, job, attempt) != 0)
			rv = ing_error_set(e, ING_ENOMEM, "out of memory reading %s", m->path);
	}
	free(buf);
	if (rv == 0 && whole != size) {
		ING_LOG_WARN("attempt journal: torn record cut off path=%s bytes=%zu", m->path,
		             size - whole);
		if (ftruncate(m->fd, (off_t)whole) != 0)
			rv = ing_error_set(e, ING_EIO, "cannot truncate %s: %s", m->path,
			                   strerror(errno));
	}
	return rv;
}

/* Takes the markers of the layout before the journal, then removes them. */
static int import_legacy(struct worker_markers *m, struct ing_error *e)
{
	DIR *d = opendir(m->legacy);
	if (d == NULL)
		return 0;
	struct dirent *de;
	int rv = 0;
	while (rv == 0 && (de = readdir(d)) != NULL) {
		unsigned long long job;
		unsigned attempt;
		int used = 0;
		if (sscanf(de->d_name, "%llu-a%u%n", &job, &attempt, &used) == 2 &&
		    de->d_name[used] == '\0')
			rv = worker_markers_add(m, job, attempt) < 0 ? ING_ENOMEM : 0;
	}
	closedir(d);
	if (rv == 0)
		rv = worker_markers_sync(m, e);
	else
		ing_error_set(e, rv, "out of memory importing %s", m->legacy);
	if (rv != 0)
		return rv;
	d = opendir(m->legacy);
	if (d != NULL) {
		char p[900];
		while ((de = readdir(d)) != NULL) {
			if (de->d_name[0] == '.')
				continue;
			snprintf(p, sizeof(p), "%s/%s", m->legacy, de->d_name);
			unlink(p);
		}
		closedir(d);
	}
	if (rmdir(m->legacy) != 0)
		ING_LOG_WARN("attempt markers: cannot remove the old directory path=%s errno=%d",
		             m->legacy, errno);
	return 0;
}

int worker_markers_open(const char *work_dir, struct worker_markers **out, struct ing_error *e)
{
	struct worker_markers *m = calloc(1, sizeof(*m));
	if (m == NULL)
		return ing_error_set(e, ING_ENOMEM, "out of memory");
	m->fd = -1;
	int k1 = snprintf(m->path, sizeof(m->path), "%s/%s", work_dir, WORKER_MARKERS_FILE);
	snprintf(m->tmp, sizeof(m->tmp), "%s.tmp", m->path);
	int k2 =
	    snprintf(m->legacy, sizeof(m->legacy), "%s/%s", work_dir, WORKER_MARKERS_LEGACY_DIR);
	int rv = 0;
	if (k1 < 0 || (size_t)k1 >= sizeof(m->path) || k2 < 0 || (size_t)k2 >= sizeof(m->legacy))
		rv = ing_error_set(e, ING_EINVAL, "work directory path too long: %s", work_dir);
	if (rv == 0)
		rv = ing_mkdirs(work_dir, 0700, e);
	if (rv == 0) {
		m->fd = open(m->path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (m->fd < 0)
			rv = ing_error_set(e, ING_EIO, "cannot open %s: %s", m->path,
			                   strerror(errno));
	}
	if (rv == 0)
		rv = load(m, e);
	if (rv == 0)
		rv = import_legacy(m, e);
	if (rv != 0) {
		worker_markers_close(m);
		return rv;
	}
	*out = m;
	return 0;
}

void worker_markers_close(struct worker_markers *m)
{
	if (m == NULL)
		return;
	if (m->fd >= 0)
		close(m->fd);
	free(m->live);
	free(m->pend);
	free(m);
}

bool worker_markers_has(const struct worker_markers *m, uint64_t job, uint32_t attempt)
{
	return find(m->live, m->nlive, job, attempt) >= 0 ||
	       find(m->pend, m->npend, job, attempt) >= 0;
}

int worker_markers_add(struct worker_markers *m, uint64_t job, uint32_t attempt)
{
	if (worker_markers_has(m, job, attempt))
		return 1;
	return push(&m->pend, &m->npend, &m->pend_cap, job, attempt);
}

int worker_markers_sync(struct worker_markers *m, struct ing_error *e)
{
	if (m->npend == 0)
		return 0;
	size_t len = m->npend * WORKER_MARKERS_RECORD;
	uint8_t stackbuf[64 * WORKER_MARKERS_RECORD];
	uint8_t *buf = len <= sizeof(stackbuf) ? stackbuf : malloc(len);
	int rv = 0;
	if (buf == NULL) {
		rv = ing_error_set(e, ING_EIO, "out of memory writing %s", m->path);
	} else {
		for (size_t i = 0; i < m->npend; i++)
			encode(buf + i * WORKER_MARKERS_RECORD, &m->pend[i]);
		if (write_all(m->fd, buf, len) != 0 || fdatasync(m->fd) != 0)
			rv = ing_error_set(e, ING_EIO, "cannot write %s: %s", m->path,
			                   strerror(errno));
		if (buf != stackbuf)
			free(buf);
	}
	for (size_t i = 0; rv == 0 && i < m->npend; i++)
		if (push(&m->live, &m->nlive, &m->live_cap, m->pend[i].job, m->pend[i].attempt) !=
		    0)
			rv = ing_error_set(e, ING_EIO, "out of memory recording attempts");
	if (rv != 0) {
		/* Back to the records before this write (a part may be there). */
		if (ftruncate(m->fd, (off_t)(HEADER_LEN + m->records * WORKER_MARKERS_RECORD)) != 0)
			ING_LOG_WARN("attempt journal: cannot cut a failed append path=%s errno=%d",
			             m->path, errno);
		for (size_t i = 0; i < m->npend; i++) {
			ssize_t at = find(m->live, m->nlive, m->pend[i].job, m->pend[i].attempt);
			if (at >= 0)
				m->live[at] = m->live[--m->nlive];
		}
		m->npend = 0;
		return rv;
	}
	m->records += m->npend;
	m->npend = 0;
	return 0;
}

/* The live records into the temporary file, synced, renamed over the
 * journal; the journal's descriptor then points at the new file. */
static int compact(struct worker_markers *m)
{
	int fd = open(m->tmp, O_RDWR | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -1;
	size_t len = HEADER_LEN + m->nlive * WORKER_MARKERS_RECORD;
	uint8_t *buf = malloc(len);
	int rv = buf == NULL ? -1 : 0;
	if (rv == 0) {
		memcpy(buf, WORKER_MARKERS_HEADER, HEADER_LEN);
		for (size_t i = 0; i < m->nlive; i++)
			encode(buf + HEADER_LEN + i * WORKER_MARKERS_RECORD, &m->live[i]);
		rv = write_all(fd, buf, len) == 0 && fdatasync(fd) == 0 &&
		             rename(m->tmp, m->path) == 0
		         ? 0
		         : -1;
		free(buf);
	}
	if (rv != 0) {
		close(fd);
		unlink(m->tmp);
		return -1;
	}
	close(m->fd);
	m->fd = fd;
	m->records = m->nlive;
	return 0;
}

void worker_markers_remove(struct worker_markers *m, uint64_t job, uint32_t attempt)
{
	ssize_t at = find(m->pend, m->npend, job, attempt);
	if (at >= 0)
		m->pend[at] = m->pend[--m->npend];
	at = find(m->live, m->nlive, job, attempt);
	if (at < 0)
		return;
	m->live[at] = m->live[--m->nlive];
	if (m->nlive == 0 && m->npend == 0) {
		if (ftruncate(m->fd, HEADER_LEN) == 0)
			m->records = 0;
		else
			ING_LOG_WARN("attempt journal: cannot empty path=%s errno=%d", m->path,
			             errno);
		return;
	}
	if (m->records - m->nlive >= WORKER_MARKERS_COMPACT_AT && m->npend == 0 && compact(m) != 0)
		ING_LOG_WARN("attempt journal: cannot compact path=%s errno=%d", m->path, errno);
}

size_t worker_markers_count(const struct worker_markers *m)
{
	return m->nlive + m->npend;
}

void worker_markers_at(const struct worker_markers *m, size_t i, uint64_t *job, uint32_t *attempt)
{
	const struct marker *k = i < m->nlive ? &m->live[i] : &m->pend[i - m->nlive];
	*job = k->job;
	*attempt = k->attempt;
}

size_t worker_markers_records(const struct worker_markers *m)
{
	return m->records;
}
