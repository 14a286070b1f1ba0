"""Gaussian diffusion over latents: the forward process, the training loss and DDIM sampling.

The process is kept apart from the denoiser (any eps_theta(z_t, t, y) works) and the noise
schedule is a pure function. Training predicts the noise (Ho et al. 2020) and drops the class
label with probability ``p_uncond`` so that one network also learns the unconditional model;
sampling mixes the two (classifier-free guidance, Ho & Salimans 2022) along a deterministic
DDIM path (Song et al. 2021) of a few dozen steps.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def cosine_beta_schedule(timesteps: int, s: float = 0.008) -> torch.Tensor:
    """Betas of the cosine schedule (Nichol & Dhariwal 2021), clipped to [0, 0.999]."""
    steps = torch.arange(timesteps + 1, dtype=torch.float64) / timesteps
    alpha_bar = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
    alpha_bar = alpha_bar / alpha_bar[0]
    betas = 1 - alpha_bar[1:] / alpha_bar[:-1]
    return betas.clamp(0, 0.999).float()


class GaussianDiffusion(nn.Module):
    """q(z_t | z_0) with the given betas around a class-conditional noise predictor
    ``denoiser(z_t, t, y)``; class index ``null_class`` means "no class"."""

    alpha_bar: torch.Tensor

    def __init__(
        self, denoiser: nn.Module, betas: torch.Tensor, null_class: int, p_uncond: float = 0.1
    ) -> None:
        super().__init__()
        if betas.ndim != 1 or not bool(((betas > 0) & (betas < 1)).all()):
            raise ValueError("betas must be a 1-D tensor of values in (0, 1)")
        self.denoiser = denoiser
        self.p_uncond = p_uncond
        self.timesteps = int(betas.numel())
        self.null_class = null_class
        self.register_buffer("alpha_bar", torch.cumprod(1.0 - betas, dim=0), persistent=False)

    def q_sample(self, z0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """z_t = sqrt(abar_t) z_0 + sqrt(1 - abar_t) eps."""
        ab = self.alpha_bar[t].view(-1, 1, 1, 1)  # (B, 1, 1, 1)
        return ab.sqrt() * z0 + (1 - ab).sqrt() * noise

    def loss(self, z0: torch.Tensor, y: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """Noise-prediction MSE on a batch of clean latents with class labels."""
        b = z0.shape[0]
        t = torch.randint(0, self.timesteps, (b,), generator=gen).to(z0.device)
        noise = torch.randn(z0.shape, generator=gen).to(z0.device)  # CPU generator: seeded
        drop = (torch.rand(b, generator=gen) < self.p_uncond).to(z0.device)
        y = torch.where(drop, torch.full_like(y, self.null_class), y)
        pred = self.denoiser(self.q_sample(z0, t, noise), t, y)
        return nn.functional.mse_loss(pred, noise)

    def _eps(self, z: torch.Tensor, t: int, y: torch.Tensor, guidance: float) -> torch.Tensor:
        tt = torch.full((z.shape[0],), t, dtype=torch.long, device=z.device)
        if guidance == 0.0:
            return self.denoiser(z, tt, y)
        null = torch.full_like(y, self.null_class)
        both = self.denoiser(torch.cat([z, z]), torch.cat([tt, tt]), torch.cat([y, null]))
        cond, uncond = both.chunk(2)  # each (B, Z, h, w)
        return cond + guidance * (cond - uncond)

    @torch.no_grad()
    def sample(
        self,
        y: torch.Tensor,
        shape: tuple[int, int, int],
        gen: torch.Generator,
        *,
        steps: int = 50,
        guidance: float = 1.0,
        clip: float = 0.0,
        min_signal: float = 0.1,
        eta: float = 0.0,
    ) -> torch.Tensor:
        """DDIM latents for classes ``y`` (B,), each of ``shape`` (Z, h, w); ``eta`` = 0 is
        the deterministic path, 1 adds the DDPM posterior's noise at every step.

        The path starts at the noisiest step whose signal scale sqrt(alpha_bar) is still
        ``min_signal`` (from pure noise, which differs from that step's marginal by the 10 %
        signal): at t = T the cosine schedule's alpha_bar is ~1e-9, and the predicted clean
        latent, a division by its root, turns a small noise-prediction error into garbage
        that later steps never undo (measured: saturated images). With ``clip`` > 0 each
        step's predicted clean latent is also clamped to [-clip, clip], the noise re-derived
        from it."""
        if not 1 <= steps <= self.timesteps:
            raise ValueError(f"steps must be in 1..{self.timesteps}, got {steps}")
        start = int((self.alpha_bar.sqrt() >= min_signal).sum()) - 1
        ts = torch.linspace(max(start, 0), 0, steps).round().long().tolist()
        z = torch.randn((y.shape[0], *shape), generator=gen).to(y.device)
        for i, t in enumerate(ts):
            eps = self._eps(z, t, y, guidance)
            ab = self.alpha_bar[t]
            ab_prev = self.alpha_bar[ts[i + 1]] if i + 1 < len(ts) else torch.ones_like(ab)
            z0 = (z - (1 - ab).sqrt() * eps) / ab.sqrt()
            if clip > 0:
                z0 = z0.clamp(-clip, clip)
                eps = (z - ab.sqrt() * z0) / (1 - ab).sqrt()
            var = eta**2 * (1 - ab_prev) / (1 - ab) * (1 - ab / ab_prev)  # DDIM sigma_t^2
            noise = torch.randn(z.shape, generator=gen).to(z.device)
            z = ab_prev.sqrt() * z0 + (1 - ab_prev - var).clamp_min(0).sqrt() * eps
            z = z + var.sqrt() * noise
        return z
