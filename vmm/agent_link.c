/* The host side of the agent link: the frames to and from the guest
 * agent on its console port (readiness, the clone's identity, power
 * intent, the time after a resume, guest log lines), and sessions: a
 * process in the guest per SSH channel, with its own console ports and
 * its exit status queued for the owner. Every message comes from the
 * guest and is hostile; what it can make us log goes through the VM's
 * limiter. */
#include "vmm/vm_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sodium.h>

#include "common/clock.h"

static uint64_t since_start(const struct vm *vm)
{
	return clock_mono_ns() - clock_ts_ns(&vm->started);
}

/* Lock held. Send the identity if we have one and the agent is ready. */
static void send_identity(struct vm *vm)
{
	uint8_t frame[AGENT_HDR_LEN + AGENT_MAX_PAYLOAD];
	uint8_t payload[AGENT_MAX_PAYLOAD];
	int n;

	if (!vm->have_identity || vm->identity_sent || !vm->agent_ready ||
	    vm->agent_fd < 0)
		return;
	n = agent_identity_encode(&vm->identity, payload, sizeof(payload));
	if (n >= 0)
		n = agent_encode(AGENT_MSG_IDENTITY, payload, (size_t)n, frame,
				 sizeof(frame));
	sodium_memzero(payload, sizeof(payload));
	sodium_memzero(&vm->identity, sizeof(vm->identity));
	vm->identity_sent = true;
	/* One small frame into an empty socket buffer: it fits. */
	if (n < 0 || send(vm->agent_fd, frame, (size_t)n, MSG_NOSIGNAL) != n)
		log_limit_warnx(&vm->glog, "agent: could not send the "
				"identity");
	sodium_memzero(frame, sizeof(frame));
}

/* Lock held. One frame to the agent; small, into a socket buffer that the
 * I/O thread keeps drained into the guest. */
static int agent_send(struct vm *vm, uint8_t type, const void *p, size_t len)
{
	uint8_t frame[AGENT_HDR_LEN + AGENT_MAX_PAYLOAD];
	int n = agent_encode(type, p, len, frame, sizeof(frame));

	if (n < 0)
		return n;
	if (vm->agent_fd < 0 ||
	    send(vm->agent_fd, frame, (size_t)n, MSG_NOSIGNAL) != n)
		return -EPIPE;
	return 0;
}

static void session_exited(struct vm *vm, const struct agent_msg *m)
{
	uint32_t id;

	if (m->len != 6) {
		log_limit_warnx(&vm->glog, "agent: bad exit message");
		return;
	}
	id = (uint32_t)agent_le_get(m->payload, 4);
	pthread_mutex_lock(&vm->lock);
	for (unsigned n = 0; n < VCON_MAX_PORTS; n++)
		if (vm->port_session[n] == id)
			vm->port_session[n] = 0;
	if (vm->nexits < sizeof(vm->exits) / sizeof(vm->exits[0])) {
		vm->exits[vm->nexits].id = id;
		vm->exits[vm->nexits].status =
			(uint16_t)(m->payload[4] << 8 | m->payload[5]);
		vm->nexits++;
	}
	pthread_mutex_unlock(&vm->lock);
	vm_notify(vm);
}

void vm_agent_send_time(struct vm *vm)
{
	uint8_t p[12], frame[AGENT_HDR_LEN + sizeof(p)];
	struct timespec ts;
	int n;

	clock_gettime(CLOCK_REALTIME, &ts);
	agent_le_put(p, (uint64_t)ts.tv_sec, 8);
	agent_le_put(p + 8, (uint64_t)ts.tv_nsec, 4);
	n = agent_encode(AGENT_MSG_TIME, p, sizeof(p), frame, sizeof(frame));
	if (n < 0 || send(vm->agent_fd, frame, (size_t)n, MSG_NOSIGNAL) != n)
		log_warnx("agent: could not send the time");
}

/* A guest may say what it likes, but not flood the host's log: every
 * line below goes through the VM's limiter (common/log.h). A guest can
 * repeat any message, READY and ACK included, as often as it likes. */
static void guest_log(struct vm *vm, const struct agent_msg *m)
{
	log_limit_info(&vm->glog, "guest: %.*s",
		       (int)(m->len > 200 ? 200 : m->len), m->payload);
}

