#!/usr/bin/env bash
# The one-call GPU check (issue 19), in two halves:
#
#   scripts/gpu_check.sh pack [DIR]   here, on the build machine (Rust, ../shared, models/):
#       builds `intent` with --features cuda (release), strips and xz-compresses it, writes the
#       all-MiniLM-L6-v2 weights as f16 safetensors (half the size), and copies BANKING77,
#       MovieLens-100k and the PyTorch GPU anchor into DIR (default gpu_pack/, git-ignored; ~60 MB).
#   scripts/gpu_check.sh run [DIR]    on the GPU machine (no Rust, no network; Python with torch
#       and transformers), from the repository root with DIR beside it. In under 8 minutes
#       (INTENT_GPU_CHECK_BUDGET, default 500 s; the most important runs first): BERT fine-tuning
#       on BANKING77, 2 epochs, the anchor's recipe (mean pooling, lr 1e-4, batch 32, max_len 64,
#       10 % warm-up, no clipping, random batch order, nn.Linear's head) with cold caches, PyTorch's
#       hf_finetune_gpu.py on the same GPU, BERT again with warm caches and with --precision
#       bf16, the MLP (5 epochs) and NCF (5 epochs) on the GPU and on the CPU, and last BERT
#       with the CLI's default clipping (--max-grad-norm 1), what it costs. Prints one
#       table (samples/s, time to first step, kernels compiled, test accuracy) and writes it to
#       $OUT/gpu_check.md, with $OUT/machine.txt and every run's log and metrics.json in
#       $OUT/gpu_check_logs.tar.gz ($OUT: the device tool's folder; a temporary one when unset).
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
    # cudarc binds the CUDA API of the version nvcc reports, and without nvcc (this machine) its
    # newest (13.4). The lent H200s run driver 580, CUDA 13.0 (/work/.library/device/KINDS.md),
    # so the check's binary binds 13.0: no call into an API that driver lacks.
    export CUDARC_CUDA_VERSION=${CUDARC_CUDA_VERSION:-13000}
    [ -n "${INTENT_GPU_CHECK_BINARY:-}" ] || cargo build --release -p intent-cli --features cuda
    rm -rf "$dir" && mkdir -p "$dir/model" "$dir/anchors" "$dir/datasets"
    strip -o "$dir/intent" "$bin" && xz -T0 -6 "$dir/intent"
    for f in config.json tokenizer.json tokenizer_config.json special_tokens_map.json vocab.txt; do
        cp "$model/$f" "$dir/model/"
    done
    widen_or_narrow "$model/model.safetensors" "$dir/model/model.f16.safetensors" f16
    cp "$shared/anchors/hf_finetune_gpu.py" "$shared/anchors/load.py" "$dir/anchors/"
    cp -r "$shared/datasets/banking77" "$shared/datasets/ml-100k" "$dir/datasets/"
    # Where the binary came from, so that a later session knows whether the pack is still current.
    { dirty=$(git diff --quiet HEAD -- crates xtask Cargo.lock || echo ' (with uncommitted changes)')
      echo "commit $(git rev-parse HEAD)$dirty"
      echo "packed $(date -u +%Y-%m-%dT%H:%MZ)${INTENT_GPU_CHECK_BINARY:+ from $bin}"
    } > "$dir/built_from.txt"
    chmod -R u+w "$dir"
    du -sh "$dir"
    echo "carry $dir to the GPU machine and run: scripts/gpu_check.sh run $dir"
    ;;
run)
    [ -f "$dir/intent.xz" ] \
        || { echo "no $dir/intent.xz: run 'scripts/gpu_check.sh pack' first" >&2; exit 2; }
    # INTENT_GPU_CHECK_DEVICE: the device of intent's runs (default cuda:0; `cpu` is a dry run of
    # this script on a machine without a GPU). INTENT_GPU_CHECK_BUDGET: seconds for everything
    # (default 500: the device machine's 600 s per call, less start-up); each run gets what is
    # left, the most important first, so a hung run cannot cost the table.
    gpu=${INTENT_GPU_CHECK_DEVICE:-cuda:0}
    budget=${INTENT_GPU_CHECK_BUDGET:-500}
    start=$SECONDS
    work=$(mktemp -d)
    out=${OUT:-$work/out}
    # The device tool brings back at most 8 files from $OUT, so the runs write to $rep and $OUT
    # gets three: the table, machine.txt and every log and metrics.json in one archive, also when
    # the script stops early.
    rep="$work/report"
    mkdir -p "$rep/logs" "$out"
    bring_back() {
        cp "$rep/gpu_check.md" "$rep/logs/machine.txt" "$out/" 2>/dev/null || true
        tar -C "$rep" -czf "$out/gpu_check_logs.tar.gz" . 2>/dev/null \
            || (cd "$rep" && python3 -m tarfile -c "$out/gpu_check_logs.tar.gz" .) || true
    }
    trap bring_back EXIT
    # xz(1) may be missing on the GPU machine; Python's lzma reads the same file.
    xz -dc "$dir/intent.xz" > "$work/intent" 2>/dev/null \
        || python3 -c 'import lzma, shutil, sys
shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' "$dir/intent.xz" "$work/intent"
    chmod +x "$work/intent"
    cp -r "$dir/model" "$work/model"
    widen_or_narrow "$work/model/model.f16.safetensors" "$work/model/model.safetensors" f32
    rm "$work/model/model.f16.safetensors"
    b77="$dir/datasets/banking77"
    export INTENT_KERNEL_CACHE="$work/kernel-cache"
    intent="$work/intent"
    # cudarc dlopens libcuda and libnvrtc (LD_LIBRARY_PATH, then ld.so's cache). An image may keep
    # NVRTC only in the toolkit's folder or in pip's nvidia-* packages: add those folders then.
    if ! ldconfig -p 2>/dev/null | grep -q 'libnvrtc\.so'; then
        for d in $(python3 - <<'PY'
import glob, os, site, sys
roots = ["/usr/local/cuda", *sorted(glob.glob("/usr/local/cuda-*"))]
roots += [os.path.join(p, "nvidia") for p in site.getsitepackages()]
found = []
for r in roots:
    for f in sorted(glob.glob(os.path.join(r, "**", "libnvrtc.so*"), recursive=True)):
        if os.path.dirname(f) not in found:
            found.append(os.path.dirname(f))
print(" ".join(found))
PY
        ); do LD_LIBRARY_PATH="${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$d"; done
        export LD_LIBRARY_PATH
    fi
    # cubecl's NVRTC compiles include CUDA's headers: from $CUDA_PATH, else /usr/local/cuda,
    # /opt/cuda or /usr (with /usr/bin/nvcc). Elsewhere, point CUDA_PATH at a folder with them.
    if [ -z "${CUDA_PATH:-}" ] && [ ! -d /usr/local/cuda ] && [ ! -d /opt/cuda ] && [ ! -e /usr/bin/nvcc ]
    then
        CUDA_PATH=$(python3 - <<'PY'
import glob, os, shutil, site
found = []
nvcc = shutil.which("nvcc")
if nvcc:
    found.append(os.path.dirname(os.path.dirname(os.path.realpath(nvcc))))
found += sorted(glob.glob("/usr/local/cuda-*"))
for p in site.getsitepackages():
    found += sorted(glob.glob(os.path.join(p, "nvidia", "cu*")))
print(next((d for d in found if os.path.isfile(os.path.join(d, "include", "cuda_runtime.h"))), ""))
PY
        )
        [ -n "$CUDA_PATH" ] && export CUDA_PATH
    fi
    { cat "$dir/built_from.txt" 2>/dev/null || echo "built from: unknown (a pack without built_from.txt)"
      nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true; nproc
      echo "CUDA_PATH=${CUDA_PATH:-} (cubecl's default: /usr/local/cuda)"
      nvidia-smi 2>/dev/null | grep -o 'CUDA Version: [0-9.]*' || true
      echo "LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}"
      ldconfig -p 2>/dev/null | grep -E 'lib(cuda|nvrtc)\.so' || true
    } > "$rep/logs/machine.txt" 2>&1
    cat "$rep/logs/machine.txt" >&2
    table="$rep/gpu_check.md"
    echo "| run | steady samples/s | first step (s) | kernels compiled (epoch 1 / later)" \
        "| epoch 1 extra (s) | fastest epoch (s) | test accuracy / HR@10 |" > "$table"
    echo "|---|---|---|---|---|---|---|" >> "$table"
    row() { # NAME METRICS_JSON: samples/s, first step, kernels, accuracy from metrics.json
        python3 - "$1" "$2" <<'PY'
import json, sys
name, path = sys.argv[1], sys.argv[2]
m = json.load(open(path)); t = m.get("timing", {})
acc = (m.get("test") or {}).get("accuracy") or (m.get("test") or {}).get("hr@10") or m.get("hr@10")
sec = [h["seconds"] for h in m.get("history", []) if "seconds" in h]
k1, kall = t.get("kernels_first_epoch"), t.get("kernels_all_epochs")
later = kall - k1 if k1 is not None and kall is not None else "–"
k1 = "–" if k1 is None else k1
extra = t.get("first_epoch_extra_s")
extra = "–" if extra is None else f"{extra:.1f}"
print(f"| {name} | {t.get('steady_samples_per_second', 0):.0f} | {t.get('time_to_first_step_s', 0):.1f} | "
      f"{k1} / {later} | {extra} | {min(sec) if sec else 0:.2f} | "
      f"{acc if acc is None else round(acc, 4)} |")
PY
    }
    # step NAME LIMIT_S OUTDIR CMD...: runs CMD with the smaller of LIMIT_S and the time left,
    # its output in logs/OUTDIR.log, then one row of the table (or why there is none).
    step() {
        local name=$1 limit=$2 dirname=$3; shift 3
        local left=$((budget - (SECONDS - start)))
        [ "$left" -lt "$limit" ] && limit=$left
        if [ "$limit" -lt 15 ]; then
            echo "| $name | skipped: the ${budget} s budget was spent | | | | | |" >> "$table"; return
        fi
        echo "== $name (≤ ${limit} s)" >&2
        local t0=$SECONDS rc=0
        # timeout(1) runs programs, not shell functions: the exported functions run in a bash.
        timeout "$limit" bash -c '"$@"' _ "$@" > "$rep/logs/$dirname.log" 2>&1 || rc=$?
        if [ "$rc" -eq 0 ] && [ -f "$work/$dirname/metrics.json" ]; then
            row "$name" "$work/$dirname/metrics.json" >> "$table"
            cp "$work/$dirname/metrics.json" "$rep/$dirname.json"
        elif [ "$rc" -eq 124 ]; then
            echo "| $name | timed out after ${limit} s (logs/$dirname.log) | | | | | |" >> "$table"
        elif [ "$rc" -eq 0 ]; then
            echo "| $name | exit 0 but no metrics.json (logs/$dirname.log) | | | | | |" >> "$table"
        else
            echo "| $name | failed: exit $rc after $((SECONDS - t0)) s (logs/$dirname.log) | | | | | |" \
                >> "$table"
        fi
        tail -3 "$rep/logs/$dirname.log" >&2 || true
    }
    bert() { # OUT [FLAGS…]: hf_finetune_gpu.py's recipe (one rate, random batch order, its head)
        local o=$1; shift
        "$intent" train bert --base "$work/model" --train "$b77/train.csv" --test "$b77/test.csv" \
            --out "$work/$o" --epochs 2 --lr 1e-4 --head-lr 1e-4 --pooling mean \
            --max-grad-norm "${CLIP:-0}" --no-length-buckets --head-init torch --device "$gpu" "$@"
    }
    # The same with the CLI's default clipping (global norm 1.0, as the Trainer's): its cost.
    bert_clipped() { CLIP=1 bert "$@"; }
    mlp() { # OUT DEVICE
        "$intent" train mlp --train "$b77/train.csv" --test "$b77/test.csv" --out "$work/$1" \
            --epochs 5 --no-early-stopping --hidden-layers 4 --dropout 0.45 --device "$2"
    }
    ncf() { # OUT DEVICE
        "$intent" train ncf --train "$dir/datasets/ml-100k/u.data" --out "$work/$1" --epochs 5 --device "$2"
    }
    anchor() {
        python3 "$dir/anchors/hf_finetune_gpu.py" "$work/model" 2 > "$rep/logs/anchor.out" || return $?
        mkdir -p "$work/anchor" && python3 - "$rep/logs/anchor.out" "$work/anchor/metrics.json" <<'PY'
import json, re, sys
line = open(sys.argv[1]).read().strip().splitlines()[-1]
v = dict(re.findall(r"(\w+)=([\d.]+)", line))
json.dump({"timing": {"steady_samples_per_second": float(v["train_samples_per_s"])},
           "test": {"accuracy": float(v["test_acc"])}}, open(sys.argv[2], "w"))
PY
    }
    export -f bert bert_clipped mlp ncf anchor
    export intent work rep b77 gpu dir
    # GPU utilisation beside the runs (a flat 0 % means the GPU waits on the host).
    (nvidia-smi dmon -s u -d 2 > "$rep/logs/dmon.log" 2>&1 &) || true
    step "intent BERT $gpu, cold caches" 200 bert-cold bert bert-cold
    step "PyTorch hf_finetune_gpu.py (same GPU)" 120 anchor anchor
    step "intent BERT $gpu, warm caches" 150 bert-warm bert bert-warm
    step "intent BERT $gpu, warm, --precision bf16" 150 bert-bf16 bert bert-bf16 --precision bf16
    step "intent MLP $gpu (4×512, 5 epochs)" 60 mlp-gpu mlp mlp-gpu "$gpu"
    step "intent NCF $gpu (NeuMF, 5 epochs)" 60 ncf-gpu ncf ncf-gpu "$gpu"
    step "intent MLP cpu (4×512, 5 epochs)" 40 mlp-cpu mlp mlp-cpu cpu
    step "intent NCF cpu (NeuMF, 5 epochs)" 40 ncf-cpu ncf ncf-cpu cpu
    step "intent BERT $gpu, warm, --max-grad-norm 1 (the default)" 90 bert-clip bert_clipped bert-clip
    pkill -f "nvidia-smi dmon" 2>/dev/null || true
    echo "total $((SECONDS - start)) s of a ${budget} s budget" >> "$rep/logs/machine.txt"
    # What the warm runs found: cubecl's PTX and autotune caches, the driver's JIT cache (cuda-jit).
    du -s -k "$INTENT_KERNEL_CACHE"/* >> "$rep/logs/machine.txt" 2>&1 || true
    cat "$table"
    [ -n "${OUT:-}" ] || echo "logs and metrics: $out/gpu_check_logs.tar.gz" >&2
    ;;
*)
    sed -n 2,18p "$0" >&2
    exit 2
    ;;
esac
