"""Multi-scale self-guided attention network (Sinha & Dolz 2020) on any smp / timm encoder."""

from __future__ import annotations

from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attnkit.core import ChannelAttention2d, PositionAttention2d, SpatialSelfAttention2d
from attnkit.core.attention import Backend
from attnkit.core.models import configurable
from attnkit.vision.models.blocks import PReLU, sequential_concat, smp_decoder_init
from attnkit.vision.models.encoders import build_encoder
from attnkit.vision.models.utransformer import OPEN_GATE_LOGIT, check_input_size

__all__ = ["GuidedAttentionModule", "MSGANet", "SegmentationOutput"]

PositionAttention = Literal["mha", "danet"]


class SegmentationOutput(NamedTuple):
    """What a model with auxiliary supervision returns in training.

    Attributes:
        logits: the final prediction ``(B, K, H, W)``.
        aux_logits: extra predictions ``(B, K, H, W)`` that get the segmentation loss too
            (deep supervision).
        aux_losses: extra loss terms the model computes itself (scalars), e.g.
            ``{"guide": ..., "recon": ...}``.

    """

    logits: Tensor
    aux_logits: list[Tensor]
    aux_losses: dict[str, Tensor]


def _cbr(cin: int, cout: int, k: int = 3) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=k // 2, bias=False), nn.BatchNorm2d(cout),
                         PReLU())


def _zero_conv(cin: int, cout: int) -> nn.Conv2d:
    """A 1x1 head that starts at zero: its correction is added to a prediction the model already makes."""
    head = nn.Conv2d(cin, cout, 1)
    nn.init.zeros_(head.weight)
    assert head.bias is not None
    nn.init.zeros_(head.bias)
    return head


