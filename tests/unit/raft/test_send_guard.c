/*
 * test_send_guard.c - raft/send_guard.c: a message to no known peer (no
 * server id, or no address: libraft 0.15's answer to an AppendEntries
 * whose write completed after a new term began) is refused with
 * RAFT_NOCONNECTION and never reaches libraft's send, which would take the
 * length of a NULL address; any other message reaches it unchanged, with
 * its request and callback.  The cluster tests run every node with the
 * wrapper.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <raft.h>

#include "raft/cons_internal.h"

static struct {
	unsigned calls;
	struct raft_io_send *req;
	const struct raft_message *m;
	raft_io_send_cb cb;
} sent;

static int fake_send(struct raft_io *io, struct raft_io_send *req, const struct raft_message *m,
                     raft_io_send_cb cb)
{
	(void)io;
	sent.calls++;
	sent.req = req;
	sent.m = m;
	sent.cb = cb;
	return 0;
}

static void send_cb(struct raft_io_send *req, int status)
{
	(void)req;
	(void)status;
}

static struct cons *wrapped(void)
{
	struct cons *c = calloc(1, sizeof(*c));
	assert_non_null(c);
	c->io.send = fake_send;
	cons_send_guard_wrap(c);
	memset(&sent, 0, sizeof(sent));
	return c;
}

static struct raft_message result_to(raft_id id, const char *address)
{
	struct raft_message m;
	memset(&m, 0, sizeof(m));
	m.type = RAFT_IO_APPEND_ENTRIES_RESULT;
	m.server_id = id;
	m.server_address = address;
	m.append_entries_result.term = 4;
	m.append_entries_result.last_log_index = 35;
	return m;
}

static void no_known_leader_refused(void **state)
{
	(void)state;
	struct cons *c = wrapped();
	struct raft_io_send req;
	struct raft_message none = result_to(0, NULL);
	struct raft_message no_address = result_to(2, NULL);
	assert_int_equal(c->io.send(&c->io, &req, &none, send_cb), RAFT_NOCONNECTION);
	assert_int_equal(c->io.send(&c->io, &req, &no_address, send_cb), RAFT_NOCONNECTION);
	assert_int_equal(sent.calls, 0);
	free(c);
}

static void known_peer_passes(void **state)
{
	(void)state;
	struct cons *c = wrapped();
	struct raft_io_send req;
	struct raft_message m = result_to(2, "127.0.0.1:7502");
	assert_int_equal(c->io.send(&c->io, &req, &m, send_cb), 0);
	assert_int_equal(sent.calls, 1);
	assert_ptr_equal(sent.req, &req);
	assert_ptr_equal(sent.m, &m);
	assert_ptr_equal(sent.cb, send_cb);
	free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(no_known_leader_refused),
	    cmocka_unit_test(known_peer_passes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
