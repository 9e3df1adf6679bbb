"""Linear-complexity self-attention: Linformer (projected keys/values) and Nystromformer (landmarks)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from attnkit.core.attention import Backend, KeyPaddingMask, Mask, attention
from attnkit.core.layers.mha import MultiHeadAttention

__all__ = ["LinformerAttention", "NystromAttention", "nystrom_attention", "pinv_newton_schulz"]


def _valid_keys(mask: Mask | Tensor | None, batch: int, length: int, device: torch.device) -> Tensor | None:
    """Key validity ``(B, L)`` from a key-padding mask; anything else raises."""
    if mask is None:
        return None
    if isinstance(mask, Tensor):
        if mask.dtype == torch.bool and mask.shape == (batch, length):
            return mask.to(device)
        if mask.dim() == 1 and mask.dtype != torch.bool:
            mask = KeyPaddingMask(mask)
        else:
            raise ValueError(
                "linear attention takes key padding only: lengths (B,) or a bool (B, L) tensor with True = "
                f"valid key, got {mask.dtype} {tuple(mask.shape)}"
            )
    if not isinstance(mask, KeyPaddingMask):
        raise ValueError(
            f"linear attention supports key padding only, got {mask!r}: projected keys (Linformer) and "
            "landmarks (Nystromformer) mix positions, so causal/window masks cannot be applied; use "
            "MultiHeadAttention for those"
        )
    return mask.dense(1, length, device).view(-1, length).expand(batch, length)


class LinformerAttention(MultiHeadAttention):
    """Linformer self-attention (Wang et al. 2020): keys and values projected along the sequence to k rows.

    ``head_i = Attention(Q W_i^Q, E K W_i^K, F V W_i^V)`` with learned ``E, F: (proj_dim, max_len)``; cost
    ``O(L k)`` instead of ``O(L^2)``. Shorter inputs use the first ``L`` columns of ``E`` and ``F``. With
    ``proj_dim = L`` and ``E = F = I`` this is exactly :class:`MultiHeadAttention` (tested).

    Args:
        embed_dim: model width ``D``.
        num_heads: heads ``H``.
        max_len: longest input ``L``.
        proj_dim: projected length ``k``.
        share_kv: one projection for keys and values (``E = F``), as in the paper's "key-value sharing".
        dropout, bias, backend: as :class:`MultiHeadAttention`.

    Shapes:
        ``(B, L, D) -> (B, L, D)``; padded keys (a :class:`KeyPaddingMask`, lengths ``(B,)`` or bool
        ``(B, L)``) are zeroed before the projection. Other masks raise.

    """

    def __init__(self, embed_dim: int, num_heads: int, max_len: int, proj_dim: int = 256, *,
                 share_kv: bool = False, dropout: float = 0.0, bias: bool = True,
                 backend: Backend = "auto") -> None:
        super().__init__(embed_dim, num_heads, dropout=dropout, bias=bias, backend=backend)
        self.max_len, self.proj_dim = max_len, proj_dim
        self.e_proj = nn.Parameter(torch.empty(proj_dim, max_len))
        nn.init.normal_(self.e_proj, std=1.0 / math.sqrt(proj_dim))
        self.f_proj: nn.Parameter | None = None
        if not share_kv:
            self.f_proj = nn.Parameter(torch.empty(proj_dim, max_len))
            nn.init.normal_(self.f_proj, std=1.0 / math.sqrt(proj_dim))

    def forward(  # type: ignore[override]
        self, x: Tensor, mask: Mask | Tensor | None = None, *, need_weights: bool = False
    ) -> tuple[Tensor, Tensor | None]:
        """``(B, L, D) -> ((B, L, D), weights (B, H, L, k) or None)``."""
        b, n, _ = x.shape
        if n > self.max_len:
            raise ValueError(f"LinformerAttention was built for max_len={self.max_len}, got length {n}")
        q, k, v = self.project(x)
        valid = _valid_keys(mask, b, n, x.device)
        if valid is not None:
            keep = valid.view(b, 1, n, 1).to(k.dtype)
            k, v = k * keep, v * keep
        e = self.e_proj[:, :n].to(k.dtype)
        f = e if self.f_proj is None else self.f_proj[:, :n].to(v.dtype)
        k, v = torch.matmul(e, k), torch.matmul(f, v)  # (B, H, k, Dh)
        p = self.dropout if self.training else 0.0
        if need_weights:
            out, w = attention(q, k, v, dropout=p, scale=self.scale, backend="math", return_weights=True)
        else:
            out, w = attention(q, k, v, dropout=p, scale=self.scale, backend=self.backend), None
        assert isinstance(out, Tensor)
        out = out.transpose(1, 2).reshape(b, n, self.num_heads * self.value_head_dim)
        return self.out_proj(out), w


def pinv_newton_schulz(a: Tensor, iters: int = 6) -> Tensor:
    """Approximate the Moore-Penrose inverse of ``(..., m, m)`` by Newton-Schulz iterations (Nystromformer).

    Initialised with ``Z0 = A^T / (max row sum * max column sum)`` (Razavi et al. 2014); converges for the
    softmax kernels Nystromformer inverts.
    """
    absa = a.abs()
    z = a.transpose(-2, -1) / (absa.sum(-1).amax(-1) * absa.sum(-2).amax(-1))[..., None, None]
    eye = torch.eye(a.shape[-1], device=a.device, dtype=a.dtype)
    for _ in range(iters):
        az = a @ z
        z = 0.25 * z @ (13 * eye - az @ (15 * eye - az @ (7 * eye - az)))
    return z


def _segment_means(x: Tensor, m: int, valid: Tensor | None) -> Tensor:
    """Means of ``m`` contiguous, near-equal segments of ``(B, H, L, D)`` along L (valid positions only)."""
    n = x.shape[-2]
    seg = torch.arange(n, device=x.device) * m // n  # segment id per position
    w = torch.ones(x.shape[0], 1, n, 1, dtype=x.dtype, device=x.device)
    if valid is not None:
        w = valid.view(x.shape[0], 1, n, 1).to(x.dtype)
    sums = torch.zeros(*x.shape[:-2], m, x.shape[-1], dtype=x.dtype, device=x.device)
    sums = sums.index_add(-2, seg, x * w)
    cnt = torch.zeros(x.shape[0], 1, m, 1, dtype=x.dtype, device=x.device).index_add(-2, seg, w)
    return sums / cnt.clamp(min=1)


def nystrom_attention(q: Tensor, k: Tensor, v: Tensor, num_landmarks: int, *,
                      valid: Tensor | None = None, scale: float | None = None,
                      pinv_iters: int | None = 6) -> Tensor:
    """Nystrom approximation of softmax attention (Xiong et al. 2021) on ``(B, H, L, D)`` tensors.

    ``softmax(Q K~^T) pinv(softmax(Q~ K~^T)) softmax(Q~ K^T) V`` with landmarks ``Q~, K~`` the means of
    ``m`` contiguous segments. ``pinv_iters=None`` uses the exact ``torch.linalg.pinv``; with
    ``num_landmarks = L`` and the exact inverse this equals softmax attention.

    Args:
        q: queries ``(B, H, L, D)`` (self-attention: one length).
        k: keys ``(B, H, L, D)``.
        v: values ``(B, H, L, Dv)``.
        num_landmarks: ``m`` (clipped to ``L``).
        valid: ``(B, L)`` bool, ``True`` for real (non-padded) tokens.
        scale: score scale (default ``1 / sqrt(D)``).
        pinv_iters: Newton-Schulz iterations, or ``None`` for the exact pseudo-inverse.

    Returns:
        ``(B, H, L, Dv)``; padded query rows are zero.

    """
    n = q.shape[-2]
    m = min(num_landmarks, n)
    s = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    # Scale both sides by sqrt(scale) so that landmark products carry the same scale as q k^T.
    rs = math.sqrt(s)
    q, k = q * rs, k * rs
    if valid is not None:
        keep = valid.view(q.shape[0], 1, n, 1).to(q.dtype)
        q, k, v = q * keep, k * keep, v * keep
    ql, kl = _segment_means(q, m, valid), _segment_means(k, m, valid)
    k1 = torch.softmax(q @ kl.transpose(-2, -1), dim=-1)
    k2 = torch.softmax(ql @ kl.transpose(-2, -1), dim=-1)
    s3 = ql @ k.transpose(-2, -1)
    if valid is not None:
        s3 = s3.masked_fill(~valid.view(q.shape[0], 1, 1, n), float("-inf"))
    k3 = torch.softmax(s3, dim=-1)
    inv = torch.linalg.pinv(k2) if pinv_iters is None else pinv_newton_schulz(k2, pinv_iters)
    out = k1 @ (inv @ (k3 @ v))
    if valid is not None:
        out = out * valid.view(q.shape[0], 1, n, 1).to(out.dtype)
    return out


class NystromAttention(MultiHeadAttention):
    """Nystromformer self-attention (Xiong et al. 2021): ``O(L m)`` with ``m`` landmarks.

    Args:
        embed_dim: model width ``D``.
        num_heads: heads ``H``.
        num_landmarks: ``m`` (64 in the paper).
        pinv_iters: Newton-Schulz iterations for the pseudo-inverse (6 in the paper); ``None`` = exact.
        conv_kernel: size of the paper's depthwise convolution over values added as a skip (33 in the
            paper; ``None`` disables it).
        dropout, bias: as :class:`MultiHeadAttention` (dropout acts on the output here).

    Shapes:
        ``(B, L, D) -> (B, L, D)``; key padding (a :class:`KeyPaddingMask`, lengths or bool ``(B, L)``)
        is supported, other masks raise.

    """

    def __init__(self, embed_dim: int, num_heads: int, num_landmarks: int = 64, *, pinv_iters: int | None = 6,
                 conv_kernel: int | None = None, dropout: float = 0.0, bias: bool = True) -> None:
        super().__init__(embed_dim, num_heads, dropout=dropout, bias=bias)
        self.num_landmarks, self.pinv_iters = num_landmarks, pinv_iters
        self.conv: nn.Conv2d | None = None
        if conv_kernel is not None:
            self.conv = nn.Conv2d(num_heads, num_heads, (conv_kernel, 1), padding=(conv_kernel // 2, 0),
                                  groups=num_heads, bias=False)
        self.out_dropout = nn.Dropout(dropout)

    def forward(  # type: ignore[override]
        self, x: Tensor, mask: Mask | Tensor | None = None, *, need_weights: bool = False
    ) -> tuple[Tensor, Tensor | None]:
        """``(B, L, D) -> ((B, L, D), None)`` (Nystrom attention has no weight matrix to return)."""
        if need_weights:
            raise ValueError(
                "NystromAttention never forms the L x L weights; call it with need_weights=False"
            )
        b, n, _ = x.shape
        q, k, v = self.project(x)
        valid = _valid_keys(mask, b, n, x.device)
        out = nystrom_attention(q, k, v, self.num_landmarks, valid=valid, scale=self.scale,
                                pinv_iters=self.pinv_iters)
        if self.conv is not None:
            vv = v if valid is None else v * valid.view(b, 1, n, 1).to(v.dtype)
            out = out + self.conv(vv)
        out = out.transpose(1, 2).reshape(b, n, self.num_heads * self.value_head_dim)
        return self.out_dropout(self.out_proj(out)), None
