#!/usr/bin/env bash
# Same-sitting comparison of two `intent` binaries on BANKING77: MLP and SVM test accuracy, MLP
# median seconds per epoch and SVM fit seconds, in interleaved rounds.
#   scripts/compare_b77.sh OLD_BINARY NEW_BINARY [ROUNDS] [WORKDIR]
# Data from ../shared/datasets/banking77 (or $INTENT_DATASETS/banking77).
set -euo pipefail
old=${1:?usage: compare_b77.sh OLD_BINARY NEW_BINARY [ROUNDS] [WORKDIR]}
new=${2:?usage: compare_b77.sh OLD_BINARY NEW_BINARY [ROUNDS] [WORKDIR]}
rounds=${3:-3}
work=${4:-$(mktemp -d)}
data=${INTENT_DATASETS:-$(cd "$(dirname "$0")/../.." && pwd)/shared/datasets}/banking77
for f in "$old" "$new"; do [ -x "$f" ] || { echo "not an executable: $f" >&2; exit 2; }; done
[ -f "$data/train.csv" ] || { echo "no $data/train.csv (set INTENT_DATASETS)" >&2; exit 2; }
mkdir -p "$work" && cd "$work"
"$new" -q data import --format banking77 "$data/train.csv" --out b77/train.jsonl
"$new" -q data import --format banking77 "$data/test.csv" --out b77/test.jsonl
for r in $(seq "$rounds"); do
  for v in old new; do
    b=$old; [ $v = new ] && b=$new
    rm -rf "$v-mlp-$r" "$v-svm-$r"
    "$b" -q train mlp --train b77/train.jsonl --test b77/test.jsonl --out "$v-mlp-$r" --epochs 15 \
      --no-early-stopping 2>&1 | grep -E "saved|^accuracy" | sed "s/^/$v round $r mlp: /"
    "$b" -q train svm --train b77/train.jsonl --test b77/test.jsonl --out "$v-svm-$r" 2>&1 \
      | grep -E "saved|^accuracy" | sed "s/^/$v round $r svm: /"
  done
done
echo "work folder: $work"
