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
# One GPU holds many of these runs at once: start one instance per model x seed (x fold), each from its own
# scratch directory with ATTNKIT_NUM_THREADS=1 (docs/benchmarks.md, thirty-second session: 12-20 instances on one
# H200, a DRIVE curve to 1000 steps in 5.6-7.0 minutes). For the joint table, put their rows under one header in a
# curves.tsv and run the script there with the sweep's MODELS/DATASETS/FOLDS/BUDGETS/SEEDS: finished pairs are
# skipped, so it only prints the table (a pair missing from the file would be trained).
set -euo pipefail
MODELS=${MODELS:-"unet utransformer transdae msga"}
DATASETS=${DATASETS:-"monuseg isbi2012 drive ph2"}
FOLDS=${FOLDS:-"0 1 2 3 4"}
BUDGETS=${BUDGETS:-"100 300 1000"}
SEEDS=${SEEDS:-"42 43 44"}
FRESH=${FRESH:-0}
ATTNKIT=${ATTNKIT:-attnkit}
PYTHON=${PYTHON:-python3}
read -r -a EXTRA_ARGS <<< "${EXTRA:-}"
if [[ "$FRESH" != 0 && "$FRESH" != 1 ]]; then echo "vision_curves.sh: FRESH must be 0 or 1, got '$FRESH'" >&2; exit 2; fi
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

for ds in $DATASETS; do
  if [[ "$ds" == isbi2012 ]]; then folds=$FOLDS; else folds="-"; fi
  for fold in $folds; do
    for model in $MODELS; do
      cfg="$model-$ds"
      if ! grep -qxF -- "$cfg" <<< "$KNOWN"; then echo "== skip $cfg: no packaged config"; continue; fi
      fold_args=()
      where="$ds"
      if [[ "$fold" != "-" ]]; then fold_args=(--data.fold "$fold"); where="$ds-fold$fold"; fi
      for seed in $SEEDS; do
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
          printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$ds" "$fold" "$model" "$seed" "$steps" "$dice" >> "$RESULTS"
          echo "== $where $cfg seed $seed steps $steps: Dice $dice"
        done
      done
    done
  done
done

# the table: one row per dataset (ISBI 2012: per fold and the mean over folds) and model, one column per
# budget, mean +- sample std over the seeds (n = number of seeds; fold means are averaged per seed first)
"$PYTHON" - "$RESULTS" <<'PY'
import csv, statistics, sys
from collections import defaultdict
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
budgets = sorted({int(r["steps"]) for r in rows})
cell = defaultdict(list)  # (dataset label, model, steps) -> per-seed Dice
per_seed_folds = defaultdict(list)  # (dataset, model, steps, seed) -> Dice per fold
for r in rows:
    label = r["dataset"] if r["fold"] == "-" else f"{r['dataset']} fold {r['fold']}"
    cell[(label, r["model"], int(r["steps"]))].append(float(r["dice"]))
    if r["fold"] != "-":
        per_seed_folds[(r["dataset"], r["model"], int(r["steps"]), r["seed"])].append(float(r["dice"]))
folds_of = defaultdict(set)
for r in rows:
    if r["fold"] != "-":
        folds_of[r["dataset"]].add(r["fold"])
for (ds, model, steps, _seed), vals in per_seed_folds.items():
    if len(folds_of[ds]) > 1 and len(vals) == len(folds_of[ds]):
        cell[(f"{ds} mean of {len(vals)} folds", model, steps)].append(statistics.fmean(vals))
def fmt(v: list[float]) -> str:
    if not v:
        return "--"
    sd = f" +- {statistics.stdev(v):.2f}" if len(v) > 1 else ""
    return f"{statistics.fmean(v):.2f}{sd} (n={len(v)})"
keys = sorted({(label, model) for label, model, _ in cell})
print("| data | model | " + " | ".join(f"Dice @{b}" for b in budgets) + " |")
print("|---|---|" + "---|" * len(budgets))
for label, model in keys:
    print(f"| {label} | {model} | " + " | ".join(fmt(cell.get((label, model, b), [])) for b in budgets) + " |")
PY
