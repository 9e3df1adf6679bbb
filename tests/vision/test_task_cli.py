from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import segmentation_models_pytorch as smp
import torch
from lightning.pytorch import Trainer
from PIL import Image

from attnkit.core.cli import main, packaged_configs
from attnkit.vision import MoNuSegDataModule, MSGANet, SegmentationTask, TransDAE, UTransformer

TINY = "tu-mobilenetv3_small_050"
SMALL = ["--data.patch_size", "64", "--model.patch_size", "64", "--data.batch_size", "2",
         "--data.samples_per_epoch", "2"]


def tiny_net(model: str, *, fine: bool = False) -> torch.nn.Module:
    """A small instance of each segmentation model (``fine``: TransDAE's fine skips, MSGANet's fine decoder)."""
    if model == "utransformer":
        return UTransformer(TINY, num_heads=4, decoder_channels=(32, 16, 16, 8, 8))
    if model == "msga":
        return MSGANet(TINY, channels=16, fine_decoder=fine)
    if model == "unet":
        return smp.Unet(TINY, encoder_weights=None, classes=2, decoder_channels=(32, 16, 16, 8, 8))
    return TransDAE(dims=(16, 32, 32, 64), depths=(1, 1, 1, 1), num_heads=(1, 2, 2, 4),
                    decoder_channels=(32, 16, 16, 8, 8), interaction_dim=16, fine_skips=fine)


@pytest.mark.parametrize("model", ["utransformer", "msga", "unet", "transdae"])
def test_task_overfits_one_batch(model: str, monuseg_root: Path) -> None:
    torch.manual_seed(0)
    task = SegmentationTask(tiny_net(model), patch_size=64,
                            optimizer=lambda p: torch.optim.Adam(p, lr=3e-3))
    dm = MoNuSegDataModule(root=str(monuseg_root), patch_size=64, batch_size=2, samples_per_epoch=2,
                           augment=False)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    opt = task.configure_optimizers()
    task.train()
    losses = []
    for _ in range(12):
        opt.zero_grad()
        loss = task.training_step(batch, 0)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert min(losses[-3:]) < 0.8 * losses[0], losses


@pytest.mark.parametrize("model", ["utransformer", "msga", "unet", "transdae"])
def test_channels_last_task_computes_the_same_loss_and_gradients(model: str) -> None:
    """memory_format="channels_last" (the default) changes the layout, not the function: the same weights give
    the same loss and gradients as the contiguous layout, the convolutions get NHWC weights and inputs, and the
    weights stay NHWC through an optimiser step and load into a contiguous task unchanged. In float64: in float32
    the kernels of the two layouts round differently, and MSGANet's unscaled channel attention (a softmax over raw
    sums of 4,096 products) turns that into gradient differences of several per cent on some CPUs."""
    torch.manual_seed(0)
    base = tiny_net(model, fine=True)
    tasks = {}
    for fmt in ("contiguous", "channels_last"):
        m = tiny_net(model, fine=True)
        m.load_state_dict(base.state_dict())
        m.double()
        tasks[fmt] = SegmentationTask(m, memory_format=fmt, optimizer=lambda p: torch.optim.Adam(p, lr=1e-3))
        tasks[fmt].train()
    nhwc = torch.channels_last
    convs = [w for w in tasks["channels_last"].model.parameters() if w.dim() == 4 and w.shape[-1] > 1]
    assert convs and all(w.is_contiguous(memory_format=nhwc) for w in convs)
    assert all(w.is_contiguous() for w in tasks["contiguous"].model.parameters())
    seen = []
    first = next(mod for mod in tasks["channels_last"].model.modules() if isinstance(mod, torch.nn.Conv2d))
    first.register_forward_hook(lambda mod, inp, out: seen.append(inp[0].is_contiguous(memory_format=nhwc)))
    g = torch.Generator().manual_seed(1)
    batch = {"image": torch.randn(2, 3, 64, 64, generator=g, dtype=torch.float64),
             "mask": torch.randint(0, 2, (2, 64, 64), generator=g)}
    losses, grads = {}, {}
    for fmt, task in tasks.items():
        torch.manual_seed(2)
        loss = task.training_step(batch, 0)
        loss.backward()
        losses[fmt] = loss.item()
        grads[fmt] = {n: p.grad for n, p in task.model.named_parameters() if p.grad is not None}
    assert seen and all(seen)
    assert losses["channels_last"] == pytest.approx(losses["contiguous"], rel=1e-10)
    assert grads["channels_last"].keys() == grads["contiguous"].keys()
    for name, want in grads["contiguous"].items():
        torch.testing.assert_close(grads["channels_last"][name], want, atol=1e-10, rtol=1e-8, msg=name)
    opt = tasks["channels_last"].configure_optimizers()
    opt.step()
    assert all(w.is_contiguous(memory_format=nhwc) for w in convs)
    plain = SegmentationTask(tiny_net(model, fine=True).double(), memory_format="contiguous")
    plain.load_state_dict(tasks["channels_last"].state_dict())
    x = torch.randn(1, 3, 64, 64, generator=g, dtype=torch.float64)
    plain.eval()
    tasks["channels_last"].eval()
    with torch.no_grad():
        torch.testing.assert_close(plain(x), tasks["channels_last"](x), atol=1e-10, rtol=1e-8)


