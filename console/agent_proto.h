/* The agent protocol: messages between the VMM and the guest agent over
 * the agent's virtio-console port. Shared by both sides (the guest agent
 * is built from this same file).
 *
 * A frame is a 4-byte header then the payload:
 *   u8 version (AGENT_PROTO_VERSION), u8 type, u16 payload length (LE)
 * Payloads are at most AGENT_MAX_PAYLOAD bytes. Anything else is a
 * protocol error: the receiver stops reading the stream. */
#ifndef CONSOLE_AGENT_PROTO_H
#define CONSOLE_AGENT_PROTO_H

#include <stddef.h>
#include <stdint.h>

#define AGENT_PROTO_VERSION 1
#define AGENT_HDR_LEN 4
#define AGENT_MAX_PAYLOAD 4096

enum agent_msg_type {
	AGENT_MSG_READY = 1,	/* guest: up, shell started; payload: agent version text */
	AGENT_MSG_POWER = 2,	/* guest: going down; payload: 1 byte, AGENT_POWER_* */
	AGENT_MSG_LOG = 3,	/* guest: a line for the VMM's log; payload: text */
	AGENT_MSG_MAX
};

enum agent_power { AGENT_POWER_OFF = 0, AGENT_POWER_REBOOT = 1 };

struct agent_msg {
	uint8_t type;
	uint16_t len;
	uint8_t payload[AGENT_MAX_PAYLOAD];
};

/* A stream decoder: feed it bytes as they arrive. */
struct agent_dec {
	uint8_t hdr[AGENT_HDR_LEN];
	size_t have;		/* bytes of the current frame so far */
	int error;		/* sticky: once broken, always broken */
};

void agent_dec_init(struct agent_dec *d);

/* Consume bytes from in[0..len). Returns 1 when a whole message is in *msg
 * (*used says how many bytes were consumed; feed the rest again), 0 when
 * all of in was consumed and no message is complete yet, or a negative
 * errno: -EPROTO (bad version), -EBADMSG (unknown type), -EMSGSIZE
 * (payload too long). Errors are sticky. Pass the same msg on every call
 * until a message completes: a partial message is kept in it. */
int agent_decode(struct agent_dec *d, const uint8_t *in, size_t len,
		 size_t *used, struct agent_msg *msg);

/* Encode one frame into out. Returns its length, or -EMSGSIZE (payload too
 * long, or out too small), or -EBADMSG (type out of range). */
int agent_encode(uint8_t type, const void *payload, size_t len, uint8_t *out,
		 size_t outlen);

#endif
