/* Linear addresses through the guest's own page tables, as the CPU walks
 * them (SDM vol. 3, 4.5-4.8): 4- and 5-level paging, 2 MiB and 1 GiB
 * pages, present, reserved, R/W, U/S, NX, CR0.WP, SMEP and SMAP. KVM's
 * KVM_TRANSLATE says where a page is but not what the guest may do with
 * it, which is the whole point here. Tables and data are reached through
 * gmem_ptr() alone. */
#include "vmm/x86/emul.h"

#include <errno.h>
#include <string.h>

#define PTE_P (1ULL << 0)
#define PTE_RW (1ULL << 1)
#define PTE_US (1ULL << 2)
#define PTE_A (1ULL << 5)
#define PTE_D (1ULL << 6)
#define PTE_PS (1ULL << 7)
#define PTE_XD (1ULL << 63)

static void page_fault(struct x86_event *f, uint64_t la, uint32_t error)
{
	f->vector = X86_EXC_PF;
	f->has_error = true;
	f->error = error;
	f->has_cr2 = true;
	f->cr2 = la;
}

/* Bits of a present entry at level (1 = PTE .. 5 = PML5E) that must be 0;
 * leaf says PS is set where it makes a page. */
static uint64_t reserved(const struct x86_host *h, const struct x86_cpu *c,
			 unsigned level, bool leaf)
{
	uint64_t r = 0;

	if (h->maxphyaddr < 52)
		r |= ((1ULL << 52) - 1) & ~((1ULL << h->maxphyaddr) - 1);
	if (!(c->efer & X86_EFER_NXE))
		r |= PTE_XD;
	if (level >= 4)
		r |= PTE_PS;
	else if (level == 3 && leaf)
		r |= h->gbpages ? 0x3fffe000ULL : PTE_PS;	/* 29:13 */
	else if (level == 2 && leaf)
		r |= 0x1fe000ULL;				/* 20:13 */
	return r;
}

int x86_translate(const struct gmem *m, const struct x86_host *h,
		  const struct x86_cpu *c, uint64_t la, unsigned acc,
		  struct x86_walk *w, struct x86_event *fault)
{
	bool user = acc & X86_ACC_USER, write = acc & X86_ACC_WRITE;
	bool fetch = acc & X86_ACC_FETCH;
	bool rw = true, us = true, xd = false;
	unsigned level = c->cr4 & X86_CR4_LA57 ? 5 : 4;
	uint64_t phys = h->maxphyaddr >= 52 ? (1ULL << 52) - 1 :
			(1ULL << h->maxphyaddr) - 1;
	uint64_t table = c->cr3 & phys & ~0xfffULL, e = 0, size = 0;
	uint32_t err = (write ? X86_PF_W : 0) | (user ? X86_PF_U : 0);

	memset(w, 0, sizeof(*w));
	fault->vector = -1;
	/* Protection keys and shadow-stack pages add rules we do not model
	 * (a Linux guest without XSAVE enables neither): refuse. */
	if (c->cr4 & (X86_CR4_PKE | X86_CR4_PKS | X86_CR4_CET))
		return -EOPNOTSUPP;
	if (fetch && (c->efer & X86_EFER_NXE || c->cr4 & X86_CR4_SMEP))
		err |= X86_PF_I;
	for (; level >= 1; level--) {
		unsigned shift = 12 + 9 * (level - 1);
		uint64_t gpa = table + ((la >> shift) & 511) * 8;
		const void *p = gmem_ptr(m, gpa, 8);
		bool leaf;

		if (!p)
			return -EFAULT;
		memcpy(&e, p, 8);
		w->entry[w->n++] = gpa;
		if (!(e & PTE_P)) {
			page_fault(fault, la, err);
			return 0;
		}
		leaf = level == 1 || (level <= 3 && (e & PTE_PS));
		if (e & reserved(h, c, level, leaf)) {
			page_fault(fault, la, err | X86_PF_P | X86_PF_RSVD);
			return 0;
		}
		rw = rw && (e & PTE_RW);
		us = us && (e & PTE_US);
		xd = xd || ((c->efer & X86_EFER_NXE) && (e & PTE_XD));
		if (leaf) {
			size = 1ULL << shift;
			break;
		}
		table = e & phys & ~0xfffULL;
	}
	/* Rights from the AND (OR for XD) over every level (SDM 4.6.1). */
	if (user) {
		if (!us || (write && !rw) || (fetch && xd))
			goto denied;
	} else if (fetch) {
		if (xd || (us && (c->cr4 & X86_CR4_SMEP)))
			goto denied;
	} else {
		if (us && (c->cr4 & X86_CR4_SMAP) && !(acc & X86_ACC_AC))
			goto denied;
		if (write && !rw && (c->cr0 & X86_CR0_WP))
			goto denied;
	}
	w->gpa = (e & phys & ~(size - 1)) | (la & (size - 1));
	return 0;
denied:
	page_fault(fault, la, err | X86_PF_P);
	return 0;
}

/* The CPU sets A in every entry it used and D in the leaf of a write;
 * the guest's reclaim relies on D to write a page back. */
static void set_ad(const struct gmem *m, const struct x86_walk *w,
		   bool write)
{
	for (unsigned i = 0; i < w->n; i++) {
		uint64_t *e = gmem_ptr(m, w->entry[i], 8);
		uint64_t bits = PTE_A | (write && i == w->n - 1 ? PTE_D : 0);

		/* Entries are 8-aligned (table + index * 8). */
		if (e)
			__atomic_fetch_or(e, bits, __ATOMIC_RELAXED);
	}
}

int x86_access(const struct gmem *m, const struct x86_host *h,
	       const struct x86_cpu *c, uint64_t la, void *buf, size_t len,
	       unsigned acc, struct x86_event *fault)
{
	struct x86_walk w[2];
	size_t part[2], n = 0, done = 0;
	uint8_t *b = buf;
	int r;

	fault->vector = -1;
	if (len > 4096)
		return -EINVAL;
	/* At most two pages; both are checked before a byte moves, so a
	 * store that faults on its second page writes nothing. CR2 is the
	 * first byte on the faulting page, as KVM's emulator reports it. */
	while (done < len) {
		uint64_t a = la + done;
		size_t in_page = 4096 - (a & 4095);

		part[n] = len - done < in_page ? len - done : in_page;
		r = x86_translate(m, h, c, a, acc, &w[n], fault);
		if (r < 0 || fault->vector >= 0)
			return r;
		if (!gmem_ptr(m, w[n].gpa, part[n]))
			return -EFAULT;
		done += part[n++];
	}
	done = 0;
	for (size_t i = 0; i < n; i++) {
		uint8_t *g = gmem_ptr(m, w[i].gpa, part[i]);

		set_ad(m, &w[i], acc & X86_ACC_WRITE);
		if (acc & X86_ACC_WRITE)
			memcpy(g, b + done, part[i]);
		else
			memcpy(b + done, g, part[i]);
		done += part[i];
	}
	return 0;
}
