#!/usr/bin/env bash
# NeuMF on MovieLens-100k over several training seeds, evaluated on the test set of the PyTorch
# anchor (../shared/anchors/torch_ncf.py: its split and its 99 negatives per user, seed 2025), so
# that the spread between seeds and the gap to the reference are measured on the same test items.
#
# usage: scripts/ncf_seed_study.sh [SEED ...]        (default: 1 2 3 4 5 6)
# env:   DATA=../shared/datasets/ml-100k/u.data  INTENT=target/release/intent
#        REF_PYTHON=python-with-torch  (optional: also trains the anchor with each seed)
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/datasets/ml-100k/u.data}
INTENT=${INTENT:-target/release/intent}
if [ $# -gt 0 ]; then SEEDS=("$@"); else SEEDS=(1 2 3 4 5 6); fi
[ -f "$DATA" ] || { echo "error: $DATA: no such file (set DATA to MovieLens-100k's u.data)" >&2; exit 2; }
[ -x "$INTENT" ] || { echo "error: $INTENT: not built (cargo build --release -p intent-cli, or set INTENT)" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 scripts/ncf_reference_negatives.py "$DATA" "$work/test.negative" 2025
median() { sort -g | awk '{v[NR]=$1} END{print (NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2)}'; }
for s in "${SEEDS[@]}"; do
  "$INTENT" -q train ncf --train "$DATA" --out "$work/m$s" --seed "$s" --test-negatives-file "$work/test.negative" > /dev/null
  python3 -c "import json,sys; m=json.load(open(sys.argv[1])); print(sys.argv[2], round(m['hr@10'], 4), round(m['ndcg@10'], 4))" "$work/m$s/metrics.json" "$s" >> "$work/intent.txt"
  rm -rf "$work/m$s"
done
echo "intent  (seed HR@10 NDCG@10):"; sed 's/^/  /' "$work/intent.txt"
echo "intent  median HR@10 $(cut -d' ' -f2 "$work/intent.txt" | median)  NDCG@10 $(cut -d' ' -f3 "$work/intent.txt" | median)"
if [ -n "${REF_PYTHON:-}" ]; then
  # The anchor draws its negatives from seed 2025 first; re-seeding right after them varies only
  # the training (initialisation, sampled negatives, batch order).
  sed -e "s|sys.path.insert(0, os.path.dirname(__file__))|sys.path.insert(0, '$PWD/../shared/anchors')|" \
      -e "s|^class NeuMF|s_ = int(os.environ['TRAIN_SEED']); random.seed(s_); np.random.seed(s_); torch.manual_seed(s_)\nclass NeuMF|" \
      ../shared/anchors/torch_ncf.py > "$work/torch_ncf_seeded.py"
  grep -q TRAIN_SEED "$work/torch_ncf_seeded.py" || { echo "error: ../shared/anchors/torch_ncf.py changed: no 'class NeuMF' line to re-seed before" >&2; exit 1; }
  for s in "${SEEDS[@]}"; do
    TRAIN_SEED=$s "$REF_PYTHON" "$work/torch_ncf_seeded.py" 20 | tail -1 | sed -E "s/.*HR@10=([0-9.]+) NDCG@10=([0-9.]+).*/$s \1 \2/" >> "$work/torch.txt"
  done
  echo "pytorch (seed HR@10 NDCG@10):"; sed 's/^/  /' "$work/torch.txt"
  echo "pytorch median HR@10 $(cut -d' ' -f2 "$work/torch.txt" | median)  NDCG@10 $(cut -d' ' -f3 "$work/torch.txt" | median)"
fi
