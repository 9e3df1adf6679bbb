#!/usr/bin/env bash
# Learning curves of the vision models: test Dice after each step budget, mean +- std over seeds, as a
# markdown table (issue #16: "at every budget of 100, 300 and 1000 steps, each attention model reaches at
# least the U-Net's Dice"). For every dataset x model x seed, `<model>-<dataset>` (a packaged config) trains
# from random init with the config's settings (no validation), is tested at each budget on the dataset's
# test set (MoNuSeg: the 14 test images; ISBI 2012: the held-out fold; DRIVE: the 20 test images inside the field of
# view; PH2: fold 0 of 5, 40 images), then resumes from its last.ckpt to the
# next budget (--ckpt_path last: weights, optimizer state and the patch loader's position carry on, so the
# run at each budget is the uninterrupted one; before the twenty-second session's fix a resumed run saw
# other batches than an uninterrupted one). Pairs without a packaged config are skipped.
#   ATTNKIT_DATA_DIR=/path/to/data bash benchmarks/vision_curves.sh                 # full size: a GPU's job
#   MODELS="unet utransformer" DATASETS="isbi2012" FOLDS="2 4" BUDGETS="100 300" SEEDS="42 43" bash ...
#   BUDGETS=2 SEEDS=42 MODELS=unet DATASETS=isbi2012 FOLDS=0 bash ...   # smoke test of the script
# Run it from a scratch directory: runs go to ./<dataset>[-fold<k>]/seed<s>/runs/<config>/. Results are
# appended to ./curves.tsv (dataset, fold, model, seed, steps, dice) and a finished pair is not re-run, so
# an interrupted sweep continues where it stopped. ATTNKIT names the attnkit command, PYTHON a Python with
# the standard library (for the table). Environment: MODELS (default "unet utransformer transdae msga"),
# DATASETS ("monuseg isbi2012 drive ph2"), FOLDS (ISBI 2012 folds, "0 1 2 3 4"), BUDGETS ("100 300 1000"),
# SEEDS ("42 43 44"), EXTRA (more arguments for `attnkit fit`, e.g. "--trainer.accelerator gpu"), FRESH ("0").
# FRESH=1 trains each budget as its own run from random init (in <seed dir>/steps<budget>/) instead of resuming
# the previous budget's: needed when the learning-rate schedule is shaped by the length of training, e.g.
# EXTRA="--model.init_args.scheduler attnkit.core.tasks.WarmupCosineLR" (the cosine spans each budget; resumed,
# the first budget's schedule would already have decayed to its floor). Keep FRESH=1 rows in their own curves.tsv.
# JOBS=N (default 1) runs N (dataset, fold, model, seed) pairs at once, each through all its budgets, with its output
# in <dataset>[-fold<k>]/seed<s>/<config>.log and ATTNKIT_NUM_THREADS = CPUs / N unless set; a failed pair stops
# only itself and the sweep exits 1 at the end, naming it. One GPU holds many runs at once (docs/benchmarks.md,
# thirty-second session: 12-20 on one H200 at 1 thread each, a DRIVE curve to 1000 steps in 5.6-7.0 minutes):
#   JOBS=16 ATTNKIT_NUM_THREADS=1 EXTRA="--trainer.accelerator gpu" DATASETS=isbi2012 bash benchmarks/vision_curves.sh
# The tables at the end (benchmarks/vision_curves_table.py) give the Dice per dataset x model x budget, then each
# model minus the U-Net paired by seed (and fold) with its standard error and the seeds at or above: issue #16's
# question. `python benchmarks/vision_curves_table.py a/curves.tsv b/curves.tsv` joins sweeps run apart.
set -euo pipefail
MODELS=${MODELS:-"unet utransformer transdae msga"}
DATASETS=${DATASETS:-"monuseg isbi2012 drive ph2"}
FOLDS=${FOLDS:-"0 1 2 3 4"}
BUDGETS=${BUDGETS:-"100 300 1000"}
SEEDS=${SEEDS:-"42 43 44"}
FRESH=${FRESH:-0}
JOBS=${JOBS:-1}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ATTNKIT=${ATTNKIT:-attnkit}
PYTHON=${PYTHON:-python3}
read -r -a EXTRA_ARGS <<< "${EXTRA:-}"
if [[ "$FRESH" != 0 && "$FRESH" != 1 ]]; then echo "vision_curves.sh: FRESH must be 0 or 1, got '$FRESH'" >&2; exit 2; fi
if ! [[ "$JOBS" =~ ^[1-9][0-9]*$ ]]; then echo "vision_curves.sh: JOBS must be a whole number >= 1, got '$JOBS'" >&2; exit 2; fi
if [[ "$JOBS" != 1 && -z "${ATTNKIT_NUM_THREADS:-}" ]]; then
  # JOBS processes each taking every core would fight over them: give each its share unless the user chose
  ncpu=$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1)
  export ATTNKIT_NUM_THREADS=$(( ncpu / JOBS > 0 ? ncpu / JOBS : 1 ))
  echo "== JOBS=$JOBS on $ncpu CPUs: ATTNKIT_NUM_THREADS=$ATTNKIT_NUM_THREADS per run (set it to choose)"
