"""KL-regularised convolutional autoencoder for grey face crops (the latent space of the DDPM).

After Rombach et al. 2022 (LDM, "KL-f4"): the encoder gives a diagonal Gaussian over a
(z_channels, H/4, W/4) latent, a tiny KL weight keeps it near N(0, I) without blurring, and the
decoder maps latents back to pixels in [-1, 1]. Without perceptual-loss weights (none can be
downloaded here) the reconstruction loss is L1 plus an L1 on image gradients, which keeps
edges (eyes, brows, mouth corners) sharper than L1 alone.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from models.augment.blocks import ResBlock, Upsample, group_norm


@dataclass(frozen=True)
class AutoencoderConfig:
    """Shape of the autoencoder; the latent side is img_size / 2**len(channels)."""

    img_size: int = 64
    in_channels: int = 1
    channels: tuple[int, ...] = (32, 64)
    z_channels: int = 4

    @property
    def latent_size(self) -> int:
        return self.img_size // 2 ** len(self.channels)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "channels": list(self.channels)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AutoencoderConfig:
        return cls(**{**d, "channels": tuple(d["channels"])})


class LatentAutoencoder(nn.Module):
    """Encoder -> (mean, logvar) of the latent; decoder latent -> image in [-1, 1]."""

    def __init__(self, cfg: AutoencoderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        chans = cfg.channels
        # full resolution only in the first and last conv: the CPU cost is in the 64 px maps
        widths = (chans[0] // 2, *chans)  # (16, 32, 64): channels at S, S/2, S/4
        enc: list[nn.Module] = [nn.Conv2d(cfg.in_channels, widths[0], 3, padding=1)]
        for c, c_next in itertools.pairwise(widths):
            enc += [nn.Conv2d(c, c_next, 3, stride=2, padding=1), ResBlock(c_next, c_next)]
        c = widths[-1]
        enc += [group_norm(c), nn.SiLU(), nn.Conv2d(c, 2 * cfg.z_channels, 1)]
        self.encoder = nn.Sequential(*enc)
        dec: list[nn.Module] = [nn.Conv2d(cfg.z_channels, c, 3, padding=1), ResBlock(c, c)]
        for c, c_next in zip(widths[:0:-1], widths[-2::-1], strict=True):
            dec += [Upsample(c, c_next)]
            dec += [ResBlock(c_next, c_next) if c_next != widths[0] else nn.SiLU()]
        dec += [nn.Conv2d(widths[0], cfg.in_channels, 3, padding=1)]
        self.decoder = nn.Sequential(*dec)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Images (B, C, H, W) in [-1, 1] -> latent mean and log-variance (B, Z, H/4, W/4)."""
        moments = self.encoder(x)  # (B, 2Z, h, w)
        mean, logvar = moments.chunk(2, dim=1)  # each (B, Z, h, w)
        return mean, logvar.clamp(-30.0, 20.0)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latents (B, Z, h, w) -> images (B, C, H, W), clamped to [-1, 1]."""
        return self.decoder(z).clamp(-1.0, 1.0)

    def loss(
        self, x: torch.Tensor, gen: torch.Generator | None = None, kl_weight: float = 1e-6
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Reconstruction (L1 + gradient L1) + ``kl_weight`` x KL to N(0, I) on a batch."""
        mean, logvar = self.encode(x)
        noise = torch.randn(mean.shape, generator=gen, device=mean.device)
        z = mean + torch.exp(0.5 * logvar) * noise
        rec = self.decoder(z)  # unclamped for the gradient
        l1 = (rec - x).abs().mean()
        grad = _grad_l1(rec, x)
        kl = 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=(1, 2, 3)).mean()
        total = l1 + grad + kl_weight * kl
        return total, {"l1": l1.item(), "grad": grad.item(), "kl": kl.item()}


def _grad_l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean |horizontal and vertical finite differences of a - b|."""
    d = a - b
    return (d[..., :, 1:] - d[..., :, :-1]).abs().mean() + (
        d[..., 1:, :] - d[..., :-1, :]
    ).abs().mean()
