#!/bin/sh
# /init of the kvmlab guest image (busybox sh, PID 1).
# Contract: prints exactly "kvmlab-guest: ready" on the console once dropbear
# listens on port 22; reads the authorized SSH key from kvmlab.authkey=<base64>.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
export HOME=/root
umask 022

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null || true
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null || true
exec </dev/console >/dev/console 2>&1
hostname kvmlab-guest

# Virtio networking modules, in dependency order (computed at build time).
kver=$(uname -r)
while read -r m; do
	[ -n "$m" ] || continue
	insmod "/lib/modules/$kver/$m.ko" || echo "kvmlab-guest: insmod $m failed"
done </etc/kvmlab-modules

# QEMU user networking has fixed addresses: no DHCP.
ip link set lo up
i=0
while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 100 ]; do usleep 100000; i=$((i + 1)); done
if [ -e /sys/class/net/eth0 ]; then
	ip addr add 10.0.2.15/24 dev eth0
	ip link set eth0 up
	ip route add default via 10.0.2.2
else
	echo "kvmlab-guest: no eth0"
fi

# The client's public key: kernel parameter kvmlab.authkey=<base64 of the OpenSSH line>.
authkey=
set -f
for w in $(cat /proc/cmdline); do
	case "$w" in kvmlab.authkey=*) authkey=${w#kvmlab.authkey=} ;; esac
done
set +f
mkdir -p /root/.ssh
chmod 700 /root /root/.ssh
: >/root/.ssh/authorized_keys
chmod 600 /root/.ssh/authorized_keys
if [ -n "$authkey" ]; then
	printf '%s' "$authkey" | base64 -d >/root/.ssh/authorized_keys.tmp 2>/dev/null
	case "$(head -c 4 /root/.ssh/authorized_keys.tmp)" in
	ssh-* | ecds | sk-*) { cat /root/.ssh/authorized_keys.tmp; echo; } >/root/.ssh/authorized_keys ;;
	*) echo "kvmlab-guest: kvmlab.authkey is not a base64 OpenSSH public key" ;;
	esac
	rm -f /root/.ssh/authorized_keys.tmp
else
	echo "kvmlab-guest: no kvmlab.authkey= on the kernel command line"
fi

# Key-only SSH with the host key baked in at build time; logs go to the console.
# dropbear gives root its own PATH (/usr/local/sbin:...:/bin), so every session goes through
# -c: the client's command (SSH_ORIGINAL_COMMAND) is evaluated with the image's PATH, and a
# session without a command gets a login shell.
session='PATH=/bin:/sbin:/usr/bin:/usr/sbin; export PATH; if [ -n "${SSH_ORIGINAL_COMMAND+x}" ]; then eval "$SSH_ORIGINAL_COMMAND"; else exec sh -l; fi'
dropbear -F -E -s -p 22 -r /etc/dropbear/dropbear_ed25519_host_key -P /run/dropbear.pid -c "$session" </dev/null &
i=0
while ! grep -q '^ *[0-9]*: [0-9A-F]*:0016 [0-9A-F]*:0000 0A' /proc/net/tcp /proc/net/tcp6 2>/dev/null && [ $i -lt 100 ]; do
	usleep 50000
	i=$((i + 1))
done
echo "kvmlab-guest: ready"

# busybox init keeps PID 1 alive, reaps orphans and handles poweroff/reboot.
exec /bin/init
