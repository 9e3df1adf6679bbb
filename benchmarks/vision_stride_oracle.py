"""The Dice of a perfect stride-s probability map, upsampled bilinearly, per dataset (test split).

A model whose logits live at stride ``s`` and are upsampled bilinearly (MSGANet predicts at stride 4) has a
coarse grid to draw fine detail with. The "oracle" here is the ground-truth mask average-pooled by ``s`` (a
perfect probability per cell), upsampled bilinearly and thresholded at 0.5. It is a reference, not a strict
upper bound: logits upsampled and then thresholded can place an edge inside a cell that this map puts
elsewhere. Its Dice, per image and averaged over the test images as the benchmarks score, shows whether the
output stride is a plausible cause of a gap to a full-resolution U-Net. Pixels outside a field of view
(DRIVE) count in neither the prediction nor the reference.

    ATTNKIT_DATA_DIR=../shared/data python benchmarks/vision_stride_oracle.py --datasets drive monuseg ph2
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from attnkit.vision.data import IGNORE_INDEX
from attnkit.vision.data.formats import SegmentationPair

MODULES = {"drive": "DRIVEDataModule", "monuseg": "MoNuSegDataModule", "ph2": "PH2DataModule",
           "isbi2012": "ISBI2012DataModule"}


def oracle_dice(pair: SegmentationPair, stride: int) -> float:
    """Dice of the bilinearly upsampled stride-``stride`` average of the mask against the mask (class 1)."""
    assert pair.mask is not None
    mask = torch.from_numpy(pair.mask)
    valid = mask != IGNORE_INDEX
    fg = (mask == 1).float()[None, None]
    h, w = fg.shape[-2:]
    padded = F.pad(fg, (0, (-w) % stride, 0, (-h) % stride), mode="replicate")
    coarse = F.avg_pool2d(padded, stride)
    up = F.interpolate(coarse, scale_factor=stride, mode="bilinear", align_corners=False)[0, 0, :h, :w]
    pred, ref = (up > 0.5) & valid, (fg[0, 0] > 0) & valid
    denom = int(pred.sum() + ref.sum())
    return 1.0 if denom == 0 else 2 * int((pred & ref).sum()) / denom


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", nargs="+", default=["drive", "monuseg", "ph2"], choices=sorted(MODULES))
    p.add_argument("--strides", nargs="+", type=int, default=[2, 4, 8])
    args = p.parse_args()
    import attnkit.vision as vision

    print("| data (test images) | " + " | ".join(f"stride {s}" for s in args.strides) + " |")
    print("|---|" + "---|" * len(args.strides))
    for name in args.datasets:
        pairs = getattr(vision, MODULES[name])().load_split("test")
        cells = [100 * sum(oracle_dice(pr, s) for pr in pairs) / len(pairs) for s in args.strides]
        print(f"| {name} ({len(pairs)}) | " + " | ".join(f"{c:.2f}" for c in cells) + " |")


if __name__ == "__main__":
    main()
