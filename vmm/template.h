/* The warm template: a booted guest, snapshotted once when its agent is
 * ready and its vCPU idle, kept on disk under
 * <state_dir>/templates/<key>/ where the key hashes everything the
 * snapshot depends on (kernel, initrd, command line, memory, vCPUs, KVM
 * flavour, VMM and format version). A valid one is reused; a missing,
 * stale or corrupt one is (re)built, with a log line saying why. */
#ifndef VMM_TEMPLATE_H
#define VMM_TEMPLATE_H

#include <stddef.h>

#include "vmm/snapshot.h"
#include "vmm/vm.h"

#define CLONE_VMM_VERSION "clone-vmm 1"

struct template {
	char key[33];
	char dir[4096];
	struct vm_snapshot *snap;
	int mem_fd;		/* the memory file, read-only */
	double build_s;		/* seconds spent building it; 0 if reused */
};

/* Open the template for cfg under state_dir, building it if needed (a cold
 * boot: tens of seconds on PVM). 0 or -errno with err set. */
int template_open(const struct vm_config *cfg, const char *state_dir,
		  struct template **out, char *err, size_t errlen);
void template_close(struct template *t);

#endif
