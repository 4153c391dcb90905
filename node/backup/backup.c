/*
 * backup.c - cluster.snapshot and cluster.snapshot_read (docs/api.md
 * "Backups"): a consistent copy of the replicated state, downloaded in
 * pieces.
 *
 * cluster.snapshot is a read served by the ready leader after its barrier,
 * so every write acknowledged before it is applied there.  The leader
 * commits its apply batch (node_flush) and notes its applied index, then a
 * libuv pool thread copies the store (store_snapshot_copy_buf: LMDB's
 * compacting copy in a read transaction of its own, while the loop goes on
 * applying) and builds the snapshot file around it (header and SHA-256,
 * backup.h).  The copy holds at least every entry up to the noted index.
 * The file is kept in memory under a random id and its size and SHA-256
 * are the reply; cluster.snapshot_read returns pieces of it (served by the
 * leader, like heartbeats: followers forward it).
 *
 * Bounds: at most MAX_HELD files at once (another request is refused with
 * `conflict`); a file not read for HELD_IDLE_MS is dropped at the next
 * snapshot operation, and all are dropped when the node stops.  A new
 * leader has none: a download that spans a leader change fails with
 * `not_found` and is started again.
 */
#include <inttypes.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/encode.h"
#include "node/api/view.h"
#include "node/backup/backup.h"
#include "node/member/member.h"
#include "rpc/args.h"
#include "storage/store.h"

#define MAX_HELD      2
#define HELD_IDLE_MS  120000u
#define PIECE_DEFAULT (1u << 20)
#define FRAME_MARGIN  4096u

struct node_snapshot {
	struct node_snapshot *next;
	char id[33];
	uint8_t *file;
	size_t len;
	char sha256[65]; /* of the whole file, hex */
	uint64_t applied_index;
	uint64_t created_at_ms;
	uint64_t last_used_ms;
};

struct backup {
	struct node *n;
	struct node_snapshot *held; /* newest first */
};

struct copy_work {
	uv_work_t req;
	struct node *n;
	struct rpc_call *call;
	struct backup_header h;
	uint8_t *file;
	size_t len;
	uint8_t sum[32];
	int rv;
};

static void snapshot_free(struct node_snapshot *s)
{
	free(s->file);
	free(s);
}

/* Drops idle files (all once the node stops); returns how many are held. */
static unsigned expire(struct backup *b)
{
	uint64_t now = node_now_ms();
	unsigned held = 0;
	for (struct node_snapshot **pp = &b->held; *pp != NULL;) {
		struct node_snapshot *s = *pp;
		if (now - s->last_used_ms > HELD_IDLE_MS || node_stopping(b->n)) {
			ING_LOG_INFO("snapshot dropped id=%s bytes=%zu", s->id, s->len);
			*pp = s->next;
			snapshot_free(s);
		} else {
			held++;
			pp = &s->next;
		}
	}
	return held;
}

int backup_new(struct node *n, struct backup **out)
{
	struct backup *b = calloc(1, sizeof(*b));
	if (b == NULL)
		return ING_ENOMEM;
	b->n = n;
	*out = b;
	return 0;
}

void backup_stop(struct backup *b)
{
	expire(b);
}

void backup_free(struct backup *b)
{
	while (b->held != NULL) {
		struct node_snapshot *s = b->held;
		b->held = s->next;
		snapshot_free(s);
	}
	free(b);
}

/* On a pool thread: touches only the store's LMDB env (store.h). */
static void copy_on_thread(uv_work_t *req)
{
	struct copy_work *w = req->data;
	void *data = NULL;
	size_t len = 0;
	w->rv = store_snapshot_copy_buf(node_store(w->n), &data, &len);
	if (w->rv != 0)
		return;
	uint8_t *file = malloc(BACKUP_HEADER_LEN + len);
	unsigned n = 0;
	if (file == NULL) {
		free(data);
		w->rv = ING_ENOMEM;
		return;
	}
	memcpy(file + BACKUP_HEADER_LEN, data, len);
	free(data);
	w->h.payload_len = len;
	if (EVP_Digest(file + BACKUP_HEADER_LEN, len, w->h.sha256, &n, EVP_sha256(), NULL) != 1) {
		free(file);
		w->rv = ING_ENOMEM;
		return;
	}
	backup_header_encode(&w->h, file);
	if (EVP_Digest(file, BACKUP_HEADER_LEN + len, w->sum, &n, EVP_sha256(), NULL) != 1) {
		free(file);
		w->rv = ING_ENOMEM;
		return;
	}
	w->file = file;
	w->len = BACKUP_HEADER_LEN + len;
}

