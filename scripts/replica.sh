#!/usr/bin/env bash
# Crash or restart one replica of the cluster started by `make run`, for a failover demo.
#   scripts/replica.sh kill ID    SIGKILL replica ID (a crash: no clean shutdown)
#   scripts/replica.sh start ID   start replica ID again on its data (it catches up and rejoins)
#   scripts/replica.sh status     print the cluster's status
set -euo pipefail
cd "$(dirname "$0")/.."
cmd=${1:-}
id=${2:-}
case "$cmd" in
kill)
	[ -n "$id" ] || { echo "usage: $0 kill ID" >&2; exit 2; }
	pid=$(cat "data/$id.pid" 2>/dev/null || true)
	if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then
		echo "replica $id is not running" >&2
		exit 1
	fi
	kill -KILL "$pid"
	echo "replica $id (pid $pid) killed with SIGKILL"
	;;
start)
	[ -n "$id" ] || { echo "usage: $0 start ID" >&2; exit 2; }
	pid=$(cat "data/$id.pid" 2>/dev/null || true)
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		echo "replica $id is already running (pid $pid)" >&2
		exit 1
	fi
	peers=$(cat data/peers 2>/dev/null || true)
	[ -n "$peers" ] || { echo "no data/peers: start the cluster with 'make run' first" >&2; exit 1; }
	nohup ./bin/chatd --id "$id" --data "data/$id" --peers "$peers" 2>>"data/$id.log" >/dev/null &
	echo $! >"data/$id.pid"
	echo "replica $id started (pid $!, log data/$id.log)"
	;;
status)
	servers=$(cut -d, -f1- data/peers | tr ',' '\n' | cut -d= -f2 | paste -sd, -)
	./bin/chat --servers "$servers" status
	;;
*)
	echo "usage: $0 kill ID | start ID | status" >&2
	exit 2
	;;
esac
