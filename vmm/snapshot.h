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

#include "vmm/virtio_console.h"

#define SNAPSHOT_VERSION 2
#define SNAPSHOT_MAX_MSRS 256
#define SNAPSHOT_XSAVE_MAX 16384
#define SNAPSHOT_HASH_LEN 32
#define SNAPSHOT_NQUEUES (2 * (VCON_MAX_PORTS + 1))

struct virtq_state {
	uint64_t desc, avail, used;
	uint16_t size, last_avail, used_idx;
	uint8_t ready, pad[3];
};

struct vcon_state {
	uint32_t status, dev_feat_sel, drv_feat_sel, queue_sel, int_status;
	uint32_t config_gen;
	uint64_t drv_features;
	struct virtq_state vq[SNAPSHOT_NQUEUES];
	struct {
		uint8_t used, console, guest_ready, guest_open;
		uint16_t rows, cols;
		char name[VCON_NAME_MAX];
	} port[VCON_MAX_PORTS];
	uint16_t cfg_rows, cfg_cols;
	uint8_t device_ready, pad[3];
};

struct vcpu_state {
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	struct kvm_fpu fpu;
	struct kvm_xcrs xcrs;
	struct kvm_lapic_state lapic;
	struct kvm_vcpu_events events;
	struct kvm_mp_state mp;
	struct kvm_debugregs dregs;
	uint32_t nmsrs, xsave_size;
	struct kvm_msr_entry msrs[SNAPSHOT_MAX_MSRS];
	uint8_t xsave[SNAPSHOT_XSAVE_MAX];
};

struct vm_snapshot {
	uint64_t mem_size;
	uint32_t pvm;		/* taken on PVM: needs the PVM CPUID filter */
	uint32_t pad;
	struct kvm_irqchip pic_master, pic_slave, ioapic;
	struct kvm_pit_state2 pit;
	struct kvm_clock_data clock;
	struct vcpu_state cpu;
	struct vcon_state con;
};

/* Write snap and the guest RAM at mem (mem_size bytes) into dir, as the
 * files "state" and "memory" (all-zero pages left as holes), atomically:
 * written under temporary names, synced, then renamed. 0 or -errno. */
int snapshot_write(const char *dir, const struct vm_snapshot *snap,
		   const uint8_t *mem);

/* Read and check dir/state, and open dir/memory (read-only, into *mem_fd)
 * after checking its size and hash. 0, or -errno with the reason in err:
 * -ENOENT (no snapshot), -ESTALE (other format version), -EBADMSG
 * (corrupt: bad length or hash). */
int snapshot_read(const char *dir, struct vm_snapshot *snap, int *mem_fd,
		  char *err, size_t errlen);

/* A suspended clone: its state and only the pages it owns (those that
 * differ from the template), as dir/state and dir/pages. idx lists page
 * numbers of guest RAM. 0 or -errno. */
int snapshot_write_pages(const char *dir, const struct vm_snapshot *snap,
			 const uint8_t *mem, const uint64_t *idx, size_t n);
/* Read dir/state into snap and lay dir/pages over mem (the clone's private
 * mapping of the template, mem_size bytes), after checking both. 0 or
 * -errno with err set (-EBADMSG: corrupt). */
int snapshot_read_pages(const char *dir, struct vm_snapshot *snap,
			uint8_t *mem, uint64_t mem_size, char *err,
			size_t errlen);

#endif
