"""Training job: ``python -m models.train [--preset cpu|paper] [--arch ...] [--seed N] ...``.

Two phases, each under a wall-clock budget and a step cap: FER2013 pre-training (7 basic
emotions, 7-class head), then fine-tuning on the six learning emotions (new head). Greyscale
input, AdamW, cross-entropy (class-weighted in fine-tuning), flip/shift/brightness augmentation;
2,000 FER2013 training faces are held out to watch pre-training. Every
``eval_every`` steps the model is scored on the validation split (macro-F1); ``last.pt``
(resumable: model, optimiser, progress, RNG) and ``best.pt`` (best validation) are written
atomically into ``--out``. With ``--ema D`` fine-tuning also keeps an exponential moving
average of the weights, and that average is what is scored and saved as ``best.pt``. With
``--mixup A`` every fine-tuning batch is blended with a shuffled copy of itself (mixup);
``--precision bf16`` runs training steps under bfloat16 autocast; ``--teachers A.pt,B.pt
--distill W`` also fits the teachers' softened probabilities (``models.distill``).
``--resume DIR/last.pt`` continues an interrupted run.
"""

from __future__ import annotations

import copy
import json
import logging
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import nn
from tqdm import tqdm  # type: ignore[import-untyped]

from contract.labels import LABELS
from models.adversary import SourceAdversary, ramp
from models.batches import Batches, group_weights, mixup_draw
from models.checkpoint import (
    build_model,
    ckpt_crop_scale,
    load_checkpoint,
    model_args_of,
    model_from_checkpoint,
    save_checkpoint,
)
from models.cli import entry_point
from models.data import (
    FER_CLASSES,
    SHARED_CROP_SCALE,
    ManifestRow,
    augment,
    check_framing,
    crop_scale_of,
    fer_extras,
    fer_holdout,
    load_extra_crops,
    load_fer2013,
    load_images,
    load_manifest,
    regroup,
    to_grey_rgb,
)
from models.distill import Teachers
from models.emotion import LearningEmotionNet, create_model
from models.errors import ConfigError
from models.metrics import macro_f1
from models.recover import recover
from models.saliency import fit_sun_params
from models.scoring import device, evaluate_torch, input_norm, split_report
from models.settings import ModelsSettings
from models.train_config import Phase, TrainConfig, lr_factor, memory_format, parse_cli

logger = logging.getLogger(__name__)


def n_classes(phase: str) -> int:
    """Classes of a phase's head: FER2013's seven in pre-training, else the six labels."""
    return len(FER_CLASSES) if phase == "pretrain" else len(LABELS)


