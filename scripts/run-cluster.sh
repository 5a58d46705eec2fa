#!/usr/bin/env bash
# Starts a local replichat cluster of $REPLICAS chatd processes (default 3) on 127.0.0.1:7100..,
# each with its data under ./data/<id> and its log in ./data/<id>.log. Ctrl-C (or SIGTERM) stops
# every replica that is running then. Replicas may be crashed and restarted meanwhile with
# scripts/replica.sh (a failover demo). Extra arguments go to every chatd (e.g. --log-level debug).
# A replica that cannot start (its log says why) stops them all, with that line on stderr.
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

stop_all() {
	trap - INT TERM EXIT
	echo
	echo "run-cluster: stopping the cluster"
	for ((i = 0; i < replicas; i++)); do
		[ -f "data/$i.pid" ] && kill -TERM "$(cat "data/$i.pid")" 2>/dev/null || true
	done
	for ((i = 0; i < replicas; i++)); do
		pid=$(cat "data/$i.pid" 2>/dev/null || true)
		while [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
		rm -f "data/$i.pid"
	done
}
trap stop_all INT TERM EXIT

for ((i = 0; i < replicas; i++)); do
	"$bin" --id "$i" --data "data/$i" --peers "$peers" "$@" 2>>"data/$i.log" &
	echo $! >"data/$i.pid"
	echo "run-cluster: replica $i on 127.0.0.1:$((base_port + i)) (pid $!, data ./data/$i, log ./data/$i.log)"
done
# A replica that cannot start (a port in use, data written by a cluster of other replicas, a
# missing secret file) exits at once with one line in its log: show it rather than wait forever.
sleep 1
failed=0
for ((i = 0; i < replicas; i++)); do
	if ! kill -0 "$(cat "data/$i.pid")" 2>/dev/null; then
		why=$(tail -n 1 "data/$i.log")
		echo "run-cluster: replica $i failed to start: $why" >&2
		case "$why" in
		*"belongs to a cluster of"*)
			echo "run-cluster: ./data holds a cluster of another size: run it with that REPLICAS, or move ./data away for a new cluster" >&2
			;;
		esac
		rm -f "data/$i.pid"
		failed=1
	fi
done
if [ "$failed" = 1 ]; then
	exit 1 # stop_all stops the others
fi
# For scripts/replica.sh: how to start a replica of this cluster again.
echo "$peers" >data/peers
echo "run-cluster: try: CHAT_PASSWORD=secret ./bin/chat --user alice register"
echo "run-cluster: crash, stop and restart replicas with: scripts/replica.sh kill|stop|start ID"
echo "run-cluster: Ctrl-C stops the cluster"
while :; do sleep 1; done
