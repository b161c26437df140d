#!/usr/bin/env bash
# The fine-tuning guide's loop, end to end, on the example data embedded in the binary:
#  1. a zero-shot model made from the label names (no training data yet) is version 1;
#  2. `intent serve` answers user queries under background load and queues the unsure ones;
#  3. a person labels the queue through the admin API;
#  4. `POST /admin/retrain`: every label now has enough examples, so the retrain fine-tunes
#     BERT ([bootstrap]), validates it on the held-out set against the zero-shot model, and the
#     server swaps to it;
#  5. the history shows zero-shot → bert with both held-out scores; the load saw no failure.
# usage: scripts/demo_bert_loop.sh [ENCODER_DIR]
#   (release build: cargo build --release -p intent-cli; the encoder defaults to
#   models/all-MiniLM-L6-v2 from `cargo xtask fetch-model minilm`)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$root/target/release
encoder=$(realpath "${1:-$root/models/all-MiniLM-L6-v2}")
W=$(mktemp -d)
port=${PORT:-18096}
export INTENT_ADMIN_TOKEN=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
url=http://127.0.0.1:$port
auth="authorization: Bearer $INTENT_ADMIN_TOKEN"
cleanup() {
    touch "$W/stop"
    [ -n "${srv:-}" ] && kill -TERM "$srv" 2>/dev/null
    wait 2>/dev/null
    [ -n "${KEEP:-}" ] && echo "kept $W" || rm -rf "$W"
}
trap cleanup EXIT
cd "$W"
t0=$(date +%s)
stamp() { echo "[$(( $(date +%s) - t0 )) s] $*"; }

stamp "== 0. the example data: held-out set, 2 seed examples per label, user queries"
"$bin/intent" pipeline --models-dir split --quiet >/dev/null
python3 - <<'PY'
import json, collections
rows = [json.loads(l) for l in open("split/example/versions/1/data/train.jsonl")]
seen, seed, queries = collections.Counter(), [], []
for r in rows:
    (seed if seen[r["label"]] < 2 else queries).append(r)
    seen[r["label"]] += 1
with open("seed.jsonl", "w") as f:
    f.writelines(json.dumps(r) + "\n" for r in seed)
with open("queries.jsonl", "w") as f:
    f.writelines(json.dumps(r) + "\n" for r in queries)
print(f"  {len(seed)} seed examples, {len(queries)} user queries, "
      f"{sum(1 for _ in open('split/example/versions/1/data/test.jsonl'))} held-out examples, {len(seen)} labels")
PY

cat > retrain.toml <<TOML
model = "faq"
kind = "zero-shot"
base_data = "seed.jsonl"
holdout = "split/example/versions/1/data/test.jsonl"
[triggers]
min_new_samples = 100000   # only the bootstrap (or --force) starts a run in this demo
[gate]
min_overall = 0.8
max_regression = 0.02
[train]
encoder = "$encoder"
[bootstrap]
kind = "bert"
min_per_label = 12
[bootstrap.train]
base = "$encoder"
epochs = 6
lr = 1e-4
min_steps = 1
TOML

stamp "== 1. version 1: zero-shot from the label names"
"$bin/intent" retrain --config retrain.toml | head -1
# From now on the retrain pulls the labels from the server (no server to reload before this).
printf '[server]\nurl = "%s"\npull_labels = true\n' "$url" >> retrain.toml

stamp "== 2. serve models/faq@current (demo threshold 0.99: unsure answers are queued for labeling)"
"$bin/intent" serve --model models/faq@current --addr 127.0.0.1:$port --query-log q.sqlite \
    --fallback-threshold 0.99 --retrain-config retrain.toml 2>serve.log &
srv=$!
for _ in $(seq 300); do curl -sf $url/ready >/dev/null && break; sleep 0.1; done
curl -s $url/v1/models | python3 -c 'import json,sys; m=json.load(sys.stdin)["models"][0]; print("  serving", m["name"], "version", m["version"])'

