"""Field-of-view / ignore masks in losses and metrics, pixel AUROC/AUPRC, and the prediction writer."""

from __future__ import annotations

from pathlib import Path
from typing import get_args

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image
from sklearn.metrics import average_precision_score, roc_auc_score
from torch import Tensor, nn

from attnkit.vision import (
    HausdorffDistance95,
    PerImageDice,
    PerImageIoU,
    PixelAUPRC,
    PixelAUROC,
    SegmentationLoss,
    SegmentationTask,
    write_segmentation,
)
from attnkit.vision.data.formats import IGNORE_INDEX
from attnkit.vision.losses import LossName
from attnkit.vision.metrics import auc_from_histograms


def _with_fov(target: Tensor) -> tuple[Tensor, Tensor]:
    """``target`` with its left third ignored, and the validity mask."""
    valid = torch.ones_like(target, dtype=torch.bool)
    valid[..., : target.shape[-1] // 3] = False
    return torch.where(valid, target, torch.full_like(target, IGNORE_INDEX)), valid


@pytest.mark.parametrize("name", get_args(LossName))
def test_ignored_pixels_contribute_nothing_to_any_loss(name: LossName) -> None:
    g = torch.Generator().manual_seed(0)
    target = torch.randint(0, 3, (2, 12, 15), generator=g)
    ignored_target, valid = _with_fov(target)
    logits = torch.randn(2, 3, 12, 15, generator=g, requires_grad=True)
    loss = SegmentationLoss(name)
    value = loss(logits, ignored_target)
    value.backward()
    assert logits.grad is not None
    assert logits.grad.abs().amax(1)[~valid].max() == 0  # no gradient outside the field of view
    assert logits.grad.abs().amax(1)[valid].max() > 0
    # changing the logits (and the labels) outside the field of view changes nothing
    other = logits.detach().clone()
    other[:, :, ~valid[0]] = torch.randn_like(other[:, :, ~valid[0]]) * 10
    other_target = ignored_target.clone()
    assert torch.allclose(loss(other, other_target), value.detach(), atol=1e-6)
    # all ignored: zero, finite gradient
    empty = torch.full_like(target, IGNORE_INDEX)
    x = logits.detach().clone().requires_grad_(True)
    v = loss(x, empty)
    v.backward()
    assert v.item() == 0.0 and x.grad is not None and torch.isfinite(x.grad).all()


def test_ignore_free_loss_matches_the_plain_cross_entropy() -> None:
    g = torch.Generator().manual_seed(1)
    logits, target = torch.randn(2, 2, 8, 8, generator=g), torch.randint(0, 2, (2, 8, 8), generator=g)
    ref = torch.nn.functional.cross_entropy(logits, target)
    assert torch.allclose(SegmentationLoss("ce")(logits, target), ref, rtol=1e-6)


def test_dice_iou_hd95_score_only_inside_the_fov() -> None:
    target = torch.zeros(1, 20, 30, dtype=torch.long)
    target[0, 5:15, 12:25] = 1
    ignored, _ = _with_fov(target)
    pred = target.clone()
    pred[0, :, :10] = 1  # wrong only outside the field of view (columns 0..9)
    for metric_cls in (PerImageDice, PerImageIoU):
        inside, plain = metric_cls(), metric_cls()
        inside.update(pred, ignored)
        plain.update(pred, target)
        assert inside.compute().item() == pytest.approx(1.0)
        assert plain.compute().item() < 0.8
    hd_in, hd_plain = HausdorffDistance95(), HausdorffDistance95()
    hd_in.update(pred, ignored)
    hd_plain.update(pred, target)
    assert hd_in.compute().item() == 0.0 and hd_plain.compute().item() > 1.0


def _roc_pr(logits: Tensor, target: Tensor, num_classes: int) -> tuple[float, float]:
    auroc, auprc = PixelAUROC(num_classes), PixelAUPRC(num_classes)
    auroc.update(logits, target)
    auprc.update(logits, target)
    return auroc.compute().item(), auprc.compute().item()


def test_pixel_auroc_auprc_match_sklearn_over_valid_pixels_of_all_images() -> None:
    g = torch.Generator().manual_seed(0)
    target = (torch.rand(3, 24, 32, generator=g) > 0.8).long()
    logits = torch.randn(3, 2, 24, 32, generator=g)
    logits[:, 1] += 1.5 * target  # informative but imperfect
    ignored, valid = _with_fov(target)
    auroc, auprc = PixelAUROC(), PixelAUPRC()
    for i in range(3):  # image by image, as the task feeds them: pooled at the end
        auroc.update(logits[i : i + 1], ignored[i : i + 1])
        auprc.update(logits[i : i + 1], ignored[i : i + 1])
    score = (logits[:, 1] - logits[:, 0])[valid].numpy()
    y = target[valid].numpy()
    assert auroc.compute().item() == pytest.approx(roc_auc_score(y, score), abs=1e-5)
    assert auprc.compute().item() == pytest.approx(average_precision_score(y, score), abs=2e-4)
    # the ignored pixels matter when they are not ignored
    assert abs(_roc_pr(logits, target, 2)[0] - roc_auc_score(y, score)) > 1e-3


def test_pixel_auc_multiclass_is_the_mean_of_one_vs_rest() -> None:
    g = torch.Generator().manual_seed(2)
    target = torch.randint(0, 3, (2, 16, 16), generator=g)
    logits = torch.randn(2, 3, 16, 16, generator=g) + 2 * torch.nn.functional.one_hot(target, 3).permute(0, 3, 1, 2)
    probs = logits.softmax(1).permute(0, 2, 3, 1).reshape(-1, 3).numpy()
    y = target.flatten().numpy()
    want_roc = np.mean([roc_auc_score(y == c, probs[:, c]) for c in (1, 2)])
    want_ap = np.mean([average_precision_score(y == c, probs[:, c]) for c in (1, 2)])
    got_roc, got_ap = _roc_pr(logits, target, 3)
    assert got_roc == pytest.approx(want_roc, abs=1e-4) and got_ap == pytest.approx(want_ap, abs=2e-4)


def test_pixel_auc_states_merge_like_ddp_and_degenerate_cases() -> None:
    g = torch.Generator().manual_seed(3)
    target = (torch.rand(2, 10, 10, generator=g) > 0.5).long()
    logits = torch.randn(2, 2, 10, 10, generator=g)
    a, b, whole = PixelAUROC(), PixelAUROC(), PixelAUROC()
    a.update(logits[:1], target[:1])
    b.update(logits[1:], target[1:])
    whole.update(logits, target)
    a.hist += b.hist  # what the sum all-reduce does
    assert a.compute().item() == whole.compute().item()
    no_pos = PixelAUROC()
    no_pos.update(logits, torch.zeros_like(target))
    assert torch.isnan(no_pos.compute())
    auroc, ap = auc_from_histograms(torch.tensor([0, 0, 3]), torch.tensor([5, 0, 0]))  # perfectly separated
    assert auroc == 1.0 and ap == 1.0
    with pytest.raises(ValueError, match=r"expected logits \(B, K=2, H, W\)"):
        PixelAUROC().update(target, target)


def test_write_segmentation_binary_png_npy_tif(tmp_path: Path) -> None:
    g = torch.Generator().manual_seed(0)
    probs = torch.rand(1, 2, 9, 11, generator=g).softmax(1)[0]
    out = write_segmentation(tmp_path / "sub" / "case", probs)
    assert set(out) == {"mask", "prob"} and out["prob"].endswith("case_prob.png")
    mask = np.asarray(Image.open(out["mask"]))
    prob = np.asarray(Image.open(out["prob"]))
    np.testing.assert_array_equal(mask, (probs.argmax(0).numpy() * 255).astype(np.uint8))
    assert prob.dtype == np.uint16
    np.testing.assert_allclose(prob / 65535, probs[1].numpy(), atol=0.5 / 65535 + 1e-7)
    npy = np.load(write_segmentation(tmp_path / "n", probs, prob_format="npy")["prob"])
    np.testing.assert_array_equal(npy, probs[1].numpy())
    tif = tifffile.imread(write_segmentation(tmp_path / "t", probs, prob_format="tif")["prob"])
    np.testing.assert_array_equal(tif, probs[1].numpy())
    assert set(write_segmentation(tmp_path / "x", probs, prob_format="none")) == {"mask"}
    valid = np.zeros((9, 11), bool)
    valid[:, 5:] = True
    fov = write_segmentation(tmp_path / "f", probs, valid=valid)
    assert np.asarray(Image.open(fov["prob"]))[:, :5].max() == 0
    with pytest.raises(ValueError, match=r"probs must be \(K, H, W\)"):
        write_segmentation(tmp_path / "bad", probs[1])


def test_write_segmentation_multiclass(tmp_path: Path) -> None:
    probs = torch.rand(4, 6, 7, generator=torch.Generator().manual_seed(1)).softmax(0)
    out = write_segmentation(tmp_path / "m", probs)
    assert set(out) == {"mask", "prob_1", "prob_2", "prob_3"}
    np.testing.assert_array_equal(np.asarray(Image.open(out["mask"])), probs.argmax(0).numpy())
    np.testing.assert_allclose(np.asarray(Image.open(out["prob_3"])) / 65535, probs[3].numpy(), atol=1e-5)
    npy = np.load(write_segmentation(tmp_path / "m", probs, prob_format="npy")["prob"])
    assert npy.shape == (4, 6, 7) and npy.dtype == np.float32


class _Threshold(nn.Module):
    """Logits whose arg-max is ``image channel 0 > 0``."""

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([-4 * x[:, :1], 4 * x[:, :1]], 1)


def test_task_evaluates_inside_the_fov_only() -> None:
    target = torch.zeros(1, 16, 24, dtype=torch.long)
    target[0, 4:12, 10:20] = 1
    ignored, _ = _with_fov(target)
    image = (target.float() * 2 - 1)[:, None].repeat(1, 3, 1, 1)
    image[0, :, :, :8] = 1.0  # predicted foreground outside the field of view: wrong, but ignored
    task = SegmentationTask(_Threshold(), patch_size=None, pad_multiple=8)
    task._evaluate({"image": image, "mask": ignored}, "val")
    metrics = task.metrics["val"]
    assert metrics["dice"].compute().item() == pytest.approx(1.0)
    assert metrics["iou"].compute().item() == pytest.approx(1.0)
    assert metrics["auroc"].compute().item() == pytest.approx(1.0)
    assert metrics["auprc"].compute().item() == pytest.approx(1.0)
    task._evaluate({"image": image, "mask": target}, "test")  # without the FOV the same prediction is wrong
    assert task.metrics["test"]["dice"].compute().item() < 0.7
