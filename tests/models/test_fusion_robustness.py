"""Fusion that pays for itself: robust to a useless modality, ahead of interactions alone on sparse users,
and no default content model below most-popular there.

The real-data checks use the shared benchmark split with the bundled features (the same 3,650 items, the
project's CNN and sentence embeddings), and its sparse version: at most 5 training interactions per user.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import scipy.sparse as sp

from fusionrec.data.dataset import Features, Split
from fusionrec.data.loaders import demo_path, load_dataset, load_feature_dir
from fusionrec.data.splits import split_dataset, thin_train
from fusionrec.evaluation import VALIDATOR, evaluate
from fusionrec.models import create_model
from fusionrec.models._torch import popularity_prior

CF_PARAMS = {"als": {"factors": 256, "reg": 20, "alpha": 2}, "ease": {"reg": 100}}
METRIC = "recall@20,ndcg@20"


def recommended_fusion(with_content: bool = True):
    """The README's recommended fusion; without content it is the collaborative contender, tuned alike."""
    models = "als,ease,most-popular" + (",content-knn" if with_content else "")
    model = create_model("late-fusion", {"models": models, "params": CF_PARAMS, "valid_metric": METRIC})
    model.show_progress = False
    return model


@functools.cache
def _benchmark(root: str, per_user: int | None):
    ds = load_dataset(root, "mmrec")
    ds = ds.with_features(load_feature_dir(demo_path() / "features", ds.item_ids))
    split = split_dataset(ds, "given")
    return ds, (split if per_user is None else thin_train(split, per_user, seed=0))


def benchmark(benchmark_dir, per_user: int | None = None):
    """The benchmark with the bundled features (optionally thinned to ``per_user`` train interactions)."""
    return _benchmark(str(benchmark_dir), per_user)


def test_thin_train_keeps_at_most_n_per_user_and_the_targets():
    rng = np.random.RandomState(0)
    dense = (rng.random_sample((30, 50)) < 0.4).astype(np.float32)
    split = Split(
        train=sp.csr_matrix(dense), valid=sp.csr_matrix(dense[:, ::-1]), test=sp.csr_matrix(dense.T[:30, :50])
    )
    thin = thin_train(split, 3, seed=1)
    deg = np.diff(thin.train.indptr)
    assert deg.max() == 3 and (deg == np.minimum(3, dense.sum(axis=1))).all()
    assert (thin.train.multiply(split.train) != thin.train).nnz == 0  # a subset of train
    assert thin.valid is split.valid and thin.test is split.test
    assert (thin_train(split, 3, seed=2).train != thin.train).nnz > 0  # the seed picks the kept rows


def test_bpr_content_models_start_from_popularity():
    # VBPR and the attention network started their item biases at 0; on sparse data they stopped early
    # below most-popular (micro-video set: 0.034 and 0.041 R@20 against 0.060). One tiny step keeps the prior.
    rng = np.random.RandomState(0)
    pop = rng.zipf(1.6, 60).clip(1, 30)
    rows = np.concatenate([rng.choice(40, size=p, replace=False) for p in pop])
    cols = np.repeat(np.arange(60), pop)
    X = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(40, 60))
    feats = Features({"text": rng.normal(size=(60, 6)).astype(np.float32)})
    prior = popularity_prior(X)[:, 0]
    assert np.corrcoef(prior, np.log1p(pop))[0, 1] > 0.999
    for name in ("vbpr", "neural"):
        model = create_model(name, {"factors": 4, "epochs": 1, "learning_rate": 1e-5, "batch_size": 4096})
        model.show_progress = False
        model.fit(X, feats)
        bias = model.score_parts(np.zeros(1, np.int64), np.arange(60)[None, :])["bias"][0]
        assert np.corrcoef(bias, prior)[0, 1] > 0.99, name