stamp "== 3. background load (2 clients) until the end of the demo"
python3 - "$url" <<'PY' &
import json, sys, threading, time, urllib.request, os
url = sys.argv[1]
texts = [json.loads(l)["text"] for l in open("split/example/versions/1/data/test.jsonl")]
counts = {"ok": 0, "failed": 0, "errors": []}
lock = threading.Lock()
def client(k):
    i = k
    while not os.path.exists("stop"):
        body = json.dumps({"text": texts[i % len(texts)]}).encode()
        i += 7
        try:
            req = urllib.request.Request(url + "/v1/predict", data=body, headers={"content-type": "application/json"})
            urllib.request.urlopen(req, timeout=30).read()
            with lock: counts["ok"] += 1
        except Exception as e:
            with lock:
                counts["failed"] += 1
                if len(counts["errors"]) < 3: counts["errors"].append(str(e))
        time.sleep(0.02)
threads = [threading.Thread(target=client, args=(k,)) for k in range(2)]
for t in threads: t.start()
for t in threads: t.join()
json.dump(counts, open("load.json", "w"))
PY
loader=$!

stamp "== 4. the user queries (zero-shot answers)"
python3 - "$url" <<'PY'
import json, sys, urllib.request
url = sys.argv[1]
rows = [json.loads(l) for l in open("queries.jsonl")]
right = 0
for r in rows:
    req = urllib.request.Request(url + "/v1/predict", data=json.dumps({"text": r["text"]}).encode(),
                                 headers={"content-type": "application/json"})
    p = json.load(urllib.request.urlopen(req))
    right += p["label"] == r["label"]
print(f"  {len(rows)} queries, zero-shot right on {right} ({right / len(rows):.3f})")
PY
sleep 1

stamp "== 5. a person labels the queue through the admin API"
python3 - "$url" "$INTENT_ADMIN_TOKEN" <<'PY'
import json, sys, urllib.request
url, token = sys.argv[1], sys.argv[2]
h = {"authorization": f"Bearer {token}", "content-type": "application/json"}
truth = {json.loads(l)["text"]: json.loads(l)["label"] for l in open("queries.jsonl")}
items = json.load(urllib.request.urlopen(urllib.request.Request(f"{url}/admin/labeling/queue?limit=1000", headers=h)))["items"]
n = 0
for item in items:
    label = truth.get(item["text"])
    if label:
        req = urllib.request.Request(f"{url}/admin/labeling/{item['id']}", data=json.dumps({"label": label}).encode(), headers=h)
        urllib.request.urlopen(req).read()
        n += 1
print(f"  {len(items)} queued, {n} labeled")
PY

stamp "== 6. POST /admin/retrain (the server pulls the labels, fine-tunes BERT in the background, keeps answering)"
job=$(curl -s -X POST $url/admin/retrain -H "$auth" -H 'content-type: application/json' -d '{}')
echo "  $job"
status_url=$(echo "$job" | python3 -c 'import json,sys; print(json.load(sys.stdin)["status_url"])')
last=""
while :; do
    s=$(curl -s "$url$status_url" -H "$auth")
    state=$(echo "$s" | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])')
    progress=$(echo "$s" | python3 -c 'import json,sys; print(json.load(sys.stdin).get("progress") or "")')
    if [ "$state" = running ] && [ "$progress" != "$last" ]; then stamp "  $state: $progress"; last=$progress; fi
    if [ "$state" != running ]; then
        stamp "  $state: $(echo "$s" | python3 -c 'import json,sys; print(json.load(sys.stdin)["outcome"]["reason"])')"
        break
    fi
    sleep 2
done

stamp "== 7. the server now, the history, the load"
curl -s $url/v1/models | python3 -c 'import json,sys; m=json.load(sys.stdin); print("  serving", m["models"][0]["name"], "version", m["models"][0]["version"], "- swaps:", m["swaps"])'
python3 - <<'PY'
import json
for l in open("retrain/retrain_history.jsonl"):
    h = json.loads(l)
    s = h.get("scores") or {}
    print(f"  {h['status']:9} {h.get('kind_before') or '-':>9} → {h.get('kind') or '-':9} held-out "
          f"before {s.get('current')} after {s.get('candidate')}  ({h['reason'][:80]})")
PY
touch stop
wait $loader
python3 -c 'import json; c=json.load(open("load.json")); print("  background load: %d requests answered, %d failed" % (c["ok"], c["failed"]), c["errors"] or "")'
curl -s $url/metrics | grep -E '^intent_retrains_total' | sed 's/^/  /'
stamp "done"
