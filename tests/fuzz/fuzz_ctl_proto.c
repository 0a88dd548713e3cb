/* libFuzzer harness: the control protocol's decoder (vmm/ctl_proto.c),
 * which the front-end runs on what a worker or the manager sends, and the
 * worker and the manager on what their parent sends: a compromised peer
 * may send any bytes with any number of fds in any state.
 *
 * Input: a byte choosing the direction, one the receiver's state, one the
 * number of fds that came with the packet, then the packet. What decodes
 * must encode again and decode back to the same message, in the same
 * state; an answer is taken off a fresh ctl_asked only if it was asked. */
#include <stdlib.h>
#include <string.h>

#include "vmm/ctl_proto.h"

static const struct ctl_dir *const dirs[] = {
	&ctl_to_worker, &ctl_from_worker, &ctl_to_manager, &ctl_from_manager,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t buf[CTL_MSG_MAX];
	struct worker_msg m, m2;
	const struct ctl_rule *rule = NULL;
	const struct ctl_dir *dir;
	struct ctl_asked asked;
	enum ctl_err err = CTL_OK;
	unsigned state;
	int nfds;
	ssize_t n;

	if (size < 3)
		return 0;
	dir = dirs[data[0] % 4];
	state = data[1] % 8;
	nfds = data[2] % (CTL_FDS_MAX + 2);
	data += 3;
	size -= 3;
	memset(&m, 0xa5, sizeof(m));
	if (ctl_decode(dir, state, data, size, nfds, &m, &rule, &err) != 0) {
		if (err == CTL_OK || err >= CTL_E_MAX || !ctl_strerror(err))
			abort();
		return 0;
	}
	if (!rule || rule->type != m.type || !ctl_type_name(m.type) ||
	    m.text[sizeof(m.text) - 1] != 0 || nfds < rule->min_fds ||
	    nfds > rule->max_fds)
		abort();
	n = ctl_encode(dir, &m, buf, sizeof(buf));
	if (n < 0)
		abort();
	memset(&m2, 0x5a, sizeof(m2));
	if (ctl_decode(dir, state, buf, (size_t)n, nfds, &m2, NULL, &err) != 0 ||
	    memcmp(&m, &m2, sizeof(m)) != 0)
		abort();
	memset(&asked, 0, sizeof(asked));
	if (rule->reply_to &&
	    ctl_asked_answer(&asked, rule, &m, &err) == 0)
		abort();	/* nothing was asked */
	return 0;
}
