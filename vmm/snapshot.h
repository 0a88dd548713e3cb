/* A machine state snapshot: everything KVM and our devices hold for a
 * paused VM, except guest RAM (which lives in its own file). The snapshot
 * is a fixed binary layout for this host and this VMM version: the file
 * header carries a format version, the body length and BLAKE2b hashes of
 * the body and of the memory file, so a stale or corrupt template is
 * detected rather than restored. */
#ifndef VMM_SNAPSHOT_H
#define VMM_SNAPSHOT_H

#include <linux/kvm.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/virtio/console.h"
#include "vmm/x86/cpu.h"

#define SNAPSHOT_VERSION 3
#define SNAPSHOT_HASH_LEN 32
#define SNAPSHOT_NQUEUES (2 * (VCON_MAX_PORTS + 1))

/* The console, layer by layer: each saves and restores its own part. */
struct snapshot_console {
	struct virtio_mmio_state mmio;		/* the transport's registers */
	struct virtq_state vq[SNAPSHOT_NQUEUES];	/* its queues */
	struct vcon_state dev;			/* the device's own fields */
};

struct vm_snapshot {
	uint64_t mem_size;
	uint32_t pvm;		/* taken on PVM: needs the PVM CPUID filter */
	uint32_t pad;
	struct kvm_irqchip pic_master, pic_slave, ioapic;
	struct kvm_pit_state2 pit;
	struct kvm_clock_data clock;
	struct cpu_state cpu;
	struct snapshot_console con;
};

/* The files, as laid out on disk (host byte order; the header first, then
 * the body or the indices and pages). Exposed for the tests and the fuzz
 * harness, which write hostile ones. */
#define SNAPSHOT_MAGIC "CLONESNP"
#define SNAPSHOT_PAGES_MAGIC "CLONEPGS"
#define SNAPSHOT_PAGE 4096

struct snapshot_header {		/* "state": then struct vm_snapshot */
	char magic[8];
	uint32_t version;
	uint32_t body_len;
	uint64_t mem_size;
	uint8_t mem_hash[SNAPSHOT_HASH_LEN];	/* memory, or the pages file */
	uint8_t body_hash[SNAPSHOT_HASH_LEN];
};

struct snapshot_pages_header {	/* "pages": then count u64 indices, pages */
	char magic[8];
	uint32_t version;
	uint32_t pad;
	uint64_t count;
	uint64_t mem_size;
	uint8_t hash[SNAPSHOT_HASH_LEN];	/* indices, then pages */
};

/* Every way a snapshot on disk can be wrong. A suspended VM is written by
 * a worker a guest may own, into a directory its user owns: the reader
 * treats it as hostile input and names the first fault it finds. */
enum snapshot_err {
	SNAPSHOT_OK = 0,
	SNAPSHOT_E_OPEN,	/* a file is missing or cannot be opened */
	SNAPSHOT_E_NOT_FILE,	/* not a regular file (a FIFO, a directory) */
	SNAPSHOT_E_IO,		/* reading failed */
	SNAPSHOT_E_NOMEM,	/* out of memory */
	SNAPSHOT_E_MAGIC,	/* not a snapshot file */
	SNAPSHOT_E_VERSION,	/* another format version */
	SNAPSHOT_E_LENGTH,	/* truncated, trailing bytes, wrong body size */
	SNAPSHOT_E_HASH,	/* a hash does not match */
	SNAPSHOT_E_MEM_SIZE,	/* memory size out of range or not the template's */
	SNAPSHOT_E_PAGE_COUNT,	/* more pages than guest RAM holds */
	SNAPSHOT_E_PAGE_INDEX,	/* a page beyond guest RAM */
	SNAPSHOT_E_PAGE_ORDER,	/* a page listed twice or out of order */
	SNAPSHOT_E_KVM,		/* KVM flavour flag neither 0 nor 1 */
	SNAPSHOT_E_IRQCHIP,	/* PIC or IOAPIC state impossible */
	SNAPSHOT_E_PIT,		/* PIT state impossible */
	SNAPSHOT_E_CPU,		/* registers, events or run state impossible */
	SNAPSHOT_E_MSR,		/* MSR count or a duplicate MSR */
	SNAPSHOT_E_MSR_ADDR,	/* an MSR's guest address outside guest RAM */
	SNAPSHOT_E_XSAVE,	/* XSAVE area size out of range */
	SNAPSHOT_E_DEVICE,	/* console device status or registers impossible */
	SNAPSHOT_E_QUEUE_SIZE,	/* a virtqueue size 0, too big, not a power of 2 */
	SNAPSHOT_E_QUEUE_ADDR,	/* a ring outside guest RAM or misaligned */
	SNAPSHOT_E_QUEUE_IDX,	/* more buffers in flight than the queue holds */
	SNAPSHOT_E_PORT,	/* a console port's state impossible */
};

/* A fixed description of e ("virtqueue ring outside guest memory"). */
const char *snapshot_strerror(enum snapshot_err e);

/* Check every field of s the VMM or KVM will act on, for a guest of
 * mem_size bytes of RAM: SNAPSHOT_OK, or the first fault, described (which
 * field, what value) in err. Does not touch guest memory. */
enum snapshot_err snapshot_check(const struct vm_snapshot *s,
				 uint64_t mem_size, char *err, size_t errlen);

/* Write snap and the guest RAM at mem (mem_size bytes) into dir, as the
 * files "state" and "memory" (all-zero pages left as holes), atomically:
 * written under temporary names, synced, then renamed. 0 or -errno. */
int snapshot_write(const char *dir, const struct vm_snapshot *snap,
		   const uint8_t *mem);

/* Read and check dir/state (snapshot_check included), and open dir/memory
 * (read-only, into *mem_fd) after checking its size and hash. 0, or -errno
 * with the reason in err: -ENOENT (no snapshot), -ESTALE (other format
 * version), -EBADMSG (corrupt or impossible: err names the fault). */
int snapshot_read(const char *dir, struct vm_snapshot *snap, int *mem_fd,
		  char *err, size_t errlen);

/* A suspended clone: its state and only the pages it owns (those that
 * differ from the template), as dir/state and dir/pages. idx lists page
 * numbers of guest RAM in increasing order. 0 or -errno. */
int snapshot_write_pages(const char *dir, const struct vm_snapshot *snap,
			 const uint8_t *mem, const uint64_t *idx, size_t n);

/* Read dir/state into snap and lay dir/pages over mem (the clone's private
 * mapping of the template, mem_size bytes), after checking both whole:
 * sizes, hashes, every page index, and snapshot_check. On any error mem is
 * untouched. 0 or -errno with err set (-ENOENT: no such files, -ESTALE:
 * other format version, -EBADMSG: corrupt or impossible, -ENOMEM). */
int snapshot_read_pages(const char *dir, struct vm_snapshot *snap,
			uint8_t *mem, uint64_t mem_size, char *err,
			size_t errlen);

/* snapshot_read_pages on open files (the caller keeps them), saying in
 * *why (may be NULL) which fault it found. */
int snapshot_read_pages_fd(int state_fd, int pages_fd,
			   struct vm_snapshot *snap, uint8_t *mem,
			   uint64_t mem_size, enum snapshot_err *why,
			   char *err, size_t errlen);

#endif
