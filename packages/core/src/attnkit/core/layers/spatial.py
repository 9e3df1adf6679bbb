"""Attention blocks for feature maps ``(B, C, H, W)`` -- and ``(B, C, D, H, W)`` volumes.

Every block flattens the spatial dimensions to tokens, so all of them accept any number of spatial
dimensions (2D images, 3D volumes); convolutions 1x1 are written as per-token linear maps, whose
``(B, N, C)`` output viewed as ``(B, C, *S)`` is a channels-last map, and batch norms normalise that map
in place of ``Conv2d(1x1)`` / ``BatchNorm2d`` (or their 3D versions): the same function.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attnkit.core.attention import Backend, attention
from attnkit.core.layers.mha import MultiHeadAttention
from attnkit.core.layers.positional import sinusoidal_table

__all__ = [
    "ChannelAttention2d",
    "CrossAttentionGate2d",
    "PositionAttention2d",
    "PositionalEncoding2d",
    "SpatialSelfAttention2d",
    "channel_attention",
    "sinusoidal_grid",
]


def sinusoidal_grid(channels: int, sizes: tuple[int, ...], *, base: float = 10000.0,
                    device: torch.device | str | None = None, dtype: torch.dtype = torch.float32) -> Tensor:
    """Return the fixed N-d sinusoidal encoding ``(C, *sizes)``.

    The channels are split evenly between the spatial axes (``2 * (C // (2 n))`` each, axis order as in
    ``sizes``); each block is the 1-D sinusoidal table of that axis broadcast over the others; left-over
    channels are zero. For 2D this is the encoding of U-Transformer / DETR-style sine embeddings.
    """
    nd = len(sizes)
    per = 2 * (channels // (2 * nd))
    if per == 0:
        raise ValueError(f"{channels} channels are too few for a {nd}-D positional encoding; "
                         f"need >= {2 * nd}")
    parts = []
    for axis, n in enumerate(sizes):
        t = sinusoidal_table(n, per, base=base, device=device, dtype=dtype).t()  # (per, n)
        shape = [per] + [1] * nd
        shape[1 + axis] = n
        parts.append(t.reshape(shape).expand(per, *sizes))
    grid = torch.cat(parts, dim=0)
    if grid.shape[0] < channels:
        grid = torch.cat([grid, grid.new_zeros(channels - grid.shape[0], *sizes)], dim=0)
    return grid


class PositionalEncoding2d(nn.Module):
    """Adds a fixed sinusoidal encoding of the spatial position to ``(B, C, H, W)`` (or ``(B, C, D, H, W)``).

    Args:
        channels: ``C``.
        base: wavelength base.

    """

    def __init__(self, channels: int, *, base: float = 10000.0) -> None:
        super().__init__()
        self.channels, self.base = channels, base
        self._cache: dict[tuple[object, ...], Tensor] = {}

    def grid(self, sizes: tuple[int, ...], device: torch.device, dtype: torch.dtype) -> Tensor:
        """Return the encoding ``(C, *sizes)`` (cached per size, device and dtype)."""
        key = (sizes, str(device), dtype)
        g = self._cache.get(key)
        if g is None:
            g = sinusoidal_grid(self.channels, sizes, base=self.base, device=device, dtype=dtype)
            self._cache[key] = g
        return g

    def forward(self, x: Tensor) -> Tensor:
        """``(B, C, *S) -> (B, C, *S)``."""
        if x.dim() < 3 or x.shape[1] != self.channels:
            raise ValueError(f"PositionalEncoding2d({self.channels}) expects (B, {self.channels}, H, W), got "
                             f"{tuple(x.shape)}")
        return x + self.grid(tuple(x.shape[2:]), x.device, x.dtype)


def _tokens(x: Tensor) -> Tensor:
    """``(B, C, *S) -> (B, N, C)``."""
    return x.flatten(2).transpose(1, 2)


def _untokens(t: Tensor, like: Tensor) -> Tensor:
    """``(B, N, C) -> (B, C, *S)`` with the spatial shape of ``like``."""
    return t.transpose(1, 2).reshape(t.shape[0], t.shape[2], *like.shape[2:])


class _MapBatchNorm(nn.BatchNorm1d):
    """:class:`torch.nn.BatchNorm1d` that also takes maps ``(B, C, *S)`` of any number of spatial dims.

    Same parameters, buffers and state-dict keys; each channel is normalised over batch and positions, as
    ``BatchNorm1d`` over ``(B, C, N)`` does.

    Given the channels-last view of per-token linear outputs, PyTorch runs its channels-last batch-norm
    kernels; the same data as ``(B, C, N)`` with channel stride 1 takes a generic path (U-Transformer's gate on
    a ``4 x 64 x 128 x 128`` skip, 1 thread: 21 ms forward + 18 ms backward that way, see
    :class:`CrossAttentionGate2d`).
    """

    def _check_input_dim(self, input: Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected a (B, C, *S) input, got shape {tuple(input.shape)}")


def _avg_pool(x: Tensor, stride: int) -> Tensor:
    """Average-pool ``(B, C, *S)`` by ``stride`` along every spatial axis (``ceil_mode``: any size works)."""
    return (F.avg_pool1d, F.avg_pool2d, F.avg_pool3d)[x.dim() - 3](x, stride, ceil_mode=True)


def _check_kv_stride(kv_stride: int) -> None:
    if kv_stride < 1:
        raise ValueError(f"kv_stride must be >= 1 (1 = keys and values at full resolution), got {kv_stride}")


class SpatialSelfAttention2d(nn.Module):
    """Multi-head self-attention over all positions of a feature map (U-Transformer's MHSA).

    ``y = x + MHA(x + PE)`` on the ``H * W`` tokens (without the residual when ``residual=False``).
    With ``zero_init=True`` the attention branch is scaled by a learnable scalar ``gamma`` that starts at 0,
    ``y = x + gamma * MHA(x + PE)``, so the residual block is exactly the identity at initialisation and
    learns its attention from there (ReZero, Bachlechner et al. 2021; DANet's ``gamma = 0``). With
    ``branch_norm=True`` as well, ``y = x + gamma * LN(MHA(x + PE))``: the branch is layer-normalised over the
    channels at every position (no affine parameters), so its size is ``|gamma| * sqrt(C)`` per position,
    set by the scalar alone.

    Why a scalar and not a zeroed output projection (the method until the twenty-seventh session): under
    Adam every element of a zeroed ``C x C`` projection moves by about the learning rate per step whatever
    its gradient's size, and the elements' steps add up coherently over the ``C`` inputs. In UTransformer on
    PH2 (512 channels, AdamW 1e-3) the branch's output was 0.16x the input's norm after one step, 1.1x
    after 10 and 4.0x after 50: the "identity" start was gone within ten steps. A single scalar moves by
    about the learning rate per step in total, so the branch grows over hundreds of steps instead.

    Why ``branch_norm``: the scalar only slows the start. The projections still grow under Adam and their
    updates line up with the input's dominant directions, so the branch's size is ``gamma`` times a gain that
    keeps growing: in UTransformer on PH2 (forty-fifth session, resnet34, AdamW 1e-3, gates off) the branch was
    1.9-2.6x the bottleneck's norm after 300 steps with ``|gamma|`` only 0.020-0.023, and the model was below the
    same network with the attention held at ``gamma = 0`` at every seed. Normalised, the branch can only grow as
    fast as ``gamma`` does, about the learning rate per step.

    Checkpoints load across ``zero_init``: a state dict without ``gamma`` (the default init, or a
    checkpoint from before the scalar) loads into a ``zero_init`` block with ``gamma = 1``, and one with
    ``gamma`` loads into a block without it with ``gamma`` folded into the output projection; either way
    the loaded block computes what the saved one did.

    Args:
        channels: ``C`` (the token width).
        num_heads: heads.
        positional: add :class:`PositionalEncoding2d` before attending.
        residual: add the input to the output.
        dropout: attention dropout.
        kv_stride: keys and values come from ``x + PE`` average-pooled by this factor (the spatial
            reduction of PVT / SegFormer): every position still queries, at ``kv_stride**2`` times less
            cost. ``1`` (the default) attends to all positions.
        backend: attention backend.
        zero_init: scale the attention branch by a learnable ``gamma`` starting at 0 (identity block at init;
            needs ``residual=True``).
        branch_norm: layer-normalise the attention branch at every position before ``gamma`` scales it (needs
            ``zero_init=True``). No parameters are added, so state dicts look the same with and without it, but
            the function differs: rebuild the block with the setting it was trained with (``model_spec`` /
            ``from_checkpoint`` record it).

    Shapes:
        ``(B, C, H, W) -> (B, C, H, W)``; 3D ``(B, C, D, H, W)`` works the same.

    """

    def __init__(self, channels: int, num_heads: int = 1, *, positional: bool = True, residual: bool = True,
                 dropout: float = 0.0, kv_stride: int = 1, backend: Backend = "auto",
                 zero_init: bool = False, branch_norm: bool = False) -> None:
        super().__init__()
        _check_kv_stride(kv_stride)
        if zero_init and not residual:
            raise ValueError("zero_init=True needs residual=True (without the residual the block would output "
                             "zeros at init); pass residual=True or zero_init=False")
        if branch_norm and not zero_init:
            raise ValueError("branch_norm=True needs zero_init=True (the learnable scalar is what sizes the "
                             "normalised branch); pass zero_init=True or branch_norm=False")
        self.branch_norm = branch_norm
        self.pos = PositionalEncoding2d(channels) if positional else None
        self.attn = MultiHeadAttention(channels, num_heads, dropout=dropout, backend=backend)
        self.residual, self.kv_stride = residual, kv_stride
        self.gamma = nn.Parameter(torch.zeros(1)) if zero_init else None

    def _load_from_state_dict(self, state_dict: dict[str, Tensor], prefix: str, *args: object) -> None:
        """Loads state dicts with or without ``gamma`` into blocks with or without it, same function.

        A ``branch_norm`` block refuses one without ``gamma``: its branch was not normalised.
        """
        key = prefix + "gamma"
        if self.gamma is not None and key not in state_dict and prefix + "attn.out_proj.weight" in state_dict:
            if self.branch_norm:
                raise ValueError(f"{prefix or 'the block'}: the state dict has no 'gamma', so it was saved by a "
                                 "SpatialSelfAttention2d without zero_init, whose branch is not normalised; load "
                                 "it into a block built with branch_norm=False")
            state_dict[key] = torch.ones_like(self.gamma)  # saved without the scalar: the branch was unscaled
        elif self.gamma is None and key in state_dict:
            g = state_dict.pop(key)
            for name in ("weight", "bias"):
                k = f"{prefix}attn.out_proj.{name}"
                if k in state_dict:
                    state_dict[k] = state_dict[k] * g.to(state_dict[k].dtype)
        super()._load_from_state_dict(state_dict, prefix, *args)

    def _attend_reduced(self, t: Tensor, src: Tensor, need_weights: bool) -> tuple[Tensor, Tensor | None]:
        """Queries from tokens ``t (B, N, C)``, keys / values from ``src (B, M, C)``, the layer's own weights."""
        a = self.attn
        assert a.qkv_proj is not None
        qk = a.num_heads * a.head_dim
        w, b = a.qkv_proj.weight, a.qkv_proj.bias
        q = F.linear(t, w[:qk], None if b is None else b[:qk])
        k, v = F.linear(src, w[qk:], None if b is None else b[qk:]).split([qk, w.shape[0] - 2 * qk], dim=-1)
        q, k, v = a._split(q, a.head_dim), a._split(k, a.head_dim), a._split(v, a.value_head_dim)
        p = a.dropout if self.training else 0.0
        weights = None
        if need_weights:
            out, weights = attention(q, k, v, dropout=p, scale=a.scale, backend="math", return_weights=True)
        else:
            out = attention(q, k, v, dropout=p, scale=a.scale, backend=a.backend)
        assert isinstance(out, Tensor)
        out = out.transpose(1, 2).reshape(t.shape[0], t.shape[1], a.num_heads * a.value_head_dim)
        return a.out_proj(out), weights

    def forward_with_weights(self, x: Tensor, need_weights: bool = True) -> tuple[Tensor, Tensor | None]:
        """Like :meth:`forward`, also returning weights ``(B, heads, N, M)``, ``N = H * W``, ``M`` the keys."""
        h = self.pos(x) if self.pos is not None else x
        if self.kv_stride > 1:
            out, w = self._attend_reduced(_tokens(h), _tokens(_avg_pool(h, self.kv_stride)), need_weights)
        else:
            out, w = self.attn(_tokens(h), need_weights=need_weights)
        if self.branch_norm:
            out = F.layer_norm(out, out.shape[-1:])
        y = _untokens(out, x)
        if self.gamma is not None:
            y = self.gamma * y
        return (x + y if self.residual else y), w

    def forward(self, x: Tensor) -> Tensor:
        """``(B, C, *S) -> (B, C, *S)``."""
        return self.forward_with_weights(x, need_weights=False)[0]


class ChannelAttention2d(nn.Module):
    """DANet's channel attention module (Fu et al. 2019): channels attend to channels.

    ``E = X X^T`` over channels ``(B, C, C)``, ``A = softmax(max_row(E) - E)``, ``y = gamma * A X + x`` with a
    learned ``gamma`` starting at 0. Since softmax is invariant to a per-row shift,
    ``softmax(max(E) - E) = softmax(-E)``, which is ``attention(X, X, X, scale=-1)`` with the channels as
    tokens and the positions as their features: the block runs :func:`channel_attention`, one
    :func:`attnkit.core.attention` call like every other attention in attnkit.

    Args:
        backend: attention backend; ``"auto"`` runs ``"matmul"`` on CPU maps of 256+ positions (no fused
            kernel's tiling of a 4,096-wide "head", no subnormal weights from the unscaled energies, the
            input's memory layout kept).

    Shapes:
        ``(B, C, H, W) -> (B, C, H, W)``; any number of spatial dims.

    """

    def __init__(self, *, backend: Backend = "auto") -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1))
        self.backend: Backend = backend

    def forward(self, x: Tensor) -> Tensor:
        """``(B, C, *S) -> (B, C, *S)``."""
        return self.gamma * channel_attention(x, backend=self.backend) + x


def channel_attention(x: Tensor, *, backend: Backend = "auto") -> Tensor:
    """DANet's channel attention ``softmax(max_row(E) - E) X`` with ``E = X X^T``.

    ``X`` is ``x`` with its spatial dimensions flattened, ``(B, C, N)``: one
    ``attention(X, X, X, scale=-1)`` call over ``(B, 1, C, N)`` views (no copies for contiguous or
    channels-last maps). With ``"auto"`` on the CPU, maps of at least 256 positions and at most 512
    channels run the ``"matmul"`` backend: two products in the input's layout, softmax weights kept out of
    the subnormal range (the unscaled energies of a ``64 x 64`` map are in the thousands, so most weights
    underflow, and on x86 CPUs every subnormal costs a microcode assist: 105 ms -> 17 ms forward + backward
    for a ``4 x 64 x 64 x 64`` map against the fused kernel).

    Half-precision inputs (float16, bfloat16, or any input under autocast) are computed in float32 and the
    result cast back: energies in the thousands keep only ~4 units of precision in float16 (and overflow it on
    large maps) and ~32 in bfloat16, which reorders the softmax.

    Shapes:
        ``(B, C, *S) -> (B, C, *S)``.

    """
    out_dtype = x.dtype
    if torch.is_autocast_enabled(x.device.type):
        out_dtype = torch.get_autocast_dtype(x.device.type)
    with torch.autocast(device_type=x.device.type, enabled=False):
        f = x.flatten(2)  # (B, C, N); a view for contiguous and channels-last maps
        if f.dtype in (torch.float16, torch.bfloat16):
            f = f.float()
        t = f.unsqueeze(1)  # (B, 1, C, N): channels are the tokens
        out = attention(t, t, t, scale=-1.0, backend=backend)
        assert isinstance(out, Tensor)
    return out.squeeze(1).reshape(x.shape).to(out_dtype)


class PositionAttention2d(nn.Module):
    """DANet's position attention module (Fu et al. 2019), as the multi-scale guided attention net uses it.

    Queries and keys are 1x1 projections of ``x`` to ``C // reduction`` channels, values a 1x1 projection
    to ``C``; every position attends to all positions with unscaled dot products
    (``softmax(q k^T)``), and ``y = gamma * (A v) + x`` with a learned ``gamma`` starting at 0 (so the block
    is the identity at initialisation). Unlike :class:`SpatialSelfAttention2d` there is no output
    projection, no positional encoding and a single head. (On the CPU, :func:`~attnkit.core.attention`
    zero-pads the narrow queries and keys to the value width so that PyTorch's fused kernel runs: same
    result, the speed of full-width attention rather than of the math path.)

    Args:
        channels: ``C``.
        reduction: query/key width is ``max(1, C // reduction)`` (8 in DANet).
        kv_stride: keys and values are projected from ``x`` average-pooled by this factor (PVT-style spatial
            reduction; ``kv_stride**2`` times cheaper); ``1`` (the default, DANet) attends to all positions.
        backend: attention backend.

    Shapes:
        ``(B, C, H, W) -> (B, C, H, W)``; any number of spatial dims.

    """

    def __init__(self, channels: int, reduction: int = 8, *, kv_stride: int = 1, backend: Backend = "auto") -> None:
        super().__init__()
        _check_kv_stride(kv_stride)
        self.kv_stride = kv_stride
        if channels < 1 or reduction < 1:
            raise ValueError(f"PositionAttention2d needs channels >= 1 and reduction >= 1, got {channels}, "
                             f"{reduction}")
        self.channels, self.qk_dim = channels, max(1, channels // reduction)
        self.proj = nn.Linear(channels, 2 * self.qk_dim + channels)  # [query | key | value], per position
        self.gamma = nn.Parameter(torch.zeros(1))
        self.backend: Backend = backend

    def forward(self, x: Tensor) -> Tensor:
        """``(B, C, *S) -> (B, C, *S)``."""
        if x.dim() < 3 or x.shape[1] != self.channels:
            raise ValueError(f"PositionAttention2d({self.channels}) expects (B, {self.channels}, H, W), got "
                             f"{tuple(x.shape)}")
        if self.kv_stride > 1:
            w, b = self.proj.weight, self.proj.bias
            q = F.linear(_tokens(x), w[: self.qk_dim], b[: self.qk_dim]).unsqueeze(1)
            kv = F.linear(_tokens(_avg_pool(x, self.kv_stride)), w[self.qk_dim:], b[self.qk_dim:]).unsqueeze(1)
            k, v = kv.split([self.qk_dim, self.channels], dim=-1)
        else:
            q, k, v = self.proj(_tokens(x)).unsqueeze(1).split([self.qk_dim, self.qk_dim, self.channels], dim=-1)
        out = attention(q, k, v, scale=1.0, backend=self.backend)
        assert isinstance(out, Tensor)
        return self.gamma * _untokens(out.squeeze(1), x) + x


class CrossAttentionGate2d(nn.Module):
    """U-Transformer's multi-head cross-attention gate on a U-Net skip connection (Petit et al. 2021).

    The decoder's coarse map ``Y`` (rich semantics) decides which parts of the encoder's skip map ``S``
    (fine detail) pass: queries and keys come from ``Y``, values from ``S`` brought to ``Y``'s resolution
    (1x1 conv + BN + ReLU, then max pooling); both get a 2D positional encoding. The attended values go
    through 1x1 conv + BN + sigmoid, are upsampled to ``S``'s size and multiply ``S``. The block returns
    the filtered skip, which the decoder concatenates with its upsampled ``Y``.

    Args:
        skip_channels: ``Cs`` of ``S``.
        gate_channels: ``Cy`` of ``Y``.
        num_heads: heads (``Cs`` must divide by it).
        positional: add the positional encoding to both inputs.
        upsample: ``"nearest"`` or ``"linear"`` (bilinear / trilinear by the number of spatial dims).
        pool: attend at ``Y``'s resolution divided by this factor: ``Y`` (after its 1x1 conv, BN and ReLU)
            is max-pooled by ``pool`` (``ceil_mode``) and ``S`` pooled to the same size, so the attention
            costs ``pool**4`` times less; the gate map is upsampled to ``S``'s size as always. ``1`` (the
            default) attends at ``Y``'s own resolution, as in the paper.
        backend: attention backend.
        open_init: ``None`` (the default) initialises every layer the usual way (PyTorch's defaults): at
            init the gate map is ``sigmoid`` of a batch-normed random projection, about 0.5 with
            per-position noise. A float ``b`` starts the gate *open and uniform* instead: the output
            norm's weight is zeroed and its bias set to ``b``, so the map is exactly ``sigmoid(b)``
            everywhere (0.95 for ``b = 3``) and the block passes the skip, scaled, like a U-Net; the gate
            learns to close from there. Same parameters and function, only their starting values differ.

    Shapes:
        ``S (B, Cs, H, W)``, ``Y (B, Cy, h, w)`` with ``h <= H, w <= W`` -> ``(B, Cs, H, W)``; 3D volumes
        ``(B, C, D, H, W)`` work the same.

    """

    def __init__(self, skip_channels: int, gate_channels: int, num_heads: int = 1, *, positional: bool = True,
                 upsample: str = "linear", pool: int = 1, backend: Backend = "auto",
                 open_init: float | None = None) -> None:
        super().__init__()
        if pool < 1:
            raise ValueError(f"pool must be >= 1 (1 = attend at the gate map's resolution), got {pool}")
        if skip_channels % num_heads:
            raise ValueError(f"skip_channels={skip_channels} must be divisible by num_heads={num_heads}")
        if upsample not in ("nearest", "linear"):
            raise ValueError(f"upsample must be 'nearest' or 'linear', got {upsample!r}")
        c = skip_channels
        self.num_heads, self.upsample, self.backend, self.pool = num_heads, upsample, backend, pool
        self.skip_proj = nn.Linear(skip_channels, c)  # 1x1 conv on S
        self.skip_norm = _MapBatchNorm(c)
        self.gate_proj = nn.Linear(gate_channels, c)  # 1x1 conv on Y
        self.gate_norm = _MapBatchNorm(c)
        self.pos_skip = PositionalEncoding2d(c) if positional else None
        self.pos_gate = PositionalEncoding2d(c) if positional else None
        self.q_proj, self.k_proj, self.v_proj = nn.Linear(c, c), nn.Linear(c, c), nn.Linear(c, c)
        self.out_proj = nn.Linear(c, c)  # 1x1 conv before the sigmoid
        self.out_norm = _MapBatchNorm(c)
        if open_init is not None:
            with torch.no_grad():
                self.out_norm.weight.zero_()
                self.out_norm.bias.fill_(float(open_init))

    @staticmethod
    def _conv_bn(x: Tensor, proj: nn.Linear, norm: nn.BatchNorm1d) -> Tensor:
        """1x1 conv + BN on ``(B, C, *S)``, as tokens; returns ``(B, C', *S)``, channels-last."""
        return norm(_untokens(proj(_tokens(x)), x))

    def forward_with_weights(self, skip: Tensor, gate: Tensor, need_weights: bool = True,
                             ) -> tuple[Tensor, Tensor | None]:
        """Like :meth:`forward`, also returning weights ``(B, heads, n, n)``, ``n = h * w``."""
        if skip.dim() != gate.dim() or skip.dim() < 3:
            raise ValueError(
                f"skip {tuple(skip.shape)} and gate {tuple(gate.shape)} need the same (B, C, *S) rank"
            )
        sizes = tuple(gate.shape[2:])
        if any(g > s for g, s in zip(sizes, skip.shape[2:], strict=True)):
            raise ValueError(
                f"gate {tuple(gate.shape)} must not be larger than skip {tuple(skip.shape)} spatially"
            )
        nd = skip.dim() - 2
        # ReLU is monotone, so it commutes with max pooling: applied after the pooling it gives the same values
        # and gradients on a map pool**2 (the skip: (H / h)**2) times smaller
        y = self._conv_bn(gate, self.gate_proj, self.gate_norm)
        if self.pool > 1:
            y = (F.max_pool1d, F.max_pool2d, F.max_pool3d)[nd - 1](y, self.pool, ceil_mode=True)
            sizes = tuple(y.shape[2:])
        y = F.relu(y)
        pool = (F.adaptive_max_pool1d, F.adaptive_max_pool2d, F.adaptive_max_pool3d)[nd - 1]
        s = F.relu(pool(self._conv_bn(skip, self.skip_proj, self.skip_norm), sizes))
        if self.pos_skip is not None and self.pos_gate is not None:
            s, y = self.pos_skip(s), self.pos_gate(y)
        ty, ts = _tokens(y), _tokens(s)
        b, n, c = ty.shape
        h = self.num_heads

        def heads(t: Tensor) -> Tensor:
            return t.view(b, n, h, c // h).transpose(1, 2)

        q, k, v = heads(self.q_proj(ty)), heads(self.k_proj(ty)), heads(self.v_proj(ts))
        if need_weights:
            z, w = attention(q, k, v, backend="math", return_weights=True)
        else:
            z, w = attention(q, k, v, backend=self.backend), None
        assert isinstance(z, Tensor)
        z = z.transpose(1, 2).reshape(b, n, c)
        gate_map = torch.sigmoid(self.out_norm(_untokens(self.out_proj(z), y)))
        if skip.is_contiguous() and not gate_map.is_contiguous():
            gate_map = gate_map.contiguous()  # the skip's layout: interpolate keeps it, and so does the product
        mode = "nearest" if self.upsample == "nearest" else ("linear", "bilinear", "trilinear")[nd - 1]
        kw = {} if mode == "nearest" else {"align_corners": False}
        gate_map = F.interpolate(gate_map, size=tuple(skip.shape[2:]), mode=mode, **kw)
        return skip * gate_map, w

    def forward(self, skip: Tensor, gate: Tensor) -> Tensor:
        """Filter ``skip (B, Cs, *S)`` by ``gate (B, Cy, *s)``; returns ``(B, Cs, *S)``."""
        return self.forward_with_weights(skip, gate, need_weights=False)[0]
