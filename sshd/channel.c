/* Session channels: pty, exec, env and resize requests, the guest's
 * output under the client's window, and the exit status. */
#include "sshd/front.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"

void chan_free(struct chan *c)
{
	/* libssh keeps a closed channel until the session ends and still
	 * calls its callbacks (write-wontblock whenever the socket drains):
	 * they must not see c once it is freed. */
	ssh_remove_channel_callbacks(c->ch, &c->cb);
	if (c->in_fd >= 0) {
		if (c->in_polled)
			ev_del(c->in_fd);
		close(c->in_fd);
	}
	if (c->io_fd >= 0) {
		if (!c->out_paused)
			ev_del(c->io_fd);
		close(c->io_fd);
	}
	if (c->err_fd >= 0) {
		if (!c->out_paused)
			ev_del(c->err_fd);
		close(c->err_fd);
	}
	free(c->cmd);
	chan_in_free(c);
	free(c);
}

void chan_send_and_close(struct chan *c, const char *msg, int status)
{
	if (c->done)
		return;
	c->done = true;
	if (msg)
		ssh_channel_write_stderr(c->ch, msg, (uint32_t)strlen(msg));
	ssh_channel_request_send_exit_status(c->ch, status);
	ssh_channel_send_eof(c->ch);
	ssh_channel_close(c->ch);
}

void chan_maybe_finish(struct chan *c)
{
	static const char *const sig[32] = {
		[1] = "HUP", [2] = "INT", [3] = "QUIT", [4] = "ILL",
		[6] = "ABRT", [8] = "FPE", [9] = "KILL", [11] = "SEGV",
		[13] = "PIPE", [14] = "ALRM", [15] = "TERM",
	};

	if (c->done || !c->exited || c->io_fd >= 0 || c->err_fd >= 0)
		return;
	c->done = true;
	log_info("session %u: front-end overhead %.3f ms (request %.3f, "
		 "output %.3f over %llu reads)", c->id,
		 (double)(c->req_ns + c->out_ns) / 1e6, (double)c->req_ns / 1e6,
		 (double)c->out_ns / 1e6, (unsigned long long)c->out_reads);
	if (c->status >> 8) {
		int s = c->status & 0xff;

		ssh_channel_request_send_exit_signal(c->ch, s < 32 && sig[s] ?
						     sig[s] : "KILL", 0, "", "");
	} else {
		ssh_channel_request_send_exit_status(c->ch, c->status & 0xff);
	}
	ssh_channel_send_eof(c->ch);
	ssh_channel_close(c->ch);
}

/* Guest output goes out only as fast as the client's window allows: with
 * the window full, the session's output fds leave the poll set until it
 * opens again (and the guest's writes back up to the guest). */
void chan_output_pause(struct chan *c, bool pause)
{
	if (pause == c->out_paused)
		return;
	c->out_paused = pause;
	for (int i = 0; i < 2; i++) {
		int fd = i ? c->err_fd : c->io_fd;

		if (fd < 0)
			continue;
		if (pause)
			ev_del(fd);
		else
			ev_add(fd, POLLIN, chan_fd_event, c);
	}
}

static int cb_wontblock(ssh_session s, ssh_channel ch, uint32_t bytes,
			void *userdata)
{
	(void)s;
	(void)ch;
	if (bytes > 0)
		chan_output_pause(userdata, false);
	return 0;
}

int chan_fd_event(socket_t fd, int revents, void *userdata)
{
	struct chan *c = userdata;
	uint8_t buf[16384];
	uint32_t win = ssh_channel_window_size(c->ch);
	uint64_t t0;
	ssize_t n;

	(void)revents;
	if (win == 0 && !c->done) {
		chan_output_pause(c, true);
		return 0;
	}
	/* No more than the window takes: libssh then sends it all now. */
	n = read(fd, buf, win && win < sizeof(buf) ? win : sizeof(buf));
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (n <= 0) {
		ev_del(fd);
		close(fd);
		if (fd == c->io_fd)
			c->io_fd = -1;
		else
			c->err_fd = -1;
		chan_maybe_finish(c);
		return 0;
	}
	t0 = clock_mono_ns();
	if (fd == c->err_fd)
		ssh_channel_write_stderr(c->ch, buf, (uint32_t)n);
	else
		ssh_channel_write(c->ch, buf, (uint32_t)n);
	c->out_ns += clock_mono_ns() - t0;
	c->out_reads++;
	return 0;
}

