"""Fusion operators over any number of named modalities."""

from __future__ import annotations

import pytest
import torch

from fusionrec.errors import ConfigError
from fusionrec.models.fusion.operators import ModalityAttention, WeightedSum, masked_softmax

NAMES = ("image", "text", "audio")


def _inputs(b: int = 5, d: int = 4, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {n: torch.randn(b, d, generator=g) for n in NAMES}


def test_weighted_sum_fixed_weights_are_normalised():
    xs = _inputs()
    op = WeightedSum(NAMES, {"image": 2.0, "text": 1.0, "audio": 1.0}, learn=False)
    fused, alpha = op(xs)
    assert torch.allclose(alpha[0], torch.tensor([0.5, 0.25, 0.25]))
    assert torch.allclose(fused, 0.5 * xs["image"] + 0.25 * xs["text"] + 0.25 * xs["audio"], atol=1e-6)
    assert not any(p.requires_grad for p in op.parameters())


def test_weighted_sum_learns_to_prefer_the_informative_modality():
    torch.manual_seed(0)
    xs = _inputs(b=256, d=3)
    target = xs["text"]  # only text predicts the target
    op = WeightedSum(NAMES)
    opt = torch.optim.Adam(op.parameters(), lr=0.1)
    for _ in range(200):
        fused, _ = op(xs)
        loss = (fused - target).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    alpha = op(xs)[1][0]
    assert alpha[1] > 0.9


def test_attention_weights_sum_to_one_and_respect_mask():
    torch.manual_seed(0)
    op = ModalityAttention(NAMES, dim=4, hidden=8)
    xs = _inputs()
    fused, alpha = op(xs)
    assert fused.shape == (5, 4) and alpha.shape == (5, 3)
    assert torch.allclose(alpha.sum(1), torch.ones(5))
    mask = torch.tensor([[True, False, True]] * 4 + [[False, False, False]])
    fused, alpha = op(xs, mask=mask)
    assert torch.all(alpha[:4, 1] == 0) and torch.allclose(alpha[:4].sum(1), torch.ones(4))
    assert torch.all(alpha[4] == 0) and torch.all(fused[4] == 0)  # nothing present: nothing fused


def test_user_conditioned_attention_differs_per_query():
    torch.manual_seed(0)
    op = ModalityAttention(NAMES, dim=4, hidden=8, query_dim=6)
    one = {n: v[:1].expand(2, -1) for n, v in _inputs().items()}  # same item twice
    q = torch.randn(2, 6) * 3
    _, alpha = op(one, q)
    assert not torch.allclose(alpha[0], alpha[1])
    with pytest.raises(ConfigError, match="query"):
        op(one)
    with pytest.raises(ConfigError, match="learnt query"):
        ModalityAttention(NAMES, dim=4)(one, q)


def test_attention_can_learn_a_user_dependent_choice():
    # users of group 0 are served by "image", group 1 by "text": the query must learn to switch
    torch.manual_seed(0)
    b, d = 256, 4
    xs = {n: torch.randn(b, d) for n in NAMES}
    group = torch.arange(b) % 2
    q = torch.nn.functional.one_hot(group, 2).float()
    target = torch.where(group[:, None] == 0, xs["image"], xs["text"])
    op = ModalityAttention(NAMES, dim=d, hidden=8, query_dim=2)
    opt = torch.optim.Adam(op.parameters(), lr=0.05)
    for _ in range(300):
        fused, _ = op(xs, q)
        loss = (fused - target).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    _, alpha = op(xs, q)
    assert alpha[group == 0, 0].mean() > 0.8
    assert alpha[group == 1, 1].mean() > 0.8


def test_errors_say_what_is_wrong():
    with pytest.raises(ConfigError, match="at least one"):
        WeightedSum(())
    with pytest.raises(ConfigError, match="duplicate"):
        WeightedSum(("a", "a"))
    with pytest.raises(ConfigError, match="lacks modality"):
        WeightedSum(("a", "b"))({"a": torch.zeros(1, 2)})
    with pytest.raises(ConfigError, match="one size"):
        WeightedSum(("a", "b"))({"a": torch.zeros(1, 2), "b": torch.zeros(1, 3)})
    with pytest.raises(ConfigError, match="positive"):
        WeightedSum(("a", "b"), [1.0, -1.0])


def test_masked_softmax_without_mask_is_softmax():
    x = torch.randn(3, 4)
    assert torch.allclose(masked_softmax(x, None), torch.softmax(x, -1))
