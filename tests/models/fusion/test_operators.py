"""Fusion operators over any number of named modalities."""

from __future__ import annotations

import pytest
import torch

from fusionrec.errors import ConfigError
from fusionrec.models.fusion.operators import ModalityAttention

NAMES = ("image", "text", "audio")


def _inputs(b: int = 5, d: int = 4, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {n: torch.randn(b, d, generator=g) for n in NAMES}


def test_user_conditioned_attention_sums_to_one_and_differs_per_query():
    torch.manual_seed(0)
    op = ModalityAttention(NAMES, dim=4, hidden=8, query_dim=6)
    one = {n: v[:1].expand(2, -1) for n, v in _inputs().items()}  # same item twice
    q = torch.randn(2, 6) * 3
    fused, alpha = op(one, q)
    assert fused.shape == (2, 4) and alpha.shape == (2, 3)
    assert torch.allclose(alpha.sum(1), torch.ones(2))
    assert not torch.allclose(alpha[0], alpha[1])
    assert torch.allclose(torch.softmax(op.scores(one, q), -1), alpha)


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
    q = torch.zeros(1, 2)
    with pytest.raises(ConfigError, match="at least one"):
        ModalityAttention((), dim=2, query_dim=2)
    with pytest.raises(ConfigError, match="duplicate"):
        ModalityAttention(("a", "a"), dim=2, query_dim=2)
    with pytest.raises(ConfigError, match="lacks modality"):
        ModalityAttention(("a", "b"), dim=2, query_dim=2)({"a": torch.zeros(1, 2)}, q)
    with pytest.raises(ConfigError, match="one size"):
        ModalityAttention(("a", "b"), dim=2, query_dim=2)({"a": torch.zeros(1, 2), "b": torch.zeros(1, 3)}, q)
