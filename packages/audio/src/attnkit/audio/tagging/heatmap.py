"""Song-level inference on files and the attention heat map over time.

The heat map is the paper's interpretability figure: class-token attention per layer and head.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from attnkit.audio.tagging.data import load_clip, song_chunks
from attnkit.audio.tagging.model import SelfAttentionTagger

__all__ = ["TagPrediction", "attention_over_time", "predict_file", "save_heatmap"]


@dataclass
class TagPrediction:
    """Song-level tag probabilities of one file.

    Attributes:
        path: the file.
        probs: ``(K,)`` averaged over chunks.
        chunk_probs: ``(M, K)`` per chunk.
        seconds: the file's duration.
        padded: the file was shorter than a chunk and padded with silence.

    """

    path: str
    probs: Tensor
    chunk_probs: Tensor
    seconds: float
    padded: bool

    def top(self, tags: list[str], k: int = 5) -> list[tuple[str, float]]:
        """Return the ``k`` most probable tags with their probabilities."""
        vals, idx = self.probs.topk(min(k, self.probs.numel()))
        return [(tags[i], float(v)) for v, i in zip(vals.tolist(), idx.tolist(), strict=True)]


@torch.no_grad()
def predict_file(
    model: nn.Module,
    path: str | os.PathLike[str],
    chunk_seconds: float,
    *,
    batch: int = 8,
    max_chunks: int | None = None,
) -> TagPrediction:
    """Tag one file: cut it into chunks, average the chunks' sigmoid outputs.

    Raises:
        attnkit.audio.io.AudioFileError: unreadable file.

    """
    sr = int(getattr(model, "sample_rate", 16000))
    wav = load_clip(path, sr)
    chunk = round(chunk_seconds * sr)
    chunks = song_chunks(wav, chunk, max_chunks)
    model.eval()
    probs = torch.cat([torch.sigmoid(model(chunks[i : i + batch])) for i in range(0, chunks.shape[0], batch)])
    return TagPrediction(str(path), probs.mean(0), probs, wav.numel() / sr, wav.numel() < chunk)


def _attention_tagger(model: nn.Module) -> SelfAttentionTagger:
    if not isinstance(model, SelfAttentionTagger):
        raise TypeError(
            f"{type(model).__name__} has no self-attention layers; the heat map needs a "
            "SelfAttentionTagger checkpoint"
        )
    return model


@torch.no_grad()
def attention_over_time(model: nn.Module, wav: Tensor, chunk: int) -> tuple[Tensor, float]:
    """Class-token attention to each time step, for every layer and head, over a whole signal.

    The signal is cut into consecutive chunks (the last one padded); for each chunk the model's attention
    weights from the class token to the time steps are taken and placed side by side.

    Args:
        model: a :class:`~attnkit.audio.tagging.model.SelfAttentionTagger`.
        wav: ``(N,)`` mono signal at the model's rate.
        chunk: chunk length in samples.

    Returns:
        ``(weights (L, H, T), seconds per step)``.

    Raises:
        TypeError: the model has no attention weights (e.g. the CNN baseline).

    """
    model = _attention_tagger(model)
    model.eval()
    n = max(1, -(-wav.numel() // chunk))
    padded = torch.nn.functional.pad(wav, (0, n * chunk - wav.numel()))
    cols = []
    for i in range(n):
        _, weights = model(padded[i * chunk : (i + 1) * chunk].unsqueeze(0), need_weights=True)
        cols.append(torch.stack([w[0, :, 0, 1:] for w in weights]))  # (L, H, T')
    att = torch.cat(cols, dim=-1)
    step = model.frame_hop / model.sample_rate
    keep = max(1, round(wav.numel() / model.frame_hop))
    return att[..., :keep], step


def save_heatmap(
    model: nn.Module,
    path: str | os.PathLike[str],
    out: str | os.PathLike[str],
    chunk_seconds: float,
    tags: list[str] | None = None,
    max_seconds: float | None = 60.0,
    prediction: TagPrediction | None = None,
) -> Path:
    """Write a PNG: log-mel spectrogram, class-token attention over time per layer/head, and their mean.

    Args:
        model: a SelfAttentionTagger.
        path: the audio file.
        out: PNG to write.
        chunk_seconds: chunk length the model was trained on.
        tags: tag names, to print the top tags in the title.
        max_seconds: only the first ``max_seconds`` of the file (``None`` or 0: all of it). A shortened
            map says so in its title ("first 60 s of 183.2 s").
        prediction: the file's :func:`predict_file` result for the title (computed when ``None``).

    Returns:
        The PNG path.

    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    model = _attention_tagger(model)
    sr = int(model.sample_rate)
    wav = load_clip(path, sr)
    full_seconds = wav.numel() / sr
    if max_seconds:
        wav = wav[: int(max_seconds * sr)]
    chunk = round(chunk_seconds * sr)
    att, step = attention_over_time(model, wav, chunk)
    layers, heads, t = att.shape
    with torch.no_grad():
        spec = model.spec.to_db(model.spec.mel(wav.unsqueeze(0)))[0]
    dur = wav.numel() / sr
    title = Path(path).name
    if dur < full_seconds:
        title += f" (first {dur:g} s of {full_seconds:.1f} s)"
    if tags is not None:
        pred = prediction if prediction is not None else predict_file(model, path, chunk_seconds)
        title += "   " + ", ".join(f"{n} {p:.2f}" for n, p in pred.top(tags, 4))
    fig, axes = plt.subplots(
        3,
        1,
        figsize=(12, 7),
        sharex=True,
        gridspec_kw={"height_ratios": [2.2, 0.35 * layers * heads + 0.4, 0.8]},
    )
    axes[0].imshow(
        spec.numpy(), origin="lower", aspect="auto", extent=(0, dur, 0, spec.shape[0]), cmap="magma"
    )
    axes[0].set_ylabel("mel band")
    axes[0].set_title(title, fontsize=10)
    rows = att.reshape(layers * heads, t)
    rows = rows / rows.amax(dim=1, keepdim=True).clamp_min(1e-12)
    axes[1].imshow(
        rows.numpy(),
        origin="upper",
        aspect="auto",
        extent=(0, t * step, layers * heads, 0),
        cmap="viridis",
        interpolation="nearest",
    )
    axes[1].set_yticks([i + 0.5 for i in range(layers * heads)])
    axes[1].set_yticklabels([f"L{i // heads + 1}H{i % heads + 1}" for i in range(layers * heads)], fontsize=6)
    axes[1].set_ylabel("class-token\nattention")
    mean = att[-1].mean(0)
    axes[2].plot([(i + 0.5) * step for i in range(t)], mean.numpy(), color="k", lw=1)
    for c in range(1, -(-wav.numel() // chunk)):
        axes[2].axvline(c * chunk_seconds, color="r", lw=0.5, ls="--")
    axes[2].set_ylabel("last layer\nmean")
    axes[2].set_xlabel("time (s); dashed: chunk boundaries")
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
