#!/usr/bin/env bash
# Zero-shot accuracy with label names as descriptions: before (old rule: `_`/`-` as spaces) and
# after (label_words) on BANKING77, CLINC150 (in-scope test) and BANKING77 with CamelCase labels.
set -euo pipefail
I=${INTENT:-target/release/intent}
S=${DATASETS:-../shared/datasets}
E=${ENCODER:-models/all-MiniLM-L6-v2}
OUT=${1:-zs-label-words}; mkdir -p "$OUT"; I=$(realpath "$I"); S=$(realpath "$S"); E=$(realpath "$E"); cd "$OUT"
mkdir -p b77 clinc b77camel
$I -q data import --format banking77 $S/banking77/test.csv --out b77/test.jsonl
$I -q data import --format clinc150 $S/clinc150/data_full.json --splits test --out clinc/test.jsonl
python3 - <<'PY'
import json
out = open('b77camel/test.jsonl', 'w')
for line in open('b77/test.jsonl'):
    r = json.loads(line)
    r['label'] = ''.join(w.capitalize() for w in r['label'].split('_'))
    out.write(json.dumps(r) + '\n')
PY
for d in b77 clinc b77camel; do
    python3 - "$d" <<'PY'
import json, sys
d = sys.argv[1]
labels = sorted({json.loads(l)['label'] for l in open(f'{d}/test.jsonl')})
old = {l: "This question is about {label}".replace("{label}", l.replace('_', ' ').replace('-', ' ')) for l in labels}
json.dump(old, open(f'{d}/before.json', 'w'), indent=1)
PY
    $I -q zero-shot --encoder $E --labels $d/before.json --out $d/zs-before 2>/dev/null >/dev/null
    $I -q zero-shot --encoder $E --labels-from $d/test.jsonl --out $d/zs-after 2> $d/after-descriptions.txt >/dev/null
    echo "== $d before"; $I -q eval --model $d/zs-before --data $d/test.jsonl | grep -E "^(accuracy|macro F1)"
    echo "== $d after";  $I -q eval --model $d/zs-after --data $d/test.jsonl | grep -E "^(accuracy|macro F1)"
    head -3 $d/after-descriptions.txt
done
