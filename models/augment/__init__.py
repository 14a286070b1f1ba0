"""Class-conditional latent DDPM that augments the scarce learning-emotion classes.

Latent diffusion (Rombach et al. 2022): a small KL-regularised autoencoder compresses 64 px
grey face crops 4x per side; a class-conditional denoiser (Ho et al. 2020, with classifier-free
guidance, Ho & Salimans 2022) learns the latents; DDIM (Song et al. 2021) samples them. The
job writes sampled crops as a manifest folder that ``models.train --synthetic`` adds to the
training split only. Nothing here runs in the worker or the service.
"""

from models.augment.autoencoder import AutoencoderConfig, LatentAutoencoder
from models.augment.denoiser import DenoiserConfig, LatentDenoiser
from models.augment.diffusion import GaussianDiffusion, cosine_beta_schedule

__all__ = [
    "AutoencoderConfig",
    "DenoiserConfig",
    "GaussianDiffusion",
    "LatentAutoencoder",
    "LatentDenoiser",
    "cosine_beta_schedule",
]
