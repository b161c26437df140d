#!/usr/bin/env bash
# The one-call GPU check (issue 19), in two halves:
#
#   scripts/gpu_check.sh pack [DIR]   here, on the build machine (Rust, ../shared, models/):
#       builds `intent` with --features cuda (release), strips and xz-compresses it, writes the
#       all-MiniLM-L6-v2 weights as f16 safetensors (half the size), and copies BANKING77,
#       MovieLens-100k and the PyTorch GPU anchor into DIR (default gpu_pack/, git-ignored; ~60 MB).
#   scripts/gpu_check.sh run [DIR]    on the GPU machine (no Rust, no network; Python with torch
#       and transformers), from the repository root with DIR beside it. In under 8 minutes:
#       BERT fine-tuning on BANKING77, 2 epochs, the anchor's recipe (mean pooling, lr 1e-4,
#       batch 32, max_len 64, 10 % warm-up, no clipping), twice (cold and warm kernel caches),
#       PyTorch's hf_finetune_gpu.py on the same GPU, the MLP (5 epochs) and NCF (5 epochs) on the
#       GPU and on the CPU; prints one table (samples/s, time to first step, kernels compiled,
#       test accuracy) and writes it to $OUT/gpu_check.md when $OUT is set.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-}
dir=${2:-gpu_pack}

widen_or_narrow() { # IN OUT f16|f32: converts every F32/F16 tensor of a safetensors file
    python3 - "$1" "$2" "$3" <<'PY'
import json, struct, sys
src, dst, to = sys.argv[1], sys.argv[2], sys.argv[3]
raw = open(src, "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
header = json.loads(raw[8:8 + n]); body = raw[8 + n:]
meta = header.pop("__metadata__", None)
out, chunks, at = {}, [], 0
for name, t in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
    a, b = t["data_offsets"]; data = body[a:b]; count = (b - a) // (4 if t["dtype"] == "F32" else 2)
    if t["dtype"] == "F32" and to == "f16":
        data = struct.pack(f"<{count}e", *struct.unpack(f"<{count}f", data)); t["dtype"] = "F16"
    elif t["dtype"] == "F16" and to == "f32":
        data = struct.pack(f"<{count}f", *struct.unpack(f"<{count}e", data)); t["dtype"] = "F32"
    t["data_offsets"] = [at, at + len(data)]; at += len(data); out[name] = t; chunks.append(data)
if meta is not None:
    out["__metadata__"] = meta
h = json.dumps(out, separators=(",", ":")).encode(); h += b" " * (-len(h) % 8)
with open(dst, "wb") as f:
    f.write(struct.pack("<Q", len(h))); f.write(h); [f.write(c) for c in chunks]
PY
}

case "$mode" in
pack)
    shared=${INTENT_SHARED:-../shared}
    model=${INTENT_MINILM:-models/all-MiniLM-L6-v2}
    [ -f "$model/model.safetensors" ] || cargo xtask fetch-model minilm
    # INTENT_GPU_CHECK_BINARY: pack that binary instead of building one (a dry run on a CPU).
    bin=${INTENT_GPU_CHECK_BINARY:-target/release/intent}
    [ -n "${INTENT_GPU_CHECK_BINARY:-}" ] || cargo build --release -p intent-cli --features cuda
    rm -rf "$dir" && mkdir -p "$dir/model" "$dir/anchors" "$dir/datasets"
    strip -o "$dir/intent" "$bin" && xz -T0 -6 "$dir/intent"
    for f in config.json tokenizer.json tokenizer_config.json special_tokens_map.json vocab.txt; do
        cp "$model/$f" "$dir/model/"
    done
    widen_or_narrow "$model/model.safetensors" "$dir/model/model.f16.safetensors" f16
    cp "$shared/anchors/hf_finetune_gpu.py" "$shared/anchors/load.py" "$dir/anchors/"
    cp -r "$shared/datasets/banking77" "$shared/datasets/ml-100k" "$dir/datasets/"
    chmod -R u+w "$dir"
    du -sh "$dir"
    echo "carry $dir to the GPU machine and run: scripts/gpu_check.sh run $dir"
    ;;
