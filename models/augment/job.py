"""Training and sampling of the latent DDPM: one self-describing, resumable checkpoint.

Phase 1 trains the autoencoder on the training split's grey crops (flips as augmentation);
phase 2 encodes every crop (and its mirror image) once, scales the latents to unit variance
and trains the class-conditional denoiser on them, keeping an exponential moving average of
its weights for sampling. ``ddpm.pt`` is rewritten atomically every ``save_every`` steps, so a
stopped run resumes where it was.
"""

from __future__ import annotations

import copy
import csv
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn
from tqdm import tqdm  # type: ignore[import-untyped]

from contract.labels import LABELS
from models.augment.autoencoder import AutoencoderConfig, LatentAutoencoder
from models.augment.denoiser import DenoiserConfig, LatentDenoiser
from models.augment.diffusion import GaussianDiffusion, cosine_beta_schedule
from models.checkpoint import read_checkpoint, save_checkpoint
from models.data import MANIFEST, load_grey, load_manifest
from models.errors import ConfigError
from models.settings import ModelsSettings

logger = logging.getLogger(__name__)

DDPM_FORMAT = "emo-ddpm/1"
SOURCE = "ddpm"  # the source column of sampled crops (so per-source reports show them)


@dataclass
class AugmentConfig:
    """Everything that defines an augmenter run (stored in its checkpoint)."""

    img_size: int = 64
    seed: int = 0
    batch_size: int = 64
    ae_steps: int = 3000
    ae_minutes: float = 10.0
    ae_lr: float = 1e-3
    kl_weight: float = 1e-6
    ddpm_steps: int = 20_000
    ddpm_minutes: float = 30.0
    lr: float = 3e-4
    timesteps: int = 1000
    p_uncond: float = 0.1
    ema: float = 0.999
    save_every: int = 500
    data_dir: str = ""
    split: str = "train"


@dataclass
class Progress:
    """Where a run stands (persisted)."""

    ae_step: int = 0
    ae_elapsed: float = 0.0
    ae_done: bool = False
    ddpm_step: int = 0
    ddpm_elapsed: float = 0.0
    latent_scale: float = 1.0
    latent_clip: float = 0.0  # largest |scaled latent| of the training crops (sampling clamp)
    history: list[dict[str, Any]] = field(default_factory=list)


