"""The tables of `benchmarks/vision_curves.sh`: learning curves, and each model against the U-Net seed by seed.

Reads one or more ``curves.tsv`` files (columns dataset, fold, model, seed, steps, dice; fold "-" where the dataset
has no folds) and prints two markdown tables:

1. test Dice per dataset (ISBI 2012: per fold, and the mean over folds) x model x budget, mean +- sample std over
   the seeds;
2. each model minus the baseline (the U-Net unless ``--baseline`` says otherwise), **paired by seed** (and fold):
   the mean difference, its standard error over the seeds, and at how many seeds the model is at or above the
   baseline. This is issue #16's question ("at every budget, each attention model reaches at least the U-Net's
   Dice"), asked the way docs/benchmarks.md reports it: a seed fixes both models' training patches (drawn
   independently of the model), so the paired difference leaves out the spread that the draw puts into both.

For ISBI 2012 a seed enters the "mean of k folds" rows only when it has every fold of the file for that model
(and, for a difference, for the baseline too), the fold means being taken per seed first.

Several files can be given (e.g. one per GPU instance of a parallel sweep); a row found twice with the same Dice
is counted once, and one found twice with different Dice is an error, since it means two runs of one pair.

    python benchmarks/vision_curves_table.py curves.tsv [more.tsv ...] [--baseline unet]
"""

from __future__ import annotations

import argparse
import csv
import math
import statistics
import sys
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

COLUMNS = ("dataset", "fold", "model", "seed", "steps", "dice")

Key = tuple[str, str, str, str, int]  # dataset, fold, model, seed, steps


@dataclass(frozen=True)
class Cell:
    """Values of one table cell, one per seed."""

    values: tuple[float, ...]

    def mean_std(self) -> str:
        if not self.values:
            return "--"
        sd = f" +- {statistics.stdev(self.values):.2f}" if len(self.values) > 1 else ""
        return f"{statistics.fmean(self.values):.2f}{sd} (n={len(self.values)})"

    def paired(self) -> str:
        if not self.values:
            return "--"
        n = len(self.values)
        above = sum(v >= 0 for v in self.values)
        se = f", SE {statistics.stdev(self.values) / math.sqrt(n):.2f}" if n > 1 else ""
        return f"{statistics.fmean(self.values):+.2f}{se} ({above} of {n} at or above)"


def read_rows(paths: Iterable[Path]) -> dict[Key, float]:
    """Rows of the curves files, keyed by (dataset, fold, model, seed, steps).

    Raises:
        ValueError: a file lacks a column, has an unreadable number, or two files give one pair two Dice values.
    """
    rows: dict[Key, float] = {}
    where: dict[Key, str] = {}
    for path in paths:
        with open(path, newline="") as fh:
            reader = csv.DictReader(fh, delimiter="\t")
            missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise ValueError(f"{path}: no column(s) {', '.join(missing)}; a curves file written by "
                                 f"vision_curves.sh starts with the header {' '.join(COLUMNS)} (tab-separated)")
            for line, r in enumerate(reader, start=2):
                try:
                    key = (r["dataset"], r["fold"], r["model"], r["seed"], int(r["steps"]))
                    dice = float(r["dice"])
                except (TypeError, ValueError) as err:
                    raise ValueError(f"{path}:{line}: cannot read steps / dice from {dict(r)}: {err}") from None
                if key in rows and rows[key] != dice:
                    raise ValueError(f"{path}:{line}: {key} has Dice {dice} here and {rows[key]} in {where[key]}: "
                                     "two runs of one pair; keep one of them")
                rows[key] = dice
                where[key] = f"{path}:{line}"
    return rows


def _label(dataset: str, fold: str) -> str:
    return dataset if fold == "-" else f"{dataset} fold {fold}"


def _folds(rows: dict[Key, float]) -> dict[str, set[str]]:
    folds: dict[str, set[str]] = defaultdict(set)
    for ds, fold, *_ in rows:
        if fold != "-":
            folds[ds].add(fold)
    return folds


def _cells(values: dict[Key, float], folds_of: dict[str, set[str]]) -> dict[tuple[str, str, int], Cell]:
    """(label, model, steps) -> one value per seed; a seed with every fold of ``folds_of`` adds its fold mean."""
    cells: dict[tuple[str, str, int], list[float]] = defaultdict(list)
    per_seed: dict[tuple[str, str, int, str], dict[str, float]] = defaultdict(dict)
    for (ds, fold, model, seed, steps), v in sorted(values.items()):
        cells[(_label(ds, fold), model, steps)].append(v)
        if fold != "-":
            per_seed[(ds, model, steps, seed)][fold] = v
    for (ds, model, steps, _seed), by_fold in sorted(per_seed.items()):
        if len(folds_of[ds]) > 1 and set(by_fold) == folds_of[ds]:
            cells[(f"{ds} mean of {len(by_fold)} folds", model, steps)].append(statistics.fmean(by_fold.values()))
    return {k: Cell(tuple(v)) for k, v in cells.items()}


def curve_cells(rows: dict[Key, float]) -> dict[tuple[str, str, int], Cell]:
    """(label, model, steps) -> the Dice of each seed, with ISBI-style fold means as extra labels."""
    return _cells(rows, _folds(rows))


def paired_cells(rows: dict[Key, float], baseline: str) -> dict[tuple[str, str, int], Cell]:
    """(label, model, steps) -> model minus baseline for each seed (and fold) where both were run.

    A seed's fold mean needs every fold of the file for both models.
    """
    diffs = {(ds, fold, model, seed, steps): dice - rows[(ds, fold, baseline, seed, steps)]
             for (ds, fold, model, seed, steps), dice in rows.items()
             if model != baseline and (ds, fold, baseline, seed, steps) in rows}
    return _cells(diffs, _folds(rows))


def markdown(cells: dict[tuple[str, str, int], Cell], budgets: Sequence[int], paired: bool) -> str:
    head = "minus the baseline @" if paired else "Dice @"
    lines = ["| data | model | " + " | ".join(f"{head}{b}" for b in budgets) + " |",
             "|---|---|" + "---|" * len(budgets)]
    for label, model in sorted({(label, model) for label, model, _ in cells}):
        row = [cells.get((label, model, b), Cell(())) for b in budgets]
        lines.append(f"| {label} | {model} | " + " | ".join(c.paired() if paired else c.mean_std() for c in row)
                     + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("curves", nargs="+", type=Path, help="curves.tsv file(s) written by vision_curves.sh")
    parser.add_argument("--baseline", default="unet", help="model the others are paired against (default: unet)")
    args = parser.parse_args(argv)
    try:
        rows = read_rows(args.curves)
    except (OSError, ValueError) as err:
        print(f"vision_curves_table.py: {err}", file=sys.stderr)
        return 2
    budgets = sorted({k[4] for k in rows})
    print(markdown(curve_cells(rows), budgets, paired=False))
    diffs = paired_cells(rows, args.baseline)
    if diffs:
        print(f"\nEach model minus `{args.baseline}`, paired by seed (and fold): mean, standard error over the "
              "seeds, seeds at or above")
        print()
        print(markdown(diffs, budgets, paired=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
