"""Vision Transformers for DISCOVER: a video ViT over space-time tube tokens,
an image ViT for single frames, and a light decoder that reconstructs tokens.

The video ViT follows VideoMAE's tokenisation (discover-cluster-distillation.md,
Sec. 3.1 and "Evaluation"): a clip ``(B, C, T, H, W)`` is cut into
non-overlapping ``tubelet x patch x patch`` cubes (2 x 16 x 16 in the paper),
each linearly embedded (a strided Conv3d), a learnable CLS token is prepended,
and fixed sine-cosine position codes are added. The codes are computed from a
factorised (time, row, column) grid, so the same weights accept clips of any
length and any frame size divisible by the patch.

The image ViT is the same network with a tubelet of 1 applied to ``(B, C, H, W)``
frames, so its patch grid lines up with the video's (same patch size).

Blocks are written here (pre-norm attention + MLP, as in ViT-B) because torch's
own ``nn.TransformerEncoderLayer`` switches to a fused kernel in eval mode that
``FlopCounterMode`` cannot see, and Table 6 needs honest FLOPs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Attention(nn.Module):
    """Multi-head self-attention: ``(B, N, D) -> (B, N, D)``."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)  # (B, heads, N, D/heads)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class Block(nn.Module):
    """Pre-norm transformer block (ViT): ``x + attn(ln(x))``, then ``x + mlp(ln(x))``."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


def _sincos_1d(positions: torch.Tensor, dim: int) -> torch.Tensor:
    """``(N,)`` positions -> ``(N, dim)`` sine-cosine codes (``dim`` even)."""
    freq = 1.0 / (10000 ** (torch.arange(dim // 2, dtype=torch.float32, device=positions.device) / (dim // 2)))
    angle = positions.float()[:, None] * freq[None, :]
    return torch.cat([angle.sin(), angle.cos()], dim=1)


def sincos_position_3d(t: int, h: int, w: int, dim: int, device=None) -> torch.Tensor:
    """Fixed position codes of a ``(t, h, w)`` token grid flattened time-major: ``(t*h*w, dim)``.

    The channels are split between time, row and column (the time share gets
    the remainder), each with its own 1-D sine-cosine code.
    """
    d_hw = 2 * (dim // 6)  # even share for rows and for columns
    d_t = dim - 2 * d_hw
    if d_t % 2:  # keep every share even
        d_t -= 1
    tt, yy, xx = torch.meshgrid(torch.arange(t, device=device), torch.arange(h, device=device),
                                torch.arange(w, device=device), indexing="ij")
    codes = torch.cat([_sincos_1d(tt.reshape(-1), d_t), _sincos_1d(yy.reshape(-1), d_hw),
                       _sincos_1d(xx.reshape(-1), d_hw)], dim=1)
    return F.pad(codes, (0, dim - codes.shape[1]))


class VideoViT(nn.Module):
    """ViT over space-time tube tokens with a CLS token.

    Args:
        patch: spatial patch size (paper: 16 at 112 px).
        tubelet: frames per token (paper: 2; 1 makes an image ViT).
        dim, depth, heads, mlp_ratio: transformer size (paper: ViT-B, 768/12/12/4).
        in_channels: input channels (3).

    Shapes:
        ``tokenize``: ``(B, C, T, H, W) -> (B, N, D)`` with ``N = T/tubelet * H/patch * W/patch``.
        ``forward``: ``(B, C, T, H, W)`` (and optional ``keep (B, n)`` token indices)
        -> ``(B, 1 + n, D)`` normalised features, CLS first.
    """

    def __init__(self, patch: int = 16, tubelet: int = 2, dim: int = 768, depth: int = 12, heads: int = 12,
                 mlp_ratio: float = 4.0, in_channels: int = 3):
        super().__init__()
        self.patch, self.tubelet, self.dim = int(patch), int(tubelet), int(dim)
        self.patch_embed = nn.Conv3d(in_channels, dim, (tubelet, patch, patch), stride=(tubelet, patch, patch))
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.blocks = nn.ModuleList(Block(dim, heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        self.apply(_init_weights)

    def grid(self, video: torch.Tensor) -> tuple[int, int, int]:
        """Token grid ``(T', h, w)`` of a ``(B, C, T, H, W)`` clip (or ``(B, C, H, W)`` frames)."""
        _, _, t, h, w = self._as_video(video).shape
        if t % self.tubelet or h % self.patch or w % self.patch:
            raise ValueError(f"a clip of {t}x{h}x{w} is not divisible into {self.tubelet}x{self.patch}x{self.patch} tubes")
        return t // self.tubelet, h // self.patch, w // self.patch

    def tokenize(self, video: torch.Tensor) -> torch.Tensor:
        """Tube tokens with position codes: ``(B, C, T, H, W) -> (B, N, D)`` (time-major)."""
        video = self._as_video(video)
        t, h, w = self.grid(video)
        x = self.patch_embed(video).flatten(2).transpose(1, 2)
        return x + sincos_position_3d(t, h, w, self.dim, x.device).to(x.dtype)

    def encode(self, tokens: torch.Tensor, keep: torch.Tensor | None = None, blocks: slice | None = None
               ) -> torch.Tensor:
        """Prepend CLS, keep the visible tokens, run the blocks: ``(B, N, D) -> (B, 1 + n, D)``.

        ``keep`` ``(B, n)`` selects visible token indices (masked views). With
        ``blocks`` only those blocks run and the final norm is skipped.
        """
        if keep is not None:
            tokens = torch.gather(tokens, 1, keep.unsqueeze(-1).expand(-1, -1, tokens.shape[-1]))
        x = torch.cat([self.cls_token.expand(tokens.shape[0], -1, -1).to(tokens.dtype), tokens], dim=1)
        return self.run_blocks(x, blocks if blocks is not None else slice(None), final_norm=blocks is None)

    def run_blocks(self, x: torch.Tensor, blocks: slice, final_norm: bool) -> torch.Tensor:
        for block in self.blocks[blocks]:
            x = block(x)
        return self.norm(x) if final_norm else x

    def forward(self, video: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        return self.encode(self.tokenize(video), keep)

    def _as_video(self, x: torch.Tensor) -> torch.Tensor:
        return x.unsqueeze(2) if x.dim() == 4 else x  # (B, C, H, W) frames -> one-frame clips

    def embed(self, video: torch.Tensor) -> torch.Tensor:
        """Clip embedding ``(B, 2D)``: the CLS token concatenated with the mean patch token.

        Both halves are given so that methods that train the CLS (DINO-style)
        and methods that do not (VideoMAE) are probed the same way.
        """
        x = self(video)
        return torch.cat([x[:, 0], x[:, 1:].mean(1)], dim=1)

    def dense(self, video: torch.Tensor) -> torch.Tensor:
        """Token features as a map: ``(B, C, T, H, W) -> (B, D, T', h, w)``."""
        video = self._as_video(video)
        t, h, w = self.grid(video)
        x = self(video)[:, 1:]
        return x.transpose(1, 2).reshape(x.shape[0], self.dim, t, h, w)


class ImageViT(VideoViT):
    """The image encoder: a :class:`VideoViT` with a tubelet of one frame.

    ``forward`` takes frames ``(B, C, H, W)`` (or ``(B, C, 1, H, W)``) and returns
    ``(B, 1 + n, D)``; ``patch_features`` gives ``(B, P, D)`` per-patch features.
    """

    def __init__(self, patch: int = 16, dim: int = 768, depth: int = 12, heads: int = 12, mlp_ratio: float = 4.0,
                 in_channels: int = 3):
        super().__init__(patch=patch, tubelet=1, dim=dim, depth=depth, heads=heads, mlp_ratio=mlp_ratio,
                         in_channels=in_channels)


class TokenDecoder(nn.Module):
    """Light VideoMAE-style decoder predicting a vector for every masked token.

    Visible encoder tokens are projected to the decoder width, a shared learnable
    mask token (plus the masked positions' codes) stands in for each hidden
    token, a few blocks mix them, and a linear head maps the masked tokens to
    ``out_dim`` (image-feature width for DISCOVER, pixels per tube for VideoMAE).

    Shapes:
        ``visible (B, n_vis, D_enc)`` patch tokens (no CLS), ``keep (B, n_vis)``,
        ``masked (B, n_mask)`` token indices, ``grid`` the ``(T', h, w)`` token grid
        -> ``(B, n_mask, out_dim)``.
    """

    def __init__(self, enc_dim: int, dim: int = 384, depth: int = 4, heads: int = 6, out_dim: int = 768,
                 mlp_ratio: float = 4.0):
        super().__init__()
        self.dim = dim
        self.embed = nn.Linear(enc_dim, dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.blocks = nn.ModuleList(Block(dim, heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, out_dim)
        nn.init.trunc_normal_(self.mask_token, std=0.02)
        self.apply(_init_weights)

    def forward(self, visible: torch.Tensor, keep: torch.Tensor, masked: torch.Tensor,
                grid: tuple[int, int, int]) -> torch.Tensor:
        pos = sincos_position_3d(*grid, self.dim, visible.device).to(visible.dtype)  # (N, d)
        x_vis = self.embed(visible) + pos[keep]
        x_mask = self.mask_token.expand(masked.shape[0], masked.shape[1], -1) + pos[masked]
        x = torch.cat([x_vis, x_mask], dim=1)
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x[:, keep.shape[1]:]))


def _init_weights(m: nn.Module) -> None:
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)
    elif isinstance(m, nn.Conv3d):
        # as ViT/VideoMAE: the patch projection is a linear layer on flattened cubes
        nn.init.xavier_uniform_(m.weight.view(m.weight.shape[0], -1))
        if m.bias is not None:
            nn.init.zeros_(m.bias)


def random_token_mask(batch: int, n_tokens: int, ratio: float, device=None, generator: torch.Generator | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """Independent random space-time masks, one per row (Sec. 3.1: "distinct random masks").

    Returns:
        ``keep (B, n_keep)`` and ``masked (B, n_tokens - n_keep)`` sorted token indices,
        with ``n_keep = n_tokens - round(ratio * n_tokens)`` (at least 1 kept, 1 masked).
    """
    if not 0.0 < ratio < 1.0:
        raise ValueError(f"masking ratio must be in (0, 1), got {ratio}")
    n_mask = min(max(1, int(round(ratio * n_tokens))), n_tokens - 1)
    noise = torch.rand(batch, n_tokens, generator=generator, device="cpu" if generator is not None else device)
    order = noise.to(device).argsort(dim=1)
    keep = order[:, : n_tokens - n_mask].sort(dim=1).values
    masked = order[:, n_tokens - n_mask:].sort(dim=1).values
    return keep, masked


def tube_token_mask(batch: int, grid: tuple[int, int, int], ratio: float, device=None,
                    generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """VideoMAE tube masking: one random spatial mask per row, shared by every time step.

    I.i.d. space-time masking lets a masked token be copied from the same patch at a
    neighbouring time (echo frames change slowly), so the pretext task is solved by
    temporal interpolation; VideoMAE (and DISCOVER, which builds on it) therefore hide the
    same patches in every frame.

    Args:
        batch: rows (views x clips).
        grid: token grid ``(T', h, w)``; tokens are flattened time-major (index ``t*h*w + p``).
        ratio: share of *spatial* positions hidden (hence of all tokens).

    Returns:
        ``keep (B, T' * n_keep_s)`` and ``masked (B, T' * n_mask_s)`` sorted token indices,
        ``n_mask_s = round(ratio * h * w)`` clipped to [1, h*w - 1].
    """
    t, h, w = (int(g) for g in grid)
    keep_s, masked_s = random_token_mask(batch, h * w, ratio, device, generator)  # (B, n_keep_s), (B, n_mask_s)
    offsets = (torch.arange(t, device=keep_s.device) * h * w)[None, :, None]  # (1, T', 1)
    keep = (keep_s[:, None, :] + offsets).reshape(batch, -1)  # sorted: time-major, then sorted patches
    masked = (masked_s[:, None, :] + offsets).reshape(batch, -1)
    return keep, masked


def build_vit(cfg: dict, *, image: bool = False) -> VideoViT:
    """A video (or image) ViT from a ``{patch, tubelet, dim, depth, heads, mlp_ratio}`` dict."""
    kw = {k: cfg[k] for k in ("patch", "dim", "depth", "heads") if k in cfg}
    kw["mlp_ratio"] = float(cfg.get("mlp_ratio", 4.0))
    if image:
        return ImageViT(**kw)
    return VideoViT(tubelet=int(cfg.get("tubelet", 2)), **kw)


def count_parameters(module: nn.Module) -> int:
    return int(sum(p.numel() for p in module.parameters()))

