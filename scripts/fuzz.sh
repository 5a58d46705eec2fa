#!/usr/bin/env bash
# Runs every Go fuzz target in the module for the given time each (default 3s).
# `go test -fuzz` accepts one target at a time, so targets are discovered and run one by one.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${1:-3s}
found=0
while IFS= read -r file; do
	dir=$(dirname "$file")
	for target in $(grep -oE '^func (Fuzz[A-Za-z0-9_]+)' "$file" | awk '{print $2}'); do
		found=$((found + 1))
		echo "fuzz: $dir $target ($fuzztime)"
		go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "./$dir"
	done
done < <(grep -rl --include='*_test.go' -E '^func Fuzz' . | sort)
echo "fuzz: $found targets passed"