def test_small_data_still_gets_enough_steps_per_epoch():
    # 3,050 interactions in batches of 2048 were two Adam steps per epoch; early stopping's patience ran out
    # before VBPR or the attention network had learned more than their starting point
    X = sp.random(50, 40, density=0.15, format="csr", random_state=0, dtype=np.float32)
    X.data[:] = 1.0
    feats = Features({"text": np.random.RandomState(0).normal(size=(40, 5)).astype(np.float32)})
    for name in ("vbpr", "neural"):
        model = create_model(name, {"factors": 4, "epochs": 1})
        model.show_progress = False
        assert model.fit(X, feats).batch_size_ == -(-X.nnz // 16), name
        model = create_model(name, {"factors": 4, "epochs": 1, "min_batches": 0}).fit(X, feats)
        assert model.batch_size_ == 2048, name


@pytest.mark.slow
def test_fusion_beats_the_best_collaborative_model_on_sparse_users(benchmark_dir):
    ds, split = benchmark(benchmark_dir, per_user=5)
    fused = recommended_fusion().fit(split.train, ds.features, valid=split.valid, validate=VALIDATOR)
    best = evaluate(fused, split, masking="train").metrics["recall@20"]
    cf = {"late-fusion(cf)": recommended_fusion(with_content=False)}
    for name in ("most-popular", "als", "ease", "itemknn"):
        cf[name] = create_model(name, CF_PARAMS.get(name, {}))
    for name, model in cf.items():
        model.show_progress = False
        model.fit(split.train, ds.features, valid=split.valid, validate=VALIDATOR)
        r20 = evaluate(model, split, masking="train").metrics["recall@20"]
        assert best > 1.05 * r20, (name, r20, best)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["vbpr", "neural"])
def test_content_models_do_not_fall_below_most_popular_on_sparse_users(name, benchmark_dir):
    ds, split = benchmark(benchmark_dir, per_user=5)
    popular = create_model("most-popular").fit(split.train)
    floor = evaluate(popular, split, on="valid", masking="train").metrics["recall@20"]
    model = create_model(name)
    model.show_progress = False
    model.fit(split.train, ds.features, valid=split.valid, validate=VALIDATOR)
    assert evaluate(model, split, on="valid", masking="train").metrics["recall@20"] >= floor
    # test: the valid-chosen epoch generalises (3 seeds: vbpr 0.094-0.101, neural 0.090-0.096; most-popular 0.087)
    test_floor = evaluate(popular, split, masking="train").metrics["recall@20"]
    assert evaluate(model, split, masking="train").metrics["recall@20"] >= 0.95 * test_floor


@pytest.mark.slow
def test_a_pure_noise_modality_does_not_lower_the_fusion(benchmark_dir):
    ds, split = benchmark(benchmark_dir)
    clean = recommended_fusion().fit(split.train, ds.features, valid=split.valid, validate=VALIDATOR)
    r_clean = evaluate(clean, split, masking="train").metrics["recall@20"]
    noisy_feats = Features({m: ds.features[m] for m in ds.features}, ds.features.masks)
    noisy_feats.add("noise", np.random.RandomState(7).normal(size=(ds.n_items, 64)).astype(np.float32))
    noisy = recommended_fusion().fit(split.train, noisy_feats, valid=split.valid, validate=VALIDATOR)
    r_noisy = evaluate(noisy, split, masking="train").metrics["recall@20"]
    gates = dict(zip(noisy.sub_models[-1].modalities_, noisy.sub_models[-1].weights_, strict=True))
    assert gates["noise"] <= 0.25 * max(gates["text"], gates["image"]), gates
    # the spread: this fusion's R@20 over seeds 1-3 on the benchmark is 0.2890 ± 0.0018
    assert r_noisy >= r_clean - 0.002, (r_clean, r_noisy)


@pytest.mark.slow
def test_content_als_beats_als_with_the_same_settings(benchmark_dir):
    # seeds 1-3: content-als 0.2861 ± 0.0012 R@20 against ALS's 0.2778 (the README's benchmark settings)
    ds, split = benchmark(benchmark_dir)
    recalls = {}
    for name in ("als", "content-als"):
        model = create_model(name, {**CF_PARAMS["als"], "random_state": 1})
        model.show_progress = False
        model.fit(split.train, ds.features, valid=split.valid, validate=VALIDATOR)
        recalls[name] = evaluate(model, split, masking="train").metrics["recall@20"]
    assert recalls["content-als"] > recalls["als"] + 0.004, recalls
