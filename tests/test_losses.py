"""Identities of the distillation losses on tiny tensors."""

import math

import pytest
import torch

from cod.distill.losses import ce_loss, kd_loss, layerwise_loss


def test_kd_is_zero_for_identical_logits():
    logits = torch.randn(4, 3)
    assert kd_loss(logits, logits.clone(), T=2.0).item() == pytest.approx(0.0, abs=1e-6)


def test_kd_known_value_and_scalar():
    # Teacher (0.5, 0.5) vs student softmax(0, log 3) = (0.25, 0.75) at T=1: KL = 0.5 ln(0.5/0.25) + 0.5 ln(0.5/0.75).
    student = torch.tensor([[0.0, math.log(3.0)]])
    teacher = torch.tensor([[0.0, 0.0]])
    expected = 0.5 * math.log(2.0) + 0.5 * math.log(2.0 / 3.0)
    loss = kd_loss(student, teacher, T=1.0)
    assert loss.dim() == 0
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_kd_scales_with_T_squared():
    # Logits scaled by T give the same softened distributions, so the loss differs exactly by T^2.
    student, teacher = torch.randn(5, 2), torch.randn(5, 2)
    base = kd_loss(student, teacher, T=1.0).item()
    assert kd_loss(student * 4.0, teacher * 4.0, T=4.0).item() == pytest.approx(16.0 * base, rel=1e-4)


def test_kd_is_a_batch_mean():
    student, teacher = torch.randn(3, 2), torch.randn(3, 2)
    doubled = kd_loss(torch.cat([student, student]), torch.cat([teacher, teacher]), T=2.0)
    assert doubled.item() == pytest.approx(kd_loss(student, teacher, T=2.0).item(), rel=1e-5)


def test_kd_rejects_bad_temperature():
    with pytest.raises(ValueError, match="temperature"):
        kd_loss(torch.zeros(1, 2), torch.zeros(1, 2), T=0.0)


def test_ce_known_value_and_weights():
    logits = torch.tensor([[0.0, 0.0], [0.0, math.log(3.0)]])
    labels = torch.tensor([0, 1])
    assert ce_loss(logits, labels).item() == pytest.approx((math.log(2) + math.log(4 / 3)) / 2, rel=1e-5)
    # Weight 0 drops the second example; the mean is over the weighted ones only.
    assert ce_loss(logits, labels, torch.tensor([1.0, 0.0])).item() == pytest.approx(math.log(2), rel=1e-5)
    assert ce_loss(logits, labels, torch.tensor([0.0, 0.0])).item() == 0.0


def test_layerwise_zero_for_identical_and_known_value():
    states = [torch.randn(2, 8), torch.randn(2, 8)]
    assert layerwise_loss(states, [s.clone() for s in states]).item() == pytest.approx(0.0, abs=1e-7)
    ones, zeros = [torch.ones(2, 4)], [torch.zeros(2, 4)]
    assert layerwise_loss(ones, zeros).item() == pytest.approx(1.0)


def test_layerwise_projection_and_mask():
    proj = torch.nn.Linear(4, 6, bias=False)
    with torch.no_grad():
        proj.weight.zero_()
    student = [torch.randn(2, 3, 4)]
    teacher = [torch.ones(2, 3, 6)]
    assert layerwise_loss(student, teacher, [proj]).item() == pytest.approx(1.0)
    # Padded tokens (mask 0) do not count even where they differ.
    teacher_padded = [torch.cat([torch.zeros(2, 2, 6), torch.full((2, 1, 6), 9.0)], dim=1)]
    mask = torch.tensor([[1, 1, 0], [1, 1, 0]])
    assert layerwise_loss(student, teacher_padded, [proj], mask=mask).item() == pytest.approx(0.0)


def test_layerwise_gradients_reach_projection():
    proj = torch.nn.Linear(4, 6)
    loss = layerwise_loss([torch.randn(3, 4)], [torch.randn(3, 6)], [proj])
    loss.backward()
    assert proj.weight.grad is not None and proj.weight.grad.abs().sum() > 0


def test_layerwise_rejects_mismatched_layers():
    with pytest.raises(ValueError, match="one to one"):
        layerwise_loss([torch.zeros(1, 2)], [])


def _batch(n: int = 4, labels: int = 3, hidden: int = 5) -> dict:
    torch.manual_seed(0)
    return {
        "labels": torch.randint(0, labels, (n,)),
        "ce_weights": torch.ones(n),
        "teacher_logits": torch.randn(n, labels),
        "teacher_states": [torch.randn(n, hidden)],
    }


def test_each_objective_adds_its_weighted_term_to_the_one_before():
    from cod.config import DistillConfig
    from cod.distill.losses import OBJECTIVES

    batch, logits, states = _batch(), torch.randn(4, 3), [torch.randn(4, 5)]
    config = DistillConfig(method="lwd", alpha=2.0, beta=3.0, temperature=1.5)
    ce = OBJECTIVES["ce"].loss(logits, None, batch, config)
    kd = OBJECTIVES["kd"].loss(logits, None, batch, config)
    lwd = OBJECTIVES["lwd"].loss(logits, states, batch, config)
    assert set(ce) == {"loss", "ce"} and set(kd) == {"loss", "ce", "kd"} and set(lwd) == {"loss", "ce", "kd", "lwd"}
    assert ce["loss"].item() == pytest.approx(ce_loss(logits, batch["labels"]).item())
    kd_term = kd_loss(logits, batch["teacher_logits"], 1.5)
    assert kd["loss"].item() == pytest.approx((ce["loss"] + 2.0 * kd_term).item())
    lw = layerwise_loss(states, batch["teacher_states"])
    assert lwd["loss"].item() == pytest.approx((kd["loss"] + 3.0 * lw).item(), rel=1e-6)
    assert all(v.dim() == 0 for v in lwd.values())


def test_objectives_are_zero_beyond_ce_when_the_student_matches_the_teacher():
    from cod.config import DistillConfig
    from cod.distill.losses import OBJECTIVES

    batch = _batch()
    terms = OBJECTIVES["lwd"].loss(
        batch["teacher_logits"].clone(),
        [s.clone() for s in batch["teacher_states"]],
        batch,
        DistillConfig(method="lwd"),
    )
    assert terms["kd"].item() == pytest.approx(0.0, abs=1e-6) and terms["lwd"].item() == 0.0
    assert terms["loss"].item() == pytest.approx(terms["ce"].item(), rel=1e-5)


def test_objectives_declare_the_targets_their_batches_carry():
    from cod.distill.losses import OBJECTIVES

    assert [(m, o.teacher_logits, o.teacher_states) for m, o in OBJECTIVES.items()] == [
        ("ce", False, False),
        ("kd", True, False),
        ("lwd", True, True),
    ]
