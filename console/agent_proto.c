#include "console/agent_proto.h"

#include <errno.h>
#include <stdbool.h>
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

int agent_valid_user(const char *n)
{
	size_t len = strlen(n);

	if (len == 0 || len > 32 || !((n[0] >= 'a' && n[0] <= 'z') ||
				      n[0] == '_'))
		return 0;
	for (size_t i = 1; i < len; i++)
		if (!((n[i] >= 'a' && n[i] <= 'z') ||
		      (n[i] >= '0' && n[i] <= '9') || n[i] == '_' ||
		      n[i] == '-'))
			return 0;
	return 1;
}

static bool valid_hostname(const char *h)
{
	size_t len = strlen(h);

	if (len == 0 || len > 63 || h[0] == '-' || h[0] == '.')
		return false;
	for (size_t i = 0; i < len; i++)
		if (!((h[i] >= 'a' && h[i] <= 'z') ||
		      (h[i] >= 'A' && h[i] <= 'Z') ||
		      (h[i] >= '0' && h[i] <= '9') || h[i] == '-' ||
		      h[i] == '.'))
			return false;
	return true;
}

static bool valid_home(const char *p)
{
	size_t len = strlen(p);

	if (len == 0 || len > 127 || p[0] != '/' || strstr(p, ".."))
		return false;
	for (size_t i = 0; i < len; i++)
		if (!((p[i] >= 'a' && p[i] <= 'z') ||
		      (p[i] >= 'A' && p[i] <= 'Z') ||
		      (p[i] >= '0' && p[i] <= '9') || p[i] == '_' ||
		      p[i] == '-' || p[i] == '.' || p[i] == '/'))
			return false;
	return true;
}

static bool valid_machine_id(const char *m)
{
	if (strlen(m) != 32)
		return false;
	for (size_t i = 0; i < 32; i++)
		if (!((m[i] >= '0' && m[i] <= '9') || (m[i] >= 'a' && m[i] <= 'f')))
			return false;
	return true;
}

static bool valid_identity(const struct agent_identity *id)
{
	return id->entropy_len >= AGENT_ENTROPY_MIN &&
	       id->entropy_len <= AGENT_ENTROPY_MAX &&
	       id->nsec < 1000000000U && valid_hostname(id->hostname) &&
	       agent_valid_user(id->user) &&
	       (id->uid == 0 || (id->uid >= 1000 && id->uid <= 60000)) &&
	       valid_home(id->home) && valid_machine_id(id->machine_id);
}

static int put(uint8_t *out, size_t outlen, size_t *off, uint8_t tag,
	       const void *v, size_t len)
{
	if (len > UINT16_MAX || outlen - *off < 3 + len)
		return -EMSGSIZE;
	out[*off] = tag;
	out[*off + 1] = (uint8_t)(len & 0xff);
	out[*off + 2] = (uint8_t)(len >> 8);
	memcpy(out + *off + 3, v, len);
	*off += 3 + len;
	return 0;
}

