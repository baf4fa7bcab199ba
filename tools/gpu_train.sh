#!/usr/bin/env bash
# One GPU training call (run from the repository root on the rented machine):
#   bash tools/gpu_train.sh MODEL MINUTES INIT [extra train flags]
# INIT is passed to --init-from, and nothing is implicit:
#   first call:  weights/diffbfr/MODEL.safetensors (warm start from the shipped weights; their
#                config must equal the one trained) or scratch
#   later calls: resume  (continues runs/MODEL/state.json, kept on the machine between calls)
# Reads the pack from packs/ (carried, git-ignored) and writes the fp16 EMA weights + JSON and
# the log to $OUT so they come back. RUN_DIR overrides runs/MODEL; DECAY_STEPS overrides the
# cosine length below. See weights/README.md for the whole plan.
set -euo pipefail
model=$1; minutes=$2; init=$3; shift 3
out=${OUT:-out}
run_dir=${RUN_DIR:-runs/$model}
mkdir -p "$out"
# --decay-steps: the cosine should end near the end of the ~9-minute budget. These are estimates
# (H100, batch 256, bf16; irm64 is ~2.3x faster per image than the 128 px nets on the CPU bench);
# correct them from the img/s the first call logs. A cut-short run simply ends mid-decay.
case $model in
  irm64) pack=packs/gpu64.tar;  decay=${DECAY_STEPS:-8000} ;;  # 64 px targets: the whole sharp-enough split fits
  *)     pack=packs/gpu128.tar; decay=${DECAY_STEPS:-3500} ;;  # 128 px: the sharpest faces, within the carry budget
esac
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
python -m diffbfr.train "$model" --pack "$pack" --run-dir "$run_dir" --export "$out" --init-from "$init" \
  --batch 256 --lr 4e-4 --warmup 200 --decay-steps "$decay" --lr-min-ratio 0.1 --ema 0.9995 \
  --workers 14 --minutes "$minutes" --log-every 100 --val-every 500 --save-every-min 3 \
  --compile "$@" 2>&1 | tee "$out/$model.log"
