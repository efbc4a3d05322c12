"""The shared torch trainer: sampling, determinism, early stopping, export to numpy, augmentation."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from _support import checkerboard

from fusionrec.data.sampling import NegativeSampler, minibatches, positive_pairs
from fusionrec.errors import ConfigError
from fusionrec.evaluation import VALIDATOR, evaluate_scores
from fusionrec.models.bpr_torch import BPRTorch


def _random_csr(n_users=50, n_items=40, density=0.3, seed=0) -> sp.csr_matrix:
    rng = np.random.RandomState(seed)
    m = sp.random(n_users, n_items, density=density, random_state=rng, format="csr", dtype=np.float32)
    m.data[:] = 1.0
    return m


def test_negatives_are_never_positives_and_are_seeded():
    m = _random_csr(density=0.6)
    users, items = positive_pairs(m)
    assert len(users) == m.nnz and np.all(m[users, items].A1 == 1)
    a = NegativeSampler(m, 7).sample(users, n_neg=3)
    b = NegativeSampler(m, 7).sample(users, n_neg=3)
    assert a.shape == (m.nnz, 3)
    np.testing.assert_array_equal(a, b)
    dense = m.toarray()
    assert not dense[users[:, None], a].any()
    one = NegativeSampler(m, 7).sample(users)
    assert one.shape == (m.nnz,) and not dense[users, one].any()
    assert not np.array_equal(one, NegativeSampler(m, 8).sample(users))


def test_negatives_cover_all_non_positives_uniformly():
    m = sp.csr_matrix(np.array([[1, 0, 0, 1, 0]], np.float32))
    neg = NegativeSampler(m, 0).sample(np.zeros(30000, np.int64))
    counts = np.bincount(neg, minlength=5)
    assert counts[0] == counts[3] == 0
    assert np.allclose(counts[[1, 2, 4]] / 30000, 1 / 3, atol=0.02)


def test_minibatches_partition_indices():
    rng = np.random.RandomState(0)
    parts = list(minibatches(10, 3, rng))
    assert [len(p) for p in parts] == [3, 3, 3, 1]
    assert sorted(np.concatenate(parts)) == list(range(10))


def _fast(**kw) -> BPRTorch:
    params = dict(factors=8, epochs=15, learning_rate=0.05, batch_size=64, reg=1e-4, random_state=3)
    params.update(kw)
    model = BPRTorch(**params)
    model.show_progress = False
    return model


def test_learns_checkerboard_and_exports_numpy():
    train = checkerboard()
    model = _fast().fit(train)
    assert isinstance(model.user_factors_, np.ndarray) and model.user_factors_.dtype == np.float32
    # 8 factors and the item bias column (user side: ones)
    assert model.user_factors_.shape == (40, 9) and model.item_factors_.shape == (30, 9)
    assert (model.user_factors_[:, -1] == 1.0).all()
    s = model.score(np.arange(40))
    same = (np.arange(40)[:, None] % 2) == (np.arange(30)[None, :] % 2)
    assert s[same].mean() > s[~same].mean() + 0.5
    assert model.epoch_seconds_ > 0 and model.best_epoch_ == model.epochs_run_ == 15
    assert model.best_valid_ is None
    assert not any(k == "_module" for k in vars(model))


def test_same_seed_same_factors_other_seed_differs():
    train = checkerboard()
    a = _fast().fit(train).user_factors_
    b = _fast().fit(train).user_factors_
    c = _fast(random_state=4).fit(train).user_factors_
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_early_stopping_keeps_best_valid_epoch():
    # Random valid items: the metric peaks early and noisy, so patience ends the run and the kept
    # state must be the best epoch's, not the last one's.
    train, valid = _random_csr(seed=1, density=0.2), _random_csr(seed=2, density=0.05)
    valid = (valid - valid.multiply(train)).tocsr()
    valid.eliminate_zeros()
    model = _fast(epochs=60, patience=3, learning_rate=0.1).fit(train, valid=valid, validate=VALIDATOR)
    assert model.epochs_run_ < 60
    assert model.epochs_run_ - model.best_epoch_ == 3
    got = evaluate_scores(model.score, valid, train, metrics=("recall@20",)).metrics["recall@20"]
    assert got == pytest.approx(model.best_valid_)


def test_eval_every_spaces_validation():
    train, valid = _random_csr(seed=1, density=0.2), _random_csr(seed=2, density=0.05)
    model = _fast(epochs=6, eval_every=4, patience=1).fit(train, valid=valid, validate=VALIDATOR)
    assert model.best_epoch_ in (4, 6)


def test_bad_settings_say_what_to_do():
    board = checkerboard()
    with pytest.raises(ValueError, match="bad metric"):
        _fast(valid_metric="recal20").fit(board, valid=board, validate=VALIDATOR)
    # models do not import the evaluation layer: early stopping needs the evaluator passed in
    with pytest.raises(ConfigError, match="validate=fusionrec.evaluation.VALIDATOR"):
        _fast().fit(board, valid=board)
    with pytest.raises(ConfigError, match="positive"):
        _fast(epochs=0).fit(checkerboard())
    with pytest.raises(ConfigError, match="lower learning_rate"):
        _fast(learning_rate=1e30, epochs=3).fit(checkerboard())


def test_augmentation_only_in_training():
    import torch

    from fusionrec.models.freedom import FREEDOM  # a model that exposes the augmentation settings

    model = FREEDOM(modality_dropout=0.5, feature_noise=0.0)
    x = torch.ones(1000, 4)
    assert torch.equal(model._augment(x), x)
    model._training = True  # what the trainer sets around each epoch (with its seeded generator)
    model._gen = np.random.default_rng(0)
    torch.manual_seed(0)
    y = model._augment(x)
    dropped = (y == 0).all(dim=1).float().mean().item()
    assert 0.4 < dropped < 0.6 and torch.allclose(y[y != 0], torch.tensor(2.0))
    model.modality_dropout, model.feature_noise = 0.0, 0.1
    z = model._augment(torch.randn(1000, 4))
    assert z.shape == (1000, 4)


def test_fit_restores_global_torch_settings():
    import torch

    threads = torch.get_num_threads()
    det = torch.are_deterministic_algorithms_enabled()
    _fast(epochs=2).fit(checkerboard())
    assert torch.get_num_threads() == threads
    assert torch.are_deterministic_algorithms_enabled() == det


def test_thread_count_can_be_set_by_environment(monkeypatch):
    from fusionrec.models._torch import default_threads

    monkeypatch.setenv("FUSIONREC_THREADS", "3")
    assert default_threads() == 3
    monkeypatch.setenv("FUSIONREC_THREADS", "many")
    with pytest.raises(ConfigError, match="FUSIONREC_THREADS"):
        default_threads()
    monkeypatch.delenv("FUSIONREC_THREADS")
    assert 1 <= default_threads() <= 4


def test_training_history_is_recorded_and_saved_with_the_artifact(tmp_path):
    from fusionrec.artifacts import Artifact, load_artifact, save_artifact
    from fusionrec.data.dataset import IdMap

    train, valid = _random_csr(seed=1), _random_csr(density=0.05, seed=2)
    model = BPRTorch(factors=8, epochs=6, learning_rate=0.05, eval_every=2, patience=0, random_state=0)
    model.show_progress = False
    model.fit(train, valid=valid, validate=VALIDATOR)
    h = model.history_
    assert h["metric"] == "recall@20" and h["epoch"] == [1, 2, 3, 4, 5, 6]
    assert len(h["loss"]) == 6 and all(np.isfinite(h["loss"])) and h["loss"][-1] < h["loss"][0]
    assert [v is None for v in h["valid"]] == [True, False, True, False, True, False]
    assert max(v for v in h["valid"] if v is not None) == pytest.approx(model.best_valid_, abs=1e-6)
    art = Artifact(model, IdMap(range(50)), IdMap(range(40)), train)
    assert load_artifact(save_artifact(art, tmp_path / "a")).model.history_ == h


def test_trainer_defaults_have_one_source():
    # regression: constructors and TRAINER_DEFAULTS disagreed, and a missing attribute silently fell back
    from fusionrec.models._torch import MODEL_TRAINER_PARAMS, TRAINER_DEFAULTS, TorchRecommender
    from fusionrec.models.registry import get_model_class, model_names

    torch_models = [get_model_class(n) for n in model_names() if get_model_class(n).is_torch]
    assert len(torch_models) >= 6
    for cls in torch_models:
        assert issubclass(cls, TorchRecommender)
        params = cls.param_defaults()
        missing = [p for p in MODEL_TRAINER_PARAMS if p not in params]
        assert not missing, f"{cls.name} must choose {missing} itself"
        shared = {k: v for k, v in params.items() if k in TRAINER_DEFAULTS}
        assert shared == {k: TRAINER_DEFAULTS[k] for k in shared}, cls.name
    model = _fast()
    del model.patience  # a constructor that forgot to store a parameter fails loudly
    with pytest.raises(AttributeError):
        model._hp("patience")
