#!/bin/sh
# `make guest`: the guest kernel and initramfs into OUTDIR (build/guest).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-build/guest}
sh "$here/build-kernel.sh" "$out"
sh "$here/build-initramfs.sh" "$out"
