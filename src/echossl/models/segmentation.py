"""LV segmentation networks with an explicit encoder/decoder split.

CSS (css-semisupervised-ef.md, Sec. III-A) needs the per-frame encoder
embedding ``z = f_enc(x)`` as well as the decoder's mask ``f_dec(z)``, so every
network here exposes ``encode`` and ``decode``:

- ``deeplabv3_resnet50``: torchvision's DeepLabV3 (ResNet-50 encoder, ASPP
  decoder), the paper's model; random init unless the user gives weights.
- ``small_deeplab``: a narrow ResNet encoder (torchvision ``BasicBlock``) with
  torchvision's ASPP in a narrow DeepLabV3 head, for the ``cpu`` preset.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.resnet import BasicBlock
from torchvision.models.segmentation import deeplabv3_resnet50
from torchvision.models.segmentation.deeplabv3 import ASPP


class Segmenter(nn.Module):
    """``forward(x (B,3,H,W)) -> logits (B,1,H,W)`` with ``encode``/``decode`` exposed."""

    def __init__(self, encoder: nn.Module, decoder: nn.Module, feature_dim: int):
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.feature_dim = feature_dim

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W) -> (B, d, h, w)`` encoder feature map."""
        out = self.encoder(x)
        return out["out"] if isinstance(out, dict) else out

    def decode(self, features: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """``(B, d, h, w) -> (B, 1, H, W)`` logits, upsampled bilinearly to ``size``."""
        return F.interpolate(self.decoder(features), size=size, mode="bilinear", align_corners=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x), x.shape[-2:])


class SmallResNetEncoder(nn.Module):
    """A narrow ResNet (output stride 8) made of torchvision ``BasicBlock``s."""

    def __init__(self, widths=(16, 32, 64, 128)):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, widths[0], 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(inplace=True),
        )
        layers, inplanes = [], widths[0]
        # strides 1,2,2,1 after the stride-2 stem -> output stride 8, as DeepLabV3
        for planes, stride in zip(widths, (1, 2, 2, 1)):
            downsample = None
            if stride != 1 or inplanes != planes:
                downsample = nn.Sequential(
                    nn.Conv2d(inplanes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes)
                )
            layers.append(BasicBlock(inplanes, planes, stride, downsample))
            inplanes = planes
        self.layers = nn.Sequential(*layers)
        self.out_channels = inplanes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(self.stem(x))


def narrow_deeplab_head(in_channels: int, channels: int = 64) -> nn.Sequential:
    """torchvision's DeepLabV3 head (ASPP, 3x3 conv, classifier) with ``channels`` instead of 256.

    At 256 channels the head costs ~10x the small encoder; 64 keeps inference over
    every frame of every video cheap on a CPU.
    """
    return nn.Sequential(
        ASPP(in_channels, [12, 24, 36], out_channels=channels),
        nn.Conv2d(channels, channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(channels),
        nn.ReLU(inplace=True),
        nn.Conv2d(channels, 1, 1),
    )


def build_segmenter(name: str, **kwargs) -> Segmenter:
    """Build a 1-class (LV) segmentation network by name."""
    if name == "deeplabv3_resnet50":
        net = deeplabv3_resnet50(weights=None, weights_backbone=None, num_classes=1, aux_loss=False)
        return Segmenter(net.backbone, net.classifier, feature_dim=2048)
    if name == "small_deeplab":
        head_channels = kwargs.pop("head_channels", 64)
        encoder = SmallResNetEncoder(**kwargs)
        return Segmenter(encoder, narrow_deeplab_head(encoder.out_channels, head_channels),
                         feature_dim=encoder.out_channels)
    raise ValueError(f"unknown segmentation model {name!r}; choose deeplabv3_resnet50 or small_deeplab")
