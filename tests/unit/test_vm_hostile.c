/* What a VM (vmm/agent_link.c, vmm/persist.c) does with a hostile guest,
 * on a VM made without KVM (this file builds struct vm from
 * vmm/vm_impl.h): the agent port is a socket
 * pair, the console device runs on the fake guest's plain memory, and a
 * thread parks where the vCPU thread would. A guest may send any message
 * as often as it likes, and keep its console as busy as it likes: the
 * host's log must not grow with it, nor its VM escape a suspend. */
#include "vmm/vm_impl.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <setjmp.h>
#include <stddef.h>
#include <cmocka.h>

#include "tests/unit/capture.h"

#include "common/clock.h"
#include "tests/unit/fake_guest.h"

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
		vm_agent_input(vm);
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
	assert_int_equal(capture_lines(out), LOG_LIMIT_BURST + 1);
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
	assert_int_equal(capture_lines(out), 1);
	assert_non_null(strstr(out, "agent: protocol error"));
	free(out);
}

/* ---- a save against a guest that takes no control messages ---------- */

#define MEM_SIZE (4 * 1024 * 1024)
#define NQ (2 * (VCON_MAX_PORTS + 1))
#define CTRL_TX 3

static void no_irq(void *opaque, uint32_t gsi)
{
	(void)opaque;
	(void)gsi;
}

/* Where the vCPU thread would be: it parks when asked to, and goes when
 * the VM ends. */
static void *parking_vcpu(void *arg)
{
	struct vm *vm = arg;

	while (!vm->stopping) {
		vm_park(vm);
		usleep(1000);
	}
	return NULL;
}

static void *idle_io(void *arg)
{
	struct vm *vm = arg;
	struct pollfd p = { .fd = vm->stop_fd, .events = POLLIN };

	while (!vm->stopping)
		poll(&p, 1, 100);
	return NULL;
}

/* The guest's driver starts the console, tells it DEVICE_READY and posts
 * no control receive buffers: the device's DEVICE_ADD stays queued. */
static void hostile_console(struct vm *vm, struct fg *g, struct fg_vq *v,
			    int *host)
{
	struct virtio_mmio *t = &vm->con.t;
	uint8_t m[8] = { 0xff, 0xff, 0xff, 0xff, 0, 0, 1, 0 };
	int sv[2];

	vm->mem = g->m;
	assert_int_equal(vcon_init(&vm->con, &vm->mem, VM_VIRTIO_BASE,
				   VM_VIRTIO_CONSOLE_GSI, no_irq, vm), 0);
	vcon_set_log_limit(&vm->con, &vm->glog);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0,
				    sv), 0);
	vm->port_fd[0] = sv[1];
	*host = sv[0];
	assert_int_equal(vcon_add_port(&vm->con, 0, NULL, true, sv[1], sv[1]),
			 0);
	fg_mmio_negotiate(t, 1ULL << VIRTIO_F_VERSION_1 |
				     1ULL << VIRTIO_CONSOLE_F_MULTIPORT);
	for (unsigned i = 0; i < NQ; i++) {
		fg_vq_init(&v[i], g, 16);
		fg_mmio_queue(t, i, &v[i]);
	}
	fg_wr(t, VIRTIO_MMIO_STATUS, FG_STATUS_LIVE);
	fg_post_out(&v[CTRL_TX], m, sizeof(m));
	fg_wr(t, VIRTIO_MMIO_QUEUE_NOTIFY, CTRL_TX);
	vcon_process(&vm->con);
	assert_int_equal(vm->con.ctrl_len, 1);
}

/* Suspending such a VM: the save waits its while, then ends the VM with a
 * line saying why, rather than failing and being tried again for ever. */
static void test_save_blocked_by_guest_ends_vm(void **state)
{
	struct fg g;
	struct fg_vq v[NQ];
	char err[256], dir[] = "/tmp/clone-test-XXXXXX", *out;
	struct vm *vm;
	uint64_t t0, took;
	int guest, host, r;

	(void)state;
	log_init("t", LOG_INFO);
	assert_int_equal(vm_kick_install(), 0);
	assert_non_null(mkdtemp(dir));
	fg_init(&g, MEM_SIZE);
	vm = fake_vm(&guest);
	hostile_console(vm, &g, v, &host);
	vm->quiet_ns = 300000000ULL;	/* VM_QUIET_NS is 5 s */
	vm->run = calloc(1, sizeof(*vm->run));
	assert_non_null(vm->run);
	assert_int_equal(pthread_create(&vm->vcpu_thread, NULL, parking_vcpu,
					vm), 0);
	assert_int_equal(pthread_create(&vm->io_thread, NULL, idle_io, vm), 0);
	vm->threads = true;

	capture_start();
	t0 = clock_mono_ns();
	r = vm_suspend_to_disk(vm, dir, NULL, err, sizeof(err));
	took = clock_mono_ns() - t0;
	out = capture_end();
	assert_true(r < 0);
	assert_true(took >= vm->quiet_ns);
	assert_true(took < 10 * vm->quiet_ns);
	assert_int_equal(vm_exit_reason(vm), VM_EXIT_ERROR);
	assert_int_equal(vm_state(vm), VM_STOPPED);
	assert_non_null(strstr(vm_exit_detail(vm), "control messages"));
	assert_non_null(strstr(err, "VM ended"));
	assert_int_equal(capture_lines(out), 1);
	assert_non_null(strstr(out, "t: vm: saving: the guest took none of 1 "
				    "console control messages in 300 ms; VM "
				    "ended\n"));
	free(out);

	vm_stop(vm);
	free(vm->run);
	vm->run = NULL;
	vm->mem.host = NULL;	/* the fake guest's, not a mapping */
	vm_free(vm);
	fg_free(&g);
	close(guest);
	close(host);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_message_flood_is_bounded),
		cmocka_unit_test(test_protocol_error_said_once),
		cmocka_unit_test(test_save_blocked_by_guest_ends_vm),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
