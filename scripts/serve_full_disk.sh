#!/usr/bin/env bash
# The query log's disk fills up under `intent serve`: p99 of /v1/predict (one client) with room on
# the disk, then with the disk filled by another file; /ready and the dropped rows; recovery once
# the file goes; how long SIGTERM takes with the disk full. Mounts a 64 MiB tmpfs: run as root.
# usage: scripts/serve_full_disk.sh MODEL_DIR [TEXTS_FILE] [ROUNDS]
# Needs release builds: cargo build --release -p intent-cli -p xtask
set -euo pipefail
model=${1:?usage: scripts/serve_full_disk.sh MODEL_DIR [TEXTS_FILE] [ROUNDS]}
texts=${2:-}
rounds=${3:-3}
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$root/target/release
disk=$(mktemp -d)
mount -t tmpfs -o size=64m tmpfs "$disk"
"$bin/intent" serve --model "$model" --addr 127.0.0.1:18091 --query-log "$disk/q.sqlite" \
    --http-threads 1 2>"$disk.log" &
pid=$!
trap 'kill $pid 2>/dev/null || true; sleep 1; umount "$disk"; rm -rf "$disk" "$disk.log"' EXIT
for _ in $(seq 100); do curl -sf 127.0.0.1:18091/ready >/dev/null && break; sleep 0.1; done
load() { "$bin/xtask" loadtest --url http://127.0.0.1:18091 --clients 1 --seconds "$1" ${texts:+--texts "$texts"}; }
for r in $(seq "$rounds"); do
    echo "round $r: room on the disk"; load 10
    dd if=/dev/zero of="$disk/fill" bs=1M 2>/dev/null || true
    echo "round $r: disk full ($(df -h "$disk" | tail -1 | awk '{print $5}') used)"; load 10
    curl -s 127.0.0.1:18091/ready; echo
    curl -s 127.0.0.1:18091/metrics | grep -E "^intent_query_log"
    rm -f "$disk/fill"; sleep 2
    echo "file removed: $(curl -s 127.0.0.1:18091/ready)"
    sqlite3 "$disk/q.sqlite" "DELETE FROM queries; PRAGMA wal_checkpoint(TRUNCATE);" >/dev/null
done
dd if=/dev/zero of="$disk/fill" bs=1M 2>/dev/null || true
load 3 >/dev/null
start=$(date +%s.%N); kill -TERM $pid; wait $pid || true; end=$(date +%s.%N)
echo "SIGTERM with the disk full: the process ended after $(echo "$end - $start" | bc) s"
grep -E "lost at shutdown" "$disk.log" | tail -1
