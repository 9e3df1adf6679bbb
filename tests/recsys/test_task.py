from __future__ import annotations

import csv
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from torch import nn

from attnkit.recsys import NextItemTask, SASRec, SequentialDataModule, TopKWriter
from attnkit.recsys.tasks.next_item import encode_by_length


def _setup(root: Path, loss: str = "bce", **kw) -> tuple[NextItemTask, SequentialDataModule]:
    pl.seed_everything(0)
    dm = SequentialDataModule("sasrec-games", root=str(root), max_len=6, batch_size=16, eval_batch_size=64,
                              num_eval_negatives=10)
    model = SASRec(dm.num_items, embed_dim=16, num_heads=1, num_layers=1, max_len=6, dropout=0.0)
    task = NextItemTask(model, loss=loss, optimizer=lambda p: torch.optim.Adam(p, lr=5e-3), **kw)
    return task, dm


@pytest.mark.parametrize(("loss", "negatives"), [("bce", None), ("sampled_softmax", 8), ("ce", None),
                                                 ("gbce", 8)])
def test_every_loss_learns_the_next_item(tiny_root: Path, loss: str, negatives: int | None) -> None:
    task, dm = _setup(tiny_root, loss, num_negatives=negatives)
    dm.setup()
    opt = task.configure_optimizers()
    batches = list(dm.train_dataloader())
    first = sum(task.compute_loss(b).item() for b in batches)
    for _ in range(15):
        for b in batches:
            opt.zero_grad()
            task.compute_loss(b).backward()
            opt.step()
    last = sum(task.compute_loss(b).item() for b in batches)
    assert last < 0.7 * first


def test_fit_validate_test_logs_both_protocols(tiny_root: Path, tmp_path: Path) -> None:
    task, dm = _setup(tiny_root, full_ranking=True)
    trainer = pl.Trainer(max_epochs=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(task, dm)
    assert "val/ndcg@10" in trainer.callback_metrics and "val/full_ndcg@10" in trainer.callback_metrics
    res = trainer.test(task, dm, verbose=False)[0]
    for key in ("test/hr@10", "test/ndcg@10", "test/mrr", "test/full_hr@10", "test/full_ndcg@10"):
        assert 0.0 <= res[key] <= 1.0
    # 10 sampled negatives + the truth: HR@10 >= full-ranking HR@10 over all 30 items
    assert res["test/hr@10"] >= res["test/full_hr@10"]
    assert NextItemTask.monitor == "val/ndcg@10" and NextItemTask.monitor_mode == "max"


def test_evaluation_ranks_candidates_exactly(tiny_root: Path) -> None:
    task, dm = _setup(tiny_root, full_ranking=True)
    dm.setup()
    task.eval()
    batch = next(iter(dm.test_dataloader()))
    with torch.no_grad():
        task._evaluate(batch, "test")
        h = task.model(batch["seq"])[:, -1]
    emb = task.model.item_emb.weight
    s = (emb[batch["candidates"]] @ h.unsqueeze(-1)).squeeze(-1)
    rank = (s[:, 1:] > s[:, :1]).sum(1).double()
    expected = torch.where(rank < 10, 1 / torch.log2(rank + 2), torch.zeros_like(rank)).mean()
    assert task.metrics["test"].compute()["ndcg@10"].item() == pytest.approx(expected.item(), rel=1e-5)


def test_length_buckets_do_not_change_results(tiny_root: Path) -> None:
    task, dm = _setup(tiny_root)
    dm.setup()
    task.eval()
    b = next(iter(dm.train_dataloader()))
    with torch.no_grad():
        full = task.model(b["seq"])
        grouped = encode_by_length(task.model, b["seq"], (2, 4))
    keep = b["seq"] != 0
    torch.testing.assert_close(grouped[keep], full[keep], atol=1e-5, rtol=1e-5)


def test_predict_writes_topk_csv(tiny_root: Path, tmp_path: Path) -> None:
    task, dm = _setup(tiny_root, top_k=3)
    out = tmp_path / "top.csv"
    trainer = pl.Trainer(logger=False, enable_progress_bar=False, callbacks=[TopKWriter(str(out))])
    trainer.predict(task, dm, return_predictions=False)
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 3 * 40 and rows[0].keys() == {"user", "rank", "item", "score"}
    seqs = {u: set(s.tolist()) for u, s in zip(dm.user_ids.tolist(), dm.data.sequences, strict=True)}
    for r in rows:
        assert int(r["item"]) not in seqs[int(r["user"])]  # seen items are never recommended
    # the writer matches model.recommend on the same history
    ids, _ = task.model.recommend(dm.data.sequences[5].tolist(), k=3)
    assert [int(r["item"]) for r in rows if r["user"] == "6"] == ids.tolist()


def test_bad_task_arguments() -> None:
    m = SASRec(10, embed_dim=8, max_len=4)
    with pytest.raises(ValueError, match="unknown loss 'bpr'"):
        NextItemTask(m, loss="bpr")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="num_negatives must be >= 1"):
        NextItemTask(m, loss="sampled_softmax", num_negatives=0)
    with pytest.raises(TypeError, match="has no `item_embeddings`"):
        NextItemTask(nn.Linear(2, 2))