run)
    [ -f "$dir/intent.xz" ] || { echo "no $dir/intent.xz: run 'scripts/gpu_check.sh pack' first" >&2; exit 2; }
    work=$(mktemp -d)
    xz -dc "$dir/intent.xz" > "$work/intent" && chmod +x "$work/intent"
    cp -r "$dir/model" "$work/model"
    widen_or_narrow "$work/model/model.f16.safetensors" "$work/model/model.safetensors" f32
    rm "$work/model/model.f16.safetensors"
    b77="$dir/datasets/banking77"
    export INTENT_KERNEL_CACHE="$work/kernel-cache"
    intent="$work/intent"
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
    log() { echo "== $*" >&2; }
    row() { # NAME METRICS_JSON: samples/s, first step, kernels, accuracy from metrics.json
        python3 - "$1" "$2" <<'PY'
import json, sys
name, path = sys.argv[1], sys.argv[2]
m = json.load(open(path)); t = m.get("timing", {})
acc = (m.get("test") or {}).get("accuracy") or m.get("hr@10")
sec = [h["seconds"] for h in m.get("history", [])]
print(f"| {name} | {t.get('steady_samples_per_second', 0):.0f} | {t.get('time_to_first_step_s', 0):.1f} | "
      f"{t.get('kernels_first_epoch', '–')} | {min(sec) if sec else 0:.2f} | "
      f"{acc if acc is None else round(acc, 4)} |")
PY
    }
    bert() { # OUT
        timeout 240 "$intent" train bert --base "$work/model" --train "$b77/train.csv" --test "$b77/test.csv" \
            --out "$1" --epochs 2 --lr 1e-4 --head-lr 1e-4 --pooling mean --max-grad-norm 0 --device cuda:0
    }
    table="$work/table.md"
    echo "| run | steady samples/s | first step (s) | kernels compiled (epoch 1) | fastest epoch (s) | test accuracy / HR@10 |" > "$table"
    echo "|---|---|---|---|---|---|" >> "$table"
    log "BERT, cold kernel caches"; bert "$work/bert-cold" && row "intent BERT cuda, cold caches" "$work/bert-cold/metrics.json" >> "$table" || echo "| intent BERT cuda, cold | failed (exit $?) | | | | |" >> "$table"
    log "BERT, warm kernel caches"; bert "$work/bert-warm" && row "intent BERT cuda, warm caches" "$work/bert-warm/metrics.json" >> "$table" || echo "| intent BERT cuda, warm | failed (exit $?) | | | | |" >> "$table"
    log "PyTorch anchor"
    py=$(timeout 120 python3 "$dir/anchors/hf_finetune_gpu.py" "$work/model" 2 2>/dev/null | tail -1 || true)
    echo "| PyTorch hf_finetune_gpu.py (same GPU) | ${py:-failed} | | | | |" >> "$table"
    for dev in cuda:0 cpu; do
        log "MLP on $dev"
        timeout 90 "$intent" train mlp --train "$b77/train.csv" --test "$b77/test.csv" --out "$work/mlp-$dev" \
            --epochs 5 --no-early-stopping --hidden-layers 4 --dropout 0.45 --device "$dev" >/dev/null \
            && row "intent MLP $dev (4×512, 5 epochs)" "$work/mlp-$dev/metrics.json" >> "$table" \
            || echo "| intent MLP $dev | failed | | | | |" >> "$table"
        log "NCF on $dev"
        timeout 90 "$intent" train ncf --train "$dir/datasets/ml-100k/u.data" --out "$work/ncf-$dev" --epochs 5 \
            --device "$dev" >/dev/null \
            && row "intent NCF $dev (NeuMF, 5 epochs)" "$work/ncf-$dev/metrics.json" >> "$table" \
            || echo "| intent NCF $dev | failed | | | | |" >> "$table"
    done
    cat "$table"
    if [ -n "${OUT:-}" ]; then
        cp "$table" "$OUT/gpu_check.md"
        for d in "$work"/*/; do [ -f "$d/metrics.json" ] && cp "$d/metrics.json" "$OUT/$(basename "$d").json"; done
    fi
    ;;
*)
    sed -n 2,15p "$0" >&2
    exit 2
    ;;
esac
