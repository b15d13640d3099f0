"""Video regression backbones: torchvision's R(2+1)D-18 and a small R(2+1)D for CPUs.

Both take ``(B, C, T, H, W)`` float clips and return ``(B,)`` predictions (EF in %).
The first convolution can take extra input channels (the CSS teacher f_m takes
RGB + predicted LV mask, 4 channels).
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models.video import r2plus1d_18
from torchvision.models.video.resnet import BasicBlock, Conv2Plus1D


class SmallR2Plus1D(nn.Module):
    """A narrow R(2+1)D ResNet built from torchvision's own blocks.

    Same design as ``r2plus1d_18`` (a (2+1)D stem, four stages of
    ``BasicBlock(Conv2Plus1D)``, global average pooling, a linear head) but with
    configurable widths and depths, so that it trains in minutes on 2 CPU cores.

    Args:
        in_channels: input channels (3 for video, 4 for video + mask).
        widths: channels of the four stages.
        layers: blocks per stage.
    """

    def __init__(self, in_channels: int = 3, widths=(16, 32, 64, 128), layers=(1, 1, 1, 1)):
        super().__init__()
        stem_mid = max(8, widths[0] * 45 // 64)
        self.stem = nn.Sequential(
            nn.Conv3d(in_channels, stem_mid, (1, 7, 7), stride=(1, 2, 2), padding=(0, 3, 3), bias=False),
            nn.BatchNorm3d(stem_mid),
            nn.ReLU(inplace=True),
            nn.Conv3d(stem_mid, widths[0], (3, 1, 1), padding=(1, 0, 0), bias=False),
            nn.BatchNorm3d(widths[0]),
            nn.ReLU(inplace=True),
        )
        stages, inplanes = [], widths[0]
        for i, (planes, n) in enumerate(zip(widths, layers)):
            stride = 1 if i == 0 else 2
            blocks = []
            for j in range(n):
                downsample = None
                if j == 0 and (stride != 1 or inplanes != planes):
                    downsample = nn.Sequential(
                        nn.Conv3d(inplanes, planes, 1, stride=stride, bias=False), nn.BatchNorm3d(planes)
                    )
                blocks.append(BasicBlock(inplanes, planes, Conv2Plus1D, stride if j == 0 else 1, downsample))
                inplanes = planes
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool3d(1)
        self.fc = nn.Linear(inplanes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.avgpool(x).flatten(1))


def _first_conv(model: nn.Module) -> nn.Conv3d:
    return model.stem[0]


def widen_input(model: nn.Module, in_channels: int) -> nn.Module:
    """Give the first convolution ``in_channels`` inputs, keeping the RGB weights.

    Extra channels start as the mean of the RGB filters, so a mask channel has an
    effect from the first step instead of being learnt from zero.
    """
    old = _first_conv(model)
    if old.in_channels == in_channels:
        return model
    new = nn.Conv3d(
        in_channels, old.out_channels, old.kernel_size, old.stride, old.padding, bias=old.bias is not None
    )
    with torch.no_grad():
        keep = min(old.in_channels, in_channels)
        new.weight[:, :keep] = old.weight[:, :keep]
        if in_channels > keep:
            new.weight[:, keep:] = old.weight.mean(dim=1, keepdim=True)
        if old.bias is not None:
            new.bias.copy_(old.bias)
    model.stem[0] = new
    return model


def build_video_regressor(name: str, in_channels: int = 3, mean_target: float = 0.0, **kwargs) -> nn.Module:
    """Build an EF regressor by name.

    Args:
        name: ``r2plus1d_18`` (the paper's backbone, random init: no weights are
            downloaded; load your own with ``--init``) or ``small_r2plus1d``.
        in_channels: 3 (video) or 4 (video + LV mask, the multi-input teacher).
        mean_target: initial bias of the output, the training set's mean EF, as
            in the EchoNet-Dynamic reference.
    """
    if name == "r2plus1d_18":
        if kwargs:
            raise ValueError(f"r2plus1d_18 takes no model options, got {sorted(kwargs)}")
        model = r2plus1d_18(weights=None)
        model.fc = nn.Linear(model.fc.in_features, 1)
    elif name == "small_r2plus1d":
        model = SmallR2Plus1D(3, **{k: tuple(v) for k, v in kwargs.items()})
    else:
        raise ValueError(f"unknown video model {name!r}; choose r2plus1d_18 or small_r2plus1d")
    widen_input(model, in_channels)
    with torch.no_grad():
        model.fc.bias.fill_(float(mean_target))
    return model