def test_task_rejects_unknown_memory_format() -> None:
    with pytest.raises(ValueError, match="memory_format must be 'channels_last' or 'contiguous'"):
        SegmentationTask(smp.Unet(TINY, encoder_weights=None, classes=2), memory_format="nhwc")  # type: ignore[arg-type]


def test_task_reports_class_count_mismatch() -> None:
    task = SegmentationTask(smp.Unet(TINY, encoder_weights=None, classes=3), num_classes=2)
    with pytest.raises(ValueError, match=r"num_classes=2.*set the model's number of classes"):
        task(torch.randn(1, 3, 64, 64))


def test_trainer_validate_and_test_whole_images(monuseg_root: Path) -> None:
    torch.manual_seed(0)
    task = SegmentationTask(UTransformer(TINY, num_heads=4, decoder_channels=(32, 16, 16, 8, 8)), patch_size=64)
    dm = MoNuSegDataModule(root=str(monuseg_root), patch_size=64, batch_size=2, samples_per_epoch=2)
    trainer = Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False)
    trainer.fit(task, dm)
    assert 0.0 <= float(trainer.callback_metrics["val/dice"]) <= 1.0
    [res] = trainer.test(task, dm, verbose=False)
    assert set(res) >= {"test/dice", "test/iou", "test/hd95", "test/auroc", "test/auprc", "test/loss"}
    assert 0.0 <= res["test/auroc"] <= 1.0 and 0.0 <= res["test/auprc"] <= 1.0
    assert 0.0 <= res["test/dice"] <= 1.0 and 0.0 <= res["test/iou"] <= res["test/dice"] + 1e-6
    assert task.metrics["test"]["dice"].count == 0  # reset after the epoch


@pytest.mark.parametrize("config", ["utransformer-monuseg", "msga-monuseg", "unet-monuseg", "transdae-monuseg"])
def test_packaged_monuseg_configs_fit(config: str, monuseg_root: Path) -> None:
    assert main(["fit", "-c", config, "--data.root", str(monuseg_root), "--trainer.fast_dev_run=true", *SMALL]) == 0


@pytest.mark.parametrize("config", ["utransformer-isbi2012", "unet-isbi2012", "transdae-isbi2012", "msga-isbi2012"])
def test_packaged_isbi_config_fit_and_test(config: str, isbi_root: Path) -> None:
    args = ["-c", config, "--data.root", str(isbi_root), *SMALL]
    assert main(["fit", *args, "--trainer.fast_dev_run=true"]) == 0
    assert main(["test", *args, "--trainer.fast_dev_run=true"]) == 0


@pytest.mark.parametrize("config", [f"{m}-{d}" for d in ("drive", "ph2") for m in ("utransformer", "unet", "transdae",
                                                                                  "msga")])
def test_packaged_drive_and_ph2_configs_fit_and_test(config: str, tmp_path: Path, fixtures: object) -> None:
    """DRIVE: loss and metrics inside the field of view; PH2: case folders and interleaved folds."""
    getattr(fixtures, "make_" + config.split("-")[1])(tmp_path / "data")
    args = ["-c", config, "--data.root", str(tmp_path / "data"), *SMALL]
    assert main(["fit", *args, "--trainer.max_steps", "1"]) == 0
    assert main(["test", *args, "--ckpt_path", "last"]) == 0
    rows = [r for f in Path(f"runs/{config}/logs").glob("version_*/metrics.csv") for r in csv.DictReader(open(f))]
    dice = [float(r["test/dice"]) for r in rows if r.get("test/dice")]
    assert len(dice) == 1 and 0.0 <= dice[0] <= 1.0


