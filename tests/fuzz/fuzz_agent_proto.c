/* libFuzzer harness: the agent protocol parsers of both sides. The host
 * (vmm/vm.c) and the guest agent (contrib/guest/agent.c) read the agent
 * port with the same stream decoder; the guest then decodes IDENTITY and
 * SPAWN payloads, which the host encodes.
 *
 * The input's first byte is a chunk size (1..256), the rest a byte stream
 * as it arrives on the port. The stream is decoded whole and in chunks:
 * both must give the same messages, each one the stream's own frame (it
 * encodes back to the same bytes), and the same error at the same place. Every payload then goes through
 * the IDENTITY and SPAWN decoders; what decodes must encode and decode
 * back to the same thing. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "console/agent_proto.h"
#include "tests/fuzz/fuzz_input.h"

struct seen {
	uint8_t type;
	uint16_t len;
	size_t end;	/* stream offset just past the message */
};

static struct agent_msg msg;

static void payload(const uint8_t *p, size_t len)
{
	static struct agent_identity id, id2;
	static struct agent_spawn sp, sp2;
	static uint8_t buf[AGENT_MAX_PAYLOAD];
	int r, n;

	r = agent_identity_decode(p, len, &id);
	if (r != 0 && r != -EBADMSG && r != -EINVAL)
		abort();
	if (r == 0) {
		n = agent_identity_encode(&id, buf, sizeof(buf));
		if (n < 0 || agent_identity_decode(buf, (size_t)n, &id2) != 0 ||
		    memcmp(&id, &id2, sizeof(id)) != 0)
			abort();
	}
	r = agent_spawn_decode(p, len, &sp);
	if (r != 0 && r != -EBADMSG && r != -EINVAL)
		abort();
	if (r == 0) {
		n = agent_spawn_encode(&sp, buf, sizeof(buf));
		if (n < 0 || agent_spawn_decode(buf, (size_t)n, &sp2) != 0 ||
		    memcmp(&sp, &sp2, sizeof(sp)) != 0)
			abort();
	}
}

/* A complete message as the decoder handed it over, end bytes into s:
 * the stream's own frame, which encoding it again gives back. */
static void check_msg(const uint8_t *s, size_t end)
{
	static uint8_t frame[AGENT_HDR_LEN + AGENT_MAX_PAYLOAD];
	size_t n = AGENT_HDR_LEN + (size_t)msg.len;

	if (msg.type == 0 || msg.type >= AGENT_MSG_MAX ||
	    msg.len > AGENT_MAX_PAYLOAD || end < n ||
	    agent_encode(msg.type, msg.payload, msg.len, frame,
			 sizeof(frame)) != (int)n ||
	    memcmp(frame, s + end - n, n) != 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fin in = { data, size };
	size_t chunk = 1 + fin_u8(&in), len = fin_left(&in);
	const uint8_t *s = in.p;
	struct seen *w = malloc((len / AGENT_HDR_LEN + 1) * sizeof(*w));
	struct agent_dec d;
	size_t off = 0, used, nw = 0, k = 0, err_at = 0;
	int r, err = 0;

	if (!w)
		abort();
	/* Whole. */
	agent_dec_init(&d);
	while (off < len) {
		r = agent_decode(&d, s + off, len - off, &used, &msg);
		if (used > len - off)
			abort();
		off += used;
		if (r < 0) {
			err = r;
			err_at = off;
			break;
		}
		if (r == 0) {
			if (off != len)
				abort();
			break;
		}
		check_msg(s, off);
		w[nw++] = (struct seen){ msg.type, msg.len, off };
		payload(msg.payload, msg.len);
	}
	if (err && (agent_decode(&d, s, len, &used, &msg) != err || used))
		abort();	/* errors are sticky */

	/* In chunks. */
	agent_dec_init(&d);
	r = 0;
	for (off = 0; off < len && r >= 0; off += chunk) {
		size_t n = len - off < chunk ? len - off : chunk, c = 0;

		while (c < n) {
			r = agent_decode(&d, s + off + c, n - c, &used, &msg);
			if (used > n - c)
				abort();
			c += used;
			if (r < 0) {
				if (r != err || off + c != err_at)
					abort();
				break;
			}
			if (r == 0) {
				if (c != n)
					abort();
				break;
			}
			check_msg(s, off + c);
			if (k >= nw || msg.type != w[k].type ||
			    msg.len != w[k].len || off + c != w[k].end)
				abort();
			k++;
		}
	}
	if (k != nw || (err && r != err))
		abort();
	free(w);
	return 0;
}
