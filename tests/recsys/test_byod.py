"""Bring your own data: tables with any columns, dataset folders by name, evaluation protocols, baselines."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from attnkit.core.cli import main
from attnkit.recsys import NextItemTask, SASRec, SequentialDataModule
from attnkit.recsys.data import read_interactions_table, read_user_sequences

from .conftest import make_sequences, write_sasrec


def _seqs_by_source(dm: SequentialDataModule) -> dict[str, list[str]]:
    d = dm.data
    assert d.item_ids is not None
    return {str(u): [str(d.item_ids[i]) for i in s] for u, s in zip(d.user_ids, d.sequences, strict=True)}


def test_table_with_any_column_names_sorted_by_time(tmp_path: Path) -> None:
    p = tmp_path / "shop.csv"
    p.write_text("customer,product,when,stars\nu1,B,2021-01-03,5\nu1,A,2021-01-01,2\nu1,C,2021-01-02,4\n"
                 "u2,A,2021-02-01,5\nu2,C,2021-01-01,5\n")
    dm = SequentialDataModule(str(p), user_column="customer", item_column="product", time_column="when")
    assert _seqs_by_source(dm) == {"u1": ["A", "C", "B"], "u2": ["C", "A"]}
    dm = SequentialDataModule(str(p), user_column="customer", item_column="product", time_column="when",
                              min_rating=4, rating_column="stars")
    assert _seqs_by_source(dm) == {"u1": ["C", "B"], "u2": ["C", "A"]}
    with pytest.raises(ValueError, match=r"shop\.csv: cannot tell which column holds the user ids.*customer"):
        SequentialDataModule(str(p)).data  # noqa: B018


def test_table_without_time_keeps_file_order_tsv_parquet_and_headerless(tmp_path: Path) -> None:
    tsv = tmp_path / "log.tsv"
    tsv.write_text("user_id\titem_id\trating\n7\t30\t1\n7\t10\t1\n8\t20\t3\n8\t30\t1\n")
    assert _seqs_by_source(SequentialDataModule(str(tsv))) == {"7": ["30", "10"], "8": ["20", "30"]}
    pqf = tmp_path / "log.parquet"
    pq.write_table(pa.table({"userId": [1, 1, 2], "movieId": [5, 6, 5], "timestamp": [9, 8, 1]}), pqf)
    assert _seqs_by_source(SequentialDataModule(str(pqf))) == {"1": ["6", "5"], "2": ["5"]}
    raw = tmp_path / "ratings_only.csv"  # Amazon "ratings only" CSVs have no header row
    raw.write_text("A1,X9,5.0,1300\nA1,X8,4.0,1200\nA2,X9,1.0,1100\n")
    d = read_interactions_table(raw, column_names=["user", "item", "rating", "timestamp"])
    assert [[str(d.item_ids[i]) for i in s] for s in d.sequences] == [["X8", "X9"], ["X9"]]


def test_user_sequences_auto_detected_and_empty_sequence_named(tmp_path: Path) -> None:
    p = tmp_path / "Toys.txt"
    p.write_text("1 3 4 5\n2 5 6\n")
    dm = SequentialDataModule(str(p))
    assert [s.tolist() for s in dm.data.sequences] == [[3, 4, 5], [5, 6]]
    p.write_text("1 3 4 5\n2\n")
    with pytest.raises(ValueError, match=r"Toys\.txt:2: user 2 has an empty sequence"):
        read_user_sequences(p)


def test_dataset_folder_by_name_under_the_data_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "data"
    shop = root / "my-shop"
    write_sasrec(shop / "events.txt", make_sequences())
    (shop / "README.md").write_text("about")
    (shop / "events_sample.txt").write_text("1 2 3\n")  # negatives files are not the data
    monkeypatch.setenv("ATTNKIT_DATA_DIR", str(root))
    dm = SequentialDataModule("my-shop")
    assert dm.source == shop / "events.txt" and dm.data.num_users == 40
    (shop / "more.csv").write_text("user,item\n1,2\n")
    with pytest.raises(ValueError, match=r"holds 2 interaction files \(events\.txt, more\.csv\)"):
        SequentialDataModule("my-shop").data  # noqa: B018
    with pytest.raises(FileNotFoundError, match=r"folders under the data root .*: my-shop"):
        SequentialDataModule("my-shopp").data  # noqa: B018


def test_dataset_and_path_together_are_refused() -> None:
    with pytest.raises(ValueError, match=r"--data\.dataset x\.csv"):
        SequentialDataModule("sasrec-games", path="x.csv")


def _dm(tmp_path: Path, **kw: object) -> SequentialDataModule:
    p = write_sasrec(tmp_path / "d" / "Video.txt", make_sequences(num_users=60, num_items=15, seed=3))
    dm = SequentialDataModule(str(p), max_len=5, eval_batch_size=1000, **kw)  # type: ignore[arg-type]
    dm.setup()
    return dm


def _candidates(dm: SequentialDataModule, stage: str) -> tuple[torch.Tensor, torch.Tensor]:
    batch = next(iter(getattr(dm, f"{stage}_dataloader")()))
    return batch["user"], batch["candidates"]


def test_negatives_exclude_all_of_the_users_items(tmp_path: Path) -> None:
    train_only = _dm(tmp_path, num_eval_negatives=50)
    every = _dm(tmp_path, num_eval_negatives=50, negatives_exclude="all")
    for stage in ("val", "test"):
        users, cands = _candidates(every, stage)
        for u, c in zip(users.tolist(), cands[:, 1:], strict=True):
            assert not set(c.tolist()) & set(every.data.sequences[u].tolist())
    # the authors' protocol (the default) only excludes training items: the held-out items do get drawn
    users, cands = _candidates(train_only, "val")
    held = [{int(train_only.split.valid[u]), int(train_only.split.test[u])} for u in users.tolist()]
    assert sum(bool(set(c.tolist()) & h) for c, h in zip(cands[:, 1:], held, strict=True)) > 0
    assert "excluding the user's training items" in train_only.protocol
    assert "SAMPLED" in every.protocol and "all of the user's items" in every.protocol


def test_fixed_negatives_file_in_s3rec_format(tmp_path: Path) -> None:
    probe = _dm(tmp_path)
    ev = probe.split.evaluated
    rng = np.random.default_rng(0)
    lines, expected = [], {}
    for u in probe.data.user_ids[ev].tolist():
        negs = rng.integers(1, 16, size=99).tolist()
        expected[u] = negs
        lines.append(" ".join(map(str, [u, *negs])))
    (tmp_path / "d" / "Video_sample.txt").write_text("\n".join(lines) + "\n")
    dm = _dm(tmp_path, negatives_file="Video_sample.txt")  # found next to the data file
    for stage in ("val", "test"):
        users, cands = _candidates(dm, stage)
        assert cands.shape[1] == 100
        for u, c in zip(users.tolist(), cands, strict=True):
            assert c[1:].tolist() == expected[int(dm.user_ids[u])]
    (tmp_path / "d" / "Video_sample.txt").write_text("\n".join(lines[1:]) + "\n")
    with pytest.raises(ValueError, match=r"Video_sample\.txt: no negatives for 1 evaluated user"):
        _dm(tmp_path, negatives_file="Video_sample.txt")


def test_popularity_negatives_follow_training_counts(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)  # item i drawn with probability ~ 1 / i (skewed), item 30 never trained
    zipf = 1.0 / np.arange(1, 30)
    seqs = [[*rng.choice(np.arange(1, 30), size=6, p=zipf / zipf.sum()).tolist(), 30, 30] for _ in range(200)]
    p = write_sasrec(tmp_path / "skew.txt", seqs)
    dm = SequentialDataModule(str(p), negatives="popularity", num_eval_negatives=200, eval_batch_size=1000)
    uniform = SequentialDataModule(str(p), num_eval_negatives=200, eval_batch_size=1000)
    dm.setup()
    uniform.setup()
    pop = dm.item_popularity()
    assert pop[0] == 0 and pop.sum() == sum(len(t) for t in dm.split.train)
    _, cands = _candidates(dm, "test")
    _, ucands = _candidates(uniform, "test")
    assert pop[cands[:, 1:].numpy()].min() > 0  # never-trained items are never drawn
    assert pop[cands[:, 1:].numpy()].mean() > 2 * pop[ucands[:, 1:].numpy()].mean()
    assert "by training popularity" in dm.protocol


def test_most_popular_baseline_on_the_same_candidates(tmp_path: Path) -> None:
    # every user: [1, 1, x, 1] -> item 1 is the only training item (popular), and every test item is 1
    p = tmp_path / "pop.txt"
    p.write_text("".join(f"{u} 1\n{u} 1\n{u} {2 + u % 7}\n{u} 1\n" for u in range(1, 31)))
    dm = SequentialDataModule(path=str(p), max_len=4, num_eval_negatives=5)
    task = NextItemTask(SASRec(num_items=8, max_len=4, embed_dim=8), baselines=True, full_ranking=True)
    trainer = pl.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False)
    res = trainer.test(task, dm, verbose=False)[0]
    assert res["test/baseline_most_popular/hr@1"] == pytest.approx(1.0)
    assert res["test/baseline_most_popular/full_hr@1"] == pytest.approx(1.0)
    assert "test/hr@10" in res and "test/full_ndcg@10" in res


def test_cli_run_with_a_users_file_saves_a_truthful_config(tmp_path: Path) -> None:
    p = tmp_path / "interactions.csv"
    p.write_text("user,item,timestamp\n" + "".join(
        f"u{u},i{i},{t}\n" for u, s in enumerate(make_sequences(), 1) for t, i in enumerate(s)))
    run = tmp_path / "run"
    args = ["-c", "sasrec-games", "--data.dataset", str(p), "--model.model.init_args.embed_dim", "8",
            "--model.baselines", "true", "--trainer.default_root_dir", str(run), "--trainer.max_epochs", "1",
            "--trainer.limit_train_batches", "1", "--trainer.enable_progress_bar", "false"]
    main(["fit", *args])
    main(["test", *args, "--ckpt_path", "last"])
    metrics = "".join(f.read_text() for f in run.rglob("metrics.csv"))
    assert "test/baseline_most_popular/ndcg@10" in metrics and "test/ndcg@10" in metrics
    saved = next(run.rglob("config.yaml")).read_text()
    assert f"dataset: {p}" in saved and "sasrec-games" not in saved.split("data:")[1]
    with pytest.raises(ValueError, match=r"--data\.dataset"):
        main(["fit", "-c", "sasrec-games", "--data.path", str(p), "--trainer.default_root_dir", str(run),
              "--trainer.fast_dev_run=true", "--debug"])