def test_fit_test_predict_through_cli(monuseg_root: Path, tmp_path: Path) -> None:
    args = ["-c", "unet-monuseg", "--data.root", str(monuseg_root), *SMALL,
            "--model.model.init_args.encoder_name", TINY, "--trainer.enable_progress_bar=false"]
    assert main(["fit", *args, "--trainer.max_epochs=1", "--trainer.check_val_every_n_epoch=1"]) == 0
    ckpts = Path("runs/unet-monuseg/checkpoints")
    assert (ckpts / "best.ckpt").is_file() and (ckpts / "last.ckpt").is_file()
    assert main(["test", *args, "--ckpt_path", "best"]) == 0
    rows = [r for f in Path("runs/unet-monuseg/logs").glob("version_*/metrics.csv") for r in csv.DictReader(open(f))]
    assert any(r.get("test/dice") for r in rows)
    out = tmp_path / "pred"
    images = monuseg_root / "monuseg" / "Test_Folder" / "img"
    assert main(["predict", *args, "--ckpt_path", "best", "--data.predict_dir", str(images),
                 "--model.output_dir", str(out)]) == 0
    for tif in images.glob("*.tif"):
        mask = np.asarray(Image.open(out / f"{tif.stem}_mask.png"))
        ov = Image.open(out / f"{tif.stem}_overlay.png")
        assert mask.shape == (72, 80) and set(np.unique(mask)) <= {0, 255}
        assert ov.size == (80, 72) and ov.mode == "RGB"
        prob = np.asarray(Image.open(out / f"{tif.stem}_prob.png"))
        assert prob.shape == (72, 80) and prob.dtype == np.uint16


def test_predict_without_images_says_what_to_pass(monuseg_root: Path) -> None:
    dm = MoNuSegDataModule(root=str(monuseg_root))
    with pytest.raises(ValueError, match=r"--data\.predict_dir"):
        dm.setup("predict")


ATTENTION_CONFIGS = sorted(name for name in packaged_configs() if name.startswith(("utransformer-", "msga-")))


def test_every_attention_config_is_checked_for_its_resolution() -> None:
    assert len(ATTENTION_CONFIGS) >= 8 and {"utransformer-ph2", "msga-ph2"} <= set(ATTENTION_CONFIGS)


