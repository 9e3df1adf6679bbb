from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from attnkit.vision import HausdorffDistance95, PerImageDice, PerImageIoU, SegmentationLoss
from attnkit.vision.losses import dice_loss, focal_loss, tversky_loss
from attnkit.vision.metrics import hd95


def _square(h: int, w: int, y: int, x: int, s: int) -> torch.Tensor:
    m = torch.zeros(h, w, dtype=torch.long)
    m[y : y + s, x : x + s] = 1
    return m


def test_dice_and_iou_by_hand() -> None:
    pred = torch.zeros(1, 4, 4, dtype=torch.long)
    target = torch.zeros(1, 4, 4, dtype=torch.long)
    pred[0, 0, :2] = 1  # 2 pixels
    target[0, 0, 1:3] = 1  # 2 pixels, 1 shared
    dice, iou = PerImageDice(), PerImageIoU()
    dice.update(pred, target)
    iou.update(pred, target)
    assert dice.compute().item() == pytest.approx(0.5)
    assert iou.compute().item() == pytest.approx(1 / 3)


def test_metrics_average_per_image_not_per_pixel() -> None:
    # image 1 perfect with a big object, image 2 completely wrong with a tiny one
    t1, t2 = _square(20, 20, 0, 0, 10), _square(20, 20, 0, 0, 1)
    p1, p2 = t1.clone(), _square(20, 20, 10, 10, 1)
    dice = PerImageDice()
    dice.update(torch.stack([p1, p2]), torch.stack([t1, t2]))
    assert dice.compute().item() == pytest.approx(0.5)  # global Dice would be 200/202


def test_empty_prediction_of_empty_target_is_perfect() -> None:
    z = torch.zeros(2, 8, 8, dtype=torch.long)
    dice = PerImageDice()
    dice.update(z, z)
    assert dice.compute().item() == 1.0


def test_multiclass_dice_averages_foreground_classes() -> None:
    target = torch.tensor([[[1, 1, 2, 2]]])
    pred = torch.tensor([[[1, 1, 1, 2]]])
    dice = PerImageDice(num_classes=3)
    dice.update(pred, target)
    # class 1: 2*2/(3+2) = 0.8, class 2: 2*1/(1+2) = 2/3
    assert dice.compute().item() == pytest.approx((0.8 + 2 / 3) / 2)


def test_hd95_of_shifted_squares() -> None:
    a = _square(40, 40, 10, 10, 10).numpy().astype(bool)
    b = _square(40, 40, 10, 13, 10).numpy().astype(bool)
    assert hd95(a, b) == pytest.approx(3.0)
    assert hd95(a, a) == 0.0
    assert math.isnan(hd95(a, np.zeros_like(a)))
    metric = HausdorffDistance95()
    metric.update(torch.from_numpy(a).long()[None], torch.zeros(1, 40, 40, dtype=torch.long))
    assert metric.compute().item() == pytest.approx(math.hypot(40, 40))


def test_states_merge_like_ddp() -> None:
    """Splitting images over two 'processes' and summing states gives the single-process result."""
    g = torch.Generator().manual_seed(0)
    preds = (torch.rand(6, 16, 16, generator=g) > 0.5).long()
    target = (torch.rand(6, 16, 16, generator=g) > 0.5).long()
    for cls in (PerImageDice, PerImageIoU, HausdorffDistance95):
        whole, a, b = cls(), cls(), cls()
        whole.update(preds, target)
        a.update(preds[:1], target[:1])  # uneven split, as DDP with a distributed sampler can give
        b.update(preds[1:], target[1:])
        a.merge_state(b)
        assert a.compute().item() == pytest.approx(whole.compute().item())


def test_metric_rejects_logits() -> None:
    with pytest.raises(ValueError, match="argmax"):
        PerImageDice().update(torch.zeros(1, 2, 4, 4), torch.zeros(1, 4, 4, dtype=torch.long))


def test_losses_behave() -> None:
    target = _square(16, 16, 4, 4, 6)[None]
    perfect = F.one_hot(target, 2).permute(0, 3, 1, 2).float() * 20 - 10
    wrong = -perfect
    for name in ("dice_ce", "ce", "dice", "focal", "tversky", "focal_tversky"):
        loss = SegmentationLoss(name)
        assert loss(perfect, target) < 0.01 < loss(wrong, target), name
    logits = torch.randn(2, 3, 8, 8)
    tgt = torch.randint(0, 3, (2, 8, 8))
    assert tversky_loss(logits, tgt, alpha=0.5, beta=0.5) == pytest.approx(dice_loss(logits, tgt).item())
    assert focal_loss(logits, tgt, gamma=0.0) == pytest.approx(F.cross_entropy(logits, tgt).item(), rel=1e-5)
    # Tversky with beta > alpha punishes missed foreground more than false alarms
    t = _square(16, 16, 0, 0, 8)[None]
    miss = F.one_hot(torch.zeros_like(t), 2).permute(0, 3, 1, 2).float() * 5
    alarm = F.one_hot(torch.ones_like(t), 2).permute(0, 3, 1, 2).float() * 5
    tv = SegmentationLoss("tversky", tversky_alpha=0.1, tversky_beta=0.9)
    assert tv(miss, t) > tv(alarm, t)
    with pytest.raises(ValueError, match="unknown loss"):
        SegmentationLoss("bce")  # type: ignore[arg-type]


@pytest.mark.parametrize("include_background", [False, True])
def test_tversky_matches_its_formula_with_ignored_pixels(include_background: bool) -> None:
    """The batch Tversky loss against its textbook sums (fp = sum p (1 - g), fn = sum (1 - p) g), ignored pixels
    (-1) left out of both, in value and gradient."""
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 9, 7, generator=g, dtype=torch.float64, requires_grad=True)
    target = torch.randint(0, 3, (2, 9, 7), generator=g)
    target[0, :3] = -1
    got = tversky_loss(logits, target, alpha=0.3, beta=0.7, gamma=4 / 3, include_background=include_background)
    valid = (target != -1).unsqueeze(1).double()
    p = logits.softmax(1) * valid
    onehot = F.one_hot(target.clamp_min(0), 3).permute(0, 3, 1, 2).double() * valid
    if not include_background:
        p, onehot = p[:, 1:], onehot[:, 1:]
    tp, fp, fn = ((p * onehot).sum((0, 2, 3)), (p * (1 - onehot)).sum((0, 2, 3)),
                  ((1 - p) * onehot).sum((0, 2, 3)))
    want = ((1 - (tp + 1) / (tp + 0.3 * fp + 0.7 * fn + 1)) ** (4 / 3)).mean()
    torch.testing.assert_close(got.double(), want)
    torch.testing.assert_close(torch.autograd.grad(got, logits)[0], torch.autograd.grad(want, logits)[0])
