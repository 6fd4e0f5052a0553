#!/usr/bin/env bash
# Set up a Debian 12 host for kvmlab, as root: QEMU and the tools collectors use from Debian
# packages, kvmlab's native helpers, the guest images (x86_64 and ppc64le) and, on x86_64, the
# nested KVM host image, tracefs mounted, and the npm dependencies. Safe to run again: every part is skipped when already done.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
export DEBIAN_FRONTEND=noninteractive
log() { printf 'kvmlab setup: %s\n' "$*"; }

[[ $(id -u) -eq 0 ]] || { echo "kvmlab setup: run as root (it installs Debian packages)" >&2; exit 2; }

# openssh-server: a lab box is reached over SSH (kvmlab run --on ssh://…), and kvmlab's tests start
# an sshd of their own on 127.0.0.1, with their own config and keys, to run experiments through it
pkgs=(qemu-system-x86 qemu-system-ppc qemu-utils busybox-static dropbear-bin cpio kmod binutils
      gzip build-essential linux-perf sysstat trace-cmd util-linux procps openssh-server)
missing=()
for p in "${pkgs[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p"); done
if ((${#missing[@]})); then
  log "installing ${missing[*]}"
  # A foreign-arch index mid-sync must not stop the host's own packages from installing.
  apt-get update -q || log 'warning: apt-get update reported errors; continuing with the lists it fetched'
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

log 'building native helpers (kvm-probe, disable-exits shim)'
make -s -C "$here"

if ! mountpoint -q /sys/kernel/tracing 2>/dev/null && [[ -d /sys/kernel/tracing ]]; then
  log 'mounting tracefs at /sys/kernel/tracing'
  mount -t tracefs nodev /sys/kernel/tracing || log 'warning: could not mount tracefs; tracefs collectors will say so'
fi

images=${KVMLAB_CACHE:-/var/cache/kvmlab}/images
for arch in x86_64 ppc64le; do
  log "guest image $arch"
  "$top/guest-scripts/build-image.sh" "$arch" "$images/$arch"
done
if [[ $(uname -m) == x86_64 ]]; then
  log 'nested KVM host image (for kvmlab run --on nested)'
  "$top/guest-scripts/build-image.sh" x86_64 "$images/nested-host" nested-host
  # the same host on the next Debian kernel series, for before/after runs (--host-kernel debian:6.12)
  log 'nested KVM host image with Linux 6.12 (kvmlab run --on nested --host-kernel debian:6.12)'
  KVMLAB_KERNEL=debian:6.12 "$top/guest-scripts/build-image.sh" x86_64 "$images/nested-host-linux-6.12" nested-host ||
    log 'warning: the Linux 6.12 nested host image could not be built; --host-kernel debian:6.12 will say so'
fi

if [[ ! -d $top/node_modules ]]; then
  log 'installing npm packages'
  (cd "$top" && npm ci --no-audit --no-fund)
fi
log 'done'