static void agent_message(struct vm *vm, const struct agent_msg *m)
{
	switch ((enum agent_msg_type)m->type) {
	case AGENT_MSG_READY:
		pthread_mutex_lock(&vm->lock);
		if (!vm->agent_ready) {
			vm->agent_ready = true;
			vm->stats.ready_ns = since_start(vm);
		}
		send_identity(vm);
		pthread_mutex_unlock(&vm->lock);
		log_limit_info(&vm->glog, "guest agent ready (%.*s) %.1f s "
			       "after start", (int)(m->len > 64 ? 64 : m->len),
			       m->payload, (double)vm->stats.ready_ns / 1e9);
		vm_notify(vm);
		return;
	case AGENT_MSG_POWER:
		if (m->len != 1 || m->payload[0] > AGENT_POWER_REBOOT) {
			log_limit_warnx(&vm->glog, "agent: bad power message");
			return;
		}
		vm->power_intent = m->payload[0];
		if (m->payload[0] == AGENT_POWER_OFF)
			vm_end(vm, VM_EXIT_POWEROFF, "guest powered off");
		return;
	case AGENT_MSG_ACK:
		if (m->len < 1 || m->payload[0] != 0) {
			log_limit_warnx(&vm->glog, "agent refused the "
					"identity: %.*s", m->len > 1 ?
					(int)(m->len > 200 ? 199 : m->len - 1) :
					0, m->payload + 1);
			return;
		}
		pthread_mutex_lock(&vm->lock);
		vm->identity_acked = true;
		vm->stats.ack_ns = since_start(vm);
		pthread_mutex_unlock(&vm->lock);
		log_limit_info(&vm->glog, "guest identity applied %.1f ms "
			       "after start (guest: %.*s)",
			       (double)vm->stats.ack_ns / 1e6, m->len > 1 ?
			       (int)(m->len > 64 ? 63 : m->len - 1) : 0,
			       m->payload + 1);
		vm_notify(vm);
		return;
	case AGENT_MSG_EXITED:
		session_exited(vm, m);
		return;
	case AGENT_MSG_IDENTITY:
	case AGENT_MSG_TIME:
	case AGENT_MSG_SPAWN:
	case AGENT_MSG_RESIZE:
	case AGENT_MSG_SIGNAL:
	case AGENT_MSG_LOG:
		guest_log(vm, m);
		return;
	case AGENT_MSG_MAX:
		break;
	}
	log_limit_warnx(&vm->glog, "agent: unexpected message type %u",
			m->type);
}

void vm_agent_input(struct vm *vm)
{
	uint8_t buf[4096];
	ssize_t n = read(vm->agent_fd, buf, sizeof(buf));
	size_t off = 0, used;
	int r;

	if (n <= 0) {
		if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
			close(vm->agent_fd);
			vm->agent_fd = -1;
		}
		return;
	}
	while (off < (size_t)n) {
		r = agent_decode(&vm->dec, buf + off, (size_t)n - off, &used,
				 &vm->msg);
		off += used;
		if (r < 0) {
			/* A broken stream from the guest: stop listening to
			 * it, the VM itself carries on. */
			log_limit_warnx(&vm->glog, "agent: protocol error: "
					"%s; agent port closed", strerror(-r));
			close(vm->agent_fd);
			vm->agent_fd = -1;
			return;
		}
		if (r == 1)
			agent_message(vm, &vm->msg);
	}
}

/* ---- the identity ------------------------------------------------------ */

