"""Agreement of a folder written by `intent train bert` with Python transformers.

usage: python scripts/hf_agreement.py MODEL_DIR TEST_JSONL INTENT_PREDICTIONS_JSONL

MODEL_DIR is loaded with AutoModelForSequenceClassification / AutoTokenizer (max_length = the
`max_len` in MODEL_DIR/intent.json, else 64); TEST_JSONL is labeled JSONL ({"text", "label"});
INTENT_PREDICTIONS_JSONL is `intent predict --model MODEL_DIR < texts` for the same texts, one
per line in the same order. Prints the share of identical labels, both accuracies and the
largest probability difference. Single-label models.
"""
import json, sys
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

mdir, test, preds = sys.argv[1:4]
rows = [json.loads(l) for l in open(test) if l.strip()]
ours = [json.loads(l) for l in open(preds) if l.strip()]
assert len(rows) == len(ours), f"{len(rows)} test rows but {len(ours)} predictions"
try:
    max_len = json.load(open(f"{mdir}/intent.json"))["architecture"]["max_len"]
except (OSError, KeyError):
    max_len = 64
tok = AutoTokenizer.from_pretrained(mdir)
model = AutoModelForSequenceClassification.from_pretrained(mdir).eval()
id2label = model.config.id2label
same = right_hf = right_ours = 0
worst = 0.0
with torch.no_grad():
    for k in range(0, len(rows), 128):
        chunk = rows[k:k + 128]
        b = tok([r["text"] for r in chunk], padding=True, truncation=True, max_length=max_len, return_tensors="pt")
        p = model(**b).logits.softmax(-1)
        for r, q, o in zip(chunk, p, ours[k:k + 128]):
            label = id2label[int(q.argmax())]
            same += label == o["label"]
            right_hf += label == r["label"]
            right_ours += o["label"] == r["label"]
            worst = max(worst, abs(float(q.max()) - o["confidence"]))
n = len(rows)
print(f"{n} texts: identical labels {same}/{n} = {same / n:.4%}; accuracy transformers {right_hf / n:.4f}, intent {right_ours / n:.4f}; max |confidence diff| {worst:.2e}")
