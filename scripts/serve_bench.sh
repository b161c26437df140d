#!/usr/bin/env bash
# Throughput and latency of `intent serve` at several client counts (closed loop, loopback).
# usage: scripts/serve_bench.sh MODEL_DIR TEXTS_FILE [SECONDS] [REPEATS] [CLIENTS...]
# Needs release builds: cargo build --release -p intent-cli -p xtask. Prints one line per run.
set -euo pipefail
model=${1:?usage: scripts/serve_bench.sh MODEL_DIR TEXTS_FILE [SECONDS] [REPEATS] [CLIENTS...]}
texts=${2:?texts file}
seconds=${3:-10}
repeats=${4:-3}
shift $(( $# < 4 ? $# : 4 ))
clients=${*:-1 8 64}
bin=$(cd "$(dirname "$0")/.." && pwd)/target/release
work=$(mktemp -d)
"$bin/intent" serve --model "$model" --addr 127.0.0.1:18090 --query-log "$work/q.sqlite" >"$work/serve.log" 2>&1 &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 300); do curl -sf 127.0.0.1:18090/ready >/dev/null && break; sleep 0.1; done
curl -sf 127.0.0.1:18090/ready >/dev/null || { cat "$work/serve.log"; exit 1; }
# Warm-up.
"$bin/xtask" loadtest --url http://127.0.0.1:18090 --clients 8 --seconds 2 --texts "$texts" >/dev/null
for c in $clients; do
    for r in $(seq "$repeats"); do
        "$bin/xtask" loadtest --url http://127.0.0.1:18090 --clients "$c" --seconds "$seconds" --texts "$texts" | head -1
    done
done
