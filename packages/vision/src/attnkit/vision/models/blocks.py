"""Small convolutional building blocks shared by the U-Net style models."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "ConvBlock", "PReLU", "SegmentationHead", "conv_concat", "dilated_conv", "segformer_init", "sequential_concat",
    "smp_decoder_init",
]

_ConvNd = nn.Conv1d | nn.Conv2d | nn.Conv3d


def conv_concat(conv: _ConvNd, parts: Sequence[Tensor]) -> Tensor:
    """``conv(torch.cat(parts, dim=1))`` without building the concatenation.

    A convolution is linear in its input channels, so it equals the sum of each part convolved with its slice
    of the weight (bias added once): the same parameters and function, up to float rounding. It is faster
    where a decoder concatenates an upsampled map with a skip: on a 1-thread AVX-512 CPU in channels-last,
    the x2 bilinear upsampling, concatenation and ``3x3`` convolution of TransDAE's full-resolution stage
    (batch 4, 32 + 16 channels at 256x256) take 206 ms forward + backward instead of 328 ms, mostly because
    the concatenation's backward hands the upsampling strided gradient slices, which take its slow path.
    Falls back to the concatenation for grouped convolutions and non-zero padding modes.
    """
    if len(parts) == 1:
        return conv(parts[0])
    if conv.groups != 1 or conv.padding_mode != "zeros":
        return conv(torch.cat(list(parts), dim=1))
    total = sum(t.shape[1] for t in parts)
    if total != conv.in_channels:
        raise ValueError(f"the parts have {total} channels together, the convolution takes {conv.in_channels}")
    out: Tensor | None = None
    start = 0
    for t in parts:
        c = t.shape[1]
        y = conv._conv_forward(t, conv.weight[:, start:start + c], None)
        out = y if out is None else out + y
        start += c
    assert out is not None
    if conv.bias is not None:
        out = out + conv.bias.view(1, -1, *([1] * (out.dim() - 2)))
    return out


def dilated_conv(conv: nn.modules.conv._ConvNd, x: Tensor) -> Tensor:
    """``conv(x)`` for a dilated, stride-1, "same"-padded convolution, run undilated on ``d^n`` sub-grids.

    A convolution with dilation ``d`` only ever combines pixels ``d`` apart, so it equals an undilated
    convolution (same weight) applied separately to each of the ``d^n`` interleaved sub-grids
    ``x[..., i::d, j::d]`` (space-to-batch): the map is zero-padded to a multiple of ``d``, its sub-grids stacked
    along the batch, convolved, and interleaved back. Same parameters and function, up to float rounding. On a
    1-thread AVX-512 CPU, PyTorch's dilated depthwise kernels are several times slower than its undilated ones
    (TransDAE's large-kernel attention, ``7x7`` depthwise with dilation 3 on a channels-last ``4 x 64 x 64 x 64``
    map: 86.7 ms forward + backward, 32.5 ms this way). Keeps the input's memory layout. Falls back to
    ``conv(x)`` where the rearrangement does not apply (stride, unequal dilations, padding other than
    ``dilation * (kernel // 2)`` with zeros, even kernels, no dilation).
    """
    n = x.dim() - 2
    d = conv.dilation[0]
    k = conv.kernel_size
    if (d == 1 or any(v != d for v in conv.dilation) or any(s != 1 for s in conv.stride)
            or conv.padding_mode != "zeros" or isinstance(conv.padding, str)
            or any(kk % 2 == 0 for kk in k) or any(p != d * (kk // 2) for p, kk in zip(conv.padding, k, strict=True))):
        return conv(x)
    b, c, *sizes = x.shape
    cl_format = {4: torch.channels_last, 5: torch.channels_last_3d}.get(x.dim())
    keep = cl_format if cl_format is not None and x.is_contiguous(memory_format=cl_format) else torch.contiguous_format
    sub = [-(-s // d) for s in sizes]
    pad: list[int] = []
    for s, m in zip(reversed(sizes), reversed(sub), strict=True):
        pad += [0, m * d - s]
    # on the (B, *S, C) view: the padding copy, then (B, s1, d, s2, d, .., C) -> (B, d, d, .., s1, s2, .., C)
    t = F.pad(x.movedim(1, -1), [0, 0, *pad]).reshape(b, *[v for m in sub for v in (m, d)], c)
    t = t.permute(0, *[2 + 2 * i for i in range(n)], *[1 + 2 * i for i in range(n)], 2 * n + 1)
    grids = t.reshape(b * d**n, *sub, c).movedim(-1, 1)
    y = _CONV_FN[n](grids, conv.weight, conv.bias, 1, [kk // 2 for kk in k], 1, conv.groups)
    # and back: (B, d, d, .., s1, s2, .., O) -> (B, s1, d, s2, d, .., O), cropped to the input's sizes
    t = y.movedim(1, -1).reshape(b, *[d] * n, *sub, y.shape[1])
    t = t.permute(0, *[v for i in range(n) for v in (n + 1 + i, 1 + i)], 2 * n + 1)
    t = t.reshape(b, *[m * d for m in sub], y.shape[1])
    return t[(slice(None), *[slice(0, s) for s in sizes])].movedim(-1, 1).contiguous(memory_format=keep)


_CONV_FN = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


def sequential_concat(block: nn.Module, parts: Sequence[Tensor]) -> Tensor:
    """``block(torch.cat(parts, dim=1))`` via :func:`conv_concat`, for a block that starts with a convolution.

    A block that starts with a block (MSGANet's fine decoder: conv-BN-PReLU, then a head) is followed into; a module
    that is not an ``nn.Sequential`` counts as a block of one.
    """
    first, *rest = list(block) if isinstance(block, nn.Sequential) else [block]
    if isinstance(first, nn.Sequential):
        y = sequential_concat(first, parts)
    elif isinstance(first, _ConvNd):
        y = conv_concat(first, parts)
    else:
        return block(torch.cat(list(parts), dim=1))
    for m in rest:
        y = m(y)
    return y


class _PReLUFunction(torch.autograd.Function):
    """``prelu(x, w)`` whose backward has no data-dependent branch (see :class:`PReLU`)."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, x: Tensor, weight: Tensor) -> Tensor:
        ctx.save_for_backward(x, weight)
        return F.prelu(x, weight)

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: Tensor) -> tuple[Tensor | None, Tensor | None]:
        x, weight = ctx.saved_tensors  # type: ignore[attr-defined]
        w = weight.view(1, -1, *([1] * (x.dim() - 2))) if x.dim() >= 2 else weight
        # the incoming gradient where x <= 0 (where the slope applies), by ReLU's vectorised backward
        neg = grad - torch.ops.aten.threshold_backward(grad, x, 0)
        grad_x = torch.addcmul(grad, neg, w - 1) if ctx.needs_input_grad[0] else None  # type: ignore[attr-defined]
        grad_w = None
        if ctx.needs_input_grad[1]:  # type: ignore[attr-defined]
            prod = neg * x
            if weight.numel() == 1:
                grad_w = prod.sum().reshape(weight.shape)
            else:
                dims = [d for d in range(prod.dim()) if d != 1]
                grad_w = prod.sum(dim=dims).reshape(weight.shape)
        return grad_x, grad_w


class PReLU(nn.PReLU):
    """:class:`torch.nn.PReLU` (same parameter, initialisation and function) with a faster backward on CPUs.

    PyTorch's PReLU backward picks ``grad`` or ``weight * grad`` per element with a branch: on random-sign
    activations the branch is mispredicted half the time, and on a 1-thread AVX-512 CPU it takes 6 ms for a
    ``4 x 64 x 64 x 64`` map, 15 times its forward (MSGANet runs 42 of them per training step). Here the
    gradient is built from ReLU's vectorised backward and fused multiply-adds: 3.6 ms, the same values.
    """

    def forward(self, x: Tensor) -> Tensor:
        """Elementwise ``max(0, x) + weight * min(0, x)``."""
        out = _PReLUFunction.apply(x, self.weight)
        assert isinstance(out, Tensor)
        return out


def smp_decoder_init(decoder: nn.Module, head: nn.Module) -> None:
    """Initialise ``decoder`` and ``head`` in place as segmentation-models-pytorch initialises its U-Net.

    The rules of smp's ``initialize_decoder`` / ``initialize_head``, which only know 2D layers, extended to
    3D convolutions and batch norms (``TransDAE(spatial_dims=3)``).

    Decoder convolutions (2D or 3D): Kaiming-uniform with the ReLU gain (``fan_in``), zero biases; batch
    norms at weight 1, bias 0. Head convolutions: Xavier-uniform, zero biases. PyTorch's own default for a
    convolution (Kaiming-uniform with ``a = sqrt(5)``) draws weights 2.45x smaller: behind batch norm the
    forward pass is the same, but Adam's per-element steps are then 2.45x larger relative to the weights.
    """
    for m in decoder.modules():
        if isinstance(m, nn.modules.conv._ConvNd):
            nn.init.kaiming_uniform_(m.weight, mode="fan_in", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    for m in head.modules():
        if isinstance(m, nn.modules.conv._ConvNd):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def segformer_init(module: nn.Module) -> None:
    """Initialise a transformer encoder in place as SegFormer / MiT does (Xie et al. 2021).

    Linear layers: truncated normal with std 0.02 (cut at +-2, absolute, as timm's ``trunc_normal_`` that
    SegFormer calls: in effect ``N(0, 0.02)``), zero biases; layer norms at weight 1, bias 0; convolutions
    (patch embeddings, depth-wise convolutions of the Mix-FFNs): normal with std ``sqrt(2 / fan_out)``,
    ``fan_out = kernel volume * out_channels / groups``, zero biases. Other parameters are left as they are.
    """
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.modules.conv._ConvNd):
            fan_out = m.weight[0, 0].numel() * m.out_channels // m.groups
            nn.init.normal_(m.weight, 0.0, (2.0 / fan_out) ** 0.5)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class ConvBlock(nn.Sequential):
    """Two ``3x3 conv -> BatchNorm -> ReLU`` layers: ``(B, Cin, H, W) -> (B, Cout, H, W)``."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class SegmentationHead(nn.Module):
    """``3x3`` conv to class logits, resized to a target size: ``(B, C, h, w) -> (B, K, H, W)``."""

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, num_classes, 3, padding=1)

    def forward(self, x: Tensor, size: tuple[int, int] | torch.Size) -> Tensor:
        """Logits ``(B, K, *size)``."""
        y = self.conv(x)
        if tuple(y.shape[-2:]) != tuple(size):
            y = F.interpolate(y, size=tuple(size), mode="bilinear", align_corners=False)
        return y
