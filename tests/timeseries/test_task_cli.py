from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
import pytest
import torch

from attnkit.timeseries import SAITS, ETTDataModule, ImputationTask


def _tiny(dm: ETTDataModule) -> SAITS:
    return SAITS(dm.num_features, dm.num_steps, num_layers=1, embed_dim=32, num_heads=2, head_dim=16,
                 value_head_dim=16, ffn_dim=32, dropout=0.0)


def test_training_learns_and_checkpoint_carries_scaler(ett_root: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    dm = ETTDataModule(root=str(ett_root), num_steps=16, stride=4, batch_size=16)
    task = ImputationTask(_tiny(dm), optimizer=lambda p: torch.optim.Adam(p, lr=3e-3))
    trainer = L.Trainer(max_epochs=8, logger=False, enable_progress_bar=False, enable_model_summary=False,
                        default_root_dir=tmp_path, num_sanity_val_steps=0)
    before = trainer.validate(task, dm, verbose=False)[0]["val/mae"]
    trainer.fit(task, dm)
    res = trainer.test(task, dm, verbose=False)[0]
    assert res["test/mae"] < 0.6 * before  # learns the shared sinusoid from the other variables
    assert {"test/rmse", "test/mre", "test/mae_orig", "test/rmse_orig", "test/mre_orig"} <= set(res)
    # original scale: MAE scales with the per-feature std (all close to 0.7 here)
    assert res["test/mae_orig"] == pytest.approx(res["test/mae"] * float(dm.std.mean()), rel=0.3)
    torch.testing.assert_close(task.model.feature_mean, torch.tensor(dm.mean, dtype=torch.float32))
    ckpt = tmp_path / "m.ckpt"
    trainer.save_checkpoint(ckpt)
    state = torch.load(ckpt, weights_only=True)["state_dict"]
    assert "model.feature_std" in state


def test_resume_continues_same_orders_masks_and_optimizer(ett_root: Path, tmp_path: Path) -> None:
    """2 epochs straight == 1 epoch, checkpoint, resume in a fresh process state for the 2nd (same weights)."""

    def run(epochs: int, ckpt: str | None = None) -> tuple[ImputationTask, L.Trainer]:
        torch.manual_seed(0)
        dm = ETTDataModule(root=str(ett_root), num_steps=16, stride=4, batch_size=16)
        task = ImputationTask(_tiny(dm), optimizer=lambda p: torch.optim.Adam(p, lr=3e-3))
        trainer = L.Trainer(max_epochs=epochs, logger=False, enable_progress_bar=False, enable_model_summary=False,
                            default_root_dir=tmp_path, num_sanity_val_steps=0, enable_checkpointing=False)
        trainer.fit(task, dm, ckpt_path=ckpt)
        return task, trainer

    straight, _ = run(2)
    _, first = run(1)
    first.save_checkpoint(tmp_path / "e1.ckpt")
    torch.manual_seed(123)  # a resumed process starts from a different random state
    resumed, trainer = run(2, str(tmp_path / "e1.ckpt"))
    assert trainer.current_epoch == 2
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, msg=name)
    # without the saved random state the second epoch differs (the check above can fail)
    state = torch.load(tmp_path / "e1.ckpt", weights_only=False)
    del state["mit_rng_state"], state["ETTDataModule"]  # Lightning keys data module state by class name
    torch.save(state, tmp_path / "legacy.ckpt")
    torch.manual_seed(123)
    legacy, _ = run(2, str(tmp_path / "legacy.ckpt"))
    assert not torch.equal(straight.model.out1.weight, legacy.model.out1.weight)


def test_predict_writes_imputed_csv(ett_root: Path, tmp_path: Path) -> None:
    dm = ETTDataModule(root=str(ett_root), num_steps=16, stride=8, batch_size=8)
    out = tmp_path / "imputed.csv"
    task = ImputationTask(_tiny(dm), predict_output=str(out))
    raw = pd.read_csv(ett_root / "ett" / "ETTh1.csv")
    raw.loc[5:9, "OT"] = np.nan
    raw.to_csv(ett_root / "ett" / "ETTh1.csv", index=False)
    L.Trainer(logger=False, enable_progress_bar=False).predict(task, dm)
    got = pd.read_csv(out)
    assert len(got) == len(raw) and list(got.columns) == ["series", "date", *raw.columns[1:]]
    assert not got["OT"].isna().any()
    np.testing.assert_allclose(got["HUFL"], raw["HUFL"])


def test_feature_mismatch_between_model_and_data(ett_root: Path) -> None:
    dm = ETTDataModule(root=str(ett_root), num_steps=16)
    task = ImputationTask(SAITS(5, 16, num_layers=1, embed_dim=16, num_heads=2, ffn_dim=16))
    with pytest.raises(ValueError, match="expects 5 features but the data has 7"):
        L.Trainer(logger=False, fast_dev_run=True).fit(task, dm)


@pytest.mark.parametrize(("config", "fixture"), [("saits-ett", "ett_root"), ("saits-air-quality", "prsa_root"),
                                                 ("saits-air-quality-fast", "prsa_root"),
                                                 ("saits-physionet2012", "physionet_root"),
                                                 ("saits-physionet2012-fast", "physionet_root")])
def test_packaged_configs_smoke(config: str, fixture: str, request: pytest.FixtureRequest,
                                monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from attnkit.core.cli import main

    root = request.getfixturevalue(fixture)
    monkeypatch.setenv("ATTNKIT_CACHE_DIR", str(tmp_path / "cache"))
    assert main(["fit", "-c", config, "--data.root", str(root), "--trainer.fast_dev_run=true"]) == 0
    assert main(["test", "-c", config, "--data.root", str(root), "--trainer.fast_dev_run=true"]) == 0
    if config == "saits-ett":
        assert main(["predict", "-c", config, "--data.root", str(root), "--trainer.fast_dev_run=true"]) == 0
        written = Path("runs") / config / "predictions" / "imputed.csv"
        assert written.is_file() and len(pd.read_csv(written)) == 400