def _device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def load_training_crops(cfg: AugmentConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """The split's crops as grey float (N, 1, S, S) in [-1, 1] and labels (N,)."""
    settings = ModelsSettings()
    data_dir = Path(cfg.data_dir) if cfg.data_dir else settings.learning_emotions_dir
    rows = load_manifest(data_dir, cfg.split)
    grey = load_grey(rows, cfg.img_size, settings.cache_dir)  # (N, S, S)
    x = torch.from_numpy(grey).float().div(127.5).sub(1.0).unsqueeze(1)  # (N, 1, S, S)
    return x, torch.tensor([r.label for r in rows], dtype=torch.long)


class AugmenterTrainer:
    """Owns the two networks, their optimisers, the EMA copy and the checkpoint."""

    def __init__(self, cfg: AugmentConfig, out: Path) -> None:
        self.cfg, self.out = cfg, out
        self.gen = torch.Generator().manual_seed(cfg.seed)
        torch.manual_seed(cfg.seed)
        dev = _device()
        self.ae = LatentAutoencoder(AutoencoderConfig(img_size=cfg.img_size)).to(dev)
        self.denoiser = LatentDenoiser(DenoiserConfig(num_classes=len(LABELS))).to(dev)
        self.ema = copy.deepcopy(self.denoiser).eval().requires_grad_(False)
        betas = cosine_beta_schedule(cfg.timesteps)
        self.diffusion = GaussianDiffusion(
            self.denoiser, betas, self.denoiser.null_class, cfg.p_uncond
        ).to(dev)
        self.ae_opt = torch.optim.AdamW(self.ae.parameters(), lr=cfg.ae_lr, weight_decay=0.0)
        self.opt = torch.optim.AdamW(self.denoiser.parameters(), lr=cfg.lr, weight_decay=0.0)
        self.progress = Progress()

    @property
    def path(self) -> Path:
        return self.out / "ddpm.pt"

    def payload(self) -> dict[str, Any]:
        return {
            "kind": "latent-ddpm",
            "config": asdict(self.cfg),
            "progress": asdict(self.progress),
            "ae_args": self.ae.cfg.to_dict(),
            "ae": self.ae.state_dict(),
            "ae_opt": self.ae_opt.state_dict(),
            "denoiser_args": self.denoiser.cfg.to_dict(),
            "denoiser": self.denoiser.state_dict(),
            "ema": self.ema.state_dict(),
            "opt": self.opt.state_dict(),
        }

    def resume(self, ckpt: dict[str, Any]) -> None:
        self.ae.load_state_dict(ckpt["ae"])
        self.ae_opt.load_state_dict(ckpt["ae_opt"])
        self.denoiser.load_state_dict(ckpt["denoiser"])
        self.ema.load_state_dict(ckpt["ema"])
        self.opt.load_state_dict(ckpt["opt"])
        self.progress = Progress(**ckpt["progress"])

    def save(self) -> None:
        save_checkpoint(self.path, self.payload(), fmt=DDPM_FORMAT)

    def _flip(self, x: torch.Tensor) -> torch.Tensor:
        flip = torch.rand(x.shape[0], generator=self.gen) < 0.5
        return torch.where(flip.view(-1, 1, 1, 1).to(x.device), x.flip(3), x)

    def train_autoencoder(self, x: torch.Tensor) -> None:
        cfg, prog = self.cfg, self.progress
        bar = tqdm(total=cfg.ae_steps, initial=prog.ae_step, desc="autoencoder", leave=False)
        self.ae.train()
        while prog.ae_step < cfg.ae_steps and prog.ae_elapsed < cfg.ae_minutes * 60:
            t0 = time.monotonic()
            idx = torch.randint(0, len(x), (cfg.batch_size,), generator=self.gen)
            loss, parts = self.ae.loss(self._flip(x[idx].to(_device())), self.gen, cfg.kl_weight)
            self.ae_opt.zero_grad(set_to_none=True)
            loss.backward()
            self.ae_opt.step()
            prog.ae_step += 1
            prog.ae_elapsed += time.monotonic() - t0
            bar.update(1)
            if prog.ae_step % cfg.save_every == 0:
                self._log("autoencoder", prog.ae_step, prog.ae_elapsed, parts)
                self.save()
        bar.close()
        prog.ae_done = True
        self.save()

    @torch.no_grad()
    def encode_all(self, x: torch.Tensor) -> torch.Tensor:
        """Posterior means of every crop and its mirror image, (2N, Z, s, s), unscaled."""
        self.ae.eval()
        both = torch.cat([x, x.flip(3)])  # (2N, 1, S, S)
        return torch.cat([self.ae.encode(b.to(_device()))[0] for b in both.split(256)])

    def train_denoiser(self, z: torch.Tensor, y: torch.Tensor) -> None:
        cfg, prog = self.cfg, self.progress
        bar = tqdm(total=cfg.ddpm_steps, initial=prog.ddpm_step, desc="ddpm", leave=False)
        self.denoiser.train()
        while prog.ddpm_step < cfg.ddpm_steps and prog.ddpm_elapsed < cfg.ddpm_minutes * 60:
            t0 = time.monotonic()
            idx = torch.randint(0, len(z), (cfg.batch_size,), generator=self.gen)
            loss = self.diffusion.loss(z[idx].to(_device()), y[idx].to(_device()), self.gen)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(self.denoiser.parameters(), 1.0)
            self.opt.step()
            with torch.no_grad():
                for e, p in zip(self.ema.parameters(), self.denoiser.parameters(), strict=True):
                    e.lerp_(p, 1.0 - cfg.ema)
            prog.ddpm_step += 1
            prog.ddpm_elapsed += time.monotonic() - t0
            bar.update(1)
            if prog.ddpm_step % cfg.save_every == 0:
                self._log("ddpm", prog.ddpm_step, prog.ddpm_elapsed, {"mse": loss.item()})
                self.save()
        bar.close()
        self.save()

    def _log(self, phase: str, step: int, elapsed: float, parts: dict[str, float]) -> None:
        entry = {"phase": phase, "step": step, "elapsed_s": round(elapsed, 1)}
        entry |= {k: round(v, 5) for k, v in parts.items()}
        self.progress.history.append(entry)
        logger.info("%s", entry)


def train_augmenter(cfg: AugmentConfig, out: Path, resume: bool = False) -> Path:
    """Train (or continue, with ``resume``) the autoencoder then the DDPM; returns ddpm.pt."""
    trainer = AugmenterTrainer(cfg, out)
    if resume:
        trainer.resume(load_ddpm_checkpoint(trainer.path))
    x, y = load_training_crops(cfg)
    logger.info("augmenter data: %d crops of split %r at %d px", len(x), cfg.split, cfg.img_size)
    if not trainer.progress.ae_done:
        trainer.train_autoencoder(x)
    z = trainer.encode_all(x)
    scale = 1.0 / float(z.std())
    trainer.progress.latent_scale = scale
    trainer.progress.latent_clip = float(z.abs().max()) * scale
    trainer.train_denoiser(z * scale, torch.cat([y, y]))
    return trainer.path


def load_ddpm_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint written by this job, or raise naming the file and what is wrong."""
    return read_checkpoint(path, DDPM_FORMAT, ("config", "progress", "ae", "ema"))


@dataclass(frozen=True)
class SamplerSettings:
    """How crops are drawn (``GaussianDiffusion.sample``)."""

    steps: int = 50  # DDIM steps
    guidance: float = 1.0  # classifier-free guidance weight (0 = conditional model alone)
    eta: float = 0.0  # 0 = deterministic DDIM, 1 = DDPM-like noise at every step
    min_signal: float = 0.1  # start where sqrt(alpha_bar) is this (see sample's docstring)


@dataclass
class Augmenter:
    """A trained autoencoder + EMA denoiser, ready to sample crops."""

    ae: LatentAutoencoder
    diffusion: GaussianDiffusion
    latent_scale: float
    latent_clip: float

    @classmethod
    def load(cls, path: Path) -> Augmenter:
        ckpt = load_ddpm_checkpoint(path)
        ae = LatentAutoencoder(AutoencoderConfig.from_dict(ckpt["ae_args"]))
        ae.load_state_dict(ckpt["ae"])
        denoiser = LatentDenoiser(DenoiserConfig.from_dict(ckpt["denoiser_args"]))
        denoiser.load_state_dict(ckpt["ema"])
        cfg = ckpt["config"]
        betas = cosine_beta_schedule(int(cfg["timesteps"]))
        diffusion = GaussianDiffusion(denoiser, betas, denoiser.null_class, float(cfg["p_uncond"]))
        prog = ckpt["progress"]
        return cls(ae.eval(), diffusion.eval(), prog["latent_scale"], prog["latent_clip"])

    @torch.no_grad()
    def sample(
        self, labels: torch.Tensor, gen: torch.Generator, settings: SamplerSettings
    ) -> np.ndarray:
        """Grey uint8 crops (B, S, S) of the given class indices (B,)."""
        c = self.ae.cfg
        shape = (c.z_channels, c.latent_size, c.latent_size)
        z = self.diffusion.sample(labels, shape, gen, clip=self.latent_clip, **asdict(settings))
        img = self.ae.decode(z / self.latent_scale)[:, 0]  # (B, S, S) in [-1, 1]
        return ((img + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy()


def parse_counts(spec: str) -> dict[int, int]:
    """``"confusion:400,thinking:250"`` -> {label index: number of crops}."""
    counts: dict[int, int] = {}
    for pair in filter(None, (p.strip() for p in spec.split(","))):
        label, _, n = pair.partition(":")
        if label not in LABELS or not n.isdigit() or int(n) < 1:
            raise ConfigError(
                f"--per-class pair {pair!r}: expected <{'|'.join(LABELS)}>:<positive count>"
            )
        counts[LABELS.index(label)] = int(n)
    if not counts:
        raise ConfigError(f"--per-class {spec!r} names no class")
    return counts


def sample_folder(
    aug: Augmenter,
    counts: dict[int, int],
    out: Path,
    settings: SamplerSettings,
    *,
    seed: int = 0,
    batch: int = 64,
) -> Path:
    """Write sampled crops as PNGs plus a manifest.csv (split ``train``) into ``out``."""
    gen = torch.Generator().manual_seed(seed)
    rows: list[dict[str, str]] = []
    for label, n in counts.items():
        name = LABELS[label]
        (out / "crops" / name).mkdir(parents=True, exist_ok=True)
        done = 0
        while done < n:
            k = min(batch, n - done)
            imgs = aug.sample(torch.full((k,), label, dtype=torch.long), gen, settings)
            for img in imgs:
                rel = f"crops/{name}/{SOURCE}-s{seed}-{done:05d}.png"
                if not cv2.imwrite(str(out / rel), img):
                    raise ConfigError(f"cannot write sampled crop {out / rel}")
                rows.append(
                    {"path": rel, "label": name, "source": SOURCE, "subject": SOURCE}
                    | {"original_label": name, "split": "train", "det_prob": ""}
                )
                done += 1
        logger.info("sampled %d %s crops", n, name)
    with (out / MANIFEST).open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return out
