#!/usr/bin/env bash
# One Panini-Net GPU training call (run from the repository root on the lent machine):
#   bash tools/gpu_train_panini.sh STAGE MINUTES INIT [extra train flags]
# STAGE is prior or restore; INIT is passed to --init-from, and nothing is implicit:
#   prior    first call: scratch; later calls: resume (runs/panini-prior, kept on the warm machine)
#   restore  first call: scratch: the generator + discriminator the prior stage exported on this
#            machine (runs/panini-prior/export, or PRIOR=path/generator.safetensors, e.g. a carried
#            copy when the machine was handed back in between) and the shipped
#            weights/panini/dre.safetensors; later calls: resume
#   either   a folder or file of exported weights: warm start (configs must match)
# Exports (fp16 EMA weights + JSON, a sample sheet) go to runs/panini-STAGE/export, for the next
# call on this machine. Back through $OUT (at most 8 files of 16 MiB): each .safetensors, the log,
# and panini-STAGE-meta.tar holding the JSON files and the sample sheet (prior: 4 files, restore: 7).
# PACK overrides the pack, RUN_DIR the run folder. See weights/panini/README.md for the whole plan.
set -euo pipefail
stage=$1; minutes=$2; init=$3; shift 3
out=${OUT:-out}
pack=${PACK:-packs/gpu128.tar}
run_dir=${RUN_DIR:-runs/panini-$stage}
# Batches are estimates for an H100 in bf16 (no GPU was lent when this was written): the first
# call logs img/s and memory; raise them if the GPU is far from full. Constant learning rates:
# GANs are trained without decay here (StyleGAN2), and the budget is too short for a schedule.
case $stage in
  prior)   flags=(--batch 64 --lr 2e-3 --ema 0.999 --r1-gamma 0.1 --mixing 0.9) ;;
  restore) flags=(--batch 32 --lr 2e-4 --warmup 200 --ema 0.999 --r1-gamma 0.1
                  --prior "${PRIOR:-runs/panini-prior/export/generator.safetensors}"
                  --dre weights/panini/dre.safetensors) ;;
  *) echo "STAGE must be prior or restore, got '$stage'" >&2; exit 2 ;;
esac
mkdir -p "$out"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
python -m diffbfr.train "panini-$stage" --pack "$pack" --run-dir "$run_dir" --export "$run_dir/export" \
  --init-from "$init" "${flags[@]}" --workers 14 --minutes "$minutes" --log-every 100 --val-every 500 \
  --save-every-min 3 "$@" 2>&1 | tee "$out/panini-$stage.log"
nvidia-smi --query-gpu=memory.used --format=csv,noheader || true
cp "$run_dir"/export/*.safetensors "$out"/
tar -cf "$out/panini-$stage-meta.tar" -C "$run_dir/export" $(cd "$run_dir/export" && ls *.json *.png)