void chan_try_open(struct chan *c)
{
	struct uvm *u = c->conn->vm;
	struct worker_msg m = { .type = WORKER_SESSION_OPEN };

	if (!c->requested || c->opened || c->done || !u)
		return;
	/* Its VM was lost after this connection authenticated: a new clone,
	 * as for a new login. */
	if (u->state == U_FREE && !vms_want(u)) {
		chan_send_and_close(c, CAPACITY_MSG, 1);
		return;
	}
	if (u->state != U_RUNNING)
		return;
	m.a = c->id;
	m.spawn.pty = c->pty;
	m.spawn.rows = c->rows ? c->rows : 24;
	m.spawn.cols = c->cols ? c->cols : 80;
	m.spawn.err_port = -1;
	snprintf(m.spawn.term, sizeof(m.spawn.term), "%s", c->term);
	if (c->cmd)
		snprintf(m.spawn.cmd, sizeof(m.spawn.cmd), "%s", c->cmd);
	memcpy(m.spawn.env, c->env, c->env_len);
	m.spawn.env_len = c->env_len;
	c->opened = true;	/* asked; the fds follow */
	/* Counted only when the VM was already up at the request: the wait
	 * for a clone is the VM's time, not the front-end's. */
	if (c->t_req)
		c->req_ns = clock_mono_ns() - c->t_req;
	if (vms_send(u, &m) < 0)
		chan_send_and_close(c, "clone: your VM is not answering\r\n",
				    255);
}

static void chan_start(struct chan *c, const char *cmd)
{
	if (c->requested)
		return;
	c->requested = true;
	if (cmd)
		c->cmd = strdup(cmd);
	if (c->conn->capacity || !c->conn->vm) {
		chan_send_and_close(c, CAPACITY_MSG, 1);
		return;
	}
	log_info("session %u for %s: %s%s", c->id, c->conn->user,
		 cmd ? "exec" : "shell", c->pty ? " with a pty" : "");
	c->opened = false;
	if (c->conn->vm->state == U_RUNNING)
		c->t_req = clock_mono_ns();
	chan_try_open(c);
}

static void cb_close(ssh_session s, ssh_channel ch, void *userdata)
{
	struct chan *c = userdata;
	struct uvm *u = c->conn->vm;

	(void)s;
	(void)ch;
	if (!c->done && c->requested && u && u->state == U_RUNNING) {
		struct worker_msg m = { .type = WORKER_SESSION_SIGNAL,
					.a = c->id, .b = SIGHUP };

		/* ignored: the channel is gone either way (vms_send()) */
		(void)vms_send(u, &m);
	}
	c->done = true;
}

static int cb_pty(ssh_session s, ssh_channel ch, const char *term, int w,
		  int h, int pw, int ph, void *userdata)
{
	struct chan *c = userdata;

	(void)s;
	(void)ch;
	(void)pw;
	(void)ph;
	c->pty = true;
	c->cols = (uint16_t)(w > 0 && w < 10000 ? w : 80);
	c->rows = (uint16_t)(h > 0 && h < 10000 ? h : 24);
	snprintf(c->term, sizeof(c->term), "%s", term);
	for (char *p = c->term; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' ||
		      *p == '+' || *p == '_'))
			*p = '_';
	return SSH_OK;
}

