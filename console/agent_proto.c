#include "console/agent_proto.h"

#include <errno.h>
#include <string.h>

void agent_dec_init(struct agent_dec *d)
{
	memset(d, 0, sizeof(*d));
}

static int check_hdr(const uint8_t *h, uint16_t *len)
{
	if (h[0] != AGENT_PROTO_VERSION)
		return -EPROTO;
	if (h[1] == 0 || h[1] >= AGENT_MSG_MAX)
		return -EBADMSG;
	*len = (uint16_t)(h[2] | h[3] << 8);
	if (*len > AGENT_MAX_PAYLOAD)
		return -EMSGSIZE;
	return 0;
}

int agent_decode(struct agent_dec *d, const uint8_t *in, size_t len,
		 size_t *used, struct agent_msg *msg)
{
	size_t i = 0;
	uint16_t plen = 0;
	int r;

	*used = 0;
	if (d->error)
		return d->error;
	while (i < len) {
		if (d->have < AGENT_HDR_LEN) {
			d->hdr[d->have++] = in[i++];
			if (d->have < AGENT_HDR_LEN)
				continue;
			r = check_hdr(d->hdr, &plen);
			if (r < 0) {
				d->error = r;
				*used = i;
				return r;
			}
			msg->type = d->hdr[1];
			msg->len = plen;
		} else {
			size_t off = d->have - AGENT_HDR_LEN;
			size_t n = msg->len - off;

			if (n > len - i)
				n = len - i;
			memcpy(msg->payload + off, in + i, n);
			d->have += n;
			i += n;
		}
		if (d->have == AGENT_HDR_LEN + (size_t)msg->len) {
			d->have = 0;
			*used = i;
			return 1;
		}
	}
	*used = i;
	return 0;
}

int agent_encode(uint8_t type, const void *payload, size_t len, uint8_t *out,
		 size_t outlen)
{
	if (type == 0 || type >= AGENT_MSG_MAX)
		return -EBADMSG;
	if (len > AGENT_MAX_PAYLOAD || outlen < AGENT_HDR_LEN + len)
		return -EMSGSIZE;
	out[0] = AGENT_PROTO_VERSION;
	out[1] = type;
	out[2] = (uint8_t)(len & 0xff);
	out[3] = (uint8_t)(len >> 8);
	if (len)
		memcpy(out + AGENT_HDR_LEN, payload, len);
	return (int)(AGENT_HDR_LEN + len);
}
