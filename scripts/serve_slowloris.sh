#!/usr/bin/env bash
# Slow clients against `intent serve`: p99 of /v1/predict (one client, one text a request)
# without, then with N half-open connections held by a slowloris attacker, in the same sitting.
# usage: scripts/serve_slowloris.sh MODEL_DIR [TEXTS_FILE] [CONNECTIONS] [ROUNDS]
# Needs release builds: cargo build --release -p intent-cli -p xtask
set -euo pipefail
model=${1:?usage: scripts/serve_slowloris.sh MODEL_DIR [TEXTS_FILE] [CONNECTIONS] [ROUNDS]}
texts=${2:-}
conns=${3:-1000}
rounds=${4:-3}
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$root/target/release
work=$(mktemp -d)
"$bin/intent" serve --model "$model" --addr 127.0.0.1:18090 --query-log "$work/q.sqlite" \
    --http-threads 1 2>"$work/serve.log" &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 100); do curl -sf 127.0.0.1:18090/ready >/dev/null && break; sleep 0.1; done
for r in $(seq "$rounds"); do
    echo "round $r"
    "$bin/xtask" loadtest --url http://127.0.0.1:18090 --clients 1 --seconds 10 ${texts:+--texts "$texts"}
    "$bin/xtask" loadtest --url http://127.0.0.1:18090 --clients 1 --seconds 10 ${texts:+--texts "$texts"} \
        --slowloris "$conns"
done
