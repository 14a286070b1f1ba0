"""A few real training steps on real crops, checkpoints and resume."""

from __future__ import annotations

import csv
import re
from dataclasses import replace

import numpy as np
import pytest
import torch

from contract.labels import LABELS
from contract.sidecar import ModelSidecar, sidecar_path_for
from models.batches import Batches, group_weights, mixup_draw
from models.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
from models.data import (
    FER_CLASSES,
    fer_extras,
    fer_holdout,
    load_fer2013,
    load_manifest,
    parse_fer_extra,
    regroup,
)
from models.errors import CheckpointError, ConfigError, DataError
from models.export import export
from models.train import Trainer, train
from models.train_config import parse_cli
from tests.models.conftest import TINY_CFG, real_rows, write_manifest


@pytest.mark.slow
def test_tiny_run_writes_self_describing_checkpoints(tiny_run):
    last = load_checkpoint(tiny_run / "last.pt")
    assert last["arch"] == "learning_emotion_small"
    assert tuple(last["labels"]) == LABELS
    assert last["train_config"]["seed"] == 0
    assert len(last["model_args"]["sun"]["scales"]) == 9  # fitted SUN params travel with it
    assert last["phases"]["pretrain"]["step"] == 2 and last["phases"]["pretrain"]["done"]
    assert last["phases"]["finetune"]["step"] == 2
    vals = [h["val_macro_f1"] for h in last["history"] if h["phase"] == "finetune"]
    assert vals and all(0.0 <= v <= 1.0 for v in vals if v == v)
    steps = [(h["phase"], h["step"]) for h in last["history"]]
    assert len(steps) == len(set(steps))  # a phase that ends on an evaluation step: scored once
    assert all(h["train_loss"] == h["train_loss"] for h in last["history"])  # no NaN loss logged
    model, _ = model_from_checkpoint(tiny_run / "best.pt")  # rebuilt without training code
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 96, 96)).shape == (1, len(LABELS))


@pytest.mark.slow
def test_resume_continues_from_last_checkpoint(tiny_run, tiny_data, tiny_fer, tmp_path):
    before = load_checkpoint(tiny_run / "last.pt")
    cfg = replace(TINY_CFG, data_dir=str(tiny_data), fer_dir=str(tiny_fer), finetune_steps=3)
    train(cfg, tmp_path, resume=tiny_run / "last.pt")
    after = load_checkpoint(tmp_path / "last.pt")
    assert after["phases"]["pretrain"] == before["phases"]["pretrain"]  # not redone
    assert after["phases"]["finetune"]["step"] == 3
    steps = [(h["phase"], h["step"]) for h in after["history"]]
    assert steps[: len(before["history"])] == [(h["phase"], h["step"]) for h in before["history"]]
    assert steps[-1] == ("finetune", 3)


def test_checkpoint_write_is_atomic(tmp_path):
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"arch": "a", "model_args": {}, "model": {}, "step": 1})
    with pytest.raises(Exception, match=r"pickle|lambda"):
        save_checkpoint(path, {"arch": "a", "model_args": {}, "model": {}, "bad": lambda: 0})
    assert load_checkpoint(path)["step"] == 1  # the old checkpoint survives the crash
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temp file left


