from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from attnkit.recsys import SequentialDataModule, leave_one_out, read_sasrec_txt
from attnkit.recsys.sampling import contains, sample_negatives


def test_leave_one_out_matches_the_authors_partition(tiny_root: Path) -> None:
    d = read_sasrec_txt(tiny_root / "sasrec-games" / "Video.txt")
    sp = leave_one_out(d)
    for u, s in enumerate(d.sequences):
        if len(s) < 3:  # users with < 3 actions only train
            assert sp.train[u].tolist() == s.tolist() and sp.valid[u] == 0 and sp.test[u] == 0
        else:
            assert sp.train[u].tolist() == s[:-2].tolist()
            assert (sp.valid[u], sp.test[u]) == (s[-2], s[-1])
    assert set(sp.evaluated.tolist()) == {u for u, s in enumerate(d.sequences) if len(s) >= 3}


def _dm(root: Path, **kw) -> SequentialDataModule:
    dm = SequentialDataModule("sasrec-games", root=str(root), max_len=5, batch_size=8, eval_batch_size=16, **kw)
    dm.setup()
    return dm


def test_batches_follow_the_protocol(tiny_root: Path) -> None:
    dm = _dm(tiny_root, num_eval_negatives=20)
    sp = dm.split
    assert sp is not None
    tr = next(iter(dm.train_dataloader()))
    for seq, pos, u, hist in zip(tr["seq"], tr["pos"], tr["user"], tr["history"], strict=True):
        t = sp.train[int(u)]
        assert len(t) >= 2  # users with one training action give no (input, next) pair
        assert seq[seq != 0].tolist() == t[:-1][-5:].tolist()  # most recent max_len items, left-padded
        assert pos[pos != 0].tolist() == t[1:][-5:].tolist()
        assert hist[hist != 0].tolist() == sorted(t.tolist())
    val = next(iter(dm.val_dataloader()))
    test = next(iter(dm.test_dataloader()))
    assert torch.equal(val["user"], test["user"])
    for i, u in enumerate(val["user"].tolist()):
        t = sp.train[u]
        assert val["seq"][i][val["seq"][i] != 0].tolist() == t[-5:].tolist()
        assert val["target"][i] == sp.valid[u] and test["target"][i] == sp.test[u]
        # the test input includes the validation item
        assert test["seq"][i][test["seq"][i] != 0].tolist() == np.append(t, sp.valid[u])[-5:].tolist()
        for b in (val, test):
            c = b["candidates"][i]
            assert c[0] == b["target"][i] and c.shape == (21,)
            assert not set(c[1:].tolist()) & set(t.tolist())  # negatives avoid the training items
            assert c[1:].min() >= 1 and c[1:].max() <= dm.num_items


def test_eval_negatives_are_seeded_and_users_subsampled(tiny_root: Path) -> None:
    a, b, c = _dm(tiny_root), _dm(tiny_root), _dm(tiny_root, seed=7)
    ca = next(iter(a.val_dataloader()))["candidates"]
    assert torch.equal(ca, next(iter(b.val_dataloader()))["candidates"])
    assert not torch.equal(ca, next(iter(c.val_dataloader()))["candidates"])
    sub = _dm(tiny_root, eval_users=10)
    users = torch.cat([x["user"] for x in sub.val_dataloader()])
    assert len(users) == 10 and len(set(users.tolist())) == 10
    assert len(torch.cat([x["user"] for x in a.val_dataloader()])) == 38  # all users with >= 3 actions


def test_sample_negatives_excludes_history_without_loops() -> None:
    hist = torch.tensor([[0, 0, 1, 2, 3], [4, 5, 6, 7, 8]])
    g = torch.Generator().manual_seed(0)
    neg = sample_negatives(hist, 10, (50, 3), generator=g)
    assert neg.shape == (2, 50, 3)
    assert not contains(hist, neg).any()
    assert set(neg[0].flatten().tolist()) == set(range(4, 11))
    assert set(neg[1].flatten().tolist()) == {1, 2, 3, 9, 10}
    with pytest.raises(ValueError, match="interacted with all 3 items"):
        sample_negatives(torch.tensor([[1, 2, 3]]), 3, (2,), max_rounds=5)


def test_bad_inputs_to_the_datamodule(tmp_path: Path, tiny_root: Path) -> None:
    with pytest.raises(FileNotFoundError, match="dataset 'games' is not registered"):
        SequentialDataModule("games", root=str(tiny_root)).setup()
    with pytest.raises(ValueError, match="max_len must be >= 1"):
        SequentialDataModule(max_len=0)
    p = tmp_path / "short.txt"
    p.write_text("1 1\n2 2\n2 3\n")  # nobody has 3 actions: trains (user 2) but cannot evaluate
    dm = SequentialDataModule(path=str(p))
    assert len(dm.train_dataloader().dataset) == 1
    with pytest.raises(ValueError, match="nothing to evaluate"):
        dm.val_dataloader()
    p.write_text("1 1\n2 2\n")
    with pytest.raises(ValueError, match="nothing to train on"):
        SequentialDataModule(path=str(p)).setup()
    with pytest.raises(FileNotFoundError, match="does not exist"):
        SequentialDataModule(path=str(tmp_path / "nope.txt")).setup()


def test_path_format_sniffing(tiny_root: Path) -> None:
    dm = SequentialDataModule(path=str(tiny_root / "s3rec-beauty" / "Beauty.txt"))
    ref = SequentialDataModule("sasrec-games", root=str(tiny_root))
    assert [s.tolist() for s in dm.data.sequences] == [s.tolist() for s in ref.data.sequences]
    assert dm.num_items == ref.num_items == 30


def test_movielens_zip_is_extracted(tmp_path: Path) -> None:
    import zipfile

    d = tmp_path / "ml-1m"
    d.mkdir()
    with zipfile.ZipFile(d / "ml-1m.zip", "w") as z:
        z.writestr("ml-1m/ratings.dat", "1::10::5::1\n1::20::5::2\n1::30::5::3\n2::10::1::1\n")
    dm = SequentialDataModule("ml-1m", root=str(tmp_path))
    assert dm.num_items == 3
    assert (d / "ml-1m" / "ratings.dat").is_file()