class Trainer:
    """Runs the phases of one training run and writes its checkpoints."""

    def __init__(self, cfg: TrainConfig, out: Path, model: nn.Module, sun: dict[str, Any]) -> None:
        self.cfg, self.out, self.sun = cfg, out, sun
        self.model = model.to(device()).to(memory_format=memory_format(cfg))
        self.gen = torch.Generator().manual_seed(cfg.seed)
        self.phases: dict[str, Phase] = {}
        self.history: list[dict[str, Any]] = []
        self.aux_head: nn.Linear | None = None  # --fer-aux: FER2013 head while fine-tuning
        self.aux: Batches | None = None
        self.ema: nn.Module | None = None  # --ema: the averaged fine-tuning weights
        self.adversary: SourceAdversary | None = None  # --source-adversary (not exported)
        self.teachers: Teachers | None = None  # --teachers: distillation (models.distill)
        self._ema_pairs: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.crop_scale = SHARED_CROP_SCALE  # the data's framing, for the exported sidecar
        self.opt = self._optimizer()

    def add_aux(self, fer: Batches, head: dict[str, torch.Tensor] | None = None) -> None:
        """Joint FER2013 loss while fine-tuning: a 7-way head on the pooled features, new or
        ``head`` (the pre-training head, which then goes on learning)."""
        self._fusion_model("--fer-aux")
        if self.aux_head is None:
            self._new_aux_head()
            if head is not None:
                cast(nn.Linear, self.aux_head).load_state_dict(head)
        self.aux = fer

    def _new_aux_head(self) -> nn.Linear:
        features = cast(LearningEmotionNet, self.model).num_features
        self.aux_head = nn.Linear(features, len(FER_CLASSES)).to(device())
        self.opt.add_param_group({"params": list(self.aux_head.parameters())})
        return self.aux_head

    def add_adversary(self, labels: np.ndarray, sources: np.ndarray) -> None:
        """Train a new source adversary for these training labels and source ids on the
        fine-tuning batches (``cfg.source_adversary`` > 0)."""
        features = self._fusion_model("--source-adversary").num_features
        self._attach_adversary(SourceAdversary.for_data(features, labels, sources, len(LABELS)))

    def _attach_adversary(self, adversary: SourceAdversary) -> None:
        self.adversary = adversary.to(device())
        self.opt.add_param_group({"params": list(self.adversary.parameters())})

    def _fusion_model(self, flag: str) -> LearningEmotionNet:
        if not isinstance(self.model, LearningEmotionNet):
            raise ConfigError(f"{flag} needs a fusion model, not {self.cfg.arch!r}")
        return self.model

    def fer_head_state(self) -> dict[str, torch.Tensor] | None:
        """A copy of the 7-way FER2013 pre-training head, or None if the head is not one."""
        head = getattr(self.model, "head", None)
        if not isinstance(head, nn.Linear) or head.out_features != len(FER_CLASSES):
            return None
        return {k: v.detach().clone() for k, v in head.state_dict().items()}

    def new_head(self, num_classes: int) -> None:
        """Fresh classifier for ``num_classes`` on the training device, and a fresh optimiser."""
        self.model.reset_classifier(num_classes)  # type: ignore[operator]
        self.model.to(device())  # the new head is built on the CPU
        self.opt = self._optimizer()

    def start_ema(self) -> None:
        """Average the fine-tuning weights from here on (``cfg.ema`` > 0)."""
        self.ema = copy.deepcopy(self.model).eval().requires_grad_(False)
        # (average, live) tensor pairs, paired once: building two state dicts every step
        # doubled the update's cost; loading a state dict later copies in place, so they hold
        self._ema_pairs = list(
            zip(self.ema.state_dict().values(), self.model.state_dict().values(), strict=True)
        )

    def _ema_update(self, step: int) -> None:
        """Fold the weights after fine-tuning ``step`` into the average; timm's warm-up
        keeps the first averages from holding on to the new head's random start."""
        decay = min(self.cfg.ema, (1.0 + step) / (10.0 + step))
        with torch.no_grad():
            for avg, now in self._ema_pairs:
                if avg.dtype.is_floating_point:
                    avg.lerp_(now, 1.0 - decay)
                else:  # e.g. BatchNorm's num_batches_tracked
                    avg.copy_(now)

    def _optimizer(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(
            self.model.parameters(), lr=self.cfg.lr, weight_decay=self.cfg.weight_decay
        )

    def payload(self, phase: Phase, model: nn.Module | None = None) -> dict[str, Any]:
        """Checkpoint contents (self-describing); ``model`` replaces the trained weights."""
        return {
            "arch": self.cfg.arch,
            "model_args": model_args_of(self.model),
            "train_config": asdict(self.cfg),
            "model": (self.model if model is None else model).state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None and model is None else None,
            "aux_head": self.aux_head.state_dict() if self.aux_head is not None else None,
            "adversary": None if self.adversary is None else self.adversary.state_dict(),
            "optimizer": self.opt.state_dict(),
            "phase": phase.name,
            "phases": {k: asdict(v) for k, v in self.phases.items()},
            "history": self.history,
            "rng": self.gen.get_state(),
            "num_classes": self._num_classes(),
            "crop_scale": self.crop_scale,
        }

    def _num_classes(self) -> int:
        head = getattr(self.model, "head", None)
        if isinstance(head, nn.Linear):
            return head.out_features
        return n_classes("finetune" if "finetune" in self.phases else "pretrain")

    def resume(self, ckpt: dict[str, Any]) -> None:
        """Restore weights, optimiser, phases, history and RNG from a ``last.pt``."""
        if ckpt.get("num_classes", len(LABELS)) != len(LABELS) and ckpt["phase"] == "pretrain":
            self.new_head(ckpt["num_classes"])
        self.model.load_state_dict(ckpt["model"])
        if ckpt.get("aux_head") is not None:
            self._new_aux_head().load_state_dict(ckpt["aux_head"])
        if ckpt.get("adversary") is not None:
            self._attach_adversary(SourceAdversary.from_state(ckpt["adversary"]))
        if ckpt.get("ema") is not None:
            self.start_ema()
            cast(nn.Module, self.ema).load_state_dict(ckpt["ema"])
        self.opt.load_state_dict(ckpt["optimizer"])
        self.phases = {k: Phase(**v) for k, v in ckpt["phases"].items()}
        self.history = list(ckpt["history"])
        self.gen.set_state(ckpt["rng"])

    def run_phase(
        self, name: str, train: Batches, val: Batches | None, minutes: float, max_steps: int
    ) -> Phase:
        """Train until the time budget or step cap; evaluate + checkpoint every eval_every."""
        phase = self.phases.setdefault(name, Phase(name))
        budget = minutes * 60.0
        if phase.done and (phase.step >= max_steps or phase.elapsed >= budget):
            return phase
        cfg = self.cfg
        weighting = cfg.pretrain_class_weighting if name == "pretrain" else cfg.class_weighting
        cw = train.class_weights(n_classes(name), cfg.class_weight_power).to(device())
        weights = cw if weighting and train.w is None else None  # else per-sample or none
        loss_fn = nn.CrossEntropyLoss(weight=weights, label_smoothing=cfg.label_smoothing)
        base_lr = (cfg.pretrain_lr if name == "pretrain" else 0.0) or cfg.lr
        bar = tqdm(total=max_steps, initial=phase.step, desc=name, unit="step", leave=False)
        self.model.train()
        loss: torch.Tensor | None = None
        while phase.step < max_steps and phase.elapsed < budget:
            t0 = time.monotonic()
            progress = max(phase.elapsed / budget, phase.step / max_steps)
            for group in self.opt.param_groups:
                group["lr"] = base_lr * lr_factor(cfg, phase, progress)
            with torch.autocast(device().type, torch.bfloat16, enabled=cfg.precision == "bf16"):
                loss = self._loss(train, loss_fn, aux=name == "finetune", progress=progress)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_([p for g in self.opt.param_groups for p in g["params"]], 5.0)
            self.opt.step()
            if name == "finetune" and self.ema is not None:
                self._ema_update(phase.step)
            phase.step += 1
            phase.elapsed += time.monotonic() - t0
            bar.update(1)
            if phase.step % 50 == 0:  # .item() waits for the device: not on every step
                bar.set_postfix(loss=f"{loss.item():.3f}")
            if phase.step % self.cfg.eval_every == 0:
                self._checkpoint(phase, val, float(loss.item()))
        bar.close()
        phase.done = True
        last = self.history[-1] if self.history else None
        if last is not None and (last["phase"], last["step"]) == (name, phase.step):
            # the phase ended on an evaluation step: it is scored already; mark it done only
            save_checkpoint(self.out / "last.pt", self.payload(phase))
        else:
            self._checkpoint(phase, val, float(loss.item()) if loss is not None else float("nan"))
        return phase

    def _batch(self, data: Batches) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        x, y, w = data.next(self.cfg.batch_size, self.gen)
        c = self.cfg
        x = augment(
            x,
            self.gen,
            degrade_p=c.degrade,
            erase_p=c.erase,
            photometric_p=c.photometric,
            zoom_p=c.zoom,
            zoom_max=c.zoom_max,
            norm=(data.mean, data.std),
        )
        return x.to(device()), y.to(device()), None if w is None else w.to(device())

    def _loss(
        self, train: Batches, loss_fn: nn.Module, aux: bool, progress: float = 0.0
    ) -> torch.Tensor:
        """One batch's loss; with the FER2013 head, one forward over both batches."""
        x, y, w = self._batch(train)
        mix = mixup_draw(self.gen, self.cfg.mixup, len(x)) if aux and self.cfg.mixup > 0 else None
        if mix is not None:
            lam, perm = mix[0], mix[1].to(x.device)
            x = lam * x + (1.0 - lam) * x[perm]

        def one_loss(logits: torch.Tensor, y: torch.Tensor, w: torch.Tensor | None) -> torch.Tensor:
            if w is None:
                return cast(torch.Tensor, loss_fn(logits, y))
            per = nn.functional.cross_entropy(  # per-sample weights replace class weights
                logits, y, label_smoothing=self.cfg.label_smoothing, reduction="none"
            )
            return (per * w).sum() / w.sum()

        def main_loss(logits: torch.Tensor) -> torch.Tensor:
            if mix is None:
                return one_loss(logits, y, w)
            other = one_loss(logits, y[perm], None if w is None else w[perm])
            return lam * one_loss(logits, y, w) + (1.0 - lam) * other

        with_fer = aux and self.aux is not None and self.aux_head is not None
        with_adversary = aux and self.adversary is not None and train.s is not None
        if not with_fer and not with_adversary:
            logits = self.model(x)
            return self._distilled(main_loss(logits), logits, x)
        fer = self._batch(cast(Batches, self.aux))[:2] if with_fer else None
        inputs = x if fer is None else torch.cat([x, fer[0]])
        model = cast(LearningEmotionNet, self.model)
        pooled = model.forward_head(model.forward_features(inputs), pre_logits=True)
        logits = model.head(pooled[: len(x)])
        loss = self._distilled(main_loss(logits), logits, x)
        if fer is not None:
            loss = loss + self.cfg.fer_aux * nn.functional.cross_entropy(
                cast(nn.Linear, self.aux_head)(pooled[len(x) :]),
                fer[1],
                label_smoothing=self.cfg.label_smoothing,
            )
        if with_adversary:
            sources = cast(torch.Tensor, train.s)[train.last].to(device())
            scale = self.cfg.source_adversary * ramp(progress)
            loss = loss + cast(SourceAdversary, self.adversary).loss(
                pooled[: len(x)], y, sources, scale
            )
        return loss

    def _distilled(self, loss: torch.Tensor, logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``loss`` blended with the teachers' term once they are set (fine-tuning only)."""
        return loss if self.teachers is None else self.teachers.blend(loss, logits, x)

    def _checkpoint(self, phase: Phase, val: Batches | None, loss: float) -> None:
        score = accuracy = float("nan")
        scored = self.ema if phase.name == "finetune" and self.ema is not None else self.model
        if val is not None:
            t0 = time.monotonic()
            preds = evaluate_torch(scored, val)
            truth = val.y.numpy()
            score = macro_f1(truth, preds, n_classes(phase.name))
            accuracy = float(np.mean(preds == truth))
            phase.elapsed += time.monotonic() - t0
            if score > phase.best:
                phase.best, phase.since_best = score, 0
                if phase.name == "finetune":  # best.pt is always a six-way model
                    save_checkpoint(self.out / "best.pt", self.payload(phase, scored))
            else:
                phase.since_best += 1
                if phase.since_best % 5 == 0:
                    phase.lr_scale *= 0.9  # paper's plateau rule (used by schedule=plateau)
        entry = {"phase": phase.name, "step": phase.step, "elapsed_s": round(phase.elapsed, 1)}
        entry |= {"train_loss": loss, "val_macro_f1": score, "val_accuracy": accuracy}
        self.history.append(entry)
        logger.info("%s", json.dumps(entry))
        save_checkpoint(self.out / "last.pt", self.payload(phase))


def _data_dir(cfg: TrainConfig, settings: ModelsSettings) -> Path:
    return Path(cfg.data_dir) if cfg.data_dir else settings.learning_emotions_dir


def _fer_dir(cfg: TrainConfig, settings: ModelsSettings) -> Path:
    return Path(cfg.fer_dir) if cfg.fer_dir else settings.fer2013_dir


def _init_model(cfg: TrainConfig, out: Path) -> nn.Module:
    """The ``--init`` model: a checkpoint, or an exported ONNX file (``models.recover``)."""
    init = Path(cfg.init)
    if init.suffix == ".onnx":
        init = recover(init, out / "init.pt")
    model = model_from_checkpoint(init)[0].train()
    if cfg.photo_norm:  # no weights: a switch
        if not isinstance(model, LearningEmotionNet):
            raise ConfigError(f"--photo-norm needs a fusion model; --init {cfg.init} is not one")
        model.cfg = replace(model.cfg, photo_norm=True)
    size = int(model_args_of(model)["img_size"])
    if size != cfg.img_size:
        raise ConfigError(f"--init {cfg.init} is a {size} px model: pass --img-size {size}")
    return model


def load_split_data(cfg: TrainConfig, settings: ModelsSettings) -> dict[str, Any]:
    """Train/val grey arrays + labels, and RGB samples for the SUN fit."""
    data_dir = _data_dir(cfg, settings)
    rows: dict[str, list[ManifestRow]] = {s: load_manifest(data_dir, s) for s in ("train", "val")}
    rows = regroup(rows, cfg.regroup) if cfg.regroup else rows
    rgb = {s: load_images(r, cfg.img_size, settings.cache_dir) for s, r in rows.items()}
    labels = {s: np.array([r.label for r in rows[s]]) for s in rows}
    sample = np.random.default_rng(cfg.seed).permutation(len(rgb["train"]))[:256]
    sun_rgb = torch.from_numpy(rgb["train"][sample]).permute(0, 3, 1, 2).float() / 255.0
    train_x, train_y = to_grey_rgb(rgb["train"])[..., 0], labels["train"]  # (N, H, W)
    groups = [f"{r.source}/{r.label}" for r in rows["train"]]
    if cfg.fer_extra:
        ex, ey = fer_extras(
            cfg.fer_extra, _fer_dir(cfg, settings), cfg.img_size, cfg.fer_extra_n, cfg.seed
        )
        train_x, train_y = np.concatenate([train_x, ex]), np.concatenate([train_y, ey])
        groups += [f"fer-extra/{y}" for y in ey]
    if cfg.synthetic:
        sx, sy = load_extra_crops(Path(cfg.synthetic), cfg.img_size)
        train_x, train_y = np.concatenate([train_x, sx]), np.concatenate([train_y, sy])
        groups += [f"synthetic/{y}" for y in sy]
    source_names, source_ids = np.unique([g.split("/")[0] for g in groups], return_inverse=True)
    classes = train_y if cfg.group_within_class else None  # group weights: class shares first
    return {
        "train": (train_x, train_y),
        "train_weights": group_weights(groups, classes) if cfg.group_weighting else None,
        "train_sources": source_ids,  # ids into source_names, per training crop
        "source_names": [str(n) for n in source_names],
        "val": (to_grey_rgb(rgb["val"])[..., 0], labels["val"]),
        "sun_batches": list(sun_rgb.split(64)),  # (b, 3, H, W) RGB in [0, 1]
    }


def train(cfg: TrainConfig, out: Path, resume: Path | None = None) -> Path:
    """Run (or resume) a full training run; returns the best checkpoint path."""
    settings = ModelsSettings()
    if cfg.photo_norm and cfg.arch.startswith("baseline:"):
        raise ConfigError(f"--photo-norm needs a fusion model, not {cfg.arch!r}")
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    ckpt = load_checkpoint(resume) if resume else None
    init = _init_model(cfg, out) if ckpt is None and cfg.init else None  # before data: its size
    data = load_split_data(cfg, settings)
    sun = fit_sun_params(data["sun_batches"]).to_dict()
    if ckpt is not None:
        model = build_model(ckpt["arch"], ckpt["model_args"])
    elif init is not None:
        model = init
    else:
        kwargs: dict[str, Any] = {"img_size": cfg.img_size}
        if not cfg.arch.startswith("baseline:"):
            kwargs |= {"fusion": cfg.fusion, "sun": sun, "stem": cfg.stem}
            kwargs |= {"photo_norm": cfg.photo_norm, "fusion_init": cfg.fusion_init}
            kwargs |= {"local_drop": cfg.local_drop}
            if cfg.window_size > 0:
                kwargs["window_size"] = cfg.window_size
        model = create_model(cfg.arch, **kwargs)
    mean, std = input_norm(model)
    trainer = Trainer(cfg, out, model, sun)
    data_dir = _data_dir(cfg, settings)
    trainer.crop_scale = crop_scale_of(data_dir)
    teachers = Teachers.from_config(cfg, norm=(mean, std)) if cfg.teachers else None  # fail early
    if ckpt is not None:
        check_framing(data_dir, ckpt_crop_scale(ckpt), f"--resume {resume}")
        trainer.resume(ckpt)
    elif cfg.init and not cfg.init_pretrain and trainer._num_classes() == len(LABELS):
        trainer.phases["finetune"] = Phase("finetune")  # keep the initial head
    pretrain = cfg.pretrain_minutes > 0 and cfg.pretrain_steps > 0
    pretrain &= not cfg.init or cfg.init_pretrain
    pretrain &= not trainer.phases.get("pretrain", Phase("pretrain")).done
    fer = None  # FER2013 training faces and (fit, held-out) indices, read once for both uses
    if pretrain or cfg.fer_aux > 0:
        fx, fy = load_fer2013(_fer_dir(cfg, settings), "train", cfg.img_size)
        fer = fx, fy, *fer_holdout(len(fy), seed=0)
    if pretrain and fer is not None:
        fx, fy, fit, held = fer
        if "pretrain" not in trainer.phases:
            trainer.new_head(n_classes("pretrain"))
        fit_faces, held_out = (
            Batches(fx[fit], fy[fit], mean, std),
            Batches(fx[held], fy[held], mean, std),
        )
        trainer.run_phase("pretrain", fit_faces, held_out, cfg.pretrain_minutes, cfg.pretrain_steps)
    fer_head = None
    if "finetune" not in trainer.phases:
        fer_head = trainer.fer_head_state() if cfg.fer_aux > 0 else None
        trainer.new_head(len(LABELS))
    if cfg.ema > 0 and trainer.ema is None:
        trainer.start_ema()
    if cfg.fer_aux > 0 and fer is not None:
        fx, fy, fit, _ = fer
        trainer.add_aux(Batches(fx[fit], fy[fit], mean, std), fer_head)
    if cfg.source_adversary > 0 and trainer.adversary is None:
        trainer.add_adversary(data["train"][1], data["train_sources"])
        logger.info("source adversary over %s", data["source_names"])
    tr = Batches(
        data["train"][0],
        data["train"][1],
        mean,
        std,
        data["train_weights"],
        sources=data["train_sources"] if cfg.source_adversary > 0 else None,
    )
    va = Batches(data["val"][0], data["val"][1], mean, std)
    trainer.teachers = teachers  # after pre-training: teachers predict the six labels
    trainer.run_phase("finetune", tr, va, cfg.finetune_minutes, cfg.finetune_steps)
    best = out / "best.pt"
    logger.info("best validation macro-F1 %.4f -> %s", trainer.phases["finetune"].best, best)
    if cfg.report_split:
        split_report(best, data_dir, cfg.report_split, cfg.img_size, settings.cache_dir)
    return best


@entry_point
def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    cfg, out, resume = parse_cli(argv, description=__doc__)
    settings = ModelsSettings()
    if settings.torch_threads > 0:
        torch.set_num_threads(settings.torch_threads)
    if torch.cuda.is_available():
        torch.set_float32_matmul_precision("high")  # TF32 matrix units
    t0 = time.monotonic()
    best = train(cfg, out, resume)
    logger.info("run finished in %.1f min; best checkpoint %s", (time.monotonic() - t0) / 60, best)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
