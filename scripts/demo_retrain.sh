#!/usr/bin/env bash
# End-to-end: serve a registry model, send queries under load, label the low-confidence ones
# through the admin API, export them, run `intent retrain`, and watch the server switch to the
# new version with no failed request. Uses the example data embedded in the binary.
# usage: scripts/demo_retrain.sh        (release builds: cargo build --release -p intent-cli -p xtask)
set -euo pipefail
bin=$(cd "$(dirname "$0")/.." && pwd)/target/release
W=$(mktemp -d)
port=18095
export INTENT_ADMIN_TOKEN=$(head -c 24 /dev/urandom | base64)
url=http://127.0.0.1:$port
auth="authorization: Bearer $INTENT_ADMIN_TOKEN"
cleanup() { [ -n "${srv:-}" ] && kill -TERM "$srv" 2>/dev/null; wait 2>/dev/null; rm -rf "$W"; }
trap cleanup EXIT
cd "$W"

echo "== 1. train on the embedded example data, register as faq version 1"
"$bin/intent" pipeline --models-dir trained --quiet >/dev/null
"$bin/intent" models register faq trained/example/versions/1 --promote

echo "== 2. serve models/faq@current (a demo threshold of 0.9999: nearly every prediction goes to the labeling queue)"
"$bin/intent" serve --model models/faq@current --addr 127.0.0.1:$port --query-log q.sqlite --fallback-threshold 0.9999 2>serve.log &
srv=$!
for _ in $(seq 100); do curl -sf $url/ready >/dev/null && break; sleep 0.1; done
curl -s $url/v1/models | python3 -c 'import json,sys; m=json.load(sys.stdin)["models"][0]; print("serving", m["name"], "version", m["version"])'

echo "== 3. background load for 20 s"
"$bin/xtask" loadtest --url $url --clients 4 --seconds 20 > load.txt &
load=$!

echo "== 4. queries the model is unsure of, with the labels a person would give"
cat > truth.tsv <<'TSV'
could you suggest a novel for my vacation	book_recommendation
i would like to stop my purchase before it ships	cancel_order
the courier lost my parcel and nobody answers	complaint
can i top up a present card online	gift_card
see you around, bye	goodbye
hey there good morning	greeting
please put me through to a real person	human_agent
has my package left the warehouse	order_status
do you take apple pay	payment_methods
i cannot sign in, forgot my login	reset_password
how do i send these shoes back	return_item
how many days until my parcel arrives	shipping_time
are you open on sunday evening	store_hours
cheers, that helped a lot	thanks
i moved, please change my delivery address	update_address
TSV
while IFS=$'\t' read -r text label; do
    curl -s $url/v1/predict -H 'content-type: application/json' -d "{\"text\": \"$text\"}" \
      | python3 -c 'import json,sys; p=json.load(sys.stdin); print("  %-20s %.2f fallback=%s" % (p["label"], p["confidence"], p["fallback"]))'
done < truth.tsv
sleep 0.5

echo "== 5. label the queue through the admin API, export"
curl -s "$url/admin/labeling/queue?limit=100" -H "$auth" > queue.json
python3 - "$url" "$INTENT_ADMIN_TOKEN" <<'PY'
import json, sys, urllib.request
url, token = sys.argv[1], sys.argv[2]
truth = dict(l.rstrip("\n").split("\t") for l in open("truth.tsv"))
n = 0
for item in json.load(open("queue.json"))["items"]:
    label = truth.get(item["text"])
    if label:
        req = urllib.request.Request(f"{url}/admin/labeling/{item['id']}", data=json.dumps({"label": label}).encode(),
                                     headers={"authorization": f"Bearer {token}", "content-type": "application/json"})
        urllib.request.urlopen(req).read(); n += 1
print(f"  labeled {n} queued queries")
PY
mkdir -p labeled
curl -s "$url/admin/labeling/export?format=jsonl" -H "$auth" > labeled/export.jsonl
echo "  exported $(wc -l < labeled/export.jsonl) labeled examples"

echo "== 6. intent retrain (tells the server to reload)"
cat > retrain.toml <<TOML
model = "faq"
kind = "mlp"
base_data = "trained/example/versions/1/data/train.jsonl"
new_data = ["labeled"]
holdout = "trained/example/versions/1/data/test.jsonl"
[triggers]
min_new_samples = 5
[gate]
min_overall = 0.8
max_regression = 0.02
[server]
url = "$url"
TOML
"$bin/intent" retrain --config retrain.toml | head -1
"$bin/intent" models list faq

echo "== 7. the server now"
curl -s $url/v1/models | python3 -c 'import json,sys; m=json.load(sys.stdin); print("serving", m["models"][0]["name"], "version", m["models"][0]["version"], "- swaps:", m["swaps"])'
wait $load
cat load.txt | head -1
