"""A SASRec trained with ``attnkit fit`` becomes a plain model in one call and recommends as the task does."""

from __future__ import annotations

from pathlib import Path

import torch

from attnkit.core.cli import main
from attnkit.recsys import NextItemTask, SASRec, load_model


def test_fit_then_load_gives_the_same_recommendations(tiny_root: Path) -> None:
    args = ["-c", "sasrec-games", "--data.root", str(tiny_root), "--model.model.init_args.embed_dim", "8",
            "--trainer.max_epochs", "2", "--trainer.check_val_every_n_epoch", "1",
            "--trainer.enable_progress_bar", "false"]
    assert main(["fit", *args]) == 0
    ckpt = Path("runs/sasrec-games/checkpoints/best.ckpt")
    model = SASRec.from_checkpoint(ckpt)
    assert isinstance(load_model(ckpt), SASRec) and not model.training
    task = NextItemTask.load_from_checkpoint(ckpt).eval()
    histories = [[1, 2, 3], [5], [7, 8, 9, 10, 11, 12, 13]]
    items, scores = model.recommend(histories, k=5)
    want_items, want_scores = task.model.recommend(histories, k=5)
    assert torch.equal(items, want_items)
    torch.testing.assert_close(scores, want_scores)
    assert not (items == torch.tensor([1, 2, 3, 0, 0])[None]).all()