int vm_identity_make(struct agent_identity *id, const char *user,
		     uint32_t uid, const char *home, const char *hostname)
{
	static const char hex[] = "0123456789abcdef";
	uint8_t mid[16];
	struct timespec ts;
	uint8_t probe[AGENT_MAX_PAYLOAD];

	memset(id, 0, sizeof(*id));
	randombytes_buf(id->entropy, 64);
	id->entropy_len = 64;
	randombytes_buf(mid, sizeof(mid));
	for (unsigned i = 0; i < sizeof(mid); i++) {
		id->machine_id[2 * i] = hex[mid[i] >> 4];
		id->machine_id[2 * i + 1] = hex[mid[i] & 15];
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	id->sec = (uint64_t)ts.tv_sec;
	id->nsec = (uint32_t)ts.tv_nsec;
	snprintf(id->user, sizeof(id->user), "%s", user);
	snprintf(id->home, sizeof(id->home), "%s", home);
	snprintf(id->hostname, sizeof(id->hostname), "%s", hostname);
	id->uid = uid;
	/* The same checks the agent makes, here where they can be reported. */
	if (agent_identity_encode(id, probe, sizeof(probe)) < 0) {
		sodium_memzero(id, sizeof(*id));
		return -EINVAL;
	}
	return 0;
}

int vm_set_identity(struct vm *vm, const struct agent_identity *id)
{
	pthread_mutex_lock(&vm->lock);
	if (vm->have_identity) {
		pthread_mutex_unlock(&vm->lock);
		return -EBUSY;
	}
	vm->identity = *id;
	vm->have_identity = true;
	send_identity(vm);
	pthread_mutex_unlock(&vm->lock);
	return 0;
}

bool vm_identity_acked(const struct vm *vm)
{
	return __atomic_load_n(&vm->identity_acked, __ATOMIC_ACQUIRE);
}

/* ---- sessions ---------------------------------------------------------- */

/* Lock held. A port for session id: free, and closed in the guest. */
static int claim_port(struct vm *vm, uint32_t id, int *host_fd)
{
	char name[VCON_NAME_MAX];
	int sv[2];

	for (unsigned n = 2; n < VCON_MAX_PORTS; n++) {
		bool open, added = vcon_port_state(&vm->con, n, &open);

		if (vm->port_session[n] || open)
			continue;
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
			return -errno;
		fcntl(sv[1], F_SETFL, O_NONBLOCK);
		if (added) {
			vcon_detach_port(&vm->con, n);
			if (vm->port_fd[n] >= 0)
				close(vm->port_fd[n]);
			vcon_attach_port(&vm->con, n, sv[1], sv[1]);
		} else {
			snprintf(name, sizeof(name), "clone.s%u", n);
			vcon_add_port(&vm->con, n, name, false, sv[1], sv[1]);
		}
		vm->port_fd[n] = sv[1];
		vm->port_session[n] = id;
		*host_fd = sv[0];
		return (int)n;
	}
	return -EBUSY;
}

int vm_session_open(struct vm *vm, struct agent_spawn *sp, int *in_fd,
		    int *io_fd, int *err_fd)
{
	uint8_t payload[AGENT_MAX_PAYLOAD];
	int io, err = -1, in = -1, n;

	*in_fd = *io_fd = *err_fd = -1;
	if (!sp->session)
		return -EINVAL;
	pthread_mutex_lock(&vm->lock);
	io = claim_port(vm, sp->session, io_fd);
	if (io >= 0 && !sp->pty) {
		err = claim_port(vm, sp->session, err_fd);
		if (err >= 0)
			in = claim_port(vm, sp->session, in_fd);
	}
	if (io < 0 || (!sp->pty && (err < 0 || in < 0))) {
		n = io < 0 ? io : err < 0 ? err : in;
		goto fail;
	}
	sp->io_port = (uint8_t)io;
	sp->err_port = err;
	sp->in_port = in;
	n = agent_spawn_encode(sp, payload, sizeof(payload));
	if (n >= 0)
		n = agent_send(vm, AGENT_MSG_SPAWN, payload, (size_t)n);
	log_debug("session %u: ports %d/%d, spawn sent: %d", sp->session, io,
		  err, n);
	if (n < 0)
		goto fail;
	pthread_mutex_unlock(&vm->lock);
	return 0;
fail:
	for (unsigned p = 0; p < VCON_MAX_PORTS; p++)
		if (vm->port_session[p] == sp->session)
			vm->port_session[p] = 0;
	pthread_mutex_unlock(&vm->lock);
	if (*in_fd >= 0)
		close(*in_fd);
	if (*io_fd >= 0)
		close(*io_fd);
	if (*err_fd >= 0)
		close(*err_fd);
	*in_fd = *io_fd = *err_fd = -1;
	return n;
}

int vm_session_resize(struct vm *vm, uint32_t id, uint16_t rows,
		      uint16_t cols)
{
	uint8_t p[8];
	int r;

	agent_le_put(p, id, 4);
	agent_le_put(p + 4, rows, 2);
	agent_le_put(p + 6, cols, 2);

	pthread_mutex_lock(&vm->lock);
	r = agent_send(vm, AGENT_MSG_RESIZE, p, sizeof(p));
	pthread_mutex_unlock(&vm->lock);
	return r;
}

int vm_session_signal(struct vm *vm, uint32_t id, int sig)
{
	uint8_t p[5];
	int r;

	agent_le_put(p, id, 4);
	p[4] = (uint8_t)sig;

	pthread_mutex_lock(&vm->lock);
	r = agent_send(vm, AGENT_MSG_SIGNAL, p, sizeof(p));
	pthread_mutex_unlock(&vm->lock);
	return r;
}

bool vm_session_exit(struct vm *vm, uint32_t *id, uint16_t *status)
{
	bool got = false;

	pthread_mutex_lock(&vm->lock);
	if (vm->nexits) {
		*id = vm->exits[0].id;
		*status = vm->exits[0].status;
		memmove(&vm->exits[0], &vm->exits[1],
			--vm->nexits * sizeof(vm->exits[0]));
		got = true;
	}
	pthread_mutex_unlock(&vm->lock);
	return got;
}
