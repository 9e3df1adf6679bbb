"""SAITS: Self-Attention-based Imputation for Time Series (Du, Côté and Liu, 2023).

Two diagonally-masked self-attention (DMSA) blocks, each fed with the series and its missing mask, and a
learned weighted combination of the two blocks' estimates. Attention comes from :mod:`attnkit.core`;
the diagonal mask is :class:`attnkit.core.DiagonalMask`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attnkit.core import DiagonalMask, FeedForward, MultiHeadAttention
from attnkit.core.attention import Backend
from attnkit.core.models import configurable

__all__ = ["SAITS", "DMSALayer", "SAITSOutput", "saits_air_quality", "saits_base", "saits_physionet2012"]


def _sinusoid_table(num_steps: int, dim: int) -> Tensor:
    """Interleaved sin/cos table ``(num_steps, dim)`` of Vaswani et al., computed in float32 like SAITS."""
    pos = torch.arange(num_steps, dtype=torch.float32).unsqueeze(1)
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * -(math.log(10000.0) / dim))
    table = torch.zeros(num_steps, dim, dtype=torch.float32)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq)[:, : dim // 2]
    return table


class _Embedding(nn.Module):
    """``Linear(2F, D)`` over ``[x, mask]``, plus the sinusoidal position table and dropout."""

    position: Tensor

    def __init__(self, num_features: int, embed_dim: int, num_steps: int, dropout: float) -> None:
        super().__init__()
        self.proj = nn.Linear(2 * num_features, embed_dim)
        self.register_buffer("position", _sinusoid_table(num_steps, embed_dim), persistent=False)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        h = self.proj(torch.cat([x, mask], dim=-1))
        return self.dropout(h + self.position[: x.shape[1]].to(h.dtype))


def _bf16_on_cpu(x: Tensor) -> bool:
    """Whether attention on ``x`` runs in bfloat16 on the CPU (bf16 input or CPU bf16 autocast)."""
    if x.device.type != "cpu":
        return False
    if x.dtype == torch.bfloat16:
        return True
    return torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16


class DMSALayer(nn.Module):
    """One post-norm encoder layer of SAITS.

    ``x = LN(x + drop(MHA(x)))`` then ``x = LN(x + drop(W2 relu(W1 x)))``; projections of the attention
    have no bias, per-head sizes ``head_dim`` (d_k) and ``value_head_dim`` (d_v), LayerNorm eps 1e-6.

    Args:
        embed_dim: model width ``D`` (d_model).
        num_heads: attention heads ``H``.
        head_dim: query/key size per head (d_k).
        value_head_dim: value size per head (d_v).
        ffn_dim: hidden width of the feed-forward (d_ffn).
        dropout: dropout on both residual branches.
        attn_dropout: dropout on the attention weights.
        backend: attention backend of :func:`attnkit.core.attention` for layers that need no weights.
            ``"auto"`` runs ``"math"`` for bfloat16 on the CPU: at SAITS sizes (L = 48, d_k = 32) torch's
            fused CPU kernel takes ~5x longer than ``math`` for forward + backward in bf16
            (``benchmarks/saits_speed.py``); everywhere else ``"auto"`` is attnkit.core's choice.

    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        head_dim: int,
        value_head_dim: int,
        ffn_dim: int,
        dropout: float = 0.0,
        attn_dropout: float = 0.0,
        backend: Backend = "auto",
    ) -> None:
        super().__init__()
        self.backend: Backend = backend
        self.attn = MultiHeadAttention(
            embed_dim,
            num_heads,
            dropout=attn_dropout,
            bias=False,
            head_dim=head_dim,
            value_head_dim=value_head_dim,
            backend=backend,
        )
        self.norm1 = nn.LayerNorm(embed_dim, eps=1e-6)
        self.ffn = FeedForward(embed_dim, ffn_dim, dropout=0.0, activation="relu", bias=True)
        self.norm2 = nn.LayerNorm(embed_dim, eps=1e-6)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)

    def forward(
        self,
        x: Tensor,
        mask: DiagonalMask | None,
        need_weights: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        """``(B, L, D) -> ((B, L, D), weights (B, H, L, L) or None)``."""
        self.attn.backend = "math" if self.backend == "auto" and _bf16_on_cpu(x) else self.backend
        a, w = self.attn(x, mask=mask, need_weights=need_weights)
        x = self.norm1(x + self.dropout1(a))
        x = self.norm2(x + self.dropout2(self.ffn(x)))
        return x, w


@dataclass
class SAITSOutput:
    """What :meth:`SAITS.forward` returns (all ``(B, L, F)`` unless stated).

    Attributes:
        imputation: observed values kept, missing ones taken from ``x_tilde_3``.
        x_tilde_1: estimate of the first DMSA block.
        x_tilde_2: estimate of the second block (equal to ``x_tilde_1`` with one block).
        x_tilde_3: the final estimate (weighted combination of the two).
        combining_weights: ``eta`` of the weighted combination, or ``None`` when it is switched off.
        attn_weights: head-averaged attention weights ``(B, L, L)`` of the last layer, or ``None``.

    """

    imputation: Tensor
    x_tilde_1: Tensor
    x_tilde_2: Tensor
    x_tilde_3: Tensor
    combining_weights: Tensor | None
    attn_weights: Tensor | None

    @property
    def estimates(self) -> list[Tensor]:
        """The distinct estimates the observed-reconstruction loss averages over."""
        out = [self.x_tilde_1]
        if self.x_tilde_2 is not self.x_tilde_1:
            out.append(self.x_tilde_2)
        if self.x_tilde_3 is not self.x_tilde_2:
            out.append(self.x_tilde_3)
        return out


@configurable
class SAITS(nn.Module):
    """SAITS imputation network.

    Inputs are a series ``x (B, L, F)`` whose missing entries are any finite value (zeros by convention;
    NaNs are replaced by zeros) and the missing mask ``(B, L, F)`` with 1 = observed, 0 = missing.

    Args:
        num_features: number of variables ``F``.
        num_steps: window length ``L`` the model is built for (the weighted combination sees ``L``
            attention weights per step, so the length is fixed; :meth:`impute` windows longer series).
        num_layers: DMSA layers per block (the paper's ``N``).
        embed_dim: ``d_model``.
        num_heads: attention heads.
        head_dim: ``d_k``.
        value_head_dim: ``d_v``.
        ffn_dim: ``d_ffn``.
        dropout: residual/embedding dropout.
        attn_dropout: dropout on attention weights.
        diagonal_mask: mask the diagonal of the attention maps (ablation: ``False`` = plain self-attention).
        num_blocks: 2 (the paper) or 1 (ablation: a single DMSA block).
        weighted_combination: learn ``eta`` to combine the blocks (ablation: ``False`` uses the second
            block's estimate directly).
        backend: attention backend for layers whose weights are not needed.

    Example:
        >>> model = SAITS(num_features=37, num_steps=48)
        >>> out = model(x, mask)            # x, mask: (B, 48, 37)
        >>> filled = model.impute(x_with_nans)   # numpy / torch / pandas, any length

    """

    feature_mean: Tensor
    feature_std: Tensor

    def __init__(
        self,
        num_features: int,
        num_steps: int,
        num_layers: int = 2,
        embed_dim: int = 256,
        num_heads: int = 4,
        head_dim: int = 64,
        value_head_dim: int = 64,
        ffn_dim: int = 128,
        dropout: float = 0.1,
        attn_dropout: float = 0.0,
        diagonal_mask: bool = True,
        num_blocks: int = 2,
        weighted_combination: bool = True,
        backend: Backend = "auto",
    ) -> None:
        super().__init__()
        if num_blocks not in (1, 2):
            raise ValueError(f"SAITS has 1 or 2 DMSA blocks, got num_blocks={num_blocks}")
        if num_features < 1 or num_steps < 2:
            raise ValueError(
                f"SAITS needs num_features >= 1 and num_steps >= 2, got {num_features}, {num_steps}"
            )
        self.num_features, self.num_steps = num_features, num_steps
        self.num_blocks, self.weighted_combination = num_blocks, weighted_combination and num_blocks == 2
        self.diagonal_mask = diagonal_mask

        def block() -> nn.ModuleList:
            return nn.ModuleList(
                DMSALayer(
                    embed_dim, num_heads, head_dim, value_head_dim, ffn_dim, dropout, attn_dropout, backend
                )
                for _ in range(num_layers)
            )

        self.embed1 = _Embedding(num_features, embed_dim, num_steps, dropout)
        self.block1 = block()
        self.out1 = nn.Linear(embed_dim, num_features)  # reduce_dim_z
        if num_blocks == 2:
            self.embed2 = _Embedding(num_features, embed_dim, num_steps, dropout)
            self.block2 = block()
            self.out2_beta = nn.Linear(embed_dim, num_features)
            self.out2_gamma = nn.Linear(num_features, num_features)
            if self.weighted_combination:
                self.combine = nn.Linear(num_features + num_steps, num_features)
        # Standardisation used by impute(); set by the training task from the data (identity by default).
        self.register_buffer("feature_mean", torch.zeros(num_features))
        self.register_buffer("feature_std", torch.ones(num_features))

    def _run(self, layers: nn.ModuleList, h: Tensor, need_last_weights: bool) -> tuple[Tensor, Tensor | None]:
        mask = DiagonalMask() if self.diagonal_mask else None
        w = None
        for i, layer in enumerate(layers):
            last = i == len(layers) - 1
            h, w = layer(h, mask, need_weights=need_last_weights and last)
        return h, w

    def forward(self, x: Tensor, missing_mask: Tensor) -> SAITSOutput:
        """Impute ``x``.

        Args:
            x: ``(B, L, F)`` series; missing entries are ignored (NaNs are zeroed).
            missing_mask: ``(B, L, F)``, 1 = observed, 0 = missing.

        Returns:
            :class:`SAITSOutput` with the three estimates and the imputation ``(B, L, F)``.

        """
        if x.dim() != 3 or x.shape[1:] != (self.num_steps, self.num_features):
            raise ValueError(
                f"SAITS expects x of shape (B, {self.num_steps}, {self.num_features}) (batch, steps, "
                f"features), "
                f"got {tuple(x.shape)}; use SAITS.impute() for series of other lengths"
            )
        if missing_mask.shape != x.shape:
            raise ValueError(
                f"missing_mask shape {tuple(missing_mask.shape)} differs from x {tuple(x.shape)}"
            )
        m = missing_mask.to(x.dtype)
        x = torch.nan_to_num(x, nan=0.0) * m

        h, w = self._run(self.block1, self.embed1(x, m), need_last_weights=False)
        x1 = self.out1(h)
        if self.num_blocks == 1:
            return SAITSOutput(m * x + (1 - m) * x1, x1, x1, x1, None, None)

        x_prime = m * x + (1 - m) * x1
        h, w = self._run(self.block2, self.embed2(x_prime, m), need_last_weights=self.weighted_combination)
        x2 = self.out2_gamma(F.relu(self.out2_beta(h)))
        if not self.weighted_combination:
            return SAITSOutput(m * x + (1 - m) * x2, x1, x2, x2, None, None)

        assert w is not None
        a = w.mean(dim=1)  # (B, L, L): average over heads
        eta = torch.sigmoid(self.combine(torch.cat([m, a], dim=-1)))
        x3 = (1 - eta) * x2 + eta * x1
        return SAITSOutput(m * x + (1 - m) * x3, x1, x2, x3, eta, a)

    @torch.no_grad()
    def set_scaler(self, mean: Tensor, std: Tensor) -> None:
        """Store the training standardisation ``(F,)`` used by :meth:`impute`."""
        self.feature_mean.copy_(torch.as_tensor(mean, dtype=self.feature_mean.dtype))
        self.feature_std.copy_(torch.as_tensor(std, dtype=self.feature_std.dtype))

    def impute(
        self, x: object, *, standardised: bool = False, batch_size: int = 256, stride: int | None = None
    ) -> object:
        """Fill the NaNs of a series of any length.

        Args:
            x: ``(T, F)`` or ``(N, T, F)`` numpy array or torch tensor, or a pandas DataFrame ``(T, F)`` of
                numeric columns, with NaN for missing values.
            standardised: ``x`` is already on the model's standardised scale (otherwise it is standardised
                with the stored training mean/std and the result mapped back).
            batch_size: windows per forward pass.
            stride: step between windows (default ``num_steps // 2``); overlapping estimates are averaged.

        Returns:
            The same type and shape as ``x``, observed values unchanged and NaNs filled. Series shorter
            than ``num_steps`` are padded with missing steps for the model and cut back.

        Raises:
            ValueError: wrong number of features, infinities, or non-numeric columns.

        """
        from attnkit.timeseries.impute import impute_series

        return impute_series(self, x, standardised=standardised, batch_size=batch_size, stride=stride)


def saits_physionet2012(num_features: int = 37, num_steps: int = 48) -> SAITS:
    """SAITS with the paper's PhysioNet-2012 hyper-parameters (authors' ``PhysioNet2012_SAITS_best``).

    5 layers per block, d_model 256, d_ffn 512, 8 heads, d_k = d_v = 32, no dropout
    (trained with Adam lr 6.83e-4, batch 128, early stopping patience 30).
    """
    return SAITS(
        num_features,
        num_steps,
        num_layers=5,
        embed_dim=256,
        num_heads=8,
        head_dim=32,
        value_head_dim=32,
        ffn_dim=512,
        dropout=0.0,
    )


def saits_air_quality(num_features: int = 132, num_steps: int = 24) -> SAITS:
    """SAITS with the paper's Air-Quality hyper-parameters (authors' ``AirQuality_SAITS_best``).

    1 layer per block, d_model 512, d_ffn 512, 4 heads, d_k 128, d_v 64, no dropout (Adam lr 8.82e-4).
    """
    return SAITS(
        num_features,
        num_steps,
        num_layers=1,
        embed_dim=512,
        num_heads=4,
        head_dim=128,
        value_head_dim=64,
        ffn_dim=512,
        dropout=0.0,
    )


def saits_base(num_features: int, num_steps: int) -> SAITS:
    """SAITS-base of the paper: 2 layers, d_model 256, d_ffn 128, 4 heads, d_k = d_v = 64, dropout 0.1."""
    return SAITS(
        num_features,
        num_steps,
        num_layers=2,
        embed_dim=256,
        num_heads=4,
        head_dim=64,
        value_head_dim=64,
        ffn_dim=128,
        dropout=0.1,
    )
