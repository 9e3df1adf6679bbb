"""Torch datasets over loaded image/mask pairs: random training patches, whole images, unlabelled images."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset, DistributedSampler

from attnkit.vision.data.augment import SegmentationAugment
from attnkit.vision.data.formats import SegmentationPair

__all__ = ["ImageDataset", "PatchDataset", "PatchSampler", "normalise", "patch_seed", "rescale_pair", "scaled_size"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def normalise(image: Tensor, mean: Sequence[float] | None = None,
              std: Sequence[float] | None = None) -> Tensor:
    """Standardise a ``uint8`` or ``[0, 1]`` image ``(C, H, W)``; ImageNet statistics for RGB by default."""
    x = image.float() / 255 if image.dtype == torch.uint8 else image.float()
    c = x.shape[0]
    if mean is None:
        mean = IMAGENET_MEAN if c == 3 else (0.5,) * c
    if std is None:
        std = IMAGENET_STD if c == 3 else (0.25,) * c
    m = torch.tensor(mean, dtype=x.dtype).view(-1, 1, 1)
    s = torch.tensor(std, dtype=x.dtype).view(-1, 1, 1)
    return (x - m) / s


def scaled_size(size: Sequence[int], scale: float) -> tuple[int, int]:
    """``(H, W)`` resampled by ``scale``, rounded, at least 1."""
    h, w = size[-2:]
    return max(1, round(h * scale)), max(1, round(w * scale))


def _resample_image(image: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinear, antialiased when shrinking; ``image`` ``(C, H, W)`` float, or uint8 (rounded back to uint8)."""
    x = F.interpolate(image[None].float(), size=size, mode="bilinear", align_corners=False, antialias=True)[0]
    return x.round().clamp(0, 255).to(torch.uint8) if image.dtype == torch.uint8 else x


def rescale_pair(pair: SegmentationPair, scale: float) -> SegmentationPair:
    """``pair`` resampled by ``scale``.

    The image bilinearly (antialiased when shrinking), the mask by nearest neighbour: class indices and the
    ignore index stay what they are.
    """
    if scale == 1:
        return pair
    size = scaled_size(pair.image.shape, scale)
    image = _resample_image(torch.from_numpy(pair.image), size).numpy()
    mask = None
    if pair.mask is not None:
        m = torch.from_numpy(pair.mask)
        mask = F.interpolate(m[None, None].float(), size=size, mode="nearest-exact")[0, 0].to(m.dtype).numpy()
    return dataclasses.replace(pair, image=image, mask=mask)


def patch_seed(seed: int, epoch: int, index: int) -> int:
    """A well-mixed 63-bit seed for the patch ``index`` of ``epoch`` (``numpy.random.SeedSequence``)."""
    state = np.random.SeedSequence([seed & 0xFFFFFFFF, epoch, index]).generate_state(2, np.uint32)
    return int(state[0]) << 31 | int(state[1]) >> 1


class PatchDataset(Dataset[dict[str, Tensor]]):
    """Random ``patch_size`` crops of labelled images, augmented; ``samples_per_epoch`` items per epoch.

    Images are drawn with probability proportional to their area; smaller images are reflect-padded.
    Item ``index`` of epoch ``epoch`` is a pure function of ``(seed, epoch, index)``: crop position and
    augmentation are drawn from a generator seeded by :func:`patch_seed`, never from the global random
    state. So processes that read distinct indices train on distinct patches, and a resumed run sees the
    patches of the interrupted one. Index with ``(epoch, index)`` (what :class:`PatchSampler` yields) or
    with a plain ``index`` for the epoch of :meth:`set_epoch`.

    Args:
        pairs: labelled images.
        patch_size: side of the square crops.
        samples_per_epoch: length of the dataset.
        augment: joint augmentation (``None``: none).
        mean: normalisation mean per channel.
        std: normalisation std per channel.
        seed: base seed of the patches.

    """

    def __init__(self, pairs: Sequence[SegmentationPair], patch_size: int, samples_per_epoch: int,
                 augment: SegmentationAugment | None = None, mean: Sequence[float] | None = None,
                 std: Sequence[float] | None = None, seed: int = 0) -> None:
        if not pairs:
            raise ValueError("PatchDataset needs at least one labelled image")
        if any(p.mask is None for p in pairs):
            raise ValueError("PatchDataset needs masks for every image")
        self.images = [torch.from_numpy(p.image) for p in pairs]
        self.masks = [torch.from_numpy(p.mask) for p in pairs if p.mask is not None]
        areas = np.array([p.image.shape[1] * p.image.shape[2] for p in pairs], dtype=np.float64)
        self.probs = torch.from_numpy(areas / areas.sum())
        self.patch_size, self.samples_per_epoch = patch_size, samples_per_epoch
        self.augment, self.mean, self.std = augment, mean, std
        self.seed, self.epoch = seed, 0

    def __len__(self) -> int:
        return self.samples_per_epoch

    def set_epoch(self, epoch: int) -> None:
        """Epoch used for plain integer indices."""
        self.epoch = epoch

    def __getitem__(self, index: int | tuple[int, int]) -> dict[str, Tensor]:
        epoch, i = index if isinstance(index, tuple) else (self.epoch, index)
        # The augmentations (torchvision v2) draw from the global generator: seed it for this item only and
        # give the caller its random state back afterwards.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(patch_seed(self.seed, int(epoch), int(i)))
            return self._draw()

    def _draw(self) -> dict[str, Tensor]:
        i = int(torch.multinomial(self.probs, 1))
        img, mask = self.images[i], self.masks[i]
        ps = self.patch_size
        h, w = mask.shape
        if h < ps or w < ps:
            ph, pw = max(ps - h, 0), max(ps - w, 0)
            mode = "reflect" if ph < h and pw < w else "replicate"
            img = F.pad(img[None].float(), (0, pw, 0, ph), mode=mode)[0].to(img.dtype)
            mask = F.pad(mask[None, None].float(), (0, pw, 0, ph), mode=mode)[0, 0].long()
            h, w = mask.shape
        y = int(torch.randint(h - ps + 1, ()))
        x = int(torch.randint(w - ps + 1, ()))
        img_p = img[:, y : y + ps, x : x + ps].float() / 255
        mask_p = mask[y : y + ps, x : x + ps]
        if self.augment is not None:
            img_p, mask_p = self.augment(img_p, mask_p)
        return {"image": normalise(img_p, self.mean, self.std), "mask": mask_p.long()}