@pytest.mark.parametrize("config", ATTENTION_CONFIGS)
def test_packaged_attention_configs_attend_at_reduced_resolution(config: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The configs' speed settings (issue #16): on a 256x256 patch no attention has more than 1,024 keys.

    The models' own defaults (the papers) attend over all 4,096 stride-4 positions; the configs must not.
    """
    import yaml

    import attnkit.core.layers.mha as mha_module
    import attnkit.core.layers.spatial as spatial_module
    from attnkit.core.cli import resolve_config

    spec = yaml.safe_load(resolve_config(config).read_text())["model"]["init_args"]["model"]
    kwargs = {**spec["init_args"], "encoder_weights": None}
    cls = {"attnkit.vision.UTransformer": UTransformer, "attnkit.vision.MSGANet": MSGANet}[spec["class_path"]]
    keys: list[int] = []
    real = spatial_module.attention

    def counting(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *args: object, **kw: object) -> object:
        keys.append(k.shape[-2])
        return real(q, k, v, *args, **kw)

    monkeypatch.setattr(spatial_module, "attention", counting)
    monkeypatch.setattr(mha_module, "attention", counting)
    in_channels = kwargs.get("in_channels", 3)
    with torch.no_grad():
        cls(**kwargs).eval()(torch.randn(1, in_channels, 256, 256))
        assert keys and max(keys) <= 1024, (config, keys)
        keys.clear()
        paper = {k: v for k, v in kwargs.items() if k not in ("gate_stride", "attention_kv_stride", "gated_skips")}
        cls(**paper).eval()(torch.randn(1, in_channels, 256, 256))
    assert max(keys) == 4096  # the paper's layout, which the configs leave


@pytest.mark.parametrize("option", [
    ["--model.init_args.model.init_args.gate_stride", "null"],
    ["--model.init_args.model.init_args.gate_stride=null"],
    ["--model.model.gate_stride", "~"],
])
def test_a_null_two_class_levels_down_reaches_the_model(option: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """`gate_stride: null` (the paper's full-resolution gates) from the command line, as in a config file.

    jsonargparse alone turns a null two classes down (task -> model) into the string "None" and refuses it.
    """
    import yaml

    with pytest.raises(SystemExit) as stop:
        main(["fit", "-c", "utransformer-isbi2012", *option, "--print_config"])
    assert stop.value.code in (0, None)
    model = yaml.safe_load(capsys.readouterr().out)["model"]["init_args"]["model"]["init_args"]
    assert model["gate_stride"] is None
    assert model["num_heads"] == 8 and model["in_channels"] == 1  # the config's other settings are kept
    with pytest.raises(SystemExit):
        main(["fit", "-c", "utransformer-isbi2012", "--model.init_args.model.init_args.gate_stride=2",
              "--print_config"])
    assert yaml.safe_load(capsys.readouterr().out)["model"]["init_args"]["model"]["init_args"]["gate_stride"] == 2


class _RedThreshold(torch.nn.Module):
    """Class 1 where the normalised red channel is below 0.6 (the fixtures' dark disks): a fixed 'perfect'
    segmenter of the blobs, so any loss of quality comes from how the task handles the scale."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 2, 1)
        with torch.no_grad():
            self.conv.weight.zero_()
            self.conv.bias.copy_(torch.tensor([0.0, 6.0]))
            self.conv.weight[1, 0] = -10.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def test_scaled_data_is_evaluated_and_predicted_at_the_original_resolution(monuseg_root: Path,
                                                                          tmp_path: Path) -> None:
    """``--data.scale``: the model sees half-size images; the task resamples its logits back, so metrics
    compare with the full-size masks and the written masks have the images' size."""
    scores = {}
    for scale in (1.0, 0.5):
        task = SegmentationTask(_RedThreshold(), patch_size=None, pad_multiple=1, output_dir=str(tmp_path / "p"))
        dm = MoNuSegDataModule(root=str(monuseg_root), scale=scale,
                               predict_dir=str(monuseg_root / "monuseg" / "Test_Folder" / "img"))
        trainer = Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False,
                          enable_model_summary=False)
        seen: list[tuple[int, ...]] = []

        def record(module: torch.nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor,
                   seen: list[tuple[int, ...]] = seen) -> None:
            seen.append(tuple(inputs[0].shape[-2:]))

        task.model.register_forward_hook(record)
        [res] = trainer.test(task, dm, verbose=False)
        scores[scale] = res["test/dice"]
        assert set(seen) == ({(72, 80)} if scale == 1 else {(36, 40)})
        trainer.predict(task, dm)
        for mask in (tmp_path / "p").glob("*_mask.png"):
            assert np.asarray(Image.open(mask)).shape == (72, 80)
    assert scores[1.0] > 0.95
    assert 0.85 < scores[0.5] <= scores[1.0]  # boundaries blur at half size, nothing else


def test_a_run_stopped_and_resumed_mid_epoch_ends_with_the_uninterrupted_weights(monuseg_root: Path,
                                                                                   tmp_path: Path) -> None:
    """Through `attnkit fit`: 2 steps then `--ckpt_path last` to 5 equals 5 steps (3 batches per epoch)."""
    args = ["-c", "unet-monuseg", "--data.root", str(monuseg_root), "--data.patch_size", "64", "--model.patch_size",
            "64", "--data.batch_size", "2", "--data.samples_per_epoch", "6", "--model.model.init_args.encoder_name",
            TINY, "--trainer.enable_progress_bar=false", "--trainer.max_epochs=-1"]

    def last(run: str) -> dict[str, torch.Tensor]:
        ck = torch.load(tmp_path / run / "unet-monuseg" / "checkpoints" / "last.ckpt", weights_only=True)
        assert ck["global_step"] == 5
        return dict(ck["state_dict"])

    assert main(["fit", *args, "--run_dir", str(tmp_path / "whole"), "--trainer.max_steps", "5"]) == 0
    assert main(["fit", *args, "--run_dir", str(tmp_path / "parts"), "--trainer.max_steps", "2"]) == 0
    assert main(["fit", *args, "--run_dir", str(tmp_path / "parts"), "--trainer.max_steps", "5",
                 "--ckpt_path", "last"]) == 0
    whole, parts = last("whole"), last("parts")
    assert whole.keys() == parts.keys()
    for k, v in whole.items():
        torch.testing.assert_close(parts[k], v, rtol=0, atol=0, msg=k)
