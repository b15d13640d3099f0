"""Networks of video-speech-contrastive.md (Sec. 2.4): 2-D backbones, projection h, heads.

``paper``: the video and speech subnetworks are both torchvision's
``resnext50_32x4d`` with a Squeeze-and-Excitation block (Hu et al., reduction
16) on the residual branch of every bottleneck and a dilated last stage
(``replace_stride_with_dilation=[False, False, True]``, output stride 16), on
one input channel. ``cpu``: a small residual SE network of the same shape
(stem, three stages, global pooling).

Every backbone maps ``(B, 1, H, W)`` to a feature map ``(B, C, h, w)``
(:meth:`features`) and a pooled vector ``(B, C)`` (``forward``), and reports
``out_dim``.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class SqueezeExcitation(nn.Module):
    """Channel gating ``x * sigmoid(W2 relu(W1 avgpool(x)))`` (Hu et al., CVPR 2018)."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        hidden = max(4, channels // reduction)
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.fc2 = nn.Conv2d(hidden, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = torch.sigmoid(self.fc2(F.relu(self.fc1(F.adaptive_avg_pool2d(x, 1)))))
        return x * w


class SEResNeXt50(nn.Module):
    """torchvision ResNeXt-50 (32x4d) + SE on every bottleneck + dilated ``layer4``; 1 input channel.

    The SE block is inserted after each bottleneck's last BatchNorm (``bn3``),
    i.e. on the residual branch before the identity is added, as in SE-ResNeXt.
    """

    def __init__(self, in_channels: int = 1):
        super().__init__()
        from torchvision.models import resnext50_32x4d

        net = resnext50_32x4d(weights=None, replace_stride_with_dilation=[False, False, True])
        net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        for layer in (net.layer1, net.layer2, net.layer3, net.layer4):
            for block in layer:
                block.bn3 = nn.Sequential(block.bn3, SqueezeExcitation(block.bn3.num_features))
        net.fc = nn.Identity()
        self.body = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, net.layer1, net.layer2, net.layer3,
                                  net.layer4)
        self.out_dim = 2048

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x).mean((-2, -1))


class _SEBasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.se = SqueezeExcitation(cout, reduction=8)
        self.short = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                      if stride != 1 or cin != cout else nn.Identity())

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.se(self.bn2(self.conv2(y)))
        return F.relu(y + self.short(x))


class SmallSENet(nn.Module):
    """Small residual SE network for CPU runs: stem /2, stages /2 /2 (output stride 8)."""

    def __init__(self, in_channels: int = 1, width: int = 16):
        super().__init__()
        w = width
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, w, 3, 2, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True),
            _SEBasicBlock(w, 2 * w, 1), _SEBasicBlock(2 * w, 4 * w, 2), _SEBasicBlock(4 * w, 8 * w, 2),
        )
        self.out_dim = 8 * w

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x).mean((-2, -1))


def build_backbone(name: str, in_channels: int = 1, width: int = 16) -> nn.Module:
    """``se_resnext50`` (paper) or ``small_se`` (cpu)."""
    if name == "se_resnext50":
        return SEResNeXt50(in_channels)
    if name == "small_se":
        return SmallSENet(in_channels, width)
    raise ValueError(f"unknown backbone {name!r}; choose se_resnext50 or small_se")


class Projection(nn.Module):
    """h(.): MLP with one hidden layer and a non-linearity (Sec. 2.4), ``(B, C) -> (B, D)``."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(in_dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
                                 nn.Linear(hidden, out_dim))

    def forward(self, x):
        return self.mlp(x)


class VideoSpeechNet(nn.Module):
    """g_v, g_s, h, the pair classifier f (on g_v ⊕ g_s) and the 12-way frame-order head.

    The audio input is a log spectrogram ``(B, 1, S, S)``; an input BatchNorm
    puts its log-magnitudes on a unit scale.
    """

    def __init__(self, backbone: str = "small_se", width: int = 16, proj_hidden: int = 512, proj_dim: int = 128):
        super().__init__()
        self.video = build_backbone(backbone, 1, width)
        self.audio_norm = nn.BatchNorm2d(1)
        self.audio = build_backbone(backbone, 1, width)
        d = self.video.out_dim
        self.proj = Projection(d, proj_hidden, proj_dim)
        self.pair_head = nn.Sequential(nn.Linear(2 * d, 256), nn.ReLU(inplace=True), nn.Linear(256, 2))
        self.order_head = OrderHead(d)

    def encode_audio(self, spec: torch.Tensor) -> torch.Tensor:
        return self.audio(self.audio_norm(spec))


class OrderHead(nn.Module):
    """12-way frame-order classifier on the 4 frames' feature maps ``(B, 4, C, h, w) -> (B, 12)``.

    The maps are stacked along channels before pooling: pooled vectors alone are
    blind to where the anatomy is, so they could not tell which way it moved
    (the role of the fc features in Lee et al.'s order prediction network).
    """

    def __init__(self, channels: int, hidden: int = 256):
        super().__init__()
        self.fuse = nn.Sequential(nn.Conv2d(4 * channels, channels, 3, padding=1), nn.BatchNorm2d(channels),
                                  nn.ReLU(inplace=True))
        self.fc = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, 12))

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        return self.fc(self.fuse(maps.flatten(1, 2)).mean((-2, -1)))


class PlaneClassifier(nn.Module):
    """Pre-trained video subnetwork + linear layer: ``(B, 1, S, S) -> (B, n_classes)`` logits."""

    def __init__(self, backbone: str = "small_se", width: int = 16, n_classes: int = 14):
        super().__init__()
        self.backbone = build_backbone(backbone, 1, width)
        self.head = nn.Linear(self.backbone.out_dim, n_classes)

    def forward(self, x):
        return self.head(self.backbone(x))


class SaliencyNet(nn.Module):
    """Same backbone, last layers replaced by a 2-D saliency head (Sec. 3.3).

    ``(B, 1, S, S) -> (B, O, O)`` logits; a softmax over the O x O pixels gives the
    predicted gaze density.
    """

    def __init__(self, backbone: str = "small_se", width: int = 16, out_size: int = 32):
        super().__init__()
        self.backbone = build_backbone(backbone, 1, width)
        c = self.backbone.out_dim
        self.head = nn.Sequential(nn.Conv2d(c, c // 2, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(c // 2, 1, 1))
        self.out_size = out_size

    def forward(self, x):
        y = self.head(self.backbone.features(x))
        return F.interpolate(y, size=(self.out_size, self.out_size), mode="bilinear", align_corners=False)[:, 0]
