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
	AGENT_MSG_IDENTITY = 4,	/* host: who this clone is; payload: identity TLVs */
	AGENT_MSG_ACK = 5,	/* guest: identity applied; payload: u8 0 = ok, then text */
	AGENT_MSG_TIME = 6,	/* host: set the clock (after a resume); payload:
				 * u64 seconds, u32 nanoseconds (LE) */
	AGENT_MSG_SPAWN = 7,	/* host: run a session; payload: spawn TLVs */
	AGENT_MSG_EXITED = 8,	/* guest: a session's process ended; payload:
				 * u32 session, u8 0 = exit code / 1 = signal,
				 * u8 code or signal number */
	AGENT_MSG_RESIZE = 9,	/* host: u32 session, u16 rows, u16 cols */
	AGENT_MSG_SIGNAL = 10,	/* host: u32 session, u8 signal number */
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

/* The identity a clone gets before any user process runs: fresh entropy,
 * the wall-clock time, and who it is. Encoded as TLVs (u8 tag, u16 length
 * LE, value), each tag exactly once. */
enum agent_id_tag {
	AGENT_ID_ENTROPY = 1,	/* AGENT_ENTROPY_MIN..AGENT_ENTROPY_MAX bytes */
	AGENT_ID_TIME = 2,	/* u64 seconds, u32 nanoseconds (LE) */
	AGENT_ID_HOSTNAME = 3,	/* [A-Za-z0-9.-], 1..63 */
	AGENT_ID_USER = 4,	/* ^[a-z_][a-z0-9_-]{0,31}$ */
	AGENT_ID_UID = 5,	/* u32, 0 or 1000..60000 */
	AGENT_ID_HOME = 6,	/* absolute path, [A-Za-z0-9._/-], no "..", 1..127 */
	AGENT_ID_MACHINE_ID = 7,	/* 32 lower-case hex digits */
	AGENT_ID_MAX
};

#define AGENT_ENTROPY_MIN 32
#define AGENT_ENTROPY_MAX 256

struct agent_identity {
	uint8_t entropy[AGENT_ENTROPY_MAX];
	size_t entropy_len;
	uint64_t sec;
	uint32_t nsec;
	char hostname[64];
	char user[33];
	uint32_t uid;
	char home[128];
	char machine_id[33];
};

/* Encode id as an IDENTITY payload into out. Returns the length, or
 * -EINVAL if a field is not valid (the same checks as decoding), or
 * -EMSGSIZE if out is too small. */
int agent_identity_encode(const struct agent_identity *id, uint8_t *out,
			  size_t outlen);
/* Decode and check an IDENTITY payload. 0, or -EBADMSG (malformed: a
 * truncated field, an unknown or repeated tag, a missing field) or
 * -EINVAL (a field out of its allowed form). */
int agent_identity_decode(const uint8_t *p, size_t len,
			  struct agent_identity *id);
/* A session to run as the clone's user: a login shell, or cmd with
 * `sh -c`; on a pseudo-terminal (pty) or with stdin/stdout on io_port and
 * stderr on err_port. Ports are virtio-console port numbers, found in the
 * guest by their names "clone.s<N>". Without a pty, stdin has a port of
 * its own (in_port): a virtio-console port has no half-close, and the
 * host closing it is the only EOF the guest can see. */
enum agent_spawn_tag {
	AGENT_SP_SESSION = 1,	/* u32, required */
	AGENT_SP_IO_PORT = 2,	/* u8, required */
	AGENT_SP_ERR_PORT = 3,	/* u8, not with a pty */
	AGENT_SP_PTY = 4,	/* u16 rows, u16 cols */
	AGENT_SP_TERM = 5,	/* TERM, [A-Za-z0-9.+_-], 1..63 */
	AGENT_SP_CMD = 6,	/* the command, 1..AGENT_CMD_MAX bytes, no NUL */
	AGENT_SP_IN_PORT = 7,	/* u8, stdin apart (its host side closing is
				 * EOF), not with a pty */
	AGENT_SP_ENV = 8,	/* "NAME=value" strings, each NUL-terminated:
				 * LANG and LC_* only, at most AGENT_ENV_MAX bytes */
	AGENT_SP_MAX
};

#define AGENT_CMD_MAX 3072
#define AGENT_ENV_MAX 512
#define AGENT_PORT_MIN 2
#define AGENT_PORT_MAX 63

struct agent_spawn {
	uint32_t session;
	uint8_t io_port;
	int err_port;		/* -1: none */
	int in_port;		/* -1: stdin on io_port */
	int pty;		/* rows/cols valid */
	uint16_t rows, cols;
	char term[64];		/* "" for none */
	char cmd[AGENT_CMD_MAX + 1];	/* "" for a login shell */
	char env[AGENT_ENV_MAX];	/* NUL-separated NAME=value */
	uint16_t env_len;
};

/* Whether NAME=value may be passed to a session: LANG or LC_*, a value of
 * printable ASCII without quotes or backslashes, at most 127 bytes. */
int agent_env_ok(const char *name, const char *value);

/* Encode/decode a SPAWN payload. Lengths and forms as above; encode
 * returns the length or -EINVAL/-EMSGSIZE, decode 0 or -EBADMSG/-EINVAL. */
int agent_spawn_encode(const struct agent_spawn *sp, uint8_t *out,
		       size_t outlen);
int agent_spawn_decode(const uint8_t *p, size_t len, struct agent_spawn *sp);

/* Little-endian fields of n bytes (n <= 8): every integer in a payload.
 * EXITED, RESIZE and SIGNAL start with the u32 session id. */
void agent_le_put(uint8_t *p, uint64_t v, unsigned n);
uint64_t agent_le_get(const uint8_t *p, unsigned n);

/* Whether name is a valid user name: ^[a-z_][a-z0-9_-]{0,31}$ */
int agent_valid_user(const char *name);

#endif
