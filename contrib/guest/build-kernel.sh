#!/bin/sh
# Build the Clone guest kernel (an uncompressed ELF vmlinux) from Debian's
# linux-source-6.1: `make tinyconfig`, then kernel.config, then our PVM patch.
# The result is cached outside the checkout, keyed by a hash of every input,
# so a second build (or CI run) on the same machine is a copy.
#
# usage: build-kernel.sh OUTDIR     (writes OUTDIR/vmlinux)
set -eu

here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: build-kernel.sh OUTDIR}
mkdir -p "$out" && out=$(cd "$out" && pwd)
cache=${CLONE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/clone}
src_tar=/usr/src/linux-source-6.1.tar.xz

[ -r "$src_tar" ] || { echo "build-kernel: $src_tar missing (make deps)" >&2; exit 1; }
srcver=$(dpkg-query -W -f='${Version}' linux-source-6.1)
key=$( (echo "linux-source-6.1 $srcver"; cat "$here/kernel.config" \
	"$here/pvm-syscall.patch" "$here/build-kernel.sh") | sha256sum | cut -c1-16)
dir=$cache/kernel-$key

mkdir -p "$out"
if [ -s "$dir/vmlinux" ]; then
	cp "$dir/vmlinux" "$out/vmlinux.tmp" && mv "$out/vmlinux.tmp" "$out/vmlinux"
	exit 0
fi

echo "build-kernel: building guest kernel $key (several minutes, once per input set)" >&2
mkdir -p "$cache"
work=$(mktemp -d "$cache/kernel-build.XXXXXX")
trap 'rm -rf "$work"' EXIT
tar -C "$work" -xf "$src_tar"
cd "$work/linux-source-6.1"
patch -s -p1 < "$here/pvm-syscall.patch"
make -s tinyconfig >/dev/null
scripts/kconfig/merge_config.sh -m -O . .config "$here/kernel.config" >/dev/null
make -s olddefconfig >/dev/null

# A fragment line that did not survive olddefconfig is a silent config bug
# (a missing dependency): refuse to build rather than boot something else.
bad=0
while IFS= read -r line; do
	case $line in
	CONFIG_*=n) want="# ${line%=n} is not set"; alt=absent ;;
	CONFIG_*) want=$line; alt= ;;
	*) continue ;;
	esac
	if ! grep -qx "$want" .config; then
		if [ -n "$alt" ] && ! grep -q "^${line%=n}=" .config; then
			continue
		fi
		echo "build-kernel: kernel.config: '$line' did not take" >&2
		bad=1
	fi
done < "$here/kernel.config"
[ "$bad" = 0 ] || exit 1

make -s -j"$(nproc)" vmlinux >/dev/null
mkdir -p "$dir.tmp"
cp vmlinux System.map .config "$dir.tmp/"
rm -rf "$dir" && mv "$dir.tmp" "$dir"
cp "$dir/vmlinux" "$out/vmlinux.tmp" && mv "$out/vmlinux.tmp" "$out/vmlinux"
echo "build-kernel: done, cached in $dir" >&2
