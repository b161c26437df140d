#!/usr/bin/env bash
# Crash test of the query log: `intent serve` under load is killed with SIGKILL, restarted on
# the same database, and the log is checked: SQLite integrity, rows vs answered requests.
# usage: scripts/serve_kill9.sh MODEL_DIR [TEXTS_FILE] [ROUNDS]
# Needs release builds: cargo build --release -p intent-cli -p xtask
set -euo pipefail
model=${1:?usage: scripts/serve_kill9.sh MODEL_DIR [TEXTS_FILE] [ROUNDS]}
texts=${2:-}
rounds=${3:-3}
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$root/target/release
work=$(mktemp -d)
trap 'pkill -KILL -f "intent serve --model $model --addr 127.0.0.1:18089" 2>/dev/null || true; rm -rf "$work"' EXIT
db=$work/q.sqlite
start_server() {
    "$bin/intent" serve --model "$model" --addr 127.0.0.1:18089 --query-log "$db" >>"$work/serve.log" 2>&1 &
    echo $! >"$work/pid"
    for _ in $(seq 100); do curl -sf 127.0.0.1:18089/ready >/dev/null && return 0; sleep 0.1; done
    echo "server did not start"; cat "$work/serve.log"; exit 1
}
answered=0
prev_rows=0
for r in $(seq "$rounds"); do
    start_server
    "$bin/xtask" loadtest --url http://127.0.0.1:18089 --clients 8 --seconds 4 ${texts:+--texts "$texts"} --json >"$work/load.txt" 2>&1 &
    load=$!
    sleep 2
    kill -KILL "$(cat "$work/pid")"
    wait "$(cat "$work/pid")" 2>/dev/null || true
    wait "$load" || true
    ok=$(tail -1 "$work/load.txt" | python3 -c 'import json,sys; print(json.load(sys.stdin)["ok"])')
    answered=$((answered + ok))
    rows=$(python3 -c "import sqlite3; c=sqlite3.connect('$db'); print(c.execute('pragma integrity_check').fetchone()[0], c.execute('select count(*) from queries').fetchone()[0])")
    n=${rows#* }
    echo "round $r: SIGKILL mid-load; $ok requests answered, $((n - prev_rows)) rows logged ($((ok - n + prev_rows)) answered but not logged); database: integrity ${rows% *}, $n rows in all"
    prev_rows=$n
done
start_server
curl -s 127.0.0.1:18089/v1/predict -H 'content-type: application/json' -d '{"text":"after the crash"}' >/dev/null
kill -TERM "$(cat "$work/pid")"; sleep 1
grep -E "rows, integrity" "$work/serve.log" | tail -1