def test_bad_checkpoints_are_named(tmp_path):
    with pytest.raises(CheckpointError, match=r"missing\.pt not found"):
        load_checkpoint(tmp_path / "missing.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match=r"junk\.pt cannot be read"):
        load_checkpoint(junk)


@pytest.mark.slow
def test_init_starts_from_a_checkpoint_without_pretraining(tiny_run, tiny_data, tmp_path):
    start, _ = model_from_checkpoint(tiny_run / "best.pt")
    cfg = replace(TINY_CFG, data_dir=str(tiny_data), init=str(tiny_run / "best.pt"))
    train(cfg, tmp_path)
    last = load_checkpoint(tmp_path / "last.pt")
    assert "pretrain" not in last["phases"] and last["phases"]["finetune"]["step"] == 2
    assert last["train_config"]["init"] == str(tiny_run / "best.pt")
    moved = [
        not torch.equal(last["model"][k], v) for k, v in start.state_dict().items()
    ]  # the same network, trained further
    assert set(last["model"]) == set(start.state_dict()) and any(moved)


def test_fer_extras_are_relabelled_training_faces_of_the_mapped_classes(tiny_fer):
    fx, fy = load_fer2013(tiny_fer, "train", 64)
    x, y = fer_extras("neutral:focus,angry:confusion", tiny_fer, 64, per_class=3, seed=0)
    expected = {
        LABELS.index("focus"): min(3, int((fy == FER_CLASSES.index("neutral")).sum())),
        LABELS.index("confusion"): min(3, int((fy == FER_CLASSES.index("angry")).sum())),
    }
    assert x.shape == (sum(expected.values()), 64, 64) and x.dtype == np.uint8
    assert {int(k): int(v) for k, v in zip(*np.unique(y, return_counts=True), strict=True)} == {
        k: v for k, v in expected.items() if v
    }
    for face in x:  # each extra is one of FER2013's training faces, unchanged
        assert (fx == face).all(axis=(1, 2)).any()


@pytest.mark.parametrize("spec", ["neutral-focus", "calm:focus", "neutral:happy"])
def test_bad_fer_extra_mappings_are_named(spec):
    with pytest.raises(ConfigError, match=f"--fer-extra pair {spec!r}"):
        parse_fer_extra(spec)


@pytest.mark.slow
def test_fer_aux_trains_a_separate_fer_head_jointly(tiny_run, tiny_data, tiny_fer, tmp_path):
    cfg = replace(TINY_CFG, data_dir=str(tiny_data), fer_dir=str(tiny_fer), fer_aux=0.5)
    cfg = replace(cfg, init=str(tiny_run / "best.pt"))
    train(cfg, tmp_path / "run")
    last = load_checkpoint(tmp_path / "run" / "last.pt")
    start = load_checkpoint(tiny_run / "best.pt")
    assert last["aux_head"]["weight"].shape == (7, start["model"]["head.weight"].shape[1])
    assert set(last["model"]) == set(start["model"])  # the exported network is unchanged
    resumed = replace(cfg, finetune_steps=3)
    train(resumed, tmp_path / "run", resume=tmp_path / "run" / "last.pt")
    again = load_checkpoint(tmp_path / "run" / "last.pt")
    assert again["phases"]["finetune"]["step"] == 3
    assert not torch.equal(again["aux_head"]["weight"], last["aux_head"]["weight"])


@pytest.mark.slow
def test_fer_aux_is_refused_for_baselines(tiny_data, tiny_fer, tmp_path):
    cfg = replace(TINY_CFG, arch="baseline:resnet18", data_dir=str(tiny_data))
    cfg = replace(cfg, fer_dir=str(tiny_fer), fer_aux=0.5, pretrain_steps=0, img_size=64)
    with pytest.raises(ConfigError, match="--fer-aux needs a fusion model"):
        train(cfg, tmp_path / "run")


def test_photo_norm_is_refused_for_baselines(tiny_data, tmp_path):
    cfg = replace(TINY_CFG, arch="baseline:resnet18", data_dir=str(tiny_data), photo_norm=True)
    with pytest.raises(ConfigError, match="--photo-norm needs a fusion model"):
        train(cfg, tmp_path / "run")


def _tiny_splits(tiny_data):
    return {s: load_manifest(tiny_data, s) for s in ("train", "val")}


@pytest.mark.slow
def test_regroup_moves_whole_subjects_between_train_and_val(tiny_data):
    rows = _tiny_splits(tiny_data)
    train_subject = next(r.subject for r in rows["train"] if r.source == "webcam-class")
    assert any(r.subject == "xhy1" for r in rows["val"])  # the validation webcam person
    out = regroup(rows, f"xhy1:train, {train_subject}:val")
    assert not any(r.subject == "xhy1" for r in out["val"])
    assert not any(r.subject == train_subject for r in out["train"])
    assert {r.path for r in out["train"]} == (
        {r.path for r in rows["train"] if r.subject != train_subject}
        | {r.path for r in rows["val"] if r.subject == "xhy1"}
    )
    assert sum(map(len, out.values())) == sum(map(len, rows.values()))  # nothing lost


@pytest.mark.slow
@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("xhy0:train", "test subjects cannot be moved"),  # the test person
        ("xhy1:test", "expected <subject>:<train|val>"),
        ("xhy1", "expected <subject>:<train|val>"),
    ],
)
def test_bad_regroups_are_named(tiny_data, spec, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        regroup(_tiny_splits(tiny_data), spec)


@pytest.mark.slow
def test_regroup_refuses_to_empty_a_split_and_travels_with_the_run(tiny_run, tiny_data, tmp_path):
    rows = _tiny_splits(tiny_data)
    everyone = ",".join(f"{s}:train" for s in {r.subject for r in rows["val"]})
    with pytest.raises(ConfigError, match="leaves the val split empty"):
        regroup(rows, everyone)
    cfg = replace(TINY_CFG, data_dir=str(tiny_data), init=str(tiny_run / "best.pt"))
    train(replace(cfg, regroup="xhy1:train"), tmp_path)
    assert load_checkpoint(tmp_path / "last.pt")["train_config"]["regroup"] == "xhy1:train"


@pytest.mark.slow
def test_photo_norm_switched_on_over_an_init_exports_with_parity(tiny_run, tiny_data, tmp_path):
    cfg = replace(TINY_CFG, data_dir=str(tiny_data), init=str(tiny_run / "best.pt"))
    train(replace(cfg, photo_norm=True, photometric=0.5), tmp_path)
    last = load_checkpoint(tmp_path / "last.pt")
    assert last["model_args"]["photo_norm"] is True and last["train_config"]["photometric"] == 0.5
    assert load_checkpoint(tiny_run / "best.pt")["model_args"].get("photo_norm", False) is False
    export(tmp_path / "last.pt", tmp_path / "m.onnx", n_parity=4)  # ORT must match torch
    sidecar = ModelSidecar.load(sidecar_path_for(tmp_path / "m.onnx"))
    assert sidecar.model["photo_norm"] is True


def test_group_weights_weigh_every_source_label_group_alike(data_dir):
    rows = load_manifest(data_dir / "learning-emotions", "train")
    groups = [f"{r.source}/{r.label}" for r in rows]
    w = group_weights(groups)
    totals = {g: float(w[[x == g for x in groups]].sum()) for g in set(groups)}
    assert np.allclose(list(totals.values()), len(rows) / len(totals), rtol=1e-5)
    assert w.mean() == pytest.approx(1.0, rel=1e-5)
    boredom, focus = LABELS.index("boredom"), LABELS.index("focus")
    affect = {r.label: w[i] for i, r in enumerate(rows) if r.source == "affectnet-relabel"}
    # AffectNet holds 363 boredom and 364 focus crops: alike inside it (class weights: 6.7x)
    assert affect[boredom] == pytest.approx(affect[focus], rel=0.01)
    with pytest.raises(DataError, match="no training rows"):
        group_weights([])


def test_group_weights_within_class_keep_every_class_alike(data_dir):
    rows = load_manifest(data_dir / "learning-emotions", "train")
    groups = [f"{r.source}/{r.label}" for r in rows]
    classes = [r.label for r in rows]
    w = group_weights(groups, classes)
    assert w.mean() == pytest.approx(1.0, rel=1e-5)
    per_class = {c: float(w[[x == c for x in classes]].sum()) for c in set(classes)}
    assert np.allclose(list(per_class.values()), len(rows) / len(per_class), rtol=1e-5)
    focus = LABELS.index("focus")
    focus_groups = {g for g, c in zip(groups, classes, strict=True) if c == focus}
    assert len(focus_groups) == 3  # DAiSEE, webcam, AffectNet: each a third of focus
    totals = [float(w[[x == g for x in groups]].sum()) for g in focus_groups]
    assert np.allclose(totals, per_class[focus] / 3, rtol=1e-5)
    affect = {r.label: w[i] for i, r in enumerate(rows) if r.source == "affectnet-relabel"}
    ratio = affect[LABELS.index("boredom")] / affect[focus]
    assert ratio == pytest.approx(3 * 364 / 363, rel=0.05)  # group weights 1x, class 6.7x
    with pytest.raises(DataError, match="more than one class"):
        group_weights(["a/x", "a/x"], [0, 1])
    with pytest.raises(DataError, match="2 classes for 3"):
        group_weights(["a", "b", "c"], [0, 1])
    cfg, _, _ = parse_cli(["--group-weighting", "yes", "--group-within-class", "yes"])
    assert cfg.group_weighting and cfg.group_within_class
    with pytest.raises(ConfigError, match="--group-within-class yes needs --group-weighting"):
        parse_cli(["--group-within-class", "yes"])


def test_batches_hand_out_the_weights_of_their_batch():
    grey = np.zeros((10, 4, 4), np.uint8)
    batches = Batches(grey, np.arange(10) % 6, 0.5, 0.25, weights=np.arange(10, dtype=np.float32))
    gen = torch.Generator().manual_seed(0)
    assert Batches(grey, np.arange(10) % 6, 0.5, 0.25).next(4, gen)[2] is None
    for _ in range(3):  # across a reshuffle too
        _, y, w = batches.next(4, gen)
        assert w is not None and torch.equal(w.long() % 6, y)


def test_group_weighting_changes_the_loss_and_travels_with_the_run(tiny_run, data_dir, tmp_path):
    with (data_dir / "learning-emotions" / "manifest.csv").open(newline="") as fh:
        shared = list(csv.DictReader(fh))
    rows = real_rows(data_dir, "val", 2)
    for label, source, n in [("focus", "daisee", 6), ("focus", "affectnet-relabel", 2)] + [
        (label, "", 3) for label in LABELS if label != "focus"
    ]:  # focus from two sources, 6:2, so groups differ from classes
        pick = [r for r in shared if r["split"] == "train" and r["label"] == label]
        rows += [r for r in pick if source in ("", r["source"])][:n]
    folder = write_manifest(tmp_path / "mixed", rows, data_dir)
    start = str(tiny_run / "best.pt")
    for name, on in (("class", False), ("group", True)):
        cfg = replace(TINY_CFG, data_dir=str(folder), init=start, group_weighting=on)
        train(cfg, tmp_path / name)
    by_class = load_checkpoint(tmp_path / "class" / "last.pt")
    by_group = load_checkpoint(tmp_path / "group" / "last.pt")
    assert by_group["train_config"]["group_weighting"] is True
    assert by_class["train_config"]["group_weighting"] is False
    # same start, seed and batches; only the loss weights differ
    assert any(not torch.equal(by_class["model"][k], v) for k, v in by_group["model"].items())


def test_fer_holdout_is_fixed_disjoint_and_at_most_a_tenth():
    fit, held = fer_holdout(28_709)
    assert (len(fit), len(held)) == (26_709, 2_000)
    assert not set(fit) & set(held) and set(fit) | set(held) == set(range(28_709))
    assert np.array_equal(fer_holdout(28_709)[1], held)  # the same faces for every run
    assert [len(part) for part in fer_holdout(32)] == [29, 3]


@pytest.mark.slow
def test_one_pretraining_starts_several_fine_tuning_seeds(tiny_data, tiny_fer, tmp_path):
    """Pre-train once (``--finetune-steps 0``), then ``--init`` each seed from its last.pt."""
    cfg = replace(TINY_CFG, data_dir=str(tiny_data), fer_dir=str(tiny_fer))
    train(replace(cfg, finetune_steps=0), tmp_path / "pre")
    pre = load_checkpoint(tmp_path / "pre" / "last.pt")
    assert pre["phases"]["pretrain"]["step"] == 2 and pre["phases"]["finetune"]["step"] == 0
    runs = []
    for seed in (0, 1):
        train(replace(cfg, init=str(tmp_path / "pre" / "last.pt"), seed=seed), tmp_path / f"{seed}")
        runs.append(load_checkpoint(tmp_path / f"{seed}" / "last.pt"))
    for run in runs:  # no second pre-training, and the pre-training's SUN fit goes on
        assert "pretrain" not in run["phases"] and run["phases"]["finetune"]["step"] == 2
        assert run["model_args"]["sun"] == pre["model_args"]["sun"]
    body = [k for k in pre["model"] if not k.startswith("head.")]
    assert any(not torch.equal(runs[0]["model"][k], runs[1]["model"][k]) for k in body)


@pytest.mark.slow
def test_init_pretrain_runs_fer2013_on_the_init_model_and_logs_held_out_accuracy(
    tiny_run, tiny_data, tiny_fer, tmp_path
):
    start = load_checkpoint(tiny_run / "best.pt")
    cfg = replace(TINY_CFG, data_dir=str(tiny_data), fer_dir=str(tiny_fer), fer_aux=0.5)
    cfg = replace(cfg, init=str(tiny_run / "best.pt"), init_pretrain=True, finetune_steps=0)
    for name, on in (("plain", False), ("weighted", True)):
        train(replace(cfg, pretrain_class_weighting=on), tmp_path / name)
    plain = load_checkpoint(tmp_path / "plain" / "last.pt")
    weighted = load_checkpoint(tmp_path / "weighted" / "last.pt")
    assert plain["phases"]["pretrain"]["step"] == 2 and plain["phases"]["finetune"]["done"]
    held = [h for h in plain["history"] if h["phase"] == "pretrain"]
    assert len(held) >= 2 and all(0.0 <= h["val_accuracy"] <= 1.0 for h in held)
    assert plain["aux_head"]["weight"].shape == (7, start["model"]["head.weight"].shape[1])
    assert plain["model"]["head.weight"].shape[0] == len(LABELS)
    best = load_checkpoint(tmp_path / "plain" / "best.pt")  # never a pre-training state
    assert best["phase"] == "finetune" and best["model"]["head.weight"].shape[0] == len(LABELS)
    # the FER2013 phase trained the init model's features, and class weights change it
    body = [k for k in start["model"] if not k.startswith("head.")]
    assert any(not torch.equal(plain["model"][k], start["model"][k]) for k in body)
    assert any(not torch.equal(plain["model"][k], weighted["model"][k]) for k in body)
    assert weighted["train_config"]["pretrain_class_weighting"] is True


@pytest.mark.slow
def test_the_pretraining_head_goes_on_as_the_fer_aux_head_and_trains(tiny_run, tiny_fer, tmp_path):
    model, _ = model_from_checkpoint(tiny_run / "best.pt")
    trainer = Trainer(TINY_CFG, tmp_path, model, sun={})
    assert trainer.fer_head_state() is None  # a six-way head is not a FER2013 head
    trainer.new_head(7)
    fer_head = trainer.fer_head_state()
    assert fer_head is not None
    trainer.new_head(len(LABELS))
    images, labels = load_fer2013(tiny_fer, "train", 96)
    trainer.add_aux(Batches(images, labels, 0.5, 0.25), fer_head)
    assert trainer.aux_head is not None
    assert torch.equal(trainer.aux_head.weight, fer_head["weight"])
    trained = {id(p) for group in trainer.opt.param_groups for p in group["params"]}
    assert id(trainer.aux_head.weight) in trained


@pytest.mark.slow
def test_ema_scores_and_saves_the_average_and_resumes_it(tiny_data, tiny_fer, tmp_path):
    cfg = replace(TINY_CFG, data_dir=str(tiny_data), fer_dir=str(tiny_fer), ema=0.998)
    cfg = replace(cfg, eval_every=2)  # one scored checkpoint, at fine-tuning step 2
    train(cfg, tmp_path)
    last, best = load_checkpoint(tmp_path / "last.pt"), load_checkpoint(tmp_path / "best.pt")
    assert last["train_config"]["ema"] == 0.998 and best["ema"] is None
    assert set(last["ema"]) == set(last["model"])
    # best.pt holds the average, not the trained weights
    assert all(torch.equal(best["model"][k], v) for k, v in last["ema"].items())
    assert not torch.equal(last["ema"]["head.weight"], last["model"]["head.weight"])
    train(replace(cfg, finetune_steps=3), tmp_path, resume=tmp_path / "last.pt")
    after = load_checkpoint(tmp_path / "last.pt")
    decay = min(0.998, 3 / 12)  # warm-up at step 2: (1 + t) / (10 + t)
    for k, avg in after["ema"].items():  # the resumed average went on from the saved one
        want = decay * last["ema"][k] + (1 - decay) * after["model"][k]
        assert torch.allclose(avg, want, atol=1e-6), k


def test_bad_ema_decays_are_named():
    with pytest.raises(ConfigError, match="--ema must be a decay in"):
        parse_cli(["--ema", "1.0"])


def test_mixup_draws_are_reproducible_beta_blends_of_whole_batches():
    gen = torch.Generator().manual_seed(7)
    state = gen.get_state()
    lam, perm = mixup_draw(gen, 0.2, 32)
    assert 0.0 <= lam <= 1.0 and sorted(perm.tolist()) == list(range(32))
    gen.set_state(state)  # a resumed run's generator draws the same blend
    again = mixup_draw(gen, 0.2, 32)
    assert again[0] == lam and torch.equal(again[1], perm)
    # Beta(a, a): small a blends little (lambda near 0 or 1), large a near half and half
    near_half = {
        a: np.mean([abs(mixup_draw(gen, a, 4)[0] - 0.5) for _ in range(400)]) for a in (0.1, 8.0)
    }
    assert near_half[0.1] > 0.35 and near_half[8.0] < 0.12


def test_mixup_changes_the_fine_tuning_and_travels_with_the_run(tiny_run, tiny_data, tmp_path):
    start = str(tiny_run / "best.pt")
    for name, alpha in (("plain", 0.0), ("mixup", 0.4)):
        train(replace(TINY_CFG, data_dir=str(tiny_data), init=start, mixup=alpha), tmp_path / name)
    plain = load_checkpoint(tmp_path / "plain" / "last.pt")
    mixed = load_checkpoint(tmp_path / "mixup" / "last.pt")
    assert mixed["train_config"]["mixup"] == 0.4 and plain["train_config"]["mixup"] == 0.0
    assert all(h["train_loss"] == h["train_loss"] for h in mixed["history"])  # no NaN
    # same start, seed and crops; only the blending differs
    assert any(not torch.equal(plain["model"][k], v) for k, v in mixed["model"].items())


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--mixup", "-0.2"], "--mixup must be a Beta parameter > 0"),
        (["--mixup", "0.2", "--source-adversary", "0.1"], "--mixup cannot be combined"),
    ],
)
def test_bad_mixup_settings_are_named(argv, message):
    with pytest.raises(ConfigError, match=message):
        parse_cli(argv)


