#!/usr/bin/env bash
# One GPU training call (run from the repository root on the rented machine):
#   bash tools/gpu_train.sh MODEL MINUTES [extra train flags]
# Reads the pack from packs/ (carried, git-ignored), resumes from runs/MODEL when it exists
# (kept on the machine between back-to-back calls), and writes the fp16 EMA weights + JSON
# and the log to $OUT so they come back. See weights/README.md for the whole plan.
set -euo pipefail
model=$1; minutes=$2; shift 2
out=${OUT:-out}
mkdir -p "$out"
case $model in
  irm64) pack=packs/gpu64.tar ;;     # 64 px targets: the whole sharp-enough train split fits
  *)     pack=packs/gpu128.tar ;;    # 128 px: the sharpest faces, within the carry budget
esac
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
python -m diffbfr.train "$model" --pack "$pack" --run-dir "runs/$model" --export "$out" \
  --batch 256 --lr 4e-4 --ema 0.9995 --workers 14 --minutes "$minutes" --log-every 100 \
  --compile "$@" 2>&1 | tee "$out/$model.log"