fi
read -r -a BUDGET_LIST <<< "$BUDGETS"
if [[ "$FRESH" == 0 && ${#BUDGET_LIST[@]} -gt 1 && "${EXTRA:-}" == *WarmupCosineLR* ]]; then
  echo "vision_curves.sh: WarmupCosineLR spans the whole run, so resuming it from one budget to the next would" \
    "train every budget after the first at its floor rate; set FRESH=1 (each budget its own run)" >&2
  exit 2
fi
RESULTS=$PWD/curves.tsv
[[ -f "$RESULTS" ]] || printf 'dataset\tfold\tmodel\tseed\tsteps\tdice\n' > "$RESULTS"
KNOWN=$("$ATTNKIT" configs | awk '{print $1}')

# newest metrics.csv of a run with a test/dice column -> its last test/dice value, in percent
read_dice() {
  "$PYTHON" - "$1" <<'PY'
import csv, sys
from pathlib import Path
files = sorted(Path(sys.argv[1]).glob("logs/version_*/metrics.csv"), key=lambda p: p.stat().st_mtime)
for f in reversed(files):
    rows = list(csv.DictReader(f.open()))
    vals = [r["test/dice"] for r in rows if r.get("test/dice")]
    if vals:
        print(f"{100 * float(vals[-1]):.2f}")
        sys.exit(0)
sys.exit(f"no test/dice in {sys.argv[1]}/logs/*/metrics.csv")
PY
}

# one (dataset, fold, model, seed) pair through every budget, each budget resumed from the previous one's last.ckpt
run_pair() {
  local ds=$1 fold=$2 model=$3 seed=$4 cfg="$3-$1" where=$1 dir steps dice
  local fold_args=()
  if [[ "$fold" != "-" ]]; then fold_args=(--data.fold "$fold"); where="$ds-fold$fold"; fi
  for steps in $BUDGETS; do
    dir="$where/seed$seed"
    if [[ "$FRESH" == 1 ]]; then dir="$dir/steps$steps"; fi
    mkdir -p "$dir"
    if awk -F'\t' -v d="$ds" -v f="$fold" -v m="$model" -v s="$seed" -v n="$steps" \
        '$1==d && $2==f && $3==m && $4==s && $5==n {found=1} END {exit !found}' "$RESULTS"; then
      continue
    fi
    echo "== $where $cfg seed $seed fit to $steps: $(date -u +%H:%M:%S)"
    (cd "$dir" && timeout 12h "$ATTNKIT" fit -c "$cfg" "${fold_args[@]}" --seed_everything "$seed" \
      --ckpt_path last --trainer.max_steps "$steps" --trainer.max_epochs -1 \
      --trainer.limit_val_batches 0 --checkpoint.every_n_train_steps 10 \
      --trainer.enable_progress_bar false "${EXTRA_ARGS[@]}")
    echo "== $where $cfg seed $seed test at $steps: $(date -u +%H:%M:%S)"
    (cd "$dir" && timeout 2h "$ATTNKIT" test -c "$cfg" "${fold_args[@]}" --seed_everything "$seed" \
      --ckpt_path last --trainer.enable_progress_bar false "${EXTRA_ARGS[@]}")
    dice=$(read_dice "$dir/runs/$cfg")
    # one short line, one append: pairs running side by side (JOBS > 1) do not mix their rows
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$ds" "$fold" "$model" "$seed" "$steps" "$dice" >> "$RESULTS"
    echo "== $where $cfg seed $seed steps $steps: Dice $dice"
  done
}

pairs=()  # "dataset fold model seed"
for ds in $DATASETS; do
  if [[ "$ds" == isbi2012 ]]; then folds=$FOLDS; else folds="-"; fi
  for fold in $folds; do
    for model in $MODELS; do
      if ! grep -qxF -- "$model-$ds" <<< "$KNOWN"; then echo "== skip $model-$ds: no packaged config"; continue; fi
      for seed in $SEEDS; do pairs+=("$ds $fold $model $seed"); done
    done
  done
done

if [[ "$JOBS" == 1 ]]; then
  for pair in "${pairs[@]}"; do
    read -r ds fold model seed <<< "$pair"
    run_pair "$ds" "$fold" "$model" "$seed"
  done
else
  # JOBS pairs at a time, each in the background with its output in <dataset>[-fold<k>]/seed<s>/<config>.log; a
  # pair that fails stops only itself, and the sweep exits non-zero after the tables, naming it. Stopped early
  # (Ctrl-C, a signal, an error here), it ends every run it started, depth first: `timeout` puts each attnkit in
  # its own process group, out of reach of the terminal's Ctrl-C.
  kill_tree() {
    local child
    for child in $(pgrep -P "$1" 2>/dev/null); do kill_tree "$child"; done
    kill -TERM "$1" 2>/dev/null || true
  }
  STATUS_DIR=$(mktemp -d "$PWD/.vision_curves_status.XXXXXX")
  trap 'for job in $(jobs -p); do kill_tree "$job"; done; wait; rm -rf "$STATUS_DIR"' EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  i=0
  for pair in "${pairs[@]}"; do
    read -r ds fold model seed <<< "$pair"
    where=$ds; if [[ "$fold" != "-" ]]; then where="$ds-fold$fold"; fi
    log="$where/seed$seed/$model-$ds.log"
    mkdir -p "$where/seed$seed"
    while (( $(jobs -rp | wc -l) >= JOBS )); do wait -n || true; done
    echo "== start $where $model-$ds seed $seed: $(date -u +%H:%M:%S), log $log"
    ( set +e; ( set -e; run_pair "$ds" "$fold" "$model" "$seed" ) >> "$log" 2>&1
      echo "$? $where $model-$ds seed $seed" > "$STATUS_DIR/$i"
      echo "== end $where $model-$ds seed $seed: $(date -u +%H:%M:%S), exit status $(cut -d' ' -f1 "$STATUS_DIR/$i")" ) &
    i=$((i + 1))
  done
  wait
  failed=$(cat "$STATUS_DIR"/* 2>/dev/null | awk '$1 != 0 {$1 = ""; print "  " $0}' || true)
fi

# the tables: Dice per dataset (ISBI 2012: per fold and the mean over folds) x model x budget, mean +- sample std
# over the seeds; then each model minus the U-Net paired by seed (benchmarks/vision_curves_table.py)
"$PYTHON" "$HERE/vision_curves_table.py" "$RESULTS"
if [[ -n "${failed:-}" ]]; then
  echo "vision_curves.sh: these pairs failed (see their logs); the budgets they finished are in $RESULTS:" >&2
  echo "$failed" >&2
  exit 1
fi
