#!/bin/sh
# `make deps`: install the Debian packages Clone needs to build, to build
# its guest image, and to run its tests and benchmarks. Only what is
# missing; quiet when there is nothing to do.
set -eu

pkgs="
build-essential pkg-config clang libclang-rt-14-dev
libsodium-dev libinih-dev libssh-dev libseccomp-dev libcmocka-dev
linux-libc-dev
linux-source-6.1 busybox-static flex bison bc libelf-dev libssl-dev
cpio xz-utils patch
python3 python3-paramiko openssh-client putty-tools dropbear-bin util-linux procps
qemu-system-x86 openssh-server gdb passwd
"

# The unprivileged user VM workers and the SSH front-end run as ([vm] user
# in clone.ini; "clone" unless set otherwise). CLONE_USER names another.
user=${CLONE_USER:-clone}
add_user() {
	getent passwd "$user" >/dev/null && return 0
	if [ "$(id -u)" != 0 ]; then
		echo "deps: no user $user (run 'make deps' as root)" >&2
		return 1
	fi
	useradd --system --no-create-home --home-dir /nonexistent \
		--shell /usr/sbin/nologin "$user"
	echo "deps: created system user $user" >&2
}

missing=
for p in $pkgs; do
	if ! dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null |
		grep -q '^install ok installed$'; then
		missing="$missing $p"
	fi
done
if [ -z "$missing" ]; then
	add_user
	exit 0
fi

if [ "$(id -u)" != 0 ]; then
	echo "deps: missing:$missing (run 'make deps' as root)" >&2
	exit 1
fi
echo "deps: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
# Packages only: no service may start (openssh-server is a benchmark peer,
# started by the benchmark itself on a loopback port).
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
	printf '#!/bin/sh\nexit 101\n' > "$policy"
	chmod +x "$policy"
	trap 'rm -f "$policy"' EXIT
fi
# shellcheck disable=SC2086
if ! apt-get install -y -q --no-install-recommends $missing >/dev/null; then
	apt-get update -q >/dev/null
	apt-get install -y -q --no-install-recommends $missing >/dev/null
fi
add_user
