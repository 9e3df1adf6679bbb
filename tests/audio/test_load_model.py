"""A NISQA trained with ``attnkit fit`` is scored by ``attnkit-audio quality --checkpoint`` like the task scores."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from attnkit.audio import NISQA, SpeechQualityModel, SpeechQualityTask
from attnkit.audio.cli import main as audio_main
from attnkit.core.cli import main

from .test_quality_configs import _speech


def test_fit_then_score_with_the_users_checkpoint(tmp_path: Path) -> None:
    (tmp_path / "clean-speech").mkdir()
    for i in range(4):
        sf.write(tmp_path / "clean-speech" / f"s{i}.wav", _speech(16000, 1.1, i), 16000)
    assert main(["fit", "-c", "nisqa-simulated", "--data.root", str(tmp_path), "--data.num_clips", "8",
                 "--data.batch_size", "4", "--trainer.max_steps", "2", "--trainer.enable_progress_bar=false"]) == 0
    ckpt = Path("runs/nisqa-simulated/checkpoints/best.ckpt")
    assert isinstance(NISQA.from_checkpoint(ckpt), NISQA)
    clip = tmp_path / "clip.wav"
    sf.write(clip, _speech(16000, 2.0, 9), 16000)
    assert audio_main(["quality", str(clip), "--checkpoint", str(ckpt), "--csv", "scores.csv"]) == 0
    row = next(csv.DictReader(open("scores.csv")))
    scorer = SpeechQualityModel.from_checkpoint(ckpt)
    task = SpeechQualityTask.load_from_checkpoint(ckpt).eval()
    wav, sr = sf.read(clip, dtype="float32")
    with torch.no_grad():
        want = task.model(*_features(scorer, wav, sr))[0]
    for i, name in enumerate(task.names):
        assert abs(float(row[name]) - float(want[i])) < 1e-4, (name, row[name], float(want[i]))


def _features(scorer: SpeechQualityModel, wav: np.ndarray, sr: int) -> tuple[torch.Tensor, torch.Tensor]:
    from attnkit.audio.quality.features import pad_segments

    seg = scorer.features(torch.from_numpy(wav), sr)
    return pad_segments([seg])
