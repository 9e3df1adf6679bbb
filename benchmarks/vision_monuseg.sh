#!/usr/bin/env bash
# MoNuSeg (UCTransNet split) comparison of U-Transformer and smp U-Net with the same step budget, as
# reported in docs/benchmarks.md (## vision). Train on random 256x256 patches (batch 4, Dice+CE, AdamW
# 1e-3, flips/rot90/colour jitter), no validation during training, evaluate last.ckpt on the 14 full-size
# 1000x1000 test images with sliding windows (256, overlap 0.25, Gaussian blending).
#   ATTNKIT_DATA_DIR=/path/to/data STEPS=320 bash benchmarks/vision_monuseg.sh
# The published protocol trains far longer (UCTransNet: up to 2000 epochs with early stopping); raise
# STEPS (e.g. 20000) on a machine that can afford it. Runs resume with --ckpt_path last if interrupted.
set -euo pipefail
STEPS=${STEPS:-320}
CONFIGS=${CONFIGS:-"unet-monuseg utransformer-monuseg"}
for cfg in $CONFIGS; do
  attnkit fit -c "$cfg" --ckpt_path last --trainer.max_steps "$STEPS" --trainer.limit_val_batches 0 \
    --checkpoint.every_n_train_steps 10 --data.samples_per_epoch 96 --trainer.enable_progress_bar false
  attnkit test -c "$cfg" --ckpt_path last --trainer.enable_progress_bar false
done
