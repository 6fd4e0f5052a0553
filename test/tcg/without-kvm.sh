#!/bin/bash
# without-kvm.sh CMD ARGS… — run CMD as on a host with no /dev/kvm: in a private mount namespace
# whose /dev is a copy of this one without the kvm node. Needs root and util-linux's unshare.
# The host's own /dev is untouched.
exec unshare --mount --propagation private bash -c '
  set -e
  d=$(mktemp -d)
  mount -t tmpfs -o mode=755 kvmlab-nokvm "$d"
  for f in /dev/*; do [ "$f" = /dev/kvm ] || cp -a "$f" "$d/" 2>/dev/null || true; done
  mount --rbind /dev/pts "$d/pts" 2>/dev/null || true
  mount --move "$d" /dev
  exec "$@"' without-kvm "$@"
