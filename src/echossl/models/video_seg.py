"""Video LV segmentation networks of UniLVSeg (unilvseg-temporal-masking.md, Sec. II-C).

Two ways to segment every frame of a clip ``(B, 3, F, H, W)`` at once:

- ``unet3d`` (Fig. 5): MONAI's ``UNet`` with residual units (two convolutions,
  instance norm, PReLU and a skip per unit), time treated as the third axis.
  The paper's net has 5 stages; channels (32, 64, 128, 256, 512) with two
  residual units per stage give 19.2 M parameters, close to the 18.83 M of
  Table I.
- ``superimage`` (Fig. 4): the F frames are tiled row-major into a
  ``ceil(sqrt(F)) x ceil(sqrt(F))`` grid (missing cells are zero frames), a 2D
  U-Net segments that one big image, and the grid is cut back into frames. The
  encoder is a torchvision ResNet-18 or MobileNetV3-Large (Table IV; the paper's
  best, UniFormer-S, is not in torchvision) under a U-Net decoder of MONAI
  ``UpCat`` blocks, or, for the ``cpu`` preset, a small MONAI 2D ``UNet``.

Each network is a shared ``body`` producing ``features`` channels at full
resolution and a ``head`` (PReLU + 1x1 convolution). Temporal-masking
pre-training uses a 3-channel head (the reconstructed clip), segmentation a
1-channel head (the LV logit): the body is the same, only the head differs.

Inputs whose size a net cannot take (U-Nets halve each axis several times) are
zero-padded at the end of each axis up to the next multiple and the output is
cropped back, so odd frame counts and frame sizes never fail.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

# --------------------------------------------------------------------------- #
# padding and tiling helpers
# --------------------------------------------------------------------------- #


def pad_to_multiple(x: torch.Tensor, multiples: Sequence[int]) -> tuple[torch.Tensor, tuple[int, ...]]:
    """Zero-pad the last ``len(multiples)`` axes of ``x`` at their end up to multiples.

    Args:
        x: ``(..., D1, ..., Dk)`` tensor.
        multiples: ``k`` positive integers, one per trailing axis.

    Returns:
        ``(padded, sizes)``: the padded tensor and the original ``k`` sizes, for
        :func:`crop_to`.
    """
    k = len(multiples)
    sizes = tuple(int(s) for s in x.shape[-k:])
    extra = [(-s) % int(m) for s, m in zip(sizes, multiples)]
    if not any(extra):
        return x, sizes
    pad: list[int] = []
    for e in reversed(extra):  # F.pad lists the last axis first
        pad += [0, e]
    return F.pad(x, pad), sizes


def crop_to(x: torch.Tensor, sizes: Sequence[int]) -> torch.Tensor:
    """Keep the leading ``sizes`` of the last ``len(sizes)`` axes (undoes :func:`pad_to_multiple`)."""
    index = (Ellipsis,) + tuple(slice(0, int(s)) for s in sizes)
    return x[index]


def grid_side(frames: int) -> int:
    """Cells per side of the square super-image grid of ``frames`` frames: ``ceil(sqrt(F))``."""
    return max(1, math.isqrt(int(frames) - 1) + 1) if frames > 0 else 1


def tile(video: torch.Tensor) -> torch.Tensor:
    """Super image of a clip: ``(B, C, F, H, W) -> (B, C, g*H, g*W)``, ``g = ceil(sqrt(F))``.

    Frame ``i`` goes to grid row ``i // g``, column ``i % g``; cells past the last
    frame are zeros.
    """
    b, c, f, h, w = video.shape
    g = grid_side(f)
    if g * g > f:
        video = F.pad(video, (0, 0, 0, 0, 0, g * g - f))
    return video.reshape(b, c, g, g, h, w).permute(0, 1, 2, 4, 3, 5).reshape(b, c, g * h, g * w)


def untile(image: torch.Tensor, frames: int) -> torch.Tensor:
    """Inverse of :func:`tile`: ``(B, C, g*H, g*W) -> (B, C, F, H, W)``."""
    b, c, gh, gw = image.shape
    g = grid_side(frames)
    h, w = gh // g, gw // g
    if h * g != gh or w * g != gw:
        raise ValueError(f"a {gh}x{gw} super image is not a {g}x{g} grid of equal frames")
    video = image.reshape(b, c, g, h, g, w).permute(0, 1, 2, 4, 3, 5).reshape(b, c, g * g, h, w)
    return video[:, :, :frames]


# --------------------------------------------------------------------------- #
# networks
# --------------------------------------------------------------------------- #


def _head(dims: int, features: int, out_channels: int) -> nn.Module:
    conv = nn.Conv3d if dims == 3 else nn.Conv2d
    return nn.Sequential(nn.PReLU(features), conv(features, out_channels, kernel_size=1))


class UNet3DVideo(nn.Module):
    """3D U-Net with residual units (MONAI ``UNet``): ``(B, 3, F, H, W) -> (B, out, F, H, W)``.

    Args:
        out_channels: 3 to reconstruct a clip, 1 for the LV logit.
        channels: channels of the stages (paper: 32, 64, 128, 256, 512).
        strides: down-sampling stride between stages (paper: 2, 2, 2, 2), applied
            to time and space alike; the input is padded to a multiple of their product.
        num_res_units: residual units per stage (paper: 2).
        features: channels of the body's output, read by the head.
    """

    def __init__(self, out_channels: int = 1, channels: Sequence[int] = (32, 64, 128, 256, 512),
                 strides: Sequence[int] = (2, 2, 2, 2), num_res_units: int = 2, features: int = 16,
                 in_channels: int = 3):
        super().__init__()
        from monai.networks.nets import UNet

        if len(strides) != len(channels) - 1:
            raise ValueError(f"{len(channels)} stages need {len(channels) - 1} strides, got {len(strides)}")
        self.body = UNet(spatial_dims=3, in_channels=in_channels, out_channels=features, channels=tuple(channels),
                         strides=tuple(strides), num_res_units=num_res_units, act="PRELU", norm="INSTANCE")
        self.head = _head(3, features, out_channels)
        self.multiple = int(math.prod(int(s) for s in strides))

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        x, sizes = pad_to_multiple(video, (self.multiple,) * 3)
        return crop_to(self.head(self.body(x)), sizes)


class TorchvisionUNet2D(nn.Module):
    """2D U-Net: a torchvision encoder (5 feature maps at strides 2..32) and MONAI ``UpCat`` decoder.

    ``(B, 3, H, W) -> (B, features, H, W)``; H and W must be multiples of 32.
    Weights are random (no downloads); ``--init`` may load any.
    """

    ENCODERS = {
        "resnet18": ({"relu": "s2", "layer1": "s4", "layer2": "s8", "layer3": "s16", "layer4": "s32"},
                     (64, 64, 128, 256, 512)),
        "mobilenet_v3": ({"features.1": "s2", "features.3": "s4", "features.6": "s8", "features.12": "s16",
                          "features.16": "s32"}, (16, 24, 40, 112, 960)),
    }

    def __init__(self, encoder: str = "resnet18", features: int = 16,
                 decoder: Sequence[int] = (256, 128, 64, 32), in_channels: int = 3):
        super().__init__()
        import torchvision
        from monai.networks.nets.basic_unet import TwoConv, UpCat
        from torchvision.models.feature_extraction import create_feature_extractor

        if encoder not in self.ENCODERS:
            raise ValueError(f"unknown super-image encoder {encoder!r}; choose {', '.join(self.ENCODERS)} or small")
        nodes, widths = self.ENCODERS[encoder]
        base = (torchvision.models.resnet18(weights=None) if encoder == "resnet18"
                else torchvision.models.mobilenet_v3_large(weights=None))
        self.encoder = create_feature_extractor(base, nodes)
        self.stem = TwoConv(2, in_channels, features, act="PRELU", norm="INSTANCE", bias=True)
        act, norm = "PRELU", "INSTANCE"
        ups, below = [], widths[4]
        # stride 32 -> 16 -> 8 -> 4 -> 2, each concatenated with the encoder's map at that stride
        for skip, out in zip(reversed(widths[:4]), decoder):
            ups.append(UpCat(2, below, skip, out, act, norm, bias=True, halves=False))
            below = out
        ups.append(UpCat(2, below, features, features, act, norm, bias=True, halves=False))
        self.decoder = nn.ModuleList(ups)
        self.multiple = 32

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        maps = self.encoder(x)
        skips = [maps["s16"], maps["s8"], maps["s4"], maps["s2"], self.stem(x)]
        y = maps["s32"]
        for up, skip in zip(self.decoder, skips):
            y = up(y, skip)
        return y


class SuperImageUNet(nn.Module):
    """Super-image segmentation (Sec. II-C2): tile, 2D U-Net, untile.

    ``(B, 3, F, H, W) -> (B, out, F, H, W)``.

    Args:
        out_channels: 3 to reconstruct a clip, 1 for the LV logit.
        encoder: ``resnet18`` or ``mobilenet_v3`` (torchvision, under a U-Net
            decoder), or ``small`` (MONAI 2D ``UNet`` with residual units, for CPUs).
        channels, strides, num_res_units: the ``small`` net's stages.
        decoder: decoder widths of the torchvision U-Net.
        features: channels of the body's output, read by the head.
    """

    def __init__(self, out_channels: int = 1, encoder: str = "resnet18", features: int = 16,
                 channels: Sequence[int] = (16, 32, 64, 128, 256), strides: Sequence[int] = (2, 2, 2, 2),
                 num_res_units: int = 2, decoder: Sequence[int] = (256, 128, 64, 32), in_channels: int = 3):
        super().__init__()
        if encoder == "small":
            from monai.networks.nets import UNet

            self.body = UNet(spatial_dims=2, in_channels=in_channels, out_channels=features,
                             channels=tuple(channels), strides=tuple(strides), num_res_units=num_res_units,
                             act="PRELU", norm="INSTANCE")
            self.multiple = int(math.prod(int(s) for s in strides))
        else:
            self.body = TorchvisionUNet2D(encoder, features, decoder, in_channels)
            self.multiple = self.body.multiple
        self.head = _head(2, features, out_channels)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        frames = video.shape[2]
        image, sizes = pad_to_multiple(tile(video), (self.multiple,) * 2)
        return untile(crop_to(self.head(self.body(image)), sizes), frames)


ARCHS = ("unet3d", "superimage")


def build_video_net(arch: str, out_channels: int, **options) -> nn.Module:
    """A video segmentation (or, with 3 outputs, reconstruction) network by name.

    Args:
        arch: ``unet3d`` or ``superimage``.
        out_channels: channels of the head.
        options: the architecture's settings (see :class:`UNet3DVideo`,
            :class:`SuperImageUNet`); ``frames`` and ``period`` are ignored here.
    """
    options = {k: v for k, v in options.items() if k not in ("frames", "period")}
    if arch == "unet3d":
        return UNet3DVideo(out_channels=out_channels, **options)
    if arch == "superimage":
        return SuperImageUNet(out_channels=out_channels, **options)
    raise ValueError(f"unknown video segmentation architecture {arch!r}; choose {' or '.join(ARCHS)}")
