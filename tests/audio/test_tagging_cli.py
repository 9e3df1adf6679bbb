"""Packaged tagging configs through the attnkit CLI on tiny data, and ``attnkit-audio tag``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from attnkit.audio.cli import main as audio_main
from attnkit.audio.tagging.synthetic import write_mtat_layout, write_tone_collection
from attnkit.core.cli import main

QUICK = ["--trainer.max_epochs=1", "--trainer.max_time=null", "--trainer.limit_train_batches=2",
         "--trainer.limit_val_batches=1", "--data.num_workers=0", "--data.batch_size=2", "--data.min_tag_count=1"]


@pytest.fixture
def scores_root(tmp_path: Path) -> Path:
    write_tone_collection(tmp_path / "data" / "tagging-scores", (4, 2, 2), seconds=2.5)
    return tmp_path / "data"


def test_scores_attention_config_fit_test_predict_and_tag(
    scores_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["-c", "tagging-scores", "--data.root", str(scores_root), "--data.chunk_seconds=2.0"]
    main(["fit", *args, *QUICK])
    ckpt = Path("runs/tagging-scores/checkpoints/last.ckpt")
    assert ckpt.is_file()
    main(["test", *args, "--ckpt_path", "last", "--data.num_workers=0", "--data.min_tag_count=1"])
    assert "| tag | positives | ROC-AUC | PR-AUC |" in capsys.readouterr().out
    assert list(Path("runs", "tagging-scores").rglob("per_tag_test.csv"))

    audio = scores_root / "tagging-scores" / "audio"
    (audio / "broken.wav").write_bytes(b"RIFF....garbage")
    hm_dir = tmp_path / "maps"
    rc = audio_main(["tag", str(audio), "--ckpt", str(ckpt), "-k", "2", "--json", "--heatmap", str(hm_dir),
                     "--heatmap-seconds", "1.5"])
    out, err = capsys.readouterr()
    doc = json.loads(out)  # the whole of standard output is one JSON document
    rows = doc["files"]
    assert rc == 1 and "broken.wav" in err and len(rows) == 8 and doc["error"] is None
    assert [Path(s["path"]).name for s in doc["skipped"]] == ["broken.wav"]
    assert all(len(r["tags"]) == 2 and set(r["tags"]) <= {"low", "high", "noisy", "pulse"} for r in rows)
    assert all(r["heatmap"] == {"path": str(hm_dir / f"{Path(r['path']).stem}_attention.png"), "seconds": 1.5,
                                "truncated": True} for r in rows)  # 2.5 s clips, maps of the first 1.5 s
    assert all(Path(r["heatmap"]["path"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for r in rows)
    assert "first 1.5 s of 2.5 s" in err  # said on stderr, not in the JSON stream
    png = tmp_path / "hm.png"
    wav = str(audio / "test_000.wav")
    assert audio_main(["tag", wav, "--ckpt", str(ckpt), "--heatmap", str(png), "--heatmap-seconds", "0"]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    out = capsys.readouterr().out
    assert f"heat map: {png}\n" in out and "first" not in out and "padded with silence" not in out
    assert audio_main(["tag", wav, "--ckpt", str(ckpt), "--heatmap", str(png), "--heatmap-seconds", "1"]) == 0
    assert "heat map: " + str(png) + " (first 1 s of 2.5 s; --heatmap-seconds 0 for the whole file)" in (
        capsys.readouterr().out
    )
    assert audio_main(["tag", str(audio), "--ckpt", str(tmp_path / "none.ckpt")]) == 2
    assert "attnkit fit -c tagging-scores" in capsys.readouterr().err
    assert audio_main(["tag", str(audio), "--ckpt", str(tmp_path / "none.ckpt"), "--json"]) == 2
    out, err = capsys.readouterr()
    doc = json.loads(out)
    assert doc["files"] == [] and "none.ckpt" in doc["error"] and "attnkit fit -c tagging-scores" in err


def test_scores_cnn_config_fit_predict_and_no_heatmap(scores_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["-c", "tagging-scores-cnn", "--data.root", str(scores_root)]
    main(["fit", *args, *QUICK])
    main(["predict", *args, "--ckpt_path", "last", "--data.num_workers=0", "--data.min_tag_count=1"])
    ckpt = "runs/tagging-scores-cnn/checkpoints/last.ckpt"
    wav = scores_root / "tagging-scores" / "audio" / "test_000.wav"
    capsys.readouterr()
    assert audio_main(["tag", str(wav), "--ckpt", ckpt, "--chunk-seconds", "4"]) == 0
    assert "padded with silence" in capsys.readouterr().out  # 2.5 s clip, 4 s chunk
    assert audio_main(["tag", str(wav), "--ckpt", ckpt, "--heatmap", "x.png"]) == 2
    assert "no self-attention layers" in capsys.readouterr().err
    assert audio_main(["tag", str(wav), "--ckpt", ckpt, "--heatmap", "x.png", "--json"]) == 2
    out, err = capsys.readouterr()
    doc = json.loads(out)
    assert "no self-attention layers" in doc["error"] and "no self-attention layers" in err
    assert len(doc["files"]) == 1 and "heatmap" not in doc["files"][0]


@pytest.mark.parametrize("config", ["tagging-mtat", "tagging-mtat-cnn"])
def test_mtat_configs_fit(config: str, tmp_path: Path) -> None:
    clips = [(str(i), f"{'0cd'[i % 3]}/artist-album-{i:02d}-title-0-29.mp3",
              ["classical", "slow"] if i % 2 else ["techno", "fast"]) for i in range(6)]
    write_mtat_layout(tmp_path / "mtat", clips, seconds=1.0)
    main(["fit", "-c", config, "--data.root", str(tmp_path), "--data.batch_size=2", "--data.chunk_seconds=1.0",
          "--trainer.fast_dev_run=true", "--data.num_workers=0", "--data.eval_batch_size=2"])
