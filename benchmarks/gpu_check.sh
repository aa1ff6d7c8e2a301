#!/usr/bin/env bash
# Issue 13's GPU evidence in one run (about 6-8 minutes on an H100/H200): every figure docs/benchmarks.md still owes.
#
#   OUT=/path/to/results bash benchmarks/gpu_check.sh
#
# Writes under $OUT: gpu.csv (nvidia-smi), one JSON file per measurement and one .log per step (its stdout/stderr):
#   train_pil.json, train_cached.json, train_cached_compile.json   benchmarks/train_throughput.py --device cuda --amp
#       (ViT-S/16, 224 px, batch 128, 1024 synthetic 500x375 JPEGs, RandAugment + erasing on): engine, hand loop and
#       synthetic device-resident batches, ratios engine / synthetic (goal >= 0.9) and engine / hand (>= 0.95)
#   mad_cuda.json                         benchmarks/mad_throughput.py on cuda: MAD statistics vs plain forward (<= 1.3)
#   data_pipeline_cuda.json, data_pipeline_none_cuda.json   benchmarks/data_pipeline.py on cuda, PIL vs cached
#   sync_cached.json                      benchmarks/sync_check.py: synchronising CUDA calls per training step (goal 0)
# Every step has its own time limit, so the script ends in time even if one hangs; it exits 1 if any step failed.
# Environment (each value is passed as one argument, never evaluated): PYTHON (default .venv/bin/python, else
# python3), DEVICE (default cuda), SMOKE=1 (tiny sizes: checks the plumbing on a CPU in a few minutes).
set -u -o pipefail

: "${OUT:?set OUT to the folder for the results}"
cd "$(dirname "$0")/.."
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
    if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
DEVICE="${DEVICE:-cuda}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1
mkdir -p "$OUT"

CPUS=$(nproc)
WORKERS=$(( CPUS > 2 ? CPUS - 1 : 1 ))
if [ "${SMOKE:-0}" = 1 ]; then
    TRAIN=(--jpegs 48 --img-size 32 --batch-size 8 --steps 2 --rounds 1 --model vit_tiny_patch16_224)
    MAD=(--batch-size 2 --batches 1 --repeats 1 --force)
    PIPE=(--images 32 --batch-size 8 --batches 1 --rounds 1 --img-size 64)
    SYNC=(--img-size 32 --batch-size 8 --steps 2 --workers 1)
    LIMIT_TRAIN=300 LIMIT_COMPILE=300 LIMIT_MAD=200 LIMIT_PIPE=200 LIMIT_SYNC=200
else
    TRAIN=(--jpegs 1024 --steps 7 --rounds 3)
    MAD=(--batch-size 64 --batches 4 --repeats 5)
    PIPE=(--images 512 --batch-size 64 --batches 4 --rounds 3)
    SYNC=(--steps 8)
    LIMIT_TRAIN=70 LIMIT_COMPILE=180 LIMIT_MAD=40 LIMIT_PIPE=40 LIMIT_SYNC=35
fi

failed=0
step() {  # step NAME LIMIT_SECONDS COMMAND...: run with a time limit, keep its output in $OUT/NAME.log
    local name=$1 limit=$2 start=$SECONDS rc
    shift 2
    echo "== $name (limit ${limit}s): $*"
    timeout --signal=INT --kill-after=15 "$limit" "$@" > "$OUT/$name.log" 2>&1
    rc=$?
    echo "   rc $rc after $(( SECONDS - start ))s; last lines:"
    tail -n 4 "$OUT/$name.log" | cut -c1-300
    if [ "$rc" -ne 0 ]; then failed=1; fi
    return 0
}
last_json() {  # last_json NAME: the last line of NAME.log (the scripts print one JSON line last) -> NAME.json
    tail -n 1 "$OUT/$1.log" > "$OUT/$1.json"
}

if command -v nvidia-smi > /dev/null; then
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv > "$OUT/gpu.csv" 2>&1
fi
uptime > "$OUT/load_before.txt"

train=(benchmarks/train_throughput.py --device "$DEVICE" --amp --workers "$WORKERS" "${TRAIN[@]}")
step train_pil "$LIMIT_TRAIN" "$PY" "${train[@]}" --data-pipeline pil --output "$OUT/train_pil.json"
step train_cached "$LIMIT_TRAIN" "$PY" "${train[@]}" --data-pipeline cached --output "$OUT/train_cached.json"
# three compiled copies (engine, hand loop, ceiling): fewer rounds leave the time to compile them. Skipped by the
# CPU smoke run, where inductor's C++ compilation alone outlasts any sensible limit.
if [ "${SMOKE:-0}" != 1 ]; then
    step train_cached_compile "$LIMIT_COMPILE" "$PY" "${train[@]}" --data-pipeline cached --compile --rounds 2 \
        --output "$OUT/train_cached_compile.json"
fi

step mad_cuda "$LIMIT_MAD" "$PY" benchmarks/mad_throughput.py --device "$DEVICE" "${MAD[@]}"
last_json mad_cuda

pipe=(benchmarks/data_pipeline.py --device "$DEVICE" --workers "$WORKERS" "${PIPE[@]}")
step data_pipeline_cuda "$LIMIT_PIPE" "$PY" "${pipe[@]}" --output "$OUT/data_pipeline_cuda.json"
step data_pipeline_none_cuda "$LIMIT_PIPE" "$PY" "${pipe[@]}" --randaugment none \
    --output "$OUT/data_pipeline_none_cuda.json"

step sync_cached "$LIMIT_SYNC" "$PY" benchmarks/sync_check.py --device "$DEVICE" --data-pipeline cached "${SYNC[@]}" \
    --output "$OUT/sync_cached.json"

uptime > "$OUT/load_after.txt"
echo "results in $OUT (failed steps: $failed)"
exit "$failed"
