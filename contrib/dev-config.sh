#!/bin/sh
# `make run`: write the development configuration build/clone-dev.ini
# (127.0.0.1:2222, open sign-up, state in the cache so the template built
# once is reused) and print how to log in.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cache=${CLONE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/clone}
state=$cache/dev-state
mkdir -p "$state" "$top/build/users"
cat > "$top/build/clone-dev.ini" <<INI
; Written by make run (contrib/dev-config.sh): a development server.
[server]
listen = 127.0.0.1:2222
state_dir = $state
authorized_keys = $top/build/users/%u
open_signup = yes
[template]
kernel = $top/build/guest/vmlinux
initrd = $top/build/guest/initramfs.cpio
[vm]
detach_timeout = 300
reap_timeout = 86400
INI
cat >&2 <<MSG

clone: serving on 127.0.0.1:2222 (the first start boots the template once).
clone: log in from another terminal, any user name, your usual SSH key:

    ssh -p 2222 NAME@127.0.0.1

MSG
