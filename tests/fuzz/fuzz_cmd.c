/*
 * fuzz_cmd.c - libFuzzer driver for the command codec (node/sm/cmd.c).
 *
 * Any input must decode or fail cleanly.  What decodes must re-encode, the
 * re-encoding must decode, and encoding that again must give the same bytes
 * (encode . decode is a fixed point): otherwise two nodes could disagree on
 * what an entry says.  A mismatch aborts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "node/sm/cmd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	msgpack_zone *z = msgpack_zone_new(4096);
	struct ing_error e;
	struct cmd c, c2;
	struct mp_out o1, o2;

	if (z == NULL)
		return 0;
	mp_out_init(&o1);
	mp_out_init(&o2);
	if (cmd_decode(data, size, z, &c, &e) != 0)
		goto out;
	if (cmd_encode(&c, &o1, &e) != 0)
		abort(); /* a decoded command is valid, so it must encode */
	if (cmd_decode(o1.data, o1.len, z, &c2, &e) != 0)
		abort();
	if (cmd_encode(&c2, &o2, &e) != 0)
		abort();
	if (o1.len != o2.len || memcmp(o1.data, o2.data, o1.len) != 0)
		abort();
out:
	mp_out_free(&o2);
	mp_out_free(&o1);
	msgpack_zone_free(z);
	return 0;
}
