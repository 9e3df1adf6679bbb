"""The task contract on the demonstration task: run layout, best.ckpt, predictions, checkpoints to models."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from attnkit.core.cli import main
from attnkit.core.models import load_model
from attnkit.core.tasks import SequenceClassificationTask, SequenceClassifier, SyntheticSequenceDataModule

SMALL = ["--data.num_samples", "128", "--data.batch_size", "32", "--trainer.max_epochs", "1",
         "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


def _demo_batch() -> tuple[torch.Tensor, torch.Tensor]:
    dm = SyntheticSequenceDataModule(num_samples=64, seq_len=32)
    dm.setup()
    tokens, lengths, _ = next(iter(dm.test_dataloader()))
    return tokens, lengths


def test_fit_without_validation_still_leaves_best_ckpt_and_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fit", "-c", "demo", *SMALL, "--trainer.limit_val_batches", "0"]) == 0
    err = capsys.readouterr().err
    best, last = Path("runs/demo/checkpoints/best.ckpt"), Path("runs/demo/checkpoints/last.ckpt")
    assert best.is_file() and last.is_file()
    assert "best.ckpt is a copy of the last checkpoint" in err
    assert "run in runs/demo" in err and "logs in runs/demo/logs/version_0" in err
    assert main(["test", "-c", "demo", *SMALL, "--ckpt_path", "best"]) == 0


def test_run_dir_option_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert main(["fit", "-c", "demo", *SMALL, "--run_dir", "elsewhere"]) == 0
    assert Path("elsewhere/demo/checkpoints/last.ckpt").is_file()
    monkeypatch.setenv("ATTNKIT_RUNS_DIR", "from-env")
    assert main(["fit", "-c", "demo", *SMALL]) == 0
    assert Path("from-env/demo/checkpoints/last.ckpt").is_file()
    assert not Path("runs").exists()


def test_predict_writes_a_table_under_the_run_and_says_where(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fit", "-c", "demo", *SMALL]) == 0
    assert main(["predict", "-c", "demo", *SMALL, "--ckpt_path", "best"]) == 0
    table = Path("runs/demo/predictions/predictions.csv")
    rows = list(csv.DictReader(table.open()))
    assert len(rows) == 128 // 4  # the test split
    assert set(rows[0]) == {"label", "prob_0", "prob_1", "prob_2", "prob_3"}
    assert all(abs(sum(float(r[f"prob_{k}"]) for k in range(4)) - 1) < 1e-5 for r in rows)
    assert "file(s) in runs/demo/predictions" in capsys.readouterr().err


def test_checkpoint_to_model_in_one_call() -> None:
    assert main(["fit", "-c", "demo", *SMALL]) == 0
    ckpt = "runs/demo/checkpoints/best.ckpt"
    task = SequenceClassificationTask.load_from_checkpoint(ckpt)  # no model= needed
    model = load_model(ckpt)
    assert isinstance(model, SequenceClassifier) and not model.training
    tokens, lengths = _demo_batch()
    task.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(tokens, lengths), task(tokens, lengths))
    # the weights are the trained ones, not a fresh initialisation
    fresh = SequenceClassifier(**torch.load(ckpt, weights_only=True)["attnkit"]["model"]["init_args"]).eval()
    with torch.no_grad():
        assert not torch.allclose(fresh(tokens, lengths), model(tokens, lengths))


def test_python_built_task_checkpoint_loads_without_the_cli(tmp_path: Path) -> None:
    import lightning.pytorch as pl

    model = SequenceClassifier(vocab_size=32, num_classes=4, embed_dim=16, num_heads=2, num_layers=1)
    task = SequenceClassificationTask(model, num_classes=4)
    trainer = pl.Trainer(max_steps=2, logger=False, enable_progress_bar=False, enable_model_summary=False,
                         default_root_dir=tmp_path, limit_val_batches=0)
    trainer.fit(task, SyntheticSequenceDataModule(num_samples=64))
    trainer.save_checkpoint(tmp_path / "m.ckpt")
    restored = load_model(tmp_path / "m.ckpt")
    tokens, lengths = _demo_batch()
    with torch.no_grad():
        torch.testing.assert_close(restored(tokens, lengths), model.eval()(tokens, lengths))


def test_untrusted_class_in_a_checkpoint_is_refused(tmp_path: Path) -> None:
    ckpt = {"state_dict": {}, "attnkit": {"model": {"class_path": "os.system", "init_args": {"command": "true"}}}}
    with pytest.raises(ValueError, match="not from a trusted module"):
        load_model(ckpt)


def test_early_stopping_says_why(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    cfg = tmp_path / "es.yaml"
    cfg.write_text(
        "trainer:\n  callbacks:\n    - class_path: lightning.pytorch.callbacks.EarlyStopping\n"
        "      init_args: {monitor: val/acc, mode: max, patience: 1, min_delta: 2.0}\n"
    )
    assert main(["fit", "-c", "demo", "-c", str(cfg), *SMALL, "--trainer.max_epochs", "5"]) == 0
    err = capsys.readouterr().err
    assert "early stopping after epoch" in err and "val/acc" in err


@pytest.mark.parametrize("code", [
    "import attnkit.core.cli as c; c.main(['--help'])",
    "import attnkit.core.cli as c; c.main(['configs'])",
    "import attnkit.core.cli as c; c.main(['datasets'])",
    "import attnkit.core.cli as c; c.main(['models'])",
    "from attnkit.recsys import SASRec",
    "from attnkit.timeseries import SAITS",
    "from attnkit.vision import UTransformer, MSGANet, TransDAE",
    "from attnkit.audio import NISQA, SelfAttentionTagger, ShortChunkCNN",
])
def test_fast_paths_import_no_heavy_modules(code: str) -> None:
    heavy = ["lightning", "torchmetrics", "transformers", "sklearn", "scipy", "pandas", "matplotlib",
             "segmentation_models_pytorch", "timm", "torchaudio", "pypots"]
    if "attnkit.core.cli" in code:
        heavy.append("torch")
    probe = f"{code}\nimport sys\nprint('LOADED:', *[m for m in {heavy!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr[-2000:]
    loaded = out.stdout.strip().splitlines()[-1].split()[1:]
    assert loaded == [], f"{code!r} imported {loaded}"


def test_one_file_quality_prediction_imports_no_lightning(tmp_path: Path) -> None:
    import numpy as np
    import soundfile as sf

    from attnkit.audio.quality.convert import export_nisqa_checkpoint
    from attnkit.audio.quality.model import NISQA

    weights = export_nisqa_checkpoint(NISQA(), tmp_path / "nisqa.tar")
    clip = tmp_path / "clip.wav"
    sf.write(clip, (0.1 * np.sin(np.arange(48000) / 16000 * 2 * np.pi * 220)).astype("float32"), 16000)
    probe = (f"from attnkit.audio.cli import main\nassert main(['quality', {str(clip)!r}, '--weights', "
             f"{str(weights)!r}]) == 0\nimport sys\n"
             "print('LOADED:', *[m for m in ('lightning', 'torchmetrics', 'matplotlib', 'scipy', 'music21', "
             "'pandas') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert "mos=" in out.stdout
    assert out.stdout.strip().splitlines()[-1].split()[1:] == []


def test_a_run_prints_no_warnings(tmp_path: Path) -> None:
    out = subprocess.run([str(Path(sys.executable).parent / "attnkit"), "fit", "-c", "demo",
                          "--trainer.fast_dev_run=true"], capture_output=True, text=True, timeout=300,
                         cwd=tmp_path, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr[-2000:]
    noisy = [line for line in out.stderr.splitlines() if "warn" in line.lower() or "Tip:" in line]
    assert noisy == []
