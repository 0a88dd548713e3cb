#!/bin/sh
# The dependency rules of the layout, checked mechanically (make layers,
# run by make check): one line per include that breaks one, exit 1 if any.
#   - only sshd/ includes libssh (and only sshd/ objects get its flags);
#   - common/ config/ console/ include nothing from vmm/ sshd/ tools/;
#   - vmm/ includes nothing from sshd/ or tools/;
#   - the devices (vmm/virtio/, vmm/x86/) include from vmm/ only their own
#     folder and the layers under them (vmm/gmem.h, vmm/bus.h), and
#     vmm/virtio/ nothing of vmm/x86/ or back.
cd "$(dirname "$0")/.." || exit 2
bad=0

# $1: a description; $2: files; $3: an extended regexp for the included
# path; $4 (optional): included paths that are allowed after all
check() {
	what=$1 files=$2 re=$3 ok=${4:-^$}
	[ -n "$files" ] || return 0
	hits=$(grep -nE "^[[:space:]]*#[[:space:]]*include[[:space:]]*[<\"]($re)" \
		$files 2>/dev/null | grep -vE "[<\"]($ok)[>\"]")
	if [ -n "$hits" ]; then
		echo "layers: $what:"
		echo "$hits" | sed 's/^/  /'
		bad=1
	fi
}

src() { find "$@" -name '*.[ch]' 2>/dev/null | sort; }

check "libssh outside sshd/" "$(src common config console vmm tools)" \
	'libssh/'
check "a lower module includes vmm/, sshd/ or tools/" \
	"$(src common config console)" 'vmm/|sshd/|tools/'
check "vmm/ includes sshd/ or tools/" "$(src vmm)" 'sshd/|tools/'
check "vmm/virtio/ reaches up or across" "$(src vmm/virtio)" \
	'vmm/(x86/|[^/"]*")' 'vmm/gmem\.h|vmm/bus\.h'
check "vmm/x86/ reaches up or across" "$(src vmm/x86)" \
	'vmm/(virtio/|[^/"]*")' 'vmm/gmem\.h|vmm/bus\.h'
exit $bad