void agent_le_put(uint8_t *p, uint64_t v, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

uint64_t agent_le_get(const uint8_t *p, unsigned n)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

int agent_identity_encode(const struct agent_identity *id, uint8_t *out,
			  size_t outlen)
{
	uint8_t t[12], u[4];
	size_t off = 0;
	int r = 0;

	if (!valid_identity(id))
		return -EINVAL;
	agent_le_put(t, id->sec, 8);
	agent_le_put(t + 8, id->nsec, 4);
	agent_le_put(u, id->uid, 4);
	r |= put(out, outlen, &off, AGENT_ID_ENTROPY, id->entropy,
		 id->entropy_len);
	r |= put(out, outlen, &off, AGENT_ID_TIME, t, sizeof(t));
	r |= put(out, outlen, &off, AGENT_ID_HOSTNAME, id->hostname,
		 strlen(id->hostname));
	r |= put(out, outlen, &off, AGENT_ID_USER, id->user, strlen(id->user));
	r |= put(out, outlen, &off, AGENT_ID_UID, u, sizeof(u));
	r |= put(out, outlen, &off, AGENT_ID_HOME, id->home, strlen(id->home));
	r |= put(out, outlen, &off, AGENT_ID_MACHINE_ID, id->machine_id,
		 strlen(id->machine_id));
	return r ? -EMSGSIZE : (int)off;
}

/* Copy a string field: no NUL inside, shorter than cap. */
static int get_str(char *dst, size_t cap, const uint8_t *v, size_t len)
{
	if (len >= cap || memchr(v, 0, len))
		return -EINVAL;
	memcpy(dst, v, len);
	dst[len] = 0;
	return 0;
}

int agent_identity_decode(const uint8_t *p, size_t len,
			  struct agent_identity *id)
{
	unsigned seen = 0;
	size_t off = 0;

	memset(id, 0, sizeof(*id));
	while (off < len) {
		uint8_t tag;
		size_t l;
		const uint8_t *v;
		int r = 0;

		if (len - off < 3)
			return -EBADMSG;
		tag = p[off];
		l = (size_t)p[off + 1] | (size_t)p[off + 2] << 8;
		v = p + off + 3;
		if (len - off - 3 < l)
			return -EBADMSG;
		if (tag == 0 || tag >= AGENT_ID_MAX || (seen & 1U << tag))
			return -EBADMSG;
		seen |= 1U << tag;
		switch ((enum agent_id_tag)tag) {
		case AGENT_ID_ENTROPY:
			if (l < AGENT_ENTROPY_MIN || l > AGENT_ENTROPY_MAX)
				return -EINVAL;
			memcpy(id->entropy, v, l);
			id->entropy_len = l;
			break;
		case AGENT_ID_TIME:
			if (l != 12)
				return -EINVAL;
			id->sec = agent_le_get(v, 8);
			id->nsec = (uint32_t)agent_le_get(v + 8, 4);
			break;
		case AGENT_ID_HOSTNAME:
			r = get_str(id->hostname, sizeof(id->hostname), v, l);
			break;
		case AGENT_ID_USER:
			r = get_str(id->user, sizeof(id->user), v, l);
			break;
		case AGENT_ID_UID:
			if (l != 4)
				return -EINVAL;
			id->uid = (uint32_t)agent_le_get(v, 4);
			break;
		case AGENT_ID_HOME:
			r = get_str(id->home, sizeof(id->home), v, l);
			break;
		case AGENT_ID_MACHINE_ID:
			r = get_str(id->machine_id, sizeof(id->machine_id), v,
				    l);
			break;
		case AGENT_ID_MAX:
			return -EBADMSG;
		}
		if (r < 0)
			return r;
		off += 3 + l;
	}
	if (seen != ((1U << AGENT_ID_MAX) - 2))
		return -EBADMSG;
	return valid_identity(id) ? 0 : -EINVAL;
}

static bool valid_term(const char *t)
{
	size_t len = strlen(t);

	if (len == 0 || len > 63)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!((t[i] >= 'a' && t[i] <= 'z') ||
		      (t[i] >= 'A' && t[i] <= 'Z') ||
		      (t[i] >= '0' && t[i] <= '9') || t[i] == '.' ||
		      t[i] == '+' || t[i] == '_' || t[i] == '-'))
			return false;
	return true;
}

int agent_env_ok(const char *name, const char *value)
{
	size_t n = strlen(name);

	if (strcmp(name, "LANG") != 0 &&
	    (n < 4 || n > 32 || strncmp(name, "LC_", 3) != 0))
		return 0;
	for (size_t i = 3; strcmp(name, "LANG") && i < n; i++)
		if (!((name[i] >= 'A' && name[i] <= 'Z') || name[i] == '_'))
			return 0;
	if (strlen(value) > 127)
		return 0;
	for (const char *v = value; *v; v++)
		if (*v < 0x20 || *v > 0x7e || *v == '"' || *v == '\\' ||
		    *v == '\'')
			return 0;
	return 1;
}

/* Each entry NAME=value, NUL-terminated, allowed by agent_env_ok. */
static bool valid_env(const char *env, size_t len)
{
	size_t off = 0;

	if (len > AGENT_ENV_MAX || (len && env[len - 1] != 0))
		return false;
	while (off < len) {
		char entry[AGENT_ENV_MAX], *eq;
		size_t l = strlen(env + off);

		memcpy(entry, env + off, l + 1);
		eq = strchr(entry, '=');
		if (!eq)
			return false;
		*eq = 0;
		if (!agent_env_ok(entry, eq + 1))
			return false;
		off += l + 1;
	}
	return true;
}

static bool valid_spawn(const struct agent_spawn *sp)
{
	if (!valid_env(sp->env, sp->env_len))
		return false;
	if (sp->io_port < AGENT_PORT_MIN || sp->io_port > AGENT_PORT_MAX)
		return false;
	if (sp->err_port != -1 &&
	    (sp->pty || sp->err_port < AGENT_PORT_MIN ||
	     sp->err_port > AGENT_PORT_MAX || sp->err_port == sp->io_port))
		return false;
	if (sp->pty && (!sp->rows || !sp->cols))
		return false;
	if (sp->in_port != -1 &&
	    (sp->pty || sp->in_port < AGENT_PORT_MIN ||
	     sp->in_port > AGENT_PORT_MAX || sp->in_port == sp->io_port ||
	     sp->in_port == sp->err_port))
		return false;
	if (sp->term[0] && !valid_term(sp->term))
		return false;
	return strlen(sp->cmd) <= AGENT_CMD_MAX;
}

