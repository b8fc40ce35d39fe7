"""Method objectives: the default choices and the paper_faithful switch (docs/deviations.md)."""
import pytest
import torch

from deepmerge_da.losses import PAPER_CODE_VARIANCES, entropy_loss
from deepmerge_da.methods import StepOutputs, TransferObjective

HP = {"lambda_tl": 1.0, "lambda_w": 0.01, "lambda_b": 1.0, "lambda_em": 0.05, "dc_lr_mult": 1.0}


def outputs(progress=0.0, d=8):
    g = torch.Generator().manual_seed(0)
    return StepOutputs(torch.randn(6, 2, generator=g), torch.randn(6, d, generator=g), torch.tensor([0, 1] * 3),
                       torch.randn(5, 2, generator=g), torch.randn(5, d, generator=g) + 1, progress)


def test_defaults_unbiased_mmd_ganin_schedule_target_entropy():
    mmd = TransferObjective("mmd_fisher_em", 8, HP)
    assert mmd.mmd.estimator == "unbiased" and mmd.mmd.variances is None
    ada = TransferObjective("ada", 8, HP)
    assert ada.reversal_coefficient(0.0) == 0.0 and 0.99 < ada.reversal_coefficient(1.0) <= 1.0
    out = outputs()
    _, terms = mmd(out)
    assert abs(terms["entropy"] - entropy_loss(out.target_logits).item()) < 1e-6


def test_paper_faithful_switch():
    hp = dict(HP, paper_faithful=True)
    mmd = TransferObjective("mmd_fisher_em", 8, hp)
    assert mmd.mmd.estimator == "biased" and tuple(mmd.mmd.variances) == tuple(PAPER_CODE_VARIANCES)
    assert TransferObjective("ada", 8, hp).reversal_coefficient(0.0) == 1.0
    out = outputs()
    _, terms = mmd(out)
    both = entropy_loss(torch.cat([out.source_logits, out.target_logits])).item()
    assert abs(terms["entropy"] - both) < 1e-6


def test_total_is_the_weighted_sum_of_eq_2():
    obj = TransferObjective("mmd_fisher_em", 8, HP)
    total, terms = obj(outputs())
    expected = (terms["classification"] + HP["lambda_tl"] * terms["transfer"] + terms["fisher"]
                + HP["lambda_em"] * terms["entropy"])
    assert total.item() == pytest.approx(expected, rel=1e-6)
