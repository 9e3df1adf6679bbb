"""``MusicTaggingTask``: multi-label training on random chunks, song-level evaluation by averaging chunks."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor, nn

from attnkit.audio.tagging.metrics import TagAUC, format_tag_table
from attnkit.core.errors import CheckpointError, CheckpointNotFoundError
from attnkit.core.io import load_checkpoint
from attnkit.core.tasks.base import Task

__all__ = ["MusicTaggingTask", "load_tagger", "song_average"]


def song_average(chunk_probs: Tensor, song: Tensor, num_songs: int) -> Tensor:
    """Average chunk predictions per song: ``(M, K)`` with song ids ``(M,)`` -> ``(S, K)``."""
    out = torch.zeros(num_songs, chunk_probs.shape[1], dtype=chunk_probs.dtype, device=chunk_probs.device)
    out.index_add_(0, song, chunk_probs)
    counts = torch.bincount(song, minlength=num_songs).clamp_min(1).to(chunk_probs.dtype)
    return out / counts.unsqueeze(1)


class MusicTaggingTask(Task):
    """Trains a multi-label music tagger with binary cross-entropy on random chunks.

    Validation and test cut each song into chunks, average the chunks' sigmoid outputs into one
    song-level prediction and report macro ROC-AUC and PR-AUC over tags (``val/roc_auc``,
    ``test/pr_auc``, ...). After ``attnkit test`` the per-tag table is printed and written to
    ``<log dir>/per_tag_test.csv``.

    Args:
        model: maps waveforms ``(B, N)`` to tag logits ``(B, K)`` (e.g. :class:`SelfAttentionTagger`,
            :class:`ShortChunkCNN`); its ``num_tags`` is linked from the data module by the CLI.
        tags: the tag names in output order (linked from the data module; stored in checkpoints so that
            ``attnkit-audio tag`` can name its predictions).
        baselines: at test, also score the tag-frequency prior on the same songs: every song gets each tag's
            training frequency. Logged as ``test/baseline_prior/roc_auc`` (0.5 by construction: a constant
            score ranks nothing) and ``test/baseline_prior/pr_auc`` (the macro mean of each tag's test
            prevalence: what PR-AUC a tagger that knows nothing about the audio gets).
        optimizer: builds the optimiser.
        scheduler: optional learning-rate scheduler.

    """

    monitor: ClassVar[str] = "val/roc_auc"
    monitor_mode: ClassVar[Literal["min", "max"]] = "max"
    cli_links: ClassVar[dict[str, str]] = {"num_tags": "model.init_args.num_tags", "tag_names": "tags"}

    def __init__(
        self,
        model: nn.Module,
        tags: list[str] | None = None,
        baselines: bool = False,
        optimizer: OptimizerCallable = torch.optim.Adam,
        scheduler: LRSchedulerCallable | None = None,
    ) -> None:
        super().__init__(model, optimizer, scheduler)
        k = _num_outputs(model)
        if tags is not None and k is not None and len(tags) != k:
            raise ValueError(f"{len(tags)} tag names but the model has {k} outputs")
        self.tags = list(tags) if tags is not None else [f"tag{i}" for i in range(k or 0)]
        self.val_auc = TagAUC(len(self.tags))
        self.test_auc = TagAUC(len(self.tags))
        # a metric object (sum of losses and of samples across processes): exact under DDP, where
        # `sync_dist` averages counts in integers and does not split uneven shares exactly
        self.last_test_table: dict[str, Tensor] | None = None
        self.baselines = baselines

    def forward(self, wav: Tensor) -> Tensor:
        """``(B, N)`` -> tag logits ``(B, K)``."""
        return self.model(wav)

    def on_fit_start(self) -> None:  # noqa: D102
        dm = getattr(self.trainer, "datamodule", None)
        sr_data, sr_model = getattr(dm, "sample_rate", None), getattr(self.model, "sample_rate", None)
        if sr_data is not None and sr_model is not None and sr_data != sr_model:
            raise ValueError(
                f"the data is resampled to {sr_data} Hz but the model expects {sr_model} Hz; set "
                "data.init_args.sample_rate and the model's sample_rate to the same value"
            )

    def forward_batch(self, batch: tuple[Tensor, Tensor]) -> Tensor:
        """Tag logits on a training batch ``(audio, targets)`` (for :class:`~attnkit.core.tasks.PreciseBatchNorm`)."""
        return self(batch[0])

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:  # noqa: D102
        wav, y = batch
        loss = F.binary_cross_entropy_with_logits(self(wav), y)
        self.log_loss("train", loss, wav.shape[0])
        return loss

    def predict_songs(self, batch: dict[str, Tensor], chunk_batch: int = 32) -> Tensor:
        """Song-level probabilities ``(S, K)`` for a batch from :func:`collate_songs`."""
        chunks = batch["chunks"]
        probs = torch.cat(
            [torch.sigmoid(self(chunks[i : i + chunk_batch])) for i in range(0, chunks.shape[0], chunk_batch)]
        )
        return song_average(probs, batch["song"], batch["targets"].shape[0])

    def _eval_step(self, batch: dict[str, Tensor], stage: str, metric: TagAUC) -> None:
        probs = self.predict_songs(batch)
        y = batch["targets"]
        self.log_loss(stage, F.binary_cross_entropy(probs.clamp(1e-7, 1 - 1e-7), y), y.shape[0])
        metric.update(probs, y)

    def _eval_end(self, stage: str, metric: TagAUC) -> dict[str, Tensor]:
        res = metric.compute()
        self.log(f"{stage}/roc_auc", res["roc_auc"], prog_bar=True)
        self.log(f"{stage}/pr_auc", res["pr_auc"], prog_bar=stage == "val")
        return res

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:  # noqa: D102
        self._eval_step(batch, "val", self.val_auc)

    def on_validation_epoch_end(self) -> None:  # noqa: D102
        self._eval_end("val", self.val_auc)
        self.val_auc.reset()

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:  # noqa: D102
        self._eval_step(batch, "test", self.test_auc)

    def _log_prior_baseline(self, targets: Tensor) -> None:
        """Score the tag-frequency prior on the test targets ``(S, K)``."""
        dm = getattr(self.trainer, "datamodule", None)
        train = getattr(dm, "splits", {}).get("train") if dm is not None else None
        if not train:
            return
        index = {t: i for i, t in enumerate(self.tags)}
        prior = torch.zeros(len(self.tags))
        for clip in train:
            for t in clip.tags:
                if t in index:
                    prior[index[t]] += 1
        prior /= len(train)
        metric = TagAUC(len(self.tags))
        metric.update(prior.expand(targets.shape[0], -1).to(targets.device), targets)
        res = metric.compute()
        self.log("test/baseline_prior/roc_auc", res["roc_auc"])
        self.log("test/baseline_prior/pr_auc", res["pr_auc"])

    def on_test_epoch_end(self) -> None:  # noqa: D102
        self._eval_end("test", self.test_auc)
        if self.baselines and self.test_auc.targets:
            from torchmetrics.utilities import dim_zero_cat

            self._log_prior_baseline(dim_zero_cat(self.test_auc.targets).float())
        with self.test_auc.sync_context():  # every process's songs (per_tag reads the states directly)
            table = self.test_auc.per_tag()
        self.last_test_table = table
        self.test_auc.reset()
        log_dir = getattr(self.trainer, "log_dir", None)  # a collective call under DDP: every rank makes it
        if self.trainer.is_global_zero:
            print("\nper-tag song-level results (test split)\n" + format_tag_table(self.tags, table))
            if log_dir:
                Path(log_dir).mkdir(parents=True, exist_ok=True)
                with (Path(log_dir) / "per_tag_test.csv").open("w", newline="") as fh:
                    w = csv.writer(fh)
                    w.writerow(["tag", "positives", "roc_auc", "pr_auc"])
                    for i, t in enumerate(self.tags):
                        w.writerow(
                            [
                                t,
                                int(table["positives"][i]),
                                float(table["roc_auc"][i]),
                                float(table["pr_auc"][i]),
                            ]
                        )

    def predict_step(self, batch: dict[str, Tensor], batch_idx: int) -> dict[str, Tensor]:
        """Song-level tag probabilities ``(S, K)``, one column per tag (``predictions.csv``)."""
        probs = self.predict_songs(batch)
        return {tag: probs[:, i] for i, tag in enumerate(self.tags)}

    def checkpoint_metadata(self) -> dict[str, Any]:
        """Tag names and the training chunk length, for ``attnkit-audio tag`` and :func:`load_tagger`."""
        dm = getattr(self._trainer, "datamodule", None) if self._trainer is not None else None
        return {"tags": list(self.tags), "chunk_seconds": getattr(dm, "chunk_seconds", None)}


def _num_outputs(model: nn.Module) -> int | None:
    cfg = getattr(model, "config", None)
    return int(cfg["num_tags"]) if isinstance(cfg, dict) and "num_tags" in cfg else None


def load_tagger(path: str | Path, map_location: str = "cpu") -> tuple[nn.Module, list[str], float | None]:
    """Rebuild a trained tagger from a checkpoint written by ``attnkit fit`` with :class:`MusicTaggingTask`.

    Loads with ``torch.load(weights_only=True)``.

    Returns:
        ``(model in eval mode, tag names, training chunk length in seconds or None)``.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a music-tagging checkpoint.

    """
    p = Path(path)
    if not p.is_file():
        raise CheckpointNotFoundError(
            f"{p}: no such checkpoint; train one with `attnkit fit -c tagging-scores` "
            "(it writes runs/tagging-scores/checkpoints/best.ckpt) or pass --ckpt"
        )
    ckpt = load_checkpoint(p, map_location=map_location)
    if isinstance(ckpt, dict) and "attnkit" in ckpt:
        from attnkit.core.models import load_model

        meta = dict(ckpt["attnkit"].get("meta") or {})
        if "tags" not in meta:
            raise CheckpointError(f"{p}: not a MusicTaggingTask checkpoint (no tag names stored with it); pass a "
                                  "checkpoint written by `attnkit fit` with a tagging config")
        return load_model(ckpt, map_location=map_location), list(meta["tags"]), meta.get("chunk_seconds")
    spec = ckpt.get("attnkit_tagger") if isinstance(ckpt, dict) else None  # written before the task contract
    if spec is None:
        raise CheckpointError(
            f"{p}: not a MusicTaggingTask checkpoint (no 'attnkit' entry); pass a checkpoint written by "
            "`attnkit fit` with a tagging config"
        )
    from attnkit.core.models import build_model

    model = build_model({"class_path": spec["class_path"], "init_args": spec["init_args"]})
    state = {k[len("model.") :]: v for k, v in ckpt["state_dict"].items() if k.startswith("model.")}
    model.load_state_dict(state)
    return model.eval(), list(spec["tags"]), spec.get("chunk_seconds")
