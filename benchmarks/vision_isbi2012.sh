#!/usr/bin/env bash
# ISBI 2012 EM membranes, k-fold comparison of U-Transformer and smp U-Net at the same step budget, as
# reported in docs/benchmarks.md (## vision). The challenge's test labels are not public, so each fold of
# the 30 training slices is held out in turn (5 folds of 6); every config trains STEPS optimizer steps on
# random 256x256 patches of the other 24 (batch 4, Dice+CE, AdamW 1e-3, seed 42, no validation), then
# last.ckpt is evaluated on the held-out 512x512 slices with sliding windows (256, overlap 0.25).
#   ATTNKIT_DATA_DIR=/path/to/data STEPS=60 FOLDS="0 1 2 3 4" bash benchmarks/vision_isbi2012.sh
# Each fold runs in its own directory ./fold<k>/runs/<config>/ (run it from a scratch directory).
set -euo pipefail
STEPS=${STEPS:-60}
FOLDS=${FOLDS:-"0 1 2 3 4"}
CONFIGS=${CONFIGS:-"unet-isbi2012 utransformer-isbi2012"}
ATTNKIT=${ATTNKIT:-attnkit}
for fold in $FOLDS; do
  mkdir -p "fold$fold"
  for cfg in $CONFIGS; do
    echo "== fold $fold $cfg fit: $(date -u +%H:%M:%S)"
    (cd "fold$fold" && "$ATTNKIT" fit -c "$cfg" --data.fold "$fold" --ckpt_path last --trainer.max_steps "$STEPS" \
      --trainer.max_epochs -1 --trainer.limit_val_batches 0 --checkpoint.every_n_train_steps 10 \
      --trainer.enable_progress_bar false)
    echo "== fold $fold $cfg test: $(date -u +%H:%M:%S)"
    (cd "fold$fold" && "$ATTNKIT" test -c "$cfg" --data.fold "$fold" --ckpt_path last --trainer.enable_progress_bar false)
    echo "== fold $fold $cfg done: $(date -u +%H:%M:%S)"
  done
done