int agent_spawn_encode(const struct agent_spawn *sp, uint8_t *out,
		       size_t outlen)
{
	uint8_t u[4], pty[4], port;
	size_t off = 0;
	int r = 0;

	if (!valid_spawn(sp))
		return -EINVAL;
	agent_le_put(u, sp->session, 4);
	r |= put(out, outlen, &off, AGENT_SP_SESSION, u, 4);
	r |= put(out, outlen, &off, AGENT_SP_IO_PORT, &sp->io_port, 1);
	if (sp->err_port != -1) {
		port = (uint8_t)sp->err_port;
		r |= put(out, outlen, &off, AGENT_SP_ERR_PORT, &port, 1);
	}
	if (sp->in_port != -1) {
		port = (uint8_t)sp->in_port;
		r |= put(out, outlen, &off, AGENT_SP_IN_PORT, &port, 1);
	}
	if (sp->pty) {
		agent_le_put(pty, sp->rows, 2);
		agent_le_put(pty + 2, sp->cols, 2);
		r |= put(out, outlen, &off, AGENT_SP_PTY, pty, 4);
	}
	if (sp->term[0])
		r |= put(out, outlen, &off, AGENT_SP_TERM, sp->term,
			 strlen(sp->term));
	if (sp->cmd[0])
		r |= put(out, outlen, &off, AGENT_SP_CMD, sp->cmd,
			 strlen(sp->cmd));
	if (sp->env_len)
		r |= put(out, outlen, &off, AGENT_SP_ENV, sp->env, sp->env_len);
	return r ? -EMSGSIZE : (int)off;
}

int agent_spawn_decode(const uint8_t *p, size_t len, struct agent_spawn *sp)
{
	unsigned seen = 0;
	size_t off = 0;

	memset(sp, 0, sizeof(*sp));
	sp->err_port = -1;
	sp->in_port = -1;
	while (off < len) {
		uint8_t tag;
		size_t l;
		const uint8_t *v;

		if (len - off < 3)
			return -EBADMSG;
		tag = p[off];
		l = (size_t)p[off + 1] | (size_t)p[off + 2] << 8;
		v = p + off + 3;
		if (len - off - 3 < l || tag == 0 || tag >= AGENT_SP_MAX ||
		    (seen & 1U << tag))
			return -EBADMSG;
		seen |= 1U << tag;
		switch ((enum agent_spawn_tag)tag) {
		case AGENT_SP_SESSION:
			if (l != 4)
				return -EINVAL;
			sp->session = (uint32_t)agent_le_get(v, 4);
			break;
		case AGENT_SP_IO_PORT:
			if (l != 1)
				return -EINVAL;
			sp->io_port = v[0];
			break;
		case AGENT_SP_ERR_PORT:
			if (l != 1)
				return -EINVAL;
			sp->err_port = v[0];
			break;
		case AGENT_SP_IN_PORT:
			if (l != 1)
				return -EINVAL;
			sp->in_port = v[0];
			break;
		case AGENT_SP_ENV:
			if (l == 0 || l > AGENT_ENV_MAX)
				return -EINVAL;
			memcpy(sp->env, v, l);
			sp->env_len = (uint16_t)l;
			break;
		case AGENT_SP_PTY:
			if (l != 4)
				return -EINVAL;
			sp->pty = 1;
			sp->rows = (uint16_t)agent_le_get(v, 2);
			sp->cols = (uint16_t)agent_le_get(v + 2, 2);
			break;
		case AGENT_SP_TERM:
			if (get_str(sp->term, sizeof(sp->term), v, l) < 0)
				return -EINVAL;
			break;
		case AGENT_SP_CMD:
			if (l == 0 ||
			    get_str(sp->cmd, sizeof(sp->cmd), v, l) < 0)
				return -EINVAL;
			break;
		case AGENT_SP_MAX:
			return -EBADMSG;
		}
		off += 3 + l;
	}
	if (!(seen & 1U << AGENT_SP_SESSION) || !(seen & 1U << AGENT_SP_IO_PORT))
		return -EBADMSG;
	return valid_spawn(sp) ? 0 : -EINVAL;
}
