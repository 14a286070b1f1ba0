"""Distillation from trained teachers (models.distill) on real crops and real tiny runs."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from models.checkpoint import load_checkpoint, model_from_checkpoint
from models.data import load_manifest
from models.distill import Teachers
from models.ensemble import EnsembleProbs
from models.errors import ConfigError
from models.scoring import checkpoint_batches, input_norm
from models.train import train
from models.train_config import parse_cli
from tests.models.conftest import TINY_CFG, real_rows, write_manifest


@pytest.fixture(scope="module")
def teachers_and_batch(tiny_run, second_run, data_dir, tmp_path_factory):
    folder = write_manifest(
        tmp_path_factory.mktemp("rows"), real_rows(data_dir, "test", 2), data_dir
    )
    _, batches = checkpoint_batches(tiny_run / "best.pt", load_manifest(folder, None), None, None)
    x = batches.prep(torch.arange(len(batches)))  # (12, 3, 96, 96) real crops
    return [tiny_run / "best.pt", second_run], x, (batches.mean, batches.std)


def test_teachers_average_their_probabilities_like_an_ensemble(teachers_and_batch):
    paths, x, norm = teachers_and_batch
    teachers = Teachers.load(paths, norm=norm, img_size=96, weight=0.5, temperature=1.0)
    members = [model_from_checkpoint(p)[0] for p in paths]
    with torch.no_grad():
        expected = EnsembleProbs(members).eval()(x)
    assert torch.allclose(teachers.probs(x), expected, atol=1e-6)
    hot = Teachers.load(paths, norm=norm, img_size=96, weight=0.5, temperature=4.0).probs(x)
    assert hot.max() < expected.max()  # a higher temperature softens


def test_a_student_that_matches_its_teacher_pays_only_the_label_loss(teachers_and_batch):
    paths, x, norm = teachers_and_batch
    teachers = Teachers.load(paths[:1], norm=norm, img_size=96, weight=0.3, temperature=2.0)
    with torch.no_grad():
        logits = model_from_checkpoint(paths[0])[0](x)  # the teacher's own logits
    hard = torch.tensor(1.7)
    assert torch.isclose(teachers.blend(hard, logits, x), 0.7 * hard, atol=1e-5)
    other = torch.flip(logits, dims=[1])  # a student that disagrees pays the KL term
    assert teachers.blend(hard, other, x) > 0.7 * hard + 1e-3


@pytest.mark.slow
def test_distilled_run_shares_pretraining_and_records_its_teachers(
    tiny_run, second_run, tiny_data, tiny_fer, tmp_path
):
    teachers = f"{tiny_run / 'best.pt'},{second_run}"
    cfg = replace(TINY_CFG, data_dir=str(tiny_data), fer_dir=str(tiny_fer))
    train(replace(cfg, teachers=teachers, distill=0.5), tmp_path)
    plain, student = load_checkpoint(tiny_run / "last.pt"), load_checkpoint(tmp_path / "last.pt")
    assert student["train_config"]["teachers"] == teachers
    assert student["train_config"]["distill"] == 0.5

    def losses(ckpt, phase):
        return [h["train_loss"] for h in ckpt["history"] if h["phase"] == phase]

    # loading the teachers draws no weights from the student's seed: pre-training is the same
    assert losses(student, "pretrain") == losses(plain, "pretrain")
    assert losses(student, "finetune") != losses(plain, "finetune")
    assert all(v == v for v in losses(student, "finetune"))  # no NaN


def test_teachers_must_take_the_students_input(teachers_and_batch):
    paths, _, norm = teachers_and_batch
    with pytest.raises(ConfigError, match=f"teacher {paths[0]} takes 96 px faces, the student 64"):
        Teachers.load(paths, norm=norm, img_size=64, weight=0.5, temperature=2.0)
    with pytest.raises(ConfigError, match=f"teacher {paths[0]} normalises input"):
        Teachers.load(paths, norm=(0.0, 1.0), img_size=96, weight=0.5, temperature=2.0)
    model = model_from_checkpoint(paths[0])[0]
    assert input_norm(model) == pytest.approx(norm)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--distill", "0.5"], "--teachers A.pt"),
        (["--teachers", "nowhere/best.pt"], "--teachers A.pt"),
        (["--teachers", "nowhere/best.pt", "--distill", "0.5"], "checkpoint nowhere/best.pt not"),
        (["--teachers", "x.pt", "--distill", "1.5"], r"--distill must be in \(0, 1\]"),
        (["--teachers", "x.pt", "--distill", "0.5", "--distill-temp", "0"], "--distill-temp 0"),
    ],
)
def test_bad_distillation_settings_are_named(argv, message):
    with pytest.raises(ConfigError, match=message):
        parse_cli(argv)
