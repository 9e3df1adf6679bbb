"""A SAITS trained with ``attnkit fit`` becomes a plain model in one call and imputes as the task does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from attnkit.core.cli import main
from attnkit.timeseries import SAITS, ImputationTask
from attnkit.timeseries.impute import impute_series


def test_fit_then_load_gives_the_same_imputation(ett_root: Path) -> None:
    args = ["-c", "saits-ett", "--data.root", str(ett_root), "--trainer.max_epochs", "1",
            "--trainer.enable_progress_bar", "false", "--model.model.init_args.num_layers", "1",
            "--model.model.init_args.embed_dim", "16", "--model.model.init_args.ffn_dim", "16"]
    assert main(["fit", *args]) == 0
    ckpt = Path("runs/saits-ett/checkpoints/best.ckpt")
    model = SAITS.from_checkpoint(ckpt)
    task = ImputationTask.load_from_checkpoint(ckpt).eval()
    torch.testing.assert_close(model.feature_mean, task.model.feature_mean)  # the scaler came along
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, model.num_features)).astype(np.float32)
    x[rng.random(x.shape) < 0.2] = np.nan
    got = impute_series(model, x)
    np.testing.assert_allclose(got, impute_series(task.model, x), rtol=1e-6, atol=1e-6)
    assert not np.isnan(got).any()
    np.testing.assert_allclose(got[~np.isnan(x)], x[~np.isnan(x)], rtol=1e-6)
