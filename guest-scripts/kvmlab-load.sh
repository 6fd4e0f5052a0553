#!/bin/sh
# kvmlab-load: tiny load generator the experiments run inside guests.
#   kvmlab-load busy CPU SECONDS   busy loop pinned to CPU, in the background, for
#                                  SECONDS (0 = until stopped); prints its pid
#   kvmlab-load stop               kill every load kvmlab-load started
PIDS=/run/kvmlab-load.pids
usage() { echo "usage: kvmlab-load busy CPU SECONDS | stop" >&2; exit 2; }

case "$1" in
busy)
	cpu=$2 secs=$3
	case "$cpu" in '' | *[!0-9]*) usage ;; esac
	case "$secs" in '' | *[!0-9]*) usage ;; esac
	taskset -c "$cpu" true || exit 1
	if [ "$secs" -gt 0 ]; then
		taskset -c "$cpu" timeout "$secs" sh -c 'trap "" HUP; while :; do :; done' </dev/null >/dev/null 2>&1 &
	else
		taskset -c "$cpu" sh -c 'trap "" HUP; while :; do :; done' </dev/null >/dev/null 2>&1 &
	fi
	echo $! >>"$PIDS"
	echo $!
	;;
stop)
	[ -f "$PIDS" ] && kill $(cat "$PIDS") 2>/dev/null
	rm -f "$PIDS"
	exit 0
	;;
*) usage ;;
esac
