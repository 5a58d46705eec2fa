#!/usr/bin/env bash
# Starts a local replichat cluster of $REPLICAS chatd processes (default 3) on 127.0.0.1:7100..,
# each with its data under ./data/<id>, logs under ./data/<id>.log. Ctrl-C (or SIGTERM) stops all.
# Extra arguments are passed to every chatd (e.g. --failover-timeout 2s).
set -euo pipefail
cd "$(dirname "$0")/.."
replicas=${REPLICAS:-3}
base_port=${BASE_PORT:-7100}
bin=./bin/chatd
[ -x "$bin" ] || { echo "run-cluster: $bin missing; run 'make build'" >&2; exit 1; }
mkdir -p data

peers=""
for ((i = 0; i < replicas; i++)); do
	peers+="${peers:+,}$i=127.0.0.1:$((base_port + i))"
done

pids=()
stop() {
	trap - INT TERM EXIT
	echo
	echo "run-cluster: stopping ${#pids[@]} replicas"
	kill -TERM "${pids[@]}" 2>/dev/null || true
	wait "${pids[@]}" 2>/dev/null || true
}
trap stop INT TERM EXIT

for ((i = 0; i < replicas; i++)); do
	if [ "$replicas" -eq 1 ]; then
		"$bin" --id 0 --data "data/0" --listen "127.0.0.1:$base_port" "$@" 2>"data/0.log" &
	else
		"$bin" --id "$i" --data "data/$i" --peers "$peers" "$@" 2>"data/$i.log" &
	fi
	pids+=($!)
	echo "run-cluster: replica $i on 127.0.0.1:$((base_port + i)) (pid $!, data ./data/$i, log ./data/$i.log)"
done
echo "run-cluster: try: CHAT_PASSWORD=secret ./bin/chat --user alice register"
echo "run-cluster: Ctrl-C stops the cluster"
# Returns when any replica exits (e.g. it was killed for a failover demo) only if all have exited.
while :; do
	alive=0
	for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=$((alive + 1)); done
	[ "$alive" -eq 0 ] && break
	sleep 1
done
