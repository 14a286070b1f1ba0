"""Dual-branch Swin fusion network for learning emotions.

Reference: Ji L., Ren H., Wang W., Du Y., Zhou H., Fu Y. "Multimodal and multiscale facial
expression recognition analysis for learning emotions", Journal of Zhengzhou University
(Engineering Science), 2026, 47(3): 126-133, §2.2 (Eq. 3-5).

A global Swin branch sees the face; a local Swin branch sees its SUN saliency map (computed
inside the network by ``models.saliency.SunSaliency``, so it exports with the model). At each of
the four stages i the branches are fused and the result continues the global branch:

    F_i = Conv3x3(concat(G_i, L_i))            # tile-and-concatenate fusion (Eq. 3)
    S_i = γ(F_i)                               # local gate: conv1x1-ReLU-conv1x1-sigmoid (Eq. 4)
    E_i = S_i ⊙ F_i + G_i                      # gated residual (Eq. 5)
    E_i <- E_i + tanh(ReLU(Conv1x1(E_i)))      # 1x1 conv + ReLU and tanh refinement

Stem: ``stem="patch"`` is Swin's 4x4 patchify (a stride-4 conv); ``stem="conv"`` replaces it in
both branches (and in the global-only ablation) by a small convolutional stem after Xiao T. et
al. "Early convolutions help transformers see better", NeurIPS 2021: two 3x3 stride-2 convs
with BatchNorm + ReLU whose width doubles up to the embed dim, then a 1x1 conv, then the same
LayerNorm as the patch embedding. It is passed to timm as ``embed_layer``.

Ablations: ``fusion="sum"`` replaces TC + gate by E_i = G_i + L_i (same refinement);
``fusion="none"`` is the global branch alone (no saliency, no local branch).
Both branches are timm ``SwinTransformer`` (``pretrained=False``): the local branch through
``forward_intermediates``, the global branch stage by stage through its ``patch_embed`` and
``layers`` modules (needed because E_i feeds stage i+1).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import torch
from timm.layers import PatchEmbed
from timm.models import register_model
from timm.models.swin_transformer import SwinTransformer
from torch import nn

from contract.labels import LABELS
from models.errors import ConfigError
from models.saliency import SunParams, SunSaliency

FusionMode = Literal["gate", "sum", "none"]
StemKind = Literal["patch", "conv"]
FusionInit = Literal["default", "zero"]
GREY_MEAN: tuple[float, float, float] = (0.5, 0.5, 0.5)
GREY_STD: tuple[float, float, float] = (0.25, 0.25, 0.25)
# grey mean and standard deviation of the shared training crops (64 px), the target of
# ``photo_norm``
PHOTO_MEAN, PHOTO_STD = 0.42, 0.21


@dataclass(frozen=True)
class FusionConfig:
    """Architecture arguments; stored in checkpoints and the export sidecar."""

    img_size: int = 96
    embed_dim: int = 32
    depths: tuple[int, ...] = (2, 2, 2, 2)
    num_heads: tuple[int, ...] = (1, 2, 4, 8)
    window_size: int = 6
    fusion: FusionMode = "gate"
    num_classes: int = len(LABELS)
    drop_rate: float = 0.1
    drop_path_rate: float = 0.1
    mean: tuple[float, float, float] = GREY_MEAN
    std: tuple[float, float, float] = GREY_STD
    sun: dict[str, Any] = field(default_factory=lambda: SunParams().to_dict())
    grey_saliency: bool = True  # input is greyscale: saliency filters intensity only
    stem: StemKind = "patch"  # "conv": Xiao et al. 2021 convolutional stem in both branches
    # standardise each image's brightness and contrast in the graph, before both branches
    # (the joy sources are brighter than the webcam ones: a shortcut; see the model card)
    photo_norm: bool = False
    # "zero": the TC conv starts at zero (ControlNet's "zero convolution", Zhang, Rao and
    # Agrawala 2023), so the untrained network is the global branch plus the refinement and the
    # saliency branch enters only as far as the loss pulls it in; gated fusion only
    fusion_init: FusionInit = "default"
    # training only: the share of faces whose saliency branch is zeroed at every stage (modality
    # dropout, "ModDrop", Neverova et al. 2016), so the global path must also stand alone
    local_drop: float = 0.0

    def __post_init__(self) -> None:
        if self.fusion not in ("gate", "sum", "none"):
            raise ConfigError(f"fusion must be gate, sum or none, got {self.fusion!r}")
        if self.stem not in ("patch", "conv"):
            raise ConfigError(f"stem must be patch or conv, got {self.stem!r}")
        if self.fusion_init not in ("default", "zero"):
            raise ConfigError(f"fusion_init must be default or zero, got {self.fusion_init!r}")
        if self.fusion_init == "zero" and self.fusion != "gate":
            raise ConfigError(f"fusion_init zero needs fusion gate, got {self.fusion!r}")
        if not 0.0 <= self.local_drop < 1.0 or (self.local_drop and self.fusion == "none"):
            raise ConfigError(
                f"local_drop must be in [0, 1) with a local branch, got {self.local_drop}"
            )
        if len(self.depths) != 4 or len(self.num_heads) != 4:
            raise ConfigError(f"need 4 stages, got depths {self.depths} heads {self.num_heads}")
        if self.img_size % (4 * 8) != 0:
            raise ConfigError(f"img_size must be a multiple of 32, got {self.img_size}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly arguments."""
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FusionConfig:
        """Inverse of ``to_dict`` (tuples restored)."""
        tuples = {"depths", "num_heads", "mean", "std"}
        kw: dict[str, Any] = {k: tuple(v) if k in tuples else v for k, v in d.items()}
        return cls(**kw)


