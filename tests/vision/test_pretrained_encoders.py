"""encoder_weights="imagenet": found in the torch hub checkpoints folder / Hugging Face cache, never silently."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import attnkit.vision.models.encoders as enc_mod
from attnkit.vision import EncoderWeightsUnavailableError, UTransformer, build_encoder
from attnkit.vision.models import find_pretrained_weights


def _no_network(*args: object, **kwargs: object) -> str:
    raise AssertionError("the loader tried to download although a local file was placed")


@pytest.fixture
def isolated_caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """TORCH_HOME and the Hugging Face cache under tmp_path, downloads forbidden; returns the checkpoints dir."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    import huggingface_hub
    import huggingface_hub.file_download as fd

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr(fd, "HF_HUB_CACHE", str(tmp_path / "hf"), raising=False)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", _no_network)
    checkpoints = tmp_path / "torch" / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    return checkpoints


def test_imagenet_weights_load_from_placed_file_without_network(isolated_caches: Path) -> None:
    torch.manual_seed(0)
    src = build_encoder("resnet18", depth=5)
    with torch.no_grad():
        for p in src.parameters():
            p.add_(1.0)  # differs from any fresh random init
    state = {k: v.contiguous() for k, v in src.state_dict().items()}
    save_file(state, str(isolated_caches / "resnet18.imagenet.safetensors"))
    assert find_pretrained_weights("resnet18", "imagenet") == isolated_caches / "resnet18.imagenet.safetensors"
    model = UTransformer("resnet18", encoder_weights="imagenet", num_heads=8)
    for k, v in state.items():
        assert torch.equal(model.encoder.state_dict()[k], v), k
    # in_channels != 3 adapts the pretrained first convolution (smp's rule) instead of failing on its shape
    grey = build_encoder("resnet18", in_channels=1, weights="imagenet")
    assert grey.conv1.weight.shape == (64, 1, 7, 7)
    assert torch.allclose(grey.conv1.weight[:, 0], state["conv1.weight"].sum(1))


def test_imagenet_weights_offline_error_names_weight_and_paths(isolated_caches: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(EncoderWeightsUnavailableError) as err:
        UTransformer("resnet18", encoder_weights="imagenet", num_heads=8)
    msg = str(err.value)
    assert "\n" not in msg
    assert "'imagenet'" in msg and "smp-hub/resnet18.imagenet" in msg
    assert str(isolated_caches / "resnet18.imagenet.safetensors") in msg
    # a failing download gets the same message, with its reason
    monkeypatch.delenv("HF_HUB_OFFLINE")

    def unreachable(*args: object, **kwargs: object) -> str:
        raise OSError("Network is unreachable")

    monkeypatch.setattr(enc_mod, "_offline", lambda: False)
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", unreachable)
    with pytest.raises(EncoderWeightsUnavailableError, match="download failed: OSError: Network is unreachable"):
        find_pretrained_weights("resnet18", "imagenet")
    with pytest.raises(KeyError, match="no pretrained weights 'imagenet21k'"):
        find_pretrained_weights("resnet18", "imagenet21k")


def test_imagenet_config_fits_with_placed_weights(isolated_caches: Path, monuseg_root: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    from attnkit.core.cli import main

    src = build_encoder("resnet18", depth=5)
    save_file({k: v.contiguous() for k, v in src.state_dict().items()},
              str(isolated_caches / "resnet18.imagenet.safetensors"))
    monkeypatch.chdir(tmp_path)
    small = ["--data.patch_size", "64", "--model.patch_size", "64", "--data.batch_size", "2",
             "--data.samples_per_epoch", "2"]
    assert main(["fit", "-c", "utransformer-monuseg-imagenet", "--data.root", str(monuseg_root),
                 "--model.model.init_args.encoder_name", "resnet18", "--trainer.fast_dev_run=true", *small]) == 0
    # offline and nothing placed for resnet34 (the config's own encoder): one clear line, exit code 1
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    capsys.readouterr()
    assert main(["fit", "-c", "utransformer-monuseg-imagenet", "--data.root", str(monuseg_root),
                 "--trainer.fast_dev_run=true", *small]) == 1
    [line] = [x for x in capsys.readouterr().err.splitlines() if x.startswith("attnkit: error:")]
    assert line.startswith("attnkit: error: encoder weights 'imagenet' for 'resnet34'")
    assert str(isolated_caches / "resnet34.imagenet.safetensors") in line
