"""Self-attention tagger and CNN baseline: shapes, attention through attnkit.core, learning."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from attnkit.audio.tagging import (
    SelfAttentionTagger,
    ShortChunkCNN,
    short_chunk_cnn_paper,
    won2019_paper,
    won2019_small,
)
from attnkit.audio.tagging.synthetic import tone_clip
from attnkit.audio.tagging.task import song_average
from attnkit.core import record_backends


def tiny_attn(k: int = 3) -> SelfAttentionTagger:
    return SelfAttentionTagger(k, n_mels=32, channels=(8, 16, 16), num_time_pool=2, embed_dim=16, num_heads=2,
                               num_layers=2, dropout=0.0, attn_dropout=0.0, head_dropout=0.0, max_len=64)


def test_attention_tagger_shapes_and_class_token_weights() -> None:
    torch.manual_seed(0)
    m = tiny_attn(5).eval()
    wav = torch.randn(2, 16000)
    logits, weights = m(wav, need_weights=True)
    assert logits.shape == (2, 5)
    t = 16000 // (256 * 4) + 1  # frames after two time-halvings (ceil of the mel frames / 4)
    assert len(weights) == 2 and weights[0].shape == (2, 2, 1 + t, 1 + t)
    torch.testing.assert_close(weights[-1].sum(-1), torch.ones(2, 2, 1 + t))
    # the model attends through attnkit.core, not with its own softmax
    with record_backends() as used:
        m(wav)
    assert used


def test_attention_tagger_rejects_too_long_input_with_advice() -> None:
    m = tiny_attn()
    with pytest.raises(ValueError, match="max_len"):
        m(torch.randn(1, 16000 * 20))
    with pytest.raises(ValueError, match=r"\(B, N\)"):
        m(torch.randn(16000))


def test_paper_builders_match_paper_sizes() -> None:
    m = won2019_paper(50)
    assert m.config["channels"] == [128, 128, 256, 256, 256, 256, 256]
    assert (m.config["embed_dim"], m.config["num_heads"], m.config["num_layers"]) == (256, 8, 2)
    assert m.encoder.layers[0].norm_first is False  # BERT-style post-norm
    # 15 s at 16 kHz gives 118 time steps, inside the paper's 700 positions
    with torch.no_grad():
        assert m.features(torch.zeros(1, 15 * 16000)).shape == (1, 118, 256)
    c = short_chunk_cnn_paper(50)
    assert c.config["channels"][-1] == 512
    assert c(torch.zeros(2, 59049)).shape == (2, 50)


def test_song_average_means_chunks_per_song() -> None:
    p = torch.tensor([[1.0, 0.0], [0.0, 0.0], [0.5, 1.0]])
    out = song_average(p, torch.tensor([0, 0, 1]), 2)
    torch.testing.assert_close(out, torch.tensor([[0.5, 0.0], [0.5, 1.0]]))


@pytest.mark.parametrize("kind", ["attention", "cnn"])
def test_models_learn_audible_tags(kind: str) -> None:
    """A few hundred steps on tones: low/high pitch and noise become separable (ROC-AUC > 0.9)."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    tags = ["low", "high", "noisy"]

    def batch(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        xs, ys = [], []
        for i in range(n):
            t = ["low" if i % 2 else "high"] + (["noisy"] if rng.random() < 0.5 else [])
            xs.append(torch.from_numpy(tone_clip(t, 0.5, 16000, rng)))
            ys.append(torch.tensor([float(x in t) for x in tags]))
        return torch.stack(xs), torch.stack(ys)

    if kind == "attention":
        m: torch.nn.Module = tiny_attn(3)
    else:
        m = ShortChunkCNN(3, n_mels=32, channels=(8, 16, 16), hidden_dim=16, dropout=0.0)
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    for _ in range(40):
        x, y = batch(8)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(m(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    m.eval()
    x, y = batch(32)
    with torch.no_grad():
        p = torch.sigmoid(m(x))
    from torchmetrics.functional.classification import multilabel_auroc

    assert float(multilabel_auroc(p, y.long(), 3)) > 0.9


def test_small_builders_run() -> None:
    assert won2019_small(7)(torch.zeros(2, 16000 * 3)).shape == (2, 7)