class ConvStem(nn.Module):
    """Stride-4 convolutional stem (Xiao et al. 2021) with timm ``PatchEmbed``'s interface.

    (B, in_chans, H, W) -> (B, H/4, W/4, embed_dim) NHWC, as Swin's patch embedding returns.
    """

    def __init__(  # timm's SwinTransformer passes every argument by keyword
        self,
        *,
        img_size: int | tuple[int, int] = 96,
        patch_size: int = 4,
        in_chans: int = 3,
        embed_dim: int = 32,
        norm_layer: type[nn.Module] | None = None,
        strict_img_size: bool = True,
        output_fmt: str = "NHWC",
        **_: Any,
    ) -> None:
        super().__init__()
        if patch_size != 4 or output_fmt != "NHWC":
            raise ConfigError(f"ConvStem is stride 4, NHWC; got {patch_size}, {output_fmt}")
        size = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
        self.img_size = size
        self.patch_size = (patch_size, patch_size)
        self.grid_size = (size[0] // patch_size, size[1] // patch_size)
        self.num_patches = self.grid_size[0] * self.grid_size[1]
        self.strict_img_size = strict_img_size
        mid = max(embed_dim // 2, 8)
        self.convs = nn.Sequential(
            nn.Conv2d(in_chans, mid, kernel_size=3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(mid),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid, embed_dim, kernel_size=3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(embed_dim),
            nn.ReLU(inplace=True),
        )
        self.proj = nn.Conv2d(embed_dim, embed_dim, kernel_size=1)
        self.norm = norm_layer(embed_dim) if norm_layer else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, H, W) -> (B, H/4, W/4, embed_dim)."""
        x = self.proj(self.convs(x))  # (B, embed_dim, H/4, W/4)
        return self.norm(x.permute(0, 2, 3, 1))  # (B, H/4, W/4, embed_dim) NHWC


def _swin(cfg: FusionConfig, in_chans: int) -> SwinTransformer:
    return SwinTransformer(
        img_size=cfg.img_size,
        patch_size=4,
        in_chans=in_chans,
        num_classes=0,
        embed_dim=cfg.embed_dim,
        depths=cfg.depths,
        num_heads=cfg.num_heads,
        window_size=cfg.window_size,
        drop_path_rate=cfg.drop_path_rate,
        embed_layer=ConvStem if cfg.stem == "conv" else PatchEmbed,
    )


class StageFusion(nn.Module):
    """Fuses global G_i and local L_i (both (B, C, H, W)) into E_i (B, C, H, W).

    ``zero_init``: the TC conv's weights and bias start at 0, so F_i = 0 and E_i = G_i before
    training (the default draw is still made first: other weights are the same either way)."""

    def __init__(self, dim: int, mode: FusionMode, zero_init: bool = False) -> None:
        super().__init__()
        self.mode = mode
        if mode == "gate":
            self.tc = nn.Conv2d(2 * dim, dim, kernel_size=3, padding=1)
            if zero_init:
                nn.init.zeros_(self.tc.weight)
                nn.init.zeros_(self.tc.bias)  # type: ignore[arg-type]  # bias=True
            self.gate = nn.Sequential(
                nn.Conv2d(dim, dim // 2, kernel_size=1),
                nn.ReLU(inplace=True),
                nn.Conv2d(dim // 2, dim, kernel_size=1),
                nn.Sigmoid(),
            )
        self.refine = nn.Conv2d(dim, dim, kernel_size=1)

    def forward(self, g: torch.Tensor, loc: torch.Tensor) -> torch.Tensor:
        """E_i for one stage."""
        if self.mode == "gate":
            f = self.tc(torch.cat([g, loc], dim=1))  # cat: (B, 2C, H, W) -> tc: (B, C, H, W)
            e = self.gate(f) * f + g  # (B, C, H, W)
        else:
            e = g + loc  # (B, C, H, W)
        return e + torch.tanh(torch.relu(self.refine(e)))  # (B, C, H, W)


class LearningEmotionNet(nn.Module):
    """Input: normalised image (B, 3, H, W) (see ``cfg.mean/std``); output: logits (B, classes)."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, cfg: FusionConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.register_buffer("mean", torch.tensor(cfg.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(cfg.std).view(1, 3, 1, 1), persistent=False)
        self.global_branch = _swin(cfg, in_chans=3)
        self.num_features = self.global_branch.num_features
        if cfg.fusion != "none":
            self.saliency: SunSaliency | None = SunSaliency(
                SunParams.from_dict(cfg.sun), size=cfg.img_size, grey=cfg.grey_saliency
            )
            self.local_branch: SwinTransformer | None = _swin(cfg, in_chans=1)
            dims = [cfg.embed_dim * 2**i for i in range(4)]
            zero = cfg.fusion_init == "zero"
            self.fusions = nn.ModuleList(StageFusion(d, cfg.fusion, zero) for d in dims)
        else:
            self.saliency = None
            self.local_branch = None
            self.fusions = nn.ModuleList()
        self.head_drop = nn.Dropout(cfg.drop_rate)
        self.head = nn.Linear(self.num_features, cfg.num_classes)

    def reset_classifier(self, num_classes: int) -> None:
        """New head (e.g. FER2013's 7 classes -> the 6 learning emotions)."""
        self.head = nn.Linear(self.num_features, num_classes)

    def saliency_map(self, x: torch.Tensor) -> torch.Tensor:
        """Saliency (B, 1, H, W) in [0, 1] of a normalised image batch."""
        sal = self.saliency or SunSaliency(SunParams.from_dict(self.cfg.sun), x.shape[-1]).to(x)
        return sal(x * self.std + self.mean)  # un-normalise to RGB in [0, 1]

    def standardise(self, x: torch.Tensor) -> torch.Tensor:
        """Each normalised image (B, 3, H, W) moved to grey mean PHOTO_MEAN and standard
        deviation PHOTO_STD over its pixels, clipped to the [0, 1] pixel range."""
        mu = x.mean(dim=(1, 2, 3), keepdim=True)  # (B, 1, 1, 1)
        sd = ((x - mu) ** 2).mean(dim=(1, 2, 3), keepdim=True).sqrt()  # (B, 1, 1, 1)
        pix = (x - mu) / (sd + 1e-2) * PHOTO_STD + PHOTO_MEAN  # pixel units
        return (pix.clamp(0.0, 1.0) - self.mean) / self.std  # (B, 3, H, W), normalised again

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Fused stage-4 features (B, H/32, W/32, C4) in NHWC."""
        if self.cfg.photo_norm:
            x = self.standardise(x)
        gb = self.global_branch
        g = gb.patch_embed(x)  # (B, H/4, W/4, C) NHWC
        if self.local_branch is None:
            for stage in gb.layers:
                g = stage(g)  # (B, H_i, W_i, C_i) NHWC
            return gb.norm(g)  # (B, h, w, C4)
        # local branch: timm intermediates, one per stage, NCHW (B, C_i, H_i, W_i)
        local = self.local_branch.forward_intermediates(
            self.saliency_map(x), intermediates_only=True
        )
        assert isinstance(local, list)  # intermediates_only: the list alone, not a tuple
        keep = None
        if self.training and self.cfg.local_drop > 0:
            keep = (torch.rand(x.shape[0], 1, 1, 1, device=x.device) >= self.cfg.local_drop).to(x)
        for stage, fuse, loc_i in zip(gb.layers, self.fusions, local, strict=True):
            g = stage(g)  # (B, H_i, W_i, C_i) NHWC
            loc = loc_i if keep is None else keep * loc_i  # (B, C_i, H_i, W_i), dropped at 0
            e = fuse(g.permute(0, 3, 1, 2), loc)  # (B, C_i, H_i, W_i) NCHW
            g = e.permute(0, 2, 3, 1)  # (B, H_i, W_i, C_i) NHWC, continues the global branch
        return gb.norm(g)  # (B, h, w, C4)

    def forward_head(self, feats: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Average-pool NHWC features then classify."""
        pooled = feats.mean(dim=(1, 2))  # (B, C4)
        pooled = self.head_drop(pooled)
        return pooled if pre_logits else self.head(pooled)  # (B, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, num_classes)."""
        return self.forward_head(self.forward_features(x))


VARIANTS: dict[str, dict[str, Any]] = {
    # CPU default: trains in minutes on 2 cores
    "learning_emotion_small": {
        "img_size": 96,
        "embed_dim": 32,
        "depths": (2, 2, 2, 2),
        "num_heads": (1, 2, 4, 8),
        "window_size": 6,
    },
    # swin_tiny-sized, for GPUs
    "learning_emotion_tiny": {
        "img_size": 224,
        "embed_dim": 96,
        "depths": (2, 2, 6, 2),
        "num_heads": (3, 6, 12, 24),
        "window_size": 7,
        "drop_path_rate": 0.2,
    },
}


def create_fusion_model(variant: str, **overrides: Any) -> LearningEmotionNet:
    """Factory: a registered variant with optional overrides (e.g. ``fusion="none"``)."""
    if variant not in VARIANTS:
        raise ConfigError(f"unknown fusion variant {variant!r}; known: {sorted(VARIANTS)}")
    kwargs = {**VARIANTS[variant], **overrides}
    for timm_only in ("pretrained", "pretrained_cfg", "pretrained_cfg_overlay", "cache_dir"):
        kwargs.pop(timm_only, None)  # timm.create_model passes these; weights are never loaded
    return LearningEmotionNet(FusionConfig(**kwargs))


@register_model
def learning_emotion_small(pretrained: bool = False, **kwargs: Any) -> LearningEmotionNet:
    """CPU-sized fusion model (embed 32, depths 2-2-2-2, 96 px)."""
    return create_fusion_model("learning_emotion_small", **kwargs)


@register_model
def learning_emotion_tiny(pretrained: bool = False, **kwargs: Any) -> LearningEmotionNet:
    """swin_tiny-sized fusion model (embed 96, depths 2-2-6-2, 224 px)."""
    return create_fusion_model("learning_emotion_tiny", **kwargs)
