#!/usr/bin/env bash
# Crash, stop or restart one replica of the cluster started by `make run`, for a failover demo.
#   scripts/replica.sh kill ID    SIGKILL replica ID (a crash: no clean shutdown); returns once it is gone
#   scripts/replica.sh stop ID    SIGTERM replica ID (a clean shutdown); returns once it is gone
#   scripts/replica.sh start ID   start replica ID again on its data (it catches up and rejoins)
#   scripts/replica.sh status     print the cluster's status (exit 0 healthy, 3 degraded, 1 no primary)
set -euo pipefail
cd "$(dirname "$0")/.."
cmd=${1:-}
id=${2:-}

# wait_gone PID SECONDS: wait until the process is gone; 1 if it is still there after SECONDS.
wait_gone() {
	local pid=$1 tries=$(($2 * 10))
	while kill -0 "$pid" 2>/dev/null; do
		# A process killed by us but not yet reaped by its parent is a zombie: as good as gone.
		if [ "$(ps -o stat= -p "$pid" 2>/dev/null | cut -c1)" = "Z" ]; then
			return 0
		fi
		tries=$((tries - 1))
		[ "$tries" -gt 0 ] || return 1
		sleep 0.1
	done
}

# running_pid ID: the pid of replica ID if it runs, else nothing (and status 1).
running_pid() {
	local pid
	pid=$(cat "data/$1.pid" 2>/dev/null || true)
	if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then
		return 1
	fi
	echo "$pid"
}

case "$cmd" in
kill | stop)
	[ -n "$id" ] || { echo "usage: $0 $cmd ID" >&2; exit 2; }
	pid=$(running_pid "$id") || { echo "replica $id is not running" >&2; exit 1; }
	if [ "$cmd" = kill ]; then
		kill -KILL "$pid"
		wait_gone "$pid" 10 || { echo "replica $id (pid $pid) still there 10s after SIGKILL" >&2; exit 1; }
		echo "replica $id (pid $pid) killed with SIGKILL"
	else
		kill -TERM "$pid"
		if ! wait_gone "$pid" 30; then
			echo "replica $id (pid $pid) did not stop within 30s of SIGTERM; 'scripts/replica.sh kill $id' crashes it" >&2
			exit 1
		fi
		echo "replica $id (pid $pid) stopped"
	fi
	;;
start)
	[ -n "$id" ] || { echo "usage: $0 start ID" >&2; exit 2; }
	if pid=$(running_pid "$id"); then
		echo "replica $id is already running (pid $pid)" >&2
		exit 1
	fi
	peers=$(cat data/peers 2>/dev/null || true)
	[ -n "$peers" ] || { echo "no data/peers: start the cluster with 'make run' first" >&2; exit 1; }
	nohup ./bin/chatd --id "$id" --data "data/$id" --peers "$peers" 2>>"data/$id.log" >/dev/null &
	pid=$!
	echo "$pid" >"data/$id.pid"
	# A replica that cannot start (its data belongs to another cluster, say) exits at once: say why.
	sleep 0.5
	if ! kill -0 "$pid" 2>/dev/null; then
		echo "replica $id failed to start: $(tail -n 1 "data/$id.log")" >&2
		rm -f "data/$id.pid"
		exit 1
	fi
	echo "replica $id started (pid $pid, log data/$id.log)"
	;;
status)
	[ -f data/peers ] || { echo "no data/peers: start the cluster with 'make run' first" >&2; exit 1; }
	servers=$(tr ',' '\n' <data/peers | cut -d= -f2 | paste -sd, -)
	exec ./bin/chat --servers "$servers" status
	;;
*)
	echo "usage: $0 kill ID | stop ID | start ID | status" >&2
	exit 2
	;;
esac