class _EncoderDecoder(nn.Module):
    """Small conv auto-encoder.

    ``(B, C, H, W) -> (embedding (B, 2C, H/4, W/4), reconstruction (B, C, H, W))``.
    """

    def __init__(self, c: int) -> None:
        super().__init__()
        self.enc = nn.Sequential(nn.Conv2d(c, c, 3, stride=2, padding=1), nn.BatchNorm2d(c), nn.ReLU(True),
                                 nn.Conv2d(c, 2 * c, 3, stride=2, padding=1), nn.BatchNorm2d(2 * c),
                                 nn.ReLU(True))
        self.dec = nn.Sequential(nn.ConvTranspose2d(2 * c, c, 2, stride=2), nn.BatchNorm2d(c), nn.ReLU(True),
                                 nn.ConvTranspose2d(c, c, 2, stride=2))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        e = self.enc(x)
        r = self.dec(e)
        if r.shape[-2:] != x.shape[-2:]:
            r = F.interpolate(r, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return e, r


class _GuidedStep(nn.Module):
    """One refinement step: position + channel self-attention, gated by an encoder-decoder's output."""

    def __init__(self, c: int, num_heads: int, backend: Backend, position_attention: PositionAttention,
                 kv_stride: int = 1) -> None:
        super().__init__()
        self.pam_in, self.cam_in = _cbr(c, c), _cbr(c, c)
        self.pam: nn.Module
        if position_attention == "danet":
            self.pam = PositionAttention2d(c, kv_stride=kv_stride, backend=backend)
        else:
            self.pam = SpatialSelfAttention2d(c, num_heads, positional=False, kv_stride=kv_stride, backend=backend)
        self.cam = ChannelAttention2d(backend=backend)
        self.pam_out, self.cam_out = _cbr(c, c), _cbr(c, c)
        self.encdec = _EncoderDecoder(c)

    def open_gate(self, logit: float = OPEN_GATE_LOGIT) -> None:
        """Start the step as a near-constant gate: its output is ``sigmoid(logit)`` everywhere until training moves it.

        The two attention branches' output batch norms get weight 0 and bias 0.5 (so their sum is 1 at every
        position) and the encoder-decoder's last layer weight 0 and bias ``logit``. Those weights still get
        gradients: in a module's second step from the first training step on; in its first step once the second
        step's output varies (until then the first step's output does not reach the prediction).
        """
        for branch in (self.pam_out, self.cam_out):
            bn = branch[1]
            assert isinstance(bn, nn.BatchNorm2d)
            nn.init.zeros_(bn.weight)
            nn.init.constant_(bn.bias, 0.5)
        last = self.encdec.dec[-1]
        assert isinstance(last, nn.ConvTranspose2d) and last.bias is not None
        nn.init.zeros_(last.weight)
        nn.init.constant_(last.bias, logit)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        sa = self.pam_out(self.pam(self.pam_in(x))) + self.cam_out(self.cam(self.cam_in(x)))
        emb, rec = self.encdec(sa)
        return sa * torch.sigmoid(rec), emb, rec


class GuidedAttentionModule(nn.Module):
    """The guided attention module of Sinha & Dolz (2020), two refinement steps.

    Each step applies position attention (self-attention over all ``H * W`` positions) and channel
    attention (DANet) to its input and sums them; a small encoder-decoder compresses that sum and its
    reconstruction, through a sigmoid, gates it. The guiding loss pulls the encoder embeddings of the two
    steps together; the reconstruction loss asks each encoder-decoder to reconstruct its input.

    Args:
        in_channels: channels of the input (the scale's features concatenated with the multi-scale map).
        channels: working width ``C``.
        num_heads: heads of the position attention (``"mha"`` only).
        position_attention: ``"mha"`` (multi-head self-attention with full-width queries and keys and an
            output projection, :class:`~attnkit.core.SpatialSelfAttention2d`) or ``"danet"`` (the paper's
            DANet module: queries and keys of width ``C / 8``, a zero-initialised residual scale,
            :class:`~attnkit.core.PositionAttention2d`).
        kv_stride: keys and values of the position attention from the map average-pooled by this factor
            (``1``, the default and the paper, attends to all positions).
        backend: attention backend.

    Shapes:
        ``(B, in_channels, H, W) -> (B, C, H, W)``, plus the scalar guiding and reconstruction losses.

    """

    def __init__(self, in_channels: int, channels: int = 64, num_heads: int = 1, *,
                 position_attention: PositionAttention = "mha", kv_stride: int = 1,
                 backend: Backend = "auto") -> None:
        super().__init__()
        if position_attention not in ("mha", "danet"):
            raise ValueError(f"position_attention must be 'mha' or 'danet', got {position_attention!r}")
        self.reduce = _cbr(in_channels, channels)
        self.step1 = _GuidedStep(channels, num_heads, backend, position_attention, kv_stride)
        self.step2 = _GuidedStep(channels, num_heads, backend, position_attention, kv_stride)

    def forward(self, *parts: Tensor, losses: bool = True) -> tuple[Tensor, Tensor, Tensor]:
        """``(attended (B, C, H, W), guiding loss, reconstruction loss)`` for the channel concatenation of ``parts``.

        With ``losses=False`` the two losses are not computed (returned as zeros).
        """
        x = sequential_concat(self.reduce, parts)
        a1, e1, r1 = self.step1(x)
        h = a1 + x
        a2, e2, r2 = self.step2(h)
        if not losses:
            zero = a2.new_zeros(())
            return a2, zero, zero
        # the step outputs are attention-weighted features; the reconstructions target what each step saw
        guide = F.mse_loss(e2, e1)
        recon = F.mse_loss(r1, x.detach()) + F.mse_loss(r2, h.detach())
        return a2, guide, recon


@configurable
class MSGANet(nn.Module):
    """Multi-scale self-guided attention network (Sinha & Dolz, IEEE JBHI 2020).

    The encoder's maps at strides 4, 8, 16 and 32 are each reduced to ``channels`` and upsampled to
    stride 4 (``F_s``); their concatenation, convolved, is the multi-scale map ``F_MS``. For every scale a
    :class:`GuidedAttentionModule` attends over ``[F_s, F_MS]``; its output multiplies ``F_MS`` and a head
    predicts that scale's segmentation. The final prediction is the mean over scales. In training
    (:meth:`forward_with_aux`) each scale's attended and non-attended predictions are supervised and the
    guiding and reconstruction losses are returned.

    Args:
        encoder_name: smp encoder name.
        encoder_weights: ``None``, a local weight file or an smp weight name.
        in_channels: image channels.
        num_classes: output classes ``K``.
        channels: width of the per-scale and attention features (64 in the paper).
        num_heads: heads of the position attention (``"mha"`` only).
        position_attention: ``"mha"`` (default; what docs/benchmarks.md measured) or ``"danet"`` (the
            position attention of the paper's code: queries and keys of width ``channels / 8``, no output
            projection, a zero-initialised residual scale; same speed on the CPU). See
            :class:`GuidedAttentionModule`.
        attention_kv_stride: keys and values of every position attention come from its stride-4 map
            average-pooled by this factor (PVT-style spatial reduction): ``2`` attends from 4,096 to 1,024
            positions on 256x256 patches (4x fewer scores), ``4`` to 256 (16x). ``1`` (the default) is the
            paper: all positions attend to all positions.
        fine_decoder: add a stride-2 decoder stage (not in the paper, which predicts at stride 4 and upsamples
            the logits 4x): the mean of the per-scale attended features, upsampled 2x and concatenated with the
            encoder's stride-2 map, is convolved to ``fine_channels``; a zero-initialised 1x1 head predicts a
            correction at stride 2 that is added to the paper's prediction, so training starts from the
            paper's model. For thin structures: on DRIVE's test vessels even a perfect stride-4 probability
            map, upsampled bilinearly, scores Dice 0.78 (stride 2: 0.91; docs/vision.md).
        fine_channels: width of that stage.
        fine_stride: ``2`` (default): the fine decoder as above. ``1``: one more stage at full resolution (not in
            the paper): the stride-2 stage's features, upsampled 2x and concatenated with the input image, are
            convolved to ``fine_channels // 2`` and a second zero-initialised 1x1 head adds a correction at
            stride 1. Needs ``fine_decoder=True``. On DRIVE at 100 steps it lowered the training loss but not
            the test Dice (one seed; docs/vision.md, issue #16), so ``msga-drive`` keeps ``2``.
        backend: attention backend.
        attention_init: ``"paper"`` (default): every guided attention module's output, which multiplies ``F_MS``,
            starts as whatever PyTorch's default initialisation draws (a random map per position and channel).
            ``"open"``: every refinement step starts as a near-constant gate (``sigmoid(3) = 0.95`` at every
            position and channel, as UTransformer's ``attention_init="unet"`` gates), so at the first step each
            scale predicts from its refined ``F_MS`` and the attention's weighting grows from there. On DRIVE at
            100 steps: +1.05 Dice over ``"paper"`` on the mean, higher at each of three seeds, training loss at the
            U-Net's; with a 20-step warm-up to AdamW 2e-3 (``msga-drive``) level with the packaged U-Net at 100 and
            300 steps, 0.70 below at 100 steps a U-Net trained with the same warm-up (docs/vision.md items 47 and
            48, issue #16).
        init: starting weights of everything but the encoder. ``"pytorch"``: PyTorch's layer defaults (attnkit's init
            before issue #16 asked). ``"smp"``: the convolutions and batch norms of the scale projections, the fusion,
            the guided attention modules (not their attention projections), the refinements and the fine stage
            as smp initialises its U-Net decoder, the heads as its segmentation head
            (:func:`~attnkit.vision.models.blocks.smp_decoder_init`); the fine stage's correction head stays
            at zero. PyTorch's default draws convolution weights 2.45x smaller, which under Adam is a 2.45x
            larger step relative to each weight. On DRIVE at 100 steps ``"smp"`` lowered neither the training
            loss nor the test Dice (three seeds, -0.20 on the mean; docs/vision.md, issue #16), so the default
            stays ``"pytorch"``.

    Shapes:
        ``(B, in_channels, H, W) -> (B, K, H, W)``, ``H`` and ``W`` multiples of 32.

    """

    def __init__(
        self,
        encoder_name: str = "resnet34",
        *,
        encoder_weights: str | None = None,
        in_channels: int = 3,
        num_classes: int = 2,
        channels: int = 64,
        num_heads: int = 1,
        position_attention: PositionAttention = "mha",
        attention_kv_stride: int = 1,
        fine_decoder: bool = False,
        fine_channels: int = 32,
        fine_stride: Literal[1, 2] = 2,
        backend: Backend = "auto",
        init: Literal["pytorch", "smp"] = "pytorch",
        attention_init: Literal["paper", "open"] = "paper",
    ) -> None:
        super().__init__()
        if fine_stride not in (1, 2):
            raise ValueError(f"fine_stride must be 2 (a correction at stride 2) or 1 (and one at full resolution), "
                             f"got {fine_stride!r}")
        if fine_stride == 1 and not fine_decoder:
            raise ValueError("fine_stride=1 adds a stage after the fine decoder's: set fine_decoder=True too")
        if attention_init not in ("paper", "open"):
            raise ValueError(f"attention_init must be 'paper' (PyTorch's default init) or 'open' (every guided "
                             f"attention step starts as a gate of 0.95), got {attention_init!r}")
        if init not in ("pytorch", "smp"):
            raise ValueError(f"init must be 'pytorch' (PyTorch's layer defaults) or 'smp' (smp's U-Net decoder "
                             f"init), got {init!r}")
        self.encoder = build_encoder(encoder_name, in_channels=in_channels, depth=5, weights=encoder_weights)
        all_ch = [int(c) for c in self.encoder.out_channels]  # type: ignore[union-attr]  # strides 1, 2, ..., 32
        enc_ch = all_ch[2:]  # strides 4, 8, 16, 32
        self.stride = 32
        self.scales = nn.ModuleList(_cbr(c, channels, 1) for c in enc_ch)
        self.fuse = _cbr(channels * len(enc_ch), channels)
        self.attn = nn.ModuleList(GuidedAttentionModule(2 * channels, channels, num_heads,
                                                        position_attention=position_attention,
                                                        kv_stride=attention_kv_stride, backend=backend)
                                  for _ in enc_ch)
        self.refine = nn.ModuleList(_cbr(channels, channels) for _ in enc_ch)
        self.heads = nn.ModuleList(nn.Conv2d(channels, num_classes, 1) for _ in enc_ch)
        self.aux_heads = nn.ModuleList(nn.Conv2d(channels, num_classes, 1) for _ in enc_ch)
        self.num_classes = num_classes
        self.fine: nn.Sequential | None = None
        self.fine1: nn.Sequential | None = None
        if fine_decoder:
            self.fine = nn.Sequential(_cbr(channels + all_ch[1], fine_channels), _zero_conv(fine_channels, num_classes))
        if fine_stride == 1:
            half = max(fine_channels // 2, 1)
            self.fine1 = nn.Sequential(_cbr(fine_channels + in_channels, half), _zero_conv(half, num_classes))
        if init == "smp":
            body = [self.scales, self.fuse, self.attn, self.refine]
            body += [stage[0] for stage in (self.fine, self.fine1) if stage is not None]
            smp_decoder_init(nn.ModuleList(body), nn.ModuleList([self.heads, self.aux_heads]))
        if attention_init == "open":
            for module in self.attn:
                assert isinstance(module, GuidedAttentionModule)
                module.step1.open_gate()
                module.step2.open_gate()

    def forward_with_aux(self, x: Tensor) -> SegmentationOutput:
        """Return the final logits, the deep-supervision logits and the guiding / reconstruction losses."""
        return self._run(x, aux=True)

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``(B, K, H, W)``: the mean of the per-scale attended predictions.

        Deep-supervision heads and auxiliary losses are not computed here (see :meth:`forward_with_aux`).
        """
        return self._run(x, aux=False).logits

    def _run(self, x: Tensor, *, aux: bool) -> SegmentationOutput:
        check_input_size(x, self.stride, "MSGANet")
        all_feats = self.encoder(x)
        feats = all_feats[2:]
        size = feats[0].shape[-2:]
        per_scale = [
            F.interpolate(proj(f), size=size, mode="bilinear", align_corners=False) if f.shape[-2:] != size
            else proj(f)
            for proj, f in zip(self.scales, feats, strict=True)
        ]
        ms = sequential_concat(self.fuse, per_scale)
        preds, aux_preds, refined = [], [], []
        guide = x.new_zeros(())
        recon = x.new_zeros(())
        modules = zip(self.attn, self.refine, self.heads, self.aux_heads, strict=True)
        for fs, (attn, refine, head, aux_head) in zip(per_scale, modules, strict=True):
            a, g, r = attn(fs, ms, losses=aux)
            refined.append(refine(a * ms))
            preds.append(head(refined[-1]))
            if aux:
                aux_preds.append(aux_head(fs))
                guide, recon = guide + g, recon + r
        up = lambda t: F.interpolate(t, size=x.shape[-2:], mode="bilinear", align_corners=False)
        logits = up(torch.stack(preds).mean(0))
        if self.fine is not None:  # plus a correction predicted at stride 2 from the encoder's stride-2 map
            s2 = all_feats[1]
            coarse = F.interpolate(torch.stack(refined).mean(0), size=s2.shape[-2:], mode="bilinear",
                                   align_corners=False)
            f2 = sequential_concat(self.fine[0], [coarse, s2])
            logits = logits + up(self.fine[1](f2))
            if self.fine1 is not None:  # and one at full resolution, from those features and the input image
                f1 = F.interpolate(f2, size=x.shape[-2:], mode="bilinear", align_corners=False)
                logits = logits + self.fine1[1](sequential_concat(self.fine1[0], [f1, x]))
        if not aux:
            return SegmentationOutput(logits, [], {})
        return SegmentationOutput(logits, [up(p) for p in preds + aux_preds], {"guide": guide, "recon": recon})