def test_bf16_precision_trains_fp32_weights_and_travels_with_the_run(tiny_run, tiny_data, tmp_path):
    start = str(tiny_run / "best.pt")
    cfg = replace(TINY_CFG, data_dir=str(tiny_data), init=start, precision="bf16")
    train(cfg, tmp_path)
    last = load_checkpoint(tmp_path / "last.pt")
    assert last["train_config"]["precision"] == "bf16"
    assert all(v.dtype != torch.bfloat16 for v in last["model"].values())  # autocast only
    assert all(h["train_loss"] == h["train_loss"] for h in last["history"])  # no NaN
    before = load_checkpoint(tiny_run / "best.pt")["model"]
    assert any(not torch.equal(before[k], v) for k, v in last["model"].items())  # it trained
    with pytest.raises(ConfigError, match="--precision must be fp32 or bf16"):
        parse_cli(["--precision", "fp16"])


def test_fusion_init_flag_is_checked_against_the_model():
    cfg, out, _ = parse_cli(["--fusion-init", "zero", "--out", "runs/x"])
    assert cfg.fusion_init == "zero" and cfg.fusion == "gate" and out.name == "x"
    assert parse_cli([])[0].fusion_init == "default"
    with pytest.raises(ConfigError, match="--fusion-init must be default or zero, got 'one'"):
        parse_cli(["--fusion-init", "one"])
    for argv in (["--fusion", "none"], ["--arch", "baseline:resnet18"]):
        with pytest.raises(ConfigError, match="--fusion-init zero needs a gated fusion model"):
            parse_cli([*argv, "--fusion-init", "zero"])


