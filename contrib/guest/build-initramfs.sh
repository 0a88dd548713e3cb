#!/bin/sh
# Build the Clone guest initramfs: an uncompressed cpio (the kernel would
# otherwise decompress it in KVM's emulator on PVM hosts) holding the static
# agent as /init and busybox-static as the userland. Cached outside the
# checkout, keyed by a hash of every input.
#
# usage: build-initramfs.sh OUTDIR     (writes OUTDIR/initramfs.cpio)
set -eu

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
out=${1:?usage: build-initramfs.sh OUTDIR}
mkdir -p "$out" && out=$(cd "$out" && pwd)
cache=${CLONE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/clone}
busybox=/bin/busybox

[ -x "$busybox" ] && "$busybox" --list-full >/dev/null 2>&1 ||
	{ echo "build-initramfs: busybox-static missing (make deps)" >&2; exit 1; }
bbver=$(dpkg-query -W -f='${Version}' busybox-static)
ccver=$(${CC:-cc} --version | head -n1)
key=$( (echo "busybox-static $bbver"; echo "$ccver"
	cat "$here/agent.c" "$top/console/agent_proto.c" \
	"$top/console/agent_proto.h" "$here/profile" \
	"$here/build-initramfs.sh") | sha256sum | cut -c1-16)
dir=$cache/initramfs-$key

if [ ! -s "$dir/initramfs.cpio" ]; then
	mkdir -p "$cache"
	work=$(mktemp -d "$cache/initramfs-build.XXXXXX")
	trap 'rm -rf "$work"' EXIT
	root=$work/root
	mkdir -p "$root"
	cd "$root"
	mkdir -p bin sbin usr/bin usr/sbin etc root home tmp proc sys dev run \
		var/tmp usr/local/bin
	chmod 0700 root
	chmod 1777 tmp var/tmp
	${CC:-cc} -static -O2 -Wall -Wextra -Werror -I"$top" -o init \
		"$here/agent.c" "$top/console/agent_proto.c"
	strip init
	cp "$busybox" bin/busybox
	for app in $("$busybox" --list-full); do
		[ -e "$app" ] || ln -s /bin/busybox "$app"
	done
	cat > etc/passwd <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
PASSWD
	cat > etc/group <<'GROUP'
root:x:0:
tty:x:5:
users:x:100:
nogroup:x:65534:
GROUP
	echo clone > etc/hostname
	cp "$here/profile" etc/profile
	# The kernel opens /dev/console for init before devtmpfs is mounted.
	mknod -m 600 dev/console c 5 1 2>/dev/null || true
	find . -exec touch -h -d @0 {} +
	mkdir -p "$dir.tmp"
	find . -print0 | LC_ALL=C sort -z |
		cpio --null -o -H newc --reproducible -R 0:0 --quiet \
		> "$dir.tmp/initramfs.cpio"
	rm -rf "$dir" && mv "$dir.tmp" "$dir"
	echo "build-initramfs: built $dir" >&2
fi
cp "$dir/initramfs.cpio" "$out/initramfs.cpio.tmp"
mv "$out/initramfs.cpio.tmp" "$out/initramfs.cpio"
