"""Building blocks shared by the latent autoencoder and the denoiser."""

from __future__ import annotations

import torch
from torch import nn


def group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with at most 8 groups that divide ``channels``."""
    groups = next(g for g in (8, 4, 2, 1) if channels % g == 0)
    return nn.GroupNorm(groups, channels)


class ResBlock(nn.Module):
    """Pre-norm residual block (GroupNorm, SiLU, 3x3 conv, twice), optionally conditioned:
    an embedding vector is projected and added between the two convolutions."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int = 0, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm1 = group_norm(c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, c_out) if emb_dim else None
        self.norm2 = group_norm(c_out)
        self.drop = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None = None) -> torch.Tensor:
        h = self.conv1(nn.functional.silu(self.norm1(x)))  # (B, C_out, H, W)
        if self.emb is not None and emb is not None:
            h = h + self.emb(nn.functional.silu(emb))[:, :, None, None]  # (B, C_out, 1, 1)
        h = self.conv2(self.drop(nn.functional.silu(self.norm2(h))))
        return self.skip(x) + h


class SelfAttention(nn.Module):
    """Single-head self-attention over the positions of a feature map, residual."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = group_norm(channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        qkv = self.qkv(self.norm(x)).reshape(b, 3, c, h * w)  # (B, 3, C, HW)
        q, k, v = (qkv[:, i].transpose(1, 2) for i in range(3))  # each (B, HW, C)
        out = nn.functional.scaled_dot_product_attention(q, k, v)  # (B, HW, C)
        return x + self.proj(out.transpose(1, 2).reshape(b, c, h, w))  # (B, C, H, W)


def downsample(channels: int) -> nn.Conv2d:
    """Halve the resolution with a strided 3x3 conv."""
    return nn.Conv2d(channels, channels, 3, stride=2, padding=1)


class Upsample(nn.Module):
    """Double the resolution: nearest-neighbour, then a 3x3 conv (to ``c_out`` channels)."""

    def __init__(self, channels: int, c_out: int = 0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, c_out or channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(nn.functional.interpolate(x, scale_factor=2.0, mode="nearest"))