def test_local_drop_flag_needs_a_local_branch():
    assert parse_cli(["--local-drop", "0.3"])[0].local_drop == 0.3
    with pytest.raises(ConfigError, match="--local-drop needs a fusion model"):
        parse_cli(["--fusion", "none", "--local-drop", "0.3"])
    with pytest.raises(ConfigError, match=r"--local-drop must be a share in \[0, 1\), got 1.5"):
        parse_cli(["--local-drop", "1.5"])


def test_class_weight_power_softens_inverse_frequency_weights():
    labels = np.array([0] * 8 + [1] * 2 + [2] * 1 + [3] * 1)  # classes 4, 5 absent
    batches = Batches(np.zeros((12, 4, 4), np.uint8), labels, 0.5, 0.25)
    full, half, flat = (batches.class_weights(6, p) for p in (1.0, 0.5, 0.0))
    assert torch.allclose(full, batches.class_weights(6))  # the default is inverse frequency
    for w in (full, half, flat):
        assert w.mean().item() == pytest.approx(1.0)
    assert full[1] / full[0] == pytest.approx(4.0)  # 8 against 2 faces
    assert half[1] / half[0] == pytest.approx(2.0)  # its square root
    assert torch.allclose(flat, torch.ones(6))
    assert parse_cli(["--class-weight-power", "0.5"])[0].class_weight_power == 0.5
    assert parse_cli([])[0].class_weight_power == 1.0
    with pytest.raises(ConfigError, match=r"--class-weight-power must be in \[0, 1\].*got 1.5"):
        parse_cli(["--class-weight-power", "1.5"])


def test_channels_last_lays_out_conv_weights_and_its_checkpoints_load_as_usual(tiny_data, tmp_path):
    cfg = replace(TINY_CFG, data_dir=str(tiny_data), arch="baseline:resnet18", img_size=64)
    cfg = replace(cfg, pretrain_steps=0, channels_last=True)
    train(cfg, tmp_path)
    model, ckpt = model_from_checkpoint(tmp_path / "last.pt")  # default layout, as export reads
    assert ckpt["train_config"]["channels_last"] is True
    assert all(h["train_loss"] == h["train_loss"] for h in ckpt["history"])  # no NaN
    trainer = Trainer(cfg, tmp_path / "again", model, sun={})
    conv = trainer.model.get_submodule("net.conv1")
    assert isinstance(conv, torch.nn.Conv2d)
    weight = conv.weight
    assert weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous()
    x = torch.randn(4, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    plain, _ = model_from_checkpoint(tmp_path / "last.pt")
    with torch.no_grad():
        torch.testing.assert_close(trainer.model.eval().forward(x), plain(x), rtol=1e-4, atol=1e-5)
    assert parse_cli(["--channels-last", "yes"])[0].channels_last
    assert not parse_cli([])[0].channels_last
