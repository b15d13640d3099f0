"""Networks of mrjet-jigsaw-color-ssl.md: a 2D backbone ``phi``, the jigsaw head ``g``,
the recognition decoder ``D_r`` and the LSTM + skip-connection decoder ``D_s``.

Backbones return a feature pyramid ``[s2, s4, s8, s16(, s32)]`` (deepest last) so
that ``D_s`` can take skip connections from the encoder:

- ``resnet34`` (``paper``): torchvision ResNet-34 without its ``fc``
  (pyramid: stem 64 ch /2, layer1 64 /4, layer2 128 /8, layer3 256 /16, layer4 512 /32).
- ``small`` (``cpu``): a 4-stage residual CNN (16/24/48/96 channels, /2../16),
  so that 20-px jigsaw tiles still keep a 2x2 map at the deepest stage.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from torchvision.models.resnet import BasicBlock


def _strided_block(cin: int, cout: int) -> BasicBlock:
    """torchvision's residual ``BasicBlock`` at stride 2, with its 1x1 projection shortcut."""
    downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, 2, bias=False), nn.BatchNorm2d(cout))
    return BasicBlock(cin, cout, stride=2, downsample=downsample)


class SmallBackbone(nn.Module):
    """CPU-sized backbone: ``(N, 3, H, W) -> [(N, 16, H/2, W/2), ..., (N, 96, H/16, W/16)]``."""

    def __init__(self, widths=(16, 24, 48, 96)):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, widths[0], 3, 2, 1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU())
        self.stages = nn.ModuleList(_strided_block(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.channels = list(widths)

    def pyramid(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = [self.stem(x)]
        for stage in self.stages:
            feats.append(stage(feats[-1]))
        return feats


class ResNet34Backbone(nn.Module):
    """torchvision ResNet-34 without ``fc`` (the paper's ``phi``), random init (no download)."""

    def __init__(self):
        super().__init__()
        r = torchvision.models.resnet34(weights=None)
        self.stem = nn.Sequential(r.conv1, r.bn1, r.relu)
        self.maxpool = r.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = r.layer1, r.layer2, r.layer3, r.layer4
        self.channels = [64, 64, 128, 256, 512]

    def pyramid(self, x: torch.Tensor) -> list[torch.Tensor]:
        s2 = self.stem(x)
        s4 = self.layer1(self.maxpool(s2))
        s8 = self.layer2(s4)
        s16 = self.layer3(s8)
        return [s2, s4, s8, s16, self.layer4(s16)]


def build_backbone(name: str) -> nn.Module:
    """``resnet34`` (paper) or ``small`` (cpu); each has ``.pyramid(x)`` and ``.channels``."""
    if name == "resnet34":
        return ResNet34Backbone()
    if name == "small":
        return SmallBackbone()
    raise ValueError(f"unknown mrjet backbone {name!r}; choose resnet34 or small")


def pooled(backbone: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Global-average-pooled deepest features ``f = phi(x)``: ``(N, 3, H, W) -> (N, C)`` (eq. 2 / 7)."""
    return backbone.pyramid(x)[-1].mean(dim=(-2, -1))


class JigsawNet(nn.Module):
    """Siamese jigsaw network: shared ``phi`` on each of 9 tiles, features concatenated, ``g`` = one FC (eq. 3).

    ``forward(tiles (N, 9, 3, t, t)) -> tile features (N, 9, C)``; ``head(concat (N, 9C)) -> (N, H)`` logits.
    """

    def __init__(self, backbone: str, n_permutations: int, grid: int = 3):
        super().__init__()
        self.backbone = build_backbone(backbone)
        self.tiles = grid * grid
        self.head = nn.Linear(self.tiles * self.backbone.channels[-1], n_permutations)

    def forward(self, tiles: torch.Tensor) -> torch.Tensor:
        n, k = tiles.shape[:2]
        return pooled(self.backbone, tiles.flatten(0, 1)).view(n, k, -1)


class RecognitionDecoder(nn.Module):
    """``D_r`` (eq. 8): two 3D convolutions, a 2D (spatial) pooling and one FC applied per frame.

    ``(B, C, T, h, w) -> (B, T)``. The paper's "one 2D pooling layer" pools over
    ``h, w`` only, which keeps one output per frame for any clip length ``m``
    (the FC maps each frame's pooled vector to ``e'_i``).
    """

    def __init__(self, cin: int, hidden: int = 64):
        super().__init__()
        self.conv1 = nn.Conv3d(cin, hidden, 3, padding=1)
        self.conv2 = nn.Conv3d(hidden, hidden, 3, padding=1)
        self.fc = nn.Linear(hidden, 1)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv2(F.relu(self.conv1(f))))
        x = x.mean(dim=(-2, -1))  # (B, hidden, T)
        return self.fc(x.transpose(1, 2)).squeeze(-1)


class PixelLSTM(nn.Module):
    """Eq. 9, ``f'_k = LSTM(f_1, ..., f_k)``, run at every position of the deepest map.

    ``(B, T, C, h, w) -> (B, T, hidden, h, w)``; output ``t`` depends on frames ``<= t``
    only (a unidirectional LSTM), so one pass over the clip gives ``f'_k`` for every
    max frame ``k`` at once. Positions share weights (a ConvLSTM with 1x1 kernels,
    computed by ``nn.LSTM`` on ``B*h*w`` sequences), keeping the map for ``D_s``.
    """

    def __init__(self, cin: int, hidden: int):
        super().__init__()
        self.lstm = nn.LSTM(cin, hidden, batch_first=True)
        self.hidden = hidden

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        b, t, c, h, w = f.shape
        seq = f.permute(0, 3, 4, 1, 2).reshape(b * h * w, t, c)
        out, _ = self.lstm(seq)
        return out.reshape(b, h, w, t, self.hidden).permute(0, 3, 4, 1, 2)


class _Up(nn.Module):
    def __init__(self, cin: int, cskip: int, cout: int):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(cin + cskip, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())

    def forward(self, x, skip):
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.conv(torch.cat([x, skip], dim=1))


class SegmentationDecoder(nn.Module):
    """``D_s``: U-Net-style decoder from ``f'_k`` with skip connections from the encoder's pyramid of frame k.

    ``(N, hidden, h, w)`` and skips ``[s2, ..., s_{deepest/2}]`` -> ``(N, 1, H, W)`` logits.
    """

    def __init__(self, hidden: int, skip_channels: list[int]):
        super().__init__()
        ups, cin = [], hidden
        for cs in reversed(skip_channels):
            cout = max(16, cs)
            ups.append(_Up(cin, cs, cout))
            cin = cout
        self.ups = nn.ModuleList(ups)
        self.out = nn.Conv2d(cin, 1, 1)

    def forward(self, x: torch.Tensor, skips: list[torch.Tensor], size) -> torch.Tensor:
        for up, skip in zip(self.ups, reversed(skips)):
            x = up(x, skip)
        return F.interpolate(self.out(x), size=size, mode="bilinear", align_corners=False)


class MRJetNet(nn.Module):
    """Backbone ``phi`` + ``D_r`` (max-frame recognition) + LSTM + ``D_s`` (jet segmentation).

    ``encode(video (B, T, 3, H, W))`` gives the per-frame pyramid ``[(B, T, C_l, h_l, w_l)]``;
    ``recognise(pyramid) -> (B, T)`` is ``E'``; ``segment(pyramid, b, t, size) -> (K, 1, H, W)``
    gives jet logits at the frames ``(b[i], t[i])`` from ``f'_t = LSTM(f_1..f_t)``.
    """

    def __init__(self, backbone: str = "small", lstm_hidden: int | None = None, recog_hidden: int = 64):
        super().__init__()
        self.backbone = build_backbone(backbone)
        deep = self.backbone.channels[-1]
        self.recognition = RecognitionDecoder(deep, recog_hidden)
        self.lstm = PixelLSTM(deep, lstm_hidden or deep)
        self.decoder = SegmentationDecoder(lstm_hidden or deep, self.backbone.channels[:-1])

    def encode(self, video: torch.Tensor) -> list[torch.Tensor]:
        b, t = video.shape[:2]
        return [p.view(b, t, *p.shape[1:]) for p in self.backbone.pyramid(video.flatten(0, 1))]

    def recognise(self, pyramid: list[torch.Tensor]) -> torch.Tensor:
        return self.recognition(pyramid[-1].transpose(1, 2))

    def segment(self, pyramid: list[torch.Tensor], b: torch.Tensor, t: torch.Tensor, size) -> torch.Tensor:
        integrated = self.lstm(pyramid[-1])[b, t]  # f'_k, (K, hidden, h, w)
        return self.decoder(integrated, [p[b, t] for p in pyramid[:-1]], size)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        """``E'`` of a clip: ``(B, T, 3, H, W) -> (B, T)``."""
        return self.recognise(self.encode(video))