static void copy_done(uv_work_t *req, int status)
{
	struct copy_work *w = req->data;
	struct node *n = w->n;
	struct backup *b = node_backup(n);
	struct node_snapshot *s = NULL;
	if (status != 0 && w->rv == 0)
		w->rv = ING_EUNAVAILABLE; /* cancelled */
	if (w->rv == 0 && !node_stopping(n)) {
		s = calloc(1, sizeof(*s));
		uint8_t rnd[16];
		if (s == NULL || RAND_bytes(rnd, sizeof(rnd)) != 1) {
			free(s);
			s = NULL;
			w->rv = ING_ENOMEM;
		} else {
			ing_hex_encode(rnd, sizeof(rnd), s->id);
			s->file = w->file;
			s->len = w->len;
			ing_hex_encode(w->sum, 32, s->sha256);
			s->applied_index = w->h.applied_index;
			s->created_at_ms = w->h.created_at_ms;
			s->last_used_ms = node_now_ms();
			s->next = b->held;
			b->held = s;
			w->file = NULL;
		}
	}
	free(w->file);
	if (s == NULL) {
		rpc_reply_error(w->call, w->rv != 0 ? w->rv : ING_EUNAVAILABLE,
		                "cannot copy the state: %s",
		                node_stopping(n) ? "the node is stopping" : ing_err_msg(w->rv));
	} else {
		ING_LOG_INFO("snapshot taken id=%s bytes=%zu applied_index=%" PRIu64, s->id, s->len,
		             s->applied_index);
		struct mp_out o;
		mp_out_init(&o);
		msgpack_pack_map(&o.pk, 5);
		view_key(&o.pk, "id");
		mp_pack_cstr(&o.pk, s->id);
		view_key(&o.pk, "size");
		msgpack_pack_uint64(&o.pk, s->len);
		view_key(&o.pk, "sha256");
		mp_pack_cstr(&o.pk, s->sha256);
		view_key(&o.pk, "applied_index");
		msgpack_pack_uint64(&o.pk, s->applied_index);
		view_key(&o.pk, "created_at");
		msgpack_pack_uint64(&o.pk, s->created_at_ms);
		if (mp_out_failed(&o) != 0)
			rpc_reply_error(w->call, ING_ENOMEM, "out of memory");
		else
			rpc_reply(w->call, o.data, o.len);
		mp_out_free(&o);
	}
	free(w);
	node_release(n);
}

void backup_op_snapshot(struct node *n, struct rpc_call *call)
{
	static const char *const known[] = {NULL};
	struct ing_error e;
	if (rpc_args_check_known(rpc_call_args(call), known, &e) != 0) {
		rpc_reply_error(call, e.code, "%s (a snapshot is always taken by the leader)",
		                e.msg);
		return;
	}
	if (expire(node_backup(n)) >= MAX_HELD) {
		rpc_reply_error(call, ING_ECONFLICT,
		                "%d snapshots are held for download already; retry within %u s",
		                MAX_HELD, HELD_IDLE_MS / 1000);
		return;
	}
	if (node_flush(n) != 0) {
		rpc_reply_error(call, ING_EIO, "cannot commit the applied entries");
		return;
	}
	struct copy_work *w = calloc(1, sizeof(*w));
	struct store_txn *t;
	if (w == NULL) {
		rpc_reply_error(call, ING_ENOMEM, "out of memory");
		return;
	}
	w->n = n;
	w->call = call;
	w->req.data = w;
	w->h.created_at_ms = node_now_ms();
	w->h.node_id = node_id(n);
	member_cluster_id(n, w->h.cluster_id);
	if (store_read_begin(node_store(n), &t) == 0) {
		store_applied_index(t, &w->h.applied_index);
		store_abort(t);
	}
	int rv = uv_queue_work(node_loop(n), &w->req, copy_on_thread, copy_done);
	if (rv != 0) {
		free(w);
		rpc_reply_error(call, ING_EUNAVAILABLE, "cannot start the copy: %s",
		                uv_strerror(rv));
		return;
	}
	node_hold(n);
}

void backup_op_snapshot_read(struct node *n, struct rpc_call *call)
{
	static const char *const known[] = {"id", "offset", "length", NULL};
	const msgpack_object *args = rpc_call_args(call);
	struct ing_error e;
	struct ing_str id;
	uint64_t offset = 0, length = PIECE_DEFAULT;
	const unsigned frame = node_cfg(n)->max_frame_bytes;
	uint64_t max = frame > 2 * FRAME_MARGIN ? frame - FRAME_MARGIN : FRAME_MARGIN;

	if (rpc_args_check_known(args, known, &e) != 0 ||
	    rpc_arg_str(args, "id", 32, true, &id, &e) != 0 ||
	    rpc_arg_u64(args, "offset", UINT64_MAX, true, &offset, &e) != 0 ||
	    rpc_arg_u64(args, "length", UINT64_MAX, false, &length, &e) != 0) {
		rpc_reply_error(call, e.code, "%s", e.msg);
		return;
	}
	struct backup *b = node_backup(n);
	expire(b);
	struct node_snapshot *s = b->held;
	while (s != NULL && !ing_str_eq_c(id, s->id))
		s = s->next;
	if (s == NULL) {
		rpc_reply_error(call, ING_ENOTFOUND,
		                "no snapshot '%.*s' on the leader (dropped after %u s without a "
		                "read, or the leader changed): take a new one",
		                ING_STR_FMT(id), HELD_IDLE_MS / 1000);
		return;
	}
	if (offset > s->len) {
		rpc_reply_error(call, ING_EINVAL,
		                "argument 'offset': %" PRIu64 " is past the end (%zu bytes)",
		                offset, s->len);
		return;
	}
	if (length == 0 || length > max)
		length = length == 0 ? PIECE_DEFAULT : max;
	if (length > s->len - offset)
		length = s->len - offset;
	s->last_used_ms = node_now_ms();
	struct mp_out o;
	mp_out_init(&o);
	mp_pack_bin(&o.pk, s->file + offset, (size_t)length);
	if (mp_out_failed(&o) != 0)
		rpc_reply_error(call, ING_ENOMEM, "out of memory");
	else
		rpc_reply(call, o.data, o.len);
	mp_out_free(&o);
}
