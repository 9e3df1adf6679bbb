"""The ``attnkit`` command on the demonstration task: subcommands, listings, run layout, errors."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from attnkit.core.cli import main, packaged_configs

SMALL = ["--data.num_samples", "256", "--data.batch_size", "32", "--trainer.max_epochs", "2",
         "--trainer.enable_progress_bar", "false"]


def _metrics(run: Path) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    for f in sorted(run.glob("logs/version_*/metrics.csv")):
        rows += list(csv.DictReader(f.open()))
    return rows


def test_fit_validate_test_predict_through_the_cli(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fit", "-c", "demo", *SMALL]) == 0
    run = Path("runs/demo")
    assert (run / "checkpoints/last.ckpt").is_file() and (run / "checkpoints/best.ckpt").is_file()
    assert list(run.glob("logs/version_0/events.out.tfevents.*"))
    assert (run / "logs/version_0/config.yaml").is_file()
    ckpt = torch.load(run / "checkpoints/last.ckpt", weights_only=True, map_location="cpu")
    assert ckpt["global_step"] == 2 * 256 // 32
    accs = [float(r["val/acc"]) for r in _metrics(run) if r.get("val/acc")]
    assert len(accs) == 2

    for sub in ("validate", "test"):
        assert main([sub, "-c", "demo", *SMALL, "--ckpt_path", "best"]) == 0
    out = capsys.readouterr().out
    assert "test/acc" in out and "val/acc" in out
    assert main(["predict", "-c", "demo", *SMALL, "--ckpt_path", "last"]) == 0

    # a checkpoint file's path works as `last` does (Lightning's merge of its hyper-parameters used to fail)
    for ckpt in ("last", str(run / "checkpoints/last.ckpt")):
        assert main(["test", "-c", "demo", *SMALL, "--ckpt_path", ckpt]) == 0
    tested = [r["test/acc"] for r in _metrics(run) if r.get("test/acc")]
    assert len(tested) == 3 and tested[1] == tested[2]


def test_config_by_path_and_short_class_names(tmp_path: Path) -> None:
    cfg = packaged_configs()["demo"].path
    assert main(["fit", "-c", str(cfg), *SMALL, "--trainer.max_epochs", "1",
                 "--model", "SequenceClassificationTask", "--model.model", "SequenceClassifier",
                 "--data", "SyntheticSequenceDataModule", "--trainer.default_root_dir", "runs/custom"]) == 0
    assert (Path("runs/custom/checkpoints/last.ckpt")).is_file()


def test_seed_makes_runs_reproducible() -> None:
    args = [*SMALL, "--trainer.max_epochs", "1", "--seed_everything", "7"]
    assert main(["fit", "-c", "demo", *args, "--trainer.default_root_dir", "runs/a"]) == 0
    assert main(["fit", "-c", "demo", *args, "--trainer.default_root_dir", "runs/b"]) == 0
    a = torch.load("runs/a/checkpoints/last.ckpt", weights_only=True)["state_dict"]
    b = torch.load("runs/b/checkpoints/last.ckpt", weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_listings(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["configs"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert any(line.startswith("demo ") for line in lines)
    assert main(["datasets"]) == 0
    assert "data root:" in capsys.readouterr().out


def test_unknown_config_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fit", "-c", "no-such-config"]) == 2
    err = capsys.readouterr().err
    assert "no-such-config" in err and "demo" in err and "attnkit configs" in err


def test_missing_best_checkpoint_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["test", "-c", "demo", *SMALL, "--ckpt_path", "best"]) == 1
    err = capsys.readouterr().err
    # one line, no traceback of the error (logging may report a stale captured stream of an earlier test)
    assert any(line.startswith("attnkit: error: --ckpt_path best:") and "best.ckpt does not exist" in line
               for line in err.splitlines())
    assert "FileNotFoundError" not in err
    with pytest.raises(FileNotFoundError, match=r"best\.ckpt does not exist"):
        main(["test", "-c", "demo", *SMALL, "--ckpt_path", "best", "--debug"])


def test_help_lists_subcommands(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(s in out for s in ("fit", "validate", "test", "predict", "configs", "datasets", "models", "--run_dir"))
    assert main(["frobnicate"]) == 2
    assert "unknown subcommand 'frobnicate'" in capsys.readouterr().err


def test_output_into_a_closed_pipe_stops_quietly() -> None:
    # `attnkit configs | head -1`: the reader leaves before the listing is written; the command must stop with
    # SIGPIPE's status and no traceback (a BrokenPipeError used to print one)
    code = "import sys; from attnkit.core.cli import main; sys.exit(main(sys.argv[1:]))"
    for argv in (["configs"], ["fit", "-c", "demo", "--print_config"]):
        proc = subprocess.Popen([sys.executable, "-c", code, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert proc.stdout is not None
        proc.stdout.close()  # long before the child has imported anything
        try:
            _, err = proc.communicate(timeout=120)
        finally:
            proc.kill()
        assert proc.returncode == 141, err.decode()[-2000:]
        assert b"Traceback" not in err and b"BrokenPipeError" not in err, err.decode()[-2000:]
