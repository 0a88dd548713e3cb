/* What the VMM does with the agent's messages (vmm/vm.c's agent_input and
 * agent_message, static there: this file includes vm.c), on a VM made
 * without KVM: the agent port is a socket pair, nothing runs. A guest may
 * send any message as often as it likes; the host's log must not grow
 * with it. */
#include "vmm/vm.c"

#include <sys/ioctl.h>
#include <setjmp.h>
#include <stddef.h>
#include <cmocka.h>

/* A struct vm as vm_new() leaves it, minus KVM and the devices. */
static struct vm *fake_vm(int *guest)
{
	struct vm *vm = calloc(1, sizeof(*vm));
	int sv[2];

	assert_non_null(vm);
	vm->kvm_fd = vm->vm_fd = vm->vcpu_fd = vm->mem_fd = -1;
	vm->pagemap_fd = -1;
	for (unsigned i = 0; i < VCON_MAX_PORTS; i++)
		vm->port_fd[i] = -1;
	vm->con.kick_fd = -1;
	vm->power_intent = -1;
	pthread_mutex_init(&vm->lock, NULL);
	pthread_cond_init(&vm->cond, NULL);
	log_limit_init(&vm->glog, "guest");
	agent_dec_init(&vm->dec);
	vm->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	vm->event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	assert_true(vm->stop_fd >= 0 && vm->event_fd >= 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC |
					    SOCK_NONBLOCK, 0, sv), 0);
	vm->agent_fd = sv[0];
	*guest = sv[1];
	clock_gettime(CLOCK_MONOTONIC, &vm->started);
	vm->state = VM_RUNNING;
	return vm;
}

/* The I/O thread's part: read and handle what the guest sent. */
static void host_reads(struct vm *vm)
{
	int n;

	while (vm->agent_fd >= 0 &&
	       ioctl(vm->agent_fd, FIONREAD, &n) == 0 && n > 0)
		agent_input(vm);
}

static void guest_sends(struct vm *vm, int guest, uint8_t type,
			const void *p, size_t len)
{
	uint8_t frame[AGENT_HDR_LEN + 64];
	int n = agent_encode(type, p, len, frame, sizeof(frame));

	assert_true(n > 0);
	assert_int_equal(send(guest, frame, (size_t)n, 0), n);
	host_reads(vm);
}

static int saved_err = -1;
static FILE *capture_f;

static void capture_start(void)
{
	capture_f = tmpfile();
	assert_non_null(capture_f);
	saved_err = dup(STDERR_FILENO);
	assert_true(dup2(fileno(capture_f), STDERR_FILENO) >= 0);
}

static char *capture_end(void)
{
	long n;
	char *buf;

	dup2(saved_err, STDERR_FILENO);
	close(saved_err);
	n = ftell(capture_f);
	buf = calloc(1, (size_t)n + 1);
	assert_non_null(buf);
	rewind(capture_f);
	assert_int_equal(fread(buf, 1, (size_t)n, capture_f), (size_t)n);
	fclose(capture_f);
	return buf;
}

static unsigned lines(const char *s)
{
	unsigned n = 0;

	for (; *s; s++)
		n += *s == '\n';
	return n;
}

/* 10,000 each of READY, ACK (applied and refused), bad POWER, bad EXITED
 * and LOG: the burst's lines, then (as the VM goes) one line saying how
 * many were dropped. */
static void test_message_flood_is_bounded(void **state)
{
	const uint8_t bad_power[2] = { 0, 0 }, bad_exit[3] = { 1, 2, 3 };
	const uint8_t ack_ok[] = "\0ok", ack_no[] = "\1no";
	struct vm *vm;
	char *out;
	int guest;

	(void)state;
	log_init("t", LOG_INFO);
	vm = fake_vm(&guest);
	capture_start();
	for (unsigned i = 0; i < 10000; i++) {
		guest_sends(vm, guest, AGENT_MSG_READY, "v1", 2);
		guest_sends(vm, guest, AGENT_MSG_ACK, ack_ok, 3);
		guest_sends(vm, guest, AGENT_MSG_ACK, ack_no, 3);
		guest_sends(vm, guest, AGENT_MSG_POWER, bad_power, 2);
		guest_sends(vm, guest, AGENT_MSG_EXITED, bad_exit, 3);
		guest_sends(vm, guest, AGENT_MSG_LOG, "hello", 5);
	}
	assert_true(vm->agent_fd >= 0);	/* all well-formed frames */
	vm_free(vm);
	out = capture_end();
	close(guest);
	assert_int_equal(lines(out), LOG_LIMIT_BURST + 1);
	assert_non_null(strstr(out, "t: guest agent ready (v1)"));
	assert_non_null(strstr(out, "t: guest: 59980 log lines dropped"));
	free(out);
}

/* A broken stream is said once: the port is closed, and nothing the
 * guest sends after reaches the log. */
static void test_protocol_error_said_once(void **state)
{
	const uint8_t junk[8] = { 9, 9, 9, 9, 9, 9, 9, 9 };
	struct vm *vm;
	char *out;
	int guest;

	(void)state;
	log_init("t", LOG_INFO);
	vm = fake_vm(&guest);
	capture_start();
	assert_int_equal(send(guest, junk, sizeof(junk), 0), 8);
	host_reads(vm);
	assert_int_equal(vm->agent_fd, -1);
	vm_free(vm);
	out = capture_end();
	close(guest);
	assert_int_equal(lines(out), 1);
	assert_non_null(strstr(out, "agent: protocol error"));
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_message_flood_is_bounded),
		cmocka_unit_test(test_protocol_error_said_once),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
