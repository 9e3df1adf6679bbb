#!/usr/bin/env bash
# Step-matched MoNuSeg (UCTransNet split) comparison of smp U-Net and the attention models, as reported in
# docs/benchmarks.md (## vision). Every config trains for exactly STEPS optimizer steps on random 256x256
# patches (batch 4, Dice+CE, AdamW 1e-3, flips/rot90/colour jitter, seed 42), no validation during
# training, then last.ckpt is evaluated on the 14 full-size 1000x1000 test images with sliding windows
# (256, overlap 0.25, Gaussian blending).
#   ATTNKIT_DATA_DIR=/path/to/data STEPS=320 bash benchmarks/vision_monuseg.sh
#   CONFIGS="msga-monuseg" MAX_TIME=00:00:58:00 STEPS=150 bash benchmarks/vision_monuseg.sh  # time-capped
# Run it from a scratch directory: run dirs go to ./runs/<config>/. ATTNKIT names the attnkit command.
# With MAX_TIME a run may stop before STEPS: read the step it reached from its log and pass that as STEPS
# to the others, so the budgets stay matched. The published protocol trains far longer (UCTransNet: up to
# 2000 epochs with early stopping); raise STEPS (e.g. 20000) on a machine that can afford it. Runs resume
# with --ckpt_path last if interrupted (at the batch they reached: the patch loader is resumable).
set -euo pipefail
STEPS=${STEPS:-320}
CONFIGS=${CONFIGS:-"unet-monuseg utransformer-monuseg msga-monuseg transdae-monuseg"}
ATTNKIT=${ATTNKIT:-attnkit}
EXTRA=()
if [[ -n "${MAX_TIME:-}" ]]; then EXTRA+=(--trainer.max_time "$MAX_TIME"); fi
for cfg in $CONFIGS; do
  echo "== $cfg fit: $(date -u +%H:%M:%S)"
  "$ATTNKIT" fit -c "$cfg" --ckpt_path last --trainer.max_steps "$STEPS" --trainer.max_epochs -1 \
    --trainer.limit_val_batches 0 --checkpoint.every_n_train_steps 10 --data.samples_per_epoch 96 \
    --trainer.enable_progress_bar false "${EXTRA[@]}"
  echo "== $cfg test: $(date -u +%H:%M:%S)"
  "$ATTNKIT" test -c "$cfg" --ckpt_path last --trainer.enable_progress_bar false
  echo "== $cfg done: $(date -u +%H:%M:%S)"
done