static int cb_resize(ssh_session s, ssh_channel ch, int w, int h, int pw,
		     int ph, void *userdata)
{
	struct chan *c = userdata;
	struct uvm *u = c->conn->vm;
	struct worker_msg m = { .type = WORKER_SESSION_RESIZE };

	(void)s;
	(void)ch;
	(void)pw;
	(void)ph;
	c->cols = (uint16_t)(w > 0 && w < 10000 ? w : 80);
	c->rows = (uint16_t)(h > 0 && h < 10000 ? h : 24);
	if (u && u->state == U_RUNNING && c->opened) {
		m.a = c->id;
		m.spawn.rows = c->rows;
		m.spawn.cols = c->cols;
		/* ignored: a lost resize keeps the old size (vms_send()) */
		(void)vms_send(u, &m);
	}
	return SSH_OK;
}

static int cb_env(ssh_session s, ssh_channel ch, const char *name,
		  const char *value, void *userdata)
{
	struct chan *c = userdata;

	(void)s;
	(void)ch;
	if (strcmp(name, "TERM") == 0) {
		snprintf(c->term, sizeof(c->term), "%s", value);
		return SSH_OK;
	}
	if (agent_env_ok(name, value)) {
		size_t l = strlen(name) + 1 + strlen(value) + 1;

		if (c->env_len + l > sizeof(c->env))
			return SSH_ERROR;
		snprintf(c->env + c->env_len, l, "%s=%s", name, value);
		c->env_len = (uint16_t)(c->env_len + l);
		return SSH_OK;
	}
	return SSH_ERROR;
}

static int cb_shell(ssh_session s, ssh_channel ch, void *userdata)
{
	(void)s;
	(void)ch;
	chan_start(userdata, NULL);
	return SSH_OK;
}

static int cb_exec(ssh_session s, ssh_channel ch, const char *cmd,
		   void *userdata)
{
	(void)s;
	(void)ch;
	if (strlen(cmd) > AGENT_CMD_MAX)
		return SSH_ERROR;
	chan_start(userdata, cmd);
	return SSH_OK;
}

ssh_channel chan_cb_open(ssh_session s, void *userdata)
{
	struct conn *k = userdata;
	struct chan *c;
	int slot = -1;

	if (!k->authed)
		return NULL;
	for (int i = 0; i < MAX_CHANNELS; i++)
		if (!k->chans[i]) {
			slot = i;
			break;
		}
	if (slot < 0 || !(c = calloc(1, sizeof(*c))))
		return NULL;
	c->ch = ssh_channel_new(s);
	if (!c->ch) {
		free(c);
		return NULL;
	}
	c->conn = k;
	c->id = ++S.next_id ? S.next_id : ++S.next_id;
	c->in_fd = c->io_fd = c->err_fd = -1;
	c->cb = (struct ssh_channel_callbacks_struct){
		.userdata = c,
		.channel_data_function = chan_cb_data,
		.channel_eof_function = chan_cb_eof,
		.channel_close_function = cb_close,
		.channel_pty_request_function = cb_pty,
		.channel_pty_window_change_function = cb_resize,
		.channel_env_request_function = cb_env,
		.channel_shell_request_function = cb_shell,
		.channel_exec_request_function = cb_exec,
		.channel_write_wontblock_function = cb_wontblock,
	};
	ssh_callbacks_init(&c->cb);
	ssh_set_channel_callbacks(c->ch, &c->cb);
	k->chans[slot] = c;
	return c->ch;
}

/* Once a second (conn_tick()): a channel whose client window opened
 * again has its output polled again, and one done with is freed. */
void chan_reap(struct conn *k)
{
	for (int j = 0; j < MAX_CHANNELS; j++) {
		struct chan *c = k->chans[j];

		if (c && c->out_paused &&
		    ssh_channel_window_size(c->ch) > 0)
			chan_output_pause(c, false);
		if (c && c->done && !ssh_channel_is_open(c->ch)) {
			ssh_channel ch = c->ch;

			chan_free(c);
			k->chans[j] = NULL;
			/* the session's own copy, freed now or when the
			 * client's CLOSE arrives (ssh_free frees those
			 * of a connection that ends) */
			ssh_channel_free(ch);
		}
	}
}
