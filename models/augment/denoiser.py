"""Class-conditional U-Net that predicts the noise in a DDPM latent (Ho et al. 2020).

Two resolution levels with residual blocks, self-attention at the coarsest one, a sinusoidal
timestep embedding and a learned class embedding whose extra last row is the "no class" token
used for classifier-free guidance (Ho & Salimans 2022).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from models.augment.blocks import ResBlock, SelfAttention, Upsample, downsample, group_norm


@dataclass(frozen=True)
class DenoiserConfig:
    """Shape of the denoiser; ``num_classes`` real classes plus one null class."""

    in_channels: int = 4
    channels: tuple[int, ...] = (48, 96)
    num_classes: int = 6
    dropout: float = 0.1

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "channels": list(self.channels)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DenoiserConfig:
        return cls(**{**d, "channels": tuple(d["channels"])})


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of integer timesteps (B,) -> (B, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]  # (B, half)
    return torch.cat([args.cos(), args.sin()], dim=1)  # (B, dim)


class LatentDenoiser(nn.Module):
    """eps_theta(z_t, t, y): latents (B, Z, h, w), timesteps (B,), classes (B,) -> noise."""

    def __init__(self, cfg: DenoiserConfig) -> None:
        super().__init__()
        self.cfg = cfg
        c0, c1 = cfg.channels
        emb = 4 * c0
        self.null_class = cfg.num_classes
        self.time_mlp = nn.Sequential(nn.Linear(c0, emb), nn.SiLU(), nn.Linear(emb, emb))
        self.class_emb = nn.Embedding(cfg.num_classes + 1, emb)
        self.stem = nn.Conv2d(cfg.in_channels, c0, 3, padding=1)
        self.down0 = nn.ModuleList([ResBlock(c0, c0, emb, cfg.dropout) for _ in range(2)])
        self.pool = downsample(c0)
        self.down1 = nn.ModuleList([ResBlock(c0, c1, emb, cfg.dropout)])
        self.down1 += [ResBlock(c1, c1, emb, cfg.dropout)]
        self.mid = ResBlock(c1, c1, emb, cfg.dropout)
        self.attn = SelfAttention(c1)
        self.mid2 = ResBlock(c1, c1, emb, cfg.dropout)
        self.up1 = nn.ModuleList([ResBlock(2 * c1, c1, emb, cfg.dropout) for _ in range(2)])
        self.upsample = Upsample(c1)
        self.up0 = nn.ModuleList([ResBlock(c1 + c0, c0, emb, cfg.dropout)])
        self.up0 += [ResBlock(2 * c0, c0, emb, cfg.dropout)]
        last = nn.Conv2d(c0, cfg.in_channels, 3, padding=1)
        nn.init.zeros_(last.weight)  # starts by predicting zero noise
        nn.init.zeros_(last.bias)  # type: ignore[arg-type]  # Conv2d(bias=True) has one
        self.out = nn.Sequential(group_norm(c0), nn.SiLU(), last)

    def forward(self, z: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        emb = self.time_mlp(timestep_embedding(t, self.cfg.channels[0])) + self.class_emb(y)
        h = self.stem(z)  # (B, c0, h, w)
        skips = []
        for block in self.down0:
            h = block(h, emb)
            skips.append(h)
        h = self.pool(h)  # (B, c0, h/2, w/2)
        for block in self.down1:
            h = block(h, emb)
            skips.append(h)
        h = self.mid2(self.attn(self.mid(h, emb)), emb)  # (B, c1, h/2, w/2)
        for block in self.up1:
            h = block(torch.cat([h, skips.pop()], dim=1), emb)  # (B, 2c1, h/2, w/2) in
        h = self.upsample(h)  # (B, c1, h, w)
        for block in self.up0:
            h = block(torch.cat([h, skips.pop()], dim=1), emb)  # (B, c1|c0 + c0, h, w) in
        return self.out(h)