class PatchSampler(DistributedSampler[tuple[int, int]]):
    """This process's share of an epoch of patches: ``(epoch, index)`` pairs for :class:`PatchDataset`.

    Rank ``r`` of ``W`` reads indices ``r, r + W, ...``, ``ceil(N / W)`` of them, so the shares are
    disjoint and together hold the ``N`` patches of one process's epoch (plus up to ``W - 1`` further
    fresh patches when ``W`` does not divide ``N``, instead of repeated ones). Lightning calls
    :meth:`set_epoch` at every epoch (also when resuming) and leaves this sampler in place under DDP,
    as it is a ``DistributedSampler``. The epoch travels with the index, so it reaches persistent
    loader workers too.

    Args:
        dataset: the patch dataset (its length is the epoch size ``N``).
        num_replicas: number of processes (default: the process group's, 1 without one).
        rank: this process's rank (default: the process group's, 0 without one).

    """

    def __init__(self, dataset: PatchDataset, num_replicas: int | None = None, rank: int | None = None) -> None:
        from attnkit.core.data.distributed import world

        size, r = world()
        num_replicas = size if num_replicas is None else num_replicas
        rank = r if rank is None else rank
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=False, seed=dataset.seed)
        self.num_samples = -(-len(dataset) // num_replicas)
        self.total_size = self.num_samples * num_replicas
        self.skipped = 0
        self._skip: tuple[int, int] | None = None

    def skip_next(self, epoch: int, n: int) -> None:
        """Leave out the first ``n`` items of this share in the next iteration, if it is one of ``epoch``.

        :class:`~attnkit.core.data.resume.ResumableLoader` uses it to resume a run mid-epoch.
        """
        self._skip = (epoch, n)

    def __iter__(self):  # type: ignore[no-untyped-def]
        epoch, n = self._skip or (self.epoch, 0)
        self._skip = None
        self.skipped = min(n, self.num_samples) if epoch == self.epoch else 0
        first = self.rank + self.skipped * self.num_replicas
        return ((self.epoch, i) for i in range(first, self.total_size, self.num_replicas))

    def __len__(self) -> int:
        return self.num_samples


class ImageDataset(Dataset[dict[str, object]]):
    """Whole images (for validation, test and prediction), with masks where known.

    Items: ``image`` float ``(C, h, w)``, ``mask`` int64 ``(H, W)`` (labelled only), ``name``, ``path``,
    ``raw`` uint8 ``(C, H, W)`` (for overlays). With ``scale != 1`` only ``image`` is resampled (bilinear,
    antialiased): ``(h, w) = scaled_size((H, W), scale)``; mask and raw keep the original size, which the task
    resamples its predictions back to.
    """

    def __init__(self, pairs: Sequence[SegmentationPair], mean: Sequence[float] | None = None,
                 std: Sequence[float] | None = None, scale: float = 1.0) -> None:
        self.pairs, self.mean, self.std, self.scale = list(pairs), mean, std, scale

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict[str, object]:
        p = self.pairs[index]
        raw = torch.from_numpy(p.image)
        image = normalise(raw, self.mean, self.std)
        if self.scale != 1:
            image = _resample_image(image, scaled_size(image.shape, self.scale))
        item: dict[str, object] = {"image": image, "name": p.name, "path": str(p.path), "raw": raw}
        if p.mask is not None:
            item["mask"] = torch.from_numpy(p.mask).long()
        return item
