"""Parity of attnkit's NISQA with the original code's predictions (nisqa-reference, 30 wavs, 8-48 kHz).

Prints, per checkpoint and output, the max and mean absolute difference to ``reference_*.csv`` (batched
inference with padding masks, and one file at a time), and the log-mel difference on the 3 files with
intermediates, for: the default (float32 STFT, fused eval-mode CNN), float64 STFT with the fused CNN, and
float64 STFT with the reference CNN path (``model.cnn.fused = False``, closest to the original's arithmetic).

    ATTNKIT_DATA_DIR=../shared/data python benchmarks/nisqa_parity.py
"""

from __future__ import annotations

import csv

import numpy as np
import torch

from attnkit.audio.io import read_audio
from attnkit.audio.quality import NISQAFeatures, load_nisqa_checkpoint, pad_segments
from attnkit.core.data import dataset_dir

COLS = ["mos_pred", "noi_pred", "dis_pred", "col_pred", "loud_pred"]


def main() -> None:
    torch.set_num_threads(2)
    ref = dataset_dir("nisqa-reference")
    weights = dataset_dir("nisqa-weights")
    for dtype, fused in ((torch.float32, True), (torch.float64, True), (torch.float64, False)):
        feats = NISQAFeatures(stft_dtype=dtype)
        mel = []
        for stem in ("c03_clean_16k_pcm16_3s", "c08_clean_48k_pcm16_6s", "c06_clean_22k05_pcm16_6s"):
            x, sr = read_audio(ref / "wavs" / f"{stem}.wav", channel="mean")
            mel.append(
                np.abs(feats.melspec(x, sr).numpy() - np.load(ref / "intermediates" / f"{stem}__melspec.npy")).max()
            )
        path = "fused" if fused else "reference"
        print(f"STFT {str(dtype)[6:]}, {path} CNN: log-mel max |diff| over 3 files = {max(mel):.2e} dB")
        for name in ("nisqa", "nisqa_mos_only"):
            model, _ = load_nisqa_checkpoint(weights / f"{name}.tar")
            model.cnn.fused = fused
            rows = list(csv.DictReader((ref / f"reference_{name}.csv").open()))
            cols = COLS if name == "nisqa" else COLS[:1]
            segs = [feats(*read_audio(ref / "wavs" / r["deg"], channel="mean")) for r in rows]
            want = torch.tensor([[float(r[c]) for c in cols] for r in rows])
            with torch.no_grad():
                batched = model(*pad_segments(segs))
                single = torch.cat([model(s[None], torch.tensor([s.shape[0]])) for s in segs])
            for label, got in (("batched", batched), ("1 file", single)):
                d = (got - want).abs()
                per = ", ".join(f"{c[:-5]} {d[:, i].max():.1e}" for i, c in enumerate(cols))
                print(f"  {name:15s} {label:8s} {len(rows)} files: max {d.max():.2e}, mean {d.mean():.2e} ({per})")


if __name__ == "__main__":
    main()
